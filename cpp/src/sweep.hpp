// SPDX-License-Identifier: MIT
// The reverse sweep over a graph, generic in the algebra it runs the VJPs in (autodiff.cpp
// runs it on values, graph nodes and batches; the program builder on recorded instructions).
#pragma once

#include <matgrad/error.hpp>
#include <matgrad/interrupt.hpp>

#include "anomaly_check.hpp"
#include "ops/registry.hpp"

#include <algorithm>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace matgrad::detail {

// Note [the reverse sweep]
// 1. An iterative depth-first walk from the output over nodes that require a gradient gives
//    a post-order: every node after its parents. Node::mark holds its index + 1 meanwhile.
// 2. A forward pass over that order marks the nodes that lead to a requested input.
// 3. The reverse pass seeds the output and, for each node with a nonzero adjoint, runs its
//    VJP for the parents that are useful, sums each cotangent back to the parent's shape and
//    adds it to the parent's adjoint (fan-out is summed there). Adjoints of intermediate
//    nodes are dropped as soon as they have been propagated.
// 4. It polls for an interrupt (matgrad/interrupt.hpp) every kInterruptStride nodes of the
//    walk and every kInterruptStride units of work of the reverse pass (a node with a large
//    adjoint counts as many): an interrupted sweep throws before anything reaches a leaf's
//    .grad.
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

inline void stale_input(const Node& n, const Node& p) {
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

// The values of a cotangent, for anomaly mode's check (none for program slots).
inline Val anomaly_value(const Val& v) { return v; }
inline Val anomaly_value(const NodeRef& n) { return n ? n->value() : Val(); }
inline Val anomaly_value(const BVal& b) { return b.v; }
template <class T>
Val anomaly_value(const T&) {
  return Val();
}

// The elements of an adjoint, for the interrupt polls' count of work (none for program slots).
inline long long elements_of(const Val& v) { return v ? v.shape().size() : 0; }
inline long long elements_of(const NodeRef& n) { return n ? n->shape.size() : 0; }
inline long long elements_of(const BVal& b) { return b.v ? b.v.shape().size() : 0; }
template <class T>
long long elements_of(const T&) {
  return 0;
}

inline VjpValFn vjp_of(const OpDef& d, ValueAlg*) { return d.vjp_value; }
inline VjpGraphFn vjp_of(const OpDef& d, GraphAlg*) { return d.vjp_graph; }
inline VjpBatchFn vjp_of(const OpDef& d, BatchAlg*) { return d.vjp_batch; }
inline VjpRecordFn vjp_of(const OpDef& d, RecordAlg*) { return d.vjp_record; }

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
  Sweep(Node* root, T seed, const std::vector<NodeRef>* targets) : Sweep(Alg(), root, std::move(seed), targets) {}
  Sweep(Alg a, Node* root, T seed, const std::vector<NodeRef>* targets)
      : alg(std::move(a)), sc(*acquire_scratch<T>(own)), order(sc.order), adj(sc.adj), target(sc.target) {
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
    int since_poll = 0;
    while (!stack.empty()) {
      if (++since_poll == kInterruptStride) {  // a walk over 5 * 10^6 nodes takes 0.25 s
        since_poll = 0;
        poll_interrupt();
      }
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
      if ((i & (kInterruptStride - 1)) == kInterruptStride - 1) poll_interrupt();
      char u = target[i];
      const Node* n = order[i];
      for (int k = 0; k < n->nparents && !u; ++k) {
        const Node* p = n->parent(k).get();
        u = p->mark > 0 && useful[p->mark - 1];
      }
      useful[i] = u;
    }
    // 5 * 10^6 adjoints are 240 MB of fresh pages: made in steps, polling between them
    adj.reserve(N);
    for (std::size_t done = adj.size(); done < N;) {
      done = std::min(N, done + (std::size_t(kInterruptStride) << 6));
      adj.resize(done);
      if (done < N) poll_interrupt();
    }
    adj[N - 1] = std::move(seed);
    auto& in = sc.in;
    auto& dx = sc.dx;
    auto& needs = sc.needs;
    long long since_poll = 0;
    // Note [anomaly mode]: the ops inside VJPs are not checked one by one; their results are.
    const bool anomaly = anomaly_enabled();
    std::optional<AnomalyQuiet> quiet;
    if (anomaly) quiet.emplace();
    for (std::size_t i = N; i-- > 0;) {
      if (!useful[i] || !adj[i]) {
        if (++since_poll >= kInterruptStride) {  // not at all in a sweep of fewer nodes
          since_poll = 0;
          poll_interrupt();
        }
        continue;
      }
      since_poll += interrupt_work(elements_of(adj[i]));
      if (since_poll >= kInterruptStride) {
        since_poll = 0;
        poll_interrupt();
      }
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
        if (anomaly) check_cotangents(*n, adj[i], np);
        for (int k = 0; k < np; ++k) {
          if (!needs[k] || !dx[k]) continue;
          const Node& p = *n->parent(k);
          alg.accumulate(adj[p.mark - 1], fit(alg, std::move(dx[k]), p));
        }
      }
      if (!target[i]) adj[i] = T();
    }
  }

  // Anomaly mode: a NaN or an Inf in a cotangent the VJP of n gave, from a finite adjoint of n,
  // unless n's value or inputs had one already (a NaN that came with the data is not the op's
  // doing, forward or backward).
  void check_cotangents(const Node& n, const T& a, int np) {
    for (int k = 0; k < np; ++k) {
      if (!sc.needs[k] || !sc.dx[k]) continue;
      const Val v = anomaly_value(sc.dx[k]);
      const Finite got = classify(v);
      if (got == Finite::all || classify(anomaly_value(a)) != Finite::all) continue;
      Finite had = classify(n.value());
      for (int q = 0; q < np && had != Finite::nan; ++q) had = std::max(had, classify(n.parent(q)->value()));
      if (had < got || (got == Finite::inf && had == Finite::all)) anomaly_backward(n, k, v, got);
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

}  // namespace matgrad::detail
