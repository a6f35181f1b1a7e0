// SPDX-License-Identifier: MIT
#include <matgrad/autodiff.hpp>
#include <matgrad/entry.hpp>
#include <matgrad/error.hpp>

#include "anomaly_check.hpp"
#include "ops/registry.hpp"
#include "sweep.hpp"

#include <algorithm>
#include <cstring>
#include <memory>
#include <string>
#include <unordered_set>
#include <utility>
#include <vector>

namespace matgrad {

namespace {

using detail::fit;
using detail::Sweep;

Val value_seed(const NodeRef& out, const NodeRef& seed, const char* op) {
  if (!seed) {
    if (out->shape.size() != 1)
      throw ShapeError(std::string(op) + ": output of shape " + out->shape.str() +
                       " is not a scalar; pass a cotangent of that shape");
    return Val::filled(out->shape, out->dtype, 1.0);
  }
  if (seed->shape != out->shape)
    throw ShapeError(std::string(op) + ": cotangent of shape " + seed->shape.str() +
                     " does not match output of shape " + out->shape.str());
  Val v = seed->value();
  if (seed->dtype != out->dtype) return ValueAlg().cast(v, out->dtype);
  if (!seed->buf || seed->buf->size_class < 0) {
    // The cotangent lives inside its node or maps the caller's memory: gradients that pass
    // it through must neither outlive it nor alias it, so the sweep starts from a copy.
    Val own = Val::empty(v.shape(), v.dtype());
    std::memcpy(own.data(), v.data(), std::size_t(v.shape().size()) * itemsize(v.dtype()));
    return own;
  }
  return v;
}

NodeRef graph_seed(const NodeRef& out, const NodeRef& seed, const char* op) {
  if (!seed) {
    if (out->shape.size() != 1)
      throw ShapeError(std::string(op) + ": output of shape " + out->shape.str() +
                       " is not a scalar; pass a cotangent of that shape");
    return full(out->shape, out->dtype, 1.0);
  }
  if (seed->shape != out->shape)
    throw ShapeError(std::string(op) + ": cotangent of shape " + seed->shape.str() +
                     " does not match output of shape " + out->shape.str());
  if (seed->dtype == out->dtype && seed->buf && seed->buf->size_class < 0) {
    // The cotangent maps the caller's memory: gradients must not alias it.
    return make_leaf(seed->value(), false);
  }
  return cast(seed, out->dtype);
}

NodeRef node_of(const Val& v, const Node& like) {
  if (v.buffer()) return make_leaf_shared(v.buffer(), v.data(), like.shape, like.dtype, false);
  return make_leaf(v.relabel(like.shape), false);
}

// The largest value (in elements) among the nodes that lead from root to a requires_grad leaf:
// the size of the biggest adjoint a batched sweep can hold per seed.
std::int64_t largest_node(Node* root) {
  std::vector<Node*> stack{root}, seen;
  std::int64_t most = 0;
  root->mark = -2;
  seen.push_back(root);
  while (!stack.empty()) {
    Node* n = stack.back();
    stack.pop_back();
    most = std::max(most, n->shape.size());
    for (int i = 0; i < n->nparents; ++i) {
      Node* p = n->parent(i).get();
      if (p->requires_grad && p->mark == 0) {
        p->mark = -2;
        seen.push_back(p);
        stack.push_back(p);
      }
    }
  }
  for (Node* n : seen) n->mark = 0;
  return most;
}

constexpr std::int64_t kBatchElements = std::int64_t(1) << 22;  // per batched value

// Rows `first`.. of the identity of size n, as a batch of k seeds of shape s.
BVal basis(std::int64_t first, std::int64_t k, std::int64_t n, Shape s, DType d) {
  Val v = Val::filled(Shape::matrix(k, n), d, 0.0);
  for (std::int64_t b = 0; b < k; ++b) {
    if (d == DType::f64)
      v.ptr<double>()[b * n + first + b] = 1.0;
    else
      v.ptr<float>()[b * n + first + b] = 1.0f;
  }
  return BVal{v, k, s};
}

// Copy a batched adjoint (k rows of size n) into rows [first, first + k) of J (or, transposed,
// into its columns).
void put_rows(const Val& J, const BVal& a, std::int64_t first, bool transposed) {
  const std::int64_t k = a.k ? a.k : 1;
  const std::int64_t n = a.s.size();
  Val src = a.v.dtype() == J.dtype() ? a.v : ValueAlg().cast(a.v, J.dtype());
  auto copy = [&](auto tag) {
    using T = decltype(tag);
    MapMat<T> S(src.ptr<T>(), a.k ? k : 1, n);
    auto M = J.mat<T>();
    for (std::int64_t b = 0; b < k; ++b) {
      const auto row = S.row(a.k ? b : 0);  // an unbatched adjoint is the same for every seed
      if (transposed)
        M.col(first + b) = row.transpose();
      else
        M.row(first + b) = row;
    }
  };
  if (J.dtype() == DType::f64)
    copy(double{});
  else
    copy(float{});
}

}  // namespace

std::vector<Val> jacobian_values(const NodeRef& out, const std::vector<NodeRef>& inputs) {
  const std::int64_t m = out->shape.size();
  std::int64_t total = 0;
  std::vector<Val> J;  // every element is written below: rows (or columns) from a sweep, or zeros
  for (const NodeRef& x : inputs) {
    total += x->shape.size();
    J.push_back(Val::empty(Shape::matrix(m, x->shape.size()), x->dtype));
  }
  auto zero = [](const Val& j, std::int64_t first, std::int64_t k, bool columns) {
    auto fill = [&](auto tag) {
      using T = decltype(tag);
      auto M = j.mat<T>();
      if (columns)
        M.middleCols(first, k).setZero();
      else
        M.middleRows(first, k).setZero();
    };
    if (j.dtype() == DType::f64)
      fill(double{});
    else
      fill(float{});
  };
  if (!out->requires_grad || m == 0 || total == 0) {
    for (const Val& j : J) zero(j, 0, m, false);
    return J;
  }
  if (m <= total) {  // reverse: one sweep per output element, in batches
    const std::int64_t k_max =
        std::max<std::int64_t>(1, kBatchElements / std::max<std::int64_t>(1, largest_node(out.get())));
    for (std::int64_t first = 0; first < m; first += k_max) {
      const std::int64_t k = std::min(k_max, m - first);
      Sweep<BatchAlg> s(out.get(), basis(first, k, m, out->shape, out->dtype), &inputs);
      for (std::size_t i = 0; i < inputs.size(); ++i) {
        if (const BVal* a = s.adjoint(inputs[i].get()))
          put_rows(J[i], *a, first, false);
        else
          zero(J[i], first, k, false);
      }
    }
    return J;
  }
  // forward: one sweep per input element over the linear map u -> J^T u (the VJP as a graph),
  // whose VJP is u' -> J u' (Note [batched sweeps])
  NodeRef u = make_leaf(Val::filled(out->shape, out->dtype, 0.0), true);
  std::vector<NodeRef> gs = grad_nodes(out, inputs, u);
  const std::vector<NodeRef> target{u};
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    const NodeRef& g = gs[i];
    const std::int64_t n = inputs[i]->shape.size();
    if (!g->requires_grad || n == 0) {
      zero(J[i], 0, m, false);
      continue;
    }
    const std::int64_t k_max =
        std::max<std::int64_t>(1, kBatchElements / std::max<std::int64_t>(1, largest_node(g.get())));
    for (std::int64_t first = 0; first < n; first += k_max) {
      const std::int64_t k = std::min(k_max, n - first);
      Sweep<BatchAlg> s(g.get(), basis(first, k, n, g->shape, g->dtype), &target);
      if (const BVal* a = s.adjoint(u.get()))
        put_rows(J[i], *a, first, true);
      else
        zero(J[i], first, k, true);
    }
  }
  return J;
}

std::vector<std::vector<Val>> hessian_values(const NodeRef& out, const std::vector<NodeRef>& inputs) {
  check_scalar_output("hessian", out->shape);
  std::vector<NodeRef> grads = grad_nodes(out, inputs, nullptr, "hessian");
  std::vector<std::vector<Val>> h;
  h.reserve(grads.size());
  for (const NodeRef& g : grads) h.push_back(jacobian_values(g, inputs));
  return h;
}

std::vector<std::vector<NodeRef>> hessian_nodes(const NodeRef& out, const std::vector<NodeRef>& inputs) {
  check_scalar_output("hessian", out->shape);
  std::vector<NodeRef> grads = grad_nodes(out, inputs, nullptr, "hessian");
  std::vector<std::vector<NodeRef>> h;
  h.reserve(grads.size());
  for (const NodeRef& g : grads) h.push_back(jacobian_nodes(g, inputs));
  return h;
}

namespace {
// s(u) = <J^T u, v> = <u, J v> for a zero leaf u of out's shape: d s / d u is the JVP.
std::pair<NodeRef, NodeRef> jvp_pairing(const NodeRef& out, const std::vector<NodeRef>& inputs,
                                        const std::vector<NodeRef>& tangents) {
  if (inputs.empty()) throw ShapeError("jvp: needs at least one input");
  if (tangents.size() != inputs.size())
    throw ShapeError("jvp: got " + std::to_string(inputs.size()) + " inputs and " + std::to_string(tangents.size()) +
                     " tangents");
  for (std::size_t i = 0; i < inputs.size(); ++i)
    if (tangents[i]->shape != inputs[i]->shape)
      throw ShapeError("jvp: tangent " + std::to_string(i) + " has shape " + tangents[i]->shape.str() +
                       " but its input has shape " + inputs[i]->shape.str());
  GradMode on(true);
  NodeRef u = make_leaf(Val::filled(out->shape, out->dtype, 0.0), true);
  std::vector<NodeRef> gs = grad_nodes(out, inputs, u, "jvp");  // J_i^T u
  NodeRef s;
  for (std::size_t i = 0; i < gs.size(); ++i) {
    NodeRef term = apply(ops::sum, {apply_promoted(ops::mul, gs[i], tangents[i])});  // <J_i^T u, v_i> = <u, J_i v_i>
    s = s ? apply_promoted(ops::add, s, term) : term;
  }
  return {s, u};
}
}  // namespace

Val jvp_values(const NodeRef& out, const std::vector<NodeRef>& inputs, const std::vector<NodeRef>& tangents) {
  auto su = jvp_pairing(out, inputs, tangents);
  Val t = grad_values(su.first, {su.second}, nullptr, "jvp")[0];
  return t.dtype() == out->dtype ? t : ValueAlg().cast(t, out->dtype);
}

NodeRef jvp_nodes(const NodeRef& out, const std::vector<NodeRef>& inputs, const std::vector<NodeRef>& tangents) {
  auto su = jvp_pairing(out, inputs, tangents);
  return cast(grad_nodes(su.first, {su.second}, nullptr, "jvp")[0], out->dtype);
}

std::vector<NodeRef> jacobian_nodes(const NodeRef& out, const std::vector<NodeRef>& inputs) {
  GradMode on(true);
  const std::int64_t m = out->shape.size();
  std::vector<std::vector<NodeRef>> rows(inputs.size());
  for (std::int64_t j = 0; j < m && out->requires_grad; ++j) {
    NodeRef seed = full(out->shape, out->dtype, 0.0);
    if (out->dtype == DType::f64)
      static_cast<double*>(seed->data)[j] = 1.0;
    else
      static_cast<float*>(seed->data)[j] = 1.0f;
    std::vector<NodeRef> g = grad_nodes(out, inputs, seed);
    for (std::size_t i = 0; i < inputs.size(); ++i)
      rows[i].push_back(reshape(g[i], Shape::matrix(1, inputs[i]->shape.size())));
  }
  std::vector<NodeRef> res;
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    const Shape s = Shape::matrix(m, inputs[i]->shape.size());
    if (rows[i].empty()) {
      res.push_back(full(s, inputs[i]->dtype, 0.0));
    } else {
      const Arg args[2] = {Arg::list(rows[i]), Arg::integer(0)};
      res.push_back(call(entry_point("concatenate"), args, 2).v[0]);
    }
  }
  return res;
}

void check_scalar_output(const char* op, const Shape& s) {
  if (!(s.ndim == 0 || (s.ndim == 2 && s.rows == 1 && s.cols == 1)))
    throw ShapeError(std::string(op) + ": the function's output has shape " + s.str() +
                     "; it must be a scalar (shape () or (1, 1))");
}

NodeRef diff_input(const NodeRef& x) {
  if (x->requires_grad) return alias(x);  // a fresh node in x's graph
  if (x->is_leaf() && x->rc == 1) {       // only this handle holds it: a fresh constant
    x->requires_grad = true;
    return x;
  }
  // Transforms never write their inputs: share the value without copying.
  return x->buf ? make_leaf_shared(x->buf, x->data, x->shape, x->dtype, true) : make_leaf(x->value(), true);
}

std::vector<int> resolve_argnums(const char* op, const std::vector<long long>& argnums, int nargs) {
  std::vector<int> pos;
  pos.reserve(argnums.size());
  for (long long given : argnums) {
    const long long i = given < 0 ? given + nargs : given;
    if (i < 0 || i >= nargs)
      throw ShapeError(std::string(op) + ": argnums " + std::to_string(given) + " is out of range for " +
                       std::to_string(nargs) + " positional arguments");
    pos.push_back(static_cast<int>(i));
  }
  return pos;
}

// Note [create_graph cycles]
// backward(create_graph=True) stores in x.grad a graph that usually has x among its inputs
// (the gradient of x^3 is 3 x^2): x holds x.grad, which holds x, and reference counts never
// free either until x.grad is reset (10^5 iterations that dropped x kept 512 MB). PyTorch has
// the same cycle and warns; so does the Python module, from the count kept here: the leaves with
// a graph in .grad that one walk over all the new gradients' graphs reaches (linear in the
// graphs; a leaf reached only from another leaf's gradient is counted too, and is kept alive
// by it as long).
namespace {
thread_local std::size_t t_backward_cycles = 0;

std::size_t count_grad_cycles(const std::vector<NodeRef>& xs) {
  if (xs.empty()) return 0;
  std::unordered_set<const Node*> targets, seen;
  std::vector<const Node*> stack;
  for (const NodeRef& x : xs) {
    targets.insert(x.get());
    if (seen.insert(x->grad.get()).second) stack.push_back(x->grad.get());
  }
  std::size_t cycles = 0;
  while (!stack.empty()) {
    const Node* n = stack.back();
    stack.pop_back();
    for (int k = 0; k < n->nparents; ++k) {
      const Node* p = n->parent(k).get();
      if (!seen.insert(p).second) continue;
      if (targets.count(p)) ++cycles;
      if (p->nparents > 0) stack.push_back(p);
    }
  }
  return cycles;
}
}  // namespace

void backward(const NodeRef& out, const NodeRef& seed, bool create_graph) {
  t_backward_cycles = 0;
  // Note [anomaly mode]: the sweep checks the cotangents; the sums into .grad below are not
  // checked, so that an anomaly never leaves some leaves updated and others not.
  detail::AnomalyQuiet quiet;
  if (!out->requires_grad)
    throw GraphError(
        "backward: the output does not require grad (no input it depends on has "
        "requires_grad=True)");
  if (!create_graph) {
    Sweep<ValueAlg> s(out.get(), value_seed(out, seed, "backward"), nullptr);
    GradMode off(false);
    for (std::size_t i = 0; i < s.order.size(); ++i) {
      Node* n = s.order[i];
      if (!s.target[i] || !s.adj[i]) continue;
      NodeRef g = node_of(s.adj[i], *n);
      n->grad = n->grad ? apply(ops::add, {n->grad, g}) : g;
    }
  } else {
    GradMode on(true);
    std::vector<NodeRef> with_graph;
    {
      Sweep<GraphAlg> s(out.get(), graph_seed(out, seed, "backward"), nullptr);
      for (std::size_t i = 0; i < s.order.size(); ++i) {
        Node* n = s.order[i];
        if (!s.target[i] || !s.adj[i]) continue;
        NodeRef g = fit(s.alg, s.adj[i], *n);
        n->grad = n->grad ? apply(ops::add, {n->grad, g}) : g;
        if (n->grad->nparents > 0) with_graph.emplace_back(n);
      }
    }
    t_backward_cycles = count_grad_cycles(with_graph);
  }
}

std::size_t backward_cycles() { return t_backward_cycles; }

std::vector<Val> grad_values(const NodeRef& out, const std::vector<NodeRef>& inputs, const NodeRef& seed,
                             const char* op) {
  Val sv = value_seed(out, seed, op);
  std::vector<Val> res;
  res.reserve(inputs.size());
  auto zeros = [](const Node& x) { return Val::filled(x.shape, x.dtype, 0.0); };
  if (!out->requires_grad) {
    for (const NodeRef& x : inputs) res.push_back(zeros(*x));
    return res;
  }
  Sweep<ValueAlg> s(out.get(), std::move(sv), &inputs);
  for (const NodeRef& x : inputs) {
    const Val* a = s.adjoint(x.get());
    res.push_back(a ? a->relabel(x->shape) : zeros(*x));
  }
  return res;
}

std::vector<NodeRef> grad_nodes(const NodeRef& out, const std::vector<NodeRef>& inputs, const NodeRef& seed,
                                const char* op) {
  GradMode on(true);
  NodeRef sv = graph_seed(out, seed, op);
  std::vector<NodeRef> res;
  res.reserve(inputs.size());
  if (!out->requires_grad) {
    for (const NodeRef& x : inputs) res.push_back(full(x->shape, x->dtype, 0.0));
    return res;
  }
  Sweep<GraphAlg> s(out.get(), std::move(sv), &inputs);
  for (const NodeRef& x : inputs) {
    const NodeRef* a = s.adjoint(x.get());
    res.push_back(a ? *a : full(x->shape, x->dtype, 0.0));
  }
  return res;
}

}  // namespace matgrad
