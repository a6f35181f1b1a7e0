// SPDX-License-Identifier: MIT
// Helpers shared by the C++ tests: leaves of any rank and dtype, seeded random inputs, and the
// one gradient-check helper (central differences in float64 and a dot-product test, with a
// tolerance per dtype).
#pragma once

#include <gtest/gtest.h>
#include <matgrad/matgrad.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <random>
#include <sstream>
#include <string>
#include <vector>

// Readable gtest messages for engine types (found by argument-dependent lookup).
namespace matgrad {
inline void PrintTo(const Shape& s, std::ostream* os) { *os << s.str(); }
inline void PrintTo(DType d, std::ostream* os) { *os << dtype_name(d); }
inline void PrintTo(OpId op, std::ostream* os) { *os << op_name(op); }
}  // namespace matgrad

namespace mgtest {

using matgrad::DType;
using matgrad::NodeRef;
using matgrad::Shape;
using matgrad::Val;

/// The registry op called `name`.
inline matgrad::OpId opid(const char* name) { return matgrad::op_id(name); }
/// A registry op applied directly (no entry point): one input; two inputs after promotion to
/// one dtype; one input with a scalar attribute.
inline NodeRef apply1(matgrad::OpId o, const NodeRef& x) { return matgrad::apply(o, {x}); }
inline NodeRef apply2(matgrad::OpId o, const NodeRef& x, const NodeRef& y) {
  const DType d = x->dtype == DType::f64 || y->dtype == DType::f64 ? DType::f64 : DType::f32;
  return matgrad::apply(o, {matgrad::cast(x, d), matgrad::cast(y, d)});
}
inline NodeRef apply_s(matgrad::OpId o, const NodeRef& x, double s) {
  matgrad::Attr a;
  a.s = s;
  return matgrad::apply(o, {x}, a);
}

/// The message of the exception of type E that f throws ("no exception", or "wrong exception
/// type: ..." otherwise).
template <class E, class F>
std::string error_of(F f) {
  try {
    f();
  } catch (const E& e) {
    return e.what();
  } catch (const std::exception& e) {
    return std::string("wrong exception type: ") + e.what();
  }
  return "no exception";
}

inline Shape S() { return Shape::scalar(); }
inline Shape S(std::int64_t n) { return Shape::vector(n); }
inline Shape S(std::int64_t r, std::int64_t c) { return Shape::matrix(r, c); }

/// An input of a test function: a shape and its row-major elements.
struct Input {
  Shape shape;
  std::vector<double> data;
};

inline const char* dtype_str(DType d) { return d == DType::f64 ? "f64" : "f32"; }

/// The value rounded to what dtype d stores.
inline double round_to(double v, DType d) { return d == DType::f64 ? v : double(float(v)); }
inline Input round_to(Input in, DType d) {
  for (double& v : in.data) v = round_to(v, d);
  return in;
}

/// A leaf of shape s and dtype d holding `data` (row-major).
inline NodeRef leaf(const Shape& s, DType d, const std::vector<double>& data, bool requires_grad = true) {
  EXPECT_EQ(std::int64_t(data.size()), s.size()) << "leaf: data does not fill shape " << s.str();
  NodeRef n = matgrad::make_node(matgrad::kLeaf, s, d);
  for (std::int64_t i = 0; i < s.size(); ++i) {
    if (d == DType::f64)
      static_cast<double*>(n->data)[i] = data[i];
    else
      static_cast<float*>(n->data)[i] = float(data[i]);
  }
  n->requires_grad = requires_grad;
  return n;
}
inline NodeRef leaf(const Input& in, DType d, bool requires_grad = true) {
  return leaf(in.shape, d, in.data, requires_grad);
}
/// A 0-D leaf.
inline NodeRef leaf0(double v, DType d = DType::f64, bool requires_grad = true) {
  return leaf(S(), d, {v}, requires_grad);
}

/// The elements of a value as doubles, row-major.
inline std::vector<double> values(const Val& v) {
  std::vector<double> out(std::size_t(v.shape().size()));
  for (std::size_t i = 0; i < out.size(); ++i)
    out[i] = v.dtype() == DType::f64 ? v.ptr<double>()[i] : double(v.ptr<float>()[i]);
  return out;
}
inline std::vector<double> values(const NodeRef& n) { return values(n->value()); }
inline double scalar_value(const NodeRef& n) { return values(n).at(0); }

/// Seeded uniform numbers in [lo, hi]; with gap > 0, values with |v| < gap are pushed out to
/// +-gap (ops with a kink at 0).
class Rng {
 public:
  explicit Rng(std::uint32_t seed) : gen_(seed) {}
  double uniform(double lo, double hi) { return std::uniform_real_distribution<double>(lo, hi)(gen_); }
  Input input(const Shape& s, double lo = -1.0, double hi = 1.0, double gap = 0.0) {
    Input in{s, std::vector<double>(std::size_t(s.size()))};
    for (double& v : in.data) {
      v = uniform(lo, hi);
      if (gap > 0 && std::abs(v) < gap) v = v < 0 ? -gap - std::abs(v) : gap + std::abs(v);
    }
    return in;
  }
  Eigen::MatrixXd matrix(std::int64_t r, std::int64_t c, double lo = -1.0, double hi = 1.0) {
    Eigen::MatrixXd m(r, c);
    for (std::int64_t i = 0; i < r; ++i)
      for (std::int64_t j = 0; j < c; ++j) m(i, j) = uniform(lo, hi);
    return m;
  }

 private:
  std::mt19937 gen_;
};

/// A test function: builds its output from leaves (any number, ranks and dtype).
using Fn = std::function<NodeRef(const std::vector<NodeRef>&)>;

struct Tol {
  double rtol;
  double atol;
};
/// Gradients computed in dtype d, compared with float64 central differences.
inline Tol grad_tol(DType d) { return d == DType::f64 ? Tol{1e-6, 1e-8} : Tol{1e-3, 1e-4}; }
/// Forward values computed in dtype d, compared with a float64 closed form.
inline Tol value_tol(DType d) { return d == DType::f64 ? Tol{1e-12, 1e-14} : Tol{2e-6, 1e-6}; }

inline bool close(double got, double want, Tol t) {
  if (std::isnan(got) || std::isnan(want)) return std::isnan(got) && std::isnan(want);
  return std::abs(got - want) <= t.atol + t.rtol * std::abs(want);
}

/// Elementwise comparison with a message naming the first bad index.
inline ::testing::AssertionResult all_close(const std::vector<double>& got, const std::vector<double>& want, Tol t) {
  if (got.size() != want.size())
    return ::testing::AssertionFailure() << "size " << got.size() << " != expected " << want.size();
  for (std::size_t i = 0; i < got.size(); ++i)
    if (!close(got[i], want[i], t))
      return ::testing::AssertionFailure() << "element " << i << ": got " << got[i] << ", expected " << want[i]
                                           << " (rtol " << t.rtol << ", atol " << t.atol << ")";
  return ::testing::AssertionSuccess();
}
inline ::testing::AssertionResult all_close(const Eigen::MatrixXd& got, const Eigen::MatrixXd& want, Tol t) {
  if (got.rows() != want.rows() || got.cols() != want.cols())
    return ::testing::AssertionFailure() << "shape " << got.rows() << "x" << got.cols() << " != expected "
                                         << want.rows() << "x" << want.cols();
  for (Eigen::Index i = 0; i < got.rows(); ++i)
    for (Eigen::Index j = 0; j < got.cols(); ++j)
      if (!close(got(i, j), want(i, j), t))
        return ::testing::AssertionFailure()
               << "element (" << i << ", " << j << "): got " << got(i, j) << ", expected " << want(i, j);
  return ::testing::AssertionSuccess();
}

/// Row-major elements of an Eigen matrix.
inline std::vector<double> flat(const Eigen::MatrixXd& m) {
  std::vector<double> out;
  for (Eigen::Index i = 0; i < m.rows(); ++i)
    for (Eigen::Index j = 0; j < m.cols(); ++j) out.push_back(m(i, j));
  return out;
}
/// An r x c Eigen matrix from row-major elements.
inline Eigen::MatrixXd unflat(const std::vector<double>& v, std::int64_t r, std::int64_t c) {
  Eigen::MatrixXd m(r, c);
  for (std::int64_t i = 0; i < r; ++i)
    for (std::int64_t j = 0; j < c; ++j) m(i, j) = v[std::size_t(i * c + j)];
  return m;
}

inline double dot(const std::vector<double>& a, const std::vector<double>& b) {
  double s = 0;
  for (std::size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

struct GradCheck {
  double eps = 1e-5;        ///< central-difference step (float64)
  std::uint32_t seed = 7;   ///< for the cotangent and the dot-product direction
  bool check_dtype = true;  ///< output dtype equals the inputs' dtype
  double tol_scale = 1.0;   ///< widen the dtype's tolerance (e.g. through a float32 cast)
};

/// The one gradient check used for every op.
/// 1. Build f at xs (rounded to dtype d) with leaves of dtype d, draw a cotangent c of the
///    output's shape, and take the first-order adjoints grad_values(f, leaves, c).
/// 2. Each adjoint must have its input's shape (rank included) and dtype.
/// 3. Each element must match the float64 central difference of <c, f(x)>.
/// 4. Dot-product test: <t, vjp(c)> = <c, (f(x + h t) - f(x - h t)) / 2h> for a random t.
/// Leaves of the float64 evaluations require grad too, so f may itself take gradients.
inline ::testing::AssertionResult check_grad(const Fn& f, std::vector<Input> xs, DType d, GradCheck opt = {}) {
  for (Input& x : xs) x = round_to(x, d);
  Rng rng(opt.seed);
  std::vector<NodeRef> in;
  for (const Input& x : xs) in.push_back(leaf(x, d));
  NodeRef out = f(in);
  if (opt.check_dtype && out->dtype != d)
    return ::testing::AssertionFailure() << "output dtype " << matgrad::dtype_name(out->dtype) << ", expected "
                                         << matgrad::dtype_name(d);
  const Input c = round_to(rng.input(out->shape), d);
  const NodeRef seed = leaf(c, out->dtype, false);
  std::vector<Val> g;
  if (out->requires_grad) {
    g = matgrad::grad_values(out, in, seed);
  } else {
    for (const Input& x : xs) g.push_back(Val::filled(x.shape, d, 0.0));  // a constant output
  }
  const Shape out_shape = out->shape;
  out = NodeRef();

  // <c, f(x)> in float64.
  auto F = [&](const std::vector<Input>& at) {
    std::vector<NodeRef> l;
    for (const Input& x : at) l.push_back(leaf(x, DType::f64));
    NodeRef o = f(l);
    if (o->shape != out_shape) ADD_FAILURE() << "output shape changed under perturbation";
    return dot(c.data, values(o));
  };
  const Tol tol{grad_tol(d).rtol * opt.tol_scale, grad_tol(d).atol * opt.tol_scale};
  for (std::size_t k = 0; k < xs.size(); ++k) {
    if (g[k].shape() != xs[k].shape)
      return ::testing::AssertionFailure() << "gradient of input " << k << " has shape " << g[k].shape().str()
                                           << ", input has shape " << xs[k].shape.str();
    if (g[k].dtype() != d)
      return ::testing::AssertionFailure()
             << "gradient of input " << k << " has dtype " << matgrad::dtype_name(g[k].dtype()) << ", input has "
             << matgrad::dtype_name(d);
    const std::vector<double> gk = values(g[k]);
    for (std::size_t j = 0; j < xs[k].data.size(); ++j) {
      std::vector<Input> p = xs, m = xs;
      p[k].data[j] += opt.eps;
      m[k].data[j] -= opt.eps;
      const double fd = (F(p) - F(m)) / (2 * opt.eps);
      if (!close(gk[j], fd, tol))
        return ::testing::AssertionFailure()
               << "d/d input " << k << " " << xs[k].shape.str() << " element " << j << ": autodiff " << gk[j]
               << ", central difference " << fd << " (" << dtype_str(d) << ")";
    }
  }
  // Dot-product test along a random direction.
  std::vector<Input> t, p = xs, m = xs;
  double lhs = 0;
  for (std::size_t k = 0; k < xs.size(); ++k) {
    t.push_back(rng.input(xs[k].shape));
    lhs += dot(t[k].data, values(g[k]));
    for (std::size_t j = 0; j < xs[k].data.size(); ++j) {
      p[k].data[j] += opt.eps * t[k].data[j];
      m[k].data[j] -= opt.eps * t[k].data[j];
    }
  }
  const double rhs = (F(p) - F(m)) / (2 * opt.eps);
  if (!close(lhs, rhs, Tol{tol.rtol * 10, tol.atol * 10}))
    return ::testing::AssertionFailure() << "dot-product test: <t, vjp(c)> = " << lhs << ", <c, jvp(t)> = " << rhs;
  return ::testing::AssertionSuccess();
}

/// x -> <W, grad f(x)> with the gradient built as a graph (grad_nodes): check_grad of this
/// checks second derivatives (Hessian-vector products) against differences of gradients.
inline Fn grad_of(const Fn& f, std::uint32_t seed = 11) {
  return [f, seed](const std::vector<NodeRef>& in) {
    NodeRef out = f(in);
    Rng rng(seed);
    const Input c = rng.input(out->shape);
    std::vector<NodeRef> g = matgrad::grad_nodes(out, in, leaf(c, out->dtype, false));
    NodeRef acc;
    for (std::size_t k = 0; k < g.size(); ++k) {
      NodeRef w = leaf(rng.input(g[k]->shape), g[k]->dtype, false);
      NodeRef term = matgrad::sum(g[k] * w);
      acc = acc ? acc + term : term;
    }
    return acc;
  };
}

/// The same through backward(create_graph=true) and the leaves' .grad.
inline Fn backward_grad_of(const Fn& f, std::uint32_t seed = 11) {
  return [f, seed](const std::vector<NodeRef>& in) {
    NodeRef out = f(in);
    Rng rng(seed);
    const Input c = rng.input(out->shape);
    for (const NodeRef& x : in) x->grad = NodeRef();
    matgrad::backward(out, leaf(c, out->dtype, false), /*create_graph=*/true);
    NodeRef acc;
    for (const NodeRef& x : in) {
      NodeRef g = x->grad ? x->grad : matgrad::full(x->shape, x->dtype, 0.0);
      x->grad = NodeRef();  // no cycle leaf -> grad -> leaf
      NodeRef w = leaf(rng.input(g->shape), g->dtype, false);
      NodeRef term = matgrad::sum(g * w);
      acc = acc ? acc + term : term;
    }
    return acc;
  };
}

}  // namespace mgtest
