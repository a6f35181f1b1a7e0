// SPDX-License-Identifier: MIT
// W7 of docs/benchmarks.md: the C++ engine's cost per node, next to hand-written C++.
//   prod    the product of n scalars as a loop of scalar multiplications (0-D nodes)
//   lecture the lecture's scalar sqrt(x^2 + exp(x^2)) + cos(x^2 + exp(x^2)) at x = 0.7
//   lse     log-sum-exp of an n-vector, from 0-D nodes and from vector ops
//   normal  the normal log-density sum_i log N(x_i | mu, sigma), gradient w.r.t. x, mu and
//           sigma, from 0-D nodes and from vector ops
//   matrix product  sum(A B) for A, B of 64 x 64 and 256 x 256 (gradient w.r.t. both)
// An AD call records the graph eagerly, sweeps it (grad_values) and frees it; the inputs are
// leaves made once, outside the timing. "record" is the same without the sweep. Every
// gradient is checked against the hand-written one before anything is timed.
// "replay" runs the same value and gradient compiled once (matgrad::compile_value_and_grad): the
// program replayed on the inputs' values, no graph recorded; its cost per instruction is shown.
// Timing: one warm-up call, then the median of --repeats repeats of >= --min-time s each.
//
//   matgrad_bench_w7 [--n 10000] [--repeats 7] [--min-time 0.05]
#include <matgrad/matgrad.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

namespace {

using matgrad::DType;
using matgrad::NodeRef;
using matgrad::Shape;
using matgrad::Val;
using Clock = std::chrono::steady_clock;

int g_repeats = 7;
double g_min_time = 0.05;
volatile double g_sink = 0;  // keeps results alive
bool g_ok = true;

/// Median seconds per call of f (see the header comment).
template <class F>
double seconds_per_call(F&& f) {
  f();
  long iters = 1;
  for (;;) {
    const auto t0 = Clock::now();
    for (long i = 0; i < iters; ++i) f();
    const double dt = std::chrono::duration<double>(Clock::now() - t0).count();
    if (dt >= g_min_time) break;
    iters = dt <= 0 ? iters * 10 : std::max(iters + 1, long(double(iters) * 1.2 * g_min_time / dt));
  }
  std::vector<double> s;
  for (int r = 0; r < g_repeats; ++r) {
    const auto t0 = Clock::now();
    for (long i = 0; i < iters; ++i) f();
    s.push_back(std::chrono::duration<double>(Clock::now() - t0).count() / double(iters));
  }
  std::sort(s.begin(), s.end());
  return s[s.size() / 2];
}

NodeRef leaf_vec(const std::vector<double>& v) {
  NodeRef n = matgrad::make_node(matgrad::kLeaf, Shape::vector(std::int64_t(v.size())), DType::f64);
  std::memcpy(n->data, v.data(), v.size() * sizeof(double));
  n->requires_grad = true;
  return n;
}
double first(const NodeRef& n) { return *static_cast<const double*>(n->data); }
double at(const Val& v, std::size_t i) { return v.ptr<double>()[i]; }

void check(const char* what, double got, double want) {
  if (!(std::abs(got - want) <= 1e-9 * (1 + std::abs(want)))) {
    std::fprintf(stderr, "W7 %s: matgrad gives %.17g, hand-written %.17g\n", what, got, want);
    g_ok = false;
  }
}

struct Row {
  std::string name;
  long nodes;  // op nodes recorded per call (leaves excluded)
  long n;      // elements
  double t_record = 0, t_ad = 0, t_hand = 0, t_replay = 0;  // seconds per call
  long instructions = 0;                                       // of the compiled program
};

void print_header() {
  std::printf("%-20s %7s %10s %11s %9s %10s %7s %10s %9s %10s %8s %8s\n", "workload", "nodes", "record us",
              "rec+bwd us", "ns/node", "replay us", "instrs", "ns/instr", "hand us", "hand ns/el", "AD/hand",
              "rep/hand");
}
void print(const Row& r) {
  std::printf("%-20s %7ld %10.2f %11.2f %9.1f %10.2f %7ld %10.1f %9.3f %10.2f %7.1fx %7.1fx\n", r.name.c_str(), r.nodes,
              r.t_record * 1e6, r.t_ad * 1e6, r.t_ad * 1e9 / double(r.nodes), r.t_replay * 1e6, r.instructions,
              r.t_replay * 1e9 / double(std::max(r.instructions, 1L)), r.t_hand * 1e6, r.t_hand * 1e9 / double(r.n),
              r.t_ad / r.t_hand, r.t_replay / r.t_hand);
  std::fflush(stdout);
}

bool g_timed = false;  // first pass: check every answer; second pass: time

template <class Record, class Hand>
Row time_row(std::string name, long nodes, long n, Record record, const std::vector<NodeRef>& inputs, Hand hand) {
  Row r{std::move(name), nodes, n};
  // the compiled program: the same value and gradient, checked against eager
  std::vector<int> all;
  std::vector<Val> args;
  for (const NodeRef& x : inputs) {
    all.push_back(int(all.size()));
    args.push_back(x->value());
  }
  const NodeRef f = record();
  const matgrad::Program p = matgrad::compile_value_and_grad(inputs, f, all);
  r.instructions = long(p.code.size());
  const std::vector<Val> eager = matgrad::grad_values(f, inputs);
  const std::vector<Val> replay = p.run(args);
  check((r.name + " replay value").c_str(), at(replay[0], 0), first(f));
  for (std::size_t k = 0; k < inputs.size(); ++k)
    for (std::int64_t i = 0; i < eager[k].shape().size(); ++i)
      check((r.name + " replay gradient").c_str(), at(replay[k + 1], std::size_t(i)), at(eager[k], std::size_t(i)));
  if (!g_timed) return r;
  r.t_replay = seconds_per_call([&] {
    std::vector<Val> g = p.run(args);
    g_sink = g_sink + at(g[1], 0);
  });
  r.t_record = seconds_per_call([&] { g_sink = g_sink + first(record()); });
  r.t_ad = seconds_per_call([&] {
    std::vector<Val> g = matgrad::grad_values(record(), inputs);
    g_sink = g_sink + at(g[0], 0);
  });
  r.t_hand = seconds_per_call(hand);
  return r;
}

// ---- prod: p = x_0 x_1 ... x_{n-1};  dp/dx_i = prod_{j != i} x_j ----

Row bench_prod(const std::vector<double>& x) {
  const std::size_t n = x.size();
  std::vector<NodeRef> xs;
  for (double v : x) xs.push_back(matgrad::scalar(v));
  auto record = [&] {
    NodeRef p = xs[0];
    for (std::size_t i = 1; i < n; ++i) p = p * xs[i];
    return p;
  };
  std::vector<double> pre(n), g(n);
  auto hand = [&] {  // prefix products forward, suffix products backward
    double p = 1;
    for (std::size_t i = 0; i < n; ++i) {
      pre[i] = p;
      p *= x[i];
    }
    double suf = 1;
    for (std::size_t i = n; i-- > 0;) {
      g[i] = pre[i] * suf;
      suf *= x[i];
    }
    g_sink = g_sink + p + g[0];
  };
  hand();
  if (!g_timed) {
    std::vector<Val> gv = matgrad::grad_values(record(), xs);
    for (std::size_t i = 0; i < n; ++i) check("prod d/dx_i", at(gv[i], 0), g[i]);
  }
  return time_row("prod, 0-D nodes", long(n - 1), long(n), record, xs, hand);
}

// ---- lse = m + log(sum_i exp(x_i - m)), m = max x (a constant: the gradient, softmax(x), does
// not depend on the shift) ----

struct LseHand {  // vectorised with Eigen: exp is the cost
  const std::vector<double>& x;
  Eigen::ArrayXd e, g;
  double value = 0;
  explicit LseHand(const std::vector<double>& x_) : x(x_), e(x_.size()), g(x_.size()) {}
  void operator()() {
    const Eigen::Map<const Eigen::ArrayXd> xa(x.data(), Eigen::Index(x.size()));
    const double m = xa.maxCoeff();
    e = (xa - m).exp();
    const double s = e.sum();
    value = m + std::log(s);
    g = e * (1 / s);
    g_sink = g_sink + value + g[0];
  }
};

// ---- the lecture's scalar: f(x) = sqrt(x^2 + exp(x^2)) + cos(x^2 + exp(x^2)) ----

Row bench_lecture(double x0) {
  std::vector<NodeRef> xs = {matgrad::scalar(x0)};
  auto record = [&] {
    const NodeRef& x = xs[0];
    NodeRef a = x * x;
    NodeRef u = a + matgrad::exp(a);
    return matgrad::sqrt(u) + matgrad::cos(u);
  };
  struct Hand {
    double x, value = 0, g = 0;
    void operator()() {
      const double a = x * x, e = std::exp(a), u = a + e, s = std::sqrt(u);
      value = s + std::cos(u);
      g = (0.5 / s - std::sin(u)) * (2.0 * x * (1.0 + e));
      g_sink = g_sink + g;
    }
  } hand{x0};
  hand();
  if (!g_timed) {
    NodeRef f = record();
    check("lecture value", first(f), hand.value);
    check("lecture d/dx", at(matgrad::grad_values(f, xs)[0], 0), hand.g);
  }
  return time_row("lecture scalar", 6, 1, record, xs, std::ref(hand));
}

Row bench_lse_scalar(const std::vector<double>& x) {
  const std::size_t n = x.size();
  std::vector<NodeRef> xs;
  for (double v : x) xs.push_back(matgrad::scalar(v));
  auto record = [&] {
    double m = first(xs[0]);
    for (const NodeRef& v : xs) m = std::max(m, first(v));
    NodeRef s = matgrad::exp(xs[0] - m);
    for (std::size_t i = 1; i < n; ++i) s = s + matgrad::exp(xs[i] - m);
    return matgrad::log(s) + m;
  };
  LseHand hand(x);
  hand();
  if (!g_timed) {
    NodeRef f = record();
    check("lse value", first(f), hand.value);
    std::vector<Val> gv = matgrad::grad_values(f, xs);
    for (std::size_t i = 0; i < n; ++i) check("lse d/dx_i", at(gv[i], 0), hand.g[Eigen::Index(i)]);
  }
  return time_row("lse, 0-D nodes", long(3 * n + 1), long(n), record, xs, std::ref(hand));
}

Row bench_lse_vector(const std::vector<double>& x) {
  const std::size_t n = x.size();
  std::vector<NodeRef> xs = {leaf_vec(x)};
  auto record = [&] {
    const double* p = static_cast<const double*>(xs[0]->data);
    const double m = *std::max_element(p, p + n);
    return matgrad::log(matgrad::sum(matgrad::exp(xs[0] - m))) + m;
  };
  LseHand hand(x);
  hand();
  if (!g_timed) {
    NodeRef f = record();
    check("lse (vector) value", first(f), hand.value);
    std::vector<Val> gv = matgrad::grad_values(f, xs);
    for (std::size_t i = 0; i < n; ++i) check("lse (vector) d/dx_i", at(gv[0], i), hand.g[Eigen::Index(i)]);
  }
  return time_row("lse, vector ops", 5, long(n), record, xs, std::ref(hand));
}

// ---- normal log-density: f = sum_i [-z_i^2 / 2 - log sigma - log(2 pi) / 2], z_i = (x_i - mu) / sigma
// df/dx_i = -z_i / sigma,  df/dmu = sum z_i / sigma,  df/dsigma = sum z_i^2 / sigma - n / sigma ----

const double kHalfLog2Pi = 0.5 * std::log(2 * std::acos(-1.0));

struct NormalHand {
  const std::vector<double>& x;
  double mu, sigma;
  std::vector<double> gx;
  double value = 0, gmu = 0, gsigma = 0;
  NormalHand(const std::vector<double>& x_, double mu_, double sigma_) : x(x_), mu(mu_), sigma(sigma_), gx(x_.size()) {}
  void operator()() {
    const std::size_t n = x.size();
    const double inv = 1 / sigma;
    double sz = 0, szz = 0;
    for (std::size_t i = 0; i < n; ++i) {
      const double z = (x[i] - mu) * inv;
      sz += z;
      szz += z * z;
      gx[i] = -z * inv;
    }
    value = -0.5 * szz - double(n) * (std::log(sigma) + kHalfLog2Pi);
    gmu = sz * inv;
    gsigma = szz * inv - double(n) * inv;
    g_sink = g_sink + value + gx[0] + gmu + gsigma;
  }
};

void check_normal(const char* what, const NodeRef& f, const std::vector<Val>& gv, const NormalHand& h, bool vec) {
  const std::size_t n = h.x.size();
  check(what, first(f), h.value);
  for (std::size_t i = 0; i < n; ++i) check(what, vec ? at(gv[0], i) : at(gv[i], 0), h.gx[i]);
  check(what, at(gv[vec ? 1 : n], 0), h.gmu);
  check(what, at(gv[vec ? 2 : n + 1], 0), h.gsigma);
}

Row bench_normal_scalar(const std::vector<double>& x, double mu0, double sigma0) {
  const std::size_t n = x.size();
  std::vector<NodeRef> in;
  for (double v : x) in.push_back(matgrad::scalar(v));
  in.push_back(matgrad::scalar(mu0));
  in.push_back(matgrad::scalar(sigma0));
  auto record = [&] {
    const NodeRef& mu = in[n];
    const NodeRef& sigma = in[n + 1];
    NodeRef acc;
    for (std::size_t i = 0; i < n; ++i) {
      NodeRef z = (in[i] - mu) / sigma;
      acc = i ? acc + z * z : z * z;
    }
    return acc * -0.5 - (matgrad::log(sigma) + kHalfLog2Pi) * double(n);
  };
  NormalHand hand(x, mu0, sigma0);
  hand();
  if (!g_timed) {
    NodeRef f = record();
    check_normal("normal", f, matgrad::grad_values(f, in), hand, false);
  }
  return time_row("normal, 0-D nodes", long(4 * n + 4), long(n), record, in, std::ref(hand));
}

Row bench_normal_vector(const std::vector<double>& x, double mu0, double sigma0) {
  const std::size_t n = x.size();
  std::vector<NodeRef> in = {leaf_vec(x), matgrad::scalar(mu0), matgrad::scalar(sigma0)};
  auto record = [&] {
    NodeRef z = (in[0] - in[1]) / in[2];
    return matgrad::sum(z * z) * -0.5 - (matgrad::log(in[2]) + kHalfLog2Pi) * double(n);
  };
  NormalHand hand(x, mu0, sigma0);
  hand();
  if (!g_timed) {
    NodeRef f = record();
    check_normal("normal (vector)", f, matgrad::grad_values(f, in), hand, true);
  }
  return time_row("normal, vector ops", 9, long(n), record, in, std::ref(hand));
}

// ---- matrix product: f = sum(A B), A and B m x m;  df/dA = 1 B^T (row k of B summed, in column
// k of every row), df/dB = A^T 1 (column k of A summed, in row k) ----

NodeRef leaf_mat(const Eigen::MatrixXd& m) {
  NodeRef n = matgrad::make_node(matgrad::kLeaf, Shape::matrix(m.rows(), m.cols()), DType::f64);
  Eigen::Map<Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>(static_cast<double*>(n->data),
                                                                                     m.rows(), m.cols()) = m;
  n->requires_grad = true;
  return n;
}

Row bench_matrix_product(long m) {
  std::mt19937 rng(11);
  std::uniform_real_distribution<double> u(-1.0, 1.0);
  Eigen::MatrixXd a(m, m), b(m, m);
  for (long i = 0; i < m * m; ++i) a.data()[i] = u(rng), b.data()[i] = u(rng);
  std::vector<NodeRef> in = {leaf_mat(a), leaf_mat(b)};
  auto record = [&] { return matgrad::sum(matgrad::matmul(in[0], in[1])); };
  Eigen::MatrixXd c(m, m), ga(m, m), gb(m, m);
  double value = 0;
  auto hand = [&] {  // the product with Eigen's GEMM, the gradients from row and column sums
    c.noalias() = a * b;
    value = c.sum();
    ga.rowwise() = b.rowwise().sum().transpose();
    gb.colwise() = a.colwise().sum().transpose();
    g_sink = g_sink + value + ga(0, 0) + gb(0, 0);
  };
  hand();
  if (!g_timed) {
    NodeRef f = record();
    check("matrix product value", first(f), value);
    const std::vector<Val> gv = matgrad::grad_values(f, in);
    for (long i = 0; i < m * m; ++i) {
      check("matrix product d/dA", at(gv[0], std::size_t(i)), ga(i / m, i % m));
      check("matrix product d/dB", at(gv[1], std::size_t(i)), gb(i / m, i % m));
    }
  }
  return time_row("matrix product " + std::to_string(m), 2, m * m, record, in, std::ref(hand));
}

[[noreturn]] void usage(const char* argv0) {
  std::fprintf(stderr, "usage: %s [--n N] [--repeats R] [--min-time SECONDS]\n", argv0);
  std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  long n = 10000;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (i + 1 >= argc) usage(argv[0]);
    if (a == "--n")
      n = std::atol(argv[++i]);
    else if (a == "--repeats")
      g_repeats = std::atoi(argv[++i]);
    else if (a == "--min-time")
      g_min_time = std::atof(argv[++i]);
    else
      usage(argv[0]);
  }
  if (n < 2 || g_repeats < 1 || g_min_time < 0) usage(argv[0]);

  std::mt19937 rng(7);
  std::uniform_real_distribution<double> near_one(0.95, 1.05), wide(-3.0, 3.0);
  std::vector<double> xp(static_cast<std::size_t>(n)), xl(static_cast<std::size_t>(n));
  for (auto& v : xp) v = near_one(rng);  // keeps the product of 10^4 factors in range
  for (auto& v : xl) v = wide(rng);

  // Every answer first: a wrong gradient fails the run before anything is timed.
  auto run_all = [&](auto&& each) {
    each(bench_prod(xp));
    each(bench_lecture(0.7));
    each(bench_lse_scalar(xl));
    each(bench_lse_vector(xl));
    each(bench_normal_scalar(xl, 0.3, 1.7));
    each(bench_normal_vector(xl, 0.3, 1.7));
    each(bench_matrix_product(64));
    each(bench_matrix_product(256));
  };
  run_all([](const Row&) {});
  if (!g_ok) {
    std::fprintf(stderr, "W7: a gradient does not match the hand-written one; nothing timed\n");
    return 1;
  }
  std::printf(
      "W7: n = %ld; all gradients match the hand-written ones. Median of %d repeats of >= %.2f s.\n"
      "record = eager recording + freeing the graph; rec+bwd = the same + reverse sweep (grad_values);\n"
      "replay = the compiled program (value and gradient) run on the same inputs; hand = hand-written C++\n"
      "value and gradient.\n",
      n, g_repeats, g_min_time);
  print_header();
  g_timed = true;
  run_all([](const Row& r) { print(r); });
  return g_ok ? 0 : 1;
}
