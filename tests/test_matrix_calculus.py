"""The lecture's matrix-calculus identities, each against its closed form.

One test per identity; the identity is the first line of each docstring. The closed forms were
checked against central finite differences in plain NumPy before being written here (the
Cholesky and singular-det tests also check against finite differences / exact integer
cofactors inside the test). Jacobians follow the convention J[i,j,k,l] = dA_ij / dB_kl, shape
f(X).shape + X.shape. Already covered in test_linalg.py and not repeated here:
d(x^T a)/dx = a (test_gradient_of_x_dot_a_is_a) and d(a^T X b)/dX = a b^T
(test_gradient_of_a_x_b_is_the_outer_product).

Tolerances (|got - want| <= atol * max(1, max|want|) + rtol * |want|, see gradcheck.assert_close):

* float64, RTOL = ATOL = 1e-12. Inputs are well conditioned (n I + N(0, 1), redrawn by
  well_conditioned until cond < 10; n <= 5). A backward-stable LU / solve / inverse is off by about
  n cond eps ~ 1e-14 normwise, a few chained ops a few times that, and the NumPy reference
  carries the same order of error: 1e-12 leaves a margin of ~100 without hiding a wrong formula
  (any formula error is O(1)).
* Results that involve no rounding at all (a Jacobian that is a permutation or a copy of an
  input times 0/1 one-hots) are compared exactly.
* float32, RTOL32 = ATOL32 = 1e-5. Unit roundoff u = 6e-8; the same n cond u bound is ~3e-6
  worst case for n = 4, cond < 10 (LAPACK's float32 on 200 random 4 x 4 such matrices was at
  most 1.2e-7 off the float64 closed form). The reference is the float64 closed form evaluated
  on exactly the float32 input values, so only matgrad's rounding is measured.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from gradcheck import F64, TOLS, assert_close, directional_derivative

import matgrad as mg

RTOL, ATOL = 1e-12, 1e-12
RTOL32, ATOL32 = 1e-5, 1e-5
EPS = np.finfo(np.float64).eps


def well_conditioned(rng: np.random.Generator, n: int, dtype=np.float64) -> np.ndarray:
    """n I + N(0, 1), drawn again until cond < 10 (in the given dtype), so the tolerances' reasoning holds."""
    while True:
        X = (n * np.eye(n) + rng.standard_normal((n, n))).astype(dtype)
        if np.linalg.cond(X.astype(np.float64)) < 10:
            return X


def check(got, want, what: str, rtol: float = RTOL, atol: float = ATOL, dtype=np.float64) -> None:
    """A transform's result for NumPy inputs: a NumPy array of the input's dtype, close to want."""
    assert isinstance(got, np.ndarray), f"{what}: NumPy in must give NumPy out, got {type(got).__name__}"
    assert got.dtype == dtype, f"{what}: dtype {got.dtype} != {np.dtype(dtype)}"
    assert_close(got, want, rtol, atol, what)


def cofactor_matrix(X: np.ndarray) -> np.ndarray:
    """C_ij = (-1)^(i+j) det(X without row i and column j), i.e. adj(X)^T, from NumPy minors."""
    n = X.shape[0]
    C = np.empty_like(X)
    for i, j in itertools.product(range(n), range(n)):
        minor = np.delete(np.delete(X, i, axis=0), j, axis=1)
        C[i, j] = (-1) ** (i + j) * np.linalg.det(minor)
    return C


def exact_det(M: list) -> int:
    """Determinant of an integer matrix (lists of Python ints) by Laplace expansion: exact."""
    if len(M) == 1:
        return M[0][0]
    minors = ([row[:j] + row[j + 1 :] for row in M[1:]] for j in range(len(M)))
    return sum((-1) ** j * M[0][j] * exact_det(minor) for j, minor in enumerate(minors))


def exact_cofactor_matrix(M: list) -> np.ndarray:
    n = len(M)
    return np.array(
        [
            [
                (-1) ** (i + j) * exact_det([row[:j] + row[j + 1 :] for k, row in enumerate(M) if k != i])
                for j in range(n)
            ]
            for i in range(n)
        ],
        dtype=np.float64,
    )


def softmax(x: np.ndarray, axis=None) -> np.ndarray:
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


def logsumexp_ref(x: np.ndarray, axis=None) -> np.ndarray:
    m = np.max(x, axis=axis, keepdims=True)
    return np.squeeze(m, axis=axis) + np.log(np.sum(np.exp(x - m), axis=axis))


# ---- determinant ----


@pytest.mark.parametrize("n", [2, 3, 4, 5])
def test_grad_det_is_det_times_inverse_transpose(n):
    """d det(X)/dX = det(X) X^-T"""
    rng = np.random.default_rng(100 + n)
    X = well_conditioned(rng, n)
    value, g = mg.value_and_grad(mg.det)(X)
    d = np.linalg.det(X)
    check(value, d, "det(X)")
    check(g, d * np.linalg.inv(X).T, "d det(X)/dX")


@pytest.mark.parametrize(
    "rows",
    [
        [[2, -1, 0, 1], [1, 3, -1, 0], [0, 1, 2, -1], [2, -1, 0, 1]],  # row 3 repeats row 0
        [[2, -1, 0, 1], [1, 3, -1, 0], [0, 0, 0, 0], [0, 1, 2, -1]],  # a zero row
    ],
    ids=["repeated-row", "zero-row"],
)
def test_det_of_singular_matrix_is_zero_and_its_gradient_is_the_adjugate_transpose(rows):
    """det(X) = 0 and d det(X)/dX = adj(X)^T (the cofactor matrix) for an exactly singular X (rank n-1).

    Partial-pivoting LU turns a repeated or zero row into an exactly zero pivot, so the value
    is exactly 0. The expected cofactors are exact integers (Laplace expansion on Python ints).
    The rank-3 part has singular values 2..3.8, so the gradient is well conditioned.
    """
    X = np.array(rows, dtype=np.float64)
    assert exact_det(rows) == 0 and np.linalg.matrix_rank(X) == 3
    C = exact_cofactor_matrix(rows)
    assert np.any(C != 0)  # rank n-1: the adjugate is rank 1, not zero
    value, g = mg.value_and_grad(mg.det)(X)
    assert isinstance(value, np.ndarray) and value.shape == ()
    assert value == 0.0, f"det of an exactly singular matrix: {value!r}"
    check(g, C, "d det(X)/dX at a singular X")


def test_grad_det_of_rank_deficient_matrix_is_the_adjugate_transpose():
    """d det(X)/dX = adj(X)^T at a generic rank n-1 X, against cofactors from NumPy minors.

    X = Q1 diag(3, 2, 1.5, 0) Q2^T is singular up to rounding: its computed det is only
    rounding noise, bounded by |<adj(X)^T, dX>| <= ||adj(X)||_F ||dX||_F with a backward error
    ||dX||_F <= n eps ||X||_F (times a small growth factor, allowed 4 here).
    """
    rng = np.random.default_rng(7)
    n = 4
    Q1, _ = np.linalg.qr(rng.standard_normal((n, n)))
    Q2, _ = np.linalg.qr(rng.standard_normal((n, n)))
    X = Q1 @ np.diag([3.0, 2.0, 1.5, 0.0]) @ Q2.T
    C = cofactor_matrix(X)
    value, g = mg.value_and_grad(mg.det)(X)
    bound = 4 * n * EPS * np.linalg.norm(X) * np.linalg.norm(C)
    assert abs(float(value)) <= bound, f"det of a rank-deficient X: {float(value)!r} > {bound!r}"
    check(g, C, "d det(X)/dX at a rank n-1 X")


@pytest.mark.parametrize("sign", [1, -1], ids=["positive-det", "negative-det"])
def test_grad_logdet_is_inverse_transpose(sign):
    """d log|det X|/dX = X^-T, for det X > 0 and det X < 0"""
    rng = np.random.default_rng(110)
    X = well_conditioned(rng, 4)
    X[0] *= sign
    assert np.sign(np.linalg.det(X)) == sign
    value, g = mg.value_and_grad(mg.logdet)(X)
    check(value, np.log(abs(np.linalg.det(X))), "log|det X|")
    check(g, np.linalg.inv(X).T, "d log|det X|/dX")


@pytest.mark.parametrize("sign", [1, -1], ids=["positive-det", "negative-det"])
def test_slogdet_sign_and_grad_of_logabsdet_is_inverse_transpose(sign):
    """slogdet(X) = (sign det X, log|det X|) and d log|det X|/dX = X^-T"""
    rng = np.random.default_rng(111)
    X = well_conditioned(rng, 4)
    X[0] *= sign
    s_ref, l_ref = np.linalg.slogdet(X)
    s, logabs = mg.slogdet(X)
    assert float(np.asarray(s)) == s_ref == sign
    assert_close(np.asarray(logabs), l_ref, RTOL, ATOL, "slogdet logabsdet")
    g = mg.grad(lambda Y: mg.slogdet(Y)[1])(X)
    check(g, np.linalg.inv(X).T, "d logabsdet/dX")


# ---- inverse ----


def test_jacobian_of_inverse_is_minus_outer_of_inverses():
    """d(X^-1)_ij / dX_kl = -(X^-1)_ik (X^-1)_lj, shape (n, n, n, n)"""
    rng = np.random.default_rng(120)
    n = 4
    X = well_conditioned(rng, n)
    Xi = np.linalg.inv(X)
    J = mg.jacobian(mg.inv)(X)
    assert J.shape == (n, n, n, n)
    check(J, -np.einsum("ik,lj->ijkl", Xi, Xi), "Jacobian of inv")


def test_grad_of_a_inverse_b_is_minus_inverse_transpose_a_b_transpose_inverse_transpose():
    """d(a^T X^-1 b)/dX = -X^-T a b^T X^-T"""
    rng = np.random.default_rng(121)
    X = well_conditioned(rng, 4)
    a, b = rng.standard_normal(4), rng.standard_normal(4)
    XiT = np.linalg.inv(X).T
    g = mg.grad(lambda Y: a @ mg.inv(Y) @ b)(X)
    check(g, -XiT @ np.outer(a, b) @ XiT, "d(a^T X^-1 b)/dX")


# ---- quadratic forms ----


def test_grad_quad_form_wrt_x_is_b_plus_b_transpose_times_x():
    """d(x^T B x)/dx = (B + B^T) x, via mg.quad_form and via x @ (B @ x)"""
    rng = np.random.default_rng(130)
    x, B = rng.standard_normal(5), rng.standard_normal((5, 5))  # B not symmetric
    want = (B + B.T) @ x
    check(mg.grad(lambda z: mg.quad_form(z, B))(x), want, "d quad_form(x, B)/dx")
    check(mg.grad(lambda z: z @ (B @ z))(x), want, "d x @ (B @ x)/dx")


def test_grad_quad_form_wrt_b_is_outer_x_x():
    """d(x^T B x)/dB = x x^T"""
    rng = np.random.default_rng(131)
    x, B = rng.standard_normal(5), rng.standard_normal((5, 5))
    check(mg.grad(mg.quad_form, argnums=1)(x, B), np.outer(x, x), "d quad_form(x, B)/dB")


def test_grad_weighted_least_squares_is_minus_two_a_transpose_w_residual():
    """d/ds (x - A s)^T W (x - A s) = -2 A^T W (x - A s), W symmetric"""
    rng = np.random.default_rng(132)
    A, x, s = rng.standard_normal((6, 3)), rng.standard_normal(6), rng.standard_normal(3)
    M = rng.standard_normal((6, 6))
    W = M + M.T
    want = -2 * A.T @ W @ (x - A @ s)
    check(mg.grad(lambda t: mg.quad_form(x - A @ t, W))(s), want, "via quad_form")

    def explicit(t):
        r = x - A @ t
        return r @ (W @ r)

    check(mg.grad(explicit)(s), want, "via r @ (W @ r)")


# ---- traces ----


def test_grad_trace_x_transpose_a_is_a():
    """d tr(X^T A)/dX = A"""
    rng = np.random.default_rng(140)
    X, A = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    check(mg.grad(lambda Y: mg.trace(Y.T @ A))(X), A, "d tr(X^T A)/dX")


def test_grad_trace_a_x_b_is_a_transpose_b_transpose():
    """d tr(A X B)/dX = A^T B^T"""
    rng = np.random.default_rng(141)
    A, X, B = rng.standard_normal((2, 3)), rng.standard_normal((3, 4)), rng.standard_normal((4, 2))
    check(mg.grad(lambda Y: mg.trace(A @ Y @ B))(X), A.T @ B.T, "d tr(A X B)/dX")


def test_grad_trace_x_transpose_x_is_two_x():
    """d tr(X^T X)/dX = 2 X"""
    rng = np.random.default_rng(142)
    X = rng.standard_normal((3, 4))
    check(mg.grad(lambda Y: mg.trace(Y.T @ Y))(X), 2 * X, "d tr(X^T X)/dX")


def test_grad_trace_x_a_x_transpose_is_x_times_a_plus_a_transpose():
    """d tr(X A X^T)/dX = X (A + A^T)"""
    rng = np.random.default_rng(143)
    X, A = rng.standard_normal((3, 4)), rng.standard_normal((4, 4))
    check(mg.grad(lambda Y: mg.trace(Y @ A @ Y.T))(X), X @ (A + A.T), "d tr(X A X^T)/dX")


def test_grad_trace_inverse_is_minus_inverse_squared_transpose():
    """d tr(X^-1)/dX = -(X^-2)^T"""
    rng = np.random.default_rng(144)
    X = well_conditioned(rng, 4)
    Xi = np.linalg.inv(X)
    check(mg.grad(lambda Y: mg.trace(mg.inv(Y)))(X), -(Xi @ Xi).T, "d tr(X^-1)/dX")


# ---- transposes ----


def test_jacobian_of_transpose_is_the_permutation():
    """d(X^T)_ij / dX_kl = delta_il delta_jk (exact: a permutation of 0s and 1s)"""
    rng = np.random.default_rng(150)
    m, n = 3, 4
    X = rng.standard_normal((m, n))
    J = mg.jacobian(lambda Y: Y.T)(X)
    want = np.einsum("il,jk->ijkl", np.eye(n), np.eye(m))  # shape (n, m, m, n)
    assert isinstance(J, np.ndarray) and J.shape == (n, m, m, n)
    np.testing.assert_array_equal(J, want)


def test_grad_through_a_transposed_function_is_the_transpose_rule():
    """d sum(W * f(X)^T)/dX = d sum(W^T * f(X))/dX; for f(X) = X X: W^T X^T + X^T W^T"""
    rng = np.random.default_rng(151)
    X, W = rng.standard_normal((4, 4)), rng.standard_normal((4, 4))
    g = mg.grad(lambda Y: mg.sum((Y @ Y).T * W))(X)
    check(g, W.T @ X.T + X.T @ W.T, "closed form")
    check(g, mg.grad(lambda Y: mg.sum((Y @ Y) * W.T))(X), "against the untransposed function with W^T")


# ---- Jacobians of products ----


def test_jacobian_of_matrix_vector_product_wrt_matrix():
    """f = A x: df_i / dA_kl = delta_ik x_l, shape (m, m, n) (exact: x times 0/1 one-hots)"""
    rng = np.random.default_rng(160)
    m, n = 3, 4
    A, x = rng.standard_normal((m, n)), rng.standard_normal(n)
    J = mg.jacobian(lambda B: B @ x)(A)
    assert isinstance(J, np.ndarray) and J.shape == (m, m, n)
    np.testing.assert_array_equal(J, np.einsum("ik,l->ikl", np.eye(m), x))


def test_jacobian_of_matrix_vector_product_wrt_vector_is_the_matrix():
    """f = A x: df/dx = A (exact)"""
    rng = np.random.default_rng(161)
    A, x = rng.standard_normal((3, 4)), rng.standard_normal(4)
    J = mg.jacobian(lambda z: A @ z)(x)
    assert isinstance(J, np.ndarray) and J.shape == (3, 4)
    np.testing.assert_array_equal(J, A)


# The lecture's four cases of dK_pq / dB_ij for K = B^T B (B is m x n, K is n x n):
# j = p != q: B_iq;  j = q != p: B_ip;  j = p = q: 2 B_iq;  otherwise 0.
GRAM_CASES = {
    "j=p!=q": (lambda p, q, j: j == p != q, lambda B, i, p, q: B[i, q]),
    "j=q!=p": (lambda p, q, j: j == q != p, lambda B, i, p, q: B[i, p]),
    "j=p=q": (lambda p, q, j: j == p == q, lambda B, i, p, q: 2 * B[i, q]),
    "otherwise": (lambda p, q, j: j != p and j != q, lambda B, i, p, q: 0.0),
}


@pytest.mark.parametrize("case", list(GRAM_CASES), ids=list(GRAM_CASES))
def test_jacobian_of_gram_matrix_b_transpose_b(case):
    """K = B^T B, B (m, n): dK_pq/dB_ij = B_iq if j = p != q; B_ip if j = q != p; 2 B_iq if j = p = q; else 0

    Shape (n, n, m, n). Each entry is an entry of B times 1 or 2 plus exact zeros: compared exactly.
    """
    rng = np.random.default_rng(170)
    m, n = 5, 3
    B = rng.standard_normal((m, n))
    J = mg.jacobian(lambda Y: Y.T @ Y)(B)
    assert isinstance(J, np.ndarray) and J.shape == (n, n, m, n)
    applies, value = GRAM_CASES[case]
    checked = 0
    for p, q, i, j in itertools.product(range(n), range(n), range(m), range(n)):
        if applies(p, q, j):
            assert J[p, q, i, j] == value(B, i, p, q), f"dK_{p}{q}/dB_{i}{j} ({case}): {J[p, q, i, j]!r}"
            checked += 1
    assert checked > 0


# ---- solve ----


@pytest.mark.parametrize("rhs_shape", [(4,), (4, 2)], ids=["vector-rhs", "matrix-rhs"])
def test_grad_solve_wrt_rhs_is_solve_with_transpose(rhs_shape):
    """d <C, solve(A, B)>/dB = solve(A^T, C) (c^T solve(A, b) for a 1-D b)"""
    rng = np.random.default_rng(180)
    A = well_conditioned(rng, 4)
    b, c = rng.standard_normal(rhs_shape), rng.standard_normal(rhs_shape)
    g = mg.grad(lambda r: mg.sum(c * mg.solve(A, r)))(b)
    check(g, np.linalg.solve(A.T, c), "d <c, solve(A, b)>/db")


@pytest.mark.parametrize("rhs_shape", [(4,), (4, 2)], ids=["vector-rhs", "matrix-rhs"])
def test_grad_solve_wrt_matrix_is_minus_adjoint_solution_times_solution_transpose(rhs_shape):
    """d <C, solve(A, B)>/dA = -solve(A^T, C) solve(A, B)^T"""
    rng = np.random.default_rng(181)
    A = well_conditioned(rng, 4)
    b, c = rng.standard_normal(rhs_shape), rng.standard_normal(rhs_shape)
    lam, x = np.linalg.solve(A.T, c), np.linalg.solve(A, b)
    want = -np.outer(lam, x) if b.ndim == 1 else -lam @ x.T
    check(mg.grad(lambda M: mg.sum(c * mg.solve(M, b)))(A), want, "d <c, solve(A, b)>/dA")


# ---- Cholesky ----


def spd(rng: np.random.Generator, n: int) -> np.ndarray:
    M = rng.standard_normal((n, n))
    return M @ M.T + n * np.eye(n)


def test_cholesky_gradient_along_symmetric_directions_matches_finite_differences():
    """<G, E> = d/de sum(W * cholesky(S + e E)) for symmetric E (convention-free)

    Any gradient convention (symmetric, or lower-triangle only as NumPy reads S) gives the same
    derivative along a symmetric direction. Directions: every E_ij + E_ji (i <= j), which
    determine the symmetric part of G, and random symmetric ones. The reference is NumPy's
    cholesky by the fourth-order central stencil (accurate to ~1e-12 here), judged with the
    suite's finite-difference tolerances TOLS[float64].
    """
    tol = TOLS[F64]
    rng = np.random.default_rng(190)
    n = 4
    S, W = spd(rng, n), rng.standard_normal((n, n))
    G = mg.grad(lambda T: mg.sum(mg.cholesky(T) * W))(S)
    assert isinstance(G, np.ndarray) and G.shape == (n, n)
    directions = []
    for i, j in itertools.combinations_with_replacement(range(n), 2):
        E = np.zeros((n, n))
        E[i, j] = E[j, i] = 1.0
        directions.append(E)
    for _ in range(3):
        E = rng.uniform(-1, 1, (n, n))
        directions.append((E + E.T) / 2)
    for E in directions:
        got = float(np.sum(G * E))
        want = directional_derivative(lambda xs: np.sum(W * np.linalg.cholesky(xs[0])), [S], [E])
        scale = float(np.sum(np.abs(G * E)))
        assert abs(got - want) <= tol.grad_atol * max(1.0, scale) + tol.grad_rtol * abs(want), (
            f"<G, E> = {got!r}, finite differences {want!r}, E =\n{E}"
        )


def test_cholesky_gradient_is_that_of_the_lower_triangle():
    """Convention: cholesky reads the lower triangle of S (as NumPy), and its gradient is the
    derivative of that function: G = tril(P + P^T) with the diagonal halved, where
    P = L^-T Phi(L^T W) L^-1 (Phi: tril, halved diagonal). Its symmetric part (G + G^T) / 2 is
    the symmetric-matrix gradient sym(P) (PyTorch's convention), so any S built symmetric (e.g.
    A A^T) gets the same gradient either way; unlike the symmetric one, this one agrees with
    central differences over every entry (check_grad)."""
    rng = np.random.default_rng(191)
    n = 4
    S, W = spd(rng, n), rng.standard_normal((n, n))
    L = np.linalg.cholesky(S)
    Li = np.linalg.inv(L)
    Z = L.T @ W
    P = Li.T @ (np.tril(Z) - 0.5 * np.diag(np.diag(Z))) @ Li
    G = mg.grad(lambda T: mg.sum(mg.cholesky(T) * W))(S)
    check(G, np.tril(P + P.T) - 0.5 * np.diag(np.diag(P + P.T)), "closed form")
    check((G + G.T) / 2, (P + P.T) / 2, "symmetric part")
    assert mg.check_grad(lambda T: mg.sum(mg.cholesky(T) * W), S) < 1e-6


# ---- norm ----


def test_grad_frobenius_norm_is_x_over_norm():
    """d ||X||_F/dX = X / ||X||_F"""
    rng = np.random.default_rng(200)
    X = rng.standard_normal((3, 4))
    value, g = mg.value_and_grad(mg.norm)(X)
    check(value, np.linalg.norm(X), "||X||_F")
    check(g, X / np.linalg.norm(X), "d ||X||_F/dX")


def test_grad_vector_norm_is_unit_vector():
    """d ||x||_2/dx = x / ||x||_2"""
    rng = np.random.default_rng(201)
    x = rng.standard_normal(5)
    value, g = mg.value_and_grad(mg.norm)(x)
    check(value, np.linalg.norm(x), "||x||_2")
    check(g, x / np.linalg.norm(x), "d ||x||_2/dx")


@pytest.mark.parametrize("shape", [(3, 4), (5,)], ids=["matrix", "vector"])
def test_grad_norm_at_zero_is_zero(shape):
    """||0|| = 0 and d||X||/dX at X = 0 is 0 (the documented convention at the kink)"""
    value, g = mg.value_and_grad(mg.norm)(np.zeros(shape))
    assert float(value) == 0.0
    assert isinstance(g, np.ndarray) and g.shape == shape
    np.testing.assert_array_equal(g, np.zeros(shape))


# ---- logsumexp ----


@pytest.mark.parametrize("axis", [None, 0, 1, -1, -2])
def test_grad_logsumexp_is_softmax(axis):
    """d <w, logsumexp(X, axis)>/dX = w * softmax(X, axis) (w broadcast along the axis)"""
    rng = np.random.default_rng(210)
    X = rng.standard_normal((3, 4))
    ref = logsumexp_ref(X, axis)
    w = rng.standard_normal(np.shape(ref))
    check(mg.logsumexp(X, axis=axis).numpy(), ref, "logsumexp value")
    g = mg.grad(lambda Y: mg.sum(mg.logsumexp(Y, axis=axis) * w))(X)
    w_b = w if axis is None else np.expand_dims(w, axis)
    check(g, w_b * softmax(X, axis), f"d logsumexp(X, axis={axis})/dX")


@pytest.mark.parametrize(
    "x, axis, value, grad",
    [
        ([1000.0, 1000.0], None, 1000.0 + np.log(2.0), [0.5, 0.5]),
        ([-1000.0, -1000.0], None, -1000.0 + np.log(2.0), [0.5, 0.5]),
        ([1000.0, 0.0], None, 1000.0, [1.0, 0.0]),
        (
            [[1000.0, 1000.0, 999.0], [-1000.0, -1001.0, -1002.0]],
            1,
            [1000.0 + np.log(2.0 + np.exp(-1.0)), -1000.0 + np.log(1.0 + np.exp(-1.0) + np.exp(-2.0))],
            None,
        ),
    ],
    ids=["plus-1000-twice", "minus-1000-twice", "1000-and-0", "matrix-axis1"],
)
def test_logsumexp_is_stable_for_huge_inputs(x, axis, value, grad):
    """logsumexp(x) = max(x) + log sum exp(x - max(x)) without overflow: [1000, 1000] gives 1000 + log 2

    The values are computed with two roundings around 1000 (1 ulp = 1.1e-13): rtol 1e-15 (~9 ulp).
    The gradient softmax(x) = exp(x - logsumexp(x)) may reuse the rounded output, whose error
    (half an ulp of 1000, 5.7e-14) becomes a relative error of the gradient: RTOL (1e-12).
    """
    x = np.array(x)
    got = np.asarray(mg.logsumexp(x, axis=axis).numpy())
    g = mg.grad(lambda y: mg.sum(mg.logsumexp(y, axis=axis)))(x)
    assert np.all(np.isfinite(got)) and np.all(np.isfinite(g))
    assert_close(got, np.asarray(value), 1e-15, 0, "logsumexp value")
    want_g = softmax(x, axis) if grad is None else np.array(grad)
    check(g, want_g, "gradient (softmax)")


def test_hessian_of_logsumexp_is_diag_softmax_minus_outer():
    """d^2 logsumexp(x)/dx^2 = diag(s) - s s^T, s = softmax(x)"""
    rng = np.random.default_rng(211)
    x = rng.standard_normal(5)
    s = softmax(x)
    check(mg.hessian(mg.logsumexp)(x), np.diag(s) - np.outer(s, s), "Hessian of logsumexp")


# ---- max ----


@pytest.mark.parametrize("axis", [None, 0, 1])
def test_grad_max_is_one_hot_at_argmax(axis):
    """d <w, max(X, axis)>/dX = w at the argmax of each slice, 0 elsewhere"""
    rng = np.random.default_rng(220)
    X = rng.standard_normal((3, 4))  # no ties (with probability 1)
    ref = np.max(X, axis=axis)
    w = rng.standard_normal(np.shape(ref))
    np.testing.assert_array_equal(mg.max(X, axis=axis).numpy(), ref)
    g = mg.grad(lambda Y: mg.sum(mg.max(Y, axis=axis) * w))(X)
    keep = X.max() if axis is None else np.expand_dims(ref, axis)
    w_b = w if axis is None else np.expand_dims(w, axis)
    assert isinstance(g, np.ndarray) and g.shape == X.shape
    np.testing.assert_array_equal(g, np.where(X == keep, w_b, 0.0))


@pytest.mark.parametrize("axis", [None, 0, 1])
def test_grad_max_splits_ties_equally(axis):
    """d <w, max(X, axis)>/dX = w / k at each of the k maximal entries of a slice"""
    X = np.array([[1.0, 3.0, 3.0], [3.0, 0.0, 2.0], [3.0, 3.0, 3.0]])
    rng = np.random.default_rng(221)
    ref = np.max(X, axis=axis)
    w = rng.standard_normal(np.shape(ref))
    mask = X == (X.max() if axis is None else np.expand_dims(ref, axis))
    counts = np.sum(mask, axis=axis, keepdims=axis is not None)
    w_b = w if axis is None else np.expand_dims(w, axis)
    want = np.where(mask, w_b / counts, 0.0)
    g = mg.grad(lambda Y: mg.sum(mg.max(Y, axis=axis) * w))(X)
    # w/k versus w * (1/k): at most one rounding apart
    check(g, want, "tie-split gradient of max", rtol=1e-15, atol=1e-15)


# ---- Hessians ----


def test_hessian_of_quadratic_form_is_symmetric_part():
    """d^2 (0.5 x^T A x)/dx^2 = 0.5 (A + A^T)

    Each entry is 0.5 (A_ij + A_ji): one rounding, so rtol 1e-15.
    """
    rng = np.random.default_rng(230)
    x, A = rng.standard_normal(5), rng.standard_normal((5, 5))
    H = mg.hessian(lambda z: 0.5 * mg.quad_form(z, A))(x)
    check(H, 0.5 * (A + A.T), "Hessian of 0.5 x^T A x", rtol=1e-15, atol=1e-15)


def w6(x, A, lse):
    """h(x) = sum(sin x) + 0.5 x^T A x + lse(x), the W6 benchmark (bench/matrix.py) with a choice of lse"""
    return mg.sum(mg.sin(x)) + 0.5 * mg.quad_form(x, A) + lse(x)


def w6_hessian(x, A):
    s = softmax(x)
    return 0.5 * (A + A.T) - np.outer(s, s) + np.diag(s - np.sin(x))


@pytest.mark.parametrize("formula", ["logsumexp", "log(sum(exp))"])
def test_hessian_of_w6(formula):
    """h(x) = sum(sin x) + 0.5 x^T A x + logsumexp(x): d^2 h/dx^2 = 0.5 (A + A^T) - s s^T + diag(s - sin x)"""
    rng = np.random.default_rng(231)
    n = 6
    x, A = rng.standard_normal(n), rng.standard_normal((n, n))  # A not symmetric
    lse = mg.logsumexp if formula == "logsumexp" else (lambda z: mg.log(mg.sum(mg.exp(z))))
    H = mg.hessian(lambda z, M: w6(z, M, lse))(x, A)
    assert H.shape == (n, n)
    check(H, w6_hessian(x, A), "Hessian of W6")


def test_jacobian_of_grad_equals_hessian():
    """jacobian(grad(h)) = hessian(h) (= the closed form), h = W6"""
    rng = np.random.default_rng(232)
    n = 6
    x, A = rng.standard_normal(n), rng.standard_normal((n, n))
    f = lambda z, M: w6(z, M, mg.logsumexp)  # noqa: E731
    JG = mg.jacobian(mg.grad(f))(x, A)
    check(JG, w6_hessian(x, A), "jacobian(grad(h)) vs closed form")
    check(JG, mg.hessian(f)(x, A), "jacobian(grad(h)) vs hessian(h)")


# ---- jvp / vjp ----


def composite(X):
    """F(X) = sin(X) X^-1 + X^T X"""
    return mg.sin(X) @ mg.inv(X) + X.T @ X


def _composite_jvp(X, V):
    Xi = np.linalg.inv(X)  # dF = (cos X * V) X^-1 - sin(X) X^-1 V X^-1 + V^T X + X^T V
    return (np.cos(X) * V) @ Xi - np.sin(X) @ Xi @ V @ Xi + V.T @ X + X.T @ V


def _composite_vjp(X, C):
    XiT = np.linalg.inv(X).T  # cos X * (C X^-T) - X^-T sin(X)^T C X^-T + X (C + C^T)
    return np.cos(X) * (C @ XiT) - XiT @ np.sin(X).T @ C @ XiT + X @ (C + C.T)


# name -> (f, input shape, closed-form jvp(X, V), closed-form vjp(X, C))
JVP_VJP_CASES = {
    "inv": (
        lambda X: mg.inv(X),
        (4, 4),
        lambda X, V: -np.linalg.inv(X) @ V @ np.linalg.inv(X),  # d X^-1 = -X^-1 V X^-1
        lambda X, C: -np.linalg.inv(X).T @ C @ np.linalg.inv(X).T,  # -X^-T C X^-T
    ),
    "gram": (  # B^T B
        lambda B: B.T @ B,
        (5, 3),
        lambda B, V: V.T @ B + B.T @ V,  # d(B^T B) = V^T B + B^T V
        lambda B, C: B @ (C + C.T),  # B (C + C^T)
    ),
    "composite": (composite, (4, 4), _composite_jvp, _composite_vjp),  # sin(X) X^-1 + X^T X
}


def _input(rng, shape):
    return well_conditioned(rng, shape[0]) if shape[0] == shape[1] else rng.standard_normal(shape)


@pytest.mark.parametrize("name", list(JVP_VJP_CASES))
def test_jvp_is_jacobian_times_tangent(name):
    """jvp(f, (X,), (V,)) = (f(X), J V) with (J V)_ij = sum_kl J_ijkl V_kl (= the closed-form differential)"""
    f, shape, dF, _ = JVP_VJP_CASES[name]
    rng = np.random.default_rng(240)
    X, V = _input(rng, shape), rng.standard_normal(shape)
    out, tangent = mg.jvp(f, (X,), (V,))
    J = mg.jacobian(f)(X)
    check(out, f(mg.tensor(X)).numpy(), "jvp primal output")
    check(tangent, dF(X, V), "jvp vs closed form")
    check(tangent, np.tensordot(J, V, axes=V.ndim), "jvp vs J V")


@pytest.mark.parametrize("name", list(JVP_VJP_CASES))
def test_vjp_is_cotangent_times_jacobian(name):
    """vjp(f, X)[1](C) = (C J,) with (C J)_kl = sum_ij C_ij J_ijkl (= the closed-form adjoint)"""
    f, shape, _, adj = JVP_VJP_CASES[name]
    rng = np.random.default_rng(241)
    X = _input(rng, shape)
    out, vjp_fun = mg.vjp(f, X)
    C = rng.standard_normal(np.shape(out))
    cts = vjp_fun(C)
    assert isinstance(cts, tuple) and len(cts) == 1
    J = mg.jacobian(f)(X)
    check(cts[0], adj(X, C), "vjp vs closed form")
    check(cts[0], np.tensordot(C, J, axes=C.ndim), "vjp vs C J")


def test_grad_of_a_function_using_jvp_inside():
    """d/dx sum(jvp(sin, (x,), (v,))[1]) = d/dx sum(cos(x) v) = -sin(x) v (jvp on Tensors nests)"""
    rng = np.random.default_rng(242)
    x, v = rng.standard_normal(5), rng.standard_normal(5)

    def f(z):
        _, tangent = mg.jvp(mg.sin, (z,), (v,))
        assert isinstance(tangent, mg.Tensor), "jvp with Tensor primals must return Tensors"
        return mg.sum(tangent)

    check(mg.grad(f)(x), -np.sin(x) * v, "grad of a jvp")


# ---- float32 ----


def test_float32_grad_det():
    """float32: d det(X)/dX = det(X) X^-T, result float32"""
    rng = np.random.default_rng(250)
    X = well_conditioned(rng, 4, np.float32)
    X64 = X.astype(np.float64)
    assert mg.det(X).dtype == np.float32
    g = mg.grad(mg.det)(X)
    check(g, np.linalg.det(X64) * np.linalg.inv(X64).T, "float32 d det/dX", RTOL32, ATOL32, np.float32)


def test_float32_grad_inv():
    """float32: d <W, X^-1>/dX = -X^-T W X^-T, result float32"""
    rng = np.random.default_rng(251)
    X = well_conditioned(rng, 4, np.float32)
    W = rng.standard_normal((4, 4)).astype(np.float32)  # float32, so nothing promotes to float64
    XiT = np.linalg.inv(X.astype(np.float64)).T
    assert mg.inv(X).dtype == np.float32
    g = mg.grad(lambda Y: mg.sum(mg.inv(Y) * W))(X)
    check(g, -XiT @ W.astype(np.float64) @ XiT, "float32 d <W, X^-1>/dX", RTOL32, ATOL32, np.float32)


def test_float32_grad_solve():
    """float32: d c^T solve(A, b)/db = solve(A^T, c), d/dA = -solve(A^T, c) solve(A, b)^T, results float32"""
    rng = np.random.default_rng(252)
    A = well_conditioned(rng, 4, np.float32)
    b, c = rng.standard_normal(4).astype(np.float32), rng.standard_normal(4).astype(np.float32)
    A64, b64, c64 = A.astype(np.float64), b.astype(np.float64), c.astype(np.float64)
    assert mg.solve(A, b).dtype == np.float32
    gA, gb = mg.grad(lambda M, r: mg.sum(c * mg.solve(M, r)), argnums=(0, 1))(A, b)
    lam = np.linalg.solve(A64.T, c64)
    check(gb, lam, "float32 d/db", RTOL32, ATOL32, np.float32)
    check(gA, -np.outer(lam, np.linalg.solve(A64, b64)), "float32 d/dA", RTOL32, ATOL32, np.float32)


@pytest.mark.parametrize("axis", [None, 1])
def test_float32_grad_logsumexp(axis):
    """float32: d sum(logsumexp(X, axis))/dX = softmax(X, axis), result float32 (a few roundings: ~1e-7)"""
    rng = np.random.default_rng(253)
    X = rng.standard_normal((3, 4)).astype(np.float32)
    assert mg.logsumexp(X, axis=axis).dtype == np.float32
    g = mg.grad(lambda Y: mg.sum(mg.logsumexp(Y, axis=axis)))(X)
    check(g, softmax(X.astype(np.float64), axis), "float32 softmax", RTOL32, ATOL32, np.float32)
