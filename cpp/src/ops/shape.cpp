// SPDX-License-Identifier: MIT
// Shape ops: transpose, reshape, broadcast_to / sum_to (each other's VJP), cast, alias.
#include "registry.hpp"

#include <cstring>
#include <string>

namespace matgrad {

namespace {

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
  auto in = k.in[0].mat<T>();
  auto out = k.out.mat<T>();
  if (x.rows == s.rows && x.cols == s.cols)
    out = in;
  else if (x.rows == s.rows)
    out = in.col(0).replicate(1, s.cols);
  else if (x.cols == s.cols)
    out = in.row(0).replicate(s.rows, 1);
  else
    out.setConstant(in(0, 0));
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
  for (int i = 0; i < n; ++i) total += in[i].size();
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
    if (c.needs[i]) c.dx[i] = a.op(OpId::unpack, {c.g}, at);
    at.offset += at.shape.size();
  }
}

Shape unpack_shape(const Attr& a, const Shape* in, int) {
  if (in[0].ndim != 1 || a.offset < 0 || a.shape.size() < 0 || a.offset + a.shape.size() > in[0].size())
    throw ShapeError("unpack: " + std::to_string(a.shape.size()) + " elements at offset " +
                     std::to_string(a.offset) + " do not fit in a packed value of shape " + in[0].str());
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
  c.dx[0] = a.op(OpId::embed, {c.g}, at);
}

Shape embed_shape(const Attr& a, const Shape* in, int) {
  if (a.shape.ndim != 1 || a.offset < 0 || a.offset + in[0].size() > a.shape.size())
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
  c.dx[0] = a.op(OpId::unpack, {c.g}, at);
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
    if (along_rows)
      out.rows += s.rows;
    else
      out.cols += s.cols;
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
    if (c.needs[i]) c.dx[i] = a.op(OpId::block, {c.g}, at);
    if (rows)
      at.offset += xs.rows;
    else
      at.offset2 += xs.cols;
  }
}

// ---- block / unblock: x[r0:r0+h, c0:c0+w] (as stored) and zeros around g ----
Shape block_shape(const Attr& a, const Shape* in, int) {
  const Shape& s = a.shape;
  if (a.offset < 0 || a.offset2 < 0 || !s.representable() || a.offset + s.rows > in[0].rows ||
      a.offset2 + s.cols > in[0].cols)
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
  c.dx[0] = a.op(OpId::unblock, {c.g}, at);
}
Shape unblock_shape(const Attr& a, const Shape* in, int) {
  const Shape& s = a.shape;
  if (a.offset < 0 || a.offset2 < 0 || !s.representable() || a.offset + in[0].rows > s.rows ||
      a.offset2 + in[0].cols > s.cols)
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
  c.dx[0] = a.op(OpId::block, {c.g}, at);
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
  c.dx[0] = a.op(OpId::scatter_add, {c.g, c.in[1]}, at);
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
  if (c.needs[0]) c.dx[0] = a.op(OpId::gather, {c.g, c.in[1]});
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
  c.dx[0] = a.op(OpId::diag_embed, {c.g}, at);
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
MG_VJP_FN(vjp_diag_embed) { c.dx[0] = a.op(OpId::diag_part, {c.g}, c.node.attr); }

}  // namespace

void register_shape(OpDef* t) {
  auto def = [t](OpId id, const char* name, ShapeFn shape, ForwardFn fwd) -> OpDef& {
    return define(t, id, name, 1, shape, fwd);
  };
  MG_VJP(def(OpId::transpose, "transpose", transpose_shape, MG_FWD(fwd_transpose)), vjp_transpose);
  MG_VJP(def(OpId::reshape, "reshape", reshape_shape, MG_FWD(fwd_copy)), vjp_reshape);
  MG_VJP(def(OpId::broadcast_to, "broadcast_to", broadcast_to_shape, MG_FWD(fwd_broadcast_to)), vjp_broadcast_to);
  MG_VJP(def(OpId::sum_to, "sum_to", sum_to_shape, MG_FWD(fwd_sum_to)), vjp_sum_to);
  OpDef& cast = def(OpId::cast, "cast", same_shape, fwd_cast);
  cast.dtype = cast_dtype;
  MG_VJP(cast, vjp_cast);
  MG_VJP(def(OpId::alias, "alias", same_shape, MG_FWD(fwd_copy)), vjp_alias);
  OpDef& pack = def(OpId::pack, "pack", pack_shape, MG_FWD(fwd_pack));
  pack.arity = -1;
  MG_VJP(pack, vjp_pack);
  MG_VJP(def(OpId::unpack, "unpack", unpack_shape, MG_FWD(fwd_unpack)), vjp_unpack);
  MG_VJP(def(OpId::embed, "embed", embed_shape, MG_FWD(fwd_embed)), vjp_embed);
  OpDef& cat = def(OpId::concat, "concatenate", concat_shape, MG_FWD(fwd_concat));
  cat.arity = -1;
  MG_VJP(cat, vjp_concat);
  MG_VJP(def(OpId::block, "block", block_shape, MG_FWD(fwd_block)), vjp_block);
  MG_VJP(def(OpId::unblock, "unblock", unblock_shape, MG_FWD(fwd_unblock)), vjp_unblock);
  OpDef& ga = def(OpId::gather, "gather", gather_shape, MG_FWD(fwd_gather));
  ga.arity = 2;
  ga.index_input = 1;
  MG_VJP(ga, vjp_gather);
  OpDef& sc = def(OpId::scatter_add, "scatter_add", scatter_add_shape, MG_FWD(fwd_scatter_add));
  sc.arity = 2;
  sc.index_input = 1;
  MG_VJP(sc, vjp_scatter_add);
  MG_VJP(def(OpId::diag_part, "diag", diag_part_shape, MG_FWD(fwd_diag_part)), vjp_diag_part);
  MG_VJP(def(OpId::diag_embed, "diag", diag_embed_shape, MG_FWD(fwd_diag_embed)), vjp_diag_embed);
}

}  // namespace matgrad
