// SPDX-License-Identifier: MIT
// matgrad from C++: the lecture's scalar example, a matrix identity and one layer of its network,
// each gradient checked against its closed form (exit status 0 when all agree).
#include <matgrad/matgrad.hpp>

#include <Eigen/Dense>  // inverse() for the closed form

#include <cmath>
#include <cstdio>

namespace {
bool report(const char* what, double err, double tol) {
  std::printf("%-44s max error %.2e %s\n", what, err, err <= tol ? "ok" : "WRONG");
  return err <= tol;
}
}  // namespace

int main() {
  bool ok = true;

  // The scalar: f(x) = sqrt(x^2 + e^(x^2)) + cos(x^2 + e^(x^2)) at x = 0.7.
  {
    const double x0 = 0.7;
    matgrad::Var x = matgrad::scalar(x0);
    matgrad::Var f = sqrt(x * x + exp(x * x)) + cos(x * x + exp(x * x));
    const auto g = matgrad::grad(f, {x});
    const double c = x0 * x0 + std::exp(x0 * x0);
    const double want = 2 * x0 * (1 / (2 * std::sqrt(c)) - std::sin(c)) * (1 + std::exp(x0 * x0));
    std::printf("f(0.7) = %.17g, df/dx = %.17g\n", matgrad::value(f)(0, 0), g[0](0, 0));
    ok &= report("df/dx against 2x (1/(2 sqrt c) - sin c)(1 + e^(x^2))", std::abs(g[0](0, 0) - want),
                 1e-14 * std::abs(want));
  }

  // An identity: d/dX (log|det X| + tr X^-1) = X^-T - (X^-2)^T.
  {
    const Eigen::MatrixXd X0 = 4 * Eigen::MatrixXd::Identity(4, 4) + Eigen::MatrixXd::Random(4, 4);
    matgrad::Var X = matgrad::variable(X0);
    matgrad::Var g = logdet(X) + trace(inv(X));
    const Eigen::MatrixXd G = matgrad::grad(g, {X})[0];
    const Eigen::MatrixXd Xi = X0.inverse();
    const Eigen::MatrixXd want = Xi.transpose() - (Xi * Xi).transpose();
    ok &= report("d(log|det X| + tr X^-1)/dX against X^-T - X^-2T", (G - want).cwiseAbs().maxCoeff(), 1e-12);
  }

  // A layer of the network: L = ||Y - sigmoid(F A + b)||_F^2; dL/dA = F^T D, dL/db = 1^T D with
  // D = -2 (Y - S) * S (1 - S).
  {
    const Eigen::MatrixXd F0 = Eigen::MatrixXd::Random(8, 5), A0 = Eigen::MatrixXd::Random(5, 3),
                          b0 = Eigen::MatrixXd::Random(1, 3), Y0 = Eigen::MatrixXd::Random(8, 3);
    matgrad::Var F = matgrad::constant(F0), Y = matgrad::constant(Y0);
    matgrad::Var A = matgrad::variable(A0), b = matgrad::variable(b0);
    matgrad::Var S = sigmoid(matmul(F, A) + b);
    matgrad::Var L = sum(square(Y - S));
    const auto g = matgrad::grad(L, {A, b});
    const Eigen::MatrixXd Z = (F0 * A0).rowwise() + b0.row(0);
    const Eigen::ArrayXXd Sv = 1 / (1 + (-Z.array()).exp());
    const Eigen::MatrixXd D = (-2 * (Y0.array() - Sv) * Sv * (1 - Sv)).matrix();
    ok &= report("dL/dA against F^T D", (g[0] - F0.transpose() * D).cwiseAbs().maxCoeff(), 1e-12);
    ok &= report("dL/db against the column sums of D", (g[1] - D.colwise().sum()).cwiseAbs().maxCoeff(), 1e-12);
  }
  return ok ? 0 : 1;
}
