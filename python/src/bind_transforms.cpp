// SPDX-License-Identifier: MIT
// What the Python transforms (grad, value_and_grad, check_grad, no_grad) call into.
#include "common.hpp"

#include <pybind11/stl.h>

#include <cstdint>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

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
  m.def("is_grad_enabled", &grad_enabled,
        "Whether ops record the graph on this thread: False inside `mg.no_grad()`, True otherwise.\n\n"
        "Not differentiable and takes no arrays: it returns a bool (transforms differentiate even when it is "
        "False).");

  // The sweeps behind jacobian, hessian, vjp and jvp (python/matgrad/_transforms.py).
  auto nodes_of = [](const std::vector<Node*>& xs) {
    std::vector<NodeRef> r;
    for (Node* x : xs) r.emplace_back(x);
    return r;
  };
  auto seed_of = [](py::handle seed, const Node& out, const std::string& op) -> NodeRef {
    if (seed.is_none()) return nullptr;
    return is_tensor(seed) ? NodeRef(tensor_ptr(seed)) : as_node(seed, op.c_str(), out.dtype);
  };
  m.def("_grad_values", [nodes_of, seed_of](Node* out, const std::vector<Node*>& xs, py::handle seed,
                                            const std::string& op) {
    NodeRef o(out);
    std::vector<Val> g = grad_values(o, nodes_of(xs), seed_of(seed, *out, op), op.c_str());
    py::list r;
    for (const Val& v : g) r.append(py::reinterpret_steal<py::object>(new_array(v, true)));
    return r;
  });
  m.def("_grad_nodes", [nodes_of, seed_of](Node* out, const std::vector<Node*>& xs, py::handle seed,
                                           const std::string& op) {
    NodeRef o(out);
    py::list r;
    for (NodeRef& g : grad_nodes(o, nodes_of(xs), seed_of(seed, *out, op), op.c_str()))
      r.append(py::reinterpret_steal<py::object>(wrap(std::move(g))));
    return r;
  });
  m.def("_jacobian_values", [nodes_of](Node* out, const std::vector<Node*>& xs) {
    py::list r;
    for (const Val& v : jacobian_values(NodeRef(out), nodes_of(xs))) r.append(py::reinterpret_steal<py::object>(new_array(v, true)));
    return r;
  });
  m.def("_hessian_values", [nodes_of](Node* out, const std::vector<Node*>& xs) {
    py::list rows;
    for (const auto& row : hessian_values(NodeRef(out), nodes_of(xs))) {
      py::list r;
      for (const Val& v : row) r.append(py::reinterpret_steal<py::object>(new_array(v, true)));
      rows.append(r);
    }
    return rows;
  });
  m.def("_jvp_values", [nodes_of](Node* out, const std::vector<Node*>& xs, const std::vector<Node*>& ts) {
    return py::reinterpret_steal<py::object>(new_array(jvp_values(NodeRef(out), nodes_of(xs), nodes_of(ts)), true));
  });
  m.def("_jvp_nodes", [nodes_of](Node* out, const std::vector<Node*>& xs, const std::vector<Node*>& ts) {
    return py::reinterpret_steal<py::object>(wrap(jvp_nodes(NodeRef(out), nodes_of(xs), nodes_of(ts))));
  });
  m.def("_jacobian_nodes", [nodes_of](Node* out, const std::vector<Node*>& xs) {
    py::list r;
    for (NodeRef& v : jacobian_nodes(NodeRef(out), nodes_of(xs))) r.append(py::reinterpret_steal<py::object>(wrap(std::move(v))));
    return r;
  });

  m.def("_batch_stats", [] {
    BatchStats s = batch_stats();
    return py::make_tuple(s.batched_calls, s.per_member_calls);
  }, "(whole-batch kernel calls, per-member kernel calls) of batched sweeps on this thread (for tests)");

  // The recorded graph behind t, for pictures (python/matgrad/viz.py): every node reachable
  // through parents, parents before children, each with the indices of its parents.
  m.def("_graph", [](Node* t) {
    std::vector<Node*> order;
    std::vector<std::pair<Node*, int>> frames{{t, 0}};
    std::unordered_map<Node*, int> index;
    index.reserve(64);
    index[t] = -1;  // on the stack
    while (!frames.empty()) {
      auto& f = frames.back();
      if (f.second < f.first->nparents) {
        Node* p = f.first->parent(f.second++).get();
        if (!index.count(p)) {
          index[p] = -1;
          frames.push_back({p, 0});
        }
      } else {
        index[f.first] = int(order.size());
        order.push_back(f.first);
        frames.pop_back();
      }
    }
    py::list out;
    for (Node* n : order) {
      py::tuple ps(n->nparents);
      for (int i = 0; i < n->nparents; ++i) ps[i] = index[n->parent(i).get()];
      out.append(py::make_tuple(py::reinterpret_steal<py::object>(wrap(NodeRef(n))), ps,
                                reinterpret_cast<std::uintptr_t>(n)));
    }
    return out;
  });
  m.def("_node_id", [](Node* t) { return reinterpret_cast<std::uintptr_t>(t); },
        "The identity of the node behind a Tensor (several Python objects may wrap one node)");

  m.def("_pool_cached_bytes", &pool_cached_bytes);
  m.def("_pool_trim", &pool_trim);
}

}  // namespace matgrad::py_bind
