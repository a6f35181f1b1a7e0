// SPDX-License-Identifier: MIT
// The primary matrix functions (principal branch): expm, logm and sqrtm, with their VJP helpers
// expm_frechet and logm_frechet (their Frechet derivatives) and sqrtm_sylvester (sqrtm's). Registered by
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
#include <memory>
#include <string>
#include <vector>

namespace matgrad {

namespace {

using namespace matfun_detail;

OpId k_expm, k_logm, k_sqrtm, k_expm_frechet, k_logm_frechet, k_sylvester;

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
// Note [expm's Pade data]
// expm and its Frechet derivative share one scaling and squaring: Al-Mohy and Higham (2009),
// algorithm 6.4, as scipy.linalg.expm_frechet (its coefficients and thresholds are SciPy's;
// Eigen's MatrixFunctions has no Frechet derivative). The Pade approximant r_m of e^X takes the
// even powers of the scaled A = 2^-s X, one LU of V - U and s squarings R_k+1 = R_k^2; the
// derivative in a direction E repeats each step for E, with the same powers, LU and R_k. The
// forward keeps them (ExpmPade) in the input's factor slot (Note [shared factorizations] in
// linalg_factor.cpp) when a gradient may follow (gradient_follows: an eager forward on a graph
// that requires one, a replay whose VJP reads the slot), and expm's VJP, L_exp(X^T, G) = L_exp(X, G^T)^T, runs
// expm_frechet on the input's node, whose kernel then does the E half only: value and gradient cost about three
// forwards, where a forward and a full Frechet pass cost four and a half. expm_frechet's own VJP
// (second derivatives) works on a new 2n x 2n matrix and computes its own.
struct ExpmPade : KeptFactor {
  int s = 0;  ///< squarings
  int m = 0;  ///< Pade degree: 3, 5, 7, 9 or 13
  MatD A;  ///< 2^-s X
  std::vector<MatD> P;  ///< m < 13: I, A^2, A^4, ...; m = 13: A^2, A^4, A^6
  MatD odd;  ///< U = A odd: m < 13, sum_k b_2k+1 A^2k; m = 13, W
  MatD W1, Z1;  ///< m = 13: the parts of W and V that multiply A^6
  Eigen::PartialPivLU<MatD> lu;  ///< of V - U
  std::vector<MatD> R;  ///< R[0] = r_m(A), R[k+1] = R[k]^2: R[s] = e^X
};

const double kEll[] = {0,       2.11e-8, 3.56e-4, 1.08e-2, 6.49e-2, 2.00e-1, 4.37e-1,
                       7.83e-1, 1.23e0,  1.78e0,  2.42e0,  3.13e0,  3.90e0,  4.74e0};
const double kB3[] = {120., 60., 12., 1.};
const double kB5[] = {30240., 15120., 3360., 420., 30., 1.};
const double kB7[] = {17297280., 8648640., 1995840., 277200., 25200., 1512., 56., 1.};
const double kB9[] = {17643225600., 8821612800., 2075673600., 302702400., 30270240., 2162160., 110880., 3960., 90., 1.};
const double kB13[] = {64764752532480000.,
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
const double* pade_coefficients(int m) { return m == 3 ? kB3 : m == 5 ? kB5 : m == 7 ? kB7 : m == 9 ? kB9 : kB13; }

// a b + c d, without temporaries
MatD prod2(const MatD& a, const MatD& b, const MatD& c, const MatD& d) {
  MatD r;
  r.noalias() = a * b;
  r.noalias() += c * d;
  return r;
}

// The scaling and squaring of e^X (finite X), everything kept for a Frechet derivative.
std::shared_ptr<ExpmPade> expm_pade(const MatD& X) {
  auto p = std::make_shared<ExpmPade>();
  const Eigen::Index n = X.rows();
  const double norm1 = X.cwiseAbs().colwise().sum().maxCoeff();
  p->m = 13;
  for (int m : {3, 5, 7, 9})
    if (norm1 <= kEll[m]) {
      p->m = m;
      break;
    }
  const double* b = pade_coefficients(p->m);
  MatD U, V;
  if (p->m < 13) {
    p->A = X;
    p->P = {MatD::Identity(n, n), X * X};
    for (int k = 2; 2 * k < p->m; ++k) p->P.push_back(p->P[std::size_t(k - 1)] * p->P[1]);
    p->odd = MatD::Zero(n, n);
    V = MatD::Zero(n, n);
    for (int k = 0; 2 * k <= p->m; ++k) {
      if (2 * k + 1 <= p->m) p->odd += b[2 * k + 1] * p->P[std::size_t(k)];
      V += b[2 * k] * p->P[std::size_t(k)];
    }
    U.noalias() = p->A * p->odd;
  } else {
    p->s = std::max(0, int(std::ceil(std::log2(norm1 / kEll[13]))));
    p->A = std::ldexp(1.0, -p->s) * X;
    const MatD& A = p->A;
    MatD B2 = A * A;
    MatD B4 = B2 * B2;
    MatD B6 = B2 * B4;
    p->W1 = b[13] * B6 + b[11] * B4 + b[9] * B2;
    p->Z1 = b[12] * B6 + b[10] * B4 + b[8] * B2;
    p->odd = b[7] * B6 + b[5] * B4 + b[3] * B2;
    p->odd.diagonal().array() += b[1];
    p->odd.noalias() += B6 * p->W1;
    V = b[6] * B6 + b[4] * B4 + b[2] * B2;
    V.diagonal().array() += b[0];
    V.noalias() += B6 * p->Z1;
    U.noalias() = A * p->odd;
    p->P.push_back(std::move(B2));
    p->P.push_back(std::move(B4));
    p->P.push_back(std::move(B6));
  }
  p->lu.compute(V - U);
  p->R.reserve(std::size_t(p->s) + 1);
  p->R.push_back(p->lu.solve(U + V));
  for (int k = 0; k < p->s; ++k) p->R.push_back(p->R.back() * p->R.back());
  return p;
}

// L_exp(X, E0) from X's Pade data: the derivative of each step of expm_pade in direction E0.
void expm_frechet_from(const ExpmPade& p, const MatD& E0, MatD& L) {
  const Eigen::Index n = E0.rows();
  const double* b = pade_coefficients(p.m);
  const MatD& A = p.A;
  const MatD E = std::ldexp(1.0, -p.s) * E0;
  MatD Lu, Lv;
  const MatD M2 = prod2(A, E, E, A);
  if (p.m < 13) {
    // M_2k = d(A^2k) = A^2k-2 M_2 + M_2k-2 A^2
    std::vector<MatD> M{MatD(), M2};
    for (int k = 2; 2 * k < p.m; ++k) M.push_back(prod2(p.P[std::size_t(k - 1)], M2, M[std::size_t(k - 1)], p.P[1]));
    MatD Lodd = MatD::Zero(n, n);
    Lv = MatD::Zero(n, n);
    for (int k = 1; 2 * k <= p.m; ++k) {
      if (2 * k + 1 <= p.m) Lodd += b[2 * k + 1] * M[std::size_t(k)];
      Lv += b[2 * k] * M[std::size_t(k)];
    }
    Lu = prod2(A, Lodd, E, p.odd);
  } else {
    const MatD &B2 = p.P[0], &B4 = p.P[1], &B6 = p.P[2];
    const MatD M4 = prod2(B2, M2, M2, B2);
    const MatD M6 = prod2(B4, M2, M4, B2);
    MatD Lw = b[7] * M6 + b[5] * M4 + b[3] * M2;
    Lw.noalias() += B6 * (b[13] * M6 + b[11] * M4 + b[9] * M2);
    Lw.noalias() += M6 * p.W1;
    Lu = prod2(A, Lw, E, p.odd);
    Lv = b[6] * M6 + b[4] * M4 + b[2] * M2;
    Lv.noalias() += B6 * (b[12] * M6 + b[10] * M4 + b[8] * M2);
    Lv.noalias() += M6 * p.Z1;
  }
  MatD rhs = Lu + Lv;
  rhs.noalias() += (Lu - Lv) * p.R[0];
  L = p.lu.solve(rhs);
  for (int k = 0; k < p.s; ++k) L = prod2(p.R[std::size_t(k)], L, L, p.R[std::size_t(k)]);
}

template <class T> void fwd_expm(const KernelArgs& k) {
  const Shape& s = k.in[0].shape();
  if (s.rows == 0) return;
  MatD A = widened<T>(k.in[0]);
  check_finite("expm", A, s);
  auto p = expm_pade(A);
  count_decomposition();
  k.out.mat<T>() = p->R.back().cast<T>();
  if (gradient_follows(k)) keep_in_slot(k, 0, p);  // Note [expm's Pade data]
}
// A symmetric A (exactly, as a covariance is) is a normal matrix: f(A) = V f(w) V^T from its
// symmetric eigendecomposition, exact and several times cheaper than a Schur form; eigenvalues
// within 4 n eps max|w| of 0 are 0 to working precision (a rank-deficient covariance's sqrtm).
// Returns false (nothing written) when A is not symmetric. With `keep`, A's eigenvalues and
// eigenvectors go there too.
struct LogmSchur;
bool symmetric_function(const char* op, const MatD& A, const Shape& s, bool is_log, MatD& out,
                        LogmSchur* keep = nullptr);
// Note [logm's Frechet derivative]
// L_log(X, E) by the inverse scaling and squaring algorithm with its Frechet derivative (Al-Mohy,
// Higham and Relton 2013, "Computing the Frechet derivative of the matrix logarithm and
// estimating the condition number", algorithm 5.1; the choice of s and m is Eigen's for the
// logarithm itself): in the complex Schur basis X = U T U^*, F_0 = U^* E U; T_k = T_k-1^(1/2),
// and F_k solving T_k F_k + F_k T_k = F_k-1 (the square root's derivative), until T_s is near I;
// then log T = 2^s r_m(T_s - I) with the Pade approximant in partial fractions r_m(Y) =
// sum_j w_j Y (I + x_j Y)^-1 (Gauss-Legendre nodes x_j and weights w_j on [0, 1]), whose
// derivative in direction F_s is sum_j w_j (I + x_j Y)^-1 F_s (I + x_j Y)^-1; L = U 2^s (that) U^*.
// No divided differences: right at repeated eigenvalues and at defective X. A symmetric X (the
// forward's eigendecomposition path) uses Daleckii and Krein's formula instead: L = V (D o
// (V^T E V)) V^T with D_ij = (log w_i - log w_j) / (w_i - w_j) = atanh(z) / z * 2 / (w_i + w_j),
// z = (w_i - w_j) / (w_i + w_j) (exact, and 1 / w_i at z = 0). logm's forward keeps its Schur form
// or eigendecomposition (LogmSchur) in the input's factor slot when a gradient may follow, and
// logm's VJP, L_log(X^T, G) = L_log(X, G^T)^T, runs logm_frechet on the input's node: the
// gradient costs about one forward more, where the block identity f([[X, E], [0, X]]) cost eight
// (a 2n x 2n Schur form and Parlett recurrence). The triangular square roots and Sylvester
// equations are blocked recursions on GEMM around Eigen's own unblocked kernels, whose row access
// of column-major storage makes them slow beyond n ~ 64.
struct LogmSchur : KeptFactor {
  bool symmetric = false;
  VecD w;  ///< symmetric X = V diag(w) V^T
  MatD V;
  Eigen::MatrixXcd T, U;  ///< otherwise X = U T U^*, T upper triangular
};
bool symmetric_function(const char* op, const MatD& A, const Shape& s, bool is_log, MatD& out, LogmSchur* keep) {
  if (A != A.transpose()) return false;
  VecD w;
  MatD V;
  sym_eig(op, A, s, true, w, V);
  if (keep) {
    keep->symmetric = true;
    keep->w = w;
    keep->V = V;
  }
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
// With `keep`, the Schur form goes there too (Note [logm's Frechet derivative]).
bool logm_schur(const MatD& A, const Shape& s, MatD& L, LogmSchur* keep) {
  using MatC = Eigen::MatrixXcd;
  using Index = Eigen::Index;
  MatC T = A.cast<std::complex<double>>(), U;
  const int info = lapack::zgees(T, U);
  if (info == lapack::kUnavailable) return false;
  if (info != 0) throw LinAlgError("logm: the Schur form of a matrix of shape " + s.str() + " did not converge");
  T.triangularView<Eigen::StrictlyLower>().setZero();
  check_principal_values("logm", T.diagonal(), A, s, false);
  if (keep) {
    keep->T = T;
    keep->U = U;
  }
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
  // Note [logm's Frechet derivative]: what the gradient will reuse, when one may follow
  auto keep = gradient_follows(k) ? std::make_shared<LogmSchur>() : nullptr;
  MatD L;
  if (symmetric_function("logm", A, s, true, L, keep.get())) {
    k.out.mat<T>() = L.cast<T>();
    count_decomposition();
    if (keep) keep_in_slot(k, 0, keep);
    return;
  }
  if (!logm_schur(A, s, L, keep.get())) {
    check_principal("logm", A, s, false);
    L = A.log();
    keep = nullptr;  // no Schur form to keep: logm_frechet computes its own
  }
  if (!L.allFinite()) throw LinAlgError("logm: the logarithm of a matrix of shape " + s.str() + " is not finite");
  k.out.mat<T>() = L.cast<T>();
  count_decomposition();
  if (keep) keep_in_slot(k, 0, keep);
}

// ---- logm_frechet(X, E) = L_log(X, E) (Note [logm's Frechet derivative]) ----
using MatC = Eigen::MatrixXcd;
constexpr Eigen::Index kUnblocked = 64;  // Eigen's unblocked kernels below this size

// A X + X B = C for upper triangular A (m x m) and B (n x n) with no eigenvalue of A equal to
// one of -B: halves of the larger side in turn, the coupling term a GEMM.
MatC sylvester_upper(const MatC& A, const MatC& B, const MatC& C) {
  const Eigen::Index m = A.rows(), n = B.rows();
  if (m <= kUnblocked && n <= kUnblocked) return Eigen::internal::matrix_function_solve_triangular_sylvester(A, B, C);
  MatC X(m, n);
  if (m >= n) {  // A = [[A11, A12], [0, A22]]: A22 X2 + X2 B = C2, A11 X1 + X1 B = C1 - A12 X2
    const Eigen::Index h = m / 2;
    X.bottomRows(m - h) = sylvester_upper(A.bottomRightCorner(m - h, m - h), B, C.bottomRows(m - h));
    MatC C1 = C.topRows(h);
    C1.noalias() -= A.topRightCorner(h, m - h) * X.bottomRows(m - h);
    X.topRows(h) = sylvester_upper(A.topLeftCorner(h, h), B, C1);
  } else {  // B = [[B11, B12], [0, B22]]: A X1 + X1 B11 = C1, A X2 + X2 B22 = C2 - X1 B12
    const Eigen::Index h = n / 2;
    X.leftCols(h) = sylvester_upper(A, B.topLeftCorner(h, h), C.leftCols(h));
    MatC C2 = C.rightCols(n - h);
    C2.noalias() -= X.leftCols(h) * B.topRightCorner(h, n - h);
    X.rightCols(n - h) = sylvester_upper(A, B.bottomRightCorner(n - h, n - h), C2);
  }
  return X;
}
// The principal square root of the upper triangular T: R11 = T11^(1/2), R22 = T22^(1/2), and
// R11 R12 + R12 R22 = T12.
MatC sqrt_upper(const MatC& T) {
  const Eigen::Index n = T.rows();
  MatC R = MatC::Zero(n, n);
  if (n <= kUnblocked) {
    MatC r;
    Eigen::matrix_sqrt_triangular(T, r);  // writes the upper triangle only
    R.triangularView<Eigen::Upper>() = r;
    return R;
  }
  const Eigen::Index h = n / 2;
  R.topLeftCorner(h, h) = sqrt_upper(T.topLeftCorner(h, h));
  R.bottomRightCorner(n - h, n - h) = sqrt_upper(T.bottomRightCorner(n - h, n - h));
  R.topRightCorner(h, n - h) =
      sylvester_upper(R.topLeftCorner(h, h), R.bottomRightCorner(n - h, n - h), T.topRightCorner(h, n - h));
  return R;
}
// Gauss-Legendre nodes and weights on [0, 1] (Golub and Welsch: the eigenvalues of the Jacobi matrix)
void gauss_legendre(int m, VecD& x, VecD& w) {
  MatD J = MatD::Zero(m, m);
  for (int k = 1; k < m; ++k) J(k, k - 1) = J(k - 1, k) = double(k) / std::sqrt(4.0 * k * k - 1.0);
  Eigen::SelfAdjointEigenSolver<MatD> es(J);
  x = (es.eigenvalues().array() + 1.0) / 2.0;
  w = es.eigenvectors().row(0).transpose().array().square();  // 2 v0^2 on [-1, 1], halved
}
// X's Schur form or eigendecomposition, checked for the principal branch as logm's forward does.
std::shared_ptr<LogmSchur> logm_schur_of(const MatD& X, const Shape& s) {
  auto f = std::make_shared<LogmSchur>();
  MatD unused;
  if (symmetric_function("logm", X, s, true, unused, f.get())) return f;
  f->T = X.cast<std::complex<double>>();
  const int info = lapack::zgees(f->T, f->U);
  if (info == lapack::kUnavailable) {
    Eigen::ComplexSchur<MatC> cs(X.cast<std::complex<double>>());
    if (cs.info() != Eigen::Success)
      throw LinAlgError("logm: the Schur form of a matrix of shape " + s.str() + " did not converge");
    f->T = cs.matrixT();
    f->U = cs.matrixU();
  } else if (info != 0) {
    throw LinAlgError("logm: the Schur form of a matrix of shape " + s.str() + " did not converge");
  }
  f->T.triangularView<Eigen::StrictlyLower>().setZero();
  check_principal_values("logm", f->T.diagonal(), X, s, false);
  return f;
}
void logm_frechet_from(const LogmSchur& f, const MatD& E, MatD& L) {
  if (f.symmetric) {
    const Eigen::Index n = f.w.size();
    MatD D(n, n);
    for (Eigen::Index j = 0; j < n; ++j)
      for (Eigen::Index i = 0; i < n; ++i) {
        // near each other (|z| < 1/3: a / b within a factor of 2) the atanh form, exact as
        // a -> b; apart, the difference quotient, whose logarithms then do not cancel
        const double a = f.w(i), b = f.w(j), z = (a - b) / (a + b);
        D(i, j) = std::abs(z) < 1.0 / 3.0 ? (z == 0.0 ? 1.0 : std::atanh(z) / z) * 2.0 / (a + b)
                                          : (std::log(a) - std::log(b)) / (a - b);
      }
    MatD M = f.V.transpose() * E * f.V;
    L = f.V * D.cwiseProduct(M) * f.V.transpose();
    return;
  }
  const Eigen::Index n = f.T.rows();
  const MatC I = MatC::Identity(n, n);
  MatC Tk = f.T, F = f.U.adjoint() * E.cast<std::complex<double>>() * f.U;
  // Eigen's matrix_log_compute_big's choice: square roots until ||T_s - I||_1 admits a Pade
  // degree <= 7, and one more when it lowers the degree by two or more
  const double max_norm = 2.6429608311114350e-1;
  int s = 0, extra = 0, m = 0;
  for (; s < 64; ++s) {
    const double norm = (Tk - I).cwiseAbs().colwise().sum().maxCoeff();
    if (norm < max_norm) {
      m = Eigen::internal::matrix_log_get_pade_degree(norm);
      const int m2 = Eigen::internal::matrix_log_get_pade_degree(norm / 2.0);
      if (m - m2 <= 1 || extra == 1) break;
      ++extra;
    }
    Tk = sqrt_upper(Tk);
    F = sylvester_upper(Tk, Tk, F);
  }
  if (s == 64)  // 64 square roots bring any admissible T within reach: not finite, or not principal
    throw LinAlgError("logm: the inverse scaling and squaring of a matrix of shape " + Shape::matrix(n, n).str() +
                      " did not converge");
  VecD x, w;
  gauss_legendre(m, x, w);
  const MatC Y = Tk - I;
  MatC Lt = MatC::Zero(n, n);
  for (int j = 0; j < m; ++j) {
    const MatC Z = I + x(j) * Y;
    MatC W = Z.triangularView<Eigen::Upper>().solve(F);
    Z.triangularView<Eigen::Upper>().solveInPlace<Eigen::OnTheRight>(W);
    Lt += w(j) * W;
  }
  Lt *= std::ldexp(1.0, s);
  L = (f.U * Lt * f.U.adjoint()).real();
}
Shape logm_frechet_shape(const Attr&, const Shape* in, int) {
  if (in[0].ndim != 2 || in[0].rows != in[0].cols || in[1] != in[0])
    fail_shapes("logm_frechet", "are not two square matrices of one shape", in, 2);
  return in[0];
}
template <class T> void fwd_logm_frechet(const KernelArgs& k) {
  const Shape& s = k.in[0].shape();
  if (s.rows == 0) return;
  std::shared_ptr<const LogmSchur> f = kept_factor<LogmSchur>(k, 0);
  if (!f) {
    MatD X = widened<T>(k.in[0]);
    if (!X.allFinite()) {
      k.out.mat<T>().setConstant(std::numeric_limits<T>::quiet_NaN());
      return;
    }
    auto g = logm_schur_of(X, s);
    count_decomposition();
    keep_in_slot(k, 0, g);
    f = std::move(g);
  }
  MatD L;
  logm_frechet_from(*f, widened<T>(k.in[1]), L);
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
// From X's Pade data (Note [expm's Pade data]): those expm kept, or computed here and kept for
// the next direction (a Jacobian's batch of seeds). About twice the GEMMs of e^X when kept, three
// times when not (the block identity below costs eight).
Shape expm_frechet_shape(const Attr&, const Shape* in, int) {
  if (in[0].ndim != 2 || in[0].rows != in[0].cols || in[1] != in[0])
    fail_shapes("expm_frechet", "are not two square matrices of one shape", in, 2);
  return in[0];
}
template <class T> void fwd_expm_frechet(const KernelArgs& k) {
  const Shape& s = k.in[0].shape();
  if (s.rows == 0) return;
  std::shared_ptr<const ExpmPade> p = kept_factor<ExpmPade>(k, 0);
  if (!p) {
    MatD A = widened<T>(k.in[0]);
    if (!A.allFinite()) {
      k.out.mat<T>().setConstant(std::numeric_limits<T>::quiet_NaN());
      return;
    }
    auto q = expm_pade(A);
    count_decomposition();
    keep_in_slot(k, 0, q);
    p = std::move(q);
  }
  MatD L;
  expm_frechet_from(*p, widened<T>(k.in[1]), L);
  k.out.mat<T>() = L.cast<T>();
}

// For f with a real power series, f(X^T) = f(X)^T, so the adjoint of L_f(X, .) is L_f(X^T, .) and
// dX = L_f(X^T, G) = L_f(X, G^T)^T: computed on X's node, where the forward kept what the
// derivative reuses.
// dX = L_exp(X^T, G) = L_exp(X, G^T)^T, on X's node: its Pade data (Note [expm's Pade data])
MG_VJP_FN(vjp_expm) { c.dx[0] = a.transpose(a.on_node(k_expm_frechet, *c.node.parent(0), {a.transpose(c.g)})); }
// L = L_f(X, E) is the top-right block of f(B), B = [[X, E], [0, X]] (Higham, Functions of
// Matrices, thm. 3.6; frechet: expm_frechet or logm_frechet): with cotangent H, dB = L_f(B^T, H
// at B's top-right block); dX = the two diagonal blocks of dB, dE its top right.
template <class A>
void frechet_vjp(A& a, VjpCtx<typename A::T>& c, OpId frechet) {
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
  auto dB = a.op(frechet, {Bt, place(c.g, 0, n, s2)});
  if (c.needs[0]) c.dx[0] = a.add(take(dB, 0, 0), take(dB, n, n));
  if (c.needs[1]) c.dx[1] = take(dB, 0, n);
}
MG_VJP_FN(vjp_expm_frechet) { frechet_vjp(a, c, k_expm_frechet); }
MG_VJP_FN(vjp_logm_frechet) { frechet_vjp(a, c, k_logm_frechet); }
// dX = L_log(X^T, G) = L_log(X, G^T)^T, on X's node: its Schur form (Note [logm's Frechet derivative])
MG_VJP_FN(vjp_logm) { c.dx[0] = a.transpose(a.on_node(k_logm_frechet, *c.node.parent(0), {a.transpose(c.g)})); }
// Y = sqrtm(X): dY Y + Y dY = dX, so dX solves Y^T Z + Z Y^T = G
MG_VJP_FN(vjp_sqrtm) { c.dx[0] = a.op(k_sylvester, {c.out, c.g}); }

}  // namespace

namespace matfun_detail {

void register_primary_ops() {
  define(&k_expm, "expm", 1, expm_shape, MG_FWD(fwd_expm)).shares_factor(FactorKind::expm_pade).vjp(MG_VJP(vjp_expm));
  define(&k_logm, "logm", 1, logm_shape, MG_FWD(fwd_logm)).shares_factor(FactorKind::logm_schur).vjp(MG_VJP(vjp_logm));
  define(&k_sqrtm, "sqrtm", 1, sqrtm_shape, MG_FWD(fwd_sqrtm)).vjp(MG_VJP(vjp_sqrtm));
  define(&k_expm_frechet, "expm_frechet", 2, expm_frechet_shape, MG_FWD(fwd_expm_frechet))
      .shares_factor(FactorKind::expm_pade)
      .vjp(MG_VJP(vjp_expm_frechet));
  define(&k_logm_frechet, "logm_frechet", 2, logm_frechet_shape, MG_FWD(fwd_logm_frechet))
      .shares_factor(FactorKind::logm_schur)
      .vjp(MG_VJP(vjp_logm_frechet));
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
        "d/dA: `L_log(A^T, G)`, the Frechet derivative at `A^T` in direction `G` (Al-Mohy, Higham and Relton's "
        "inverse scaling and squaring algorithm in the Schur basis; Daleckii-Krein divided differences for a "
        "symmetric `A`); exact at repeated eigenvalues and defective `A`.");
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
