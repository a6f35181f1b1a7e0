"""The functional transforms: grad and value_and_grad (argnums, NumPy or Tensor results,
inputs the output does not reach), jacobian, hessian, vjp and jvp (modes, shapes, nesting,
batched sweeps), higher order (grad(grad(f)), backward(create_graph=True)) on composite
functions, mg.check_grad, and no_grad. Per-op second derivatives are in test_ops_registry.py,
closed-form Jacobians and Hessians in test_matrix_calculus.py."""

from __future__ import annotations

import re

import numpy as np
import pytest
from gradcheck import F64, TOLS, assert_close, directional_derivative, numeric_gradient
from test_ops_registry import CASES

import matgrad as mg

TOL = TOLS[F64]


def wellcond(rng: np.random.Generator, n: int) -> np.ndarray:
    """(n + 1) I + U(-1, 1): diagonally dominant, so well conditioned whatever rng draws."""
    return (n + 1) * np.eye(n) + rng.uniform(-1, 1, (n, n))


# ---- grad and value_and_grad ----


def test_transforms_with_tensor_arguments_return_tensors():
    x = mg.tensor(np.array([1.0, 2.0]))
    g = mg.grad(lambda z: mg.sum(z * z))(x)
    assert isinstance(g, mg.Tensor)
    np.testing.assert_array_equal(g.numpy(), [2.0, 4.0])
    v, g = mg.value_and_grad(lambda z: mg.sum(z * z))(x)
    assert isinstance(v, mg.Tensor) and isinstance(g, mg.Tensor)
    # one Tensor among the positional arguments is enough
    g = mg.grad(lambda z, w: mg.sum(z * w), argnums=0)(np.ones(2), x)
    assert isinstance(g, mg.Tensor)


def test_argnums():
    def f(x, y, z):
        return mg.sum(x * y * y) + z * 0.0

    x, y, z = np.array([1.0, 2.0]), np.array([3.0, 4.0]), 5.0
    g = mg.grad(f)(x, y, z)
    assert isinstance(g, np.ndarray)
    np.testing.assert_array_equal(g, y * y)
    g = mg.grad(f, argnums=1)(x, y, z)
    np.testing.assert_array_equal(g, 2 * x * y)
    gs = mg.grad(f, argnums=(0, 1))(x, y, z)
    assert isinstance(gs, tuple) and len(gs) == 2
    np.testing.assert_array_equal(gs[0], y * y)
    np.testing.assert_array_equal(gs[1], 2 * x * y)
    gs = mg.grad(f, argnums=(1,))(x, y, z)
    assert isinstance(gs, tuple) and len(gs) == 1
    v, gs = mg.value_and_grad(f, argnums=(2, 0))(x, y, z)
    assert v == np.sum(x * y * y)
    assert gs[0].shape == () and gs[0] == 0.0
    np.testing.assert_array_equal(gs[1], y * y)


def test_repeated_argnums_give_the_full_gradient_each_time():
    # Regression: with an index repeated in argnums not every entry got the full gradient (the
    # index now shares one node); the entries are arrays of their own.
    g0, g1 = mg.grad(lambda x: mg.sum(x * x), argnums=(0, 0))(np.array([1.0, 2.0]))
    np.testing.assert_array_equal(g0, [2.0, 4.0])
    np.testing.assert_array_equal(g1, [2.0, 4.0])
    assert not np.shares_memory(g0, g1)


def test_plain_arguments_reach_f_as_tensors():
    # Regression: plain arrays and numbers among the arguments reached f unconverted; f sees a
    # Tensor for every argument, differentiated or not.
    seen = []

    def f(x, y, k):
        seen.append((type(x), type(y), type(k)))
        return mg.sum(x * y.T) * k

    g = mg.grad(f)(np.ones((2, 2)), np.eye(2), 2.0)
    np.testing.assert_array_equal(g, 2 * np.eye(2))
    assert seen == [(mg.Tensor, mg.Tensor, mg.Tensor)]


def test_input_the_output_does_not_depend_on_gets_zeros():
    x, y = np.array([1.0, 2.0]), np.ones((2, 3), dtype=np.float32)
    gx, gy = mg.grad(lambda a, b: mg.sum(a * a), argnums=(0, 1))(x, y)
    np.testing.assert_array_equal(gx, [2.0, 4.0])
    assert gy.shape == (2, 3) and gy.dtype == np.float32
    np.testing.assert_array_equal(gy, np.zeros((2, 3)))
    # output independent of every input (a constant)
    g = mg.grad(lambda a: mg.tensor(3.0))(x)
    assert g.shape == (2,)
    np.testing.assert_array_equal(g, [0.0, 0.0])
    g = mg.grad(lambda a: 3.0)(2.0)
    assert g.shape == () and g == 0.0
    # same with Tensors in
    gx, gy = mg.grad(lambda a, b: mg.sum(a * a), argnums=(0, 1))(mg.tensor(x), mg.tensor(y))
    np.testing.assert_array_equal(gy.numpy(), np.zeros((2, 3)))


def test_tensor_inputs_requiring_grad_connect_transforms_to_the_graph():
    x = mg.tensor(np.array([1.0, 2.0]), requires_grad=True)
    g = mg.grad(lambda z: mg.sum(z**3.0))(x)  # 3 x^2, a Tensor in x's graph
    assert isinstance(g, mg.Tensor) and g.requires_grad
    mg.sum(g).backward()
    np.testing.assert_allclose(np.asarray(x.grad), [6.0, 12.0], rtol=1e-15)


# ---- jacobian, hessian, vjp, jvp ----


@pytest.mark.parametrize("m, n", [(5, 2), (2, 5), (3, 3), (1, 4), (4, 1)])
def test_jacobian_reverse_and_forward_sweeps_agree_with_the_closed_form(m, n):
    """J of y = tanh(A x) w.r.t. x: diag(1 - y^2) A (forward when n < m, reverse otherwise)."""
    rng = np.random.default_rng(61)
    A, x = rng.standard_normal((m, n)), rng.standard_normal(n)
    J = mg.jacobian(lambda x: mg.tanh(A @ x))(x)
    y = np.tanh(A @ x)
    np.testing.assert_allclose(J, (1 - y**2)[:, None] * A, rtol=1e-13, atol=1e-15)
    # the Tensor (graph) path: one sweep per output row, same numbers
    Jt = mg.jacobian(lambda x: mg.tanh(A @ x))(mg.tensor(x))
    np.testing.assert_allclose(np.asarray(Jt), J, rtol=1e-14, atol=1e-16)


def test_jacobian_with_several_argnums_and_float32():
    rng = np.random.default_rng(62)
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
    rng = np.random.default_rng(63)
    X = wellcond(rng, 3)
    J = mg.jacobian(mg.inv)(mg.tensor(X))
    assert isinstance(J, mg.Tensor) and J.shape == (9, 9)
    Xi = np.linalg.inv(X)
    np.testing.assert_allclose(
        np.asarray(J), -np.einsum("ik,lj->ijkl", Xi, Xi).reshape(9, 9), rtol=1e-12, atol=1e-15
    )
    v = mg.jacobian(lambda x: mg.sum(mg.sin(x)))(mg.tensor(np.ones(4)))
    assert isinstance(v, mg.Tensor) and v.shape == (4,)


def test_nested_jacobian_of_grad_is_the_hessian_and_third_order_works():
    rng = np.random.default_rng(64)
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
    rng = np.random.default_rng(65)

    def f(x, y):
        return mg.sum(x * x * y)

    x, y = rng.standard_normal(3), rng.standard_normal(3)
    (hxx, hxy), (hyx, hyy) = mg.hessian(f, argnums=(0, 1))(x, y)
    np.testing.assert_allclose(hxx, np.diag(2 * y), rtol=1e-15)
    np.testing.assert_allclose(hxy, np.diag(2 * x), rtol=1e-15)
    np.testing.assert_allclose(hyx, np.diag(2 * x), rtol=1e-15)
    np.testing.assert_array_equal(hyy, np.zeros((3, 3)))


def test_jvp_and_vjp_agree_with_the_jacobian():
    rng = np.random.default_rng(66)
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
    rng = np.random.default_rng(67)
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
    rng = np.random.default_rng(68)
    A, B = rng.standard_normal((3, 4)), rng.standard_normal((4, 4))
    before = mg._core._batch_stats()
    J = mg.jacobian(lambda B: A @ B)(B)
    batched, per_member = (a - b for a, b in zip(mg._core._batch_stats(), before))
    assert per_member == 0 and batched >= 1
    np.testing.assert_array_equal(J, np.einsum("ik,jl->ijkl", A, np.eye(4)))


# ---- higher order: nesting on composite functions, against closed forms ----


def test_mixed_partials_closed_form():
    rng = np.random.default_rng(0)
    x, y = rng.uniform(0.5, 1.5, 4), rng.uniform(0.5, 1.5, 4)

    def f(a, b):
        return mg.sum(a**2 * b**3)

    # d/dy sum_i (df/dx_i) = d/dy sum 2 x y^3 = 6 x y^2;  d/dx of the same = 2 y^3
    def gx_sum(a, b):
        return mg.sum(mg.grad(f, argnums=0)(a, b))

    dxy = mg.grad(gx_sum, argnums=(0, 1))(x, y)
    assert isinstance(dxy, tuple) and all(isinstance(d, np.ndarray) for d in dxy)
    assert_close(dxy[0], 2 * y**3, TOL.grad_rtol, TOL.grad_atol, "d/dx sum(df/dx)")
    assert_close(dxy[1], 6 * x * y**2, TOL.grad_rtol, TOL.grad_atol, "d/dy sum(df/dx)")


def test_hessian_of_tanh_layer_closed_form():
    """H of f(x) = sum(tanh(W x)) is W^T diag(-2 t (1 - t^2)) W, t = tanh(W x), row by row."""
    rng = np.random.default_rng(1)
    W = rng.standard_normal((5, 4))
    x = rng.standard_normal(4) * 0.5
    t = np.tanh(W @ x)
    want = W.T @ np.diag(-2 * t * (1 - t**2)) @ W

    def f(z):
        return mg.sum(mg.tanh(W @ z))

    rows = []
    for i in range(4):
        e = np.eye(4)[i]
        rows.append(mg.grad(lambda z: mg.sum(mg.grad(f)(z) * e))(x))
    assert_close(np.array(rows), want, TOL.grad_rtol, TOL.grad_atol, "Hessian")
    # the same Hessian-vector product through backward(create_graph=True)
    v = rng.standard_normal(4)
    xt = mg.tensor(x, requires_grad=True)
    f(xt).backward(create_graph=True)
    g = xt.grad
    assert g.requires_grad
    xt.grad = None
    mg.sum(g * v).backward()
    assert_close(np.asarray(xt.grad), want @ v, TOL.grad_rtol, TOL.grad_atol, "H v")


def test_matrix_function_second_order_against_differences():
    """f(X) = sum(sigmoid(X @ X^T) * X @ B): Hessian-vector product vs differences of the gradient."""
    rng = np.random.default_rng(2)
    X = rng.standard_normal((3, 3)) * 0.5
    B = rng.standard_normal((3, 3))
    V = rng.uniform(-1, 1, (3, 3))

    def f(Z):
        return mg.sum(mg.sigmoid(Z @ Z.T) * (Z @ B))

    want = directional_derivative(lambda xs: mg.grad(f)(xs[0]), [X], [V])
    got = mg.grad(lambda Z: mg.sum(mg.grad(f)(Z) * V))(X)
    # <., V> of both sides: the HVP is symmetric, d/de grad(X + e V) = H V
    assert_close(got, want, TOL.grad_rtol, TOL.grad_atol, "H V")


def test_nested_results_follow_input_kind():
    def f(x):
        return x**4.0

    g2 = mg.grad(mg.grad(f))(1.5)
    assert type(g2) is np.ndarray and g2.shape == () and g2 == pytest.approx(12 * 1.5**2, rel=1e-15)
    g2t = mg.grad(mg.grad(f))(mg.tensor(1.5))
    assert isinstance(g2t, mg.Tensor)
    g3 = mg.grad(mg.grad(mg.grad(f)))(1.5)
    assert g3 == pytest.approx(24 * 1.5, rel=1e-14)
    g4 = mg.grad(mg.grad(mg.grad(mg.grad(f))))(1.5)
    assert g4 == pytest.approx(24.0, rel=1e-14)
    v, g = mg.value_and_grad(mg.grad(f))(1.5)
    assert v == pytest.approx(4 * 1.5**3, rel=1e-15) and g == pytest.approx(12 * 1.5**2, rel=1e-15)


def test_create_graph_gradients_accumulate_and_stay_differentiable():
    x = mg.tensor(np.array([0.5, 1.5]), requires_grad=True)
    mg.sum(x**3.0).backward(create_graph=True)
    mg.sum(x**3.0).backward(create_graph=True)
    g = x.grad  # 2 * 3 x^2
    assert_close(np.asarray(g), 6 * np.array([0.5, 1.5]) ** 2, TOL.grad_rtol, TOL.grad_atol, "accumulated")
    assert g.requires_grad
    x.grad = None
    mg.sum(g).backward()
    assert_close(np.asarray(x.grad), 12 * np.array([0.5, 1.5]), TOL.grad_rtol, TOL.grad_atol, "second")


def test_first_order_backward_gives_constant_gradients():
    x = mg.tensor(np.array([0.5, 1.5]), requires_grad=True)
    mg.sum(x**3.0).backward()
    assert not x.grad.requires_grad


def test_input_not_reached_at_second_order_gets_zeros():
    # d/dx of grad_x(sum(x * y)) = d/dx y = 0; and grad_y of it = ones.
    def inner(x, y):
        return mg.sum(mg.grad(lambda a, b: mg.sum(a * b))(x, y))

    gx, gy = mg.grad(inner, argnums=(0, 1))(np.array([1.0, 2.0]), np.array([3.0, 4.0]))
    np.testing.assert_array_equal(gx, [0.0, 0.0])
    np.testing.assert_array_equal(gy, [1.0, 1.0])


# ---- check_grad ----


def test_check_grad_returns_largest_error():
    rng = np.random.default_rng(3)
    x = rng.uniform(-1, 1, (2, 3))
    w = rng.uniform(-1, 1, 3)

    def f(a, b):
        return mg.sum(mg.sin(a) * b)

    err = mg.check_grad(f, x, w)
    assert isinstance(err, float) and 0.0 <= err < 1e-8
    # the largest |analytic - central difference| over both arguments, computed independently
    eps = 1e-6

    def ref(a, b):
        return float(np.sum(np.sin(a) * b))

    worst = 0.0
    for k, (arg, exact) in enumerate([(x, np.cos(x) * w), (w, np.sin(x).sum(axis=0))]):
        for i in range(arg.size):
            d = np.zeros(arg.size)
            d[i] = eps
            d = d.reshape(arg.shape)
            args_p = [x + d, w] if k == 0 else [x, w + d]
            args_m = [x - d, w] if k == 0 else [x, w - d]
            num = (ref(*args_p) - ref(*args_m)) / (2 * eps)
            worst = max(worst, abs(exact.reshape(-1)[i] - num))
    assert err == pytest.approx(worst, abs=1e-9)


def test_check_grad_accepts_python_scalars_and_lists():
    assert mg.check_grad(lambda x: x * x * x, 1.3) < 1e-7
    assert mg.check_grad(lambda x: mg.sum(mg.exp(x)), [0.1, 0.2]) < 1e-7


@pytest.mark.parametrize("which", [0, 1])
def test_check_grad_names_argument_and_index_of_a_wrong_gradient(which):
    # The gradient w.r.t. argument `which` is wrong: one factor is detached (treated as data).
    x = np.array([[0.0, 1.5, 2.0], [1.0, 0.5, 3.0]])  # x[0, 0] == 0: element (0, 0) agrees
    y = np.array([[0.0, 0.7, 1.1], [0.9, 1.3, 0.4]])

    def f(a, b):
        if which == 0:
            return mg.sum(a * a.detach() * b * b)  # d/da is a b^2 instead of 2 a b^2
        return mg.sum(a * a * b * b.detach())  # d/db is a^2 b instead of 2 a^2 b

    with pytest.raises(AssertionError) as info:
        mg.check_grad(f, x, y)
    msg = str(info.value)
    assert f"argument {which}" in msg, msg
    assert re.search(r"index \(0, 1\)", msg), msg


def test_check_grad_vector_index():
    with pytest.raises(AssertionError) as info:
        mg.check_grad(lambda a: mg.sum(a * a.detach()), np.array([0.0, 2.0]))
    assert "argument 0" in str(info.value) and "(1,)" in str(info.value)


def test_check_grad_honours_rtol_atol_eps():
    x = np.array([0.5, 1.0, 2.0])

    # relative error 5e-5: fails at rtol=1e-5, passes at rtol=1e-3
    def f(a):
        return mg.sum(a * a) + 1e-4 * mg.sum(a * a.detach())

    with pytest.raises(AssertionError):
        mg.check_grad(f, x)
    assert mg.check_grad(f, x, rtol=1e-3) < 1e-3

    # absolute error 1e-7 |x| on a tiny gradient: fails at atol=1e-8, passes at atol=1e-6
    def g(a):
        return 1e-7 * mg.sum(a * a.detach())

    with pytest.raises(AssertionError):
        mg.check_grad(g, x)
    assert mg.check_grad(g, x, atol=1e-6) < 1e-6

    # a kink 1e-7 away: the difference straddles it with eps=1e-6, not with eps=1e-9
    def h(a):
        return mg.sum(mg.abs(a))

    with pytest.raises(AssertionError):
        mg.check_grad(h, np.array([1e-7]))
    assert mg.check_grad(h, np.array([1e-7]), eps=1e-9) < 1e-5


def _wrong_by(f, rel):
    """f with a gradient off by the factor (1 + rel) (rel = -2: the sign flipped); same value."""
    return lambda t: f(t) + rel * (f(t) - f(t.detach()))


def test_check_grad_allows_for_the_rounding_of_a_large_reduction():
    """sum(sin(x)) over 200000 elements: f ~ 9e4, so the central difference carries a rounding
    error ~ u |f| / eps ~ 1e-5, beyond atol + rtol |n|. check_grad(sum(sin), x) failed at
    element 71 (error 6.09e-06, allowed 6.01e-06); here the first 100 elements of that same
    reduction (same values, same summation). A gradient off by 1e-3 or of the wrong sign fails."""
    x = np.random.default_rng(0).random(200000)
    head, rest = x[:100], x[100:]

    def f(t):
        return mg.sum(mg.sin(mg.concatenate([t, rest])))

    assert mg.check_grad(f, head) < 2e-5
    for rel in (1e-3, -2.0):
        with pytest.raises(AssertionError, match=r"^check_grad: argument 0 at index \(0,\)"):
            mg.check_grad(_wrong_by(f, rel), head)


@pytest.mark.parametrize("x", [2.0**70, -(2.0**70), 1e8, np.array([2.0**70, -3.0, 1e-3, 2.0**-40])])
def test_check_grad_steps_relative_to_x(x):
    """At x = 2**70, x + 1e-6 == x: the central difference was 0. The step eps * max(1, |x|)
    keeps x +- h apart at any magnitude; wrong gradients still fail there."""

    def f(t):
        return mg.sum(t * t * t) + mg.sum(mg.exp(t / 2.0**70))

    assert mg.check_grad(f, x) <= 1e-5 * np.max(3 * np.square(x))
    for rel in (1e-3, -2.0):
        with pytest.raises(AssertionError, match=r"^check_grad: argument 0 at index"):
            mg.check_grad(_wrong_by(f, rel), x)


@pytest.mark.parametrize("x", [1e4, -3e5, 1e6])
def test_check_grad_allows_for_the_truncation_of_a_relative_step(x):
    """sin at 1e4 with the step 1e-6 |x| = 0.01: the h^2 / 6 truncation error (1.7e-5 relative)
    is above rtol; the Richardson extrapolation (and, where even that is too coarse, the
    fixed step eps) agrees. Wrong gradients still fail."""
    assert mg.check_grad(mg.sin, x) < 1e-5
    for rel in (1e-3, -2.0):
        with pytest.raises(AssertionError, match=r"^check_grad: argument 0 at index \(\)"):
            mg.check_grad(_wrong_by(mg.sin, rel), x)


def test_check_grad_refuses_a_step_below_the_resolution_and_bad_tolerances():
    with pytest.raises(ValueError, match=r"^check_grad: eps=1e-20 is below float64's resolution"):
        mg.check_grad(mg.sin, 1.0, eps=1e-20)
    for kw in ({"eps": 0.0}, {"eps": -1e-6}, {"eps": np.nan}, {"rtol": -1.0}, {"atol": -1.0}):
        with pytest.raises(ValueError, match=r"^check_grad: eps must be positive"):
            mg.check_grad(mg.sin, 1.0, **kw)


NOT_NUMBERS = [
    pytest.param(
        np.ones(3, complex),
        r"complex input is not supported \(dtype complex128, shape \(3,\)\)",
        id="complex",
    ),
    pytest.param(
        np.array(["1", "2"]), r"expected numbers, got an array of dtype <U1 with shape \(2,\)", id="str"
    ),
    pytest.param(
        np.array(["2020-01-01"], "datetime64[D]"),
        r"expected numbers, got an array of dtype datetime64\[D\] with shape \(1,\)",
        id="datetime64",
    ),
    pytest.param(
        np.array([1.0], object),
        r"expected numbers, got an array of dtype object with shape \(1,\)",
        id="object",
    ),
    pytest.param(None, r"expected a number, array or Tensor, got NoneType", id="None"),
    pytest.param(2j, r"complex input is not supported \(dtype complex128, shape \(\)\)", id="complex-scalar"),
    pytest.param("1.5", r"expected a number, array or Tensor, got str", id="str-scalar"),
    pytest.param([1.0, [2.0, 3.0]], r"cannot convert list to an array", id="ragged"),
]


@pytest.mark.parametrize("bad, msg", NOT_NUMBERS)
def test_check_grad_refuses_what_is_not_real_numbers(bad, msg):
    """Complex (imaginary part dropped), numeric strings (parsed) and datetimes (day counts)
    used to be converted to float64 and checked; None gave 'analytic 1.0 vs central difference
    nan'. The contract is the engine's: TypeError naming the function, the dtype and the shape."""
    with pytest.raises(TypeError, match=r"^check_grad: argument 0: " + msg):
        mg.check_grad(lambda t: mg.sum(t), bad)
    with pytest.raises(TypeError, match=r"^check_grad: argument 1: " + msg):
        mg.check_grad(lambda s, t: mg.sum(s) + mg.sum(t), np.ones(2), bad)


def test_check_grad_takes_ints_bools_and_tensors_and_refuses_non_finite_values():
    assert mg.check_grad(lambda t: mg.sum(t * t), np.array([1, 2])) < 1e-6
    assert mg.check_grad(lambda t: mg.sum(t * t), np.array([True, False])) < 1e-6
    assert mg.check_grad(lambda t: mg.sum(t * t), mg.tensor(np.array([0.5, 2.0]), requires_grad=True)) < 1e-6
    for bad in (np.nan, np.array([1.0, np.inf])):
        with pytest.raises(
            ValueError, match=r"^check_grad: argument 0 \(shape \S*\) holds non-finite values"
        ):
            mg.check_grad(lambda t: mg.sum(t), bad)


CHECKABLE = [c for c in CASES if c.kwargs is None]


@pytest.mark.parametrize("case", CHECKABLE, ids=[c.name for c in CHECKABLE])
def test_check_grad_passes_on_every_registry_op(case):
    """check_grad on <c, op(args)> for every op, at a fixed in-domain point."""
    rng = np.random.default_rng(11)
    shapes = [(3, 4), (4,)] if case.arity == 2 else [(2, 3)]
    if case.name in ("matmul", "x@y", "a@x", "x@a", "matmul(x,a)"):
        shapes = [(2, 4), (4, 3)]
    if "axis=" in case.name and case.arity == 1:
        shapes = [(2, 3)]
    if case.fixed is not None:
        shapes = case.fixed[0]
    elif case.op == "index":
        shapes = [(5,)] if case.name in ("x[-1]", "x[1:]", "x[::-2]") else [(3, 4)]
    elif case.op == "stack":
        shapes = [(3,), (3,)]
    args = [dom(rng, s) for dom, s in zip(case.domains, shapes)]
    diff = case.diff or (True,) * case.arity
    out = case.ref(*args)
    c = rng.uniform(-1, 1, np.shape(out))
    idx = [i for i, d in enumerate(diff) if d]

    def f(*dargs):
        full = list(args)
        for i, v in zip(idx, dargs):
            full[i] = v
        return mg.sum(case.fn(*full) * c)

    err = mg.check_grad(f, *[args[i] for i in idx])
    assert 0.0 <= err < 1e-5

    # and it agrees with this suite's own finite differences
    def ref_scalar(dxs):
        return float(
            np.sum(case.ref(*[dxs[idx.index(i)] if i in idx else a for i, a in enumerate(args)]) * c)
        )

    num = numeric_gradient(ref_scalar, [args[i] for i in idx], range(len(idx)))
    grads = mg.grad(f, argnums=tuple(range(len(idx))))(*[args[i] for i in idx])
    for g, n in zip(grads, num):
        assert_close(g, n, TOL.grad_rtol, TOL.grad_atol, case.name)


# ---- no_grad ----


def test_no_grad_records_nothing():
    x = mg.tensor(np.array([1.0, 2.0]), requires_grad=True)
    assert mg.is_grad_enabled()
    with mg.no_grad():
        assert not mg.is_grad_enabled()
        y = mg.sin(x) * x + 1.0
        assert not y.requires_grad
        with mg.no_grad():
            pass
        assert not mg.is_grad_enabled()
    assert mg.is_grad_enabled()
    np.testing.assert_allclose(y.numpy(), np.sin([1.0, 2.0]) * [1.0, 2.0] + 1.0, rtol=1e-15)
    with pytest.raises(RuntimeError):
        mg.sum(y).backward()
    assert (x * 2.0).requires_grad


def test_no_grad_restores_on_exception_and_as_decorator():
    with pytest.raises(KeyError), mg.no_grad():
        raise KeyError
    assert mg.is_grad_enabled()

    @mg.no_grad()
    def f(x):
        return x * 2.0

    x = mg.tensor(1.0, requires_grad=True)
    assert not f(x).requires_grad
    assert mg.is_grad_enabled()


def test_no_grad_nests_and_decorates_recursive_functions():
    # Regression: no_grad kept a single saved state, so a no_grad object entered twice (nested, or
    # by a recursive decorated function) switched grad mode back on too early; it keeps a stack.
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


def test_transforms_differentiate_inside_no_grad():
    # Regression: inside no_grad the transforms recorded nothing and gave wrong gradients; they
    # differentiate anyway, while plain ops there still record nothing.
    x = np.array([1.0, 2.0])
    with mg.no_grad():
        np.testing.assert_array_equal(mg.grad(lambda t: mg.sum(t * t))(x), 2 * x)
        got = mg.grad(lambda t: mg.sum(t * t))(mg.tensor(x))
        np.testing.assert_array_equal(np.asarray(got), 2 * x)
        assert not (mg.tensor(x, requires_grad=True) * 2.0).requires_grad
    assert mg.is_grad_enabled()
