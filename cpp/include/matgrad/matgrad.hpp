// SPDX-License-Identifier: MIT
// The C++ API of matgrad: variables, operators and gradients on Eigen matrices.
//
//   matgrad::Var x = matgrad::variable(Eigen::MatrixXd::Constant(1, 1, 0.7));
//   matgrad::Var f = sqrt(x * x + exp(x * x)) + cos(x * x + exp(x * x));
//   auto g = matgrad::grad(f, {x});   // std::vector<Eigen::MatrixXd>
#pragma once

#include <matgrad/anomaly.hpp>
#include <matgrad/api.hpp>
#include <matgrad/api_ops.hpp>
#include <matgrad/autodiff.hpp>
#include <matgrad/compiled.hpp>
#include <matgrad/entry.hpp>
#include <matgrad/error.hpp>
#include <matgrad/interrupt.hpp>
#include <matgrad/node.hpp>
#include <matgrad/ops.hpp>
#include <matgrad/optim.hpp>
#include <matgrad/program.hpp>
#include <matgrad/tensor.hpp>
#include <matgrad/value.hpp>

namespace matgrad {

// Operators on Vars (found by argument-dependent lookup), as Python's: a number is weak (it
// takes the Var's dtype). The named ops (exp, matmul, sum, det, ...) are in matgrad/api_ops.hpp.
inline Var operator+(const Var& x, const Var& y) { return add(x, y); }
inline Var operator-(const Var& x, const Var& y) { return sub(x, y); }
inline Var operator*(const Var& x, const Var& y) { return mul(x, y); }
inline Var operator/(const Var& x, const Var& y) { return div(x, y); }
inline Var operator-(const Var& x) { return neg(x); }
inline Var operator+(const Var& x, double s) { return add(x, s); }
inline Var operator+(double s, const Var& x) { return add(s, x); }
inline Var operator-(const Var& x, double s) { return sub(x, s); }
inline Var operator-(double s, const Var& x) { return sub(s, x); }
inline Var operator*(const Var& x, double s) { return mul(x, s); }
inline Var operator*(double s, const Var& x) { return mul(s, x); }
inline Var operator/(const Var& x, double s) { return div(x, s); }
inline Var operator/(double s, const Var& x) { return div(s, x); }

}  // namespace matgrad
