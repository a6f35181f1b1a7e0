// SPDX-License-Identifier: MIT
// The engine without Python: the lecture example against its closed form, the reverse sweep
// (fan-out, unused inputs, skipped nodes, no_grad, accumulation), create_graph, errors, a
// 10^6-node chain, and the bounded buffer pool.
#include "test_util.hpp"

#include <matgrad/matgrad.hpp>

#include <cmath>
#include <string>
#include <thread>
#include <vector>

namespace mgtest {
namespace {

using matgrad::OpId;
using matgrad::Var;

// ---- the lecture example ----
// f(x) = sqrt(x^2 + exp(x^2)) + cos(x^2 + exp(x^2)),
// df/dx = 2x (1 / (2 sqrt(c)) - sin(c)) (1 + exp(x^2)),  c = x^2 + exp(x^2).

template <class V>
V lecture(const V& x) {
  using std::cos;
  using std::exp;
  using std::sqrt;
  return sqrt(x * x + exp(x * x)) + cos(x * x + exp(x * x));
}
double lecture_df(double x) {
  const double c = x * x + std::exp(x * x);
  return 2 * x * (1 / (2 * std::sqrt(c)) - std::sin(c)) * (1 + std::exp(x * x));
}

TEST(LectureExample, ValueAndGradientMatchTheClosedForm) {
  for (double x0 : {0.7, -1.3, 0.0, 0.25, 1.1}) {
    SCOPED_TRACE("x = " + std::to_string(x0));
    Var x = matgrad::variable(Eigen::MatrixXd::Constant(1, 1, x0));
    Var f = lecture(x);
    EXPECT_NEAR(matgrad::value(f)(0, 0), lecture(x0), 1e-14);
    std::vector<Eigen::MatrixXd> g = matgrad::grad(f, {x});
    ASSERT_EQ(g.size(), 1u);
    ASSERT_EQ(g[0].rows(), 1);
    ASSERT_EQ(g[0].cols(), 1);
    EXPECT_NEAR(g[0](0, 0), lecture_df(x0), 1e-13 * (1 + std::abs(lecture_df(x0))));
  }
}

TEST(LectureExample, ZeroDimensionalScalarLeaf) {
  Var x = matgrad::scalar(0.7);
  EXPECT_EQ(x->shape, S());
  Var f = lecture(x);
  EXPECT_EQ(f->shape, S());
  EXPECT_NEAR(matgrad::grad(f, {x})[0](0, 0), lecture_df(0.7), 1e-13);
}

TEST(LectureExample, ElementwiseOverAMatrixInFloat64AndFloat32) {
  Rng rng(1);
  const Eigen::MatrixXd X = rng.matrix(3, 4, -1.5, 1.5);
  {
    Var x = matgrad::variable(X);
    Var f = matgrad::sum(lecture(x));
    const Eigen::MatrixXd g = matgrad::grad(f, {x})[0];
    EXPECT_TRUE(all_close(g, X.unaryExpr(&lecture_df), Tol{1e-12, 1e-13}));
  }
  {
    const Eigen::MatrixXf Xf = X.cast<float>();
    Var x = matgrad::variable(Xf);
    EXPECT_EQ(x->dtype, DType::f32);
    Var f = matgrad::sum(lecture(x));
    EXPECT_EQ(f->dtype, DType::f32);
    const Eigen::MatrixXd g = matgrad::grad(f, {x})[0];
    // float32 arithmetic against the float64 closed form at the same (rounded) points
    EXPECT_TRUE(all_close(g, Xf.cast<double>().unaryExpr(&lecture_df), Tol{1e-4, 1e-5}));
  }
}

TEST(CppApi, ValueAndGradVjpAndNoGrad) {
  Rng rng(5);
  const Eigen::MatrixXd X = rng.matrix(3, 4, -1.5, 1.5), U = rng.matrix(3, 4, -1, 1);
  Var x = matgrad::variable(X);
  // value_and_grad: one sweep, the same value and gradient as value() and grad()
  Var f = matgrad::sum(lecture(x));
  const auto [v, g] = matgrad::value_and_grad(f, {x});
  EXPECT_DOUBLE_EQ(v, matgrad::value(f)(0, 0));
  ASSERT_EQ(g.size(), 1u);
  EXPECT_TRUE(all_close(g[0], X.unaryExpr(&lecture_df), Tol{1e-12, 1e-13}));
  const std::string e = error_of<matgrad::ShapeError>([&] { matgrad::value_and_grad(lecture(x), {x}); });
  EXPECT_EQ(e, "value_and_grad: the function's output has shape (3, 4); it must be a scalar (shape () or (1, 1))");
  // vjp: u^T J of the elementwise lecture function is u * f'(x)
  const auto gu = matgrad::vjp(lecture(x), {x}, matgrad::constant(U));
  EXPECT_TRUE(all_close(gu[0], (U.array() * X.unaryExpr(&lecture_df).array()).matrix(), Tol{1e-12, 1e-13}));
  const std::string ev = error_of<matgrad::ShapeError>(
      [&] { matgrad::vjp(lecture(x), {x}, matgrad::constant(Eigen::MatrixXd::Ones(4, 3))); });
  EXPECT_EQ(ev, "vjp: cotangent of shape (4, 3) does not match output of shape (3, 4)");
  // NoGrad: no edges while it lives, the previous mode after
  {
    matgrad::NoGrad off;
    EXPECT_FALSE(matgrad::grad_enabled());
    Var y = x * x;
    EXPECT_FALSE(y->requires_grad);
    EXPECT_EQ(y->nparents, 0);
  }
  EXPECT_TRUE(matgrad::grad_enabled());
  EXPECT_TRUE((x * x)->requires_grad);
}

TEST(LectureExample, BackwardFillsTheLeafGrad) {
  Var x = matgrad::scalar(0.7);
  Var f = lecture(x);
  matgrad::backward(f);
  ASSERT_TRUE(x->grad);
  EXPECT_FALSE(x->grad->requires_grad);
  EXPECT_EQ(x->grad->shape, S());
  EXPECT_NEAR(scalar_value(x->grad), lecture_df(0.7), 1e-13);
}

TEST(LectureExample, SecondDerivativeMatchesFiniteDifferencesOfTheClosedForm) {
  for (double x0 : {0.7, -0.4, 1.2}) {
    SCOPED_TRACE("x = " + std::to_string(x0));
    const double h = 1e-5;
    const double want = (lecture_df(x0 + h) - lecture_df(x0 - h)) / (2 * h);
    {  // grad_nodes, then a first-order sweep over the gradient graph
      Var x = matgrad::scalar(x0);
      Var g = matgrad::grad_nodes(lecture(x), {x})[0];
      EXPECT_TRUE(g->requires_grad);
      EXPECT_NEAR(scalar_value(g), lecture_df(x0), 1e-13);
      EXPECT_NEAR(values(matgrad::grad_values(g, {x})[0])[0], want, 1e-6 * (1 + std::abs(want)));
    }
    {  // backward(create_graph=true), then backward again through x.grad
      Var x = matgrad::scalar(x0);
      matgrad::backward(lecture(x), nullptr, /*create_graph=*/true);
      Var g = x->grad;
      x->grad = Var();
      matgrad::backward(g);
      EXPECT_NEAR(scalar_value(x->grad), want, 1e-6 * (1 + std::abs(want)));
    }
  }
}

// ---- the reverse sweep ----

TEST(FanOut, ContributionsOfEveryPathAreSummed) {
  Var x = matgrad::scalar(0.3);
  EXPECT_DOUBLE_EQ(matgrad::grad(x + x + x, {x})[0](0, 0), 3.0);
  EXPECT_DOUBLE_EQ(matgrad::grad(x * x, {x})[0](0, 0), 0.6);
  // a shared intermediate: f = y^2 + y, y = exp(x);  df/dx = (2y + 1) y
  Var y = matgrad::exp(x);
  const double yv = std::exp(0.3);
  EXPECT_NEAR(matgrad::grad(y * y + y, {x})[0](0, 0), (2 * yv + 1) * yv, 1e-14);
}

TEST(FanOut, LargeValuesAccumulateInPooledBuffers) {
  // 20 x 20 doubles do not fit inline: adjoints live in pooled buffers and are summed there.
  Rng rng(2);
  const Eigen::MatrixXd X = rng.matrix(20, 20);
  Var x = matgrad::variable(X);
  Var y = x * 2.0;
  Var f = matgrad::sum(y * y + matgrad::sin(y) + y + matgrad::exp(y) * y);
  const Eigen::ArrayXXd Y = 2 * X.array();
  const Eigen::MatrixXd want = 2 * (2 * Y + Y.cos() + 1 + Y.exp() * Y + Y.exp()).matrix();
  EXPECT_TRUE(all_close(matgrad::grad(f, {x})[0], want, Tol{1e-12, 1e-12}));
}

TEST(FanOut, SameMatrixOnBothSidesOfMatmul) {
  // d <G, A A> / dA = G A^T + A^T G
  Rng rng(3);
  const Eigen::MatrixXd A = rng.matrix(5, 5), G = rng.matrix(5, 5);
  Var a = matgrad::variable(A);
  auto g = matgrad::grad_values(matgrad::matmul(a, a), {a}, matgrad::variable(G, false));
  EXPECT_TRUE(all_close(unflat(values(g[0]), 5, 5), G * A.transpose() + A.transpose() * G, Tol{1e-12, 1e-13}));
}

TEST(UnusedInputs, GetZerosOfTheirOwnShapeAndDtype) {
  Var x = leaf(S(3), DType::f64, {1, 2, 3});
  Var unused = leaf(S(2, 2), DType::f32, {1, 2, 3, 4});
  Var constant = leaf(S(), DType::f64, {5}, /*requires_grad=*/false);
  Var f = matgrad::sum(x * x);
  auto g = matgrad::grad_values(f, {x, unused, constant});
  EXPECT_EQ(values(g[0]), (std::vector<double>{2, 4, 6}));
  EXPECT_EQ(g[1].shape(), S(2, 2));
  EXPECT_EQ(g[1].dtype(), DType::f32);
  EXPECT_EQ(values(g[1]), (std::vector<double>(4, 0.0)));
  EXPECT_EQ(g[2].shape(), S());
  EXPECT_EQ(values(g[2]), (std::vector<double>{0.0}));
  // the same through the public API and through grad_nodes
  auto gm = matgrad::grad(f, {unused});
  EXPECT_TRUE(all_close(gm[0], Eigen::MatrixXd::Zero(2, 2), Tol{0, 0}));
  auto gn = matgrad::grad_nodes(f, {x, unused});
  EXPECT_EQ(gn[1]->shape, S(2, 2));
  EXPECT_EQ(values(gn[1]), (std::vector<double>(4, 0.0)));
}

TEST(UnusedInputs, AnOutputThatNeedsNoGradientGivesZeros) {
  Var c = leaf(S(2), DType::f64, {1, 2}, false);
  Var x = leaf(S(2), DType::f64, {3, 4});
  Var f = matgrad::sum(c * c);
  EXPECT_FALSE(f->requires_grad);
  auto g = matgrad::grad_values(f, {x});
  EXPECT_EQ(values(g[0]), (std::vector<double>{0, 0}));
  auto gn = matgrad::grad_nodes(f, {x});
  EXPECT_EQ(values(gn[0]), (std::vector<double>{0, 0}));
}

TEST(RequestedInputs, AnIntermediateNodeCanBeDifferentiatedAgainst) {
  Var x = leaf(S(2), DType::f64, {0.5, -1.0});
  Var y = matgrad::exp(x);
  Var f = matgrad::sum(y * y);
  auto g = matgrad::grad_values(f, {y, x});
  const std::vector<double> yv = values(y);
  EXPECT_TRUE(all_close(values(g[0]), {2 * yv[0], 2 * yv[1]}, Tol{1e-14, 0}));
  EXPECT_TRUE(all_close(values(g[1]), {2 * yv[0] * yv[0], 2 * yv[1] * yv[1]}, Tol{1e-14, 0}));
  // the output itself: its own cotangent
  EXPECT_EQ(values(matgrad::grad_values(f, {f})[0]), (std::vector<double>{1.0}));
}

// Note [observing the skip]
// VJPs write into pooled buffers, which go back to the pool's free lists when released. After
// pool_trim(), a gradient with respect to x alone must not have touched the 256 x 256 branch:
// no buffer of that size class may appear in the pool.
TEST(Skipping, NodesThatDoNotReachTheRequestedInputsAreSkipped) {
  Rng rng(4);
  Var w = matgrad::variable(rng.matrix(256, 256));  // requires grad, but is not requested
  Var x = matgrad::scalar(0.5);
  Var f = matgrad::sum(matgrad::matmul(w, w)) * 1e-3 + x * x;
  const std::size_t big = 256 * 256 * sizeof(double);

  matgrad::pool_trim();
  auto gx = matgrad::grad_values(f, {x});
  EXPECT_DOUBLE_EQ(values(gx[0])[0], 1.0);
  gx.clear();
  EXPECT_LT(matgrad::pool_cached_bytes(), big) << "the sweep ran VJPs of the matmul branch";

  matgrad::pool_trim();
  auto gn = matgrad::grad_nodes(f, {x});
  EXPECT_DOUBLE_EQ(values(gn[0])[0], 1.0);
  gn.clear();
  EXPECT_LT(matgrad::pool_cached_bytes(), big) << "create_graph emitted ops for the matmul branch";

  // control: asking for w does run that branch (so the observation above means something)
  matgrad::pool_trim();
  auto gw = matgrad::grad_values(f, {w});
  gw.clear();
  EXPECT_GE(matgrad::pool_cached_bytes(), big);
}

TEST(Skipping, OpsOnConstantsRecordNoEdges) {
  Var c = leaf(S(3), DType::f64, {1, 2, 3}, false);
  Var y = matgrad::exp(c) * 2.0 + c;
  EXPECT_FALSE(y->requires_grad);
  EXPECT_EQ(y->nparents, 0);
  Var x = leaf(S(3), DType::f64, {1, 2, 3});
  Var z = x * c;
  EXPECT_TRUE(z->requires_grad);
  EXPECT_EQ(z->nparents, 2);
}

TEST(NoGrad, GradModeOffRecordsNothing) {
  Var x = leaf(S(3), DType::f64, {1, 2, 3});
  EXPECT_TRUE(matgrad::grad_enabled());
  {
    matgrad::GradMode off(false);
    EXPECT_FALSE(matgrad::grad_enabled());
    Var y = matgrad::sum(matgrad::sin(x) * x);
    EXPECT_FALSE(y->requires_grad);
    EXPECT_EQ(y->nparents, 0);
    EXPECT_NEAR(scalar_value(y), std::sin(1) + 2 * std::sin(2) + 3 * std::sin(3), 1e-14);  // still computed
    EXPECT_THROW(matgrad::backward(y), matgrad::GraphError);
    EXPECT_EQ(values(matgrad::grad_values(y, {x})[0]), (std::vector<double>{0, 0, 0}));
    {
      matgrad::GradMode on(true);  // nested: back on
      EXPECT_TRUE(matgrad::sum(x * x)->requires_grad);
    }
    EXPECT_FALSE(matgrad::grad_enabled());
  }
  EXPECT_TRUE(matgrad::grad_enabled());
  Var y = matgrad::sum(x * x);
  EXPECT_TRUE(y->requires_grad);
  EXPECT_EQ(y->nparents, 1);
}

TEST(NoGrad, FirstOrderGradientsAreConstants) {
  Var x = matgrad::scalar(0.7);
  matgrad::backward(lecture(x));
  ASSERT_TRUE(x->grad);
  EXPECT_FALSE(x->grad->requires_grad);
  EXPECT_EQ(x->grad->nparents, 0);
}

TEST(Backward, AccumulatesAcrossCalls) {
  Var x = leaf(S(2), DType::f64, {1.0, -2.0});
  matgrad::backward(matgrad::sum(x * x));
  EXPECT_EQ(values(x->grad), (std::vector<double>{2, -4}));
  matgrad::backward(matgrad::sum(x * 3.0));
  EXPECT_EQ(values(x->grad), (std::vector<double>{5, -1}));
  EXPECT_EQ(x->grad->shape, S(2));
}

TEST(Backward, OnlyLeavesAndRetainGradNodesGetAGrad) {
  Var x = leaf(S(2), DType::f64, {1.0, 2.0});
  Var y = x * x;
  Var z = matgrad::sin(y);
  z->retains_grad = true;
  Var f = matgrad::sum(z * 2.0);
  matgrad::backward(f);
  EXPECT_FALSE(y->grad);
  ASSERT_TRUE(z->grad);
  EXPECT_EQ(values(z->grad), (std::vector<double>{2, 2}));
  EXPECT_TRUE(all_close(values(x->grad), {2 * std::cos(1.0) * 2 * 1, 2 * std::cos(4.0) * 2 * 2}, Tol{1e-14, 0}));
}

TEST(Backward, CotangentForANonScalarOutput) {
  Var x = leaf(S(3), DType::f64, {1, 2, 3});
  Var y = x * x;
  matgrad::backward(y, leaf(S(3), DType::f64, {1, 10, 100}, false));
  EXPECT_EQ(values(x->grad), (std::vector<double>{2, 40, 600}));
  // a float32 cotangent for a float64 output is cast
  Var x2 = leaf(S(3), DType::f64, {1, 2, 3});
  matgrad::backward(x2 * x2, leaf(S(3), DType::f32, {1, 1, 1}, false));
  EXPECT_EQ(values(x2->grad), (std::vector<double>{2, 4, 6}));
  EXPECT_EQ(x2->grad->dtype, DType::f64);
}

TEST(Backward, OfALeafItself) {
  Var x = leaf(S(2), DType::f64, {3, 4});
  matgrad::backward(x, leaf(S(2), DType::f64, {1, 2}, false));
  EXPECT_EQ(values(x->grad), (std::vector<double>{1, 2}));
}

// ---- ownership: results do not alias memory the caller may free or change ----

// Regression: grad_values returned a Val borrowing the cotangent node's inline storage
// (pass-through VJPs such as add_s, add, alias and reshape hand the seed on), which dangled
// once the caller's cotangent node was freed.
TEST(Ownership, GradValuesDoNotBorrowASmallCotangent) {
  Var x = leaf(S(3), DType::f64, {1, 2, 3});
  std::vector<Val> g;
  {
    Var seed = leaf(S(3), DType::f64, {1, 2, 3}, false);
    g = matgrad::grad_values(x + 1.0, {x}, seed);
  }
  Var other = leaf(S(3), DType::f64, {7, 8, 9}, false);  // reuses the freed seed node's block
  EXPECT_EQ(values(g[0]), (std::vector<double>{1, 2, 3}));
}

// backward() with a cotangent over external memory (a NumPy array mapped as a constant,
// Buffer::external) made x.grad a leaf over that same memory until 19021ae.
TEST(Ownership, BackwardGradDoesNotAliasAnExternalCotangent) {
  std::vector<double> mem(64, 1.0);  // 512 bytes: too big to be inlined
  matgrad::Buffer* b = matgrad::Buffer::external(mem.data(), mem.size() * sizeof(double), nullptr, nullptr);
  Var seed = matgrad::make_leaf_shared(b, mem.data(), S(64), DType::f64, false);
  Var x = leaf(S(64), DType::f64, std::vector<double>(64, 0.5));
  matgrad::backward(x + 1.0, seed);
  ASSERT_TRUE(x->grad);
  EXPECT_EQ(values(x->grad)[0], 1.0);
  // and through create_graph and grad_values
  Var x2 = leaf(S(64), DType::f64, std::vector<double>(64, 0.5));
  matgrad::backward(x2 * x2, seed, /*create_graph=*/true);
  ASSERT_TRUE(x2->grad);
  Var xg = leaf(S(64), DType::f64, std::vector<double>(64, 0.5));
  std::vector<Val> gv = matgrad::grad_values(xg + 1.0, {xg}, seed);
  mem[0] = 5.0;  // the caller reuses its array
  EXPECT_EQ(values(x->grad)[0], 1.0) << "x.grad shares memory with the caller's cotangent";
  EXPECT_EQ(values(x2->grad)[0], 1.0) << "x.grad (create_graph) shares memory with the caller's cotangent";
  EXPECT_EQ(values(gv[0])[0], 1.0) << "grad_values shares memory with the caller's cotangent";
  x2->grad = nullptr;  // break the create_graph cycle (x2.grad refers back to x2)
}

// ---- create_graph ----

TEST(CreateGraph, NestedDerivativesOfAQuartic) {
  // f = x^4: f' = 4x^3, f'' = 12x^2, f''' = 24x
  const double x0 = 1.3;
  Var x = matgrad::scalar(x0);
  Var f = x * x * x * x;
  Var d1 = matgrad::grad_nodes(f, {x})[0];
  Var d2 = matgrad::grad_nodes(d1, {x})[0];
  Var d3 = matgrad::grad_nodes(d2, {x})[0];
  EXPECT_NEAR(scalar_value(d1), 4 * x0 * x0 * x0, 1e-13);
  EXPECT_NEAR(scalar_value(d2), 12 * x0 * x0, 1e-13);
  EXPECT_NEAR(scalar_value(d3), 24 * x0, 1e-13);
  EXPECT_NEAR(values(matgrad::grad_values(d3, {x})[0])[0], 24.0, 1e-13);
  // the same with backward(create_graph=true) three times
  Var y = matgrad::scalar(x0);
  Var g = y * y * y * y;
  for (double want : {4 * x0 * x0 * x0, 12 * x0 * x0, 24 * x0}) {
    matgrad::backward(g, nullptr, true);
    g = y->grad;
    y->grad = Var();
    EXPECT_NEAR(scalar_value(g), want, 1e-13);
  }
}

TEST(CreateGraph, HessianOfAQuadraticFormIsASymmetrisedMatrix) {
  // f(x) = x^T A x with x 1-D: H = A + A^T, computed one row at a time.
  Rng rng(5);
  const int n = 4;
  const Eigen::MatrixXd A = rng.matrix(n, n);
  const Input xin = rng.input(S(n));
  Var x = leaf(xin, DType::f64);
  Var f = matgrad::matmul(x, matgrad::matmul(matgrad::variable(A, false), x));
  EXPECT_EQ(f->shape, S());
  Var g = matgrad::grad_nodes(f, {x})[0];
  EXPECT_EQ(g->shape, S(n));
  const Eigen::VectorXd xv = Eigen::Map<const Eigen::VectorXd>(xin.data.data(), n);
  EXPECT_TRUE(all_close(values(g), flat(((A + A.transpose()) * xv).transpose()), Tol{1e-13, 1e-14}));
  const Eigen::MatrixXd H = A + A.transpose();
  for (int i = 0; i < n; ++i) {
    std::vector<double> e(n, 0.0);
    e[std::size_t(i)] = 1.0;
    auto row = matgrad::grad_values(g, {x}, leaf(S(n), DType::f64, e, false));
    EXPECT_TRUE(all_close(values(row[0]), flat(H.row(i)), Tol{1e-13, 1e-14})) << "row " << i;
  }
}

Fn small_network() {
  // f(W, x, b) = sum(sigmoid(W x + b)^2) + mean(tanh(W)) with broadcasting and a 1-D x.
  return [](const std::vector<NodeRef>& v) {
    NodeRef h = matgrad::sigmoid(matgrad::matmul(v[0], v[1]) + v[2]);
    return matgrad::sum(h * h) + matgrad::mean(matgrad::tanh(v[0]));
  };
}

TEST(CreateGraph, SecondDerivativesOfACompositeMatchFiniteDifferences) {
  Rng rng(6);
  const std::vector<Input> xs = {rng.input(S(3, 4)), rng.input(S(4)), rng.input(S(3))};
  for (DType d : {DType::f64, DType::f32}) {
    SCOPED_TRACE(dtype_str(d));
    EXPECT_TRUE(check_grad(small_network(), xs, d));
    EXPECT_TRUE(check_grad(grad_of(small_network()), xs, d));
    EXPECT_TRUE(check_grad(backward_grad_of(small_network()), xs, d));
  }
}

TEST(CreateGraph, ForwardModeAsTheVjpOfAVjp) {
  // g(u) = J^T u is linear in u; d <g(u), t> / du = J t, the JVP along t.
  Rng rng(7);
  const Input x0 = rng.input(S(3, 2)), t = rng.input(S(3, 2)), u0 = rng.input(S(3, 2));
  auto f = [](const NodeRef& x) { return matgrad::sin(x) * x + matgrad::exp(x * 0.5); };
  Var x = leaf(x0, DType::f64);
  Var u = leaf(u0, DType::f64);  // the cotangent, itself differentiable
  Var g = matgrad::grad_nodes(f(x), {x}, u)[0];
  Var jt = matgrad::grad_nodes(matgrad::sum(g * leaf(t, DType::f64, false)), {u})[0];
  // central difference of f along t
  const double h = 1e-6;
  Input p = x0, m = x0;
  for (std::size_t i = 0; i < p.data.size(); ++i) {
    p.data[i] += h * t.data[i];
    m.data[i] -= h * t.data[i];
  }
  const std::vector<double> fp = values(f(leaf(p, DType::f64, false))), fm = values(f(leaf(m, DType::f64, false)));
  std::vector<double> want;
  for (std::size_t i = 0; i < fp.size(); ++i) want.push_back((fp[i] - fm[i]) / (2 * h));
  EXPECT_TRUE(all_close(values(jt), want, Tol{1e-7, 1e-9}));
}

// ---- errors: matgrad::ShapeError, the op name first, every operand shape as a Python tuple ----

bool starts_with(const std::string& s, const std::string& p) { return s.rfind(p, 0) == 0; }

TEST(Errors, MatmulShapesThatAreNotAligned) {
  Var a = matgrad::variable(Eigen::MatrixXd::Zero(3, 4));
  Var b = matgrad::variable(Eigen::MatrixXd::Zero(5, 2));
  EXPECT_EQ(error_of<matgrad::ShapeError>([&] { matgrad::matmul(a, b); }),
            "matmul: shapes (3, 4) and (5, 2) are not aligned");
  const std::string t = error_of<matgrad::ShapeError>([&] { matgrad::matmul(a, b, true, false); });
  EXPECT_TRUE(starts_with(t, "matmul: shapes (3, 4) and (5, 2) are not aligned")) << t;
  Var v3 = leaf(S(3), DType::f64, {1, 2, 3}), v4 = leaf(S(4), DType::f64, {1, 2, 3, 4});
  EXPECT_EQ(error_of<matgrad::ShapeError>([&] { matgrad::matmul(v3, v4); }),
            "matmul: shapes (3,) and (4,) are not aligned");
  const std::string mv = error_of<matgrad::ShapeError>([&] { matgrad::matmul(b, v3); });
  EXPECT_TRUE(starts_with(mv, "matmul: shapes (5, 2) and (3,)")) << mv;
  const std::string z = error_of<matgrad::ShapeError>([&] { matgrad::matmul(matgrad::scalar(1.0), v3); });
  EXPECT_TRUE(starts_with(z, "matmul: shapes () and (3,)")) << z;
}

TEST(Errors, BroadcastingNamesTheOpAndBothShapes) {
  Var v3 = leaf(S(3), DType::f64, {1, 2, 3}), v4 = leaf(S(4), DType::f64, {1, 2, 3, 4});
  Var m23 = matgrad::variable(Eigen::MatrixXd::Ones(2, 3));
  Var v2 = leaf(S(2), DType::f64, {1, 2});
  const std::pair<OpId, const char*> ops[] = {
      {opid("add"), "add"}, {opid("sub"), "sub"},         {opid("mul"), "mul"},        {opid("div"), "div"},
      {opid("pow"), "pow"}, {opid("maximum"), "maximum"}, {opid("minimum"), "minimum"}};
  for (const auto& op : ops) {
    EXPECT_EQ(error_of<matgrad::ShapeError>([&] { apply2(op.first, v3, v4); }),
              std::string(op.second) + ": shapes (3,) and (4,) cannot be broadcast together");
    EXPECT_EQ(error_of<matgrad::ShapeError>([&] { apply2(op.first, m23, v2); }),
              std::string(op.second) + ": shapes (2, 3) and (2,) cannot be broadcast together");
  }
  EXPECT_EQ(error_of<matgrad::ShapeError>([&] { v3 + v4; }), "add: shapes (3,) and (4,) cannot be broadcast together");
}

TEST(Errors, ReductionAxisOutOfBounds) {
  Var m = matgrad::variable(Eigen::MatrixXd::Ones(3, 4));
  Var v = leaf(S(3), DType::f64, {1, 2, 3});
  EXPECT_EQ(error_of<matgrad::ShapeError>([&] { matgrad::sum(m, 2); }),
            "sum: axis 2 is out of bounds for shape (3, 4)");
  EXPECT_EQ(error_of<matgrad::ShapeError>([&] { matgrad::mean(m, -3); }),
            "mean: axis -3 is out of bounds for shape (3, 4)");
  EXPECT_EQ(error_of<matgrad::ShapeError>([&] { matgrad::sum(v, 1); }), "sum: axis 1 is out of bounds for shape (3,)");
  EXPECT_EQ(error_of<matgrad::ShapeError>([&] { matgrad::mean(matgrad::scalar(1.0), 0); }),
            "mean: axis 0 is out of bounds for shape ()");
}

TEST(Errors, ShapeOps) {
  Var m = matgrad::variable(Eigen::MatrixXd::Ones(2, 3));
  EXPECT_EQ(error_of<matgrad::ShapeError>([&] { matgrad::reshape(m, S(4, 2)); }),
            "reshape: cannot reshape array of shape (2, 3) into shape (4, 2)");
  Var v = leaf(S(3), DType::f64, {1, 2, 3});
  EXPECT_EQ(error_of<matgrad::ShapeError>([&] { matgrad::broadcast_to(v, S(2, 4)); }),
            "broadcast_to: shape (3,) cannot be broadcast to (2, 4)");
  EXPECT_EQ(error_of<matgrad::ShapeError>([&] { matgrad::broadcast_to(m, S(3)); }),
            "broadcast_to: shape (2, 3) cannot be broadcast to (3,)");
}

TEST(Errors, GradientsOfNonScalarsAndOfConstants) {
  Var x = leaf(S(3), DType::f64, {1, 2, 3});
  const std::string b = error_of<matgrad::ShapeError>([&] { matgrad::backward(x * x); });
  EXPECT_TRUE(starts_with(b, "backward: output of shape (3,) is not a scalar")) << b;
  const std::string g = error_of<matgrad::ShapeError>([&] { matgrad::grad(x * x, {x}); });
  EXPECT_TRUE(starts_with(g, "grad: output of shape (3,) is not a scalar")) << g;
  const std::string c =
      error_of<matgrad::ShapeError>([&] { matgrad::backward(x * x, leaf(S(2), DType::f64, {1, 1}, false)); });
  EXPECT_EQ(c, "backward: cotangent of shape (2,) does not match output of shape (3,)");
  const std::string gn = error_of<matgrad::ShapeError>(
      [&] { matgrad::grad_nodes(x * x, {x}, leaf(S(1, 3), DType::f64, {1, 1, 1}, false)); });
  EXPECT_EQ(gn, "grad: cotangent of shape (1, 3) does not match output of shape (3,)");
  Var c0 = leaf(S(), DType::f64, {1}, false);
  const std::string k = error_of<matgrad::GraphError>([&] { matgrad::backward(c0 * 2.0); });
  EXPECT_TRUE(starts_with(k, "backward: the output does not require grad")) << k;
}

TEST(Errors, AllAreMatgradErrorsAndTheEngineStaysUsable) {
  Var a = matgrad::variable(Eigen::MatrixXd::Ones(3, 4));
  EXPECT_THROW(matgrad::matmul(a, a), matgrad::Error);
  EXPECT_THROW(matgrad::matmul(a, a), matgrad::ShapeError);
  Var f = matgrad::sum(matgrad::matmul(a, a, false, true));
  EXPECT_TRUE(all_close(matgrad::grad(f, {a})[0], Eigen::MatrixXd::Constant(3, 4, 6.0), Tol{0, 0}));
}

// ---- scale: a 10^6-node chain, iteratively ----

TEST(DeepChain, MillionNodeChainBuildsDifferentiatesAndFrees) {
  // y_{k+1} = sin(y_k): dy_n/dy_0 = prod cos(y_k), by the same recurrence in double.
  const int n = 1000000;
  Var x = matgrad::scalar(1.0);
  Var y = x;
  double yv = 1.0, d = 1.0;
  for (int k = 0; k < n; ++k) {
    y = matgrad::sin(y);
    d *= std::cos(yv);
    yv = std::sin(yv);
  }
  EXPECT_NEAR(scalar_value(y), yv, 1e-12);
  auto g = matgrad::grad_values(y, {x});
  EXPECT_NEAR(values(g[0])[0], d, 1e-12 + 1e-9 * std::abs(d));
  matgrad::backward(y);  // and through backward()
  EXPECT_NEAR(scalar_value(x->grad), d, 1e-12 + 1e-9 * std::abs(d));
  y = Var();  // frees 10^6 nodes, iteratively
  EXPECT_EQ(x->rc, 1);
}

TEST(DeepChain, MillionFoldFanInToOneLeaf) {
  // y = x^(n+1) as n multiplications by x: the adjoint of x is summed 10^6 times.
  const int n = 1000000;
  Var x = matgrad::scalar(1.0);
  Var y = x;
  for (int k = 0; k < n; ++k) y = y * x;
  EXPECT_DOUBLE_EQ(values(matgrad::grad_values(y, {x})[0])[0], double(n + 1));
  y = Var();
  EXPECT_EQ(x->rc, 1);
}

TEST(DeepChain, CreateGraphOnALongChain) {
  // second derivative of the sin chain: d2_{k+1} = -sin(y_k) d_k^2 + cos(y_k) d2_k
  const int n = 200000;
  Var x = matgrad::scalar(0.8);
  Var y = x;
  double yv = 0.8, d = 1.0, d2 = 0.0;
  for (int k = 0; k < n; ++k) {
    y = matgrad::sin(y);
    d2 = -std::sin(yv) * d * d + std::cos(yv) * d2;
    d *= std::cos(yv);
    yv = std::sin(yv);
  }
  Var g = matgrad::grad_nodes(y, {x})[0];
  EXPECT_NEAR(scalar_value(g), d, 1e-12 + 1e-9 * std::abs(d));
  EXPECT_NEAR(values(matgrad::grad_values(g, {x})[0])[0], d2, 1e-12 + 1e-8 * std::abs(d2));
  g = Var();
  y = Var();
  EXPECT_EQ(x->rc, 1);
}

// ---- memory: the buffer pool stays bounded ----

TEST(Pool, StaysBoundedOverManyIterations) {
  Rng rng(8);
  const Eigen::MatrixXd X = rng.matrix(32, 64), W0 = rng.matrix(64, 48);
  matgrad::pool_trim();
  std::size_t after_warmup = 0, peak = 0;
  for (int it = 0; it < 300; ++it) {
    Var w = matgrad::variable(W0);
    Var h = matgrad::sigmoid(matgrad::matmul(matgrad::variable(X, false), w));
    Var f = matgrad::sum(h * h) + matgrad::mean(w * w);
    matgrad::backward(f);
    ASSERT_TRUE(w->grad);
    if (it == 9) after_warmup = matgrad::pool_cached_bytes();
    if (it >= 10) peak = std::max(peak, matgrad::pool_cached_bytes());
  }
  EXPECT_GT(after_warmup, 0u);
  EXPECT_LE(peak, after_warmup) << "the pool grew after warm-up: something is not recycled";
}

TEST(Pool, CacheIsCappedAndTrimmable) {
  matgrad::pool_trim();
  EXPECT_EQ(matgrad::pool_cached_bytes(), 0u);
  {
    // 40 buffers of 8 MiB (one size class each) = 320 MiB, more than the 256 MiB cap.
    const std::int64_t n = ((std::int64_t(8) << 20) - 64) / 8;
    std::vector<Val> held;
    for (int i = 0; i < 40; ++i) held.push_back(Val::empty(S(n), DType::f64));
  }
  EXPECT_GT(matgrad::pool_cached_bytes(), 0u);
  EXPECT_LE(matgrad::pool_cached_bytes(), std::size_t(256) << 20);
  matgrad::pool_trim();
  EXPECT_EQ(matgrad::pool_cached_bytes(), 0u);
}

TEST(Pool, CacheLimitIsSettableAndTrimsAtOnce) {
  const std::size_t before = matgrad::cache_limit();
  EXPECT_EQ(matgrad::set_cache_limit(std::size_t(16) << 20), before);
  const std::int64_t n = ((std::int64_t(4) << 20) - 64) / 8;  // 4 MiB buffers
  {
    std::vector<Val> held;
    for (int i = 0; i < 10; ++i) held.push_back(Val::empty(S(n), DType::f64));
  }
  EXPECT_GT(matgrad::pool_cached_bytes(), 0u);
  EXPECT_LE(matgrad::pool_cached_bytes(), std::size_t(16) << 20);
  EXPECT_EQ(matgrad::set_cache_limit(std::size_t(4) << 20), std::size_t(16) << 20);
  EXPECT_LE(matgrad::pool_cached_bytes(), std::size_t(4) << 20) << "lowering the bound trims this thread";
  matgrad::set_cache_limit(0);
  {
    Val v = Val::empty(S(n), DType::f64);
  }
  EXPECT_EQ(matgrad::pool_cached_bytes(), 0u);
  matgrad::set_cache_limit(before);
}

TEST(Pool, ParsesByteSizes) {
  struct Case {
    const char* text;
    bool ok;
    std::size_t want;
  };
  for (const Case& c : {Case{"0", true, 0}, Case{"4096", true, 4096}, Case{"64M", true, std::size_t(64) << 20},
                        Case{"64MiB", true, std::size_t(64) << 20}, Case{"2 gb", true, std::size_t(2) << 30},
                        Case{"512k", true, std::size_t(512) << 10}, Case{" 7 ", true, 7}, Case{"", false, 0},
                        Case{"M", false, 0}, Case{"-1", false, 0}, Case{"1.5G", false, 0}, Case{"3T", false, 0},
                        Case{"18446744073709551616", false, 0}, Case{"17179869184G", false, 0}}) {
    std::size_t got = 12345;
    EXPECT_EQ(matgrad::parse_byte_size(c.text, got), c.ok) << c.text;
    if (c.ok) {
      EXPECT_EQ(got, c.want) << c.text;
    }
  }
  std::size_t x = 0;
  EXPECT_FALSE(matgrad::parse_byte_size(nullptr, x));
}

// ---- anomaly mode (Note [anomaly mode]) ----

TEST(Anomaly, ForwardNamesTheOpAndShapes) {
  Var x = matgrad::variable(Eigen::MatrixXd::Zero(2, 3));
  EXPECT_NO_THROW(matgrad::log(x)) << "off by default";
  matgrad::AnomalyMode on;
  try {
    matgrad::log(x);
    FAIL() << "log(0) gave -inf in anomaly mode without an error";
  } catch (const matgrad::AnomalyError& e) {
    EXPECT_EQ(std::string(e.what()).rfind("log: the result (shape (2, 3)) has inf", 0), 0u) << e.what();
  }
  Eigen::MatrixXd nan = Eigen::MatrixXd::Constant(2, 3, std::nan(""));
  EXPECT_NO_THROW(matgrad::exp(matgrad::variable(nan))) << "a NaN that came with the data is not exp's";
}

TEST(Anomaly, BackwardThrowsBeforeAnythingIsAccumulated) {
  matgrad::AnomalyMode on;
  Var x = matgrad::variable(Eigen::MatrixXd::Constant(1, 3, 0.0));
  Var f = matgrad::sum(matgrad::sqrt(x) * 2.0);
  try {
    matgrad::backward(f);
    FAIL() << "the gradient of sqrt at 0 is inf";
  } catch (const matgrad::AnomalyError& e) {
    EXPECT_EQ(std::string(e.what()).rfind("sqrt (backward): the cotangent of input 0 (shape (1, 3)) has inf", 0), 0u)
        << e.what();
  }
  EXPECT_FALSE(x->grad);
  matgrad::AnomalyMode off(false);
  EXPECT_NO_THROW(matgrad::backward(f));
  ASSERT_TRUE(x->grad);
  EXPECT_TRUE(std::isinf(x->grad->mat<double>()(0, 0)));
}

// ---- create_graph cycles (Note [create_graph cycles]) ----

TEST(CreateGraph, CountsTheCyclesItMakes) {
  Var x = matgrad::variable(Eigen::MatrixXd::Constant(1, 2, 1.5));
  matgrad::backward(matgrad::sum(x * x * x), nullptr, true);  // 3 x^2 refers to x
  EXPECT_EQ(matgrad::backward_cycles(), 1u);
  x->grad = nullptr;  // breaks the cycle (LeakSanitizer checks this test too)
  matgrad::backward(matgrad::sum(x * 2.0), nullptr, true);  // the gradient does not refer to x
  EXPECT_EQ(matgrad::backward_cycles(), 0u);
  x->grad = nullptr;
  matgrad::backward(matgrad::sum(x * x));
  EXPECT_EQ(matgrad::backward_cycles(), 0u);
}

// ---- interrupts: the eager sweep polls ----

TEST(Interrupt, StopsALongBackwardWithNothingAccumulated) {
  Var x = matgrad::variable(Eigen::MatrixXd::Constant(1, 4, 0.5));
  Var y = x;
  for (int i = 0; i < 3 * matgrad::kInterruptStride; ++i) y = matgrad::sin(y) * 0.9 + 0.05;
  Var f = matgrad::sum(y);
  matgrad::request_interrupt();
  EXPECT_THROW(matgrad::backward(f), matgrad::Interrupted);
  EXPECT_FALSE(x->grad) << "an interrupted sweep accumulates nothing";
  matgrad::backward(f);  // usable again: the request was consumed
  ASSERT_TRUE(x->grad);
  EXPECT_TRUE(std::isfinite(x->grad->mat<double>()(0, 0)));
  matgrad::clear_interrupt();
}

// ---- threads: independent graphs on several threads at once (docs/cpp.md, "Threads") ----

TEST(Threads, IndependentGraphsOnEightThreadsGiveTheSingleThreadedResults) {
  // each thread builds and differentiates its own graphs: scalar nodes, the network, the
  // identities (LU shared between logdet and inv), a Jacobian and a Hessian
  auto work = [](int seed) {
    Rng rng(static_cast<unsigned>(100 + seed));
    const Eigen::MatrixXd F0 = rng.matrix(16, 8, -1, 1), A0 = rng.matrix(8, 4, -1, 1), Y0 = rng.matrix(16, 4, 0, 1);
    const Eigen::MatrixXd X0 = 6 * Eigen::MatrixXd::Identity(6, 6) + rng.matrix(6, 6, -1, 1);
    std::vector<Eigen::MatrixXd> out;
    for (int rep = 0; rep < 20; ++rep) {
      Var x = matgrad::scalar(0.3 + 0.1 * seed);
      out.push_back(matgrad::grad(lecture(x), {x})[0]);
      Var A = matgrad::variable(A0);
      Var L = matgrad::sum(
          matgrad::square(matgrad::constant(Y0) - matgrad::sigmoid(matgrad::matmul(matgrad::constant(F0), A))));
      out.push_back(matgrad::grad(L, {A})[0]);
      Var X = matgrad::variable(X0);
      out.push_back(matgrad::grad(matgrad::logdet(X) + matgrad::trace(matgrad::inv(X)), {X})[0]);
      out.push_back(matgrad::jacobian(matgrad::matmul(X, X), {X})[0]);
      Var v = matgrad::variable(Eigen::MatrixXd(X0.col(0)));
      out.push_back(matgrad::hessian(matgrad::logsumexp(matgrad::sin(v)), {v})[0][0]);
    }
    return out;
  };
  constexpr int kThreads = 8;
  std::vector<std::vector<Eigen::MatrixXd>> want, got(kThreads);
  for (int t = 0; t < kThreads; ++t) want.push_back(work(t));
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) threads.emplace_back([&, t] { got[std::size_t(t)] = work(t); });
  for (std::thread& th : threads) th.join();
  for (int t = 0; t < kThreads; ++t) {
    ASSERT_EQ(got[std::size_t(t)].size(), want[std::size_t(t)].size());
    for (std::size_t i = 0; i < want[std::size_t(t)].size(); ++i)
      EXPECT_TRUE(got[std::size_t(t)][i] == want[std::size_t(t)][i]) << "thread " << t << ", result " << i;
  }
  EXPECT_NEAR(want[4][0](0, 0), lecture_df(0.7), 1e-13);
}

// ---- Note [iterative release]: graphs that die after their thread's thread_locals ----

TEST(Release, GraphsDroppedAfterTheThreadLocalsAreFreedSafely) {
  // A thread_local made before the thread's first node is destroyed after the engine's
  // per-thread state (the release list, the node and buffer caches), as a static Var or
  // Compiled is at exit: dropping a long graph then must not touch that state (it wrote into the
  // destroyed release list; glibc reported "corrupted double-linked list" at exit).
  struct DropAtExit {
    std::vector<Var> keep;
    ~DropAtExit() { keep.clear(); }
  };
  std::thread t([] {
    thread_local DropAtExit holder;  // constructed first: destroyed last
    Var s = matgrad::scalar(0.5);
    Var y = s;
    for (int i = 0; i < 20000; ++i) y = y * 1.0001;  // uses the release list (grows it)
    y = Var();
    Var x = leaf(S(8, 8), DType::f64, std::vector<double>(64, 0.5));  // values in buffers
    Var z = x;
    for (int i = 0; i < 2000; ++i) z = matgrad::sin(z) * 0.5;
    holder.keep = {z, matgrad::grad_nodes(matgrad::sum(z), {x})[0]};
  });
  t.join();
  SUCCEED();
}

// ---- Note [multiple outputs]: a packed node's outputs, used or not, share one cotangent ----

TEST(MultipleOutputs, OutputsOfOnePackedNodeDifferentiateTogether) {
  Var x = leaf(S(3), DType::f64, {1, 2, 3});
  Var y = leaf(S(2), DType::f64, {4, 5});
  Var p = matgrad::pack({matgrad::sin(x), matgrad::exp(y)});  // one node, two outputs
  ASSERT_EQ(p->shape, S(5));
  Var a = matgrad::unpack(p, 0, S(3));
  Var b = matgrad::unpack(p, 3, S(2));
  // f = sum(a * a) + sum(b): df/dx = 2 sin x cos x, df/dy = exp y
  Var f = matgrad::sum(a * a) + matgrad::sum(b);
  auto g = matgrad::grad_values(f, {x, y});
  for (int i = 0; i < 3; ++i) EXPECT_DOUBLE_EQ(g[0].ptr<double>()[i], 2 * std::sin(i + 1.0) * std::cos(i + 1.0));
  for (int i = 0; i < 2; ++i) EXPECT_DOUBLE_EQ(g[1].ptr<double>()[i], std::exp(4.0 + i));
  // Only one output used: the other gets a zero cotangent, its input a zero gradient.
  auto g2 = matgrad::grad_values(matgrad::sum(b), {x, y});
  for (int i = 0; i < 3; ++i) EXPECT_EQ(g2[0].ptr<double>()[i], 0.0);
  // Out-of-range unpacks are shape errors naming the op.
  EXPECT_THROW(matgrad::unpack(p, 4, S(2)), matgrad::ShapeError);
}

// The C++ API's transforms: jacobian, hessian and jvp on Eigen matrices.
TEST(CppApi, JacobianHessianAndJvpMatchClosedForms) {
  Eigen::MatrixXd Am(3, 3);
  Am << 2, 1, 0, -1, 3, 1, 0.5, 0, 4;
  Eigen::MatrixXd xm(1, 3);
  xm << 0.3, -0.7, 1.1;
  matgrad::Var x = matgrad::variable(xm);
  matgrad::Var A = matgrad::constant(Am);
  // y = A x^T (3 x 1): dy/dx = A
  matgrad::Var y = matgrad::matmul(A, matgrad::transpose(x));
  Eigen::MatrixXd J = matgrad::jacobian(y, {x})[0];
  EXPECT_TRUE(all_close(J, Am, Tol{1e-15, 0}));
  // f = 0.5 x A x^T + sum(sin x): H = (A + A^T) / 2 - diag(sin x)
  matgrad::Var f = matgrad::sum(matgrad::matmul(x, y)) * 0.5 + matgrad::sum(sin(x));
  Eigen::MatrixXd H = matgrad::hessian(f, {x})[0][0];
  Eigen::MatrixXd Hw = 0.5 * (Am + Am.transpose());
  for (int i = 0; i < 3; ++i) Hw(i, i) -= std::sin(xm(0, i));
  EXPECT_TRUE(all_close(H, Hw, Tol{1e-14, 1e-15}));
  // jvp of y along v: A v^T
  Eigen::MatrixXd vm(1, 3);
  vm << 1, 2, -1;
  Eigen::MatrixXd t = matgrad::jvp(y, {x}, {matgrad::constant(vm)});
  EXPECT_TRUE(all_close(t, Am * vm.transpose(), Tol{1e-15, 0}));
  EXPECT_THROW(matgrad::jvp(y, {}, {}), matgrad::ShapeError);
}

}  // namespace
}  // namespace mgtest

namespace mgtest {
namespace {

// ---- optimiser steps (matgrad/optim.hpp): in place, outside the graph ----

TEST(OptimiserSteps, AdamAndSgdFollowTheirFormulasInPlace) {
  const Eigen::MatrixXd x0 = (Eigen::MatrixXd(2, 3) << 1.0, -2.0, 0.5, 3.0, -0.25, 2.0).finished();
  // L = sum(x^3 / 3): g = x^2
  auto loss = [](const Var& x) { return matgrad::sum(x * x * x) * (1.0 / 3.0); };
  {  // Adam, three steps, against the formulas in double
    Var x = matgrad::variable(x0);
    Eigen::MatrixXd want = x0, m = Eigen::MatrixXd::Zero(2, 3), v = Eigen::MatrixXd::Zero(2, 3);
    Eigen::MatrixXd ms = m, vs = v;  // the optimiser's state (elementwise: storage order does not matter)
    for (int t = 1; t <= 3; ++t) {
      x->grad = NodeRef();
      matgrad::backward(loss(x));
      const Eigen::MatrixXd g = want.array().square();
      m = 0.9 * m + 0.1 * g;
      v = 0.999 * v + 0.001 * g.cwiseProduct(g);
      const Eigen::ArrayXXd step =
          (m / (1 - std::pow(0.9, t))).array() / ((v / (1 - std::pow(0.999, t))).array().sqrt() + 1e-8);
      want = want.array() - 0.05 * step;
      matgrad::adam_update(*x, x->grad->value(), Val(ms.data(), S(2, 3), DType::f64),
                           Val(vs.data(), S(2, 3), DType::f64), 0.05, 0.9, 0.999, 1e-8, t);
      EXPECT_TRUE(x->is_leaf() && !x->nparents);
      EXPECT_LT((matgrad::value(x) - want).cwiseAbs().maxCoeff(), 1e-14);
    }
  }
  {  // SGD with momentum and weight decay, then a leaf that is not a leaf: an error
    Var x = matgrad::variable(x0);
    Eigen::MatrixXd buf = Eigen::MatrixXd::Zero(3, 2);  // (2, 3) row-major storage
    Var stale = loss(x);
    matgrad::backward(stale);
    matgrad::sgd_update(*x, x->grad->value(), Val(buf.data(), S(2, 3), DType::f64), 0.1, 0.9, 0.01);
    // Note [in-place writes]: the graph made from the old value cannot be swept any more; a new one can
    EXPECT_THROW(matgrad::backward(stale), matgrad::GraphError);
    EXPECT_NO_THROW(matgrad::grad_values(loss(x), {x}));
    const Eigen::MatrixXd d = x0.array().square() + 0.01 * x0.array();
    EXPECT_LT((matgrad::value(x) - (x0 - 0.1 * d)).cwiseAbs().maxCoeff(), 1e-15);
    Var y = x * 2.0;
    EXPECT_THROW(matgrad::sgd_update(*y, x->grad->value(), Val(), 0.1, 0.0, 0.0), matgrad::GraphError);
    EXPECT_THROW(matgrad::adam_update(*x, x->grad->value(), Val(buf.data(), S(3, 2), DType::f64),
                                      Val(buf.data(), S(2, 3), DType::f64), 0.1, 0.9, 0.999, 1e-8, 1),
                 matgrad::ShapeError);
  }
}

}  // namespace
}  // namespace mgtest
