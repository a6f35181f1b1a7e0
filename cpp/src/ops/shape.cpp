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

}  // namespace

void register_shape(OpDef* t) {
  auto def = [t](OpId id, const char* name, ShapeFn shape, ForwardFn fwd) -> OpDef& {
    OpDef& d = t[static_cast<int>(id)];
    d.name = name;
    d.arity = 1;
    d.shape = shape;
    d.forward = fwd;
    return d;
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
}

}  // namespace matgrad
