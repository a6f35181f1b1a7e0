// SPDX-License-Identifier: MIT
#include <matgrad/autodiff.hpp>
#include <matgrad/error.hpp>

#include "ops/registry.hpp"

#include <cstring>
#include <memory>
#include <string>
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

template <class Alg>
typename Alg::T fit(Alg& alg, typename Alg::T v, const Node& p) {
  if (!alg.shape(v).same_storage(p.shape)) v = alg.sum_to(v, p.shape);
  if (alg.shape(v).ndim != p.shape.ndim) v = alg.reshape(v, p.shape);
  if (alg.dtype(v) != p.dtype) v = alg.cast(v, p.dtype);
  return v;
}

inline VjpValFn vjp_of(const OpDef& d, ValueAlg*) { return d.vjp_value; }
inline VjpGraphFn vjp_of(const OpDef& d, GraphAlg*) { return d.vjp_graph; }

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

}  // namespace

void backward(const NodeRef& out, const NodeRef& seed, bool create_graph) {
  if (!out->requires_grad)
    throw GraphError("backward: the output does not require grad (no input it depends on has "
                     "requires_grad=True)");
  if (!create_graph) {
    Sweep<ValueAlg> s(out.get(), value_seed(out, seed, "backward"), nullptr);
    GradMode off(false);
    for (std::size_t i = 0; i < s.order.size(); ++i) {
      Node* n = s.order[i];
      if (!s.target[i] || !s.adj[i]) continue;
      NodeRef g = node_of(s.adj[i], *n);
      n->grad = n->grad ? apply(OpId::add, {n->grad, g}) : g;
    }
  } else {
    GradMode on(true);
    Sweep<GraphAlg> s(out.get(), graph_seed(out, seed, "backward"), nullptr);
    for (std::size_t i = 0; i < s.order.size(); ++i) {
      Node* n = s.order[i];
      if (!s.target[i] || !s.adj[i]) continue;
      NodeRef g = fit(s.alg, s.adj[i], *n);
      n->grad = n->grad ? apply(OpId::add, {n->grad, g}) : g;
    }
  }
}

std::vector<Val> grad_values(const NodeRef& out, const std::vector<NodeRef>& inputs, const NodeRef& seed) {
  Val sv = value_seed(out, seed, "grad");
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

std::vector<NodeRef> grad_nodes(const NodeRef& out, const std::vector<NodeRef>& inputs, const NodeRef& seed) {
  GradMode on(true);
  NodeRef sv = graph_seed(out, seed, "grad");
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
