// SPDX-License-Identifier: MIT
// Note [the hot call path]
// pybind11's generic dispatch costs ~300 ns per call here and its instance registration
// ~400 ns per new Tensor, several times the C++ work of a small op. The calls that programs
// make per op therefore bypass it: the public ops (vectorcall builtins, bind_entry.cpp), the
// Tensor type's number slots (+ - * / ** @ unary -) and the transforms' calls. They create
// result objects directly in pybind11's simple instance layout, unregistered: tensor_dealloc
// frees those, pybind11's dealloc everything else. That layout is pybind11's private detail, so
// pyproject.toml pins pybind11 to the versions this was checked with, bind_fast checks the
// layout at import (falling back to pybind11's own casts if it differs), and
// tests/test_interop.py fails when the fast path is not the one running (_core._fast_path()).
// Every other binding stays ordinary pybind11.
#include "common.hpp"

#include <cstring>
#include <string>

namespace matgrad::py_bind {

namespace {
bool g_fast_wrap = false;  // set once the instance layout has been checked
destructor g_pybind11_dealloc = nullptr;

// Tensor's tp_dealloc: the simple unregistered instances made by wrap() are freed here
// directly; anything else (registered, subclassed, with keep-alive patients) goes to pybind11.
void tensor_dealloc(PyObject* self) {
  auto* inst = reinterpret_cast<py::detail::instance*>(self);
  PyTypeObject* type = Py_TYPE(self);
  if (type != g_tensor_type || !inst->simple_layout || inst->simple_instance_registered || inst->has_patients) {
    g_pybind11_dealloc(self);
    return;
  }
  if (inst->weakrefs) PyObject_ClearWeakRefs(self);
  if (inst->simple_holder_constructed) {
    reinterpret_cast<NodeRef*>(&inst->simple_value_holder[1])->~NodeRef();
    inst->simple_holder_constructed = false;
  }
  type->tp_free(self);
  Py_DECREF(type);
}
}  // namespace

void set_python_error() {
  try {
    throw;
  } catch (py::error_already_set& e) {
    e.restore();
  } catch (const py::builtin_exception& e) {
    e.set_error();
  } catch (const ValueError& e) {  // ShapeError too
    PyErr_SetString(PyExc_ValueError, e.what());
  } catch (const TypeError& e) {
    PyErr_SetString(PyExc_TypeError, e.what());
  } catch (const IndexError& e) {
    PyErr_SetString(PyExc_IndexError, e.what());
  } catch (const LinAlgError& e) {
    PyErr_SetString(linalg_error_type(), e.what());
  } catch (const AnomalyError& e) {
    PyErr_SetString(anomaly_error_type(), e.what());
  } catch (const GraphError& e) {
    PyErr_SetString(PyExc_RuntimeError, e.what());
  } catch (const Interrupted&) {  // what Python's signal handler raised (KeyboardInterrupt for Ctrl-C)
    if (!restore_pending_interrupt()) PyErr_SetNone(PyExc_KeyboardInterrupt);
  } catch (const std::bad_alloc&) {
    PyErr_NoMemory();
  } catch (const std::exception& e) {
    PyErr_SetString(PyExc_RuntimeError, e.what());
  } catch (...) {
    PyErr_SetString(PyExc_RuntimeError, "matgrad: unknown C++ exception");
  }
}

PyObject* wrap(NodeRef n) {
  if (!g_fast_wrap) return py::cast(std::move(n)).release().ptr();
  PyObject* self = g_tensor_type->tp_alloc(g_tensor_type, 0);
  if (!self) return nullptr;
  auto* inst = reinterpret_cast<py::detail::instance*>(self);
  inst->simple_layout = true;
  inst->simple_value_holder[0] = n.get();
  new (&inst->simple_value_holder[1]) NodeRef(std::move(n));
  inst->simple_holder_constructed = true;
  inst->simple_instance_registered = false;
  inst->owned = true;
  return self;
}

namespace {

PyObject* g_descr[2] = {nullptr, nullptr};

void release_buffer_capsule(PyObject* cap) { static_cast<Buffer*>(PyCapsule_GetPointer(cap, nullptr))->unref(); }

}  // namespace

PyObject* new_array(const Val& v, bool writable_owned) {
  auto& api = py::detail::npy_api::get();
  const Shape& s = v.shape();
  Py_intptr_t dims[2], strides[2];
  const Py_intptr_t item = Py_intptr_t(itemsize(v.dtype()));
  int nd = s.ndim;
  if (nd == 1) {
    dims[0] = s.cols;
    strides[0] = item;
  } else if (nd == 2) {
    dims[0] = s.rows;
    dims[1] = s.cols;
    strides[0] = s.cols * item;
    strides[1] = item;
  }
  PyObject* descr = g_descr[v.dtype() == DType::f64 ? 0 : 1];
  Py_INCREF(descr);  // stolen below
  const bool handover = writable_owned && v.unique();
  PyObject* arr =
      api.PyArray_NewFromDescr_(api.PyArray_Type_, descr, nd, dims, strides, handover ? v.data() : nullptr,
                                py::detail::npy_api::NPY_ARRAY_C_CONTIGUOUS_ |
                                    py::detail::npy_api::NPY_ARRAY_WRITEABLE_ | py::detail::npy_api::NPY_ARRAY_ALIGNED_,
                                nullptr);
  if (!arr) return nullptr;
  if (handover) {
    Buffer* b = v.buffer();
    b->ref();
    PyObject* cap = PyCapsule_New(b, nullptr, release_buffer_capsule);
    if (!cap) {
      b->unref();
      Py_DECREF(arr);
      return nullptr;
    }
    if (api.PyArray_SetBaseObject_(arr, cap) != 0) {  // steals cap
      Py_DECREF(arr);
      return nullptr;
    }
  } else {
    std::memcpy(py::detail::array_proxy(arr)->data, v.data(), std::size_t(s.size()) * itemsize(v.dtype()));
  }
  return arr;
}

void bind_fast(py::module_& m) {
  g_descr[0] = numpy_dtype(DType::f64).release().ptr();
  g_descr[1] = numpy_dtype(DType::f32).release().ptr();

  // Check that pybind11 gives Tensor the simple instance layout that wrap() writes.
  {
    py::object probe = py::cast(full(Shape::scalar(), DType::f64, 0.0));
    auto* inst = reinterpret_cast<py::detail::instance*>(probe.ptr());
    g_fast_wrap = inst->simple_layout && inst->simple_value_holder[0] != nullptr;
  }

  if (g_fast_wrap) {
    g_pybind11_dealloc = g_tensor_type->tp_dealloc;
    g_tensor_type->tp_dealloc = tensor_dealloc;
  }
  // Tensor() / Tensor.__new__ would make an instance with no node behind it.
  g_tensor_type->tp_new = [](PyTypeObject*, PyObject*, PyObject*) -> PyObject* {
    PyErr_SetString(PyExc_TypeError, "Tensor: create tensors with mg.tensor(data, requires_grad=False, dtype=None)");
    return nullptr;
  };

  m.def(
      "_fast_path", [] { return g_fast_wrap && operator_slots_installed(); },
      "Whether the hot call path runs: results made without pybind11's registration, and Tensor's number slots "
      "matgrad's own (for the test that proves it).");
}

}  // namespace matgrad::py_bind
