// SPDX-License-Identifier: MIT
// Elementwise ops: unary, with a scalar attribute, and binary with NumPy broadcasting.
#include "registry.hpp"

#include <cmath>
#include <limits>

namespace matgrad {

namespace {

Shape same_shape(const Attr&, const Shape* in, int) { return in[0]; }

template <class T, class F>
void unary_kernel(const KernelArgs& k, F f) {
  k.out.arr<T>() = f(k.in[0].arr<T>());
}

// Runs f over two broadcast operands, row by row; f takes Eigen array expressions.
template <class T, class F>
void binary_kernel(const KernelArgs& k, F f) {
  const Shape& sa = k.in[0].shape();
  const Shape& sb = k.in[1].shape();
  const Shape& so = k.out.shape();
  const T* pa = k.in[0].ptr<T>();
  const T* pb = k.in[1].ptr<T>();
  T* po = k.out.ptr<T>();
  if (sa.same_storage(so) && sb.same_storage(so)) {
    MapArr<T>(po, so.size()) = f(CMapArr<T>(pa, so.size()), CMapArr<T>(pb, so.size()));
    return;
  }
  const std::int64_t C = so.cols;
  const bool va = sa.cols == C, vb = sb.cols == C;
  for (std::int64_t r = 0; r < so.rows; ++r) {
    const T* ra = pa + (sa.rows == 1 ? 0 : r * sa.cols);
    const T* rb = pb + (sb.rows == 1 ? 0 : r * sb.cols);
    MapArr<T> o(po + r * C, C);
    if (va && vb)
      o = f(CMapArr<T>(ra, C), CMapArr<T>(rb, C));
    else if (va)
      o = f(CMapArr<T>(ra, C), Arr<T>::Constant(C, *rb));
    else if (vb)
      o = f(Arr<T>::Constant(C, *ra), CMapArr<T>(rb, C));
    else
      o = f(Arr<T>::Constant(C, *ra), Arr<T>::Constant(C, *rb));
  }
}

// ---- unary ----
// Each op: its forward kernel, and below it the VJP with its formula.

template <class T> void fwd_neg(const KernelArgs& k) { unary_kernel<T>(k, [](const auto& x) { return -x; }); }
// dX = -G
MG_VJP_FN(vjp_neg) { c.dx[0] = a.neg(c.g); }

// Eigen's vectorised exp and log are accurate to an ulp or so in the normal range but clamp
// where the result or the argument is subnormal; those elements are redone with std::exp/log.
template <class T> void fwd_exp(const KernelArgs& k) {
  unary_kernel<T>(k, [](const auto& x) { return x.exp(); });
  const T lo = std::log(std::numeric_limits<T>::min());  // below: subnormal or zero results
  auto x = k.in[0].arr<T>();
  if ((x < lo).any()) {
    T* o = k.out.ptr<T>();
    for (Eigen::Index i = 0; i < x.size(); ++i)
      if (x[i] < lo) o[i] = std::exp(x[i]);
  }
}
// dX = G * exp(X)
MG_VJP_FN(vjp_exp) { c.dx[0] = a.mul(c.g, c.out); }

template <class T> void fwd_log(const KernelArgs& k) {
  unary_kernel<T>(k, [](const auto& x) { return x.log(); });
  const T tiny = std::numeric_limits<T>::min();  // below: subnormal arguments
  auto x = k.in[0].arr<T>();
  if (((x < tiny) && (x > T(0))).any()) {
    T* o = k.out.ptr<T>();
    for (Eigen::Index i = 0; i < x.size(); ++i)
      if (x[i] < tiny && x[i] > T(0)) o[i] = std::log(x[i]);
  }
}
// dX = G / X
MG_VJP_FN(vjp_log) { c.dx[0] = a.div(c.g, c.in[0]); }

template <class T> void fwd_sin(const KernelArgs& k) { unary_kernel<T>(k, [](const auto& x) { return x.sin(); }); }
// dX = G * cos(X)
MG_VJP_FN(vjp_sin) { c.dx[0] = a.mul(c.g, a.cos(c.in[0])); }

template <class T> void fwd_cos(const KernelArgs& k) { unary_kernel<T>(k, [](const auto& x) { return x.cos(); }); }
// dX = -(G * sin(X))
MG_VJP_FN(vjp_cos) { c.dx[0] = a.neg(a.mul(c.g, a.sin(c.in[0]))); }

template <class T> void fwd_tan(const KernelArgs& k) { unary_kernel<T>(k, [](const auto& x) { return x.tan(); }); }
// dX = G * (1 + tan(X)^2)
MG_VJP_FN(vjp_tan) { c.dx[0] = a.mul(c.g, a.add_s(a.square(c.out), 1.0)); }

template <class T> void fwd_tanh(const KernelArgs& k) { unary_kernel<T>(k, [](const auto& x) { return x.tanh(); }); }
// dX = G * (1 - tanh(X)^2)
MG_VJP_FN(vjp_tanh) { c.dx[0] = a.mul(c.g, a.rsub_s(a.square(c.out), 1.0)); }

template <class T> void fwd_sqrt(const KernelArgs& k) { unary_kernel<T>(k, [](const auto& x) { return x.sqrt(); }); }
// dX = G / (2 sqrt(X))
MG_VJP_FN(vjp_sqrt) { c.dx[0] = a.div(c.g, a.mul_s(c.out, 2.0)); }

template <class T> void fwd_abs(const KernelArgs& k) { unary_kernel<T>(k, [](const auto& x) { return x.abs(); }); }
// dX = G * sign(X)   (abs'(0) = 0)
MG_VJP_FN(vjp_abs) { c.dx[0] = a.mul(c.g, a.sign(c.in[0])); }

template <class T> void fwd_square(const KernelArgs& k) { unary_kernel<T>(k, [](const auto& x) { return x.square(); }); }
// dX = G * 2X
MG_VJP_FN(vjp_square) { c.dx[0] = a.mul(c.g, a.mul_s(c.in[0], 2.0)); }

template <class T> void fwd_sigmoid(const KernelArgs& k) {
  unary_kernel<T>(k, [](const auto& x) { return (T(1) + (-x).exp()).inverse(); });
}
// dX = G * s (1 - s),  s = sigmoid(X)
MG_VJP_FN(vjp_sigmoid) { c.dx[0] = a.mul(c.g, a.mul(c.out, a.rsub_s(c.out, 1.0))); }

template <class T> void fwd_relu(const KernelArgs& k) {
  unary_kernel<T>(k, [](const auto& x) { return (x < T(0)).select(T(0), x); });  // NaN stays NaN
}
// dX = G * [X > 0]   (relu'(0) = 0)
MG_VJP_FN(vjp_relu) { c.dx[0] = a.mul(c.g, a.step(c.in[0])); }

template <class T> void fwd_softplus(const KernelArgs& k) {
  // log(1 + e^x) = max(x, 0) + log1p(e^-|x|), without overflow
  unary_kernel<T>(k, [](const auto& x) { return (x > T(0)).select(x, T(0)) + (-x.abs()).exp().log1p(); });
}
// dX = G * sigmoid(X)
MG_VJP_FN(vjp_softplus) { c.dx[0] = a.mul(c.g, a.sigmoid(c.in[0])); }

template <class T> void fwd_sign(const KernelArgs& k) { unary_kernel<T>(k, [](const auto& x) { return x.sign(); }); }
template <class T> void fwd_step(const KernelArgs& k) {
  unary_kernel<T>(k, [](const auto& x) { return (x > T(0)).template cast<T>(); });
}

// ---- with a scalar attribute s (a weak Python scalar: the result keeps X's dtype) ----

template <class T> void fwd_add_s(const KernelArgs& k) {
  const T s = T(k.attr.s);
  unary_kernel<T>(k, [s](const auto& x) { return x + s; });
}
// dX = G
MG_VJP_FN(vjp_add_s) { c.dx[0] = c.g; }

template <class T> void fwd_mul_s(const KernelArgs& k) {
  const T s = T(k.attr.s);
  unary_kernel<T>(k, [s](const auto& x) { return x * s; });
}
// dX = G * s
MG_VJP_FN(vjp_mul_s) { c.dx[0] = a.mul_s(c.g, c.node.attr.s); }

template <class T> void fwd_div_s(const KernelArgs& k) {
  const T s = T(k.attr.s);
  unary_kernel<T>(k, [s](const auto& x) { return x / s; });
}
// dX = G / s
MG_VJP_FN(vjp_div_s) { c.dx[0] = a.op(OpId::div_s, {c.g}, a.scalar(c.node.attr.s)); }

template <class T> void fwd_rsub_s(const KernelArgs& k) {
  const T s = T(k.attr.s);
  unary_kernel<T>(k, [s](const auto& x) { return s - x; });
}
// dX = -G
MG_VJP_FN(vjp_rsub_s) { c.dx[0] = a.neg(c.g); }

template <class T> void fwd_rdiv_s(const KernelArgs& k) {
  const T s = T(k.attr.s);
  unary_kernel<T>(k, [s](const auto& x) { return Arr<T>::Constant(x.size(), s) / x; });
}
// dX = -G * (s / X) / X
MG_VJP_FN(vjp_rdiv_s) { c.dx[0] = a.neg(a.div(a.mul(c.g, c.out), c.in[0])); }

template <class T> void fwd_pow_s(const KernelArgs& k) {
  const T s = T(k.attr.s);
  // Exact shortcuts (each correctly rounded, as pow should be); std::pow otherwise.
  if (s == T(2))
    unary_kernel<T>(k, [](const auto& x) { return x.square(); });
  else if (s == T(1))
    unary_kernel<T>(k, [](const auto& x) { return x; });
  else if (s == T(0))
    k.out.arr<T>().setOnes();
  else if (s == T(-1))
    unary_kernel<T>(k, [](const auto& x) { return x.inverse(); });
  else
    unary_kernel<T>(k, [s](const auto& x) { return x.unaryExpr([s](T v) { return T(std::pow(v, s)); }); });
}
// dX = G * s X^(s-1)
MG_VJP_FN(vjp_pow_s) {
  const double s = c.node.attr.s;
  if (s == 0.0) return;  // constant
  c.dx[0] = a.mul(c.g, a.mul_s(a.pow_s(c.in[0], s - 1.0), s));
}

template <class T> void fwd_rpow_s(const KernelArgs& k) {
  const T s = T(k.attr.s);
  unary_kernel<T>(k, [s](const auto& x) { return x.unaryExpr([s](T v) { return T(std::pow(s, v)); }); });
}
// dX = G * s^X log(s)   (s = 0: 0^X is constant 0 for X > 0, so the gradient is 0)
MG_VJP_FN(vjp_rpow_s) {
  if (c.node.attr.s == 0.0) return;
  c.dx[0] = a.mul(c.g, a.mul_s(c.out, std::log(c.node.attr.s)));
}

// ---- binary, broadcasting (the engine sums each cotangent back to its input's shape) ----

Shape bcast_shape_add(const Attr&, const Shape* in, int) { return broadcast_shapes("add", in[0], in[1]); }
Shape bcast_shape_sub(const Attr&, const Shape* in, int) { return broadcast_shapes("sub", in[0], in[1]); }
Shape bcast_shape_mul(const Attr&, const Shape* in, int) { return broadcast_shapes("mul", in[0], in[1]); }
Shape bcast_shape_div(const Attr&, const Shape* in, int) { return broadcast_shapes("div", in[0], in[1]); }
Shape bcast_shape_pow(const Attr&, const Shape* in, int) { return broadcast_shapes("pow", in[0], in[1]); }
Shape bcast_shape_maximum(const Attr&, const Shape* in, int) { return broadcast_shapes("maximum", in[0], in[1]); }
Shape bcast_shape_minimum(const Attr&, const Shape* in, int) { return broadcast_shapes("minimum", in[0], in[1]); }

template <class T> void fwd_add(const KernelArgs& k) {
  binary_kernel<T>(k, [](const auto& x, const auto& y) { return x + y; });
}
// dX = G, dY = G
MG_VJP_FN(vjp_add) {
  if (c.needs[0]) c.dx[0] = c.g;
  if (c.needs[1]) c.dx[1] = c.g;
}

template <class T> void fwd_sub(const KernelArgs& k) {
  binary_kernel<T>(k, [](const auto& x, const auto& y) { return x - y; });
}
// dX = G, dY = -G
MG_VJP_FN(vjp_sub) {
  if (c.needs[0]) c.dx[0] = c.g;
  if (c.needs[1]) c.dx[1] = a.neg(c.g);
}

template <class T> void fwd_mul(const KernelArgs& k) {
  binary_kernel<T>(k, [](const auto& x, const auto& y) { return x * y; });
}
// dX = G * Y, dY = G * X
MG_VJP_FN(vjp_mul) {
  if (c.needs[0]) c.dx[0] = a.mul(c.g, c.in[1]);
  if (c.needs[1]) c.dx[1] = a.mul(c.g, c.in[0]);
}

template <class T> void fwd_div(const KernelArgs& k) {
  binary_kernel<T>(k, [](const auto& x, const auto& y) { return x / y; });
}
// dX = G / Y, dY = -G * (X / Y) / Y
MG_VJP_FN(vjp_div) {
  if (c.needs[0]) c.dx[0] = a.div(c.g, c.in[1]);
  if (c.needs[1]) c.dx[1] = a.neg(a.div(a.mul(c.g, c.out), c.in[1]));
}

template <class T> void fwd_pow(const KernelArgs& k) {
  binary_kernel<T>(k, [](const auto& x, const auto& y) {
    return x.binaryExpr(y, [](T u, T v) { return T(std::pow(u, v)); });
  });
}
// dX = G * Y X^(Y-1)   (0 where Y = 0, as for x ** 0), dY = G * xlogy(X^Y, X)   (0 where X^Y = 0)
MG_VJP_FN(vjp_pow) {
  if (c.needs[0])
    c.dx[0] = a.mul(c.g, a.op(OpId::mask_nz, {c.in[1], a.mul(c.in[1], a.pow(c.in[0], a.add_s(c.in[1], -1.0)))}));
  if (c.needs[1]) c.dx[1] = a.mul(c.g, a.xlogy(c.out, c.in[0]));
}

Shape bcast_shape_mask_nz(const Attr&, const Shape* in, int) { return broadcast_shapes("mask_nz", in[0], in[1]); }
template <class T> void fwd_mask_nz(const KernelArgs& k) {
  binary_kernel<T>(k, [](const auto& s, const auto& v) { return (s == T(0)).select(T(0), v); });
}
// dS = none (piecewise constant in S), dV = mask_nz(S, G)
MG_VJP_FN(vjp_mask_nz) {
  if (c.needs[1]) c.dx[1] = a.op(OpId::mask_nz, {c.in[0], c.g});
}

Shape bcast_shape_xlogy(const Attr&, const Shape* in, int) { return broadcast_shapes("xlogy", in[0], in[1]); }
template <class T> void fwd_xlogy(const KernelArgs& k) {
  binary_kernel<T>(k, [](const auto& x, const auto& y) {
    return x.binaryExpr(y, [](T u, T v) { return u == T(0) ? T(0) : u * std::log(v); });
  });
}
// dX = G * xlogy([X != 0], Y), dY = G * X / Y   (as PyTorch: no -inf * 0 where X = 0)
MG_VJP_FN(vjp_xlogy) {
  if (c.needs[0]) c.dx[0] = a.mul(c.g, a.xlogy(a.op(OpId::abs, {a.sign(c.in[0])}), c.in[1]));
  if (c.needs[1]) c.dx[1] = a.div(a.mul(c.g, c.in[0]), c.in[1]);
}

template <class T> void fwd_maximum(const KernelArgs& k) {
  binary_kernel<T>(k, [](const auto& x, const auto& y) {
    return x.binaryExpr(y, [](T u, T v) { return (std::isnan(u) || u >= v) ? u : v; });
  });
}
template <class T> void fwd_minimum(const KernelArgs& k) {
  binary_kernel<T>(k, [](const auto& x, const auto& y) {
    return x.binaryExpr(y, [](T u, T v) { return (std::isnan(u) || u <= v) ? u : v; });
  });
}
template <class T> void fwd_max_weight(const KernelArgs& k) {
  binary_kernel<T>(k, [](const auto& x, const auto& y) {
    return (x > y).template cast<T>() + T(0.5) * (x == y).template cast<T>();
  });
}
template <class T> void fwd_min_weight(const KernelArgs& k) {
  binary_kernel<T>(k, [](const auto& x, const auto& y) {
    return (x < y).template cast<T>() + T(0.5) * (x == y).template cast<T>();
  });
}
// W = [X > Y] + [X == Y] / 2 (ties split equally);  dX = G * W, dY = G * (1 - W)
MG_VJP_FN(vjp_maximum) {
  auto w = a.op(OpId::max_weight, {c.in[0], c.in[1]});
  if (c.needs[0]) c.dx[0] = a.mul(c.g, w);
  if (c.needs[1]) c.dx[1] = a.mul(c.g, a.rsub_s(w, 1.0));
}
// W = [X < Y] + [X == Y] / 2;  dX = G * W, dY = G * (1 - W)
MG_VJP_FN(vjp_minimum) {
  auto w = a.op(OpId::min_weight, {c.in[0], c.in[1]});
  if (c.needs[0]) c.dx[0] = a.mul(c.g, w);
  if (c.needs[1]) c.dx[1] = a.mul(c.g, a.rsub_s(w, 1.0));
}

// ---- where(mask, a, b): mask is a 0/1 constant of the dtype of a and b ----
Shape where_shape(const Attr&, const Shape* in, int) {
  try {
    return broadcast_shapes("where", in[0], broadcast_shapes("where", in[1], in[2]));
  } catch (const ShapeError&) {
    fail_shapes("where", "(mask, a, b) cannot be broadcast together", in, 3);
  }
}
template <class T> void fwd_where(const KernelArgs& k) {
  const Shape& so = k.out.shape();
  const Shape *sm = &k.in[0].shape(), *sa = &k.in[1].shape(), *sb = &k.in[2].shape();
  const T *pm = k.in[0].ptr<T>(), *pa = k.in[1].ptr<T>(), *pb = k.in[2].ptr<T>();
  T* po = k.out.ptr<T>();
  auto at = [](const Shape* s, const T* p, std::int64_t r, std::int64_t c) {
    return p[(s->rows == 1 ? 0 : r * s->cols) + (s->cols == 1 ? 0 : c)];
  };
  for (std::int64_t r = 0; r < so.rows; ++r)
    for (std::int64_t c = 0; c < so.cols; ++c)
      po[r * so.cols + c] = at(sm, pm, r, c) != T(0) ? at(sa, pa, r, c) : at(sb, pb, r, c);
}
// dA = G where mask, dB = G where not mask (each summed back to its shape)
MG_VJP_FN(vjp_where) {
  if (c.needs[1]) c.dx[1] = a.mask_nz(c.in[0], c.g);
  if (c.needs[2]) c.dx[2] = a.mask_nz(a.rsub_s(c.in[0], 1.0), c.g);
}

}  // namespace

void register_elementwise(OpDef* t) {
  auto def = [t](OpId id, const char* name, int arity, ShapeFn shape, ForwardFn fwd) -> OpDef& {
    OpDef& d = define(t, id, name, arity, shape, fwd);
    d.batch = arity == 1 ? BatchKind::unary : BatchKind::binary;
    return d;
  };
  MG_VJP(def(OpId::neg, "neg", 1, same_shape, MG_FWD(fwd_neg)), vjp_neg);
  MG_VJP(def(OpId::exp, "exp", 1, same_shape, MG_FWD(fwd_exp)), vjp_exp);
  MG_VJP(def(OpId::log, "log", 1, same_shape, MG_FWD(fwd_log)), vjp_log);
  MG_VJP(def(OpId::sin, "sin", 1, same_shape, MG_FWD(fwd_sin)), vjp_sin);
  MG_VJP(def(OpId::cos, "cos", 1, same_shape, MG_FWD(fwd_cos)), vjp_cos);
  MG_VJP(def(OpId::tan, "tan", 1, same_shape, MG_FWD(fwd_tan)), vjp_tan);
  MG_VJP(def(OpId::tanh, "tanh", 1, same_shape, MG_FWD(fwd_tanh)), vjp_tanh);
  MG_VJP(def(OpId::sqrt, "sqrt", 1, same_shape, MG_FWD(fwd_sqrt)), vjp_sqrt);
  MG_VJP(def(OpId::abs, "abs", 1, same_shape, MG_FWD(fwd_abs)), vjp_abs);
  MG_VJP(def(OpId::square, "square", 1, same_shape, MG_FWD(fwd_square)), vjp_square);
  MG_VJP(def(OpId::sigmoid, "sigmoid", 1, same_shape, MG_FWD(fwd_sigmoid)), vjp_sigmoid);
  MG_VJP(def(OpId::relu, "relu", 1, same_shape, MG_FWD(fwd_relu)), vjp_relu);
  MG_VJP(def(OpId::softplus, "softplus", 1, same_shape, MG_FWD(fwd_softplus)), vjp_softplus);
  def(OpId::sign, "sign", 1, same_shape, MG_FWD(fwd_sign));  // zero derivative
  def(OpId::step, "step", 1, same_shape, MG_FWD(fwd_step));  // zero derivative

  MG_VJP(def(OpId::add_s, "add", 1, same_shape, MG_FWD(fwd_add_s)), vjp_add_s);
  MG_VJP(def(OpId::mul_s, "mul", 1, same_shape, MG_FWD(fwd_mul_s)), vjp_mul_s);
  MG_VJP(def(OpId::div_s, "div", 1, same_shape, MG_FWD(fwd_div_s)), vjp_div_s);
  MG_VJP(def(OpId::rsub_s, "sub", 1, same_shape, MG_FWD(fwd_rsub_s)), vjp_rsub_s);
  MG_VJP(def(OpId::rdiv_s, "div", 1, same_shape, MG_FWD(fwd_rdiv_s)), vjp_rdiv_s);
  MG_VJP(def(OpId::pow_s, "pow", 1, same_shape, MG_FWD(fwd_pow_s)), vjp_pow_s);
  MG_VJP(def(OpId::rpow_s, "pow", 1, same_shape, MG_FWD(fwd_rpow_s)), vjp_rpow_s);

  MG_VJP(def(OpId::add, "add", 2, bcast_shape_add, MG_FWD(fwd_add)), vjp_add);
  MG_VJP(def(OpId::sub, "sub", 2, bcast_shape_sub, MG_FWD(fwd_sub)), vjp_sub);
  MG_VJP(def(OpId::mul, "mul", 2, bcast_shape_mul, MG_FWD(fwd_mul)), vjp_mul);
  MG_VJP(def(OpId::div, "div", 2, bcast_shape_div, MG_FWD(fwd_div)), vjp_div);
  MG_VJP(def(OpId::pow, "pow", 2, bcast_shape_pow, MG_FWD(fwd_pow)), vjp_pow);
  MG_VJP(def(OpId::maximum, "maximum", 2, bcast_shape_maximum, MG_FWD(fwd_maximum)), vjp_maximum);
  MG_VJP(def(OpId::minimum, "minimum", 2, bcast_shape_minimum, MG_FWD(fwd_minimum)), vjp_minimum);
  MG_VJP(def(OpId::xlogy, "xlogy", 2, bcast_shape_xlogy, MG_FWD(fwd_xlogy)), vjp_xlogy);
  MG_VJP(def(OpId::mask_nz, "mask_nz", 2, bcast_shape_mask_nz, MG_FWD(fwd_mask_nz)), vjp_mask_nz);
  def(OpId::max_weight, "max_weight", 2, bcast_shape_maximum, MG_FWD(fwd_max_weight));
  def(OpId::min_weight, "min_weight", 2, bcast_shape_minimum, MG_FWD(fwd_min_weight));
  OpDef& w = def(OpId::where, "where", 3, where_shape, MG_FWD(fwd_where));
  w.batch = BatchKind::generic;
  MG_VJP(w, vjp_where);
}

}  // namespace matgrad
