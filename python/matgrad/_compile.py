"""mg.compile: trace a function once per input signature into a program the engine replays.

The engine's side (cpp/src/program/) builds, optimises, runs and saves the programs; this module
decides what a signature is, traces, caches and shapes the results as the transforms do.
"""

from __future__ import annotations

import functools
import json
import os
import threading
from collections.abc import Callable, Sequence
from typing import Any, Union

import numpy as np

from . import _core
from ._core import Tensor
from ._transforms import _checked_argnums

ArgNums = Union[int, Sequence[int]]

_KINDS = ("value", "value_and_grad", "jacobian", "hessian")  # the programs
_MODES = (
    "value",
    "value_and_grad",
    "grad",
    "jacobian",
    "hessian",
)  # the callables (their order: bind_compile.cpp)
_FORMAT = "matgrad.compile/1"


def _array_spec(x: Any, op: str, k: int) -> tuple[tuple[int, ...], np.dtype[Any]]:
    """The (shape, dtype) argument k becomes: float32 stays float32, other numbers float64."""
    try:
        a = x if isinstance(x, np.ndarray) else np.asarray(x)
    except Exception as e:  # a ragged list, an object NumPy cannot convert
        raise TypeError(f"{op}: argument {k} cannot be converted to an array ({e})") from None
    if a.dtype.kind not in "fiub":
        raise TypeError(f"{op}: argument {k} must hold numbers, got an array of dtype {a.dtype}")
    if a.ndim > 2:
        raise ValueError(f"{op}: argument {k} has {a.ndim} dimensions (at most 2 are supported)")
    dtype = np.dtype(np.float32) if a.dtype == np.float32 else np.dtype(np.float64)
    return tuple(int(n) for n in a.shape), dtype


def _static(x: Any) -> bool:
    """Python numbers, strings, None and tuples of them are static: part of the signature."""
    if isinstance(x, (bool, int, float, str, type(None))):
        return True
    return isinstance(x, tuple) and all(_static(v) for v in x)


class _Entry:
    """One traced signature: its programs (built when first needed) and how results look."""

    def __init__(
        self, key: str, nargs: int, arrays: list[int], in_specs: list[tuple[tuple[int, ...], str]]
    ) -> None:
        self.key = key
        self.nargs = nargs  # positional arguments of the traced call
        self.arrays = arrays  # positions of the arguments that are arrays (the programs' inputs)
        self.in_specs = in_specs  # their (shape, dtype name)
        self.out_shapes: list[tuple[int, ...]] = []
        self.tuple_out = False
        self.programs: dict[str, Any] = {}
        self.graph: tuple[list[Tensor], list[Tensor]] | None = None  # the traced inputs and outputs
        self.lock = threading.Lock()

    def meta(self) -> dict[str, Any]:
        return {
            "nargs": self.nargs,
            "arrays": self.arrays,
            "in": [[list(s), d] for s, d in self.in_specs],
            "out": [list(s) for s in self.out_shapes],
            "tuple": self.tuple_out,
        }


class CompiledFunction:
    """compile(f, argnums=0) -> CompiledFunction

    ``f`` traced once per input signature (the shapes and dtypes of its array arguments, the
    values of its Python-number and keyword arguments) into programs the engine replays in C++
    without Python, graph nodes or allocations; see :func:`compile`.
    """

    def __init__(
        self,
        f: Callable[..., Any] | None,
        argnums: ArgNums = 0,
        *,
        _nums: tuple[int, ...] | None = None,
        _single: bool | None = None,
    ) -> None:
        if f is not None and not callable(f):
            raise TypeError(f"compile: f must be callable, got {type(f).__name__}")
        self._f = f
        if _nums is None:
            self._nums, self._single = _checked_argnums(argnums, "compile")
        else:
            self._nums, self._single = _nums, bool(_single)
        self._entries: dict[str, _Entry] = {}
        self._lock = threading.Lock()
        self._calls = {m: _core.CompiledCall(functools.partial(self._slow, m)) for m in _MODES}
        if f is not None:
            functools.update_wrapper(self, f)

    # ---- signatures and traces ----

    def _signature(
        self, args: tuple[Any, ...], kwargs: dict[str, Any], op: str
    ) -> tuple[str, list[int], list[Any]]:
        nargs = len(args)
        nums = []
        for n in self._nums:
            i = n + nargs if n < 0 else n
            if not 0 <= i < nargs:
                raise ValueError(f"{op}: argnums {n} is out of range for {nargs} positional arguments")
            nums.append(i)
        parts, arrays, specs = [], [], []
        for k, x in enumerate(args):
            if k not in nums and _static(x):
                parts.append(f"s{k}={x!r}")
                continue
            shape, dtype = _array_spec(x, op, k)
            arrays.append(k)
            specs.append((shape, dtype.name))
            parts.append(f"a{k}={shape}:{dtype.name}")
        for name in sorted(kwargs):
            v = kwargs[name]
            if not _static(v):
                raise TypeError(
                    f"{op}: keyword argument {name!r} must be a Python number, string, None or a tuple of them "
                    f"(keyword arguments are static: part of the signature), got {type(v).__name__}"
                )
            parts.append(f"k{name}={v!r}")
        return "; ".join(parts), arrays, specs

    def _entry(self, args: tuple[Any, ...], kwargs: dict[str, Any], op: str) -> _Entry:
        key, arrays, specs = self._signature(args, kwargs, op)
        e = self._entries.get(key)
        if e is not None:
            return e
        with self._lock:
            e = self._entries.get(key)
            if e is not None:
                return e
            if self._f is None:
                known = "\n  ".join(self._entries) or "(none)"
                raise ValueError(
                    f"{op}: this compiled function was loaded without its Python function, and it was not traced "
                    f"for the signature\n  {key}\nIt carries:\n  {known}"
                )
            e = _Entry(key, len(args), arrays, specs)
            self._trace(e, args, kwargs)
            self._entries[key] = e
            return e

    def _trace(self, e: _Entry, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        assert self._f is not None
        call = list(args)
        inputs: list[Tensor] = []
        with _core._tracing():
            for k in e.arrays:
                dtype = np.float32 if e.in_specs[len(inputs)][1] == "float32" else np.float64
                t = _core._trace_input(np.asarray(args[k], dtype=dtype), True)
                inputs.append(t)
                call[k] = t
            res = self._f(*call, **kwargs)
        outs = list(res) if isinstance(res, (tuple, list)) else [res]
        e.tuple_out = isinstance(res, (tuple, list))
        out_tensors = []
        for r in outs:
            if not isinstance(r, Tensor):
                r = _core.tensor(r)  # a constant result
            out_tensors.append(r)
        e.out_shapes = [tuple(t.shape) for t in out_tensors]
        e.graph = (inputs, out_tensors)

    def _program(self, e: _Entry, kind: str, op: str) -> Any:
        p = e.programs.get(kind)
        if p is not None:
            return p
        with e.lock:
            p = e.programs.get(kind)
            if p is not None:
                return p
            if e.graph is None:
                raise ValueError(
                    f"{op}: this compiled function was loaded without its Python function and carries no "
                    f"{kind} program for the signature\n  {e.key}"
                )
            inputs, outs = e.graph
            if kind != "value" and (e.tuple_out or len(outs) != 1):
                raise TypeError(
                    f"{op}: the function must return one Tensor; differentiate each output separately"
                )
            argnums = [e.arrays.index(k) for k in self._positions(e)]
            p = _core._compile(kind, inputs, outs, argnums, op=op)
            e.programs[kind] = p
            return p

    def _run(
        self, kind: str, op: str, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[_Entry, list[Any]]:
        e = self._entry(args, kwargs, op)
        p = self._program(e, kind, op)
        return e, p.run([args[k] for k in e.arrays])

    # ---- the callables (Note [compiled calls] in python/src/bind_compile.cpp) ----

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._calls["value"](*args, **kwargs)

    @property
    def value_and_grad(self) -> Callable[..., Any]:
        """(f(*args), df/dargs[argnums]) from one replayed program, as mg.value_and_grad returns them."""
        return self._calls["value_and_grad"]

    @property
    def grad(self) -> Callable[..., Any]:
        """df/dargs[argnums] from one replayed program, as mg.grad returns it."""
        return self._calls["grad"]

    @property
    def jacobian(self) -> Callable[..., Any]:
        """d f / d args[argnums] of shape f(X).shape + X.shape, from one replayed batched sweep."""
        return self._calls["jacobian"]

    @property
    def hessian(self) -> Callable[..., Any]:
        """d2 f / d args[i] d args[j] (a nested tuple for a tuple argnums), from one replayed program."""
        return self._calls["hessian"]

    def _slow(self, mode: str, *args: Any, **kwargs: Any) -> Any:
        """A call the C++ path did not take: Tensors (eager), keywords, a new signature, arrays of
        other dtypes or layouts. Traces and builds what is missing, adds the entry, runs."""
        if any(isinstance(a, Tensor) for a in args):
            if self._f is None:
                raise TypeError(
                    f"{mode}: a loaded compiled function cannot run on Tensors (it has no Python function)"
                )
            if mode == "value":
                return self._f(*args, **kwargs)  # eager: nests inside the transforms
            from . import _transforms

            transform = getattr(_transforms, mode)
            return transform(self._f, self._nums[0] if self._single else self._nums)(*args, **kwargs)
        op = "compile" if mode == "value" else mode
        e = self._entry(args, kwargs, op)
        kind = "value_and_grad" if mode == "grad" else mode
        p = self._program(e, kind, op)
        shapes = self._result_shapes(e, mode)
        if not kwargs:  # the next call with this signature takes the C++ path
            specs = [
                ("a", e.in_specs[e.arrays.index(k)][0], e.in_specs[e.arrays.index(k)][1])
                if k in e.arrays
                else ("s", a)
                for k, a in enumerate(args)
            ]
            tuple_out = e.tuple_out if mode == "value" else not self._single
            self._calls[mode]._add(specs, p, _MODES.index(mode), tuple_out, shapes, len(self._nums))
        out = p.run([args[k] for k in e.arrays])
        if shapes is not None:
            out = [o.reshape(s) for o, s in zip(out, shapes)]
        if mode == "value":
            return tuple(out) if e.tuple_out else out[0]
        if mode in ("grad", "value_and_grad"):
            grads = out[1] if self._single else tuple(out[1:])
            return grads if mode == "grad" else (out[0], grads)
        if mode == "jacobian":
            return out[0] if self._single else tuple(out)
        n = len(self._nums)
        return out[0] if self._single else tuple(tuple(out[i * n + j] for j in range(n)) for i in range(n))

    def _result_shapes(self, e: _Entry, mode: str) -> list[tuple[int, ...]] | None:
        """The full shape of each result block where the program gives it matricised."""
        pos = [e.in_specs[e.arrays.index(k)][0] for k in self._positions(e)]
        if mode == "jacobian":
            return [tuple(e.out_shapes[0]) + tuple(s) for s in pos]
        if mode == "hessian":
            return [tuple(si) + tuple(sj) for si in pos for sj in pos]
        return None

    def _positions(self, e: _Entry) -> list[int]:
        """The positions of the differentiated arguments in the traced call."""
        return [n + e.nargs if n < 0 else n for n in self._nums]

    # ---- inspection ----

    def programs(self) -> dict[str, dict[str, Any]]:
        """The programs built so far: {signature: {kind: Program}} (print one for its text form)."""
        return {k: dict(e.programs) for k, e in self._entries.items()}

    # ---- saving ----

    def to_bytes(self) -> bytes:
        """Every traced signature's programs (value and gradient, and jacobian or hessian where used) in
        matgrad's versioned binary format (docs/compile.md)."""
        entries: list[tuple[str, str, Any]] = []
        described: dict[str, Any] = {}
        meta = {"format": _FORMAT, "single": self._single, "entries": described}
        for key, e in self._entries.items():
            if e.graph is not None:  # a trace: its value and gradient programs at least
                self._program(e, "value", "save")
                if not e.tuple_out and e.out_shapes and e.out_shapes[0] in ((), (1, 1)):
                    self._program(e, "value_and_grad", "save")
            described[key] = e.meta()
            for kind, p in e.programs.items():
                entries.append((key, kind, p))
        return _core._save_programs(list(self._nums), json.dumps(meta, sort_keys=True), entries)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write :meth:`to_bytes` to ``path`` (load it back with ``mg.load(path)``)."""
        data = self.to_bytes()
        with open(path, "wb") as fh:
            fh.write(data)

    def __reduce__(self) -> tuple[Any, tuple[bytes]]:
        return (_from_bytes, (self.to_bytes(),))


def _from_bytes(data: bytes) -> CompiledFunction:
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"load: expected bytes, got {type(data).__name__}")
    argnums, meta_text, entries = _core._load_programs(bytes(data))
    try:
        meta = json.loads(meta_text)
        if meta.get("format") != _FORMAT:
            raise ValueError
        info = meta["entries"]
        cf = CompiledFunction(None, _nums=tuple(int(n) for n in argnums), _single=bool(meta["single"]))
        for key, kind, p in entries:
            if kind not in _KINDS or key not in info:
                raise ValueError
            e = cf._entries.get(key)
            if e is None:
                m = info[key]
                e = _Entry(
                    key,
                    int(m["nargs"]),
                    [int(k) for k in m["arrays"]],
                    [(tuple(s), str(d)) for s, d in m["in"]],
                )
                e.out_shapes = [tuple(s) for s in m["out"]]
                e.tuple_out = bool(m["tuple"])
                cf._entries[key] = e
            e.programs[kind] = p
    except (ValueError, KeyError, TypeError, AttributeError):
        raise ValueError("load: the file's description of its programs is corrupt") from None
    return cf


def load(path: str | os.PathLike[str]) -> CompiledFunction:
    """load(path) -> CompiledFunction

    A compiled function saved with ``cf.save(path)``: it replays the signatures it carries (the
    shapes and dtypes of the array arguments traced; a new signature raises ValueError naming
    it), its results of the shapes traced. Not differentiable itself (no gradient flows); its
    ``.grad``, ``.value_and_grad``, ``.jacobian`` and ``.hessian`` replay the saved programs. A
    truncated, corrupt, empty or foreign file raises ValueError naming what is wrong.
    """
    with open(path, "rb") as fh:
        data = fh.read()
    return _from_bytes(data)


def compile(f: Callable[..., Any], argnums: ArgNums = 0) -> CompiledFunction:
    """compile(f, argnums=0) -> CompiledFunction

    Return ``f`` compiled: a callable with ``f``'s signature whose value, ``.grad`` (``df/dx``
    for ``x = args[argnums]``), ``.value_and_grad``, ``.jacobian`` and ``.hessian`` (argnums and
    tuple conventions as the transforms) replay programs in C++ and return NumPy arrays the
    caller owns.

    Shapes: each result has the shape the transform gives (the gradient of ``args[i]`` its shape,
    the Jacobian ``f(X).shape + X.shape``, the Hessian ``x.shape + x.shape``).

    Rule: ``f`` is traced once per signature: the shapes and dtypes of its array arguments (the
    arguments in ``argnums`` are always arrays) and the values of its Python-number and keyword
    arguments, which are static. The traced graph becomes a program (gradients by the same VJPs,
    recorded), optimised and replayed without Python, graph nodes or allocations, the GIL released.
    While tracing, reading a traced value (``.numpy()``, ``float()``, ...) raises RuntimeError.
    Called with a Tensor argument, the compiled function runs ``f`` eagerly, so it nests inside the
    transforms. It may be called from several threads at once, pickles and saves (``cf.save``,
    ``mg.load``).
    """
    return CompiledFunction(f, argnums)
