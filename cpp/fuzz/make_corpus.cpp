// SPDX-License-Identifier: MIT
// The seed corpus of fuzz_load_programs: a few small real archives written by save_programs,
// and truncated copies of two of them.
//
//   matgrad_fuzz_make_corpus <dir>
//
// writes <dir>/<name>.mgprog for each seed (cpp/fuzz/corpus holds a committed copy; the fuzz
// runner, tools/fuzz-cpp.sh, also writes a fresh one into its build folder, so that the seeds
// follow the format when it changes). Deterministic: the same bytes on every run.
#include <matgrad/matgrad.hpp>

#include <cstdio>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

namespace {

using matgrad::DType;
using matgrad::NodeRef;
using matgrad::Program;
using matgrad::Shape;

NodeRef leaf(Shape s, DType d, double start, bool requires_grad = true) {
  NodeRef n = matgrad::make_node(matgrad::kLeaf, s, d);
  for (std::int64_t i = 0; i < s.size(); ++i) {
    const double v = start + 0.25 * double(i) - 0.1 * double(i % 3) + (i % 4 == 0 ? double(s.cols) : 0.0);
    if (d == DType::f64)
      static_cast<double*>(n->data)[i] = v;
    else
      static_cast<float*>(n->data)[i] = float(v);
  }
  n->requires_grad = requires_grad;
  return n;
}

matgrad::ProgramArchive::Entry entry(const std::string& key, const std::string& kind, Program p) {
  return {key, kind, std::make_shared<const Program>(std::move(p))};
}

bool write(const std::string& dir, const std::string& name, const std::string& bytes) {
  const std::string path = dir + "/" + name + ".mgprog";
  std::ofstream f(path, std::ios::binary);
  f.write(bytes.data(), std::streamsize(bytes.size()));
  if (!f) {
    std::fprintf(stderr, "make_corpus: cannot write %s\n", path.c_str());
    return false;
  }
  std::printf("%s: %zu bytes\n", path.c_str(), bytes.size());
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s <dir>\n", argv[0]);
    return 2;
  }
  const std::string dir = argv[1];
  std::vector<std::pair<std::string, std::string>> seeds;

  // elementwise chains (a fused loop once loaded), a reduction, value and gradient
  {
    NodeRef x = leaf(Shape::vector(5), DType::f64, 0.3);
    NodeRef f = matgrad::sum(matgrad::sin(x) * matgrad::exp(x) + matgrad::tanh(x * 2.0) - matgrad::sqrt(x * x + 1.0));
    matgrad::ProgramArchive a;
    a.argnums = {0};
    a.meta = "elementwise";
    a.entries.push_back(entry("f64[5]", "value_and_grad", matgrad::compile_value_and_grad({x}, f, {0})));
    seeds.emplace_back("elementwise", matgrad::save_programs(a));
  }
  // linear algebra: a factorization shared by logdet and solve, a matmul, a transpose; two
  // arguments, the gradient of both; and its Jacobian (batched instructions)
  {
    NodeRef A = leaf(Shape::matrix(3, 3), DType::f64, 1.0);
    NodeRef b = leaf(Shape::vector(3), DType::f64, -0.5);
    NodeRef f = matgrad::logdet(A) + matgrad::sum(matgrad::solve(A, b)) +
                matgrad::sum(matgrad::matmul(matgrad::transpose(A), A) * 0.1) + matgrad::quad_form(b, A);
    matgrad::ProgramArchive a;
    a.argnums = {0, 1};
    a.meta = "linalg";
    a.entries.push_back(entry("f64[3,3] f64[3]", "value_and_grad", matgrad::compile_value_and_grad({A, b}, f, {0, 1})));
    NodeRef y = matgrad::matmul(A, matgrad::tanh(b));
    a.entries.push_back(entry("f64[3,3] f64[3] jac", "jacobian", matgrad::compile_jacobian({A, b}, y, {0, 1})));
    seeds.emplace_back("linalg", matgrad::save_programs(a));
  }
  // a Hessian: second-order sweeps, batched seeds
  {
    NodeRef x = leaf(Shape::vector(3), DType::f64, 0.2);
    NodeRef f = matgrad::logsumexp(x) + matgrad::sum(matgrad::square(x) * matgrad::sigmoid(x));
    matgrad::ProgramArchive a;
    a.argnums = {0};
    a.entries.push_back(entry("f64[3]", "hessian", matgrad::compile_hessian({x}, f, {0})));
    seeds.emplace_back("hessian", matgrad::save_programs(a));
  }
  // float32, shapes: axis reductions, reshape, concatenate, stack, where, maximum, kron, diag,
  // a constant captured from a leaf that needs no gradient; not optimised (more instruction kinds)
  {
    NodeRef x = leaf(Shape::matrix(2, 3), DType::f32, -0.7);
    NodeRef c = leaf(Shape::matrix(2, 3), DType::f32, 0.4, false);
    NodeRef m = matgrad::maximum(x, c);
    NodeRef r = matgrad::reshape(matgrad::sum(m, 0) + matgrad::mean(x), std::vector<std::int64_t>{3, 1});
    NodeRef j = matgrad::concatenate({matgrad::transpose(x), r}, 1);
    NodeRef s = matgrad::stack({matgrad::sum(matgrad::relu(x), 0), matgrad::sum(matgrad::softplus(c), 0)}, 1);
    NodeRef k = matgrad::kron(matgrad::diag(matgrad::sum(x, 0)), matgrad::reshape(c, std::vector<std::int64_t>{3, 2}));
    NodeRef f = matgrad::sum(j) + matgrad::sum(s) + matgrad::max(matgrad::where(c, x, m)) + matgrad::norm(k);
    matgrad::ProgramArchive a;
    a.argnums = {0};
    a.meta = "{\"dtype\": \"float32\"}";
    a.entries.push_back(entry("f32[2,3]", "value_and_grad", matgrad::compile_value_and_grad({x}, f, {0}, false)));
    a.entries.push_back(entry("f32[2,3] graph", "graph", matgrad::compile_graph({x}, {f, j})));
    seeds.emplace_back("float32-shapes", matgrad::save_programs(a));
  }
  // inv, det, cholesky, matrix_power, trace, outer, dot, pow, log1p, expm1, div
  {
    NodeRef A = leaf(Shape::matrix(2, 2), DType::f64, 2.0);
    NodeRef v = leaf(Shape::vector(2), DType::f64, 0.6);
    NodeRef spd = matgrad::matmul(A, matgrad::transpose(A)) + matgrad::outer(v, v);
    NodeRef f = matgrad::det(matgrad::inv(A)) + matgrad::trace(matgrad::cholesky(spd)) +
                matgrad::sum(matgrad::matrix_power(A, 3)) * 0.01 + matgrad::dot(v, matgrad::log1p(v * v)) +
                matgrad::sum(matgrad::pow(matgrad::abs(v) + 1.0, 1.5) / matgrad::expm1(v + 2.0));
    matgrad::ProgramArchive a;
    a.argnums = {1, 0};
    a.entries.push_back(entry("f64[2,2] f64[2]", "value_and_grad", matgrad::compile_value_and_grad({A, v}, f, {1, 0})));
    seeds.emplace_back("factorizations", matgrad::save_programs(a));
  }
  // an empty archive, and an archive of a program with no instructions (its output is its input)
  {
    seeds.emplace_back("empty-archive", matgrad::save_programs(matgrad::ProgramArchive{}));
    NodeRef x = leaf(Shape::scalar(), DType::f64, 1.5);
    matgrad::ProgramArchive a;
    a.entries.push_back(entry("()", "graph", matgrad::compile_graph({x}, {x})));
    seeds.emplace_back("identity", matgrad::save_programs(a));
  }
  // truncated copies: in the header, and halfway through the payload
  for (const char* name : {"elementwise", "linalg"})
    for (const auto& s : seeds)
      if (s.first == name) {
        seeds.emplace_back(s.first + "-truncated-header", s.second.substr(0, 20));
        seeds.emplace_back(s.first + "-truncated-payload", s.second.substr(0, s.second.size() / 2));
        break;
      }
  bool ok = true;
  for (const auto& s : seeds) ok = write(dir, s.first, s.second) && ok;
  return ok ? 0 : 1;
}
