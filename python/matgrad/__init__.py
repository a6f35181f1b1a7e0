"""matgrad: reverse-mode automatic differentiation for matrix programs.

A C++17/Eigen engine with a NumPy-shaped Python API::

    import matgrad as mg
    x = mg.tensor([1.0, 2.0], requires_grad=True)
    y = (mg.sin(x) * x).sum()
    y.backward()
    x.grad            # cos(x) * x + sin(x)

Every public function's docstring starts with its signature, then gives the shapes it takes and
returns and the derivative rule it implements: ``d/dx: ...`` is the adjoint passed back to input
``x``, written with ``G``, the adjoint (cotangent) of the output, which has the output's shape.
"""

from __future__ import annotations

from . import _core
from ._core import (
    Tensor,
    abs,
    add,
    cholesky,
    concatenate,
    cos,
    det,
    diag,
    div,
    dot,
    exp,
    inv,
    is_grad_enabled,
    log,
    logdet,
    logsumexp,
    matmul,
    max,
    maximum,
    mean,
    minimum,
    mul,
    neg,
    norm,
    outer,
    pow,
    quad_form,
    relu,
    reshape,
    sigmoid,
    sin,
    slogdet,
    softplus,
    solve,
    sqrt,
    square,
    stack,
    sub,
    sum,
    tan,
    tanh,
    tensor,
    trace,
    transpose,
    where,
)
from ._indexing import getitem as _getitem
from ._transforms import check_grad, grad, hessian, jacobian, jvp, no_grad, value_and_grad, vjp
from .viz import draw, to_dot
from . import nn, optim  # noqa: E402  (submodules: mg.nn, mg.optim)

Tensor.__getitem__ = _getitem  # type: ignore[method-assign]

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
    "where",
    # reductions
    "sum",
    "mean",
    "logsumexp",
    "max",
    # shape
    "transpose",
    "reshape",
    "concatenate",
    "stack",
    "diag",
    # linear algebra
    "matmul",
    "dot",
    "outer",
    "trace",
    "det",
    "logdet",
    "slogdet",
    "inv",
    "solve",
    "cholesky",
    "norm",
    "quad_form",
    # transforms
    "grad",
    "value_and_grad",
    "jacobian",
    "hessian",
    "vjp",
    "jvp",
    "check_grad",
    # pictures
    "to_dot",
    "draw",
    # training
    "nn",
    "optim",
    "__version__",
]
