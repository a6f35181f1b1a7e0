"""The one gradient-check helper used for every op in the test suite.

Every check here compares matgrad against an independent reference: a NumPy forward
function (``ref``) and central finite differences computed in float64. Nothing is compared
against matgrad itself, except in :func:`check_create_graph_bitwise`, where the contract *is*
that two algebras running the same kernels give the same bits.

The pieces:

* :data:`TOLS` - one tolerance set per dtype. float32 has its own, looser, set; a float32
  result is never judged with float64 tolerances.
* :func:`directional_derivative` - the single finite-difference stencil (central, fourth
  order: (8 (f(h) - f(-h)) - (f(2h) - f(-2h))) / 12h) every check uses.
* :func:`gradcheck` - value vs the NumPy reference, the gradient of <c, f(x)> element by
  element vs central differences, and the dot-product (VJP) test
  <t, vjp(c)> == d/de <c, f(x + e t)> with random t and c.
* :func:`check_create_graph_bitwise` - the gradient through create_graph=True equals the
  first-order gradient bit for bit.
* :func:`check_second_order` - Hessian-vector products through backward(create_graph=True)
  and through grad(grad(f)) against central differences of the first-order gradient.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Callable

import numpy as np
from hypothesis import strategies as st

import matgrad as mg

F64 = np.dtype(np.float64)
F32 = np.dtype(np.float32)


@dataclasses.dataclass(frozen=True)
class Tol:
    """|got - want| <= atol * scale + rtol * |want|, scale = max(1, max |want|)."""

    value_rtol: float
    value_atol: float
    grad_rtol: float
    grad_atol: float


# float64: values are a few ulp off NumPy at most (different libm/Eigen kernels); gradients
# are compared with a fourth-order central difference whose truncation + rounding error on
# the in-domain inputs used here is below 1e-10 relative, so 1e-7 is tight yet safe.
# float32: eps = 1.2e-7; values within ~100 ulp, gradients (several float32 ops chained,
# compared with a float64 difference quotient) within ~300 ulp.
TOLS = {
    F64: Tol(value_rtol=1e-12, value_atol=1e-12, grad_rtol=1e-7, grad_atol=1e-9),
    F32: Tol(value_rtol=1e-5, value_atol=1e-5, grad_rtol=4e-5, grad_atol=4e-5),
}

# Step of the finite-difference stencil. Inputs are generated so that x +- 2 * FD_STEP * t
# (max |t| <= 1) stays inside the op's smooth domain (away from kinks and poles).
FD_STEP = 1e-3


def assert_close(got, want, rtol: float, atol: float, what: str = "") -> None:
    """Assert |got - want| <= atol * max(1, max|want|) + rtol * |want| elementwise."""
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape, f"{what}: shape {got.shape} != expected {want.shape}"
    scale = max(1.0, float(np.max(np.abs(want)))) if want.size else 1.0
    err = np.abs(got - want)
    allowed = atol * scale + rtol * np.abs(want)
    bad = ~(err <= allowed)
    if np.any(bad):
        idx = tuple(int(i) for i in np.argwhere(bad)[0]) if want.ndim else ()
        raise AssertionError(
            f"{what}: mismatch at index {idx}: got {got[idx]!r}, expected {want[idx]!r} "
            f"(error {err[idx]:.3g}, allowed {allowed[idx]:.3g}; "
            f"{int(bad.sum())} of {bad.size} elements off)\n got: {got!r}\nwant: {want!r}"
        )


def directional_derivative(fun: Callable[[Sequence[np.ndarray]], float], xs, ts, h: float = FD_STEP):
    """d/de fun(xs + e ts) at e = 0 by the fourth-order central stencil, in float64.

    fun may return a scalar (gives a float) or an array (gives the array of derivatives).
    """
    xs = [np.asarray(x, dtype=np.float64) for x in xs]
    ts = [np.asarray(t, dtype=np.float64) for t in ts]

    def at(e: float) -> np.ndarray:
        return np.asarray(fun([x + e * t for x, t in zip(xs, ts)]), dtype=np.float64)

    d = (8.0 * (at(h) - at(-h)) - (at(2 * h) - at(-2 * h))) / (12.0 * h)
    return float(d) if d.ndim == 0 else d


def numeric_gradient(fun: Callable[[Sequence[np.ndarray]], float], xs, which: Sequence[int]):
    """Gradient of scalar fun w.r.t. xs[k] for k in which, one central difference per element."""
    xs = [np.asarray(x, dtype=np.float64) for x in xs]
    grads = []
    for k in which:
        g = np.zeros(xs[k].shape)
        flat = g.reshape(-1)
        for i in range(xs[k].size):
            ts = [np.zeros(x.shape) for x in xs]
            ts[k].reshape(-1)[i] = 1.0
            flat[i] = directional_derivative(fun, xs, ts)
        grads.append(g)
    return grads


def random_like(rng: np.random.Generator, shape) -> np.ndarray:
    """A random direction/cotangent with max |entry| <= 1 (so FD steps stay in domain)."""
    return rng.uniform(-1.0, 1.0, size=shape)


def _call(fn, args, diff, dtype, requires_grad: bool):
    """Run the matgrad side: differentiable args become Tensors, the others stay NumPy."""
    leaves, call = [], []
    for a, d in zip(args, diff):
        a = np.asarray(a).astype(dtype)
        if d:
            t = mg.tensor(a, requires_grad=requires_grad)
            leaves.append(t)
            call.append(t)
        else:
            call.append(a)
    return leaves, fn(*call)


def vjp(fn, args, diff, cot, dtype=F64, create_graph: bool = False):
    """(output, [d<cot, fn(args)>/d arg for each differentiable arg]) via Tensor.backward."""
    leaves, out = _call(fn, args, diff, dtype, requires_grad=True)
    assert isinstance(out, mg.Tensor), f"expected a Tensor, got {type(out).__name__}"
    out.backward(np.asarray(cot, dtype=out.dtype), create_graph=create_graph)
    grads = []
    for leaf in leaves:
        g = leaf.grad
        grads.append(np.zeros(leaf.shape, leaf.dtype) if g is None else g)
    return out, grads


def _ref_scalar(ref, args, diff, cot):
    """The float64 reference of <cot, ref(args)> as a function of the differentiable args."""
    idx = [i for i, d in enumerate(diff) if d]

    def fun(dxs):
        full = [np.asarray(a, dtype=np.float64) for a in args]
        for i, v in zip(idx, dxs):
            full[i] = v
        return np.sum(np.asarray(ref(*full), dtype=np.float64) * cot)

    return fun, idx


def gradcheck(fn, ref, args, diff=None, dtype=F64, rng=None, what: str = "") -> None:
    """Check fn against the NumPy reference ref at args (NumPy arrays), for one dtype.

    1. value: shape, dtype (NumPy's own result dtype on inputs of that dtype, so NEP 50
       promotion is checked too) and numbers within TOLS[dtype].value_*.
    2. gradient: for a random cotangent c, the gradient of <c, f(x)> w.r.t. every
       differentiable argument, element by element, vs central differences (float64) of the
       reference. Gradients must have their input's shape and dtype.
    3. dot-product test: <t, vjp(c)> vs d/de <c, f(x + e t)> for a random direction t.
    """
    dtype = np.dtype(dtype)
    tol = TOLS[dtype]
    rng = np.random.default_rng(0) if rng is None else rng
    diff = tuple(diff) if diff is not None else (True,) * len(args)
    # The inputs as they will be seen in `dtype`; the reference works in float64 on exactly
    # those numbers (so the only error measured is matgrad's).
    args = [np.asarray(a).astype(dtype) for a in args]
    args64 = [a.astype(np.float64) for a in args]

    want = np.asarray(ref(*args64), dtype=np.float64)
    want_dtype = np.asarray(ref(*args)).dtype  # NumPy's (NEP 50) result dtype
    _, out = _call(fn, args, diff, dtype, requires_grad=False)
    assert isinstance(out, mg.Tensor), f"{what}: expected a Tensor, got {type(out).__name__}"
    assert out.shape == want.shape, f"{what}: shape {out.shape} != NumPy's {want.shape}"
    assert out.dtype == want_dtype, f"{what}: dtype {out.dtype} != NumPy's {want_dtype}"
    got = out.numpy()
    assert got.dtype == want_dtype
    assert_close(got, want, tol.value_rtol, tol.value_atol, f"{what} value ({dtype})")

    if not any(diff):
        return
    cot = random_like(rng, want.shape).astype(want_dtype).astype(np.float64)
    out, grads = vjp(fn, args, diff, cot, dtype)
    fun, idx = _ref_scalar(ref, args64, diff, cot)
    num = numeric_gradient(fun, [args64[i] for i in idx], range(len(idx)))
    for k, (g, n, i) in enumerate(zip(grads, num, idx)):
        g_arr = np.asarray(g)
        assert g_arr.shape == args[i].shape, f"{what}: grad {k} shape {g_arr.shape} != {args[i].shape}"
        assert g_arr.dtype == dtype, f"{what}: grad {k} dtype {g_arr.dtype} != input dtype {dtype}"
        assert_close(g_arr, n, tol.grad_rtol, tol.grad_atol, f"{what} gradient of arg {i} ({dtype})")

    ts = [random_like(rng, args[i].shape) for i in idx]
    lhs = sum(float(np.sum(np.asarray(g, dtype=np.float64) * t)) for g, t in zip(grads, ts))
    rhs = directional_derivative(fun, [args64[i] for i in idx], ts)
    scale = sum(float(np.sum(np.abs(np.asarray(g, dtype=np.float64) * t))) for g, t in zip(grads, ts))
    assert abs(lhs - rhs) <= tol.grad_atol * max(1.0, scale) + tol.grad_rtol * abs(rhs), (
        f"{what}: dot-product test failed ({dtype}): <t, vjp(c)> = {lhs!r}, d/de <c, f(x + e t)> = {rhs!r}"
    )


def check_create_graph_bitwise(fn, args, diff=None, dtype=F64, rng=None, what: str = "") -> None:
    """The gradient through create_graph=True equals the first-order gradient bit for bit.

    Three paths: Tensor.backward(c), Tensor.backward(c, create_graph=True), and (for a scalar
    <c, f>) mg.grad with NumPy inputs (first order) vs Tensor inputs (graph).
    """
    rng = np.random.default_rng(0) if rng is None else rng
    diff = tuple(diff) if diff is not None else (True,) * len(args)
    args = [np.asarray(a).astype(dtype) for a in args]
    _, out = _call(fn, args, diff, dtype, requires_grad=False)
    cot = random_like(rng, out.shape).astype(out.dtype)
    _, g1 = vjp(fn, args, diff, cot, dtype, create_graph=False)
    _, g2 = vjp(fn, args, diff, cot, dtype, create_graph=True)
    for k, (a, b) in enumerate(zip(g1, g2)):
        assert isinstance(b, (mg.Tensor, np.ndarray))
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=f"{what}: backward arg {k}")
        assert np.asarray(a).dtype == np.asarray(b).dtype

    idx = [i for i, d in enumerate(diff) if d]

    def scalar(*dargs):
        full = list(args)
        for i, v in zip(idx, dargs):
            full[i] = v
        return mg.sum(fn(*full) * cot)

    first = mg.grad(scalar, argnums=tuple(range(len(idx))))(*[args[i] for i in idx])
    graph = mg.grad(scalar, argnums=tuple(range(len(idx))))(*[mg.tensor(args[i]) for i in idx])
    for k, (a, b) in enumerate(zip(first, graph)):
        assert isinstance(a, np.ndarray), f"{what}: grad with NumPy in must give NumPy"
        assert isinstance(b, mg.Tensor), f"{what}: grad with Tensor in must give Tensor"
        np.testing.assert_array_equal(a, b.numpy(), err_msg=f"{what}: mg.grad arg {k}")
        assert a.dtype == b.dtype


def check_second_order(fn, args, diff=None, rng=None, what: str = "") -> None:
    """Hessian-vector products of S(x) = <c, f(x)> against central differences of the gradient.

    With g(x) = dS/dx (matgrad, first order, NumPy in) and random w, t:
        <t, H w> == d/de <g(x + e t), w>.
    H w is computed twice: by backward(create_graph=True) then backward() of <x.grad, w>, and
    by mg.grad of a function that itself calls mg.grad (grad(grad(f))).
    """
    tol = TOLS[F64]
    rng = np.random.default_rng(0) if rng is None else rng
    diff = tuple(diff) if diff is not None else (True,) * len(args)
    args = [np.asarray(a, dtype=np.float64) for a in args]
    idx = [i for i, d in enumerate(diff) if d]
    _, out = _call(fn, args, diff, F64, requires_grad=False)
    cot = random_like(rng, out.shape)
    ws = [random_like(rng, args[i].shape) for i in idx]
    ts = [random_like(rng, args[i].shape) for i in idx]
    nums = tuple(range(len(idx)))

    def full_args(dargs):
        full = list(args)
        for i, v in zip(idx, dargs):
            full[i] = v
        return full

    def S(*dargs):
        return mg.sum(fn(*full_args(dargs)) * cot)

    def first_order(dargs) -> float:
        gs = mg.grad(S, argnums=nums)(*dargs)
        return sum(float(np.sum(g * w)) for g, w in zip(gs, ws))

    rhs = directional_derivative(first_order, [args[i] for i in idx], ts)

    # (a) backward(create_graph=True), then backward of <x.grad, w>.
    leaves, out = _call(fn, args, diff, F64, requires_grad=True)
    out.backward(cot, create_graph=True)
    grads = [leaf.grad for leaf in leaves]
    for leaf in leaves:
        leaf.grad = None
    phi = None
    for g, w in zip(grads, ws):
        if g is None:
            continue
        term = mg.sum(g * w)
        phi = term if phi is None else phi + term
    hw_a = [np.zeros(a.shape) for a in (args[i] for i in idx)]
    if phi is not None and phi.requires_grad:
        phi.backward()
        hw_a = [np.zeros(leaf.shape) if leaf.grad is None else np.asarray(leaf.grad) for leaf in leaves]

    # (b) grad(grad(f)): the inner mg.grad sees Tensors and returns Tensors.
    def phi_fn(*dargs):
        gs = mg.grad(S, argnums=nums)(*dargs)
        total = mg.sum(gs[0] * ws[0])
        for g, w in zip(gs[1:], ws[1:]):
            total = total + mg.sum(g * w)
        return total

    hw_b = mg.grad(phi_fn, argnums=nums)(*[args[i] for i in idx])

    for name, hw in (("backward(create_graph=True)", hw_a), ("grad(grad(f))", hw_b)):
        for h, i in zip(hw, idx):
            assert np.asarray(h).shape == args[i].shape, f"{what} {name}: H w shape"
        lhs = sum(float(np.sum(np.asarray(h) * t)) for h, t in zip(hw, ts))
        scale = sum(float(np.sum(np.abs(np.asarray(h) * t))) for h, t in zip(hw, ts))
        assert abs(lhs - rhs) <= tol.grad_atol * max(1.0, scale) + tol.grad_rtol * abs(rhs), (
            f"{what}: second-order check via {name}: <t, H w> = {lhs!r}, d/de <grad(x + e t), w> = {rhs!r}"
        )


# ---- input shapes (hypothesis strategies) ----
# Shapes are 0-D, 1-D or 2-D. Every unary draw can hit (), (1,), (n,), (1, 1), (1, n), (n, 1)
# and (m, n); binary draws produce NumPy-broadcastable pairs such as (3, 4) & (4,),
# (3, 4) & (3, 1), (3, 4) & (1, 4), (3, 4) & (), (3,) & (3, 1).

DIM = st.integers(min_value=1, max_value=4)


@st.composite
def shapes(draw, min_ndim: int = 0, max_ndim: int = 2):
    """A shape of min_ndim..max_ndim dims, each 1..4 (so 1x1, 1xn, nx1 all occur)."""
    ndim = draw(st.integers(min_value=min_ndim, max_value=max_ndim))
    return tuple(draw(DIM) for _ in range(ndim))


@st.composite
def broadcast_pairs(draw):
    """Two shapes that broadcast together (NumPy rules), often with different ranks."""
    out = draw(shapes())

    def operand():
        ndim = draw(st.integers(min_value=0, max_value=len(out)))
        dims = out[len(out) - ndim :]
        return tuple(d if draw(st.booleans()) else 1 for d in dims)

    return operand(), operand()


@st.composite
def matmul_pairs(draw):
    """Operand shapes for numpy.matmul with 1-D/2-D operands: (m,k)@(k,n), (k,)@(k,n), ..."""
    m, k, n = draw(DIM), draw(DIM), draw(DIM)
    left = draw(st.sampled_from([(m, k), (k,)]))
    right = draw(st.sampled_from([(k, n), (k,)]))
    return left, right


def reshape_targets(shape) -> list:
    """Every 0-D/1-D/2-D C-order target of the same size, with and without one -1."""
    size = int(np.prod(shape, dtype=np.int64))
    out = [(size,), (1, size), (size, 1)]
    out += [(a, size // a) for a in range(1, size + 1) if size % a == 0]
    if size == 1:
        out.append(())
    with_minus = []
    for t in out:
        for j in range(len(t)):
            with_minus.append(tuple(-1 if i == j else d for i, d in enumerate(t)))
    return out + with_minus


SEEDS = st.integers(min_value=0, max_value=2**32 - 1)
