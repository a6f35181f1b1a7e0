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

  m.def("_pool_cached_bytes", &pool_cached_bytes);
  m.def("_pool_trim", &pool_trim);
}

}  // namespace matgrad::py_bind
