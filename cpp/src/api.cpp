// SPDX-License-Identifier: MIT
#include <matgrad/matgrad.hpp>

namespace matgrad {

namespace {
Eigen::MatrixXd to_double(const Val& v) {
  if (v.dtype() == DType::f64) return v.mat<double>();
  return v.mat<float>().cast<double>();
}
}  // namespace

Eigen::MatrixXd value(const Var& v) { return to_double(v->value()); }

std::vector<Eigen::MatrixXd> grad(const Var& f, const std::vector<Var>& xs) {
  std::vector<Eigen::MatrixXd> out;
  for (const Val& g : grad_values(f, xs)) out.push_back(to_double(g));
  return out;
}

}  // namespace matgrad
