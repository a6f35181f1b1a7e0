"""mg.detect_anomaly(): the first op whose value or cotangent becomes NaN or Inf raises
AnomalyError naming the op, the shapes and the caller's line; NaN that came with the data
passes; nothing reaches .grad; the mode is per thread, nests, decorates and costs nothing
outside."""

from __future__ import annotations

import re
import threading

import numpy as np
import pytest

import matgrad as mg

HERE = re.escape(__file__)


def line_of(marker: str) -> int:
    with open(__file__) as f:
        for i, text in enumerate(f, 1):
            if marker in text and "line_of" not in text:
                return i
    raise AssertionError(marker)


def test_forward_nan_names_op_shapes_and_line():
    x = np.array([[1.0, -1.0], [4.0, 9.0]])
    with pytest.raises(mg.AnomalyError) as e, mg.detect_anomaly():
        mg.sqrt(x)  # MARK-sqrt
    msg = str(e.value)
    assert msg.startswith("sqrt: ") and "nan" in msg and "(2, 2)" in msg, msg
    assert re.search(rf"{HERE}:{line_of('MARK-sqrt')} in test_forward_nan", msg), msg


def test_forward_inf_from_finite_inputs():
    with pytest.raises(mg.AnomalyError, match=r"^log: .*inf.*\(3,\)"), mg.detect_anomaly():
        mg.log(np.array([1.0, 0.0, 2.0]))
    with pytest.raises(mg.AnomalyError, match=r"^div: .*inf.*shapes \(2,\), \(2,\)"), mg.detect_anomaly():
        mg.div(np.ones(2), np.array([1.0, 0.0]))


def test_a_new_nan_from_an_infinite_input_is_reported():
    with pytest.raises(mg.AnomalyError, match=r"^sub: .*nan"), mg.detect_anomaly():
        mg.sub(np.array([np.inf]), np.array([np.inf]))


def test_values_that_came_with_the_data_pass():
    with mg.detect_anomaly():
        y = mg.exp(np.array([np.nan, 1.0]))
        z = mg.add(np.array([np.inf, 1.0]), 1.0)
        w = mg.sum(np.array([1.0, 2.0]))
    assert np.isnan(y.numpy()[0]) and np.isinf(z.numpy()[0]) and float(w) == 3.0


def test_backward_names_the_op_and_where_it_was_called():
    x = mg.tensor(np.array([1.0, 0.0, 4.0]), requires_grad=True)
    with pytest.raises(mg.AnomalyError) as e, mg.detect_anomaly():
        y = mg.sqrt(x)  # MARK-bwd
        mg.sum(y * 2.0).backward()
    msg = str(e.value)
    assert msg.startswith("sqrt (backward): ") and "inf" in msg and "(3,)" in msg, msg
    assert f":{line_of('MARK-bwd')} in test_backward_names" in msg, msg
    assert x.grad is None  # nothing was accumulated


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
def test_transforms_are_checked(dtype):
    def f(t):
        return mg.sum(mg.sqrt(t) * 3.0)  # MARK-f

    x = np.array([0.0, 1.0], dtype)
    for transform in (mg.grad, mg.value_and_grad, mg.jacobian, mg.hessian):
        with pytest.raises(mg.AnomalyError, match=rf"^sqrt \(backward\).*:{line_of('MARK-f')} in f"):
            with mg.detect_anomaly():
                transform(f)(x)
    # the same calls are silent outside the mode
    assert np.isinf(mg.grad(f)(x)[0])


def test_double_backward_is_checked():
    # the gradient of 2 x^1.5 is 3 x^0.5, finite at 0; its own derivative 1.5 x^-0.5 is not
    x = mg.tensor(np.array([0.0, 4.0]), requires_grad=True)
    with mg.detect_anomaly():
        mg.sum(mg.pow(x, 1.5) * 2.0).backward(create_graph=True)  # MARK-first
        g = x.grad
        x.grad = None
        np.testing.assert_allclose(g.numpy(), [0.0, 6.0])
        with pytest.raises(mg.AnomalyError, match=rf"\(backward\).*:{line_of('MARK-first')} in test_double"):
            mg.sum(g).backward()
    assert x.grad is None
    with mg.detect_anomaly(), pytest.raises(mg.AnomalyError, match=r"\(backward\)"):
        mg.hessian(lambda t: mg.sum(mg.pow(t, 1.5) * 2.0))(np.array([0.0, 4.0]))


def test_finite_programs_are_unchanged():
    rng = np.random.default_rng(0)
    A, b = rng.standard_normal((4, 4)) + 4 * np.eye(4), rng.standard_normal(4)

    def f(A, b):
        return mg.sum(mg.tanh(mg.solve(A, b)) ** 2) + mg.logdet(A @ A.T)

    want = mg.value_and_grad(f, argnums=(0, 1))(A, b)
    with mg.detect_anomaly():
        got = mg.value_and_grad(f, argnums=(0, 1))(A, b)
        H = mg.hessian(lambda t: mg.sum(mg.exp(t) * t))(b)
    assert float(got[0]) == float(want[0])
    for g, w in zip(got[1], want[1]):
        np.testing.assert_array_equal(g, w)
    np.testing.assert_allclose(H, np.diag(np.exp(b) * (b + 2)), rtol=1e-12)


def test_mode_nests_restores_and_decorates():
    assert not mg._core._anomaly_enabled()
    with mg.detect_anomaly():
        assert mg._core._anomaly_enabled()
        with mg.detect_anomaly():
            pass
        assert mg._core._anomaly_enabled()
    assert not mg._core._anomaly_enabled()

    @mg.detect_anomaly()
    def f(x):
        return mg.log(x)

    with pytest.raises(mg.AnomalyError):
        f(np.zeros(2))
    assert not mg._core._anomaly_enabled()  # restored after the raise
    assert np.isinf(mg.log(np.zeros(2)).numpy()).all()


def test_mode_is_per_thread():
    seen = []
    with mg.detect_anomaly():
        t = threading.Thread(target=lambda: seen.append((mg._core._anomaly_enabled(), mg.log(np.zeros(1)))))
        t.start()
        t.join()
    assert seen and seen[0][0] is False and np.isinf(seen[0][1].numpy()[0])


def test_anomaly_error_is_a_floating_point_and_runtime_error():
    assert issubclass(mg.AnomalyError, FloatingPointError) and issubclass(mg.AnomalyError, RuntimeError)
    assert mg.AnomalyError.__module__ == "matgrad._core" and mg.AnomalyError.__doc__.startswith(
        "AnomalyError("
    )


def test_nn_training_step_reports_the_users_line():
    net = mg.nn.MLP([3, 4, 2])
    x = np.ones((5, 3))
    with pytest.raises(mg.AnomalyError) as e, mg.detect_anomaly():
        out = net(x)
        loss = mg.sum(mg.log(out - out))  # MARK-nn
        loss.backward()
    assert f":{line_of('MARK-nn')} in test_nn_training_step" in str(e.value), str(e.value)


def test_compiled_replay_is_not_checked_but_tracing_is():
    cf = mg.compile(lambda t: mg.sum(mg.log(t)))
    assert np.isinf(float(cf(np.zeros(2))))
    with mg.detect_anomaly():
        assert np.isinf(float(cf(np.zeros(2))))  # a replay: documented as unchecked
        with pytest.raises(mg.AnomalyError, match=r"^log: "):
            mg.compile(lambda t: mg.sum(mg.log(t)))(np.zeros(3))  # traced in the mode


def test_a_nan_that_came_with_the_data_passes_backward_too():
    x = mg.tensor(np.array([np.nan, 1.0]), requires_grad=True)
    with mg.detect_anomaly():
        mg.sum(mg.exp(x) * 2.0).backward()  # exp's cotangent is NaN where x is: not exp's doing
    g = x.grad.numpy()
    assert np.isnan(g[0]) and g[1] == pytest.approx(2 * np.e)


def test_sites_are_forgotten_when_nodes_die():
    import gc

    with mg.detect_anomaly():
        for _ in range(100):
            y = mg.sum(mg.sin(mg.tensor(np.ones(3), requires_grad=True)))
        del y
    gc.collect()
    x = mg.tensor(np.zeros(2), requires_grad=True)
    with pytest.raises(mg.AnomalyError, match="was not made in anomaly mode"), mg.detect_anomaly():
        y = mg.sum(mg.sqrt(x))  # made in the mode: has a site
        mg._core._set_anomaly(False)
        z = mg.sum(mg.sqrt(x * 1.0))  # made outside: no site, whatever address it reuses
        mg._core._set_anomaly(True)
        del y
        z.backward()
