"""Function transforms: grad, value_and_grad, check_grad, and the no_grad switch."""

from __future__ import annotations

import contextlib
import functools
from typing import Any, Callable, Sequence, Tuple, Union

import numpy as np

from . import _core
from ._core import Tensor

ArgNums = Union[int, Sequence[int]]


def _checked_argnums(argnums: ArgNums, op: str) -> Tuple[Tuple[int, ...], bool]:
    single = isinstance(argnums, int) and not isinstance(argnums, bool)
    nums = (argnums,) if single else tuple(argnums)  # type: ignore[arg-type]
    if not nums:
        raise ValueError(f"{op}: argnums is empty")
    for i in nums:
        if not isinstance(i, int) or isinstance(i, bool):
            raise TypeError(f"{op}: argnums must be ints, got {type(i).__name__}")
    return nums, single


def value_and_grad(f: Callable[..., Any], argnums: ArgNums = 0) -> Callable[..., Any]:
    """Return a function computing ``(f(*args), df/dargs[argnums])``.

    ``f`` must return a scalar (shape ``()`` or ``(1, 1)``). With NumPy arrays or Python numbers
    in, value and gradients come back as NumPy arrays the caller owns (a gradient has its
    input's shape and dtype; 0-D for scalars). If any positional argument is a Tensor, they
    come back as Tensors connected to the graph, so transforms nest: ``grad(grad(f))``.
    ``argnums`` may be a tuple, giving a tuple of gradients.
    """

    nums, single = _checked_argnums(argnums, "value_and_grad")
    vg = _core._vg

    @functools.wraps(f)
    def value_and_grad_f(*args: Any) -> Any:
        return vg(f, args, nums, single, True, "value_and_grad")

    return value_and_grad_f


def grad(f: Callable[..., Any], argnums: ArgNums = 0) -> Callable[..., Any]:
    """Return a function computing the gradient of scalar ``f`` w.r.t. ``args[argnums]``.

    Reverse mode: one sweep gives df/dx for every requested input, df/dx_i =
    sum_j df/dx_j . dg_j/dx_i. See :func:`value_and_grad` for the conventions.
    """

    nums, single = _checked_argnums(argnums, "grad")
    vg = _core._vg

    @functools.wraps(f)
    def grad_f(*args: Any) -> Any:
        return vg(f, args, nums, single, False, "grad")

    return grad_f


class no_grad(contextlib.ContextDecorator):
    """Context manager (and decorator) in which ops record no graph: results are constants.

    Transforms (grad, value_and_grad, ...) still differentiate inside it.
    """

    def __init__(self) -> None:
        self._prev: list = []

    def _recreate_cm(self) -> "no_grad":  # each decorated call gets its own state
        return no_grad()

    def __enter__(self) -> "no_grad":
        self._prev.append(_core.is_grad_enabled())
        _core._set_grad_enabled(False)
        return self

    def __exit__(self, *exc: object) -> None:
        _core._set_grad_enabled(self._prev.pop())


def check_grad(
    f: Callable[..., Any], *args: Any, eps: float = 1e-6, rtol: float = 1e-5, atol: float = 1e-8
) -> float:
    """Compare matgrad's gradient of scalar ``f`` with central finite differences.

    Every positional argument is differentiated. For each element, the analytic derivative
    ``a`` must satisfy ``|a - n| <= atol + rtol * |n|`` with ``n = (f(x + eps) - f(x - eps)) /
    (2 eps)`` computed in float64. Returns the largest absolute error found; raises
    AssertionError naming the argument and index of the first mismatch.
    """
    if not args:
        raise ValueError("check_grad: f needs at least one argument")
    base = [np.array(np.asarray(a, dtype=np.float64), dtype=np.float64) for a in args]
    analytic = grad(f, argnums=tuple(range(len(base))))(*base)

    def fval(vals: list) -> float:
        with no_grad():
            out = f(*[tensor_of(v) for v in vals])
        return float(np.asarray(out, dtype=np.float64).reshape(()))

    worst = 0.0
    for k, x in enumerate(base):
        flat = x.reshape(-1)
        for idx in range(flat.size):
            orig = flat[idx]
            flat[idx] = orig + eps
            fp = fval(base)
            flat[idx] = orig - eps
            fm = fval(base)
            flat[idx] = orig
            num = (fp - fm) / (2 * eps)
            ana = float(np.asarray(analytic[k]).reshape(-1)[idx])
            err = abs(ana - num)
            worst = max(worst, err)
            if not err <= atol + rtol * abs(num):
                where = np.unravel_index(idx, x.shape) if x.ndim else ()
                raise AssertionError(
                    f"check_grad: argument {k} at index {tuple(int(i) for i in where)}: analytic "
                    f"{ana!r} vs central difference {num!r} (error {err:.3g}, allowed "
                    f"{atol + rtol * abs(num):.3g})"
                )
    return worst


def tensor_of(v: np.ndarray) -> Tensor:
    return _core.tensor(v)
