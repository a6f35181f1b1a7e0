"""Regressions from the code review of the foundation: each test names what it guards."""

from __future__ import annotations

import itertools
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import matgrad as mg


def run_isolated(code: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120
    )


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
    [
        lambda a: mg.add(2.0, a),
        lambda a: mg.sub(1, a),
        lambda a: mg.maximum(0.0, a),
        lambda a: mg.mul(True, a),
    ],
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


# ---- found by a second reading of the matrix-calculus change ----
# ---- where: the VJP assumes a 0/1 mask --------------------------------------------------
@pytest.mark.parametrize("mask", [np.array([2, 0, 1]), np.array([0.5, 0.0, 1.0]), np.array([-1.0, 0.0, 3.0])])
def test_where_gradient_with_non_boolean_mask(mask):
    # forward follows np.where (any nonzero selects a), so d/db must be zero wherever mask != 0
    a = np.ones(3)
    b = 2 * np.ones(3)
    np.testing.assert_array_equal(mg.where(mask, a, b).numpy(), np.where(mask, a, b))
    ga, gb = mg.grad(lambda a, b: mg.sum(mg.where(mask, a, b)), argnums=(0, 1))(a, b)
    np.testing.assert_array_equal(ga, (mask != 0).astype(float))
    np.testing.assert_array_equal(gb, (mask == 0).astype(float))


# ---- det: under/overflow in the forward value and in its gradient -------------------------
@pytest.mark.parametrize("dtype,tiny,huge", [(np.float64, 1e-200, 1e200), (np.float32, 1e-30, 1e30)])
def test_det_of_representable_determinant_does_not_underflow(dtype, tiny, huge):
    # det = tiny * tiny * huge = tiny is representable; the running product of the pivots underflows
    X = np.diag(np.array([tiny, tiny, huge], dtype=dtype))
    expected = np.linalg.det(X)
    assert expected != 0
    np.testing.assert_allclose(mg.det(X).item(), expected, rtol=1e-5)


@pytest.mark.parametrize("dtype,tiny,huge", [(np.float64, 1e-200, 1e200), (np.float32, 1e-30, 1e30)])
def test_det_gradient_is_adjugate_when_det_underflows(dtype, tiny, huge):
    # adj(X)^T of diag(a, b, c) is diag(bc, ac, ab) = diag(1, 1, tiny**2 -> 0); got all zeros
    # (JacobiSVD rescales by max|X| and the tiny entries underflow)
    X = np.diag(np.array([tiny, tiny, huge], dtype=dtype))
    g = mg.grad(mg.det)(X)
    np.testing.assert_allclose(g, np.diag([1.0, 1.0, 0.0]).astype(dtype), rtol=1e-5, atol=0)


def test_det_gradient_finite_when_inverse_overflows():
    # det = 1e-300 is finite and nonzero, but X^-1 has an entry -1e310 (inf): det * X^-T gives -inf,
    # while the transposed adjugate [[d, -c], [-b, a]] is finite
    X = np.array([[1e-160, 1e10], [0.0, 1e-140]])
    g = mg.grad(mg.det)(X)
    expected = np.array([[X[1, 1], -X[1, 0]], [-X[0, 1], X[0, 0]]])
    assert np.all(np.isfinite(g)), g
    np.testing.assert_allclose(g, expected, rtol=1e-12)


def _cofactor(X):
    n = X.shape[0]
    C = np.empty_like(X)
    for i, j in itertools.product(range(n), range(n)):
        minor = np.delete(np.delete(X, i, 0), j, 1)
        C[i, j] = (-1) ** (i + j) * np.linalg.det(minor)
    return C


def test_hessian_of_det_at_singular_matrix():
    # det is a polynomial: its Hessian exists everywhere. At a rank-2 3x3 matrix matgrad raised
    # LinAlgError("inv: matrix of shape (3, 3) is singular") from the VJP of adj_t (now adj_t_vjp).
    S = np.array([[1.0, 2, 3], [2, 4, 6], [1, 0, 1]])
    eps = 1e-4
    ref = np.zeros((3, 3, 3, 3))
    for i, j in itertools.product(range(3), range(3)):  # the cofactor matrix is quadratic: exact
        P = S.copy()
        P[i, j] += eps
        M = S.copy()
        M[i, j] -= eps
        ref[:, :, i, j] = (_cofactor(P) - _cofactor(M)) / (2 * eps)
    H = mg.hessian(mg.det)(S)
    np.testing.assert_allclose(H, ref, atol=1e-8)


# ---- shared LU over external memory: the hash does not detect every change ----------------
def test_factor_of_mapped_array_recomputed_after_change():
    # A constant mapped from a NumPy array kept its LU with a 64-bit hash of the values, which
    # missed this crafted change (now: a copy compared with memcmp).
    a = np.array([[2.0, 1.0], [1.0, 3.0]])
    t = mg.tensor(a)
    assert np.shares_memory(np.asarray(t), a)  # mapped, not copied
    assert mg.det(t).item() == pytest.approx(5.0)
    a[1, 1] = float.fromhex("0x1.416c380f7dc28p-432")  # 1.1320835865772134e-130
    np.testing.assert_allclose(np.asarray(t), a)  # the tensor sees the new value ...
    assert mg.det(t).item() == pytest.approx(np.linalg.det(a))  # ... but det reused the stale LU (5.0)
    np.testing.assert_allclose(mg.inv(t).numpy(), np.linalg.inv(a))


# ---- indexing ----------------------------------------------------------------------------
def test_index_0d_with_newaxis():
    # NumPy: np.array(2.0)[None] has shape (1,); matgrad raises IndexError
    x = mg.tensor(2.0, requires_grad=True)
    y = x[None]
    assert y.shape == (1,)
    assert y.numpy()[0] == 2.0


def test_a_list_of_tensors_that_require_grad_is_refused_not_silently_constant():
    """Regression: mg.tensor([x[0], x[1]]) made a constant, so a gradient through it was 0."""
    x = mg.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(TypeError, match=r"^tensor: the list holds Tensors that require grad"):
        mg.tensor([x[0] * 3.0, x[1]])
    with pytest.raises(TypeError, match=r"use mg.stack"):
        mg.grad(lambda z: mg.sum(mg.tensor([[z[0], z[1]]])))(np.ones(2))
    # constants in a list are fine, and stack keeps the graph
    np.testing.assert_array_equal(mg.tensor([x[0].detach(), 5.0]).numpy(), [1.0, 5.0])
    np.testing.assert_array_equal(
        mg.grad(lambda z: mg.sum(mg.stack([z[0] * 3.0, z[1]])))(np.ones(2)), [3.0, 1.0]
    )


def test_hessian_of_det_at_singular_matrix_float32():
    """adj_t_vjp in float32: the same second derivatives at a rank-2 matrix, float32 results."""
    S = np.array([[1.0, 2, 3], [2, 4, 6], [1, 0, 1]])
    H64 = mg.hessian(mg.det)(S)
    H32 = mg.hessian(mg.det)(S.astype(np.float32))
    assert H32.dtype == np.float32
    np.testing.assert_allclose(H32, H64, rtol=1e-5, atol=1e-5)
