// SPDX-License-Identifier: MIT
// The C++ API's variables and transforms on Eigen matrices (matgrad/matgrad.hpp includes it,
// with the ops and the operators).
#pragma once

#include <matgrad/autodiff.hpp>
#include <matgrad/node.hpp>
#include <matgrad/ops.hpp>
#include <matgrad/value.hpp>

#include <type_traits>
#include <utility>
#include <vector>

namespace matgrad {

/// A handle on a graph node (shared, reference counted).
using Var = NodeRef;

/// A leaf holding a copy of m (2-D), optionally requiring a gradient.
template <class Derived>
Var variable(const Eigen::MatrixBase<Derived>& m, bool requires_grad = true) {
  using T = typename Derived::Scalar;
  static_assert(std::is_same<T, double>::value || std::is_same<T, float>::value, "float or double");
  Var v = make_node(kLeaf, Shape::matrix(m.rows(), m.cols()), dtype_of<T>::value);
  v->mat<T>() = m;
  v->requires_grad = requires_grad;
  return v;
}
/// A 0-D leaf.
inline Var scalar(double x, bool requires_grad = true) {
  Var v = full(Shape::scalar(), DType::f64, x);
  v->requires_grad = requires_grad;
  return v;
}
/// A constant (no gradient).
template <class Derived>
Var constant(const Eigen::MatrixBase<Derived>& m) {
  return variable(m, false);
}

/// The value of v as a float64 Eigen matrix (rows x cols of its storage).
Eigen::MatrixXd value(const Var& v);
/// A value as a float64 Eigen matrix (rows x cols of its storage).
Eigen::MatrixXd value(const Val& v);

/// Gradients of the single-element f with respect to each of xs, as float64 matrices.
std::vector<Eigen::MatrixXd> grad(const Var& f, const std::vector<Var>& xs);

/// The value of the single-element f (shape () or (1, 1): a ShapeError otherwise) and its
/// gradients with respect to each of xs, from one reverse sweep.
std::pair<double, std::vector<Eigen::MatrixXd>> value_and_grad(const Var& f, const std::vector<Var>& xs);

/// Reverse mode with a cotangent u of f's shape: d<u, f>/d xs[k] = J_k^T u for each k (a
/// ShapeError when u's shape is not f's).
std::vector<Eigen::MatrixXd> vjp(const Var& f, const std::vector<Var>& xs, const Var& cotangent);

/// Jacobians d f / d xs[k] as (f.size, xs[k].size) float64 matrices (C-order flattening).
std::vector<Eigen::MatrixXd> jacobian(const Var& f, const std::vector<Var>& xs);

/// Hessian blocks d^2 f / d xs[i] d xs[j] of the single-element f.
std::vector<std::vector<Eigen::MatrixXd>> hessian(const Var& f, const std::vector<Var>& xs);

/// Forward mode: sum_k d f / d xs[k] . tangents[k] (of f's storage shape).
Eigen::MatrixXd jvp(const Var& f, const std::vector<Var>& xs, const std::vector<Var>& tangents);

/// While it lives, ops on this thread record no edges (their results need no gradient), as
/// Python's `with mg.no_grad():`; the previous mode comes back when it is destroyed.
class NoGrad : public GradMode {
 public:
  NoGrad() : GradMode(false) {}
};

/// The threads matgrad's kernels use (GEMM and elementwise functions over long arrays; small ops
/// always run on the calling thread): n >= 1 (ValueError otherwise; more than the cores is
/// allowed). Default: OMP_NUM_THREADS when set, else the cores this process may run on. Results
/// are bitwise the same from run to run for a given count, and equal to rounding across counts.
void set_num_threads(int n);
/// The count set_num_threads set (or the default).
int get_num_threads();

/// The vectorised kernels sin, cos, tan, tanh, exp, log, log1p, expm1 and sqrt run on: "libmvec avx512", "libmvec
/// avx2", "libmvec sse4", or "none" (Eigen and libm) when the build or the CPU has none.
const char* vector_math();

/// Runs them on the kernels for `isa`: "avx512", "avx2", "sse", "none" or "best" (the default:
/// what the CPU offers). False, and nothing changed, when there are no such kernels here. For
/// tests and benchmarks; not while other threads compute.
bool set_vector_math(const char* isa);

/// The LAPACK the matrix functions' decompositions call (eigh, eigvalsh and the symmetric path of
/// logm and sqrtm: dsyevd; svd, svdvals, pinv: dgesdd; sqrtm: dgees, its gradient dtrsyl; logm:
/// zgees): "<library> (<symbols>)" when one is loaded in the process (under Python, the OpenBLAS NumPy bundles), else
/// "eigen" (Eigen's solvers). Looked for at the first decomposition; the environment variable MATGRAD_LAPACK=off keeps
/// Eigen's solvers, MATGRAD_LAPACK=<path of a shared library> loads one.
const char* linalg_backend();

/// false: Eigen's solvers from now on; true: the LAPACK again, when one was found. Returns
/// whether a LAPACK is in use. For tests and benchmarks; not while other threads compute.
bool set_linalg_backend(bool use_lapack);

}  // namespace matgrad
