// SPDX-License-Identifier: MIT
// W1-W6 of docs/benchmarks.md in C++, with Google Benchmark: each workload's value and gradient
// (W5: the Jacobian, W6: the Hessian) three ways,
//   <W>/eager     the graph recorded and swept on every call (matgrad::grad_values & co.),
//   <W>/compiled  the program compiled once and replayed (matgrad::Compiled::run, zero-copy),
//   <W>/hand      hand-written C++ on Eigen: the closed-form gradient, the C++ limit.
// Every answer is checked against the hand-written one before anything is timed (a mismatch
// ends the run with status 1). The inputs have the workloads' shapes and distributions, drawn
// with std::mt19937 (seed 20240601 + k for Wk), not NumPy's generator. bench/cpp.py runs this
// binary and matgrad_bench_w7 and prints one table.
#include <benchmark/benchmark.h>
#include <matgrad/matgrad.hpp>

#include <Eigen/Dense>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>

namespace {

using matgrad::Compiled;
using matgrad::DType;
using matgrad::Transform;
using matgrad::Val;
using matgrad::Var;
template <class T>
using Mat = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using MatD = Mat<double>;

bool g_ok = true;

std::mt19937 rng_for(int k) { return std::mt19937(20240601u + unsigned(k)); }
MatD normal(std::mt19937& g, long r, long c, double scale = 1.0) {
  std::normal_distribution<double> d(0.0, scale);
  MatD m(r, c);
  for (long i = 0; i < m.size(); ++i) m.data()[i] = d(g);
  return m;
}

// The results of one evaluation as float64 matrices (value first), for the checks.
using Answer = std::vector<MatD>;
Answer answer_of(const std::vector<Val>& vs) {
  Answer a;
  for (const Val& v : vs) a.push_back(matgrad::value(v));
  return a;
}

void check(const std::string& what, const Answer& got, const Answer& want, double tol) {
  if (got.size() != want.size()) {
    std::fprintf(stderr, "%s: %zu results, want %zu\n", what.c_str(), got.size(), want.size());
    g_ok = false;
    return;
  }
  for (std::size_t i = 0; i < got.size(); ++i) {
    if (got[i].size() != want[i].size()) {
      std::fprintf(stderr, "%s: result %zu has %ld elements, want %ld\n", what.c_str(), i, long(got[i].size()),
                   long(want[i].size()));
      g_ok = false;
      continue;
    }
    const double scale = 1.0 + want[i].cwiseAbs().maxCoeff();
    const double err = (got[i].reshaped<Eigen::RowMajor>() - want[i].reshaped<Eigen::RowMajor>()).cwiseAbs().maxCoeff();
    if (!(err <= tol * scale)) {
      std::fprintf(stderr, "%s: result %zu differs from the hand-written one by %.3g (tolerance %.1g)\n", what.c_str(),
                   i, err, tol * scale);
      g_ok = false;
    }
  }
}

// A workload: its inputs (leaves requiring a gradient; constants live in the closure), how the
// function is recorded, what it asks for, and the hand-written answer.
struct Workload {
  std::string name;
  std::vector<Var> inputs;
  std::function<Var(const std::vector<Var>&)> record;
  Transform transform = Transform::value_and_grad;
  std::function<Answer()> hand;  // value (or nothing for W5/W6) then the derivatives
  // what /hand times when set: the same computation without building an Answer (W1's few
  // flops would otherwise time the Answer's allocations)
  std::function<double()> hand_timed;
  double tol = 1e-10;
  std::unique_ptr<Compiled> compiled;
  std::vector<Val> args;

  // A fresh leaf per input and call, holding a copy of its value, as a loop over new inputs
  // would make them (a leaf keeps the factorizations ops computed from it: reusing the same
  // leaves would time W4's LU once).
  std::vector<Val> eager() const {
    std::vector<Var> xs;
    xs.reserve(inputs.size());
    for (const Var& x : inputs) xs.push_back(matgrad::make_leaf(x->value(), true));
    const Var f = record(xs);
    switch (transform) {
      case Transform::jacobian:
        return matgrad::jacobian_values(f, xs);
      case Transform::hessian: {
        std::vector<Val> out;
        for (auto& row : matgrad::hessian_values(f, xs))
          for (Val& h : row) out.push_back(std::move(h));
        return out;
      }
      default: {
        // the value copied out of the node (a small one lives inside it, and f dies here)
        const Val v = f->value();
        Val own = Val::empty(v.shape(), v.dtype());
        std::memcpy(own.data(), v.data(), std::size_t(v.shape().size()) * matgrad::itemsize(v.dtype()));
        std::vector<Val> out{own};
        for (Val& g : matgrad::grad_values(f, xs)) out.push_back(std::move(g));
        return out;
      }
    }
  }
  std::vector<Val> replay() const { return compiled->run(args, transform); }
};

std::vector<std::unique_ptr<Workload>>& workloads() {
  static std::vector<std::unique_ptr<Workload>> w;
  return w;
}

Workload& add(std::string name, std::vector<Var> inputs, std::function<Var(const std::vector<Var>&)> record,
              std::function<Answer()> hand, Transform t = Transform::value_and_grad, double tol = 1e-10) {
  auto w = std::make_unique<Workload>();
  w->name = std::move(name);
  w->inputs = std::move(inputs);
  w->record = std::move(record);
  w->hand = std::move(hand);
  w->transform = t;
  w->tol = tol;
  w->compiled = std::make_unique<Compiled>(w->inputs, std::vector<Var>{w->record(w->inputs)});
  for (const Var& x : w->inputs) w->args.push_back(x->value());
  workloads().push_back(std::move(w));
  return *workloads().back();
}

// ---- W1: the lecture's scalar, f(x) = sqrt(x^2 + e^(x^2)) + cos(x^2 + e^(x^2)) at 0.7 ----
double lecture_hand(double x0, double* df) {
  const double e = std::exp(x0 * x0), c = x0 * x0 + e, s = std::sqrt(c);
  *df = 2 * x0 * (1 / (2 * s) - std::sin(c)) * (1 + e);
  return s + std::cos(c);
}

void add_w1() {
  static volatile double x_in = 0.7;  // read per call: not a constant the compiler folds
  const double x0 = x_in;
  Workload& w = add(
      "W1", {matgrad::scalar(x0)},
      [](const std::vector<Var>& in) {
        const Var& x = in[0];
        return sqrt(x * x + exp(x * x)) + cos(x * x + exp(x * x));
      },
      [x0] {
        double df = 0;
        const double f = lecture_hand(x0, &df);
        return Answer{MatD::Constant(1, 1, f), MatD::Constant(1, 1, df)};
      });
  w.hand_timed = [] {
    double df = 0;
    const double f = lecture_hand(x_in, &df);
    return f + df;
  };
}

// ---- W2: per-op overhead: x in R^16, 200 times y = sin(y) 0.9 + 0.1 y, loss = sum(y) ----
void add_w2() {
  auto g = rng_for(2);
  const MatD x0 = normal(g, 1, 16);
  Var x = matgrad::variable(x0);
  add(
      "W2", {x},
      [](const std::vector<Var>& in) {
        Var y = in[0];
        for (int k = 0; k < 200; ++k) y = sin(y) * 0.9 + 0.1 * y;
        return sum(y);
      },
      [x0] {
        static thread_local Eigen::ArrayXXd ys(201, 16);
        ys.row(0) = x0.row(0).array();
        for (int k = 0; k < 200; ++k) ys.row(k + 1) = ys.row(k).sin() * 0.9 + 0.1 * ys.row(k);
        Eigen::ArrayXXd gy = Eigen::ArrayXXd::Ones(1, 16);
        for (int k = 199; k >= 0; --k) gy *= ys.row(k).cos() * 0.9 + 0.1;
        return Answer{MatD::Constant(1, 1, ys.row(200).sum()), gy.matrix()};
      });
}

// ---- W3: the lecture's network, X (64 x 784) -> 256 -> 128 -> 10, sigmoid on every layer,
// L = ||Y - f_3||_F^2, gradients w.r.t. A_i and b_i ----
template <class T>
void add_w3(const char* name) {
  auto g = rng_for(3);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  const int n = 64, sizes[4] = {784, 256, 128, 10};
  MatD X(n, sizes[0]), Y = MatD::Zero(n, sizes[3]);
  for (long i = 0; i < X.size(); ++i) X.data()[i] = u(g);
  std::uniform_int_distribution<int> cls(0, sizes[3] - 1);
  for (int i = 0; i < n; ++i) Y(i, cls(g)) = 1.0;
  std::vector<Mat<T>> params;  // A_1, b_1, A_2, b_2, A_3, b_3
  for (int l = 0; l < 3; ++l) {
    params.push_back(normal(g, sizes[l], sizes[l + 1], 1.0 / std::sqrt(double(sizes[l]))).cast<T>());
    params.push_back(normal(g, 1, sizes[l + 1], 0.1).cast<T>());
  }
  const Mat<T> Xt = X.cast<T>(), Yt = Y.cast<T>();
  std::vector<Var> in;
  for (const Mat<T>& p : params) in.push_back(matgrad::variable(p));
  const Var Xv = matgrad::constant(Xt), Yv = matgrad::constant(Yt);
  add(
      name, in,
      [Xv, Yv](const std::vector<Var>& p) {
        Var f = Xv;
        for (int l = 0; l < 3; ++l) f = sigmoid(matmul(f, p[std::size_t(2 * l)]) + p[std::size_t(2 * l + 1)]);
        return sum(square(Yv - f));
      },
      [Xt, Yt, params] {
        static thread_local Mat<T> F[4], D;
        F[0] = Xt;
        for (int l = 0; l < 3; ++l) {
          F[l + 1].noalias() = F[l] * params[std::size_t(2 * l)];
          F[l + 1].rowwise() += params[std::size_t(2 * l + 1)].row(0);
          F[l + 1] = (T(1) / (T(1) + (-F[l + 1].array()).exp())).matrix();
        }
        Answer out(7);
        const Mat<T> R = Yt - F[3];
        out[0] = MatD::Constant(1, 1, double(R.squaredNorm()));
        D = (T(-2) * R.array() * F[3].array() * (T(1) - F[3].array())).matrix();
        for (int l = 2; l >= 0; --l) {
          out[std::size_t(2 * l + 1)] = (F[l].transpose() * D).template cast<double>();
          out[std::size_t(2 * l + 2)] = D.colwise().sum().template cast<double>();
          if (l > 0)
            D = ((D * params[std::size_t(2 * l)].transpose()).array() * F[l].array() * (T(1) - F[l].array())).matrix();
        }
        return out;
      },
      Transform::value_and_grad, sizeof(T) == 4 ? 2e-3 : 1e-9);
}

// ---- W4: matrix identities, g(X) = log|det X| + tr(X^-1) + a^T X^-1 b; the gradient is
// X^-T - (X^-2)^T - X^-T a b^T X^-T ----
void add_w4(long n) {
  auto g = rng_for(4);
  const MatD X0 = double(n) * MatD::Identity(n, n) + normal(g, n, n);
  const MatD a0 = normal(g, 1, n), b0 = normal(g, 1, n);
  const Var av = matgrad::constant(a0), bv = matgrad::constant(b0);
  add(
      "W4_n" + std::to_string(n), {matgrad::variable(X0)},
      [av, bv](const std::vector<Var>& in) {
        const Var Xi = inv(in[0]);
        return logdet(in[0]) + trace(Xi) + sum(matmul(matmul(av, Xi), transpose(bv)));
      },
      [X0, a0, b0] {
        const Eigen::PartialPivLU<MatD> lu(X0);
        const MatD Xi = lu.inverse();
        const double logdet = lu.matrixLU().diagonal().array().abs().log().sum();
        const MatD XiT = Xi.transpose();
        const MatD u = XiT * a0.transpose(), v = Xi * b0.transpose();  // X^-T a, X^-1 b
        MatD G = XiT;
        G.noalias() -= (Xi * Xi).transpose();
        G.noalias() -= u * v.transpose();
        return Answer{MatD::Constant(1, 1, logdet + Xi.trace() + (a0 * v)(0, 0)), G};
      });
}

// ---- W5: the full Jacobian of K = B^T B, B 16 x 16: dK_ij/dB_kl = delta_jl B_ki + delta_il B_kj,
// as a (256, 256) matrix ----
void add_w5() {
  auto g = rng_for(5);
  const long m = 16;
  const MatD B0 = normal(g, m, m);
  add(
      "W5", {matgrad::variable(B0)}, [](const std::vector<Var>& in) { return matmul(transpose(in[0]), in[0]); },
      [B0, m] {
        MatD J = MatD::Zero(m * m, m * m);
        for (long i = 0; i < m; ++i)
          for (long j = 0; j < m; ++j)
            for (long k = 0; k < m; ++k) {
              J(i * m + j, k * m + j) += B0(k, i);
              J(i * m + j, k * m + i) += B0(k, j);
            }
        return Answer{J};
      },
      Transform::jacobian);
}

// ---- W6: the Hessian of h(x) = sum(sin x) + 0.5 x^T A x + log(sum(exp x)), x in R^100:
// 0.5 (A + A^T) + diag(s - sin x) - s s^T with s = softmax(x) ----
void add_w6() {
  auto g = rng_for(6);
  const long n = 100;
  const MatD x0 = normal(g, 1, n), A0 = normal(g, n, n);
  const Var Av = matgrad::constant(A0);
  add(
      "W6", {matgrad::variable(x0)},
      [Av](const std::vector<Var>& in) {
        const Var& x = in[0];
        return sum(sin(x)) + 0.5 * quad_form(transpose(x), Av) + logsumexp(x);
      },
      [x0, A0, n] {
        const Eigen::ArrayXd xs = x0.row(0).transpose().array();
        const Eigen::VectorXd s = ((xs - xs.maxCoeff()).exp() / (xs - xs.maxCoeff()).exp().sum()).matrix();
        MatD H = 0.5 * (A0 + A0.transpose());
        H.diagonal() += (s.array() - xs.sin()).matrix();
        H.noalias() -= s * s.transpose();
        return Answer{H};
      },
      Transform::hessian);
}

void run_eager(benchmark::State& st, const Workload* w) {
  for (auto _ : st) benchmark::DoNotOptimize(w->eager());
}
void run_compiled(benchmark::State& st, const Workload* w) {
  for (auto _ : st) benchmark::DoNotOptimize(w->replay());
}
void run_hand(benchmark::State& st, const Workload* w) {
  if (w->hand_timed) {
    for (auto _ : st) benchmark::DoNotOptimize(w->hand_timed());
  } else {
    for (auto _ : st) benchmark::DoNotOptimize(w->hand());
  }
}

}  // namespace

int main(int argc, char** argv) {
  matgrad::set_num_threads(1);
  add_w1();
  add_w2();
  add_w3<double>("W3_f64");
  add_w3<float>("W3_f32");
  add_w4(64);
  add_w4(256);
  add_w5();
  add_w6();
  // Every answer first: a wrong gradient fails the run before anything is timed.
  for (const auto& w : workloads()) {
    const Answer hand = w->hand();
    // W5/W6's hand answers are the derivatives alone; eager and compiled give the same layout
    check(w->name + " eager", answer_of(w->eager()), hand, w->tol);
    check(w->name + " compiled", answer_of(w->replay()), hand, w->tol);
  }
  if (!g_ok) {
    std::fprintf(stderr, "bench_workloads: an answer does not match the hand-written one; nothing timed\n");
    return 1;
  }
  for (const auto& w : workloads()) {
    benchmark::RegisterBenchmark((w->name + "/eager").c_str(), run_eager, w.get())->Unit(benchmark::kMicrosecond);
    benchmark::RegisterBenchmark((w->name + "/compiled").c_str(), run_compiled, w.get())->Unit(benchmark::kMicrosecond);
    benchmark::RegisterBenchmark((w->name + "/hand").c_str(), run_hand, w.get())->Unit(benchmark::kMicrosecond);
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 2;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
