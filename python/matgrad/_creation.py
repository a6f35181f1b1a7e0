"""Tensors made from a shape: zeros, ones, zeros_like, ones_like, eye, arange, linspace.

Each is a new leaf (a constant unless ``requires_grad=True``), float64 unless ``dtype`` says
float32 (the ``*_like`` functions take the dtype of their argument), with NumPy's arguments.
"""

from __future__ import annotations

import operator
from typing import Any

import numpy as np

from . import _core
from ._core import Tensor


def _dtype(dtype: Any, op: str, default: Any = np.float64) -> np.dtype[Any]:
    if dtype is None:
        return np.dtype(default)  # type: ignore[no-any-return]
    try:
        d = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"{op}: dtype must be float64 or float32, got {dtype!r}") from None
    if d not in (np.dtype(np.float64), np.dtype(np.float32)):
        raise TypeError(f"{op}: dtype must be float64 or float32, got {d}")
    return d  # type: ignore[no-any-return]


def _shape(shape: Any, op: str) -> tuple[int, ...]:
    try:
        dims = (
            (operator.index(shape),)
            if not isinstance(shape, (tuple, list))
            else tuple(map(operator.index, shape))
        )
    except TypeError:
        raise TypeError(f"{op}: shape must be an int or a tuple of ints, got {shape!r}") from None
    if len(dims) > 2:
        raise ValueError(f"{op}: matgrad tensors have at most 2 dimensions, got shape {dims}")
    if any(d < 0 for d in dims):
        raise ValueError(f"{op}: negative dimensions are not allowed, got shape {dims}")
    return dims


def _leaf(values: np.ndarray, requires_grad: bool) -> Tensor:
    return _core.tensor(values, requires_grad=bool(requires_grad))


def zeros(shape: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """zeros(shape, dtype=None, requires_grad=False) -> Tensor

    A tensor of zeros of ``shape`` (an int or a tuple of at most 2 ints), float64 or ``dtype``.
    Not an op of the graph: a new leaf.
    """
    return _leaf(np.zeros(_shape(shape, "zeros"), _dtype(dtype, "zeros")), requires_grad)


def ones(shape: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """ones(shape, dtype=None, requires_grad=False) -> Tensor

    A tensor of ones of ``shape`` (an int or a tuple of at most 2 ints), float64 or ``dtype``.
    Not an op of the graph: a new leaf.
    """
    return _leaf(np.ones(_shape(shape, "ones"), _dtype(dtype, "ones")), requires_grad)


def _like(x: Any, op: str) -> tuple[tuple[int, ...], Any]:
    if isinstance(x, Tensor):  # shape and dtype only: readable while mg.compile traces
        return tuple(x.shape), x.dtype
    a = np.asarray(x)
    if a.dtype.kind not in "fiub":
        raise TypeError(f"{op}: expected a number, array or Tensor of numbers, got dtype {a.dtype}")
    return _shape(a.shape, op), (a.dtype if a.dtype == np.float32 else np.float64)


def zeros_like(x: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """zeros_like(x, dtype=None, requires_grad=False) -> Tensor

    Zeros of ``x``'s shape and dtype (a Tensor's, or the dtype matgrad gives an array: float32
    stays float32, anything else becomes float64), or ``dtype``. Reads only the shape, never the
    values. Not an op of the graph: a new leaf, and no gradient flows to ``x``.
    """
    shape, d = _like(x, "zeros_like")
    return _leaf(np.zeros(shape, _dtype(dtype, "zeros_like", d)), requires_grad)


def ones_like(x: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """ones_like(x, dtype=None, requires_grad=False) -> Tensor

    Ones of ``x``'s shape and dtype (as :func:`zeros_like`), or ``dtype``. Not an op of the
    graph: a new leaf, and no gradient flows to ``x``.
    """
    shape, d = _like(x, "ones_like")
    return _leaf(np.ones(shape, _dtype(dtype, "ones_like", d)), requires_grad)


def eye(N: int, M: int | None = None, k: int = 0, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """eye(N, M=None, k=0, dtype=None, requires_grad=False) -> Tensor

    The matrix of shape ``(N, M)`` (``M = N`` by default) with ones on the ``k``-th diagonal, as
    ``numpy.eye``. Not an op of the graph: a new leaf.
    """
    n, m = _shape((N, N if M is None else M), "eye")
    return _leaf(np.eye(n, m, k=operator.index(k), dtype=_dtype(dtype, "eye")), requires_grad)


def arange(
    start: float,
    stop: float | None = None,
    step: float | None = None,
    dtype: Any = None,
    requires_grad: bool = False,
) -> Tensor:
    """arange(start, stop=None, step=None, dtype=None, requires_grad=False) -> Tensor

    The 1-D tensor ``start, start + step, ...`` below ``stop`` (``arange(n)`` is ``0, ..., n-1``),
    as ``numpy.arange``, in float64 (or ``dtype``): shape ``(ceil((stop - start) / step),)``.
    Not an op of the graph: a new leaf.
    """
    for name, v in (("start", start), ("stop", stop), ("step", step)):
        if isinstance(v, Tensor):
            raise TypeError(
                f"arange: {name} must be a Python number, got a Tensor (use float(t) outside a trace)"
            )
    d = _dtype(dtype, "arange")
    args = [start] if stop is None else [start, stop]
    if step is not None:
        if stop is None:
            args = [0, start]
        args.append(step)
    try:
        values = np.arange(*args, dtype=np.float64)
    except (ZeroDivisionError, ValueError) as e:
        raise ValueError(f"arange: {e}") from None
    return _leaf(values.astype(d), requires_grad)


def linspace(
    start: float,
    stop: float,
    num: int = 50,
    endpoint: bool = True,
    dtype: Any = None,
    requires_grad: bool = False,
) -> Tensor:
    """linspace(start, stop, num=50, endpoint=True, dtype=None, requires_grad=False) -> Tensor

    ``num`` evenly spaced numbers from ``start`` to ``stop`` (included when ``endpoint``), as
    ``numpy.linspace``, in float64 (or ``dtype``): a 1-D tensor of shape ``(num,)``.
    Not an op of the graph: a new leaf.
    """
    for name, v in (("start", start), ("stop", stop)):
        if isinstance(v, Tensor):
            raise TypeError(
                f"linspace: {name} must be a Python number, got a Tensor (use float(t) outside a trace)"
            )
    n = operator.index(num)
    if n < 0:
        raise ValueError(f"linspace: num must be non-negative, got {n}")
    d = _dtype(dtype, "linspace")
    return _leaf(np.linspace(float(start), float(stop), n, endpoint=bool(endpoint)).astype(d), requires_grad)
