// SPDX-License-Identifier: MIT
// The factorizations of linear algebra: the LU family (det, logdet, slogdet, inv, solve) sharing
// one factorization, det's VJPs adj_t and adj_t_vjp, cholesky with its VJP helper trsolve (and
// tril, in linalg.cpp). Registered by register_linalg() (linalg.cpp); what the two share is
// linalg.hpp.
#include "linalg.hpp"

#include <Eigen/Cholesky>
#include <Eigen/LU>
#include <Eigen/SVD>

#include <cmath>
#include <limits>
#include <memory>
#include <string>
#include <vector>

namespace matgrad {

namespace {

OpId k_det, k_adj_t, k_adj_t_vjp, k_logdet, k_slogdet, k_solve, k_cholesky, k_trsolve;

// ---- Note [shared factorizations] ----
// det, logdet, slogdet, inv and solve of one matrix, and their VJPs, share one partial-pivoting
// LU: the first kernel that needs it keeps it in the value's factor slot (KernelArgs::factors:
// the input node's Node::factor in a graph, the workspace entry of the input's slot in a
// compiled replay), and every later kernel given that slot reuses it (VJPs reach a node's slot
// through on_node). A node's factor lives as long as the node; a replay's, one call. A node
// over external memory (a caller's NumPy array, mapped without a copy) could change under it,
// so its factor keeps a copy of the values and is recomputed when they no longer match (memcmp:
// O(n^2) against the O(n^3) factorization, and exact, unlike a hash). registry.hpp's
// kept_factor / keep_in_slot do the lookup, the check and the snapshot for every kernel that keeps
// something in a slot (KeptFactor). The thread-local counter
// lu_factorizations() makes the sharing testable. The inverse is kept with the factor once
// computed (the forward of inv and the VJPs of det/logdet use the same X^-1).
template <class T>
struct LUFactor : KeptFactor {
  using M = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic>;
  Eigen::PartialPivLU<M> lu;
  bool singular = false;  ///< an exactly zero pivot (Eigen does not report it)
  bool subnormal = false;  ///< a pivot below the smallest normal number (solve divides by it)
  mutable RowMat<T> inverse;  ///< X^-1 once some kernel computed it (empty before)
};

thread_local std::int64_t t_lu_count = 0;

void check_square(const char* op, const Shape& s) {
  if (s.ndim != 2 || s.rows != s.cols) fail_shapes(op, "is not a square matrix", &s, 1);
}
Shape square_to_scalar(const char* op, const Shape* in) {
  check_square(op, in[0]);
  return Shape::scalar();
}

template <class T>
std::shared_ptr<const LUFactor<T>> lu_of(const KernelArgs& k, int i) {
  if (auto f = kept_factor<LUFactor<T>>(k, i)) return f;
  const Val& x = k.in[i];
  auto f = std::make_shared<LUFactor<T>>();
  const std::int64_t n = x.shape().rows;
  if (n > 0) f->lu.compute(x.mat<T>());
  ++t_lu_count;
  for (std::int64_t j = 0; j < n; ++j)
    if (f->lu.matrixLU()(j, j) == T(0))
      f->singular = true;
    else if (std::abs(f->lu.matrixLU()(j, j)) < std::numeric_limits<T>::min())
      f->subnormal = true;
  keep_in_slot(k, i, f);
  return f;
}

[[noreturn]] void fail_singular(const char* op, const Shape& s) {
  throw LinAlgError(std::string(op) + ": matrix of shape " + s.str() + " is singular");
}

template <class T>
const RowMat<T>& inverse_of(const LUFactor<T>& f, const char* op, const Shape& s) {
  if (f.singular) fail_singular(op, s);
  if (f.inverse.rows() != s.rows) {
    if (s.rows == 0)
      f.inverse.resize(0, 0);
    else
      f.inverse = f.lu.inverse();
  }
  return f.inverse;
}

// ---- det ----
// The product of the pivots with the binary exponents kept apart (frexp), so that it neither
// under- nor overflows before the end: det(diag(1e-200, 1e-200, 1e200)) is 1e-200, not 0.
template <class T>
T lu_det(const LUFactor<T>& f, std::int64_t n) {
  if (n == 0) return T(1);
  if (f.singular) return T(0);
  T m = f.lu.permutationP().determinant();
  int e = 0;
  for (std::int64_t j = 0; j < n; ++j) {
    int ej = 0, em = 0;
    m *= std::frexp(f.lu.matrixLU()(j, j), &ej);
    m = std::frexp(m, &em);
    e += ej + em;
  }
  return std::ldexp(m, e);
}
Shape det_shape(const Attr&, const Shape* in, int) { return square_to_scalar("det", in); }
template <class T> void fwd_det(const KernelArgs& k) {
  k.out.ptr<T>()[0] = lu_det(*lu_of<T>(k, 0), k.in[0].shape().rows);
}
// dX = G adj(X)^T  (= G det(X) X^-T when X is invertible; the adjugate keeps it finite when not)
MG_VJP_FN(vjp_det) { c.dx[0] = a.mul(c.g, a.on_node(k_adj_t, *c.node.parent(0), {})); }

// adj_t(X) = adj(X)^T. Invertible, with det(X) X^-T representable: that (from the shared LU).
// Otherwise (singular, or det or X^-1 out of range) on Y = D1 X D2, X scaled by powers of two so
// that every row and column of Y peaks in [0.5, 1): adj(X) = det(D1 D2) D2 adj(Y) D1 with
// adj(Y) = det(Y) Y^-1, or for a singular Y (= U S V^T) det(U) det(V) V adj(S) U^T with
// adj(S) = diag(prod_{j != i} s_j), which is 0 unless rank >= n - 1.
// For X = U S V^T: det(U) det(V) (each +-1), and prod_{q != i, q != j} s_q.
template <class M>
typename M::Scalar svd_orientation(const Eigen::JacobiSVD<M>& svd) {
  return Eigen::PartialPivLU<M>(svd.matrixU()).determinant() * Eigen::PartialPivLU<M>(svd.matrixV()).determinant();
}
template <class V>
typename V::Scalar prod_except(const V& s, Eigen::Index i, Eigen::Index j) {
  typename V::Scalar r = 1;
  for (Eigen::Index q = 0; q < s.size(); ++q)
    if (q != i && q != j) r *= s(q);
  return r;
}

template <class T>
void adj_t_scaled(const Val& x, MapMat<T> out) {
  using M = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic>;
  const Eigen::Index n = x.shape().rows;
  M Y = x.mat<T>();
  std::vector<int> r(std::size_t(n), 0), c(std::size_t(n), 0);
  auto exponent = [](T v) {
    int e = 0;
    if (v > T(0) && std::isfinite(v)) std::frexp(v, &e);
    return e;
  };
  for (Eigen::Index i = 0; i < n; ++i) {
    r[std::size_t(i)] = exponent(Y.row(i).cwiseAbs().maxCoeff());
    for (Eigen::Index j = 0; j < n; ++j) Y(i, j) = std::ldexp(Y(i, j), -r[std::size_t(i)]);
  }
  for (Eigen::Index j = 0; j < n; ++j) {
    c[std::size_t(j)] = exponent(Y.col(j).cwiseAbs().maxCoeff());
    for (Eigen::Index i = 0; i < n; ++i) Y(i, j) = std::ldexp(Y(i, j), -c[std::size_t(j)]);
  }
  long total = 0;
  for (Eigen::Index i = 0; i < n; ++i) total += r[std::size_t(i)] + c[std::size_t(i)];
  M adjY;  // adj(Y)
  Eigen::PartialPivLU<M> lu(Y);
  bool singular = false;
  for (Eigen::Index j = 0; j < n; ++j) singular = singular || lu.matrixLU()(j, j) == T(0);
  if (!singular) adjY = lu.determinant() * lu.inverse();
  if (singular || !adjY.allFinite()) {
    Eigen::JacobiSVD<M> svd(Y, Eigen::ComputeFullU | Eigen::ComputeFullV);
    Eigen::Matrix<T, Eigen::Dynamic, 1> as(n);
    for (Eigen::Index i = 0; i < n; ++i) as(i) = prod_except(svd.singularValues(), i, i);
    adjY = svd_orientation(svd) * (svd.matrixV() * as.asDiagonal() * svd.matrixU().transpose());
  }
  // adj(X) = det(D1^-1) det(D2^-1) D2^-1... with D1 = diag(2^-r), D2 = diag(2^-c):
  // adj(X)_ij = 2^(total - c_i - r_j) adj(Y)_ij, and out = adj(X)^T.
  for (Eigen::Index i = 0; i < n; ++i)
    for (Eigen::Index j = 0; j < n; ++j)
      out(i, j) = std::ldexp(adjY(j, i), int(total - c[std::size_t(j)] - r[std::size_t(i)]));
}
Shape adj_t_shape(const Attr&, const Shape* in, int) {
  check_square("adj_t", in[0]);
  return in[0];
}
template <class T> void fwd_adj_t(const KernelArgs& k) {
  auto f = lu_of<T>(k, 0);
  auto out = k.out.mat<T>();
  const std::int64_t n = k.in[0].shape().rows;
  if (n == 0) return;
  const T d = lu_det(*f, n);
  if (d != T(0) && std::isfinite(d)) {
    out = d * inverse_of(*f, "adj_t", k.in[0].shape()).transpose();
    if (out.allFinite()) return;
  }
  adj_t_scaled<T>(k.in[0], out);
}
// A = det X^-T:  dX = <H, A> X^-T - A H^T X^-T  (X invertible)
// At a singular X (no X^-1): adj_t_vjp, from the SVD.
MG_VJP_FN(vjp_adj_t) {
  const Node& x = *c.node.parent(0);
  typename A::T xi;
  try {
    xi = a.on_node(ops::inv, x, {});
  } catch (const LinAlgError&) {
    c.dx[0] = a.on_node(k_adj_t_vjp, x, {c.g});
    return;
  }
  auto xit = a.transpose(xi);
  auto s = a.op(ops::sum, {a.mul(c.g, c.out)});
  c.dx[0] = a.sub(a.mul(s, xit), a.matmul(a.matmul(c.out, c.g, false, true), xit, false, false));
}

// adj_t_vjp(X, H): the VJP of adj_t, valid at singular X. With X = U S V^T, s = diag(S),
// sgn = det(U) det(V), K = sgn U^T H V and p(i, j) = prod_{k != i, j} s_k, the derivative of
// adj(S) is d adj(S)_ij = -E_ij p(i, j) (i != j), d adj(S)_ii = sum_{m != i} E_mm p(i, m), so
//   dX = U W V^T,  W_ij = -K_ji p(i, j) (i != j),  W_mm = sum_{i != m} K_ii p(i, m).
Shape adj_t_vjp_shape(const Attr&, const Shape* in, int) {
  if (in[0].ndim != 2 || in[0].rows != in[0].cols || in[1] != in[0]) fail_shapes("adj_t_vjp", "do not match", in, 2);
  return in[0];
}
template <class T> void fwd_adj_t_vjp(const KernelArgs& k) {
  using M = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic>;
  const Eigen::Index n = k.in[0].shape().rows;
  if (n == 0) return;
  Eigen::JacobiSVD<M> svd(M(k.in[0].mat<T>()), Eigen::ComputeFullU | Eigen::ComputeFullV);
  const M& U = svd.matrixU();
  const M& V = svd.matrixV();
  const M K = svd_orientation(svd) * (U.transpose() * M(k.in[1].mat<T>()) * V);
  auto p = [&](Eigen::Index i, Eigen::Index j) { return prod_except(svd.singularValues(), i, j); };
  M W(n, n);
  for (Eigen::Index i = 0; i < n; ++i)
    for (Eigen::Index j = 0; j < n; ++j) {
      if (i != j) {
        W(i, j) = -K(j, i) * p(i, j);
      } else {
        T acc = 0;
        for (Eigen::Index q = 0; q < n; ++q)
          if (q != i) acc += K(q, q) * p(q, i);
        W(i, i) = acc;
      }
    }
  k.out.mat<T>() = U * W * V.transpose();
}
MG_VJP_FN(vjp_adj_t_vjp) {
  throw LinAlgError("det: third derivatives at a singular matrix are not supported (shape " +
                    c.node.parent(0)->shape.str() + ")");
}

// attr.offset names the op whose VJP asked for the inverse, for the error at a singular matrix
// (0: inv itself, 1: logdet, 2: slogdet): the gradient of log|det X| is X^-T, undefined there.
constexpr std::int64_t kInvForLogdet = 1, kInvForSlogdet = 2;
const char* inv_caller(const Attr& a) {
  return a.offset == kInvForLogdet    ? "logdet (its gradient X^-T)"
         : a.offset == kInvForSlogdet ? "slogdet (its gradient X^-T)"
                                      : "inv";
}

// ---- logdet, slogdet ----
template <class T>
void sign_logabs(const LUFactor<T>& f, std::int64_t n, T& sign, T& logabs) {
  using A = typename Accum<T>::type;
  if (n == 0) {
    sign = 1;
    logabs = 0;
    return;
  }
  if (f.singular) {
    sign = 0;
    logabs = -std::numeric_limits<T>::infinity();
    return;
  }
  A acc = 0;
  T sg = f.lu.permutationP().determinant();
  const auto& lu = f.lu.matrixLU();
  for (std::int64_t j = 0; j < n; ++j) {
    const T u = lu(j, j);
    if (u < 0) sg = -sg;
    acc += std::log(A(std::abs(u)));
  }
  sign = sg;
  logabs = T(acc);
}
Shape logdet_shape(const Attr&, const Shape* in, int) { return square_to_scalar("logdet", in); }
template <class T> void fwd_logdet(const KernelArgs& k) {
  T sign, la;
  sign_logabs(*lu_of<T>(k, 0), k.in[0].shape().rows, sign, la);
  k.out.ptr<T>()[0] = la;
}
// log|det X|:  dX = G X^-T
MG_VJP_FN(vjp_logdet) {
  Attr at;
  at.offset = kInvForLogdet;
  c.dx[0] = a.mul(c.g, a.transpose(a.on_node(ops::inv, *c.node.parent(0), {}, at)));
}
Shape slogdet_shape(const Attr&, const Shape* in, int) {
  check_square("slogdet", in[0]);
  return Shape::vector(2);
}
template <class T> void fwd_slogdet(const KernelArgs& k) {
  T* o = k.out.ptr<T>();
  sign_logabs(*lu_of<T>(k, 0), k.in[0].shape().rows, o[0], o[1]);
}
// (sign, log|det X|) packed:  dX = G[1] X^-T  (the sign is piecewise constant)
MG_VJP_FN(vjp_slogdet) {
  auto g1 = a.unpack(c.g, 1, Shape::scalar());
  Attr at;
  at.offset = kInvForSlogdet;
  c.dx[0] = a.mul(g1, a.transpose(a.on_node(ops::inv, *c.node.parent(0), {}, at)));
}

// ---- inv ----
Shape inv_shape(const Attr&, const Shape* in, int) {
  check_square("inv", in[0]);
  return in[0];
}
template <class T> void fwd_inv(const KernelArgs& k) {
  if (k.in[0].shape().rows == 0) return;
  auto f = lu_of<T>(k, 0);
  k.out.mat<T>() = inverse_of(*f, inv_caller(k.attr), k.in[0].shape());
}
// Y = X^-1:  dX = -Y^T G Y^T
MG_VJP_FN(vjp_inv) { c.dx[0] = a.neg(a.matmul(a.matmul(c.out, c.g, true, false), c.out, false, true)); }

// ---- solve ----
// solve(A, B): A Z = B (attr.ta: A^T Z = B), B of shape (n,) or (n, k) as np.linalg.solve.
Shape solve_shape(const Attr&, const Shape* in, int) {
  const Shape& A = in[0];
  const Shape& B = in[1];
  if (A.ndim != 2 || A.rows != A.cols) fail_shapes("solve", "are not valid: the first is not a square matrix", in, 2);
  const std::int64_t n = B.ndim == 1 ? B.cols : B.rows;
  if (B.ndim == 0 || n != A.rows) fail_shapes("solve", "are not aligned", in, 2);
  return B;
}
// The substitutions of A Z = B (ta: A^T Z = B) from P A = L U with true divisions by the pivots:
// Eigen's triangular solves multiply by each pivot's reciprocal, which overflows for a subnormal
// pivot (solve([[1e-310]], [[1e-310]]) gave inf, not 1). O(n^2 m), for that case only.
template <class T>
void solve_dividing(const LUFactor<T>& f, bool ta, const MapMat<T>& B, MapMat<T>& Z) {
  using M = typename LUFactor<T>::M;
  const M& LU = f.lu.matrixLU();
  const Eigen::Index n = LU.rows();
  M X = ta ? M(B) : M(f.lu.permutationP() * B);
  for (Eigen::Index j = 0; j < X.cols(); ++j) {
    if (!ta) {
      for (Eigen::Index i = 0; i < n; ++i)  // L y = P b, L unit lower
        for (Eigen::Index q = 0; q < i; ++q) X(i, j) -= LU(i, q) * X(q, j);
      for (Eigen::Index i = n; i-- > 0;) {  // U z = y
        for (Eigen::Index q = i + 1; q < n; ++q) X(i, j) -= LU(i, q) * X(q, j);
        X(i, j) /= LU(i, i);
      }
    } else {
      for (Eigen::Index i = 0; i < n; ++i) {  // U^T w = b
        for (Eigen::Index q = 0; q < i; ++q) X(i, j) -= LU(q, i) * X(q, j);
        X(i, j) /= LU(i, i);
      }
      for (Eigen::Index i = n; i-- > 0;)  // L^T v = w
        for (Eigen::Index q = i + 1; q < n; ++q) X(i, j) -= LU(q, i) * X(q, j);
    }
  }
  if (ta)
    Z = f.lu.permutationP().transpose() * X;
  else
    Z = X;
}

template <class T> void fwd_solve(const KernelArgs& k) {
  const Shape& bs = k.in[1].shape();
  const std::int64_t n = k.in[0].shape().rows;
  const std::int64_t m = bs.ndim == 1 ? 1 : bs.cols;
  if (n == 0 || m == 0) return;
  auto f = lu_of<T>(k, 0);
  if (f->singular)
    throw LinAlgError("solve: matrix of shape " + k.in[0].shape().str() + " is singular (right-hand side of shape " +
                      bs.str() + ")");
  MapMat<T> B(k.in[1].ptr<T>(), n, m);
  MapMat<T> Z(k.out.ptr<T>(), n, m);
  if (f->subnormal)
    solve_dividing(*f, k.attr.ta, B, Z);
  else if (k.attr.ta)
    Z = f->lu.transpose().solve(B);
  else
    Z = f->lu.solve(B);
}
// Z = A^-1 B:  dB = A^-T G, dA = -dB Z^T.   Z = A^-T B:  dB = A^-1 G, dA = -Z dB^T
MG_VJP_FN(vjp_solve) {
  const bool ta = c.node.attr.ta;
  Attr at;
  at.ta = !ta;
  auto dB = a.on_node(k_solve, *c.node.parent(0), {c.g}, at);
  if (c.needs[1]) c.dx[1] = dB;
  if (c.needs[0]) {
    const Shape& bs = a.shape(c.in[1]);
    const Shape m = bs.ndim == 1 ? Shape::matrix(bs.cols, 1) : bs;
    auto d2 = a.reshape(dB, m), z2 = a.reshape(c.out, m);
    c.dx[0] = a.neg(ta ? a.matmul(z2, d2, false, true) : a.matmul(d2, z2, false, true));
  }
}

// ---- cholesky ----
Shape cholesky_shape(const Attr&, const Shape* in, int) {
  check_square("cholesky", in[0]);
  return in[0];
}
template <class T> void fwd_cholesky(const KernelArgs& k) {
  const Shape& s = k.in[0].shape();
  if (s.rows == 0) return;
  using M = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic>;
  Eigen::LLT<M, Eigen::Lower> llt(M(k.in[0].mat<T>()));
  if (llt.info() != Eigen::Success)
    throw LinAlgError("cholesky: matrix of shape " + s.str() + " is not positive definite");
  k.out.mat<T>() = llt.matrixL().toDenseMatrix();
  // Eigen's test (pivot <= 0) lets NaN through; L of a finite positive definite matrix is finite
  // (|L_ij| <= sqrt(X_ii)), so a non-finite L means a NaN or infinite entry, as NumPy says.
  if (!k.out.mat<T>().allFinite())
    throw LinAlgError("cholesky: matrix of shape " + s.str() +
                      " is not positive definite (its lower triangle has a NaN or infinite entry)");
}
// X = L L^T, the lower triangle of X read (as NumPy):  N = L^-T tril_half(L^T tril(G)) L^-1;
// S = (N + N^T) / 2 is the gradient w.r.t. a symmetric X, and the gradient of the function as
// computed, of the lower triangle only, is dX = tril(2 S) with the diagonal halved = tril_half(N + N^T)
// (central differences over every entry agree; for an X built symmetric, such as A A^T, the
// gradient reaching A is the same as with S).
MG_VJP_FN(vjp_cholesky) {
  const auto& L = c.out;
  auto P = a.tril(a.matmul(L, a.tril(c.g, 1.0), true, false), 0.5);
  Attr up;
  up.ta = true;
  auto Q = a.op(k_trsolve, {L, P}, up);                         // L^-T P
  auto N = a.transpose(a.op(k_trsolve, {L, a.transpose(Q)}, up));  // Q L^-1
  c.dx[0] = a.tril(a.add(N, a.transpose(N)), 0.5);
}

// trsolve(L, B) = op(L)^-1 B, L lower triangular (its upper part is not read)
Shape trsolve_shape(const Attr&, const Shape* in, int) {
  if (in[0].ndim != 2 || in[0].rows != in[0].cols || in[1].ndim != 2 || in[1].rows != in[0].rows)
    fail_shapes("trsolve", "are not aligned", in, 2);
  return in[1];
}
template <class T> void fwd_trsolve(const KernelArgs& k) {
  auto L = k.in[0].mat<T>();
  auto out = k.out.mat<T>();
  if (out.size() == 0) return;
  out = k.in[1].mat<T>();
  if (k.attr.ta)
    L.template triangularView<Eigen::Lower>().transpose().solveInPlace(out);
  else
    L.template triangularView<Eigen::Lower>().solveInPlace(out);
}
// Z = L^-1 B:  dB = L^-T G, dL = -tril(dB Z^T).   Z = L^-T B:  dB = L^-1 G, dL = -tril(Z dB^T)
MG_VJP_FN(vjp_trsolve) {
  const bool ta = c.node.attr.ta;
  Attr at;
  at.ta = !ta;
  auto dB = a.op(k_trsolve, {c.in[0], c.g}, at);
  if (c.needs[1]) c.dx[1] = dB;
  if (c.needs[0])
    c.dx[0] = a.neg(a.tril(ta ? a.matmul(c.out, dB, false, true) : a.matmul(dB, c.out, false, true), 1.0));
}

Results front_slogdet(const EntryPoint&, const Arg* a) {
  NodeRef p = apply(k_slogdet, {operand(a[0])});
  Results r;
  r.n = 2;
  r.v[0] = unpack(p, 0, Shape::scalar());
  r.v[1] = unpack(p, 1, Shape::scalar());
  return r;
}

}  // namespace

std::int64_t lu_factorizations() { return t_lu_count; }

void register_factor_ops() {
  define(&k_det, "det", 1, det_shape, MG_FWD(fwd_det)).shares_factor(FactorKind::lu).vjp(MG_VJP(vjp_det));
  define(&k_adj_t, "adj_t", 1, adj_t_shape, MG_FWD(fwd_adj_t)).shares_factor(FactorKind::lu).vjp(MG_VJP(vjp_adj_t));
  define(&k_adj_t_vjp, "adj_t_vjp", 2, adj_t_vjp_shape, MG_FWD(fwd_adj_t_vjp))
      .shares_factor(FactorKind::lu)
      .vjp(MG_VJP(vjp_adj_t_vjp));
  define(&k_logdet, "logdet", 1, logdet_shape, MG_FWD(fwd_logdet))
      .shares_factor(FactorKind::lu)
      .vjp(MG_VJP(vjp_logdet));
  define(&k_slogdet, "slogdet", 1, slogdet_shape, MG_FWD(fwd_slogdet))
      .shares_factor(FactorKind::lu)
      .vjp(MG_VJP(vjp_slogdet));
  define(&ops::inv, "inv", 1, inv_shape, MG_FWD(fwd_inv)).shares_factor(FactorKind::lu).vjp(MG_VJP(vjp_inv));
  define(&k_solve, "solve", 2, solve_shape, MG_FWD(fwd_solve))
      .reads(kAttrFlags)
      .shares_factor(FactorKind::lu)
      .vjp(MG_VJP(vjp_solve));
  define(&k_cholesky, "cholesky", 1, cholesky_shape, MG_FWD(fwd_cholesky)).vjp(MG_VJP(vjp_cholesky));
  define(&k_trsolve, "trsolve", 2, trsolve_shape, MG_FWD(fwd_trsolve)).reads(kAttrFlags).vjp(MG_VJP(vjp_trsolve));
}

void register_factor_entries() {
  const Param x{"x", ParamKind::operand};
  const UnaryEntries unary{"linalg", "x"};
  unary("det", k_det, "`det(X)` of a square matrix, from a partial-pivoting LU (0 when X is singular, no error).",
        "`(n, n) -> ()`.",
        "d/dX: `G adj(X)^T`, which is `G det(X) X^-T` when X is invertible and stays finite when it is not.");
  unary("logdet", k_logdet,
        "`log|det X|` of a square matrix (`-inf` when X is singular; the sign is dropped, see `slogdet`).",
        "`(n, n) -> ()`.", "d/dX: `G X^-T`");
  define_entry("slogdet", "linalg", front_slogdet, k_slogdet, {x})
      .doc("`(sign, log|det X|)` of a square matrix, as `np.linalg.slogdet` (`(0, -inf)` when X is singular).",
           "`(n, n)` -> a tuple of two `()` Tensors.",
           "d/dX: `G_2 X^-T` with `G_2` the adjoint of `log|det X|`; the sign is piecewise constant and passes no "
           "gradient.")
      .tuple = 2;
  unary("inv", ops::inv, "`X^-1` of a square matrix (numpy.linalg.LinAlgError when X is singular).",
        "`(n, n) -> (n, n)`.", "d/dX: `-Y^T G Y^T` with `Y = X^-1`, i.e. `-X^-T G X^-T`.");
  define_entry("solve", "linalg", front_binary_linalg, k_solve, {{"a", ParamKind::operand}, {"b", ParamKind::operand}})
      .doc(
          "`Z = A^-1 B`, the solution of `A Z = B`, as `np.linalg.solve` (numpy.linalg.LinAlgError when A is "
          "singular).",
          "`a` of shape `(n, n)`, `b` of shape `(n,)` or `(n, k)` -> `b`'s shape.",
          "d/db: `A^-T G`, d/da: `-(A^-T G) Z^T` (a 1-D `b`, `G` and `Z` taken as `(n, 1)` columns).");
  unary("cholesky", k_cholesky,
        "The lower-triangular `L` with `X = L L^T`. Only the lower triangle of X is read, as NumPy; "
        "numpy.linalg.LinAlgError when X is not positive definite.",
        "`(n, n) -> (n, n)`.",
        "d/dX: `tril_half(N + N^T)` with `N = L^-T tril_half(L^T tril(G)) L^-1`, where `tril` keeps the lower "
        "triangle and `tril_half` also halves the diagonal; the upper triangle of X gets 0.");
}

}  // namespace matgrad
