// SPDX-License-Identifier: MIT
// The C++ API of matgrad: variables, operators and gradients on Eigen matrices.
//
//   matgrad::Var x = matgrad::variable(Eigen::MatrixXd::Constant(1, 1, 0.7));
//   matgrad::Var f = sqrt(x * x + exp(x * x)) + cos(x * x + exp(x * x));
//   auto g = matgrad::grad(f, {x});   // std::vector<Eigen::MatrixXd>
#pragma once

#include <matgrad/autodiff.hpp>
#include <matgrad/error.hpp>
#include <matgrad/node.hpp>
#include <matgrad/ops.hpp>
#include <matgrad/optim.hpp>
#include <matgrad/value.hpp>

#include <vector>

namespace matgrad {

/// A handle on a graph node (shared, reference counted).
using Var = NodeRef;

/// A leaf holding a copy of m (2-D), optionally requiring a gradient.
template <class Derived>
Var variable(const Eigen::MatrixBase<Derived>& m, bool requires_grad = true) {
  using T = typename Derived::Scalar;
  static_assert(std::is_same<T, double>::value || std::is_same<T, float>::value, "float or double");
  Var v = make_node(OpId::leaf, Shape::matrix(m.rows(), m.cols()), dtype_of<T>::value);
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

/// Gradients of the single-element f with respect to each of xs, as float64 matrices.
std::vector<Eigen::MatrixXd> grad(const Var& f, const std::vector<Var>& xs);

/// Jacobians d f / d xs[k] as (f.size, xs[k].size) float64 matrices (C-order flattening).
std::vector<Eigen::MatrixXd> jacobian(const Var& f, const std::vector<Var>& xs);

/// Hessian blocks d^2 f / d xs[i] d xs[j] of the single-element f.
std::vector<std::vector<Eigen::MatrixXd>> hessian(const Var& f, const std::vector<Var>& xs);

/// Forward mode: sum_k d f / d xs[k] . tangents[k] (of f's storage shape).
Eigen::MatrixXd jvp(const Var& f, const std::vector<Var>& xs, const std::vector<Var>& tangents);

// Operators and functions on Vars (found by argument-dependent lookup).
inline Var operator+(const Var& x, const Var& y) { return binary(OpId::add, x, y); }
inline Var operator-(const Var& x, const Var& y) { return binary(OpId::sub, x, y); }
inline Var operator*(const Var& x, const Var& y) { return binary(OpId::mul, x, y); }
inline Var operator/(const Var& x, const Var& y) { return binary(OpId::div, x, y); }
inline Var operator-(const Var& x) { return unary(OpId::neg, x); }
inline Var operator+(const Var& x, double s) { return scalar_op(OpId::add_s, x, s); }
inline Var operator+(double s, const Var& x) { return scalar_op(OpId::add_s, x, s); }
inline Var operator-(const Var& x, double s) { return scalar_op(OpId::add_s, x, -s); }
inline Var operator-(double s, const Var& x) { return scalar_op(OpId::rsub_s, x, s); }
inline Var operator*(const Var& x, double s) { return scalar_op(OpId::mul_s, x, s); }
inline Var operator*(double s, const Var& x) { return scalar_op(OpId::mul_s, x, s); }
inline Var operator/(const Var& x, double s) { return scalar_op(OpId::div_s, x, s); }
inline Var operator/(double s, const Var& x) { return scalar_op(OpId::rdiv_s, x, s); }

inline Var neg(const Var& x) { return unary(OpId::neg, x); }
inline Var exp(const Var& x) { return unary(OpId::exp, x); }
inline Var log(const Var& x) { return unary(OpId::log, x); }
inline Var sin(const Var& x) { return unary(OpId::sin, x); }
inline Var cos(const Var& x) { return unary(OpId::cos, x); }
inline Var tan(const Var& x) { return unary(OpId::tan, x); }
inline Var tanh(const Var& x) { return unary(OpId::tanh, x); }
inline Var sqrt(const Var& x) { return unary(OpId::sqrt, x); }
inline Var abs(const Var& x) { return unary(OpId::abs, x); }
inline Var square(const Var& x) { return unary(OpId::square, x); }
inline Var sigmoid(const Var& x) { return unary(OpId::sigmoid, x); }
inline Var relu(const Var& x) { return unary(OpId::relu, x); }
inline Var softplus(const Var& x) { return unary(OpId::softplus, x); }
inline Var pow(const Var& x, const Var& y) { return binary(OpId::pow, x, y); }
inline Var pow(const Var& x, double s) { return scalar_op(OpId::pow_s, x, s); }
inline Var maximum(const Var& x, const Var& y) { return binary(OpId::maximum, x, y); }
inline Var minimum(const Var& x, const Var& y) { return binary(OpId::minimum, x, y); }

}  // namespace matgrad
