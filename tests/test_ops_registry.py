"""The op registry of the test suite: every public op, checked the same way.

Each Case is one way of calling an op (a function, an operator, a reflected operator with a
Python scalar or a NumPy array, a method) with an in-domain input generator per argument and
a NumPy reference forward. The tests below walk the whole table, so no op ships unchecked:

* value == NumPy reference (shape, NEP 50 dtype, numbers), float64 and float32;
* gradient vs central differences and the dot-product VJP test (gradcheck.gradcheck);
* float32: value and gradient with float32 tolerances, gradient dtype float32;
* hypothesis-drawn shapes (0-D, (1,), (n,), 1x1, 1xn, nx1, mxn, broadcasting pairs) plus a
  fixed list of named shapes and broadcasting pairs;
* create_graph=True gives the first-order gradient bit for bit;
* second order: Hessian-vector products via backward(create_graph=True) and grad(grad(f)),
  and f'' of every elementwise op via mg.grad(mg.grad(f)), against central differences of
  the first derivative.

A separate test checks that the table covers every op name in matgrad.__all__. What is
particular to one op family (conventions at kinks, special values, regressions, closed forms)
is in that family's file: test_elementwise.py, test_reductions.py, test_shape_ops.py,
test_linalg.py and test_matrix_calculus.py.
"""

from __future__ import annotations

import dataclasses
import functools
import zlib
from typing import Any, Callable

import numpy as np
import pytest
import scipy.linalg
from gradcheck import (
    F32,
    F64,
    SEEDS,
    TOLS,
    assert_close,
    broadcast_pairs,
    check_create_graph_bitwise,
    check_second_order,
    directional_derivative,
    gradcheck,
    matmul_pairs,
    reshape_targets,
    shapes,
)
from hypothesis import given
from hypothesis import strategies as st

import matgrad as mg

# ---- in-domain input generators ----
# Every generator keeps x +- 2 * FD_STEP * t (|t| <= 1) inside the smooth domain: log/sqrt
# inputs positive, pow bases positive, abs/relu/division away from 0, tan away from its
# poles, maximum/minimum operands never closer than 0.15 (away from the kink).


def real(rng, shape):
    return np.asarray(rng.uniform(-2.0, 2.0, size=shape))


def positive(rng, shape):
    return np.asarray(rng.uniform(0.5, 2.0, size=shape))


def nonzero(rng, shape):
    return np.asarray(rng.choice([-1.0, 1.0], size=shape) * rng.uniform(0.3, 2.0, size=shape))


def above_minus_one(rng, shape):
    """log1p's domain, x > -1, with room for the finite-difference step."""
    return np.asarray(rng.uniform(-0.8, 2.0, size=shape))


def small(rng, shape):
    return np.asarray(rng.uniform(-1.2, 1.2, size=shape))


def grid_lo(rng, shape):
    """k/2 + jitter: never within 0.15 of a grid_hi value (nor of 0.25 / -0.25)."""
    return np.asarray(rng.integers(-4, 5, size=shape) * 0.5 + rng.uniform(-0.05, 0.05, size=shape))


def grid_hi(rng, shape):
    return np.asarray(rng.integers(-4, 4, size=shape) * 0.5 + 0.25 + rng.uniform(-0.05, 0.05, size=shape))


def spread(rng, shape):
    """Distinct values at least 0.4 apart (max and its ties stay put under the FD step)."""
    n = int(np.prod(shape, dtype=np.int64))
    return np.asarray((rng.permutation(n) * 0.5 - n / 4 + rng.uniform(-0.05, 0.05, n)).reshape(shape))


def wellcond(rng, shape):
    """A square matrix (n + 1) I + U(-1, 1): condition number below 3; det < 0 half the time."""
    n = shape[0]
    x = rng.uniform(-1.0, 1.0, size=shape) + (n + 1) * np.eye(n)
    if rng.integers(2):
        x[0] = -x[0]
    return x


def sym(x):
    return 0.5 * (x + x.T)


def spd(rng, shape):
    """Symmetric positive definite (eigenvalues >= n)."""
    n = shape[0]
    m = rng.uniform(-1.0, 1.0, size=shape)
    return m @ m.T + n * np.eye(n)


def _first_row_away_from_zero(rng, m, r):
    """Orthonormal columns (m, r) whose first entries are at least 0.1 in magnitude, so that
    signed_columns (which fixes each vector's sign by its first entry) is smooth around them."""
    while True:
        q, _ = np.linalg.qr(rng.standard_normal((m, r)))
        if np.all(np.abs(q[0]) >= 0.1):
            return q


def separated_sym(rng, shape):
    """Eigenvalues at least 0.5 apart (Q diag(w) Q^T) plus an antisymmetric part, which eigh and
    eigvalsh do not read (they take (A + A^T) / 2)."""
    n = shape[0]
    q = _first_row_away_from_zero(rng, n, n)
    w = np.cumsum(rng.uniform(0.5, 1.0, n)) - 0.4 * n
    k = rng.uniform(-0.5, 0.5, size=shape)
    return (q * w) @ q.T + (k - k.T)


def separated_rect(rng, shape):
    """Singular values at least 0.5 apart and at least 0.5 (U diag(s) V^T)."""
    m, n = shape
    r = min(m, n)
    u = _first_row_away_from_zero(rng, m, r)
    v, _ = np.linalg.qr(rng.standard_normal((n, r)))
    s = 0.5 + np.cumsum(rng.uniform(0.5, 1.0, r))
    return (u * s) @ v.T


def near_identity(rng, shape):
    """expm of a matrix with entries in (-0.3, 0.3): eigenvalues near 1, off the negative axis."""
    return scipy.linalg.expm(rng.uniform(-0.3, 0.3, size=shape))


def signed_columns(v):
    """The columns of V with the sign that makes the first row positive (eigenvectors and
    singular vectors are unique up to that sign)."""
    return v * (v[0:1, :] / abs(v[0:1, :]))


# ---- the registry ----


@dataclasses.dataclass(frozen=True)
class Case:
    name: str  # unique test id
    op: str  # the public op (a name in matgrad.__all__) this case exercises
    fn: Callable[..., Any]  # matgrad side
    ref: Callable[..., Any]  # NumPy reference
    domains: tuple  # one input generator per argument
    shapes: Any  # hypothesis strategy -> tuple of argument shapes
    diff: tuple | None = None  # which arguments are Tensors (the rest stay NumPy arrays)
    operators: tuple = ()  # Tensor dunder methods this case exercises
    elementwise: bool = False  # one Tensor argument, elementwise: f'' is checked pointwise
    kwargs: Callable[[Any, tuple], dict] | None = None  # extra op arguments drawn per example
    fixed: tuple | None = None  # the named argument shapes (default: the usual lists by arity)

    @property
    def arity(self) -> int:
        return len(self.domains)

    def __repr__(self) -> str:
        return self.name


ONE = shapes().map(lambda s: (s,))
PAIR = broadcast_pairs()
MATMUL = matmul_pairs()


def sigmoid_ref(x):
    return 1.0 / (1.0 + np.exp(-x))


def softplus_ref(x):
    return np.logaddexp(0, x)


def relu_ref(x):
    return np.maximum(x, 0)


UNARY = [
    ("neg", np.negative, real),
    ("exp", np.exp, real),
    ("log", np.log, positive),
    ("log1p", np.log1p, above_minus_one),
    ("expm1", np.expm1, real),
    ("sin", np.sin, real),
    ("cos", np.cos, real),
    ("tan", np.tan, small),
    ("tanh", np.tanh, real),
    ("sqrt", np.sqrt, positive),
    ("abs", np.abs, nonzero),
    ("square", np.square, real),
    ("sigmoid", sigmoid_ref, real),
    ("relu", relu_ref, nonzero),
    ("softplus", softplus_ref, real),
]

BINARY = [
    ("add", np.add, (real, real)),
    ("sub", np.subtract, (real, real)),
    ("mul", np.multiply, (real, real)),
    ("div", np.divide, (real, nonzero)),
    ("pow", np.power, (positive, real)),
    ("maximum", np.maximum, (grid_lo, grid_hi)),
    ("minimum", np.minimum, (grid_lo, grid_hi)),
]

CASES: list = []


def add(*cases: Case) -> None:
    CASES.extend(cases)


for _name, _ref, _dom in UNARY:
    add(Case(_name, _name, getattr(mg, _name), _ref, (_dom,), ONE, elementwise=True))

for _name, _ref, _doms in BINARY:
    add(Case(_name, _name, getattr(mg, _name), _ref, _doms, PAIR))

# Scalar operands (Python scalars are weak: they never change the dtype), as operators and
# through the module functions, plain and reflected.
S = 1.5
add(
    Case("-x", "neg", lambda x: -x, np.negative, (real,), ONE, operators=("__neg__",), elementwise=True),
    Case(
        "abs(x)", "abs", lambda x: abs(x), np.abs, (nonzero,), ONE, operators=("__abs__",), elementwise=True
    ),
    Case(
        "x+s", "add", lambda x: x + S, lambda x: x + S, (real,), ONE, operators=("__add__",), elementwise=True
    ),
    Case(
        "s+x",
        "add",
        lambda x: S + x,
        lambda x: S + x,
        (real,),
        ONE,
        operators=("__radd__",),
        elementwise=True,
    ),
    Case(
        "x+int",
        "add",
        lambda x: x + 2,
        lambda x: x + 2,
        (real,),
        ONE,
        operators=("__add__",),
        elementwise=True,
    ),
    Case(
        "x-s", "sub", lambda x: x - S, lambda x: x - S, (real,), ONE, operators=("__sub__",), elementwise=True
    ),
    Case(
        "s-x",
        "sub",
        lambda x: S - x,
        lambda x: S - x,
        (real,),
        ONE,
        operators=("__rsub__",),
        elementwise=True,
    ),
    Case(
        "x*s", "mul", lambda x: x * S, lambda x: x * S, (real,), ONE, operators=("__mul__",), elementwise=True
    ),
    Case(
        "s*x",
        "mul",
        lambda x: S * x,
        lambda x: S * x,
        (real,),
        ONE,
        operators=("__rmul__",),
        elementwise=True,
    ),
    Case(
        "int*x",
        "mul",
        lambda x: 3 * x,
        lambda x: 3 * x,
        (real,),
        ONE,
        operators=("__rmul__",),
        elementwise=True,
    ),
    Case(
        "x/s",
        "div",
        lambda x: x / S,
        lambda x: x / S,
        (real,),
        ONE,
        operators=("__truediv__",),
        elementwise=True,
    ),
    Case(
        "s/x",
        "div",
        lambda x: S / x,
        lambda x: S / x,
        (nonzero,),
        ONE,
        operators=("__rtruediv__",),
        elementwise=True,
    ),
    Case("pow(x,1.0)", "pow", lambda x: mg.pow(x, 1.0), lambda x: x**1.0, (real,), ONE, elementwise=True),
    Case(
        "1.7**x",
        "pow",
        lambda x: 1.7**x,
        lambda x: 1.7**x,
        (real,),
        ONE,
        operators=("__rpow__",),
        elementwise=True,
    ),
    Case("add(x,s)", "add", lambda x: mg.add(x, S), lambda x: x + S, (real,), ONE, elementwise=True),
    Case("add(s,x)", "add", lambda x: mg.add(S, x), lambda x: S + x, (real,), ONE, elementwise=True),
    Case("sub(x,s)", "sub", lambda x: mg.sub(x, S), lambda x: x - S, (real,), ONE, elementwise=True),
    Case("sub(s,x)", "sub", lambda x: mg.sub(S, x), lambda x: S - x, (real,), ONE, elementwise=True),
    Case("mul(s,x)", "mul", lambda x: mg.mul(S, x), lambda x: S * x, (real,), ONE, elementwise=True),
    Case("div(x,s)", "div", lambda x: mg.div(x, S), lambda x: x / S, (real,), ONE, elementwise=True),
    Case("div(s,x)", "div", lambda x: mg.div(S, x), lambda x: S / x, (nonzero,), ONE, elementwise=True),
    Case("pow(x,2.5)", "pow", lambda x: mg.pow(x, 2.5), lambda x: x**2.5, (positive,), ONE, elementwise=True),
    Case("pow(x,3)", "pow", lambda x: mg.pow(x, 3), lambda x: x**3, (real,), ONE, elementwise=True),
    Case("pow(1.7,x)", "pow", lambda x: mg.pow(1.7, x), lambda x: 1.7**x, (real,), ONE, elementwise=True),
    Case(
        "maximum(x,s)",
        "maximum",
        lambda x: mg.maximum(x, 0.25),
        lambda x: np.maximum(x, 0.25),
        (grid_lo,),
        ONE,
        elementwise=True,
    ),
    Case(
        "minimum(s,x)",
        "minimum",
        lambda x: mg.minimum(0.25, x),
        lambda x: np.minimum(0.25, x),
        (grid_lo,),
        ONE,
        elementwise=True,
    ),
    # NumPy scalars are strong (NEP 50): np.float64 promotes a float32 tensor to float64.
    Case(
        "f64scalar*x",
        "mul",
        lambda x: np.float64(S) * x,
        lambda x: np.float64(S) * x,
        (real,),
        ONE,
        operators=("__rmul__",),
        elementwise=True,
    ),
    Case(
        "x*f64scalar",
        "mul",
        lambda x: x * np.float64(S),
        lambda x: x * np.float64(S),
        (real,),
        ONE,
        operators=("__mul__",),
        elementwise=True,
    ),
    Case(
        "x+f32scalar",
        "add",
        lambda x: x + np.float32(S),
        lambda x: x + np.float32(S),
        (real,),
        ONE,
        operators=("__add__",),
        elementwise=True,
    ),
)

# Tensor (op) Tensor operators.

# x ** p for Python-number exponents, including pow's exact shortcuts (0, 1, 2, -1) and their
# neighbours; the reference uses the float exponent (NumPy refuses negative int powers of ints).
_POW_EXPONENTS = [
    (2.5, positive),
    (3, real),
    (2, real),
    (-1.5, positive),
    (0, real),
    (1, real),
    (-1, nonzero),
    (-2, nonzero),
    (0.5, positive),
]
add(
    *[
        Case(
            f"x**{p}",
            "pow",
            lambda x, p=p: x**p,
            lambda x, p=p: x ** float(p),
            (dom,),
            ONE,
            operators=("__pow__",),
            elementwise=True,
        )
        for p, dom in _POW_EXPONENTS
    ]
)

add(
    Case("x+y", "add", lambda x, y: x + y, np.add, (real, real), PAIR, operators=("__add__",)),
    Case("x-y", "sub", lambda x, y: x - y, np.subtract, (real, real), PAIR, operators=("__sub__",)),
    Case("x*y", "mul", lambda x, y: x * y, np.multiply, (real, real), PAIR, operators=("__mul__",)),
    Case("x/y", "div", lambda x, y: x / y, np.divide, (real, nonzero), PAIR, operators=("__truediv__",)),
    Case("x**y", "pow", lambda x, y: x**y, np.power, (positive, real), PAIR, operators=("__pow__",)),
    Case("x@y", "matmul", lambda x, y: x @ y, np.matmul, (real, real), MATMUL, operators=("__matmul__",)),
)

# NumPy arrays on either side (ndarray (op) Tensor reaches the Tensor's reflected method since
# Tensor sets __array_ufunc__ = None). The NumPy operand is data (not differentiated).
CONST_LEFT = (False, True)
CONST_RIGHT = (True, False)
add(
    Case("a+x", "add", lambda a, x: a + x, np.add, (real, real), PAIR, CONST_LEFT, ("__radd__",)),
    Case("a-x", "sub", lambda a, x: a - x, np.subtract, (real, real), PAIR, CONST_LEFT, ("__rsub__",)),
    Case("a*x", "mul", lambda a, x: a * x, np.multiply, (real, real), PAIR, CONST_LEFT, ("__rmul__",)),
    Case("a/x", "div", lambda a, x: a / x, np.divide, (real, nonzero), PAIR, CONST_LEFT, ("__rtruediv__",)),
    Case("a**x", "pow", lambda a, x: a**x, np.power, (positive, real), PAIR, CONST_LEFT, ("__rpow__",)),
    Case("a@x", "matmul", lambda a, x: a @ x, np.matmul, (real, real), MATMUL, CONST_LEFT, ("__rmatmul__",)),
    Case("x+a", "add", lambda x, a: x + a, np.add, (real, real), PAIR, CONST_RIGHT, ("__add__",)),
    Case("x-a", "sub", lambda x, a: x - a, np.subtract, (real, real), PAIR, CONST_RIGHT, ("__sub__",)),
    Case("x*a", "mul", lambda x, a: x * a, np.multiply, (real, real), PAIR, CONST_RIGHT, ("__mul__",)),
    Case("x/a", "div", lambda x, a: x / a, np.divide, (real, nonzero), PAIR, CONST_RIGHT, ("__truediv__",)),
    Case("x**a", "pow", lambda x, a: x**a, np.power, (positive, real), PAIR, CONST_RIGHT, ("__pow__",)),
    Case("x@a", "matmul", lambda x, a: x @ a, np.matmul, (real, real), MATMUL, CONST_RIGHT, ("__matmul__",)),
    Case("add(a,x)", "add", lambda a, x: mg.add(a, x), np.add, (real, real), PAIR, CONST_LEFT),
    Case("pow(x,a)", "pow", lambda x, a: mg.pow(x, a), np.power, (positive, real), PAIR, CONST_RIGHT),
    Case(
        "maximum(a,x)",
        "maximum",
        lambda a, x: mg.maximum(a, x),
        np.maximum,
        (grid_lo, grid_hi),
        PAIR,
        CONST_LEFT,
    ),
    Case("matmul(x,a)", "matmul", lambda x, a: mg.matmul(x, a), np.matmul, (real, real), MATMUL, CONST_RIGHT),
)

# Reductions: axis None, 0, 1, -1, -2 (no keepdims), as functions and methods.


def _reduce_method(x, name, axis):
    return getattr(x, name)(axis=axis)


for _ax in (None, 0, 1, -1, -2):
    _min_ndim = 0 if _ax is None else (1 if _ax in (0, -1) else 2)
    _shapes = shapes(min_ndim=_min_ndim).map(lambda s: (s,))
    for _red, _npf in (("sum", np.sum), ("mean", np.mean)):
        add(
            Case(
                f"{_red}(axis={_ax})",
                _red,
                functools.partial(getattr(mg, _red), axis=_ax),
                functools.partial(_npf, axis=_ax),
                (real,),
                _shapes,
            ),
            Case(
                f"x.{_red}(axis={_ax})",
                _red,
                functools.partial(_reduce_method, name=_red, axis=_ax),
                functools.partial(_npf, axis=_ax),
                (real,),
                _shapes,
            ),
        )
add(
    Case("x.sum()", "sum", lambda x: x.sum(), np.sum, (real,), ONE),
    Case("x.mean()", "mean", lambda x: x.mean(), np.mean, (real,), ONE),
)


@st.composite
def _dot_pairs(draw):
    """np.dot operands: the matmul pairs, or a 0-D operand with any shape (elementwise)."""
    if draw(st.booleans()):
        return draw(MATMUL)
    other = draw(shapes())
    return ((), other) if draw(st.booleans()) else (other, ())


add(
    Case("matmul", "matmul", mg.matmul, np.matmul, (real, real), MATMUL),
    Case("dot", "dot", mg.dot, np.dot, (real, real), _dot_pairs()),
    Case("outer", "outer", mg.outer, np.outer, (real, real), st.tuples(shapes(), shapes())),
    Case("trace", "trace", mg.trace, np.trace, (real,), shapes(min_ndim=2).map(lambda s: (s,))),
    Case("transpose", "transpose", mg.transpose, np.transpose, (real,), ONE),
    Case("x.T", "transpose", lambda x: x.T, np.transpose, (real,), ONE),
)


def _reshape_kwargs(data, arg_shapes):
    return {"shape": data.draw(st.sampled_from(reshape_targets(arg_shapes[0])), label="target")}


add(
    Case(
        "reshape",
        "reshape",
        lambda x, shape: mg.reshape(x, shape),
        lambda x, shape: np.reshape(x, shape),
        (real,),
        ONE,
        kwargs=_reshape_kwargs,
    ),
    Case(
        "x.reshape(shape)",
        "reshape",
        lambda x, shape: x.reshape(shape),
        lambda x, shape: np.reshape(x, shape),
        (real,),
        ONE,
        kwargs=_reshape_kwargs,
    ),
    Case(
        "x.reshape(*shape)",
        "reshape",
        lambda x, shape: x.reshape(*shape) if shape else x.reshape(()),
        lambda x, shape: np.reshape(x, shape),
        (real,),
        ONE,
        kwargs=_reshape_kwargs,
    ),
)

# ---- matrix calculus ----

SQUARE = st.integers(1, 4).map(lambda n: ((n, n),))
DIM3 = st.integers(1, 3)
SQUARE_FIXED = (((1, 1),), ((2, 2),), ((4, 4),))


@st.composite
def _solve_shapes(draw):
    n = draw(st.integers(1, 4))
    return (n, n), draw(st.sampled_from([(n,), (n, 1), (n, draw(st.integers(1, 3)))]))


def _lse_ref(x, axis=None):
    m = np.max(x, axis=axis, keepdims=True)
    return np.squeeze(m, axis=axis) + np.log(np.sum(np.exp(x - m), axis=axis))


def _where_mask(a, b):
    shape = np.broadcast_shapes(np.shape(a), np.shape(b))
    return (np.arange(int(np.prod(shape, dtype=np.int64))).reshape(shape) % 3) != 1


add(
    Case("det", "det", mg.det, np.linalg.det, (wellcond,), SQUARE, fixed=SQUARE_FIXED),
    Case(
        "logdet",
        "logdet",
        mg.logdet,
        lambda x: np.linalg.slogdet(x)[1],
        (wellcond,),
        SQUARE,
        fixed=SQUARE_FIXED,
    ),
    Case(
        "slogdet[1]",
        "slogdet",
        lambda x: mg.slogdet(x)[1],
        lambda x: np.linalg.slogdet(x)[1],
        (wellcond,),
        SQUARE,
        fixed=SQUARE_FIXED,
    ),
    Case(
        "sign*exp(logabs)",
        "slogdet",
        lambda x: mg.slogdet(x)[0] * mg.exp(mg.slogdet(x)[1]),
        np.linalg.det,
        (wellcond,),
        SQUARE,
        fixed=SQUARE_FIXED,
    ),
    Case("inv", "inv", mg.inv, np.linalg.inv, (wellcond,), SQUARE, fixed=SQUARE_FIXED),
    *(
        Case(
            f"matrix_power(n={_n})",
            "matrix_power",
            functools.partial(mg.matrix_power, n=_n),
            functools.partial(np.linalg.matrix_power, n=_n),
            (wellcond,),
            SQUARE,
            fixed=SQUARE_FIXED,
        )
        for _n in (1, 2, 3, 5, -1, -2)  # n = 0: a constant (tests/test_linalg.py)
    ),
    Case(
        "solve",
        "solve",
        mg.solve,
        np.linalg.solve,
        (wellcond, real),
        _solve_shapes(),
        fixed=(((3, 3), (3,)), ((3, 3), (3, 2)), ((1, 1), (1,)), ((2, 2), (2, 1))),
    ),
    Case(
        "solve(a,x)",
        "solve",
        mg.solve,
        np.linalg.solve,
        (wellcond, real),
        _solve_shapes(),
        CONST_LEFT,
        fixed=(((3, 3), (3,)),),
    ),
    Case("cholesky", "cholesky", mg.cholesky, np.linalg.cholesky, (spd,), SQUARE, fixed=SQUARE_FIXED),
    Case(
        "cholesky(sym)",
        "cholesky",
        lambda x: mg.cholesky(0.5 * (x + x.T)),
        lambda x: np.linalg.cholesky(sym(x)),
        (spd,),
        SQUARE,
        fixed=SQUARE_FIXED,
    ),
    Case("norm", "norm", mg.norm, np.linalg.norm, (nonzero,), ONE),
    Case(
        "quad_form",
        "quad_form",
        mg.quad_form,
        lambda x, b: x.T @ b @ x,
        (real, real),
        st.integers(1, 4).flatmap(
            lambda n: st.sampled_from([((n,), (n, n)), ((n, 1), (n, n)), ((n, 2), (n, n))])
        ),
        fixed=(((3,), (3, 3)), ((1,), (1, 1)), ((3, 2), (3, 3))),
    ),
    Case(
        "kron",
        "kron",
        mg.kron,
        np.kron,
        (real, real),
        st.tuples(DIM3, DIM3, DIM3, DIM3).map(lambda d: ((d[0], d[1]), (d[2], d[3]))),
        fixed=(((2, 3), (2, 2)), ((1, 1), (3, 2)), ((3, 1), (1, 4))),
    ),
    Case(
        "where",
        "where",
        lambda a, b: mg.where(_where_mask(a, b), a, b),
        lambda a, b: np.where(_where_mask(a, b), a, b),
        (real, real),
        PAIR,
    ),
    Case(
        "where(mask,x,s)",
        "where",
        lambda a: mg.where(_where_mask(a, a), a, 0.5),
        lambda a: np.where(_where_mask(a, a), a, np.asarray(0.5, dtype=a.dtype)),
        (real,),
        ONE,
    ),
    Case("diag", "diag", mg.diag, np.diag, (real,), shapes(min_ndim=1).map(lambda s: (s,))),
    Case(
        "diag(k=1)",
        "diag",
        lambda x: mg.diag(x, 1),
        lambda x: np.diag(x, 1),
        (real,),
        shapes(min_ndim=1).map(lambda s: (s,)),
    ),
    Case(
        "diag(k=-2)",
        "diag",
        lambda x: mg.diag(x, -2),
        lambda x: np.diag(x, -2),
        (real,),
        shapes(min_ndim=1).map(lambda s: (s,)),
    ),
)
for _ax in (None, 0, 1, -1, -2):
    _min_ndim = 0 if _ax is None else (1 if _ax in (0, -1) else 2)
    _shapes = shapes(min_ndim=_min_ndim).map(lambda s: (s,))
    add(
        Case(
            f"logsumexp(axis={_ax})",
            "logsumexp",
            functools.partial(mg.logsumexp, axis=_ax),
            functools.partial(_lse_ref, axis=_ax),
            (real,),
            _shapes,
        ),
        Case(
            f"max(axis={_ax})",
            "max",
            functools.partial(mg.max, axis=_ax),
            functools.partial(np.max, axis=_ax),
            (spread,),
            _shapes,
        ),
    )

RECT = st.tuples(DIM3, DIM3).map(lambda d: ((d[0] + 1, d[1] + 1),))
RECT_FIXED = (((1, 1),), ((3, 3),), ((4, 2),), ((2, 4),))


def _np_svd_signed(x):
    u, s, vt = np.linalg.svd(x, full_matrices=False)
    sg = np.sign(u[0:1, :])
    return u * sg, s, vt * sg.T


def _mg_svd_signed(x):
    u, s, vt = mg.svd(x)
    sg = u[0:1, :] / abs(u[0:1, :])
    return u * sg, s, vt * mg.transpose(sg)


def _scipy64(fn):
    """A SciPy matrix function evaluated in float64, given back in the input's dtype (SciPy's
    float32 logm warns about its own accuracy)."""
    return lambda x: np.real(fn(np.asarray(x, np.float64))).astype(np.asarray(x).dtype)


def _np_eigh_signed(x):
    w, v = np.linalg.eigh(sym(x))
    return w, v * np.sign(v[0:1, :])


add(
    Case(
        "eigvalsh",
        "eigvalsh",
        mg.eigvalsh,
        lambda x: np.linalg.eigvalsh(sym(x)),
        (separated_sym,),
        SQUARE,
        fixed=SQUARE_FIXED,
    ),
    Case(
        "eigh[0]",
        "eigh",
        lambda x: mg.eigh(x)[0],
        lambda x: np.linalg.eigvalsh(sym(x)),
        (separated_sym,),
        SQUARE,
        fixed=SQUARE_FIXED,
    ),
    Case(
        "eigh[1]",
        "eigh",
        lambda x: signed_columns(mg.eigh(x)[1]),
        lambda x: _np_eigh_signed(x)[1],
        (separated_sym,),
        SQUARE,
        fixed=SQUARE_FIXED,
    ),
    Case(
        "eigh(V diag(w^3) V^T)",
        "eigh",
        lambda x: (lambda w, v: (v * w**3) @ v.T)(*mg.eigh(x)),
        lambda x: (lambda w, v: (v * w**3) @ v.T)(*np.linalg.eigh(sym(x))),
        (separated_sym,),
        SQUARE,
        fixed=SQUARE_FIXED,
    ),
    Case(
        "svdvals",
        "svdvals",
        mg.svdvals,
        lambda x: np.linalg.svd(x, compute_uv=False),
        (separated_rect,),
        RECT,
        fixed=RECT_FIXED,
    ),
    Case(
        "svd[0]",
        "svd",
        lambda x: _mg_svd_signed(x)[0],
        lambda x: _np_svd_signed(x)[0],
        (separated_rect,),
        RECT,
        fixed=RECT_FIXED,
    ),
    Case(
        "svd[1]",
        "svd",
        lambda x: mg.svd(x)[1],
        lambda x: np.linalg.svd(x, compute_uv=False),
        (separated_rect,),
        RECT,
        fixed=RECT_FIXED,
    ),
    Case(
        "svd[2]",
        "svd",
        lambda x: _mg_svd_signed(x)[2],
        lambda x: _np_svd_signed(x)[2],
        (separated_rect,),
        RECT,
        fixed=RECT_FIXED,
    ),
    Case("pinv", "pinv", mg.pinv, np.linalg.pinv, (separated_rect,), RECT, fixed=RECT_FIXED),
    Case("expm", "expm", mg.expm, _scipy64(scipy.linalg.expm), (real,), SQUARE, fixed=SQUARE_FIXED),
    Case("logm", "logm", mg.logm, _scipy64(scipy.linalg.logm), (near_identity,), SQUARE, fixed=SQUARE_FIXED),
    Case(
        "sqrtm", "sqrtm", mg.sqrtm, _scipy64(scipy.linalg.sqrtm), (near_identity,), SQUARE, fixed=SQUARE_FIXED
    ),
    Case("sqrtm(spd)", "sqrtm", mg.sqrtm, _scipy64(scipy.linalg.sqrtm), (spd,), SQUARE, fixed=SQUARE_FIXED),
)

DIM = st.integers(1, 4)
add(
    Case(
        "concatenate(1-D)",
        "concatenate",
        lambda x, y: mg.concatenate([x, y]),
        lambda x, y: np.concatenate([x, y]),
        (real, real),
        st.tuples(DIM, DIM).map(lambda d: ((d[0],), (d[1],))),
        fixed=(((3,), (2,)), ((1,), (1,))),
    ),
    Case(
        "concatenate(axis=0)",
        "concatenate",
        lambda x, y: mg.concatenate((x, y), axis=0),
        lambda x, y: np.concatenate([x, y], axis=0),
        (real, real),
        st.tuples(DIM, DIM, DIM).map(lambda d: ((d[0], d[2]), (d[1], d[2]))),
        fixed=(((2, 3), (1, 3)),),
    ),
    Case(
        "concatenate(axis=-1)",
        "concatenate",
        lambda x, y: mg.concatenate([x, y], axis=-1),
        lambda x, y: np.concatenate([x, y], axis=-1),
        (real, real),
        st.tuples(DIM, DIM, DIM).map(lambda d: ((d[2], d[0]), (d[2], d[1]))),
        fixed=(((3, 2), (3, 1)),),
    ),
    Case(
        "concatenate(3)",
        "concatenate",
        lambda x, y, z: mg.concatenate([x, y, z], axis=1),
        lambda x, y, z: np.concatenate([x, y, z], axis=1),
        (real, real, real),
        st.tuples(DIM, DIM, DIM).map(lambda d: ((d[0], d[1]), (d[0], d[2]), (d[0], 1))),
        fixed=(((2, 1), (2, 3), (2, 1)),),
    ),
    Case(
        "stack(0-D)",
        "stack",
        lambda x, y: mg.stack([x, y]),
        lambda x, y: np.stack([x, y]),
        (real, real),
        st.just(((), ())),
        fixed=(((), ()),),
    ),
    Case(
        "stack(axis=0)",
        "stack",
        lambda x, y: mg.stack([x, y], axis=0),
        lambda x, y: np.stack([x, y], axis=0),
        (real, real),
        DIM.map(lambda n: ((n,), (n,))),
        fixed=(((3,), (3,)), ((1,), (1,))),
    ),
    Case(
        "stack(axis=-1)",
        "stack",
        lambda x, y: mg.stack([x, y], axis=-1),
        lambda x, y: np.stack([x, y], axis=-1),
        (real, real),
        DIM.map(lambda n: ((n,), (n,))),
        fixed=(((3,), (3,)),),
    ),
)

# Indexing (Tensor.__getitem__): contiguous blocks, strided and reversed slices, integer
# arrays (repeated rows sum their cotangents), boolean masks.
MATS = shapes(min_ndim=2).map(lambda s: (s,))
VECS = shapes(min_ndim=1, max_ndim=1).map(lambda s: (s,))
_INDEX = [
    ("x[-1]", lambda x: x[-1], VECS),
    ("x[1:]", lambda x: x[1:], VECS),
    ("x[::-2]", lambda x: x[::-2], VECS),
    ("x[i]", lambda x: x[x.shape[0] - 1], MATS),
    ("x[:, j]", lambda x: x[:, 0], MATS),
    ("x[i, j]", lambda x: x[0, -1], MATS),
    ("x[a:b, c:d]", lambda x: x[: x.shape[0] // 2 + 1, 1:], MATS),
    ("x[::2, ::-1]", lambda x: x[::2, ::-1], MATS),
    ("x[rows]", lambda x: x[[0, x.shape[0] - 1, 0]], MATS),
    ("x[rows, j]", lambda x: x[np.array([0, 0]), -1], MATS),
    ("x[mask]", lambda x: x[np.arange(x.shape[0]) % 2 == 0], MATS),
]
add(*[Case(name, "index", fn, fn, (real,), shp, operators=("__getitem__",)) for name, fn, shp in _INDEX])

BY_NAME = {c.name: c for c in CASES}
assert len(BY_NAME) == len(CASES), "duplicate case names"
ELEMENTWISE = [c for c in CASES if c.elementwise]

# Names in matgrad.__all__ that are not ops (constructors, transforms, switches, metadata).
NON_OPS = {
    "Tensor",
    "tensor",
    "zeros",
    "ones",
    "zeros_like",
    "ones_like",
    "eye",
    "arange",
    "linspace",
    "no_grad",
    "is_grad_enabled",
    "set_num_threads",
    "get_num_threads",
    "set_cache_limit",
    "get_cache_limit",
    "get_include",
    "get_cmake_dir",
    "detect_anomaly",
    "AnomalyError",
    "grad",
    "value_and_grad",
    "check_grad",
    "jacobian",
    "hessian",
    "vjp",
    "jvp",
    "compile",
    "load",
    "to_dot",
    "draw",
    "nn",
    "optim",
    "__version__",
}
# Every Tensor operator that computes a value.
OPERATORS = {
    "__neg__",
    "__abs__",
    "__add__",
    "__radd__",
    "__sub__",
    "__rsub__",
    "__mul__",
    "__rmul__",
    "__truediv__",
    "__rtruediv__",
    "__pow__",
    "__rpow__",
    "__matmul__",
    "__rmatmul__",
    "__getitem__",
}


def test_registry_covers_every_public_op():
    # the public ops are the engine's entry points; every one is in mg.__all__ and has a case
    public_ops = {e["name"] for e in mg._core._entry_points()}
    assert public_ops == {name for name in mg.__all__ if name not in NON_OPS}
    covered = {c.op for c in CASES}
    missing = public_ops - covered
    assert not missing, f"public ops with no registry entry (add one to CASES): {sorted(missing)}"
    stale = covered - set(mg.__all__) - {"index"}  # "index": Tensor.__getitem__
    assert not stale, f"registry entries for names not in matgrad.__all__: {sorted(stale)}"
    for name in public_ops:
        assert callable(getattr(mg, name)), name


def test_registry_covers_every_operator():
    covered = {o for c in CASES for o in c.operators}
    assert OPERATORS <= covered, f"operators with no registry entry: {sorted(OPERATORS - covered)}"
    for name in OPERATORS:
        assert hasattr(mg.Tensor, name), name


def draw_case(case: Case, data):
    """Draw shapes, a seed and (if any) extra arguments; return (fn, ref, args, diff)."""
    arg_shapes = data.draw(case.shapes, label="shapes")
    rng = np.random.default_rng(data.draw(SEEDS, label="seed"))
    args = [dom(rng, s) for dom, s in zip(case.domains, arg_shapes)]
    fn, ref = case.fn, case.ref
    if case.kwargs is not None:
        kw = case.kwargs(data, arg_shapes)
        fn, ref = functools.partial(fn, **kw), functools.partial(ref, **kw)
    return fn, ref, args, case.diff, rng


ALL = pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])


@ALL
@given(data=st.data())
def test_value_and_gradient_float64(case, data):
    fn, ref, args, diff, rng = draw_case(case, data)
    gradcheck(fn, ref, args, diff, F64, rng, what=case.name)


@ALL
@given(data=st.data())
def test_value_and_gradient_float32(case, data):
    fn, ref, args, diff, rng = draw_case(case, data)
    gradcheck(fn, ref, args, diff, F32, rng, what=case.name)


@ALL
@given(data=st.data())
def test_create_graph_gradient_is_bitwise_first_order(case, data):
    fn, _, args, diff, rng = draw_case(case, data)
    for dtype in (F64, F32):
        check_create_graph_bitwise(fn, args, diff, dtype, rng, what=f"{case.name} ({dtype})")


@ALL
@given(data=st.data())
def test_second_order_hvp(case, data):
    fn, _, args, diff, rng = draw_case(case, data)
    check_second_order(fn, args, diff, rng, what=case.name)


# ---- fixed shapes, so the named edge cases are always exercised (not only when drawn) ----

UNARY_SHAPES = [(), (1,), (5,), (1, 1), (1, 5), (5, 1), (3, 4)]
BROADCAST_PAIRS = [
    ((3, 4), (3, 4)),
    ((3, 4), (4,)),
    ((3, 4), (3, 1)),
    ((3, 4), (1, 4)),
    ((3, 4), ()),
    ((3,), (3, 1)),
    ((1, 4), (3, 1)),
    ((), (3,)),
    ((1, 1), (3, 4)),
    ((1,), (3, 4)),
    ((), ()),
    ((1,), (1, 1)),
    ((4,), (1,)),
    ((2, 1), (1,)),
]
MATMUL_SHAPES = [
    ((3, 4), (4, 2)),
    ((4,), (4, 2)),
    ((3, 4), (4,)),
    ((4,), (4,)),
    ((1, 1), (1, 1)),
    ((1, 3), (3, 1)),
    ((3, 1), (1, 3)),
    ((1,), (1, 5)),
]


def fixed_inputs(case: Case):
    """All the named shapes that apply to the case, as argument-shape tuples."""
    if case.fixed is not None:
        return list(case.fixed)
    if case.op == "index":
        return [((3, 4),), ((1, 1),), ((4, 1),)] if case.shapes is MATS else [((5,),), ((1,),)]
    if case.op == "diag":
        return [((3,),), ((1,),), ((3, 4),), ((4, 2),), ((1, 1),)]
    if case.shapes is MATMUL:
        return MATMUL_SHAPES
    if case.op == "dot":
        return [*MATMUL_SHAPES, ((), (3, 4)), ((3,), ()), ((), ())]
    if case.op == "trace":
        return [(s,) for s in UNARY_SHAPES if len(s) == 2]
    if case.arity == 2:
        return BROADCAST_PAIRS + [(b, a) for a, b in BROADCAST_PAIRS]
    name = case.name
    if "axis=1" in name or "axis=-2" in name:
        return [(s,) for s in UNARY_SHAPES if len(s) == 2]
    if "axis=0" in name or "axis=-1" in name:
        return [(s,) for s in UNARY_SHAPES if len(s) >= 1]
    return [(s,) for s in UNARY_SHAPES]


FIXED = [
    pytest.param(case, arg_shapes, id=f"{case.name}-{'-'.join(map(str, arg_shapes))}")
    for case in CASES
    if case.kwargs is None
    for arg_shapes in fixed_inputs(case)
]


@pytest.mark.parametrize("case, arg_shapes", FIXED)
def test_named_shapes(case, arg_shapes):
    rng = np.random.default_rng(zlib.crc32(f"{case.name}{arg_shapes}".encode()))
    args = [dom(rng, s) for dom, s in zip(case.domains, arg_shapes)]
    for dtype in (F64, F32):
        gradcheck(case.fn, case.ref, args, case.diff, dtype, rng, what=f"{case.name} {arg_shapes}")
    check_create_graph_bitwise(case.fn, args, case.diff, F64, rng, what=case.name)


@pytest.mark.parametrize("target", [(12,), (3, 4), (4, 3), (-1,), (2, -1), (-1, 6), (1, 12), (12, 1)])
@pytest.mark.parametrize("source", [(12,), (3, 4), (1, 12), (12, 1)])
def test_reshape_named_shapes(source, target):
    rng = np.random.default_rng(7)
    x = real(rng, source)
    for case in ("reshape", "x.reshape(shape)", "x.reshape(*shape)"):
        c = BY_NAME[case]
        fn = functools.partial(c.fn, shape=target)
        ref = functools.partial(c.ref, shape=target)
        for dtype in (F64, F32):
            gradcheck(fn, ref, [x], None, dtype, rng, what=f"{case} {source}->{target}")


# ---- second derivatives of every elementwise op, pointwise ----


def first_derivative(case: Case):
    """x -> f'(x) elementwise, by matgrad's first-order gradient of sum(f(x))."""
    return mg.grad(lambda x: mg.sum(case.fn(x)))


@pytest.mark.parametrize("case", ELEMENTWISE, ids=[c.name for c in ELEMENTWISE])
@given(shape=shapes(), seed=SEEDS)
def test_second_derivative_elementwise(case, shape, seed):
    """f'' via mg.grad(mg.grad(f)) equals central differences of f' (float64)."""
    tol = TOLS[F64]
    rng = np.random.default_rng(seed)
    x = case.domains[0](rng, shape)
    fprime = first_derivative(case)
    want = directional_derivative(lambda xs: fprime(xs[0]), [x], [np.ones(x.shape)])

    # Vectorised: d/dx sum(f'(x)) = f''(x) elementwise.
    got = mg.grad(lambda z: mg.sum(mg.grad(lambda u: mg.sum(case.fn(u)))(z)))(x)
    assert isinstance(got, np.ndarray) and got.shape == x.shape and got.dtype == np.float64
    assert_close(got, want, tol.grad_rtol, tol.grad_atol, f"{case.name}: f'' (vector)")

    # Pointwise on 0-D inputs: grad(grad(f)) of a scalar function.
    for i, x0 in enumerate(x.reshape(-1)[:4]):
        g2 = mg.grad(mg.grad(case.fn))(float(x0))
        assert isinstance(g2, np.ndarray) and g2.shape == ()
        assert_close(g2, np.reshape(want, -1)[i], tol.grad_rtol, tol.grad_atol, f"{case.name}: f''({x0})")


@pytest.mark.parametrize("case", ELEMENTWISE, ids=[c.name for c in ELEMENTWISE])
def test_third_derivative_elementwise(case):
    """grad(grad(grad(f))) against central differences of f'' (nesting goes on)."""
    tol = TOLS[F64]
    x = case.domains[0](np.random.default_rng(3), (3,))
    f2 = mg.grad(mg.grad(case.fn))
    for x0 in x:
        want = directional_derivative(lambda xs: f2(float(xs[0])), [np.asarray(x0)], [np.asarray(1.0)])
        got = mg.grad(mg.grad(mg.grad(case.fn)))(float(x0))
        assert_close(got, want, tol.grad_rtol, tol.grad_atol, f"{case.name}: f'''({x0})")


# ---- mixed dtypes: float32 with float64 gives float64; each gradient keeps its input's dtype ----

BINARY_CASES = [c for c in CASES if c.arity == 2]


@pytest.mark.parametrize("case", BINARY_CASES, ids=[c.name for c in BINARY_CASES])
@given(data=st.data(), f32_first=st.booleans())
def test_mixed_float32_float64(case, data, f32_first):
    fn, ref, args, diff, rng = draw_case(case, data)
    diff = diff or (True, True)
    dtypes = (F32, F64) if f32_first else (F64, F32)
    args = [a.astype(d) for a, d in zip(args, dtypes)]
    call = [mg.tensor(a, requires_grad=True) if d else a for a, d in zip(args, diff)]
    out = fn(*call)
    want = np.asarray(ref(*args))
    assert out.dtype == want.dtype == F64, (out.dtype, want.dtype)
    tol = TOLS[F32]  # one operand only carries float32 precision
    assert_close(out.numpy(), ref(*[a.astype(F64) for a in args]), tol.value_rtol, tol.value_atol, case.name)
    cot = rng.uniform(-1, 1, out.shape)
    out.backward(cot)
    for t, a in zip(call, args):
        if isinstance(t, mg.Tensor):
            assert t.grad.dtype == a.dtype and t.grad.shape == a.shape, case.name


# ---- what the transforms hand back is the caller's own: no aliasing of inputs or of each other ----


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_transform_results_are_independent_arrays(case):
    rng = np.random.default_rng(zlib.crc32(case.name.encode()))
    arg_shapes = MATMUL_SHAPES[0] if case.shapes is MATMUL or case.op == "dot" else [(3, 4)] * case.arity
    if ("axis" in case.name or case.kwargs is not None) and case.fixed is None:
        arg_shapes = [(3, 4)] * case.arity
    if case.fixed is not None:
        arg_shapes = case.fixed[0]
    fn = functools.partial(case.fn, shape=(4, 3)) if case.kwargs else case.fn
    args = [dom(rng, s) for dom, s in zip(case.domains, arg_shapes)]
    keep = [a.copy() for a in args]
    diff = case.diff or (True,) * case.arity
    idx = [i for i, d in enumerate(diff) if d]

    def f(*dargs):
        full = list(args)
        for i, v in zip(idx, dargs):
            full[i] = v
        return mg.sum(fn(*full))

    v, gs = mg.value_and_grad(f, argnums=tuple(range(len(idx))))(*[args[i] for i in idx])
    outs = [v, *gs]
    for k, o in enumerate(outs):
        assert type(o) is np.ndarray and o.flags.writeable, case.name
        for a in args:
            assert not np.shares_memory(o, a), f"{case.name}: result {k} aliases an input"
        for o2 in outs[k + 1 :]:
            assert not np.shares_memory(o, o2), f"{case.name}: two results alias each other"
    first = [o.copy() for o in outs]
    for o in outs:
        o[...] = 12345.0  # the caller's to overwrite
    v2, gs2 = mg.value_and_grad(f, argnums=tuple(range(len(idx))))(*[args[i] for i in idx])
    for a, b in zip(first, [v2, *gs2]):
        np.testing.assert_array_equal(a, b)
    for a, k in zip(args, keep):
        np.testing.assert_array_equal(a, k)
