"""Random programs: DAGs of ops with fan-out and broadcasting, against a NumPy mirror.

Single ops are covered by the registry; these check the reverse sweep itself: adjoints summed
over several children, cotangents reduced back to broadcast input shapes, nodes that do not
lead to an input, and the same through create_graph (bitwise) and second order.
"""

from __future__ import annotations

import numpy as np
from gradcheck import (
    F64,
    SEEDS,
    TOLS,
    assert_close,
    check_create_graph_bitwise,
    check_second_order,
    directional_derivative,
    numeric_gradient,
)
from hypothesis import given, settings
from hypothesis import strategies as st

import matgrad as mg

# ops with bounded derivatives on all reals (values stay moderate through long programs)
UNARY = {
    "sin": (mg.sin, np.sin),
    "cos": (mg.cos, np.cos),
    "tanh": (mg.tanh, np.tanh),
    "sigmoid": (mg.sigmoid, lambda x: 1.0 / (1.0 + np.exp(-x))),
    "softplus": (mg.softplus, lambda x: np.logaddexp(0, x)),
    "neg": (mg.neg, np.negative),
    "scale": (lambda x: x * 0.7, lambda x: x * 0.7),
    "shift": (lambda x: 0.3 - x, lambda x: 0.3 - x),
    "sq": (lambda x: mg.square(x) * 0.25, lambda x: np.square(x) * 0.25),
}
BINARY = {
    "add": (mg.add, np.add),
    "sub": (lambda x, y: x - y, np.subtract),
    "mul": (lambda x, y: x * y, np.multiply),
}


@st.composite
def programs(draw):
    m, n = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    in_shapes = draw(st.lists(st.sampled_from([(m, n), (n,), (m, 1), ()]), min_size=1, max_size=3))
    steps = []
    n_nodes = len(in_shapes)
    for _ in range(draw(st.integers(1, 8))):
        kind = draw(st.sampled_from(["unary", "binary", "binary", "sum0"]))
        a = draw(st.integers(0, n_nodes - 1))
        if kind == "unary":
            steps.append(("unary", draw(st.sampled_from(sorted(UNARY))), a))
        elif kind == "binary":
            steps.append(
                ("binary", draw(st.sampled_from(sorted(BINARY))), a, draw(st.integers(0, n_nodes - 1)))
            )
        else:
            steps.append(("sum0", a))
        n_nodes += 1
    outputs = draw(st.lists(st.integers(0, n_nodes - 1), min_size=1, max_size=3))
    return in_shapes, steps, outputs


def run_program(program, inputs, lib):
    """Evaluate with lib = 0 (matgrad) or 1 (NumPy); return sum over outputs of sum(node)."""
    _, steps, outputs = program
    nodes = list(inputs)
    for step in steps:
        if step[0] == "unary":
            nodes.append(UNARY[step[1]][lib](nodes[step[2]]))
        elif step[0] == "binary":
            nodes.append(BINARY[step[1]][lib](nodes[step[2]], nodes[step[3]]))
        else:
            x = nodes[step[1]]
            ndim = x.ndim
            if ndim == 2:
                nodes.append(mg.sum(x, axis=0) if lib == 0 else np.sum(x, axis=0))
            else:
                nodes.append(mg.sum(x) if lib == 0 else np.sum(x))
    total = None
    for k, i in enumerate(outputs):
        term = (mg.sum(nodes[i]) if lib == 0 else np.sum(nodes[i])) * (1.0 + 0.5 * k)
        total = term if total is None else total + term
    return total


@settings(max_examples=100)
@given(program=programs(), seed=SEEDS)
def test_random_program_gradients(program, seed):
    tol = TOLS[F64]
    rng = np.random.default_rng(seed)
    xs = [np.asarray(rng.uniform(-1.5, 1.5, s)) for s in program[0]]
    k = len(xs)

    def f(*args):
        return run_program(program, args, 0)

    value, grads = mg.value_and_grad(f, argnums=tuple(range(k)))(*xs)
    want_value = run_program(program, xs, 1)
    assert_close(value, want_value, tol.value_rtol, tol.value_atol, "program value")
    num = numeric_gradient(lambda a: run_program(program, a, 1), xs, range(k))
    for i, (g, nm) in enumerate(zip(grads, num)):
        assert g.shape == xs[i].shape
        assert_close(g, nm, tol.grad_rtol, tol.grad_atol, f"program gradient of input {i}")
    # dot-product test
    ts = [rng.uniform(-1, 1, x.shape) for x in xs]
    lhs = sum(float(np.sum(g * t)) for g, t in zip(grads, ts))
    rhs = directional_derivative(lambda a: run_program(program, a, 1), xs, ts)
    assert abs(lhs - rhs) <= tol.grad_atol * max(
        1.0, sum(float(np.sum(np.abs(g * t))) for g, t in zip(grads, ts))
    ) + tol.grad_rtol * abs(rhs)
    # through Tensor.backward as well
    leaves = [mg.tensor(x, requires_grad=True) for x in xs]
    out = f(*leaves)
    if out.requires_grad:
        out.backward()
        for leaf, g in zip(leaves, grads):
            got = np.zeros(leaf.shape) if leaf.grad is None else np.asarray(leaf.grad)
            np.testing.assert_array_equal(got, g)


@settings(max_examples=60)
@given(program=programs(), seed=SEEDS)
def test_random_program_create_graph_and_second_order(program, seed):
    rng = np.random.default_rng(seed)
    xs = [np.asarray(rng.uniform(-1.5, 1.5, s)) for s in program[0]]

    def f(*args):
        return run_program(program, args, 0)

    probe = f(*[mg.tensor(x, requires_grad=True) for x in xs])
    if not probe.requires_grad:
        return
    check_create_graph_bitwise(f, xs, rng=rng, what="program")
    check_second_order(f, xs, rng=rng, what="program")
