// SPDX-License-Identifier: MIT
// What the Python transforms (grad, value_and_grad, check_grad, no_grad) call into.
#include "common.hpp"

#include <pybind11/stl.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace matgrad::py_bind {

namespace {

bool check_nargs(const char* name, Py_ssize_t n, Py_ssize_t want) {
  if (n == want) return true;
  PyErr_Format(PyExc_TypeError, "%s: takes %zd positional arguments but %zd were given", name, want, n);
  return false;
}

// f(*args) with args[argnums] replaced by the transform's differentiable inputs (a repeated
// index shares its node) and plain arrays and numbers wrapped as constants: what every
// transform traces. The rules are the core's (resolve_argnums, diff_input); this converts.
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
  // argnums: Python ints beyond int64 are out of range too
  std::vector<long long> given;
  for (Py_ssize_t k = 0; k < PyTuple_GET_SIZE(nums); ++k) {
    PyObject* num = PyTuple_GET_ITEM(nums, k);
    int overflow = 0;
    const long long i = PyLong_AsLongLongAndOverflow(num, &overflow);
    if (i == -1 && PyErr_Occurred()) throw py::error_already_set();
    if (overflow)
      throw ShapeError(std::string(op) + ": argnums " + py::str(num).cast<std::string>() + " is out of range for " +
                       std::to_string(nargs) + " positional arguments");
    given.push_back(i);
  }
  const std::vector<int> pos = resolve_argnums(op, given, static_cast<int>(nargs));
  // f sees Tensors: plain arrays and numbers are wrapped (as constants unless differentiated).
  py::tuple call(nargs);
  static PyObject* generic = py::object(py::module_::import("numpy").attr("generic")).release().ptr();
  for (Py_ssize_t i = 0; i < nargs; ++i) {
    PyObject* x = PyTuple_GET_ITEM(args, i);
    PyObject* item = nullptr;
    const bool differentiated = std::find(pos.begin(), pos.end(), int(i)) != pos.end();
    if (!is_tensor(x) && (differentiated || PyFloat_Check(x) || (PyLong_Check(x) && !PyBool_Check(x)) ||
                          py::detail::npy_api::get().PyArray_Check_(x) || PyObject_IsInstance(x, generic) == 1)) {
      NodeRef n = differentiated ? node_from_data(x, false, py::none(), op, /*map_always=*/true) : as_node(x, op);
      item = wrap(differentiated ? diff_input(n) : n);
      if (!item) throw py::error_already_set();
    } else if (differentiated) {
      item = wrap(diff_input(NodeRef(tensor_ptr(x))));
      if (!item) throw py::error_already_set();
    } else {
      Py_INCREF(x);
      item = x;
    }
    PyTuple_SET_ITEM(call.ptr(), i, item);
  }
  t.inputs.reserve(pos.size());
  for (int i : pos) t.inputs.emplace_back(tensor_ptr(PyTuple_GET_ITEM(call.ptr(), i)));
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

// One Python object per result, or their tuple.
py::object pack_results(std::vector<PyObject*>& items, bool single) {
  for (PyObject* p : items)
    if (!p) {
      for (PyObject* q : items) Py_XDECREF(q);
      throw py::error_already_set();
    }
  if (single) return py::reinterpret_steal<py::object>(items[0]);
  py::tuple t(items.size());
  for (std::size_t k = 0; k < items.size(); ++k) PyTuple_SET_ITEM(t.ptr(), k, items[k]);
  return std::move(t);
}

// _vg(f, args, argnums, single, with_value, op): value_and_grad / grad in one C++ call.
PyObject* fn_vg(PyObject*, PyObject* const* a, Py_ssize_t n) {
  if (!check_nargs("_vg", n, 6)) return nullptr;
  const bool single = PyObject_IsTrue(a[3]);
  const bool with_value = PyObject_IsTrue(a[4]);
  const char* op = PyUnicode_AsUTF8(a[5]);
  if (!transform_args(a[1], a[2], op)) return nullptr;
  try {
    GradMode record(true);  // transforms differentiate even inside mg.no_grad()
    Traced t = trace_call(a[0], a[1], a[2], op);
    check_scalar_output(op, t.out->shape);
    std::vector<PyObject*> items;
    py::object grads, value;
    if (t.graph) {
      for (NodeRef& g : grad_nodes(t.out, t.inputs)) items.push_back(wrap(std::move(g)));
      grads = pack_results(items, single);
      value = is_tensor(t.res.ptr()) ? t.res : py::reinterpret_steal<py::object>(wrap(t.out));
    } else {
      for (const Val& g : grad_values(t.out, t.inputs)) items.push_back(new_array(g, true));
      grads = pack_results(items, single);
      if (with_value) value = py::reinterpret_steal<py::object>(new_array(t.out->value(), false));
    }
    if (!with_value) return grads.release().ptr();
    if (!value) throw py::error_already_set();
    return py::make_tuple(value, grads).release().ptr();
  } catch (...) {
    set_python_error();
    return nullptr;
  }
}

PyMethodDef g_transform_methods[] = {
    {"_vg", (PyCFunction)(void (*)())fn_vg, METH_FASTCALL, "value_and_grad's call (internal)"},
    {"_trace", (PyCFunction)(void (*)())fn_trace, METH_FASTCALL, "the transforms' traced call (internal)"},
    {nullptr, nullptr, 0, nullptr}};

}  // namespace

void bind_transforms(py::module_& m) {
  m.def("_set_grad_enabled", &set_grad_enabled, py::arg("on"));
  m.def("is_grad_enabled", &grad_enabled,
        "Whether ops record the graph on this thread: False inside `mg.no_grad()`, True otherwise.\n\n"
        "Not differentiable and takes no arrays: it returns a bool (transforms differentiate even when it is "
        "False).");

  // The sweeps behind jacobian, hessian, vjp and jvp (python/matgrad/_transforms.py).
  // Private as they are, these check their arguments: pybind11 passes None as a null Node*.
  auto nodes_of = [](const std::vector<Node*>& xs, const char* fn) {
    std::vector<NodeRef> r;
    for (Node* x : xs) r.emplace_back(need(x, fn));
    return r;
  };
  auto seed_of = [](py::handle seed, const Node& out, const std::string& op) -> NodeRef {
    if (seed.is_none()) return nullptr;
    return is_tensor(seed) ? NodeRef(tensor_ptr(seed)) : as_node(seed, op.c_str(), out.dtype);
  };
  m.def("_grad_values",
        [nodes_of, seed_of](Node* out, const std::vector<Node*>& xs, py::handle seed, const std::string& op) {
          NodeRef o(need(out, "_grad_values"));
          std::vector<Val> g = grad_values(o, nodes_of(xs, "_grad_values"), seed_of(seed, *o, op), op.c_str());
          py::list r;
          for (const Val& v : g) r.append(py::reinterpret_steal<py::object>(new_array(v, true)));
          return r;
        });
  m.def("_grad_nodes",
        [nodes_of, seed_of](Node* out, const std::vector<Node*>& xs, py::handle seed, const std::string& op) {
          NodeRef o(need(out, "_grad_nodes"));
          py::list r;
          for (NodeRef& g : grad_nodes(o, nodes_of(xs, "_grad_nodes"), seed_of(seed, *o, op), op.c_str()))
            r.append(py::reinterpret_steal<py::object>(wrap(std::move(g))));
          return r;
        });
  m.def("_jacobian_values", [nodes_of](Node* out, const std::vector<Node*>& xs) {
    py::list r;
    for (const Val& v : jacobian_values(NodeRef(need(out, "_jacobian_values")), nodes_of(xs, "_jacobian_values")))
      r.append(py::reinterpret_steal<py::object>(new_array(v, true)));
    return r;
  });
  m.def("_hessian_values", [nodes_of](Node* out, const std::vector<Node*>& xs) {
    py::list rows;
    for (const auto& row : hessian_values(NodeRef(need(out, "_hessian_values")), nodes_of(xs, "_hessian_values"))) {
      py::list r;
      for (const Val& v : row) r.append(py::reinterpret_steal<py::object>(new_array(v, true)));
      rows.append(r);
    }
    return rows;
  });
  m.def("_jvp_values", [nodes_of](Node* out, const std::vector<Node*>& xs, const std::vector<Node*>& ts) {
    return py::reinterpret_steal<py::object>(new_array(
        jvp_values(NodeRef(need(out, "_jvp_values")), nodes_of(xs, "_jvp_values"), nodes_of(ts, "_jvp_values")), true));
  });
  m.def("_jvp_nodes", [nodes_of](Node* out, const std::vector<Node*>& xs, const std::vector<Node*>& ts) {
    return py::reinterpret_steal<py::object>(
        wrap(jvp_nodes(NodeRef(need(out, "_jvp_nodes")), nodes_of(xs, "_jvp_nodes"), nodes_of(ts, "_jvp_nodes"))));
  });
  m.def("_jacobian_nodes", [nodes_of](Node* out, const std::vector<Node*>& xs) {
    py::list r;
    for (NodeRef& v : jacobian_nodes(NodeRef(need(out, "_jacobian_nodes")), nodes_of(xs, "_jacobian_nodes")))
      r.append(py::reinterpret_steal<py::object>(wrap(std::move(v))));
    return r;
  });

  m.def("_hessian_nodes", [nodes_of](Node* out, const std::vector<Node*>& xs) {
    py::list rows;
    for (auto& row : hessian_nodes(NodeRef(need(out, "_hessian_nodes")), nodes_of(xs, "_hessian_nodes"))) {
      py::list r;
      for (NodeRef& v : row) r.append(py::reinterpret_steal<py::object>(wrap(std::move(v))));
      rows.append(r);
    }
    return rows;
  });

  m.def(
      "_batch_stats",
      [] {
        BatchStats s = batch_stats();
        return py::make_tuple(s.batched_calls, s.per_member_calls);
      },
      "(whole-batch kernel calls, per-member kernel calls) of batched sweeps on this thread (for tests)");

  // The recorded graph behind t, for pictures (python/matgrad/viz.py): every node reachable
  // through parents, parents before children, each with the indices of its parents.
  m.def("_graph", [](Node* t) {
    GraphListing g = graph_listing(need(t, "_graph"));
    py::list out;
    for (std::size_t k = 0; k < g.nodes.size(); ++k) {
      py::tuple ps(g.parents[k].size());
      for (std::size_t i = 0; i < g.parents[k].size(); ++i) ps[i] = g.parents[k][i];
      out.append(py::make_tuple(py::reinterpret_steal<py::object>(wrap(NodeRef(g.nodes[k]))), ps,
                                reinterpret_cast<std::uintptr_t>(g.nodes[k])));
    }
    return out;
  });
  m.def(
      "_node_id", [](Node* t) { return reinterpret_cast<std::uintptr_t>(need(t, "_node_id")); },
      "The identity of the node behind a Tensor (several Python objects may wrap one node)");

  m.def("_pool_cached_bytes", &pool_cached_bytes);
  m.def("_pool_trim", &pool_trim);

  // What the package's Python code builds on: the fused loss of mg.nn and indexing.
  m.def(
      "_softmax_cross_entropy",
      [](py::handle z, py::handle y) {
        constexpr const char* kName = "softmax_cross_entropy";
        NodeRef nz = as_node(z, kName);
        if (py::isinstance<py::array>(y)) {
          const auto arr = py::reinterpret_borrow<py::array>(y);
          const char kind = arr.dtype().kind();
          if (arr.ndim() == 1 && (kind == 'i' || kind == 'u')) {  // integer class labels
            const auto lab = py::array_t<std::int64_t, py::array::c_style | py::array::forcecast>::ensure(y);
            if (!lab) throw py::error_already_set();
            return softmax_cross_entropy_labels(nz, std::vector<std::int64_t>(lab.data(), lab.data() + lab.size()),
                                                py::str(arr.dtype()).cast<std::string>().c_str());
          }
        }
        return softmax_cross_entropy(nz, as_node(y, kName, nz->dtype));
      },
      py::arg("logits"), py::arg("targets"),
      "Per row i: `-sum_j Y_ij log softmax(Z_i)_j`, one fused op (mg.nn.softmax_cross_entropy's core).\n\n"
      "Shapes: logits `Z` of shape `(n, c)`; targets `Y` of shape `(n, c)`, or `(n,)` integer class labels "
      "(their one-hot rows, in the logits' dtype) -> `(n,)`, in the promoted dtype of the two (NumPy's rules).\n\n"
      "d/dZ: `G_i (softmax(Z_i) sum_j Y_ij - Y_i)` (softmax - onehot for one-hot rows), "
      "d/dY: `-G_i log softmax(Z_i)`.");
  m.def("_block",
        [](py::handle x, std::int64_t r0, std::int64_t c0, std::int64_t rows, std::int64_t cols, py::tuple shape) {
          NodeRef b = block(as_node(x, "index"), r0, c0, Shape::matrix(rows, cols));
          std::vector<std::int64_t> dims;
          for (py::handle d : shape) dims.push_back(d.cast<std::int64_t>());
          const Arg args[2] = {Arg(b), Arg::dims(dims)};
          return call(entry_point("reshape"), args, 2).v[0];
        });
  m.def("_gather", [](py::handle x, py::array_t<std::int64_t, py::array::c_style | py::array::forcecast> idx) {
    if (idx.ndim() > 2)
      throw ShapeError("index: the result would have " + std::to_string(idx.ndim()) +
                       " dimensions (at most 2 are supported)");
    const Shape s = idx.ndim() == 0   ? Shape::scalar()
                    : idx.ndim() == 1 ? Shape::vector(idx.shape(0))
                                      : Shape::matrix(idx.shape(0), idx.shape(1));
    return gather(as_node(x, "index"), std::vector<std::int64_t>(idx.data(), idx.data() + idx.size()), s);
  });
  m.def("_lu_count", &lu_factorizations, "LU factorizations computed by this thread (for tests)");
  m.def("_spectral_count", &spectral_decompositions,
        "Symmetric eigendecompositions, SVDs and expm scaling-and-squarings computed by this thread (for tests)");

  py::str modname = m.attr("__name__");
  for (PyMethodDef* d = g_transform_methods; d->ml_name; ++d) {
    PyObject* fn = PyCFunction_NewEx(d, nullptr, modname.ptr());
    if (!fn) throw py::error_already_set();
    m.add_object(d->ml_name, py::reinterpret_steal<py::object>(fn), /*overwrite=*/true);
  }
}

}  // namespace matgrad::py_bind
