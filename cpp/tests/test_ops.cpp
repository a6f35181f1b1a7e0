// SPDX-License-Identifier: MIT
// Every op of the registry, in float64 and float32: forward values against closed forms,
// first derivatives and (through create_graph) second derivatives against float64 central
// differences, gradients of the input's own shape and dtype. A registry walk fails when an op
// has no case here.
#include "test_util.hpp"

#include <matgrad/matgrad.hpp>

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
    Eigen::MatrixXd X = x.shape.ndim == 1 ? unflat(x.data, 1, x.shape.cols) : unflat(x.data, x.shape.rows, x.shape.cols);
    Eigen::MatrixXd Y = y.shape.ndim == 1 ? unflat(y.data, y.shape.cols, 1) : unflat(y.data, y.shape.rows, y.shape.cols);
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

// ---- the table ----

struct Dom {
  double lo = -2.0, hi = 2.0, gap = 0.0;
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
    xs.push_back(rng.input(c.shapes[k], d.lo, d.hi, d.gap));
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
      {OpId::neg, "neg", [](double x) { return -x; }, {}},
      {OpId::exp, "exp", [](double x) { return std::exp(x); }, {}},
      {OpId::log, "log", [](double x) { return std::log(x); }, {0.2, 3.0}},
      {OpId::sin, "sin", [](double x) { return std::sin(x); }, {-3.0, 3.0}},
      {OpId::cos, "cos", [](double x) { return std::cos(x); }, {-3.0, 3.0}},
      {OpId::tan, "tan", [](double x) { return std::tan(x); }, {-1.2, 1.2}},
      {OpId::tanh, "tanh", [](double x) { return std::tanh(x); }, {}},
      {OpId::sqrt, "sqrt", [](double x) { return std::sqrt(x); }, {0.2, 3.0}},
      {OpId::abs, "abs", [](double x) { return std::abs(x); }, {-2.0, 2.0, 0.1}},
      {OpId::square, "square", [](double x) { return x * x; }, {}},
      {OpId::sigmoid, "sigmoid", sigmoid, {-4.0, 4.0}},
      {OpId::relu, "relu", [](double x) { return x > 0 ? x : 0.0; }, {-2.0, 2.0, 0.1}},
      {OpId::softplus, "softplus", [](double x) { return std::log1p(std::exp(x)); }, {-4.0, 4.0}},
  };
  for (const U& u : unary)
    for (const Shape& s : unary_shapes) {
      const OpId op = u.op;
      cs.push_back({std::string(u.name) + "_" + shape_tag(s), op, {s}, {u.dom},
                    [op](V v) { return matgrad::unary(op, v[0]); }, ref_unary(u.ref)});
    }

  struct Sc {
    OpId op;
    const char* name;
    double s;
    Dom dom;
    double (*ref)(double, double);
  };
  const Sc scalar_ops[] = {
      {OpId::add_s, "add_s", 0.7, {}, [](double x, double s) { return x + s; }},
      {OpId::mul_s, "mul_s", -1.3, {}, [](double x, double s) { return x * s; }},
      {OpId::div_s, "div_s", 2.5, {}, [](double x, double s) { return x / s; }},
      {OpId::rsub_s, "rsub_s", 0.3, {}, [](double x, double s) { return s - x; }},
      {OpId::rdiv_s, "rdiv_s", 1.7, {0.3, 2.0}, [](double x, double s) { return s / x; }},
      {OpId::pow_s, "pow_s_2p5", 2.5, {0.3, 2.0}, [](double x, double s) { return std::pow(x, s); }},
      {OpId::pow_s, "pow_s_m1p5", -1.5, {0.3, 2.0}, [](double x, double s) { return std::pow(x, s); }},
      {OpId::pow_s, "pow_s_3", 3.0, {-2.0, 2.0}, [](double x, double s) { return std::pow(x, s); }},
      {OpId::pow_s, "pow_s_0", 0.0, {-2.0, 2.0}, [](double x, double s) { return std::pow(x, s); }},
      {OpId::pow_s, "pow_s_2", 2.0, {-2.0, 2.0}, [](double x, double s) { return std::pow(x, s); }},
      {OpId::pow_s, "pow_s_1", 1.0, {-2.0, 2.0}, [](double x, double s) { return std::pow(x, s); }},
      {OpId::pow_s, "pow_s_m1", -1.0, {0.3, 2.0}, [](double x, double s) { return std::pow(x, s); }},
      {OpId::pow_s, "pow_s_m2", -2.0, {0.3, 2.0}, [](double x, double s) { return std::pow(x, s); }},
      {OpId::pow_s, "pow_s_0p5", 0.5, {0.3, 2.0}, [](double x, double s) { return std::pow(x, s); }},
      {OpId::rpow_s, "rpow_s_2", 2.0, {}, [](double x, double s) { return std::pow(s, x); }},
      {OpId::rpow_s, "rpow_s_0p5", 0.5, {}, [](double x, double s) { return std::pow(s, x); }},
  };
  for (const Sc& c : scalar_ops)
    for (const Shape& s : {S(3, 4), S()}) {
      const OpId op = c.op;
      const double sv = c.s;
      auto r = c.ref;
      cs.push_back({std::string(c.name) + "_" + shape_tag(s), op, {s}, {c.dom},
                    [op, sv](V v) { return matgrad::scalar_op(op, v[0], sv); },
                    ref_unary([r, sv](double x) { return r(x, sv); })});
    }

  struct B {
    OpId op;
    const char* name;
    double (*ref)(double, double);
    std::vector<Dom> doms;
  };
  const B binary[] = {
      {OpId::add, "add", [](double x, double y) { return x + y; }, {}},
      {OpId::sub, "sub", [](double x, double y) { return x - y; }, {}},
      {OpId::mul, "mul", [](double x, double y) { return x * y; }, {}},
      {OpId::div, "div", [](double x, double y) { return x / y; }, {{-2.0, 2.0}, {0.5, 2.0}}},
      {OpId::pow, "pow", [](double x, double y) { return std::pow(x, y); }, {{0.3, 2.0}, {-2.0, 2.0}}},
      {OpId::maximum, "maximum", [](double x, double y) { return std::max(x, y); }, {}},
      {OpId::minimum, "minimum", [](double x, double y) { return std::min(x, y); }, {}},
  };
  const std::pair<Shape, Shape> pairs[] = {
      {S(3, 4), S(3, 4)}, {S(3, 4), S(4)}, {S(3, 1), S(1, 4)}, {S(), S(3, 4)},
      {S(5), S()},        {S(4), S(3, 1)}, {S(1, 1), S(3)},
  };
  for (const B& b : binary)
    for (const auto& p : pairs) {
      const OpId op = b.op;
      cs.push_back({std::string(b.name) + "_" + shape_tag(p.first) + "_" + shape_tag(p.second), op,
                    {p.first, p.second}, b.doms, [op](V v) { return matgrad::binary(op, v[0], v[1]); },
                    ref_binary(b.ref)});
    }

  const int none = matgrad::kAxisNone;
  const std::pair<Shape, int> reductions[] = {{S(3, 4), none}, {S(3, 4), 0}, {S(3, 4), 1},  {S(3, 4), -1},
                                              {S(3, 4), -2},   {S(5), none},  {S(5), 0},     {S(5), -1},
                                              {S(), none},     {S(1, 4), 0},  {S(4, 1), 1}};
  for (const auto& r : reductions) {
    const int ax = r.second;
    const std::string tag = shape_tag(r.first) + "_axis" + (ax == none ? std::string("None") : ax < 0 ? "m" + std::to_string(-ax) : std::to_string(ax));
    cs.push_back({"sum_" + tag, OpId::sum, {r.first}, {}, [ax](V v) { return matgrad::sum(v[0], ax); },
                  ref_reduce(ax, false)});
    cs.push_back({"mean_" + tag, OpId::mean, {r.first}, {}, [ax](V v) { return matgrad::mean(v[0], ax); },
                  ref_reduce(ax, true)});
  }

  for (const Shape& s : {S(3, 4), S(5), S(), S(1, 3)})
    cs.push_back({"transpose_" + shape_tag(s), OpId::transpose, {s}, {},
                  [](V v) { return matgrad::transpose(v[0]); }, ref_transpose()});

  const std::pair<Shape, Shape> reshapes[] = {
      {S(3, 4), S(2, 6)}, {S(3, 4), S(12)}, {S(6), S(2, 3)}, {S(), S(1, 1)}, {S(1, 1), S()}, {S(1), S()}};
  for (const auto& r : reshapes) {
    const Shape to = r.second;
    cs.push_back({"reshape_" + shape_tag(r.first) + "_to_" + shape_tag(to), OpId::reshape, {r.first}, {},
                  [to](V v) { return matgrad::reshape(v[0], to); }, ref_reshape(to)});
  }

  const std::pair<Shape, Shape> bcasts[] = {
      {S(4), S(3, 4)}, {S(3, 1), S(3, 4)}, {S(), S(2, 3)}, {S(1, 1), S(2, 2)}, {S(), S(5)}, {S(1, 4), S(3, 4)}};
  for (const auto& b : bcasts) {
    const Shape to = b.second;
    cs.push_back({"broadcast_to_" + shape_tag(b.first) + "_to_" + shape_tag(to), OpId::broadcast_to, {b.first}, {},
                  [to](V v) { return matgrad::broadcast_to(v[0], to); }, ref_broadcast_to(to)});
  }

  const std::pair<Shape, Shape> sum_tos[] = {
      {S(3, 4), S(4)}, {S(3, 4), S(3, 1)}, {S(3, 4), S()}, {S(3, 4), S(1, 1)}, {S(3, 4), S(1, 4)}, {S(5), S()}};
  for (const auto& b : sum_tos) {
    const Shape to = b.second;
    cs.push_back({"sum_to_" + shape_tag(b.first) + "_to_" + shape_tag(to), OpId::sum_to, {b.first}, {},
                  [to](V v) {
                    matgrad::Attr a;
                    a.shape = to;
                    return matgrad::apply(OpId::sum_to, {v[0]}, a);
                  },
                  ref_sum_to(to)});
  }

  {
    OpCase c{"cast_to_other_dtype", OpId::cast, {S(3, 4)}, {},
             [](V v) { return matgrad::cast(v[0], v[0]->dtype == DType::f64 ? DType::f32 : DType::f64); },
             ref_unary([](double x) { return x; })};
    c.eps = 0.25;  // linear: a wide step keeps float32 rounding out of the difference
    c.tol_scale = 10;
    c.same_dtype_out = false;
    cs.push_back(c);
  }
  cs.push_back({"alias_m3x4", OpId::alias, {S(3, 4)}, {}, [](V v) { return matgrad::alias(v[0]); },
                ref_unary([](double x) { return x; })});

  // Note [multiple outputs]: pack / unpack / embed.
  cs.push_back({"pack_m2x3_v4_s", OpId::pack, {S(2, 3), S(4), S()}, {},
                [](V v) { return matgrad::pack({v[0], v[1], v[2]}); },
                [](const std::vector<Input>& in) {
                  Input out{S(0), {}};
                  for (const Input& x : in) out.data.insert(out.data.end(), x.data.begin(), x.data.end());
                  out.shape = S(std::int64_t(out.data.size()));
                  return out;
                }});
  cs.push_back({"unpack_v10_at3_m2x2", OpId::unpack, {S(10)}, {},
                [](V v) { return matgrad::unpack(v[0], 3, S(2, 2)); },
                [](const std::vector<Input>& in) {
                  return Input{S(2, 2), std::vector<double>(in[0].data.begin() + 3, in[0].data.begin() + 7)};
                }});
  cs.push_back({"embed_m2x2_at3_v10", OpId::embed, {S(2, 2)}, {},
                [](V v) {
                  matgrad::Attr a;
                  a.offset = 3;
                  a.shape = S(10);
                  return matgrad::apply(OpId::embed, {v[0]}, a);
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
      {"m3x4_m4x2", S(3, 4), S(4, 2), false, false},  {"m4x3T_m4x2", S(4, 3), S(4, 2), true, false},
      {"m3x4_m2x4T", S(3, 4), S(2, 4), false, true},  {"m4x3T_m2x4T", S(4, 3), S(2, 4), true, true},
      {"v4_m4x2", S(4), S(4, 2), false, false},       {"m3x4_v4", S(3, 4), S(4), false, false},
      {"v4_v4", S(4), S(4), false, false},            {"v4_m2x4T", S(4), S(2, 4), false, true},
      {"m4x3T_v4", S(4, 3), S(4), true, false},       {"v4T_m4x2", S(4), S(4, 2), true, false},
      {"v4T_v4T", S(4), S(4), true, true},            {"m1x1_m1x1", S(1, 1), S(1, 1), false, false},
      {"m5x1_m1x3", S(5, 1), S(1, 3), false, false},  {"m1x5_m5x1", S(1, 5), S(5, 1), false, false},
  };
  for (const M& m : matmuls) {
    const bool ta = m.ta, tb = m.tb;
    cs.push_back({std::string("matmul_") + m.name, OpId::matmul, {m.a, m.b}, {},
                  [ta, tb](V v) { return matgrad::matmul(v[0], v[1], ta, tb); }, ref_matmul(ta, tb)});
  }

  // trace (np.trace: the diagonal's sum, any 2-D shape) and eye_scale (g I, its VJP)
  for (const Shape& s : {S(3, 3), S(2, 4), S(4, 1), S(1, 1)})
    cs.push_back({"trace_" + shape_tag(s), OpId::trace, {s}, {}, [](V v) { return matgrad::trace(v[0]); },
                  [](const std::vector<Input>& in) {
                    const Input& x = in[0];
                    double t = 0;
                    for (std::int64_t i = 0; i < std::min(x.shape.rows, x.shape.cols); ++i)
                      t += x.data[std::size_t(i * x.shape.cols + i)];
                    return Input{S(), {t}};
                  }});
  for (const Shape& to : {S(3, 3), S(2, 4)})
    cs.push_back({"eye_scale_to_" + shape_tag(to), OpId::eye_scale, {S()}, {},
                  [to](V v) {
                    matgrad::Attr a;
                    a.shape = to;
                    return matgrad::apply(OpId::eye_scale, {v[0]}, a);
                  },
                  [to](const std::vector<Input>& in) {
                    Input out{to, std::vector<double>(std::size_t(to.size()), 0.0)};
                    for (std::int64_t i = 0; i < std::min(to.rows, to.cols); ++i)
                      out.data[std::size_t(i * to.cols + i)] = in[0].data[0];
                    return out;
                  }});

  // xlogy(x, y) = x log y, 0 where x = 0 (the y-derivative of pow)
  for (const auto& p : {std::make_pair(S(3, 4), S(3, 4)), std::make_pair(S(3, 4), S(4)), std::make_pair(S(), S(5))})
    cs.push_back({"xlogy_" + shape_tag(p.first) + "_" + shape_tag(p.second), OpId::xlogy, {p.first, p.second},
                  {{-2.0, 2.0}, {0.3, 2.0}}, [](V v) { return matgrad::binary(OpId::xlogy, v[0], v[1]); },
                  ref_binary([](double x, double y) { return x == 0 ? 0.0 : x * std::log(y); })});

  // mask_nz(s, v) = v where s != 0, else 0 (the x-derivative of pow; constant in s)
  for (const auto& p : {std::make_pair(S(3, 4), S(3, 4)), std::make_pair(S(4), S(3, 4)), std::make_pair(S(), S(5))})
    cs.push_back({"mask_nz_" + shape_tag(p.first) + "_" + shape_tag(p.second), OpId::mask_nz,
                  {p.first, p.second}, {{0.5, 2.0}, {-2.0, 2.0}},
                  [](V v) { return matgrad::binary(OpId::mask_nz, v[0], v[1]); },
                  ref_binary([](double s, double v) { return s == 0 ? 0.0 : v; })});

  // Values larger than a node's inline storage (128 bytes): pooled buffers in the forward
  // kernels and in the VJPs.
  for (const OpId op : {OpId::add, OpId::mul, OpId::div, OpId::maximum}) {
    const std::string nm = matgrad::op_name(op);
    auto r = op == OpId::add ? ref_binary([](double x, double y) { return x + y; })
             : op == OpId::mul ? ref_binary([](double x, double y) { return x * y; })
             : op == OpId::div ? ref_binary([](double x, double y) { return x / y; })
                               : ref_binary([](double x, double y) { return std::max(x, y); });
    const std::vector<Dom> doms = op == OpId::div ? std::vector<Dom>{{-2.0, 2.0}, {0.5, 2.0}} : std::vector<Dom>{};
    cs.push_back({"large_" + nm + "_m17x9_v9", op, {S(17, 9), S(9)}, doms,
                  [op](V v) { return matgrad::binary(op, v[0], v[1]); }, r});
    cs.push_back({"large_" + nm + "_m17x1_m1x9", op, {S(17, 1), S(1, 9)}, doms,
                  [op](V v) { return matgrad::binary(op, v[0], v[1]); }, r});
  }
  cs.push_back({"large_exp_m17x9", OpId::exp, {S(17, 9)}, {}, [](V v) { return matgrad::exp(v[0]); },
                ref_unary([](double x) { return std::exp(x); })});
  cs.push_back({"large_sin_v40", OpId::sin, {S(40)}, {}, [](V v) { return matgrad::sin(v[0]); },
                ref_unary([](double x) { return std::sin(x); })});
  for (int ax : {none, 0, 1})
    cs.push_back({"large_sum_m17x9_axis" + (ax == none ? std::string("None") : std::to_string(ax)), OpId::sum,
                  {S(17, 9)}, {}, [ax](V v) { return matgrad::sum(v[0], ax); }, ref_reduce(ax, false)});
  cs.push_back({"large_mean_m17x9_axis1", OpId::mean, {S(17, 9)}, {}, [](V v) { return matgrad::mean(v[0], 1); },
                ref_reduce(1, true)});
  cs.push_back({"large_transpose_m17x9", OpId::transpose, {S(17, 9)}, {},
                [](V v) { return matgrad::transpose(v[0]); }, ref_transpose()});
  cs.push_back({"large_reshape_m17x9_to_v153", OpId::reshape, {S(17, 9)}, {},
                [](V v) { return matgrad::reshape(v[0], S(153)); }, ref_reshape(S(153))});
  for (int t = 0; t < 4; ++t) {
    const bool ta = t & 1, tb = t & 2;
    cs.push_back({"large_matmul_" + std::string(ta ? "T" : "N") + (tb ? "T" : "N"), OpId::matmul,
                  {ta ? S(10, 12) : S(12, 10), tb ? S(9, 10) : S(10, 9)}, {},
                  [ta, tb](V v) { return matgrad::matmul(v[0], v[1], ta, tb); }, ref_matmul(ta, tb)});
  }
  cs.push_back({"large_matmul_v10_m10x20", OpId::matmul, {S(10), S(10, 20)}, {},
                [](V v) { return matgrad::matmul(v[0], v[1]); }, ref_matmul(false, false)});

  // Empty arrays (NumPy allows them).
  cs.push_back({"empty_sum_v0", OpId::sum, {S(0)}, {}, [](V v) { return matgrad::sum(v[0]); },
                ref_reduce(none, false)});
  cs.push_back({"empty_add_m0x3_v3", OpId::add, {S(0, 3), S(3)}, {},
                [](V v) { return v[0] + v[1]; }, ref_binary([](double x, double y) { return x + y; })});
  cs.push_back({"empty_matmul_m3x0_m0x2", OpId::matmul, {S(3, 0), S(0, 2)}, {},
                [](V v) { return matgrad::matmul(v[0], v[1]); }, ref_matmul(false, false)});
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

TEST_P(OpTest, GradientMatchesFiniteDifferences) {
  EXPECT_TRUE(check_grad(c().f, draw(c(), seed()), dt(), opts()));
}

TEST_P(OpTest, SecondOrderGradNodesMatchFiniteDifferences) {
  EXPECT_TRUE(check_grad(grad_of(c().f), draw(c(), seed()), dt(), opts()));
}

TEST_P(OpTest, SecondOrderBackwardCreateGraphMatchesFiniteDifferences) {
  EXPECT_TRUE(check_grad(backward_grad_of(c().f), draw(c(), seed()), dt(), opts()));
}

INSTANTIATE_TEST_SUITE_P(Registry, OpTest,
                         ::testing::Combine(::testing::Range<std::size_t>(0, cases().size()),
                                            ::testing::Values(DType::f64, DType::f32)),
                         [](const ::testing::TestParamInfo<OpTest::ParamType>& info) {
                           return cases()[std::get<0>(info.param)].name + "_" +
                                  dtype_str(std::get<1>(info.param));
                         });

// ---- piecewise-constant helpers: values, and no edges (zero derivative) ----

struct ZeroDerivCase {
  OpId op;
  int arity;
  std::function<double(double, double)> ref;
};

const ZeroDerivCase kZeroDeriv[] = {
    {OpId::sign, 1, [](double x, double) { return sign(x); }},
    {OpId::step, 1, [](double x, double) { return x > 0 ? 1.0 : 0.0; }},
    {OpId::max_weight, 2, [](double x, double y) { return x > y ? 1.0 : x == y ? 0.5 : 0.0; }},
    {OpId::min_weight, 2, [](double x, double y) { return x < y ? 1.0 : x == y ? 0.5 : 0.0; }},
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
      Input want = z.arity == 1 ? ref_unary([&](double v) { return z.ref(v, 0); })({x})
                                : broadcast2(x, y, z.ref);
      EXPECT_EQ(out->shape, want.shape);
      EXPECT_TRUE(all_close(values(out), want.data, value_tol(d)));
    }
}

// ---- the registry walk: every op has a case above ----

TEST(Registry, EveryOpHasAGradientCase) {
  std::set<int> covered;
  for (const OpCase& c : cases()) covered.insert(int(c.op));
  for (const ZeroDerivCase& z : kZeroDeriv) covered.insert(int(z.op));
  for (int i = 1; i < int(OpId::count_); ++i) {
    const char* name = matgrad::op_name(OpId(i));
    ASSERT_NE(name, nullptr) << "op id " << i << " has no registry entry";
    EXPECT_TRUE(covered.count(i)) << "op '" << name << "' (id " << i << ") has no test case in test_ops.cpp";
  }
  EXPECT_STREQ(matgrad::op_name(OpId::leaf), "leaf");
  EXPECT_STREQ(matgrad::op_name(OpId::matmul), "matmul");
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
  NodeRef la = matgrad::variable(A), lr = leaf(row, DType::f64), lc = leaf(col, DType::f64),
          ls = leaf(s, DType::f64);
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
    NodeRef z = matgrad::binary(OpId::xlogy, leaf(S(2), d, {0.0, 2.0}, false), leaf(S(2), d, {0.0, 0.5}, false));
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
    const std::vector<double> got = values(matgrad::unary(op, in));
    const double xr = round_to(x, d);
    const double w = round_to(want(xr), d);
    for (std::size_t i = 0; i < got.size(); ++i) {
      const bool ok = std::isnan(w) ? std::isnan(got[i])
                      : std::isinf(w) ? got[i] == w
                                      : close(got[i], w, d == DType::f64 ? Tol{1e-13, 0} : Tol{1e-6, 0});
      if (!ok)
        return ::testing::AssertionFailure() << matgrad::op_name(op) << "(" << xr << ") in " << dtype_str(d)
                                             << ": got " << got[i] << " at index " << i << ", expected " << w;
    }
  }
  return ::testing::AssertionSuccess();
}

const double kInf = std::numeric_limits<double>::infinity();
const double kNaN = std::numeric_limits<double>::quiet_NaN();

TEST(SpecialValues, InfinitiesNansAndRangeEnds) {
  auto sig = [](double x) { return 1 / (1 + std::exp(-x)); };
  for (DType d : {DType::f64, DType::f32}) {
    EXPECT_TRUE(like_libm(OpId::exp, d, {0.0, -50.0, 50.0, kInf, kNaN}, [](double x) { return std::exp(x); }));
    EXPECT_TRUE(like_libm(OpId::log, d, {0.0, 1.0, 1e-30, kInf, -1.0, kNaN}, [](double x) { return std::log(x); }));
    EXPECT_TRUE(like_libm(OpId::sqrt, d, {0.0, 4.0, -1.0, kNaN}, [](double x) { return std::sqrt(x); }));
    EXPECT_TRUE(like_libm(OpId::tanh, d, {kInf, -kInf, 30.0, -30.0, kNaN}, [](double x) { return std::tanh(x); }));
    EXPECT_TRUE(like_libm(OpId::sigmoid, d, {-kInf, kInf, 30.0, -30.0, kNaN}, sig));
    EXPECT_TRUE(like_libm(OpId::softplus, d, {-kInf, kInf, 60.0, -60.0, kNaN},
                          [](double x) { return x > 0 ? x + std::log1p(std::exp(-x)) : std::log1p(std::exp(x)); }));
    EXPECT_TRUE(like_libm(OpId::abs, d, {-kInf, -0.0, kNaN}, [](double x) { return std::abs(x); }));
  }
  EXPECT_TRUE(like_libm(OpId::exp, DType::f64, {709.0, 710.0, -700.0}, [](double x) { return std::exp(x); }));
  EXPECT_TRUE(like_libm(OpId::exp, DType::f32, {88.0, 89.0, -87.0}, [](double x) { return std::exp(x); }));
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
      if (!bad++) first = "sqrt(" + std::to_string(x) + ") = " + std::to_string(got[i]) + ", expected " + std::to_string(w);
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
  EXPECT_TRUE(like_libm(OpId::exp, DType::f64, {-720.0, -745.2, -800.0, -kInf}, e));
  EXPECT_TRUE(like_libm(OpId::exp, DType::f32, {-90.0, -104.0, -200.0, -kInf}, e));
}

// Eigen 3.4's vectorised log clamps: log of a subnormal gave log(DBL_MIN) = -708.40 (float32:
// -87.34) until 19021ae.
TEST(SpecialValues, LogOfSubnormals) {
  auto l = [](double x) { return std::log(x); };
  EXPECT_TRUE(like_libm(OpId::log, DType::f64, {1e-310, 4.9e-324}, l));
  EXPECT_TRUE(like_libm(OpId::log, DType::f32, {1e-40, 1.4e-45}, l));
}

// relu(NaN) is NaN, as NumPy's maximum(x, 0) and PyTorch's relu (it was 0 until 19021ae).
TEST(SpecialValues, ReluPropagatesNan) {
  for (DType d : {DType::f64, DType::f32})
    EXPECT_TRUE(like_libm(OpId::relu, d, {kNaN}, [](double x) { return x; }));
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
    matgrad::apply(OpId::add, {x, y});
    FAIL() << "expected matgrad::TypeError";
  } catch (const matgrad::TypeError& e) {
    EXPECT_EQ(std::string(e.what()).rfind("add: ", 0), 0u) << e.what();
  }
}

}  // namespace
}  // namespace mgtest
