"""Higher order (grad(grad(f)), backward(create_graph=True)) on composite functions, and
mg.check_grad. Per-op second derivatives are in test_ops_registry.py."""

from __future__ import annotations

import re

import numpy as np
import pytest
from gradcheck import F64, TOLS, assert_close, directional_derivative, numeric_gradient
from test_ops_registry import CASES

import matgrad as mg

TOL = TOLS[F64]


# ---- nesting on composite functions, against closed forms ----


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
