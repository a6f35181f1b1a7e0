"""Function transforms: grad, value_and_grad, jacobian, hessian, vjp, jvp, check_grad, and the
no_grad and detect_anomaly switches."""

from __future__ import annotations

import contextlib
import functools
import operator
import os
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Callable, Union

import numpy as np

from . import _core
from ._core import Tensor

if TYPE_CHECKING:
    from typing_extensions import Self

ArgNums = Union[int, Sequence[int]]


def _numeric_array(a: Any, op: str, what: str) -> np.ndarray:
    """``a`` as a NumPy array of real numbers (float, int, unsigned or bool), or TypeError.

    The same contract as the engine's own conversion, in its words: ``"{op}: {what}: expected
    numbers, got an array of dtype <U1 with shape (2,)"``, ``"... complex input is not supported
    (dtype complex128, shape (3,))"``, ``"... expected a number, array or Tensor, got NoneType"``.
    NumPy alone would drop an imaginary part, parse numeric strings or count days.
    """
    if isinstance(a, Tensor):
        return np.asarray(a.numpy())
    if a is None or isinstance(a, (str, bytes)):
        raise TypeError(f"{op}: {what}: expected a number, array or Tensor, got {type(a).__name__}")
    try:
        arr = np.asarray(a)
    except (TypeError, ValueError):  # a ragged list, an object NumPy cannot read
        raise TypeError(f"{op}: {what}: cannot convert {type(a).__name__} to an array") from None
    kind = arr.dtype.kind
    if kind == "c":
        raise TypeError(
            f"{op}: {what}: complex input is not supported (dtype {arr.dtype}, shape {arr.shape})"
        )
    if kind not in "fiub":
        raise TypeError(
            f"{op}: {what}: expected numbers, got an array of dtype {arr.dtype} with shape {arr.shape}"
        )
    return arr


def _as_argnum(i: Any, op: str) -> int:
    if isinstance(i, (bool, np.bool_)):
        raise TypeError(f"{op}: argnums must be ints, got {type(i).__name__}")
    try:
        return operator.index(i)
    except TypeError:
        raise TypeError(f"{op}: argnums must be ints, got {type(i).__name__}") from None


def _bound(f: Callable[..., Any], kwargs: dict[str, Any]) -> Callable[..., Any]:
    """f with the call's keyword arguments bound: they pass through unchanged and are never
    differentiated (argnums counts positional arguments only, as in JAX)."""
    return functools.partial(f, **kwargs) if kwargs else f


def _checked_argnums(argnums: ArgNums, op: str) -> tuple[tuple[int, ...], bool]:
    single = hasattr(argnums, "__index__") and not isinstance(argnums, (bool, np.bool_))
    if single:
        return (_as_argnum(argnums, op),), True
    if isinstance(argnums, (str, bytes)) or not isinstance(argnums, Iterable):
        raise TypeError(f"{op}: argnums must be an int or a tuple of ints, got {type(argnums).__name__}")
    nums = tuple(_as_argnum(i, op) for i in argnums)
    if not nums:
        raise ValueError(f"{op}: argnums is empty")
    return nums, False


def _flatten(x: Any, leaves: list[Any]) -> Callable[[Iterator[Any]], Any]:
    """Append the leaves of a parameter tree (dicts, and lists and tuples inside them) to
    leaves; return the function that rebuilds the tree from an iterator over new leaves. Dict
    keys are visited sorted, as JAX does."""
    if isinstance(x, dict):
        keys = sorted(x)
        subs = [_flatten(x[k], leaves) for k in keys]
        return lambda it: {k: s(it) for k, s in zip(keys, subs)}
    if isinstance(x, (list, tuple)):
        items = [_flatten(v, leaves) for v in x]
        if isinstance(x, tuple) and hasattr(x, "_fields"):  # a namedtuple
            return lambda it: type(x)(*(s(it) for s in items))
        return lambda it: type(x)(s(it) for s in items)
    leaves.append(x)
    return lambda it: next(it)


def _tree_vg(
    vg: Callable[..., Any],
    f: Callable[..., Any],
    args: tuple[Any, ...],
    nums: tuple[int, ...],
    single: bool,
    value: bool,
    op: str,
) -> Any:
    """vg for arguments that are dicts of arrays (parameter trees): the differentiated dicts are
    flattened into their leaves, and their gradients come back as dicts of the same structure."""
    n = len(args)
    pos = [i + n if i < 0 else i for i in nums]
    if not any(0 <= i < n and isinstance(args[i], dict) for i in pos):
        return vg(f, args, nums, single, value, op)
    flat: list[Any] = []
    spans: list[tuple[int, int, Callable[[Iterator[Any]], Any] | None]] = []
    for i, a in enumerate(args):
        start = len(flat)
        if i in pos and isinstance(a, dict):
            tree = _flatten(a, flat)
            spans.append((start, len(flat) - start, tree))
        else:
            flat.append(a)
            spans.append((start, 1, None))

    def f_flat(*xs: Any) -> Any:
        rebuilt = [xs[st] if tree is None else tree(iter(xs[st : st + k])) for st, k, tree in spans]
        return f(*rebuilt)

    flat_nums: list[int] = []
    for i in pos:
        if not 0 <= i < n:  # out of range: the engine's own message
            return vg(f, args, nums, single, value, op)
        st, k, _ = spans[i]
        flat_nums.extend(range(st, st + k))
    if not flat_nums:
        raise ValueError(f"{op}: a differentiated dict has no arrays in it")
    out = vg(f_flat, tuple(flat), tuple(flat_nums), False, value, op)
    val, grads = out if value else (None, out)
    it = iter(grads)
    result = []
    for i in pos:
        _, k, rebuild = spans[i]
        result.append(next(it) if rebuild is None else rebuild(iter([next(it) for _ in range(k)])))
    g = result[0] if single else tuple(result)
    return (val, g) if value else g


def value_and_grad(f: Callable[..., Any], argnums: ArgNums = 0) -> Callable[..., Any]:
    """value_and_grad(f, argnums=0) -> Callable

    Return a function computing ``(f(*args), df/dargs[argnums])`` in one forward and one reverse
    sweep (the rule as in :func:`grad`).

    Shapes: ``f`` must return a scalar (shape ``()`` or ``(1, 1)``); each gradient has its
    argument's shape and dtype (``()`` for a Python number). With NumPy arrays or Python numbers
    in, value and gradients come back as NumPy arrays the caller owns. If any positional
    argument is a Tensor, they come back as Tensors connected to the graph, so transforms nest:
    ``grad(grad(f))``. ``argnums`` may be a tuple, giving a tuple of gradients. A dict argument
    (parameters by name; lists, tuples and dicts inside it are walked too) gets a dict of
    gradients of the same structure, as in JAX.
    """

    nums, single = _checked_argnums(argnums, "value_and_grad")
    vg = _core._vg

    @functools.wraps(f)
    def value_and_grad_f(*args: Any, **kwargs: Any) -> Any:
        return _tree_vg(vg, _bound(f, kwargs), args, nums, single, True, "value_and_grad")

    return value_and_grad_f


def grad(f: Callable[..., Any], argnums: ArgNums = 0) -> Callable[..., Any]:
    """grad(f, argnums=0) -> Callable

    Return a function computing the gradient of scalar ``f`` w.r.t. ``args[argnums]``.

    Shapes: ``f`` must return shape ``()`` or ``(1, 1)``; each gradient has its argument's shape
    and dtype (a tuple of them for a tuple ``argnums``). NumPy in, NumPy out; Tensors in, Tensors
    out (see :func:`value_and_grad`); a dict of arrays in, a dict of gradients out.

    Reverse mode: one sweep from the seed ``G = 1`` gives ``df/dx`` for every requested input,
    each node's adjoint being ``df/dx_i = sum over children j of (df/dx_j) . (dg_j/dx_i)``, the
    VJPs of the ops in reverse order.
    """

    nums, single = _checked_argnums(argnums, "grad")
    vg = _core._vg

    @functools.wraps(f)
    def grad_f(*args: Any, **kwargs: Any) -> Any:
        return _tree_vg(vg, _bound(f, kwargs), args, nums, single, False, "grad")

    return grad_f


def _placed(block: Any, out_shape: tuple[int, ...], in_shape: tuple[int, ...], graph: bool) -> Any:
    """A Jacobian block (out.size, in.size) given its full shape out_shape + in_shape: NumPy
    results always; Tensor results when that has at most 2 dimensions (else the C-order
    matricisation stays, as docs/concepts.md says)."""
    full = tuple(out_shape) + tuple(in_shape)
    if not graph:
        return block.reshape(full)
    return _core.reshape(block, full) if len(full) <= 2 else block


def jacobian(f: Callable[..., Any], argnums: ArgNums = 0) -> Callable[..., Any]:
    """jacobian(f, argnums=0) -> Callable

    Return a function computing the Jacobian of ``f`` w.r.t. ``args[argnums]``.

    Shapes: ``jacobian(f)(X)`` has shape ``f(X).shape + X.shape``: for a matrix function of a
    matrix, the 4-D ``J[i, j, k, l] = df(X)_ij/dX_kl``; a tuple of such blocks for a tuple
    ``argnums``. NumPy in, NumPy out; with a Tensor argument the result is a Tensor connected to
    the graph (so ``jacobian(grad(f))`` works), given as the ``(f(X).size, X.size)``
    matricisation when the full rank exceeds 2.

    Rule: the rows ``J^T e_i`` come from reverse sweeps (one per output element), or the columns
    ``J e_k`` from forward sweeps (one per input element, each the VJP of the VJP, as in
    :func:`jvp`), whichever are fewer, all of a batch at once in C++ (a batch of cotangents turns
    each matmul VJP into one GEMM).
    """

    nums, single = _checked_argnums(argnums, "jacobian")

    @functools.wraps(f)
    def jacobian_f(*args: Any, **kwargs: Any) -> Any:
        out, ins, graph = _core._trace(_bound(f, kwargs), args, nums, "jacobian")
        blocks = (_core._jacobian_nodes if graph else _core._jacobian_values)(out, list(ins))
        res = tuple(_placed(b, out.shape, x.shape, graph) for b, x in zip(blocks, ins))
        return res[0] if single else res

    return jacobian_f


def hessian(f: Callable[..., Any], argnums: ArgNums = 0) -> Callable[..., Any]:
    """hessian(f, argnums=0) -> Callable

    Return a function computing the Hessian of scalar ``f`` w.r.t. ``args[argnums]``.

    Shapes: ``f`` must return shape ``()`` or ``(1, 1)``; ``hessian(f)(x)`` has shape
    ``x.shape + x.shape``. With a tuple ``argnums`` the result is the nested tuple of blocks
    ``H[i][j] = d/dargs[j] (df/dargs[i])`` of shape ``args[i].shape + args[j].shape``. NumPy and
    Tensor results as in :func:`jacobian`.

    Rule: the Jacobian of the gradient. The gradient is built once as a graph (reverse mode,
    ``create_graph``), then differentiated by batched sweeps over that graph, as :func:`jacobian`
    does.
    """

    nums, single = _checked_argnums(argnums, "hessian")

    @functools.wraps(f)
    def hessian_f(*args: Any, **kwargs: Any) -> Any:
        out, ins, graph = _core._trace(_bound(f, kwargs), args, nums, "hessian")
        # Tensors (graph) or NumPy arrays; one conditional expression, so that mypy keeps the declared
        # type (an if/else would narrow it to a union whose rows zip() cannot type)
        blocks: list[list[Any]] = (
            _core._hessian_nodes(out, list(ins)) if graph else _core._hessian_values(out, list(ins))
        )
        rows = [
            tuple(_placed(b, xi.shape, xj.shape, graph) for b, xj in zip(row, ins))
            for row, xi in zip(blocks, ins)
        ]
        return rows[0][0] if single else tuple(rows)

    return hessian_f


def vjp(f: Callable[..., Any], *primals: Any) -> tuple[Any, Callable[[Any], tuple[Any, ...]]]:
    """vjp(f, *primals) -> tuple[out, vjp_fun]

    Return ``(f(*primals), vjp_fun)``; ``vjp_fun(cotangent)`` gives the tuple of
    ``cotangent . df/dprimal_i = J_i^T cotangent``, one per primal.

    Shapes: ``cotangent`` has the output's shape; the i-th result has ``primals[i]``'s shape.
    NumPy in, NumPy out; a Tensor primal or cotangent gives Tensors connected to the graph.

    Rule: the graph is recorded once; each ``vjp_fun`` call is one reverse sweep seeded with
    ``G = cotangent``, running every op's VJP in reverse order.
    """

    if not primals:
        raise ValueError("vjp: needs at least one primal")
    nums = tuple(range(len(primals)))
    out, ins, graph = _core._trace(f, primals, nums, "vjp")
    inputs = list(ins)

    def vjp_fun(cotangent: Any) -> tuple[Any, ...]:
        fn = _core._grad_nodes if graph or isinstance(cotangent, Tensor) else _core._grad_values
        return tuple(fn(out, inputs, cotangent, "vjp"))

    return (out if graph else np.array(out.numpy())), vjp_fun


def jvp(f: Callable[..., Any], primals: Sequence[Any], tangents: Sequence[Any]) -> tuple[Any, Any]:
    """jvp(f, primals, tangents) -> tuple[out, tangent_out]

    Forward mode: return ``(f(*primals), sum_i df/dprimal_i . tangents[i])``, i.e. ``J v``.

    Shapes: ``primals`` and ``tangents`` are tuples or lists of equal length, ``tangents[i]`` of
    ``primals[i]``'s shape; ``tangent_out`` has the output's shape. NumPy in, NumPy out; a Tensor
    primal or tangent gives Tensors connected to the graph.

    Rule: computed as the VJP of the VJP. The reverse sweep with a cotangent u is the linear map
    ``u -> J^T u``, recorded as a graph; its own VJP with cotangent v is ``J v``. So every op's
    VJP serves forward mode too, and jvp nests (grad of a jvp, jvp of a grad).
    """

    for what, seq in (("primals", primals), ("tangents", tangents)):
        if not isinstance(seq, (tuple, list)):
            raise TypeError(
                f"jvp: {what} must be a tuple or list (one entry per argument of f), got {type(seq).__name__}"
            )
    primals, tangents = tuple(primals), tuple(tangents)
    if not primals or len(primals) != len(tangents):
        raise ValueError(
            f"jvp: got {len(primals)} primals and {len(tangents)} tangents; they must match (at least one)"
        )
    nums = tuple(range(len(primals)))
    out, ins, graph = _core._trace(f, primals, nums, "jvp")
    ts = []
    for k, (x, t) in enumerate(zip(ins, tangents)):
        try:
            tt = t if isinstance(t, Tensor) else _core.tensor(t, dtype=x.dtype)
        except (TypeError, ValueError) as e:
            raise type(e)(f"jvp: tangent {k}: {e}") from None
        if tt.shape != x.shape:
            raise ValueError(f"jvp: tangent {k} has shape {tt.shape} but its primal has shape {x.shape}")
        ts.append(tt)
    graph = graph or any(isinstance(t, Tensor) for t in tangents)
    if not graph:
        return np.array(out.numpy()), _core._jvp_values(out, list(ins), ts)
    return out, _core._jvp_nodes(out, list(ins), ts)


class no_grad(contextlib.ContextDecorator):
    """no_grad()

    Context manager (and decorator) in which ops record no graph: their results are constants,
    so no gradient flows through them (``backward()`` does not reach their inputs). Shapes and
    values are unchanged. Transforms (grad, value_and_grad, ...) still differentiate inside it.
    """

    def __init__(self) -> None:
        self._prev: list[bool] = []

    def _recreate_cm(self) -> no_grad:  # each decorated call gets its own state
        return no_grad()

    def __enter__(self) -> Self:
        self._prev.append(_core.is_grad_enabled())
        _core._set_grad_enabled(False)
        return self

    def __exit__(self, *exc: object) -> None:
        _core._set_grad_enabled(self._prev.pop())


class detect_anomaly(contextlib.ContextDecorator):
    """detect_anomaly()

    Context manager (and decorator) that finds where a NaN or an Inf was made. Inside it, on
    this thread, every op checks its result and every backward pass (``backward()``, ``grad``,
    ``jacobian``, ``hessian``, ...) checks each cotangent it computes; the first op whose value
    has a NaN (or an Inf) that none of its inputs had, or whose backward turns a finite
    cotangent into one with a NaN or an Inf, raises ``matgrad.AnomalyError`` (a
    ``FloatingPointError`` and a ``RuntimeError``) naming the op, the shapes and the line of your
    code that called it (for a backward failure: where that op was called in the forward pass,
    when the forward pass ran inside ``detect_anomaly`` too). Nothing reaches ``.grad`` then.

    Slow (each op inspects its values and the calling frame): for debugging. Outside it the
    checks cost nothing. Compiled replays (``mg.compile``) are not checked: call the function
    uncompiled to find the op. Shapes and values are unchanged.

    Not differentiable: a switch outside the graph.
    """

    def __init__(self) -> None:
        self._prev: list[bool] = []

    def _recreate_cm(self) -> detect_anomaly:  # each decorated call gets its own state
        return detect_anomaly()

    def __enter__(self) -> Self:
        self._prev.append(_core._set_anomaly(True, _PACKAGE_DIR))
        return self

    def __exit__(self, *exc: object) -> None:
        _core._set_anomaly(self._prev.pop())


# matgrad's own files, skipped when anomaly mode names the line of code that called an op
_PACKAGE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "")


def check_grad(
    f: Callable[..., Any], *args: Any, eps: float = 1e-6, rtol: float = 1e-5, atol: float = 1e-8
) -> float:
    """check_grad(f, *args, eps=1e-6, rtol=1e-5, atol=1e-8) -> float

    Compare matgrad's gradient of scalar ``f`` with central finite differences.

    Shapes: ``f`` must return shape ``()`` or ``(1, 1)``; each argument (a number, array or
    Tensor of real numbers: float, int or bool, converted to float64) is differentiated, element
    by element. Complex, string, datetime or object input and ``None`` raise TypeError (naming
    the argument, its dtype and shape), non-finite values ValueError.

    Rule: for each element ``x`` of each argument, the step is ``h = eps * max(1, |x|)`` (a step
    relative to ``x``, so that ``x + h != x`` at any magnitude), the central difference is
    ``n = (f(x+) - f(x-)) / (x+ - x-)`` with ``x+- = x +- h`` as rounded in float64, and the
    analytic derivative ``a = df/dx`` (from :func:`grad`) must satisfy::

        |a - n| <= atol + rtol * |n| + r,   r = 2 * u * (|f(x+)| + |f(x-)|) / (x+ - x-)

    ``r`` bounds the rounding error of the difference: each value of ``f`` is known only to
    about one unit ``u`` in its last place, relative to its magnitude (``u`` the machine
    epsilon of ``f``'s result dtype: 2.2e-16 in float64), and the difference divides that by
    the step. It matters where ``|f|`` is large next to its change over the step, as for a sum
    of many terms (for ``sum(sin(x))`` over 200000 elements it is about 4e-5 of each partial
    derivative), and is negligible otherwise; a gradient wrong by more than ``r`` still fails.
    The step's truncation error ``f''' h^2 / 6`` is not in ``r``: it is large where ``f`` varies
    on a scale much finer than ``|x|`` (``sin`` near ``x = 1e4``). So an element that misses
    the bound is checked against two more estimates, each within the same bound with its own
    ``r``: the Richardson extrapolation of the differences with steps ``h`` and ``2h``, which
    cancels their ``h^2`` terms, and, for ``|x| > 1`` where ``x +- eps`` still differ from
    ``x``, the difference with the fixed step ``eps``. Each counts only if its ``r`` is within
    the first bound (so the check never loosens by more than a factor of 2); it is a mismatch
    only if all of them miss. Returns the largest absolute error found (against the estimate
    that passed); raises AssertionError naming the argument and index of the first mismatch,
    with the plain central difference and its bound.
    """
    if not args:
        raise ValueError("check_grad: f needs at least one argument")
    if not (np.isfinite(eps) and eps > 0 and rtol >= 0 and atol >= 0):
        raise ValueError(
            f"check_grad: eps must be positive and rtol, atol non-negative, got eps={eps}, "
            f"rtol={rtol}, atol={atol}"
        )
    base = []
    for k, a in enumerate(args):
        x = np.array(_numeric_array(a, "check_grad", f"argument {k}"), dtype=np.float64)
        if not np.all(np.isfinite(x)):
            raise ValueError(
                f"check_grad: argument {k} (shape {x.shape}) holds non-finite values; finite "
                f"differences need finite inputs"
            )
        base.append(x)
    analytic = grad(f, argnums=tuple(range(len(base))))(*base)
    unit = [float(np.finfo(np.float64).eps)]  # machine epsilon of f's result (float32: larger)

    def fval(vals: list[np.ndarray]) -> float:
        with no_grad():
            out = np.asarray(f(*[tensor_of(v) for v in vals]))
        if out.dtype.kind == "f":
            unit[0] = max(unit[0], float(np.finfo(out.dtype).eps))
        return float(np.asarray(out, dtype=np.float64).reshape(()))

    def central(flat: np.ndarray, idx: int, h: float) -> tuple[float, float, float]:
        """(central difference, the step x+ - x- it took, the bound r of its rounding error)."""
        orig = flat[idx]
        xp, xm = orig + h, orig - h
        flat[idx] = xp
        fp = fval(base)
        flat[idx] = xm
        fm = fval(base)
        flat[idx] = orig
        step = float(xp - xm)  # the step actually taken: x +- h are rounded
        if step == 0.0:  # h below the resolution at x: no estimate
            return float("nan"), 0.0, float("inf")
        return (fp - fm) / step, step, 2.0 * unit[0] * (abs(fp) + abs(fm)) / step

    worst = 0.0
    for k, x in enumerate(base):
        flat = x.reshape(-1)
        grads = np.asarray(analytic[k]).reshape(-1)
        for idx in range(flat.size):
            h = eps * max(1.0, abs(float(flat[idx])))
            num, s1, r1 = central(flat, idx, h)
            if s1 == 0.0:
                raise ValueError(
                    f"check_grad: eps={eps} is below float64's resolution (x +- eps * max(1, |x|) "
                    f"== x) at argument {k}, element {flat[idx]!r}"
                )
            ana = float(grads[idx])
            err = abs(ana - num)
            allowed = atol + rtol * abs(num) + r1
            if not err <= allowed:
                # a truncation error? n(s) = f' + c s^2 + O(s^4), so Richardson's
                # (s2^2 n1 - s1^2 n2) / (s2^2 - s1^2) = f' + O(s^4); and the fixed step eps
                num2, s2, r2 = central(flat, idx, 2.0 * h)
                w1, w2 = s2 * s2 / (s2 * s2 - s1 * s1), s1 * s1 / (s2 * s2 - s1 * s1)
                others = [(w1 * num - w2 * num2, w1 * r1 + w2 * r2)]
                if h > eps:
                    num3, _, r3 = central(flat, idx, eps)
                    others.append((num3, r3))
                # an estimate counts only if it is as precise: its r within the first bound
                errs = [
                    abs(ana - n)
                    for n, r in others
                    if r <= allowed and abs(ana - n) <= atol + rtol * abs(n) + r
                ]
                if not errs:
                    where = np.unravel_index(idx, x.shape) if x.ndim else ()
                    raise AssertionError(
                        f"check_grad: argument {k} at index {tuple(int(i) for i in where)}: analytic "
                        f"{ana!r} vs central difference {num!r} (error {err:.3g}, allowed "
                        f"{allowed:.3g})"
                    )
                err = min(errs)
            worst = max(worst, err)
    return worst


def tensor_of(v: np.ndarray) -> Tensor:
    return _core.tensor(v)
