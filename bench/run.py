"""One benchmark command: W1-W6 (and W7 when the C++ benchmark is built) for every installed system.

    python bench/run.py [--quick] [--out DIR] [--w7 PATH | --no-w7]

Runs bench/overhead.py (W1, W2), bench/network.py (W3, float64 and float32) and bench/matrix.py
(W4, W5, W6) one after the other, each measuring matgrad (eager, value_and_grad, compiled)
against the peers that are installed (the NumPy closed form always; PyTorch eager, torch.func,
JAX eager and jit, HIPS autograd when importable: a missing peer is skipped, as each script
says), every answer
checked against the closed form before anything is timed. W7, the C++ replay, comes from the
cpp/bench/bench_w7 binary when it is found (the C++ test build of tools/run-tests.sh puts it in
build/cpp-tests/) or given with --w7.

Writes DIR/results.json (every row: workload, variant, dtype, threads, system, median and min
µs, and the scripts' metadata: versions, thread pools, environment) and DIR/results.png (one
group of bars per workload, one bar per system, log scale), and prints a table of medians with
the ratios to the reference ("x ref": the NumPy closed form; for W7 the hand-written C++) and to
jax.jit (when measured). DIR defaults to
bench-results/. The scripts' own options (--min-time, --repeats, --max-wait, ...) are in
bench/README.md; --quick passes theirs (a smoke run in seconds: the times are not
measurements). OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE are dropped from the scripts' environment
(they force a slow OpenBLAS kernel on some machines).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from cpp import parse_w7  # bench/cpp.py: the one reader of bench_w7's table

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SCRIPTS = [("overhead.py", "W1, W2"), ("network.py", "W3"), ("matrix.py", "W4, W5, W6")]
REF = "numpy (closed form)"
JIT = "jax jit"


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
        env.pop(k, None)
    return env


def run_scripts(quick: bool) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    meta: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for script, what in SCRIPTS:
            out = Path(tmp) / (script + ".json")
            cmd = [sys.executable, str(HERE / script), "--json", str(out)] + (["--quick"] if quick else [])
            print(f"==> {script} ({what})", flush=True)
            t0 = time.perf_counter()
            r = subprocess.run(cmd, env=_child_env(), capture_output=True, text=True)
            if r.returncode != 0:
                sys.stdout.write(r.stdout)
                sys.stderr.write(r.stderr)
                raise SystemExit(f"run.py: {script} failed (exit {r.returncode})")
            for line in r.stdout.splitlines():
                if line.startswith("skipped:"):
                    print("    " + line)
            data = json.loads(out.read_text())
            for row in data["results"]:
                row["script"] = script
                rows.append(row)
            meta[script] = {"meta": data.get("meta"), "args": data.get("args")}
            print(f"    {len(data['results'])} rows in {time.perf_counter() - t0:.1f} s", flush=True)
    return rows, meta


def find_w7(given: str | None) -> Path | None:
    if given:
        p = Path(given)
        if not p.is_file():
            raise SystemExit(f"run.py: --w7 {given}: no such file")
        return p
    for p in sorted(ROOT.glob("build/*/matgrad_bench_w7")):
        if p.is_file() and os.access(p, os.X_OK):
            return p
    return None


def run_w7(binary: Path, quick: bool) -> list[dict[str, Any]]:
    """W7's rows from bench_w7's table: eager (record + backward), compiled replay, hand-written."""
    cmd = [str(binary)] + (["--repeats", "3", "--min-time", "0.01"] if quick else [])
    print(f"==> {binary} (W7)", flush=True)
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.stdout.write(r.stdout + r.stderr)
        raise SystemExit(f"run.py: {binary} failed (exit {r.returncode})")
    rows = []
    for name, t in parse_w7(r.stdout).items():
        for system, us in (
            ("matgrad eager (C++ record + backward)", t["eager"]),
            ("matgrad compiled (C++ replay)", t["compiled"]),
            ("hand-written C++", t["hand"]),
        ):
            rows.append(
                {
                    "workload": "W7",
                    "variant": name,
                    "dtype": "float64",
                    "threads": 1,
                    "system": system,
                    "median_us": us,
                    "script": "bench_w7",
                }
            )
    return rows


def _key(row: dict[str, Any]) -> tuple[str, str, str, int]:
    return (
        row["workload"],
        str(row.get("variant", "")),
        str(row.get("dtype", "")),
        int(row.get("threads", 1)),
    )


def table(rows: list[dict[str, Any]]) -> str:
    groups: dict[tuple[str, str, str, int], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(_key(row), []).append(row)
    out = [
        f"{'workload':<9}{'variant':<22}{'dtype':<8}{'system':<40}{'median µs':>12}{'x ref':>9}{'x jax.jit':>10}"
    ]
    out.append("-" * len(out[0]))
    for key, members in groups.items():
        base = {m["system"]: m["median_us"] for m in members}
        ref = base.get(REF) or base.get("hand-written C++")
        jit = base.get(JIT)
        for m in members:
            us = m["median_us"]
            rn = f"{us / ref:.3f}" if ref else "-"
            rj = f"{us / jit:.3f}" if jit else "-"
            out.append(
                f"{key[0]:<9}{key[1][:21]:<22}{key[2]:<8}{m['system'][:39]:<40}{us:>12.2f}{rn:>9}{rj:>10}"
            )
        out.append("")
    return "\n".join(out)


def chart(rows: list[dict[str, Any]], path: Path, title: str) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("run.py: matplotlib is not installed: no chart (pip install matplotlib)")
        return False
    groups: dict[tuple[str, str, str, int], dict[str, float]] = {}
    for row in rows:
        groups.setdefault(_key(row), {})[row["system"]] = row["median_us"]
    systems = list(dict.fromkeys(r["system"] for r in rows))
    fig, ax = plt.subplots(figsize=(max(8.0, 1.4 * len(groups)), 5.0))
    cmap = plt.get_cmap("tab20")
    labelled: set[str] = set()
    for i, g in enumerate(groups.values()):  # the group's own systems, side by side
        width = 0.8 / len(g)
        for j, (system, us) in enumerate(g.items()):
            k = systems.index(system)
            label = None if system in labelled else system
            labelled.add(system)
            ax.bar(i + (j - (len(g) - 1) / 2) * width, us, width, label=label, color=cmap(k % 20))
    ax.set_yscale("log")
    ax.set_ylabel("median µs per call (log scale)")
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels([f"{w}\n{v}\n{d}" for w, v, d, _ in groups], fontsize=8)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--quick", action="store_true", help="smoke run: seconds, checked answers, times not measurements"
    )
    ap.add_argument("--out", default="bench-results", help="folder for results.json and results.png")
    ap.add_argument(
        "--w7", default=None, help="the bench_w7 binary (default: build/*/matgrad_bench_w7 if built)"
    )
    ap.add_argument("--no-w7", action="store_true", help="skip W7")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    rows, meta = run_scripts(args.quick)
    w7 = None if args.no_w7 else find_w7(args.w7)
    if w7 is not None:
        rows += run_w7(w7, args.quick)
    elif not args.no_w7:
        print("W7 skipped: no matgrad_bench_w7 binary (build it: tools/run-tests.sh, or --w7 PATH)")
    stamp = time.strftime("%Y-%m-%d %H:%M", time.localtime(t0))
    payload = {
        "date": stamp,
        "quick": args.quick,
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor(),
            "cpus": os.cpu_count(),
        },
        "python": sys.version.split()[0],
        "results": rows,
        "scripts": meta,
    }
    (out / "results.json").write_text(json.dumps(payload, indent=1, default=str))
    print()
    print(table(rows))
    title = f"matgrad and peers, {stamp}" + (" (--quick: not measurements)" if args.quick else "")
    if chart(rows, out / "results.png", title):
        print(f"wrote {out / 'results.json'} and {out / 'results.png'}")
    else:
        print(f"wrote {out / 'results.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
