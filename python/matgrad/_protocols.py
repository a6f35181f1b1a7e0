"""Python's and NumPy's protocols on Tensor: format(), int(), tolist(), comparisons, NumPy
functions (``__array_function__``), pickle and copy.

Each of them reads the value through ``Tensor.numpy()``, so while ``mg.compile`` traces a
function, reading a traced tensor this way raises RuntimeError, as ``.numpy()`` does: a value
read at trace time would be baked into the program.
"""

from __future__ import annotations

import copy
import operator
from typing import Any, Callable

import numpy as np

from . import _core
from ._core import Tensor


def _read(t: Tensor, what: str) -> np.ndarray:
    """The value of ``t`` (a read-only view); the trace-time error names ``what``, not numpy."""
    try:
        return t.numpy()
    except RuntimeError as e:
        msg = str(e)
        if msg.startswith("numpy:"):
            raise type(e)(what + msg[len("numpy") :]) from None
        raise


def _one(t: Tensor, what: str) -> float:
    v = _read(t, what)
    if v.size != 1:
        raise TypeError(
            f"{what}: only tensors with one element can be converted to Python scalars (shape {t.shape})"
        )
    return float(v.reshape(-1)[0])


def _format(self: Tensor, spec: str) -> str:
    """__format__(spec) -> str

    ``format(x, spec)``: a tensor with one element (shape ``()``, ``(1,)`` or ``(1, 1)``) formats
    as its float (``f"{loss:.3f}"``); with an empty spec a tensor of any shape formats as
    ``str(x)``. Other shapes with a spec raise TypeError. No gradient flows through it.
    """
    v = _read(self, "format")
    if not spec:
        return str(self)
    if v.size != 1:
        raise TypeError(
            f"format: the format spec {spec!r} needs a tensor with one element, got shape {self.shape}; "
            f"format x.item(), or the elements of x.tolist()"
        )
    return format(float(v.reshape(-1)[0]), spec)


def _int(self: Tensor) -> int:
    """__int__() -> int

    ``int(x)`` of a tensor with one element (shape ``()``, ``(1,)`` or ``(1, 1)``): its value
    truncated toward zero, as ``int(float(x))``; other shapes raise TypeError. No gradient flows
    through it.
    """
    return int(_one(self, "int"))


def _tolist(self: Tensor) -> Any:
    """tolist() -> float | list

    The value as nested Python lists of floats (a float for shape ``()``), as
    ``numpy.ndarray.tolist``. No gradient flows through it.
    """
    return _read(self, "tolist").tolist()


# -- comparisons ------------------------------------------------------------------------------


def _operand(other: Any, what: str) -> Any:
    """``other`` as values to compare with, or None when it is not numeric (the comparison then
    returns NotImplemented, so ``x == None`` is False as for any object)."""
    if isinstance(other, Tensor):
        return _read(other, what)
    if other is None or isinstance(other, (str, bytes)):
        return None
    try:
        arr = np.asarray(other)
    except (TypeError, ValueError):
        return None
    return arr if arr.dtype.kind in "fiub" else None


def _comparison(symbol: str, fn: Callable[[Any, Any], Any], reflected: str) -> Callable[[Tensor, Any], Any]:
    def compare(self: Tensor, other: Any) -> Any:
        what = f"comparison {symbol}"
        a = _read(self, what)
        b = _operand(other, what)
        if b is None:
            return NotImplemented
        try:
            return np.asarray(fn(a, b))
        except ValueError:
            raise ValueError(
                f"{what}: shapes {tuple(a.shape)} and {tuple(np.shape(b))} do not broadcast"
            ) from None

    compare.__name__ = f"__{_NAMES[symbol]}__"
    compare.__doc__ = (
        f"__{_NAMES[symbol]}__(other) -> numpy.ndarray\n\n"
        f"``x {symbol} y``: a NumPy bool array of the values compared elementwise, of the "
        f"broadcast shape of the operands (NumPy's rules), as PyTorch and JAX compare arrays. "
        f"No gradient: comparisons are not recorded. ``{reflected}`` is the same with the "
        f"operands swapped. A non-numeric ``other`` (None, a string) gives NotImplemented."
    )
    return compare


_NAMES = {"==": "eq", "!=": "ne", "<": "lt", "<=": "le", ">": "gt", ">=": "ge"}


# -- NumPy functions --------------------------------------------------------------------------


def _no_extras(name: str, **given: Any) -> None:
    """TypeError for NumPy arguments that matgrad's op does not take (given a non-default)."""
    for k, v in given.items():
        if v is not None and v is not False and v is not np._NoValue:
            raise TypeError(
                f"numpy.{name} on a matgrad Tensor: the argument {k}={v!r} is not supported by mg.{name}"
            )


def _np_reduction(mg_fn: Callable[..., Tensor], name: str) -> Callable[..., Tensor]:
    def run(
        a: Any, axis: Any = None, dtype: Any = None, out: Any = None, keepdims: Any = False, **kw: Any
    ) -> Tensor:
        _no_extras(name, dtype=dtype, out=out, keepdims=keepdims, **kw)
        return mg_fn(a, axis)

    return run


def _shape(a: Any) -> tuple[int, ...]:
    return tuple(a.shape) if isinstance(a, Tensor) else np.shape(a)


def _np_transpose(a: Any, axes: Any = None) -> Tensor:
    if axes is None:
        return _core.transpose(a)
    nd = len(_shape(a))
    try:
        ax = tuple(operator.index(i) % max(nd, 1) for i in axes)
    except TypeError:
        raise TypeError(f"numpy.transpose: axes must be a sequence of ints, got {axes!r}") from None
    if sorted(ax) != list(range(nd)):
        raise ValueError(f"numpy.transpose: axes {tuple(axes)} do not match a tensor of shape {_shape(a)}")
    return _core.transpose(a) if ax == (1, 0) else _core.reshape(a, _shape(a))  # else: the identity


def _np_reshape(a: Any, *args: Any, **kw: Any) -> Tensor:
    order = kw.pop("order", "C")
    copy_ = kw.pop("copy", None)
    shape = kw.pop("shape", kw.pop("newshape", args[0] if args else None))
    if len(args) > 1:
        order = args[1]
    _no_extras("reshape", **kw)
    if order != "C":
        raise TypeError(f"numpy.reshape on a matgrad Tensor: only order='C' is supported, got {order!r}")
    if copy_ is False:
        raise TypeError(
            "numpy.reshape on a matgrad Tensor: copy=False is not supported (results are new tensors)"
        )
    if shape is None:
        raise TypeError("numpy.reshape: the new shape is missing")
    return _core.reshape(a, shape)


def _np_joiner(mg_fn: Callable[..., Tensor], name: str) -> Callable[..., Tensor]:
    def run(
        arrays: Any, axis: Any = 0, out: Any = None, dtype: Any = None, casting: str = "same_kind"
    ) -> Tensor:
        _no_extras(name, out=out, dtype=dtype)
        if casting != "same_kind":
            raise TypeError(
                f"numpy.{name} on a matgrad Tensor: the argument casting={casting!r} is not supported"
            )
        return mg_fn(list(arrays), axis)

    return run


def _np_trace(
    a: Any, offset: Any = 0, axis1: Any = 0, axis2: Any = 1, dtype: Any = None, out: Any = None
) -> Tensor:
    if offset != 0 or axis1 != 0 or axis2 != 1:
        raise TypeError("numpy.trace on a matgrad Tensor: only offset=0, axis1=0, axis2=1 are supported")
    _no_extras("trace", dtype=dtype, out=out)
    return _core.trace(a)


def _np_norm(x: Any, ord: Any = None, axis: Any = None, keepdims: Any = False) -> Tensor:
    if ord not in (None, "fro") or axis is not None or keepdims:
        raise TypeError(
            "numpy.linalg.norm on a matgrad Tensor: mg.norm is the 2-norm of a vector and the Frobenius "
            "norm of a matrix (ord=None, axis=None); other orders and axes are not supported"
        )
    return _core.norm(x)


def _np_where(condition: Any, *xy: Any) -> Tensor:
    if len(xy) != 2:
        raise TypeError(
            "numpy.where on a matgrad Tensor: only the three-argument form where(cond, a, b) is recorded"
        )
    return _core.where(condition, xy[0], xy[1])


def _np_size(a: Any, axis: Any = None) -> int:
    s = _shape(a)
    return int(np.prod(s, dtype=np.int64)) if axis is None else int(s[axis])


def _np_cholesky(a: Any, upper: bool = False) -> Tensor:
    L = _core.cholesky(a)
    return _core.transpose(L) if upper else L


def _np_eigh(a: Any, UPLO: str = "L") -> Any:
    # mg.eigh reads (A + A^T) / 2: on symmetric input the same as either triangle
    return _core.eigh(a)


def _np_eigvalsh(a: Any, UPLO: str = "L") -> Tensor:
    return _core.eigvalsh(a)


def _np_svd(a: Any, full_matrices: bool = True, compute_uv: bool = True, hermitian: bool = False) -> Any:
    _no_extras("linalg.svd", hermitian=hermitian)
    if not compute_uv:
        return _core.svdvals(a)
    shape = _shape(a)
    if full_matrices and len(shape) == 2 and shape[0] != shape[1]:
        raise TypeError(
            "numpy.linalg.svd on a matgrad Tensor: full_matrices=True (NumPy's default) is not supported "
            f"for shape {tuple(shape)}; mg.svd gives the reduced SVD (full_matrices=False)"
        )
    return _core.svd(a)


def _np_pinv(a: Any, rcond: Any = None, hermitian: bool = False, **kw: Any) -> Tensor:
    _no_extras("linalg.pinv", rcond=rcond, hermitian=hermitian, **kw)
    return _core.pinv(a)


def _binary(mg_fn: Callable[..., Tensor], name: str) -> Callable[..., Tensor]:
    def run(a: Any, b: Any, out: Any = None) -> Tensor:
        _no_extras(name, out=out)
        return mg_fn(a, b)

    return run


def _unary(mg_fn: Callable[..., Any]) -> Callable[..., Any]:
    def run(a: Any) -> Any:
        return mg_fn(a)

    return run


def _np_diag(v: Any, k: Any = 0) -> Tensor:
    return _core.diag(v, k)


def _np_matrix_power(a: Any, n: Any) -> Tensor:
    return _core.matrix_power(a, n)


# NumPy functions recorded as matgrad ops (with NumPy's signatures; unsupported arguments raise),
# and those that read only shapes
_RECORDED: dict[Any, Callable[..., Any]] = {
    np.sum: _np_reduction(_core.sum, "sum"),
    np.mean: _np_reduction(_core.mean, "mean"),
    np.max: _np_reduction(_core.max, "max"),
    np.transpose: _np_transpose,
    np.reshape: _np_reshape,
    np.concatenate: _np_joiner(_core.concatenate, "concatenate"),
    np.stack: _np_joiner(_core.stack, "stack"),
    np.trace: _np_trace,
    np.dot: _binary(_core.dot, "dot"),
    np.outer: _binary(_core.outer, "outer"),
    np.kron: _binary(_core.kron, "kron"),
    np.where: _np_where,
    np.diag: _np_diag,
    np.linalg.det: _unary(_core.det),
    np.linalg.slogdet: _unary(_core.slogdet),
    np.linalg.inv: _unary(_core.inv),
    np.linalg.solve: _binary(_core.solve, "solve"),
    np.linalg.cholesky: _np_cholesky,
    np.linalg.norm: _np_norm,
    np.linalg.matrix_power: _np_matrix_power,
    np.linalg.eigh: _np_eigh,
    np.linalg.eigvalsh: _np_eigvalsh,
    np.linalg.svd: _np_svd,
    np.linalg.pinv: _np_pinv,
    # shapes only: readable while mg.compile traces
    np.shape: _shape,
    np.ndim: lambda a: len(_shape(a)),
    np.size: _np_size,
}
if hasattr(np.linalg, "svdvals"):  # NumPy >= 2.0
    _RECORDED[np.linalg.svdvals] = _unary(_core.svdvals)
if hasattr(np, "amax"):
    _RECORDED[np.amax] = _RECORDED[np.max]

# NumPy functions that only read values (predicates, sizes, printing, saving): they see the
# values, as np.asarray(x) would, with no gradient
_VALUE_READERS = {
    np.allclose,
    np.isclose,
    np.array_equal,
    np.array_equiv,
    np.argmax,
    np.argmin,
    np.argsort,
    np.count_nonzero,
    np.nonzero,
    np.any,
    np.all,
    np.array2string,
    np.array_repr,
    np.array_str,
    np.save,
    np.savez,
    np.savez_compressed,
    np.savetxt,
    np.copy,
}


def _unwrap(x: Any, name: str) -> Any:
    if isinstance(x, Tensor):
        return _read(x, f"numpy.{name}")
    if isinstance(x, (list, tuple)):
        return type(x)(_unwrap(e, name) for e in x)
    if isinstance(x, dict):
        return {k: _unwrap(v, name) for k, v in x.items()}
    return x


def _array_function(self: Tensor, func: Any, types: Any, args: Any, kwargs: Any) -> Any:
    """__array_function__(func, types, args, kwargs) -> object

    NumPy functions on Tensors (NEP 18). Those with a matgrad op (np.sum, np.mean, np.max,
    np.transpose, np.reshape, np.concatenate, np.stack, np.trace, np.dot, np.outer, np.kron,
    np.where, np.diag, np.linalg.det/slogdet/inv/solve/cholesky/norm/matrix_power, and
    eigh/eigvalsh/svd/svdvals/pinv) run that op and record it, so gradients flow (d/dx: the op's own rule), with the op's shapes; np.shape,
    np.ndim and np.size read the shape; predicates, printers and savers (np.allclose,
    np.argmax, np.save, ...) read the values, with no gradient; any other raises TypeError
    naming the mg function to use (its result would have no gradient).
    """
    name = getattr(func, "__name__", str(func))
    rec = _RECORDED.get(func)
    if rec is not None:
        return rec(*args, **kwargs)
    if func in _VALUE_READERS:
        return func(*_unwrap(args, name), **_unwrap(kwargs, name))
    hint = (
        f"use mg.{name}, which records it"
        if hasattr(_core, name)
        else f"matgrad has no mg.{name}; call numpy.{name} on np.asarray(x) for the values alone (no gradient)"
    )
    raise TypeError(f"numpy.{name} is not recorded on a matgrad Tensor (its gradient would be lost): {hint}")


# -- pickle and copy --------------------------------------------------------------------------


def _rebuild(values: np.ndarray, requires_grad: bool) -> Tensor:
    """A leaf of ``values`` (shape and dtype kept) for pickle; see Tensor.__reduce__."""
    return _core.tensor(values, requires_grad=requires_grad)


def _reduce(self: Tensor) -> tuple[Any, tuple[Any, ...]]:
    """__reduce__() -> tuple

    pickle: the value (its shape and dtype) and requires_grad, unpickled as a new leaf; not the
    graph that computed it, nor ``.grad``. No gradient flows to the copy.
    """
    return _rebuild, (np.array(_read(self, "pickle")), bool(self.requires_grad))


def _deepcopy(self: Tensor, memo: dict[int, Any]) -> Tensor:
    """__deepcopy__(memo) -> Tensor

    ``copy.deepcopy``: a new leaf with a copy of the value (same shape and dtype), the same
    requires_grad and a copy of ``.grad`` (as PyTorch's); not the graph that computed it, so no
    gradient flows from the copy to the original.
    """
    t = _rebuild(np.array(_read(self, "deepcopy")), bool(self.requires_grad))
    memo[id(self)] = t
    if self.grad is not None:
        t.grad = copy.deepcopy(self.grad, memo)
    return t


def install() -> None:
    """Attach the protocols to Tensor (called once, by matgrad's __init__)."""
    T: Any = Tensor
    T.__format__ = _format
    T.__int__ = _int
    T.tolist = _tolist
    for symbol, fn, reflected in (
        ("==", operator.eq, "y == x"),
        ("!=", operator.ne, "y != x"),
        ("<", operator.lt, "y > x"),
        ("<=", operator.le, "y >= x"),
        (">", operator.gt, "y < x"),
        (">=", operator.ge, "y <= x"),
    ):
        setattr(T, f"__{_NAMES[symbol]}__", _comparison(symbol, fn, reflected))
    T.__hash__ = object.__hash__  # by identity, as before (tensors stay usable as dict keys)
    T.__array_function__ = _array_function
    T.__reduce__ = _reduce
    T.__deepcopy__ = _deepcopy
