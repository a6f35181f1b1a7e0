// SPDX-License-Identifier: MIT
// Note [the hot call path]
// pybind11's generic dispatch costs ~300 ns per call here and its instance registration
// ~400 ns per new Tensor, several times the C++ work of a small op. The calls that programs
// make per op therefore bypass it: the Tensor type's number slots (+ - * / ** @ unary -),
// the elementwise module functions (METH_O / METH_FASTCALL) and value_and_grad's call. They
// create result objects directly in pybind11's simple instance layout, unregistered (pybind11's
// own dealloc handles such instances: it skips deregistration when the flag is clear). Every
// other binding stays ordinary pybind11.
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
  } catch (const ShapeError& e) {
    PyErr_SetString(PyExc_ValueError, e.what());
  } catch (const TypeError& e) {
    PyErr_SetString(PyExc_TypeError, e.what());
  } catch (const IndexError& e) {
    PyErr_SetString(PyExc_IndexError, e.what());
  } catch (const LinAlgError& e) {
    PyErr_SetString(linalg_error_type(), e.what());
  } catch (const GraphError& e) {
    PyErr_SetString(PyExc_RuntimeError, e.what());
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

void release_buffer_capsule(PyObject* cap) {
  static_cast<Buffer*>(PyCapsule_GetPointer(cap, nullptr))->unref();
}

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
  PyObject* arr = api.PyArray_NewFromDescr_(api.PyArray_Type_, descr, nd, dims, strides,
                                            handover ? v.data() : nullptr,
                                            py::detail::npy_api::NPY_ARRAY_C_CONTIGUOUS_ |
                                                py::detail::npy_api::NPY_ARRAY_WRITEABLE_ |
                                                py::detail::npy_api::NPY_ARRAY_ALIGNED_,
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

namespace {

// Operands matgrad converts (or refuses with its own error); anything else is another
// library's type, which gets its chance through NotImplemented (its __radd__ etc.).
bool is_operand(PyObject* o) {
  if (PyFloat_Check(o) || PyLong_Check(o) || PyList_Check(o) || PyTuple_Check(o) || PyUnicode_Check(o) ||
      PyBytes_Check(o) || PyComplex_Check(o) || o == Py_None)
    return true;
  auto& api = py::detail::npy_api::get();
  if (api.PyArray_Check_(o)) return true;
  if (PyObject_HasAttrString(reinterpret_cast<PyObject*>(Py_TYPE(o)), "__array__")) return true;
  static PyObject* generic = py::object(py::module_::import("numpy").attr("generic")).release().ptr();
  return PyObject_IsInstance(o, generic) == 1;
}

template <Bin Op>
PyObject* nb_binary(PyObject* a, PyObject* b) {
  try {
    const bool left = is_tensor(a);
    PyObject* other = left ? b : a;
    if (!is_tensor(other) && !is_operand(other)) Py_RETURN_NOTIMPLEMENTED;
    if (left) return wrap(binop(Op, NodeRef(tensor_ptr(a)), b, false));
    return wrap(binop(Op, NodeRef(tensor_ptr(b)), a, true));
  } catch (...) {
    set_python_error();
    return nullptr;
  }
}

PyObject* nb_power(PyObject* a, PyObject* b, PyObject* mod) {
  if (mod != Py_None) {
    PyErr_SetString(PyExc_TypeError, "pow: a modulus is not supported");
    return nullptr;
  }
  return nb_binary<Bin::pow>(a, b);
}

template <OpId Op>
PyObject* nb_unary(PyObject* a) {
  try {
    return wrap(unary(Op, NodeRef(tensor_ptr(a))));
  } catch (...) {
    set_python_error();
    return nullptr;
  }
}

PyObject* nb_positive(PyObject* a) {
  Py_INCREF(a);
  return a;
}

// The operators as methods too (Tensor.__add__ ...), through the same slot functions.
template <Bin Op>
PyObject* m_binary(PyObject* self, PyObject* other) {
  return nb_binary<Op>(self, other);
}
template <Bin Op>
PyObject* m_rbinary(PyObject* self, PyObject* other) {
  return nb_binary<Op>(other, self);
}
template <PyObject* (*F)(PyObject*)>
PyObject* m_unary(PyObject* self, PyObject*) {
  return F(self);
}

// Docstrings of the functions and methods defined here. pybind11 starts every docstring with
// the signature; these start with the same line, so that help(), stub generators and the API
// reference read them all alike. Then: what the op computes, its shapes, and its derivative
// rule with G the adjoint of the output (the VJPs in cpp/src/ops/*.cpp, where each formula
// sits above its code).
#define MGDOC_METHOD1(name) name "(self: matgrad._core.Tensor) -> matgrad._core.Tensor\n\n"
#define MGDOC_METHOD2(name) name "(self: matgrad._core.Tensor, other: object) -> matgrad._core.Tensor\n\n"
#define MGDOC_AS_OP(op) " as `mg." op "` (shapes there; each adjoint summed back to its operand's shape). "

PyMethodDef g_operator_methods[] = {
    {"__add__", (PyCFunction)m_binary<Bin::add>, METH_O,
     MGDOC_METHOD2("__add__") "`self + other`," MGDOC_AS_OP("add(self, other)") "d/dself: `G`, d/dother: `G`"},
    {"__radd__", (PyCFunction)m_rbinary<Bin::add>, METH_O,
     MGDOC_METHOD2("__radd__") "`other + self`," MGDOC_AS_OP("add(other, self)") "d/dself: `G`, d/dother: `G`"},
    {"__sub__", (PyCFunction)m_binary<Bin::sub>, METH_O,
     MGDOC_METHOD2("__sub__") "`self - other`," MGDOC_AS_OP("sub(self, other)") "d/dself: `G`, d/dother: `-G`"},
    {"__rsub__", (PyCFunction)m_rbinary<Bin::sub>, METH_O,
     MGDOC_METHOD2("__rsub__") "`other - self`," MGDOC_AS_OP("sub(other, self)") "d/dself: `-G`, d/dother: `G`"},
    {"__mul__", (PyCFunction)m_binary<Bin::mul>, METH_O,
     MGDOC_METHOD2("__mul__") "`self * other`," MGDOC_AS_OP("mul(self, other)")
     "d/dself: `G * other`, d/dother: `G * self`"},
    {"__rmul__", (PyCFunction)m_rbinary<Bin::mul>, METH_O,
     MGDOC_METHOD2("__rmul__") "`other * self`," MGDOC_AS_OP("mul(other, self)")
     "d/dself: `G * other`, d/dother: `G * self`"},
    {"__truediv__", (PyCFunction)m_binary<Bin::div>, METH_O,
     MGDOC_METHOD2("__truediv__") "`self / other`," MGDOC_AS_OP("div(self, other)")
     "d/dself: `G / other`, d/dother: `-G * self / other^2`"},
    {"__rtruediv__", (PyCFunction)m_rbinary<Bin::div>, METH_O,
     MGDOC_METHOD2("__rtruediv__") "`other / self`," MGDOC_AS_OP("div(other, self)")
     "d/dself: `-G * other / self^2`, d/dother: `G / self`"},
    {"__pow__", (PyCFunction)m_binary<Bin::pow>, METH_O,
     MGDOC_METHOD2("__pow__") "`self ** other`," MGDOC_AS_OP("pow(self, other)")
     "d/dself: `G * other self^(other-1)`, d/dother: `G * self^other log(self)`"},
    {"__rpow__", (PyCFunction)m_rbinary<Bin::pow>, METH_O,
     MGDOC_METHOD2("__rpow__") "`other ** self`," MGDOC_AS_OP("pow(other, self)")
     "d/dself: `G * other^self log(other)`, d/dother: `G * self other^(self-1)`"},
    {"__matmul__", (PyCFunction)m_binary<Bin::matmul>, METH_O,
     MGDOC_METHOD2("__matmul__") "`self @ other`, as `mg.matmul(self, other)` (shapes there: `(m, k) @ (k, n) -> "
     "(m, n)`, no broadcasting). d/dself: `G other^T`, d/dother: `self^T G`"},
    {"__rmatmul__", (PyCFunction)m_rbinary<Bin::matmul>, METH_O,
     MGDOC_METHOD2("__rmatmul__") "`other @ self`, as `mg.matmul(other, self)` (shapes there: `(m, k) @ (k, n) -> "
     "(m, n)`, no broadcasting). d/dself: `other^T G`, d/dother: `G self^T`"},
    {"__neg__", (PyCFunction)m_unary<nb_unary<OpId::neg>>, METH_NOARGS,
     MGDOC_METHOD1("__neg__") "`-self`, as `mg.neg(self)`: the same shape. d/dself: `-G`"},
    {"__abs__", (PyCFunction)m_unary<nb_unary<OpId::abs>>, METH_NOARGS,
     MGDOC_METHOD1("__abs__") "`abs(self)`, as `mg.abs(self)`: the same shape. d/dself: `G * sign(self)` (0 at 0)"},
    {"__pos__", (PyCFunction)m_unary<nb_positive>, METH_NOARGS,
     MGDOC_METHOD1("__pos__") "`+self`: self itself, the same shape (no new node). d/dself: `G`"},
    {nullptr, nullptr, 0, nullptr}};

template <OpId Op>
PyObject* fn_unary(PyObject*, PyObject* x) {
  try {
    return wrap(unary(Op, as_node(x, op_name(Op))));
  } catch (...) {
    set_python_error();
    return nullptr;
  }
}

bool check_nargs(const char* name, Py_ssize_t n, Py_ssize_t want) {
  if (n == want) return true;
  PyErr_Format(PyExc_TypeError, "%s: takes %zd positional arguments but %zd were given", name, want, n);
  return false;
}

template <Bin Op>
PyObject* fn_binary(PyObject*, PyObject* const* args, Py_ssize_t n) {
  static const char* names[] = {"add", "sub", "mul", "div", "pow", "matmul", "maximum", "minimum"};
  if (!check_nargs(names[int(Op)], n, 2)) return nullptr;
  try {
    return wrap(binary_fn(Op, args[0], args[1]));
  } catch (...) {
    set_python_error();
    return nullptr;
  }
}

// f(*args) with args[argnums] replaced by fresh differentiable nodes (a repeated index shares
// its node) and plain arrays and numbers wrapped as constants: what every transform traces.
struct Traced {
  NodeRef out;
  std::vector<NodeRef> inputs;
  bool graph = false;  ///< a positional argument is a Tensor: results stay connected Tensors
  py::object res;      ///< f's return value
};

Traced trace_call(PyObject* f, PyObject* args, PyObject* nums, const char* op) {
  Traced t;
  const Py_ssize_t nargs = PyTuple_GET_SIZE(args);
  for (Py_ssize_t i = 0; i < nargs; ++i) t.graph = t.graph || is_tensor(PyTuple_GET_ITEM(args, i));
  // f sees Tensors: plain arrays and numbers are wrapped (as constants unless differentiated).
  py::tuple call(nargs);
  static PyObject* generic = py::object(py::module_::import("numpy").attr("generic")).release().ptr();
  for (Py_ssize_t i = 0; i < nargs; ++i) {
    PyObject* x = PyTuple_GET_ITEM(args, i);
    PyObject* item = nullptr;
    if (!is_tensor(x) && (PyFloat_Check(x) || (PyLong_Check(x) && !PyBool_Check(x)) ||
                          py::detail::npy_api::get().PyArray_Check_(x) || PyObject_IsInstance(x, generic) == 1)) {
      item = wrap(as_node(x, op));
      if (!item) throw py::error_already_set();
    } else {
      Py_INCREF(x);
      item = x;
    }
    PyTuple_SET_ITEM(call.ptr(), i, item);
  }
  const Py_ssize_t nn = PyTuple_GET_SIZE(nums);
  std::vector<NodeRef>& inputs = t.inputs;
  std::vector<long long> seen;  // argument index of each input (a repeated index shares its node)
  inputs.reserve(nn);
  for (Py_ssize_t k = 0; k < nn; ++k) {
    PyObject* num = PyTuple_GET_ITEM(nums, k);
    int overflow = 0;
    long long i = PyLong_AsLongLongAndOverflow(num, &overflow);
    if (i == -1 && PyErr_Occurred()) throw py::error_already_set();
    const long long given = i;
    if (i < 0) i += nargs;
    if (overflow || i < 0 || i >= nargs)
      throw ShapeError(std::string(op) + ": argnums " +
                       (overflow ? py::str(num).cast<std::string>() : std::to_string(given)) +
                       " is out of range for " + std::to_string(nargs) + " positional arguments");
    bool repeated = false;
    for (std::size_t q = 0; q < seen.size(); ++q)
      if (seen[q] == i) {
        inputs.push_back(inputs[q]);
        repeated = true;
        break;
      }
    seen.push_back(i);
    if (repeated) continue;
    NodeRef x = diff_input(PyTuple_GET_ITEM(args, i), op);
    PyObject* w = wrap(x);
    if (!w) throw py::error_already_set();
    PyObject* old = PyTuple_GET_ITEM(call.ptr(), i);
    PyTuple_SET_ITEM(call.ptr(), i, w);
    Py_DECREF(old);
    inputs.push_back(std::move(x));
  }
  t.res = py::reinterpret_steal<py::object>(PyObject_Call(f, call.ptr(), nullptr));
  if (!t.res) throw py::error_already_set();
  if (!is_tensor(t.res.ptr()) && (PyList_Check(t.res.ptr()) || PyTuple_Check(t.res.ptr())))
    throw TypeError(std::string(op) + ": the function must return one Tensor (or a constant array), got a " +
                    Py_TYPE(t.res.ptr())->tp_name + "; differentiate each output separately");
  t.out = is_tensor(t.res.ptr()) ? NodeRef(tensor_ptr(t.res.ptr())) : as_node(t.res.ptr(), op);
  return t;
}

bool transform_args(PyObject* args, PyObject* nums, const char* op) {
  if (!op || !PyTuple_Check(args) || !PyTuple_Check(nums)) {
    if (!PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "transform: bad arguments");
    return false;
  }
  return true;
}

// _trace(f, args, argnums, op) -> (out Tensor, tuple of input Tensors, graph): the transforms
// written in Python (jacobian, hessian, vjp, jvp) start here. Records even inside no_grad.
PyObject* fn_trace(PyObject*, PyObject* const* a, Py_ssize_t n) {
  if (!check_nargs("_trace", n, 4)) return nullptr;
  const char* op = PyUnicode_AsUTF8(a[3]);
  if (!transform_args(a[1], a[2], op)) return nullptr;
  try {
    GradMode record(true);
    Traced t = trace_call(a[0], a[1], a[2], op);
    py::tuple ins(t.inputs.size());
    for (std::size_t k = 0; k < t.inputs.size(); ++k) {
      PyObject* w = wrap(t.inputs[k]);
      if (!w) throw py::error_already_set();
      PyTuple_SET_ITEM(ins.ptr(), k, w);
    }
    py::object out = is_tensor(t.res.ptr()) ? t.res : py::reinterpret_steal<py::object>(wrap(t.out));
    if (!out) throw py::error_already_set();
    return py::make_tuple(out, ins, py::bool_(t.graph)).release().ptr();
  } catch (...) {
    set_python_error();
    return nullptr;
  }
}

// _vg(f, args, argnums, single, with_value, op): value_and_grad / grad in one C++ call.
PyObject* fn_vg(PyObject*, PyObject* const* a, Py_ssize_t n) {
  if (!check_nargs("_vg", n, 6)) return nullptr;
  PyObject* f = a[0];
  const bool single = PyObject_IsTrue(a[3]);
  const bool with_value = PyObject_IsTrue(a[4]);
  const char* op = PyUnicode_AsUTF8(a[5]);
  if (!transform_args(a[1], a[2], op)) return nullptr;
  try {
    GradMode record(true);  // transforms differentiate even inside mg.no_grad()
    Traced t = trace_call(f, a[1], a[2], op);
    const NodeRef& out = t.out;
    const std::vector<NodeRef>& inputs = t.inputs;
    const bool graph = t.graph;
    py::object& res = t.res;
    const Shape& s = out->shape;
    if (!(s.ndim == 0 || (s.ndim == 2 && s.rows == 1 && s.cols == 1)))
      throw ShapeError(std::string(op) + ": the function's output has shape " + s.str() +
                       "; it must be a scalar (shape () or (1, 1))");
    py::object grads;
    auto pack = [&](std::vector<PyObject*>& items) -> py::object {
      for (PyObject* p : items)
        if (!p) {
          for (PyObject* q : items) Py_XDECREF(q);
          throw py::error_already_set();
        }
      if (single) return py::reinterpret_steal<py::object>(items[0]);
      py::tuple t(items.size());
      for (std::size_t k = 0; k < items.size(); ++k) PyTuple_SET_ITEM(t.ptr(), k, items[k]);
      return std::move(t);
    };
    std::vector<PyObject*> items;
    py::object value;
    if (graph) {
      for (NodeRef& g : grad_nodes(out, inputs)) items.push_back(wrap(std::move(g)));
      grads = pack(items);
      value = is_tensor(res.ptr()) ? res : py::reinterpret_steal<py::object>(wrap(out));
    } else {
      for (const Val& g : grad_values(out, inputs)) items.push_back(new_array(g, true));
      grads = pack(items);
      if (with_value) {
        value = py::reinterpret_steal<py::object>(new_array(out->value(), false));
        if (!value) throw py::error_already_set();
      }
    }
    if (!with_value) return grads.release().ptr();
    return py::make_tuple(value, grads).release().ptr();
  } catch (...) {
    set_python_error();
    return nullptr;
  }
}

#define MGDOC_UNARY(name, what, rule)                                                                  \
  name "(x: object) -> matgrad._core.Tensor\n\n" what "\n\n"                                               \
       "Shapes: `x` of any shape (0-D, 1-D or 2-D; a Tensor, array, list or number) -> the same shape.\n\n" \
       "d/dx: " rule
#define MGDOC_BINARY(name, what, rules)                                                                       \
  name "(x: object, y: object) -> matgrad._core.Tensor\n\n" what "\n\n"                                        \
       "Shapes: `x` and `y` broadcast as in NumPy (at most 2-D): equal shapes, or `()`, `(n,)`, `(1, n)` or "   \
       "`(m, 1)` stretched against `(m, n)` -> the broadcast shape. A Python number takes the other operand's " \
       "dtype; float32 with float64 gives float64. Each adjoint below is summed back to its input's shape.\n\n" rules

PyMethodDef g_methods[] = {
    {"neg", (PyCFunction)fn_unary<OpId::neg>, METH_O, MGDOC_UNARY("neg", "`-x`, elementwise.", "`-G`")},
    {"exp", (PyCFunction)fn_unary<OpId::exp>, METH_O, MGDOC_UNARY("exp", "`exp(x)`, elementwise.", "`G * exp(x)`")},
    {"log", (PyCFunction)fn_unary<OpId::log>, METH_O,
     MGDOC_UNARY("log", "The natural logarithm `log(x)`, elementwise.", "`G / x`")},
    {"sin", (PyCFunction)fn_unary<OpId::sin>, METH_O, MGDOC_UNARY("sin", "`sin(x)`, elementwise.", "`G * cos(x)`")},
    {"cos", (PyCFunction)fn_unary<OpId::cos>, METH_O, MGDOC_UNARY("cos", "`cos(x)`, elementwise.", "`-G * sin(x)`")},
    {"tan", (PyCFunction)fn_unary<OpId::tan>, METH_O,
     MGDOC_UNARY("tan", "`tan(x)`, elementwise.", "`G * (1 + tan(x)^2)`")},
    {"tanh", (PyCFunction)fn_unary<OpId::tanh>, METH_O,
     MGDOC_UNARY("tanh", "`tanh(x)`, elementwise.", "`G * (1 - tanh(x)^2)`")},
    {"sqrt", (PyCFunction)fn_unary<OpId::sqrt>, METH_O,
     MGDOC_UNARY("sqrt", "`sqrt(x)`, elementwise.", "`G / (2 sqrt(x))`")},
    {"abs", (PyCFunction)fn_unary<OpId::abs>, METH_O,
     MGDOC_UNARY("abs", "`|x|`, elementwise.", "`G * sign(x)` (0 at `x = 0`)")},
    {"square", (PyCFunction)fn_unary<OpId::square>, METH_O,
     MGDOC_UNARY("square", "`x^2`, elementwise.", "`G * 2x`")},
    {"sigmoid", (PyCFunction)fn_unary<OpId::sigmoid>, METH_O,
     MGDOC_UNARY("sigmoid", "`1 / (1 + exp(-x))`, elementwise.", "`G * s (1 - s)`, `s = sigmoid(x)`")},
    {"relu", (PyCFunction)fn_unary<OpId::relu>, METH_O,
     MGDOC_UNARY("relu", "`max(x, 0)`, elementwise (NaN stays NaN).", "`G * [x > 0]` (0 at `x = 0`)")},
    {"softplus", (PyCFunction)fn_unary<OpId::softplus>, METH_O,
     MGDOC_UNARY("softplus", "`log(1 + exp(x))`, elementwise, without overflow.", "`G * sigmoid(x)`")},
    {"add", (PyCFunction)(void (*)())fn_binary<Bin::add>, METH_FASTCALL,
     MGDOC_BINARY("add", "`x + y`, elementwise.", "d/dx: `G`, d/dy: `G`")},
    {"sub", (PyCFunction)(void (*)())fn_binary<Bin::sub>, METH_FASTCALL,
     MGDOC_BINARY("sub", "`x - y`, elementwise.", "d/dx: `G`, d/dy: `-G`")},
    {"mul", (PyCFunction)(void (*)())fn_binary<Bin::mul>, METH_FASTCALL,
     MGDOC_BINARY("mul", "`x * y`, elementwise.", "d/dx: `G * y`, d/dy: `G * x`")},
    {"div", (PyCFunction)(void (*)())fn_binary<Bin::div>, METH_FASTCALL,
     MGDOC_BINARY("div", "`x / y`, elementwise.", "d/dx: `G / y`, d/dy: `-G * x / y^2`")},
    {"pow", (PyCFunction)(void (*)())fn_binary<Bin::pow>, METH_FASTCALL,
     MGDOC_BINARY("pow", "`x ** y`, elementwise.",
                  "d/dx: `G * y x^(y-1)` (0 where `y = 0`), d/dy: `G * x^y log(x)` (0 where `x^y = 0`). With a "
                  "Python number `s` as the exponent, d/dx: `G * s x^(s-1)` (none for `s = 0`: `x ** 0` is "
                  "constant); as the base, d/dy: `G * s^y log(s)` (0 for `s = 0`).")},
    {"maximum", (PyCFunction)(void (*)())fn_binary<Bin::maximum>, METH_FASTCALL,
     MGDOC_BINARY("maximum", "The larger of `x` and `y`, elementwise (NaN if either is NaN).",
                  "d/dx: `G * W`, d/dy: `G * (1 - W)` with `W = [x > y] + [x == y] / 2`: the adjoint goes to the "
                  "larger; ties split it equally.")},
    {"minimum", (PyCFunction)(void (*)())fn_binary<Bin::minimum>, METH_FASTCALL,
     MGDOC_BINARY("minimum", "The smaller of `x` and `y`, elementwise (NaN if either is NaN).",
                  "d/dx: `G * W`, d/dy: `G * (1 - W)` with `W = [x < y] + [x == y] / 2`: the adjoint goes to the "
                  "smaller; ties split it equally.")},
    {"matmul", (PyCFunction)(void (*)())fn_binary<Bin::matmul>, METH_FASTCALL,
     "matmul(x: object, y: object) -> matgrad._core.Tensor\n\n"
     "`x @ y`, as `numpy.matmul` for 1-D and 2-D operands.\n\n"
     "Shapes: `(m, k) @ (k, n) -> (m, n)`. A 1-D `x` of shape `(k,)` is a row: `(k,) @ (k, n) -> (n,)`; a 1-D `y` "
     "is a column: `(m, k) @ (k,) -> (m,)`; `(k,) @ (k,) -> ()`. No broadcasting; a 0-D operand raises "
     "ValueError (use `mul`). float32 with float64 gives float64.\n\n"
     "d/dx: `G y^T`, d/dy: `x^T G` (with 1-D operands and `G` as the rows and columns above, each result "
     "reshaped back to its input's shape)."},
{"_vg", (PyCFunction)(void (*)())fn_vg, METH_FASTCALL, "value_and_grad's call (internal)"},
    {"_trace", (PyCFunction)(void (*)())fn_trace, METH_FASTCALL, "the transforms' traced call (internal)"},
    {nullptr, nullptr, 0, nullptr}};

}  // namespace

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

  auto* ht = reinterpret_cast<PyHeapTypeObject*>(g_tensor_type);
  PyNumberMethods& nb = ht->as_number;
  nb.nb_add = nb_binary<Bin::add>;
  nb.nb_subtract = nb_binary<Bin::sub>;
  nb.nb_multiply = nb_binary<Bin::mul>;
  nb.nb_true_divide = nb_binary<Bin::div>;
  nb.nb_matrix_multiply = nb_binary<Bin::matmul>;
  nb.nb_power = nb_power;
  nb.nb_negative = nb_unary<OpId::neg>;
  nb.nb_absolute = nb_unary<OpId::abs>;
  nb.nb_positive = nb_positive;
  g_tensor_type->tp_as_number = &nb;
  // Method forms of the operators, written into the type's dict directly so that the slots
  // above stay in place (setattr would point them back at generic method lookups).
  for (PyMethodDef* d = g_operator_methods; d->ml_name; ++d) {
    PyObject* descr = PyDescr_NewMethod(g_tensor_type, d);
    if (!descr || PyDict_SetItemString(g_tensor_type->tp_dict, d->ml_name, descr) != 0) {
      Py_XDECREF(descr);
      throw py::error_already_set();
    }
    Py_DECREF(descr);
  }
  PyType_Modified(g_tensor_type);

  py::str modname = m.attr("__name__");
  for (PyMethodDef* d = g_methods; d->ml_name; ++d) {
    PyObject* fn = PyCFunction_NewEx(d, nullptr, modname.ptr());
    if (!fn) throw py::error_already_set();
    m.add_object(d->ml_name, py::reinterpret_steal<py::object>(fn), /*overwrite=*/true);
  }
}

}  // namespace matgrad::py_bind
