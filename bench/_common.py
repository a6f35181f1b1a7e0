"""Shared machinery of matgrad's Python benchmarks (bench/overhead.py, bench/network.py).

The method is the one the peers' figures in docs/benchmarks.md were measured with, so
matgrad's numbers are comparable with them:

* Every benchmark script is a *parent* that starts one *worker* process of itself per thread
  setting (thread counts of OpenBLAS / MKL / OpenMP are fixed when those libraries load, and
  glibc reads MALLOC_* variables at process start). A worker
    - pins itself to N cores and sets OMP/OPENBLAS/MKL/NUMEXPR/VECLIB_*_THREADS=N (and XLA's
      flags) BEFORE numpy or torch is imported; torch.set_num_threads(N),
      torch.set_num_interop_threads(1); threadpoolctl limits as belt and braces;
    - runs with MALLOC_MMAP_THRESHOLD_=64MiB, MALLOC_TRIM_THRESHOLD_=128MiB by default (as the
      peers were measured; --malloc default gives glibc's dynamic thresholds);
    - calls every system once (the first call, timed separately) and checks its answer against
      the NumPy closed form (dtype and shape too) for ALL cases, before anything is timed: a
      wrong answer raises and the run exits non-zero;
    - then times each system: warm-up (>= 3 calls, ~0.1 s), autorange to the smallest number of
      calls in 1, 2, 5, 10, 20, ... lasting >= --min-time (0.2 s), then the median of --repeats
      (7) repeats of that many calls, gc disabled inside the timed loops (as timeit does);
    - waits (bounded by --max-wait) until other processes leave its cores alone, records the
      CPU time they used on its cores during the timed repeats (/proc/stat), re-measures once
      if that was >= --quiet-threshold cores, and flags the row '!' if it still was.
* The parent prints one table per run, with ratios against chosen baselines computed from
  that same run (this machine is shared: absolute times drift, ratios from one run hold), and
  with --json PATH writes results and metadata.

Peers are optional: a peer that is not installed is skipped with "skipped: <peer> not
installed". matgrad itself is required.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time

RESULT_MARK = "@@MATGRAD_BENCH_RESULT_JSON@@ "
REF = "numpy (closed form)"
MALLOC_TUNED = {"MALLOC_MMAP_THRESHOLD_": str(64 << 20), "MALLOC_TRIM_THRESHOLD_": str(128 << 20)}
THREAD_VARS = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
)
ENV_REPORTED = (
    "OPENBLAS_CORETYPE",
    "OPENBLAS_L2_SIZE",
    *THREAD_VARS,
    "XLA_FLAGS",
    "MALLOC_MMAP_THRESHOLD_",
    "MALLOC_TRIM_THRESHOLD_",
)


def log(*a):
    print(*a, file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------
# command line
# ------------------------------------------------------------------------------------------
def add_common_args(ap: argparse.ArgumentParser) -> None:
    ap.add_argument(
        "--quick",
        action="store_true",
        help="fast smoke run (answers still checked): 3 repeats of >= 0.02 s, no waiting for "
        "quiet CPUs, no retries. The times are NOT measurements.",
    )
    ap.add_argument(
        "--json",
        metavar="PATH",
        default=None,
        help="also write the results and metadata as JSON to PATH ('-' = stdout)",
    )
    ap.add_argument(
        "--min-time",
        type=float,
        default=None,
        help="seconds per timed repeat (default 0.2; 0.02 with --quick)",
    )
    ap.add_argument("--repeats", type=int, default=None, help="timed repeats (default 7; 3 with --quick)")
    ap.add_argument(
        "--quiet-threshold",
        type=float,
        default=0.25,
        help="CPU cores' worth used by OTHER processes on our cores above which a measurement "
        "counts as disturbed (default 0.25)",
    )
    ap.add_argument(
        "--max-wait",
        type=float,
        default=None,
        help="total seconds per worker to wait for other processes to go quiet (default 20; 0 with --quick)",
    )
    ap.add_argument(
        "--retries",
        type=int,
        default=None,
        help="re-measure a disturbed measurement this often (default 1; 0 with --quick)",
    )
    ap.add_argument(
        "--malloc",
        choices=("tuned", "default"),
        default="tuned",
        help="tuned (default): MALLOC_MMAP_THRESHOLD_=64MiB MALLOC_TRIM_THRESHOLD_=128MiB in the "
        "workers, as the peers were measured; default: glibc's dynamic thresholds",
    )
    # internal: parent -> worker
    ap.add_argument("--_worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--_threads", type=int, default=1, help=argparse.SUPPRESS)
    ap.add_argument("--_systems", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--_tag", default="", help=argparse.SUPPRESS)


def finish_args(args: argparse.Namespace) -> argparse.Namespace:
    q = args.quick
    if args.min_time is None:
        args.min_time = 0.02 if q else 0.2
    if args.repeats is None:
        args.repeats = 3 if q else 7
    if args.max_wait is None:
        args.max_wait = 0.0 if q else 20.0
    if args.retries is None:
        args.retries = 0 if q else 1
    return args


# ------------------------------------------------------------------------------------------
# threads
# ------------------------------------------------------------------------------------------
def pin_threads(n: int) -> list:
    """Pin this process to n cores and limit every BLAS/OpenMP pool to n threads.

    Must run before numpy / torch / jax are imported (their pools size themselves at load)."""
    for mod in ("numpy", "torch", "jax", "matgrad"):
        if mod in sys.modules:
            raise RuntimeError(f"pin_threads() must run before {mod} is imported")
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < n:
        raise SystemExit(f"need {n} CPUs, the affinity mask has only {cpus}")
    os.sched_setaffinity(0, set(cpus[:n]))
    for v in THREAD_VARS:
        os.environ[v] = str(n)
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    flags = [
        f
        for f in os.environ.get("XLA_FLAGS", "").split()
        if not f.startswith(("--xla_cpu_multi_thread_eigen", "intra_op_parallelism_threads"))
    ]
    if n == 1:
        flags += ["--xla_cpu_multi_thread_eigen=false", "intra_op_parallelism_threads=1"]
    if flags:
        os.environ["XLA_FLAGS"] = " ".join(flags)
    else:
        os.environ.pop("XLA_FLAGS", None)
    return sorted(os.sched_getaffinity(0))


# ------------------------------------------------------------------------------------------
# timing (the method of docs/benchmarks.md)
# ------------------------------------------------------------------------------------------
def _loop(fn, number):
    gc_was = gc.isenabled()
    gc.disable()
    try:
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        return time.perf_counter() - t0
    finally:
        if gc_was:
            gc.enable()


_CLK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _cpu_snapshot():
    """(wall s, busy CPU-s of our cores, busy CPU-s of all cores, this process's CPU-s)."""
    mine = {f"cpu{c}" for c in os.sched_getaffinity(0)}
    busy_mine = busy_all = 0
    with open("/proc/stat") as fh:
        for line in fh:
            if not line.startswith("cpu"):
                break
            parts = line.split()
            if parts[0] == "cpu":
                continue
            f = [int(v) for v in parts[1:]]
            # user nice system idle iowait irq softirq steal
            b = f[0] + f[1] + f[2] + f[5] + f[6] + (f[7] if len(f) > 7 else 0)
            busy_all += b
            if parts[0] in mine:
                busy_mine += b
    t = os.times()
    return time.perf_counter(), busy_mine / _CLK, busy_all / _CLK, t.user + t.system


def foreign_load(a, b, all_cores=False):
    """Mean cores' worth of CPU time used by OTHER processes between snapshots a and b."""
    wall = b[0] - a[0]
    if wall <= 0:
        return 0.0
    k = 2 if all_cores else 1
    return max(0.0, ((b[k] - a[k]) - (b[3] - a[3])) / wall)


class QuietGate:
    """Waits (bounded by a total budget) until other processes leave our CPUs alone."""

    def __init__(self, threshold, budget_s):
        self.threshold = threshold
        self.budget = budget_s
        self.waited = 0.0

    def wait(self):
        if self.budget <= 0:
            return None
        t_start = time.perf_counter()
        while True:
            a = _cpu_snapshot()
            time.sleep(0.3)
            load = foreign_load(a, _cpu_snapshot())
            if load < self.threshold or self.waited + (time.perf_counter() - t_start) > self.budget:
                break
        self.waited += time.perf_counter() - t_start
        return load


def measure(fn, min_time=0.2, repeats=7):
    """Median time per call of fn() (already called once by the caller)."""
    t_end = time.perf_counter() + 0.1  # warm-up: >= 3 calls and ~0.1 s (bounded)
    k = 0
    while k < 3 or (time.perf_counter() < t_end and k < 10000):
        fn()
        k += 1
    number, i = 1, 1  # autorange 1, 2, 5, 10, 20, 50, ...
    while True:
        for j in (1, 2, 5):
            number = i * j
            if _loop(fn, number) >= min_time:
                break
        else:
            i *= 10
            continue
        break
    a = _cpu_snapshot()
    times = [_loop(fn, number) / number for _ in range(repeats)]
    b = _cpu_snapshot()
    med = statistics.median(times)
    q = statistics.quantiles(times, n=4) if len(times) >= 2 else [med, med, med]
    return {
        "median_us": med * 1e6,
        "min_us": min(times) * 1e6,
        "max_us": max(times) * 1e6,
        "iqr_pct": (q[2] - q[0]) / med * 100.0,
        "number": number,
        "repeats": repeats,
        "times_us": [t * 1e6 for t in times],
        "foreign_load_cores": foreign_load(a, b),
        "foreign_load_all_cores": foreign_load(a, b, all_cores=True),
    }


# ------------------------------------------------------------------------------------------
# answer checking
# ------------------------------------------------------------------------------------------
def _flatten(x, out):
    if isinstance(x, (tuple, list)):
        for e in x:
            _flatten(e, out)
    else:
        out.append(x)
    return out


def _is_torch_tensor(x):
    t = sys.modules.get("torch")
    return t is not None and isinstance(x, t.Tensor)


def check(label, got, ref, dtype, rtol, atol_rel, require_ndarray=False):
    """Compare every output with the float64 closed form; raise AssertionError on a mismatch.

    require_ndarray: the outputs must be NumPy arrays (matgrad's NumPy-in/NumPy-out contract).
    Returns the largest error relative to each output's max |ref|."""
    import numpy as np

    g = _flatten(got, [])
    r = _flatten(ref, [])
    if len(g) != len(r):
        raise AssertionError(f"{label}: got {len(g)} outputs, expected {len(r)}")
    max_err = 0.0
    for k, (gi, ri) in enumerate(zip(g, r)):
        if require_ndarray and not isinstance(gi, np.ndarray):
            raise AssertionError(
                f"{label}: output {k} is a {type(gi).__module__}.{type(gi).__name__}, "
                "expected a numpy.ndarray"
            )
        gi = gi.detach().cpu().numpy() if _is_torch_tensor(gi) else np.asarray(gi)
        ri = np.asarray(ri, dtype=np.float64)
        if gi.dtype != dtype:
            raise AssertionError(f"{label}: output {k} has dtype {gi.dtype}, expected {dtype}")
        if gi.shape != ri.shape:
            raise AssertionError(f"{label}: output {k} has shape {gi.shape}, expected {ri.shape}")
        scale = float(np.max(np.abs(ri))) if ri.size else 1.0
        np.testing.assert_allclose(
            gi.astype(np.float64),
            ri,
            rtol=rtol,
            atol=atol_rel * scale,
            err_msg=f"{label}: output {k} does not match the numpy closed form",
        )
        if ri.size:
            max_err = max(max_err, float(np.max(np.abs(gi.astype(np.float64) - ri))) / max(scale, 1e-300))
    return max_err


# ------------------------------------------------------------------------------------------
# worker side
# ------------------------------------------------------------------------------------------
class Case:
    """One workload variant: several systems computing the same thing, one closed-form reference."""

    def __init__(self, workload, variant, dtype, systems, ref, rtol, atol_rel, numpy_out=(), extra=None):
        self.workload = workload
        self.variant = variant
        self.dtype = dtype  # numpy dtype name of every output
        self.systems = systems  # {name: zero-argument callable}
        self.ref = ref  # float64 closed-form outputs (nested tuples)
        self.rtol = rtol
        self.atol_rel = atol_rel  # atol relative to max |ref| of each output
        self.numpy_out = set(numpy_out)  # systems that must return numpy.ndarray outputs
        self.extra = extra  # f(result dict) -> extra fields (e.g. per-op time)


class Worker:
    """A worker process: pins threads (before numpy is imported), checks, times, reports."""

    def __init__(self, args):
        self.args = args
        self.threads = args._threads
        self.affinity = pin_threads(self.threads)
        import numpy as np  # after pin_threads, on purpose

        self.np = np
        self.skipped = []
        self.versions = {"python": sys.version.split()[0], "numpy": np.__version__}
        self.extra_meta = {}
        self.results = []
        self.systems_filter = set(args._systems.split("|")) if args._systems else None
        self.gate = QuietGate(args.quiet_threshold, args.max_wait)
        self._tp_limits = None
        self.threadpool_info = None
        try:
            import threadpoolctl

            self._tp_limits = threadpoolctl.threadpool_limits(limits=self.threads)
            self.versions["threadpoolctl"] = threadpoolctl.__version__
        except ImportError:
            log("note: threadpoolctl not installed; BLAS thread pools are set by environment only")
        log(
            f"[worker {self.threads}T{(' ' + args._tag) if args._tag else ''}] affinity={self.affinity} "
            f"malloc={'tuned' if os.environ.get('MALLOC_MMAP_THRESHOLD_') else 'glibc default'}"
        )

    # -- imports --------------------------------------------------------------------------
    def import_matgrad(self):
        import matgrad as mg

        core = getattr(mg, "_core", None)
        so = getattr(core, "__file__", None)
        self.versions["matgrad"] = getattr(mg, "__version__", "?")
        self.extra_meta["matgrad_module"] = so
        if so and os.path.exists(so):
            self.extra_meta["matgrad_module_mtime"] = time.strftime(
                "%Y-%m-%d %H:%M:%S", time.localtime(os.path.getmtime(so))
            )
        return mg

    def peer(self, name, display=None):
        """Import an optional peer; None (and "skipped: <peer> not installed") if it is missing."""
        display = display or name
        try:
            mod = importlib.import_module(name)
        except ImportError:
            self.skipped.append(display)
            msg = f"skipped: {display} not installed"
            print(msg, file=sys.stderr, flush=True)
            return None
        version = getattr(mod, "__version__", None)
        if version is None:  # autograd has none: the installed distribution's
            try:
                import importlib.metadata as md

                version = md.version(name)
            except Exception:
                version = "?"
        self.versions[name] = version
        if name == "torch":
            mod.set_num_threads(self.threads)
            try:
                mod.set_num_interop_threads(1)
            except RuntimeError:
                pass
            self.extra_meta["torch_num_threads"] = mod.get_num_threads()
            self.extra_meta["torch_blas"] = "MKL" if mod.backends.mkl.is_available() else "non-MKL"
            try:
                self.extra_meta["torch_cpu_capability"] = mod.backends.cpu.get_cpu_capability()
            except Exception:
                pass
        return mod

    def import_jax(self):
        """Import jax if installed (None and "skipped: jax not installed" if not), with float64
        enabled (jax_enable_x64) and jaxlib's version recorded; XLA's threads are pinned by
        pin_threads(). Returns (jax, jax.numpy) or (None, None)."""
        jax = self.peer("jax")
        if jax is None:
            return None, None
        jax.config.update("jax_enable_x64", True)
        import jax.numpy as jnp

        try:
            import importlib.metadata as md

            self.versions["jaxlib"] = md.version("jaxlib")
        except Exception:
            pass
        return jax, jnp

    def first_call(self, label, fn):
        """Call fn once (trace and compile, for jitted and compiled systems), record its time as
        "first call" (reported apart from the timed calls), and return fn."""
        t = time.perf_counter()
        fn()
        self.extra_meta.setdefault("first_call_ms", {})[label] = (time.perf_counter() - t) * 1e3
        return fn

    def _wanted(self, name):
        return self.systems_filter is None or name in self.systems_filter

    # -- check everything, then time everything --------------------------------------------
    def run(self, cases):
        np = self.np
        firsts = {}
        # 1. every answer is checked before anything is timed
        for c in cases:
            for name, fn in c.systems.items():
                if not self._wanted(name):
                    continue
                label = f"{c.workload} [{c.variant}] {name}"
                gc.collect()
                t0 = time.perf_counter()
                out = fn()
                first = time.perf_counter() - t0
                err = check(
                    label,
                    out,
                    c.ref,
                    np.dtype(c.dtype),
                    c.rtol,
                    c.atol_rel,
                    require_ndarray=name in c.numpy_out,
                )
                firsts[(c.workload, c.variant, name)] = (first, err)
                log(f"  checked {label:<58s} max rel err {err:.1e}  first call {first * 1e3:8.2f} ms")
        # 2. timing
        for c in cases:
            for name, fn in c.systems.items():
                if not self._wanted(name):
                    continue
                label = f"{c.workload} [{c.variant}] {name}"
                first, err = firsts[(c.workload, c.variant, name)]
                gc.collect()
                attempts = []
                for attempt in range(1 + self.args.retries):
                    pre = self.gate.wait()
                    r = measure(fn, self.args.min_time, self.args.repeats)
                    r["pre_wait_load_cores"] = pre
                    attempts.append(r)
                    if r["foreign_load_cores"] < self.args.quiet_threshold:
                        break
                    log(
                        f"  {label}: other processes used {r['foreign_load_cores']:.2f} cores during timing; "
                        f"{'retrying' if attempt < self.args.retries else 'keeping the least disturbed attempt'}"
                    )
                r = min(attempts, key=lambda x: x["foreign_load_cores"])
                r["attempts"] = len(attempts)
                r["disturbed"] = r["foreign_load_cores"] >= self.args.quiet_threshold
                rec = {
                    "workload": c.workload,
                    "variant": c.variant,
                    "threads": self.threads,
                    "dtype": c.dtype,
                    "system": name,
                    "first_call_ms": first * 1e3,
                    "max_rel_err_vs_ref": err,
                    "malloc": "tuned" if os.environ.get("MALLOC_MMAP_THRESHOLD_") else "default",
                    "tag": self.args._tag,
                }
                rec.update(r)
                if c.extra:
                    rec.update(c.extra(r))
                self.results.append(rec)
                log(
                    f"  timed   {label:<58s} median {r['median_us']:11.2f} us  iqr {r['iqr_pct']:5.1f}%  "
                    f"n={r['number']:<6d} load {r['foreign_load_cores']:.2f}"
                )

    def finish(self):
        meta = {
            "threads": self.threads,
            "affinity": self.affinity,
            "env": {k: os.environ.get(k) for k in ENV_REPORTED},
            "versions": self.versions,
            "skipped": self.skipped,
            "waited_for_quiet_s": self.gate.waited,
            "tag": self.args._tag,
            **self.extra_meta,
        }
        try:
            import threadpoolctl

            meta["threadpool_info"] = [
                {k: i.get(k) for k in ("internal_api", "version", "architecture", "num_threads", "filepath")}
                for i in threadpoolctl.threadpool_info()
            ]
        except ImportError:
            meta["threadpool_info"] = []
        print(RESULT_MARK + json.dumps({"meta": meta, "results": self.results}), flush=True)


# ------------------------------------------------------------------------------------------
# parent side
# ------------------------------------------------------------------------------------------
def cpu_model():
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def warn_env():
    if os.environ.get("OPENBLAS_CORETYPE") or os.environ.get("OPENBLAS_L2_SIZE"):
        log(
            "WARNING: OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE are set; numpy's OpenBLAS will use the forced "
            "kernel and the numpy baseline will be slow. Run with: "
            "env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE ..."
        )


def run_worker(script, argv, threads=1, malloc="tuned", systems=None, tag="", extra_argv=()):
    """Start `script` as a worker process (same interpreter, same arguments) and return its payload."""
    env = dict(os.environ)
    for k in MALLOC_TUNED:
        env.pop(k, None)
    if malloc == "tuned":
        env.update(MALLOC_TUNED)
    cmd = [
        sys.executable,
        os.path.abspath(script),
        *argv,
        *extra_argv,
        "--_worker",
        "--_threads",
        str(threads),
    ]
    if systems:
        cmd += ["--_systems", "|".join(systems)]
    if tag:
        cmd += ["--_tag", tag]
    log(f"== worker: threads={threads} malloc={malloc}{' systems=' + ','.join(systems) if systems else ''}")
    p = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, env=env)
    payload = None
    for line in p.stdout.splitlines():
        if line.startswith(RESULT_MARK):
            payload = json.loads(line[len(RESULT_MARK) :])
        else:
            log("  [worker stdout] " + line)
    if p.returncode != 0 or payload is None:
        raise SystemExit(
            f"FAILED: worker (threads={threads}) exited with code {p.returncode}; see its "
            "traceback above (a wrong answer fails the run)"
        )
    return payload


def add_ratios(results, baselines, group=("workload", "variant", "threads", "malloc", "tag")):
    """results[i]['ratios'][label] = median / median of the baseline system in the same group."""
    base = {}
    for r in results:
        for label, sysname in baselines:
            if r["system"] == sysname:
                base[(label, tuple(r[k] for k in group))] = r["median_us"]
    for r in results:
        key = tuple(r[k] for k in group)
        r["ratios"] = {
            label: (r["median_us"] / base[(label, key)] if (label, key) in base else None)
            for label, _ in baselines
        }
    return results


def format_table(results, baselines, title=None):
    """Times in µs, ratios vs each baseline (from this run), one block per workload variant."""
    rl = [label for label, _ in baselines]
    hdr = (
        f"{'workload':<8} {'variant':<16} {'system':<30} {'median µs':>11} "
        + " ".join(f"{'x ' + lab:>10}" for lab in rl)
        + f" {'min µs':>11} {'IQR%':>5} {'calls':>6} {'1st ms':>8} {'load':>5}  note"
    )
    lines = ([title] if title else []) + [hdr, "-" * len(hdr)]
    prev = None
    for r in results:
        key = (r["workload"], r["variant"], r["threads"], r["malloc"], r.get("tag"))
        if prev is not None and key != prev:
            lines.append("")
        prev = key
        ratios = " ".join(
            f"{(format(r['ratios'][lab], '.3f') if r['ratios'].get(lab) is not None else '-'):>10}"
            for lab in rl
        )
        note = r.get("note", "")
        lines.append(
            f"{r['workload']:<8} {r['variant']:<16} {r['system']:<30} {r['median_us']:11.2f} {ratios} "
            f"{r['min_us']:11.2f} {r['iqr_pct']:5.1f} {r['number']:6d} {r['first_call_ms']:8.2f} "
            f"{r['foreign_load_cores']:5.2f}{'!' if r['disturbed'] else ' '} {note}"
        )
    return "\n".join(lines)


def header_lines(script_name, args, payloads, t_start):
    w = payloads[0]["meta"]
    v = w["versions"]
    lines = [
        f"{script_name}  {time.strftime('%Y-%m-%d %H:%M:%S')}  cpu: {cpu_model()}  nproc={os.cpu_count()}",
        "versions: " + ", ".join(f"{k} {val}" for k, val in v.items()),
        f"matgrad module: {w.get('matgrad_module')} (built {w.get('matgrad_module_mtime')})",
        f"parent env: OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE')} "
        f"OPENBLAS_L2_SIZE={os.environ.get('OPENBLAS_L2_SIZE')}",
    ]
    for p in payloads:
        m = p["meta"]
        pools = "; ".join(
            f"{i.get('internal_api')} {i.get('version')} {i.get('architecture')} "
            f"threads={i.get('num_threads')}"
            for i in m.get("threadpool_info", [])
        )
        lines.append(
            f"worker {m['threads']}T{(' ' + m['tag']) if m.get('tag') else ''}: affinity={m['affinity']} "
            f"malloc={'tuned' if m['env'].get('MALLOC_MMAP_THRESHOLD_') else 'glibc default'} "
            f"torch threads={m.get('torch_num_threads', '-')} pools: {pools or '?'}; "
            f"waited {m['waited_for_quiet_s']:.0f} s for quiet CPUs"
        )
    mode = "QUICK SMOKE RUN: times are not measurements" if args.quick else "measurement"
    lines.append(
        f"timing ({mode}): median of {args.repeats} repeats, each >= {args.min_time} s of calls "
        f"(autorange), after a warm-up; gc off in timed loops; every answer checked against the "
        f"numpy closed form first. wall time {time.time() - t_start:.0f} s"
    )
    for p in payloads:
        for label, ms in p["meta"].get("first_call_ms", {}).items():
            lines.append(f"first call (trace + compile + one run), not in the table: {label}: {ms:.1f} ms")
    skipped = sorted({s for p in payloads for s in p["meta"]["skipped"]})
    for s in skipped:
        lines.append(f"skipped: {s} not installed")
    return lines


def write_json(path, payload):
    text = json.dumps(payload, indent=1)
    if path == "-":
        print(text)
    else:
        with open(path, "w") as fh:
            fh.write(text + "\n")
        log(f"wrote {path}")


def run_script(ap, worker, parent) -> None:
    """Parse the command line (with the common options) and run as parent or worker."""
    add_common_args(ap)
    argv = sys.argv[1:]
    args = finish_args(ap.parse_args(argv))
    if args._worker:
        worker(args)
    else:
        parent(args, argv)
