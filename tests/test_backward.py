"""Eager mode (docs/concepts.md): Tensor.backward with and without a cotangent, .grad
(accumulation across calls, assignment and its dtype), retain_grad, detach, requires_grad and
how it propagates, mg.tensor of a Tensor, and graphs built and swept in several threads."""

from __future__ import annotations

import numpy as np

import matgrad as mg

# ---- backward and .grad ----


def test_grad_accumulates_across_backward_calls():
    x = mg.tensor(np.array([1.0, 2.0, 3.0]), requires_grad=True)
    assert x.grad is None
    mg.sum(x * x).backward()
    np.testing.assert_array_equal(np.asarray(x.grad), [2.0, 4.0, 6.0])
    mg.sum(x * x).backward()
    np.testing.assert_array_equal(np.asarray(x.grad), [4.0, 8.0, 12.0])
    mg.sum(3.0 * x).backward()
    np.testing.assert_array_equal(np.asarray(x.grad), [7.0, 11.0, 15.0])
    x.grad = None
    mg.sum(x).backward()
    np.testing.assert_array_equal(np.asarray(x.grad), [1.0, 1.0, 1.0])


def test_backward_with_cotangent():
    x = mg.tensor(np.array([1.0, 2.0, 3.0]), requires_grad=True)
    y = x * x
    y.backward(np.array([1.0, 10.0, 100.0]))
    np.testing.assert_array_equal(np.asarray(x.grad), [2.0, 40.0, 600.0])


def test_backward_twice_on_the_same_graph_accumulates():
    x = mg.tensor(np.array([0.5, 1.5]), requires_grad=True)
    y = mg.sum(mg.exp(x) * x)
    y.backward()
    y.backward()
    np.testing.assert_allclose(
        np.asarray(x.grad), 2 * np.exp([0.5, 1.5]) * (np.array([0.5, 1.5]) + 1), rtol=1e-14
    )


def test_one_element_outputs():
    # grad needs shape () or (1, 1); backward without cotangent needs one element
    g = mg.grad(lambda z: z @ z.T)(np.array([[1.0, 2.0, 3.0]]))
    np.testing.assert_array_equal(g, [[2.0, 4.0, 6.0]])
    x = mg.tensor(np.array([3.0]), requires_grad=True)
    (x * 2.0).backward()
    np.testing.assert_array_equal(np.asarray(x.grad), [2.0])


def test_assigning_grad():
    x = mg.tensor(np.ones(3), requires_grad=True)
    x.grad = np.array([1.0, 2.0, 3.0])
    mg.sum(x * 2.0).backward()
    np.testing.assert_array_equal(np.asarray(x.grad), [3.0, 4.0, 5.0])
    x.grad = None
    assert x.grad is None


def test_assigning_grad_keeps_the_leafs_dtype():
    # Regression: a float64 gradient was stored on a float32 leaf; the next backward() failed.
    x = mg.tensor(np.ones(3, dtype=np.float32), requires_grad=True)
    try:
        x.grad = np.ones(3)  # float64
    except (TypeError, ValueError):
        return  # refusing the assignment with a clear error is fine too
    assert x.grad.dtype == np.float32
    mg.sum(x * 2.0).backward()
    assert x.grad.dtype == np.float32
    np.testing.assert_array_equal(np.asarray(x.grad), np.full(3, 3.0, dtype=np.float32))


# ---- retain_grad, detach, requires_grad ----


def test_retain_grad():
    x = mg.tensor(np.array([1.0, 2.0]), requires_grad=True)
    h = x * x
    h.retain_grad()
    k = x * 3.0  # not retained
    y = mg.sum(h * 5.0 + k)
    y.backward()
    np.testing.assert_array_equal(np.asarray(h.grad), [5.0, 5.0])
    assert k.grad is None
    np.testing.assert_array_equal(np.asarray(x.grad), [13.0, 23.0])


def test_detach():
    x = mg.tensor(np.array([1.0, 2.0]), requires_grad=True)
    d = x.detach()
    assert not d.requires_grad and d.is_leaf
    np.testing.assert_array_equal(d.numpy(), x.numpy())
    y = mg.sum(x * d)  # d is a constant: dy/dx = d, not 2x
    y.backward()
    np.testing.assert_array_equal(np.asarray(x.grad), [1.0, 2.0])
    assert d.grad is None
    z = (x * 2.0).detach()
    assert not z.requires_grad
    assert not (z * 3.0).requires_grad


def test_requires_grad_propagates():
    c = mg.tensor(np.ones(2))
    x = mg.tensor(np.ones(2), requires_grad=True)
    assert not (c * 2.0 + c).requires_grad
    assert (c * x).requires_grad
    assert not c.requires_grad and x.requires_grad


def test_tensor_constructor_from_tensor():
    t = mg.tensor(np.ones(3))
    assert mg.tensor(t, dtype=np.float32).dtype == np.float32
    c = mg.tensor(t, requires_grad=True)
    assert c.requires_grad and not t.requires_grad
    x = mg.tensor(np.ones(3), requires_grad=True)
    d = mg.tensor(x * 2.0)
    assert not d.requires_grad and d.is_leaf
    np.testing.assert_array_equal(d.numpy(), [2.0, 2.0, 2.0])


# ---- threads ----


def test_threads():
    """Grad mode is per thread; graphs built and differentiated in several threads concurrently."""
    import threading

    seen = {}

    def probe():
        seen["enabled"] = mg.is_grad_enabled()
        seen["rg"] = (mg.tensor(1.0, requires_grad=True) * 2.0).requires_grad

    with mg.no_grad():
        t = threading.Thread(target=probe)
        t.start()
        t.join()
        assert not mg.is_grad_enabled()
    assert seen == {"enabled": True, "rg": True}

    errors = []

    def work(seed):
        try:
            rng = np.random.default_rng(seed)
            for _ in range(300):
                x = rng.uniform(-1, 1, (4, 4))
                g = mg.grad(lambda z: mg.sum(mg.sin(z) * z))(x)
                np.testing.assert_allclose(g, np.cos(x) * x + np.sin(x), rtol=1e-13, atol=1e-15)
                xt = mg.tensor(x, requires_grad=True)
                mg.sum(mg.exp(xt) @ xt).backward()
                assert xt.grad.shape == (4, 4)
        except Exception as e:
            errors.append(e)

    threads = [threading.Thread(target=work, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors

    # a graph built in one thread, differentiated in another
    x = mg.tensor(np.arange(3.0), requires_grad=True)
    y = mg.sum(mg.sin(x) * x)
    t = threading.Thread(target=y.backward)
    t.start()
    t.join()
    np.testing.assert_allclose(
        np.asarray(x.grad), np.cos(np.arange(3.0)) * np.arange(3.0) + np.sin(np.arange(3.0)), rtol=1e-14
    )
