"""matgrad.distributed: data-parallel values and gradients over shards, on Dask distributed.

    vg = matgrad.distributed.value_and_grad(f, shards, client=None, argnums=0)
    value, grads = vg(*params)   # the sum over shards of mg.value_and_grad(f, argnums)(*params, *shard)

The shards go to the workers once and stay there; ``f`` is compiled once per signature
(``mg.compile``) and the program shipped once (pickled); each call sends only the parameters,
each worker sums its shards' values and gradients and the workers' sums are added in a tree on
the workers. ``client=None`` runs the same code in this process. Importing this module needs no
Dask; only a client does (``pip install "matgrad[distributed]"``).
"""

from __future__ import annotations

import asyncio
import pickle
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Union

import numpy as np

from ._compile import CompiledFunction
from ._compile import compile as _compile
from ._core import Tensor
from ._transforms import _checked_argnums, _flatten

__all__ = ["DataParallel", "value_and_grad"]

ArgNums = Union[int, Sequence[int]]

_OP = "distributed.value_and_grad"
_ATTEMPTS = 3  # calls tried when workers are lost before the error says so
_SCATTER_PARAMS_BYTES = 4 << 20  # larger parameters are scattered once per call, not put in each task
_POLL = 1.0  # seconds between looks at the shards' data while a call runs


# ---- what runs on a worker (module-level functions: Dask pickles them by reference) ----


class _Failure:
    """A shard's error, carried through the tree so the caller raises the first one by index."""

    def __init__(self, index: int, exc: BaseException, shapes: str) -> None:
        self.index = index
        self.exc = exc
        self.shapes = shapes

    def error(self) -> BaseException:
        """The shard's exception again, of its type, its message naming the shard (RuntimeError
        when the type cannot be made from one message); .shard_index holds the index."""
        msg = f"{_OP}: shard {self.index} (shapes {self.shapes}): {self.exc}"
        try:
            e = type(self.exc)(msg)
            if str(e) != msg:
                raise TypeError
        except Exception:
            e = RuntimeError(f"{msg} [{type(self.exc).__name__}]")
        try:
            e.shard_index = self.index  # type: ignore[attr-defined]
        except AttributeError:
            pass
        return e


def _shapes(shard: tuple[Any, ...]) -> str:
    return ", ".join(str(tuple(np.shape(a))) for a in shard)


def _partial(
    prog: CompiledFunction,
    params: tuple[Any, ...],
    check_finite: bool,
    indices: tuple[int, ...],
    *shards: tuple[Any, ...],
) -> Any:
    """The sum over this worker's shards of the compiled value_and_grad, in shard order."""
    vg = prog.value_and_grad
    total: list[np.ndarray] | None = None
    dtypes: list[str] = []
    for i, shard in zip(indices, shards):
        try:
            v, g = vg(*params, *shard)
            raw = [np.asarray(v), *(np.asarray(x) for x in (g if isinstance(g, tuple) else (g,)))]
            if check_finite and not all(np.isfinite(r).all() for r in raw):
                raise FloatingPointError("the value or a gradient is not finite (check_finite=True)")
        except Exception as e:
            return _Failure(i, e, _shapes(shard))
        if total is None:  # summed in float64, handed back in the results' own dtype
            total = [np.array(r, dtype=np.float64) for r in raw]
            dtypes = [r.dtype.name for r in raw]
        else:
            for t, r in zip(total, raw):
                t += r
    assert total is not None
    return total, dtypes


def _add(a: Any, b: Any) -> Any:
    """One node of the reduction tree: the sum of two partial sums, or the first failure."""
    if isinstance(a, _Failure) or isinstance(b, _Failure):
        fails = [x for x in (a, b) if isinstance(x, _Failure)]
        return min(fails, key=lambda x: x.index)
    (xs, dx), (ys, dy) = a, b
    return [np.asarray(x + y) for x, y in zip(xs, ys)], [np.result_type(p, q).name for p, q in zip(dx, dy)]


def _tree(items: list[Any], add: Callable[[Any, Any], Any]) -> Any:
    """Pairwise reduction: the same tree shape locally and on the workers."""
    while len(items) > 1:
        nxt = [add(items[i], items[i + 1]) for i in range(0, len(items) - 1, 2)]
        if len(items) % 2:
            nxt.append(items[-1])
        items = nxt
    return items[0]


def _scheduler_stream_bytes(dask_scheduler: Any) -> int:
    return sum(int(getattr(b, "byte_count", 0)) for b in dask_scheduler.stream_comms.values())


def _worker_transfer_bytes(dask_worker: Any) -> int:
    return int(dask_worker.transfer_outgoing_bytes_total)


# ---- the caller's side ----


def _as_shard(s: Any, i: int) -> tuple[np.ndarray, ...]:
    if isinstance(s, Tensor):
        s = (s.numpy(),)
    elif isinstance(s, np.ndarray):
        s = (s,)
    elif not isinstance(s, (tuple, list)):
        raise TypeError(f"{_OP}: shard {i} must be a tuple of arrays (or one array), got {type(s).__name__}")
    out = []
    for k, a in enumerate(s):
        if isinstance(a, Tensor):
            a = a.numpy()
        try:
            arr = np.asarray(a)
        except Exception as e:
            raise TypeError(f"{_OP}: shard {i}, item {k} cannot be converted to an array ({e})") from None
        if arr.dtype.kind not in "fiub":
            raise TypeError(f"{_OP}: shard {i}, item {k} must hold numbers, got dtype {arr.dtype}")
        if arr.ndim > 2:
            raise ValueError(
                f"{_OP}: shard {i}, item {k} has shape {tuple(arr.shape)} (at most 2 dimensions are supported)"
            )
        # a copy of its own, read-only: what the workers hold and what is sent again after a
        # worker is lost stay the same data whatever the caller does with its arrays
        arr = np.array(arr, dtype=np.float32 if arr.dtype == np.float32 else np.float64, order="C")
        arr.setflags(write=False)
        out.append(arr)
    return tuple(out)


def _deal(items: list[int], sizes: list[int], bins: list[Any], load: dict[Any, int]) -> dict[int, Any]:
    """Largest item first, each to the bin with the least load so far (ties: the smallest bin):
    {item: bin}. `load` is updated."""
    out = {}
    for i in sorted(items, key=lambda j: (-sizes[j], j)):
        b = min(bins, key=lambda x: (load[x], x))
        load[b] += sizes[i]
        out[i] = b
    return out


def _nbytes(x: Any) -> int:
    return sum(int(np.asarray(a).nbytes) for a in x)


class DataParallel:
    """DataParallel(f, shards, client=None, argnums=0, *, check_finite=False, timeout=None)

    What :func:`value_and_grad` returns: ``vg(*params) -> (value, grads)``, the sum over the
    shards of ``mg.value_and_grad(f, argnums)(*params, *shard)``. Its shards live on the
    client's workers (or in this process for ``client=None``) for as long as it does; shapes
    and rules as :func:`value_and_grad` gives them.
    """

    def __init__(
        self,
        f: Callable[..., Any],
        shards: Sequence[Any],
        client: Any = None,
        argnums: ArgNums = 0,
        *,
        check_finite: bool = False,
        timeout: float | None = None,
    ) -> None:
        if not callable(f):
            raise TypeError(f"{_OP}: f must be callable, got {type(f).__name__}")
        if isinstance(shards, (np.ndarray, Tensor)) or not isinstance(shards, Sequence):
            raise TypeError(
                f"{_OP}: shards must be a list of shards (each a tuple of arrays), got {type(shards).__name__}"
            )
        if len(shards) == 0:
            raise ValueError(f"{_OP}: shards is empty")
        self._shards = [_as_shard(s, i) for i, s in enumerate(shards)]
        self._sizes = [_nbytes(s) for s in self._shards]  # what placement balances
        arity = len(self._shards[0])
        for i, s in enumerate(self._shards):
            if len(s) != arity:
                raise ValueError(
                    f"{_OP}: shard {i} has {len(s)} arrays (shapes {_shapes(s)}), shard 0 has {arity} "
                    f"(shapes {_shapes(self._shards[0])})"
                )
        self._arity = arity
        self._nums, self._single = _checked_argnums(argnums, _OP)
        self._f = f
        self._check_finite = bool(check_finite)
        if timeout is not None and not timeout > 0:
            raise ValueError(f"{_OP}: timeout must be a positive number of seconds or None, got {timeout!r}")
        self._timeout = timeout
        self._cf = _compile(f, self._nums[0] if self._single else self._nums)
        self._base_cf = self._cf
        # differentiated dicts of parameters: a compiled function over their leaves per structure
        self._tree_cfs: dict[Any, tuple[CompiledFunction, list[tuple[int, int, Any]]]] = {}
        self._client = client
        self._lock = threading.Lock()
        self._traced: set[str] = set()  # the parameter signatures traced (mg.compile's keys)
        self._prog_local: CompiledFunction | None = None  # client=None: the unpickled program
        # On a cluster: the program's future, the shards' futures and where they live.
        self._prog_future: Any = None
        self._shard_futures: list[Any] = []
        self._placement: list[str] = []
        self._nthreads: dict[str, int] = {}
        self._group_cache: list[tuple[str, list[int]]] | None = None
        self.last_call: dict[str, Any] = {}
        self._degraded = False  # shards moved off a lost worker: spread them again when it is back
        self._checked = 0.0
        self._nworkers = 0
        if client is not None:
            if not hasattr(client, "scatter") or not hasattr(client, "submit"):
                raise TypeError(
                    f"{_OP}: client must be a distributed.Client or None, got {type(client).__name__}"
                )
            if getattr(client, "asynchronous", False):
                raise TypeError(
                    f"{_OP}: client must be a synchronous distributed.Client (asynchronous=False)"
                )
            workers = self._workers()
            self._nworkers = len(workers)
            self._scatter_shards(list(range(len(self._shards))), workers)

    # ---- properties ----

    @property
    def num_shards(self) -> int:
        """num_shards -> int

        How many shards the sum runs over."""
        return len(self._shards)

    @property
    def client(self) -> Any:
        """client -> distributed.Client | None

        The Dask client the shards were sent through (None: this process)."""
        return self._client

    @property
    def placement(self) -> list[str]:
        """placement -> list[str]

        The address of the worker each shard lives on, by shard index (empty for client=None)."""
        return list(self._placement)

    def bytes_sent(self) -> dict[str, int]:
        """bytes_sent() -> dict[str, int]

        Dask's own byte counters, cumulative since the workers started: ``client_to_scheduler``
        (this client's batched stream: task submissions with the parameters in them),
        ``scheduler_to_workers`` (the scheduler's batched streams: the tasks as run),
        ``workers_out`` (the workers' data transfers: the partial sums of the reduction tree,
        the result to the caller, and shards only if a task ran away from its data) and their
        ``total``. Take the difference around calls for the bytes per call (a restarted worker
        starts its counter again). Zeros for client=None."""
        if self._client is None:
            return {"client_to_scheduler": 0, "scheduler_to_workers": 0, "workers_out": 0, "total": 0}
        c = self._client
        up = int(getattr(c.scheduler_comm, "byte_count", 0))
        down = int(c.run_on_scheduler(_scheduler_stream_bytes))
        w2w = sum(int(v) for v in c.run(_worker_transfer_bytes).values())
        return {
            "client_to_scheduler": up,
            "scheduler_to_workers": down,
            "workers_out": w2w,
            "total": up + down + w2w,
        }

    # ---- compiling ----

    def _positions(self, nparams: int) -> list[int]:
        nargs = nparams + self._arity
        pos = []
        for n in self._nums:
            i = n + nargs if n < 0 else n
            if not 0 <= i < nargs:
                raise ValueError(
                    f"{_OP}: argnums {n} is out of range for {nparams} parameters and {self._arity} shard arrays"
                )
            if i >= nparams:
                raise ValueError(
                    f"{_OP}: argnums {n} names shard array {i - nparams}; only the parameters "
                    f"(the first {nparams} arguments) are differentiated and summed over shards"
                )
            pos.append(i)
        return pos

    def _ensure_program(self, params: tuple[Any, ...]) -> bool:
        """Trace and build the value_and_grad program of every shard signature for these
        parameters' signature; True when the program changed (it must be shipped again)."""
        key = f"{id(self._cf)}: " + self._cf._signature((*params, *self._shards[0]), {}, _OP)[0]
        if key in self._traced:
            return False
        seen: set[tuple[Any, ...]] = set()
        for i, shard in enumerate(self._shards):
            sig = tuple((a.shape, a.dtype.str) for a in shard)
            if sig in seen:
                continue
            seen.add(sig)
            args = (*params, *shard)
            try:
                e = self._cf._entry(args, {}, _OP)
                self._cf._program(e, "value_and_grad", _OP)
                # the traced graph holds the eager values of a whole shard (hundreds of MB for
                # a large one) and is needed no more: only this program is used and shipped
                e.graph = None
            except Exception as exc:
                raise _Failure(i, exc, _shapes(shard)).error() from exc
        self._traced.add(key)
        return True

    def _shipped(self) -> CompiledFunction:
        """What a worker holds: the compiled function through a pickle round trip (its programs
        only, no Python function)."""
        out: CompiledFunction = pickle.loads(pickle.dumps(self._cf, protocol=pickle.HIGHEST_PROTOCOL))
        return out

    # ---- the cluster ----

    def _workers(self) -> list[str]:
        self._nthreads = {str(w): max(1, int(n)) for w, n in self._client.nthreads().items()}
        self._group_cache = None  # the threads per worker may have changed
        workers = sorted(self._nthreads)
        if not workers:
            raise _NoWorkers(f"{_OP}: the Dask cluster has no workers")
        return workers

    def _scatter_shards(self, which: list[int], workers: list[str]) -> None:
        """Place the shards `which` on `workers`, each on the worker with the fewest bytes so far
        (largest shards first, the other shards' places kept), and send those not already
        there."""
        if not self._shard_futures:
            self._shard_futures = [None] * len(self._shards)
            self._placement = [""] * len(self._shards)
        old = list(self._placement)
        load = dict.fromkeys(workers, 0)
        for i, w in enumerate(self._placement):
            if w in load and i not in which:
                load[w] += self._sizes[i]
        for i, w in _deal(which, self._sizes, workers, load).items():
            self._placement[i] = w
        self._group_cache = None
        for w in workers:
            mine = [
                i
                for i in which
                if self._placement[i] == w
                and (
                    old[i] != w
                    or self._shard_futures[i] is None
                    or self._shard_futures[i].status != "finished"
                )
            ]
            if not mine:
                continue
            futs = self._client.scatter([self._shards[i] for i in mine], workers=[w], hash=False)
            for i, fu in zip(mine, futs):
                self._shard_futures[i] = fu

    def rebalance(self) -> None:
        """rebalance() -> None

        Spread the shards over the client's current workers again, by bytes (after workers
        joined the cluster). Calls do this by themselves once a lost worker's shards went to
        the others and the cluster has as many workers again as at the start."""
        if self._client is None:
            return
        with self._lock:
            workers = self._workers()
            self._scatter_shards(list(range(len(self._shards))), workers)
            self._nworkers = len(workers)
            self._degraded = False

    def _groups(self) -> list[tuple[str, list[int]]]:
        """One task per worker thread: each worker's shards dealt to its threads by bytes (made
        again only when the placement changes)."""
        if self._group_cache is None:
            out = []
            for w in sorted(set(self._placement)):
                mine = [i for i, x in enumerate(self._placement) if x == w]
                slots = list(range(min(self._nthreads.get(w, 1), len(mine))))
                dealt = _deal(mine, self._sizes, slots, dict.fromkeys(slots, 0))
                out += [(w, sorted(i for i in mine if dealt[i] == k)) for k in slots]
            self._group_cache = out
        return self._group_cache

    def _ship_program(self) -> None:
        self._prog_future = self._client.scatter(self._cf, broadcast=True, hash=False)

    def _lost(self) -> list[int]:
        """The shards whose data is gone (their worker died)."""
        return [i for i, fu in enumerate(self._shard_futures) if fu is None or fu.status != "finished"]

    def _recover(self) -> None:
        workers = self._workers()
        lost = self._lost()
        gone = [i for i, w in enumerate(self._placement) if w not in workers]
        which = sorted(set(lost) | set(gone))
        if which:
            self._scatter_shards(which, workers)
            self._degraded = True
        if self._prog_future is None or self._prog_future.status != "finished":
            self._ship_program()  # (a worker started later fetches it from another one)

    def _submit(self, params: tuple[Any, ...]) -> tuple[list[Any], Any, dict[str, list[int]]]:
        """One attempt's tasks: a partial sum per worker thread, the tree of additions."""
        client = self._client
        p: Any = params
        if _nbytes(p) > _SCATTER_PARAMS_BYTES:
            p = client.scatter(params, broadcast=True, hash=False)
        parts, shards_of = [], {}
        for w, idx in self._groups():
            fu = client.submit(
                _partial,
                self._prog_future,
                p,
                self._check_finite,
                tuple(idx),
                *[self._shard_futures[i] for i in idx],
                workers=[w],
                allow_other_workers=True,
                pure=False,
            )
            parts.append(fu)
            shards_of[str(fu.key)] = idx
        top = _tree(parts, lambda a, b: client.submit(_add, a, b, pure=False))
        return parts, top, shards_of

    def _call_cluster(self, params: tuple[Any, ...], t0: float) -> Any:
        deadline = None if self._timeout is None else t0 + self._timeout
        last: BaseException | None = None
        for attempt in range(_ATTEMPTS):
            parts: list[Any] = []
            top = None
            shards_of: dict[str, list[int]] = {}
            try:
                # the cluster's side of the attempt: any error here is the cluster's, not f's
                try:
                    if attempt:
                        self._recover()
                    elif self._degraded and t0 - self._checked > 1.0:  # at most one look a second
                        self._checked = t0
                        workers = self._workers()
                        if len(workers) >= self._nworkers:
                            self._scatter_shards(list(range(len(self._shards))), workers)
                            self._degraded = False
                    if self._prog_future is None:
                        self._ship_program()
                    parts, top, shards_of = self._submit(params)
                except _NoWorkers:
                    raise
                except Exception as e:
                    raise _Lost(f"{type(e).__name__}: {e}") from e
                while True:
                    try:
                        res = top.result(timeout=_POLL)
                        break
                    except (TimeoutError, asyncio.TimeoutError):
                        # still running: is a shard's data gone with its worker? (the tasks
                        # needing it would never run)
                        lost = self._lost()
                        if lost:
                            raise _Lost(f"shards {lost} were lost with their worker") from None
                        if deadline is not None and time.perf_counter() > deadline:
                            raise TimeoutError(
                                f"{_OP}: the call did not complete within timeout={self._timeout} s "
                                f"(a worker stopped or too slow?); no partial sum is returned"
                            ) from None
            except BaseException as e:
                for fu in [*parts, top]:
                    if fu is not None:
                        fu.cancel()
                if type(e).__name__ == "KilledWorker":  # a task that took 3 workers down with it
                    key = str(getattr(e, "task", "") or (e.args[0] if e.args else ""))
                    idx = shards_of.get(key, "?")
                    raise RuntimeError(
                        f"{_OP}: the task summing shards {idx} killed the workers that ran it (f crashed "
                        f"or ran out of memory?); no partial sum is returned"
                    ) from e
                if isinstance(e, _Lost) or _is_infra(e):
                    last = e
                    continue
                raise
            self.last_call = {"seconds": time.perf_counter() - t0, "attempts": attempt + 1}
            return res
        raise RuntimeError(
            f"{_OP}: workers were lost during the call and {_ATTEMPTS} attempts did not complete it "
            f"(last: {type(last).__name__}: {last}); no partial sum is returned"
        ) from last

    # ---- calling ----

    def __call__(self, *params: Any) -> Any:
        """__call__(*params) -> tuple

        ``(value, grads)``: the sum over the shards of f's value and of df/dparams[argnums],
        value of f's shape, each gradient of its parameter's shape, NumPy arrays of the dtype
        mg.value_and_grad gives (summed in float64); a differentiated dict of arrays gets a dict
        of gradients. The parameters are read afresh each call; a new parameter signature
        (shapes, dtypes, Python-number values, dict structure) is traced and its program
        shipped once more.
        """
        if not params:
            raise TypeError(f"{_OP}: call with the parameters, vg(*params)")
        pos = self._positions(len(params))
        for k, p in enumerate(params):
            if isinstance(p, dict) and k not in pos:
                raise TypeError(
                    f"{_OP}: parameter {k} is a dict that is not differentiated; only differentiated "
                    f"parameters may be dicts (of arrays)"
                )
        params = tuple(p.numpy() if isinstance(p, Tensor) else p for p in params)
        t0 = time.perf_counter()
        with self._lock:
            trees = sorted({i for i in pos if isinstance(params[i], dict)})
            spans: list[tuple[int, int, Any]] = []
            if trees:
                params, spans = self._flat_call(params, pos, trees)
            elif self._cf is not self._base_cf:
                self._cf = self._base_cf
                self._prog_local = self._prog_future = None  # ship the other program
            changed = self._ensure_program(params)
            if self._client is None:
                if changed or self._prog_local is None:
                    self._prog_local = self._shipped()
                res = _tree(
                    [
                        _partial(self._prog_local, params, self._check_finite, (i,), s)
                        for i, s in enumerate(self._shards)
                    ],
                    _add,
                )
                self.last_call = {"seconds": time.perf_counter() - t0, "attempts": 1}
            else:
                if changed:
                    self._prog_future = None
                res = self._call_cluster(params, t0)
        if isinstance(res, _Failure):
            raise res.error() from res.exc
        # the value of f's shape, the gradients of the parameters', in the dtype f gives them
        out = [np.asarray(r, dtype=d) for r, d in zip(*res)]
        if not spans:
            return out[0], (out[1] if self._single else tuple(out[1:]))
        it = iter(out[1:])
        grads = []
        for i in pos:  # the leaves' gradients back into their dicts
            _, k, rebuild = spans[i]
            grads.append(next(it) if rebuild is None else rebuild(iter([next(it) for _ in range(k)])))
        return out[0], (grads[0] if self._single else tuple(grads))

    def _flat_call(
        self, params: tuple[Any, ...], pos: list[int], trees: list[int]
    ) -> tuple[tuple[Any, ...], list[tuple[int, int, Any]]]:
        """Differentiated dicts of parameters (lists, tuples and dicts inside them walked, keys
        sorted, as mg.value_and_grad does): their leaves become parameters of a compiled
        function per structure; selects it (shipped again when it changes)."""
        flat: list[Any] = []
        spans: list[tuple[int, int, Any]] = []
        for i, a in enumerate(params):
            start = len(flat)
            if i in trees:
                rebuild = _flatten(a, flat)
                spans.append((start, len(flat) - start, rebuild))
            else:
                flat.append(a)
                spans.append((start, 1, None))
        key = (len(params), tuple(_treedef(params[i]) if i in trees else None for i in range(len(params))))
        got = self._tree_cfs.get(key)
        if got is None:
            f, nflat, structure = self._f, len(flat), list(spans)

            def f_flat(*xs: Any) -> Any:
                ps = [xs[st] if tree is None else tree(iter(xs[st : st + k])) for st, k, tree in structure]
                return f(*ps, *xs[nflat:])

            flat_nums: list[int] = []
            for i in pos:
                st, k, _ = spans[i]
                flat_nums.extend(range(st, st + k))
            if not flat_nums:
                raise ValueError(f"{_OP}: a differentiated dict has no arrays in it")
            got = (_compile(f_flat, tuple(flat_nums)), structure)
            self._tree_cfs[key] = got
        if self._cf is not got[0]:
            self._cf = got[0]
            self._prog_local = self._prog_future = None  # ship this structure's program
        return tuple(flat), spans


def _treedef(x: Any) -> Any:
    """The structure of a parameter tree (what its compiled function depends on)."""
    if isinstance(x, dict):
        return ("dict", tuple((k, _treedef(x[k])) for k in sorted(x)))
    if isinstance(x, (list, tuple)):
        return (type(x).__qualname__, tuple(_treedef(v) for v in x))
    return "*"


class _NoWorkers(RuntimeError):
    """No worker left to run on: raised to the caller, not retried."""


class _Lost(Exception):
    pass


def _is_infra(e: BaseException) -> bool:
    """Errors of the cluster (a worker or its data gone), not of f."""
    if isinstance(e, (OSError, asyncio.CancelledError)) and not isinstance(e, TimeoutError):
        return True  # CommClosedError is an OSError
    names = {c.__name__ for c in type(e).__mro__}
    return bool(names & {"CancelledError", "FutureCancelledError", "CommClosedError", "FutureLostError"})


def value_and_grad(
    f: Callable[..., Any],
    shards: Sequence[Any],
    client: Any = None,
    argnums: ArgNums = 0,
    *,
    check_finite: bool = False,
    timeout: float | None = None,
) -> DataParallel:
    """value_and_grad(f, shards, client=None, argnums=0, *, check_finite=False, timeout=None) -> DataParallel

    Data-parallel value and gradient: ``vg = value_and_grad(f, shards, client)`` and
    ``value, grads = vg(*params)`` give the sum over the shards of
    ``mg.value_and_grad(f, argnums)(*params, *shard)``: the value and df/dparams[argnums],
    ``argnums`` counting the parameters first (only parameters are differentiated).

    Shapes: each shard is a tuple of arrays (one array is a 1-tuple), all shards with the same
    number of arrays; shards may differ in size (each size is traced once). The shards are
    copied (float32 stays float32, other numbers become float64): later changes to the caller's
    arrays do not reach them. ``value`` has f's shape; ``grads`` the parameters' shapes (NumPy
    arrays of the dtype ``mg.value_and_grad`` gives, summed in float64).

    Rule: the shards are sent to the Dask ``client``'s workers once, balanced by bytes, and stay
    there; ``f`` is compiled (``mg.compile``) once per parameter signature on the caller and the
    program shipped once, pickled, to every worker; each call sends only the parameters, each
    worker sums its shards' results, and the workers' sums are added pairwise on the workers.
    ``client=None`` runs the same compiled program in this process. ``f`` must be traceable by
    ``mg.compile`` (it must not read values: ``float(t)``, ``.numpy()``). A shard whose ``f``
    raises (or, with ``check_finite=True``, gives a non-finite value or gradient:
    FloatingPointError) raises the same exception type in the caller (RuntimeError when that
    type cannot be made from a message), naming the shard's index and shapes. A worker lost
    during a call gives its shards (re-sent from the caller's copies) to the workers left and
    the call is run again, up to 3 times, then raises RuntimeError: never a partial sum. A task
    that kills its workers (f crashed, out of memory) raises RuntimeError naming its shards.
    ``timeout`` (seconds) bounds a call: past it, TimeoutError (a stopped worker is otherwise
    only given up when Dask's scheduler drops it, after ``distributed.scheduler.worker-ttl``).
    """
    return DataParallel(f, shards, client, argnums, check_finite=check_finite, timeout=timeout)
