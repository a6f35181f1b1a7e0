// SPDX-License-Identifier: MIT
// Elementwise ops: unary, with a scalar attribute, and binary with NumPy broadcasting; the
// public entry points neg ... softplus, add ... minimum and where.
#include "registry.hpp"

#include "../kernels/vecmath.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>

namespace matgrad {

namespace {

// Ops only this file names.
OpId k_rdiv_s, k_rpow_s, k_max_weight, k_min_weight, k_nonzero, k_where;

Shape same_shape(const Attr&, const Shape* in, int) { return in[0]; }

// One element (0-D values, the scalar programs of loops): a fixed-size map, so f compiles to the
// scalar operation, without the loop and alignment set-up of a dynamic size.
template <class T> using One = Eigen::Map<Eigen::Array<T, 1, 1>>;
template <class T> using COne = Eigen::Map<const Eigen::Array<T, 1, 1>>;

template <class T, class F>
void unary_kernel(const KernelArgs& k, F f) {
  if (k.out.shape().size() == 1) {
    One<T> o(k.out.ptr<T>());
    o = f(COne<T>(k.in[0].ptr<T>()));
    return;
  }
  k.out.arr<T>() = f(k.in[0].arr<T>());
}

// The vector kernel for fn (Note [vectorised math] in kernels/vecmath.cpp) when there is one,
// else f through Eigen/libm. Every size takes the same path, one element included, so a value's
// result never depends on the shape it comes in.
template <class T, class F>
void unary_vec(const KernelArgs& k, vecmath::Fn fn, F f) {
  if (!vecmath::apply(fn, k.in[0].ptr<T>(), k.out.ptr<T>(), k.out.shape().size())) unary_kernel<T>(k, f);
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
  if (so.size() == 1) {  // then each operand has one element too
    One<T> o(po);
    o = f(COne<T>(pa), COne<T>(pb));
    return;
  }
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

template <class T> void fwd_neg(const KernelArgs& k) {
  unary_kernel<T>(k, [](const auto& x) { return -x; });
}
// dX = -G
MG_VJP_FN(vjp_neg) { c.dx[0] = a.neg(c.g); }

// Without vector kernels: Eigen's vectorised exp and log are accurate to an ulp or so in the
// normal range but clamp where the result or the argument is subnormal, and exp overflows a
// little early (float32 exp(88.5) = inf); those elements are redone with std::exp/log (float32
// exp goes through double instead). The test
// is a vectorised min/max, made before the result is written: a compiled program may write the
// result over the argument (in place), so the rare path works on a copy of it.
template <class T, class F, class Redo>
void unary_with_redo(const KernelArgs& k, bool redo, F f, Redo r) {
  if (!redo) {
    unary_kernel<T>(k, f);
    return;
  }
  const Arr<T> x = k.in[0].arr<T>();
  k.out.arr<T>() = f(x);
  T* o = k.out.ptr<T>();
  for (Eigen::Index i = 0; i < x.size(); ++i) r(x[i], o[i]);
}
template <class T> void fwd_exp(const KernelArgs& k) {
  if (vecmath::apply(vecmath::Fn::exp, k.in[0].ptr<T>(), k.out.ptr<T>(), k.out.shape().size())) return;
  if constexpr (std::is_same_v<T, float>) {  // Eigen's expf errs by up to 4.5 ulp for |x| > 70
    unary_kernel<T>(k, [](const auto& x) { return x.template cast<double>().exp().template cast<float>(); });
    return;
  }
  const T lo = std::log(std::numeric_limits<T>::min());      // below: subnormal or zero results
  const T hi = std::log(std::numeric_limits<T>::max()) - 1;  // above: near overflow
  const auto x = k.in[0].arr<T>();
  // (a NaN can hide the extremes from a fast minCoeff; the sum finds it, and with it an infinity)
  const bool redo = x.size() > 0 && (!(x.minCoeff() >= lo) || !(x.maxCoeff() <= hi) || !std::isfinite(x.sum()));
  unary_with_redo<T>(
      k, redo, [](const auto& v) { return v.exp(); },
      [lo, hi](T v, T& o) {
        if (v < lo || v > hi) o = std::exp(v);
      });
}
// dX = G * exp(X)
MG_VJP_FN(vjp_exp) { c.dx[0] = a.mul(c.g, c.out); }

template <class T> void fwd_log(const KernelArgs& k) {
  if (vecmath::apply(vecmath::Fn::log, k.in[0].ptr<T>(), k.out.ptr<T>(), k.out.shape().size())) return;
  const T tiny = std::numeric_limits<T>::min();  // below: subnormal arguments
  const auto x = k.in[0].arr<T>();
  const T inf = std::numeric_limits<T>::infinity();
  unary_with_redo<T>(
      k, x.size() > 0 && (x > T(0)).select(x, inf).minCoeff() < tiny, [](const auto& v) { return v.log(); },
      [tiny](T v, T& o) {
        if (v < tiny && v > T(0)) o = std::log(v);
      });
}
// dX = G / X
MG_VJP_FN(vjp_log) { c.dx[0] = a.div(c.g, c.in[0]); }

template <class T> void fwd_log1p(const KernelArgs& k) {
  unary_vec<T>(k, vecmath::Fn::log1p, [](const auto& x) { return x.unaryExpr([](T v) { return std::log1p(v); }); });
}
// dX = G / (1 + X)
MG_VJP_FN(vjp_log1p) { c.dx[0] = a.div(c.g, a.add_s(c.in[0], 1.0)); }

template <class T> void fwd_expm1(const KernelArgs& k) {
  unary_vec<T>(k, vecmath::Fn::expm1, [](const auto& x) { return x.unaryExpr([](T v) { return std::expm1(v); }); });
}
// dX = G * (expm1(X) + 1)
MG_VJP_FN(vjp_expm1) { c.dx[0] = a.mul(c.g, a.add_s(c.out, 1.0)); }

template <class T> void fwd_sin(const KernelArgs& k) {
  unary_vec<T>(k, vecmath::Fn::sin, [](const auto& x) { return x.sin(); });
}
// dX = G * cos(X)
MG_VJP_FN(vjp_sin) { c.dx[0] = a.mul(c.g, a.cos(c.in[0])); }

template <class T> void fwd_cos(const KernelArgs& k) {
  unary_vec<T>(k, vecmath::Fn::cos, [](const auto& x) { return x.cos(); });
}
// dX = -(G * sin(X))
MG_VJP_FN(vjp_cos) { c.dx[0] = a.neg(a.mul(c.g, a.sin(c.in[0]))); }

template <class T> void fwd_tan(const KernelArgs& k) {
  unary_vec<T>(k, vecmath::Fn::tan, [](const auto& x) { return x.tan(); });
}
// dX = G * (1 + tan(X)^2)
MG_VJP_FN(vjp_tan) { c.dx[0] = a.mul(c.g, a.add_s(a.square(c.out), 1.0)); }

template <class T> void fwd_tanh(const KernelArgs& k) {
  unary_vec<T>(k, vecmath::Fn::tanh, [](const auto& x) { return x.tanh(); });
}
// dX = G * (1 - tanh(X)^2)
MG_VJP_FN(vjp_tanh) { c.dx[0] = a.mul(c.g, a.rsub_s(a.square(c.out), 1.0)); }

template <class T> void fwd_sqrt(const KernelArgs& k) {
  unary_vec<T>(k, vecmath::Fn::sqrt, [](const auto& x) { return x.sqrt(); });
}
// dX = G / (2 sqrt(X))
MG_VJP_FN(vjp_sqrt) { c.dx[0] = a.div(c.g, a.mul_s(c.out, 2.0)); }

template <class T> void fwd_abs(const KernelArgs& k) {
  unary_kernel<T>(k, [](const auto& x) { return x.abs(); });
}
// dX = G * sign(X)   (abs'(0) = 0)
MG_VJP_FN(vjp_abs) { c.dx[0] = a.mul(c.g, a.sign(c.in[0])); }

template <class T> void fwd_square(const KernelArgs& k) {
  unary_kernel<T>(k, [](const auto& x) { return x.square(); });
}
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
  // log(1 + e^x) = max(x, 0) + log1p(e^-|x|), without overflow. With vector kernels: a block at
  // a time through a buffer (each block's x read before its result is written: in place works).
  const T* x = k.in[0].ptr<T>();
  T* y = k.out.ptr<T>();
  const std::int64_t n = k.out.shape().size();
  constexpr std::int64_t kBlock = 256;
  T b[kBlock];
  for (std::int64_t i = 0; i < n; i += kBlock) {
    const std::int64_t m = std::min(kBlock, n - i);
    CMapArr<T> xi(x + i, m);
    MapArr<T> bi(b, m);
    bi = -xi.abs();
    if (!vecmath::apply(vecmath::Fn::exp, b, b, m) || !vecmath::apply(vecmath::Fn::log1p, b, b, m)) {
      unary_kernel<T>(k, [](const auto& v) { return (v > T(0)).select(v, T(0)) + (-v.abs()).exp().log1p(); });
      return;
    }
    MapArr<T>(y + i, m) = (xi > T(0)).select(xi, T(0)) + bi;
  }
}
// dX = G * sigmoid(X)
MG_VJP_FN(vjp_softplus) { c.dx[0] = a.mul(c.g, a.sigmoid(c.in[0])); }

// 1 where x is nonzero (NaN included), else 0: a mask as NumPy reads truth values
template <class T> void fwd_nonzero(const KernelArgs& k) {
  unary_kernel<T>(k, [](const auto& x) { return (x != T(0)).template cast<T>(); });
}
template <class T> void fwd_sign(const KernelArgs& k) {
  unary_kernel<T>(k, [](const auto& x) { return x.sign(); });
}
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
MG_VJP_FN(vjp_div_s) { c.dx[0] = a.op(ops::div_s, {c.g}, a.scalar(c.node.attr.s)); }

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
  else if (s == T(0.5))  // NumPy's x ** 0.5 is sqrt(x): nan at -inf, where C's pow gives inf
    unary_kernel<T>(k, [](const auto& x) { return x.sqrt(); });
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
  if (c.needs[1]) {
    // -G x / y^2 = -(G out) / y; a broadcast y is constant over what is summed for it, so the
    // sum comes first: one division per element of y, not per element of the result
    const Shape ys = a.shape(c.in[1]);
    auto gy = a.mul(c.g, c.out);
    if (ys.size() < a.shape(c.out).size()) gy = a.sum_to(gy, ys);
    c.dx[1] = a.neg(a.div(gy, c.in[1]));
  }
}

template <class T> void fwd_pow(const KernelArgs& k) {
  binary_kernel<T>(
      k, [](const auto& x, const auto& y) { return x.binaryExpr(y, [](T u, T v) { return T(std::pow(u, v)); }); });
}
// dX = G * Y X^(Y-1)   (0 where Y = 0, as for x ** 0), dY = G * xlogy(X^Y, X)   (0 where X^Y = 0)
MG_VJP_FN(vjp_pow) {
  if (c.needs[0])
    c.dx[0] = a.mul(c.g, a.op(ops::mask_nz, {c.in[1], a.mul(c.in[1], a.pow(c.in[0], a.add_s(c.in[1], -1.0)))}));
  if (c.needs[1]) c.dx[1] = a.mul(c.g, a.xlogy(c.out, c.in[0]));
}

Shape bcast_shape_mask_nz(const Attr&, const Shape* in, int) { return broadcast_shapes("mask_nz", in[0], in[1]); }
template <class T> void fwd_mask_nz(const KernelArgs& k) {
  binary_kernel<T>(k, [](const auto& s, const auto& v) { return (s == T(0)).select(T(0), v); });
}
// dS = none (piecewise constant in S), dV = mask_nz(S, G)
MG_VJP_FN(vjp_mask_nz) {
  if (c.needs[1]) c.dx[1] = a.op(ops::mask_nz, {c.in[0], c.g});
}

Shape bcast_shape_xlogy(const Attr&, const Shape* in, int) { return broadcast_shapes("xlogy", in[0], in[1]); }
template <class T> void fwd_xlogy(const KernelArgs& k) {
  binary_kernel<T>(k, [](const auto& x, const auto& y) {
    return x.binaryExpr(y, [](T u, T v) { return u == T(0) ? T(0) : u * std::log(v); });
  });
}
// dX = G * xlogy([X != 0], Y), dY = G * X / Y   (as PyTorch: no -inf * 0 where X = 0)
MG_VJP_FN(vjp_xlogy) {
  if (c.needs[0]) c.dx[0] = a.mul(c.g, a.xlogy(a.op(ops::abs, {a.sign(c.in[0])}), c.in[1]));
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
  auto w = a.op(k_max_weight, {c.in[0], c.in[1]});
  if (c.needs[0]) c.dx[0] = a.mul(c.g, w);
  if (c.needs[1]) c.dx[1] = a.mul(c.g, a.rsub_s(w, 1.0));
}
// W = [X < Y] + [X == Y] / 2;  dX = G * W, dY = G * (1 - W)
MG_VJP_FN(vjp_minimum) {
  auto w = a.op(k_min_weight, {c.in[0], c.in[1]});
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

// ---- the entry points ----

// x op y with a weak number on either side kept as the op's attribute (it takes the other
// operand's dtype): x op s is x_op_s(x, s) (s negated when `negate`), s op x is s_op_x(x, s).
Results front_arith(const EntryPoint& e, const Arg* a, OpId x_op_s, OpId s_op_x, bool negate = false) {
  if (a[0].kind == Arg::kNode && a[1].kind == Arg::kNode) return apply_promoted(e.op, a[0].node, a[1].node);
  if (a[1].kind == Arg::kScalar) {
    const double s = negate ? -a[1].scalar : a[1].scalar;
    if (a[0].kind == Arg::kNode) return apply_scalar(x_op_s, a[0].node, s);
    return apply_scalar(x_op_s, operand(a[0]), s);
  }
  if (a[0].kind == Arg::kScalar) return apply_scalar(s_op_x, a[1].node, a[0].scalar);
  return front_binary(e, a);
}
Results front_add(const EntryPoint& e, const Arg* a) { return front_arith(e, a, ops::add_s, ops::add_s); }
Results front_sub(const EntryPoint& e, const Arg* a) { return front_arith(e, a, ops::add_s, ops::rsub_s, true); }
Results front_mul(const EntryPoint& e, const Arg* a) { return front_arith(e, a, ops::mul_s, ops::mul_s); }
Results front_div(const EntryPoint& e, const Arg* a) { return front_arith(e, a, ops::div_s, k_rdiv_s); }
Results front_pow(const EntryPoint& e, const Arg* a) { return front_arith(e, a, ops::pow_s, k_rpow_s); }

// where(mask, a, b): the mask becomes 0/1 in its own dtype (truthiness as NumPy's: nonzero and
// NaN are true; tested before any cast, so 1e-300 stays true beside float32 operands), then the
// result's dtype. It is an op of the graph: a mask computed from a compiled function's inputs
// is recomputed on each call.
Results front_where(const EntryPoint&, const Arg* in) {
  NodeRef mask = operand(in[0]);
  const bool w1 = in[1].kind == Arg::kScalar, w2 = in[2].kind == Arg::kScalar;
  NodeRef a = w1 && !w2 ? operand(in[1], in[2].node->dtype) : operand(in[1]);
  NodeRef b = operand(in[2], a->dtype);
  const DType d = promote(a->dtype, b->dtype);
  NodeRef m = cast(apply(k_nonzero, {mask}), d);
  return apply(k_where, {m, cast(a, d), cast(b, d)});
}

constexpr const char* kUnaryShapes =
    "`x` of any shape (0-D, 1-D or 2-D; a Tensor, array, list or number) -> the same shape.";
constexpr const char* kBinaryShapes =
    "`x` and `y` broadcast as in NumPy (at most 2-D): equal shapes, or `()`, `(n,)`, `(1, n)` or `(m, 1)` "
    "stretched against `(m, n)` -> the broadcast shape. A Python number takes the other operand's dtype; float32 "
    "with float64 gives float64. Each adjoint below is summed back to its input's shape.";

}  // namespace

void register_elementwise() {
  // An elementwise op of one input with its public function mg.<name>(x).
  auto unary = [](OpId* id, const char* name, ForwardFn fwd, VjpFns vjp, const char* what,
                  const char* rule) -> EntryPoint& {
    OpDef& d = define(id, name, 1, same_shape, fwd).vjp(vjp).batched(BatchKind::unary);
    return define_entry(name, "elementwise", front_unary, id_of(d), {{"x", ParamKind::operand}})
        .doc(what, kUnaryShapes, rule);
  };
  // An internal elementwise op of one input (a VJP's building block, or x op s).
  auto inner = [](OpId* id, const char* name, ForwardFn fwd) -> OpDef& {
    return define(id, name, 1, same_shape, fwd).batched(BatchKind::unary);
  };
  // An elementwise op of two broadcasting inputs.
  auto binary = [](OpId* id, const char* name, ShapeFn shape, ForwardFn fwd) -> OpDef& {
    return define(id, name, 2, shape, fwd).batched(BatchKind::binary);
  };
  auto binary_entry = [](const OpDef& d, FrontFn fn, const char* what, const char* rule) -> EntryPoint& {
    return define_entry(d.name, "elementwise", fn, id_of(d), {{"x", ParamKind::operand}, {"y", ParamKind::operand}})
        .doc(what, kBinaryShapes, rule);
  };

  unary(&ops::neg, "neg", MG_FWD(fwd_neg), MG_VJP(vjp_neg), "`-x`, elementwise.", "d/dx: `-G`").pyop = PyOperator::neg;
  unary(&ops::exp, "exp", MG_FWD(fwd_exp), MG_VJP(vjp_exp), "`exp(x)`, elementwise.", "d/dx: `G * exp(x)`");
  unary(&ops::log, "log", MG_FWD(fwd_log), MG_VJP(vjp_log), "The natural logarithm `log(x)`, elementwise.",
        "d/dx: `G / x`");
  unary(nullptr, "log1p", MG_FWD(fwd_log1p), MG_VJP(vjp_log1p),
        "`log(1 + x)`, elementwise, accurate where `x` is near 0.", "d/dx: `G / (1 + x)`");
  unary(nullptr, "expm1", MG_FWD(fwd_expm1), MG_VJP(vjp_expm1),
        "`exp(x) - 1`, elementwise, accurate where `x` is near 0.", "d/dx: `G * (expm1(x) + 1)`");
  unary(&ops::sin, "sin", MG_FWD(fwd_sin), MG_VJP(vjp_sin), "`sin(x)`, elementwise.", "d/dx: `G * cos(x)`");
  unary(&ops::cos, "cos", MG_FWD(fwd_cos), MG_VJP(vjp_cos), "`cos(x)`, elementwise.", "d/dx: `-G * sin(x)`");
  unary(nullptr, "tan", MG_FWD(fwd_tan), MG_VJP(vjp_tan), "`tan(x)`, elementwise.", "d/dx: `G * (1 + tan(x)^2)`");
  unary(nullptr, "tanh", MG_FWD(fwd_tanh), MG_VJP(vjp_tanh), "`tanh(x)`, elementwise.", "d/dx: `G * (1 - tanh(x)^2)`");
  unary(nullptr, "sqrt", MG_FWD(fwd_sqrt), MG_VJP(vjp_sqrt), "`sqrt(x)`, elementwise.", "d/dx: `G / (2 sqrt(x))`");
  unary(&ops::abs, "abs", MG_FWD(fwd_abs), MG_VJP(vjp_abs), "`|x|`, elementwise.", "d/dx: `G * sign(x)` (0 at `x = 0`)")
      .pyop = PyOperator::abs;
  unary(&ops::square, "square", MG_FWD(fwd_square), MG_VJP(vjp_square), "`x^2`, elementwise.", "d/dx: `G * 2x`");
  unary(&ops::sigmoid, "sigmoid", MG_FWD(fwd_sigmoid), MG_VJP(vjp_sigmoid), "`1 / (1 + exp(-x))`, elementwise.",
        "d/dx: `G * s (1 - s)`, `s = sigmoid(x)`");
  unary(nullptr, "relu", MG_FWD(fwd_relu), MG_VJP(vjp_relu), "`max(x, 0)`, elementwise (NaN stays NaN).",
        "d/dx: `G * [x > 0]` (0 at `x = 0`)");
  unary(nullptr, "softplus", MG_FWD(fwd_softplus), MG_VJP(vjp_softplus),
        "`log(1 + exp(x))`, elementwise, without overflow.", "d/dx: `G * sigmoid(x)`");
  inner(&ops::sign, "sign", MG_FWD(fwd_sign));  // zero derivative
  inner(&k_nonzero, "nonzero", MG_FWD(fwd_nonzero));  // zero derivative
  inner(&ops::step, "step", MG_FWD(fwd_step));  // zero derivative

  // x op s for a weak Python-style number s (the result keeps x's dtype); messages name the
  // public op they serve
  inner(&ops::add_s, "add_s", MG_FWD(fwd_add_s)).labelled("add").reads(kAttrS).vjp(MG_VJP(vjp_add_s));
  inner(&ops::mul_s, "mul_s", MG_FWD(fwd_mul_s)).labelled("mul").reads(kAttrS).vjp(MG_VJP(vjp_mul_s));
  inner(&ops::div_s, "div_s", MG_FWD(fwd_div_s)).labelled("div").reads(kAttrS).vjp(MG_VJP(vjp_div_s));
  inner(&ops::rsub_s, "rsub_s", MG_FWD(fwd_rsub_s)).labelled("sub").reads(kAttrS).vjp(MG_VJP(vjp_rsub_s));
  inner(&k_rdiv_s, "rdiv_s", MG_FWD(fwd_rdiv_s)).labelled("div").reads(kAttrS).vjp(MG_VJP(vjp_rdiv_s));
  inner(&ops::pow_s, "pow_s", MG_FWD(fwd_pow_s)).labelled("pow").reads(kAttrS).vjp(MG_VJP(vjp_pow_s));
  inner(&k_rpow_s, "rpow_s", MG_FWD(fwd_rpow_s)).labelled("pow").reads(kAttrS).vjp(MG_VJP(vjp_rpow_s));

  binary_entry(binary(&ops::add, "add", bcast_shape_add, MG_FWD(fwd_add)).vjp(MG_VJP(vjp_add)), front_add,
               "`x + y`, elementwise.", "d/dx: `G`, d/dy: `G`")
      .pyop = PyOperator::add;
  binary_entry(binary(&ops::sub, "sub", bcast_shape_sub, MG_FWD(fwd_sub)).vjp(MG_VJP(vjp_sub)), front_sub,
               "`x - y`, elementwise.", "d/dx: `G`, d/dy: `-G`")
      .pyop = PyOperator::sub;
  binary_entry(binary(&ops::mul, "mul", bcast_shape_mul, MG_FWD(fwd_mul)).vjp(MG_VJP(vjp_mul)), front_mul,
               "`x * y`, elementwise.", "d/dx: `G * y`, d/dy: `G * x`")
      .pyop = PyOperator::mul;
  binary_entry(binary(&ops::div, "div", bcast_shape_div, MG_FWD(fwd_div)).vjp(MG_VJP(vjp_div)), front_div,
               "`x / y`, elementwise.", "d/dx: `G / y`, d/dy: `-G * x / y^2`")
      .pyop = PyOperator::truediv;
  binary_entry(binary(&ops::pow, "pow", bcast_shape_pow, MG_FWD(fwd_pow)).vjp(MG_VJP(vjp_pow)), front_pow,
               "`x ** y`, elementwise.",
               "d/dx: `G * y x^(y-1)` (0 where `y = 0`), d/dy: `G * x^y log(x)` (0 where `x^y = 0`). With a Python "
               "number `s` as the exponent, d/dx: `G * s x^(s-1)` (none for `s = 0`: `x ** 0` is constant); as the "
               "base, d/dy: `G * s^y log(s)` (0 for `s = 0`).")
      .pyop = PyOperator::pow;
  binary_entry(binary(nullptr, "maximum", bcast_shape_maximum, MG_FWD(fwd_maximum)).vjp(MG_VJP(vjp_maximum)),
               front_binary, "The larger of `x` and `y`, elementwise (NaN if either is NaN).",
               "d/dx: `G * W`, d/dy: `G * (1 - W)` with `W = [x > y] + [x == y] / 2`: the adjoint goes to the "
               "larger; ties split it equally.");
  binary_entry(binary(nullptr, "minimum", bcast_shape_minimum, MG_FWD(fwd_minimum)).vjp(MG_VJP(vjp_minimum)),
               front_binary, "The smaller of `x` and `y`, elementwise (NaN if either is NaN).",
               "d/dx: `G * W`, d/dy: `G * (1 - W)` with `W = [x < y] + [x == y] / 2`: the adjoint goes to the "
               "smaller; ties split it equally.");
  binary(&ops::xlogy, "xlogy", bcast_shape_xlogy, MG_FWD(fwd_xlogy)).vjp(MG_VJP(vjp_xlogy));
  binary(&ops::mask_nz, "mask_nz", bcast_shape_mask_nz, MG_FWD(fwd_mask_nz)).vjp(MG_VJP(vjp_mask_nz));
  binary(&k_max_weight, "max_weight", bcast_shape_maximum, MG_FWD(fwd_max_weight));  // zero derivative
  binary(&k_min_weight, "min_weight", bcast_shape_minimum, MG_FWD(fwd_min_weight));  // zero derivative

  define(&k_where, "where", 3, where_shape, MG_FWD(fwd_where)).vjp(MG_VJP(vjp_where));
  define_entry("where", "elementwise", front_where, k_where,
               {{"mask", ParamKind::operand}, {"a", ParamKind::operand}, {"b", ParamKind::operand}})
      .doc("`a` where `mask` is true, else `b`, as `np.where` (nonzero and NaN mask entries are true).",
           "`mask`, `a` and `b` broadcast together as in NumPy (at most 2-D) -> the broadcast shape; a Python "
           "number takes the other operand's dtype.",
           "d/da: `G` where mask, 0 elsewhere; d/db: `G` where not mask, 0 elsewhere (each summed back to its "
           "input's shape). The mask is a constant: no gradient flows to it.");
}

}  // namespace matgrad
