// SPDX-License-Identifier: MIT
#include <matgrad/autodiff.hpp>
#include <matgrad/entry.hpp>
#include <matgrad/error.hpp>

#include "ops/registry.hpp"

#include <algorithm>
#include <cstring>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace matgrad {

namespace {

// Note [the reverse sweep]
// 1. An iterative depth-first walk from the output over nodes that require a gradient gives
//    a post-order: every node after its parents. Node::mark holds its index + 1 meanwhile.
// 2. A forward pass over that order marks the nodes that lead to a requested input.
// 3. The reverse pass seeds the output and, for each node with a nonzero adjoint, runs its
//    VJP for the parents that are useful, sums each cotangent back to the parent's shape and
//    adds it to the parent's adjoint (fan-out is summed there). Adjoints of intermediate
//    nodes are dropped as soon as they have been propagated.
struct Frame {
  Node* n;
  int i;
};

// Per-thread scratch vectors, reused across sweeps (a small sweep should not pay for a dozen
// allocations). A sweep started while another runs on the same thread gets its own.
constexpr std::size_t kKeepScratch = std::size_t(1) << 16;  // nodes

template <class T>
struct Scratch {
  std::vector<Node*> order;
  std::vector<Frame> stack;
  std::vector<T> adj, in, dx;
  std::vector<char> target, useful, needs;
  bool busy = false;
};

template <class T>
Scratch<T>* acquire_scratch(std::unique_ptr<Scratch<T>>& own) {
  thread_local Scratch<T> shared;
  Scratch<T>* s = &shared;
  if (s->busy) {
    own.reset(new Scratch<T>());
    s = own.get();
  }
  s->busy = true;
  return s;
}

void stale_input(const Node& n, const Node& p) {
  throw GraphError(std::string(op_label(n.op)) + ": an input of shape " + p.shape.str() +
                   " was updated in place (an optimiser step or _assign_) after this result was computed, so "
                   "the recorded graph no longer matches it; compute the result again from the updated "
                   "tensor before calling backward");
}

template <class Alg>
typename Alg::T fit(Alg& alg, typename Alg::T v, const Node& p) {
  if (!alg.shape(v).same_storage(p.shape)) v = alg.sum_to(v, p.shape);
  if (alg.shape(v).ndim != p.shape.ndim) v = alg.reshape(v, p.shape);
  if (alg.dtype(v) != p.dtype) v = alg.cast(v, p.dtype);
  return v;
}

inline VjpValFn vjp_of(const OpDef& d, ValueAlg*) { return d.vjp_value; }
inline VjpGraphFn vjp_of(const OpDef& d, GraphAlg*) { return d.vjp_graph; }
inline VjpBatchFn vjp_of(const OpDef& d, BatchAlg*) { return d.vjp_batch; }

template <class Alg>
struct Sweep {
  using T = typename Alg::T;
  Alg alg;
  std::unique_ptr<Scratch<T>> own;
  Scratch<T>& sc;
  std::vector<Node*>& order;
  std::vector<T>& adj;
  std::vector<char>& target;

  // targets == nullptr: every leaf and every retains_grad node is a target (backward()).
  Sweep(Node* root, T seed, const std::vector<NodeRef>* targets)
      : sc(*acquire_scratch<T>(own)), order(sc.order), adj(sc.adj), target(sc.target) {
    try {
      run(root, std::move(seed), targets);
    } catch (...) {
      release();
      throw;
    }
  }
  ~Sweep() { release(); }
  Sweep(const Sweep&) = delete;
  Sweep& operator=(const Sweep&) = delete;

  void release() {
    if (!sc.busy) return;
    for (Node* n : order) n->mark = 0;
    for (Frame& f : sc.stack) f.n->mark = 0;
    order.clear();
    sc.stack.clear();
    adj.clear();
    sc.in.clear();
    sc.dx.clear();
    if (order.capacity() > kKeepScratch) {  // do not keep a huge sweep's memory for ever
      std::vector<Node*>().swap(order);
      std::vector<Frame>().swap(sc.stack);
      std::vector<T>().swap(adj);
      std::vector<char>().swap(target);
      std::vector<char>().swap(sc.useful);
    }
    sc.busy = false;
  }

  void walk(Node* root) {
    auto& stack = sc.stack;
    root->mark = -1;
    stack.push_back({root, 0});
    while (!stack.empty()) {
      Frame& f = stack.back();
      if (f.i < f.n->nparents) {
        Node* p = f.n->parent(f.i++).get();
        if (p->requires_grad && p->mark == 0) {
          p->mark = -1;
          stack.push_back({p, 0});
        }
      } else {
        Node* n = f.n;
        order.push_back(n);  // before the pop: if it throws, release() still finds n
        stack.pop_back();
        n->mark = static_cast<int>(order.size());
      }
    }
  }

  void run(Node* root, T seed, const std::vector<NodeRef>* targets) {
    walk(root);
    const std::size_t N = order.size();
    target.assign(N, 0);
    if (targets) {
      for (const NodeRef& t : *targets)
        if (t->mark > 0) target[t->mark - 1] = 1;
    } else {
      for (std::size_t i = 0; i < N; ++i) target[i] = order[i]->is_leaf() || order[i]->retains_grad;
    }
    auto& useful = sc.useful;
    useful.assign(N, 0);
    for (std::size_t i = 0; i < N; ++i) {
      char u = target[i];
      const Node* n = order[i];
      for (int k = 0; k < n->nparents && !u; ++k) {
        const Node* p = n->parent(k).get();
        u = p->mark > 0 && useful[p->mark - 1];
      }
      useful[i] = u;
    }
    adj.resize(N);
    adj[N - 1] = std::move(seed);
    auto& in = sc.in;
    auto& dx = sc.dx;
    auto& needs = sc.needs;
    for (std::size_t i = N; i-- > 0;) {
      if (!useful[i] || !adj[i]) continue;
      Node* n = order[i];
      const int np = n->nparents;
      if (np == 0) continue;
      needs.assign(np, 0);
      bool any = false;
      for (int k = 0; k < np; ++k) {
        const Node* p = n->parent(k).get();
        needs[k] = p->mark > 0 && useful[p->mark - 1];
        any = any || needs[k];
      }
      if (any) {
        for (int k = 0; k < np; ++k) {  // Note [in-place writes]
          const Node& p = *n->parent(k);
          if (p.is_leaf() && p.epoch > n->epoch) stale_input(*n, p);
        }
        in.clear();
        dx.clear();
        for (int k = 0; k < np; ++k) in.push_back(alg.input(*n->parent(k)));
        dx.resize(np);
        T out = alg.output(*n);
        VjpCtx<T> c{*n, in.data(), np, out, adj[i], reinterpret_cast<const bool*>(needs.data()), dx.data()};
        vjp_of(opdef(n->op), static_cast<Alg*>(nullptr))(alg, c);
        for (int k = 0; k < np; ++k) {
          if (!needs[k] || !dx[k]) continue;
          const Node& p = *n->parent(k);
          alg.accumulate(adj[p.mark - 1], fit(alg, std::move(dx[k]), p));
        }
      }
      if (!target[i]) adj[i] = T();
    }
  }

  // The adjoint of node n after the sweep (empty when zero or unreached).
  const T* adjoint(const Node* n) const {
    if (n->mark <= 0) return nullptr;
    const T& a = adj[n->mark - 1];
    return a ? &a : nullptr;
  }
};

static_assert(sizeof(bool) == sizeof(char), "needs[] is passed as bool");

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

void backward(const NodeRef& out, const NodeRef& seed, bool create_graph) {
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
    Sweep<GraphAlg> s(out.get(), graph_seed(out, seed, "backward"), nullptr);
    for (std::size_t i = 0; i < s.order.size(); ++i) {
      Node* n = s.order[i];
      if (!s.target[i] || !s.adj[i]) continue;
      NodeRef g = fit(s.alg, s.adj[i], *n);
      n->grad = n->grad ? apply(ops::add, {n->grad, g}) : g;
    }
  }
}

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
