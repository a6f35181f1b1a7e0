// SPDX-License-Identifier: MIT
#include "registry.hpp"

#include <memory>
#include <string>
#include <vector>

namespace matgrad {

OpDef g_opdefs[static_cast<int>(OpId::count_)];
bool g_opdefs_ready = false;

void init_opdefs() {
  static const bool once = [] {
    g_opdefs[0].name = "leaf";
    g_opdefs[0].arity = 0;
    register_elementwise(g_opdefs);
    register_reduction(g_opdefs);
    register_shape(g_opdefs);
    register_linalg(g_opdefs);
    return true;
  }();
  g_opdefs_ready = once;
}
const char* op_name(OpId op) { return opdef(op).name; }

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
    throw TypeError(std::string(d.name ? d.name : "apply") + ": takes " +
                    (d.arity >= 0 ? std::to_string(d.arity) : std::string("1 to 65535")) + " inputs, got " +
                    std::to_string(n));
  SmallArray<Shape> shapes(n);
  SmallArray<Val> vals(n);
  // A NodeRef is exactly a Node*: the kernels see the inputs' nodes without a copy.
  static_assert(sizeof(NodeRef) == sizeof(Node*), "NodeRef is one pointer");
  Node* const* nodes = reinterpret_cast<Node* const*>(in);
  bool rg = false;
  const DType dt0 = in[d.index_input == 0 ? 1 : 0]->dtype;
  for (int i = 0; i < n; ++i) {
    const Node& x = *in[i];
    if (i == d.index_input) {
      if (x.requires_grad)
        throw TypeError(std::string(d.name) + ": the index input cannot require a gradient");
      shapes[i] = x.shape;
      vals[i] = Val(x.data, x.shape, x.dtype);
      continue;
    }
    if (x.dtype != dt0)
      throw TypeError(std::string(d.name) + ": inputs have different dtypes " + dtype_name(dt0) + " and " +
                      dtype_name(x.dtype));
    shapes[i] = x.shape;
    vals[i] = Val(x.data, x.shape, x.dtype);  // borrowed: the inputs outlive the kernel
    rg = rg || x.requires_grad;
  }
  Shape s = d.shape(attr, shapes.p, n);
  if (!s.representable()) fail_shapes(d.name, "give a result too large to represent", shapes.p, n);
  DType dt = d.dtype ? d.dtype(attr, nullptr, n) : dt0;
  NodeRef out = make_node(op, s, dt);
  Node& o = *out;
  o.attr = attr;
  Val ov(o.data, s, dt);
  d.forward(KernelArgs{attr, vals.p, n, ov, &o.state, nodes});
  if (rg && d.vjp_value && grad_enabled()) {
    o.requires_grad = true;
    o.nparents = static_cast<std::uint16_t>(n);
    if (n <= Node::kInlineParents) {
      for (int i = 0; i < n; ++i) o.parents_inline[i] = in[i];
    } else {
      o.parents_heap.reset(new NodeRef[n]);
      for (int i = 0; i < n; ++i) o.parents_heap[i] = in[i];
    }
  }
  return out;
}

Val ValueAlg::apply(OpId op, const Val* in, int n, const Attr& attr, Node* const* nodes) {
  const OpDef& d = opdef(op);
  SmallArray<Shape> shapes(n);
  for (int i = 0; i < n; ++i) shapes[i] = in[i].shape();
  Shape s = d.shape(attr, shapes.p, n);
  DType dt = d.dtype ? d.dtype(attr, nullptr, n) : in[d.index_input == 0 ? 1 : 0].dtype();
  Val out = Val::empty(s, dt);
  std::unique_ptr<OpState> state;
  d.forward(KernelArgs{attr, in, n, out, &state, nodes});
  return out;
}

Val ValueAlg::on_node(OpId op, const Node& xn, std::initializer_list<Val> rest, const Attr& attr) {
  const int n = 1 + static_cast<int>(rest.size());
  SmallArray<Val> in(n);
  SmallArray<Node*> nodes(n);
  in[0] = xn.value();
  nodes[0] = const_cast<Node*>(&xn);
  int i = 1;
  for (const Val& v : rest) {
    nodes[i] = nullptr;
    in[i++] = v;
  }
  return apply(op, in.p, n, attr, nodes.p);
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

// ---- front end: promotion and argument checks, then apply ----

NodeRef unary(OpId op, const NodeRef& x) { return apply(op, {x}); }

// float32 with float64 gives float64 (the float32 side is cast).
static NodeRef binary_promoted(OpId op, const NodeRef& x, const NodeRef& y, const Attr& a) {
  if (x->dtype == y->dtype) return apply(op, {x, y}, a);
  if (x->dtype == DType::f32) return apply(op, {cast(x, DType::f64), y}, a);
  return apply(op, {x, cast(y, DType::f64)}, a);
}

NodeRef binary(OpId op, const NodeRef& x, const NodeRef& y) { return binary_promoted(op, x, y, Attr{}); }

NodeRef scalar_op(OpId op, const NodeRef& x, double s) {
  Attr a;
  a.s = s;
  return apply(op, {x}, a);
}

NodeRef reduce(OpId op, const NodeRef& x, int axis) {
  Attr a;
  a.axis = axis;
  return apply(op, {x}, a);
}
NodeRef sum(const NodeRef& x, int axis) { return reduce(OpId::sum, x, axis); }
NodeRef mean(const NodeRef& x, int axis) { return reduce(OpId::mean, x, axis); }

NodeRef matmul(const NodeRef& x, const NodeRef& y, bool ta, bool tb) {
  Attr a;
  a.ta = ta && x->shape.ndim == 2;  // transposing a vector is the identity (as in NumPy)
  a.tb = tb && y->shape.ndim == 2;
  return binary_promoted(OpId::matmul, x, y, a);
}

NodeRef transpose(const NodeRef& x) { return apply(OpId::transpose, {x}); }

NodeRef trace(const NodeRef& x) { return apply(OpId::trace, {x}); }

NodeRef dot(const NodeRef& x, const NodeRef& y) {
  const Shape& a = x->shape;
  const Shape& b = y->shape;
  if (a.ndim == 0 || b.ndim == 0) return binary(OpId::mul, x, y);
  const std::int64_t inner_b = b.ndim == 1 ? b.cols : b.rows;
  if (a.cols != inner_b) {
    Shape s[2] = {a, b};
    fail_shapes("dot", "are not aligned", s, 2);
  }
  return matmul(x, y);
}

NodeRef outer(const NodeRef& x, const NodeRef& y) {
  // x_i y_j as a broadcast product of a column and a row: no sums, so exactly NumPy's values.
  return binary(OpId::mul, reshape(x, Shape::matrix(x->shape.size(), 1)), reshape(y, Shape::matrix(1, y->shape.size())));
}

NodeRef reshape(const NodeRef& x, Shape s) {
  Attr a;
  a.shape = s;
  return apply(OpId::reshape, {x}, a);
}

NodeRef cast(const NodeRef& x, DType d) {
  if (x->dtype == d) return x;
  Attr a;
  a.dtype = d;
  return apply(OpId::cast, {x}, a);
}

NodeRef broadcast_to(const NodeRef& x, Shape s) {
  Attr a;
  a.shape = s;
  return apply(OpId::broadcast_to, {x}, a);
}

NodeRef alias(const NodeRef& x) { return apply(OpId::alias, {x}); }

NodeRef pack(const std::vector<NodeRef>& xs) {
  if (xs.empty()) throw ShapeError("pack: needs at least one value");
  return apply(OpId::pack, xs.data(), static_cast<int>(xs.size()));
}

NodeRef unpack(const NodeRef& packed, std::int64_t offset, Shape s) {
  Attr a;
  a.offset = offset;
  a.shape = s;
  return apply(OpId::unpack, {packed}, a);
}

NodeRef det(const NodeRef& x) { return apply(OpId::det, {x}); }
NodeRef logdet(const NodeRef& x) { return apply(OpId::logdet, {x}); }
std::pair<NodeRef, NodeRef> slogdet(const NodeRef& x) {
  NodeRef p = apply(OpId::slogdet, {x});
  return {unpack(p, 0, Shape::scalar()), unpack(p, 1, Shape::scalar())};
}
NodeRef inv(const NodeRef& x) { return apply(OpId::inv, {x}); }
NodeRef solve(const NodeRef& a, const NodeRef& b) { return binary_promoted(OpId::solve, a, b, Attr{}); }
NodeRef cholesky(const NodeRef& x) { return apply(OpId::cholesky, {x}); }
NodeRef norm(const NodeRef& x) { return apply(OpId::norm, {x}); }
NodeRef quad_form(const NodeRef& x, const NodeRef& b) { return binary_promoted(OpId::quad_form, x, b, Attr{}); }
NodeRef logsumexp(const NodeRef& x, int axis) { return reduce(OpId::logsumexp, x, axis); }
NodeRef max(const NodeRef& x, int axis) { return reduce(OpId::max, x, axis); }
NodeRef softmax_cross_entropy(const NodeRef& z, const NodeRef& y) {
  return binary_promoted(OpId::softmax_xent, z, y, Attr{});
}
NodeRef where(const NodeRef& mask, const NodeRef& a, const NodeRef& b) {
  const DType d = a->dtype == DType::f64 || b->dtype == DType::f64 ? DType::f64 : DType::f32;
  // The mask as a 0/1 constant of its own (truthiness as NumPy: nonzero and NaN are true; NaN != 0).
  NodeRef m = make_leaf(mask->dtype == d ? mask->value() : ValueAlg().cast(mask->value(), d), false);
  if (d == DType::f64)
    m->value().arr<double>() = (m->value().arr<double>() != 0.0).cast<double>();
  else
    m->value().arr<float>() = (m->value().arr<float>() != 0.0f).cast<float>();
  return apply(OpId::where, {m, cast(a, d), cast(b, d)});
}
NodeRef concatenate(const std::vector<NodeRef>& xs, int axis) {
  if (xs.empty()) throw ShapeError("concatenate: needs at least one array");
  DType d = DType::f32;
  for (const NodeRef& x : xs)
    if (x->dtype == DType::f64) d = DType::f64;
  std::vector<NodeRef> in;
  in.reserve(xs.size());
  for (const NodeRef& x : xs) in.push_back(cast(x, d));
  Attr a;
  a.axis = axis;
  return apply(OpId::concat, in.data(), static_cast<int>(in.size()), a);
}
NodeRef stack(const std::vector<NodeRef>& xs, int axis) {
  if (xs.empty()) throw ShapeError("stack: needs at least one array");
  const Shape s = xs[0]->shape;
  for (const NodeRef& x : xs)
    if (x->shape != s)
      throw ShapeError("stack: all input arrays must have the same shape, got " + s.str() + " and " + x->shape.str());
  if (s.ndim == 2)
    throw ShapeError("stack: stacking arrays of shape " + s.str() + " gives 3 dimensions (at most 2 are supported)");
  if (axis < -(s.ndim + 1) || axis > s.ndim)
    throw ShapeError("stack: axis " + std::to_string(axis) + " is out of bounds for stacking arrays of shape " + s.str());
  if (axis < 0) axis += s.ndim + 1;
  std::vector<NodeRef> parts;
  parts.reserve(xs.size());
  if (s.ndim == 0) {
    for (const NodeRef& x : xs) parts.push_back(reshape(x, Shape::vector(1)));
    return concatenate(parts, 0);
  }
  const Shape each = axis == 0 ? Shape::matrix(1, s.cols) : Shape::matrix(s.cols, 1);
  for (const NodeRef& x : xs) parts.push_back(reshape(x, each));
  return concatenate(parts, axis);
}
NodeRef diag(const NodeRef& x, std::int64_t k) {
  Attr a;
  a.offset = k;
  if (x->shape.ndim == 2) return apply(OpId::diag_part, {x}, a);
  if (x->shape.ndim != 1) fail_shapes("diag", "is not valid: diag takes a 1-D or 2-D array", &x->shape, 1);
  const std::int64_t n = x->shape.cols + (k < 0 ? -k : k);
  a.shape = Shape::matrix(n, n);
  return apply(OpId::diag_embed, {x}, a);
}
NodeRef block(const NodeRef& x, std::int64_t r0, std::int64_t c0, Shape s) {
  Attr a;
  a.offset = r0;
  a.offset2 = c0;
  a.shape = s;
  return apply(OpId::block, {x}, a);
}
NodeRef gather(const NodeRef& x, const std::vector<std::int64_t>& flat_index, Shape s) {
  if (!s.representable() || s.size() != static_cast<std::int64_t>(flat_index.size()))
    throw ShapeError("gather: " + std::to_string(flat_index.size()) + " indices do not fill shape " + s.str());
  NodeRef idx = make_node(OpId::leaf, s, DType::f64);
  double* p = static_cast<double*>(idx->data);
  for (std::size_t i = 0; i < flat_index.size(); ++i) p[i] = static_cast<double>(flat_index[i]);
  return apply(OpId::gather, {x, idx});
}

NodeRef full(Shape s, DType d, double v) {
  NodeRef n = make_node(OpId::leaf, s, d);
  if (d == DType::f64)
    MapArr<double>(static_cast<double*>(n->data), s.size()).setConstant(v);
  else
    MapArr<float>(static_cast<float*>(n->data), s.size()).setConstant(static_cast<float>(v));
  return n;
}

}  // namespace matgrad
