"""Matrix functions: matgrad's forward against NumPy/SciPy, and value-and-gradient against the
forward, at n = 64 and 256 (median of repeated runs, one process, side by side).

    python bench/matfun.py [--sizes 64 256] [--repeat 7] [--json F]

Targets: forward within 1.3x of NumPy/SciPy; value and gradient within 4x of the forward.
kron at n is an (8, 8) by an (n/8, n/8) matrix, an (n, n) result.
matgrad's decompositions call the LAPACK NumPy loaded (docs/api/matfun.md); the column "on
Eigen" times the same forward on Eigen's solvers, the fallback without one. One thread for
everything (OMP_NUM_THREADS / OPENBLAS_NUM_THREADS, unless set), as OpenBLAS reads it at load.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
from typing import Any, Callable  # noqa: E402

import numpy as np  # noqa: E402
import scipy.linalg  # noqa: E402

import matgrad as mg  # noqa: E402


def median_us(fn: Callable[[], Any], repeat: int) -> float:
    fn()  # warm up
    ts = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return float(np.median(ts)) * 1e6


def inputs(n: int) -> dict[str, tuple[np.ndarray, ...]]:
    """Each kind's arguments: one matrix, or kron's pair (8 x 8 and n/8 x n/8, an n x n result)."""
    rng = np.random.default_rng(n)
    a = rng.standard_normal((n, n)) / np.sqrt(n)
    return {
        "sym": (a + a.T,),
        "gen": (a,),
        "pos": (scipy.linalg.expm(0.5 * a),),  # eigenvalues off the negative axis
        "tall": (rng.standard_normal((n, n // 2)),),
        "pair": (rng.standard_normal((8, 8)), rng.standard_normal((n // 8, n // 8))),
    }


# op, input kind, matgrad forward, reference, a scalar loss for value_and_grad (of every argument)
OPS: list[tuple[str, str, Callable, Callable, Callable]] = [
    ("eigh", "sym", mg.eigh, np.linalg.eigh, lambda x: mg.sum(mg.eigh(x)[1][0] ** 2) + mg.sum(mg.eigh(x)[0])),
    ("eigvalsh", "sym", mg.eigvalsh, np.linalg.eigvalsh, lambda x: mg.sum(mg.eigvalsh(x) ** 2)),
    (
        "svd",
        "gen",
        mg.svd,
        lambda x: np.linalg.svd(x, full_matrices=False),
        lambda x: mg.sum(mg.svd(x)[0][0] ** 2) + mg.sum(mg.svd(x)[1]),
    ),
    (
        "svdvals",
        "gen",
        mg.svdvals,
        lambda x: np.linalg.svd(x, compute_uv=False),
        lambda x: mg.sum(mg.svdvals(x)),
    ),
    ("pinv", "tall", mg.pinv, np.linalg.pinv, lambda x: mg.sum(mg.pinv(x) ** 2)),
    ("expm", "gen", mg.expm, scipy.linalg.expm, lambda x: mg.trace(mg.expm(x))),
    ("logm", "pos", mg.logm, scipy.linalg.logm, lambda x: mg.trace(mg.logm(x))),
    ("sqrtm", "pos", mg.sqrtm, scipy.linalg.sqrtm, lambda x: mg.sum(mg.sqrtm(x))),
    (
        "matrix_power 7",
        "gen",
        lambda x: mg.matrix_power(x, 7),
        lambda x: np.linalg.matrix_power(x, 7),
        lambda x: mg.sum(mg.matrix_power(x, 7) ** 2),
    ),
    (
        "matrix_power -3",
        "pos",
        lambda x: mg.matrix_power(x, -3),
        lambda x: np.linalg.matrix_power(x, -3),
        lambda x: mg.sum(mg.matrix_power(x, -3) ** 2),
    ),
    ("kron", "pair", mg.kron, np.kron, lambda a, b: mg.sum(mg.kron(a, b))),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[64, 256])
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args()
    rows = []
    print(f"matgrad's LAPACK: {mg._core._linalg_backend()}")
    print(
        "| op | n | matgrad forward µs | NumPy/SciPy µs | ratio (1.3x) | on Eigen µs "
        "| value_and_grad µs | / forward (4x) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for n in args.sizes:
        xs = inputs(n)
        for name, kind, fwd, ref, loss in OPS:
            x = xs[kind]
            t_mg = median_us(lambda: fwd(*x), args.repeat)
            t_ref = median_us(lambda: ref(*x), args.repeat)
            mg._core._linalg_backend(False)
            t_eigen = median_us(lambda: fwd(*x), args.repeat)
            mg._core._linalg_backend(True)
            vg = mg.value_and_grad(loss, argnums=tuple(range(len(x))))
            t_vg = median_us(lambda: vg(*x), args.repeat)
            rows.append(
                {"op": name, "n": n, "mg": t_mg, "ref": t_ref, "eigen": t_eigen, "value_and_grad": t_vg}
            )
            print(
                f"| {name} | {n} | {t_mg:.0f} | {t_ref:.0f} | {t_mg / t_ref:.2f} | {t_eigen:.0f} | {t_vg:.0f} "
                f"| {t_vg / t_mg:.2f} |"
            )
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=1)


if __name__ == "__main__":
    main()
