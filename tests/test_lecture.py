"""The lecture example, against its closed form.

    f(x) = sqrt(x^2 + exp(x^2)) + cos(x^2 + exp(x^2))

with named intermediates

    a = x^2,  b = exp(a),  c = a + b,  d = sqrt(c),  e = cos(c),  f = d + e

and adjoints (df/dnode)

    f_bar = 1,  d_bar = 1,  e_bar = 1,
    c_bar = d_bar / (2 sqrt(c)) - e_bar sin(c)         (c has two children: d and e)
    b_bar = c_bar
    a_bar = c_bar + b_bar exp(a) = c_bar (1 + exp(x^2))  (a has two children: b and c)
    x_bar = 2 x a_bar = 2x (1/(2 sqrt(c)) - sin c)(1 + exp(x^2)).
"""

from __future__ import annotations

import numpy as np
import pytest
from gradcheck import F32, F64, TOLS, assert_close, directional_derivative

import matgrad as mg

XS = [-1.5, -0.7, -0.1, 0.0, 0.3, 1.0, 1.3]


def f_closed(x):
    x = np.asarray(x, dtype=np.float64)
    c = x**2 + np.exp(x**2)
    return np.sqrt(c) + np.cos(c)


def adjoints_closed(x):
    """df/dnode for every named node, as NumPy closed forms."""
    x = np.asarray(x, dtype=np.float64)
    a = x**2
    c = a + np.exp(a)
    c_bar = 1.0 / (2.0 * np.sqrt(c)) - np.sin(c)
    one = np.ones_like(x)
    return {
        "f": one,
        "d": one,
        "e": one,
        "c": c_bar,
        "b": c_bar,
        "a": c_bar * (1.0 + np.exp(a)),
        "x": 2.0 * x * (1.0 / (2.0 * np.sqrt(c)) - np.sin(c)) * (1.0 + np.exp(x**2)),
    }


SQUARES = {
    "x*x": lambda x: x * x,
    "x**2": lambda x: x**2,
    "square": mg.square,
}


def build(x, square):
    a = square(x)
    b = mg.exp(a)
    c = a + b
    d = mg.sqrt(c)
    e = mg.cos(c)
    f = d + e
    return {"a": a, "b": b, "c": c, "d": d, "e": e, "f": f}


def lecture_f(x):
    return build(x, SQUARES["x*x"])["f"]


@pytest.mark.parametrize("square", list(SQUARES), ids=list(SQUARES))
@pytest.mark.parametrize("x0", XS)
def test_adjoint_of_every_named_node(x0, square):
    tol = TOLS[F64]
    x = mg.tensor(x0, requires_grad=True)
    nodes = build(x, SQUARES[square])
    for node in nodes.values():
        node.retain_grad()
    assert_close(nodes["f"].numpy(), f_closed(x0), tol.value_rtol, tol.value_atol, "f value")
    nodes["f"].backward()
    want = adjoints_closed(x0)
    for name, node in nodes.items():
        assert node.grad is not None, f"retain_grad() node {name} got no gradient"
        assert node.grad.shape == (), name
        assert_close(np.asarray(node.grad), want[name], tol.grad_rtol, tol.grad_atol, f"df/d{name} at x={x0}")
    assert x.grad.shape == ()
    assert_close(np.asarray(x.grad), want["x"], tol.grad_rtol, tol.grad_atol, f"df/dx at x={x0}")


@pytest.mark.parametrize("shape", [(7,), (1, 7), (7, 1)])
def test_adjoints_elementwise_on_arrays(shape):
    """The same graph on an array (cotangent of ones): every adjoint elementwise."""
    tol = TOLS[F64]
    xv = np.asarray(XS).reshape(shape)
    x = mg.tensor(xv, requires_grad=True)
    nodes = build(x, SQUARES["x*x"])
    for node in nodes.values():
        node.retain_grad()
    nodes["f"].backward(np.ones(shape))
    want = adjoints_closed(xv)
    for name, node in nodes.items():
        assert node.grad.shape == shape
        assert_close(np.asarray(node.grad), want[name], tol.grad_rtol, tol.grad_atol, f"df/d{name}")
    assert_close(np.asarray(x.grad), want["x"], tol.grad_rtol, tol.grad_atol, "df/dx")


@pytest.mark.parametrize("x0", XS)
def test_transforms_match_closed_form(x0):
    tol = TOLS[F64]
    want = adjoints_closed(x0)["x"]
    g = mg.grad(lecture_f)(x0)
    assert isinstance(g, np.ndarray) and g.shape == () and g.dtype == np.float64
    assert_close(g, want, tol.grad_rtol, tol.grad_atol, "grad")
    v, g2 = mg.value_and_grad(lecture_f)(x0)
    assert_close(v, f_closed(x0), tol.value_rtol, tol.value_atol, "value_and_grad value")
    np.testing.assert_array_equal(g, g2)
    # The closed form itself against central differences of the closed-form f.
    fd = directional_derivative(lambda xs: f_closed(xs[0]), [np.asarray(x0)], [np.asarray(1.0)])
    assert_close(want, fd, tol.grad_rtol, tol.grad_atol, "closed form vs finite differences")


@pytest.mark.parametrize("x0", XS)
def test_second_derivative_matches_differences_of_closed_form(x0):
    tol = TOLS[F64]
    want = directional_derivative(lambda xs: adjoints_closed(xs[0])["x"], [np.asarray(x0)], [np.asarray(1.0)])
    got = mg.grad(mg.grad(lecture_f))(x0)
    assert_close(got, want, tol.grad_rtol, tol.grad_atol, "d2f/dx2 via grad(grad(f))")
    x = mg.tensor(x0, requires_grad=True)
    lecture_f(x).backward(create_graph=True)
    g = x.grad
    assert_close(np.asarray(g), adjoints_closed(x0)["x"], tol.grad_rtol, tol.grad_atol, "create_graph grad")
    x.grad = None
    g.backward()
    assert_close(np.asarray(x.grad), want, tol.grad_rtol, tol.grad_atol, "d2f/dx2 via create_graph")


def test_float32():
    tol = TOLS[F32]
    xv = np.asarray(XS, dtype=np.float32)
    x = mg.tensor(xv, requires_grad=True)
    assert x.dtype == np.float32
    f = lecture_f(x)
    assert f.dtype == np.float32
    assert_close(f.numpy(), f_closed(xv.astype(np.float64)), tol.value_rtol, tol.value_atol, "f32 value")
    f.backward(np.ones(len(XS), dtype=np.float32))
    assert x.grad.dtype == np.float32
    assert_close(
        np.asarray(x.grad),
        adjoints_closed(xv.astype(np.float64))["x"],
        tol.grad_rtol,
        tol.grad_atol,
        "f32 grad",
    )


def test_check_grad_on_lecture_function():
    err = mg.check_grad(lecture_f, np.asarray(0.8))
    assert 0.0 <= err < 1e-6
