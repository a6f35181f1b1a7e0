"""The gradient-check helper can fail: it catches wrong values, gradients, shapes and dtypes.

Tests that cannot fail prove nothing; these feed gradcheck deliberately broken functions.
"""

from __future__ import annotations

import numpy as np
import pytest
from gradcheck import (
    F32,
    F64,
    TOLS,
    check_create_graph_bitwise,
    check_second_order,
    directional_derivative,
    gradcheck,
    numeric_gradient,
)

import matgrad as mg

X = np.array([[0.3, -0.7, 1.1], [0.9, 0.2, -1.4]])


def test_accepts_a_correct_op():
    gradcheck(mg.sin, np.sin, [X], dtype=F64)
    gradcheck(mg.sin, np.sin, [X], dtype=F32)


def test_catches_a_wrong_value():
    with pytest.raises(AssertionError, match="value"):
        gradcheck(lambda x: mg.sin(x) + 1e-9, np.sin, [X])


def test_catches_a_wrong_gradient():
    # value right, gradient wrong (a detached factor): x * x.detach() has gradient x, not 2x
    with pytest.raises(AssertionError, match="gradient"):
        gradcheck(lambda x: x * x.detach(), np.square, [X])


def test_catches_a_slightly_wrong_gradient():
    # gradient off by 1e-6 relative: far below float32 resolution, caught in float64
    with pytest.raises(AssertionError, match="gradient"):
        gradcheck(lambda x: x + 1e-6 * (x - x.detach()), lambda x: x, [X])


def test_catches_a_wrong_shape_and_dtype():
    with pytest.raises(AssertionError, match="shape"):
        gradcheck(lambda x: mg.reshape(x, (-1,)), lambda x: x, [X])
    with pytest.raises(AssertionError, match="dtype"):
        gradcheck(lambda x: x * np.float64(2.0), lambda x: x * 2.0, [X], dtype=F32)


def test_dot_product_test_catches_a_wrong_vjp_direction():
    # The transpose's VJP applied without transposing would pass elementwise checks on a
    # symmetric point only; on a general point the dot-product test fails.
    def wrong_transpose(x):
        return mg.reshape(x, (x.shape[1], x.shape[0]))

    with pytest.raises(AssertionError):
        gradcheck(wrong_transpose, np.transpose, [X])


def test_float32_results_fail_float64_tolerances():
    """Why float32 has its own tolerance: a correct float32 result misses the float64 one."""
    x = np.linspace(0.1, 3.0, 50).astype(np.float32)
    got = mg.exp(x).numpy().astype(np.float64)
    want = np.exp(x.astype(np.float64))
    rel = np.max(np.abs(got - want) / want)
    assert rel > TOLS[F64].value_rtol
    assert rel < TOLS[F32].value_rtol
    assert TOLS[F32].grad_rtol > TOLS[F64].grad_rtol


def test_bitwise_check_catches_a_one_ulp_difference():
    calls = {"n": 0}

    def flaky(x):  # differs by one ulp between the first-order and the create_graph runs
        calls["n"] += 1
        return x * (1.0 + (calls["n"] % 2) * 2.0**-52)

    with pytest.raises(AssertionError):
        check_create_graph_bitwise(flaky, [X])


def test_second_order_check_catches_a_wrong_hessian():
    # exp's value and first derivative are right, but the gradient graph is cut (the second
    # derivative through it is 0 instead of exp(x)).
    def f(x):
        return mg.exp(x.detach()) + (x - x.detach()) * mg.exp(x.detach())

    check_second_order(mg.exp, [X])
    with pytest.raises(AssertionError, match="second-order"):
        check_second_order(f, [X])


def test_finite_differences_are_accurate():
    x = np.array([0.4, -1.2])
    g = numeric_gradient(lambda xs: np.sum(np.sin(xs[0]) * xs[0] ** 3), [x], [0])[0]
    np.testing.assert_allclose(g, np.cos(x) * x**3 + 3 * np.sin(x) * x**2, rtol=1e-10)
    d = directional_derivative(lambda xs: np.exp(xs[0]), [x], [np.ones(2)])
    np.testing.assert_allclose(d, np.exp(x), rtol=1e-10)
