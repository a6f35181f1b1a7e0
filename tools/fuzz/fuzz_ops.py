#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Fuzz matgrad's ops and transforms with small random programs built from the fuzzer's bytes.

Each input (a byte string) decodes into a program: 1-3 inputs of random shapes (0-D to 2-D, with
0- and 1-size dimensions, now and then 3-D or not numbers at all), dtypes float64 / float32 /
int / bool, held as Tensors or as NumPy operands, and 1-4 steps, each an op of the engine's
registry (``mg._core._entry_points()``) with operands drawn from the values so far, its static
arguments (axis, shape, k, n, index) from the bytes and, now and then, a guard that puts its
operand in the op's smooth domain (``x*x + 0.5`` before log, ``x + (n+1) I`` before inv, ...).
The numbers come from a generator seeded by the bytes: smooth uniform values, or a mix with
specials (0, -0, NaN, infinities, subnormals, huge values). Checks, each a *finding*:

* every step's value against NumPy on the same inputs, where NumPy has the op: shape, NEP 50
  dtype, and numbers within the op's error bound (a few ulp for elementwise ops, the rounding of
  a sum, matmul's |A||B| bound, a condition-number bound for the linear algebra, exact for
  shape ops); NaN and infinities where NumPy has them;
* an op NumPy refuses (shapes that do not broadcast, ...) must raise in matgrad too;
* an exception must be one of the documented kinds (ValueError, TypeError, LinAlgError,
  IndexError, RuntimeError): anything else, or a crash, is a finding;
* on float64 inputs where the program is smooth (finite values, one-sided differences that
  agree, differences at steps h and 2h that agree), the gradient of ``sum(c * out)`` from one of
  grad / value_and_grad / vjp / jacobian / jvp / compile (value, grad, value_and_grad) against
  central differences along a random direction.

Run it (from the repository root):

    python tools/fuzz/fuzz_ops.py CORPUS_DIR...           # atheris (libFuzzer flags pass through)
    python tools/fuzz/fuzz_ops.py --corpus tools/fuzz/corpus   # each file once, no atheris
    python tools/fuzz/fuzz_ops.py --random --time 60 --artifacts DIR  # plain random driver
    python tools/fuzz/fuzz_ops.py --repro FILE -v          # one input, printing the program

The seeds in tools/fuzz/corpus/ decode through the op table: after changing OPS, rerun
them (tests/test_fuzz_corpus.py) and pick new ones if they no longer cover every op and
transform (-v prints which ones an input reaches). tools/fuzz/run.sh runs it for a bounded time. A finding raises ``Finding`` (atheris writes the
input as crash-*; the random driver writes finding-* into --artifacts); a hard crash leaves the
input in DIR/current-input under the random driver.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import hashlib
import os
import signal
import sys
import time
import warnings
import zlib
from typing import Any, Callable

import numpy as np

# atheris instruments matgrad's Python code when it is there and fuzzing; the harness runs without it
PLAIN = __name__ != "__main__" or any(
    a in sys.argv for a in ("--corpus", "--repro", "--random", "-h", "--help")
)
try:
    if PLAIN:
        raise ImportError
    import atheris

    with atheris.instrument_imports(include=["matgrad"]):
        import matgrad as mg
except ImportError:  # pragma: no cover - depends on the environment
    atheris = None
    import matgrad as mg

warnings.simplefilter("ignore")  # NumPy's ComplexWarning, RuntimeWarning: the checks say what matters
# the documented kinds, and MemoryError for a result too large to allocate (outer(outer(x, x), ...))
ALLOWED = (ValueError, TypeError, np.linalg.LinAlgError, IndexError, RuntimeError, MemoryError)
VERBOSE = False


class Finding(Exception):
    """A defect: a wrong value, shape, dtype or gradient, or an exception of the wrong kind."""


def log(*a: Any) -> None:
    if VERBOSE:
        print(*a, file=sys.stderr)


# ---- bytes -> decisions ----


class Source:
    """Reads decisions from the fuzzer's bytes; past their end every read is 0."""

    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def byte(self) -> int:
        b = self.data[self.pos] if self.pos < len(self.data) else 0
        self.pos += 1
        return b

    def int(self, lo: int, hi: int) -> int:
        """An integer in [lo, hi]."""
        return lo + self.byte() % (hi - lo + 1)

    def pick(self, seq: Any) -> Any:
        return seq[self.byte() % len(seq)]

    def chance(self, per256: int) -> bool:
        return self.byte() < per256


# ---- values ----

SPECIALS = [0.0, -0.0, np.nan, np.inf, -np.inf, 1e-310, -5e-324, 1e300, -1e300, 2.0**70, 1e-8, 3e38, 700.0]


def mg_dtype(x: Any) -> np.dtype:
    """The dtype matgrad computes an operand in (Tensors: their own; arrays: the operand rule)."""
    if isinstance(x, mg.Tensor):
        return np.dtype(x.dtype)
    a = np.asarray(x)
    if a.dtype.kind == "f" and a.itemsize <= 4:
        return np.dtype(np.float32)
    if a.dtype.kind in "iub" and a.itemsize <= 2:
        return np.dtype(np.float32)
    return np.dtype(np.float64)


def as_f64(x: Any) -> Any:
    """An operand as matgrad sees it, in float64 (Python scalars stay scalars: they are weak)."""
    if isinstance(x, (int, float)) and not isinstance(x, bool):
        return x
    if isinstance(x, np.generic):
        return np.float64(x)
    if isinstance(x, mg.Tensor):
        return np.array(x.numpy(), dtype=np.float64)
    return np.asarray(x).astype(mg_dtype(x)).astype(np.float64)


def as_native(a: Any) -> Any:
    return np.array(a.numpy()) if isinstance(a, mg.Tensor) else a


def result_dtype(args: list[Any]) -> np.dtype:
    """NEP 50's result dtype for these operands, as matgrad documents it: NumPy's promotion
    (Python numbers weak), then float64 where no operand is a float."""
    native = [np.array(a.numpy()) if isinstance(a, mg.Tensor) else a for a in args]
    dt = np.result_type(*native)
    return dt if dt.kind == "f" else np.dtype(np.float64)


def draw_shape(src: Source, max_ndim: int = 2) -> tuple[int, ...]:
    ndim = src.pick([0, 1, 1, 2, 2, 2, 2, 3] if max_ndim > 2 else [0, 1, 1, 2, 2, 2])
    return tuple(src.pick([0, 1, 1, 2, 2, 3, 3, 4]) for _ in range(ndim))


def draw_values(src: Source, rng: np.random.Generator, shape: tuple[int, ...], special: bool) -> np.ndarray:
    x = rng.uniform(-2.0, 2.0, size=shape)
    if special and x.size:
        mask = rng.random(shape) < 0.3
        x = np.where(mask, rng.choice(np.array(SPECIALS), size=shape), x)
    return np.asarray(x, dtype=np.float64)


# ---- guards: put an operand in an op's smooth domain (run by both libraries) ----


def guard(kind: str | None, x: Any, lib: Any) -> Any:
    numeric = isinstance(x, mg.Tensor) or (isinstance(x, np.ndarray) and x.dtype.kind in "fiub")
    if kind is None or not numeric:
        return x
    if kind == "pos":
        return x * x + 0.5
    if kind == "nonzero":
        return x * x + 0.3
    if kind == "small":
        return lib.tanh(x) * 1.2
    shape = tuple(x.shape)
    if len(shape) != 2 or shape[0] != shape[1]:
        return x  # not square: the op refuses it (a path worth taking too)
    n = shape[0]
    eye = np.eye(n, dtype=np.float64 if mg_dtype(x) == np.float64 else np.float32)
    if kind == "square":  # well conditioned: (n + 1) I + x, x in [-2, 2]
        return x + (2 * n + 2) * eye
    if kind == "spd":
        return lib.matmul(x, lib.transpose(x)) + n * eye
    raise AssertionError(kind)


# ---- the ops ----


@dataclasses.dataclass
class Op:
    name: str  # the registry name (or "index")
    arity: int  # array operands
    mg_fn: Callable[..., Any]
    np_fn: Callable[..., Any] | None  # NumPy's equivalent (None: no reference)
    tol: str  # "exact", "ew", "ew2", "sum", "mean", "lse", "mm", "lin", "norm", "none"
    params: Callable[[Source, list], dict] | None = None  # static arguments from the bytes
    guard: str | None = None
    strict: bool = True  # NumPy refusing means matgrad must refuse
    smooth: bool = True  # its gradient is checked (kinks are found and skipped at run time)
    scalars: bool = False  # a Python / NumPy scalar may stand for one operand
    operator: bool = False  # a Tensor operator (a + b): one operand is made a Tensor


def lse_ref(x: np.ndarray, axis: Any = None) -> np.ndarray:
    m = np.max(x, axis=axis, keepdims=True, initial=-np.inf)  # -inf over nothing
    m = np.where(np.isfinite(m), m, 0.0)
    return np.squeeze(m, axis=axis) + np.log(np.sum(np.exp(x - m), axis=axis))


def axis_param(src: Source, args: list) -> dict:
    return {"axis": src.pick([None, None, 0, 1, -1, -2, 2, -3])}


def reshape_param(src: Source, args: list) -> dict:
    shape = tuple(args[0].shape) if hasattr(args[0], "shape") else ()
    n = int(np.prod(shape, dtype=np.int64))
    cands = [(n,), (-1,), (1, n), (n, 1), (-1, 1), (1, -1), (), (n + 1,), (2, -1), (0, -1), (1, 1, n)]
    if n > 1:
        for d in (2, 3):
            if n % d == 0:
                cands.append((d, n // d))
    return {"shape": src.pick(cands)}


def k_param(src: Source, args: list) -> dict:
    return {"k": src.pick([0, 0, 1, -1, 2, -3, 7])}


def n_param(src: Source, args: list) -> dict:
    return {"n": src.pick([0, 1, 2, 3, 5, -1, -2, 2.5, True])}


def index_param(src: Source, args: list) -> dict:
    shape = tuple(args[0].shape) if hasattr(args[0], "shape") else ()
    r = shape[0] if shape else 1
    forms: list[Any] = [
        src.int(-r - 1, r),
        slice(src.int(-3, 3), src.int(-3, 4)),
        slice(None, None, src.pick([-1, 2, -2, 3])),
        (slice(None), src.int(-1, 2)),
        (src.int(-1, 1), src.int(-1, 1)),
        np.array([0, r - 1, 0]) if r else np.array([], dtype=np.int64),
        np.arange(r) % 2 == 0,
        (slice(None, None, 2), slice(None, None, -1)),
        (np.array([0, 0]), -1),
    ]
    return {"index": src.pick(forms)}


def slogdet_param(src: Source, args: list) -> dict:
    return {"part": src.int(0, 1)}


def _np_eigh_part(x: Any, part: int) -> Any:
    """eigh's eigenvalues (of (x + x^T) / 2, as matgrad reads x); no reference for the vectors,
    whose signs and, at close eigenvalues, directions are not unique."""
    return np.linalg.eigvalsh((x + np.transpose(x)) / 2) if part == 0 else None


def _np_svd_part(x: Any, part: int) -> Any:
    return np.linalg.svd(x, compute_uv=False) if part == 1 else None


def _np_index(x: Any, index: Any) -> Any:
    return np.asarray(x)[index]


def _mg_index(x: Any, index: Any) -> Any:
    if not isinstance(x, mg.Tensor):
        x = mg.tensor(x)
    return x[index]


def _pick(part: int, fn: Callable[[Any], Any]) -> Callable[..., Any]:
    return lambda x, part=part: fn(x)[part]


UNARY = {
    "neg": (np.negative, "exact", None),
    "exp": (np.exp, "ew", None),
    "log": (np.log, "ew", "pos"),
    "log1p": (np.log1p, "ew", "pos"),
    "expm1": (np.expm1, "ew", None),
    "sin": (np.sin, "ew", None),
    "cos": (np.cos, "ew", None),
    "tan": (np.tan, "ew", "small"),
    "tanh": (np.tanh, "ew", None),
    "sqrt": (np.sqrt, "ew", "pos"),
    "abs": (np.abs, "exact", "nonzero"),
    "square": (np.square, "ew", None),
    "sigmoid": (lambda x: 1.0 / (1.0 + np.exp(-x)), "ew2", None),
    "relu": (lambda x: np.maximum(x, 0), "exact", "nonzero"),
    "softplus": (lambda x: np.logaddexp(0, x), "ew2", None),
}
BINARY = {
    "add": (np.add, "ew", None),
    "sub": (np.subtract, "ew", None),
    "mul": (np.multiply, "ew", None),
    "div": (np.divide, "ew", "nonzero"),
    "pow": (np.power, "ew2", "pos"),
    "maximum": (np.maximum, "exact", None),
    "minimum": (np.minimum, "exact", None),
}
OPERATORS = {"add": "+", "sub": "-", "mul": "*", "div": "/", "pow": "**"}


def _binop(sym: str) -> Callable[[Any, Any], Any]:
    return {
        "+": lambda a, b: a + b,
        "-": lambda a, b: a - b,
        "*": lambda a, b: a * b,
        "/": lambda a, b: a / b,
        "**": lambda a, b: a**b,
        "@": lambda a, b: a @ b,
    }[sym]


def build_ops() -> list[Op]:
    ops: list[Op] = []
    for name, (ref, tol, g) in UNARY.items():
        ops.append(Op(name, 1, getattr(mg, name), ref, tol, guard=g))
    ops.append(Op("neg", 1, lambda x: -x, np.negative, "exact", operator=True))
    ops.append(Op("abs", 1, lambda x: abs(x), np.abs, "exact", guard="nonzero", operator=True))
    for name, (ref, tol, g) in BINARY.items():
        ops.append(Op(name, 2, getattr(mg, name), ref, tol, guard=g, scalars=True))
        if name in OPERATORS:  # the operator form: Tensor.__add__ / ndarray reflected
            ops.append(Op(name, 2, _binop(OPERATORS[name]), ref, tol, guard=g, scalars=True, operator=True))
    ops.append(Op("where", 2, mg.where, np.where, "exact"))
    for name, ref in (("sum", np.sum), ("mean", np.mean), ("logsumexp", lse_ref), ("max", np.max)):
        tol = {"sum": "sum", "mean": "mean", "logsumexp": "lse", "max": "exact"}[name]
        ops.append(Op(name, 1, getattr(mg, name), ref, tol, axis_param))
        if name in ("sum", "mean"):  # the methods x.sum(axis=...), x.mean(axis=...)
            method = functools.partial(lambda x, axis, name: getattr(x, name)(axis=axis), name=name)
            ops.append(Op(name, 1, method, ref, tol, axis_param, operator=True))
    ops += [
        Op("transpose", 1, mg.transpose, np.transpose, "exact"),
        Op(
            "reshape",
            1,
            lambda x, shape: mg.reshape(x, shape),
            lambda x, shape: np.reshape(x, shape),
            "exact",
            reshape_param,
        ),
        Op(
            "concatenate",
            2,
            lambda a, b, axis: mg.concatenate([a, b], axis=axis),
            lambda a, b, axis: np.concatenate([a, b], axis=axis),
            "exact",
            lambda s, a: {"axis": s.pick([0, 1, -1, -2, 2])},
        ),
        Op(
            "stack",
            2,
            lambda a, b, axis: mg.stack([a, b], axis=axis),
            lambda a, b, axis: np.stack([a, b], axis=axis),
            "exact",
            lambda s, a: {"axis": s.pick([0, 1, -1, 2])},
        ),
        Op("diag", 1, lambda x, k: mg.diag(x, k), lambda x, k: np.diag(x, k), "exact", k_param, strict=False),
        Op("matmul", 2, mg.matmul, np.matmul, "mm"),
        Op("matmul", 2, _binop("@"), np.matmul, "mm", operator=True),
        Op("transpose", 1, lambda x: x.T, np.transpose, "exact", operator=True),
        Op("dot", 2, mg.dot, np.dot, "mm", strict=False),
        Op("outer", 2, mg.outer, np.outer, "mm", strict=False),
        Op("trace", 1, mg.trace, np.trace, "sum", strict=False),
        Op("det", 1, mg.det, np.linalg.det, "lin", guard="square", strict=False),
        Op("logdet", 1, mg.logdet, lambda x: np.linalg.slogdet(x)[1], "lin", guard="spd", strict=False),
        Op(
            "slogdet",
            1,
            lambda x, part: mg.slogdet(x)[part],
            lambda x, part: np.linalg.slogdet(x)[part],
            "lin",
            slogdet_param,
            guard="square",
            strict=False,
        ),
        Op("inv", 1, mg.inv, np.linalg.inv, "lin", guard="square", strict=False),
        Op("solve", 2, mg.solve, np.linalg.solve, "lin", guard="square", strict=False),
        Op("cholesky", 1, mg.cholesky, np.linalg.cholesky, "lin", guard="spd", strict=False),
        Op("norm", 1, mg.norm, lambda x: np.linalg.norm(np.ravel(x)), "norm", guard="nonzero", strict=False),
        Op(
            "matrix_power",
            1,
            lambda a, n: mg.matrix_power(a, n),
            lambda a, n: np.linalg.matrix_power(a, n),
            "lin",
            n_param,
            guard="square",
            strict=False,
        ),
        Op("kron", 2, mg.kron, np.kron, "mm", strict=False),
        # matrix functions: values checked where they are unique (eigenvalues, singular values);
        # gradients not (eigenvalue crossings are kinks; the vectors' are checked in the tests)
        Op(
            "eigvalsh",
            1,
            mg.eigvalsh,
            lambda x: np.linalg.eigvalsh((x + np.transpose(x)) / 2),
            "spec",
            guard="square",
            strict=False,
            smooth=False,
        ),
        Op(
            "eigh",
            1,
            lambda x, part: mg.eigh(x)[part],
            _np_eigh_part,
            "spec",
            slogdet_param,
            guard="square",
            strict=False,
            smooth=False,
        ),
        Op(
            "svdvals",
            1,
            mg.svdvals,
            lambda x: np.linalg.svd(x, compute_uv=False),
            "spec",
            strict=False,
            smooth=False,
        ),
        Op(
            "svd",
            1,
            lambda x, part: mg.svd(x)[part],
            _np_svd_part,
            "spec",
            lambda s, a: {"part": s.int(0, 2)},
            strict=False,
            smooth=False,
        ),
        Op("pinv", 1, mg.pinv, None, "none", strict=False, smooth=False),
        Op("expm", 1, mg.expm, None, "none", guard="small", strict=False, smooth=False),
        Op("logm", 1, mg.logm, None, "none", guard="spd", strict=False, smooth=False),
        Op("sqrtm", 1, mg.sqrtm, None, "none", guard="spd", strict=False, smooth=False),
        Op("quad_form", 2, mg.quad_form, lambda x, b: np.transpose(x) @ b @ x, "mm", strict=False),
        Op("index", 1, _mg_index, _np_index, "exact", index_param, strict=False),
    ]
    return ops


OPS = build_ops()


def registry_names() -> set[str]:
    return {e["name"] for e in mg._core._entry_points()}


def check_registry_coverage() -> list[str]:
    """Registry ops the table has no entry for: they are still fuzzed, without a reference."""
    return sorted(registry_names() - {op.name for op in OPS})


def generic_ops() -> list[Op]:
    """Ops of the registry not in the table: called with random arrays, crash checks only."""
    out = []
    for e in mg._core._entry_points():
        if e["name"] in {op.name for op in OPS}:
            continue
        fn = getattr(mg, e["name"], None)
        if fn is not None:
            out.append(Op(e["name"], max(1, len(e["params"])), fn, None, "none", strict=False, smooth=False))
    return out


OPS += generic_ops()


# ---- error bounds ----


def ulp_unit(dtype: np.dtype) -> float:
    return float(np.finfo(dtype).eps)


def cond(x: np.ndarray) -> float:
    if x.ndim != 2 or x.shape[0] != x.shape[1] or x.size == 0 or not np.all(np.isfinite(x)):
        return np.inf if x.size else 1.0
    with np.errstate(all="ignore"):
        try:
            return float(np.linalg.cond(x))
        except np.linalg.LinAlgError:
            return np.inf


def bound(op: Op, params: dict, ins: list[Any], want: np.ndarray, dtype: np.dtype) -> np.ndarray | None:
    """The allowed |got - want| for op on these float64 inputs, or None: do not compare numbers."""
    u = ulp_unit(dtype)
    tiny = float(np.finfo(dtype).smallest_subnormal) * 4
    arrays = [np.asarray(a, dtype=np.float64) for a in ins]
    awant = np.abs(want)
    if op.tol == "exact":
        return np.zeros_like(awant)
    if op.tol in ("ew", "ew2"):
        k = 8 if op.tol == "ew" else 64
        if op.name in ("pow",):
            # x ** y: the rounding of y (weak scalars) and exp(y log x) amplify by |y log x|
            x, y = (np.asarray(a, dtype=np.float64) for a in ins)
            with np.errstate(all="ignore"):
                amp = 1.0 + np.abs(y * np.log(np.abs(x)))
            return k * u * awant * np.where(np.isfinite(amp), amp, 1.0) + tiny
        return k * u * awant + tiny
    if op.tol in ("sum", "mean"):
        x = arrays[0]
        axis = params.get("axis")
        with np.errstate(all="ignore"):
            s = np.trace(np.abs(x)) if op.name == "trace" else np.sum(np.abs(x), axis=axis)
            n = x.size if axis is None or op.name == "trace" else x.shape[axis]
            if op.tol == "mean":
                s = s / max(n, 1)
        return (n + 4) * u * s + 4 * u * awant + tiny
    if op.tol == "lse":
        x = arrays[0]
        axis = params.get("axis")
        n = x.size if axis is None else x.shape[axis]
        return (n + 8) * u * (awant + 1.0)
    if op.tol == "mm":
        with np.errstate(all="ignore"):
            absref = np.abs(np.asarray(op.np_fn(*[np.abs(a) for a in arrays]), dtype=np.float64))
        inner = max([1, *[int(s) for a in arrays for s in a.shape]])
        if op.name == "quad_form":  # x^T B underflows (absolute error n * subnormal), times sum |x|
            under = 4 * inner * tiny * float(np.sum(np.abs(arrays[0])))
            return (2 * inner + 4) * u * absref + under + tiny
        return (2 * inner + 4) * u * absref + tiny
    if op.tol == "norm":
        n = max(1, arrays[0].size)
        return (n + 4) * u * awant + tiny
    if op.tol == "lin":
        a = arrays[0]
        c = cond(a)
        n = max(1, a.shape[0] if a.ndim else 1)
        p = abs(int(params.get("n", 1))) if op.name == "matrix_power" else 1
        with np.errstate(all="ignore"):
            base = c if op.name != "matrix_power" or params.get("n", 1) < 0 else 1.0
            amp = float(np.power(np.float64(base), max(p, 1)))
        if op.name == "matrix_power" and params.get("n", 1) >= 0:
            with np.errstate(all="ignore"):
                absref = np.abs(np.linalg.matrix_power(np.abs(a), int(params["n"]))) if a.size else awant
            with np.errstate(all="ignore"):  # products in the subnormal range: absolute errors, amplified
                big = np.float64(max(1.0, float(np.max(np.abs(a), initial=0.0))))
                under = 16 * n * max(p, 1) * tiny * float(np.power(big, max(p - 1, 0)))
            return 16 * n * max(p, 1) * u * absref + under + tiny
        if not np.isfinite(amp) or amp * u > 1e-4:
            return None  # too ill-conditioned to compare (or singular)
        if op.name == "solve":
            b = arrays[1]
            scale = np.max(awant, initial=0.0) + np.max(np.abs(b), initial=0.0)
            return 32 * n * u * amp * scale + tiny
        if (op.name == "slogdet" and params.get("part") == 1) or op.name == "logdet":
            return 32 * n * u * amp + np.zeros_like(awant)
        if op.name == "det":  # NumPy's det carries the rounding of exp(log |det|)
            with np.errstate(all="ignore"):
                return 32 * n * u * amp * awant + 8 * u * np.abs(np.log(awant)) * awant + tiny
        return 32 * n * u * amp * (np.max(awant, initial=0.0) + 1e-300) + tiny
    if op.tol == "spec":  # eigenvalues and singular values: absolute error n eps ||A||_2 (Weyl)
        a = arrays[0]
        if a.ndim != 2 or not np.all(np.isfinite(a)):
            return None
        n = max(1, *a.shape)
        return 16 * n * u * (float(np.linalg.norm(a, 2)) if a.size else 0.0) + tiny
    return None


def fragile(op: Op, params: dict, ins64: list[Any], shape: tuple, dtype: np.dtype) -> np.ndarray:
    """Where a sum of products overflows on the way (|A||B| or sum |x| beyond the dtype's range),
    so that inf, -inf or NaN there depend on the order of summation: not compared."""
    big = float(np.finfo(dtype).max)
    arrays = [np.abs(np.asarray(a, dtype=np.float64)) for a in ins64]
    with np.errstate(all="ignore"):
        if op.name == "quad_form" and len(arrays) == 2:  # x^T B x: either product may overflow first
            x, b = arrays
            if not (np.all(np.transpose(x) @ b <= big) and np.all(b @ x <= big)):
                return np.ones(shape, dtype=bool)
        if op.tol == "mm":
            m = np.asarray(op.np_fn(*arrays), dtype=np.float64)
        elif op.tol in ("sum", "mean"):
            m = np.trace(arrays[0]) if op.name == "trace" else np.sum(arrays[0], axis=params.get("axis"))
        elif op.tol in ("lse", "norm"):
            m = np.sum(
                np.where(np.isfinite(arrays[0]), 0.0, np.inf) + arrays[0] ** 2, axis=params.get("axis")
            )
        else:
            return np.zeros(shape, dtype=bool)
        m = np.broadcast_to(np.asarray(m), shape)
        return ~(m <= big) & ~np.isnan(m) if op.tol != "lse" else np.zeros(shape, dtype=bool)


def compare(
    what: str, op: Op, params: dict, ins64: list[Any], got: Any, want: Any, want_dtype: Any, alt: Any = None
) -> None:
    """got against NumPy's want (computed in float64; alt: NumPy in the result dtype, whose
    overflows and NaN a float32 result may share)."""
    got_a = np.asarray(got.numpy() if isinstance(got, mg.Tensor) else got)
    want_a = np.asarray(want)
    if got_a.shape != want_a.shape:
        raise Finding(f"{what}: shape {got_a.shape}, NumPy gives {want_a.shape}")
    if want_dtype is not None and got_a.dtype != want_dtype:
        raise Finding(f"{what}: dtype {got_a.dtype}, NumPy gives {want_dtype}")
    dtype = got_a.dtype if got_a.dtype.kind == "f" else np.dtype(np.float64)
    if op.tol == "lin" and not all(np.all(np.isfinite(np.asarray(a))) for a in ins64):
        return  # non-finite matrices: NaN patterns of LAPACK vs Eigen are not a contract
    w = want_a.astype(np.float64)
    if dtype == np.float32:
        with np.errstate(all="ignore"):
            w = w.astype(np.float32).astype(np.float64)  # the float32 rounding of the exact value
    g = got_a.astype(np.float64)
    skip = fragile(op, params, ins64, g.shape, dtype)
    if alt is not None and np.shape(alt) == g.shape:
        a = np.asarray(alt, dtype=np.float64)
        skip = skip | (np.isnan(a) & np.isnan(g)) | (a == g)  # NumPy's own float32 answer
    w = np.where(skip, g, w)
    nan_w, nan_g = np.isnan(w), np.isnan(g)
    strict_nan = op.tol in ("exact", "ew", "ew2", "sum", "mean", "lse") or op.name in ("norm", "matmul")
    if strict_nan and not np.array_equal(nan_w, nan_g):
        i = tuple(int(j) for j in np.argwhere(nan_w != nan_g)[0])
        raise Finding(f"{what}: at {i} got {g[i]!r}, NumPy gives {w[i]!r} (NaN mismatch)")
    tol = bound(op, params, ins64, w, dtype)
    if tol is None:
        return
    both = ~(nan_w | nan_g)
    with np.errstate(all="ignore"):
        inf_w = np.isinf(w) & both
        if strict_nan and not np.array_equal(g[inf_w], w[inf_w]):
            i = tuple(int(j) for j in np.argwhere(inf_w & (g != w))[0])
            raise Finding(f"{what}: at {i} got {g[i]!r}, NumPy gives {w[i]!r}")
        fin = both & ~inf_w
        err = np.where(fin, np.abs(g - w), 0.0)
        tol = np.broadcast_to(np.where(np.isfinite(tol), tol, np.inf), err.shape)
        bad = fin & ~(err <= tol)
    if np.any(bad):
        i = tuple(int(j) for j in np.argwhere(bad)[0])
        raise Finding(
            f"{what}: at {i} got {g[i]!r}, NumPy gives {w[i]!r} (error {err[i]:.3g}, allowed {tol[i]:.3g})"
        )


# ---- programs ----


@dataclasses.dataclass
class Step:
    op: Op
    args: list[int]  # value indices (or -1: the scalar)
    params: dict
    scalar: Any = None
    guarded: bool = False


@dataclasses.dataclass
class Program:
    inputs: list[Any]  # Tensors or NumPy arrays (or bad objects)
    diff: list[int]  # the float64 Tensor inputs (differentiated)
    steps: list[Step]
    rng_seed: int
    smooth_inputs: bool

    def describe(self) -> str:
        lines = []
        for k, x in enumerate(self.inputs):
            kind = "Tensor" if isinstance(x, mg.Tensor) else type(x).__name__
            lines.append(
                f"  v{k} = {kind} shape={getattr(x, 'shape', None)} dtype={getattr(x, 'dtype', None)}"
            )
        for j, s in enumerate(self.steps):
            a = ", ".join("scalar " + repr(s.scalar) if i < 0 else f"v{i}" for i in s.args)
            g = f" guard={s.op.guard}" if s.guarded else ""
            params = {k: v for k, v in s.params.items() if not k.startswith("_")}
            lines.append(f"  v{len(self.inputs) + j} = {s.op.name}({a}) {params}{g}")
        return "\n".join(lines)


BAD_INPUTS: list[Callable[[], Any]] = [
    lambda: None,
    lambda: "1.5",
    lambda: np.array(["1", "2"]),
    lambda: np.ones(2, complex),
    lambda: np.array(["2020-01-01"], "datetime64[D]"),
    lambda: np.ones((2, 2, 2)),
    lambda: [1.0, [2.0, 3.0]],
    lambda: np.array([1.0, 2.0], dtype=object),
    lambda: np.ones((3, 3))[:, ::2],  # strided
    lambda: np.ones((2, 3)).T,  # Fortran order
    lambda: np.ones(3, dtype=">f8"),  # big-endian
]


def build(data: bytes) -> Program:
    src = Source(data)
    seed = zlib.crc32(data)
    rng = np.random.default_rng(seed)
    special = src.chance(40)
    inputs: list[Any] = []
    diff: list[int] = []
    for k in range(src.int(1, 3)):
        if src.chance(8):
            inputs.append(src.pick(BAD_INPUTS)())
            continue
        shape = draw_shape(src, max_ndim=3 if src.chance(10) else 2)
        x = draw_values(src, rng, shape, special)
        kind = src.pick(["f64", "f64", "f64", "f64", "f32", "f32", "int", "bool"])
        if kind == "f32":
            x = x.astype(np.float32)
        elif kind == "int":
            x = np.nan_to_num(np.round(x), posinf=7, neginf=-7).astype(
                src.pick([np.int64, np.int32, np.int8, np.uint8])
            )
        elif kind == "bool":
            x = x > 0
        x = np.asarray(x)  # 0-D results of NumPy are scalars: keep arrays
        if kind in ("f64", "f32") and x.ndim <= 2 and src.chance(200):
            x = mg.tensor(x)
            if kind == "f64":
                diff.append(k)
        inputs.append(x)
    steps = []
    nvals = len(inputs)
    for _ in range(src.int(1, 4)):
        op = OPS[src.byte() % len(OPS)]
        args = [src.int(0, nvals - 1) for _ in range(op.arity)]
        if steps and src.chance(170):  # chain: use the last result
            args[0] = nvals - 1
        scalar = None
        if op.scalars and src.chance(60):
            scalar = src.pick([1.5, -0.5, 2, 0, np.float32(1.5), np.float64(-2.0), 3, 0.5])
            args[src.int(0, 1)] = -1
        step = Step(op, args, {}, scalar, guarded=op.guard is not None and src.chance(200))
        step.params = {"_src": src}  # drawn when the operands are known
        steps.append(step)
        nvals += 1
    return Program(inputs, diff, steps, seed, not special)


def operands(prog: Program, step: Step, vals: list[Any], lib: Any) -> list[Any]:
    out = []
    for i in step.args:
        x = step.scalar if i < 0 else vals[i]
        if step.guarded and i >= 0:
            x = guard(step.op.guard, x, lib)
        out.append(x)
    if lib is mg and step.op.operator and not any(isinstance(a, mg.Tensor) for a in out):
        for k, a in enumerate(out):  # NumPy would do a + b itself: one operand must be a Tensor
            if isinstance(a, np.ndarray) and a.dtype.kind in "fiub" and a.ndim <= 2:
                out[k] = mg.tensor(a)
                break
        else:
            raise TypeError("fuzz_ops: no operand can be a Tensor for this operator (skipped)")
    return out


def draw_params(step: Step, args: list[Any]) -> dict:
    src = step.params.pop("_src", None)
    if src is not None and step.op.params is not None:
        step.params.update(step.op.params(src, args))
    if step.op.name == "where":
        try:
            shapes = [np.shape(a) if not isinstance(a, mg.Tensor) else tuple(a.shape) for a in args]
            shape = np.broadcast_shapes(*shapes)
        except (ValueError, TypeError):
            shape = getattr(args[0], "shape", ())
        step.params["mask"] = (np.arange(int(np.prod(shape, dtype=np.int64))).reshape(shape) % 3) != 1
    return step.params


def call(op: Op, args: list[Any], params: dict, lib: str) -> Any:
    fn = op.mg_fn if lib == "mg" else op.np_fn
    if op.name == "where":
        return fn(params["mask"], *args)
    return fn(*args, **params)


def run_forward(prog: Program) -> list[Any]:
    """Run the program in matgrad, each step checked against NumPy; returns the values."""
    vals = list(prog.inputs)
    for j, step in enumerate(prog.steps):
        op = step.op
        what = f"step {j} {op.name}"
        try:
            args = operands(prog, step, vals, mg)
        except ALLOWED as e:
            log(f"  {what}: guard raised {type(e).__name__}: {e}")
            return vals
        params = draw_params(step, args)
        sizes = [int(getattr(a, "size", 1)) for a in args]
        if max(sizes, default=0) > 100_000 or (
            op.name in ("outer", "kron") and int(np.prod(sizes)) > 1_000_000
        ):
            return vals  # keep programs small (repeated outer products grow without bound)
        try:
            got = call(op, args, params, "mg")
            mg_err = None
        except ALLOWED as e:
            got, mg_err = None, e
        except Exception as e:
            raise Finding(f"{what}: raised {type(e).__name__} (not a documented kind): {e}") from e
        if isinstance(got, tuple):
            raise Finding(f"{what}: returned a tuple")
        want, np_err, want_dtype = None, None, None
        if op.np_fn is not None:
            try:
                ins64 = [as_f64(a) for a in args]
                with np.errstate(all="ignore"):
                    want = call(op, ins64, params, "np")
                    want_dtype = result_dtype(args) if op.tol != "none" else None
                    if op.tol in ("lin", "spec") and any(
                        np.asarray(as_native(a)).dtype.kind != "f" for a in args
                    ):
                        want_dtype = None  # numpy.linalg makes ints and bools float64 (not NEP 50)
            except Exception as e:
                np_err = e
        if mg_err is not None:
            log(f"  {what}: {type(mg_err).__name__}: {mg_err}" + ("" if np_err else "  (NumPy accepts)"))
            return vals
        if np_err is not None:
            if op.strict and all(
                isinstance(a, (mg.Tensor, np.ndarray, int, float, np.generic)) for a in args
            ):
                raise Finding(f"{what}: accepted what NumPy refuses ({type(np_err).__name__}: {np_err})")
            vals.append(got)
            continue
        if want is not None:
            if op.name in ("matrix_power", "slogdet", "logdet", "det", "norm", "trace", "quad_form") or (
                op.tol in ("sum", "mean", "lse", "exact") and op.name in ("max", "sum", "mean", "logsumexp")
            ):
                want_dtype = None if op.name in ("matrix_power",) else want_dtype
            alt = None
            f32 = want_dtype == np.float32 or (op.name == "matrix_power" and result_dtype(args) == np.float32)
            if f32:  # NumPy in float32 too: overflows on the way are the dtype's
                try:
                    with np.errstate(all="ignore"):
                        alt = call(
                            op,
                            [
                                a
                                if np.ndim(a) == 0 and not isinstance(a, np.ndarray)
                                else np.asarray(a, np.float32)
                                for a in ins64
                            ],
                            params,
                            "np",
                        )
                except Exception:
                    alt = None
            compare(what, op, params, ins64, got, want, want_dtype, alt)
        vals.append(got)
    return vals


# ---- gradients ----


def program_fn(prog: Program, upto: int) -> Callable[..., Any]:
    """The program as a function of its differentiated inputs, returning value upto."""

    def f(*xs: Any) -> Any:
        vals = list(prog.inputs)
        for k, x in zip(prog.diff, xs):
            vals[k] = x
        for step in prog.steps[: upto - len(prog.inputs) + 1]:
            args = operands(prog, step, vals, mg)
            vals.append(call(step.op, args, step.params, "mg"))
        return vals[upto]

    return f


def check_gradient(prog: Program, vals: list[Any], src_byte: int) -> None:
    last = len(vals) - 1
    if last < len(prog.inputs) or not prog.diff or not prog.smooth_inputs:
        return
    steps = prog.steps[: last - len(prog.inputs) + 1]
    if not all(s.op.smooth and s.op.np_fn is not None for s in steps):
        return
    out = vals[last]
    if not isinstance(out, mg.Tensor) or out.dtype != np.float64 or out.size == 0 or out.size > 64:
        return
    if not all(isinstance(v, mg.Tensor) and v.dtype == np.float64 for v in vals[len(prog.inputs) :]):
        return
    inner = [np.asarray(v.numpy()) for v in vals[len(prog.inputs) :]]
    amplify = 1.0  # the condition numbers of the linear algebra: they amplify the differences' rounding
    for j, step in enumerate(steps):  # x ** y with y an array and some x <= 0: no real derivative in y
        if step.op.name == "pow" and step.args[1] >= 0:
            base = operands(prog, step, vals[: len(prog.inputs) + j], mg)[0]
            if np.any(np.asarray(as_f64(base)) <= 0):
                return
        if step.op.tol == "lin":  # near a singular matrix derivatives blow up (or raise LinAlgError)
            a = np.asarray(as_f64(operands(prog, step, vals[: len(prog.inputs) + j], mg)[0]))
            if cond(a) > 1e8:
                return
            amplify *= max(1.0, cond(a))
    if not all(np.all(np.isfinite(v)) and np.all(np.abs(v) <= 1e8) for v in inner):
        return  # infinities, or magnitudes where a step of 1e-6 is no longer small (sin(1e40))
    rng = np.random.default_rng(prog.rng_seed + 1)
    xs = [np.array(prog.inputs[k].numpy()) for k in prog.diff]
    if any(x.size == 0 for x in xs):
        return
    c = rng.uniform(-1, 1, out.shape)
    vs = [rng.standard_normal(x.shape) for x in xs]
    P = program_fn(prog, last)

    def L(*a: Any) -> Any:
        return mg.sum(P(*a) * c)

    def Lval(t: float) -> float:
        with mg.no_grad():
            return float(L(*[mg.tensor(x + t * v) for x, v in zip(xs, vs)]).item())

    # central differences along v first: where they are not finite, there is nothing to check
    scale_x = max(1.0, *[float(np.max(np.abs(x))) for x in xs])
    h = 1e-6 * scale_x
    try:
        f0 = Lval(0.0)
        fp, fm, fp2, fm2 = Lval(h), Lval(-h), Lval(2 * h), Lval(-2 * h)
    except ALLOWED:
        return
    if not all(np.isfinite([f0, fp, fm, fp2, fm2])):
        return

    transform = ["grad", "value_and_grad", "vjp", "jacobian", "jvp", "compile"][src_byte % 6]
    nums = tuple(range(len(xs)))
    try:
        if transform == "grad":
            gs = mg.grad(L, argnums=nums)(*xs)
            ana = sum(float(np.sum(g * v)) for g, v in zip(gs, vs))
        elif transform == "value_and_grad":
            val, gs = mg.value_and_grad(L, argnums=nums)(*xs)
            ana = sum(float(np.sum(g * v)) for g, v in zip(gs, vs))
            want = float(np.sum(out.numpy() * c))
            if not abs(float(val) - want) <= 1e-12 * (1 + abs(want)) + 1e-12 * float(
                np.sum(np.abs(out.numpy() * c))
            ):
                raise Finding(f"value_and_grad: value {float(val)!r}, the forward pass gives {want!r}")
        elif transform == "vjp":
            _, fun = mg.vjp(P, *xs)
            gs = fun(c)
            ana = sum(float(np.sum(g * v)) for g, v in zip(gs, vs))
        elif transform == "jacobian":
            Js = mg.jacobian(P, argnums=nums)(*xs)
            ana = sum(float(np.sum(np.tensordot(c, J, axes=c.ndim) * v)) for J, v in zip(Js, vs))
        elif transform == "jvp":
            _, t = mg.jvp(P, xs, vs)
            ana = float(np.sum(np.asarray(t) * c))
        else:
            cf = mg.compile(L, argnums=nums)
            val, gs = cf.value_and_grad(*xs)
            gs2 = cf.grad(*xs)
            for g, g2 in zip(gs, gs2):
                if not np.array_equal(g, g2, equal_nan=True):
                    raise Finding("compile: .grad and .value_and_grad disagree")
            ana = sum(float(np.sum(g * v)) for g, v in zip(gs, vs))
            cv = float(cf(*xs))
            want = float(np.sum(out.numpy() * c))
            scale = float(np.sum(np.abs(out.numpy() * c))) + 1.0
            for name, got in (("compile value", cv), ("compile value_and_grad value", float(val))):
                if not abs(got - want) <= 1e-12 * scale:
                    raise Finding(f"{name}: {got!r}, the eager forward pass gives {want!r}")
    except Finding:
        raise
    except Exception as e:
        raise Finding(
            f"{transform}: raised {type(e).__name__} on a program whose forward pass ran: {e}"
        ) from e

    if not np.isfinite(ana):
        # 0 * inf in a chain rule (sqrt(relu(x)) where relu is 0, 0 ** 0): a value at a
        # singular point of the next op; NumPy, PyTorch and JAX give NaN there too
        # (or an intermediate value that overflowed, its zero cotangent times an infinite derivative)
        singular = [v for v in inner if np.any(v == 0)]
        if singular:
            log(f"  gradient: {ana!r} with an intermediate value at 0 or infinite (a singular point)")
            return
        raise Finding(
            f"{transform}: directional derivative {ana!r} on a program whose values are finite, nonzero"
        )

    # the checks that the program is smooth here, then the comparison
    u = np.finfo(np.float64).eps
    noise = 8 * u * (abs(fp) + abs(fm) + abs(fp2) + abs(fm2) + abs(f0)) / h * amplify
    cd1 = (fp - fm) / (2 * h)
    cd2 = (fp2 - fm2) / (4 * h)
    fwd, bwd = (fp - f0) / h, (f0 - fm) / h
    size = abs(cd1) + abs(ana) + 1e-3
    if abs(ana) * h > 1e-3 * (1.0 + abs(f0)):
        log(f"  gradient: the step changes f by {abs(ana) * h:.3g}: beyond a linear model, not compared")
        return
    if abs(fwd - bwd) > 1e-3 * size + noise or abs(cd1 - cd2) > 1e-4 * size + noise:
        log(f"  gradient: not smooth here (one-sided {fwd!r} vs {bwd!r}; h, 2h: {cd1!r} vs {cd2!r})")
        return
    rich = (4 * cd1 - cd2) / 3
    allowed = 1e-6 * size + 2 * noise
    if not abs(ana - rich) <= allowed:
        raise Finding(
            f"{transform}: directional derivative {ana!r} vs central difference {rich!r} "
            f"(error {abs(ana - rich):.3g}, allowed {allowed:.3g})"
        )
    log(f"  gradient ({transform}): {ana!r} vs {rich!r}")


# ---- the entry point ----


# Defects of the engine found by this harness, reported and not fixed here (python/src, cpp):
# a finding one of them explains counts as known, not as a failure (--strict: as a failure).
# All fixed so far (each with a regression test): concatenate/stack dtypes of small ints next to
# float32, pow(-inf, 0.5), solve with a subnormal pivot, the compiled gradient of sum(A @ x),
# max along an axis of a (0, 0) array, jacobian through a broadcast to a 0-size array.
KNOWN: list[tuple[str, Callable[[str, Program, list[Any]], bool]]] = []
STRICT = False
known_hits: dict[str, int] = {}


def test_one_input(data: bytes) -> None:
    prog = build(data)
    vals: list[Any] = list(prog.inputs)
    try:
        vals = run_forward(prog)
        log(prog.describe())
        check_gradient(prog, vals, data[-1] if data else 0)
    except Finding as e:
        msg = str(e)
        for name, explains in KNOWN:
            if not STRICT and explains(msg, prog, vals):
                known_hits[name] = known_hits.get(name, 0) + 1
                log(f"  known defect: {name}")
                return
        raise Finding(f"{msg}\nprogram:\n{prog.describe()}") from None


def report_known() -> None:
    for name, n in known_hits.items():
        print(f"fuzz_ops: known defect hit {n} times: {name}", file=sys.stderr)


def timeout_handler(signum: int, frame: Any) -> None:
    raise Finding("one input ran for more than the time limit (a hang?)")


def run_files(paths: list[str], per_input: int) -> int:
    files = []
    for p in paths:
        if not os.path.exists(p):
            print(f"fuzz_ops: no such file or directory: {p}", file=sys.stderr)
            return 2
        if os.path.isdir(p):
            files += [os.path.join(p, f) for f in sorted(os.listdir(p)) if not f.startswith(".")]
        else:
            files.append(p)
    if not files:
        print(f"fuzz_ops: no inputs in {paths}", file=sys.stderr)
        return 2
    failed = 0
    for path in files:
        with open(path, "rb") as fh:
            data = fh.read()
        signal.alarm(per_input)
        try:
            test_one_input(data)
        except Finding as e:
            failed += 1
            print(f"FINDING in {path}:\n{e}\n", file=sys.stderr)
        finally:
            signal.alarm(0)
    report_known()
    print(f"fuzz_ops: {len(files)} inputs, {failed} findings")
    return 1 if failed else 0


def run_random(seconds: float, seed: int | None, artifacts: str, per_input: int, max_len: int) -> int:
    os.makedirs(artifacts, exist_ok=True)
    rng = np.random.default_rng(seed)
    current = os.path.join(artifacts, "current-input")
    t_end, n, found = time.monotonic() + seconds, 0, 0
    while time.monotonic() < t_end:
        data = rng.integers(0, 256, size=int(rng.integers(1, max_len + 1)), dtype=np.uint8).tobytes()
        with open(current, "wb") as fh:  # what a hard crash leaves behind
            fh.write(data)
        n += 1
        signal.alarm(per_input)
        try:
            test_one_input(data)
        except Finding as e:
            found += 1
            name = os.path.join(artifacts, "finding-" + hashlib.sha1(data).hexdigest())
            with open(name, "wb") as fh:
                fh.write(data)
            print(f"FINDING ({name}):\n{e}\n", file=sys.stderr)
        finally:
            signal.alarm(0)
    os.remove(current)
    report_known()
    print(f"fuzz_ops: {n} random inputs in {seconds:.0f} s, {found} findings")
    return 1 if found else 0


def main(argv: list[str]) -> int:
    global VERBOSE, STRICT
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], add_help=True)
    ap.add_argument("--corpus", nargs="+", metavar="PATH", help="run each file once (no atheris)")
    ap.add_argument("--repro", nargs="+", metavar="FILE", help="run these inputs (as --corpus)")
    ap.add_argument("--random", action="store_true", help="the plain random driver (no atheris)")
    ap.add_argument("--time", type=float, default=60.0, help="--random: seconds (default 60)")
    ap.add_argument("--seed", type=int, default=None, help="--random: the generator's seed")
    ap.add_argument("--max-len", type=int, default=96, help="--random: longest input in bytes")
    ap.add_argument("--artifacts", default="fuzz-artifacts", help="--random: where findings go")
    ap.add_argument("--per-input", type=int, default=60, help="seconds one input may take")
    ap.add_argument("-v", "--verbose", action="store_true", help="print each program")
    ap.add_argument("--strict", action="store_true", help="known engine defects count as findings")
    args, rest = ap.parse_known_args(argv[1:])
    VERBOSE, STRICT = args.verbose, args.strict
    missing = check_registry_coverage()
    if missing:
        print(
            f"fuzz_ops: registry ops without a NumPy reference (crash checks only): {missing}",
            file=sys.stderr,
        )
    if args.corpus or args.repro or args.random or atheris is None:
        signal.signal(signal.SIGALRM, timeout_handler)  # (under atheris, libFuzzer's -timeout)
    if args.corpus or args.repro:
        return run_files(args.corpus or args.repro, args.per_input)
    if args.random or atheris is None:
        if not args.random:
            print("fuzz_ops: atheris is not installed; running the plain random driver", file=sys.stderr)
        return run_random(args.time, args.seed, args.artifacts, args.per_input, args.max_len)
    for name, fn in list(globals().items()):  # the harness's own branches guide the fuzzer too
        if callable(fn) and getattr(fn, "__module__", None) == __name__ and hasattr(fn, "__code__"):
            globals()[name] = atheris.instrument_func(fn)
    for op in OPS:  # and the lambdas of the op table
        for attr in ("mg_fn", "np_fn", "params"):
            fn = getattr(op, attr)
            if fn is not None and hasattr(fn, "__code__"):
                setattr(op, attr, atheris.instrument_func(fn))
    atheris.Setup([argv[0], *rest], test_one_input)
    atheris.Fuzz()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
