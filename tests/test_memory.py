"""Graphs free themselves: flat RSS over many eager iterations, and deep chains without recursion.

Each check runs in a fresh interpreter: the measurement is not disturbed by pytest, and a
stack overflow or abort is a failed test instead of a dead test run. The deep-chain children
run with a 2 MB stack limit, so any recursion proportional to the graph depth crashes them.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import textwrap

import numpy as np
import pytest

PRELUDE = """
import gc, json, os
import numpy as np
import matgrad as mg

PAGE = os.sysconf("SC_PAGE_SIZE")

def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE
"""


def run(code: str, stack_bytes: int | None = None, timeout: float = 240.0) -> dict:
    def limit_stack():
        if stack_bytes is not None:
            resource.setrlimit(resource.RLIMIT_STACK, (stack_bytes, stack_bytes))

    proc = subprocess.run(
        [sys.executable, "-c", PRELUDE + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=timeout,
        preexec_fn=limit_stack,
        check=False,
    )
    assert proc.returncode == 0, (
        f"child process failed with return code {proc.returncode} (negative: killed by signal)\n"
        f"stdout:\n{proc.stdout[-2000:]}\nstderr:\n{proc.stderr[-4000:]}"
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


MB = 1 << 20


def test_eager_build_and_backward_keeps_rss_flat():
    out = run(
        """
        rng = np.random.default_rng(0)
        W = rng.standard_normal((8, 8))
        small = rng.standard_normal(3)
        data = rng.standard_normal((8, 8))

        def step(i):
            x = mg.tensor(data, requires_grad=True)
            s = mg.tensor(small, requires_grad=True)
            h = mg.tanh(x @ W) * 0.5 + mg.exp(-mg.square(x))
            y = mg.sum(h * h) + mg.sum(mg.sin(s) * s) + mg.mean(x, axis=0).sum()
            y.backward()
            return x.grad, s.grad

        for i in range(10_000):  # warm-up: pools and caches reach their steady state
            step(i)
        gc.collect()
        before = rss()
        for i in range(100_000):
            gx, gs = step(i)
        gc.collect()
        after = rss()
        ok = bool(np.all(np.isfinite(np.asarray(gx))))
        print(json.dumps({"before": before, "after": after, "finite": ok}))
        """
    )
    growth = out["after"] - out["before"]
    assert out["finite"]
    assert growth < 20 * MB, f"RSS grew by {growth / MB:.1f} MB over 100,000 iterations"


def test_transforms_and_higher_order_keep_rss_flat():
    out = run(
        """
        rng = np.random.default_rng(1)
        x0 = rng.standard_normal((6, 6))

        def f(x):
            return mg.sum(mg.sigmoid(x @ x) * x)

        def step():
            g = mg.grad(f)(x0)
            h = mg.grad(lambda z: mg.sum(mg.grad(f)(z) * z))(x0)
            x = mg.tensor(x0, requires_grad=True)
            f(x).backward(create_graph=True)
            gg = x.grad
            x.grad = None
            mg.sum(gg * gg).backward()
            with mg.no_grad():
                f(mg.tensor(x0, requires_grad=True))
            return g, h

        for _ in range(2_000):
            step()
        gc.collect()
        before = rss()
        for _ in range(20_000):
            step()
        gc.collect()
        after = rss()
        print(json.dumps({"before": before, "after": after}))
        """
    )
    growth = out["after"] - out["before"]
    assert growth < 20 * MB, f"RSS grew by {growth / MB:.1f} MB over 20,000 iterations of transforms"


def test_dropped_large_graphs_give_memory_back():
    """A graph holding ~280 MB of values, once dropped (and the pool trimmed), gives it back."""
    out = run(
        """
        gc.collect()
        base = rss()
        x = mg.tensor(np.ones((400, 400)), requires_grad=True)  # 1.28 MB per value
        y = x
        for _ in range(70):
            y = mg.sin(y) * 0.5 + x
        peak = rss()
        mg.sum(y).backward()
        del x, y
        gc.collect()
        mg._core._pool_trim()
        after = rss()
        print(json.dumps({"base": base, "peak": peak, "after": after}))
        """
    )
    assert out["peak"] - out["base"] > 200 * MB, out  # the graph really was big
    assert out["after"] - out["base"] < 40 * MB, (
        f"{(out['after'] - out['base']) / MB:.0f} MB still resident after dropping the graph"
    )


CHAIN = 10**6


@pytest.mark.parametrize("kind", ["mul_scalar", "add_tensor", "unary"])
def test_million_node_chain_builds_differentiates_and_frees(kind):
    out = run(
        f"""
        import math
        n = {CHAIN}
        x = mg.tensor(0.5, requires_grad=True)
        c = mg.tensor(1e-7)
        y = x
        if "{kind}" == "mul_scalar":
            for _ in range(n):
                y = y * 1.0000001
            want_value = 0.5 * 1.0000001 ** n
            want_grad = 1.0000001 ** n
        elif "{kind}" == "add_tensor":
            for _ in range(n):
                y = y + c
            want_value = 0.5 + n * 1e-7
            want_grad = 1.0
        else:
            for _ in range(n):
                y = mg.neg(y)
            want_value = 0.5
            want_grad = 1.0
        value = float(y.numpy())
        y.backward()
        grad = float(np.asarray(x.grad))
        g2 = float(mg.grad(lambda t: t)(1.0))  # the engine still works afterwards
        del y
        gc.collect()
        # dropping the last reference freed the chain iteratively; a fresh chain is fine too
        z = x
        for _ in range(1000):
            z = z * 1.0
        z.backward()
        print(json.dumps({{"value": value, "want_value": want_value, "grad": grad,
                          "want_grad": want_grad, "g2": g2}}))
        """,
        stack_bytes=2 * MB,
    )
    assert out["value"] == pytest.approx(out["want_value"], rel=1e-9)
    assert out["grad"] == pytest.approx(out["want_grad"], rel=1e-9)
    assert out["g2"] == 1.0


def test_million_node_chain_through_the_grad_transform():
    out = run(
        f"""
        def f(x):
            for _ in range({CHAIN}):
                x = x * 1.0000001
            return x
        g = float(mg.grad(f)(0.5))
        print(json.dumps({{"g": g, "want": 1.0000001 ** {CHAIN}}}))
        """,
        stack_bytes=2 * MB,
    )
    assert out["g"] == pytest.approx(out["want"], rel=1e-9)


def test_deep_chain_with_create_graph_differentiates_twice():
    out = run(
        """
        n = 200_000
        x = mg.tensor(0.3, requires_grad=True)
        y = x
        for _ in range(n):
            y = y * 1.000001 + 0.0
        y = y * y  # y = (a x)^2 with a = 1.000001**n
        y.backward(create_graph=True)
        g = x.grad
        x.grad = None
        g.backward()
        a = 1.000001 ** n
        print(json.dumps({"g": float(np.asarray(g)), "want_g": 2 * a * a * 0.3,
                          "h": float(np.asarray(x.grad)), "want_h": 2 * a * a}))
        del g, y
        """,
        stack_bytes=2 * MB,
    )
    assert out["g"] == pytest.approx(out["want_g"], rel=1e-8)
    assert out["h"] == pytest.approx(out["want_h"], rel=1e-8)


def test_wide_fan_out_graph():
    """One input used 10^5 times: adjoints summed, no per-edge recursion."""
    out = run(
        """
        x = mg.tensor(np.array([1.0, 2.0]), requires_grad=True)
        terms = [x * float(i % 7) for i in range(100_000)]
        total = terms[0]
        for t in terms[1:]:
            total = total + t
        del terms
        mg.sum(total).backward()
        want = float(sum(i % 7 for i in range(100_000)))
        print(json.dumps({"g": np.asarray(x.grad).tolist(), "want": want}))
        """,
        stack_bytes=2 * MB,
    )
    assert out["g"] == [out["want"], out["want"]]


# ---- the per-thread buffer caches: a settable bound, and memory back when threads exit ----

THREADS = """
import threading, time
def work(seed, seen):
    rng = np.random.default_rng(seed)
    x = mg.tensor(rng.standard_normal((1000, 1000)), requires_grad=True)  # 8 MB values
    for _ in range(3):
        ys = [mg.sin(x) * float(i) for i in range(12)]
        mg.sum(sum(ys[1:], ys[0])).backward()
        del ys
    seen.append(mg._core._pool_cached_bytes())
def run_threads(n):
    seen = []
    ts = [threading.Thread(target=work, args=(i, seen)) for i in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return seen
def settle(base, slack):
    # join() returns before a thread's C++ thread_local destructors have run: wait for them
    for _ in range(100):
        if rss() - base < slack:
            break
        time.sleep(0.05)
    return rss()
"""


def test_programs_of_many_signatures_hold_one_workspace():
    # eight signatures of one compiled function, replayed in turn: the thread's temporaries are
    # the largest memory plan, not the sum of the eight (about 8 x 30 MB)
    out = run(
        """
        cf = mg.compile(lambda W, X: mg.sum(mg.sigmoid(X @ W) ** 2))
        W = np.ones((16, 128)) / 16
        Xs = [np.ones((n, 16)) for n in range(30000, 38000, 1000)]
        plans = []
        for X in Xs:  # traced and built, not run yet
            e = cf._entry((W, X), {}, "test")
            plans.append(cf._program(e, "value_and_grad", "test").workspace_bytes)
        gc.collect()
        base = rss()
        for _ in range(3):
            for X in Xs:
                cf.value_and_grad(W, X)
        gc.collect()
        print(json.dumps({"grew": rss() - base, "largest": max(plans), "sum": sum(plans)}))
        """
    )
    assert out["sum"] > 6 * out["largest"] > 6 * 20 * MB, out  # the plans are large and many
    # what the replays keep: one arena (and the results, the pool's cache) where each plan
    # used to keep its own
    assert out["grew"] < 2 * out["largest"], out


def test_threads_give_their_caches_back_when_they_exit():
    out = run(
        THREADS
        + textwrap.dedent(
            """
        gc.collect()
        base = rss()
        seen = run_threads(8)
        gc.collect()
        after = settle(base, 40 << 20)
        print(json.dumps({"base": base, "after": after, "seen": seen, "limit": mg.get_cache_limit()}))
        """
        )
    )
    assert out["limit"] == 256 * MB
    assert min(out["seen"]) > 128 * MB, out  # each thread really filled a large cache
    assert out["after"] - out["base"] < 40 * MB, (
        f"{(out['after'] - out['base']) / MB:.0f} MB still resident after 8 threads with "
        f"{sum(out['seen']) / MB:.0f} MB of caches ended"
    )


def test_cache_limit_bounds_every_thread():
    out = run(
        THREADS
        + textwrap.dedent(
            """
        prev = mg.set_cache_limit(16 << 20)
        seen = run_threads(4)
        x = mg.tensor(np.ones((1000, 1000)))
        for _ in range(5):
            y = mg.sin(x) + mg.cos(x)
        del y
        here = mg._core._pool_cached_bytes()
        back = mg.set_cache_limit(1 << 20)  # lowering it trims this thread's cache at once
        trimmed = mg._core._pool_cached_bytes()
        mg.set_cache_limit(0)
        for _ in range(3):
            y = mg.sin(x) * 2.0
        del y
        print(json.dumps({"prev": prev, "back": back, "seen": seen, "here": here, "trimmed": trimmed,
                          "none": mg._core._pool_cached_bytes()}))
        """
        )
    )
    assert out["prev"] == 256 * MB and out["back"] == 16 * MB, out
    assert max(out["seen"]) <= 16 * MB and 0 < out["here"] <= 16 * MB, out
    assert out["trimmed"] <= 1 * MB and out["none"] == 0, out


@pytest.mark.parametrize(
    ("value", "want"), [("64M", 64 * MB), ("1GiB", 1 << 30), ("4096", 4096), ("0", 0), ("512 kb", 512 << 10)]
)
def test_cache_limit_from_the_environment(value, want):
    proc = subprocess.run(
        [sys.executable, "-W", "error", "-c", "import matgrad as mg; print(mg.get_cache_limit())"],
        capture_output=True,
        text=True,
        env={**os.environ, "MATGRAD_CACHE_LIMIT": value},
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert int(proc.stdout) == want


@pytest.mark.parametrize("value", ["abc", "-5", "12T", "1.5G", "99999999999999999999999"])
def test_a_bad_cache_limit_in_the_environment_warns_and_keeps_the_default(value):
    proc = subprocess.run(
        [sys.executable, "-c", "import matgrad as mg; print(mg.get_cache_limit())"],
        capture_output=True,
        text=True,
        env={**os.environ, "MATGRAD_CACHE_LIMIT": value},
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert int(proc.stdout) == 256 * MB
    assert "RuntimeWarning" in proc.stderr and f"MATGRAD_CACHE_LIMIT={value} is not a size" in proc.stderr


def test_set_cache_limit_checks_its_argument():
    import matgrad as mg

    prev = mg.get_cache_limit()
    try:
        with pytest.raises(ValueError, match=r"set_cache_limit: nbytes = -1 is negative"):
            mg.set_cache_limit(-1)
        for bad in (1.5, "1M", None, True):
            with pytest.raises(TypeError, match=r"set_cache_limit: nbytes must be an int"):
                mg.set_cache_limit(bad)
        assert mg.set_cache_limit(np.int64(1 << 20)) == prev
        assert mg.get_cache_limit() == 1 << 20
        assert mg.set_cache_limit(2**80) == 1 << 20  # beyond size_t: no bound
    finally:
        mg.set_cache_limit(prev)
    assert mg.get_cache_limit() == prev


# ---- backward(create_graph=True): resetting .grad frees the cycle it makes ----


def test_resetting_grad_after_create_graph_frees_everything():
    out = run(
        """
import warnings
warnings.simplefilter("ignore")  # backward(create_graph=True)'s note on the cycle
def loop(n, reset):
    for _ in range(n):
        x = mg.tensor(np.ones(64), requires_grad=True)
        mg.sum(mg.sin(x) ** 3).backward(create_graph=True)
        if reset:
            x.grad = None
loop(2000, True)
gc.collect(); base = rss()
loop(20000, True)
gc.collect(); reset = rss() - base
loop(20000, False)
gc.collect(); kept = rss() - base - reset
print(json.dumps({"reset": reset, "kept": kept}))
""",
    )
    assert out["reset"] < 8 << 20, out  # flat when .grad is reset
    assert out["kept"] > 16 << 20, out  # the cycle the warning is about is real
