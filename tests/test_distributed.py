"""matgrad.distributed.value_and_grad: sums over shards equal one process's answer on the
concatenated data, in this process (client=None) and on a LocalCluster of 2 worker processes
(loopback only); errors name the shard; a killed worker never gives a partial sum."""

from __future__ import annotations

import faulthandler
import os
import signal
import threading
import time

import numpy as np
import pytest

import matgrad as mg
from matgrad import distributed as mgd


@pytest.fixture(autouse=True)
def watchdog():
    """A test of this module that hangs (a cluster that never answers) ends the run after 5
    minutes with every thread's stack, instead of holding CI until its own limit."""
    faulthandler.dump_traceback_later(300, exit=True)
    yield
    faulthandler.cancel_dump_traceback_later()


def loss(W, b, X, Y):
    """Softmax cross-entropy summed over the rows of a one-layer network (a sum: shards add)."""
    logits = mg.tanh(X @ W + b)
    return mg.sum(mg.logsumexp(logits, axis=1)) - mg.sum(Y * logits)


def make_data(rng, sizes, n_in=5, n_out=3, dtype=np.float64):
    shards = []
    for n in sizes:
        X = rng.standard_normal((n, n_in)).astype(dtype)
        Y = np.eye(n_out, dtype=dtype)[rng.integers(0, n_out, n)]
        shards.append((X, Y))
    return shards


def params(rng, n_in=5, n_out=3):
    return rng.standard_normal((n_in, n_out)), rng.standard_normal((1, n_out))


def reference(shards, W, b, argnums=(0, 1)):
    X = np.concatenate([s[0] for s in shards])
    Y = np.concatenate([s[1] for s in shards])
    return mg.value_and_grad(loss, argnums)(W, b, X, Y)


def close(a, b, rtol=1e-12):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    assert a.shape == b.shape
    scale = max(float(np.max(np.abs(b))), 1e-300)
    assert float(np.max(np.abs(a - b))) <= rtol * scale, (a, b)


# ---- in this process: no Dask needed ----


def test_import_does_not_import_dask():
    from conftest import run_python

    r = run_python(
        """
        import sys
        import matgrad.distributed
        assert "dask" not in sys.modules and "distributed" not in sys.modules, sorted(sys.modules)
        print("ok")
        """
    )
    assert r.returncode == 0 and "ok" in r.stdout, r.stderr


@pytest.mark.parametrize("sizes", [[40], [7, 13, 1, 29], [10, 10, 10]])
def test_local_equals_concatenated(sizes):
    rng = np.random.default_rng(len(sizes))
    shards = make_data(rng, sizes)
    W, b = params(rng)
    vg = mgd.value_and_grad(loss, shards, argnums=(0, 1))
    v, (gW, gb) = vg(W, b)
    rv, (rW, rb) = reference(shards, W, b)
    close(v, rv)
    close(gW, rW)
    close(gb, rb)
    assert gW.shape == W.shape and gb.shape == b.shape and np.shape(v) == ()
    # later calls read the new parameters
    W2 = W + 0.5
    v2, (gW2, _) = vg(W2, b)
    rv2, (rW2, _) = reference(shards, W2, b)
    close(v2, rv2)
    close(gW2, rW2)


def test_local_single_argnum_and_negative():
    rng = np.random.default_rng(3)
    shards = make_data(rng, [6, 9])
    W, b = params(rng)
    _, gW = mgd.value_and_grad(loss, shards)(W, b)
    assert isinstance(gW, np.ndarray) and gW.shape == W.shape
    close(gW, reference(shards, W, b, 0)[1])
    # -3 counts from the end of f's arguments (W, b, X, Y): b
    _, gb = mgd.value_and_grad(loss, shards, argnums=-3)(W, b)
    close(gb, reference(shards, W, b, 1)[1])


def test_local_float32():
    rng = np.random.default_rng(4)
    shards = make_data(rng, [8, 5], dtype=np.float32)
    W, b = (p.astype(np.float32) for p in params(rng))
    v, (gW, gb) = mgd.value_and_grad(loss, shards, argnums=(0, 1))(W, b)
    rv, (rW, rb) = reference(shards, W, b)
    assert v.dtype == gW.dtype == gb.dtype == rv.dtype == np.float32
    close(v, rv, 1e-5)
    close(gW, rW, 1e-5)
    close(gb, rb, 1e-5)


def test_bad_arguments():
    rng = np.random.default_rng(5)
    shards = make_data(rng, [4, 4])
    with pytest.raises(ValueError, match=r"distributed\.value_and_grad: shards is empty"):
        mgd.value_and_grad(loss, [])
    with pytest.raises(TypeError, match="must be callable"):
        mgd.value_and_grad(3, shards)
    with pytest.raises(TypeError, match="list of shards"):
        mgd.value_and_grad(loss, np.zeros((3, 3)))
    with pytest.raises(ValueError, match=r"shard 1 has 1 arrays \(shapes \(4, 5\)\), shard 0 has 2"):
        mgd.value_and_grad(loss, [shards[0], (shards[1][0],)])
    with pytest.raises(ValueError, match="shard 0, item 0 has shape"):
        mgd.value_and_grad(loss, [(np.zeros((2, 2, 2)), np.zeros(2))])
    with pytest.raises(TypeError, match="shard 0, item 1 must hold numbers"):
        mgd.value_and_grad(loss, [(np.zeros((2, 2)), np.array(["a", "b"]))])
    W, b = params(rng)
    with pytest.raises(ValueError, match="argnums 2 names shard array 0"):
        mgd.value_and_grad(loss, shards, argnums=2)(W, b)
    with pytest.raises(ValueError, match="argnums 7 is out of range"):
        mgd.value_and_grad(loss, shards, argnums=7)(W, b)
    with pytest.raises(TypeError, match=r"client must be a distributed\.Client or None, got str"):
        mgd.value_and_grad(loss, shards, "tcp://127.0.0.1:8786")
    with pytest.raises(TypeError, match="call with the parameters"):
        mgd.value_and_grad(loss, shards)()


def test_shard_error_names_its_index():
    rng = np.random.default_rng(6)
    shards = make_data(rng, [4, 4, 4])
    shards[2] = (rng.standard_normal((4, 6)), shards[2][1])  # 6 features where W has 5 rows
    W, b = params(rng)
    with pytest.raises(
        ValueError, match=r"shard 2 \(shapes \(4, 6\), \(4, 3\)\): matmul: shapes \(4, 6\) and \(5, 3\)"
    ):
        mgd.value_and_grad(loss, shards)(W, b)


def nan_loss(W, X):
    return mg.sum(mg.log(X @ W))


def test_check_finite_names_the_shard():
    W = np.ones((2, 1))
    shards = [np.ones((3, 2)), -np.ones((3, 2)), np.ones((2, 2))]
    v, g = mgd.value_and_grad(nan_loss, shards)(W)  # default: NaN flows through, as eager
    assert np.isnan(v) and np.isfinite(g).all()  # log(-2): a NaN value, a finite gradient
    with pytest.raises(FloatingPointError, match=r"shard 1 \(shapes \(3, 2\)\).*not finite"):
        mgd.value_and_grad(nan_loss, shards, check_finite=True)(W)


def test_local_static_parameters_are_part_of_the_signature():
    X = np.arange(6.0).reshape(3, 2)
    W = np.ones((2, 1))

    def f(W, scale, mode, X):
        return mg.sum((X @ W) * scale[0]) * (2.0 if mode == "double" else 1.0)

    vg = mgd.value_and_grad(f, [X, X + 1])
    for scale, mode in [((1.0, 2.0), "single"), ((3.0, 2.0), "single"), ((3.0, 2.0), "double")]:
        v, g = vg(W, scale, mode)
        rv, rg = mg.value_and_grad(f)(W, scale, mode, np.concatenate([X, X + 1]))
        close(v, rv)
        close(g, rg)


def test_local_number_parameter_is_traced_once():
    X = np.arange(6.0).reshape(3, 2)

    def f(a, X):
        return mg.sum(X) * a * a

    vg = mgd.value_and_grad(f, [X, X])
    for a in (0.5, 0.6, 2.0):
        v, g = vg(a)
        close(g, 2 * a * 2 * X.sum())
        assert isinstance(v, np.ndarray) and v.shape == () and isinstance(g, np.ndarray)
    assert len(vg._traced) == 1  # a float in argnums is an array of shape (): one program


def test_local_shards_are_copied_and_value_keeps_fs_shape():
    X = np.arange(6.0).reshape(3, 2)
    W = np.ones((2, 1))
    vg = mgd.value_and_grad(lambda W, X: mg.reshape(mg.sum(X @ W), (1, 1)), [X, X])
    v1, g = vg(W)
    assert v1.shape == (1, 1) and g.shape == (2, 1)
    X[:] = 0.0  # the caller's array: the shards are copies
    v2, _ = vg(W)
    assert float(v2[0, 0]) == float(v1[0, 0]) == 30.0


def test_local_dict_parameters():
    rng = np.random.default_rng(8)
    shards = make_data(rng, [5, 9, 4])
    W, b = params(rng)

    def f(P, scale, X, Y):
        return loss(P["W"], P["extra"][0]["b"], X, Y) * scale

    P = {"W": W, "extra": [{"b": b}]}
    vg = mgd.value_and_grad(f, shards, argnums=(0, 1))
    X = np.concatenate([s[0] for s in shards])
    Y = np.concatenate([s[1] for s in shards])
    for scale in (1.0, 2.5):
        v, (g, gs) = vg(P, scale)
        rv, (rg, rs) = mg.value_and_grad(f, argnums=(0, 1))(P, scale, X, Y)
        close(v, rv)
        close(gs, rs)
        assert sorted(g) == ["W", "extra"] and isinstance(g["extra"], list)
        close(g["W"], rg["W"])
        close(g["extra"][0]["b"], rg["extra"][0]["b"])
    _, gW = mgd.value_and_grad(loss, shards)(W, b)  # and back to plain arrays
    close(gW, reference(shards, W, b, 0)[1])


def test_local_bad_dict_and_timeout_are_refused():
    X = np.ones((3, 2))
    vg = mgd.value_and_grad(lambda W, P, X: mg.sum(X @ W) * P["s"], [X])
    with pytest.raises(TypeError, match="parameter 1 is a dict that is not differentiated"):
        vg(np.ones((2, 1)), {"s": 2.0})
    with pytest.raises(ValueError, match="a differentiated dict has no arrays"):
        mgd.value_and_grad(lambda P, X: mg.sum(X), [X])({})
    with pytest.raises(ValueError, match="timeout must be a positive number"):
        mgd.value_and_grad(lambda W, X: mg.sum(X @ W), [X], timeout=0)


class TwoArgError(Exception):
    def __init__(self, code, detail):
        super().__init__(code, detail)


def test_local_error_that_cannot_be_rebuilt():
    def bad(W, X):
        raise TwoArgError(3, "x")

    with pytest.raises(
        RuntimeError, match=r"shard 0 \(shapes \(3, 2\)\): \(3, 'x'\) \[TwoArgError\]"
    ) as info:
        mgd.value_and_grad(bad, [np.ones((3, 2))])(np.ones((2, 1)))
    assert info.value.shard_index == 0


# ---- on a LocalCluster of 2 worker processes (skipped without Dask: the sanitizers' venv) ----


@pytest.fixture(scope="module")
def client():
    pytest.importorskip("distributed", reason="the distributed extra (Dask) is part of the test extra")
    from distributed import Client, LocalCluster

    cluster = LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=":0",
        silence_logs=40,
    )
    c = Client(cluster)
    try:
        c.wait_for_workers(2, timeout=60)
        yield c
    finally:
        c.close()
        cluster.close()


def test_cluster_equals_concatenated_and_local(client):
    rng = np.random.default_rng(10)
    shards = make_data(rng, [11, 30, 3, 17, 25])  # different sizes
    W, b = params(rng)
    vg = mgd.value_and_grad(loss, shards, client, argnums=(0, 1))
    assert sorted(set(vg.placement)) == sorted(client.nthreads())  # both used
    rv, (rW, rb) = reference(shards, W, b)
    for _ in range(3):
        v, (gW, gb) = vg(W, b)
        close(v, rv)
        close(gW, rW)
        close(gb, rb)
    lv, (lW, _) = mgd.value_and_grad(loss, shards, argnums=(0, 1))(W, b)
    close(v, lv)
    close(gW, lW)
    # a dict of parameters: its own program, shipped; the gradients come back as a dict
    _, g = mgd.value_and_grad(lambda P, X, Y: loss(P["W"], P["b"], X, Y), shards, client)({"W": W, "b": b})
    close(g["W"], rW)
    close(g["b"], rb)
    # a new parameter signature (float32 b) is traced and shipped again
    W2, b2 = W * 0.5, b.astype(np.float32)
    _, (gW2, _) = vg(W2, b2)
    close(gW2, reference(shards, W2, b2)[1][0], 1e-6)


def test_cluster_shards_stay_on_workers(client):
    rng = np.random.default_rng(11)
    shards = make_data(rng, [2000, 2000], n_in=50)
    W, b = params(rng, n_in=50)
    vg = mgd.value_and_grad(loss, shards, client, argnums=(0, 1))
    vg(W, b)  # the program is shipped
    shard_bytes = sum(a.nbytes for s in shards for a in s)
    placement = vg.placement
    before = vg.bytes_sent()
    for _ in range(3):
        vg(W, b)
    after = vg.bytes_sent()
    sent = {k: (after[k] - before[k]) / 3 for k in after}
    assert sent["client_to_scheduler"] > W.nbytes  # the parameters go out with each call
    assert sent["workers_out"] > 0  # the tree's partial sums
    assert sent["total"] < shard_bytes / 20, (sent, shard_bytes)
    assert vg.placement == placement


def test_cluster_shard_error(client):
    rng = np.random.default_rng(12)
    shards = make_data(rng, [4, 4, 4, 4])
    shards[3] = (rng.standard_normal((4, 6)), shards[3][1])
    W, b = params(rng)
    with pytest.raises(ValueError, match=r"shard 3 \(shapes \(4, 6\), \(4, 3\)\)"):
        mgd.value_and_grad(loss, shards, client)(W, b)
    shards = [np.ones((3, 2)), np.ones((3, 2)), -np.ones((3, 2)), -np.ones((2, 2))]
    with pytest.raises(FloatingPointError, match=r"shard 2 \(shapes \(3, 2\)\)"):
        mgd.value_and_grad(nan_loss, shards, client, check_finite=True)(np.ones((2, 1)))


def slow_loss(W, X):
    # enough work per shard that the kill lands mid-call
    H = X
    for _ in range(30):
        H = mg.tanh(H @ W)
    return mg.sum(H * H)


def test_cluster_worker_killed_mid_call(client):
    rng = np.random.default_rng(13)
    W = rng.standard_normal((60, 60)) / 8
    shards = [rng.standard_normal((3000, 60)) for _ in range(8)]  # ~75 ms each
    vg = mgd.value_and_grad(slow_loss, shards, client)
    ref_v, ref_g = mg.value_and_grad(slow_loss)(W, np.concatenate(shards))
    vg(W)  # shipped and warm
    pids = client.run(os.getpid)
    victim_addr = vg.placement[0]
    victim = pids[victim_addr]

    def kill():
        time.sleep(0.1)
        os.kill(victim, signal.SIGKILL)

    t = threading.Thread(target=kill)
    t.start()
    t0 = time.perf_counter()
    try:
        v, g = vg(W)
    except RuntimeError as e:  # allowed: a clear error, never a partial sum
        assert "no partial sum" in str(e)
    else:
        assert vg.last_call["attempts"] >= 2  # the kill landed during the call
        close(v, ref_v)
        close(g, ref_g)
    t.join()
    assert time.perf_counter() - t0 < 120
    client.wait_for_workers(1, timeout=60)
    v, g = vg(W)  # and the next call is whole again
    close(v, ref_v)
    close(g, ref_g)
    assert victim_addr not in vg.placement or victim_addr in client.nthreads()


def test_cluster_one_task_per_worker_thread():
    pytest.importorskip("distributed", reason="the distributed extra (Dask) is part of the test extra")
    from distributed import Client, LocalCluster

    rng = np.random.default_rng(14)
    shards = make_data(rng, [9, 4, 12, 7, 3])
    W, b = params(rng)
    with (
        LocalCluster(
            n_workers=1, threads_per_worker=2, processes=False, dashboard_address=":0", silence_logs=40
        ) as cluster,
        Client(cluster) as c,
    ):
        vg = mgd.value_and_grad(loss, shards, c, argnums=(0, 1))
        v, (gW, gb) = vg(W, b)
        assert len(vg._groups()) == 2  # the worker's two threads each sum some shards
    rv, (rW, rb) = reference(shards, W, b)
    close(v, rv)
    close(gW, rW)
    close(gb, rb)


def test_cluster_large_parameters_are_scattered(client):
    # parameters over 4 MB go to the workers by scatter, once per call, not inside each task
    rng = np.random.default_rng(15)
    W = rng.standard_normal((1000, 700)) / 30  # 5.6 MB
    shards = [rng.standard_normal((3, 1000)) for _ in range(3)]

    def f(W, X):
        return mg.sum(mg.tanh(X @ W) ** 2)

    vg = mgd.value_and_grad(f, shards, client)
    before = vg.bytes_sent()
    v, g = vg(W)
    after = vg.bytes_sent()
    assert after["client_to_scheduler"] - before["client_to_scheduler"] < W.nbytes / 10
    rv, rg = mg.value_and_grad(f)(W, np.concatenate(shards))
    close(v, rv)
    close(g, rg)


def test_cluster_timeout_with_a_stopped_worker(client):
    rng = np.random.default_rng(16)
    shards = make_data(rng, [5, 6, 7, 8])
    W, b = params(rng)
    vg = mgd.value_and_grad(loss, shards, client, argnums=(0, 1), timeout=2.0)
    vg(W, b)
    pid = client.run(os.getpid)[vg.placement[0]]
    os.kill(pid, signal.SIGSTOP)
    try:
        t0 = time.perf_counter()
        with pytest.raises(TimeoutError, match=r"within timeout=2.0 s.*no partial sum"):
            vg(W, b)
        assert time.perf_counter() - t0 < 10
    finally:
        os.kill(pid, signal.SIGCONT)
    v, (gW, _) = vg(W, b)  # the worker is back: whole again
    rv, (rW, _) = reference(shards, W, b)
    close(v, rv)
    close(gW, rW)
