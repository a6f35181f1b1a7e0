"""Regressions from the code review of the foundation: each test names what it guards."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

import matgrad as mg


def run_isolated(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120)


def test_numpy_view_outlives_a_leaf_moving_to_its_own_storage():
    # .numpy() once kept only the node alive; requires_grad=True moved the node's storage and
    # freed the caller's array under the view (a segfault).
    r = run_isolated(
        """
        import numpy as np, matgrad as mg
        a = np.full(2_000_000, 7.0); t = mg.tensor(a); v = t.numpy(); del a
        t.requires_grad = True
        b = np.full(2_000_000, 1.0)
        assert (v[:3] == 7.0).all() and (t.numpy()[:3] == 7.0).all()
        print("ok")
        """
    )
    assert r.returncode == 0 and "ok" in r.stdout, r.stderr


@pytest.mark.parametrize(
    "make",
    [
        lambda: mg.reshape(mg.tensor(np.arange(6.0)), (132354, 418122854021251)),
        lambda: mg.tensor(np.zeros((0,))).reshape(2**32, 2**32),
        lambda: mg.tensor(np.zeros((2**32, 0))) @ mg.tensor(np.zeros((0, 2**32))),
    ],
)
def test_shapes_whose_size_overflows_are_refused(make):
    with pytest.raises(ValueError, match=r"^(reshape|matmul): "):
        make()


def test_a_tensor_cannot_be_made_without_a_value():
    with pytest.raises(TypeError):
        mg.Tensor()
    with pytest.raises(TypeError):
        mg.Tensor.__new__(mg.Tensor)


def test_transforms_differentiate_inside_no_grad():
    x = np.array([1.0, 2.0])
    with mg.no_grad():
        np.testing.assert_array_equal(mg.grad(lambda t: mg.sum(t * t))(x), 2 * x)
        got = mg.grad(lambda t: mg.sum(t * t))(mg.tensor(x))
        np.testing.assert_array_equal(np.asarray(got), 2 * x)
        assert not (mg.tensor(x, requires_grad=True) * 2.0).requires_grad
    assert mg.is_grad_enabled()


def test_no_grad_nests_and_decorates_recursive_functions():
    ng = mg.no_grad()
    with ng:
        with ng:
            assert not mg.is_grad_enabled()
        assert not mg.is_grad_enabled()
    assert mg.is_grad_enabled()

    @mg.no_grad()
    def rec(n: int) -> bool:
        assert not mg.is_grad_enabled()
        return rec(n - 1) if n else True

    assert rec(3) and mg.is_grad_enabled()


def test_pow_gradient_at_zero_base_with_a_zero_exponent_tensor():
    # d/dx x**0 = 0 everywhere (was 0 * inf = NaN through the tensor-exponent VJP).
    g = mg.grad(lambda x: mg.sum(x ** np.array([0.0, 1.0, 2.0])))(np.zeros(3))
    np.testing.assert_array_equal(g, [0.0, 1.0, 0.0])


def test_repeated_argnums_give_the_full_gradient_each_time():
    g0, g1 = mg.grad(lambda x: mg.sum(x * x), argnums=(0, 0))(np.array([1.0, 2.0]))
    np.testing.assert_array_equal(g0, [2.0, 4.0])
    np.testing.assert_array_equal(g1, [2.0, 4.0])
    assert not np.shares_memory(g0, g1)


@pytest.mark.parametrize(
    "f",
    [lambda a: mg.add(2.0, a), lambda a: mg.sub(1, a), lambda a: mg.maximum(0.0, a), lambda a: mg.mul(True, a)],
)
def test_weak_scalar_in_first_position_keeps_float32(f):
    assert f(np.ones(3, np.float32)).dtype == np.float32


@pytest.mark.parametrize("dt", [np.int8, np.uint8, np.int16, np.uint16, np.bool_, np.int32, np.int64])
def test_float32_with_integer_arrays_follows_numpy(dt):
    a32 = np.ones(3, np.float32)
    got = (mg.tensor(a32) * np.ones(3, dt)).dtype
    assert got == np.result_type(a32, np.ones(3, dt)), (dt, got)
    assert mg.tensor(np.ones(3, dt)).dtype == np.float64  # mg.tensor: ints and bools are float64


def test_foreign_types_get_their_reflected_operator():
    class Other:
        def __radd__(self, other):
            return "Other.__radd__"

        def __rmatmul__(self, other):
            return "Other.__rmatmul__"

    t = mg.tensor([1.0, 2.0])
    assert t + Other() == "Other.__radd__"
    assert t @ Other() == "Other.__rmatmul__"
    with pytest.raises(TypeError, match=r"^add: "):
        t + "a"


def test_operator_methods_exist_and_agree_with_the_operators():
    t = mg.tensor([1.0, 2.0])
    np.testing.assert_array_equal(np.asarray(t.__rsub__(1.0)), 1.0 - np.array([1.0, 2.0]))
    np.testing.assert_array_equal(np.asarray(t.__pow__(2.0)), np.asarray(t**2.0))
    np.testing.assert_array_equal(np.asarray(t.__neg__()), [-1.0, -2.0])


def test_assigned_grad_is_a_copy():
    x = mg.tensor(np.ones(3), requires_grad=True)
    g = np.ones(3)
    x.grad = g
    g[0] = 42.0
    np.testing.assert_array_equal(np.asarray(x.grad), np.ones(3))


def test_plain_arguments_reach_f_as_tensors():
    seen = []

    def f(x, y, k):
        seen.append((type(x), type(y), type(k)))
        return mg.sum(x * y.T) * k

    g = mg.grad(f)(np.ones((2, 2)), np.eye(2), 2.0)
    np.testing.assert_array_equal(g, 2 * np.eye(2))
    assert seen == [(mg.Tensor, mg.Tensor, mg.Tensor)]


@pytest.mark.parametrize("scale", [1e-200, 1e200, 1e-310])
def test_det_gradient_when_det_under_or_overflows(scale):
    """Regression: det(X) X^-T gave 0 or NaN when det(X) is not representable but X is
    invertible; the transposed adjugate is finite (here diag(scale, scale))."""
    X = np.diag([scale, scale])
    np.testing.assert_allclose(mg.grad(mg.det)(X), np.diag([scale, scale]), rtol=1e-14, atol=0)


@pytest.mark.parametrize("transform", ["grad", "jacobian", "hessian"])
def test_a_function_returning_a_tuple_is_refused_not_silently_zero(transform):
    """Regression: a tuple or list of Tensors became a constant and the derivative came out 0."""
    with pytest.raises(TypeError, match=f"^{transform}: the function must return one Tensor"):
        getattr(mg, transform)(lambda x: [mg.sum(x * x)])(np.ones(3))
