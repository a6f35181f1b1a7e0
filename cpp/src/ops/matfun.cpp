// SPDX-License-Identifier: MIT
// Matrix functions beyond the lecture, the spectral ones: eigh and eigvalsh (symmetric
// eigendecomposition), svd and svdvals, pinv; with the VJP helpers spectral_gap (the
// divided-difference matrix of eigh's and svd's VJPs) and sv_div (svd's division by the singular
// values). The primary matrix functions expm, logm and sqrtm are in matfun_primary.cpp. Every VJP
// is written in the algebra's ops, so second derivatives, batched Jacobians and compiled programs
// work for these ops as for every other. The decompositions run in float64 (float32 input is
// widened, the result rounded), so one set of Eigen's solvers is instantiated, and float32
// results are the float64 ones correctly rounded.
#include "matfun.hpp"

#include "../kernels/lapack.hpp"

#include <Eigen/Eigenvalues>
#include <Eigen/SVD>

#include <algorithm>
#include <cmath>
#include <complex>
#include <cstdio>
#include <limits>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace matgrad {

namespace matfun_detail {

void check_square_2d(const char* op, const Shape& s) {
  if (s.ndim != 2) fail_shapes(op, "is not valid: the op takes a 2-D matrix", &s, 1);
  if (s.rows != s.cols) fail_shapes(op, "is not valid: the matrix is not square", &s, 1);
}
void check_2d(const char* op, const Shape& s) {
  if (s.ndim != 2) fail_shapes(op, "is not valid: the op takes a 2-D matrix", &s, 1);
}
void check_finite(const char* op, const MatD& x, const Shape& s) {
  if (!x.allFinite())
    throw LinAlgError(std::string(op) + ": matrix of shape " + s.str() + " has a NaN or infinite entry");
}
std::string num(double v) {
  char b[32];
  std::snprintf(b, sizeof b, "%.6g", v);
  return b;
}
void sym_eig(const char* op, const MatD& S, const Shape& s, bool vectors, VecD& w, MatD& V) {
  V = S;
  const int info = lapack::syevd(V, w, vectors);
  bool ok = info == 0;
  if (info == lapack::kUnavailable) {
    Eigen::SelfAdjointEigenSolver<MatD> es(S, vectors ? Eigen::ComputeEigenvectors : Eigen::EigenvaluesOnly);
    ok = es.info() == Eigen::Success;
    if (ok) w = es.eigenvalues();
    if (ok && vectors) V = es.eigenvectors();
  }
  if (!ok) throw LinAlgError(std::string(op) + ": eigenvalues of a matrix of shape " + s.str() + " did not converge");
}

// A real eigenvalue on the closed negative axis (or 0 for logm) has no real principal branch.
void check_principal(const char* op, const MatD& A, const Shape& s, bool zero_ok) {
  Eigen::EigenSolver<MatD> es(A, false);
  if (es.info() != Eigen::Success)
    throw LinAlgError(std::string(op) + ": eigenvalues of a matrix of shape " + s.str() + " did not converge");
  check_principal_values(op, es.eigenvalues(), A, s, zero_ok);
}
void check_principal_values(const char* op, const Eigen::VectorXcd& values, const MatD& A, const Shape& s,
                            bool zero_ok) {
  const double scale = std::max(A.cwiseAbs().maxCoeff(), std::numeric_limits<double>::min());
  for (Eigen::Index i = 0; i < values.size(); ++i) {
    const std::complex<double> l = values(i);
    const bool real = std::abs(l.imag()) <= 1e-8 * std::max(std::abs(l), scale * 1e-300);
    if (!real) continue;
    if (!zero_ok && std::abs(l) <= 8 * std::numeric_limits<double>::epsilon() * scale * double(A.rows()))
      throw LinAlgError(std::string(op) + ": matrix of shape " + s.str() +
                        " is singular (an eigenvalue is 0); its logarithm is not defined");
    if (l.real() < 0)
      throw LinAlgError(std::string(op) + ": matrix of shape " + s.str() + " has a negative real eigenvalue (" +
                        num(l.real()) + "); its principal " + (zero_ok ? "square root" : "logarithm") +
                        " is complex, which matgrad does not support");
  }
}

bool gradient_follows(const KernelArgs& k) {
  if (k.factors) return k.factors[0].reused;  // a replay: another instruction reads the slot
  return k.nodes && k.nodes[0] && k.nodes[0]->requires_grad && grad_enabled();
}

}  // namespace matfun_detail

namespace {

using namespace matfun_detail;

OpId k_eigh, k_eigvalsh, k_svd, k_svdvals, k_pinv, k_gap, k_sv_div;

constexpr std::int64_t kForEigh = 0, kForSvd = 1;
const char* helper_caller(const Attr& a) { return a.offset == kForSvd ? "svd" : "eigh"; }

// ---- Note [degenerate spectra] ----
// Eigenvalues (of eigh) or squared singular values (of svd) closer than
//   tol = 4 n eps max|w|        (eps of the input's dtype, n the matrix's larger dimension)
// are taken as repeated. The vectors of a repeated cluster are not unique, and where a vector
// cotangent meets such a pair (M = V^T gV, or U^T gU, nonzero there) the gradient is either
// undefined (it depends on the basis returned) or a 0/0 limit that the VJP cannot know (V diag(w)
// V^T = A is smooth, but its pair term is S_ij (w_j - w_i) / (w_j - w_i)): the VJPs raise
// numpy.linalg.LinAlgError naming the op, never NaN, a huge number or a silent 0. Whatever
// depends on the values only (eigvalsh, svdvals, eigh(A)[0]) gives the vectors a cotangent of
// exact zeros, and passes: the helpers check the entries they divide, not the spectrum.
template <class T>
double degenerate_tol(const Attr& a, double wmax) {
  const double n = double(std::max(a.shape.rows, a.shape.cols));
  return 4.0 * n * double(std::numeric_limits<T>::epsilon()) * wmax;
}

// Note [spectral factors]
// eigh and svd keep their decomposition in the input's factor slot (Note [shared factorizations]
// in linalg_factor.cpp: the input node's Node::factor in a graph, a workspace entry in a replay),
// so that one decomposition serves the forward and the VJP. eigvalsh and svdvals compute values
// only, at half the cost or less, unless their result will need a gradient (gradient_follows: an
// eager forward on an input requiring one with grad mode on, or a compiled replay whose VJP reads
// the same slot): then they compute the vectors too and keep them, and their VJPs (V diag(g) V^T, U diag(g) V^T) take
// them from the slot through eigh/svd on the input's node instead of decomposing A again. A value over external memory
// is checked against a copy, as the LU is. spectral_decompositions() counts decompositions (for tests).
struct Eig {
  VecD w;
  MatD V;
};
template <class D>
struct SpectralFactor : KeptFactor {
  D d;
};
thread_local std::int64_t t_spectral_count = 0;

// The decomposition D of input 0 kept in its slot, when there is one and it still matches.
template <class D>
std::shared_ptr<const SpectralFactor<D>> kept(const KernelArgs& k) {
  return kept_factor<SpectralFactor<D>>(k, 0);
}
// That decomposition, computed by `compute` and kept when it was not.
template <class D, class Compute>
std::shared_ptr<const SpectralFactor<D>> spectral_of(const KernelArgs& k, Compute compute) {
  if (auto f = kept<D>(k)) return f;
  auto f = std::make_shared<SpectralFactor<D>>();
  f->d = compute();
  ++t_spectral_count;
  keep_in_slot(k, 0, f);
  return f;
}

// ---- eigh, eigvalsh ----
// eigh packs (w, V) into one vector of n + n^2 values: w ascending, then V row-major (the front
// end unpacks them, as slogdet's). A is read as (A + A^T) / 2.
Shape eigh_shape(const Attr&, const Shape* in, int) {
  check_square_2d("eigh", in[0]);
  return Shape::vector(in[0].rows + in[0].rows * in[0].rows);
}
Shape eigvalsh_shape(const Attr&, const Shape* in, int) {
  check_square_2d("eigvalsh", in[0]);
  return Shape::vector(in[0].rows);
}
template <class T>
void sym_eig_of(const char* op, const KernelArgs& k, bool vectors, VecD& w, MatD& V) {
  const Shape& s = k.in[0].shape();
  MatD A = widened<T>(k.in[0]);
  check_finite(op, A, s);
  sym_eig(op, MatD(0.5 * (A + A.transpose())), s, vectors, w, V);
}
// Note [vector signs]: each eigenvector (each left singular vector, its right one with it) is
// given the sign that makes its entry of largest magnitude (the first such) positive, so the
// results do not depend on the solver's internals; LAPACK does not normalise, hence the signs can
// differ from NumPy's.
void normalise_signs(MatD& V, MatD* W) {
  for (Eigen::Index j = 0; j < V.cols(); ++j) {
    Eigen::Index imax = 0;
    V.col(j).cwiseAbs().maxCoeff(&imax);
    if (V(imax, j) < 0) {
      V.col(j) = -V.col(j);
      if (W) W->col(j) = -W->col(j);
    }
  }
}
template <class T>
std::shared_ptr<const SpectralFactor<Eig>> eig_of(const char* op, const KernelArgs& k) {
  return spectral_of<Eig>(k, [&] {
    Eig e;
    sym_eig_of<T>(op, k, true, e.w, e.V);
    normalise_signs(e.V, nullptr);
    return e;
  });
}
template <class T> void fwd_eigh(const KernelArgs& k) {
  const std::int64_t n = k.in[0].shape().rows;
  if (n == 0) return;
  const auto f = eig_of<T>("eigh", k);
  T* o = k.out.ptr<T>();
  for (std::int64_t i = 0; i < n; ++i) o[i] = T(f->d.w(i));
  MapMat<T>(o + n, n, n) = f->d.V.template cast<T>();
}
template <class T> void fwd_eigvalsh(const KernelArgs& k) {
  if (k.in[0].shape().rows == 0) return;
  auto f = kept<Eig>(k);
  if (!f && gradient_follows(k)) f = eig_of<T>("eigvalsh", k);  // Note [spectral factors]
  if (f) {
    k.out.mat<T>() = f->d.w.transpose().template cast<T>();
    return;
  }
  VecD w;
  MatD V;
  sym_eig_of<T>("eigvalsh", k, false, w, V);
  ++t_spectral_count;
  k.out.mat<T>() = w.transpose().cast<T>();
}

Attr helper_attr(std::int64_t caller, const Shape& s) {
  Attr at;
  at.offset = caller;
  at.shape = s;
  return at;
}
// The symmetric part (X + X^T) / 2.
template <class A>
typename A::T sym_part(A& a, const typename A::T& x) {
  return a.mul_s(a.add(x, a.transpose(x)), 0.5);
}
template <class A>
typename A::T as_row(A& a, const typename A::T& v) {
  return a.reshape(v, Shape::matrix(1, a.shape(v).size()));
}
template <class A>
typename A::T as_col(A& a, const typename A::T& v) {
  return a.reshape(v, Shape::matrix(a.shape(v).size(), 1));
}

// A = V diag(w) V^T, with cotangents gw and gV:
//   dA = sym(V (diag(gw) + F o (V^T gV)) V^T),  F_ij = 1 / (w_j - w_i) (i != j), F_ii = 0;
// (F is antisymmetric, so sym(F o M) = F o (M - M^T) / 2: only the antisymmetric part of M
// counts, but spectral_gap checks M itself, Note [degenerate spectra].)
MG_VJP_FN(vjp_eigh) {
  const Shape s = a.shape(c.in[0]);
  const std::int64_t n = s.rows;
  const Shape vs = Shape::vector(n), ms = Shape::matrix(n, n);
  auto w = a.unpack(c.out, 0, vs);
  auto V = a.unpack(c.out, n, ms);
  auto gw = a.unpack(c.g, 0, vs);
  auto gV = a.unpack(c.g, n, ms);
  auto J = a.op(k_gap, {w, a.matmul(V, gV, true, false)}, helper_attr(kForEigh, s));
  auto left = a.add(a.matmul(V, J, false, false), a.mul(V, as_row(a, gw)));
  c.dx[0] = sym_part(a, a.matmul(left, V, false, true));
}
// dA = sym(V diag(g) V^T): exact at any multiplicity (a symmetric function of a cluster)
MG_VJP_FN(vjp_eigvalsh) {
  const std::int64_t n = a.shape(c.in[0]).rows;
  // eigh on the input's node: the decomposition its forward kept (Note [spectral factors])
  auto V = a.unpack(a.on_node(k_eigh, *c.node.parent(0), {}), n, Shape::matrix(n, n));
  c.dx[0] = sym_part(a, a.matmul(a.mul(V, as_row(a, c.g)), V, false, true));
}

// ---- spectral_gap(w, M) = F o M, F_ij = 1 / (w_j - w_i) off the diagonal, 0 on it ----
Shape gap_shape(const Attr&, const Shape* in, int) {
  const std::int64_t n = in[0].size();
  if (in[0].ndim != 1 || in[1].ndim != 2 || in[1].rows != n || in[1].cols != n)
    fail_shapes("spectral_gap", "are not aligned", in, 2);
  return in[1];
}
template <class T> void fwd_gap(const KernelArgs& k) {
  const T* w = k.in[0].ptr<T>();
  auto M = k.in[1].mat<T>();
  auto o = k.out.mat<T>();
  const Eigen::Index n = M.rows();
  double wmax = 0;
  for (Eigen::Index i = 0; i < n; ++i) wmax = std::max(wmax, std::abs(double(w[i])));
  const double tol = degenerate_tol<T>(k.attr, wmax);
  for (Eigen::Index i = 0; i < n; ++i)
    for (Eigen::Index j = 0; j < n; ++j) {
      if (i == j) {
        o(i, j) = T(0);
        continue;
      }
      const double d = double(w[j]) - double(w[i]);
      if (std::abs(d) <= tol) {
        if (M(i, j) != T(0)) {
          const bool svd = k.attr.offset == kForSvd;
          throw LinAlgError(std::string(helper_caller(k.attr)) + ": the " + (svd ? "singular-vector" : "eigenvector") +
                            " gradient is undefined at repeated " + (svd ? "singular values" : "eigenvalues") +
                            " (values " + std::to_string(std::min(i, j)) + " and " + std::to_string(std::max(i, j)) +
                            " of a matrix of shape " + k.attr.shape.str() + " differ by " + num(std::abs(d)) +
                            ", within the tolerance " + num(tol) + ")");
        }
        o(i, j) = T(0);
      } else {
        o(i, j) = T(double(M(i, j)) / d);
      }
    }
}
// out_ij = M_ij / (w_j - w_i):  dM = F o H;  dw = rowsum(P) - colsum(P) with P = F o F o M o H
MG_VJP_FN(vjp_gap) {
  const Attr& at = c.node.attr;
  const auto& w = c.in[0];
  if (c.needs[1]) c.dx[1] = a.op(k_gap, {w, c.g}, at);
  if (c.needs[0]) {
    const std::int64_t n = a.shape(w).size();
    auto P = a.op(k_gap, {w, a.op(k_gap, {w, a.mul(c.in[1], c.g)}, at)}, at);
    auto rows = a.reshape(a.sum_to(P, Shape::matrix(n, 1)), Shape::vector(n));
    auto cols = a.reshape(a.sum_to(P, Shape::matrix(1, n)), Shape::vector(n));
    c.dx[0] = a.sub(rows, cols);
  }
}

// ---- svd, svdvals ----
// svd packs (U, s, Vt), reduced (k = min(m, n)): U (m, k), s (k,), Vt (k, n), each row-major.
Shape svd_shape(const Attr&, const Shape* in, int) {
  check_2d("svd", in[0]);
  const std::int64_t m = in[0].rows, n = in[0].cols, r = std::min(m, n);
  return Shape::vector(m * r + r + r * n);
}
Shape svdvals_shape(const Attr&, const Shape* in, int) {
  check_2d("svdvals", in[0]);
  return Shape::vector(std::min(in[0].rows, in[0].cols));
}
// The thin SVD A = U diag(s) V^T, s descending: LAPACK's dgesdd where the process has one
// (Note [LAPACK from the process] in kernels/lapack.cpp), else Eigen's BDCSVD.
struct Svd {
  VecD s;
  MatD U, V;
};
template <class T>
Svd svd_of(const char* op, const Val& x, bool vectors) {
  MatD A = widened<T>(x);
  check_finite(op, A, x.shape());
  Svd r;
  MatD Vt;
  const int info = lapack::gesdd(A, r.s, r.U, Vt, vectors);
  bool ok = info == 0;
  if (ok && vectors) r.V = Vt.transpose();
  if (info == lapack::kUnavailable) {
    Eigen::BDCSVD<MatD> svd(A, vectors ? Eigen::ComputeThinU | Eigen::ComputeThinV : 0);
    ok = svd.info() == Eigen::Success;
    if (ok) r.s = svd.singularValues();
    if (ok && vectors) {
      r.U = svd.matrixU();
      r.V = svd.matrixV();
    }
  }
  if (!ok)
    throw LinAlgError(std::string(op) + ": the SVD of a matrix of shape " + x.shape().str() + " did not converge");
  return r;
}
template <class T>
std::shared_ptr<const SpectralFactor<Svd>> svd_factor_of(const char* op, const KernelArgs& k) {
  return spectral_of<Svd>(k, [&] {
    Svd svd = svd_of<T>(op, k.in[0], true);
    normalise_signs(svd.U, &svd.V);
    return svd;
  });
}
template <class T> void fwd_svd(const KernelArgs& k) {
  const std::int64_t m = k.in[0].shape().rows, n = k.in[0].shape().cols, r = std::min(m, n);
  if (r == 0) return;
  const auto f = svd_factor_of<T>("svd", k);  // held: without a slot it is the only owner
  const Svd& svd = f->d;
  T* o = k.out.ptr<T>();
  MapMat<T>(o, m, r) = svd.U.cast<T>();
  for (std::int64_t i = 0; i < r; ++i) o[m * r + i] = T(svd.s(i));
  MapMat<T>(o + m * r + r, r, n) = svd.V.transpose().cast<T>();
}
template <class T> void fwd_svdvals(const KernelArgs& k) {
  if (k.out.shape().size() == 0) return;
  auto f = kept<Svd>(k);
  if (!f && gradient_follows(k)) f = svd_factor_of<T>("svdvals", k);  // Note [spectral factors]
  if (f) {
    k.out.mat<T>() = f->d.s.transpose().template cast<T>();
    return;
  }
  const Svd svd = svd_of<T>("svdvals", k.in[0], false);
  ++t_spectral_count;
  k.out.mat<T>() = svd.s.transpose().cast<T>();
}

// A = U S V^T (V = Vt^T), with cotangents gU, gs, gVt (gV = gVt^T) and F_ij = 1 / (s_j^2 - s_i^2):
//   dA = U (diag(gs) + (F o (U^T gU - gU^T U)) S + S (F o (V^T gV - gV^T V))) V^T
//        + (I - U U^T) gU S^-1 V^T + U S^-1 gV^T (I - V V^T)
// (the last two only for a non-square A).
MG_VJP_FN(vjp_svd) {
  const Shape s = a.shape(c.in[0]);
  const std::int64_t m = s.rows, n = s.cols, r = std::min(m, n);
  const Shape us = Shape::matrix(m, r), ss = Shape::vector(r), vs = Shape::matrix(r, n);
  auto U = a.unpack(c.out, 0, us);
  auto sv = a.unpack(c.out, m * r, ss);
  auto Vt = a.unpack(c.out, m * r + r, vs);
  auto gU = a.unpack(c.g, 0, us);
  auto gs = a.unpack(c.g, m * r, ss);
  auto gVt = a.unpack(c.g, m * r + r, vs);
  const Attr at = helper_attr(kForSvd, s);
  auto s2 = a.square(sv);
  auto MU = a.matmul(U, gU, true, false);
  auto MV = a.matmul(Vt, gVt, false, true);
  // F o (M - M^T) = X + X^T with X = F o M (F is antisymmetric): spectral_gap sees M itself
  auto XU = a.op(k_gap, {s2, MU}, at);
  auto XV = a.op(k_gap, {s2, MV}, at);
  auto J = a.add(XU, a.transpose(XU));
  auto K = a.add(XV, a.transpose(XV));
  auto inner = a.add(a.mul(J, as_row(a, sv)), a.mul(K, as_col(a, sv)));
  auto left = a.add(a.matmul(U, inner, false, false), a.mul(U, as_row(a, gs)));
  if (m > r) {  // (I - U U^T) gU S^-1
    auto X = a.op(k_sv_div, {sv, gU}, at);
    left = a.add(left, a.sub(X, a.matmul(U, a.matmul(U, X, true, false), false, false)));
  }
  auto dA = a.matmul(left, Vt, false, false);
  if (n > r) {  // U S^-1 gVt (I - V V^T)
    auto Y = a.transpose(a.op(k_sv_div, {sv, a.transpose(gVt)}, at));  // (r, n)
    dA = a.add(dA, a.matmul(U, a.sub(Y, a.matmul(a.matmul(Y, Vt, false, true), Vt, false, false)), false, false));
  }
  c.dx[0] = dA;
}
// dA = U diag(g) V^T: exact at any multiplicity and rank
MG_VJP_FN(vjp_svdvals) {
  const Shape s = a.shape(c.in[0]);
  const std::int64_t m = s.rows, n = s.cols, r = std::min(m, n);
  auto p = a.on_node(k_svd, *c.node.parent(0), {});  // the kept decomposition (Note [spectral factors])
  auto U = a.unpack(p, 0, Shape::matrix(m, r));
  auto Vt = a.unpack(p, m * r + r, Shape::matrix(r, n));
  c.dx[0] = a.matmul(a.mul(U, as_row(a, c.g)), Vt, false, false);
}

// ---- sv_div(s, X) = X S^-1: column j of X divided by s_j ----
// A column whose s_j is below the tolerance of Note [degenerate spectra] (on s, not s^2) must be
// zero: it gives 0; otherwise the gradient is undefined (a rank-deficient A) and it raises.
Shape sv_div_shape(const Attr&, const Shape* in, int) {
  if (in[0].ndim != 1 || in[1].ndim != 2 || in[1].cols != in[0].size()) fail_shapes("sv_div", "are not aligned", in, 2);
  return in[1];
}
template <class T> void fwd_sv_div(const KernelArgs& k) {
  const T* sv = k.in[0].ptr<T>();
  auto X = k.in[1].mat<T>();
  auto o = k.out.mat<T>();
  double smax = 0;
  for (Eigen::Index j = 0; j < X.cols(); ++j) smax = std::max(smax, std::abs(double(sv[j])));
  const double tol = degenerate_tol<T>(k.attr, smax);
  for (Eigen::Index j = 0; j < X.cols(); ++j) {
    if (std::abs(double(sv[j])) <= tol) {
      if (!(X.col(j).array() == T(0)).all())
        throw LinAlgError(std::string(helper_caller(k.attr)) +
                          ": the singular-vector gradient is undefined for a rank-deficient matrix of shape " +
                          k.attr.shape.str() + " (singular value " + std::to_string(j) + " is " + num(double(sv[j])) +
                          ", within the tolerance " + num(tol) + ")");
      o.col(j).setZero();
    } else {
      o.col(j) = X.col(j) / sv[j];
    }
  }
}
// out = X / s_row:  dX = H / s_row;  ds_j = -sum_i H_ij X_ij / s_j^2
MG_VJP_FN(vjp_sv_div) {
  const Attr& at = c.node.attr;
  const auto& sv = c.in[0];
  if (c.needs[1]) c.dx[1] = a.op(k_sv_div, {sv, c.g}, at);
  if (c.needs[0]) {
    const std::int64_t r = a.shape(sv).size();
    auto P = a.op(k_sv_div, {sv, a.op(k_sv_div, {sv, a.mul(c.g, c.in[1])}, at)}, at);
    c.dx[0] = a.neg(a.reshape(a.sum_to(P, Shape::matrix(1, r)), Shape::vector(r)));
  }
}

// ---- pinv ----
// As numpy.linalg.pinv (rcond 1e-15): singular values at or below 1e-15 max(s) are dropped.
Shape pinv_shape(const Attr&, const Shape* in, int) {
  check_2d("pinv", in[0]);
  return Shape::matrix(in[0].cols, in[0].rows);
}
template <class T> void fwd_pinv(const KernelArgs& k) {
  if (k.out.shape().size() == 0) return;
  const Svd svd = svd_of<T>("pinv", k.in[0], true);
  const VecD& sv = svd.s;
  const double cut = 1e-15 * (sv.size() ? sv(0) : 0.0);
  VecD inv(sv.size());
  for (Eigen::Index i = 0; i < sv.size(); ++i) inv(i) = sv(i) > cut ? 1.0 / sv(i) : 0.0;
  k.out.mat<T>() = (svd.V * inv.asDiagonal() * svd.U.transpose()).cast<T>();
}
// P = A^+ (Golub and Pereyra, at constant rank):
//   dA = -P^T G P^T + (I - A P) G^T P P^T + P^T P G^T (I - P A)
MG_VJP_FN(vjp_pinv) {
  const auto& A_ = c.in[0];
  const auto& P = c.out;
  const auto& G = c.g;
  auto t1 = a.neg(a.matmul(a.matmul(P, G, true, false), P, false, true));
  auto Y = a.matmul(G, a.matmul(P, P, false, true), true, false);             // G^T P P^T
  auto t2 = a.sub(Y, a.matmul(A_, a.matmul(P, Y, false, false), false, false));
  auto Z = a.matmul(a.matmul(P, P, true, false), G, false, true);             // P^T P G^T
  auto t3 = a.sub(Z, a.matmul(a.matmul(Z, P, false, false), A_, false, false));
  c.dx[0] = a.add(t1, a.add(t2, t3));
}

// ---- the entry points ----

Results front_eigh(const EntryPoint&, const Arg* a) {
  NodeRef x = operand(a[0]);
  NodeRef p = apply(k_eigh, {x});
  const std::int64_t n = x->shape.rows;
  Results r;
  r.n = 2;
  r.v[0] = unpack(p, 0, Shape::vector(n));
  r.v[1] = unpack(p, n, Shape::matrix(n, n));
  return r;
}
Results front_svd(const EntryPoint&, const Arg* a) {
  NodeRef x = operand(a[0]);
  NodeRef p = apply(k_svd, {x});
  const std::int64_t m = x->shape.rows, n = x->shape.cols, k = std::min(m, n);
  Results r;
  r.n = 3;
  r.v[0] = unpack(p, 0, Shape::matrix(m, k));
  r.v[1] = unpack(p, m * k, Shape::vector(k));
  r.v[2] = unpack(p, m * k + k, Shape::matrix(k, n));
  return r;
}

}  // namespace

void register_matfun() {
  define(&k_eigh, "eigh", 1, eigh_shape, MG_FWD(fwd_eigh)).shares_factor(FactorKind::eig).vjp(MG_VJP(vjp_eigh));
  define(&k_eigvalsh, "eigvalsh", 1, eigvalsh_shape, MG_FWD(fwd_eigvalsh))
      .shares_factor(FactorKind::eig)
      .vjp(MG_VJP(vjp_eigvalsh));
  define(&k_svd, "svd", 1, svd_shape, MG_FWD(fwd_svd)).shares_factor(FactorKind::svd).vjp(MG_VJP(vjp_svd));
  define(&k_svdvals, "svdvals", 1, svdvals_shape, MG_FWD(fwd_svdvals))
      .shares_factor(FactorKind::svd)
      .vjp(MG_VJP(vjp_svdvals));
  define(&k_pinv, "pinv", 1, pinv_shape, MG_FWD(fwd_pinv)).vjp(MG_VJP(vjp_pinv));
  matfun_detail::register_primary_ops();
  define(&k_gap, "spectral_gap", 2, gap_shape, MG_FWD(fwd_gap)).reads(kAttrShape | kAttrOffset).vjp(MG_VJP(vjp_gap));
  define(&k_sv_div, "sv_div", 2, sv_div_shape, MG_FWD(fwd_sv_div))
      .reads(kAttrShape | kAttrOffset)
      .vjp(MG_VJP(vjp_sv_div));

  const Param x{"a", ParamKind::operand};
  const UnaryEntries unary{"matfun", "a"};
  define_entry("eigh", "matfun", front_eigh, k_eigh, {x})
      .doc(
          "`(w, V)` with `A = V diag(w) V^T`, as `numpy.linalg.eigh`: eigenvalues ascending, orthonormal "
          "eigenvectors in the columns of `V`, each with the sign that makes its largest entry positive (NumPy does "
          "not normalise: columns may differ from NumPy's by their sign). `A` is read as "
          "`(A + A^T) / 2`.",
          "`(n, n)` -> a tuple `(w, V)` of shapes `(n,)` and `(n, n)`; a 1-D or non-square `a` raises ValueError.",
          "d/dA: `sym(V (diag(G_w) + F o (V^T G_V)) V^T)` with `F_ij = 1 / (w_j - w_i)` off the diagonal and "
          "`sym(X) = (X + X^T) / 2`; numpy.linalg.LinAlgError where `G_V` meets repeated eigenvalues (the "
          "eigenvectors are not unique there).")
      .tuple = 2;
  unary("eigvalsh", k_eigvalsh,
        "The eigenvalues of a symmetric matrix, ascending, as `numpy.linalg.eigvalsh`; `A` is read as "
        "`(A + A^T) / 2`.",
        "`(n, n) -> (n,)`; a 1-D or non-square `a` raises ValueError.",
        "d/dA: `sym(V diag(G) V^T)`, exact at repeated eigenvalues (the gradient of a symmetric function of a "
        "cluster does not depend on the basis chosen).");
  define_entry("svd", "matfun", front_svd, k_svd, {x})
      .doc(
          "The reduced SVD `(U, s, Vt)` with `A = U diag(s) Vt`, as `numpy.linalg.svd(a, full_matrices=False)`: "
          "singular values descending; each column of `U` has the sign that makes its largest entry positive, the "
          "matching row of `Vt` with it (NumPy does not normalise: pairs may differ from NumPy's by their sign).",
          "`(m, n)` -> a tuple of shapes `(m, k)`, `(k,)`, `(k, n)` with `k = min(m, n)`; a 1-D `a` raises "
          "ValueError.",
          "d/dA: `U (diag(G_s) + (F o (U^T G_U - G_U^T U)) S + S (F o (V^T G_V - G_V^T V))) V^T + (I - U U^T) G_U "
          "S^-1 V^T + U S^-1 G_V^T (I - V V^T)` with `F_ij = 1 / (s_j^2 - s_i^2)`; numpy.linalg.LinAlgError where "
          "vector cotangents meet repeated or (non-square A) zero singular values.")
      .tuple = 3;
  unary("svdvals", k_svdvals,
        "The singular values, descending, as `numpy.linalg.svdvals` (`numpy.linalg.svd(a, compute_uv=False)`).",
        "`(m, n) -> (min(m, n),)`; a 1-D `a` raises ValueError.",
        "d/dA: `U diag(G) V^T`, exact at repeated and zero singular values (`U V^T` for the nuclear norm).");
  unary("pinv", k_pinv,
        "The Moore-Penrose pseudo-inverse, as `numpy.linalg.pinv` (singular values at or below `1e-15 max(s)` "
        "are dropped).",
        "`(m, n) -> (n, m)`; a 1-D `a` raises ValueError.",
        "d/dA at constant rank (Golub and Pereyra): `-P^T G P^T + (I - A P) G^T P P^T + P^T P G^T (I - P A)` "
        "with `P = pinv(A)`.");
  matfun_detail::register_primary_entries();
}

std::int64_t spectral_decompositions() { return t_spectral_count; }
namespace matfun_detail {
void count_decomposition() { ++t_spectral_count; }
}  // namespace matfun_detail

}  // namespace matgrad
