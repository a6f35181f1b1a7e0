// SPDX-License-Identifier: MIT
// Linear algebra: matmul with transpose flags (numpy.matmul semantics for 1-D operands), trace
// and its VJP eye_scale, tril (cholesky's VJP helper), norm, quad_form, kron with its VJPs
// kron_left and kron_right; the public entry points matmul, dot, outer, trace, norm,
// matrix_power (a composition), kron and quad_form. The factorizations (det, logdet, slogdet,
// inv, solve, cholesky) are in linalg_factor.cpp, registered from here in this file's order.
#include "linalg.hpp"

#include "../kernels/parallel.hpp"

#include <Eigen/LU>

#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

namespace matgrad {

namespace {

// Ops only this file names.
OpId k_seed_matmul, k_eye_scale, k_norm, k_quad_form, k_kron, k_kron_left, k_kron_right;

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

// O = X Y on the kernel threads (Note [kernel threads] in kernels/parallel.cpp): from
// kGemmMinWork multiply-adds the output is cut into blocks of rows (or of columns, when it is
// wider than tall), one GEMM each; below it, one GEMM on this thread. Measured on 2 cores
// (AVX-512), split / one thread: 64^3 1.02-1.12, 96^3 0.84-0.92, 128^3 0.59-0.71, 256^3
// 0.51-0.56, 64 x 784 x 256 0.57-0.60.
constexpr std::int64_t kGemmMinWork = std::int64_t(1) << 20;
template <class O_, class X_, class Y_>
void gemm(O_& O, const X_& X, const Y_& Y) {
  const std::int64_t m = O.rows(), n = O.cols();
  const int t = parallel::tasks_for(m * n * X.cols(), kGemmMinWork);
  if (t <= 1) {
    O.noalias() = X * Y;
    return;
  }
  const bool by_rows = m >= n;
  parallel::run(t, [&](int i) {
    std::int64_t b, e;
    parallel::chunk(by_rows ? m : n, t, i, 16, b, e);
    if (e <= b) return;
    if (by_rows)
      O.middleRows(b, e - b).noalias() = X.middleRows(b, e - b) * Y;
    else
      O.middleCols(b, e - b).noalias() = X * Y.middleCols(b, e - b);
  });
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
    gemm(O, X.transpose(), Y.transpose());
  else if (k.attr.ta)
    gemm(O, X.transpose(), Y);
  else if (k.attr.tb)
    gemm(O, X, Y.transpose());
  else
    gemm(O, X, Y);
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
  c.dx[0] = a.op(k_eye_scale, {c.g}, at);
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

// tril(X, s): the lower triangle with the diagonal scaled by s (self-adjoint: dX = tril(G, s))
Shape tril_shape(const Attr&, const Shape* in, int) {
  if (in[0].ndim != 2) fail_shapes("tril", "is not 2-D", in, 1);
  return in[0];
}
template <class T> void fwd_tril(const KernelArgs& k) {
  auto x = k.in[0].mat<T>();
  auto o = k.out.mat<T>();
  const T s = T(k.attr.s);
  for (Eigen::Index i = 0; i < o.rows(); ++i)
    for (Eigen::Index j = 0; j < o.cols(); ++j) o(i, j) = j < i ? x(i, j) : (j == i ? s * x(i, j) : T(0));
}
MG_VJP_FN(vjp_tril) { c.dx[0] = a.tril(c.g, c.node.attr.s); }

// ---- norm ----
Shape norm_shape(const Attr&, const Shape*, int) { return Shape::scalar(); }
template <class T> void fwd_norm(const KernelArgs& k) {
  using A = typename Accum<T>::type;
  k.out.ptr<T>()[0] = T(std::sqrt(k.in[0].arr<T>().template cast<A>().square().sum()));
}
// y = ||X||:  dX = G X / y, and 0 where y = 0
MG_VJP_FN(vjp_norm) { c.dx[0] = a.mul(c.in[0], a.mask_nz(c.out, a.div(c.g, c.out))); }

// ---- quad_form ----
// quad_form(x, B) = x^T B x (x of shape (n,): a scalar; X of shape (n, k): the (k, k) X^T B X)
Shape quad_form_shape(const Attr&, const Shape* in, int) {
  const Shape& x = in[0];
  const Shape& B = in[1];
  if (B.ndim != 2 || B.rows != B.cols)
    fail_shapes("quad_form", "are not valid: the second is not a square matrix", in, 2);
  const std::int64_t n = x.ndim == 1 ? x.cols : x.rows;
  if (x.ndim == 0 || n != B.rows) fail_shapes("quad_form", "are not aligned", in, 2);
  return x.ndim == 1 ? Shape::scalar() : Shape::matrix(x.cols, x.cols);
}
template <class T> void fwd_quad_form(const KernelArgs& k) {
  const Shape& xs = k.in[0].shape();
  const std::int64_t n = xs.ndim == 1 ? xs.cols : xs.rows, m = xs.ndim == 1 ? 1 : xs.cols;
  MapMat<T> X(k.in[0].ptr<T>(), n, m);
  auto B = k.in[1].mat<T>();
  MapMat<T> O(k.out.ptr<T>(), m, m);
  RowMat<T> BX = B * X;
  O.noalias() = X.transpose() * BX;
}
// Y = X^T B X:  dX = B X G^T + B^T X G,  dB = X G X^T
MG_VJP_FN(vjp_quad_form) {
  const Shape xs = a.shape(c.in[0]);
  const Shape m = xs.ndim == 1 ? Shape::matrix(xs.cols, 1) : xs;
  const Shape gm = Shape::matrix(m.cols, m.cols);
  auto X = a.reshape(c.in[0], m);
  auto G = a.reshape(c.g, gm);
  auto XG = a.matmul(X, G, false, false);
  if (c.needs[0]) {
    auto BX = a.matmul(c.in[1], X, false, false);
    c.dx[0] = a.reshape(a.add(a.matmul(BX, G, false, true), a.matmul(c.in[1], XG, true, false)), xs);
  }
  if (c.needs[1]) c.dx[1] = a.matmul(XG, X, false, true);
}

// ---- seed_matmul: a product with the identity seed batch of a Jacobian or Hessian ----
// seed_matmul(S, Y) with S a batch of k = s.size() matrices c E_b of shape s, E_b the unit
// matrices and c = attr.s (the identity seed of a batched sweep, perhaps scaled; the kernel does
// not read S's values) is the batched matmul of S and Y: member b is c E_b op(Y) (attr.offset 0:
// S on the left) or c op(Y) E_b (1: on the right), with attr.ta / attr.tb the flags of the
// original product. E_b has its one at (b / c, b % c) for s
// (r, c); each member is zeros with one row (left) or column (right) of op(Y). Compiled programs
// only: the simplifier makes it of matmul(identity seed, Y), so it has no VJP.
Shape seed_matmul_shape(const Attr& a, const Shape* in, int) {
  const Shape ops[2] = {a.offset == 0 ? in[0] : in[1], a.offset == 0 ? in[1] : in[0]};
  return matmul_shape(a, ops, 2);
}
template <class T> void fwd_seed_matmul(const KernelArgs& k) {
  const bool left = k.attr.offset == 0;
  const Shape& s = k.attr.shape;  // each seed member's shape
  const Shape& ys = k.in[1].shape();
  const T* y = k.in[1].ptr<T>();
  // U_b = op(E_b) as an R x C matrix whose one is at (u, v); Z = op(Y)
  const bool st = (left ? k.attr.ta : k.attr.tb) && s.ndim == 2;
  const bool zt = (left ? k.attr.tb : k.attr.ta) && ys.ndim == 2;
  const MatDims z = left ? right_dims(ys, zt) : left_dims(ys, zt);
  const MatDims u = left ? left_dims(s, st) : right_dims(s, st);
  const T c = T(k.attr.s);
  auto Z = [&](std::int64_t i, std::int64_t j) { return c * (zt ? y[j * ys.cols + i] : y[i * z.c + j]); };
  const std::int64_t rows = left ? u.r : z.r, cols = left ? z.c : u.c, kk = s.size();
  T* o = k.out.ptr<T>();
  std::fill(o, o + kk * rows * cols, T(0));
  for (std::int64_t b = 0; b < kk; ++b) {
    std::int64_t ui, vi;  // the one of U_b
    if (s.ndim == 2) {
      ui = st ? b % s.cols : b / s.cols;
      vi = st ? b / s.cols : b % s.cols;
    } else {
      ui = left ? 0 : b;
      vi = left ? b : 0;
    }
    T* m = o + b * rows * cols;
    if (left)  // U_b Z: row ui is Z's row vi
      for (std::int64_t j = 0; j < cols; ++j) m[ui * cols + j] = Z(vi, j);
    else  // Z U_b: column vi is Z's column ui
      for (std::int64_t i = 0; i < rows; ++i) m[i * cols + vi] = Z(i, ui);
  }
}

// ---- kron ----
// K = kron(A, B): K[i p + k, j q + l] = A[i, j] B[k, l], A (m, n), B (p, q). Its VJPs contract
// G's (p, q) blocks, with B (kron_left, giving A's shape) or with A (kron_right, giving B's):
//   kron_left(G, B)[i, j]  = sum_{k,l} G[i p + k, j q + l] B[k, l]
//   kron_right(G, A)[k, l] = sum_{i,j} A[i, j] G[i p + k, j q + l]
// The three are bilinear and their VJPs are each other, so every order of derivative stays
// among them. attr.shape is the result's shape for the two contractions.
Shape kron_shape(const Attr&, const Shape* in, int) {
  if (in[0].ndim != 2 || in[1].ndim != 2) fail_shapes("kron", "are not valid: kron takes two 2-D matrices", in, 2);
  Shape out = Shape::matrix(0, 0);
  if (__builtin_mul_overflow(in[0].rows, in[1].rows, &out.rows) ||
      __builtin_mul_overflow(in[0].cols, in[1].cols, &out.cols))
    fail_shapes("kron", "give a result too large to represent", in, 2);
  return out;
}
// in[0] = G, in[1] = the other factor, attr.shape = the result's (m, n)
Shape kron_contract_shape(const Attr& a, const Shape* in, int) {
  const Shape& g = in[0];
  const Shape& f = in[1];
  std::int64_t r = 0, c = 0;
  if (a.shape.ndim != 2 || f.ndim != 2 || g.ndim != 2 || __builtin_mul_overflow(a.shape.rows, f.rows, &r) ||
      __builtin_mul_overflow(a.shape.cols, f.cols, &c) || g.rows != r || g.cols != c)
    fail_shapes("kron_contract", "do not fit the Kronecker product's blocks", in, 2);
  return a.shape;
}
template <class T> void fwd_kron(const KernelArgs& k) {
  const auto A = k.in[0].mat<T>();
  const auto B = k.in[1].mat<T>();
  auto O = k.out.mat<T>();
  const std::int64_t p = B.rows(), q = B.cols();
  for (std::int64_t i = 0; i < A.rows(); ++i)
    for (std::int64_t j = 0; j < A.cols(); ++j) O.block(i * p, j * q, p, q) = A(i, j) * B;
}
// dA = kron_left(G, B), dB = kron_right(G, A)
MG_VJP_FN(vjp_kron) {
  Attr sa, sb;
  sa.shape = a.shape(c.in[0]);
  sb.shape = a.shape(c.in[1]);
  if (c.needs[0]) c.dx[0] = a.op(k_kron_left, {c.g, c.in[1]}, sa);
  if (c.needs[1]) c.dx[1] = a.op(k_kron_right, {c.g, c.in[0]}, sb);
}
template <class T> void fwd_kron_left(const KernelArgs& k) {
  const auto G = k.in[0].mat<T>();
  const auto B = k.in[1].mat<T>();
  auto O = k.out.mat<T>();
  const std::int64_t p = B.rows(), q = B.cols();
  for (std::int64_t i = 0; i < O.rows(); ++i)
    for (std::int64_t j = 0; j < O.cols(); ++j) O(i, j) = G.block(i * p, j * q, p, q).cwiseProduct(B).sum();
}
// C = kron_left(G, B) with cotangent H: dG = kron(H, B), dB = kron_right(G, H)
MG_VJP_FN(vjp_kron_left) {
  if (c.needs[0]) c.dx[0] = a.op(k_kron, {c.g, c.in[1]});
  if (c.needs[1]) {
    Attr sb;
    sb.shape = a.shape(c.in[1]);
    c.dx[1] = a.op(k_kron_right, {c.in[0], c.g}, sb);
  }
}
template <class T> void fwd_kron_right(const KernelArgs& k) {
  const auto G = k.in[0].mat<T>();
  const auto A = k.in[1].mat<T>();
  auto O = k.out.mat<T>();
  const std::int64_t p = O.rows(), q = O.cols();
  O.setZero();
  for (std::int64_t i = 0; i < A.rows(); ++i)
    for (std::int64_t j = 0; j < A.cols(); ++j) O += A(i, j) * G.block(i * p, j * q, p, q);
}
// D = kron_right(G, A) with cotangent H: dG = kron(A, H), dA = kron_left(G, H)
MG_VJP_FN(vjp_kron_right) {
  if (c.needs[0]) c.dx[0] = a.op(k_kron, {c.in[1], c.g});
  if (c.needs[1]) {
    Attr sa;
    sa.shape = a.shape(c.in[1]);
    c.dx[1] = a.op(k_kron_left, {c.in[0], c.g}, sa);
  }
}

// ---- the entry points ----

Results front_matmul(const EntryPoint&, const Arg* a) {
  // a weak number becomes a 0-D operand of the other's dtype, which matmul refuses
  NodeRef x = a[0].kind == Arg::kScalar && a[1].kind == Arg::kNode ? operand(a[0], a[1].node->dtype) : operand(a[0]);
  return matmul(x, operand(a[1], x->dtype), false, false);
}

Results front_dot(const EntryPoint&, const Arg* a) {
  if (a[0].kind == Arg::kScalar || a[1].kind == Arg::kScalar) return call(entry_point("mul"), a, 2);
  NodeRef x = operand(a[0]), y = operand(a[1]);
  const Shape& xs = x->shape;
  const Shape& ys = y->shape;
  if (xs.ndim == 0 || ys.ndim == 0) return call(entry_point("mul"), a, 2);
  const std::int64_t inner = ys.ndim == 1 ? ys.cols : ys.rows;
  if (xs.cols != inner) {
    Shape sh[2] = {xs, ys};
    fail_shapes("dot", "are not aligned", sh, 2);
  }
  return matmul(x, y, false, false);
}

Results front_outer(const EntryPoint&, const Arg* a) {
  // x_i y_j as a broadcast product of a column and a row: no sums, so exactly NumPy's values.
  NodeRef x = operand(a[0]), y = operand(a[1]);
  return apply_promoted(ops::mul, reshape(x, Shape::matrix(x->shape.size(), 1)),
                        reshape(y, Shape::matrix(1, y->shape.size())));
}

// matrix_power(X, n) as numpy.linalg.matrix_power: binary powering with matmul (the products
// NumPy forms, in its order), through inv for n < 0; n = 0 gives the identity (no gradient).
// Its gradient is the composition's, exact at any X.
Results front_matrix_power(const EntryPoint&, const Arg* a) {
  NodeRef x = operand(a[0]);
  const Shape& s = x->shape;
  if (s.ndim != 2) fail_shapes("matrix_power", "are not valid: matrix_power takes a 2-D square matrix", &s, 1);
  if (s.rows != s.cols) fail_shapes("matrix_power", "are not valid: the matrix is not square", &s, 1);
  const std::int64_t n = a[1].i;
  if (n == 0) {
    Attr at;
    at.shape = s;
    return apply(k_eye_scale, {full(Shape::scalar(), x->dtype, 1.0)}, at);
  }
  NodeRef base = x;
  if (n < 0) {
    try {
      base = apply(ops::inv, {x});
    } catch (const LinAlgError& e) {
      throw LinAlgError(std::string("matrix_power with n < 0: ") + e.what());
    }
  }
  // |n| without overflow at INT64_MIN
  std::uint64_t m = n < 0 ? std::uint64_t(0) - static_cast<std::uint64_t>(n) : static_cast<std::uint64_t>(n);
  // NumPy forms X^3 as (X X) X, not X (X X): the same order rounds and overflows the same way
  if (m == 3) return matmul(matmul(base, base, false, false), base, false, false);
  NodeRef result;
  for (;;) {
    if (m & 1u) result = result ? matmul(result, base, false, false) : base;
    m >>= 1u;
    if (m == 0) break;
    base = matmul(base, base, false, false);
  }
  return result;
}

}  // namespace

Results front_binary_linalg(const EntryPoint& e, const Arg* a) {
  return apply_promoted(e.op, operand(a[0]), operand(a[1]));
}

void register_linalg() {
  define(&ops::matmul, "matmul", 2, matmul_shape, MG_FWD(fwd_matmul))
      .reads(kAttrFlags)
      .batched(BatchKind::matmul)
      .vjp(MG_VJP(vjp_matmul));
  define(&ops::trace, "trace", 1, trace_shape, MG_FWD(fwd_trace)).vjp(MG_VJP(vjp_trace));
  define(&k_seed_matmul, "seed_matmul", 2, seed_matmul_shape, MG_FWD(fwd_seed_matmul))
      .reads(kAttrS | kAttrFlags | kAttrShape | kAttrOffset)
      .batched(BatchKind::whole);
  define(&k_eye_scale, "eye_scale", 1, eye_scale_shape, MG_FWD(fwd_eye_scale))
      .reads(kAttrShape)
      .vjp(MG_VJP(vjp_eye_scale));
  register_factor_ops();
  define(&ops::tril, "tril", 1, tril_shape, MG_FWD(fwd_tril)).reads(kAttrS).vjp(MG_VJP(vjp_tril));
  define(&k_norm, "norm", 1, norm_shape, MG_FWD(fwd_norm)).vjp(MG_VJP(vjp_norm));
  define(&k_quad_form, "quad_form", 2, quad_form_shape, MG_FWD(fwd_quad_form)).vjp(MG_VJP(vjp_quad_form));
  define(&k_kron, "kron", 2, kron_shape, MG_FWD(fwd_kron)).vjp(MG_VJP(vjp_kron));
  define(&k_kron_left, "kron_left", 2, kron_contract_shape, MG_FWD(fwd_kron_left))
      .reads(kAttrShape)
      .vjp(MG_VJP(vjp_kron_left));
  define(&k_kron_right, "kron_right", 2, kron_contract_shape, MG_FWD(fwd_kron_right))
      .reads(kAttrShape)
      .vjp(MG_VJP(vjp_kron_right));

  const Param x{"x", ParamKind::operand}, y{"y", ParamKind::operand};
  const UnaryEntries unary{"linalg", "x"};
  define_entry("matmul", "linalg", front_matmul, ops::matmul, {x, y})
      .doc("`x @ y`, as `numpy.matmul` for 1-D and 2-D operands.",
           "`(m, k) @ (k, n) -> (m, n)`. A 1-D `x` of shape `(k,)` is a row: `(k,) @ (k, n) -> (n,)`; a 1-D `y` "
           "is a column: `(m, k) @ (k,) -> (m,)`; `(k,) @ (k,) -> ()`. No broadcasting; a 0-D operand raises "
           "ValueError (use `mul`). float32 with float64 gives float64.",
           "d/dx: `G y^T`, d/dy: `x^T G` (with 1-D operands and `G` as the rows and columns above, each result "
           "reshaped back to its input's shape).")
      .pyop = PyOperator::matmul;
  define_entry("dot", "linalg", front_dot, ops::matmul, {x, y})
      .doc("`np.dot(x, y)` for 0-D, 1-D and 2-D operands: the inner product of vectors, `matmul` otherwise.",
           "`(k,), (k,) -> ()`; `(m, k), (k,) -> (m,)`; `(k,), (k, n) -> (n,)`; `(m, k), (k, n) -> (m, n)`. A 0-D "
           "operand multiplies elementwise (as `mul`: the other operand's shape).",
           "d/dx: `G y^T`, d/dy: `x^T G` (as `matmul`); with a 0-D operand as `mul`: d/dx: `G * y`, d/dy: `G * x`, "
           "each summed back to its input's shape.");
  define_entry("outer", "linalg", front_outer, ops::mul, {x, y})
      .doc("`np.outer(x, y)`: `out[i, j] = x.ravel()[i] * y.ravel()[j]`.",
           "`x` and `y` of any shape, flattened -> `(x.size, y.size)`.",
           "d/dx: `G @ y.ravel()` (`sum_j G[i, j] y[j]`) reshaped to x's shape; d/dy: `G^T @ x.ravel()` "
           "(`sum_i G[i, j] x[i]`) reshaped to y's shape.");
  unary("trace", ops::trace, "`np.trace(x)`: the sum of the main diagonal of a matrix.",
        "`(m, n)` (square or not) -> `()`; other ranks raise ValueError.",
        "d/dx: `G I`, `I` the `(m, n)` identity (ones on the main diagonal, zeros elsewhere).");
  register_factor_entries();
  unary("norm", k_norm, "The Frobenius norm `sqrt(sum(X^2))` (the 2-norm of a vector, `|x|` of a number).",
        "`x` of any shape -> `()`.", "d/dX: `G X / ||X||` (0 at `X = 0`)");
  define_entry("matrix_power", "matfun", front_matrix_power, ops::matmul,
               {{"a", ParamKind::operand}, {"n", ParamKind::integer}})
      .doc(
          "`A^n` for an integer `n`, as `numpy.linalg.matrix_power`: repeated squaring with `matmul`; "
          "`A^-n = (A^-1)^n` (numpy.linalg.LinAlgError when A is singular); `A^0` is the identity.",
          "`(m, m) -> (m, m)`; a 1-D or non-square `a` raises ValueError.",
          "d/dA: `sum_{k=0}^{n-1} (A^T)^k G (A^T)^(n-1-k)` for n > 0 (the chain rule through the products "
          "formed); through `inv` for n < 0; 0 for n = 0.");
  define_entry("kron", "matfun", front_binary_linalg, k_kron, {{"a", ParamKind::operand}, {"b", ParamKind::operand}})
      .doc("The Kronecker product `kron(A, B)`, as `np.kron` for matrices: the `(p, q)` blocks `A[i, j] B`.",
           "`(m, n), (p, q) -> (m p, n q)`; both must be 2-D (ValueError otherwise). float32 with float64 gives "
           "float64.",
           "d/dA: `sum_{k,l} G[i p + k, j q + l] B[k, l]` (each `(p, q)` block of G against B), d/dB: "
           "`sum_{i,j} A[i, j] G[i p + k, j q + l]` (G's blocks weighted by A).");
  define_entry("quad_form", "linalg", front_binary_linalg, k_quad_form, {x, {"B", ParamKind::operand}})
      .doc("The quadratic form `x^T B x` as one op (`X^T B X` for a matrix X).",
           "`B` of shape `(n, n)`; `x` of shape `(n,)` -> `()`; `X` of shape `(n, k)` -> `(k, k)`.",
           "d/dx: `B X G^T + B^T X G` (`(B + B^T) x G` for a 1-D x), d/dB: `X G X^T` (`G x x^T` for a 1-D x).");
}

}  // namespace matgrad
