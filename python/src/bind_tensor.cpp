// SPDX-License-Identifier: MIT
// The Tensor class: the bound C++ node itself; operators dispatch straight into C++.
#include "common.hpp"

#include <cstring>
#include <string>

namespace matgrad::py_bind {

namespace {

// An optimiser's state array (NumPy, written in place) as a value of the parameter's kind.
Val state_view(py::handle h, const char* op, const char* what) {
  if (!py::isinstance<py::array>(h)) throw TypeError(std::string(op) + ": " + what + " must be a NumPy array");
  auto a = py::reinterpret_borrow<py::array>(h);
  // native byte order and aligned: the kernels read the memory as double or float
  const bool f64 = a.dtype().equal(py::dtype::of<double>()), f32 = a.dtype().equal(py::dtype::of<float>());
  const bool aligned = a.flags() & py::detail::npy_api::NPY_ARRAY_ALIGNED_;
  if (!(f64 || f32) || !aligned || !(a.flags() & py::array::c_style) || !a.writeable() || a.ndim() > 2)
    throw TypeError(std::string(op) + ": " + what +
                    " must be a writable, aligned, C-contiguous float64/float32 "
                    "array (native byte order) of at most 2 dimensions");
  const Shape s = a.ndim() == 0   ? Shape::scalar()
                  : a.ndim() == 1 ? Shape::vector(a.shape(0))
                                  : Shape::matrix(a.shape(0), a.shape(1));
  return Val(a.mutable_data(), s, f64 ? DType::f64 : DType::f32);
}

// The gradient a step reads (of a leaf: the step's own "only leaves" error comes first).
Val grad_of(const Node& n, const char* op) {
  require_leaf(n, op);
  if (!n.grad) throw GraphError(std::string(op) + ": the parameter has no gradient (run backward() first)");
  return n.grad->value();
}

}  // namespace

void bind_tensor(py::module_& m) {
  // The no-grad in-place update of a leaf (mg.optim's steps): the leaf first gets memory of its
  // own (never the caller's mapped array, nor a buffer shared with detach()ed tensors), its
  // cached factorization is dropped, and nothing is recorded.
  m.def(
      "_assign_",
      [](Node& n, py::handle values) {
        require_leaf(n, "assign");  // before converting the values
        assign(n, as_node(values, "assign", n.dtype));
      },
      py::arg("tensor"), py::arg("values"));
  // mg.optim's fused steps: one pass over the parameter, its gradient and the optimiser's state
  // arrays (matgrad/optim.hpp), on the same no-grad path as _assign_.
  m.def(
      "_adam_update_",
      [](Node& n, py::handle m1, py::handle m2, double lr, double b1, double b2, double eps, std::int64_t t) {
        adam_update(n, grad_of(n, "Adam"), state_view(m1, "Adam", "the first moment"),
                    state_view(m2, "Adam", "the second moment"), lr, b1, b2, eps, t);
      },
      py::arg("tensor"), py::arg("m"), py::arg("v"), py::arg("lr"), py::arg("b1"), py::arg("b2"), py::arg("eps"),
      py::arg("t"));
  m.def(
      "_sgd_update_",
      [](Node& n, py::handle buf, double lr, double momentum, double weight_decay) {
        sgd_update(n, grad_of(n, "SGD"), buf.is_none() ? Val() : state_view(buf, "SGD", "the momentum buffer"), lr,
                   momentum, weight_decay);
      },
      py::arg("tensor"), py::arg("buf"), py::arg("lr"), py::arg("momentum"), py::arg("weight_decay"));

  // Docstrings: pybind11 puts the signature first (properties get a `name -> type` line here);
  // then what it does, the shapes, and the derivative rule with G the adjoint of the output.
  py::class_<Node, NodeRef> cls(
      m, "Tensor",
      "tensor(data: object, requires_grad: bool = False, dtype: object = None) -> matgrad._core.Tensor\n\n"
      "A value in a matgrad graph: 0-D `()`, 1-D `(n,)` or 2-D `(m, n)`, float64 or float32. Make one with "
      "`mg.tensor(data, requires_grad=False, dtype=None)`; `Tensor()` itself raises TypeError. Each op on "
      "Tensors returns a new Tensor and, when an input requires a gradient, records its inputs; `backward()` "
      "then runs the ops' derivative rules in reverse. In the rules, `G` is the adjoint (cotangent) of the "
      "op's output, of the output's shape, and `d/dx: ...` is the adjoint passed back to input `x`.\n\n"
      "Operators (`y` a Tensor, array or Python number; elementwise operands broadcast as in NumPy, and each "
      "adjoint is summed back to its operand's shape; the reflected forms such as `2 * x` follow the same "
      "rules):\n\n"
      "- `x + y`, `x - y` (`add`, `sub`): d/dx: `G`, d/dy: `G` (`-G` for `-`)\n"
      "- `x * y` (`mul`): d/dx: `G * y`, d/dy: `G * x`\n"
      "- `x / y` (`div`): d/dx: `G / y`, d/dy: `-G * x / y^2`\n"
      "- `x ** y` (`pow`): d/dx: `G * y x^(y-1)`, d/dy: `G * x^y log(x)`\n"
      "- `x @ y` (`matmul`, `(m, k) @ (k, n) -> (m, n)`, no broadcasting): d/dx: `G y^T`, d/dy: `x^T G`\n"
      "- `-x` (`neg`): d/dx: `-G`; `abs(x)` (`abs`): d/dx: `G * sign(x)`; `+x` is x itself\n"
      "- `x[key]` (NumPy indexing, results of at most 2-D): d/dx: `G` placed back where the elements came "
      "from, zeros elsewhere, repeated indices adding up");
  g_tensor_type = reinterpret_cast<PyTypeObject*>(cls.ptr());
  cls.attr("__array_ufunc__") = py::none();  // ndarray (op) Tensor reaches Tensor.__r<op>__

  cls.def_property_readonly(
         "shape", [](const Node& n) { return shape_tuple(n.shape); },
         "shape -> tuple[int, ...]\n\nThe shape: `()`, `(n,)` or `(m, n)`.")
      .def_property_readonly(
          "ndim", [](const Node& n) { return int(n.shape.ndim); },
          "ndim -> int\n\nThe number of dimensions of the shape: 0, 1 or 2.")
      .def_property_readonly(
          "size", [](const Node& n) { return n.shape.size(); },
          "size -> int\n\nThe number of elements: the product of the shape (1 for shape `()`).")
      .def_property_readonly(
          "dtype", [](const Node& n) { return numpy_dtype(n.dtype); },
          "dtype -> numpy.dtype\n\nfloat64 or float32 (a gradient has its input's dtype).")
      .def_property_readonly(
          "is_leaf", [](const Node& n) { return n.is_leaf(); },
          "is_leaf -> bool\n\nTrue when no op made this node (`op == 'leaf'`): tensors from "
          "`mg.tensor` and `detach()`, and the constants ops make of arrays and numbers.")
      .def_property_readonly(
          "op", [](const Node& n) { return std::string(op_label(n.op)); },
          "op -> str\n\nThe name of the op that made this node (`'leaf'` for inputs and "
          "constants).")
      .def_property(
          "requires_grad", [](const Node& n) { return n.requires_grad; },
          [](Node& n, bool v) { set_requires_grad(n, v); },
          "requires_grad -> bool (settable on leaves)\n\nWhether gradients flow to this tensor: ops on it record "
          "the graph, and `backward()` fills `.grad` of leaves that require it. Only leaves can change it "
          "(RuntimeError otherwise); setting True gives the leaf its own copy of the data.")
      .def_property(
          "grad", [](const Node& n) { return n.grad; },
          [](Node& n, py::handle g) { set_grad(n, g.is_none() ? NodeRef() : as_node(g, "grad", n.dtype)); },
          "grad -> Tensor | None (settable)\n\nThe accumulated adjoint of this tensor, `d<cotangent, out>/dself`, "
          "of this tensor's shape and dtype, or None; each `backward()` adds to it (set None to clear it). An "
          "assigned value is copied and must have this tensor's shape.")
      .def(
          "backward",
          [](Node& self, py::handle cotangent, bool create_graph) {
            NodeRef seed;
            if (!cotangent.is_none()) seed = as_node(cotangent, "backward", self.dtype);
            backward(NodeRef(&self), seed, create_graph);
            if (const std::size_t n = backward_cycles()) {  // Note [create_graph cycles]
              const std::string msg =
                  "backward(create_graph=True): the new .grad of " + std::to_string(n) +
                  (n == 1 ? " tensor is a graph that refers back to the tensor"
                          : " tensors is a graph that refers back to them") +
                  ", a reference cycle that keeps both alive (and leaks them once you drop the tensor) until .grad is "
                  "reset: set x.grad = None after use, or differentiate without storing a graph by composing the "
                  "transforms (mg.grad of a function that calls mg.grad, mg.hessian)";
              if (PyErr_WarnEx(PyExc_UserWarning, msg.c_str(), 1) < 0) throw py::error_already_set();
            }
          },
          py::arg("cotangent") = py::none(), py::arg("create_graph") = false,
          "The reverse sweep from this tensor: for every leaf x with `requires_grad=True` (and every "
          "`retain_grad()` node), `x.grad += d<cotangent, self>/dx = J^T cotangent`, found by running each op's "
          "derivative rule in reverse order, `d/dx_i = sum over children j of G_j dg_j/dx_i`.\n\n"
          "Shapes: `cotangent` has this tensor's shape (None: this tensor must have one element and the seed is "
          "1); each `x.grad` has x's shape and dtype.\n\n"
          "`create_graph=True` records the gradients as graphs that can be differentiated again. Such a "
          "gradient usually refers back to its tensor (a reference cycle, as in PyTorch): a UserWarning says so, "
          "and `x.grad = None` after use frees both.")
      .def(
          "retain_grad", [](Node& self) { self.retains_grad = true; },
          "Keep this intermediate node's adjoint in `.grad` (of this tensor's shape) after `backward()`, as "
          "leaves keep theirs.")
      .def(
          "detach", [](const Node& self) { return detach(self); },
          "The same value as a new constant leaf of the same shape and dtype, recording nothing: no gradient "
          "flows back through it. Values of more than 128 bytes share the tensor's buffer; smaller ones, "
          "which live inside the graph node, are copied.")
      .def(
          "numpy",
          [](Node& self) {
            check_readable(self, "numpy");
            return view_of(NodeRef(&self));
          },
          "The value as a read-only NumPy array of the same shape and dtype (a view, no copy; it keeps the "
          "tensor alive). Outside the graph: no gradient flows through it.")
      .def(
          "__array__",
          [](Node& self, py::handle dtype, py::handle copy) -> py::object {
            check_readable(self, "__array__");
            py::array v = view_of(NodeRef(&self));
            const bool force_copy = !copy.is_none() && py::bool_(py::reinterpret_borrow<py::object>(copy));
            const bool no_copy = !copy.is_none() && !force_copy;
            if (!dtype.is_none()) {
              py::dtype dt = py::dtype::from_args(py::reinterpret_borrow<py::object>(dtype));
              if (!dt.equal(v.dtype())) {
                if (no_copy) throw py::value_error("__array__: a dtype change needs a copy (copy=False given)");
                return v.attr("astype")(dt);
              }
            }
            if (force_copy) return v.attr("copy")();
            return std::move(v);
          },
          py::arg("dtype") = py::none(), py::arg("copy") = py::none(),
          "`np.asarray(x)`: the value as a read-only NumPy view of the same shape; a copy when `dtype` differs "
          "or `copy=True` (`copy=False` with another dtype raises ValueError). No gradient flows through it.")
      .def(
          "item", [](const Node& n) { return item(n, "item"); },
          "The value of a one-element tensor (shape `()`, `(1,)` or `(1, 1)`) as a Python float; other shapes "
          "raise TypeError. No gradient flows through it.")
      .def(
          "__float__", [](const Node& n) { return item(n, "float"); },
          "`float(x)` of a one-element tensor (shape `()`, `(1,)` or `(1, 1)`), as `item()`. No gradient flows "
          "through it.")
      .def(
          "__bool__", [](const Node& n) { return truth(n); },
          "The truth value of a one-element tensor (shape `()`, `(1,)` or `(1, 1)`); other shapes raise "
          "ValueError. No gradient flows through it.")
      .def(
          "__len__",
          [](const Node& n) {
            if (n.shape.ndim == 0) throw TypeError("len: a 0-D tensor has no length");
            return n.shape.ndim == 1 ? n.shape.cols : n.shape.rows;
          },
          "`len(x)`: the length of the first dimension (`n` for shape `(n,)`, `m` for `(m, n)`); 0-D raises "
          "TypeError.")
      .def(
          "__repr__",
          [](Node& self) {
            if (self.traced && tracing())  // Note [tracing]: no value yet
              return "tensor(<traced by mg.compile>, shape=" + self.shape.str() + ", dtype=" + dtype_name(self.dtype) +
                     ")";
            std::string r = py::repr(view_of(NodeRef(&self))).cast<std::string>();
            if (r.rfind("array(", 0) == 0) r = "tensor(" + r.substr(6);
            if (self.requires_grad) r = r.substr(0, r.size() - 1) + ", requires_grad=True)";
            return r;
          },
          "`tensor(...)`: NumPy's repr of the value (any shape), with `requires_grad=True` when set.");  // the ops'
         // methods,
         // properties
         // and
         // operators:
  // bind_entry.cpp,
  // from the
  // entry points

  m.def(
      "tensor",
      [](py::handle data, bool requires_grad, py::handle dtype) -> NodeRef {
        if (is_tensor(data)) {
          Node* src = tensor_ptr(data);
          DType want = src->dtype;
          parse_dtype(dtype, want, "tensor");
          return copy_leaf(*src, want, requires_grad);
        }
        return node_from_data(data, requires_grad, dtype, "tensor");
      },
      py::arg("data"), py::arg("requires_grad") = false, py::arg("dtype") = py::none(),
      "A new leaf Tensor from a number, list, NumPy array or Tensor. C-contiguous float64/float32 arrays are "
      "mapped without a copy when `requires_grad=False`; leaves with `requires_grad=True` own a copy. float32 "
      "stays float32; ints, bools, lists and Python scalars become float64 (or `dtype`: float32 or float64).\n\n"
      "Shapes: `data` of 0, 1 or 2 dimensions -> the same shape (more dimensions raise ValueError).\n\n"
      "Not an op of the graph: the result is a new leaf. A Tensor given as `data` is copied without its graph, "
      "so no gradient flows back to it.");
}

}  // namespace matgrad::py_bind
