// SPDX-License-Identifier: MIT
#include "registry.hpp"

#include "../anomaly_check.hpp"

#include <atomic>

#include <cstring>
#include <deque>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace matgrad {

OpDef g_opdefs[kMaxOps];
std::atomic<bool> g_opdefs_ready{false};

namespace ops {
OpId neg, exp, log, sin, cos, abs, square, sigmoid, sign, step;
OpId add_s, mul_s, div_s, rsub_s, pow_s;
OpId add, sub, mul, div, pow, xlogy, mask_nz;
OpId sum, logsumexp;
OpId transpose, reshape, broadcast_to, sum_to, cast, alias, pack, unpack, embed, block, unblock, gather;
OpId matmul, trace, tril, inv;
}  // namespace ops

namespace {

int g_nops = 0;
// Stable addresses: the entry points are referred to by pointer (bindings, entry_point()).
std::deque<EntryPoint>& entry_storage() {
  static std::deque<EntryPoint> e;
  return e;
}
std::vector<const EntryPoint*>& entry_list() {
  static std::vector<const EntryPoint*> v;
  return v;
}

}  // namespace

void init_opdefs() {
  static const bool once = [] {
    g_opdefs[0].name = "leaf";
    g_opdefs[0].arity = 0;
    g_nops = 1;
    register_elementwise();
    register_reduction();
    register_shape();
    register_linalg();
    register_matfun();
    return true;
  }();
  g_opdefs_ready.store(once, std::memory_order_release);
}
// The registry is built when the library loads (and, before that, on first use).
[[maybe_unused]] const bool g_registry_built = (init_opdefs(), true);

OpDef& define(OpId* id, const char* name, int arity, ShapeFn shape, ForwardFn fwd) {
  if (g_nops >= kMaxOps) throw std::logic_error("matgrad: too many ops (raise kMaxOps)");
  const OpId o{static_cast<std::uint16_t>(g_nops++)};
  if (id) *id = o;
  OpDef& d = g_opdefs[o.v];
  d.name = name;
  d.arity = arity;
  d.shape = shape;
  d.forward = fwd;
  return d;
}

EntryPoint& define_entry(const char* name, const char* family, FrontFn fn, OpId op, std::vector<Param> params) {
  EntryPoint& e = entry_storage().emplace_back();
  e.name = name;
  e.family = family;
  e.fn = fn;
  e.op = op;
  e.params = std::move(params);
  entry_list().push_back(&e);
  return e;
}

const char* op_name(OpId op) { return opdef(op).name; }
const char* op_label(OpId op) {
  const OpDef& d = opdef(op);
  return d.label ? d.label : d.name;
}
int op_count() {
  init_opdefs();
  return g_nops;
}
OpId op_id(const char* name) {
  init_opdefs();
  for (int i = 0; i < g_nops; ++i)
    if (std::strcmp(g_opdefs[i].name, name) == 0) return OpId{static_cast<std::uint16_t>(i)};
  throw ValueError(std::string("op_id: no op is called '") + name + "'");
}

const std::vector<const EntryPoint*>& entry_points() {
  init_opdefs();
  return entry_list();
}
const EntryPoint& entry_point(const char* name) {
  for (const EntryPoint* e : entry_points())
    if (std::strcmp(e->name, name) == 0) return *e;
  throw ValueError(std::string("entry_point: no public op is called '") + name + "'");
}

Results call(const EntryPoint& e, const Arg* args, int n) {
  const int np = static_cast<int>(e.params.size());
  if (n > np)
    throw TypeError(std::string(e.name) + ": takes at most " + std::to_string(np) + " arguments, got " +
                    std::to_string(n));
  if (n == np) return e.fn(e, args);
  SmallArray<Arg> full(np);
  for (int i = 0; i < np; ++i) {
    if (i < n) {
      full[i] = args[i];
    } else if (!e.params[i].default_value) {
      throw TypeError(std::string(e.name) + ": missing argument '" + e.params[i].name + "'");
    } else if (std::strcmp(e.params[i].default_value, "None") != 0) {
      full[i] = Arg::integer(std::stoll(e.params[i].default_value));
    }
  }
  return e.fn(e, full.p);
}

namespace {
const char* py_type(ParamKind k) {
  switch (k) {
    case ParamKind::operands:
      return "Sequence";
    default:
      return "object";
  }
}
}  // namespace

std::string EntryPoint::signature(const char* as_name, bool self) const {
  std::string s = std::string(as_name ? as_name : name) + "(";
  for (std::size_t i = 0; i < params.size(); ++i) {
    if (i) s += ", ";
    if (i == 0 && self) {
      s += "self: matgrad._core.Tensor";
      continue;
    }
    s += std::string(params[i].name) + ": " + py_type(params[i].kind);
    if (params[i].default_value) s += std::string(" = ") + params[i].default_value;
  }
  s += ") -> ";
  if (tuple) {
    s += "tuple[";
    for (int i = 0; i < tuple; ++i) s += i ? ", matgrad._core.Tensor" : "matgrad._core.Tensor";
    s += "]";
  } else {
    s += "matgrad._core.Tensor";
  }
  return s;
}

std::string EntryPoint::docstring() const {
  std::string d = signature() + "\n\n" + what;
  if (shapes) d += std::string("\n\nShapes: ") + shapes;
  if (rule) d += std::string("\n\n") + rule;
  return d;
}

void fail_shapes(const char* op, const char* what, const Shape* in, int n) {
  std::string msg = std::string(op) + ": ";
  if (n == 1) {
    msg += "shape " + in[0].str();
  } else {
    msg += "shapes ";
    for (int i = 0; i < n; ++i) msg += (i ? (i + 1 == n ? " and " : ", ") : "") + in[i].str();
  }
  msg += std::string(" ") + what;
  throw ShapeError(msg);
}

Shape broadcast_shapes(const char* op, const Shape& a, const Shape& b) {
  auto dim = [&](std::int64_t x, std::int64_t y) {
    if (x == y || y == 1) return x;
    if (x == 1) return y;
    Shape s[2] = {a, b};
    fail_shapes(op, "cannot be broadcast together", s, 2);
  };
  Shape out;
  out.ndim = std::max(a.ndim, b.ndim);
  out.rows = dim(a.rows, b.rows);
  out.cols = dim(a.cols, b.cols);
  return out;
}

NodeRef apply(OpId op, const NodeRef* in, int n, const Attr& attr) {
  const OpDef& d = opdef(op);
  if ((d.arity >= 0 && n != d.arity) || n < 1 || n > 65535)
    throw TypeError(std::string(d.name ? op_label(op) : "apply") + ": takes " +
                    (d.arity >= 0 ? std::to_string(d.arity) : std::string("1 to 65535")) + " inputs, got " +
                    std::to_string(n));
  SmallArray<Shape> shapes(n);
  SmallArray<Val> vals(n);
  // A NodeRef is exactly a Node*: the kernels see the inputs' nodes without a copy.
  static_assert(sizeof(NodeRef) == sizeof(Node*), "NodeRef is one pointer");
  Node* const* nodes = reinterpret_cast<Node* const*>(in);
  bool rg = false, tr = false;
  const DType dt0 = in[d.index_input == 0 ? 1 : 0]->dtype;
  for (int i = 0; i < n; ++i) {
    const Node& x = *in[i];
    if (i == d.index_input) {
      if (x.requires_grad) throw TypeError(std::string(op_label(op)) + ": the index input cannot require a gradient");
      shapes[i] = x.shape;
      vals[i] = Val(x.data, x.shape, x.dtype);
      continue;
    }
    if (x.dtype != dt0)
      throw TypeError(std::string(op_label(op)) + ": inputs have different dtypes " + dtype_name(dt0) + " and " +
                      dtype_name(x.dtype));
    shapes[i] = x.shape;
    vals[i] = Val(x.data, x.shape, x.dtype);  // borrowed: the inputs outlive the kernel
    rg = rg || x.requires_grad;
    tr = tr || x.traced;
  }
  Shape s = d.shape(attr, shapes.p, n);
  if (!s.representable()) fail_shapes(op_label(op), "give a result too large to represent", shapes.p, n);
  DType dt = d.dtype ? d.dtype(attr, nullptr, n) : dt0;
  NodeRef out = make_node(op, s, dt);
  Node& o = *out;
  o.attr = attr;
  Val ov(o.data, s, dt);
  // Note [empty results]: an empty result has nothing to compute, whatever its inputs' shapes
  // ((2**40, 0) loops over 2**40 empty rows otherwise); kernels raise no value errors on it.
  if (s.size() != 0) d.forward(KernelArgs{attr, vals.p, n, ov, nullptr, nodes});
  const bool grad = rg && d.vjp_value && grad_enabled();
  if (grad || (tr && tracing())) {  // Note [tracing]: a trace records even what needs no gradient
    o.requires_grad = grad;
    o.traced = tr;
    o.nparents = static_cast<std::uint16_t>(n);
    if (n <= Node::kInlineParents) {
      for (int i = 0; i < n; ++i) o.parents_inline[i] = in[i];
    } else {
      o.parents_heap.reset(new NodeRef[n]);
      for (int i = 0; i < n; ++i) o.parents_heap[i] = in[i];
    }
  }
  if (anomaly_enabled()) detail::anomaly_forward(op, vals.p, n, d.index_input, o);  // Note [anomaly mode]
  return out;
}

Val ValueAlg::apply(OpId op, const Val* in, int n, const Attr& attr, const FactorSlot* factors) {
  const OpDef& d = opdef(op);
  SmallArray<Shape> shapes(n);
  for (int i = 0; i < n; ++i) shapes[i] = in[i].shape();
  Shape s = d.shape(attr, shapes.p, n);
  DType dt = d.dtype ? d.dtype(attr, nullptr, n) : in[d.index_input == 0 ? 1 : 0].dtype();
  Val out = Val::empty(s, dt);
  if (s.size() != 0) d.forward(KernelArgs{attr, in, n, out, factors});  // Note [empty results]
  return out;
}

FactorSlot input_factor_slot(const KernelArgs& k, int i) {
  if (k.factors) return k.factors[i];
  return k.nodes && k.nodes[i] ? factor_slot(*k.nodes[i]) : FactorSlot{};
}

namespace {
std::size_t value_bytes(const Val& x) { return std::size_t(x.shape().size()) * itemsize(x.dtype()); }
}  // namespace

std::shared_ptr<const KeptFactor> kept_in_slot(const KernelArgs& k, int i) {
  const FactorSlot fs = input_factor_slot(k, i);
  if (!fs.slot || !*fs.slot) return nullptr;
  auto f = std::dynamic_pointer_cast<const KeptFactor>(*fs.slot);
  if (!f || !fs.external) return f;
  // over external memory: only while the values are those factorized (memcmp is exact, and
  // O(n^2) against the factorization's O(n^3))
  const Val& x = k.in[i];
  const std::size_t bytes = value_bytes(x);
  if (f->snapshot.size() != bytes || std::memcmp(f->snapshot.data(), x.data(), bytes) != 0) return nullptr;
  return f;
}

void keep_in_slot(const KernelArgs& k, int i, const std::shared_ptr<KeptFactor>& f) {
  const FactorSlot fs = input_factor_slot(k, i);
  if (!fs.slot) return;
  if (fs.external) {
    const auto* p = static_cast<const unsigned char*>(k.in[i].data());
    f->snapshot.assign(p, p + value_bytes(k.in[i]));
  }
  *fs.slot = f;
}

Val ValueAlg::on_node(OpId op, const Node& xn, std::initializer_list<Val> rest, const Attr& attr) {
  const int n = 1 + static_cast<int>(rest.size());
  SmallArray<Val> in(n);
  SmallArray<FactorSlot> factors(n);
  in[0] = xn.value();
  factors[0] = factor_slot(xn);
  int i = 1;
  for (const Val& v : rest) in[i++] = v;
  return apply(op, in.p, n, attr, factors.p);
}

NodeRef GraphAlg::on_node(OpId op, const Node& xn, std::initializer_list<NodeRef> rest, const Attr& attr) {
  const int n = 1 + static_cast<int>(rest.size());
  SmallArray<NodeRef> in(n);
  in[0] = NodeRef(const_cast<Node*>(&xn));
  int i = 1;
  for (const NodeRef& v : rest) in[i++] = v;
  return matgrad::apply(op, in.p, n, attr);
}

void ValueAlg::accumulate(Val& slot, Val&& v) {
  if (!slot) {
    slot = std::move(v);
  } else if (slot.unique() && slot.shape().same_storage(v.shape()) && slot.dtype() == v.dtype()) {
    if (slot.dtype() == DType::f64)
      slot.arr<double>() += v.arr<double>();
    else
      slot.arr<float>() += v.arr<float>();
  } else {
    slot = add(slot, v);
  }
}

// ---- front ends ----

NodeRef operand(const Arg& a, DType weak) {
  if (a.kind == Arg::kNode) return a.node;
  if (a.kind == Arg::kScalar) return full(Shape::scalar(), weak, a.scalar);
  throw TypeError("operand: expected an array or a number");
}

NodeRef apply_promoted(OpId op, const NodeRef& x, const NodeRef& y, const Attr& a) {
  if (x->dtype == y->dtype) {
    // the two handles side by side without touching their counts (a NodeRef is one pointer)
    Node* const in[2] = {x.get(), y.get()};
    return apply(op, reinterpret_cast<const NodeRef*>(in), 2, a);
  }
  if (x->dtype == DType::f32) return apply(op, {cast(x, DType::f64), y}, a);
  return apply(op, {x, cast(y, DType::f64)}, a);
}

NodeRef apply_scalar(OpId op, const NodeRef& x, double s) {
  Attr a;
  a.s = s;
  return apply(op, &x, 1, a);
}

int axis_arg(const char* op, const Arg& a, const Shape& s) {
  if (a.is_none()) return kAxisNone;
  if (a.i < -s.ndim || a.i >= s.ndim)
    throw ShapeError(std::string(op) + ": axis " + std::to_string(a.i) + " is out of bounds for shape " + s.str());
  return static_cast<int>(a.i);
}

Results front_unary(const EntryPoint& e, const Arg* a) {
  if (a[0].kind == Arg::kNode) return apply(e.op, &a[0].node, 1);
  return apply(e.op, {operand(a[0])});
}

Results front_axis(const EntryPoint& e, const Arg* a) {
  NodeRef x = operand(a[0]);
  Attr at;
  at.axis = axis_arg(e.name, a[1], x->shape);
  return apply(e.op, {x}, at);
}

Results front_binary(const EntryPoint& e, const Arg* a) {
  if (a[0].kind == Arg::kNode && a[1].kind == Arg::kNode) return apply_promoted(e.op, a[0].node, a[1].node);
  // a weak number takes the other operand's dtype (NEP 50), whichever side it is on
  const bool w0 = a[0].kind == Arg::kScalar, w1 = a[1].kind == Arg::kScalar;
  NodeRef x = w0 && !w1 ? operand(a[0], a[1].node->dtype) : operand(a[0]);
  NodeRef y = operand(a[1], x->dtype);
  return apply_promoted(e.op, x, y);
}

// ---- the engine's primitives ----

NodeRef matmul(const NodeRef& x, const NodeRef& y, bool ta, bool tb) {
  Attr a;
  a.ta = ta && x->shape.ndim == 2;  // transposing a vector is the identity (as in NumPy)
  a.tb = tb && y->shape.ndim == 2;
  return apply_promoted(ops::matmul, x, y, a);
}

NodeRef reshape(const NodeRef& x, Shape s) {
  Attr a;
  a.shape = s;
  return apply(ops::reshape, {x}, a);
}

NodeRef cast(const NodeRef& x, DType d) {
  if (x->dtype == d) return x;
  Attr a;
  a.dtype = d;
  return apply(ops::cast, {x}, a);
}

NodeRef broadcast_to(const NodeRef& x, Shape s) {
  Attr a;
  a.shape = s;
  return apply(ops::broadcast_to, {x}, a);
}

NodeRef alias(const NodeRef& x) { return apply(ops::alias, {x}); }

NodeRef pack(const std::vector<NodeRef>& xs) {
  if (xs.empty()) throw ShapeError("pack: needs at least one value");
  return apply(ops::pack, xs.data(), static_cast<int>(xs.size()));
}

NodeRef unpack(const NodeRef& packed, std::int64_t offset, Shape s) {
  Attr a;
  a.offset = offset;
  a.shape = s;
  return apply(ops::unpack, {packed}, a);
}

NodeRef block(const NodeRef& x, std::int64_t r0, std::int64_t c0, Shape s) {
  Attr a;
  a.offset = r0;
  a.offset2 = c0;
  a.shape = s;
  return apply(ops::block, {x}, a);
}

NodeRef gather(const NodeRef& x, const std::vector<std::int64_t>& flat_index, Shape s) {
  if (!s.representable() || s.size() != static_cast<std::int64_t>(flat_index.size()))
    throw ShapeError("gather: " + std::to_string(flat_index.size()) + " indices do not fill shape " + s.str());
  NodeRef idx = make_node(kLeaf, s, DType::f64);
  double* p = static_cast<double*>(idx->data);
  for (std::size_t i = 0; i < flat_index.size(); ++i) p[i] = static_cast<double>(flat_index[i]);
  return apply(ops::gather, {x, idx});
}

NodeRef full(Shape s, DType d, double v) {
  NodeRef n = make_node(kLeaf, s, d);
  if (d == DType::f64)
    MapArr<double>(static_cast<double*>(n->data), s.size()).setConstant(v);
  else
    MapArr<float>(static_cast<float*>(n->data), s.size()).setConstant(static_cast<float>(v));
  return n;
}

NodeRef detach(const Node& n) {
  if (n.buf) return make_leaf_shared(n.buf, n.data, n.shape, n.dtype, false);
  return make_leaf(n.value(), false);
}

}  // namespace matgrad
