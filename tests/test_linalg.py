"""The linear-algebra ops (matmul, dot, outer, trace, det, logdet, slogdet, inv, solve,
cholesky, matrix_power, kron) beyond the registry's table: trace, dot, outer, matrix_power and
kron against closed forms; det of
singular, tiny and huge matrices (its value, gradient and Hessian); and the one LU factorization
a matrix node shares between det, logdet, slogdet, inv, solve and their VJPs, also when the
matrix maps a caller's array that changes. The closed-form identities of the other ops
(d det/dX, d inv, d solve, cholesky, ...) are in test_matrix_calculus.py."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import matgrad as mg


def wellcond(rng: np.random.Generator, n: int) -> np.ndarray:
    """(n + 1) I + U(-1, 1): diagonally dominant, so well conditioned whatever rng draws."""
    return (n + 1) * np.eye(n) + rng.uniform(-1, 1, (n, n))


# ---- trace, dot, outer ----


def test_gradient_of_trace_is_the_identity():
    rng = np.random.default_rng(11)
    for shape in [(3, 3), (2, 5), (5, 2), (1, 1)]:
        X = rng.standard_normal(shape)
        np.testing.assert_array_equal(mg.grad(mg.trace)(X), np.eye(*shape))


def test_gradient_of_trace_of_a_product():
    # d tr(A X) / dX = A^T
    rng = np.random.default_rng(12)
    A, X = rng.standard_normal((4, 3)), rng.standard_normal((3, 4))
    np.testing.assert_allclose(mg.grad(lambda X: mg.trace(A @ X))(X), A.T, rtol=1e-15, atol=0)


def test_gradient_of_x_dot_a_is_a():
    # d(x^T a)/dx = a
    rng = np.random.default_rng(13)
    x, a = rng.standard_normal(5), rng.standard_normal(5)
    np.testing.assert_array_equal(mg.grad(lambda x: mg.dot(x, a))(x), a)


def test_gradient_of_a_x_b_is_the_outer_product():
    # d(a^T X b)/dX = a b^T
    rng = np.random.default_rng(14)
    a, b, X = rng.standard_normal(3), rng.standard_normal(4), rng.standard_normal((3, 4))
    np.testing.assert_allclose(mg.grad(lambda X: mg.dot(a, mg.dot(X, b)))(X), np.outer(a, b), rtol=1e-15)


def test_outer_values_and_gradients():
    rng = np.random.default_rng(15)
    x, y = rng.standard_normal((2, 2)), rng.standard_normal(3)
    np.testing.assert_array_equal(mg.outer(x, y).numpy(), np.outer(x, y))
    gx, gy = mg.grad(lambda x, y: mg.sum(mg.outer(x, y)), argnums=(0, 1))(x, y)
    np.testing.assert_allclose(gx, np.full((2, 2), y.sum()), rtol=1e-15)
    np.testing.assert_allclose(gy, np.full(3, x.sum()), rtol=1e-15)


def test_second_derivative_through_trace():
    # d/dX tr(X X) = 2 X^T; its derivative along X is linear: check grad(grad) of tr(X X) at a scalar.
    H = mg.grad(lambda s: mg.sum(mg.grad(lambda X: mg.trace(X @ X))(s * np.eye(2))))(1.5)
    np.testing.assert_allclose(H, 4.0, rtol=1e-15)  # sum(2 (s I)^T) = 4 s, d/ds = 4


# ---- det at singular, tiny and huge matrices ----

SINGULAR = {
    "rank 1": [[1.0, 2.0], [2.0, 4.0]],
    "zeros": [[0.0, 0.0], [0.0, 0.0]],
    "zero 1x1": [[0.0]],
    "zero column": [[1.0, 0.0, 2.0], [3.0, 0.0, 4.0], [5.0, 0.0, 6.0]],
    "repeated row": [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [1.0, 2.0, 3.0]],
}


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", list(SINGULAR))
def test_det_of_a_singular_matrix_is_exactly_zero(name, dtype):
    """det of a singular matrix is 0 (no error); logdet is -inf, slogdet (0, -inf)."""
    a = np.array(SINGULAR[name], dtype=dtype)
    for x in (a, mg.tensor(a, requires_grad=True)):
        d = mg.det(x).numpy()
        assert d.shape == () and d.dtype == dtype and d == 0.0, (name, d)
        assert mg.logdet(x).numpy() == -np.inf, name
        sign, logabs = mg.slogdet(x)
        assert (float(np.asarray(sign)), float(np.asarray(logabs))) == (0.0, -np.inf), name
    value, g = mg.value_and_grad(mg.det)(a)  # the singular det is no error under a transform either
    assert value == 0.0 and g.shape == a.shape and np.all(np.isfinite(g)), (name, value, g)


# Regressions (a second reading of the matrix-calculus change): det under/overflow in the forward
# value and in its gradient.
@pytest.mark.parametrize("dtype,tiny,huge", [(np.float64, 1e-200, 1e200), (np.float32, 1e-30, 1e30)])
def test_det_of_representable_determinant_does_not_underflow(dtype, tiny, huge):
    # det = tiny * tiny * huge = tiny is representable; the running product of the pivots underflows
    X = np.diag(np.array([tiny, tiny, huge], dtype=dtype))
    expected = np.linalg.det(X)
    assert expected != 0
    np.testing.assert_allclose(mg.det(X).item(), expected, rtol=1e-5)


@pytest.mark.parametrize("scale", [1e-200, 1e200, 1e-310])
def test_det_gradient_when_det_under_or_overflows(scale):
    """Regression: det(X) X^-T gave 0 or NaN when det(X) is not representable but X is
    invertible; the transposed adjugate is finite (here diag(scale, scale))."""
    X = np.diag([scale, scale])
    np.testing.assert_allclose(mg.grad(mg.det)(X), np.diag([scale, scale]), rtol=1e-14, atol=0)


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


def test_hessian_of_det_at_singular_matrix_float32():
    """adj_t_vjp in float32: the same second derivatives at a rank-2 matrix, float32 results."""
    S = np.array([[1.0, 2, 3], [2, 4, 6], [1, 0, 1]])
    H64 = mg.hessian(mg.det)(S)
    H32 = mg.hessian(mg.det)(S.astype(np.float32))
    assert H32.dtype == np.float32
    np.testing.assert_allclose(H32, H64, rtol=1e-5, atol=1e-5)


# ---- one LU factorization per matrix node ----


def test_det_inv_logdet_solve_and_their_vjps_share_one_lu():
    """One LU per matrix node: forward and backward of det, logdet, slogdet, inv and solve."""
    rng = np.random.default_rng(51)
    X = mg.tensor(wellcond(rng, 5), requires_grad=True)
    b = rng.standard_normal(5)
    before = mg._core._lu_count()
    y = mg.det(X) + mg.logdet(X) + mg.slogdet(X)[1] + mg.sum(mg.inv(X)) + mg.sum(mg.solve(X, b))
    y.backward()
    assert mg._core._lu_count() - before == 1
    # a new node (even of the same values) factorizes again
    mg.det(mg.tensor(np.asarray(X)))
    assert mg._core._lu_count() - before == 2


def test_value_and_grad_of_w4_factorizes_once():
    rng = np.random.default_rng(52)
    X, a, b = wellcond(rng, 6), rng.standard_normal(6), rng.standard_normal(6)

    def g(X):
        Xi = mg.inv(X)
        return mg.logdet(X) + mg.trace(Xi) + a @ Xi @ b

    before = mg._core._lu_count()
    mg.value_and_grad(g)(X)
    assert mg._core._lu_count() - before == 1


def test_factor_of_a_mapped_constant_follows_the_callers_array():
    """A constant maps the caller's array: the cached LU must not outlive a change to it."""
    rng = np.random.default_rng(53)
    A = wellcond(rng, 3)
    t = mg.tensor(A)
    np.testing.assert_allclose(mg.inv(t).numpy(), np.linalg.inv(A), rtol=1e-13)
    A[0, 0] += 1.0
    np.testing.assert_allclose(mg.inv(t).numpy(), np.linalg.inv(A), rtol=1e-13)


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


# ---- matrix_power (a composition of matmul and inv) ----


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_matrix_power_zero_is_a_constant_identity(dtype):
    a = np.full((3, 3), np.nan, dtype=dtype)  # as NumPy: A^0 = I whatever A holds
    got = mg.matrix_power(a, 0)
    assert got.dtype == dtype
    np.testing.assert_array_equal(got.numpy(), np.eye(3, dtype=dtype))
    rng = np.random.default_rng(31)
    b = wellcond(rng, 3).astype(dtype)
    np.testing.assert_array_equal(mg.grad(lambda x: mg.sum(mg.matrix_power(x, 0) * x))(b), np.eye(3))


@pytest.mark.parametrize("n", [1, 2, 3, 4, 7, 64, -1, -3])
def test_matrix_power_gradient_closed_form(n):
    """d sum(G * A^n)/dA = sum_k (A^T)^k G (A^T)^(n-1-k) for n > 0; for n < 0 through B = A^-1:
    dB = the same with B, and dA = -B^T dB B^T."""
    rng = np.random.default_rng(32)
    a = wellcond(rng, 4) / 5
    g = rng.normal(size=(4, 4))
    b = a if n > 0 else np.linalg.inv(a)
    m = abs(n)
    bt = [np.linalg.matrix_power(b.T, k) for k in range(m)]
    want = sum(bt[k] @ g @ bt[m - 1 - k] for k in range(m))
    if n < 0:
        want = -b.T @ want @ b.T
    got = mg.grad(lambda x: mg.sum(mg.matrix_power(x, n) * g))(a)
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12 * np.abs(want).max())
    np.testing.assert_allclose(mg.matrix_power(a, n).numpy(), np.linalg.matrix_power(a, n), rtol=1e-12)


def test_matrix_power_errors_name_the_op():
    with pytest.raises(ValueError, match="matrix_power"):
        mg.matrix_power(np.ones(3), 2)
    with pytest.raises(ValueError, match="matrix_power"):
        mg.matrix_power(np.ones((2, 3)), 2)
    with pytest.raises(TypeError, match="matrix_power"):
        mg.matrix_power(np.eye(2), 2.0)
    with pytest.raises(np.linalg.LinAlgError, match="matrix_power"):
        mg.matrix_power(np.zeros((2, 2)), -1)


# ---- kron ----


def test_kron_gradients_closed_form():
    """d <G, kron(A, B)>/dA[i, j] = <G's (i, j) block, B>; d/dB = sum_ij A[i, j] G's (i, j) block;
    and the mixed product rule kron(A, B) kron(C, D) = kron(A C, B D)."""
    rng = np.random.default_rng(33)
    a, b = rng.normal(size=(3, 2)), rng.normal(size=(2, 4))
    g = rng.normal(size=(6, 8))
    blocks = g.reshape(3, 2, 2, 4).transpose(0, 2, 1, 3)  # blocks[i, j] = G[2i:2i+2, 4j:4j+4]
    da, db = mg.grad(lambda x, y: mg.sum(mg.kron(x, y) * g), argnums=(0, 1))(a, b)
    np.testing.assert_allclose(da, np.einsum("ijkl,kl->ij", blocks, b), rtol=1e-13)
    np.testing.assert_allclose(db, np.einsum("ij,ijkl->kl", a, blocks), rtol=1e-13)
    c, d = rng.normal(size=(2, 3)), rng.normal(size=(4, 2))
    lhs = (mg.kron(a, b) @ mg.kron(c, d)).numpy()
    np.testing.assert_allclose(lhs, np.kron(a @ c, b @ d), rtol=1e-12, atol=1e-12)


def test_kron_refuses_what_is_not_a_matrix():
    with pytest.raises(ValueError, match="kron"):
        mg.kron(np.ones(3), np.ones((2, 2)))
    with pytest.raises(ValueError, match="kron"):
        mg.kron(np.ones((2, 2)), 3.0)
