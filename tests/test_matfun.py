"""Matrix functions (eigh, eigvalsh, svd, svdvals, expm, logm, sqrtm, pinv): the closed forms
users know, the values against NumPy/SciPy, and the behaviour where other libraries give NaN:
repeated eigenvalues and singular values, defective matrices, rank deficiency. Gradients and
second derivatives on random input against finite differences are in test_ops_registry.py.
Every test here runs twice: on the LAPACK the process has loaded (NumPy's OpenBLAS) and on
Eigen's solvers, the fallback of a process without one."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import scipy.linalg
from gradcheck import assert_close

import matgrad as mg


def rotated(values, seed=0):
    """Q diag(values) Q^T for a random orthogonal Q."""
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((len(values), len(values))))
    return (q * np.asarray(values, dtype=float)) @ q.T


def fd_grad(f, x, eps=1e-6):
    g = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        e = np.zeros_like(x)
        e[i] = eps
        g[i] = (f(x + e) - f(x - e)) / (2 * eps)
    return g


@pytest.fixture(autouse=True, params=["lapack", "eigen"])
def linalg_backend(request):
    """The decompositions' backend for the test: LAPACK (skipped when none is loaded) or Eigen."""
    if request.param == "eigen":
        mg._core._linalg_backend(False)
    elif mg._core._linalg_backend(True) == "eigen":
        pytest.skip("no LAPACK is loaded in this process")
    yield request.param
    mg._core._linalg_backend(True)


def _loaded_openblas():
    """The OpenBLAS NumPy loaded into this process (its path), or None."""
    with open("/proc/self/maps") as maps:
        paths = {line.split()[-1] for line in maps if "openblas" in line.lower() and "/" in line}
    return sorted(paths)[0] if paths else None


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the LAPACK is looked for on Linux")
def test_the_lapack_numpy_loaded_is_found_and_can_be_chosen(linalg_backend):
    if linalg_backend == "eigen":
        assert mg._core._linalg_backend() == "eigen"
        return
    lib = _loaded_openblas()
    if lib is None:
        pytest.skip("this NumPy bundles no OpenBLAS")
    assert mg._core._linalg_backend().startswith(lib)
    code = "import matgrad as mg, numpy as np; mg.eigvalsh(np.eye(2)); print(mg._core._linalg_backend())"
    for env, want in (("off", "eigen"), (lib, lib)):
        out = subprocess.run(
            [sys.executable, "-c", code],
            env={**os.environ, "MATGRAD_LAPACK": env},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert out.startswith(want), (env, out)


# Debian's reference LAPACK (LP64) and its ILP64 OpenBLAS whose symbols carry no 64 suffix: the
# integer width comes from a probe (ilaver), not from names (.ci/run installs both).
SYSTEM_LAPACKS = {
    "LP64": "/usr/lib/x86_64-linux-gnu/liblapack.so.3",
    "ILP64": "/usr/lib/x86_64-linux-gnu/libopenblas64.so.0",
}


@pytest.mark.parametrize("width", sorted(SYSTEM_LAPACKS))
def test_a_system_lapack_is_used_with_its_integer_width(linalg_backend, width):
    path = SYSTEM_LAPACKS[width]
    if linalg_backend == "eigen" or not os.path.exists(path):
        pytest.skip(f"runs once, with {path}")
    code = """if True:
        import numpy as np, scipy.linalg, matgrad as mg
        rng = np.random.default_rng(3)
        a = rng.standard_normal((7, 5))
        b = scipy.linalg.expm(0.3 * rng.standard_normal((6, 6)))
        s = a.T @ a
        print(mg._core._linalg_backend())
        assert np.allclose(mg.svdvals(a).numpy(), np.linalg.svd(a, compute_uv=False), rtol=1e-12, atol=0)
        assert np.allclose(mg.eigvalsh(s).numpy(), np.linalg.eigvalsh(s), rtol=1e-12, atol=1e-12)
        assert np.allclose(mg.sqrtm(b).numpy(), scipy.linalg.sqrtm(b), rtol=1e-12, atol=1e-12)
        assert np.allclose(mg.logm(b).numpy(), scipy.linalg.logm(b), rtol=1e-12, atol=1e-12)
        g = mg.grad(lambda m: mg.sum(mg.sqrtm(m)))(b)
        mg._core._linalg_backend(False)
        assert np.allclose(g, mg.grad(lambda m: mg.sum(mg.sqrtm(m)))(b), rtol=1e-10, atol=1e-12)
    """
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "MATGRAD_LAPACK": path},
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(os.path.realpath(path)) and out.stdout.rstrip().endswith(f", {width})"), (
        out.stdout
    )


@pytest.mark.parametrize("shape", [(6, 6), (9, 4), (4, 9)])
def test_the_two_backends_agree(linalg_backend, shape):
    rng = np.random.default_rng(7)
    a = rng.standard_normal(shape)
    s = a @ a.T
    b = scipy.linalg.expm(0.3 * rng.standard_normal((shape[0], shape[0])))
    got = [mg.eigh(s), mg.svd(a), mg.svdvals(a), mg.pinv(a), mg.sqrtm(b), mg.logm(b)]
    mg._core._linalg_backend(linalg_backend != "eigen")  # the other one
    other = [mg.eigh(s), mg.svd(a), mg.svdvals(a), mg.pinv(a), mg.sqrtm(b), mg.logm(b)]
    for x, y in zip(got, other):
        for u, v in zip(x if isinstance(x, tuple) else (x,), y if isinstance(y, tuple) else (y,)):
            assert_close(u.numpy(), v.numpy(), rtol=1e-10, atol=1e-10)


# ---- values against NumPy / SciPy ----


@pytest.mark.parametrize("n", [1, 3, 8])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_values_match_numpy_and_scipy(n, dtype):
    rng = np.random.default_rng(n)
    a = rng.standard_normal((n, n)).astype(dtype)
    s = (a + a.T) / 2
    tol = 1e-12 if dtype == np.float64 else 2e-5
    w, v = mg.eigh(s)
    assert w.dtype == dtype and v.dtype == dtype
    assert_close(w.numpy(), np.linalg.eigvalsh(s), rtol=tol, atol=tol)
    assert_close(mg.eigvalsh(s).numpy(), np.linalg.eigvalsh(s), rtol=tol, atol=tol)
    assert_close((v.numpy() * w.numpy()) @ v.numpy().T, s, rtol=tol, atol=tol * n)
    for shape in [(n, n), (n + 2, n), (n, n + 3)]:
        x = rng.standard_normal(shape).astype(dtype)
        u, sv, vt = mg.svd(x)
        u_np, s_np, vt_np = np.linalg.svd(x.astype(np.float64), full_matrices=False)
        assert_close(sv.numpy(), s_np, rtol=tol, atol=tol)
        assert_close(mg.svdvals(x).numpy(), s_np, rtol=tol, atol=tol)
        # the same vectors up to the sign of each pair
        sign = np.sign(np.sum(u.numpy() * u_np, axis=0))
        assert_close(u.numpy(), u_np * sign, rtol=10 * tol, atol=10 * tol)
        assert_close(vt.numpy(), vt_np * sign[:, None], rtol=10 * tol, atol=10 * tol)
        assert_close(mg.pinv(x).numpy(), np.linalg.pinv(x.astype(np.float64)), rtol=10 * tol, atol=10 * tol)
    b = (0.5 * rng.standard_normal((n, n))).astype(dtype)
    assert_close(mg.expm(b).numpy(), scipy.linalg.expm(b.astype(np.float64)), rtol=tol, atol=tol)
    p = scipy.linalg.expm(0.4 * rng.standard_normal((n, n))).astype(dtype)
    assert_close(
        mg.logm(p).numpy(), np.real(scipy.linalg.logm(p.astype(np.float64))), rtol=10 * tol, atol=10 * tol
    )
    assert_close(
        mg.sqrtm(p).numpy(), np.real(scipy.linalg.sqrtm(p.astype(np.float64))), rtol=10 * tol, atol=10 * tol
    )


def test_vector_signs_are_normalised():
    """The largest entry of each eigenvector / left singular vector is positive."""
    x = np.random.default_rng(5).standard_normal((5, 4))
    _, v = mg.eigh(x[:4] + x[:4].T)
    u, _, _ = mg.svd(x)
    for m in (v.numpy(), u.numpy()):
        idx = np.argmax(np.abs(m), axis=0)
        assert np.all(m[idx, np.arange(m.shape[1])] > 0)


# ---- closed forms ----


def test_trace_of_expm_gradient_is_its_transpose():
    a = np.random.default_rng(1).standard_normal((4, 4))
    g = mg.grad(lambda x: mg.trace(mg.expm(x)))(a)
    assert_close(g, scipy.linalg.expm(a).T, rtol=1e-12, atol=1e-12)


def test_trace_of_logm_gradient_is_inverse_transpose():
    a = scipy.linalg.expm(0.5 * np.random.default_rng(2).standard_normal((4, 4)))
    g = mg.grad(lambda x: mg.trace(mg.logm(x)))(a)
    assert_close(g, np.linalg.inv(a).T, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("shape", [(4, 4), (5, 3), (3, 5)])
def test_nuclear_norm_gradient_is_u_vt(shape):
    x = np.random.default_rng(3).standard_normal(shape)
    u, _, vt = np.linalg.svd(x, full_matrices=False)
    assert_close(mg.grad(lambda a: mg.sum(mg.svdvals(a)))(x), u @ vt, rtol=1e-12, atol=1e-12)
    assert_close(mg.grad(lambda a: mg.sum(mg.svd(a)[1]))(x), u @ vt, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("values", [[1.0, 1.0, 1.0, 3.0], [2.0, 2.0, -1.0, -1.0], [0.0, 0.0, 0.0]])
def test_sum_of_squared_eigenvalues_gradient_is_2a_at_any_multiplicity(values):
    a = rotated(values)
    for f in (lambda x: mg.sum(mg.eigvalsh(x) ** 2), lambda x: mg.sum(mg.eigh(x)[0] ** 2)):
        assert_close(mg.grad(f)(a), 2 * a, rtol=1e-12, atol=1e-12)
    assert_close(mg.grad(lambda x: mg.sum(mg.eigvalsh(x)))(np.eye(3)), np.eye(3), rtol=0, atol=1e-15)


def test_svdvals_gradient_at_repeated_and_zero_singular_values():
    # sum(s^2) = ||A||_F^2: gradient 2A, at I (all repeated) and at a rank-1 rectangular matrix
    for a in (np.eye(3), np.outer([1.0, 2.0, 0.5, 1.0], [1.0, -1.0, 2.0]), np.zeros((2, 3))):
        assert_close(mg.grad(lambda x: mg.sum(mg.svdvals(x) ** 2))(a), 2 * a, rtol=1e-12, atol=1e-12)
    # the nuclear norm at I: U V^T = I
    assert_close(mg.grad(lambda x: mg.sum(mg.svdvals(x)))(np.eye(3)), np.eye(3), rtol=0, atol=1e-15)


def test_eigvalsh_and_svdvals_gradients_reuse_the_forward_decomposition():
    """Note [spectral factors]: a forward whose result needs a gradient (eager, or a compiled
    replay whose VJP reads the slot) keeps the vectors, and the VJP takes them instead of
    decomposing again; without a gradient the forward computes the values alone. Counted with the
    engine's per-thread counter of decompositions."""
    rng = np.random.default_rng(21)
    b = rng.standard_normal((6, 6))
    a = b + b.T
    count = mg._core._spectral_count
    for op, ref in ((mg.eigvalsh, lambda x: 2 * x), (mg.svdvals, lambda x: 2 * x)):
        before = count()
        v, g = mg.value_and_grad(lambda x: mg.sum(op(x) ** 2))(a)
        assert count() - before == 1, op.__name__
        assert_close(g, ref(a), rtol=1e-12, atol=1e-12)
        assert_close(v, np.sum(a * a), rtol=1e-12, atol=0)
        before = count()
        op(a)
        assert count() - before == 1, op.__name__
        # backward() on a leaf: the same single decomposition, the same gradient
        x = mg.tensor(a, requires_grad=True)
        before = count()
        mg.sum(op(x) ** 2).backward()
        assert count() - before == 1, op.__name__
        assert x.grad is not None
        assert_close(x.grad.numpy(), ref(a), rtol=1e-12, atol=1e-12)
        # a value written in place after a forward (an optimiser step): the old result refuses
        # backward, and a new forward decomposes the new values, not the kept ones
        y = mg.tensor(a, requires_grad=True)
        w = op(y)
        mg._core._assign_(y, 2 * a)
        with pytest.raises(RuntimeError, match="updated in place"):
            mg.sum(w).backward()
        mg.sum(op(y) ** 2).backward()
        assert y.grad is not None
        assert_close(y.grad.numpy(), ref(2 * a), rtol=1e-12, atol=1e-12)
        # a compiled value and gradient: one decomposition per replay too
        cf = mg.compile(lambda z: mg.sum(op(z) ** 2))
        cf.value_and_grad(a)
        before = count()
        v, g = cf.value_and_grad(a)
        assert count() - before == 1, op.__name__
        assert_close(g, ref(a), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("scale", [1e-3, 0.05, 0.3, 1.0, 2.5, 40.0])  # every Pade degree, with squarings
def test_expm_gradient_reuses_the_forward_pade_data(scale):
    rng = np.random.default_rng(22)
    a = scale * rng.standard_normal((6, 6)) / np.sqrt(6)
    g = rng.standard_normal((6, 6))
    count = mg._core._spectral_count
    # reference: scipy's Frechet derivative at A^T in direction G
    ref = scipy.linalg.expm_frechet(a.T, g, compute_expm=False)
    before = count()
    v, d = mg.vjp(mg.expm, a)
    (dx,) = d(g)
    assert count() - before == 1  # one scaling and squaring serves the value and the gradient
    assert_close(v, scipy.linalg.expm(a), rtol=1e-13, atol=1e-13)
    assert_close(dx, ref, rtol=1e-11, atol=1e-11 * np.abs(ref).max())
    # backward() on a leaf: the same
    before = count()
    x = mg.tensor(a, requires_grad=True)
    mg.sum(mg.expm(x) * g).backward()
    assert count() - before == 1
    assert_close(x.grad.numpy(), ref, rtol=1e-11, atol=1e-11 * np.abs(ref).max())
    # a value written in place after a forward: the new values' data, not the kept ones
    y = mg.tensor(a, requires_grad=True)
    mg.expm(y)
    mg._core._assign_(y, 2 * a)
    mg.sum(mg.expm(y) * g).backward()
    ref2 = scipy.linalg.expm_frechet(2 * a.T, g, compute_expm=False)
    assert_close(y.grad.numpy(), ref2, rtol=1e-11, atol=1e-11 * np.abs(ref2).max())
    # no gradient follows: nothing kept, and a forward counts once
    before = count()
    mg.expm(a)
    assert count() - before == 1
    # a compiled gradient's replay: one scaling and squaring too
    cg = mg.compile(lambda z: mg.sum(mg.expm(z) * g)).grad
    assert_close(cg(a), ref, rtol=1e-11, atol=1e-11 * np.abs(ref).max())
    before = count()
    assert_close(cg(a), ref, rtol=1e-11, atol=1e-11 * np.abs(ref).max())
    assert count() - before == 1


@pytest.mark.parametrize("n", [5, 150])  # 150: the blocked square roots and Sylvester solves
@pytest.mark.parametrize("symmetric", [False, True])
def test_logm_gradient_reuses_the_forward_and_matches_the_block_identity(linalg_backend, n, symmetric):
    rng = np.random.default_rng(23)
    a = scipy.linalg.expm(0.6 * rng.standard_normal((n, n)) / np.sqrt(n))
    if symmetric:
        a = a @ a.T
    g = rng.standard_normal((n, n))
    # L_log(A^T, G): the top-right block of log [[A^T, G], [0, A^T]]
    b = np.block([[a.T, g], [np.zeros((n, n)), a.T]])
    ref = np.real(scipy.linalg.logm(b))[:n, n:]
    count = mg._core._spectral_count
    before = count()
    v, d = mg.vjp(mg.logm, a)
    (dx,) = d(g)
    # one Schur form (eigendecomposition) for the value and the gradient; Eigen's own logm keeps none
    assert count() - before == (2 if linalg_backend == "eigen" and not symmetric else 1)
    assert_close(v, np.real(scipy.linalg.logm(a)), rtol=1e-10, atol=1e-10)
    assert_close(dx, ref, rtol=1e-10, atol=1e-10 * np.abs(ref).max())
    # through backward() on a leaf, and in a compiled program: the same
    x = mg.tensor(a, requires_grad=True)
    mg.sum(mg.logm(x) * g).backward()
    assert_close(x.grad.numpy(), ref, rtol=1e-10, atol=1e-10 * np.abs(ref).max())
    cg = mg.compile(lambda y: mg.sum(mg.logm(y) * g)).grad
    assert_close(cg(a), ref, rtol=1e-10, atol=1e-10 * np.abs(ref).max())
    before = count()
    assert_close(cg(a), ref, rtol=1e-10, atol=1e-10 * np.abs(ref).max())  # a replay
    assert count() - before == (2 if linalg_backend == "eigen" and not symmetric else 1)


def test_symmetric_logm_gradient_is_accurate_across_a_wide_spectrum():
    """Daleckii-Krein on a diagonal A: dA = D o G, D_ij = (log w_i - log w_j) / (w_i - w_j),
    D_ii = 1 / w_i; eigenvalues 12 orders apart and 1e-9 apart, each entry to rounding."""
    w = np.array([1.0, 1e-12, 3.0, 1.0 + 1e-9, 1e6])
    a = np.diag(w)
    g = np.random.default_rng(24).standard_normal((5, 5))
    wi, wj = np.meshgrid(w, w, indexing="ij")
    with np.errstate(divide="ignore", invalid="ignore"):
        d = (np.log(wi) - np.log(wj)) / (wi - wj)
    near = np.abs(wi - wj) < 1e-6 * wi
    d[near] = (2 / (wi + wj))[near]  # 1 / w to within 1e-18 at these gaps
    (dx,) = mg.vjp(mg.logm, a)[1](g)
    assert_close(dx, d * g, rtol=1e-13, atol=0)


def test_expm_of_skew_matrix_is_orthogonal_and_expm_logm_roundtrip():
    k = np.random.default_rng(4).standard_normal((5, 5))
    q = mg.expm(k - k.T).numpy()
    assert_close(q @ q.T, np.eye(5), rtol=0, atol=1e-13)
    a = rotated([0.5, 1.0, 2.0, 4.0]) + 0.1 * np.triu(np.ones((4, 4)), 1)
    assert_close(mg.expm(mg.logm(a)).numpy(), a, rtol=1e-12, atol=1e-12)
    r = mg.sqrtm(a).numpy()
    assert_close(r @ r, a, rtol=1e-12, atol=1e-12)


# ---- where eigendecomposition-based gradients fail ----


@pytest.mark.parametrize(
    "name,f,ref",
    [
        ("expm", mg.expm, scipy.linalg.expm),
        ("logm", mg.logm, lambda x: np.real(scipy.linalg.logm(x))),
        ("sqrtm", mg.sqrtm, lambda x: np.real(scipy.linalg.sqrtm(x))),
    ],
)
@pytest.mark.parametrize(
    "a",
    [
        np.array([[2.0, 1.0], [0.0, 2.0]]),  # defective (a Jordan block)
        np.eye(3),  # one eigenvalue, three times
        np.array([[3.0, 1.0, 0.0], [0.0, 3.0, 1.0], [0.0, 0.0, 3.0]]),
    ],
    ids=["jordan2", "identity3", "jordan3"],
)
def test_matrix_function_gradients_at_repeated_and_defective(name, f, ref, a):
    w = np.cos(np.arange(a.size)).reshape(a.shape)
    g = mg.grad(lambda x: mg.sum(f(x) * w))(a)
    assert np.all(np.isfinite(g))
    assert_close(g, fd_grad(lambda x: float(np.sum(ref(x) * w)), a), rtol=1e-6, atol=1e-7)


def test_vector_gradients_at_repeated_values_raise_linalg_error():
    # a cotangent that sees which basis of the repeated cluster was returned
    a = rotated([1.0, 1.0, 2.0])
    w = np.random.default_rng(6).standard_normal((4, 4))
    with pytest.raises(np.linalg.LinAlgError, match=r"^eigh: .*repeated eigenvalues.*\(3, 3\)"):
        mg.grad(lambda x: mg.sum(mg.eigh(x)[1] * w[:3, :3]))(a)
    with pytest.raises(np.linalg.LinAlgError, match=r"^svd: .*repeated singular values.*\(3, 3\)"):
        mg.grad(lambda x: mg.sum(mg.svd(x)[0] * w[:3, :3]))(np.eye(3))
    with pytest.raises(np.linalg.LinAlgError, match=r"^svd: .*rank-deficient.*\(4, 2\)"):
        mg.grad(lambda x: mg.sum(mg.svd(x)[0] * w[:, :2]))(np.outer([1.0, 2.0, 3.0, 4.0], [1.0, 1.0]))
    # a function of the vectors that does not depend on the basis, V diag(w) V^T = A, is smooth,
    # but its gradient at exactly repeated values is a 0/0 limit the VJP cannot know: it raises
    # too (PyTorch and JAX give NaN there), never a silent wrong number
    with pytest.raises(np.linalg.LinAlgError, match=r"^eigh: .*repeated eigenvalues"):
        mg.grad(lambda x: mg.sum((lambda w, v: (v * w) @ v.T)(*mg.eigh(x)) * w[:3, :3]))(np.eye(3))
    # the values alone never raise, whatever the multiplicity
    assert np.all(np.isfinite(mg.grad(lambda x: mg.sum(mg.eigh(x)[0] ** 3))(a)))


def test_eigenvector_gradient_with_distinct_values_matches_finite_differences():
    a = rotated([-1.0, 0.5, 2.0, 3.0], seed=7)
    w = np.random.default_rng(8).standard_normal((4, 4))

    def f(x):
        v = mg.eigh(x)[1]
        return mg.sum(v * v * w)  # V o V: independent of the signs

    def f_np(x):
        v = np.linalg.eigh(x)[1]
        return float(np.sum(v * v * w))

    g = mg.grad(f)(a)
    assert_close(g, (lambda s: (s + s.T) / 2)(fd_grad(f_np, a)), rtol=1e-6, atol=1e-8)


# ---- errors ----


@pytest.mark.parametrize("name", ["eigh", "eigvalsh", "svd", "svdvals", "expm", "logm", "sqrtm", "pinv"])
def test_one_dimensional_and_non_square_input_raise_value_error_naming_the_op(name):
    f = getattr(mg, name)
    with pytest.raises(ValueError, match=rf"^{name}: .*\(3,\)"):
        f(np.ones(3))
    with pytest.raises(ValueError, match=rf"^{name}: .*\(2, 2, 2\)|3-D|dimensions"):
        f(np.ones((2, 2, 2)))
    if name not in ("svd", "svdvals", "pinv"):
        with pytest.raises(ValueError, match=rf"^{name}: .*\(2, 3\)"):
            f(np.ones((2, 3)))


@pytest.mark.parametrize("name", ["eigh", "eigvalsh", "svd", "svdvals", "expm", "logm", "sqrtm", "pinv"])
def test_non_finite_input_raises_linalg_error(name):
    for bad in (np.nan, np.inf):
        a = np.eye(3)
        a[1, 2] = bad
        with pytest.raises(np.linalg.LinAlgError, match=rf"^{name}: .*\(3, 3\).*NaN or infinite"):
            getattr(mg, name)(a)


def test_logm_and_sqrtm_refuse_negative_real_eigenvalues():
    a = np.diag([2.0, -1.0])
    with pytest.raises(np.linalg.LinAlgError, match=r"^logm: .*\(2, 2\).*negative real eigenvalue"):
        mg.logm(a)
    with pytest.raises(np.linalg.LinAlgError, match=r"^sqrtm: .*\(2, 2\).*negative real eigenvalue"):
        mg.sqrtm(a)
    with pytest.raises(np.linalg.LinAlgError, match=r"^logm: .*singular"):
        mg.logm(np.diag([1.0, 0.0]))
    # complex conjugate eigenvalues (a rotation by less than pi) have a real principal log
    t = 0.7
    rot = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
    assert_close(mg.logm(rot).numpy(), np.array([[0.0, -t], [t, 0.0]]), rtol=0, atol=1e-14)


def test_sqrtm_gradient_at_a_zero_eigenvalue_raises_linalg_error():
    x = np.random.default_rng(12).standard_normal((5, 2))
    idempotent = np.array([[1.0, 1.0], [0.0, 0.0]])  # eigenvalues 1 and 0: its own square root
    assert_close(mg.sqrtm(idempotent).numpy(), idempotent, rtol=1e-12, atol=1e-12)
    for a in (x @ x.T, idempotent):
        with pytest.raises(
            np.linalg.LinAlgError, match=r"^sqrtm: the gradient is not defined at a matrix of shape"
        ):
            mg.grad(lambda m: mg.sum(mg.sqrtm(m)))(a)


def test_symmetric_input_singular_covariances_and_tiny_eigenvalues():
    x = np.random.default_rng(12).standard_normal((5, 2))
    c = x @ x.T  # rank 2: three zero eigenvalues, computed as +-1e-16
    r = mg.sqrtm(c).numpy()
    assert_close(r @ r, c, rtol=1e-10, atol=1e-10)
    assert_close(r, r.T, rtol=0, atol=0)
    assert np.all(np.linalg.eigvalsh(r) > -1e-7)
    # tiny but positive: a finite logarithm, as SciPy's
    d = np.diag([1e-300, 1.0, 4.0])
    assert_close(mg.logm(d).numpy(), np.diag(np.log([1e-300, 1.0, 4.0])), rtol=1e-14, atol=0)
    s = rotated([0.5, 1.0, 3.0], seed=3)
    s = (s + s.T) / 2
    assert_close(mg.logm(s).numpy(), np.real(scipy.linalg.logm(s)), rtol=1e-12, atol=1e-12)
    assert_close(mg.sqrtm(s).numpy(), np.real(scipy.linalg.sqrtm(s)), rtol=1e-12, atol=1e-12)
    with pytest.raises(np.linalg.LinAlgError, match=r"^sqrtm: .*negative real eigenvalue"):
        mg.sqrtm(np.diag([1.0, -1.0]))
    with pytest.raises(np.linalg.LinAlgError, match=r"^logm: .*singular"):
        mg.logm(np.diag([1.0, 0.0]))


def test_empty_matrices():
    z = np.zeros((0, 0))
    w, v = mg.eigh(z)
    assert w.shape == (0,) and v.shape == (0, 0)
    u, s, vt = mg.svd(np.zeros((3, 0)))
    assert u.shape == (3, 0) and s.shape == (0,) and vt.shape == (0, 0)
    assert mg.expm(z).shape == (0, 0) and mg.pinv(np.zeros((2, 0))).shape == (0, 2)


# ---- transforms: Hessians, compiled programs ----


def test_hessian_of_spectral_loss_matches_finite_differences():
    x = np.random.default_rng(9).standard_normal((3, 3))

    def f(a):
        return mg.sum(mg.svdvals(a) ** 3) + mg.sum(mg.expm(a) ** 2)

    h = mg.hessian(f)(x).reshape(9, 9)
    g = mg.grad(f)
    hfd = np.stack(
        [((g(x + 1e-5 * e.reshape(3, 3)) - g(x - 1e-5 * e.reshape(3, 3))) / 2e-5).ravel() for e in np.eye(9)],
        1,
    )
    assert_close(h, hfd, rtol=1e-5, atol=1e-6)


def test_compiled_program_gives_eager_values_and_gradients():
    rng = np.random.default_rng(10)

    def f(a):
        s = (a + a.T) * 0.5
        return mg.sum(mg.eigvalsh(s) ** 2) + mg.sum(mg.svdvals(a)) + mg.trace(mg.expm(0.1 * a))

    c = mg.compile(f)
    for _ in range(3):
        x = rng.standard_normal((4, 4))
        assert_close(c(x), f(x).numpy(), rtol=1e-12, atol=1e-12)
        assert_close(c.grad(x), mg.grad(f)(x), rtol=1e-12, atol=1e-12)


# ---- against PyTorch, where its gradients are defined (distinct values, generic matrices) ----


def test_gradients_match_pytorch_where_defined():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(11)
    a = rng.standard_normal((5, 5))
    s = a + a.T
    r = rng.standard_normal((6, 4))
    w5, w64 = rng.standard_normal((5, 5)), rng.standard_normal((6, 4))

    def t_grad(f, x):
        t = torch.tensor(x, dtype=torch.float64, requires_grad=True)
        f(t).backward()
        return t.grad.numpy()

    def signed(v):  # sign-independent use of the vectors
        return v * v

    pairs = [
        (
            lambda x: mg.sum(signed(mg.eigh(x)[1]) * w5) + mg.sum(mg.eigh(x)[0] ** 3),
            s,
            lambda x: (
                (signed(torch.linalg.eigh(x)[1]) * torch.tensor(w5)).sum()
                + (torch.linalg.eigh(x)[0] ** 3).sum()
            ),
        ),
        (
            lambda x: mg.sum(mg.eigvalsh(x) ** 2 * np.arange(5.0)),
            s,
            lambda x: (torch.linalg.eigvalsh(x) ** 2 * torch.arange(5.0, dtype=torch.float64)).sum(),
        ),
        (
            lambda x: (
                mg.sum(signed(mg.svd(x)[0]) * w64) + mg.sum(mg.svd(x)[1] ** 2) + mg.sum(signed(mg.svd(x)[2]))
            ),
            r,
            lambda x: (
                (signed(torch.linalg.svd(x, full_matrices=False)[0]) * torch.tensor(w64)).sum()
                + (torch.linalg.svd(x, full_matrices=False)[1] ** 2).sum()
                + signed(torch.linalg.svd(x, full_matrices=False)[2]).sum()
            ),
        ),
        (lambda x: mg.sum(mg.svdvals(x) ** 3), r, lambda x: (torch.linalg.svdvals(x) ** 3).sum()),
        (
            lambda x: mg.sum(mg.expm(x) * w5),
            a,
            lambda x: (torch.linalg.matrix_exp(x) * torch.tensor(w5)).sum(),
        ),
        (lambda x: mg.sum(mg.pinv(x) ** 2), r, lambda x: (torch.linalg.pinv(x) ** 2).sum()),
    ]
    for f, x, tf in pairs:
        assert_close(mg.grad(f)(x), t_grad(tf, x), rtol=1e-9, atol=1e-10)
