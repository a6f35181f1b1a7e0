"""matgrad: reverse-mode automatic differentiation for matrix programs.

A C++17/Eigen engine with a NumPy-shaped Python API::

    import matgrad as mg
    x = mg.tensor([1.0, 2.0], requires_grad=True)
    y = (mg.sin(x) * x).sum()
    y.backward()
    x.grad            # cos(x) * x + sin(x)
"""

from __future__ import annotations

from . import _core
from ._core import (
    Tensor,
    abs,
    add,
    cos,
    div,
    dot,
    exp,
    is_grad_enabled,
    log,
    matmul,
    maximum,
    mean,
    minimum,
    mul,
    neg,
    outer,
    pow,
    relu,
    reshape,
    sigmoid,
    sin,
    softplus,
    sqrt,
    square,
    sub,
    sum,
    tan,
    tanh,
    tensor,
    trace,
    transpose,
)
from ._transforms import check_grad, grad, no_grad, value_and_grad

__version__: str = _core.__version__

__all__ = [
    "Tensor",
    "tensor",
    "no_grad",
    "is_grad_enabled",
    # elementwise
    "neg",
    "exp",
    "log",
    "sin",
    "cos",
    "tan",
    "tanh",
    "sqrt",
    "abs",
    "square",
    "sigmoid",
    "relu",
    "softplus",
    "add",
    "sub",
    "mul",
    "div",
    "pow",
    "maximum",
    "minimum",
    # reductions
    "sum",
    "mean",
    # shape
    "transpose",
    "reshape",
    # linear algebra
    "matmul",
    "dot",
    "outer",
    "trace",
    # transforms
    "grad",
    "value_and_grad",
    "check_grad",
    "__version__",
]
