"""mg.compile: programs traced once per signature and replayed in C++ give what eager evaluation
gives (values, gradients, Jacobians, Hessians) on every registry case and on random programs;
the signature cache, the trace-time rules, results that are the caller's own, threads, errors,
interrupts, and saving, loading and pickling (corrupt files included)."""

from __future__ import annotations

import _thread
import functools
import pickle
import subprocess
import sys
import threading
import time
import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_ops_registry import CASES, F32, F64, fixed_inputs

import matgrad as mg


def rng_for(name: str) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32(name.encode()))


# ---- every registry case: compiled value_and_grad, jacobian and hessian against eager ----


@pytest.mark.parametrize("dtype", [F64, F32], ids=["f64", "f32"])
@pytest.mark.parametrize("case", CASES, ids=repr)
def test_compiled_programs_match_eager_on_every_registry_case(case, dtype):
    rng = rng_for(case.name)
    arg_shapes = fixed_inputs(case)[0]
    if ("axis" in case.name or case.kwargs is not None) and case.fixed is None:
        arg_shapes = [(3, 4)] * case.arity
    fn = functools.partial(case.fn, shape=(4, 3)) if case.kwargs else case.fn
    args = [np.asarray(dom(rng, s), dtype=dtype) for dom, s in zip(case.domains, arg_shapes)]
    diff = case.diff or (True,) * case.arity
    nums = tuple(i for i, d in enumerate(diff) if d)
    out = fn(*[mg.tensor(a) if d else a for a, d in zip(args, diff)])
    w = rng.standard_normal(np.shape(out)).astype(np.asarray(out).dtype)

    def value(*xs):  # the non-differentiated arguments stay NumPy arrays, as in the registry
        return fn(*[x if d else a for x, a, d in zip(xs, args, diff)])

    def loss(*xs):
        return mg.sum(value(*xs) * w)

    cf = mg.compile(loss, argnums=nums)
    v0, g0 = mg.value_and_grad(loss, argnums=nums)(*args)
    tol = {"rtol": 1e-12, "atol": 1e-13} if dtype == F64 else {"rtol": 2e-5, "atol": 2e-6}
    for _ in range(2):  # traced, then replayed from the cache
        v, g = cf.value_and_grad(*args)
        np.testing.assert_allclose(v, v0, **tol)
        for x, y in zip(g, g0):
            assert x.shape == y.shape and x.dtype == y.dtype
            np.testing.assert_allclose(x, y, **tol)
    jf = mg.compile(value, argnums=nums)
    for x, y in zip(jf.jacobian(*args), mg.jacobian(value, argnums=nums)(*args)):
        assert x.shape == y.shape
        np.testing.assert_allclose(x, y, **tol)
    for rx, ry in zip(cf.hessian(*args), mg.hessian(loss, argnums=nums)(*args)):
        for x, y in zip(rx, ry):
            assert x.shape == y.shape
            np.testing.assert_allclose(
                x, y, rtol=tol["rtol"] * 10, atol=tol["atol"] * 10 * max(1, np.abs(y).max())
            )


@pytest.mark.parametrize("dtype", [F64, F32])
@pytest.mark.parametrize("m,n", [(4, 3), (1, 5), (6, 1), (16, 16)])
def test_jacobian_of_a_gram_matrix_and_a_hessian_match_their_closed_forms(m, n, dtype):
    # The identity seed's products become seed_matmul (rows and columns of the other operand)
    # and 1 x 1 constant products scales; the results must stay the closed forms.
    rng = np.random.default_rng(m * 100 + n)
    tol = {"rtol": 1e-12, "atol": 1e-12} if dtype == F64 else {"rtol": 2e-5, "atol": 2e-5}
    B = rng.standard_normal((m, n)).astype(dtype)
    cj = mg.compile(lambda B: B.T @ B)
    want = np.einsum("il,kj->ijkl", np.eye(n), B) + np.einsum("jl,ki->ijkl", np.eye(n), B)
    for _ in range(2):
        np.testing.assert_allclose(cj.jacobian(B), want, **tol)
    prog = next(iter(cj.programs().values()))["jacobian"]
    assert "seed_matmul" in str(prog) and "matmul(" not in str(prog).replace("seed_matmul(", "")
    x, A = rng.standard_normal(n).astype(dtype), rng.standard_normal((n, n)).astype(dtype)
    ch = mg.compile(lambda x, A: mg.sum(mg.sin(x)) + 0.5 * (x @ (A @ x)) + mg.logsumexp(x))
    s = np.exp(x - x.max()) / np.exp(x - x.max()).sum()
    want = 0.5 * (A + A.T) + np.diag(s - np.sin(x)) - np.outer(s, s)
    np.testing.assert_allclose(ch.hessian(x, A), want, **tol)
    prog = next(iter(ch.programs().values()))["hessian"]
    assert "matmul(" not in str(prog).replace("seed_matmul(", "")


# ---- random programs ----

UNARY = [
    mg.sin,
    mg.cos,
    mg.tanh,
    mg.sigmoid,
    mg.square,
    lambda t: mg.exp(mg.tanh(t)),
    lambda t: -t,
    lambda t: t * 0.5,
]
BINARY = [mg.add, mg.sub, mg.mul, lambda a, b: a @ b.T @ a, lambda a, b: mg.maximum(a, b + 0.37)]


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 20), st.integers(0, 6), st.integers(0, 6)), min_size=1, max_size=14),
    st.sampled_from([(3, 3), (4, 4), (1, 1)]),
    st.integers(0, 2**31 - 1),
)
def test_random_programs_match_eager(steps, shape, seed):
    def f(x, y):
        vals = [x, y]
        for kind, i, j in steps:
            a, b = vals[i % len(vals)], vals[j % len(vals)]
            op = kind - len(UNARY)
            if kind < len(UNARY):
                vals.append(UNARY[kind](a))
            elif op < len(BINARY) and a.shape == b.shape and (op != 3 or a.ndim == 2):
                vals.append(BINARY[op](a, b))
            else:
                vals.append(mg.sum(a, axis=kind % 2 if a.ndim == 2 else None) * 0.1)
        r = vals[-1]
        return mg.sum(r * r)

    rng = np.random.default_rng(seed)
    x, y = rng.uniform(-1, 1, shape), rng.uniform(-1, 1, shape)
    cf = mg.compile(f, argnums=(0, 1))
    v0, g0 = mg.value_and_grad(f, argnums=(0, 1))(x, y)
    v, g = cf.value_and_grad(x, y)
    np.testing.assert_allclose(v, v0, rtol=1e-12, atol=1e-12)
    for a, b in zip(g, g0):
        np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-11)
    np.testing.assert_allclose(cf(x, y), v0, rtol=1e-12, atol=1e-12)


# ---- signatures, the trace-time rules, results ----


def test_traced_once_per_signature_and_cached():
    traces = []

    def f(x, scale, power=2):
        traces.append(x.shape)
        return mg.sum(x**power) * scale

    cf = mg.compile(f)
    x = np.arange(3.0)
    for _ in range(3):
        np.testing.assert_allclose(cf.grad(x, 2.0), 4 * x)
    assert traces == [(3,)]
    cf.grad(np.ones(3, np.float32), 2.0)  # a new dtype
    cf.grad(np.ones(4), 2.0)  # a new shape
    cf.grad(x, 3.0)  # a new static value
    np.testing.assert_allclose(cf.grad(x, 1.0, power=3), 3 * x**2)  # a keyword argument
    assert len(traces) == 5
    assert cf.grad(np.ones(3, np.float32), 2.0).dtype == np.float32
    # an int array is converted (float64), as eager, and uses the float64 trace
    np.testing.assert_allclose(cf.grad(np.arange(3), 2.0), 4 * x)
    assert len(traces) == 5


@pytest.mark.parametrize(
    "read",
    [
        lambda t: t.numpy(),
        lambda t: float(mg.sum(t)),
        lambda t: mg.sum(t).item(),
        lambda t: bool(mg.sum(t)),
        lambda t: np.asarray(t),
    ],
    ids=["numpy", "float", "item", "bool", "asarray"],
)
def test_reading_a_traced_value_raises(read):
    def f(x):
        read(x)
        return mg.sum(x)

    with pytest.raises(RuntimeError, match=r"traced by mg.compile"):
        mg.compile(f)(np.ones(3))
    # shapes, dtypes and repr are fine
    seen = []
    mg.compile(lambda x: (seen.append((x.shape, x.dtype, repr(x))), mg.sum(x))[1])(np.ones(3))
    assert seen[0][0] == (3,) and "traced" in seen[0][2]


def test_results_are_the_callers_own_and_inputs_are_read_afresh():
    cf = mg.compile(lambda x: mg.sum(x * x))
    x = np.array([1.0, 2.0, 3.0])
    g1 = cf.grad(x)
    x[0] = 10.0  # changed in place: read afresh
    g2 = cf.grad(x)
    np.testing.assert_allclose(g1, [2.0, 4.0, 6.0])
    np.testing.assert_allclose(g2, [20.0, 4.0, 6.0])
    g1[:] = -1  # writable, and nobody else's
    np.testing.assert_allclose(cf.grad(x), [20.0, 4.0, 6.0])
    assert (g1.flags.writeable and g1.flags.owndata) or g1.base is not None


def test_a_second_replay_allocates_nothing():
    cf = mg.compile(lambda A, b: mg.sum(mg.tanh(A @ b) ** 2) + mg.logdet(A))
    A, b = np.eye(30) * 3 + rng_for("alloc").uniform(size=(30, 30)) * 0.1, np.ones(30)
    cf.value_and_grad(A, b)
    before = mg._core._replay_stats()
    for _ in range(5):
        cf.value_and_grad(A, b)
    after = mg._core._replay_stats()
    assert after[0] == before[0], "a new workspace"
    assert after[1] == before[1], "pooled buffers allocated inside the instruction loop"
    assert after[2] > before[2]


def test_programs_of_many_signatures_share_one_arena():
    """Programs of several signatures replayed in turn on one thread share its arena (grown to
    the largest plan; a workspace made against a smaller one moves its views): every result
    stays the eager one, in any order of sizes."""

    def f(W, X):
        H = mg.tanh(X @ W)
        return mg.sum(mg.logsumexp(H * H + mg.sigmoid(H), axis=1))

    cf = mg.compile(f)
    rng = rng_for("arena")
    W = rng.standard_normal((6, 5))
    X = {n: rng.standard_normal((n, 6)) for n in (3, 40, 700, 9, 2000)}
    for n in (3, 40, 3, 700, 9, 40, 2000, 3, 700):  # grows at 40, 700 and 2000; returns to old sizes
        v, g = cf.value_and_grad(W, X[n])
        rv, rg = mg.value_and_grad(f)(W, X[n])
        np.testing.assert_allclose(v, rv, rtol=1e-13)
        np.testing.assert_allclose(g, rg, rtol=1e-12, atol=1e-14)


def test_tuple_outputs_and_constants_and_no_grad_inside():
    c = np.array([1.0, 2.0])

    def f(x):
        with mg.no_grad():
            s = mg.sum(x)  # recomputed from each call's input, but no gradient flows through it
        return x * c, mg.sum(x * x) + s * x[0]

    cf = mg.compile(f)
    a, b = cf(np.array([3.0, 4.0]))
    np.testing.assert_allclose(a, [3.0, 8.0])
    np.testing.assert_allclose(b, 25 + 7 * 3)
    a, b = cf(np.array([1.0, 1.0]))
    np.testing.assert_allclose(b, 2 + 2)
    g = mg.compile(lambda x: f(x)[1]).grad(np.array([3.0, 4.0]))
    np.testing.assert_allclose(g, [2 * 3 + 7, 8.0])  # s is a constant for the gradient


def test_tensor_arguments_run_eagerly_so_compiled_functions_nest():
    cf = mg.compile(lambda x: mg.sin(x) * x)
    np.testing.assert_allclose(mg.grad(cf)(0.3), np.cos(0.3) * 0.3 + np.sin(0.3))
    np.testing.assert_allclose(mg.grad(mg.grad(cf))(0.3), 2 * np.cos(0.3) - 0.3 * np.sin(0.3))
    np.testing.assert_allclose(cf.grad(mg.tensor(0.3)).numpy(), np.cos(0.3) * 0.3 + np.sin(0.3))


def test_value_dependent_errors_raise_as_eager():
    cf = mg.compile(lambda A: mg.sum(mg.inv(A)))
    cf(np.eye(2))
    with pytest.raises(np.linalg.LinAlgError, match=r"^inv: matrix of shape \(2, 2\) is singular"):
        cf(np.zeros((2, 2)))
    np.testing.assert_allclose(cf(np.eye(2)), 2.0)  # still usable


def test_bad_calls_give_clear_errors():
    cf = mg.compile(lambda x: mg.sum(x), argnums=1)
    with pytest.raises(ValueError, match=r"^compile: argnums 1 is out of range"):
        cf(np.ones(2))
    with pytest.raises(TypeError, match=r"^compile: keyword argument 'k' must be"):
        mg.compile(lambda x, k: x)(np.ones(2), k=np.ones(2))
    with pytest.raises(TypeError, match=r"^compile: f must be callable"):
        mg.compile(3)
    with pytest.raises(ValueError, match=r"^grad: the function's output has shape \(2,\)"):
        mg.compile(lambda x: x).grad(np.ones(2))


# ---- threads ----


def test_eight_threads_replay_one_program_at_once():
    def f(A, x):
        return mg.sum(mg.tanh(A @ x) * mg.logsumexp(x)) + mg.logdet(A)

    cf = mg.compile(f, argnums=(0, 1))
    rng = rng_for("threads")
    inputs = [(np.eye(6) * 4 + rng.uniform(size=(6, 6)), rng.standard_normal(6)) for _ in range(8)]
    want = [cf.value_and_grad(*a) for a in inputs]
    got: dict[int, list] = {}

    def work(k):
        got[k] = [cf.value_and_grad(*inputs[k]) for _ in range(200)]

    threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for k in range(8):
        for v, (dA, dx) in got[k]:
            assert v == want[k][0]
            assert np.array_equal(dA, want[k][1][0]) and np.array_equal(dx, want[k][1][1])


# ---- interrupts ----


def test_ctrl_c_stops_a_long_replay_promptly():
    def f(x):
        for _ in range(3000):
            x = mg.sin(x) * 0.99 + 0.01
        return mg.sum(x)

    cf = mg.compile(f)
    x = np.ones(2000)
    cf(x)  # traced
    timer = threading.Timer(0.2, _thread.interrupt_main)
    start = time.perf_counter()
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        while time.perf_counter() - start < 20:
            cf(x)
    assert time.perf_counter() - start < 5
    np.testing.assert_allclose(cf(np.ones(2)), cf(np.ones(2)))  # still usable


# ---- saving, loading, pickling ----


def _compiled():
    def f(A, b):
        return mg.sum(mg.sigmoid(A @ b) ** 2) + mg.logdet(A)

    cf = mg.compile(f, argnums=(0, 1))
    rng = rng_for("save")
    A, b = np.eye(3) * 2 + rng.uniform(size=(3, 3)), rng.standard_normal(3)
    cf.value_and_grad(A, b)
    cf.hessian(A, b)
    return cf, A, b


def test_save_load_and_pickle_give_the_same_results(tmp_path):
    cf, A, b = _compiled()
    path = tmp_path / "f.mgprog"
    cf.save(path)
    for other in (mg.load(path), pickle.loads(pickle.dumps(cf))):
        v, g = other.value_and_grad(A, b)
        v0, g0 = cf.value_and_grad(A, b)
        assert v == v0 and all(np.array_equal(x, y) for x, y in zip(g, g0))
        for r, r0 in zip(other.hessian(A, b), cf.hessian(A, b)):
            assert all(np.array_equal(x, y) for x, y in zip(r, r0))
        np.testing.assert_array_equal(other.grad(A, b)[1], g0[1])
        with pytest.raises(ValueError, match=r"not traced for the signature\n  a0=\(4, 4\)"):
            other(np.eye(4), np.ones(4))


def test_a_pickled_compiled_function_works_in_another_process(tmp_path):
    cf, A, b = _compiled()
    (tmp_path / "cf.pkl").write_bytes(pickle.dumps(cf))
    np.save(tmp_path / "A.npy", A)
    np.save(tmp_path / "b.npy", b)
    script = (
        "import pickle, numpy as np, sys\n"
        f"cf = pickle.load(open({str(tmp_path / 'cf.pkl')!r}, 'rb'))\n"
        f"A, b = np.load({str(tmp_path / 'A.npy')!r}), np.load({str(tmp_path / 'b.npy')!r})\n"
        "v, (dA, db) = cf.value_and_grad(A, b)\n"
        f"np.save({str(tmp_path / 'dA.npy')!r}, dA)\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=120)
    np.testing.assert_array_equal(np.load(tmp_path / "dA.npy"), cf.grad(A, b)[0])


@pytest.mark.parametrize(
    "corrupt, what",
    [
        (lambda d: b"", "the file is empty"),
        (lambda d: b"PK\x03\x04 a zip file", "not a matgrad program file"),
        (lambda d: d[:20], "truncated"),
        (lambda d: d[: len(d) // 2], "truncated"),
        (lambda d: d[:-1], "truncated"),
        (lambda d: d + b"\x00", "extra bytes"),
        (lambda d: d[:8] + (99).to_bytes(4, "little") + d[12:], "format version 99"),
        (lambda d: d[:40] + bytes([d[40] ^ 0xFF]) + d[41:], "checksum"),
        (lambda d: d[: len(d) - 7] + bytes([d[-7] ^ 0x01]) + d[len(d) - 6 :], "checksum"),
    ],
    ids=["empty", "foreign", "header", "half", "last-byte", "extra", "version", "payload-bit", "tail-bit"],
)
def test_corrupt_truncated_empty_or_foreign_files_raise_value_error(tmp_path, corrupt, what):
    cf, _, _ = _compiled()
    path = tmp_path / "bad.mgprog"
    path.write_bytes(corrupt(cf.to_bytes()))
    with pytest.raises(ValueError, match=what):
        mg.load(path)


@functools.lru_cache(maxsize=1)
def _archive() -> bytes:
    return _compiled()[0].to_bytes()


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_no_corruption_with_a_valid_checksum_crashes_the_loader(data):
    # change bytes of the payload and fix the checksum: the loader must refuse with ValueError
    # (or load a program that still validates), never crash or read out of bounds
    raw = bytearray(_archive())
    payload = raw[32:]
    for _ in range(data.draw(st.integers(1, 4))):
        payload[data.draw(st.integers(0, len(payload) - 1))] = data.draw(st.integers(0, 255))
    h = 1469598103934665603
    for byte in payload:
        h = ((h ^ byte) * 1099511628211) & 0xFFFFFFFFFFFFFFFF
    raw[24:32] = h.to_bytes(8, "little")
    raw[32:] = payload
    try:
        mg._compile._from_bytes(bytes(raw))
    except ValueError:
        pass


def test_programs_print_and_draw():
    cf = mg.compile(lambda x: mg.sum(mg.sin(x) * x))
    cf.value_and_grad(np.ones(3))
    (progs,) = cf.programs().values()
    text = str(progs["value_and_grad"])
    assert "input 0 : float64(3,)" in text and "sin(" in text and "cos(" in text and "workspace" in text
    assert progs["value_and_grad"].to_dot().startswith("digraph program {")
    assert progs["value_and_grad"].workspace_bytes > 0
    p = progs["value_and_grad"]
    assert repr(p) == (
        f"<matgrad Program: 1 inputs, 2 outputs, {p.instructions} instructions, "
        f"workspace {p.workspace_bytes} bytes; print() it for its text>"
    )
