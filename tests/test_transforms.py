"""jacobian, hessian, vjp and jvp: modes, shapes, nesting, and the shared factorization."""

from __future__ import annotations

import numpy as np
import pytest

import matgrad as mg

rng = np.random.default_rng(5)


def wellcond(n):
    return (n + 1) * np.eye(n) + rng.uniform(-1, 1, (n, n))


def test_det_inv_logdet_solve_and_their_vjps_share_one_lu():
    """One LU per matrix node: forward and backward of det, logdet, slogdet, inv and solve."""
    X = mg.tensor(wellcond(5), requires_grad=True)
    b = rng.standard_normal(5)
    before = mg._core._lu_count()
    y = mg.det(X) + mg.logdet(X) + mg.slogdet(X)[1] + mg.sum(mg.inv(X)) + mg.sum(mg.solve(X, b))
    y.backward()
    assert mg._core._lu_count() - before == 1
    # a new node (even of the same values) factorizes again
    mg.det(mg.tensor(np.asarray(X)))
    assert mg._core._lu_count() - before == 2


def test_value_and_grad_of_w4_factorizes_once():
    X, a, b = wellcond(6), rng.standard_normal(6), rng.standard_normal(6)

    def g(X):
        Xi = mg.inv(X)
        return mg.logdet(X) + mg.trace(Xi) + a @ Xi @ b

    before = mg._core._lu_count()
    mg.value_and_grad(g)(X)
    assert mg._core._lu_count() - before == 1


def test_factor_of_a_mapped_constant_follows_the_callers_array():
    """A constant maps the caller's array: the cached LU must not outlive a change to it."""
    A = wellcond(3)
    t = mg.tensor(A)
    np.testing.assert_allclose(mg.inv(t).numpy(), np.linalg.inv(A), rtol=1e-13)
    A[0, 0] += 1.0
    np.testing.assert_allclose(mg.inv(t).numpy(), np.linalg.inv(A), rtol=1e-13)


@pytest.mark.parametrize("m, n", [(5, 2), (2, 5), (3, 3), (1, 4), (4, 1)])
def test_jacobian_reverse_and_forward_sweeps_agree_with_the_closed_form(m, n):
    """J of y = tanh(A x) w.r.t. x: diag(1 - y^2) A (forward when n < m, reverse otherwise)."""
    A, x = rng.standard_normal((m, n)), rng.standard_normal(n)
    J = mg.jacobian(lambda x: mg.tanh(A @ x))(x)
    y = np.tanh(A @ x)
    np.testing.assert_allclose(J, (1 - y**2)[:, None] * A, rtol=1e-13, atol=1e-15)
    # the Tensor (graph) path: one sweep per output row, same numbers
    Jt = mg.jacobian(lambda x: mg.tanh(A @ x))(mg.tensor(x))
    np.testing.assert_allclose(np.asarray(Jt), J, rtol=1e-14, atol=1e-16)


def test_jacobian_with_several_argnums_and_float32():
    A = rng.standard_normal((3, 4)).astype(np.float32)
    x = rng.standard_normal(4).astype(np.float32)
    JA, Jx = mg.jacobian(lambda A, x: A @ x, argnums=(0, 1))(A, x)
    assert JA.shape == (3, 3, 4) and Jx.shape == (3, 4)
    assert JA.dtype == np.float32 and Jx.dtype == np.float32
    np.testing.assert_array_equal(Jx, A)
    np.testing.assert_array_equal(JA, np.einsum("ik,l->ikl", np.eye(3, dtype=np.float32), x))


def test_jacobian_of_a_constant_function_is_zero():
    J = mg.jacobian(lambda x: mg.tensor(np.ones((2, 2))))(np.ones(3))
    np.testing.assert_array_equal(J, np.zeros((2, 2, 3)))


def test_tensor_results_of_rank_above_two_are_matricised():
    """Tensors in, Tensors out: (f.size, x.size) when the full rank exceeds 2."""
    X = wellcond(3)
    J = mg.jacobian(mg.inv)(mg.tensor(X))
    assert isinstance(J, mg.Tensor) and J.shape == (9, 9)
    Xi = np.linalg.inv(X)
    np.testing.assert_allclose(
        np.asarray(J), -np.einsum("ik,lj->ijkl", Xi, Xi).reshape(9, 9), rtol=1e-12, atol=1e-15
    )
    v = mg.jacobian(lambda x: mg.sum(mg.sin(x)))(mg.tensor(np.ones(4)))
    assert isinstance(v, mg.Tensor) and v.shape == (4,)


def test_nested_jacobian_of_grad_is_the_hessian_and_third_order_works():
    A = rng.standard_normal((4, 4))
    x = rng.standard_normal(4)

    def f(x):
        return 0.5 * mg.quad_form(x, A) + mg.sum(mg.sin(x))

    H = mg.hessian(f)(x)
    np.testing.assert_allclose(H, 0.5 * (A + A.T) - np.diag(np.sin(x)), rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(mg.jacobian(mg.grad(f))(x), H, rtol=1e-13, atol=1e-15)
    # d/dx tr(H(x)) = -cos(x): a gradient through a hessian
    g = mg.grad(lambda x: mg.trace(mg.hessian(f)(x)))(x)
    np.testing.assert_allclose(g, -np.cos(x), rtol=1e-13, atol=1e-15)


def test_hessian_blocks_for_several_argnums():
    def f(x, y):
        return mg.sum(x * x * y)

    x, y = rng.standard_normal(3), rng.standard_normal(3)
    (hxx, hxy), (hyx, hyy) = mg.hessian(f, argnums=(0, 1))(x, y)
    np.testing.assert_allclose(hxx, np.diag(2 * y), rtol=1e-15)
    np.testing.assert_allclose(hxy, np.diag(2 * x), rtol=1e-15)
    np.testing.assert_allclose(hyx, np.diag(2 * x), rtol=1e-15)
    np.testing.assert_array_equal(hyy, np.zeros((3, 3)))


def test_jvp_and_vjp_agree_with_the_jacobian():
    B = rng.standard_normal((4, 3))
    V, C = rng.standard_normal((4, 3)), rng.standard_normal((3, 3))
    J = mg.jacobian(lambda B: B.T @ B)(B).reshape(9, 12)
    out, tangent = mg.jvp(lambda B: B.T @ B, (B,), (V,))
    np.testing.assert_allclose(out, B.T @ B, rtol=1e-15)
    np.testing.assert_allclose(tangent, (J @ V.reshape(-1)).reshape(3, 3), rtol=1e-13, atol=1e-15)
    _out2, vjp_fun = mg.vjp(lambda B: B.T @ B, B)
    (ct,) = vjp_fun(C)
    np.testing.assert_allclose(ct, (C.reshape(-1) @ J).reshape(4, 3), rtol=1e-13, atol=1e-15)
    (ct2,) = vjp_fun(2 * C)  # the graph is reused
    np.testing.assert_allclose(ct2, 2 * ct, rtol=1e-15)


def test_results_are_numpy_for_numpy_inputs_and_tensors_for_tensors():
    x = np.ones(3)
    out, t = mg.jvp(mg.sin, (x,), (x,))
    assert type(out) is np.ndarray and type(t) is np.ndarray and t.flags.writeable
    out, t = mg.jvp(mg.sin, (mg.tensor(x),), (x,))
    assert isinstance(out, mg.Tensor) and isinstance(t, mg.Tensor)
    out, fun = mg.vjp(mg.sin, x)
    assert type(out) is np.ndarray and type(fun(x)[0]) is np.ndarray


def test_jvp_of_a_grad_is_a_hessian_vector_product():
    A = rng.standard_normal((4, 4))
    x, v = rng.standard_normal(4), rng.standard_normal(4)

    def f(x):
        return 0.5 * mg.quad_form(x, A) + mg.logsumexp(x)

    _, hv = mg.jvp(mg.grad(f), (x,), (v,))
    np.testing.assert_allclose(hv, mg.hessian(f)(x) @ v, rtol=1e-13, atol=1e-15)
    # with a Tensor primal the tangent is a graph: d/dx (grad f(x) . v) = 0.5 (A + A^T) v for f = 0.5 x^T A x
    g = mg.grad(lambda x: mg.jvp(lambda y: 0.5 * mg.quad_form(y, A), (x,), (v,))[1])(x)
    np.testing.assert_allclose(g, 0.5 * (A + A.T) @ v, rtol=1e-13, atol=1e-15)


def test_a_batch_of_seeds_makes_one_matmul_call_not_one_per_seed():
    """Note [batched sweeps]: the 12 reverse sweeps of d(A B)/dB run each matmul VJP once."""
    A, B = rng.standard_normal((3, 4)), rng.standard_normal((4, 4))
    before = mg._core._batch_stats()
    J = mg.jacobian(lambda B: A @ B)(B)
    batched, per_member = (a - b for a, b in zip(mg._core._batch_stats(), before))
    assert per_member == 0 and batched >= 1
    np.testing.assert_array_equal(J, np.einsum("ik,jl->ijkl", A, np.eye(4)))
