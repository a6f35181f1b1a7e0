// SPDX-License-Identifier: MIT
#pragma once

#include <matgrad/value.hpp>

#include <atomic>
#include <cstdint>
#include <memory>
#include <utility>

namespace matgrad {

/// Intrusive reference to a counted object (a graph node). Counts are not atomic: a graph
/// belongs to one thread at a time (Python holds the GIL while it touches graphs).
template <class T>
class Ref {
 public:
  Ref() = default;
  Ref(std::nullptr_t) {}
  explicit Ref(T* p) : p_(p) {
    if (p_) intrusive_ref(p_);
  }
  Ref(const Ref& o) : p_(o.p_) {
    if (p_) intrusive_ref(p_);
  }
  Ref(Ref&& o) noexcept : p_(o.p_) { o.p_ = nullptr; }
  Ref& operator=(Ref o) noexcept {
    std::swap(p_, o.p_);
    return *this;
  }
  ~Ref() {
    if (p_) intrusive_unref(p_);
  }
  T* get() const { return p_; }
  T* operator->() const { return p_; }
  T& operator*() const { return *p_; }
  explicit operator bool() const { return p_ != nullptr; }
  bool operator==(const Ref& o) const { return p_ == o.p_; }
  bool operator!=(const Ref& o) const { return p_ != o.p_; }
  /// Give up ownership without decrementing (for iterative release).
  T* release() {
    T* p = p_;
    p_ = nullptr;
    return p;
  }

 private:
  T* p_ = nullptr;
};

/// An op of the registry (cpp/src/ops/registry.hpp): the index of its entry. Ops are numbered
/// when the registry is built, in registration order, so a number means nothing outside one
/// process: messages, printed programs and saved files name ops by op_name().
struct OpId {
  std::uint16_t v = 0;
  friend constexpr bool operator==(OpId a, OpId b) { return a.v == b.v; }
  friend constexpr bool operator!=(OpId a, OpId b) { return a.v != b.v; }
};
/// The op of leaves (inputs and constants): always entry 0.
constexpr OpId kLeaf{0};

/// Axis value meaning "all axes".
constexpr std::int32_t kAxisNone = 1000;

/// Op attributes: the non-tensor arguments of an op. Plain data, copied into the node.
struct Attr {
  double s = 0.0;          ///< scalar operand (add_s, mul_s, pow_s, ...)
  std::int32_t axis = kAxisNone;
  bool ta = false;         ///< matmul: transpose the left operand
  bool tb = false;         ///< matmul: transpose the right operand
  DType dtype = DType::f64;  ///< cast: target dtype
  Shape shape{};           ///< reshape/broadcast_to/sum_to/unpack/embed: target shape
  std::int64_t offset = 0;  ///< unpack/embed: element offset; block/unblock: first row; diag: k
  std::int64_t offset2 = 0;  ///< block/unblock: first column
};

/// A factorization of a node's value (Note [shared factorizations] in ops/linalg_factor.cpp).
struct Factor {
  virtual ~Factor() = default;
};

struct Node;
inline void intrusive_ref(Node* n);
inline void intrusive_unref(Node* n);
using NodeRef = Ref<Node>;

// Note [multiple outputs]
// An op with several results (slogdet's sign and log|det|, a factorization and what is computed
// from it) writes them, one after the other, into the single packed 1-D value of its node, and
// each result is an `unpack` node (offset + shape) of it. The VJP of unpack is `embed` (the
// cotangent placed at its offset in zeros), so the cotangents of all the outputs a program uses
// sum into one packed cotangent, which the op's own VJP unpacks: the sweep and the two VJP
// algebras need nothing special. `pack` builds such a node from separate values.

/// How many in-place writes to leaves there have been (optimiser steps, _assign_), all threads.
/// Note [in-place writes]: a node records this count when it is made, a leaf again when it is
/// written in place (prepare_in_place, optim.hpp, the one door for such writes, bumps it); a
/// reverse sweep refuses a node whose leaf input was written after the node was made (its VJP
/// would mix the new value with the old result), as PyTorch's version counters do.
extern std::atomic<std::uint64_t> g_inplace_writes;

/// A node of the graph: x_i = g_i(parents). Its value is computed when it is created (eager).
/// Leaves (op == kLeaf) have no parents. Values of at most kInlineBytes live inside the node.
struct Node {
  static constexpr std::size_t kInlineBytes = 128;
  static constexpr int kInlineParents = 3;

  std::int32_t rc = 0;
  OpId op = kLeaf;
  DType dtype = DType::f64;
  bool requires_grad = false;
  bool retains_grad = false;
  bool traced = false;  ///< depends on an input of a compile trace (Note [tracing])
  std::uint16_t nparents = 0;
  std::int32_t mark = 0;  ///< scratch for graph walks (0 when idle)
  Shape shape{};
  Attr attr{};
  void* data = nullptr;       ///< the value, row-major rows x cols
  Buffer* buf = nullptr;      ///< owner of `data` unless it is inline
  NodeRef parents_inline[kInlineParents];
  std::unique_ptr<NodeRef[]> parents_heap;  ///< when nparents > kInlineParents
  /// The LU of this node's value, once an op needed it. Whoever writes a value in place (an
  /// optimiser step on a leaf) must reset it.
  std::shared_ptr<const Factor> factor;
  NodeRef grad;  ///< accumulated gradient (leaves and retain_grad nodes)
  /// g_inplace_writes when made; for a leaf, when last written in place (Note [in-place writes])
  std::uint64_t epoch = g_inplace_writes.load(std::memory_order_relaxed);
  alignas(64) unsigned char inline_data[kInlineBytes];

  Node() = default;
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;
  ~Node();

  const NodeRef& parent(int i) const { return nparents > kInlineParents ? parents_heap[i] : parents_inline[i]; }
  bool is_leaf() const { return op == kLeaf; }
  /// The value as a borrowed handle (valid while the node lives).
  Val value() const { return Val(data, shape, dtype, buf); }
  template <class T> MapMat<T> mat() const { return MapMat<T>(static_cast<T*>(data), shape.rows, shape.cols); }

  /// Pooled allocation of nodes (a per-thread free list).
  static void* operator new(std::size_t n);
  static void operator delete(void* p) noexcept;
};

/// Free a node whose count reached zero, and iteratively every ancestor that only it held.
void release_node(Node* n);
inline void intrusive_ref(Node* n) { ++n->rc; }
inline void intrusive_unref(Node* n) {
  if (--n->rc == 0) release_node(n);
}

/// A new node with uninitialised storage for `shape` x `dtype` (inline when small).
NodeRef make_node(OpId op, Shape shape, DType dtype);
/// A leaf holding a copy of `v`.
NodeRef make_leaf(const Val& v, bool requires_grad);
/// A leaf over an existing buffer (no copy); the buffer is referenced, not owned exclusively.
NodeRef make_leaf_shared(Buffer* buf, void* data, Shape shape, DType dtype, bool requires_grad);

// Note [tracing]
// compile() runs the user's function once on input leaves marked `traced`, with tracing on
// (per thread). Every op on a traced node then records its parents, whether or not a gradient
// is wanted: mg.no_grad() inside the function still stops gradients (requires_grad stays
// false, so sweeps do not go through) but not the recording, so the compiled program computes
// such values from each call's inputs instead of baking in the traced ones. Value reads of
// traced tensors (.numpy(), float(), ...) are refused meanwhile (the bindings check).
bool tracing();
void set_tracing(bool on);
/// RAII guard that turns tracing on (and grad mode on) and restores both.
class TraceMode {
 public:
  TraceMode();
  ~TraceMode();
  TraceMode(const TraceMode&) = delete;
  TraceMode& operator=(const TraceMode&) = delete;

 private:
  bool prev_tracing_, prev_grad_;
};

/// Whether ops record edges (mg.no_grad() turns this off). Per thread.
bool grad_enabled();
void set_grad_enabled(bool on);
/// RAII guard that sets grad mode and restores it.
class GradMode {
 public:
  explicit GradMode(bool on) : prev_(grad_enabled()) { set_grad_enabled(on); }
  ~GradMode() { set_grad_enabled(prev_); }
  GradMode(const GradMode&) = delete;
  GradMode& operator=(const GradMode&) = delete;

 private:
  bool prev_;
};

}  // namespace matgrad
