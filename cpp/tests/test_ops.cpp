// SPDX-License-Identifier: MIT
// Every op of the registry, in float64 and float32: forward values against closed forms,
// first derivatives and (through create_graph) second derivatives against float64 central
// differences, gradients of the input's own shape and dtype. A registry walk fails when an op
// has no case here.
#include "test_util.hpp"

#include <matgrad/matgrad.hpp>

#include <Eigen/Eigenvalues>
#include <Eigen/LU>
#include <Eigen/QR>
#include <Eigen/SVD>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <set>
#include <string>
#include <vector>

namespace mgtest {
namespace {

using matgrad::OpId;

// ---- closed forms of the forward values (float64, written independently of the engine) ----

using Ref = std::function<Input(const std::vector<Input>&)>;

std::vector<std::int64_t> dims_of(const Shape& s) {
  if (s.ndim == 0) return {};
  if (s.ndim == 1) return {s.cols};
  return {s.rows, s.cols};
}
Shape shape_of(const std::vector<std::int64_t>& d) {
  if (d.empty()) return S();
  if (d.size() == 1) return S(d[0]);
  return S(d[0], d[1]);
}

// NumPy broadcasting of two operands of rank <= 2.
Input broadcast2(const Input& a, const Input& b, const std::function<double(double, double)>& op) {
  auto da = dims_of(a.shape), db = dims_of(b.shape);
  const std::size_t nd = std::max(da.size(), db.size());
  while (da.size() < 2) da.insert(da.begin(), 1);
  while (db.size() < 2) db.insert(db.begin(), 1);
  std::vector<std::int64_t> dout(2);
  for (int i = 0; i < 2; ++i) {
    if (da[i] != db[i] && da[i] != 1 && db[i] != 1) ADD_FAILURE() << "reference: shapes do not broadcast";
    dout[i] = da[i] == 1 ? db[i] : da[i];
  }
  Input out;
  for (std::int64_t i = 0; i < dout[0]; ++i)
    for (std::int64_t j = 0; j < dout[1]; ++j) {
      const double x = a.data[std::size_t((da[0] == 1 ? 0 : i) * da[1] + (da[1] == 1 ? 0 : j))];
      const double y = b.data[std::size_t((db[0] == 1 ? 0 : i) * db[1] + (db[1] == 1 ? 0 : j))];
      out.data.push_back(op(x, y));
    }
  out.shape = shape_of(std::vector<std::int64_t>(dout.end() - std::ptrdiff_t(nd), dout.end()));
  return out;
}

Ref ref_unary(std::function<double(double)> f) {
  return [f](const std::vector<Input>& in) {
    Input out = in[0];
    for (double& v : out.data) v = f(v);
    return out;
  };
}
Ref ref_binary(std::function<double(double, double)> f) {
  return [f](const std::vector<Input>& in) { return broadcast2(in[0], in[1], f); };
}

// numpy.sum / numpy.mean with axis (None = kAxisNone), no keepdims.
Ref ref_reduce(int axis, bool mean) {
  return [axis, mean](const std::vector<Input>& in) {
    const Input& x = in[0];
    Input out;
    if (x.shape.ndim < 2 || axis == matgrad::kAxisNone) {
      double s = 0;
      for (double v : x.data) s += v;
      out.shape = S();
      out.data = {mean ? s / double(x.data.size()) : s};
      return out;
    }
    const int ax = axis < 0 ? axis + 2 : axis;
    const std::int64_t R = x.shape.rows, C = x.shape.cols;
    if (ax == 0) {
      out.shape = S(C);
      for (std::int64_t j = 0; j < C; ++j) {
        double s = 0;
        for (std::int64_t i = 0; i < R; ++i) s += x.data[std::size_t(i * C + j)];
        out.data.push_back(mean ? s / double(R) : s);
      }
    } else {
      out.shape = S(R);
      for (std::int64_t i = 0; i < R; ++i) {
        double s = 0;
        for (std::int64_t j = 0; j < C; ++j) s += x.data[std::size_t(i * C + j)];
        out.data.push_back(mean ? s / double(C) : s);
      }
    }
    return out;
  };
}

// numpy.matmul of op(X) and op(Y); transpose flags apply to 2-D operands.
Ref ref_matmul(bool ta, bool tb) {
  return [ta, tb](const std::vector<Input>& in) {
    const Input& x = in[0];
    const Input& y = in[1];
    Eigen::MatrixXd X =
        x.shape.ndim == 1 ? unflat(x.data, 1, x.shape.cols) : unflat(x.data, x.shape.rows, x.shape.cols);
    Eigen::MatrixXd Y =
        y.shape.ndim == 1 ? unflat(y.data, y.shape.cols, 1) : unflat(y.data, y.shape.rows, y.shape.cols);
    if (ta && x.shape.ndim == 2) X.transposeInPlace();
    if (tb && y.shape.ndim == 2) Y.transposeInPlace();
    const Eigen::MatrixXd P = X * Y;
    Input out{S(), flat(P)};
    if (x.shape.ndim == 1 && y.shape.ndim == 1)
      out.shape = S();
    else if (x.shape.ndim == 1)
      out.shape = S(P.cols());
    else if (y.shape.ndim == 1)
      out.shape = S(P.rows());
    else
      out.shape = S(P.rows(), P.cols());
    return out;
  };
}

Ref ref_transpose() {
  return [](const std::vector<Input>& in) {
    const Input& x = in[0];
    if (x.shape.ndim < 2) return x;
    return Input{S(x.shape.cols, x.shape.rows), flat(unflat(x.data, x.shape.rows, x.shape.cols).transpose())};
  };
}
Ref ref_reshape(Shape s) {
  return [s](const std::vector<Input>& in) { return Input{s, in[0].data}; };
}
Ref ref_broadcast_to(Shape s) {
  return [s](const std::vector<Input>& in) {
    Input zeros{s, std::vector<double>(std::size_t(s.size()), 0.0)};
    return broadcast2(in[0], zeros, [](double x, double) { return x; });
  };
}
Ref ref_sum_to(Shape s) {  // sum over the axes that s broadcasts
  return [s](const std::vector<Input>& in) {
    const Input& x = in[0];
    Input out{s, std::vector<double>(std::size_t(s.size()), 0.0)};
    for (std::int64_t i = 0; i < x.shape.rows; ++i)
      for (std::int64_t j = 0; j < x.shape.cols; ++j)
        out.data[std::size_t((s.rows == 1 ? 0 : i) * s.cols + (s.cols == 1 ? 0 : j))] +=
            x.data[std::size_t(i * x.shape.cols + j)];
    return out;
  };
}

double sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }
double sign(double x) { return double((x > 0) - (x < 0)); }

// ---- closed forms for the matrix-calculus ops (cofactors, substitution: no LU, no Eigen solver) ----

Eigen::MatrixXd mat2d(const Input& x) {  // a 1-D input as a column, a 0-D one as 1 x 1
  if (x.shape.ndim == 2) return unflat(x.data, x.shape.rows, x.shape.cols);
  return unflat(x.data, x.shape.size(), 1);
}
Input input_of(const Eigen::MatrixXd& m, Shape s) { return Input{s, flat(m)}; }

// Laplace expansion along the first row (n <= 4 here); det of 0 x 0 is 1.
double det_ref(const Eigen::MatrixXd& a) {
  const Eigen::Index n = a.rows();
  if (n == 0) return 1.0;
  if (n == 1) return a(0, 0);
  double d = 0;
  for (Eigen::Index j = 0; j < n; ++j) {
    Eigen::MatrixXd minor(n - 1, n - 1);
    for (Eigen::Index r = 1; r < n; ++r)
      for (Eigen::Index c = 0, cc = 0; c < n; ++c)
        if (c != j) minor(r - 1, cc++) = a(r, c);
    d += (j % 2 ? -1.0 : 1.0) * a(0, j) * det_ref(minor);
  }
  return d;
}
// The cofactor matrix C (C = adj(A)^T, A^-1 = C^T / det A).
Eigen::MatrixXd cofactors(const Eigen::MatrixXd& a) {
  const Eigen::Index n = a.rows();
  Eigen::MatrixXd c(n, n);
  if (n == 1) {
    c(0, 0) = 1.0;
    return c;
  }
  for (Eigen::Index i = 0; i < n; ++i)
    for (Eigen::Index j = 0; j < n; ++j) {
      Eigen::MatrixXd minor(n - 1, n - 1);
      for (Eigen::Index r = 0, rr = 0; r < n; ++r) {
        if (r == i) continue;
        for (Eigen::Index k = 0, kk = 0; k < n; ++k)
          if (k != j) minor(rr, kk++) = a(r, k);
        ++rr;
      }
      c(i, j) = ((i + j) % 2 ? -1.0 : 1.0) * det_ref(minor);
    }
  return c;
}
Eigen::MatrixXd inv_ref(const Eigen::MatrixXd& a) { return cofactors(a).transpose() / det_ref(a); }
Eigen::MatrixXd sym_ref(const Eigen::MatrixXd& a) { return 0.5 * (a + a.transpose()); }
// Cholesky-Banachiewicz on the lower triangle.
Eigen::MatrixXd chol_ref(const Eigen::MatrixXd& a) {
  const Eigen::Index n = a.rows();
  Eigen::MatrixXd l = Eigen::MatrixXd::Zero(n, n);
  for (Eigen::Index j = 0; j < n; ++j) {
    double s = a(j, j);
    for (Eigen::Index k = 0; k < j; ++k) s -= l(j, k) * l(j, k);
    l(j, j) = std::sqrt(s);
    for (Eigen::Index i = j + 1; i < n; ++i) {
      double t = a(i, j);
      for (Eigen::Index k = 0; k < j; ++k) t -= l(i, k) * l(j, k);
      l(i, j) = t / l(j, j);
    }
  }
  return l;
}
// The lower triangle, its diagonal scaled by s.
Eigen::MatrixXd tril_ref(const Eigen::MatrixXd& a, double s) {
  Eigen::MatrixXd o = Eigen::MatrixXd::Zero(a.rows(), a.cols());
  for (Eigen::Index i = 0; i < a.rows(); ++i)
    for (Eigen::Index j = 0; j <= std::min<Eigen::Index>(i, a.cols() - 1); ++j)
      o(i, j) = i == j ? s * a(i, j) : a(i, j);
  return o;
}

// Reduce each slice of x (all elements for axis None or rank < 2; columns for axis 0; rows for
// axis 1) with f, as numpy with no keepdims.
Ref ref_reduce_with(int axis, std::function<double(const std::vector<double>&)> f) {
  return [axis, f](const std::vector<Input>& in) {
    const Input& x = in[0];
    if (x.shape.ndim < 2 || axis == matgrad::kAxisNone) return Input{S(), {f(x.data)}};
    const int ax = axis < 0 ? axis + 2 : axis;
    const std::int64_t R = x.shape.rows, C = x.shape.cols;
    Input out{S(ax == 0 ? C : R), {}};
    for (std::int64_t o = 0; o < (ax == 0 ? C : R); ++o) {
      std::vector<double> sl;
      for (std::int64_t i = 0; i < (ax == 0 ? R : C); ++i)
        sl.push_back(x.data[std::size_t(ax == 0 ? i * C + o : o * C + i)]);
      out.data.push_back(f(sl));
    }
    return out;
  };
}
double lse_ref(const std::vector<double>& v) {
  double m = -std::numeric_limits<double>::infinity();
  for (double x : v) m = std::max(m, x);
  double s = 0;
  for (double x : v) s += std::exp(x - m);
  return m + std::log(s);
}
double max_ref(const std::vector<double>& v) { return *std::max_element(v.begin(), v.end()); }

// ---- structured inputs ----

// (n + 1) I + U(-1, 1): condition number below 3; the first row negated half the time (det < 0).
Input wellcond(Rng& rng, const Shape& s) {
  Input x = rng.input(s, -1.0, 1.0);
  const std::int64_t n = s.rows;
  for (std::int64_t i = 0; i < n; ++i) x.data[std::size_t(i * n + i)] += double(n + 1);
  if (rng.uniform(0.0, 1.0) < 0.5)
    for (std::int64_t j = 0; j < n; ++j) x.data[std::size_t(j)] = -x.data[std::size_t(j)];
  return x;
}
// Symmetric positive definite: M M^T + n I, eigenvalues >= n.
Input spd(Rng& rng, const Shape& s) {
  const std::int64_t n = s.rows;
  const Eigen::MatrixXd m = rng.matrix(n, n);
  return Input{s, flat(m * m.transpose() + double(n) * Eigen::MatrixXd::Identity(n, n))};
}
// Distinct values at least 0.4 apart (the maximum and its position stay put under any FD step).
Input spread(Rng& rng, const Shape& s) {
  const std::size_t n = std::size_t(s.size());
  std::vector<double> perm(n);
  for (std::size_t i = 0; i < n; ++i) perm[i] = double(i);
  for (std::size_t i = n; i > 1; --i) std::swap(perm[i - 1], perm[std::size_t(rng.uniform(0.0, double(i) - 1e-9))]);
  Input x{s, {}};
  for (double p : perm) x.data.push_back(p * 0.5 - double(n) / 4 + rng.uniform(-0.05, 0.05));
  return x;
}

// ---- matrix functions: inputs with separated spectra, and references by other algorithms ----
// (Eigen's general EigenSolver and JacobiSVD for the decompositions, which the engine computes
// with SelfAdjointEigenSolver and BDCSVD; series and Newton iterations for the functions.)
Eigen::MatrixXd orthonormal(Rng& rng, std::int64_t n, std::int64_t r) {
  return Eigen::HouseholderQR<Eigen::MatrixXd>(rng.matrix(n, n)).householderQ() * Eigen::MatrixXd::Identity(n, r);
}
// Eigenvalues at least 0.5 apart, plus an antisymmetric part that eigh does not read.
Input sep_sym(Rng& rng, const Shape& s) {
  const std::int64_t n = s.rows;
  const Eigen::MatrixXd q = orthonormal(rng, n, n), k = rng.matrix(n, n, -0.5, 0.5);
  Eigen::VectorXd w(n);
  double acc = -0.4 * double(n);
  for (std::int64_t i = 0; i < n; ++i) w(i) = acc += rng.uniform(0.5, 1.0);
  return input_of(q * w.asDiagonal() * q.transpose() + k - k.transpose(), s);
}
// Singular values at least 0.5 and 0.5 apart.
Input sep_rect(Rng& rng, const Shape& s) {
  const std::int64_t r = std::min(s.rows, s.cols);
  const Eigen::MatrixXd u = orthonormal(rng, s.rows, r), v = orthonormal(rng, s.cols, r);
  Eigen::VectorXd sv(r);
  double acc = 0.5;
  for (std::int64_t i = 0; i < r; ++i) sv(i) = acc += rng.uniform(0.5, 1.0);
  return input_of(u * sv.asDiagonal() * v.transpose(), s);
}
// e^A by scaling and squaring a 30-term Taylor series.
Eigen::MatrixXd expm_ref(const Eigen::MatrixXd& a) {
  const Eigen::Index n = a.rows();
  const int sq = 10;
  const Eigen::MatrixXd b = a / double(1 << sq);
  Eigen::MatrixXd term = Eigen::MatrixXd::Identity(n, n), e = term;
  for (int k = 1; k <= 30; ++k) e += (term = term * b / double(k));
  for (int i = 0; i < sq; ++i) e = e * e;
  return e;
}
// The principal square root by the Denman-Beavers iteration.
Eigen::MatrixXd sqrtm_ref(const Eigen::MatrixXd& a) {
  Eigen::MatrixXd y = a, z = Eigen::MatrixXd::Identity(a.rows(), a.cols());
  for (int i = 0; i < 60; ++i) {
    const Eigen::MatrixXd yi = y.inverse(), zi = z.inverse();
    y = 0.5 * (y + zi);
    z = 0.5 * (z + yi);
  }
  return y;
}
// The principal logarithm by inverse scaling and squaring: 2^k log(A^(1/2^k)), the log by series.
Eigen::MatrixXd logm_ref(const Eigen::MatrixXd& a) {
  const int k = 6;
  Eigen::MatrixXd r = a;
  for (int i = 0; i < k; ++i) r = sqrtm_ref(r);
  const Eigen::MatrixXd z = r - Eigen::MatrixXd::Identity(a.rows(), a.cols());
  Eigen::MatrixXd term = z, l = Eigen::MatrixXd::Zero(a.rows(), a.cols());
  for (int j = 1; j <= 20; ++j, term = term * z) l += (j % 2 ? 1.0 : -1.0) * term / double(j);
  return double(1 << k) * l;
}
// expm of a matrix with entries in (-0.3, 0.3): eigenvalues near 1, off the negative axis.
Input near_identity(Rng& rng, const Shape& s) { return input_of(expm_ref(rng.matrix(s.rows, s.cols, -0.3, 0.3)), s); }
// The signs of Note [vector signs] in matfun.cpp: each column's largest entry positive.
void signs_ref(Eigen::MatrixXd& v, Eigen::MatrixXd* w) {
  for (Eigen::Index j = 0; j < v.cols(); ++j) {
    Eigen::Index imax = 0;
    v.col(j).cwiseAbs().maxCoeff(&imax);
    if (v(imax, j) < 0) {
      v.col(j) *= -1.0;
      if (w) w->col(j) *= -1.0;
    }
  }
}
// The packed results: a vector of the matrices' entries (row-major) one after the other.
Input packed(std::initializer_list<Eigen::MatrixXd> parts) {
  std::int64_t total = 0;
  for (const auto& p : parts) total += p.size();
  Input out{S(total), {}};
  for (const auto& p : parts) {
    const std::vector<double> f = flat(p);
    out.data.insert(out.data.end(), f.begin(), f.end());
  }
  return out;
}
// Eigenvalues ascending and eigenvectors of sym(A) from the general (Hessenberg QR) solver.
void sym_eig_ref(const Eigen::MatrixXd& a, Eigen::VectorXd& w, Eigen::MatrixXd& v) {
  const Eigen::MatrixXd s = 0.5 * (a + a.transpose());
  Eigen::EigenSolver<Eigen::MatrixXd> es(s);
  const Eigen::Index n = s.rows();
  std::vector<Eigen::Index> idx(static_cast<std::size_t>(n));
  for (Eigen::Index i = 0; i < n; ++i) idx[std::size_t(i)] = i;
  std::sort(idx.begin(), idx.end(),
            [&](Eigen::Index x, Eigen::Index y) { return es.eigenvalues()(x).real() < es.eigenvalues()(y).real(); });
  w.resize(n);
  v.resize(n, n);
  for (Eigen::Index i = 0; i < n; ++i) {
    w(i) = es.eigenvalues()(idx[std::size_t(i)]).real();
    v.col(i) = es.eigenvectors().col(idx[std::size_t(i)]).real().normalized();
  }
  signs_ref(v, nullptr);
}

// ---- the table ----

/// Draws a structured input of shape s (well-conditioned, SPD, well-separated values, ...).
using Gen = Input (*)(Rng&, const Shape&);

struct Dom {
  double lo = -2.0, hi = 2.0, gap = 0.0;
  Gen gen = nullptr;  ///< when set, draws the input instead of U(lo, hi)
};

struct OpCase {
  std::string name;
  OpId op;                     ///< the registry entry under test
  std::vector<Shape> shapes;   ///< one per input
  std::vector<Dom> doms;       ///< one per input, or one for all
  Fn f;
  Ref ref;
  double eps = 1e-5;
  double tol_scale = 1.0;
  bool same_dtype_out = true;  ///< the output has the inputs' dtype
};

std::vector<Input> draw(const OpCase& c, std::uint32_t seed) {
  Rng rng(seed);
  std::vector<Input> xs;
  for (std::size_t k = 0; k < c.shapes.size(); ++k) {
    const Dom d = c.doms.empty() ? Dom{} : c.doms[std::min(k, c.doms.size() - 1)];
    xs.push_back(d.gen ? d.gen(rng, c.shapes[k]) : rng.input(c.shapes[k], d.lo, d.hi, d.gap));
  }
  return xs;
}

std::string shape_tag(const Shape& s) {
  if (s.ndim == 0) return "0d";
  if (s.ndim == 1) return "v" + std::to_string(s.cols);
  return "m" + std::to_string(s.rows) + "x" + std::to_string(s.cols);
}

std::vector<OpCase> all_cases() {
  std::vector<OpCase> cs;
  using V = const std::vector<NodeRef>&;
  const std::vector<Shape> unary_shapes = {S(3, 4), S(5), S()};

  struct U {
    OpId op;
    const char* name;
    double (*ref)(double);
    Dom dom;
  };
  const U unary[] = {
      {opid("neg"), "neg", [](double x) { return -x; }, {}},
      {opid("exp"), "exp", [](double x) { return std::exp(x); }, {}},
      {opid("log"), "log", [](double x) { return std::log(x); }, {0.2, 3.0}},
      {opid("log1p"), "log1p", [](double x) { return std::log1p(x); }, {-0.8, 2.0}},
      {opid("expm1"), "expm1", [](double x) { return std::expm1(x); }, {}},
      {opid("sin"), "sin", [](double x) { return std::sin(x); }, {-3.0, 3.0}},
      {opid("cos"), "cos", [](double x) { return std::cos(x); }, {-3.0, 3.0}},
      {opid("tan"), "tan", [](double x) { return std::tan(x); }, {-1.2, 1.2}},
      {opid("tanh"), "tanh", [](double x) { return std::tanh(x); }, {}},
      {opid("sqrt"), "sqrt", [](double x) { return std::sqrt(x); }, {0.2, 3.0}},
      {opid("abs"), "abs", [](double x) { return std::abs(x); }, {-2.0, 2.0, 0.1}},
      {opid("square"), "square", [](double x) { return x * x; }, {}},
      {opid("sigmoid"), "sigmoid", sigmoid, {-4.0, 4.0}},
      {opid("relu"), "relu", [](double x) { return x > 0 ? x : 0.0; }, {-2.0, 2.0, 0.1}},
      {opid("softplus"), "softplus", [](double x) { return std::log1p(std::exp(x)); }, {-4.0, 4.0}},
  };
  for (const U& u : unary)
    for (const Shape& s : unary_shapes) {
      const OpId op = u.op;
      cs.push_back({std::string(u.name) + "_" + shape_tag(s),
                    op,
                    {s},
                    {u.dom},
                    [op](V v) { return apply1(op, v[0]); },
                    ref_unary(u.ref)});
    }

  struct Sc {
    OpId op;
    const char* name;
    double s;
    Dom dom;
    double (*ref)(double, double);
  };
  const Sc scalar_ops[] = {
      {opid("add_s"), "add_s", 0.7, {}, [](double x, double s) { return x + s; }},
      {opid("mul_s"), "mul_s", -1.3, {}, [](double x, double s) { return x * s; }},
      {opid("div_s"), "div_s", 2.5, {}, [](double x, double s) { return x / s; }},
      {opid("rsub_s"), "rsub_s", 0.3, {}, [](double x, double s) { return s - x; }},
      {opid("rdiv_s"), "rdiv_s", 1.7, {0.3, 2.0}, [](double x, double s) { return s / x; }},
      {opid("pow_s"), "pow_s_2p5", 2.5, {0.3, 2.0}, [](double x, double s) { return std::pow(x, s); }},
      {opid("pow_s"), "pow_s_m1p5", -1.5, {0.3, 2.0}, [](double x, double s) { return std::pow(x, s); }},
      {opid("pow_s"), "pow_s_3", 3.0, {-2.0, 2.0}, [](double x, double s) { return std::pow(x, s); }},
      {opid("pow_s"), "pow_s_0", 0.0, {-2.0, 2.0}, [](double x, double s) { return std::pow(x, s); }},
      {opid("pow_s"), "pow_s_2", 2.0, {-2.0, 2.0}, [](double x, double s) { return std::pow(x, s); }},
      {opid("pow_s"), "pow_s_1", 1.0, {-2.0, 2.0}, [](double x, double s) { return std::pow(x, s); }},
      {opid("pow_s"), "pow_s_m1", -1.0, {0.3, 2.0}, [](double x, double s) { return std::pow(x, s); }},
      {opid("pow_s"), "pow_s_m2", -2.0, {0.3, 2.0}, [](double x, double s) { return std::pow(x, s); }},
      {opid("pow_s"), "pow_s_0p5", 0.5, {0.3, 2.0}, [](double x, double s) { return std::pow(x, s); }},
      {opid("rpow_s"), "rpow_s_2", 2.0, {}, [](double x, double s) { return std::pow(s, x); }},
      {opid("rpow_s"), "rpow_s_0p5", 0.5, {}, [](double x, double s) { return std::pow(s, x); }},
  };
  for (const Sc& c : scalar_ops)
    for (const Shape& s : {S(3, 4), S()}) {
      const OpId op = c.op;
      const double sv = c.s;
      auto r = c.ref;
      cs.push_back({std::string(c.name) + "_" + shape_tag(s),
                    op,
                    {s},
                    {c.dom},
                    [op, sv](V v) { return apply_s(op, v[0], sv); },
                    ref_unary([r, sv](double x) { return r(x, sv); })});
    }

  struct B {
    OpId op;
    const char* name;
    double (*ref)(double, double);
    std::vector<Dom> doms;
  };
  const B binary[] = {
      {opid("add"), "add", [](double x, double y) { return x + y; }, {}},
      {opid("sub"), "sub", [](double x, double y) { return x - y; }, {}},
      {opid("mul"), "mul", [](double x, double y) { return x * y; }, {}},
      {opid("div"), "div", [](double x, double y) { return x / y; }, {{-2.0, 2.0}, {0.5, 2.0}}},
      {opid("pow"), "pow", [](double x, double y) { return std::pow(x, y); }, {{0.3, 2.0}, {-2.0, 2.0}}},
      {opid("maximum"), "maximum", [](double x, double y) { return std::max(x, y); }, {}},
      {opid("minimum"), "minimum", [](double x, double y) { return std::min(x, y); }, {}},
  };
  const std::pair<Shape, Shape> pairs[] = {
      {S(3, 4), S(3, 4)}, {S(3, 4), S(4)}, {S(3, 1), S(1, 4)}, {S(), S(3, 4)},
      {S(5), S()},        {S(4), S(3, 1)}, {S(1, 1), S(3)},
  };
  for (const B& b : binary)
    for (const auto& p : pairs) {
      const OpId op = b.op;
      cs.push_back({std::string(b.name) + "_" + shape_tag(p.first) + "_" + shape_tag(p.second),
                    op,
                    {p.first, p.second},
                    b.doms,
                    [op](V v) { return apply2(op, v[0], v[1]); },
                    ref_binary(b.ref)});
    }

  const int none = matgrad::kAxisNone;
  const std::pair<Shape, int> reductions[] = {{S(3, 4), none}, {S(3, 4), 0}, {S(3, 4), 1}, {S(3, 4), -1},
                                              {S(3, 4), -2},   {S(5), none}, {S(5), 0},    {S(5), -1},
                                              {S(), none},     {S(1, 4), 0}, {S(4, 1), 1}};
  for (const auto& r : reductions) {
    const int ax = r.second;
    const std::string tag = shape_tag(r.first) + "_axis" +
                            (ax == none ? std::string("None")
                             : ax < 0   ? "m" + std::to_string(-ax)
                                        : std::to_string(ax));
    cs.push_back({"sum_" + tag,
                  opid("sum"),
                  {r.first},
                  {},
                  [ax](V v) { return matgrad::sum(v[0], ax); },
                  ref_reduce(ax, false)});
    cs.push_back({"mean_" + tag,
                  opid("mean"),
                  {r.first},
                  {},
                  [ax](V v) { return matgrad::mean(v[0], ax); },
                  ref_reduce(ax, true)});
  }

  for (const Shape& s : {S(3, 4), S(5), S(), S(1, 3)})
    cs.push_back({"transpose_" + shape_tag(s),
                  opid("transpose"),
                  {s},
                  {},
                  [](V v) { return matgrad::transpose(v[0]); },
                  ref_transpose()});

  const std::pair<Shape, Shape> reshapes[] = {{S(3, 4), S(2, 6)}, {S(3, 4), S(12)}, {S(6), S(2, 3)},
                                              {S(), S(1, 1)},     {S(1, 1), S()},   {S(1), S()}};
  for (const auto& r : reshapes) {
    const Shape to = r.second;
    cs.push_back({"reshape_" + shape_tag(r.first) + "_to_" + shape_tag(to),
                  opid("reshape"),
                  {r.first},
                  {},
                  [to](V v) { return matgrad::reshape(v[0], to); },
                  ref_reshape(to)});
  }

  const std::pair<Shape, Shape> bcasts[] = {{S(4), S(3, 4)},    {S(3, 1), S(3, 4)}, {S(), S(2, 3)},
                                            {S(1, 1), S(2, 2)}, {S(), S(5)},        {S(1, 4), S(3, 4)}};
  for (const auto& b : bcasts) {
    const Shape to = b.second;
    cs.push_back({"broadcast_to_" + shape_tag(b.first) + "_to_" + shape_tag(to),
                  opid("broadcast_to"),
                  {b.first},
                  {},
                  [to](V v) { return matgrad::broadcast_to(v[0], to); },
                  ref_broadcast_to(to)});
  }

  const std::pair<Shape, Shape> sum_tos[] = {{S(3, 4), S(4)},    {S(3, 4), S(3, 1)}, {S(3, 4), S()},
                                             {S(3, 4), S(1, 1)}, {S(3, 4), S(1, 4)}, {S(5), S()}};
  for (const auto& b : sum_tos) {
    const Shape to = b.second;
    cs.push_back({"sum_to_" + shape_tag(b.first) + "_to_" + shape_tag(to),
                  opid("sum_to"),
                  {b.first},
                  {},
                  [to](V v) {
                    matgrad::Attr a;
                    a.shape = to;
                    return matgrad::apply(opid("sum_to"), {v[0]}, a);
                  },
                  ref_sum_to(to)});
  }

  {
    OpCase c{"cast_to_other_dtype",
             opid("cast"),
             {S(3, 4)},
             {},
             [](V v) { return matgrad::cast(v[0], v[0]->dtype == DType::f64 ? DType::f32 : DType::f64); },
             ref_unary([](double x) { return x; })};
    c.eps = 0.25;  // linear: a wide step keeps float32 rounding out of the difference
    c.tol_scale = 10;
    c.same_dtype_out = false;
    cs.push_back(c);
  }
  cs.push_back(
      {"alias_m3x4", opid("alias"), {S(3, 4)}, {}, [](V v) { return matgrad::alias(v[0]); }, ref_unary([](double x) {
         return x;
       })});

  // Note [multiple outputs]: pack / unpack / embed.
  cs.push_back({"pack_m2x3_v4_s",
                opid("pack"),
                {S(2, 3), S(4), S()},
                {},
                [](V v) { return matgrad::pack({v[0], v[1], v[2]}); },
                [](const std::vector<Input>& in) {
                  Input out{S(0), {}};
                  for (const Input& x : in) out.data.insert(out.data.end(), x.data.begin(), x.data.end());
                  out.shape = S(std::int64_t(out.data.size()));
                  return out;
                }});
  cs.push_back({"unpack_v10_at3_m2x2",
                opid("unpack"),
                {S(10)},
                {},
                [](V v) { return matgrad::unpack(v[0], 3, S(2, 2)); },
                [](const std::vector<Input>& in) {
                  return Input{S(2, 2), std::vector<double>(in[0].data.begin() + 3, in[0].data.begin() + 7)};
                }});
  cs.push_back({"embed_m2x2_at3_v10",
                opid("embed"),
                {S(2, 2)},
                {},
                [](V v) {
                  matgrad::Attr a;
                  a.offset = 3;
                  a.shape = S(10);
                  return matgrad::apply(opid("embed"), {v[0]}, a);
                },
                [](const std::vector<Input>& in) {
                  Input out{S(10), std::vector<double>(10, 0.0)};
                  std::copy(in[0].data.begin(), in[0].data.end(), out.data.begin() + 3);
                  return out;
                }});

  struct M {
    const char* name;
    Shape a, b;
    bool ta, tb;
  };
  const M matmuls[] = {
      {"m3x4_m4x2", S(3, 4), S(4, 2), false, false}, {"m4x3T_m4x2", S(4, 3), S(4, 2), true, false},
      {"m3x4_m2x4T", S(3, 4), S(2, 4), false, true}, {"m4x3T_m2x4T", S(4, 3), S(2, 4), true, true},
      {"v4_m4x2", S(4), S(4, 2), false, false},      {"m3x4_v4", S(3, 4), S(4), false, false},
      {"v4_v4", S(4), S(4), false, false},           {"v4_m2x4T", S(4), S(2, 4), false, true},
      {"m4x3T_v4", S(4, 3), S(4), true, false},      {"v4T_m4x2", S(4), S(4, 2), true, false},
      {"v4T_v4T", S(4), S(4), true, true},           {"m1x1_m1x1", S(1, 1), S(1, 1), false, false},
      {"m5x1_m1x3", S(5, 1), S(1, 3), false, false}, {"m1x5_m5x1", S(1, 5), S(5, 1), false, false},
  };
  for (const M& m : matmuls) {
    const bool ta = m.ta, tb = m.tb;
    cs.push_back({std::string("matmul_") + m.name,
                  opid("matmul"),
                  {m.a, m.b},
                  {},
                  [ta, tb](V v) { return matgrad::matmul(v[0], v[1], ta, tb); },
                  ref_matmul(ta, tb)});
  }

  // trace (np.trace: the diagonal's sum, any 2-D shape) and eye_scale (g I, its VJP)
  for (const Shape& s : {S(3, 3), S(2, 4), S(4, 1), S(1, 1)})
    cs.push_back({"trace_" + shape_tag(s),
                  opid("trace"),
                  {s},
                  {},
                  [](V v) { return matgrad::trace(v[0]); },
                  [](const std::vector<Input>& in) {
                    const Input& x = in[0];
                    double t = 0;
                    for (std::int64_t i = 0; i < std::min(x.shape.rows, x.shape.cols); ++i)
                      t += x.data[std::size_t(i * x.shape.cols + i)];
                    return Input{S(), {t}};
                  }});
  for (const Shape& to : {S(3, 3), S(2, 4)})
    cs.push_back({"eye_scale_to_" + shape_tag(to),
                  opid("eye_scale"),
                  {S()},
                  {},
                  [to](V v) {
                    matgrad::Attr a;
                    a.shape = to;
                    return matgrad::apply(opid("eye_scale"), {v[0]}, a);
                  },
                  [to](const std::vector<Input>& in) {
                    Input out{to, std::vector<double>(std::size_t(to.size()), 0.0)};
                    for (std::int64_t i = 0; i < std::min(to.rows, to.cols); ++i)
                      out.data[std::size_t(i * to.cols + i)] = in[0].data[0];
                    return out;
                  }});

  // xlogy(x, y) = x log y, 0 where x = 0 (the y-derivative of pow)
  for (const auto& p : {std::make_pair(S(3, 4), S(3, 4)), std::make_pair(S(3, 4), S(4)), std::make_pair(S(), S(5))})
    cs.push_back({"xlogy_" + shape_tag(p.first) + "_" + shape_tag(p.second),
                  opid("xlogy"),
                  {p.first, p.second},
                  {{-2.0, 2.0}, {0.3, 2.0}},
                  [](V v) { return apply2(opid("xlogy"), v[0], v[1]); },
                  ref_binary([](double x, double y) { return x == 0 ? 0.0 : x * std::log(y); })});

  // mask_nz(s, v) = v where s != 0, else 0 (the x-derivative of pow; constant in s)
  for (const auto& p : {std::make_pair(S(3, 4), S(3, 4)), std::make_pair(S(4), S(3, 4)), std::make_pair(S(), S(5))})
    cs.push_back({"mask_nz_" + shape_tag(p.first) + "_" + shape_tag(p.second),
                  opid("mask_nz"),
                  {p.first, p.second},
                  {{0.5, 2.0}, {-2.0, 2.0}},
                  [](V v) { return apply2(opid("mask_nz"), v[0], v[1]); },
                  ref_binary([](double s, double v) { return s == 0 ? 0.0 : v; })});

  // Values larger than a node's inline storage (128 bytes): pooled buffers in the forward
  // kernels and in the VJPs.
  for (const OpId op : {opid("add"), opid("mul"), opid("div"), opid("maximum")}) {
    const std::string nm = matgrad::op_name(op);
    auto r = op == opid("add")   ? ref_binary([](double x, double y) { return x + y; })
             : op == opid("mul") ? ref_binary([](double x, double y) { return x * y; })
             : op == opid("div") ? ref_binary([](double x, double y) { return x / y; })
                                 : ref_binary([](double x, double y) { return std::max(x, y); });
    const std::vector<Dom> doms = op == opid("div") ? std::vector<Dom>{{-2.0, 2.0}, {0.5, 2.0}} : std::vector<Dom>{};
    cs.push_back(
        {"large_" + nm + "_m17x9_v9", op, {S(17, 9), S(9)}, doms, [op](V v) { return apply2(op, v[0], v[1]); }, r});
    cs.push_back({"large_" + nm + "_m17x1_m1x9",
                  op,
                  {S(17, 1), S(1, 9)},
                  doms,
                  [op](V v) { return apply2(op, v[0], v[1]); },
                  r});
  }
  cs.push_back(
      {"large_exp_m17x9", opid("exp"), {S(17, 9)}, {}, [](V v) { return matgrad::exp(v[0]); }, ref_unary([](double x) {
         return std::exp(x);
       })});
  cs.push_back(
      {"large_sin_v40", opid("sin"), {S(40)}, {}, [](V v) { return matgrad::sin(v[0]); }, ref_unary([](double x) {
         return std::sin(x);
       })});
  for (int ax : {none, 0, 1})
    cs.push_back({"large_sum_m17x9_axis" + (ax == none ? std::string("None") : std::to_string(ax)),
                  opid("sum"),
                  {S(17, 9)},
                  {},
                  [ax](V v) { return matgrad::sum(v[0], ax); },
                  ref_reduce(ax, false)});
  cs.push_back({"large_mean_m17x9_axis1",
                opid("mean"),
                {S(17, 9)},
                {},
                [](V v) { return matgrad::mean(v[0], 1); },
                ref_reduce(1, true)});
  cs.push_back({"large_transpose_m17x9",
                opid("transpose"),
                {S(17, 9)},
                {},
                [](V v) { return matgrad::transpose(v[0]); },
                ref_transpose()});
  cs.push_back({"large_reshape_m17x9_to_v153",
                opid("reshape"),
                {S(17, 9)},
                {},
                [](V v) { return matgrad::reshape(v[0], S(153)); },
                ref_reshape(S(153))});
  for (int t = 0; t < 4; ++t) {
    const bool ta = t & 1, tb = t & 2;
    cs.push_back({"large_matmul_" + std::string(ta ? "T" : "N") + (tb ? "T" : "N"),
                  opid("matmul"),
                  {ta ? S(10, 12) : S(12, 10), tb ? S(9, 10) : S(10, 9)},
                  {},
                  [ta, tb](V v) { return matgrad::matmul(v[0], v[1], ta, tb); },
                  ref_matmul(ta, tb)});
  }
  cs.push_back({"large_matmul_v10_m10x20",
                opid("matmul"),
                {S(10), S(10, 20)},
                {},
                [](V v) { return matgrad::matmul(v[0], v[1]); },
                ref_matmul(false, false)});

  // Empty arrays (NumPy allows them).
  cs.push_back(
      {"empty_sum_v0", opid("sum"), {S(0)}, {}, [](V v) { return matgrad::sum(v[0]); }, ref_reduce(none, false)});
  cs.push_back({"empty_add_m0x3_v3",
                opid("add"),
                {S(0, 3), S(3)},
                {},
                [](V v) { return v[0] + v[1]; },
                ref_binary([](double x, double y) { return x + y; })});
  cs.push_back({"empty_matmul_m3x0_m0x2",
                opid("matmul"),
                {S(3, 0), S(0, 2)},
                {},
                [](V v) { return matgrad::matmul(v[0], v[1]); },
                ref_matmul(false, false)});

  // ---- matrix calculus (det, logdet, slogdet, inv, solve share one LU per node) ----
  const Dom kWell{-1.0, 1.0, 0.0, wellcond};
  const Dom kSpd{-1.0, 1.0, 0.0, spd};
  const Dom kSpread{-1.0, 1.0, 0.0, spread};
  const Dom kNonzero{-2.0, 2.0, 0.1};
  for (const Shape& s : {S(1, 1), S(2, 2), S(3, 3), S(4, 4)}) {
    const std::string t = shape_tag(s);
    cs.push_back({"det_" + t,
                  opid("det"),
                  {s},
                  {kWell},
                  [](V v) { return matgrad::det(v[0]); },
                  [](const std::vector<Input>& in) { return Input{S(), {det_ref(mat2d(in[0]))}}; }});
    cs.push_back(
        {"logdet_" + t,
         opid("logdet"),
         {s},
         {kWell},
         [](V v) { return matgrad::logdet(v[0]); },
         [](const std::vector<Input>& in) { return Input{S(), {std::log(std::abs(det_ref(mat2d(in[0]))))}}; }});
    // the packed (sign, log|det|) node itself (the front end returns two unpacks of it)
    cs.push_back({"slogdet_" + t,
                  opid("slogdet"),
                  {s},
                  {kWell},
                  [](V v) { return matgrad::apply(opid("slogdet"), {v[0]}); },
                  [](const std::vector<Input>& in) {
                    const double d = det_ref(mat2d(in[0]));
                    return Input{S(2), {sign(d), std::log(std::abs(d))}};
                  }});
    cs.push_back({"inv_" + t,
                  opid("inv"),
                  {s},
                  {kWell},
                  [](V v) { return matgrad::inv(v[0]); },
                  [s](const std::vector<Input>& in) { return input_of(inv_ref(mat2d(in[0])), s); }});
    // adj_t(X) = adj(X)^T = det(X) X^-T, the VJP of det
    cs.push_back({"adj_t_" + t,
                  opid("adj_t"),
                  {s},
                  {kWell},
                  [](V v) { return matgrad::apply(opid("adj_t"), {v[0]}); },
                  [s](const std::vector<Input>& in) { return input_of(cofactors(mat2d(in[0])), s); }});
    // cholesky reads the lower triangle; through sym(X) = (X + X^T) / 2 every entry of X is a
    // free variable of a symmetric input (the raw op is checked by the test below).
    cs.push_back({"cholesky_" + t,
                  opid("cholesky"),
                  {s},
                  {kSpd},
                  [](V v) { return matgrad::cholesky(v[0]); },
                  [s](const std::vector<Input>& in) { return input_of(chol_ref(mat2d(in[0])), s); }});
    cs.push_back({"cholesky_sym_" + t,
                  opid("cholesky"),
                  {s},
                  {kSpd},
                  [](V v) { return matgrad::cholesky((v[0] + matgrad::transpose(v[0])) * 0.5); },
                  [s](const std::vector<Input>& in) { return input_of(chol_ref(sym_ref(mat2d(in[0]))), s); }});
  }
  // x^T x + n I: cholesky of a product (second derivatives through both factors)
  cs.push_back({"cholesky_gram_m3x3",
                opid("cholesky"),
                {S(3, 3)},
                {},
                [](V v) {
                  NodeRef eye = matgrad::apply(opid("eye_scale"), {matgrad::full(S(), v[0]->dtype, 3.0)}, [] {
                    matgrad::Attr a;
                    a.shape = S(3, 3);
                    return a;
                  }());
                  return matgrad::cholesky(matgrad::matmul(v[0], v[0], false, true) + eye);
                },
                [](const std::vector<Input>& in) {
                  const Eigen::MatrixXd x = mat2d(in[0]);
                  return input_of(chol_ref(x * x.transpose() + 3.0 * Eigen::MatrixXd::Identity(3, 3)), S(3, 3));
                }});
  struct Sv {
    Shape a, b;
    bool ta;
  };
  for (const Sv& p :
       {Sv{S(3, 3), S(3), false}, Sv{S(3, 3), S(3, 2), false}, Sv{S(1, 1), S(1), false}, Sv{S(2, 2), S(2, 1), false},
        Sv{S(4, 4), S(4, 3), false}, Sv{S(3, 3), S(3, 2), true}, Sv{S(3, 3), S(3), true}}) {
    const bool ta = p.ta;
    const Shape bs = p.b;
    cs.push_back({std::string("solve_") + (ta ? "T_" : "") + shape_tag(p.a) + "_" + shape_tag(p.b),
                  opid("solve"),
                  {p.a, p.b},
                  {kWell, Dom{}},
                  [ta](V v) {
                    matgrad::Attr a;
                    a.ta = ta;
                    return ta ? matgrad::apply(opid("solve"), {v[0], v[1]}, a) : matgrad::solve(v[0], v[1]);
                  },
                  [ta, bs](const std::vector<Input>& in) {
                    const Eigen::MatrixXd ai = inv_ref(mat2d(in[0]));
                    return input_of((ta ? Eigen::MatrixXd(ai.transpose()) : ai) * mat2d(in[1]), bs);
                  }});
  }
  // trsolve(L, B) = op(L)^-1 B on the lower triangle of L (the upper part is not read: its
  // gradient is zero, as its central difference)
  for (const auto& p :
       {std::make_pair(S(3, 3), S(3, 2)), std::make_pair(S(1, 1), S(1, 3)), std::make_pair(S(4, 4), S(4, 4))})
    for (bool ta : {false, true}) {
      const Shape bs = p.second;
      cs.push_back({std::string("trsolve_") + (ta ? "T_" : "") + shape_tag(p.first) + "_" + shape_tag(p.second),
                    opid("trsolve"),
                    {p.first, p.second},
                    {kWell, Dom{}},
                    [ta](V v) {
                      matgrad::Attr a;
                      a.ta = ta;
                      return matgrad::apply(opid("trsolve"), {v[0], v[1]}, a);
                    },
                    [ta, bs](const std::vector<Input>& in) {
                      const Eigen::MatrixXd li = inv_ref(tril_ref(mat2d(in[0]), 1.0));
                      return input_of((ta ? Eigen::MatrixXd(li.transpose()) : li) * mat2d(in[1]), bs);
                    }});
    }
  for (const auto& p : {std::make_pair(S(3, 3), 1.0), std::make_pair(S(3, 3), 0.5), std::make_pair(S(3, 4), 0.5),
                        std::make_pair(S(4, 2), 1.0), std::make_pair(S(1, 1), 0.5)}) {
    const double sv = p.second;
    const Shape s = p.first;
    cs.push_back({"tril_" + shape_tag(s) + (sv == 1.0 ? "_s1" : "_s0p5"),
                  opid("tril"),
                  {s},
                  {},
                  [sv](V v) {
                    matgrad::Attr a;
                    a.s = sv;
                    return matgrad::apply(opid("tril"), {v[0]}, a);
                  },
                  [sv, s](const std::vector<Input>& in) { return input_of(tril_ref(mat2d(in[0]), sv), s); }});
  }
  for (const Shape& s : {S(3, 4), S(5), S(), S(1, 1)})
    cs.push_back({"norm_" + shape_tag(s),
                  opid("norm"),
                  {s},
                  {kNonzero},
                  [](V v) { return matgrad::norm(v[0]); },
                  [](const std::vector<Input>& in) {
                    double q = 0;
                    for (double x : in[0].data) q += x * x;
                    return Input{S(), {std::sqrt(q)}};
                  }});
  for (const auto& p : {std::make_pair(S(3), S(3, 3)), std::make_pair(S(1), S(1, 1)), std::make_pair(S(3, 2), S(3, 3)),
                        std::make_pair(S(4, 1), S(4, 4))}) {
    const Shape xs = p.first;
    cs.push_back({"quad_form_" + shape_tag(p.first) + "_" + shape_tag(p.second),
                  opid("quad_form"),
                  {p.first, p.second},
                  {},
                  [](V v) { return matgrad::quad_form(v[0], v[1]); },
                  [xs](const std::vector<Input>& in) {
                    const Eigen::MatrixXd x = mat2d(in[0]);
                    const Eigen::MatrixXd q = x.transpose() * mat2d(in[1]) * x;
                    return input_of(q, xs.ndim == 1 ? S() : S(q.rows(), q.cols()));
                  }});
  }

  // ---- reductions: logsumexp, max (distinct values: no ties) ----
  const std::pair<Shape, int> lse_axes[] = {{S(3, 4), none}, {S(3, 4), 0}, {S(3, 4), 1}, {S(3, 4), -1},
                                            {S(3, 4), -2},   {S(5), none}, {S(5), 0},    {S(5), -1},
                                            {S(), none},     {S(1, 4), 0}, {S(4, 1), 1}};
  for (const auto& r : lse_axes) {
    const int ax = r.second;
    const std::string tag = shape_tag(r.first) + "_axis" +
                            (ax == none ? std::string("None")
                             : ax < 0   ? "m" + std::to_string(-ax)
                                        : std::to_string(ax));
    cs.push_back({"logsumexp_" + tag,
                  opid("logsumexp"),
                  {r.first},
                  {},
                  [ax](V v) { return matgrad::logsumexp(v[0], ax); },
                  ref_reduce_with(ax, lse_ref)});
    cs.push_back({"max_" + tag,
                  opid("max"),
                  {r.first},
                  {kSpread},
                  [ax](V v) { return matgrad::max(v[0], ax); },
                  ref_reduce_with(ax, max_ref)});
  }
  {  // large values away from 0: the shift by the maximum matters (exp(50) * 12 is fine, exp(800) is not)
    cs.push_back({"logsumexp_shifted_m3x4_axis1",
                  opid("logsumexp"),
                  {S(3, 4)},
                  {Dom{700.0, 702.0}},
                  [](V v) { return matgrad::logsumexp(v[0], 1); },
                  ref_reduce_with(1, lse_ref)});
  }

  // ---- softmax_cross_entropy(Z, Y) per row, and its one-kernel VJP (Note [fused softmax cross-entropy]) ----
  {
    // -sum_j y_j log softmax(z)_j = sum_j y_j (lse(z) - z_j), row by row
    auto xent_ref = [](const std::vector<Input>& in) {
      const std::int64_t R = in[0].shape.rows, C = in[0].shape.cols;
      Input out{S(R), {}};
      for (std::int64_t i = 0; i < R; ++i) {
        std::vector<double> z(in[0].data.begin() + i * C, in[0].data.begin() + (i + 1) * C);
        const double l = lse_ref(z);
        double v = 0;
        for (std::int64_t j = 0; j < C; ++j) v += in[1].data[std::size_t(i * C + j)] * (l - z[std::size_t(j)]);
        out.data.push_back(v);
      }
      return out;
    };
    // g_i (softmax(z_i)_j sum_k y_ik - y_ij)
    auto xent_vjp_ref = [](const std::vector<Input>& in) {
      const std::int64_t R = in[0].shape.rows, C = in[0].shape.cols;
      Input out{in[0].shape, {}};
      for (std::int64_t i = 0; i < R; ++i) {
        std::vector<double> z(in[0].data.begin() + i * C, in[0].data.begin() + (i + 1) * C);
        const double l = lse_ref(z);
        double s = 0;
        for (std::int64_t j = 0; j < C; ++j) s += in[1].data[std::size_t(i * C + j)];
        for (std::int64_t j = 0; j < C; ++j)
          out.data.push_back(in[2].data[std::size_t(i)] *
                             (std::exp(z[std::size_t(j)] - l) * s - in[1].data[std::size_t(i * C + j)]));
      }
      return out;
    };
    for (const Shape& s : {S(3, 4), S(1, 1), S(1, 5), S(4, 1)}) {
      cs.push_back({"softmax_cross_entropy_" + shape_tag(s),
                    opid("softmax_cross_entropy"),
                    {s, s},
                    {Dom{-2.0, 2.0}, Dom{0.0, 1.0}},
                    [](V v) { return matgrad::softmax_cross_entropy(v[0], v[1]); },
                    xent_ref});
      cs.push_back({"softmax_cross_entropy_vjp_" + shape_tag(s),
                    opid("softmax_cross_entropy_vjp"),
                    {s, s, S(s.rows)},
                    {Dom{-2.0, 2.0}, Dom{0.0, 1.0}, Dom{-2.0, 2.0}},
                    [](V v) { return matgrad::apply(opid("softmax_cross_entropy_vjp"), {v[0], v[1], v[2]}); },
                    xent_vjp_ref});
    }
    // large logits: the shift by the row maximum matters
    cs.push_back({"softmax_cross_entropy_shifted_m3x4",
                  opid("softmax_cross_entropy"),
                  {S(3, 4), S(3, 4)},
                  {Dom{700.0, 702.0}, Dom{0.0, 1.0}},
                  [](V v) { return matgrad::softmax_cross_entropy(v[0], v[1]); },
                  xent_ref});
  }

  // ---- where(mask, a, b): the mask is a constant (every third element false) ----
  struct Wh {
    Shape a, b, mask;
  };
  for (const Wh& w : {Wh{S(3, 4), S(3, 4), S(3, 4)}, Wh{S(3, 4), S(4), S(3, 4)}, Wh{S(3, 1), S(1, 4), S(3, 4)},
                      Wh{S(), S(5), S(5)}, Wh{S(3, 4), S(3, 4), S(4)}, Wh{S(3, 4), S(), S(3, 1)}}) {
    const Shape ms = w.mask;
    auto mask_data = [ms] {
      std::vector<double> m;
      for (std::int64_t k = 0; k < ms.size(); ++k) m.push_back(k % 3 != 1 ? 1.0 : 0.0);
      return m;
    };
    cs.push_back({"where_" + shape_tag(w.a) + "_" + shape_tag(w.b) + "_mask_" + shape_tag(ms),
                  opid("where"),
                  {w.a, w.b},
                  {},
                  [ms, mask_data](V v) { return matgrad::where(leaf(ms, DType::f64, mask_data(), false), v[0], v[1]); },
                  [ms, mask_data](const std::vector<Input>& in) {
                    const Input m{ms, mask_data()};
                    const Input ab = broadcast2(in[0], in[1], [](double, double) { return 0.0; });
                    const Input out0 = broadcast2(m, ab, [](double, double) { return 0.0; });
                    const Input a = ref_broadcast_to(out0.shape)({in[0]}), b = ref_broadcast_to(out0.shape)({in[1]});
                    const Input mm = ref_broadcast_to(out0.shape)({m});
                    Input out{out0.shape, {}};
                    for (std::size_t k = 0; k < mm.data.size(); ++k)
                      out.data.push_back(mm.data[k] != 0 ? a.data[k] : b.data[k]);
                    return out;
                  }});
  }

  // ---- concatenate / stack ----
  struct Cc {
    const char* name;
    std::vector<Shape> shapes;
    int axis;
  };
  const Cc concats[] = {
      {"v3_v2", {S(3), S(2)}, 0},
      {"v1_v1_axism1", {S(1), S(1)}, -1},
      {"m2x3_m1x3_axis0", {S(2, 3), S(1, 3)}, 0},
      {"m2x3_m1x3_axism2", {S(2, 3), S(1, 3)}, -2},
      {"m3x2_m3x1_axism1", {S(3, 2), S(3, 1)}, -1},
      {"m2x1_m2x3_m2x1_axis1", {S(2, 1), S(2, 3), S(2, 1)}, 1},
      {"m2x2_alone_axis0", {S(2, 2)}, 0},
      {"m5x4_m6x4_m7x4_m1x4_axis0", {S(5, 4), S(6, 4), S(7, 4), S(1, 4)}, 0},  // > 3 parents, > 128 bytes
  };
  for (const Cc& cc : concats) {
    const int ax = cc.axis;
    cs.push_back({std::string("concat_") + cc.name,
                  opid("concatenate"),
                  cc.shapes,
                  {},
                  [ax](V v) { return matgrad::concatenate(v, ax); },
                  [ax](const std::vector<Input>& in) {
                    const bool rows = in[0].shape.ndim == 2 && (ax == 0 || ax == -2);
                    std::vector<Eigen::MatrixXd> ms;
                    Eigen::Index R = 0, C = 0;
                    for (const Input& x : in) {
                      ms.push_back(x.shape.ndim == 2 ? mat2d(x) : unflat(x.data, 1, x.shape.cols));
                      R = rows ? R + ms.back().rows() : ms.back().rows();
                      C = rows ? ms.back().cols() : C + ms.back().cols();
                    }
                    Eigen::MatrixXd o(R, C);
                    Eigen::Index at = 0;
                    for (const Eigen::MatrixXd& m : ms) {
                      if (rows)
                        o.middleRows(at, m.rows()) = m;
                      else
                        o.middleCols(at, m.cols()) = m;
                      at += rows ? m.rows() : m.cols();
                    }
                    return input_of(o, in[0].shape.ndim == 1 ? S(C) : S(R, C));
                  }});
  }
  // np.stack ends in a concat of reshaped operands
  cs.push_back({"concat_stack_0d_0d",
                opid("concatenate"),
                {S(), S()},
                {},
                [](V v) { return matgrad::stack(v, 0); },
                [](const std::vector<Input>& in) { return Input{S(2), {in[0].data[0], in[1].data[0]}}; }});
  for (int ax : {0, -1})
    cs.push_back({std::string("concat_stack_v3_v3_axis") + (ax ? "m1" : "0"),
                  opid("concatenate"),
                  {S(3), S(3)},
                  {},
                  [ax](V v) { return matgrad::stack(v, ax); },
                  [ax](const std::vector<Input>& in) {
                    Eigen::MatrixXd o(2, 3);
                    o.row(0) = unflat(in[0].data, 1, 3);
                    o.row(1) = unflat(in[1].data, 1, 3);
                    return ax == 0 ? input_of(o, S(2, 3)) : input_of(o.transpose(), S(3, 2));
                  }});

  // ---- block / unblock: a window of the storage and its adjoint ----
  struct Bl {
    Shape x;
    std::int64_t r0, c0;
    Shape s;
  };
  for (const Bl& b : {Bl{S(4, 5), 1, 2, S(2, 3)}, Bl{S(3, 4), 2, 0, S(4)}, Bl{S(3, 4), 0, 3, S(3, 1)},
                      Bl{S(5), 0, 1, S(3)}, Bl{S(3, 4), 1, 1, S()}, Bl{S(3, 4), 0, 0, S(3, 4)}}) {
    const std::int64_t r0 = b.r0, c0 = b.c0;
    const Shape s = b.s;
    cs.push_back(
        {"block_" + shape_tag(b.x) + "_at" + std::to_string(r0) + "_" + std::to_string(c0) + "_" + shape_tag(s),
         opid("block"),
         {b.x},
         {},
         [r0, c0, s](V v) { return matgrad::block(v[0], r0, c0, s); },
         [r0, c0, s](const std::vector<Input>& in) {
           const Eigen::MatrixXd x = unflat(in[0].data, in[0].shape.rows, in[0].shape.cols);
           return input_of(x.block(r0, c0, s.rows, s.cols), s);
         }});
  }
  for (const Bl& b :
       {Bl{S(2, 3), 1, 2, S(4, 5)}, Bl{S(4), 2, 0, S(3, 4)}, Bl{S(3), 0, 1, S(5)}, Bl{S(), 1, 1, S(3, 4)}}) {
    matgrad::Attr at;
    at.offset = b.r0;
    at.offset2 = b.c0;
    at.shape = b.s;
    cs.push_back({"unblock_" + shape_tag(b.x) + "_at" + std::to_string(b.r0) + "_" + std::to_string(b.c0) + "_in_" +
                      shape_tag(b.s),
                  opid("unblock"),
                  {b.x},
                  {},
                  [at](V v) { return matgrad::apply(opid("unblock"), {v[0]}, at); },
                  [at](const std::vector<Input>& in) {
                    Eigen::MatrixXd o = Eigen::MatrixXd::Zero(at.shape.rows, at.shape.cols);
                    o.block(at.offset, at.offset2, in[0].shape.rows, in[0].shape.cols) =
                        unflat(in[0].data, in[0].shape.rows, in[0].shape.cols);
                    return input_of(o, at.shape);
                  }});
  }

  // ---- gather / scatter_add: flat indices in a float64 constant (repeats sum their cotangents) ----
  struct Ga {
    Shape x;
    std::vector<std::int64_t> idx;
    Shape s;
  };
  for (const Ga& g : {Ga{S(3, 4), {0, 5, 5, 11, 3, 7}, S(2, 3)}, Ga{S(5), {4, 0, 0, 2}, S(4)}, Ga{S(3, 4), {6}, S()},
                      Ga{S(2, 2), {3, 2, 1, 0, 3, 3, 0}, S(7)}, Ga{S(), {0, 0, 0}, S(3, 1)}}) {
    const std::vector<std::int64_t> idx = g.idx;
    const Shape s = g.s;
    cs.push_back({"gather_" + shape_tag(g.x) + "_to_" + shape_tag(s),
                  opid("gather"),
                  {g.x},
                  {},
                  [idx, s](V v) { return matgrad::gather(v[0], idx, s); },
                  [idx, s](const std::vector<Input>& in) {
                    Input out{s, {}};
                    for (std::int64_t k : idx) out.data.push_back(in[0].data[std::size_t(k)]);
                    return out;
                  }});
  }
  for (const Ga& g : {Ga{S(2, 3), {0, 5, 5, 11, 3, 7}, S(3, 4)}, Ga{S(4), {4, 0, 0, 2}, S(5)}, Ga{S(), {6}, S(3, 4)},
                      Ga{S(7), {3, 2, 1, 0, 3, 3, 0}, S(2, 2)}}) {
    std::vector<double> idx;
    for (std::int64_t k : g.idx) idx.push_back(double(k));
    const Shape gs = g.x;
    matgrad::Attr at;
    at.shape = g.s;
    cs.push_back({"scatter_add_" + shape_tag(g.x) + "_into_" + shape_tag(g.s),
                  opid("scatter_add"),
                  {g.x},
                  {},
                  [idx, gs, at](V v) {
                    return matgrad::apply(opid("scatter_add"), {v[0], leaf(gs, DType::f64, idx, false)}, at);
                  },
                  [idx, at](const std::vector<Input>& in) {
                    Input out{at.shape, std::vector<double>(std::size_t(at.shape.size()), 0.0)};
                    for (std::size_t k = 0; k < idx.size(); ++k) out.data[std::size_t(idx[k])] += in[0].data[k];
                    return out;
                  }});
  }

  // ---- np.diag both ways (diag_part of a matrix, diag_embed of a vector), offset k ----
  for (const auto& p :
       {std::make_pair(S(3, 4), 0), std::make_pair(S(3, 4), 1), std::make_pair(S(3, 4), -2), std::make_pair(S(4, 2), 0),
        std::make_pair(S(4, 2), -1), std::make_pair(S(1, 1), 0), std::make_pair(S(3, 4), 5)}) {
    const std::int64_t k = p.second;
    cs.push_back({"diag_part_" + shape_tag(p.first) + "_k" + (k < 0 ? "m" + std::to_string(-k) : std::to_string(k)),
                  opid("diag_part"),
                  {p.first},
                  {},
                  [k](V v) { return matgrad::diag(v[0], k); },
                  [k](const std::vector<Input>& in) {
                    const Eigen::MatrixXd x = mat2d(in[0]);
                    Input out{S(0), {}};
                    for (Eigen::Index i = 0; i < x.rows(); ++i)
                      if (i + k >= 0 && i + k < x.cols()) out.data.push_back(x(i, i + k));
                    out.shape = S(std::int64_t(out.data.size()));
                    return out;
                  }});
  }
  for (const auto& p :
       {std::make_pair(S(3), 0), std::make_pair(S(3), 1), std::make_pair(S(3), -2), std::make_pair(S(1), 0)}) {
    const std::int64_t k = p.second;
    cs.push_back({"diag_embed_" + shape_tag(p.first) + "_k" + (k < 0 ? "m" + std::to_string(-k) : std::to_string(k)),
                  opid("diag_embed"),
                  {p.first},
                  {},
                  [k](V v) { return matgrad::diag(v[0], k); },
                  [k](const std::vector<Input>& in) {
                    const std::int64_t n = in[0].shape.cols + (k < 0 ? -k : k);
                    Eigen::MatrixXd o = Eigen::MatrixXd::Zero(n, n);
                    for (std::int64_t i = 0; i < in[0].shape.cols; ++i)
                      o(k < 0 ? i - k : i, k > 0 ? i + k : i) = in[0].data[std::size_t(i)];
                    return input_of(o, S(n, n));
                  }});
  }

  // ---- empty matrices (NumPy: det of a 0 x 0 matrix is 1) ----
  cs.push_back({"empty_det_m0x0",
                opid("det"),
                {S(0, 0)},
                {},
                [](V v) { return matgrad::det(v[0]); },
                [](const std::vector<Input>&) { return Input{S(), {1.0}}; }});
  cs.push_back({"empty_logdet_m0x0",
                opid("logdet"),
                {S(0, 0)},
                {},
                [](V v) { return matgrad::logdet(v[0]); },
                [](const std::vector<Input>&) { return Input{S(), {0.0}}; }});
  cs.push_back({"empty_inv_m0x0",
                opid("inv"),
                {S(0, 0)},
                {},
                [](V v) { return matgrad::inv(v[0]); },
                [](const std::vector<Input>&) { return Input{S(0, 0), {}}; }});
  cs.push_back({"empty_solve_m0x0_v0",
                opid("solve"),
                {S(0, 0), S(0)},
                {},
                [](V v) { return matgrad::solve(v[0], v[1]); },
                [](const std::vector<Input>&) { return Input{S(0), {}}; }});
  cs.push_back({"empty_solve_m3x3_m3x0",
                opid("solve"),
                {S(3, 3), S(3, 0)},
                {kWell, Dom{}},
                [](V v) { return matgrad::solve(v[0], v[1]); },
                [](const std::vector<Input>&) { return Input{S(3, 0), {}}; }});
  // Cases added later go here, at the end: a case's inputs are drawn with its index as the seed,
  // so appending keeps every earlier case's inputs as they were.
  // matrix_power: an entry point composed of matmul and inv (no registry op of its own)
  for (const Shape& s : {S(1, 1), S(2, 2), S(3, 3), S(4, 4)}) {
    const std::string t = shape_tag(s);
    for (int n : {2, 3, -2})  // (0 is a constant and 1 the input itself: no matmul node)
      cs.push_back({"matrix_power_" + std::string(n < 0 ? "m" : "") + std::to_string(std::abs(n)) + "_" + t,
                    opid("matmul"),
                    {s},
                    {kWell},
                    [n](V v) { return matgrad::matrix_power(v[0], n); },
                    [s, n](const std::vector<Input>& in) {
                      const Eigen::MatrixXd a = mat2d(in[0]);
                      Eigen::MatrixXd r = Eigen::MatrixXd::Identity(a.rows(), a.cols());
                      const Eigen::MatrixXd b = n < 0 ? inv_ref(a) : a;
                      for (int k = 0; k < std::abs(n); ++k) r = r * b;
                      return input_of(r, s);
                    }});
  }

  // ---- kron and its two contractions (the VJPs, each other's VJPs) ----
  auto kron_ref = [](const Eigen::MatrixXd& a, const Eigen::MatrixXd& b) {
    Eigen::MatrixXd k(a.rows() * b.rows(), a.cols() * b.cols());
    for (Eigen::Index i = 0; i < a.rows(); ++i)
      for (Eigen::Index j = 0; j < a.cols(); ++j) k.block(i * b.rows(), j * b.cols(), b.rows(), b.cols()) = a(i, j) * b;
    return k;
  };
  for (const auto& p : {std::make_pair(S(2, 3), S(2, 2)), std::make_pair(S(1, 1), S(3, 2)),
                        std::make_pair(S(3, 1), S(1, 4)), std::make_pair(S(1, 2), S(1, 1))}) {
    const Shape as = p.first, bs = p.second;
    const Shape ks = S(as.rows * bs.rows, as.cols * bs.cols);
    const std::string t = shape_tag(as) + "_" + shape_tag(bs);
    cs.push_back(
        {"kron_" + t,
         opid("kron"),
         {as, bs},
         {},
         [](V v) { return matgrad::kron(v[0], v[1]); },
         [kron_ref, ks](const std::vector<Input>& in) { return input_of(kron_ref(mat2d(in[0]), mat2d(in[1])), ks); }});
    matgrad::Attr sa, sb;
    sa.shape = as;
    sb.shape = bs;
    cs.push_back({"kron_left_" + t,
                  opid("kron_left"),
                  {ks, bs},
                  {},
                  [sa](V v) { return matgrad::apply(opid("kron_left"), {v[0], v[1]}, sa); },
                  [as](const std::vector<Input>& in) {
                    const Eigen::MatrixXd g = mat2d(in[0]), b = mat2d(in[1]);
                    Eigen::MatrixXd c(as.rows, as.cols);
                    for (Eigen::Index i = 0; i < c.rows(); ++i)
                      for (Eigen::Index j = 0; j < c.cols(); ++j)
                        c(i, j) = g.block(i * b.rows(), j * b.cols(), b.rows(), b.cols()).cwiseProduct(b).sum();
                    return input_of(c, as);
                  }});
    cs.push_back({"kron_right_" + t,
                  opid("kron_right"),
                  {ks, as},
                  {},
                  [sb](V v) { return matgrad::apply(opid("kron_right"), {v[0], v[1]}, sb); },
                  [bs](const std::vector<Input>& in) {
                    const Eigen::MatrixXd g = mat2d(in[0]), a = mat2d(in[1]);
                    Eigen::MatrixXd d = Eigen::MatrixXd::Zero(bs.rows, bs.cols);
                    for (Eigen::Index i = 0; i < a.rows(); ++i)
                      for (Eigen::Index j = 0; j < a.cols(); ++j)
                        d += a(i, j) * g.block(i * bs.rows, j * bs.cols, bs.rows, bs.cols);
                    return input_of(d, bs);
                  }});
  }

  // ---- matrix functions (matfun.cpp) ----
  const Dom kSepSym{-1.0, 1.0, 0.0, sep_sym};
  const Dom kSepRect{-1.0, 1.0, 0.0, sep_rect};
  const Dom kNearId{-1.0, 1.0, 0.0, near_identity};
  for (const Shape& s : {S(1, 1), S(2, 2), S(3, 3)}) {
    const std::string t = shape_tag(s);
    const std::int64_t n = s.rows;
    cs.push_back({"eigvalsh_" + t,
                  opid("eigvalsh"),
                  {s},
                  {kSepSym},
                  [](V v) { return matgrad::eigvalsh(v[0]); },
                  [n](const std::vector<Input>& in) {
                    Eigen::VectorXd w;
                    Eigen::MatrixXd q;
                    sym_eig_ref(mat2d(in[0]), w, q);
                    return input_of(w, S(n));
                  }});
    // the packed (w, V) node itself (the front end returns two unpacks of it)
    cs.push_back({"eigh_" + t,
                  opid("eigh"),
                  {s},
                  {kSepSym},
                  [](V v) { return matgrad::apply(opid("eigh"), {v[0]}); },
                  [](const std::vector<Input>& in) {
                    Eigen::VectorXd w;
                    Eigen::MatrixXd q;
                    sym_eig_ref(mat2d(in[0]), w, q);
                    return packed({w.transpose(), q});
                  }});
    cs.push_back({"expm_" + t,
                  opid("expm"),
                  {s},
                  {},
                  [](V v) { return matgrad::expm(v[0]); },
                  [s](const std::vector<Input>& in) { return input_of(expm_ref(mat2d(in[0])), s); }});
    cs.push_back({"logm_" + t,
                  opid("logm"),
                  {s},
                  {kNearId},
                  [](V v) { return matgrad::logm(v[0]); },
                  [s](const std::vector<Input>& in) { return input_of(logm_ref(mat2d(in[0])), s); }});
    // a symmetric input: the eigendecomposition forward and the Daleckii-Krein VJP
    cs.push_back({"logm_spd_" + t,
                  opid("logm"),
                  {s},
                  {kSpd},
                  [](V v) { return matgrad::logm(v[0]); },
                  [s](const std::vector<Input>& in) { return input_of(logm_ref(mat2d(in[0])), s); }});
    cs.push_back({"sqrtm_" + t,
                  opid("sqrtm"),
                  {s},
                  {kNearId},
                  [](V v) { return matgrad::sqrtm(v[0]); },
                  [s](const std::vector<Input>& in) { return input_of(sqrtm_ref(mat2d(in[0])), s); }});
    cs.push_back({"sqrtm_spd_" + t,
                  opid("sqrtm"),
                  {s},
                  {kSpd},
                  [](V v) { return matgrad::sqrtm(v[0]); },
                  [s](const std::vector<Input>& in) { return input_of(sqrtm_ref(mat2d(in[0])), s); }});
    // sqrtm's VJP: Z with R^T Z + Z R^T = C, R with eigenvalues near 1 (checked by substitution)
    cs.push_back({"sqrtm_sylvester_" + t,
                  opid("sqrtm_sylvester"),
                  {s, s},
                  {kNearId, Dom{}},
                  [](V v) { return matgrad::apply(opid("sqrtm_sylvester"), {v[0], v[1]}); },
                  [s, n](const std::vector<Input>& in) {
                    const Eigen::MatrixXd r = mat2d(in[0]), c = mat2d(in[1]);
                    // (I kron R^T + R kron I) vec(Z) = vec(C), vec stacking columns
                    const Eigen::MatrixXd I = Eigen::MatrixXd::Identity(n, n);
                    Eigen::MatrixXd k = Eigen::MatrixXd::Zero(n * n, n * n);
                    for (Eigen::Index i = 0; i < n; ++i)
                      for (Eigen::Index j = 0; j < n; ++j)
                        k.block(i * n, j * n, n, n) = I(i, j) * r.transpose() + r(i, j) * I;
                    const Eigen::VectorXd z = k.fullPivLu().solve(Eigen::Map<const Eigen::VectorXd>(c.data(), n * n));
                    return input_of(Eigen::Map<const Eigen::MatrixXd>(z.data(), n, n), s);
                  }});
    // expm's VJP: L_exp(X, E), the top-right block of e^[[X, E], [0, X]]
    cs.push_back({"expm_frechet_" + t,
                  opid("expm_frechet"),
                  {s, s},
                  {},
                  [](V v) { return matgrad::apply(opid("expm_frechet"), {v[0], v[1]}); },
                  [s, n](const std::vector<Input>& in) {
                    Eigen::MatrixXd b = Eigen::MatrixXd::Zero(2 * n, 2 * n);
                    b.topLeftCorner(n, n) = b.bottomRightCorner(n, n) = mat2d(in[0]);
                    b.topRightCorner(n, n) = mat2d(in[1]);
                    return input_of(expm_ref(b).topRightCorner(n, n), s);
                  }});
    // logm's VJP: L_log(X, E), the top-right block of log [[X, E], [0, X]]; a general and a
    // symmetric X (the Schur and the Daleckii-Krein paths)
    for (const auto& [name, dom] : {std::pair{"logm_frechet_", kNearId}, std::pair{"logm_frechet_spd_", kSpd}})
      cs.push_back({name + t,
                    opid("logm_frechet"),
                    {s, s},
                    {dom, Dom{}},
                    [](V v) { return matgrad::apply(opid("logm_frechet"), {v[0], v[1]}); },
                    [s, n](const std::vector<Input>& in) {
                      Eigen::MatrixXd b = Eigen::MatrixXd::Zero(2 * n, 2 * n);
                      b.topLeftCorner(n, n) = b.bottomRightCorner(n, n) = mat2d(in[0]);
                      b.topRightCorner(n, n) = mat2d(in[1]);
                      return input_of(logm_ref(b).topRightCorner(n, n), s);
                    }});
    // the VJP helper: F o M with F_ij = 1 / (w_j - w_i), w well separated
    matgrad::Attr ga;
    ga.shape = s;
    cs.push_back({"spectral_gap_" + t,
                  opid("spectral_gap"),
                  {S(n), s},
                  {kSpread, Dom{}},
                  [ga](V v) { return matgrad::apply(opid("spectral_gap"), {v[0], v[1]}, ga); },
                  [s](const std::vector<Input>& in) {
                    const Eigen::MatrixXd w = mat2d(in[0]), m = mat2d(in[1]);
                    Eigen::MatrixXd o = Eigen::MatrixXd::Zero(s.rows, s.cols);
                    for (Eigen::Index i = 0; i < o.rows(); ++i)
                      for (Eigen::Index j = 0; j < o.cols(); ++j)
                        if (i != j) o(i, j) = m(i, j) / (w(j) - w(i));
                    return input_of(o, s);
                  }});
  }
  for (const Shape& s : {S(1, 1), S(3, 3), S(4, 2), S(2, 4)}) {
    const std::string t = shape_tag(s);
    const std::int64_t r = std::min(s.rows, s.cols);
    auto jsvd = [](const Input& x) {
      return Eigen::JacobiSVD<Eigen::MatrixXd>(mat2d(x), Eigen::ComputeThinU | Eigen::ComputeThinV);
    };
    cs.push_back({"svdvals_" + t,
                  opid("svdvals"),
                  {s},
                  {kSepRect},
                  [](V v) { return matgrad::svdvals(v[0]); },
                  [jsvd, r](const std::vector<Input>& in) { return input_of(jsvd(in[0]).singularValues(), S(r)); }});
    // the packed (U, s, Vt) node itself
    cs.push_back({"svd_" + t,
                  opid("svd"),
                  {s},
                  {kSepRect},
                  [](V v) { return matgrad::apply(opid("svd"), {v[0]}); },
                  [jsvd](const std::vector<Input>& in) {
                    const auto d = jsvd(in[0]);
                    Eigen::MatrixXd u = d.matrixU(), v = d.matrixV();
                    signs_ref(u, &v);
                    return packed({u, d.singularValues().transpose(), v.transpose()});
                  }});
    cs.push_back({"pinv_" + t,
                  opid("pinv"),
                  {s},
                  {kSepRect},
                  [](V v) { return matgrad::pinv(v[0]); },
                  [s](const std::vector<Input>& in) {
                    const Eigen::MatrixXd a = mat2d(in[0]);
                    // full rank: A^+ = (A^T A)^-1 A^T (tall) or A^T (A A^T)^-1 (wide)
                    const Eigen::MatrixXd p = s.rows >= s.cols
                                                  ? Eigen::MatrixXd((a.transpose() * a).inverse() * a.transpose())
                                                  : Eigen::MatrixXd(a.transpose() * (a * a.transpose()).inverse());
                    return input_of(p, S(s.cols, s.rows));
                  }});
    // the VJP helper: X S^-1 (columns divided by s_j, |s_j| >= 0.1)
    matgrad::Attr da;
    da.offset = 1;
    da.shape = s;
    cs.push_back({"sv_div_" + t,
                  opid("sv_div"),
                  {S(r), S(s.rows, r)},
                  {kNonzero, Dom{}},
                  [da](V v) { return matgrad::apply(opid("sv_div"), {v[0], v[1]}, da); },
                  [](const std::vector<Input>& in) {
                    const Eigen::MatrixXd sv = mat2d(in[0]), x = mat2d(in[1]);
                    Eigen::MatrixXd o = x;
                    for (Eigen::Index j = 0; j < o.cols(); ++j) o.col(j) /= sv(j);
                    return input_of(o, S(x.rows(), x.cols()));
                  }});
  }

  // ---- softmax along an axis (logsumexp's gradient, Note [softmax along an axis]) ----
  for (const auto& r : {std::make_pair(S(3, 4), none), std::make_pair(S(3, 4), 0), std::make_pair(S(3, 4), -1),
                        std::make_pair(S(5), none), std::make_pair(S(), none)}) {
    const Shape xs = r.first;
    const int ax = r.second;
    matgrad::Attr at;
    at.axis = ax;
    cs.push_back({"softmax_" + shape_tag(xs) + "_axis" +
                      (ax == none ? std::string("None")
                       : ax < 0   ? "m" + std::to_string(-ax)
                                  : std::to_string(ax)),
                  opid("softmax"),
                  {xs},
                  {},
                  [at](V v) { return matgrad::apply(opid("softmax"), {v[0]}, at); },
                  [xs, ax](const std::vector<Input>& in) {
                    Input out{xs, in[0].data};
                    const bool whole = ax == none || xs.ndim < 2;
                    const std::int64_t nslices = whole ? 1 : (ax == 0 ? xs.cols : xs.rows);
                    const std::int64_t len = whole ? xs.size() : (ax == 0 ? xs.rows : xs.cols);
                    for (std::int64_t k = 0; k < nslices; ++k) {
                      auto at_i = [&](std::int64_t i) {
                        return std::size_t(whole ? i : (ax == 0 ? i * xs.cols + k : k * xs.cols + i));
                      };
                      std::vector<double> v;
                      for (std::int64_t i = 0; i < len; ++i) v.push_back(in[0].data[at_i(i)]);
                      const double l = lse_ref(v);
                      for (std::int64_t i = 0; i < len; ++i) out.data[at_i(i)] = std::exp(v[std::size_t(i)] - l);
                    }
                    return out;
                  }});
  }

  return cs;
}

const std::vector<OpCase>& cases() {
  static const std::vector<OpCase> c = all_cases();
  return c;
}

class OpTest : public ::testing::TestWithParam<std::tuple<std::size_t, DType>> {
 protected:
  const OpCase& c() const { return cases()[std::get<0>(GetParam())]; }
  DType dt() const { return std::get<1>(GetParam()); }
  std::uint32_t seed() const { return 1000u + std::uint32_t(std::get<0>(GetParam())); }
  GradCheck opts() const {
    GradCheck g;
    g.eps = c().eps;
    g.tol_scale = c().tol_scale;
    g.check_dtype = c().same_dtype_out;
    return g;
  }
};

TEST_P(OpTest, ForwardMatchesClosedForm) {
  std::vector<Input> xs = draw(c(), seed());
  for (Input& x : xs) x = round_to(x, dt());
  std::vector<NodeRef> in;
  for (const Input& x : xs) in.push_back(leaf(x, dt()));
  NodeRef out = c().f(in);
  const Input want = c().ref(xs);
  EXPECT_EQ(out->shape.str(), want.shape.str());
  EXPECT_EQ(out->shape, want.shape);
  EXPECT_EQ(out->op, c().op) << "the case must exercise " << matgrad::op_name(c().op);
  if (c().same_dtype_out) {
    EXPECT_EQ(out->dtype, dt());
  }
  EXPECT_TRUE(out->requires_grad);
  // A cast to float32 rounds: compare with float32's tolerance.
  EXPECT_TRUE(all_close(values(out), want.data, value_tol(c().same_dtype_out ? dt() : DType::f32)));
}

TEST_P(OpTest, GradientMatchesFiniteDifferences) { EXPECT_TRUE(check_grad(c().f, draw(c(), seed()), dt(), opts())); }

TEST_P(OpTest, SecondOrderGradNodesMatchFiniteDifferences) {
  EXPECT_TRUE(check_grad(grad_of(c().f), draw(c(), seed()), dt(), opts()));
}

TEST_P(OpTest, SecondOrderBackwardCreateGraphMatchesFiniteDifferences) {
  EXPECT_TRUE(check_grad(backward_grad_of(c().f), draw(c(), seed()), dt(), opts()));
}

// jacobian_values runs reverse sweeps when out.size() <= the inputs' total size and forward
// sweeps otherwise (both batched, Note [batched sweeps]). Each case forces both: an unused
// input of out.size() + 1 elements gives reverse sweeps, the output flattened and padded with
// more constant zeros than there are input elements gives forward sweeps. Both must equal
// jacobian_nodes (one unbatched reverse sweep per output element, as graph nodes).
TEST_P(OpTest, JacobianReverseForwardAndNodesAgree) {
  std::vector<Input> xs = draw(c(), seed());
  for (Input& x : xs) x = round_to(x, dt());
  std::vector<NodeRef> in;
  std::int64_t total = 0;
  for (const Input& x : xs) {
    in.push_back(leaf(x, dt()));
    total += x.shape.size();
  }
  NodeRef out = c().f(in);
  const std::int64_t m = out->shape.size();

  std::vector<NodeRef> in_rev = in;
  in_rev.push_back(leaf(S(m + 1), dt(), std::vector<double>(std::size_t(m + 1), 0.5)));
  const std::vector<Val> jr = matgrad::jacobian_values(out, in_rev);
  NodeRef padded = matgrad::concatenate({matgrad::reshape(out, S(m)), matgrad::full(S(total + 1), out->dtype, 0.0)}, 0);
  const std::vector<Val> jf = matgrad::jacobian_values(padded, in);
  const std::vector<NodeRef> jn = matgrad::jacobian_nodes(out, in);
  ASSERT_EQ(jr.size(), in.size() + 1);
  ASSERT_EQ(jf.size(), in.size());
  ASSERT_EQ(jn.size(), in.size());

  for (std::size_t k = 0; k < in.size(); ++k) {
    SCOPED_TRACE("input " + std::to_string(k));
    const std::int64_t n = xs[k].shape.size();
    ASSERT_EQ(jr[k].shape(), S(m, n));
    ASSERT_EQ(jf[k].shape(), S(m + total + 1, n));
    ASSERT_EQ(jn[k]->shape, S(m, n));
    EXPECT_EQ(jr[k].dtype(), dt());
    EXPECT_EQ(jf[k].dtype(), dt());
    const std::vector<double> want = values(jn[k]);
    double scale = 1.0;
    for (double v : want) scale = std::max(scale, std::abs(v));
    const Tol t = dt() == DType::f64 ? Tol{1e-10, 1e-12 * scale} : Tol{1e-4, 1e-5 * scale};
    EXPECT_TRUE(all_close(values(jr[k]), want, t)) << "reverse sweeps vs jacobian_nodes";
    std::vector<double> f = values(jf[k]);
    const std::vector<double> pad(f.begin() + std::ptrdiff_t(m * n), f.end());
    f.resize(std::size_t(m * n));
    EXPECT_TRUE(all_close(f, want, t)) << "forward sweeps vs jacobian_nodes";
    EXPECT_TRUE(all_close(pad, std::vector<double>(pad.size(), 0.0), Tol{0, 0})) << "rows of the constant padding";
  }
  EXPECT_TRUE(all_close(values(jr.back()), std::vector<double>(std::size_t(m * (m + 1)), 0.0), Tol{0, 0}))
      << "the unused input";
}

// Compiled programs (matgrad/program.hpp) compute what eager evaluation computes: the value and
// gradient of a scalar made of the case's output, its Jacobian and its Hessian, optimised and
// not, and a second replay allocates nothing.
TEST_P(OpTest, CompiledProgramsMatchEager) {
  std::vector<Input> xs = draw(c(), seed());
  for (Input& x : xs) x = round_to(x, dt());
  std::vector<NodeRef> in;
  std::vector<Val> args;
  std::vector<int> all;
  for (const Input& x : xs) {
    in.push_back(leaf(x, dt()));
    args.push_back(in.back()->value());
    all.push_back(int(all.size()));
  }
  NodeRef out = c().f(in);
  Rng rng(seed() + 7);
  NodeRef w = leaf(rng.input(out->shape), out->dtype, false);
  NodeRef loss = matgrad::sum(out * w);
  const std::vector<Val> grads = matgrad::grad_values(loss, in);
  const Tol t = value_tol(c().same_dtype_out ? dt() : DType::f32);
  for (bool optimize : {false, true}) {
    SCOPED_TRACE(optimize ? "optimized" : "not optimized");
    const matgrad::Program p = matgrad::compile_value_and_grad(in, loss, all, optimize);
    std::vector<Val> got = p.run(args);
    ASSERT_EQ(got.size(), in.size() + 1);
    EXPECT_TRUE(all_close(values(got[0]), values(loss), t)) << "value\n" << p.str();
    for (std::size_t k = 0; k < in.size(); ++k) {
      EXPECT_EQ(got[k + 1].shape(), in[k]->shape);
      EXPECT_EQ(got[k + 1].dtype(), in[k]->dtype);
      EXPECT_TRUE(all_close(values(got[k + 1]), values(grads[k]), t)) << "gradient " << k << "\n" << p.str();
    }
    const std::int64_t before = matgrad::replay_stats().pool_allocations;
    p.run(args);
    EXPECT_EQ(matgrad::replay_stats().pool_allocations, before) << "a second replay allocated";
  }
  const std::vector<Val> jac = matgrad::jacobian_values(out, in);
  const std::vector<Val> jp = matgrad::compile_jacobian(in, out, all).run(args);
  ASSERT_EQ(jp.size(), in.size());
  for (std::size_t k = 0; k < in.size(); ++k) {
    EXPECT_EQ(jp[k].shape(), jac[k].shape());
    EXPECT_TRUE(all_close(values(jp[k]), values(jac[k]), t)) << "jacobian block " << k;
  }
  const std::vector<std::vector<Val>> hess = matgrad::hessian_values(loss, in);
  const std::vector<Val> hp = matgrad::compile_hessian(in, loss, all).run(args);
  ASSERT_EQ(hp.size(), in.size() * in.size());
  for (std::size_t i = 0; i < in.size(); ++i)
    for (std::size_t j = 0; j < in.size(); ++j) {
      double scale = 1.0;
      for (double v : values(hess[i][j])) scale = std::max(scale, std::abs(v));
      EXPECT_TRUE(all_close(values(hp[i * in.size() + j]), values(hess[i][j]), Tol{t.rtol * 10, t.atol * scale * 10}))
          << "hessian block " << i << ", " << j;
    }
}

INSTANTIATE_TEST_SUITE_P(Registry, OpTest,
                         ::testing::Combine(::testing::Range<std::size_t>(0, cases().size()),
                                            ::testing::Values(DType::f64, DType::f32)),
                         [](const ::testing::TestParamInfo<OpTest::ParamType>& info) {
                           return cases()[std::get<0>(info.param)].name + "_" + dtype_str(std::get<1>(info.param));
                         });

// ---- piecewise-constant helpers: values, and no edges (zero derivative) ----

struct ZeroDerivCase {
  OpId op;
  int arity;
  std::function<double(double, double)> ref;
};

const ZeroDerivCase kZeroDeriv[] = {
    {opid("sign"), 1, [](double x, double) { return sign(x); }},
    {opid("step"), 1, [](double x, double) { return x > 0 ? 1.0 : 0.0; }},
    {opid("nonzero"), 1, [](double x, double) { return x != 0 ? 1.0 : 0.0; }},
    {opid("max_weight"), 2, [](double x, double y) { return x > y    ? 1.0
                                                            : x == y ? 0.5
                                                                     : 0.0; }},
    {opid("min_weight"), 2, [](double x, double y) { return x < y    ? 1.0
                                                            : x == y ? 0.5
                                                                     : 0.0; }},
};

TEST(ZeroDerivativeOps, ValuesAndNoEdges) {
  for (DType d : {DType::f64, DType::f32})
    for (const ZeroDerivCase& z : kZeroDeriv) {
      SCOPED_TRACE(std::string(matgrad::op_name(z.op)) + " " + dtype_str(d));
      // Exact zeros and ties on purpose.
      const Input x{S(2, 3), {-1.5, 0.0, 2.0, 0.5, -0.0, 3.0}};
      const Input y{S(3), {0.5, 0.0, 2.0}};
      NodeRef lx = leaf(x, d), ly = leaf(y, d);
      NodeRef out = z.arity == 1 ? matgrad::apply(z.op, {lx}) : matgrad::apply(z.op, {lx, ly});
      EXPECT_FALSE(out->requires_grad);
      EXPECT_EQ(out->nparents, 0);
      Input want = z.arity == 1 ? ref_unary([&](double v) { return z.ref(v, 0); })({x}) : broadcast2(x, y, z.ref);
      EXPECT_EQ(out->shape, want.shape);
      EXPECT_TRUE(all_close(values(out), want.data, value_tol(d)));
    }
}

// max_weight_axis(x, m): 1 / (number of ties) where x equals the slice's maximum m along
// attr.axis, else 0 (the VJP weights of max; zero derivative). Not elementwise: its own test.
const OpId kZeroDerivAxis[] = {opid("max_weight_axis")};
// Ops whose own VJP is not implemented (a clear error), checked by dedicated tests below.
// ops with a test of their own: adj_t_vjp (Singular tests), seed_matmul (test_program.cpp)
const OpId kDedicated[] = {opid("adj_t_vjp"), opid("seed_matmul")};

TEST(ZeroDerivativeOps, MaxWeightAxisSplitsTiesAlongTheAxis) {
  const int none = matgrad::kAxisNone;
  for (DType d : {DType::f64, DType::f32}) {
    SCOPED_TRACE(dtype_str(d));
    // Ties on purpose: 0.0 and -0.0 are equal; column 2 has a three-way tie.
    const Input x{S(3, 3), {3.0, 0.0, 1.0, -1.0, -0.0, 1.0, 3.0, -2.0, 1.0}};
    struct C {
      int axis;
      Input m;
      std::vector<double> want;
    };
    const C cases_[] = {
        {none, {S(), {3.0}}, {0.5, 0, 0, 0, 0, 0, 0.5, 0, 0}},
        {0, {S(3), {3.0, 0.0, 1.0}}, {0.5, 0.5, 1.0 / 3, 0, 0.5, 1.0 / 3, 0.5, 0, 1.0 / 3}},
        {1, {S(3), {3.0, 1.0, 3.0}}, {1, 0, 0, 0, 0, 1, 1, 0, 0}},
        {-1, {S(3), {3.0, 1.0, 3.0}}, {1, 0, 0, 0, 0, 1, 1, 0, 0}},
    };
    for (const C& c : cases_) {
      SCOPED_TRACE("axis " + std::to_string(c.axis));
      NodeRef lx = leaf(x, d), lm = leaf(c.m, d);
      matgrad::Attr a;
      a.axis = c.axis;
      NodeRef out = matgrad::apply(opid("max_weight_axis"), {lx, lm}, a);
      EXPECT_FALSE(out->requires_grad);
      EXPECT_EQ(out->nparents, 0);
      EXPECT_EQ(out->shape, S(3, 3));
      EXPECT_TRUE(all_close(values(out), c.want, value_tol(d)));
      // the maximum computed by the engine gives the same weights
      if (c.axis != none) {
        NodeRef w = matgrad::apply(opid("max_weight_axis"), {lx, matgrad::max(lx, c.axis)}, a);
        EXPECT_TRUE(all_close(values(w), c.want, value_tol(d)));
      }
    }
    // max's gradient splits a tie equally (as np / torch.amax)
    NodeRef lx = leaf(x, d);
    auto g = matgrad::grad_values(matgrad::sum(matgrad::max(lx, 0)), {lx});
    EXPECT_TRUE(all_close(values(g[0]), {0.5, 0.5, 1.0 / 3, 0, 0.5, 1.0 / 3, 0.5, 0, 1.0 / 3}, value_tol(d)));
  }
}

// ---- the registry walk: every op has a case above ----

TEST(Registry, EveryOpHasAGradientCase) {
  std::set<int> covered;
  for (const OpCase& c : cases()) covered.insert(c.op.v);
  for (const ZeroDerivCase& z : kZeroDeriv) covered.insert(z.op.v);
  for (const OpId op : kZeroDerivAxis) covered.insert(op.v);
  for (const OpId op : kDedicated) covered.insert(op.v);
  for (int i = 1; i < matgrad::op_count(); ++i) {
    const char* name = matgrad::op_name(OpId{std::uint16_t(i)});
    ASSERT_NE(name, nullptr) << "op id " << i << " has no registry entry";
    EXPECT_TRUE(covered.count(i)) << "op '" << name << "' (id " << i << ") has no test case in test_ops.cpp";
  }
  EXPECT_STREQ(matgrad::op_name(matgrad::kLeaf), "leaf");
  EXPECT_STREQ(matgrad::op_name(opid("matmul")), "matmul");
}

// ---- softmax cross-entropy: the one-hot closed form, and logits far out of exp's range ----

TEST(SoftmaxCrossEntropy, OneHotGradientIsSoftmaxMinusOneHotAndLargeLogitsStayFinite) {
  for (DType d : {DType::f64, DType::f32}) {
    SCOPED_TRACE(dtype_str(d));
    const Input z{S(2, 3), {1000.0, -1000.0, 999.0, 0.5, -0.25, 2.0}};
    const Input y{S(2, 3), {0.0, 0.0, 1.0, 1.0, 0.0, 0.0}};
    NodeRef lz = leaf(z, d), ly = leaf(y, d, false);
    NodeRef l = matgrad::softmax_cross_entropy(lz, ly);
    // row 0: lse = 1000 + log(1 + e^-1 + e^-2000) and the label's logit is 999
    const double l0 = 1.0 + std::log1p(std::exp(-1.0));
    const double lse1 = lse_ref({0.5, -0.25, 2.0});
    EXPECT_TRUE(all_close(values(l), {l0, lse1 - 0.5}, value_tol(d)));
    auto g = matgrad::grad_values(matgrad::sum(l), {lz});
    const double p00 = 1.0 / (1.0 + std::exp(-1.0));
    std::vector<double> want = {p00, 0.0, 1.0 - p00 - 1.0};
    for (double v : {0.5, -0.25, 2.0}) want.push_back(std::exp(v - lse1));
    want[3] -= 1.0;
    EXPECT_TRUE(all_close(values(g[0]), want, value_tol(d)));
  }
  // a logit of -inf whose target is 0 contributes nothing (no 0 * inf)
  const double inf = std::numeric_limits<double>::infinity();
  NodeRef lz = leaf(Input{S(1, 3), {-inf, 0.0, 0.0}}, DType::f64);
  NodeRef l = matgrad::softmax_cross_entropy(lz, leaf(Input{S(1, 3), {0.0, 1.0, 0.0}}, DType::f64, false));
  EXPECT_TRUE(all_close(values(l), {std::log(2.0)}, value_tol(DType::f64)));
  // shapes that do not match: a ShapeError naming the op and both shapes
  try {
    matgrad::softmax_cross_entropy(leaf(Input{S(2, 3), std::vector<double>(6, 0.0)}, DType::f64),
                                   leaf(Input{S(3), {0.0, 1.0, 0.0}}, DType::f64));
    ADD_FAILURE() << "no error";
  } catch (const matgrad::ShapeError& e) {
    EXPECT_NE(std::string(e.what()).find("softmax_cross_entropy"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("(2, 3)"), std::string::npos) << e.what();
  }
}

// ---- closed-form VJPs (numpy formulas), beyond finite differences ----

TEST(MatmulClosedForm, TransposeFlagsAllFourCombinations) {
  Rng rng(3);
  const Eigen::MatrixXd G = rng.matrix(3, 2);
  for (int ta = 0; ta < 2; ++ta)
    for (int tb = 0; tb < 2; ++tb) {
      SCOPED_TRACE("ta=" + std::to_string(ta) + " tb=" + std::to_string(tb));
      const Eigen::MatrixXd A = ta ? rng.matrix(4, 3) : rng.matrix(3, 4);
      const Eigen::MatrixXd B = tb ? rng.matrix(2, 4) : rng.matrix(4, 2);
      const Eigen::MatrixXd opA = ta ? Eigen::MatrixXd(A.transpose()) : A;
      const Eigen::MatrixXd opB = tb ? Eigen::MatrixXd(B.transpose()) : B;
      NodeRef a = matgrad::variable(A), b = matgrad::variable(B);
      NodeRef c = matgrad::matmul(a, b, ta, tb);
      EXPECT_EQ(c->shape, S(3, 2));
      EXPECT_TRUE(all_close(matgrad::value(c), opA * opB, value_tol(DType::f64)));
      std::vector<Val> g = matgrad::grad_values(c, {a, b}, matgrad::variable(G, false));
      // d op(A) = G op(B)^T, d op(B) = op(A)^T G; transpose back for a transposed operand.
      const Eigen::MatrixXd dopA = G * opB.transpose(), dopB = opA.transpose() * G;
      const Eigen::MatrixXd dA = ta ? Eigen::MatrixXd(dopA.transpose()) : dopA;
      const Eigen::MatrixXd dB = tb ? Eigen::MatrixXd(dopB.transpose()) : dopB;
      EXPECT_EQ(g[0].shape(), a->shape);
      EXPECT_EQ(g[1].shape(), b->shape);
      EXPECT_TRUE(all_close(unflat(values(g[0]), A.rows(), A.cols()), dA, value_tol(DType::f64)));
      EXPECT_TRUE(all_close(unflat(values(g[1]), B.rows(), B.cols()), dB, value_tol(DType::f64)));
    }
}

TEST(MatmulClosedForm, OneDimensionalOperandsFollowNumpyMatmul) {
  Rng rng(4);
  const Input v = rng.input(S(4)), w = rng.input(S(4));
  const Eigen::MatrixXd M = rng.matrix(4, 3);
  const Eigen::VectorXd vv = Eigen::Map<const Eigen::VectorXd>(v.data.data(), 4);
  const Eigen::VectorXd ww = Eigen::Map<const Eigen::VectorXd>(w.data.data(), 4);
  const Tol t = value_tol(DType::f64);

  {  // (4,) @ (4, 3) -> (3,);  d v = M g,  d M = v g^T
    NodeRef lv = leaf(v, DType::f64), lm = matgrad::variable(M);
    NodeRef out = matgrad::matmul(lv, lm);
    EXPECT_EQ(out->shape, S(3));
    EXPECT_TRUE(all_close(values(out), flat(vv.transpose() * M), t));
    const Input g = rng.input(S(3));
    const Eigen::VectorXd gg = Eigen::Map<const Eigen::VectorXd>(g.data.data(), 3);
    auto d = matgrad::grad_values(out, {lv, lm}, leaf(g, DType::f64, false));
    EXPECT_EQ(d[0].shape(), S(4));
    EXPECT_EQ(d[1].shape(), S(4, 3));
    EXPECT_TRUE(all_close(values(d[0]), flat(M * gg), t));
    EXPECT_TRUE(all_close(values(d[1]), flat(vv * gg.transpose()), t));
  }
  {  // (3, 4) @ (4,) -> (3,);  with M^T given as (4, 3) and ta
    NodeRef lm = matgrad::variable(M), lv = leaf(v, DType::f64);
    NodeRef out = matgrad::matmul(lm, lv, /*ta=*/true, false);
    EXPECT_EQ(out->shape, S(3));
    EXPECT_TRUE(all_close(values(out), flat(M.transpose() * vv), t));
    const Input g = rng.input(S(3));
    const Eigen::VectorXd gg = Eigen::Map<const Eigen::VectorXd>(g.data.data(), 3);
    auto d = matgrad::grad_values(out, {lm, lv}, leaf(g, DType::f64, false));
    EXPECT_EQ(d[0].shape(), S(4, 3));
    EXPECT_EQ(d[1].shape(), S(4));
    EXPECT_TRUE(all_close(values(d[0]), flat(vv * gg.transpose()), t));
    EXPECT_TRUE(all_close(values(d[1]), flat(M * gg), t));
  }
  {  // (4,) @ (4,) -> ();  d v = g w,  d w = g v
    NodeRef lv = leaf(v, DType::f64), lw = leaf(w, DType::f64);
    NodeRef out = matgrad::matmul(lv, lw);
    EXPECT_EQ(out->shape, S());
    EXPECT_NEAR(scalar_value(out), vv.dot(ww), 1e-14);
    auto d = matgrad::grad_values(out, {lv, lw}, leaf0(2.0, DType::f64, false));
    EXPECT_EQ(d[0].shape(), S(4));
    EXPECT_EQ(d[1].shape(), S(4));
    EXPECT_TRUE(all_close(values(d[0]), flat(2.0 * ww.transpose()), t));
    EXPECT_TRUE(all_close(values(d[1]), flat(2.0 * vv.transpose()), t));
  }
}

TEST(BroadcastClosedForm, CotangentsAreSummedBackToEachInputShape) {
  Rng rng(5);
  const Eigen::MatrixXd A = rng.matrix(3, 4), G = rng.matrix(3, 4);
  const Input row = rng.input(S(4)), col = rng.input(S(3, 1)), s = rng.input(S());
  NodeRef la = matgrad::variable(A), lr = leaf(row, DType::f64), lc = leaf(col, DType::f64), ls = leaf(s, DType::f64);
  // out = A * row + col - s  (3, 4)
  NodeRef out = la * lr + lc - ls;
  auto d = matgrad::grad_values(out, {la, lr, lc, ls}, matgrad::variable(G, false));
  const Eigen::RowVectorXd rr = Eigen::Map<const Eigen::RowVectorXd>(row.data.data(), 4);
  const Tol t = value_tol(DType::f64);
  EXPECT_EQ(d[0].shape(), S(3, 4));
  EXPECT_EQ(d[1].shape(), S(4));
  EXPECT_EQ(d[2].shape(), S(3, 1));
  EXPECT_EQ(d[3].shape(), S());
  EXPECT_TRUE(all_close(values(d[0]), flat(G.array().rowwise() * rr.array()), t));
  EXPECT_TRUE(all_close(values(d[1]), flat((G.array() * A.array()).colwise().sum()), t));
  EXPECT_TRUE(all_close(values(d[2]), flat(G.rowwise().sum()), t));
  EXPECT_NEAR(values(d[3])[0], -G.sum(), 1e-13);
}

TEST(MaximumMinimum, TiesSplitTheGradientEqually) {
  NodeRef x = leaf(S(3), DType::f64, {1.0, 2.0, 3.0});
  NodeRef y = leaf(S(3), DType::f64, {1.0, 5.0, -1.0});
  auto gmax = matgrad::grad_values(matgrad::sum(matgrad::maximum(x, y)), {x, y});
  EXPECT_EQ(values(gmax[0]), (std::vector<double>{0.5, 0.0, 1.0}));
  EXPECT_EQ(values(gmax[1]), (std::vector<double>{0.5, 1.0, 0.0}));
  auto gmin = matgrad::grad_values(matgrad::sum(matgrad::minimum(x, y)), {x, y});
  EXPECT_EQ(values(gmin[0]), (std::vector<double>{0.5, 1.0, 0.0}));
  EXPECT_EQ(values(gmin[1]), (std::vector<double>{0.5, 0.0, 1.0}));
}

TEST(Kinks, PowAtAZeroBase) {
  // x ** y at x = 0, y = 2: d/dx = y x^(y-1) = 0, d/dy = x^y log x -> 0 (as PyTorch and JAX)
  for (DType d : {DType::f64, DType::f32}) {
    NodeRef x = leaf(S(2), d, {0.0, 0.5});
    NodeRef y = leaf(S(2), d, {2.0, 3.0});
    auto g = matgrad::grad_values(matgrad::sum(matgrad::pow(x, y)), {x, y});
    EXPECT_TRUE(all_close(values(g[0]), {0.0, 3 * 0.25}, value_tol(d)));
    EXPECT_TRUE(all_close(values(g[1]), {0.0, 0.125 * std::log(0.5)}, value_tol(d)));
    // xlogy itself: 0 where x = 0, whatever log y is
    NodeRef z = apply2(opid("xlogy"), leaf(S(2), d, {0.0, 2.0}, false), leaf(S(2), d, {0.0, 0.5}, false));
    EXPECT_TRUE(all_close(values(z), {0.0, 2 * std::log(0.5)}, value_tol(d)));
  }
}

TEST(Kinks, AbsAndReluHaveZeroDerivativeAtZero) {
  for (DType d : {DType::f64, DType::f32}) {
    NodeRef x = leaf(S(3), d, {-1.0, 0.0, 2.0});
    auto ga = matgrad::grad_values(matgrad::sum(matgrad::abs(x)), {x});
    EXPECT_EQ(values(ga[0]), (std::vector<double>{-1.0, 0.0, 1.0}));
    auto gr = matgrad::grad_values(matgrad::sum(matgrad::relu(x)), {x});
    EXPECT_EQ(values(gr[0]), (std::vector<double>{0.0, 0.0, 1.0}));
  }
}

// ---- special values: the C library's answer, on the vectorised path too ----
// Each value is repeated 19 times so that Eigen's packet path and its scalar tail both see it.

::testing::AssertionResult like_libm(OpId op, DType d, const std::vector<double>& xs,
                                     const std::function<double(double)>& want) {
  for (double x : xs) {
    NodeRef in = leaf(S(19), d, std::vector<double>(19, x), false);
    const std::vector<double> got = values(apply1(op, in));
    const double xr = round_to(x, d);
    const double w = round_to(want(xr), d);
    for (std::size_t i = 0; i < got.size(); ++i) {
      const bool ok = std::isnan(w)   ? std::isnan(got[i])
                      : std::isinf(w) ? got[i] == w
                                      : close(got[i], w, d == DType::f64 ? Tol{1e-13, 0} : Tol{1e-6, 0});
      if (!ok)
        return ::testing::AssertionFailure() << matgrad::op_name(op) << "(" << xr << ") in " << dtype_str(d) << ": got "
                                             << got[i] << " at index " << i << ", expected " << w;
    }
  }
  return ::testing::AssertionSuccess();
}

const double kInf = std::numeric_limits<double>::infinity();
const double kNaN = std::numeric_limits<double>::quiet_NaN();

TEST(SpecialValues, InfinitiesNansAndRangeEnds) {
  auto sig = [](double x) { return 1 / (1 + std::exp(-x)); };
  for (DType d : {DType::f64, DType::f32}) {
    EXPECT_TRUE(like_libm(opid("exp"), d, {0.0, -50.0, 50.0, kInf, kNaN}, [](double x) { return std::exp(x); }));
    EXPECT_TRUE(like_libm(opid("log"), d, {0.0, 1.0, 1e-30, kInf, -1.0, kNaN}, [](double x) { return std::log(x); }));
    EXPECT_TRUE(like_libm(opid("sqrt"), d, {0.0, 4.0, -1.0, kNaN}, [](double x) { return std::sqrt(x); }));
    EXPECT_TRUE(like_libm(opid("tanh"), d, {kInf, -kInf, 30.0, -30.0, kNaN}, [](double x) { return std::tanh(x); }));
    EXPECT_TRUE(like_libm(opid("sigmoid"), d, {-kInf, kInf, 30.0, -30.0, kNaN}, sig));
    EXPECT_TRUE(like_libm(opid("softplus"), d, {-kInf, kInf, 60.0, -60.0, kNaN},
                          [](double x) { return x > 0 ? x + std::log1p(std::exp(-x)) : std::log1p(std::exp(x)); }));
    EXPECT_TRUE(like_libm(opid("abs"), d, {-kInf, -0.0, kNaN}, [](double x) { return std::abs(x); }));
  }
  EXPECT_TRUE(like_libm(opid("exp"), DType::f64, {709.0, 710.0, -700.0}, [](double x) { return std::exp(x); }));
  EXPECT_TRUE(like_libm(opid("exp"), DType::f32, {88.0, 89.0, -87.0}, [](double x) { return std::exp(x); }));
}

// sqrt is correctly rounded in IEEE arithmetic (and in NumPy): compare bit for bit.
::testing::AssertionResult sqrt_is_ieee(DType d) {
  std::vector<double> xs = {kInf, 0.0, 1.0, 2.0, 1e-300, 1e300};
  xs.push_back(d == DType::f64 ? 1e-310 : 1e-40);                           // subnormal
  for (int i = 0; i < 2000; ++i) xs.push_back(std::ldexp(1.0 + i / 2000.0, i % 61 - 30));
  NodeRef in = leaf(S(std::int64_t(xs.size())), d, xs, false);
  const std::vector<double> got = values(matgrad::sqrt(in));
  int bad = 0;
  std::string first;
  for (std::size_t i = 0; i < xs.size(); ++i) {
    const double x = round_to(xs[i], d);
    const double w = d == DType::f64 ? std::sqrt(x) : double(std::sqrt(float(x)));
    if (!(got[i] == w)) {
      if (!bad++)
        first = "sqrt(" + std::to_string(x) + ") = " + std::to_string(got[i]) + ", expected " + std::to_string(w);
    }
  }
  if (bad)
    return ::testing::AssertionFailure() << dtype_str(d) << ": " << bad << " of " << xs.size()
                                         << " results differ from the correctly rounded sqrt; first: " << first;
  return ::testing::AssertionSuccess();
}

TEST(SpecialValues, Float64SqrtIsCorrectlyRounded) { EXPECT_TRUE(sqrt_is_ieee(DType::f64)); }

// Regression: with Eigen 3.4's default EIGEN_FAST_MATH=1, float32 sqrt on the vectorised path
// was x * rsqrt(x) with a Newton step: sqrt(inf) = NaN, sqrt of a subnormal = 0, ~40% of
// results 1 ulp off. matgrad::core now defines EIGEN_FAST_MATH=0.
TEST(SpecialValues, Float32SqrtIsCorrectlyRounded) { EXPECT_TRUE(sqrt_is_ieee(DType::f32)); }

// Eigen 3.4's vectorised exp clamps: exp(x) for x < -708.4, -inf included, gave 5.56e-309
// (float32: 2.94e-39 below -87.3) until 19021ae.
TEST(SpecialValues, ExpUnderflowsToSubnormalsAndZero) {
  auto e = [](double x) { return std::exp(x); };
  EXPECT_TRUE(like_libm(opid("exp"), DType::f64, {-720.0, -745.2, -800.0, -kInf}, e));
  EXPECT_TRUE(like_libm(opid("exp"), DType::f32, {-90.0, -104.0, -200.0, -kInf}, e));
}

// Eigen 3.4's vectorised log clamps: log of a subnormal gave log(DBL_MIN) = -708.40 (float32:
// -87.34) until 19021ae.
TEST(SpecialValues, LogOfSubnormals) {
  auto l = [](double x) { return std::log(x); };
  EXPECT_TRUE(like_libm(opid("log"), DType::f64, {1e-310, 4.9e-324}, l));
  EXPECT_TRUE(like_libm(opid("log"), DType::f32, {1e-40, 1.4e-45}, l));
}

// relu(NaN) is NaN, as NumPy's maximum(x, 0) and PyTorch's relu (it was 0 until 19021ae).
TEST(SpecialValues, ReluPropagatesNan) {
  for (DType d : {DType::f64, DType::f32}) EXPECT_TRUE(like_libm(opid("relu"), d, {kNaN}, [](double x) { return x; }));
}

TEST(SpecialValues, MaximumAndMinimumPropagateNan) {
  for (DType d : {DType::f64, DType::f32}) {
    NodeRef a = leaf(S(4), d, {kNaN, 1.0, kNaN, -kInf});
    NodeRef b = leaf(S(4), d, {1.0, kNaN, kNaN, 2.0});
    const std::vector<double> mx = values(matgrad::maximum(a, b)), mn = values(matgrad::minimum(a, b));
    for (int i = 0; i < 3; ++i) {
      EXPECT_TRUE(std::isnan(mx[std::size_t(i)])) << "maximum, element " << i;
      EXPECT_TRUE(std::isnan(mn[std::size_t(i)])) << "minimum, element " << i;
    }
    EXPECT_EQ(mx[3], 2.0);
    EXPECT_EQ(mn[3], -kInf);
  }
}

// ---- dtypes ----

TEST(DTypes, Float32WithFloat64PromotesAndGradientsKeepTheInputDtype) {
  NodeRef x = leaf(S(3), DType::f32, {0.5, -1.0, 2.0});
  NodeRef y = leaf(S(3), DType::f64, {1.5, 2.0, -0.25});
  NodeRef out = matgrad::sum(x * y + matgrad::sin(x));
  EXPECT_EQ(out->dtype, DType::f64);
  auto g = matgrad::grad_values(out, {x, y});
  EXPECT_EQ(g[0].dtype(), DType::f32);
  EXPECT_EQ(g[1].dtype(), DType::f64);
  const std::vector<double> xs = values(x), ys = values(y);
  std::vector<double> dx, dy;
  for (int i = 0; i < 3; ++i) {
    dx.push_back(ys[i] + std::cos(xs[i]));
    dy.push_back(xs[i]);
  }
  EXPECT_TRUE(all_close(values(g[0]), dx, value_tol(DType::f32)));
  EXPECT_TRUE(all_close(values(g[1]), dy, value_tol(DType::f64)));
  // matmul promotes the same way
  NodeRef m = matgrad::matmul(x, y);
  EXPECT_EQ(m->dtype, DType::f64);
  auto gm = matgrad::grad_values(m, {x, y});
  EXPECT_EQ(gm[0].dtype(), DType::f32);
  EXPECT_TRUE(all_close(values(gm[0]), ys, value_tol(DType::f32)));
}

TEST(DTypes, ScalarAttributesAreWeakAndKeepFloat32) {
  NodeRef x = leaf(S(2), DType::f32, {0.5, 1.5});
  NodeRef out = (x * 0.9 + 0.1) / 3.0 - 1.0;
  EXPECT_EQ(out->dtype, DType::f32);
  NodeRef p = matgrad::pow(x, 2.0);
  EXPECT_EQ(p->dtype, DType::f32);
  auto g = matgrad::grad_values(matgrad::sum(out), {x});
  EXPECT_EQ(g[0].dtype(), DType::f32);
  EXPECT_TRUE(all_close(values(g[0]), {0.3, 0.3}, value_tol(DType::f32)));
}

TEST(DTypes, MixedApplyWithoutPromotionIsATypeError) {
  NodeRef x = leaf(S(2), DType::f32, {1, 2});
  NodeRef y = leaf(S(2), DType::f64, {1, 2});
  try {
    matgrad::apply(opid("add"), {x, y});
    FAIL() << "expected matgrad::TypeError";
  } catch (const matgrad::TypeError& e) {
    EXPECT_EQ(std::string(e.what()).rfind("add: ", 0), 0u) << e.what();
  }
}

// ---- Note [shared factorizations]: one LU per matrix node ----

// X^-T, d/dX of det + sum(inv) + logdet + sum(solve(X, B)) + log|det| in closed form.
Eigen::MatrixXd lu_family_grad(const Eigen::MatrixXd& X, const Eigen::MatrixXd& B) {
  const Eigen::MatrixXd Xi = inv_ref(X), XiT = Xi.transpose();
  const Eigen::MatrixXd ones_n = Eigen::MatrixXd::Ones(X.rows(), X.cols());
  const Eigen::MatrixXd ones_b = Eigen::MatrixXd::Ones(B.rows(), B.cols());
  const Eigen::MatrixXd Z = Xi * B;
  return det_ref(X) * XiT              // det
         - XiT * ones_n * XiT          // sum(X^-1)
         + XiT                         // logdet
         - XiT * ones_b * Z.transpose()  // sum(solve(X, B))
         + XiT;                        // slogdet[1]
}

TEST(SharedLU, DetInvLogdetSlogdetSolveAndTheirBackwardFactorOnce) {
  for (DType d : {DType::f64, DType::f32}) {
    SCOPED_TRACE(dtype_str(d));
    Rng rng(21);
    const Input xi = round_to(wellcond(rng, S(4, 4)), d), bi = round_to(rng.input(S(4, 2)), d);
    NodeRef x = leaf(xi, d), b = leaf(bi, d);
    const std::int64_t before = matgrad::lu_factorizations();
    NodeRef dt = matgrad::det(x), iv = matgrad::inv(x), ld = matgrad::logdet(x), sv = matgrad::solve(x, b);
    NodeRef sl = matgrad::slogdet(x)[1];
    EXPECT_EQ(matgrad::lu_factorizations() - before, 1) << "forward";
    NodeRef f = dt + matgrad::sum(iv) + ld + matgrad::sum(sv) + sl;
    matgrad::backward(f);
    EXPECT_EQ(matgrad::lu_factorizations() - before, 1) << "forward and backward";
    ASSERT_TRUE(x->grad);
    const Eigen::MatrixXd X = mat2d(xi), B = mat2d(bi);
    const Tol t = d == DType::f64 ? Tol{1e-10, 1e-12} : Tol{1e-4, 1e-5};
    EXPECT_TRUE(all_close(unflat(values(x->grad), 4, 4), lu_family_grad(X, B), t));
    EXPECT_TRUE(all_close(unflat(values(b->grad), 4, 2), inv_ref(X).transpose() * Eigen::MatrixXd::Ones(4, 2), t));
    // another node with the same values has its own factorization
    matgrad::det(matgrad::alias(x));
    EXPECT_EQ(matgrad::lu_factorizations() - before, 2) << "alias(x)";
  }
}

TEST(SharedLU, SecondOrderAndJacobianSweepsReuseTheFactorization) {
  Rng rng(22);
  NodeRef x = leaf(wellcond(rng, S(3, 3)), DType::f64), b = leaf(rng.input(S(3)), DType::f64);
  const std::int64_t before = matgrad::lu_factorizations();
  NodeRef f = matgrad::det(x) + matgrad::logdet(x) + matgrad::sum(matgrad::inv(x)) + matgrad::sum(matgrad::solve(x, b));
  EXPECT_EQ(matgrad::lu_factorizations() - before, 1);
  // a Hessian-vector product through grad_nodes: every op of the gradient graph that needs a
  // factorization of X is an op on the node x
  std::vector<NodeRef> g = matgrad::grad_nodes(f, {x, b});
  NodeRef w = leaf(rng.input(S(3, 3)), DType::f64, false);
  std::vector<Val> h = matgrad::grad_values(matgrad::sum(g[0] * w), {x, b});
  EXPECT_EQ(matgrad::lu_factorizations() - before, 1) << "second order";
  // batched sweeps (jacobian_values of the gradient: the Hessian, by forward or reverse sweeps)
  matgrad::jacobian_values(g[0], {x});
  matgrad::jacobian_values(matgrad::inv(x), {x});
  EXPECT_EQ(matgrad::lu_factorizations() - before, 1) << "jacobian sweeps";
}

// A node over external memory (a caller's array, no copy) may change under the engine: its
// factorization is reused only while the values are the same.
TEST(SharedLU, ExternalMemoryIsRefactoredWhenItChanges) {
  std::vector<double> mem = {2, 1, 1, 3};
  matgrad::Buffer* buf = matgrad::Buffer::external(mem.data(), mem.size() * sizeof(double), nullptr, nullptr);
  NodeRef x = matgrad::make_leaf_shared(buf, mem.data(), S(2, 2), DType::f64, true);
  const std::int64_t before = matgrad::lu_factorizations();
  EXPECT_DOUBLE_EQ(scalar_value(matgrad::det(x)), 5.0);
  EXPECT_DOUBLE_EQ(scalar_value(matgrad::logdet(x)), std::log(5.0));
  EXPECT_EQ(matgrad::lu_factorizations() - before, 1) << "unchanged values: shared";
  mem[0] = 4;  // [[4, 1], [1, 3]]
  NodeRef d = matgrad::det(x);
  EXPECT_DOUBLE_EQ(scalar_value(d), 11.0);
  EXPECT_EQ(matgrad::lu_factorizations() - before, 2) << "changed values: factored again";
  EXPECT_TRUE(all_close(values(matgrad::inv(x)), {3.0 / 11, -1.0 / 11, -1.0 / 11, 4.0 / 11}, value_tol(DType::f64)));
  EXPECT_TRUE(all_close(values(matgrad::grad_values(d, {x})[0]), {3, -1, -1, 4}, value_tol(DType::f64)));
  EXPECT_EQ(matgrad::lu_factorizations() - before, 2);
}

// ---- singular matrices: inv / solve raise, det is 0 with the adjugate as its gradient ----

TEST(Singular, InvAndSolveRaiseLinAlgError) {
  for (DType d : {DType::f64, DType::f32}) {
    SCOPED_TRACE(dtype_str(d));
    NodeRef x = leaf(S(2, 2), d, {1, 2, 2, 4});
    NodeRef b = leaf(S(2), d, {1, 1});
    try {
      matgrad::inv(x);
      ADD_FAILURE() << "inv: expected matgrad::LinAlgError";
    } catch (const matgrad::LinAlgError& e) {
      EXPECT_EQ(std::string(e.what()).rfind("inv: ", 0), 0u) << e.what();
    }
    try {
      matgrad::solve(x, b);
      ADD_FAILURE() << "solve: expected matgrad::LinAlgError";
    } catch (const matgrad::LinAlgError& e) {
      EXPECT_EQ(std::string(e.what()).rfind("solve: ", 0), 0u) << e.what();
    }
    EXPECT_THROW(matgrad::solve(x, leaf(S(2, 3), d, {1, 2, 3, 4, 5, 6})), matgrad::LinAlgError);
    EXPECT_THROW(matgrad::inv(leaf(S(3, 3), d, std::vector<double>(9, 0.0))), matgrad::LinAlgError);
    // LinAlgError is a matgrad::Error, and the engine stays usable
    EXPECT_THROW(matgrad::inv(x), matgrad::Error);
    EXPECT_NEAR(scalar_value(matgrad::det(leaf(S(2, 2), d, {2, 0, 0, 3}))), 6.0, 1e-6);
    // log|det| = -inf, sign 0 (as np.linalg.slogdet)
    EXPECT_EQ(scalar_value(matgrad::logdet(x)), -kInf);
    auto sl = matgrad::slogdet(x);
    EXPECT_EQ(scalar_value(sl[0]), 0.0);
    EXPECT_EQ(scalar_value(sl[1]), -kInf);
  }
}

TEST(Singular, DetIsExactlyZeroAndItsGradientIsTheTransposedAdjugate) {
  // Each matrix is singular in floating point too: partial-pivoting elimination with
  // power-of-two multipliers leaves an exactly zero pivot (np.linalg.det([[1, 2], [3, 6]]) is
  // -3.3e-16, and so is the engine's: 1/3 is not a double).
  struct C {
    const char* name;
    std::int64_t n;
    std::vector<double> x;
  };
  const C cases_[] = {
      {"[[1,2],[2,4]]", 2, {1, 2, 2, 4}},                          // adj^T = [[4,-2],[-2,1]]
      {"[[1,2],[4,8]]", 2, {1, 2, 4, 8}},                          // adj^T = [[8,-4],[-2,1]]
      {"rank 2 of 3", 3, {2, 1, 0, 4, 2, 0, 0, 0, 1}},            // adj of rank n - 1: nonzero
      {"rank 1 of 3", 3, {2, 4, 6, 1, 2, 3, 4, 8, 12}},           // rank n - 2: adj = 0
      {"zero 2x2", 2, {0, 0, 0, 0}},
      {"[[0]]", 1, {0}},                                           // adj of a 1 x 1 matrix is [1]
  };
  for (DType d : {DType::f64, DType::f32})
    for (const C& c : cases_) {
      SCOPED_TRACE(std::string(c.name) + " " + dtype_str(d));
      const Eigen::MatrixXd X = unflat(c.x, c.n, c.n);
      const Eigen::MatrixXd want = cofactors(X);  // adj(X)^T
      NodeRef x = leaf(S(c.n, c.n), d, c.x);
      NodeRef dt = matgrad::det(x);
      EXPECT_EQ(scalar_value(dt), 0.0);
      const Tol t = d == DType::f64 ? Tol{1e-12, 1e-12} : Tol{1e-5, 1e-5};
      std::vector<Val> g = matgrad::grad_values(dt, {x});
      EXPECT_TRUE(all_close(unflat(values(g[0]), c.n, c.n), want, t)) << "grad_values";
      EXPECT_TRUE(all_close(unflat(values(matgrad::apply(opid("adj_t"), {x})), c.n, c.n), want, t)) << "adj_t";
      std::vector<Val> j = matgrad::jacobian_values(dt, {x});
      EXPECT_TRUE(all_close(values(j[0]), flat(want), t)) << "jacobian_values";
      // the closed form of the first two
      if (c.n == 2 && c.x[0] == 1 && c.x[2] == 2) {
        EXPECT_TRUE(all_close(values(g[0]), {4, -2, -2, 1}, t));
      }
      if (c.n == 2 && c.x[2] == 4) {
        EXPECT_TRUE(all_close(values(g[0]), {8, -4, -2, 1}, t));
      }
      // central differences agree (det is a polynomial: smooth through singular matrices)
      if (d == DType::f64) {
        EXPECT_TRUE(
            check_grad([](const std::vector<NodeRef>& v) { return matgrad::det(v[0]); }, {Input{S(c.n, c.n), c.x}}, d));
      }
    }
}

// ---- slogdet through its two outputs; the Hessian of log|det| in closed form ----

TEST(Slogdet, SignTimesExpLogabsIsDetWithItsGradients) {
  auto f = [](const std::vector<NodeRef>& v) {
    auto sl = matgrad::slogdet(v[0]);
    return sl[0] * matgrad::exp(sl[1]);
  };
  Rng rng(27);
  for (DType d : {DType::f64, DType::f32})
    for (int rep = 0; rep < 4; ++rep) {  // both signs of det
      SCOPED_TRACE(std::string(dtype_str(d)) + " draw " + std::to_string(rep));
      const Input xi = round_to(wellcond(rng, S(3, 3)), d);
      NodeRef x = leaf(xi, d);
      NodeRef y = f({x});
      const Eigen::MatrixXd X = mat2d(xi);
      EXPECT_TRUE(close(scalar_value(y), det_ref(X), value_tol(d)));
      EXPECT_TRUE(all_close(unflat(values(matgrad::grad_values(y, {x})[0]), 3, 3), cofactors(X),
                            d == DType::f64 ? Tol{1e-12, 1e-12} : Tol{1e-5, 1e-5}));
      EXPECT_TRUE(check_grad(f, {xi}, d));
      EXPECT_TRUE(check_grad(grad_of(f), {xi}, d));
    }
}

TEST(Logdet, HessianInClosedFormByJacobianOfTheGradient) {
  // d^2 log|det X| / dX_ij dX_kl = -(X^-1)_li (X^-1)_jk
  Rng rng(28);
  const Input xi = wellcond(rng, S(3, 3));
  const Eigen::MatrixXd Xi = inv_ref(mat2d(xi));
  Eigen::MatrixXd want(9, 9);
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j)
      for (int k = 0; k < 3; ++k)
        for (int l = 0; l < 3; ++l) want(i * 3 + j, k * 3 + l) = -Xi(l, i) * Xi(j, k);
  NodeRef x = leaf(xi, DType::f64);
  NodeRef g = matgrad::grad_nodes(matgrad::logdet(x), {x})[0];
  const Tol t{1e-12, 1e-13};
  EXPECT_TRUE(all_close(unflat(values(matgrad::jacobian_values(g, {x})[0]), 9, 9), want, t)) << "reverse";
  NodeRef gp = matgrad::concatenate({matgrad::reshape(g, S(9)), matgrad::full(S(1), DType::f64, 0.0)}, 0);
  EXPECT_TRUE(all_close(unflat(values(matgrad::jacobian_values(gp, {x})[0]), 10, 9).topRows(9), want, t)) << "forward";
  EXPECT_TRUE(all_close(unflat(values(matgrad::jacobian_nodes(g, {x})[0]), 9, 9), want, t)) << "jacobian_nodes";
}

// ---- index errors: flat indices are checked ----

TEST(Indexing, OutOfRangeIndicesAndShapeMismatchesRaise) {
  NodeRef x = leaf(S(3, 4), DType::f64, std::vector<double>(12, 1.0));
  EXPECT_THROW(matgrad::gather(x, {12}, S()), matgrad::IndexError);
  EXPECT_THROW(matgrad::gather(x, {-1}, S()), matgrad::IndexError);
  EXPECT_THROW(matgrad::gather(x, {0, 1}, S(3)), matgrad::ShapeError);
  matgrad::Attr at;
  at.shape = S(2, 2);
  NodeRef g = leaf(S(2), DType::f64, {1, 2});
  EXPECT_THROW(matgrad::apply(opid("scatter_add"), {g, leaf(S(2), DType::f64, {0, 4}, false)}, at),
               matgrad::IndexError);
  EXPECT_THROW(matgrad::apply(opid("scatter_add"), {g, leaf(S(3), DType::f64, {0, 1, 2}, false)}, at),
               matgrad::ShapeError);
  // an index input that requires a gradient is a TypeError
  EXPECT_THROW(matgrad::apply(opid("gather"), {x, leaf(S(1), DType::f64, {0}, true)}), matgrad::TypeError);
  EXPECT_THROW(matgrad::block(x, 2, 0, S(2, 4)), matgrad::ShapeError);
  EXPECT_THROW(matgrad::diag(leaf0(1.0)), matgrad::ShapeError);
  EXPECT_THROW(matgrad::concatenate({x, leaf(S(3), DType::f64, {1, 2, 3})}, 0), matgrad::ShapeError);
  EXPECT_THROW(matgrad::det(leaf(S(2, 3), DType::f64, std::vector<double>(6, 1.0))), matgrad::ShapeError);
  EXPECT_THROW(matgrad::solve(leaf(S(2, 2), DType::f64, {1, 0, 0, 1}), leaf(S(3), DType::f64, {1, 2, 3})),
               matgrad::ShapeError);
}

// ---- cholesky reads the lower triangle; its gradient is that of the lower triangle ----

TEST(Cholesky, ReadsTheLowerTriangleAndItsGradientIsLowerTriangular) {
  Rng rng(23);
  const Input a = spd(rng, S(3, 3));
  Input garbage = a;  // the same lower triangle, anything above it
  for (int i = 0; i < 3; ++i)
    for (int j = i + 1; j < 3; ++j) garbage.data[std::size_t(i * 3 + j)] = 100.0 + i + j;
  const Input cot = rng.input(S(3, 3));
  NodeRef x = leaf(a, DType::f64), xg = leaf(garbage, DType::f64);
  NodeRef l = matgrad::cholesky(x), lg = matgrad::cholesky(xg);
  EXPECT_TRUE(all_close(values(l), values(lg), Tol{0, 0}));
  EXPECT_TRUE(all_close(unflat(values(l), 3, 3), chol_ref(mat2d(a)), value_tol(DType::f64)));
  // the VJP is zero above the diagonal, and its symmetric part is the gradient of
  // cholesky(sym(X)) at symmetric X
  const Eigen::MatrixXd g = unflat(values(matgrad::grad_values(l, {x}, leaf(cot, DType::f64, false))[0]), 3, 3);
  for (int i = 0; i < 3; ++i)
    for (int j = i + 1; j < 3; ++j) EXPECT_EQ(g(i, j), 0.0);
  NodeRef y = leaf(a, DType::f64);
  NodeRef ls = matgrad::cholesky((y + matgrad::transpose(y)) * 0.5);
  const Eigen::MatrixXd gs = unflat(values(matgrad::grad_values(ls, {y}, leaf(cot, DType::f64, false))[0]), 3, 3);
  EXPECT_TRUE(all_close(Eigen::MatrixXd(0.5 * (g + g.transpose())), gs, Tol{1e-12, 1e-14}));
  // not positive definite
  EXPECT_THROW(matgrad::cholesky(leaf(S(2, 2), DType::f64, {1, 2, 2, 1})), matgrad::LinAlgError);
}

// ---- second derivatives of det at a singular matrix (adj_t_vjp) ----

TEST(Det, SecondDerivativesAtASingularMatrixAreTheDerivativesOfTheCofactors) {
  // S has rank 2; the cofactor matrix C(X) = adj(X)^T is quadratic in X, so its central
  // difference is exact up to rounding: d2 det / dX_ij dX_kl = dC_ij / dX_kl.
  const std::vector<double> s = {1, 2, 3, 2, 4, 6, 1, 0, 1};
  NodeRef x = leaf(S(3, 3), DType::f64, s);
  const std::vector<Val> h = matgrad::hessian_values(matgrad::det(x), {x})[0];
  const Eigen::MatrixXd H = unflat(values(h[0]), 9, 9);
  const Eigen::MatrixXd X = unflat(s, 3, 3);
  const double eps = 1e-3;
  for (int k = 0; k < 3; ++k)
    for (int l = 0; l < 3; ++l) {
      Eigen::MatrixXd P = X, M = X;
      P(k, l) += eps;
      M(k, l) -= eps;
      const Eigen::MatrixXd dC = (cofactors(P) - cofactors(M)) / (2 * eps);
      for (int i = 0; i < 3; ++i)
        for (int j = 0; j < 3; ++j) EXPECT_NEAR(H(i * 3 + j, k * 3 + l), dC(i, j), 1e-10) << i << j << k << l;
    }
  // at an invertible matrix adj_t_vjp equals the VJP of adj_t (its usual path)
  Rng rng(31);
  Input a = rng.input(S(3, 3));
  for (int i = 0; i < 3; ++i) a.data[std::size_t(i * 4)] += 4.0;
  const Input cot = rng.input(S(3, 3));
  NodeRef xa = leaf(a, DType::f64);
  const Val usual = matgrad::grad_values(matgrad::apply(opid("adj_t"), {xa}), {xa}, leaf(cot, DType::f64, false))[0];
  NodeRef direct = matgrad::apply(opid("adj_t_vjp"), {leaf(a, DType::f64, false), leaf(cot, DType::f64, false)});
  EXPECT_TRUE(all_close(values(direct), values(usual), Tol{1e-12, 1e-13}));
  // third derivatives there are refused with a clear error
  NodeRef y = leaf(S(3, 3), DType::f64, s);
  std::vector<NodeRef> g = matgrad::grad_nodes(matgrad::det(y), {y});
  std::vector<NodeRef> g2 = matgrad::grad_nodes(matgrad::sum(g[0]), {y});
  EXPECT_THROW(matgrad::grad_values(matgrad::sum(g2[0]), {y}), matgrad::LinAlgError);
}

// ---- jacobian_values: closed forms, reverse and forward sweeps, jacobian_nodes ----

::testing::AssertionResult same_jacobian(const Val& got, const Eigen::MatrixXd& want, Tol t) {
  if (got.shape() != S(want.rows(), want.cols()))
    return ::testing::AssertionFailure() << "shape " << got.shape().str() << ", expected (" << want.rows() << ", "
                                         << want.cols() << ")";
  return all_close(unflat(values(got), want.rows(), want.cols()), want, t);
}

TEST(Jacobian, GramMatricesInClosedFormByReverseAndForwardSweeps) {
  Rng rng(24);
  const Eigen::MatrixXd Bm = rng.matrix(3, 2);
  const Tol t = value_tol(DType::f64);
  // K = B^T B (2, 2): 4 outputs <= 6 inputs, reverse sweeps.
  // dK_pq / dB_ij = delta_jp B_iq + delta_jq B_ip
  {
    NodeRef B = matgrad::variable(Bm);
    NodeRef K = matgrad::matmul(B, B, true, false);
    Eigen::MatrixXd want = Eigen::MatrixXd::Zero(4, 6);
    for (int p = 0; p < 2; ++p)
      for (int q = 0; q < 2; ++q)
        for (int i = 0; i < 3; ++i)
          for (int j = 0; j < 2; ++j)
            want(p * 2 + q, i * 2 + j) = (j == p ? Bm(i, q) : 0.0) + (j == q ? Bm(i, p) : 0.0);
    EXPECT_TRUE(same_jacobian(matgrad::jacobian_values(K, {B})[0], want, t)) << "B^T B, reverse";
    EXPECT_TRUE(same_jacobian(matgrad::jacobian_nodes(K, {B})[0]->value(), want, t)) << "B^T B, jacobian_nodes";
    // forward sweeps on the same function: K padded to more outputs than inputs
    NodeRef Kp = matgrad::concatenate({matgrad::reshape(K, S(4)), matgrad::full(S(3), DType::f64, 0.0)}, 0);
    Eigen::MatrixXd wantp = Eigen::MatrixXd::Zero(7, 6);
    wantp.topRows(4) = want;
    EXPECT_TRUE(same_jacobian(matgrad::jacobian_values(Kp, {B})[0], wantp, t)) << "B^T B, forward";
  }
  // K = B B^T (3, 3): 9 outputs > 6 inputs, forward sweeps.
  // dK_pq / dB_ij = delta_pi B_qj + delta_qi B_pj
  {
    NodeRef B = matgrad::variable(Bm);
    NodeRef K = matgrad::matmul(B, B, false, true);
    Eigen::MatrixXd want = Eigen::MatrixXd::Zero(9, 6);
    for (int p = 0; p < 3; ++p)
      for (int q = 0; q < 3; ++q)
        for (int i = 0; i < 3; ++i)
          for (int j = 0; j < 2; ++j)
            want(p * 3 + q, i * 2 + j) = (p == i ? Bm(q, j) : 0.0) + (q == i ? Bm(p, j) : 0.0);
    EXPECT_TRUE(same_jacobian(matgrad::jacobian_values(K, {B})[0], want, t)) << "B B^T, forward";
    EXPECT_TRUE(same_jacobian(matgrad::jacobian_nodes(K, {B})[0]->value(), want, t)) << "B B^T, jacobian_nodes";
    // reverse sweeps on the same function: an unused input of 4 elements (9 <= 10)
    NodeRef unused = matgrad::variable(Eigen::MatrixXd::Ones(2, 2));
    auto j = matgrad::jacobian_values(K, {B, unused});
    EXPECT_TRUE(same_jacobian(j[0], want, t)) << "B B^T, reverse";
    EXPECT_TRUE(same_jacobian(j[1], Eigen::MatrixXd::Zero(9, 4), Tol{0, 0}));
  }
}

TEST(Jacobian, MatrixVectorProductBothWays) {
  Rng rng(25);
  const Tol t = value_tol(DType::f64);
  // y = A x, A (5, 2): w.r.t. x, 5 outputs > 2 inputs (forward); w.r.t. (A, x), 5 <= 12 (reverse)
  const Eigen::MatrixXd A = rng.matrix(5, 2);
  const Input xi = rng.input(S(2));
  const Eigen::MatrixXd xv = mat2d(xi);
  NodeRef a = matgrad::variable(A), x = leaf(xi, DType::f64);
  NodeRef y = matgrad::matmul(a, x);
  ASSERT_EQ(y->shape, S(5));
  EXPECT_TRUE(same_jacobian(matgrad::jacobian_values(y, {x})[0], A, t)) << "forward";
  auto jr = matgrad::jacobian_values(y, {a, x});
  Eigen::MatrixXd dA = Eigen::MatrixXd::Zero(5, 10);  // dy_p / dA_ij = delta_pi x_j
  for (int p = 0; p < 5; ++p)
    for (int j = 0; j < 2; ++j) dA(p, p * 2 + j) = xv(j, 0);
  EXPECT_TRUE(same_jacobian(jr[0], dA, t)) << "reverse, A";
  EXPECT_TRUE(same_jacobian(jr[1], A, t)) << "reverse, x";
  auto jn = matgrad::jacobian_nodes(y, {a, x});
  EXPECT_TRUE(same_jacobian(jn[0]->value(), dA, t));
  EXPECT_TRUE(same_jacobian(jn[1]->value(), A, t));
  // z = C w, C (2, 5): w.r.t. w, 2 outputs <= 5 inputs (reverse); w.r.t. C, 2 <= 10 (reverse)
  const Eigen::MatrixXd C = rng.matrix(2, 5);
  NodeRef cn = matgrad::variable(C), w = leaf(rng.input(S(5)), DType::f64);
  NodeRef z = matgrad::matmul(cn, w);
  EXPECT_TRUE(same_jacobian(matgrad::jacobian_values(z, {w})[0], C, t)) << "reverse, w";
  // float32: the Jacobian has the input's dtype
  NodeRef x32 = leaf(xi, DType::f32);
  NodeRef y32 = matgrad::matmul(matgrad::cast(a, DType::f32), x32);
  auto j32 = matgrad::jacobian_values(y32, {x32});
  EXPECT_EQ(j32[0].dtype(), DType::f32);
  EXPECT_TRUE(same_jacobian(j32[0], A, value_tol(DType::f32)));
}

// Reverse and forward sweeps through the LU family, solve, concat and elementwise ops, batched
// in both directions, against jacobian_nodes and central differences.
TEST(Jacobian, ReverseAndForwardAgreeThroughTheLuFamily) {
  Rng rng(26);
  const Input wi = rng.input(S(5, 3)), mi = wellcond(rng, S(3, 3)), xi = rng.input(S(3));
  auto f = [](const std::vector<NodeRef>& v) {  // v = (W, M, x): out of 5 + 3 + 3 + 9 = 20
    const NodeRef &W = v[0], &M = v[1], &x = v[2];
    return matgrad::concatenate({matgrad::tanh(matgrad::matmul(W, x)), matgrad::solve(M, x), matgrad::det(M) * x,
                                 matgrad::reshape(matgrad::inv(M) * matgrad::logdet(M), S(9))},
                                0);
  };
  NodeRef W = leaf(wi, DType::f64), M = leaf(mi, DType::f64), x = leaf(xi, DType::f64);
  NodeRef out = f({W, M, x});
  ASSERT_EQ(out->shape, S(20));
  const auto fwd = matgrad::jacobian_values(out, {x});        // 20 > 3: forward
  const auto fwd_m = matgrad::jacobian_values(out, {M});      // 20 > 9: forward
  const auto rev = matgrad::jacobian_values(out, {W, M, x});  // 20 <= 27: reverse
  const auto nodes = matgrad::jacobian_nodes(out, {W, M, x});
  const Tol t{1e-11, 1e-12};
  EXPECT_TRUE(all_close(values(fwd[0]), values(rev[2]), t)) << "x: forward vs reverse";
  EXPECT_TRUE(all_close(values(fwd_m[0]), values(rev[1]), t)) << "M: forward vs reverse";
  for (int k = 0; k < 3; ++k)
    EXPECT_TRUE(all_close(values(rev[std::size_t(k)]), values(nodes[std::size_t(k)]), t)) << k;
  // central differences, column by column
  const std::vector<Input> xs = {wi, mi, xi};
  const double eps = 1e-6;
  for (std::size_t k = 0; k < 3; ++k) {
    const std::int64_t n = xs[k].shape.size();
    const std::vector<double> J = values(rev[k]);
    for (std::int64_t j = 0; j < n; ++j) {
      std::vector<Input> p = xs, mm = xs;
      p[k].data[std::size_t(j)] += eps;
      mm[k].data[std::size_t(j)] -= eps;
      std::vector<NodeRef> lp, lm;
      for (std::size_t i = 0; i < 3; ++i) {
        lp.push_back(leaf(p[i], DType::f64));
        lm.push_back(leaf(mm[i], DType::f64));
      }
      const std::vector<double> fp = values(f(lp)), fm = values(f(lm));
      for (std::int64_t r = 0; r < 20; ++r) {
        const double fd = (fp[std::size_t(r)] - fm[std::size_t(r)]) / (2 * eps);
        EXPECT_TRUE(close(J[std::size_t(r * n + j)], fd, Tol{1e-6, 1e-7}))
            << "input " << k << " element " << j << " output " << r << ": " << J[std::size_t(r * n + j)] << " vs "
            << fd;
      }
    }
  }
}

}  // namespace
}  // namespace mgtest
