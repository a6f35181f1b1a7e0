// SPDX-License-Identifier: MIT
#include <matgrad/anomaly.hpp>
#include <matgrad/node.hpp>

#include <cstdlib>
#include <cstring>
#include <new>
#include <vector>

namespace matgrad {

namespace detail {
void trim_at_thread_exit();  // value.cpp
}  // namespace detail

namespace {

// Per-thread free list of node blocks, bounded.
constexpr std::size_t kNodeCache = 1 << 14;

thread_local bool t_cache_gone = false;

struct NodeCache {
  std::vector<void*> blocks;
  NodeCache() { detail::trim_at_thread_exit(); }  // destroyed after this (Note [memory at thread exit])
  ~NodeCache() {
    for (void* p : blocks) std::free(p);
    t_cache_gone = true;
  }
};

NodeCache& node_cache() {
  thread_local NodeCache c;
  return c;
}

thread_local bool t_grad_enabled = true;

}  // namespace

void* Node::operator new(std::size_t n) {
  if (!t_cache_gone && n == sizeof(Node)) {
    NodeCache& c = node_cache();
    if (!c.blocks.empty()) {
      void* p = c.blocks.back();
      c.blocks.pop_back();
      return p;
    }
  }
  void* p = std::aligned_alloc(alignof(Node), (n + alignof(Node) - 1) / alignof(Node) * alignof(Node));
  if (!p) throw std::bad_alloc();
  return p;
}

void Node::operator delete(void* p) noexcept {
  if (t_cache_gone) {
    std::free(p);
    return;
  }
  NodeCache& c = node_cache();
  if (c.blocks.size() < kNodeCache) {
    c.blocks.push_back(p);
  } else {
    std::free(p);
  }
}

Node::~Node() {
  if (detail::anomaly_sites_recorded()) detail::anomaly_forget(this);  // Note [anomaly mode]
  if (buf) buf->unref();
}

// Note [iterative release]
// Dropping the last reference to the output of a 10^6-node chain must not recurse once per
// node. release_node detaches a dying node's parents and gradient into a per-thread pending
// list and frees them in a loop; a release that starts while the loop runs (a destructor that
// drops another graph) only appends to the list. Nodes may also die after their thread's
// thread_local objects are gone (a static or thread_local Var or Compiled destroyed at exit):
// then the pending list itself has been destroyed, and each release uses a list of its own.
namespace {
thread_local bool t_pending_gone = false;
struct Pending {
  std::vector<Node*> list;
  bool active = false;
  ~Pending() { t_pending_gone = true; }
};

void drain(std::vector<Node*>& pending) {
  while (!pending.empty()) {
    Node* x = pending.back();
    pending.pop_back();
    auto drop = [&pending](NodeRef& r) {
      if (Node* p = r.release()) {
        if (--p->rc == 0) pending.push_back(p);
      }
    };
    for (int i = 0; i < x->nparents && i < Node::kInlineParents; ++i) drop(x->parents_inline[i]);
    if (x->parents_heap) {
      for (int i = 0; i < x->nparents; ++i) drop(x->parents_heap[i]);
    }
    drop(x->grad);
    delete x;
  }
}
}  // namespace

void release_node(Node* n) {
  if (t_pending_gone) {
    std::vector<Node*> own{n};
    drain(own);
    return;
  }
  thread_local Pending p;
  p.list.push_back(n);
  if (p.active) return;
  p.active = true;
  drain(p.list);
  p.active = false;
}

std::atomic<std::uint64_t> g_inplace_writes{0};

NodeRef make_node(OpId op, Shape shape, DType dtype) {
  Node* n = new Node;  // default-initialised: the inline storage is not zeroed
  n->op = op;
  n->shape = shape;
  n->dtype = dtype;
  std::size_t bytes = std::size_t(shape.size()) * itemsize(dtype);
  if (bytes <= Node::kInlineBytes) {
    n->data = n->inline_data;
  } else {
    n->buf = Buffer::allocate(bytes);
    n->buf->ref();
    n->data = n->buf->data;
  }
  return NodeRef(n);
}

NodeRef make_leaf(const Val& v, bool requires_grad) {
  NodeRef n = make_node(kLeaf, v.shape(), v.dtype());
  std::memcpy(n->data, v.data(), std::size_t(v.shape().size()) * itemsize(v.dtype()));
  n->requires_grad = requires_grad;
  return n;
}

NodeRef make_leaf_shared(Buffer* buf, void* data, Shape shape, DType dtype, bool requires_grad) {
  Node* n = new Node;
  n->shape = shape;
  n->dtype = dtype;
  n->buf = buf;
  buf->ref();
  n->data = data;
  n->requires_grad = requires_grad;
  return NodeRef(n);
}

bool grad_enabled() { return t_grad_enabled; }
void set_grad_enabled(bool on) { t_grad_enabled = on; }

namespace {
thread_local bool t_tracing = false;
}
bool tracing() { return t_tracing; }
void set_tracing(bool on) { t_tracing = on; }
TraceMode::TraceMode() : prev_tracing_(t_tracing), prev_grad_(t_grad_enabled) {
  t_tracing = true;
  t_grad_enabled = true;
}
TraceMode::~TraceMode() {
  t_tracing = prev_tracing_;
  t_grad_enabled = prev_grad_;
}

}  // namespace matgrad
