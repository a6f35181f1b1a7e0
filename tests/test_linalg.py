"""Matrix identities for the linear-algebra ops so far (trace, dot, outer), against closed forms."""

from __future__ import annotations

import numpy as np
import pytest

import matgrad as mg

rng = np.random.default_rng(11)


def test_gradient_of_trace_is_the_identity():
    for shape in [(3, 3), (2, 5), (5, 2), (1, 1)]:
        X = rng.standard_normal(shape)
        np.testing.assert_array_equal(mg.grad(mg.trace)(X), np.eye(*shape))


def test_gradient_of_trace_of_a_product():
    # d tr(A X) / dX = A^T
    A, X = rng.standard_normal((4, 3)), rng.standard_normal((3, 4))
    np.testing.assert_allclose(mg.grad(lambda X: mg.trace(A @ X))(X), A.T, rtol=1e-15, atol=0)


def test_gradient_of_x_dot_a_is_a():
    # d(x^T a)/dx = a
    x, a = rng.standard_normal(5), rng.standard_normal(5)
    np.testing.assert_array_equal(mg.grad(lambda x: mg.dot(x, a))(x), a)


def test_gradient_of_a_x_b_is_the_outer_product():
    # d(a^T X b)/dX = a b^T
    a, b, X = rng.standard_normal(3), rng.standard_normal(4), rng.standard_normal((3, 4))
    np.testing.assert_allclose(mg.grad(lambda X: mg.dot(a, mg.dot(X, b)))(X), np.outer(a, b), rtol=1e-15)


def test_outer_values_and_gradients():
    x, y = rng.standard_normal((2, 2)), rng.standard_normal(3)
    np.testing.assert_array_equal(mg.outer(x, y).numpy(), np.outer(x, y))
    gx, gy = mg.grad(lambda x, y: mg.sum(mg.outer(x, y)), argnums=(0, 1))(x, y)
    np.testing.assert_allclose(gx, np.full((2, 2), y.sum()), rtol=1e-15)
    np.testing.assert_allclose(gy, np.full(3, x.sum()), rtol=1e-15)


def test_second_derivative_through_trace():
    # d/dX tr(X X) = 2 X^T; its derivative along X is linear: check grad(grad) of tr(X X) at a scalar.
    H = mg.grad(lambda s: mg.sum(mg.grad(lambda X: mg.trace(X @ X))(s * np.eye(2))))(1.5)
    np.testing.assert_allclose(H, 4.0, rtol=1e-15)  # sum(2 (s I)^T) = 4 s, d/ds = 4


@pytest.mark.parametrize(
    "call, pattern",
    [
        (lambda: mg.trace(np.ones(3)), r"^trace: shape \(3,\) "),
        (lambda: mg.trace(np.float64(2.0)), r"^trace: shape \(\) "),
        (lambda: mg.dot(np.ones((3, 4)), np.ones(5)), r"^dot: shapes \(3, 4\) and \(5,\) "),
        (lambda: mg.dot(np.ones(3), np.ones((4, 2))), r"^dot: shapes \(3,\) and \(4, 2\) "),
        (lambda: mg.outer("a", np.ones(2)), r"^outer: "),
    ],
)
def test_linalg_errors_name_the_op_and_shapes(call, pattern):
    with pytest.raises((ValueError, TypeError), match=pattern):
        call()
