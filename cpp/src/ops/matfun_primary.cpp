// SPDX-License-Identifier: MIT
// The primary matrix functions (principal branch): expm, logm and sqrtm, with their VJP helpers
// expm_frechet (expm's Frechet derivative) and sqrtm_sylvester (sqrtm's). Registered by
// register_matfun() (matfun.cpp), which holds the spectral ops; what the two share is matfun.hpp.
// As there, the work runs in float64 and every VJP is written in the algebra's ops.
#include "matfun.hpp"

#include "../kernels/lapack.hpp"

#include <Eigen/Eigenvalues>
#include <Eigen/LU>
#include <unsupported/Eigen/MatrixFunctions>

#include <algorithm>
#include <cmath>
#include <complex>
#include <limits>
#include <list>
#include <string>

namespace matgrad {

namespace {

using namespace matfun_detail;

OpId k_expm, k_logm, k_sqrtm, k_expm_frechet, k_sylvester;

// ---- expm, logm, sqrtm: primary matrix functions (principal branch), on Eigen ----
Shape expm_shape(const Attr&, const Shape* in, int) {
  check_square_2d("expm", in[0]);
  return in[0];
}
Shape logm_shape(const Attr&, const Shape* in, int) {
  check_square_2d("logm", in[0]);
  return in[0];
}
Shape sqrtm_shape(const Attr&, const Shape* in, int) {
  check_square_2d("sqrtm", in[0]);
  return in[0];
}
template <class T> void fwd_expm(const KernelArgs& k) {
  const Shape& s = k.in[0].shape();
  if (s.rows == 0) return;
  MatD A = widened<T>(k.in[0]);
  check_finite("expm", A, s);
  MatD E = A.exp();
  k.out.mat<T>() = E.cast<T>();
}
// A symmetric A (exactly, as a covariance is) is a normal matrix: f(A) = V f(w) V^T from its
// symmetric eigendecomposition, exact and several times cheaper than a Schur form; eigenvalues
// within 4 n eps max|w| of 0 are 0 to working precision (a rank-deficient covariance's sqrtm).
// Returns false (nothing written) when A is not symmetric.
bool symmetric_function(const char* op, const MatD& A, const Shape& s, bool is_log, MatD& out) {
  if (A != A.transpose()) return false;
  VecD w;
  MatD V;
  sym_eig(op, A, s, true, w, V);
  const double tol = 4.0 * double(A.rows()) * std::numeric_limits<double>::epsilon() * w.cwiseAbs().maxCoeff();
  for (Eigen::Index i = 0; i < w.size(); ++i) {
    if (is_log && w(i) == 0.0)
      throw LinAlgError(std::string(op) + ": matrix of shape " + s.str() +
                        " is singular (an eigenvalue is 0); its logarithm is not defined");
    if (w(i) < (is_log ? 0.0 : -tol))
      throw LinAlgError(std::string(op) + ": matrix of shape " + s.str() + " has a negative real eigenvalue (" +
                        num(w(i)) + "); its principal " + (is_log ? "logarithm" : "square root") +
                        " is complex, which matgrad does not support");
    w(i) = is_log ? std::log(w(i)) : std::sqrt(std::max(w(i), 0.0));
  }
  out = V * w.asDiagonal() * V.transpose();
  out = 0.5 * (out + out.transpose()).eval();
  return true;
}
// With a LAPACK (Note [LAPACK from the process] in kernels/lapack.cpp): one complex Schur form
// A = U T U^* (zgees) serves the principal-branch check (T's diagonal holds the eigenvalues)
// and the logarithm: the steps of Eigen's matrix_function_compute from the Schur form on
// (eigenvalue clusters, the atomic inverse-scaling-and-squaring log on each diagonal block,
// Parlett's recurrence above them). Eigen's own A.log() computes an unblocked complex Schur
// form and, before it, check_principal an unblocked real one: 73% of logm's time at n = 256.
// These are Eigen 3.4's internals, the version the build pins.
// False (nothing done) when the LAPACK is not in use.
bool logm_schur(const MatD& A, const Shape& s, MatD& L) {
  using MatC = Eigen::MatrixXcd;
  using Index = Eigen::Index;
  MatC T = A.cast<std::complex<double>>(), U;
  const int info = lapack::zgees(T, U);
  if (info == lapack::kUnavailable) return false;
  if (info != 0) throw LinAlgError("logm: the Schur form of a matrix of shape " + s.str() + " did not converge");
  T.triangularView<Eigen::StrictlyLower>().setZero();
  check_principal_values("logm", T.diagonal(), A, s, false);
  namespace ei = Eigen::internal;
  std::list<std::list<Index>> clusters;
  ei::matrix_function_partition_eigenvalues(T.diagonal(), clusters);
  Eigen::Matrix<Index, Eigen::Dynamic, 1> cluster_size, block_start, eival_to_cluster, permutation;
  ei::matrix_function_compute_cluster_size(clusters, cluster_size);
  ei::matrix_function_compute_block_start(cluster_size, block_start);
  ei::matrix_function_compute_map(T.diagonal(), clusters, eival_to_cluster);
  ei::matrix_function_compute_permutation(block_start, eival_to_cluster, permutation);
  ei::matrix_function_permute_schur(permutation, U, T);
  ei::MatrixLogarithmAtomic<MatC> atomic;
  MatC fT;
  ei::matrix_function_compute_block_atomic(T, atomic, block_start, cluster_size, fT);
  ei::matrix_function_compute_above_diagonal(T, block_start, cluster_size, fT);
  L = (U * (fT.triangularView<Eigen::Upper>() * U.adjoint())).real();
  return true;
}
template <class T> void fwd_logm(const KernelArgs& k) {
  const Shape& s = k.in[0].shape();
  if (s.rows == 0) return;
  MatD A = widened<T>(k.in[0]);
  check_finite("logm", A, s);
  MatD Ls;
  if (symmetric_function("logm", A, s, true, Ls)) {
    k.out.mat<T>() = Ls.cast<T>();
    return;
  }
  MatD L;
  if (!logm_schur(A, s, L)) {
    check_principal("logm", A, s, false);
    L = A.log();
  }
  if (!L.allFinite()) throw LinAlgError("logm: the logarithm of a matrix of shape " + s.str() + " is not finite");
  k.out.mat<T>() = L.cast<T>();
}
// One real Schur form A = U T U^T serves both the principal-branch check (T's 1 x 1 and 2 x 2
// diagonal blocks hold the eigenvalues) and the square root (Eigen's quasi-triangular sqrt of T).
template <class T> void fwd_sqrtm(const KernelArgs& k) {
  const Shape& s = k.in[0].shape();
  if (s.rows == 0) return;
  MatD A = widened<T>(k.in[0]);
  check_finite("sqrtm", A, s);
  MatD Rs;
  if (symmetric_function("sqrtm", A, s, false, Rs)) {
    k.out.mat<T>() = Rs.cast<T>();
    return;
  }
  // the real Schur form A = U Tm U^T: LAPACK's dgees where the process has one (Note [LAPACK
  // from the process] in kernels/lapack.cpp), else Eigen's RealSchur
  MatD Tm = A, U;
  const int info = lapack::gees(Tm, U);
  bool ok = info == 0;
  if (info == lapack::kUnavailable) {
    Eigen::RealSchur<MatD> schur(A);
    ok = schur.info() == Eigen::Success;
    if (ok) {
      Tm = schur.matrixT();
      U = schur.matrixU();
    }
  }
  if (!ok) throw LinAlgError("sqrtm: the Schur form of a matrix of shape " + s.str() + " did not converge");
  const Eigen::Index n = Tm.rows();
  for (Eigen::Index j = 0; j + 2 < n; ++j) Tm.col(j).tail(n - j - 2).setZero();  // below the subdiagonal
  // a real eigenvalue within 4 n eps ||A|| of 0 is 0 to working precision, not negative
  const double tol = 4.0 * double(n) * std::numeric_limits<double>::epsilon() * A.cwiseAbs().maxCoeff() * double(n);
  for (Eigen::Index i = 0; i < n; ++i) {
    if (i + 1 < n && Tm(i + 1, i) != 0.0) {  // a 2 x 2 block: real eigenvalues when q >= 0
      const double p = 0.5 * (Tm(i, i) - Tm(i + 1, i + 1)), q = p * p + Tm(i, i + 1) * Tm(i + 1, i);
      const double mid = 0.5 * (Tm(i, i) + Tm(i + 1, i + 1));
      if (q >= 0 && mid - std::sqrt(q) < -tol)
        throw LinAlgError("sqrtm: matrix of shape " + s.str() + " has a negative real eigenvalue (" +
                          num(mid - std::sqrt(q)) +
                          "); its principal square root is complex, which matgrad does not support");
      ++i;
    } else if (Tm(i, i) < -tol) {
      throw LinAlgError("sqrtm: matrix of shape " + s.str() + " has a negative real eigenvalue (" + num(Tm(i, i)) +
                        "); its principal square root is complex, which matgrad does not support");
    } else if (Tm(i, i) < 0) {
      Tm(i, i) = 0;
    }
  }
  MatD sqrtT = MatD::Zero(n, n);
  Eigen::matrix_sqrt_quasi_triangular(Tm, sqrtT);
  MatD R = U * sqrtT * U.transpose();
  if (!R.allFinite())
    throw LinAlgError("sqrtm: matrix of shape " + s.str() +
                      " has a zero eigenvalue (to working precision) that makes its square root not computable by the "
                      "Schur method: it has none if the eigenvalue is defective");
  k.out.mat<T>() = R.cast<T>();
}

// ---- sqrtm_sylvester(R, C): Z with R^T Z + Z R^T = C ----
// sqrtm's VJP (R = sqrtm(A): dR R + R dR = dA, so dA = Z for the cotangent C = G), by the
// complex Schur form R = Q S Q^*: S V + V S = Q^* C^T Q, Z = (Q V Q^*)^T. A zero eigenvalue of R
// (S_ii + S_jj = 0) makes it singular: the gradient of sqrtm is not defined there.
Shape sylvester_shape(const Attr&, const Shape* in, int) {
  if (in[0].ndim != 2 || in[0].rows != in[0].cols || in[1] != in[0])
    fail_shapes("sqrtm_sylvester", "are not two square matrices of one shape", in, 2);
  return in[0];
}
// With a LAPACK (Note [LAPACK from the process] in kernels/lapack.cpp): by the real Schur form
// R = U T U^T (dgees, 2 x 2 blocks standardised, so T_ii is the real part of an eigenvalue):
// R W + W R = C^T with W = Z^T becomes T Y + Y T = U^T C^T U, Y = U^T W U (dtrsyl), all real.
// False (nothing done) when the LAPACK is not in use.
bool sylvester_real_schur(const MatD& R, const MatD& C, const Shape& s, double eps, MatD& Z) {
  MatD Tm = R, U;
  const int info = lapack::gees(Tm, U);
  if (info == lapack::kUnavailable) return false;
  if (info != 0)
    throw LinAlgError("sqrtm: the Schur form of a matrix of shape " + s.str() + " did not converge (its gradient)");
  const Eigen::Index n = Tm.rows();
  for (Eigen::Index j = 0; j + 2 < n; ++j) Tm.col(j).tail(n - j - 2).setZero();
  double smax = 0;  // the largest eigenvalue modulus
  for (Eigen::Index i = 0; i < n; ++i) {
    const bool block = i + 1 < n && Tm(i + 1, i) != 0.0;
    const double im = block ? std::sqrt(std::abs(Tm(i, i + 1) * Tm(i + 1, i))) : 0.0;
    smax = std::max(smax, std::hypot(Tm(i, i), im));
  }
  const double tol = 4.0 * double(n) * eps * smax;
  for (Eigen::Index i = 0; i < n; ++i)
    if (std::abs(Tm(i, i)) <= tol)  // the principal root's eigenvalues have real part >= 0
      throw LinAlgError("sqrtm: the gradient is not defined at a matrix of shape " + s.str() +
                        " with a zero eigenvalue (its square root is singular)");
  MatD Y = U.transpose() * C.transpose() * U;
  double scale = 1;
  const int ts = lapack::trsyl(Tm, Tm, Y, scale);
  if (ts == 1)  // T and -T have close eigenvalues: perturbed values were used
    throw LinAlgError("sqrtm: the gradient is not defined at a matrix of shape " + s.str() +
                      " with a zero eigenvalue (its square root is singular)");
  if (ts != 0)
    throw LinAlgError("sqrtm: the Sylvester equation of the gradient at a matrix of shape " + s.str() + " failed");
  Z = (U * (Y / scale) * U.transpose()).transpose();
  return true;
}
template <class T> void fwd_sylvester(const KernelArgs& k) {
  const Shape& s = k.in[0].shape();
  if (s.rows == 0) return;
  using MatC = Eigen::MatrixXcd;
  const MatD R = widened<T>(k.in[0]), C = widened<T>(k.in[1]);
  if (!R.allFinite()) {
    k.out.mat<T>().setConstant(std::numeric_limits<T>::quiet_NaN());
    return;
  }
  MatD Z;
  if (sylvester_real_schur(R, C, s, double(std::numeric_limits<T>::epsilon()), Z)) {
    k.out.mat<T>() = Z.cast<T>();
    return;
  }
  Eigen::ComplexSchur<MatD> cs(R);
  if (cs.info() != Eigen::Success)
    throw LinAlgError("sqrtm: the Schur form of a matrix of shape " + s.str() + " did not converge (its gradient)");
  const MatC S = cs.matrixT().triangularView<Eigen::Upper>();
  const MatC& Q = cs.matrixU();
  const Eigen::Index n = S.rows();
  double smax = 0;
  for (Eigen::Index i = 0; i < n; ++i) smax = std::max(smax, std::abs(S(i, i)));
  const double tol = 4.0 * double(n) * double(std::numeric_limits<T>::epsilon()) * smax;
  for (Eigen::Index i = 0; i < n; ++i)
    if (std::abs(S(i, i).real()) <= tol)  // the principal root's eigenvalues have real part >= 0
      throw LinAlgError("sqrtm: the gradient is not defined at a matrix of shape " + s.str() +
                        " with a zero eigenvalue (its square root is singular)");
  const MatC Cq = Q.adjoint() * C.transpose().cast<std::complex<double>>() * Q;
  const MatC V = Eigen::internal::matrix_function_solve_triangular_sylvester(S, S, Cq);
  k.out.mat<T>() = (Q * V * Q.adjoint()).real().transpose().cast<T>();
}
// Z = sylv(R, C):  dC = Y = sylv(R^T, H) (R Y + Y R = H);  dR = -(Z Y^T + Y^T Z)
MG_VJP_FN(vjp_sylvester) {
  auto Y = a.op(k_sylvester, {a.transpose(c.in[0]), c.g});
  if (c.needs[1]) c.dx[1] = Y;
  if (c.needs[0]) c.dx[0] = a.neg(a.add(a.matmul(c.out, Y, false, true), a.matmul(Y, c.out, true, false)));
}

// ---- expm_frechet(X, E) = L_exp(X, E) ----
// Al-Mohy and Higham (2009), algorithm 6.4, as scipy.linalg.expm_frechet: the Pade approximant
// of e^X and its derivative in direction E together, with the same scaling and squaring: about
// 3 times the cost of e^X (the block identity below costs 8). Written here because Eigen's
// MatrixFunctions has no Frechet derivative; its coefficients and thresholds are SciPy's.
Shape expm_frechet_shape(const Attr&, const Shape* in, int) {
  if (in[0].ndim != 2 || in[0].rows != in[0].cols || in[1] != in[0])
    fail_shapes("expm_frechet", "are not two square matrices of one shape", in, 2);
  return in[0];
}
void expm_frechet_d(const MatD& A0, const MatD& E0, MatD& L) {
  static const double ell[] = {0,       2.11e-8, 3.56e-4, 1.08e-2, 6.49e-2, 2.00e-1, 4.37e-1,
                               7.83e-1, 1.23e0,  1.78e0,  2.42e0,  3.13e0,  3.90e0,  4.74e0};
  static const double b3[] = {120., 60., 12., 1.};
  static const double b5[] = {30240., 15120., 3360., 420., 30., 1.};
  static const double b7[] = {17297280., 8648640., 1995840., 277200., 25200., 1512., 56., 1.};
  static const double b9[] = {17643225600., 8821612800., 2075673600., 302702400., 30270240.,
                              2162160.,     110880.,     3960.,       90.,        1.};
  static const double b13[] = {64764752532480000.,
                               32382376266240000.,
                               7771770303897600.,
                               1187353796428800.,
                               129060195264000.,
                               10559470521600.,
                               670442572800.,
                               33522128640.,
                               1323241920.,
                               40840800.,
                               960960.,
                               16380.,
                               182.,
                               1.};
  const Eigen::Index n = A0.rows();
  const MatD I = MatD::Identity(n, n);
  const double norm1 = A0.cwiseAbs().colwise().sum().maxCoeff();
  MatD A = A0, E = E0, U, V, Lu, Lv;
  int s = 0;
  const double* b = nullptr;
  int m = 0;
  for (auto [mm, bb] : {std::make_pair(3, b3), std::make_pair(5, b5), std::make_pair(7, b7), std::make_pair(9, b9)})
    if (norm1 <= ell[mm]) {
      m = mm;
      b = bb;
      break;
    }
  const MatD A2 = A * A, M2 = A * E + E * A;
  if (b) {
    // even powers A_{2k} and their derivatives M_{2k} = A_{2k-2} M_2 + M_{2k-2} A_2
    std::vector<MatD> P{I, A2}, M{MatD::Zero(n, n), M2};
    for (int k = 2; 2 * k < m; ++k) {
      P.push_back(P[std::size_t(k - 1)] * A2);
      M.push_back(P[std::size_t(k - 1)] * M2 + M[std::size_t(k - 1)] * A2);
    }
    MatD odd = MatD::Zero(n, n), even = MatD::Zero(n, n), Lodd = MatD::Zero(n, n), Leven = MatD::Zero(n, n);
    for (int k = 0; 2 * k <= m; ++k) {
      const std::size_t j = std::size_t(k);
      if (2 * k + 1 <= m) {
        odd += b[2 * k + 1] * P[j];
        Lodd += b[2 * k + 1] * M[j];
      }
      even += b[2 * k] * P[j];
      Leven += b[2 * k] * M[j];
    }
    U = A * odd;
    V = even;
    Lu = A * Lodd + E * odd;
    Lv = Leven;
  } else {
    s = std::max(0, int(std::ceil(std::log2(norm1 / ell[13]))));
    const double sc = std::ldexp(1.0, -s);
    A *= sc;
    E *= sc;
    const MatD B2 = A * A, N2 = A * E + E * A;
    const MatD B4 = B2 * B2, N4 = B2 * N2 + N2 * B2;
    const MatD B6 = B2 * B4, N6 = B4 * N2 + N4 * B2;
    const double* c = b13;
    const MatD W1 = c[13] * B6 + c[11] * B4 + c[9] * B2;
    const MatD W2 = c[7] * B6 + c[5] * B4 + c[3] * B2 + c[1] * I;
    const MatD Z1 = c[12] * B6 + c[10] * B4 + c[8] * B2;
    const MatD Z2 = c[6] * B6 + c[4] * B4 + c[2] * B2 + c[0] * I;
    const MatD W = B6 * W1 + W2;
    U = A * W;
    V = B6 * Z1 + Z2;
    const MatD Lw1 = c[13] * N6 + c[11] * N4 + c[9] * N2;
    const MatD Lw2 = c[7] * N6 + c[5] * N4 + c[3] * N2;
    const MatD Lz1 = c[12] * N6 + c[10] * N4 + c[8] * N2;
    const MatD Lz2 = c[6] * N6 + c[4] * N4 + c[2] * N2;
    const MatD Lw = B6 * Lw1 + N6 * W1 + Lw2;
    Lu = A * Lw + E * W;
    Lv = B6 * Lz1 + N6 * Z1 + Lz2;
  }
  Eigen::PartialPivLU<MatD> lu(V - U);
  MatD R = lu.solve(U + V);
  L = lu.solve(Lu + Lv + (Lu - Lv) * R);
  for (int k = 0; k < s; ++k) {
    L = R * L + L * R;
    R = R * R;
  }
}
template <class T> void fwd_expm_frechet(const KernelArgs& k) {
  const Shape& s = k.in[0].shape();
  if (s.rows == 0) return;
  MatD A = widened<T>(k.in[0]), E = widened<T>(k.in[1]), L;
  if (!A.allFinite()) {
    k.out.mat<T>().setConstant(std::numeric_limits<T>::quiet_NaN());
    return;
  }
  expm_frechet_d(A, E, L);
  k.out.mat<T>() = L.cast<T>();
}

// The Frechet derivative L_f(X, E) is the top-right block of f([[X, E], [0, X]]) (Higham,
// Functions of Matrices, thm. 3.6), exact at repeated eigenvalues and defective X; for f with a
// real power series the adjoint of L_f(X, .) is L_f(X^T, .), so dX = L_f(X^T, G), and being
// written in ops, the second derivative is the same identity one level up.
template <class A>
typename A::T frechet_adjoint(A& a, OpId f, const typename A::T& x, const typename A::T& g) {
  const std::int64_t n = a.shape(x).rows;
  auto xt = a.transpose(x);
  Attr at;
  at.shape = Shape::matrix(2 * n, 2 * n);
  auto B = a.op(ops::unblock, {xt}, at);
  at.offset2 = n;
  B = a.add(B, a.op(ops::unblock, {g}, at));
  at.offset = n;
  B = a.add(B, a.op(ops::unblock, {xt}, at));
  Attr blk;
  blk.offset = 0;
  blk.offset2 = n;
  blk.shape = Shape::matrix(n, n);
  return a.op(ops::block, {a.op(f, {B})}, blk);
}
MG_VJP_FN(vjp_expm) { c.dx[0] = a.op(k_expm_frechet, {a.transpose(c.in[0]), c.g}); }
// L = L_exp(X, E), the top-right block of expm(B), B = [[X, E], [0, X]]: with cotangent H,
// dB = L_exp(B^T, H at B's top-right block); dX = the two diagonal blocks of dB, dE its top right.
MG_VJP_FN(vjp_expm_frechet) {
  const std::int64_t n = a.shape(c.in[0]).rows;
  const Shape s2 = Shape::matrix(2 * n, 2 * n), s1 = Shape::matrix(n, n);
  auto place = [&](const typename A::T& x, std::int64_t r, std::int64_t col, const Shape& into) {
    Attr at;
    at.shape = into;
    at.offset = r;
    at.offset2 = col;
    return a.op(ops::unblock, {x}, at);
  };
  auto take = [&](const typename A::T& x, std::int64_t r, std::int64_t col) {
    Attr at;
    at.shape = s1;
    at.offset = r;
    at.offset2 = col;
    return a.op(ops::block, {x}, at);
  };
  auto xt = a.transpose(c.in[0]);
  auto Bt = a.add(a.add(place(xt, 0, 0, s2), place(a.transpose(c.in[1]), n, 0, s2)), place(xt, n, n, s2));
  auto dB = a.op(k_expm_frechet, {Bt, place(c.g, 0, n, s2)});
  if (c.needs[0]) c.dx[0] = a.add(take(dB, 0, 0), take(dB, n, n));
  if (c.needs[1]) c.dx[1] = take(dB, 0, n);
}
MG_VJP_FN(vjp_logm) { c.dx[0] = frechet_adjoint(a, k_logm, c.in[0], c.g); }
// Y = sqrtm(X): dY Y + Y dY = dX, so dX solves Y^T Z + Z Y^T = G
MG_VJP_FN(vjp_sqrtm) { c.dx[0] = a.op(k_sylvester, {c.out, c.g}); }

}  // namespace

namespace matfun_detail {

void register_primary_ops() {
  define(&k_expm, "expm", 1, expm_shape, MG_FWD(fwd_expm)).vjp(MG_VJP(vjp_expm));
  define(&k_logm, "logm", 1, logm_shape, MG_FWD(fwd_logm)).vjp(MG_VJP(vjp_logm));
  define(&k_sqrtm, "sqrtm", 1, sqrtm_shape, MG_FWD(fwd_sqrtm)).vjp(MG_VJP(vjp_sqrtm));
  define(&k_expm_frechet, "expm_frechet", 2, expm_frechet_shape, MG_FWD(fwd_expm_frechet))
      .vjp(MG_VJP(vjp_expm_frechet));
  define(&k_sylvester, "sqrtm_sylvester", 2, sylvester_shape, MG_FWD(fwd_sylvester)).vjp(MG_VJP(vjp_sylvester));
}

void register_primary_entries() {
  const UnaryEntries unary{"matfun", "a"};
  unary("expm", k_expm, "The matrix exponential `e^A`, as `scipy.linalg.expm` (scaling and squaring, Pade).",
        "`(n, n) -> (n, n)`; a 1-D or non-square `a` raises ValueError.",
        "d/dA: `L_exp(A^T, G)`, the Frechet derivative at `A^T` in direction `G` (Al-Mohy and Higham's "
        "algorithm, as `scipy.linalg.expm_frechet`); exact at repeated eigenvalues and defective `A`.");
  unary("logm", k_logm,
        "The principal matrix logarithm, as `scipy.linalg.logm` for real results: numpy.linalg.LinAlgError when "
        "`A` has a real eigenvalue <= 0 (the principal logarithm is then complex or undefined). A symmetric `A` "
        "goes through its symmetric eigendecomposition, `V log(w) V^T`.",
        "`(n, n) -> (n, n)`; a 1-D or non-square `a` raises ValueError.",
        "d/dA: `L_log(A^T, G)`, the top-right block of `logm([[A^T, G], [0, A^T]])`; exact at repeated "
        "eigenvalues and defective `A`.");
  unary("sqrtm", k_sqrtm,
        "The principal matrix square root, as `scipy.linalg.sqrtm` for real results: numpy.linalg.LinAlgError "
        "when `A` has a negative real eigenvalue (the principal square root is then complex). A symmetric `A` goes "
        "through its symmetric eigendecomposition, `V sqrt(w) V^T`, with eigenvalues within `4 n eps max|w|` of 0 "
        "taken as 0 (the square root of a singular covariance).",
        "`(n, n) -> (n, n)`; a 1-D or non-square `a` raises ValueError.",
        "d/dA: `L_sqrt(A^T, G)`, the solution `Z` of the Sylvester equation `R^T Z + Z R^T = G`, `R = sqrtm(A)` "
        "(by a Schur form of R); exact at repeated eigenvalues and defective `A`; numpy.linalg.LinAlgError at a zero "
        "eigenvalue, where sqrtm is not differentiable.");
}

}  // namespace matfun_detail

}  // namespace matgrad
