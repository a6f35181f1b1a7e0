// SPDX-License-Identifier: MIT
// The Tensor class: the bound C++ node itself; operators dispatch straight into C++.
#include "common.hpp"

#include <cstring>
#include <string>

namespace matgrad::py_bind {

namespace {

double single_value(const Node& n, const char* what) {
  if (n.shape.size() != 1)
    throw TypeError(std::string(what) + ": only tensors with one element can be converted to Python scalars (shape " +
                    n.shape.str() + ")");
  return n.dtype == DType::f64 ? *static_cast<double*>(n.data) : double(*static_cast<float*>(n.data));
}

// Give a leaf its own copy of memory it maps from elsewhere or shares with other tensors
// (before it may be updated in place).
void own_storage(Node& n) {
  if (!n.buf || (n.buf->size_class >= 0 && n.buf->rc == 1)) return;
  const std::size_t bytes = std::size_t(n.shape.size()) * itemsize(n.dtype);
  Buffer* old = n.buf;
  void* src = n.data;
  if (bytes <= Node::kInlineBytes) {
    std::memcpy(n.inline_data, src, bytes);
    n.data = n.inline_data;
    n.buf = nullptr;
  } else {
    Buffer* b = Buffer::allocate(bytes);
    b->ref();
    std::memcpy(b->data, src, bytes);
    n.buf = b;
    n.data = b->data;
  }
  old->unref();
}

NodeRef detached(const Node& n) {
  if (n.buf) return make_leaf_shared(n.buf, n.data, n.shape, n.dtype, false);
  return make_leaf(n.value(), false);
}

}  // namespace

void bind_tensor(py::module_& m) {
  // The no-grad in-place update of a leaf (mg.optim's steps): the leaf first gets memory of its
  // own (never the caller's mapped array, nor a buffer shared with detach()ed tensors), its
  // cached factorization is dropped, and nothing is recorded.
  m.def(
      "_assign_",
      [](Node& n, py::handle values) {
        if (!n.is_leaf())
          throw GraphError(std::string("assign: only leaves can be updated in place (this tensor is the result of '") +
                           op_name(n.op) + "')");
        NodeRef v = cast(as_node(values, "assign", n.dtype), n.dtype);
        if (v->shape != n.shape)
          throw ShapeError("assign: values of shape " + v->shape.str() + " do not match the tensor's shape " +
                           n.shape.str());
        own_storage(n);
        std::memmove(n.data, v->data, std::size_t(n.shape.size()) * itemsize(n.dtype));
        n.factor.reset();
      },
      py::arg("tensor"), py::arg("values"));

  py::class_<Node, NodeRef> cls(m, "Tensor",
                                "A value in a matgrad graph: 0-D, 1-D or 2-D, float64 or float32. Create with "
                                "mg.tensor(data, requires_grad=False, dtype=None).");
  g_tensor_type = reinterpret_cast<PyTypeObject*>(cls.ptr());
  cls.attr("__array_ufunc__") = py::none();  // ndarray (op) Tensor reaches Tensor.__r<op>__

  cls.def_property_readonly("shape", [](const Node& n) { return shape_tuple(n.shape); }, "The shape tuple")
      .def_property_readonly("ndim", [](const Node& n) { return int(n.shape.ndim); })
      .def_property_readonly("size", [](const Node& n) { return n.shape.size(); })
      .def_property_readonly("dtype", [](const Node& n) { return numpy_dtype(n.dtype); })
      .def_property_readonly("is_leaf", [](const Node& n) { return n.is_leaf(); })
      .def_property_readonly("op", [](const Node& n) { return std::string(op_name(n.op)); },
                             "The op that made this node ('leaf' for inputs and constants)")
      .def_property(
          "requires_grad", [](const Node& n) { return n.requires_grad; },
          [](Node& n, bool v) {
            if (!n.is_leaf())
              throw GraphError("requires_grad: only leaves can change requires_grad (use detach() first)");
            if (v) own_storage(n);
            n.requires_grad = v;
          })
      .def_property(
          "grad", [](const Node& n) { return n.grad; },
          [](Node& n, py::handle g) {
            if (g.is_none()) {
              n.grad = NodeRef();
              return;
            }
            // Its own copy (never the caller's memory), in the tensor's dtype.
            NodeRef gn = cast(as_node(g, "grad", n.dtype), n.dtype);
            gn = make_leaf(gn->value(), false);
            if (gn->shape != n.shape)
              throw ShapeError("grad: shape " + gn->shape.str() + " does not match the tensor's shape " +
                               n.shape.str());
            n.grad = gn;
          },
          "The accumulated gradient (a Tensor or None); backward() adds to it")
      .def(
          "backward",
          [](Node& self, py::handle cotangent, bool create_graph) {
            NodeRef seed;
            if (!cotangent.is_none()) seed = as_node(cotangent, "backward", self.dtype);
            backward(NodeRef(&self), seed, create_graph);
          },
          py::arg("cotangent") = py::none(), py::arg("create_graph") = false,
          "Accumulate d<cotangent, self>/dx into x.grad for every leaf x with requires_grad (and every "
          "retain_grad() node). cotangent=None needs a one-element output. create_graph=True makes the "
          "gradients graphs that can be differentiated again.")
      .def("retain_grad", [](Node& self) { self.retains_grad = true; },
           "Keep this intermediate node's gradient in .grad after backward()")
      .def("detach", [](const Node& self) { return detached(self); },
           "The same value as a new constant leaf (shares memory, records nothing)")
      .def("numpy", [](Node& self) { return view_of(NodeRef(&self)); },
           "The value as a read-only NumPy view (no copy; keeps the tensor alive)")
      .def(
          "__array__",
          [](Node& self, py::handle dtype, py::handle copy) -> py::object {
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
          py::arg("dtype") = py::none(), py::arg("copy") = py::none())
      .def("item", [](const Node& n) { return single_value(n, "item"); })
      .def("__float__", [](const Node& n) { return single_value(n, "float"); })
      .def("__bool__",
           [](const Node& n) {
             if (n.shape.size() != 1)
               throw ShapeError("bool: the truth value of a tensor of shape " + n.shape.str() +
                                " is ambiguous; use (x != 0).any() on x.numpy()");
             return single_value(n, "bool") != 0.0;
           })
      .def("__len__",
           [](const Node& n) {
             if (n.shape.ndim == 0) throw TypeError("len: a 0-D tensor has no length");
             return n.shape.ndim == 1 ? n.shape.cols : n.shape.rows;
           })
      .def("__repr__",
           [](Node& self) {
             std::string r = py::repr(view_of(NodeRef(&self))).cast<std::string>();
             if (r.rfind("array(", 0) == 0) r = "tensor(" + r.substr(6);
             if (self.requires_grad) r = r.substr(0, r.size() - 1) + ", requires_grad=True)";
             return r;
           })
      .def_property_readonly("T", [](Node& self) { return transpose(NodeRef(&self)); }, "The transpose")
      .def(
          "sum", [](Node& self, py::handle axis) { return sum(NodeRef(&self), parse_axis(axis, "sum", self.shape)); },
          py::arg("axis") = py::none())
      .def(
          "mean",
          [](Node& self, py::handle axis) { return mean(NodeRef(&self), parse_axis(axis, "mean", self.shape)); },
          py::arg("axis") = py::none())
      .def("reshape",
           [](Node& self, py::args shape) {
             py::handle s = shape.size() == 1 ? shape[0] : py::handle(shape);
             return reshape(NodeRef(&self), parse_reshape(s, self.shape));
           })
      ;  // operators: Tensor's number slots, set in fast.cpp (Note [the hot call path])

  m.def(
      "tensor",
      [](py::handle data, bool requires_grad, py::handle dtype) -> NodeRef {
        if (is_tensor(data)) {
          Node* src = tensor_ptr(data);
          DType want = src->dtype;
          parse_dtype(dtype, want, "tensor");
          NodeRef n = want == src->dtype ? detached(*src) : cast(detached(*src), want);
          if (requires_grad) n = make_leaf(n->value(), true);  // its own copy, as for arrays
          return n;
        }
        return node_from_data(data, requires_grad, dtype, "tensor");
      },
      py::arg("data"), py::arg("requires_grad") = false, py::arg("dtype") = py::none(),
      "A Tensor from a number, list, NumPy array or Tensor. C-contiguous float64/float32 arrays are mapped "
      "without a copy when requires_grad=False; leaves with requires_grad=True own a copy. Ints, bools, "
      "lists and Python scalars become float64 (or dtype).");
}

}  // namespace matgrad::py_bind
