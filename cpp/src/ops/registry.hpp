// SPDX-License-Identifier: MIT
// The op registry: one entry per op with its shape rule, forward kernel and VJP.
#pragma once

#include <matgrad/error.hpp>
#include <matgrad/node.hpp>
#include <matgrad/ops.hpp>

#include <cmath>
#include <initializer_list>
#include <memory>

namespace matgrad {

/// Arguments of a forward kernel: write op(in...) into `out` (already shaped and allocated).
struct KernelArgs {
  const Attr& attr;
  const Val* in;
  int n;
  const Val& out;
  std::unique_ptr<OpState>* state;  ///< where to keep state for the VJP (may be null)
  /// The input nodes when the op runs on a graph (entries may be null; the array may be null):
  /// lets linear-algebra kernels share a factorization kept on the input node.
  Node* const* nodes = nullptr;
};

/// Everything a VJP sees. `dx[i]` is left empty for a zero cotangent or when !needs[i].
template <class T>
struct VjpCtx {
  const Node& node;  ///< the op's node: attributes and saved state
  const T* in;
  int n;
  const T& out;
  const T& g;
  const bool* needs;
  T* dx;
};

class ValueAlg;
class GraphAlg;
class BatchAlg;
struct BVal;

using ShapeFn = Shape (*)(const Attr&, const Shape* in, int n);
using DTypeFn = DType (*)(const Attr&, const DType* in, int n);
using ForwardFn = void (*)(const KernelArgs&);
using VjpValFn = void (*)(ValueAlg&, VjpCtx<Val>&);
using VjpGraphFn = void (*)(GraphAlg&, VjpCtx<NodeRef>&);
using VjpBatchFn = void (*)(BatchAlg&, VjpCtx<BVal>&);

/// How an op runs on a batch of values (Note [batched sweeps] in autodiff_batch.cpp).
enum class BatchKind : std::uint8_t {
  generic,  ///< one kernel call per batch member
  unary,    ///< elementwise in one input: one call on the whole (k, n) batch
  binary,   ///< elementwise with broadcasting: one call, the other operand broadcast over rows
  matmul,   ///< one GEMM for the batch
};

struct OpDef {
  const char* name = nullptr;
  int arity = 1;  ///< -1: any number of inputs
  ShapeFn shape = nullptr;
  DTypeFn dtype = nullptr;  ///< null: the dtype of the first input
  ForwardFn forward = nullptr;
  VjpValFn vjp_value = nullptr;  ///< null: zero derivative (piecewise constant ops)
  VjpGraphFn vjp_graph = nullptr;
  VjpBatchFn vjp_batch = nullptr;
  BatchKind batch = BatchKind::generic;
  /// Input holding element indices (any dtype, never differentiated), or -1.
  int index_input = -1;
};

/// Fill the common fields of an op's registry entry (the family files then add a VJP and any
/// other field).
inline OpDef& define(OpDef* table, OpId id, const char* name, int arity, ShapeFn shape, ForwardFn fwd) {
  OpDef& d = table[static_cast<int>(id)];
  d.name = name;
  d.arity = arity;
  d.shape = shape;
  d.forward = fwd;
  return d;
}

/// Fixed storage for the usual number of op inputs, a heap array beyond.
template <class T, int N = 4>
struct SmallArray {
  T inl[N];
  std::unique_ptr<T[]> heap;
  T* p;
  explicit SmallArray(int n) : p(inl) {
    if (n > N) {
      heap.reset(new T[n]);
      p = heap.get();
    }
  }
  T& operator[](int i) { return p[i]; }
};

extern OpDef g_opdefs[static_cast<int>(OpId::count_)];
extern bool g_opdefs_ready;
void init_opdefs();
inline const OpDef& opdef(OpId op) {
  if (!g_opdefs_ready) init_opdefs();
  return g_opdefs[static_cast<int>(op)];
}

// Filled by one function per op family (called once, in order, by the registry).
void register_elementwise(OpDef* table);
void register_reduction(OpDef* table);
void register_shape(OpDef* table);
void register_linalg(OpDef* table);

/// The type sums of T accumulate in: float32 sums run in double, so their result is the
/// correctly rounded sum in nearly every case (NumPy's pairwise float32 sums are not).
template <class T> struct Accum { using type = T; };
template <> struct Accum<float> { using type = double; };

/// Dispatch a kernel template on the output dtype.
#define MG_FWD(fn)                                       \
  [](const KernelArgs& k) {                              \
    if (k.out.dtype() == DType::f64)                     \
      fn<double>(k);                                     \
    else                                                 \
      fn<float>(k);                                      \
  }
/// Declare a generic VJP: `a` is the algebra, `c` the VjpCtx.
#define MG_VJP_FN(name) template <class A> void name([[maybe_unused]] A& a, VjpCtx<typename A::T>& c)
/// Register one generic VJP for both algebras.
#define MG_VJP(def, fn)                  \
  do {                                   \
    (def).vjp_value = &fn<ValueAlg>;     \
    (def).vjp_graph = &fn<GraphAlg>;     \
    (def).vjp_batch = &fn<BatchAlg>;     \
  } while (0)

// Note [one VJP, two algebras]
// Each VJP is a template over an algebra A with a value type A::T. ValueAlg::T is Val: the ops
// run the forward kernels straight into pooled buffers (first-order backward at hand-written
// speed). GraphAlg::T is NodeRef: the same calls create graph nodes, so the gradient is a graph
// that can be differentiated again. Both run the same kernels in the same order, so both give
// the same bits. The helpers below are the vocabulary VJPs are written in.
template <class Derived, class T>
class AlgebraBase {
 public:
  Derived& self() { return static_cast<Derived&>(*this); }
  T op(OpId o, std::initializer_list<T> in, const Attr& a = {}) {
    return self().apply(o, in.begin(), static_cast<int>(in.size()), a);
  }
  static Attr scalar(double s) {
    Attr a;
    a.s = s;
    return a;
  }
  T neg(const T& x) { return op(OpId::neg, {x}); }
  T add(const T& x, const T& y) { return op(OpId::add, {x, y}); }
  T sub(const T& x, const T& y) { return op(OpId::sub, {x, y}); }
  T mul(const T& x, const T& y) { return op(OpId::mul, {x, y}); }
  T div(const T& x, const T& y) { return op(OpId::div, {x, y}); }
  T pow(const T& x, const T& y) { return op(OpId::pow, {x, y}); }
  T add_s(const T& x, double s) { return op(OpId::add_s, {x}, scalar(s)); }
  T mul_s(const T& x, double s) { return op(OpId::mul_s, {x}, scalar(s)); }
  T rsub_s(const T& x, double s) { return op(OpId::rsub_s, {x}, scalar(s)); }
  T pow_s(const T& x, double s) { return op(OpId::pow_s, {x}, scalar(s)); }
  T xlogy(const T& x, const T& y) { return op(OpId::xlogy, {x, y}); }
  T exp(const T& x) { return op(OpId::exp, {x}); }
  T log(const T& x) { return op(OpId::log, {x}); }
  T sin(const T& x) { return op(OpId::sin, {x}); }
  T cos(const T& x) { return op(OpId::cos, {x}); }
  T square(const T& x) { return op(OpId::square, {x}); }
  T sigmoid(const T& x) { return op(OpId::sigmoid, {x}); }
  T sign(const T& x) { return op(OpId::sign, {x}); }
  T step(const T& x) { return op(OpId::step, {x}); }
  T transpose(const T& x) { return op(OpId::transpose, {x}); }
  T trace(const T& x) { return op(OpId::trace, {x}); }
  T cast(const T& x, DType d) {
    Attr a;
    a.dtype = d;
    return op(OpId::cast, {x}, a);
  }
  T matmul(const T& x, const T& y, bool ta, bool tb) {
    Attr a;
    a.ta = ta;
    a.tb = tb;
    return op(OpId::matmul, {x, y}, a);
  }
  T tril(const T& x, double diag) { return op(OpId::tril, {x}, scalar(diag)); }
  T mask_nz(const T& m, const T& v) { return op(OpId::mask_nz, {m, v}); }
  T unpack(const T& x, std::int64_t offset, Shape s) {
    Attr a;
    a.offset = offset;
    a.shape = s;
    return op(OpId::unpack, {x}, a);
  }
  T broadcast_to(const T& x, Shape s) {
    if (self().shape(x) == s) return x;
    Attr a;
    a.shape = s;
    return op(OpId::broadcast_to, {x}, a);
  }
  T sum_to(const T& x, Shape s) {
    if (self().shape(x) == s) return x;
    Attr a;
    a.shape = s;
    return op(OpId::sum_to, {x}, a);
  }
};

/// Plain values: first-order backward.
class ValueAlg : public AlgebraBase<ValueAlg, Val> {
 public:
  using T = Val;
  Val apply(OpId o, const Val* in, int n, const Attr& a, Node* const* nodes = nullptr);
  /// op(x, rest...) where x is the value of node `xn`: the kernel may reuse a factorization
  /// kept on xn (Note [shared factorizations]).
  Val on_node(OpId o, const Node& xn, std::initializer_list<Val> rest, const Attr& a = {});
  static const Shape& shape(const Val& x) { return x.shape(); }
  static DType dtype(const Val& x) { return x.dtype(); }
  Val reshape(const Val& x, Shape s) { return x.relabel(s); }
  Val input(const Node& p) { return p.value(); }
  Val output(const Node& n) { return n.value(); }
  /// slot += v (in place when the slot owns its buffer alone).
  void accumulate(Val& slot, Val&& v);
};

/// Graph nodes: create_graph=True and compile.
class GraphAlg : public AlgebraBase<GraphAlg, NodeRef> {
 public:
  using T = NodeRef;
  NodeRef apply(OpId o, const NodeRef* in, int n, const Attr& a) { return matgrad::apply(o, in, n, a); }
  NodeRef on_node(OpId o, const Node& xn, std::initializer_list<NodeRef> rest, const Attr& a = {});
  static const Shape& shape(const NodeRef& x) { return x->shape; }
  static DType dtype(const NodeRef& x) { return x->dtype; }
  NodeRef reshape(const NodeRef& x, Shape s) { return x->shape == s ? x : matgrad::reshape(x, s); }
  NodeRef input(const Node& p) { return NodeRef(const_cast<Node*>(&p)); }
  NodeRef output(const Node& n) { return NodeRef(const_cast<Node*>(&n)); }
  void accumulate(NodeRef& slot, NodeRef&& v) { slot = slot ? matgrad::apply(OpId::add, {slot, v}) : std::move(v); }
};

/// A value of the batched sweep: k == 0 an ordinary value of shape s; k > 0 a batch of k values
/// of shape s stored as the rows of a (k, s.size()) matrix.
struct BVal {
  Val v;
  std::int64_t k = 0;
  Shape s{};
  explicit operator bool() const { return bool(v); }
};

/// Batches of cotangents: k reverse sweeps in one (Note [batched sweeps]).
class BatchAlg : public AlgebraBase<BatchAlg, BVal> {
 public:
  using T = BVal;
  BVal apply(OpId o, const BVal* in, int n, const Attr& a, Node* const* nodes = nullptr);
  BVal on_node(OpId o, const Node& xn, std::initializer_list<BVal> rest, const Attr& a = {});
  static const Shape& shape(const BVal& x) { return x.s; }
  static DType dtype(const BVal& x) { return x.v.dtype(); }
  BVal reshape(const BVal& x, Shape s) { return BVal{x.k ? x.v : x.v.relabel(s), x.k, s}; }
  BVal input(const Node& p) { return BVal{p.value(), 0, p.shape}; }
  BVal output(const Node& n) { return BVal{n.value(), 0, n.shape}; }
  void accumulate(BVal& slot, BVal&& v);
};

// Shape-rule helpers shared by the op families.
[[noreturn]] void fail_shapes(const char* op, const char* what, const Shape* in, int n);
Shape broadcast_shapes(const char* op, const Shape& a, const Shape& b);

}  // namespace matgrad
