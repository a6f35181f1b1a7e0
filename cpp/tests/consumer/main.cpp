// SPDX-License-Identifier: MIT
// The lecture example through an installed matgrad: f and df/dx against the closed form.
#include <matgrad/matgrad.hpp>

#include <cmath>
#include <cstdio>

int main() {
  const double x0 = 0.7;
  matgrad::Var x = matgrad::scalar(x0);
  matgrad::Var f = sqrt(x * x + exp(x * x)) + cos(x * x + exp(x * x));
  const auto g = matgrad::grad(f, {x});
  const double c = x0 * x0 + std::exp(x0 * x0);
  const double want = 2 * x0 * (1 / (2 * std::sqrt(c)) - std::sin(c)) * (1 + std::exp(x0 * x0));
  const double got = g[0](0, 0);
  std::printf("df/dx = %.17g (closed form %.17g)\n", got, want);
  return std::abs(got - want) <= 1e-14 * std::abs(want) ? 0 : 1;
}
