// SPDX-License-Identifier: MIT
// What the two matrix-function files share. matfun.cpp holds the spectral ops (eigh, eigvalsh,
// svd, svdvals, pinv and their VJP helpers) and the symmetric eigensolver; matfun_primary.cpp the
// primary matrix functions (expm, logm, sqrtm and theirs). Each file instantiates its own Eigen
// solvers and no other's (logm and sqrtm reach the eigensolvers through sym_eig and
// check_principal), so the two, the heaviest files of the build, compile in parallel and in
// three quarters of the time the single file took (75 s and 45 s against 158 s, gcc 12).
#pragma once

#include "registry.hpp"

#include <string>

namespace matgrad::matfun_detail {

using MatD = Eigen::MatrixXd;
using VecD = Eigen::VectorXd;

// The decompositions run in float64: float32 input is widened, the result rounded.
template <class T>
MatD widened(const Val& x) {
  return x.mat<T>().template cast<double>();
}

void check_square_2d(const char* op, const Shape& s);
void check_2d(const char* op, const Shape& s);
// numpy.linalg.LinAlgError naming op when x has a NaN or infinite entry (s: the op's input shape)
void check_finite(const char* op, const MatD& x, const Shape& s);
// v in %.6g, for messages
std::string num(double v);
// The eigenvalues of the symmetric S, ascending, and with vectors its eigenvectors (columns of V);
// numpy.linalg.LinAlgError naming op and the shape s when the solver does not converge.
void sym_eig(const char* op, const MatD& S, const Shape& s, bool vectors, VecD& w, MatD& V);
// numpy.linalg.LinAlgError naming op when the general A has a real eigenvalue < 0 (or, unless
// zero_ok, = 0): the principal logarithm or square root is then complex or undefined.
void check_principal(const char* op, const MatD& A, const Shape& s, bool zero_ok);
// The same check on A's eigenvalues, known
void check_principal_values(const char* op, const Eigen::VectorXcd& values, const MatD& A, const Shape& s,
                            bool zero_ok);

// A forward whose result will need a gradient, whose VJP may then reuse what the forward keeps in
// the input's factor slot: on a graph, an input requiring one with grad mode on; in a replay, a
// slot that another instruction reads too (FactorSlot::reused).
bool gradient_follows(const KernelArgs& k);

// Count one decomposition in spectral_decompositions() (expm's Pade data count there too).
void count_decomposition();

// matfun_primary.cpp's ops and entry points, registered by register_matfun() in its order
void register_primary_ops();
void register_primary_entries();

}  // namespace matgrad::matfun_detail
