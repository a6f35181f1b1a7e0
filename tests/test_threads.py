"""mg.set_num_threads / mg.get_num_threads: the count, its default, bad arguments, and results
that are bitwise repeatable for a count and equal to rounding across counts (GEMM and long
elementwise runs are split between threads; Note [kernel threads])."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import numpy as np
import pytest

import matgrad as mg


@pytest.fixture
def restore_threads():
    saved = mg.get_num_threads()
    yield
    mg.set_num_threads(saved)


def test_set_and_get(restore_threads):
    mg.set_num_threads(1)
    assert mg.get_num_threads() == 1
    mg.set_num_threads(np.int64(3))  # NumPy's integers are ints here
    assert mg.get_num_threads() == 3
    mg.set_num_threads(64)  # more threads than cores is allowed
    assert mg.get_num_threads() == 64


@pytest.mark.parametrize("bad", [0, -2, -(10**30)])
def test_counts_below_one_are_value_errors(bad, restore_threads):
    mg.set_num_threads(2)
    with pytest.raises(ValueError, match="set_num_threads"):
        mg.set_num_threads(bad)
    assert mg.get_num_threads() == 2


@pytest.mark.parametrize("bad", [2.0, "2", None, True])
def test_non_integers_are_type_errors(bad, restore_threads):
    with pytest.raises(TypeError, match="set_num_threads"):
        mg.set_num_threads(bad)


def test_huge_counts_are_value_errors(restore_threads):
    with pytest.raises(ValueError, match="set_num_threads"):
        mg.set_num_threads(10**30)


def _default_threads(env):
    code = "import matgrad as mg; print(mg.get_num_threads())"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return int(out.stdout)


def test_default_is_the_cores_or_omp_num_threads():
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    assert _default_threads(env) == len(os.sched_getaffinity(0))
    assert _default_threads({**env, "OMP_NUM_THREADS": "3"}) == 3
    assert _default_threads({**env, "OMP_NUM_THREADS": "nonsense"}) == len(os.sched_getaffinity(0))


def network_loss(A1, b1, A2, X, Y):
    h = mg.tanh(X @ A1 + b1)
    return mg.sum((mg.sigmoid(h @ A2) - Y) ** 2)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_results_repeat_bitwise_and_agree_across_counts(dtype, restore_threads):
    rng = np.random.default_rng(21)
    # big enough that the products and the elementwise runs are split between threads
    args = [
        rng.normal(size=(300, 256)) / 17,
        rng.normal(size=256) * 0.1,
        rng.normal(size=(256, 80)) / 16,
        rng.uniform(size=(512, 300)),
        rng.uniform(size=(512, 80)),
    ]
    args = [a.astype(dtype) for a in args]
    vg = mg.value_and_grad(network_loss, argnums=(0, 1, 2))
    results = {}
    for n in (1, 2, 3):
        mg.set_num_threads(n)
        first = vg(*args)
        for _ in range(3):
            again = vg(*args)
            np.testing.assert_array_equal(again[0], first[0])
            for g, h in zip(again[1], first[1]):
                np.testing.assert_array_equal(g, h)
        results[n] = first
    rtol = 1e-4 if dtype == np.float32 else 1e-11
    for n in (2, 3):
        np.testing.assert_allclose(results[n][0], results[1][0], rtol=rtol)
        for g, h in zip(results[n][1], results[1][1]):
            np.testing.assert_allclose(g, h, rtol=rtol, atol=rtol * np.abs(h).max())


def test_compiled_calls_from_several_threads_with_kernel_threads(restore_threads):
    mg.set_num_threads(2)
    rng = np.random.default_rng(22)
    A, X = rng.normal(size=(200, 150)), rng.normal(size=(300, 200))
    cf = mg.compile(lambda a, x: mg.sum(mg.sin(x @ a)))
    want = cf.value_and_grad(A, X)
    bad = []

    def call():
        for _ in range(5):
            v, g = cf.value_and_grad(A, X)
            if not (v == want[0] and np.array_equal(g, want[1])):
                bad.append(1)

    ts = [threading.Thread(target=call) for _ in range(3)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not bad
