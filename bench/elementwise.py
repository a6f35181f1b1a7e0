#!/usr/bin/env python3
"""Elementwise throughput: matgrad's unary kernels against NumPy and against matgrad's own
scalar kernels (Eigen and libm, what runs without vectorised math), on 10^5-element arrays.

1 thread (pinned to one core), float64 and float32, NumPy array in, new array out on every side:

  numpy             np.sin(x), ...; sigmoid as 1 / (1 + np.exp(-x)), softplus as np.logaddexp(0, x)
  matgrad           mg.sin(x).numpy(), ... (the kernels in use: libmvec on x86-64 with glibc)
  matgrad scalar    the same with matgrad._core._vector_math("none"): Eigen's and libm's kernels

Arguments: sin, cos, tan, tanh, sigmoid, softplus uniform in [-10, 10]; exp in [-50, 50];
log and sqrt in [1e-3, 1e3]. Every result is checked against NumPy first (rtol 1e-6 float32,
1e-13 float64). Printed per element in ns (median of 7 repeats), with "x numpy" (lower is
faster) and "speed-up" (matgrad scalar / matgrad).

Targets (docs/benchmarks.md): sin, cos, tan and tanh at least 3x faster than matgrad's scalar
kernels; those and exp, log, sigmoid, softplus at least as fast as NumPy (x numpy <= 1).

Run:  python bench/elementwise.py [--n 100000] [--functions sin,cos]
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C

FUNCTIONS = ("sin", "cos", "tan", "tanh", "exp", "log", "sigmoid", "softplus", "sqrt")
VECTOR = ("sin", "cos", "tan", "tanh")  # the 3x target
AS_FAST_AS_NUMPY = ("sin", "cos", "tan", "tanh", "exp", "log", "sigmoid", "softplus")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=100_000, help="elements per array (default 10^5)")
    ap.add_argument("--functions", default=",".join(FUNCTIONS), help="comma list of " + ", ".join(FUNCTIONS))
    ap.add_argument("--min-time", type=float, default=0.2)
    args = ap.parse_args()
    names = [f for f in args.functions.split(",") if f]
    for f in names:
        if f not in FUNCTIONS:
            ap.error(f"unknown function {f!r}; choose from {', '.join(FUNCTIONS)}")

    cpus = C.pin_threads(1)
    import numpy as np

    import matgrad as mg
    from matgrad import _core

    ref = {
        "sigmoid": lambda x: 1.0 / (1.0 + np.exp(-x)),
        "softplus": lambda x: np.logaddexp(x.dtype.type(0), x),
    }
    lo_hi = {"exp": (-50, 50), "log": (1e-3, 1e3), "sqrt": (1e-3, 1e3)}
    print(f"bench/elementwise.py  n={args.n}  cpu: {C.cpu_model()}  pinned to {cpus}")
    print(f"numpy {np.__version__}, matgrad {mg.__version__}, vector math: {_core._vector_math()}")
    print(
        f"{'function':9} {'dtype':8} {'numpy ns':>9} {'mg ns':>8} {'scalar ns':>10} {'x numpy':>8} {'speed-up':>9}"
    )
    rng = np.random.default_rng(0)
    misses = []
    for dtype in (np.float64, np.float32):
        for name in names:
            lo, hi = lo_hi.get(name, (-10, 10))
            x = rng.uniform(lo, hi, args.n).astype(dtype)
            np_f = ref.get(name, getattr(np, name, None))
            mg_f = getattr(mg, name)
            want = np_f(x)
            got = mg_f(x).numpy()
            rtol = 1e-6 if dtype == np.float32 else 1e-13
            np.testing.assert_allclose(got, want, rtol=rtol, atol=0, err_msg=name)
            t_np = C.measure(lambda: np_f(x), args.min_time)["median_us"]
            t_mg = C.measure(lambda: mg_f(x).numpy(), args.min_time)["median_us"]
            backend = _core._vector_math()
            _core._vector_math("none")
            try:
                np.testing.assert_allclose(mg_f(x).numpy(), want, rtol=rtol, atol=0, err_msg=name)
                t_sc = C.measure(lambda: mg_f(x).numpy(), args.min_time)["median_us"]
            finally:
                _core._vector_math("best")
            assert _core._vector_math() == backend
            per = 1e3 / args.n
            ratio, speedup = t_mg / t_np, t_sc / t_mg
            print(
                f"{name:9} {np.dtype(dtype).name:8} {t_np * per:9.3f} {t_mg * per:8.3f} {t_sc * per:10.3f} "
                f"{ratio:8.2f} {speedup:9.2f}"
            )
            if name in VECTOR and speedup < 3:
                misses.append(
                    f"{name} {np.dtype(dtype).name}: {speedup:.2f}x the scalar kernels (target >= 3x)"
                )
            if name in AS_FAST_AS_NUMPY and ratio > 1:
                misses.append(f"{name} {np.dtype(dtype).name}: {ratio:.2f}x numpy's time (target <= 1)")
    print("targets: " + ("all met" if not misses else "MISS " + "; ".join(misses)))


if __name__ == "__main__":
    main()
