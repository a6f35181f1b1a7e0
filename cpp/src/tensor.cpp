// SPDX-License-Identifier: MIT
#include <matgrad/tensor.hpp>

#include <matgrad/error.hpp>
#include <matgrad/ops.hpp>
#include <matgrad/optim.hpp>

#include <string>
#include <unordered_map>
#include <utility>

namespace matgrad {

void check_readable(const Node& n, const char* what) {
  if (n.traced && tracing())
    throw GraphError(std::string(what) + ": this tensor (shape " + n.shape.str() +
                     ") is traced by mg.compile: its value is only known when the compiled function runs, and a "
                     "value read now would be baked into the program; compute with matgrad's ops instead, or read "
                     "it outside the compiled function");
}

double item(const Node& n, const char* what) {
  check_readable(n, what);
  if (n.shape.size() != 1)
    throw TypeError(std::string(what) + ": only tensors with one element can be converted to Python scalars (shape " +
                    n.shape.str() + ")");
  return n.dtype == DType::f64 ? *static_cast<const double*>(n.data) : double(*static_cast<const float*>(n.data));
}

bool truth(const Node& n) {
  if (n.shape.size() != 1)
    throw ShapeError("bool: the truth value of a tensor of shape " + n.shape.str() +
                     " is ambiguous; use (x != 0).any() on x.numpy()");
  return item(n, "bool") != 0.0;
}

void set_requires_grad(Node& x, bool on) {
  if (!x.is_leaf()) throw GraphError("requires_grad: only leaves can change requires_grad (use detach() first)");
  if (on) own_storage(x);  // its own copy of the same value: not an update
  x.requires_grad = on;
}

void set_grad(Node& x, const NodeRef& g) {
  if (!g) {
    x.grad = NodeRef();
    return;
  }
  // Its own copy (never the caller's memory), in the tensor's dtype.
  NodeRef c = make_leaf(cast(g, x.dtype)->value(), false);
  if (c->shape != x.shape)
    throw ShapeError("grad: shape " + c->shape.str() + " does not match the tensor's shape " + x.shape.str());
  x.grad = std::move(c);
}

NodeRef copy_leaf(const Node& x, DType d, bool requires_grad) {
  if (d != x.dtype) return make_leaf(cast(detach(x), d)->value(), requires_grad);
  if (requires_grad) return make_leaf(x.value(), true);  // its own copy
  return detach(x);
}

GraphListing graph_listing(Node* root) {
  GraphListing g;
  std::vector<std::pair<Node*, int>> frames{{root, 0}};
  std::unordered_map<Node*, int> index;
  index.reserve(64);
  index[root] = -1;  // on the stack
  while (!frames.empty()) {
    auto& f = frames.back();
    if (f.second < f.first->nparents) {
      Node* p = f.first->parent(f.second++).get();
      if (!index.count(p)) {
        index[p] = -1;
        frames.push_back({p, 0});
      }
    } else {
      index[f.first] = int(g.nodes.size());
      g.nodes.push_back(f.first);
      frames.pop_back();
    }
  }
  g.parents.reserve(g.nodes.size());
  for (Node* n : g.nodes) {
    std::vector<int> ps(n->nparents);
    for (int i = 0; i < n->nparents; ++i) ps[i] = index[n->parent(i).get()];
    g.parents.push_back(std::move(ps));
  }
  return g;
}

}  // namespace matgrad
