// SPDX-License-Identifier: MIT
// What the Python transforms (grad, value_and_grad, check_grad, no_grad) call into.
#include "common.hpp"

#include <pybind11/stl.h>

#include <string>

namespace matgrad::py_bind {

NodeRef diff_input(py::handle x, const char* op) {
  if (is_tensor(x)) {
    Node* n = tensor_ptr(x);
    if (n->requires_grad) return alias(NodeRef(n));  // a fresh node in x's graph
    return n->buf ? make_leaf_shared(n->buf, n->data, n->shape, n->dtype, true) : make_leaf(n->value(), true);
  }
  // Transforms never write their inputs: map the caller's array without copying.
  return node_from_data(x, true, py::none(), op, /*map_always=*/true);
}

void bind_transforms(py::module_& m) {
  m.def("_set_grad_enabled", &set_grad_enabled, py::arg("on"));
  m.def("is_grad_enabled", &grad_enabled, "Whether ops record the graph (False inside mg.no_grad())");

  m.def("_diff_input", &diff_input, py::arg("x"), py::arg("op") = "grad",
        "A node to differentiate against, standing for x");

  m.def(
      "_as_output",
      [](py::handle y, const char* op) -> NodeRef {
        if (is_tensor(y)) return NodeRef(tensor_ptr(y));
        return as_node(y, op);
      },
      py::arg("y"), py::arg("op") = "grad");

  m.def(
      "_grad",
      [](const NodeRef& out, const std::vector<NodeRef>& inputs, py::handle cotangent, bool create_graph,
         const char* op) -> py::list {
        NodeRef seed;
        if (cotangent.is_none()) {
          const Shape& s = out->shape;
          if (!(s.ndim == 0 || (s.ndim == 2 && s.rows == 1 && s.cols == 1)))
            throw ShapeError(std::string(op) + ": the function's output has shape " + s.str() +
                             "; it must be a scalar (shape () or (1, 1))");
        } else {
          seed = as_node(cotangent, op, out->dtype);
        }
        py::list res;
        if (create_graph) {
          for (NodeRef& g : grad_nodes(out, inputs, seed)) res.append(py::cast(std::move(g)));
        } else {
          for (const Val& g : grad_values(out, inputs, seed)) res.append(owned_array(g));
        }
        return res;
      },
      py::arg("out"), py::arg("inputs"), py::arg("cotangent") = py::none(), py::arg("create_graph") = false,
      py::arg("op") = "grad");

  m.def(
      "_to_numpy", [](const NodeRef& n) { return owned_array(n->value()); }, py::arg("x"),
      "A writable copy of the value that the caller owns");

  m.def("_pool_cached_bytes", &pool_cached_bytes);
  m.def("_pool_trim", &pool_trim);
}

}  // namespace matgrad::py_bind
