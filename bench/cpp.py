"""The C++ benchmarks in one table: W1-W6 (cpp/bench/bench_workloads.cpp, Google Benchmark) and
W7 (cpp/bench/bench_w7.cpp) from one run, matgrad eager and compiled against hand-written C++,
with the C++ peers' figures of docs/benchmarks.md beside them.

    python bench/cpp.py [--build DIR] [--repetitions N] [--quick] [--json FILE]

DIR is a CMake build with -DMATGRAD_BUILD_BENCH=ON (default: build/cpp-tests, where
tools/run-tests.sh builds it). Needs nothing but Python's standard library. Each binary checks
every answer against the hand-written code before it times anything; a failure ends this
script with that binary's exit status.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# The C++ peers on the reference machine (docs/benchmarks.md, "The C++ peers on the reference
# machine": median µs per call, value and gradient, 1 thread, 2026-11-26; N = 10^4): hand-written
# scalar loops, hand-written with Eigen's vectorised kernels, FastAD bind-once, Adept re-record,
# CppAD replay. None where the peer has no figure.
PEERS: dict[str, tuple[float | None, ...]] = {
    "W1": (0.0146, None, 0.0225, 0.0561, 0.105),  # the lecture scalar
    "W7 prod, 0-D nodes": (14.9, None, 17.2, 62.5, 96.5),
    "W7 lecture scalar": (0.0146, None, 0.0225, 0.0561, 0.105),
    "W7 normal, vector ops": (4.87, 1.51, 2.08, 41.8, 203.0),
    "W7 lse, vector ops": (30.1, 7.35, 8.53, 35.0, None),
    "W7 matrix product 64": (21.0, None, 22.6, 571.0, 2503.0),
    "W7 matrix product 256": (1158.0, None, 1202.0, 170575.0, 171297.0),
}
ORDER = ["W1", "W2", "W3_f64", "W3_f32", "W4_n64", "W4_n256", "W5", "W6"]  # bench_workloads' rows
PEER_NAMES = ("hand", "hand-eigen", "FastAD", "Adept", "CppAD")


def run(cmd: list[str]) -> str:
    print("==> " + " ".join(cmd), file=sys.stderr, flush=True)
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.stderr.write(r.stdout + r.stderr)
        raise SystemExit(f"cpp.py: {cmd[0]} failed (exit {r.returncode})")
    return r.stdout


def workloads(binary: Path, repetitions: int, quick: bool) -> dict[str, dict[str, float]]:
    """{workload: {"eager"|"compiled"|"hand": median µs}} from bench_workloads' JSON."""
    cmd = [str(binary), "--benchmark_format=json"]
    if quick:
        cmd += ["--benchmark_min_time=0.001"]
    else:
        cmd += [
            f"--benchmark_repetitions={repetitions}",
            "--benchmark_enable_random_interleaving=true",
        ]
    data = json.loads(run(cmd))
    times: dict[tuple[str, str], list[float]] = {}
    for b in data["benchmarks"]:
        if b.get("run_type", "iteration") != "iteration":
            continue
        name, system = b["run_name"].split("/")
        scale = {"ns": 1e-3, "us": 1.0, "ms": 1e3, "s": 1e6}[b["time_unit"]]
        times.setdefault((name, system), []).append(b["real_time"] * scale)
    out: dict[str, dict[str, float]] = {}
    for (name, system), ts in sorted(
        times.items(), key=lambda kv: ORDER.index(kv[0][0]) if kv[0][0] in ORDER else 99
    ):
        out.setdefault(name, {})[system] = statistics.median(ts)
    return out


def parse_w7(text: str) -> dict[str, dict[str, float]]:
    """bench_w7's table by row name: eager (record + backward), compiled replay and hand, µs."""
    lines = text.splitlines()
    head = next(i for i, line in enumerate(lines) if line.startswith("workload"))
    out = {}
    for line in lines[head + 1 :]:
        parts = line.split()
        if len(parts) < 12:
            continue
        nums = parts[-11:]
        out[" ".join(parts[:-11])] = {
            "eager": float(nums[2]),
            "compiled": float(nums[4]),
            "hand": float(nums[7]),
        }
    return out


def w7(binary: Path, quick: bool) -> dict[str, dict[str, float]]:
    """W7's rows of the table, from a run of bench_w7."""
    text = run([str(binary)] + (["--n", "1000", "--repeats", "1", "--min-time", "0"] if quick else []))
    return {"W7 " + name: r for name, r in parse_w7(text).items()}


def fmt(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v:.3g}" if v < 1 else f"{v:.4g}" if v < 1e4 else f"{v:.0f}"


def table(rows: dict[str, dict[str, float]]) -> str:
    head = ["workload", "eager µs", "compiled µs", "hand µs", "eager/hand", "compiled/hand"]
    head += [f"{p} (ref.)" for p in PEER_NAMES]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, r in rows.items():
        e, c, h = r.get("eager"), r.get("compiled"), r.get("hand")
        cells = [name, fmt(e), fmt(c), fmt(h)]
        cells += [f"{e / h:.2f}x" if e and h else "-", f"{c / h:.2f}x" if c and h else "-"]
        cells += [fmt(p) for p in PEERS.get(name, (None,) * len(PEER_NAMES))]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--build", default=str(ROOT / "build" / "cpp-tests"), help="the CMake build with the binaries"
    )
    ap.add_argument("--repetitions", type=int, default=7, help="Google Benchmark repetitions (median)")
    ap.add_argument("--quick", action="store_true", help="a smoke run: every answer checked, short timings")
    ap.add_argument("--json", default=None, help="also write the rows to this file")
    args = ap.parse_args(argv)
    build = Path(args.build)
    found = {n: build / n for n in ("matgrad_bench_workloads", "matgrad_bench_w7")}
    missing = [str(p) for p in found.values() if not p.is_file()]
    if missing:
        raise SystemExit(
            f"cpp.py: not built: {', '.join(missing)} (configure with -DMATGRAD_BUILD_BENCH=ON; "
            "tools/run-tests.sh builds them in build/cpp-tests)"
        )
    rows = workloads(found["matgrad_bench_workloads"], args.repetitions, args.quick)
    rows.update(w7(found["matgrad_bench_w7"], args.quick))
    print(table(rows))
    print(
        "\nMedian µs per call, 1 thread, value and gradient (W5: the Jacobian, W6: the Hessian); "
        "eager records the graph and sweeps it on every call, compiled replays a program recorded "
        "once, hand is hand-written C++ on Eigen. The (ref.) columns are the C++ peers measured on "
        "the reference machine (docs/benchmarks.md), not in this run: compare them as ratios to "
        "this run's hand column."
    )
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
