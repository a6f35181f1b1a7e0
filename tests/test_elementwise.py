"""Elementwise ops (the unary functions, + - * / **, maximum, minimum, where) beyond what the
registry's table (test_ops_registry.py) checks for every op: the conventions at kinks and ties,
pow at a zero base, log1p/expm1 near zero, exp/log/relu at special values (underflow,
subnormals, NaN) wherever the value sits in the array, the operator methods, and where with a
mask that is not 0/1."""

from __future__ import annotations

import numpy as np
import pytest
from gradcheck import F32, F64

import matgrad as mg

# ---- conventions at kinks and special points (docs/concepts.md) ----


@pytest.mark.parametrize("create_graph", [False, True])
@pytest.mark.parametrize("dtype", [F64, F32])
def test_kink_conventions(dtype, create_graph):
    """abs'(0) = relu'(0) = 0; ties in maximum/minimum split the gradient equally."""

    def grads(f, *args):
        leaves = [mg.tensor(np.asarray(a, dtype=dtype), requires_grad=True) for a in args]
        mg.sum(f(*leaves)).backward(create_graph=create_graph)
        return [np.asarray(t.grad) for t in leaves]

    zeros = np.array([0.0, -0.0, 1.0, -1.0])
    np.testing.assert_array_equal(grads(mg.abs, zeros)[0], [0.0, 0.0, 1.0, -1.0])
    np.testing.assert_array_equal(grads(mg.relu, zeros)[0], [0.0, 0.0, 1.0, 0.0])
    x, y = np.array([1.0, 2.0, 3.0]), np.array([1.0, 3.0, 2.0])
    gx, gy = grads(mg.maximum, x, y)
    np.testing.assert_array_equal(gx, [0.5, 0.0, 1.0])
    np.testing.assert_array_equal(gy, [0.5, 1.0, 0.0])
    gx, gy = grads(mg.minimum, x, y)
    np.testing.assert_array_equal(gx, [0.5, 1.0, 0.0])
    np.testing.assert_array_equal(gy, [0.5, 0.0, 1.0])
    (g,) = grads(lambda a: mg.maximum(a, a), x)
    np.testing.assert_array_equal(g, [1.0, 1.0, 1.0])
    # ties against a broadcast operand: each of the 2 rows contributes 1/2 to the tie
    gx, gc = grads(mg.maximum, x, np.array([[2.0], [2.0]]))
    np.testing.assert_array_equal(gx, [0.0, 1.0, 2.0])
    np.testing.assert_array_equal(gc, [[1.5], [1.5]])
    (g,) = grads(lambda a: mg.maximum(a, 2.0), x)
    np.testing.assert_array_equal(g, [0.0, 0.5, 1.0])
    for g in grads(mg.maximum, x, y) + grads(mg.abs, zeros):
        assert g.dtype == dtype


# ---- pow at a zero base ----


@pytest.mark.parametrize("form", ["pow(0.0, y)", "0.0 ** y", "zeros ** y"])
def test_pow_zero_base_exponent_gradient(form):
    # Regression: 0 * log(0) gave NaN. 0**y is the constant 0 for y > 0 (JAX/PyTorch give 0).
    y = np.array([0.5, 1.0, 2.0, 3.5])
    f = {
        "pow(0.0, y)": lambda t: mg.pow(0.0, t),
        "0.0 ** y": lambda t: 0.0**t,
        "zeros ** y": lambda t: mg.tensor(np.zeros(4)) ** t,
    }[form]
    np.testing.assert_array_equal(mg.grad(lambda t: mg.sum(f(t)))(y), np.zeros(4))


def test_pow_at_zero_base_with_positive_exponent():
    """d/dx x**y at x = 0: y x^(y-1) = 0 for y > 1 (and x**2, x**3 shortcuts alike)."""
    x = np.zeros(3)
    for f, want in (
        (lambda t: t**2, 0.0),
        (lambda t: t**3, 0.0),
        (lambda t: t**2.5, 0.0),
        (lambda t: t**1, 1.0),
    ):
        np.testing.assert_array_equal(mg.grad(lambda t, f=f: mg.sum(f(t)))(x), np.full(3, want))
    gx = mg.grad(lambda t: mg.sum(t ** np.array([2.0, 3.0, 1.5])))(x)
    np.testing.assert_array_equal(gx, [0.0, 0.0, 0.0])


@pytest.mark.parametrize("form", ["0.0 ** y", "zeros ** y"])
def test_pow_zero_base_exponent_second_derivative(form):
    """d2/dy2 0**y = 0 for y > 0 (0**y is the constant 0 there).

    Regression: the VJP of xlogy(x**y, x) w.r.t. its first operand was G * log(x) = -inf,
    times d(x**y)/dy = 0, giving NaN for a Tensor base of zeros.
    """
    y = np.array([0.5, 2.0, 3.5])
    zeros = mg.tensor(np.zeros(3))
    f = (lambda u: 0.0**u) if form == "0.0 ** y" else (lambda u: zeros**u)
    got = mg.grad(lambda t: mg.sum(mg.grad(lambda u: mg.sum(f(u)))(t)))(y)
    np.testing.assert_array_equal(got, np.zeros(3))


def test_pow_zero_base_mixed_second_derivative():
    """d/dx (d/dy x**y) = y x^(y-1) log x + x^(y-1) -> 0 as x -> 0 for y > 1."""
    got = mg.grad(lambda x: mg.sum(mg.grad(lambda u: mg.sum(x**u))(np.array([2.0, 3.0]))))(np.zeros(2))
    np.testing.assert_array_equal(got, [0.0, 0.0])


def test_pow_gradient_at_zero_base_with_a_zero_exponent_tensor():
    # Regression: d/dx x**0 = 0 everywhere (was 0 * inf = NaN through the tensor-exponent VJP).
    g = mg.grad(lambda x: mg.sum(x ** np.array([0.0, 1.0, 2.0])))(np.zeros(3))
    np.testing.assert_array_equal(g, [0.0, 1.0, 0.0])


# ---- accuracy near zero and at special values ----


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_log1p_and_expm1_stay_accurate_near_zero(dtype):
    # where log(1 + x) and exp(x) - 1 lose every digit: values as NumPy's, gradients closed forms
    x = np.array([-1e-30, -1e-12, 1e-20, 3e-8, 1e-4, -0.5, 5.0], dtype=dtype)
    tol = {"rtol": 1e-15 if dtype == np.float64 else 1e-6, "atol": 0}
    np.testing.assert_allclose(mg.log1p(x).numpy(), np.log1p(x), **tol)
    np.testing.assert_allclose(mg.expm1(x).numpy(), np.expm1(x), **tol)
    g = mg.grad(lambda t: mg.sum(mg.log1p(t)))(x)
    assert g.dtype == dtype
    np.testing.assert_allclose(g, 1 / (1 + x.astype(np.float64)), **tol)
    np.testing.assert_allclose(mg.grad(lambda t: mg.sum(mg.expm1(t)))(x), np.exp(x.astype(np.float64)), **tol)


# Regressions: Eigen's vectorised exp clamped its argument (exp(x < -708.4) gave 5.56e-309,
# float32 2.94e-39, instead of 0 or the subnormal), its log clamped subnormal arguments
# (log(1e-310) gave -708.40), and relu(NaN) gave 0.
# The results depended on the position in the array (Eigen's packet path for the first
# multiple-of-packet-size elements, scalar libm for the tail), so each value is tiled to 16.


def tiled(values, dtype):
    return np.repeat(np.array(values, dtype=dtype), 16)


@pytest.mark.parametrize(
    "dtype, x",
    [
        (np.float64, [-np.inf, -1000.0, -800.0, -746.0]),
        (np.float32, [-np.inf, -200.0, -104.0]),
    ],
)
def test_exp_underflows_to_zero(dtype, x):
    got = mg.exp(tiled(x, dtype)).numpy()
    np.testing.assert_array_equal(got, np.zeros(16 * len(x), dtype=dtype))


@pytest.mark.parametrize("dtype, x, rtol", [(np.float64, -720.0, 1e-9), (np.float32, -90.0, 1e-4)])
def test_exp_gives_subnormal_results(dtype, x, rtol):
    xs = tiled([x], dtype)
    want = np.exp(xs)
    np.testing.assert_allclose(mg.exp(xs).numpy(), want, rtol=rtol, atol=0)
    np.testing.assert_allclose(mg.grad(lambda z: mg.sum(mg.exp(z)))(xs), want, rtol=rtol, atol=0)


@pytest.mark.parametrize("dtype, x", [(np.float64, [5e-324, 1e-310, 2e-308]), (np.float32, [1e-45, 1e-40])])
def test_log_of_subnormals(dtype, x):
    xs = tiled(x, dtype)
    np.testing.assert_allclose(mg.log(xs).numpy(), np.log(xs.astype(np.float64)), rtol=1e-6, atol=0)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_relu_propagates_nan(dtype):
    x = np.array([np.nan, 1.0, -1.0, np.nan], dtype=dtype)
    np.testing.assert_array_equal(mg.relu(x).numpy(), np.array([np.nan, 1.0, 0.0, np.nan], dtype=dtype))


def test_elementwise_results_do_not_depend_on_position():
    """The same input value gives the same output bits wherever it sits in the array."""
    rng = np.random.default_rng(5)
    vals = np.concatenate([rng.uniform(-30, 30, 40), rng.uniform(0.1, 3, 20)])
    for name in ("exp", "log", "sin", "cos", "tan", "tanh", "sqrt", "sigmoid", "softplus"):
        with np.errstate(all="ignore"):
            x = vals[vals > 0] if name in ("log", "sqrt") else vals
            for dtype in (np.float64, np.float32):
                xs = x.astype(dtype)
                full = getattr(mg, name)(xs).numpy()
                one_by_one = np.array([getattr(mg, name)(xs[i : i + 1]).numpy()[0] for i in range(xs.size)])
                np.testing.assert_allclose(
                    full,
                    one_by_one,
                    rtol=8 * np.finfo(dtype).eps,
                    atol=0,
                    err_msg=f"{name} {np.dtype(dtype)}",
                )


# ---- operators ----


# Regression: the operator methods (Tensor.__rsub__, __pow__, __neg__, ...) are the number slots
# themselves now, not separate pybind11 copies: they exist and agree with the operators.
def test_operator_methods_exist_and_agree_with_the_operators():
    t = mg.tensor([1.0, 2.0])
    np.testing.assert_array_equal(np.asarray(t.__rsub__(1.0)), 1.0 - np.array([1.0, 2.0]))
    np.testing.assert_array_equal(np.asarray(t.__pow__(2.0)), np.asarray(t**2.0))
    np.testing.assert_array_equal(np.asarray(t.__neg__()), [-1.0, -2.0])


# ---- where ----


# Regression (a second reading of the matrix-calculus change): where's VJP assumed a 0/1 mask, so
# a 2 in an integer mask gave b a gradient too.
@pytest.mark.parametrize("mask", [np.array([2, 0, 1]), np.array([0.5, 0.0, 1.0]), np.array([-1.0, 0.0, 3.0])])
def test_where_gradient_with_non_boolean_mask(mask):
    # forward follows np.where (any nonzero selects a), so d/db must be zero wherever mask != 0
    a = np.ones(3)
    b = 2 * np.ones(3)
    np.testing.assert_array_equal(mg.where(mask, a, b).numpy(), np.where(mask, a, b))
    ga, gb = mg.grad(lambda a, b: mg.sum(mg.where(mask, a, b)), argnums=(0, 1))(a, b)
    np.testing.assert_array_equal(ga, (mask != 0).astype(float))
    np.testing.assert_array_equal(gb, (mask == 0).astype(float))
