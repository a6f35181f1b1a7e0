// SPDX-License-Identifier: MIT
// The op registry: one entry per op with its shape rule, forward kernel and VJP, and the
// entry points (matgrad/entry.hpp) that make the public ops out of them. Each op family file
// (elementwise.cpp, reduction.cpp, shape.cpp, linalg.cpp, matfun.cpp) defines its ops and entry
// points in one register_<family> function (linalg and matfun with the help of their second
// files, linalg_factor.cpp and matfun_primary.cpp); docs/architecture.md says how to add one.
#pragma once

#include <matgrad/entry.hpp>
#include <matgrad/error.hpp>
#include <matgrad/node.hpp>
#include <matgrad/ops.hpp>

#include <atomic>
#include <cmath>
#include <initializer_list>
#include <memory>
#include <vector>

namespace matgrad {

/// What an op keeps in its input's factor slot (OpDef::shares_factor): the ops of one kind share it.
enum class FactorKind : std::uint8_t { none, lu, eig, svd, expm_pade, logm_schur };

/// Where a factorization of a value is kept for every op on that value (Note [shared
/// factorizations] in linalg_factor.cpp): a node's `factor` in a graph, a workspace entry in a replay.
struct FactorSlot {
  std::shared_ptr<const Factor>* slot = nullptr;  ///< null: nowhere to keep it
  bool external = false;  ///< the value is memory someone else may change: check it is the same
  /// A replay's slot that another instruction of the same FactorKind also reads (a VJP that
  /// reuses the factorization): worth computing what it will want (Note [spectral factors] in
  /// matfun.cpp).
  bool reused = false;
};

/// Arguments of a forward kernel: write op(in...) into `out` (already shaped and allocated).
struct KernelArgs {
  const Attr& attr;
  const Val* in;
  int n;
  const Val& out;
  /// One per input, or null: where linear-algebra kernels find and keep a factorization.
  const FactorSlot* factors = nullptr;
  /// The input nodes when the op runs on a graph (null otherwise): their Node::factor is the slot.
  Node* const* nodes = nullptr;
};

/// Everything a VJP sees. `dx[i]` is left empty for a zero cotangent or when !needs[i].
template <class T>
struct VjpCtx {
  const Node& node;  ///< the op's node: attributes, and its inputs' nodes for shared factors
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
class RecordAlg;
struct BVal;
struct PVal;

using ShapeFn = Shape (*)(const Attr&, const Shape* in, int n);
using DTypeFn = DType (*)(const Attr&, const DType* in, int n);
using ForwardFn = void (*)(const KernelArgs&);
using VjpValFn = void (*)(ValueAlg&, VjpCtx<Val>&);
using VjpGraphFn = void (*)(GraphAlg&, VjpCtx<NodeRef>&);
using VjpBatchFn = void (*)(BatchAlg&, VjpCtx<BVal>&);
using VjpRecordFn = void (*)(RecordAlg&, VjpCtx<PVal>&);

/// How an op runs on a batch of values (Note [batched sweeps] in batch.cpp).
enum class BatchKind : std::uint8_t {
  generic,  ///< one kernel call per batch member
  unary,    ///< elementwise in one input: one call on the whole (k, n) batch
  binary,   ///< elementwise with broadcasting: one call, the other operand broadcast over rows
  matmul,   ///< one GEMM for the batch
  whole,    ///< its kernel takes the batches as they are stored, (k, size) matrices
};

/// The fields of Attr an op reads (printed programs and saved files carry just these).
enum AttrField : std::uint8_t {
  kAttrS = 1,        ///< s, a scalar
  kAttrAxis = 2,     ///< axis
  kAttrFlags = 4,    ///< ta, tb
  kAttrDtype = 8,    ///< dtype
  kAttrShape = 16,   ///< shape
  kAttrOffset = 32,  ///< offset
  kAttrOffset2 = 64, ///< offset2
};

/// The generic VJP instantiated for each algebra (Note [one VJP, four algebras]).
struct VjpFns {
  VjpValFn value = nullptr;
  VjpGraphFn graph = nullptr;
  VjpBatchFn batch = nullptr;
  VjpRecordFn record = nullptr;
};

struct OpDef {
  const char* name = nullptr;   ///< unique: op_id(), printed programs and saved files use it
  const char* label = nullptr;  ///< the public op it serves, for messages ("add" for add_s); null: name
  int arity = 1;  ///< -1: any number of inputs
  std::uint8_t attrs = 0;  ///< AttrField bits it reads
  ShapeFn shape = nullptr;
  DTypeFn dtype = nullptr;  ///< null: the dtype of the first input
  ForwardFn forward = nullptr;
  VjpValFn vjp_value = nullptr;  ///< null: zero derivative (piecewise constant ops)
  VjpGraphFn vjp_graph = nullptr;
  VjpBatchFn vjp_batch = nullptr;
  VjpRecordFn vjp_record = nullptr;
  BatchKind batch = BatchKind::generic;
  /// Input holding element indices (any dtype, never differentiated), or -1.
  int index_input = -1;
  /// Nonzero: its kernel keeps a factorization of input 0 in the input's factor slot, one that
  /// the other ops of this kind reuse (a replay counts the readers of each kind).
  FactorKind factor_kind = FactorKind::none;

  OpDef& vjp(VjpFns f) {
    vjp_value = f.value;
    vjp_graph = f.graph;
    vjp_batch = f.batch;
    vjp_record = f.record;
    return *this;
  }
  OpDef& labelled(const char* public_op) {
    label = public_op;
    return *this;
  }
  OpDef& reads(std::uint8_t fields) {
    attrs = fields;
    return *this;
  }
  OpDef& shares_factor(FactorKind kind) {
    factor_kind = kind;
    return *this;
  }
  OpDef& batched(BatchKind k) {
    batch = k;
    return *this;
  }
};

/// Define op `name` (the family files' one way to register an op): its number goes to *id
/// when id is not null (ops that other code refers to keep it in a variable).
OpDef& define(OpId* id, const char* name, int arity, ShapeFn shape, ForwardFn fwd);
/// Define the public entry point `name` of `family`, with front end `fn` applying `op` (the
/// generic front ends read it) and its parameters.
EntryPoint& define_entry(const char* name, const char* family, FrontFn fn, OpId op, std::vector<Param> params);

/// The factor slot of a node's value.
inline FactorSlot factor_slot(const Node& n) {
  return FactorSlot{&const_cast<Node&>(n).factor, n.buf && n.buf->size_class < 0};
}

/// A factorization a kernel keeps in its input's slot, with a copy of the values it was computed
/// from when they are memory someone else may change (Note [shared factorizations]).
struct KeptFactor : Factor {
  std::vector<unsigned char> snapshot;  ///< the input's bytes, for slots over external memory
};
/// The factor slot of a kernel's input i: the replay's workspace entry, the input node's factor
/// in a graph, or none.
FactorSlot input_factor_slot(const KernelArgs& k, int i);
/// What input i's slot keeps, when it still matches the input's values (null otherwise).
std::shared_ptr<const KeptFactor> kept_in_slot(const KernelArgs& k, int i);
/// Keep f in input i's slot, snapshotting the input when it is external memory (no slot: a no-op).
void keep_in_slot(const KernelArgs& k, int i, const std::shared_ptr<KeptFactor>& f);
/// The factorization of type F kept for input i, or null.
template <class F>
std::shared_ptr<const F> kept_factor(const KernelArgs& k, int i) {
  return std::dynamic_pointer_cast<const F>(kept_in_slot(k, i));
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

constexpr int kMaxOps = 512;
extern OpDef g_opdefs[kMaxOps];
extern std::atomic<bool> g_opdefs_ready;  // set once the registry is built
void init_opdefs();
inline const OpDef& opdef(OpId op) {
  if (!g_opdefs_ready.load(std::memory_order_acquire)) init_opdefs();
  return g_opdefs[op.v];
}
inline OpId id_of(const OpDef& d) { return OpId{static_cast<std::uint16_t>(&d - g_opdefs)}; }

// Filled by one function per op family (called once, in this order, by the registry).
void register_elementwise();
void register_reduction();
void register_shape();
void register_linalg();
void register_matfun();

// The ops that code outside their family file names (the VJP vocabulary below, the sweeps,
// other families' rules). Set when the registry is built; an op that only its own family
// refers to keeps its number in that file.
namespace ops {
extern OpId neg, exp, log, sin, cos, abs, square, sigmoid, sign, step;
extern OpId add_s, mul_s, div_s, rsub_s, pow_s;
extern OpId add, sub, mul, div, pow, xlogy, mask_nz;
extern OpId sum, logsumexp;
extern OpId transpose, reshape, broadcast_to, sum_to, cast, alias, pack, unpack, embed, block, unblock, gather;
extern OpId matmul, trace, tril, inv;
}  // namespace ops

/// The type sums of T accumulate in: float32 sums run in double, so their result is the
/// correctly rounded sum in nearly every case (NumPy's pairwise float32 sums are not).
template <class T> struct Accum {
  using type = T;
};
template <> struct Accum<float> {
  using type = double;
};

/// Dispatch a kernel template on the output dtype.
#define MG_FWD(fn)                   \
  [](const KernelArgs& k) {          \
    if (k.out.dtype() == DType::f64) \
      fn<double>(k);                 \
    else                             \
      fn<float>(k);                  \
  }
/// Declare a generic VJP: `a` is the algebra, `c` the VjpCtx.
#define MG_VJP_FN(name) template <class A> void name([[maybe_unused]] A& a, VjpCtx<typename A::T>& c)
/// The three instantiations of a generic VJP, for OpDef::vjp.
#define MG_VJP(fn) (::matgrad::VjpFns{&fn<ValueAlg>, &fn<GraphAlg>, &fn<BatchAlg>, &fn<RecordAlg>})

// Note [one VJP, four algebras]
// Each VJP is a template over an algebra A with a value type A::T, instantiated four times.
// ValueAlg::T is Val: the ops run the forward kernels straight into pooled buffers (first-order
// backward at hand-written speed). GraphAlg::T is NodeRef: the same calls create graph nodes, so
// the gradient is a graph that can be differentiated again (and compiled). BatchAlg::T is BVal: a
// batch of k cotangents at once, for Jacobians and Hessians (Note [batched sweeps] in batch.cpp).
// RecordAlg::T is PVal, a slot of a program being built: the calls append instructions, so a
// sweep (batched or not) becomes part of a compiled program (Note [compiled programs]).
// Value and graph runs call the same kernels in the same order, so they give the same bits. The
// helpers below are the vocabulary VJPs are written in.
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
  T neg(const T& x) { return op(ops::neg, {x}); }
  T add(const T& x, const T& y) { return op(ops::add, {x, y}); }
  T sub(const T& x, const T& y) { return op(ops::sub, {x, y}); }
  T mul(const T& x, const T& y) { return op(ops::mul, {x, y}); }
  T div(const T& x, const T& y) { return op(ops::div, {x, y}); }
  T pow(const T& x, const T& y) { return op(ops::pow, {x, y}); }
  T add_s(const T& x, double s) { return op(ops::add_s, {x}, scalar(s)); }
  T mul_s(const T& x, double s) { return op(ops::mul_s, {x}, scalar(s)); }
  T rsub_s(const T& x, double s) { return op(ops::rsub_s, {x}, scalar(s)); }
  T pow_s(const T& x, double s) { return op(ops::pow_s, {x}, scalar(s)); }
  T xlogy(const T& x, const T& y) { return op(ops::xlogy, {x, y}); }
  T exp(const T& x) { return op(ops::exp, {x}); }
  T log(const T& x) { return op(ops::log, {x}); }
  T sin(const T& x) { return op(ops::sin, {x}); }
  T cos(const T& x) { return op(ops::cos, {x}); }
  T square(const T& x) { return op(ops::square, {x}); }
  T sigmoid(const T& x) { return op(ops::sigmoid, {x}); }
  T sign(const T& x) { return op(ops::sign, {x}); }
  T step(const T& x) { return op(ops::step, {x}); }
  T transpose(const T& x) { return op(ops::transpose, {x}); }
  T trace(const T& x) { return op(ops::trace, {x}); }
  T cast(const T& x, DType d) {
    Attr a;
    a.dtype = d;
    return op(ops::cast, {x}, a);
  }
  T matmul(const T& x, const T& y, bool ta, bool tb) {
    Attr a;
    a.ta = ta;
    a.tb = tb;
    return op(ops::matmul, {x, y}, a);
  }
  T tril(const T& x, double diag) { return op(ops::tril, {x}, scalar(diag)); }
  T mask_nz(const T& m, const T& v) { return op(ops::mask_nz, {m, v}); }
  T unpack(const T& x, std::int64_t offset, Shape s) {
    Attr a;
    a.offset = offset;
    a.shape = s;
    return op(ops::unpack, {x}, a);
  }
  T broadcast_to(const T& x, Shape s) {
    if (self().shape(x) == s) return x;
    Attr a;
    a.shape = s;
    return op(ops::broadcast_to, {x}, a);
  }
  T sum_to(const T& x, Shape s) {
    if (self().shape(x) == s) return x;
    Attr a;
    a.shape = s;
    return op(ops::sum_to, {x}, a);
  }
};

/// Plain values: first-order backward.
class ValueAlg : public AlgebraBase<ValueAlg, Val> {
 public:
  using T = Val;
  Val apply(OpId o, const Val* in, int n, const Attr& a, const FactorSlot* factors = nullptr);
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
  void accumulate(NodeRef& slot, NodeRef&& v) { slot = slot ? matgrad::apply(ops::add, {slot, v}) : std::move(v); }
};

/// A value of the batched sweep: k == 0 an ordinary value of shape s; k > 0 a batch of k values
/// of shape s stored as the rows of a (k, s.size()) matrix.
struct BVal {
  Val v;
  std::int64_t k = 0;
  Shape s{};
  explicit operator bool() const { return bool(v); }
};

/// Run op o on a batch (Note [batched sweeps]): write out, a (k, os.size()) matrix, from in.
/// For binary elementwise ops every batched operand already has the output's sample shape and
/// the others are broadcast to it (they are read as one row). Allocates nothing when `scratch`
/// holds batch_scratch_elements(...) elements of the output's dtype.
void run_batched(OpId o, const BVal* in, int n, const Attr& a, const FactorSlot* factors, std::int64_t k,
                 const Shape& os, const Val& out, void* scratch);
std::int64_t batch_scratch_elements(OpId o, const BVal* in, int n, const Attr& a, std::int64_t k);

/// Batches of cotangents: k reverse sweeps in one (Note [batched sweeps]).
class BatchAlg : public AlgebraBase<BatchAlg, BVal> {
 public:
  using T = BVal;
  BVal apply(OpId o, const BVal* in, int n, const Attr& a, const FactorSlot* factors = nullptr);
  BVal on_node(OpId o, const Node& xn, std::initializer_list<BVal> rest, const Attr& a = {});
  static const Shape& shape(const BVal& x) { return x.s; }
  static DType dtype(const BVal& x) { return x.v.dtype(); }
  BVal reshape(const BVal& x, Shape s) { return BVal{x.k ? x.v : x.v.relabel(s), x.k, s}; }
  BVal input(const Node& p) { return BVal{p.value(), 0, p.shape}; }
  BVal output(const Node& n) { return BVal{n.value(), 0, n.shape}; }
  void accumulate(BVal& slot, BVal&& v);
};

/// A value of a recorded sweep: a slot of the program being built; k > 0 a batch of k values of
/// shape s (as BVal).
struct PVal {
  std::int64_t slot = -1;
  std::int64_t k = 0;
  Shape s{};
  DType dtype = DType::f64;
  explicit operator bool() const { return slot >= 0; }
};

class ProgramBuilder;

/// Instructions appended to a program instead of values computed (Note [compiled programs]).
class RecordAlg : public AlgebraBase<RecordAlg, PVal> {
 public:
  using T = PVal;
  explicit RecordAlg(ProgramBuilder& b) : b_(&b) {}
  PVal apply(OpId o, const PVal* in, int n, const Attr& a, const FactorSlot* factors = nullptr);
  PVal on_node(OpId o, const Node& xn, std::initializer_list<PVal> rest, const Attr& a = {});
  static const Shape& shape(const PVal& x) { return x.s; }
  static DType dtype(const PVal& x) { return x.dtype; }
  PVal reshape(const PVal& x, Shape s);
  PVal input(const Node& p);
  PVal output(const Node& n);
  void accumulate(PVal& slot, PVal&& v);

 private:
  ProgramBuilder* b_;
};

// Shape-rule helpers shared by the op families.
[[noreturn]] void fail_shapes(const char* op, const char* what, const Shape* in, int n);
Shape broadcast_shapes(const char* op, const Shape& a, const Shape& b);

// ---- front ends: what the entry points share ----

/// float32 with float64 gives float64.
inline DType promote(DType a, DType b) { return a == DType::f64 || b == DType::f64 ? DType::f64 : DType::f32; }
/// An operand as a node: a weak number becomes a 0-D constant of dtype `weak`.
NodeRef operand(const Arg& a, DType weak = DType::f64);
/// op(x, y) after promoting the two to one dtype.
NodeRef apply_promoted(OpId op, const NodeRef& x, const NodeRef& y, const Attr& a = {});
/// op(x) with the scalar attribute s (a weak number: x keeps its dtype).
NodeRef apply_scalar(OpId op, const NodeRef& x, double s);
/// The axis argument for an operand of shape s: kAxisNone for None, else checked.
int axis_arg(const char* op, const Arg& a, const Shape& s);
/// Generic front ends: e.op applied to the one operand, (e.op)(x, axis), and e.op applied to
/// two operands after promotion (weak numbers take the other operand's dtype).
Results front_unary(const EntryPoint& e, const Arg* a);
Results front_axis(const EntryPoint& e, const Arg* a);
Results front_binary(const EntryPoint& e, const Arg* a);

/// Defines one-operand entry points of a family with front_unary: unary(name, op, what, shapes,
/// rule) is define_entry(name, family, front_unary, op, {operand}).doc(what, shapes, rule).
struct UnaryEntries {
  const char* family;
  const char* operand;  ///< the operand's name ("x", "a")
  EntryPoint& operator()(const char* name, OpId op, const char* what, const char* shapes, const char* rule) const {
    return define_entry(name, family, front_unary, op, {Param{operand, ParamKind::operand}}).doc(what, shapes, rule);
  }
};

}  // namespace matgrad
