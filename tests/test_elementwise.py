"""Elementwise ops (the unary functions, + - * / **, maximum, minimum, where) beyond what the
registry's table (test_ops_registry.py) checks for every op: the conventions at kinks and ties,
pow at a zero base, log1p/expm1 near zero, exp/log/relu at special values (underflow,
subnormals, NaN) wherever the value sits in the array, the vectorised kernels' accuracy against
long double and their special values against NumPy, the operator methods, and where with a
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


# ---- accuracy of the transcendental kernels (Note [vectorised math]) ----

TRANSCENDENTAL = ("sin", "cos", "tan", "tanh", "exp", "log", "log1p", "expm1", "sqrt")


@pytest.fixture(params=["best", "none"])
def kernels(request):
    """The vector kernels this CPU has, and the Eigen/libm fallback a build without them uses."""
    mg._core._vector_math(request.param)
    yield request.param
    mg._core._vector_math("best")


def wide_arguments(name, dtype, rng):
    """|x| from 2^-40 to 2^40 (within the dtype's range), both signs; dense near multiples of
    pi/2 (the zeros and poles), across tanh's and exp's working range and near log's zero."""
    x = [np.sign(rng.uniform(-1, 1, 20000)) * np.exp2(rng.uniform(-40, 40, 20000))]
    x.append(np.repeat(np.arange(-64, 65) * (np.pi / 2), 10) + rng.uniform(-1e-6, 1e-6, 1290))
    x.append(rng.uniform(-30, 30, 2000))
    x.append(1 + rng.uniform(-1e-3, 1e-3, 2000))
    x = np.concatenate(x)
    if name in ("log1p", "expm1"):  # near their zero
        x = np.concatenate([x, rng.uniform(-1, 1, 3000) * np.exp2(-20.0 * (np.arange(3000) % 3))])
    if name in ("exp", "expm1"):
        tiny, big = np.finfo(dtype).smallest_subnormal, np.finfo(dtype).max
        x = np.concatenate([x, np.linspace(np.log(float(tiny)) - 2, np.log(float(big)) + 2, 2000)])
    if name in ("log", "sqrt"):
        x = np.abs(x)
    if name == "log1p":
        x = np.maximum(x, -0.999)
    return x.astype(dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", TRANSCENDENTAL)
def test_transcendental_within_four_ulp_of_long_double(name, dtype, kernels):
    """At most 4 ulp from the long double result (the bound NumPy's own SIMD kernels accept);
    sqrt correctly rounded."""
    if np.finfo(np.longdouble).nmant < 60:
        pytest.skip("long double is not wider than float64 here")
    x = wide_arguments(name, dtype, np.random.default_rng(11))
    with np.errstate(all="ignore"):
        want = getattr(np, name)(x.astype(np.longdouble))
        got = getattr(mg, name)(x).numpy()
        rounded = want.astype(dtype)
        finite = np.isfinite(rounded)
        np.testing.assert_array_equal(got[~finite], rounded[~finite])
        ulp = np.spacing(np.abs(rounded[finite])).astype(np.longdouble)
        err = np.abs(got[finite].astype(np.longdouble) - want[finite]) / ulp
    worst = int(np.argmax(err))
    assert err[worst] <= (0.5 if name == "sqrt" else 4), (
        f"{name} {np.dtype(dtype)}: {float(err[worst]):.2f} ulp at x = {x[finite][worst]!r}"
    )


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", TRANSCENDENTAL)
def test_transcendental_special_values_as_numpy(name, dtype, kernels):
    """NaN, infinities, signed zeros, subnormals and the range edges give what NumPy gives: the
    same NaNs, infinities, zeros (with their sign) and subnormal results, the rest within 4 ulp."""
    fi = np.finfo(dtype)
    x = np.array(
        [np.nan, -np.nan, np.inf, -np.inf, 0.0, -0.0, fi.smallest_subnormal, -fi.smallest_subnormal,
         fi.smallest_normal, -fi.smallest_normal, fi.smallest_normal / 3, fi.max, -fi.max, fi.tiny * 2**20,
         1.0, -1.0],
        dtype=dtype,
    )  # fmt: skip
    xs = np.tile(x, 3)  # whole vectors and tails
    with np.errstate(all="ignore"):
        want = getattr(np, name)(xs)
        got = getattr(mg, name)(xs).numpy()
    assert got.dtype == want.dtype
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want), err_msg=f"{name}: NaN")
    exact = ~np.isnan(want) & (np.isinf(want) | (want == 0))
    np.testing.assert_array_equal(got[exact], want[exact], err_msg=f"{name}: inf or zero")
    np.testing.assert_array_equal(np.signbit(got[exact]), np.signbit(want[exact]), err_msg=f"{name}: sign")
    rest = np.isfinite(want) & (want != 0)
    np.testing.assert_array_equal(
        np.abs(got[rest]) < fi.smallest_normal,
        np.abs(want[rest]) < fi.smallest_normal,
        err_msg=f"{name}: subnormal",
    )
    np.testing.assert_array_less(np.abs(got[rest] - want[rest]), 8 * np.spacing(np.abs(want[rest])) + 0)


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
