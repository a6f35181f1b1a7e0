// SPDX-License-Identifier: MIT
// LAPACK's blocked decompositions, from a LAPACK already loaded in the process (Note [LAPACK
// from the process] in lapack.cpp): under Python, the OpenBLAS that NumPy's wheels bundle. The
// matrix functions (ops/matfun.cpp, ops/matfun_primary.cpp) call these first and fall back to
// Eigen's solvers where available() is false.
#pragma once

#include <Eigen/Core>

namespace matgrad::lapack {

/// True when a LAPACK was found and is in use (not deselected by select(false)).
bool available();

/// What is in use: "<library path> (<symbol flavour>)", or "eigen" when no LAPACK is.
const char* backend();

/// select(false): Eigen's solvers from now on; select(true): the LAPACK again when one was
/// found. Returns available(). For tests and benchmarks: not safe while other threads run ops.
bool select(bool use_lapack);

// Each returns LAPACK's info (0: success; > 0: did not converge), or kUnavailable when no
// LAPACK is in use or the sizes are beyond it (the caller falls back to Eigen, its arguments
// untouched). Column-major Eigen matrices, float64.
constexpr int kUnavailable = -1000;

/// The eigenvalues of the symmetric A (its lower triangle is read), ascending, into w; with
/// vectors, the orthonormal eigenvectors overwrite A's columns (dsyevd). A is destroyed.
int syevd(Eigen::MatrixXd& A, Eigen::VectorXd& w, bool vectors);

/// The thin SVD A = U diag(s) Vt, s descending (dgesdd); without vectors, s only. A is destroyed.
int gesdd(Eigen::MatrixXd& A, Eigen::VectorXd& s, Eigen::MatrixXd& U, Eigen::MatrixXd& Vt, bool vectors);

/// The real Schur form A = Z T Z^T: T (quasi-upper-triangular, 2 x 2 blocks for complex pairs,
/// in LAPACK's standard form) overwrites A (dgees, no sorting).
int gees(Eigen::MatrixXd& A, Eigen::MatrixXd& Z);

/// The complex Schur form A = Z T Z^* (zgees, no sorting): T (upper triangular) overwrites A.
int zgees(Eigen::MatrixXcd& A, Eigen::MatrixXcd& Z);

/// The Sylvester equation A X + X B = scale C for upper quasi-triangular A (m x m) and B (n x n)
/// in LAPACK's Schur canonical form (dtrsyl): X overwrites C; scale <= 1 is set to avoid
/// overflow. A return of 1 means A and -B have (nearly) common eigenvalues (perturbed values
/// were used).
int trsyl(const Eigen::MatrixXd& A, const Eigen::MatrixXd& B, Eigen::MatrixXd& C, double& scale);

}  // namespace matgrad::lapack
