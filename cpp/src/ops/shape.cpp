// SPDX-License-Identifier: MIT
// Shape ops: transpose, reshape, broadcast_to / sum_to (each other's VJP), cast, alias, the
// packing of several results (pack, unpack, embed), concatenation, blocks, gathers and
// diagonals; the public entry points transpose, reshape, concatenate, stack and diag.
#include "registry.hpp"

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

namespace matgrad {

namespace {

// Ops only this file names.
OpId k_concat, k_scatter_add, k_diag_part, k_diag_embed;

template <class T> void fwd_copy(const KernelArgs& k) {
  std::memcpy(k.out.data(), k.in[0].data(), sizeof(T) * std::size_t(k.out.shape().size()));
}

Shape transpose_shape(const Attr&, const Shape* in, int) {
  if (in[0].ndim < 2) return in[0];
  return Shape::matrix(in[0].cols, in[0].rows);
}
template <class T> void fwd_transpose(const KernelArgs& k) {
  if (k.in[0].shape().ndim < 2) return fwd_copy<T>(k);
  k.out.mat<T>() = k.in[0].mat<T>().transpose();
}
// dX = G^T
MG_VJP_FN(vjp_transpose) { c.dx[0] = a.transpose(c.g); }

Shape reshape_shape(const Attr& a, const Shape* in, int) {
  if (!a.shape.representable() || a.shape.size() != in[0].size()) {
    throw ShapeError("reshape: cannot reshape array of shape " + in[0].str() + " into shape " + a.shape.str());
  }
  return a.shape;
}
// dX = reshape(G, shape(X))
MG_VJP_FN(vjp_reshape) { c.dx[0] = a.reshape(c.g, a.shape(c.in[0])); }

Shape broadcast_to_shape(const Attr& a, const Shape* in, int) {
  const Shape& x = in[0];
  const Shape& s = a.shape;
  if (x.ndim > s.ndim || (x.rows != s.rows && x.rows != 1) || (x.cols != s.cols && x.cols != 1))
    throw ShapeError("broadcast_to: shape " + x.str() + " cannot be broadcast to " + s.str());
  return s;
}
template <class T> void fwd_broadcast_to(const KernelArgs& k) {
  const Shape& x = k.in[0].shape();
  const Shape& s = k.out.shape();
  const T* in = k.in[0].ptr<T>();
  T* out = k.out.ptr<T>();
  const std::int64_t R = s.rows, C = s.cols;
  // row by row, contiguous (Eigen's replicate on a row-major map is an element-wise gather)
  if (x.rows == R && x.cols == C)
    std::copy(in, in + R * C, out);
  else if (x.rows == R)  // a column: each row one value
    for (std::int64_t r = 0; r < R; ++r) std::fill(out + r * C, out + (r + 1) * C, in[r]);
  else if (x.cols == C)  // a row: each row a copy
    for (std::int64_t r = 0; r < R; ++r) std::copy(in, in + C, out + r * C);
  else
    std::fill(out, out + R * C, in[0]);
}
// dX = G summed over the broadcast axes
MG_VJP_FN(vjp_broadcast_to) { c.dx[0] = a.sum_to(c.g, a.shape(c.in[0])); }

Shape sum_to_shape(const Attr& a, const Shape* in, int) {
  const Shape& x = in[0];
  const Shape& s = a.shape;
  if (s.ndim > x.ndim || (s.rows != x.rows && s.rows != 1) || (s.cols != x.cols && s.cols != 1))
    throw ShapeError("sum_to: shape " + x.str() + " cannot be summed to " + s.str());
  return s;
}
template <class T> void fwd_sum_to(const KernelArgs& k) {
  const Shape& x = k.in[0].shape();
  const Shape& s = k.out.shape();
  using A = typename Accum<T>::type;
  auto in = k.in[0].mat<T>();
  auto out = k.out.mat<T>();
  if (x.rows == s.rows && x.cols == s.cols)
    out = in;
  else if (s.size() == 1)  // all of it: one contiguous sum (a column's colwise sum would stride)
    out(0, 0) = T(k.in[0].arr<T>().template cast<A>().sum());
  else if (x.rows == s.rows)
    out = in.template cast<A>().rowwise().sum().template cast<T>();
  else if (x.cols == s.cols)
    out = in.template cast<A>().colwise().sum().template cast<T>();
  else
    out(0, 0) = T(in.template cast<A>().sum());
}
// dX = G broadcast back to shape(X)
MG_VJP_FN(vjp_sum_to) { c.dx[0] = a.broadcast_to(c.g, a.shape(c.in[0])); }

DType cast_dtype(const Attr& a, const DType*, int) { return a.dtype; }
void fwd_cast(const KernelArgs& k) {
  const std::int64_t n = k.out.shape().size();
  const DType from = k.in[0].dtype(), to = k.out.dtype();
  if (from == to) {
    std::memcpy(k.out.data(), k.in[0].data(), n * itemsize(to));
  } else if (to == DType::f64) {
    k.out.arr<double>() = k.in[0].arr<float>().template cast<double>();
  } else {
    k.out.arr<float>() = k.in[0].arr<double>().template cast<float>();
  }
}
// dX = cast(G, dtype(X))
MG_VJP_FN(vjp_cast) { c.dx[0] = a.cast(c.g, a.dtype(c.in[0])); }

Shape same_shape(const Attr&, const Shape* in, int) { return in[0]; }
// dX = G
MG_VJP_FN(vjp_alias) { c.dx[0] = c.g; }

// ---- Note [multiple outputs]: pack, unpack, embed ----

Shape pack_shape(const Attr&, const Shape* in, int n) {
  std::int64_t total = 0;
  for (int i = 0; i < n; ++i)
    if (__builtin_add_overflow(total, in[i].size(), &total)) fail_shapes("pack", "give a result too large", in, n);
  return Shape::vector(total);
}
template <class T> void fwd_pack(const KernelArgs& k) {
  T* o = k.out.ptr<T>();
  for (int i = 0; i < k.n; ++i) {
    const std::int64_t m = k.in[i].shape().size();
    std::memcpy(o, k.in[i].data(), sizeof(T) * std::size_t(m));
    o += m;
  }
}
// dX_i = unpack(G, offset_i, shape(X_i))
MG_VJP_FN(vjp_pack) {
  Attr at;
  for (int i = 0; i < c.n; ++i) {
    at.shape = a.shape(c.in[i]);
    if (c.needs[i]) c.dx[i] = a.op(ops::unpack, {c.g}, at);
    at.offset += at.shape.size();
  }
}

Shape unpack_shape(const Attr& a, const Shape* in, int) {
  if (in[0].ndim != 1 || a.offset < 0 || !a.shape.representable() || a.offset > in[0].size() - a.shape.size())
    throw ShapeError("unpack: " + std::to_string(a.shape.size()) + " elements at offset " + std::to_string(a.offset) +
                     " do not fit in a packed value of shape " + in[0].str());
  return a.shape;
}
template <class T> void fwd_unpack(const KernelArgs& k) {
  std::memcpy(k.out.data(), k.in[0].ptr<T>() + k.attr.offset, sizeof(T) * std::size_t(k.out.shape().size()));
}
// dX = embed(G, offset, shape(X))
MG_VJP_FN(vjp_unpack) {
  Attr at;
  at.offset = c.node.attr.offset;
  at.shape = a.shape(c.in[0]);
  c.dx[0] = a.op(ops::embed, {c.g}, at);
}

Shape embed_shape(const Attr& a, const Shape* in, int) {
  if (a.shape.ndim != 1 || a.offset < 0 || !a.shape.representable() || a.offset > a.shape.size() - in[0].size())
    throw ShapeError("embed: shape " + in[0].str() + " at offset " + std::to_string(a.offset) +
                     " does not fit in shape " + a.shape.str());
  return a.shape;
}
template <class T> void fwd_embed(const KernelArgs& k) {
  k.out.arr<T>().setZero();
  std::memcpy(k.out.ptr<T>() + k.attr.offset, k.in[0].data(), sizeof(T) * std::size_t(k.in[0].shape().size()));
}
// dX = unpack(G, offset, shape(X))
MG_VJP_FN(vjp_embed) {
  Attr at;
  at.offset = c.node.attr.offset;
  at.shape = a.shape(c.in[0]);
  c.dx[0] = a.op(ops::unpack, {c.g}, at);
}

// ---- concat ----
// concat(x_1, ..., x_n) along attr.axis: 1-D operands along 0; 2-D operands along 0 or 1.
Shape concat_shape(const Attr& a, const Shape* in, int n) {
  const Shape& f = in[0];
  if (f.ndim == 0) fail_shapes("concatenate", "are not valid: zero-dimensional arrays cannot be concatenated", in, n);
  if (a.axis < -f.ndim || a.axis >= f.ndim)
    throw ShapeError("concatenate: axis " + std::to_string(a.axis) + " is out of bounds for shape " + f.str());
  const int ax = a.axis < 0 ? a.axis + f.ndim : a.axis;
  Shape out = f;
  for (int i = 1; i < n; ++i) {
    const Shape& s = in[i];
    if (s.ndim != f.ndim) fail_shapes("concatenate", "do not all have the same number of dimensions", in, n);
    const bool along_rows = f.ndim == 2 && ax == 0;
    if (along_rows ? s.cols != f.cols : s.rows != f.rows)
      fail_shapes("concatenate", "do not match except along the concatenation axis", in, n);
    // checked: (2**62, 0) four times is not (0, 0)
    if (along_rows ? __builtin_add_overflow(out.rows, s.rows, &out.rows)
                   : __builtin_add_overflow(out.cols, s.cols, &out.cols))
      fail_shapes("concatenate", "give a result too large to represent", in, n);
  }
  return out;
}
template <class T> void fwd_concat(const KernelArgs& k) {
  auto out = k.out.mat<T>();
  const bool rows = k.out.shape().ndim == 2 && (k.attr.axis == 0 || k.attr.axis == -2);
  std::int64_t at = 0;
  for (int i = 0; i < k.n; ++i) {
    auto x = k.in[i].mat<T>();
    if (rows) {
      out.middleRows(at, x.rows()) = x;
      at += x.rows();
    } else {
      out.middleCols(at, x.cols()) = x;
      at += x.cols();
    }
  }
}
// dX_i = the block of G where X_i was placed
MG_VJP_FN(vjp_concat) {
  const Shape& gs = a.shape(c.g);
  const bool rows = gs.ndim == 2 && (c.node.attr.axis == 0 || c.node.attr.axis == -2);
  Attr at;
  for (int i = 0; i < c.n; ++i) {
    const Shape xs = a.shape(c.in[i]);
    at.shape = xs;
    if (c.needs[i]) c.dx[i] = a.op(ops::block, {c.g}, at);
    if (rows)
      at.offset += xs.rows;
    else
      at.offset2 += xs.cols;
  }
}

// ---- block / unblock: x[r0:r0+h, c0:c0+w] (as stored) and zeros around g ----
Shape block_shape(const Attr& a, const Shape* in, int) {
  const Shape& s = a.shape;
  // offsets compared without a sum that could overflow (a Python caller may pass 2**63 - 1)
  if (a.offset < 0 || a.offset2 < 0 || !s.representable() || a.offset > in[0].rows - s.rows ||
      a.offset2 > in[0].cols - s.cols)
    throw ShapeError("block: a block of shape " + s.str() + " at (" + std::to_string(a.offset) + ", " +
                     std::to_string(a.offset2) + ") does not fit in shape " + in[0].str());
  return s;
}
template <class T> void fwd_block(const KernelArgs& k) {
  const Shape& s = k.out.shape();
  k.out.mat<T>() = k.in[0].mat<T>().block(k.attr.offset, k.attr.offset2, s.rows, s.cols);
}
// dX = unblock(G): G at the block's place, zeros elsewhere
MG_VJP_FN(vjp_block) {
  Attr at = c.node.attr;
  at.shape = a.shape(c.in[0]);
  c.dx[0] = a.op(ops::unblock, {c.g}, at);
}
Shape unblock_shape(const Attr& a, const Shape* in, int) {
  const Shape& s = a.shape;
  if (a.offset < 0 || a.offset2 < 0 || !s.representable() || a.offset > s.rows - in[0].rows ||
      a.offset2 > s.cols - in[0].cols)
    throw ShapeError("unblock: a block of shape " + in[0].str() + " at (" + std::to_string(a.offset) + ", " +
                     std::to_string(a.offset2) + ") does not fit in shape " + s.str());
  return s;
}
template <class T> void fwd_unblock(const KernelArgs& k) {
  const Shape& s = k.in[0].shape();
  auto out = k.out.mat<T>();
  out.setZero();
  out.block(k.attr.offset, k.attr.offset2, s.rows, s.cols) = k.in[0].mat<T>();
}
// dG = the block of the cotangent
MG_VJP_FN(vjp_unblock) {
  Attr at = c.node.attr;
  at.shape = a.shape(c.in[0]);
  c.dx[0] = a.op(ops::block, {c.g}, at);
}

// ---- gather / scatter_add: element indices in a float64 index input ----
template <class I>
std::int64_t checked_index(const char* op, I v, std::int64_t size) {
  if (!(v >= 0 && v < I(size)))
    throw IndexError(std::string(op) + ": flat index " + std::to_string(double(v)) + " is out of range for " +
                     std::to_string(size) + " elements");
  return static_cast<std::int64_t>(v);
}
Shape gather_shape(const Attr&, const Shape* in, int) { return in[1]; }
template <class T> void fwd_gather(const KernelArgs& k) {
  const double* idx = k.in[1].ptr<double>();
  const T* x = k.in[0].ptr<T>();
  T* o = k.out.ptr<T>();
  const std::int64_t n = k.out.shape().size(), size = k.in[0].shape().size();
  for (std::int64_t i = 0; i < n; ++i) o[i] = x[checked_index("gather", idx[i], size)];
}
// dX = scatter_add(G, idx) into zeros of X's shape
MG_VJP_FN(vjp_gather) {
  Attr at;
  at.shape = a.shape(c.in[0]);
  c.dx[0] = a.op(k_scatter_add, {c.g, c.in[1]}, at);
}
Shape scatter_add_shape(const Attr& a, const Shape* in, int) {
  if (in[0].size() != in[1].size() || !a.shape.representable())
    fail_shapes("scatter_add", "do not match (values and indices)", in, 2);
  return a.shape;
}
template <class T> void fwd_scatter_add(const KernelArgs& k) {
  const double* idx = k.in[1].ptr<double>();
  const T* g = k.in[0].ptr<T>();
  T* o = k.out.ptr<T>();
  const std::int64_t n = k.in[0].shape().size(), size = k.out.shape().size();
  k.out.arr<T>().setZero();
  for (std::int64_t i = 0; i < n; ++i) o[checked_index("scatter_add", idx[i], size)] += g[i];
}
// dG = gather(G', idx)
MG_VJP_FN(vjp_scatter_add) {
  if (c.needs[0]) c.dx[0] = a.op(ops::gather, {c.g, c.in[1]});
}

// ---- diag_part / diag_embed: np.diag both ways, offset k in attr.offset ----
std::int64_t diag_len(const Shape& s, std::int64_t k) {
  const std::int64_t n = k >= 0 ? std::min(s.rows, s.cols - k) : std::min(s.rows + k, s.cols);
  return std::max<std::int64_t>(n, 0);
}
Shape diag_part_shape(const Attr& a, const Shape* in, int) {
  if (in[0].ndim != 2) fail_shapes("diag", "is not 2-D (diag_part needs a matrix)", in, 1);
  return Shape::vector(diag_len(in[0], a.offset));
}
template <class T> void fwd_diag_part(const KernelArgs& k) {
  const std::int64_t off = k.attr.offset, n = k.out.shape().size();
  const std::int64_t r0 = off < 0 ? -off : 0, c0 = off > 0 ? off : 0;
  auto x = k.in[0].mat<T>();
  T* o = k.out.ptr<T>();
  for (std::int64_t i = 0; i < n; ++i) o[i] = x(r0 + i, c0 + i);
}
// dX = diag_embed(G, k) of X's shape
MG_VJP_FN(vjp_diag_part) {
  Attr at = c.node.attr;
  at.shape = a.shape(c.in[0]);
  c.dx[0] = a.op(k_diag_embed, {c.g}, at);
}
Shape diag_embed_shape(const Attr& a, const Shape* in, int) {
  if (in[0].ndim != 1 || a.shape.ndim != 2 || !a.shape.representable() || diag_len(a.shape, a.offset) != in[0].cols)
    throw ShapeError("diag: shape " + in[0].str() + " does not fill diagonal " + std::to_string(a.offset) +
                     " of shape " + a.shape.str());
  return a.shape;
}
template <class T> void fwd_diag_embed(const KernelArgs& k) {
  const std::int64_t off = k.attr.offset, n = k.in[0].shape().size();
  const std::int64_t r0 = off < 0 ? -off : 0, c0 = off > 0 ? off : 0;
  auto o = k.out.mat<T>();
  o.setZero();
  const T* v = k.in[0].ptr<T>();
  for (std::int64_t i = 0; i < n; ++i) o(r0 + i, c0 + i) = v[i];
}
// dV = diag_part(G, k)
MG_VJP_FN(vjp_diag_embed) { c.dx[0] = a.op(k_diag_part, {c.g}, c.node.attr); }

// ---- the entry points ----

Results front_transpose(const EntryPoint&, const Arg* a) { return apply(ops::transpose, {operand(a[0])}); }

// np.reshape's target: at most 2 entries, one of which may be -1 (inferred).
Shape reshape_target(const std::vector<std::int64_t>& dims_in, const Shape& from) {
  std::vector<std::int64_t> dims = dims_in;
  std::string req = "(";
  for (std::size_t i = 0; i < dims.size(); ++i)
    req += std::to_string(dims[i]) + (dims.size() == 1 ? "," : (i + 1 < dims.size() ? ", " : ""));
  req += ")";
  if (dims.size() > 2)
    throw ShapeError("reshape: shapes of more than 2 dimensions are not supported (shape " + from.str() + " into " +
                     req + ")");
  std::int64_t known = 1;
  int unknown = -1;
  for (std::size_t i = 0; i < dims.size(); ++i) {
    if (dims[i] == -1 && unknown < 0) {
      unknown = int(i);
    } else if (dims[i] < 0 || __builtin_mul_overflow(known, dims[i], &known)) {
      throw ShapeError("reshape: cannot reshape array of shape " + from.str() + " into shape " + req);
    }
  }
  if (unknown >= 0) {
    if (known == 0 || from.size() % known != 0)
      throw ShapeError("reshape: cannot reshape array of shape " + from.str() + " into shape " + req);
    dims[unknown] = from.size() / known;
  }
  Shape s = dims.empty()       ? Shape::scalar()
            : dims.size() == 1 ? Shape::vector(dims[0])
                               : Shape::matrix(dims[0], dims[1]);
  if (s.size() != from.size())
    throw ShapeError("reshape: cannot reshape array of shape " + from.str() + " into shape " + req);
  return s;
}

Results front_reshape(const EntryPoint&, const Arg* a) {
  NodeRef x = operand(a[0]);
  return reshape(x, reshape_target(*a[1].ints, x->shape));
}

// The axis of concatenate and stack: an integer in [-3, 2] (the ops check it against the shapes).
int join_axis(const char* op, const Arg& a) {
  if (a.i < -3 || a.i > 2) throw ShapeError(std::string(op) + ": axis " + std::to_string(a.i) + " is out of bounds");
  return static_cast<int>(a.i);
}

NodeRef concatenate_nodes(const std::vector<NodeRef>& xs, int axis) {
  if (xs.empty()) throw ShapeError("concatenate: needs at least one array");
  DType d = DType::f32;
  for (const NodeRef& x : xs) d = promote(d, x->dtype);
  std::vector<NodeRef> in;
  in.reserve(xs.size());
  for (const NodeRef& x : xs) in.push_back(cast(x, d));
  Attr a;
  a.axis = axis;
  return apply(k_concat, in.data(), static_cast<int>(in.size()), a);
}

Results front_concatenate(const EntryPoint& e, const Arg* a) {
  return concatenate_nodes(*a[0].nodes, join_axis(e.name, a[1]));
}

Results front_stack(const EntryPoint& e, const Arg* a) {
  const std::vector<NodeRef>& xs = *a[0].nodes;
  int axis = join_axis(e.name, a[1]);
  if (xs.empty()) throw ShapeError("stack: needs at least one array");
  const Shape s = xs[0]->shape;
  for (const NodeRef& x : xs)
    if (x->shape != s)
      throw ShapeError("stack: all input arrays must have the same shape, got " + s.str() + " and " + x->shape.str());
  if (s.ndim == 2)
    throw ShapeError("stack: stacking arrays of shape " + s.str() + " gives 3 dimensions (at most 2 are supported)");
  if (axis < -(s.ndim + 1) || axis > s.ndim)
    throw ShapeError("stack: axis " + std::to_string(axis) + " is out of bounds for stacking arrays of shape " +
                     s.str());
  if (axis < 0) axis += s.ndim + 1;
  std::vector<NodeRef> parts;
  parts.reserve(xs.size());
  if (s.ndim == 0) {
    for (const NodeRef& x : xs) parts.push_back(reshape(x, Shape::vector(1)));
    return concatenate_nodes(parts, 0);
  }
  const Shape each = axis == 0 ? Shape::matrix(1, s.cols) : Shape::matrix(s.cols, 1);
  for (const NodeRef& x : xs) parts.push_back(reshape(x, each));
  return concatenate_nodes(parts, axis);
}

Results front_diag(const EntryPoint&, const Arg* a) {
  NodeRef x = operand(a[0]);
  const std::int64_t k = a[1].i;
  if (k > (std::int64_t(1) << 40) || k < -(std::int64_t(1) << 40))
    throw ShapeError("diag: k " + std::to_string(k) + " is out of range for shape " + x->shape.str());
  Attr at;
  at.offset = k;
  if (x->shape.ndim == 2) return apply(k_diag_part, {x}, at);
  if (x->shape.ndim != 1) fail_shapes("diag", "is not valid: diag takes a 1-D or 2-D array", &x->shape, 1);
  const std::int64_t n = x->shape.cols + (k < 0 ? -k : k);
  at.shape = Shape::matrix(n, n);
  return apply(k_diag_embed, {x}, at);
}

}  // namespace

void register_shape() {
  auto def = [](OpId* id, const char* name, ShapeFn shape, ForwardFn fwd) -> OpDef& {
    return define(id, name, 1, shape, fwd);
  };
  def(&ops::transpose, "transpose", transpose_shape, MG_FWD(fwd_transpose)).vjp(MG_VJP(vjp_transpose));
  def(&ops::reshape, "reshape", reshape_shape, MG_FWD(fwd_copy)).reads(kAttrShape).vjp(MG_VJP(vjp_reshape));
  def(&ops::broadcast_to, "broadcast_to", broadcast_to_shape, MG_FWD(fwd_broadcast_to))
      .reads(kAttrShape)
      .vjp(MG_VJP(vjp_broadcast_to));
  def(&ops::sum_to, "sum_to", sum_to_shape, MG_FWD(fwd_sum_to)).reads(kAttrShape).vjp(MG_VJP(vjp_sum_to));
  OpDef& cast = def(&ops::cast, "cast", same_shape, fwd_cast).reads(kAttrDtype).vjp(MG_VJP(vjp_cast));
  cast.dtype = cast_dtype;
  def(&ops::alias, "alias", same_shape, MG_FWD(fwd_copy)).vjp(MG_VJP(vjp_alias));
  def(&ops::pack, "pack", pack_shape, MG_FWD(fwd_pack)).vjp(MG_VJP(vjp_pack)).arity = -1;
  def(&ops::unpack, "unpack", unpack_shape, MG_FWD(fwd_unpack)).reads(kAttrShape | kAttrOffset).vjp(MG_VJP(vjp_unpack));
  def(&ops::embed, "embed", embed_shape, MG_FWD(fwd_embed)).reads(kAttrShape | kAttrOffset).vjp(MG_VJP(vjp_embed));
  def(&k_concat, "concatenate", concat_shape, MG_FWD(fwd_concat)).reads(kAttrAxis).vjp(MG_VJP(vjp_concat)).arity = -1;
  def(&ops::block, "block", block_shape, MG_FWD(fwd_block))
      .reads(kAttrShape | kAttrOffset | kAttrOffset2)
      .vjp(MG_VJP(vjp_block));
  def(&ops::unblock, "unblock", unblock_shape, MG_FWD(fwd_unblock))
      .reads(kAttrShape | kAttrOffset | kAttrOffset2)
      .vjp(MG_VJP(vjp_unblock));
  OpDef& ga = def(&ops::gather, "gather", gather_shape, MG_FWD(fwd_gather)).vjp(MG_VJP(vjp_gather));
  ga.arity = 2;
  ga.index_input = 1;
  OpDef& sc = def(&k_scatter_add, "scatter_add", scatter_add_shape, MG_FWD(fwd_scatter_add))
                  .reads(kAttrShape)
                  .vjp(MG_VJP(vjp_scatter_add));
  sc.arity = 2;
  sc.index_input = 1;
  def(&k_diag_part, "diag_part", diag_part_shape, MG_FWD(fwd_diag_part))
      .labelled("diag")
      .reads(kAttrOffset)
      .vjp(MG_VJP(vjp_diag_part));
  def(&k_diag_embed, "diag_embed", diag_embed_shape, MG_FWD(fwd_diag_embed))
      .labelled("diag")
      .reads(kAttrShape | kAttrOffset)
      .vjp(MG_VJP(vjp_diag_embed));

  const Param x{"x", ParamKind::operand};
  define_entry("transpose", "shape", front_transpose, ops::transpose, {x})
      .doc("`x^T`, rows and columns swapped (a 0-D or 1-D `x` is returned as is, as NumPy).",
           "`(m, n) -> (n, m)`; `()` and `(n,)` unchanged.", "d/dx: `G^T`")
      .property = "T";
  define_entry("reshape", "shape", front_reshape, ops::reshape, {x, {"shape", ParamKind::shape}})
      .doc("`x` with a new shape, in C order (as `numpy.reshape`).",
           "`shape` is an int or a tuple of at most 2 ints, one of which may be -1 (inferred); the number of "
           "elements must not change -> `shape`.",
           "d/dx: `reshape(G, x.shape)`")
      .method = "reshape";
  define_entry("concatenate", "shape", front_concatenate, k_concat,
               {{"xs", ParamKind::operands}, {"axis", ParamKind::integer, "0"}})
      .doc("`np.concatenate(xs, axis)`: arrays joined along an existing axis (float64 if any is float64).",
           "`(n_i,)` along axis 0 (or -1) -> `(sum n_i,)`; `(m_i, n)` along axis 0 (or -2) -> `(sum m_i, n)`; "
           "`(m, n_i)` along axis 1 (or -1) -> `(m, sum n_i)`. 0-D arrays raise ValueError (use `stack`).",
           "d/dx_i: the block of `G` where `xs[i]` was placed.");
  define_entry("stack", "shape", front_stack, k_concat,
               {{"xs", ParamKind::operands}, {"axis", ParamKind::integer, "0"}})
      .doc("`np.stack(xs, axis)`: arrays of one shape joined along a new axis (results of at most 2 dimensions).",
           "N arrays of shape `()` -> `(N,)`; N arrays of shape `(k,)` -> `(N, k)` at axis 0, `(k, N)` at axis 1 "
           "(or -1).",
           "d/dx_i: the slice of `G` for `xs[i]` (row i at axis 0, column i at axis 1).");
  define_entry("diag", "shape", front_diag, k_diag_part, {x, {"k", ParamKind::integer, "0"}})
      .doc(
          "`np.diag(x, k)` both ways: the k-th diagonal of a matrix, or the square matrix with the vector x on "
          "its k-th diagonal (k > 0 above the main diagonal, k < 0 below).",
          "`(m, n)` -> `(d,)`, d the length of the k-th diagonal; `(n,)` -> `(n + |k|, n + |k|)`.",
          "d/dx: for a matrix x, `G` placed on the k-th diagonal of zeros of x's shape; for a vector x, the k-th "
          "diagonal of `G`.");
}

}  // namespace matgrad
