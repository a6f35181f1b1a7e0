// SPDX-License-Identifier: MIT
#include <matgrad/api.hpp>

namespace matgrad {

Eigen::MatrixXd value(const Val& v) {
  if (v.dtype() == DType::f64) return v.mat<double>();
  return v.mat<float>().cast<double>();
}

Eigen::MatrixXd value(const Var& v) { return value(v->value()); }

std::vector<Eigen::MatrixXd> grad(const Var& f, const std::vector<Var>& xs) {
  std::vector<Eigen::MatrixXd> out;
  for (const Val& g : grad_values(f, xs)) out.push_back(value(g));
  return out;
}

std::pair<double, std::vector<Eigen::MatrixXd>> value_and_grad(const Var& f, const std::vector<Var>& xs) {
  check_scalar_output("value_and_grad", f->shape);
  std::pair<double, std::vector<Eigen::MatrixXd>> out{value(f)(0, 0), {}};
  for (const Val& g : grad_values(f, xs, nullptr, "value_and_grad")) out.second.push_back(value(g));
  return out;
}

std::vector<Eigen::MatrixXd> vjp(const Var& f, const std::vector<Var>& xs, const Var& cotangent) {
  std::vector<Eigen::MatrixXd> out;
  for (const Val& g : grad_values(f, xs, cotangent, "vjp")) out.push_back(value(g));
  return out;
}

std::vector<Eigen::MatrixXd> jacobian(const Var& f, const std::vector<Var>& xs) {
  std::vector<Eigen::MatrixXd> out;
  for (const Val& j : jacobian_values(f, xs)) out.push_back(value(j));
  return out;
}

std::vector<std::vector<Eigen::MatrixXd>> hessian(const Var& f, const std::vector<Var>& xs) {
  std::vector<std::vector<Eigen::MatrixXd>> out;
  for (const auto& row : hessian_values(f, xs)) {
    out.emplace_back();
    for (const Val& h : row) out.back().push_back(value(h));
  }
  return out;
}

Eigen::MatrixXd jvp(const Var& f, const std::vector<Var>& xs, const std::vector<Var>& tangents) {
  return value(jvp_values(f, xs, tangents));
}

}  // namespace matgrad
