// SPDX-License-Identifier: MIT
// Linear algebra: matmul with transpose flags (numpy.matmul semantics for 1-D operands).
#include "registry.hpp"

#include <string>

namespace matgrad {

namespace {

// Note [matmul of vectors]
// A 1-D left operand is a 1 x n row, a 1-D right operand an n x 1 column (both stored as
// 1 x n, so no data moves). Transpose flags apply to 2-D operands only.
struct MatDims {
  std::int64_t r, c;
};
MatDims left_dims(const Shape& x, bool t) {
  if (x.ndim == 1) return {1, x.cols};
  return t ? MatDims{x.cols, x.rows} : MatDims{x.rows, x.cols};
}
MatDims right_dims(const Shape& y, bool t) {
  if (y.ndim == 1) return {y.cols, 1};
  return t ? MatDims{y.cols, y.rows} : MatDims{y.rows, y.cols};
}

Shape matmul_shape(const Attr& a, const Shape* in, int) {
  const Shape& x = in[0];
  const Shape& y = in[1];
  if (x.ndim == 0 || y.ndim == 0) {
    fail_shapes("matmul", "are not valid: matmul does not take 0-D operands (use mul)", in, 2);
  }
  MatDims l = left_dims(x, a.ta), r = right_dims(y, a.tb);
  if (l.c != r.r) {
    const char* what = a.ta && a.tb ? "are not aligned (both transposed)"
                       : a.ta       ? "are not aligned (left transposed)"
                       : a.tb       ? "are not aligned (right transposed)"
                                    : "are not aligned";
    fail_shapes("matmul", what, in, 2);
  }
  if (x.ndim == 1 && y.ndim == 1) return Shape::scalar();
  if (x.ndim == 1) return Shape::vector(r.c);
  if (y.ndim == 1) return Shape::vector(l.r);
  return Shape::matrix(l.r, r.c);
}

template <class T>
void fwd_matmul(const KernelArgs& k) {
  const Val& x = k.in[0];
  const Val& y = k.in[1];
  const Shape& xs = x.shape();
  const Shape& ys = y.shape();
  MapMat<T> X(x.ptr<T>(), xs.rows, xs.cols);
  MapMat<T> Y(y.ptr<T>(), ys.ndim == 1 ? ys.cols : ys.rows, ys.ndim == 1 ? 1 : ys.cols);
  MatDims l = left_dims(xs, k.attr.ta), r = right_dims(ys, k.attr.tb);
  MapMat<T> O(k.out.ptr<T>(), l.r, r.c);
  if (k.attr.ta && k.attr.tb)
    O.noalias() = X.transpose() * Y.transpose();
  else if (k.attr.ta)
    O.noalias() = X.transpose() * Y;
  else if (k.attr.tb)
    O.noalias() = X * Y.transpose();
  else
    O.noalias() = X * Y;
}

// C = op(X) op(Y), with 2-D views of vector operands (Note [matmul of vectors]):
//   C = X Y:      dX = G Y^T,    dY = X^T G
//   C = X^T Y:    dX = Y G^T,    dY = X G
//   C = X Y^T:    dX = G Y,      dY = G^T X
//   C = X^T Y^T:  dX = Y^T G^T,  dY = G^T X^T
MG_VJP_FN(vjp_matmul) {
  const Shape xs = a.shape(c.in[0]);
  const Shape ys = a.shape(c.in[1]);
  const bool ta = c.node.attr.ta, tb = c.node.attr.tb;
  MatDims l = left_dims(xs, ta), r = right_dims(ys, tb);
  auto X = xs.ndim == 1 ? a.reshape(c.in[0], Shape::matrix(1, xs.cols)) : c.in[0];
  auto Y = ys.ndim == 1 ? a.reshape(c.in[1], Shape::matrix(ys.cols, 1)) : c.in[1];
  auto G = a.reshape(c.g, Shape::matrix(l.r, r.c));
  if (c.needs[0]) {
    auto d = !ta ? (!tb ? a.matmul(G, Y, false, true) : a.matmul(G, Y, false, false))
                 : (!tb ? a.matmul(Y, G, false, true) : a.matmul(Y, G, true, true));
    c.dx[0] = a.reshape(d, xs);
  }
  if (c.needs[1]) {
    auto d = !tb ? (!ta ? a.matmul(X, G, true, false) : a.matmul(X, G, false, false))
                 : (!ta ? a.matmul(G, X, true, false) : a.matmul(G, X, true, true));
    c.dx[1] = a.reshape(d, ys);
  }
}

Shape trace_shape(const Attr&, const Shape* in, int) {
  if (in[0].ndim != 2) fail_shapes("trace", "is not 2-D (trace needs a matrix)", in, 1);
  return Shape::scalar();
}
template <class T> void fwd_trace(const KernelArgs& k) { k.out.ptr<T>()[0] = k.in[0].mat<T>().diagonal().sum(); }
// dX = G I
MG_VJP_FN(vjp_trace) {
  Attr at;
  at.shape = a.shape(c.in[0]);
  c.dx[0] = a.op(OpId::eye_scale, {c.g}, at);
}

Shape eye_scale_shape(const Attr& a, const Shape* in, int) {
  if (in[0].size() != 1 || a.shape.ndim != 2) fail_shapes("eye_scale", "is not a scalar", in, 1);
  return a.shape;
}
template <class T> void fwd_eye_scale(const KernelArgs& k) {
  auto o = k.out.mat<T>();
  o.setZero();
  o.diagonal().setConstant(k.in[0].ptr<T>()[0]);
}
// dG = tr(G')   (G' the cotangent of g I)
MG_VJP_FN(vjp_eye_scale) { c.dx[0] = a.reshape(a.trace(c.g), a.shape(c.in[0])); }

}  // namespace

void register_linalg(OpDef* t) {
  OpDef& m = t[static_cast<int>(OpId::matmul)];
  m.name = "matmul";
  m.arity = 2;
  m.shape = matmul_shape;
  m.forward = MG_FWD(fwd_matmul);
  MG_VJP(m, vjp_matmul);
  OpDef& tr = t[static_cast<int>(OpId::trace)];
  tr.name = "trace";
  tr.shape = trace_shape;
  tr.forward = MG_FWD(fwd_trace);
  MG_VJP(tr, vjp_trace);
  OpDef& e = t[static_cast<int>(OpId::eye_scale)];
  e.name = "eye_scale";
  e.shape = eye_scale_shape;
  e.forward = MG_FWD(fwd_eye_scale);
  MG_VJP(e, vjp_eye_scale);
}

}  // namespace matgrad
