"""Gradients of matrix functions where they are hard: matgrad against PyTorch and JAX.

For each case (a function of a matrix at a point where eigenvalues or singular values repeat,
or the matrix is defective or rank-deficient, but the function is differentiable), computes
the gradient with each installed library and compares it with the closed form. Prints a
Markdown table: the largest error against the closed form, or NaN/inf, or the error raised.

    python bench/matfun_gradients.py            # the table (PyTorch and JAX if installed)
    python bench/matfun_gradients.py --json F   # also the raw results
"""

from __future__ import annotations

import argparse
import json
from typing import Any, Callable

import numpy as np
import scipy.linalg

import matgrad as mg

try:
    import torch
except ImportError:  # pragma: no cover - optional peer
    torch = None
try:
    import jax

    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    import jax.scipy.linalg as jsl
except ImportError:  # pragma: no cover - optional peer
    jax = None


def rotated(values: list[float], seed: int = 0) -> np.ndarray:
    q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((len(values), len(values))))
    return (q * np.asarray(values)) @ q.T


JORDAN = np.array([[2.0, 1.0, 0.0], [0.0, 2.0, 1.0], [0.0, 0.0, 2.0]])
REPEATED = rotated([1.0, 1.0, 1.0, 3.0])
RANK1 = np.outer([1.0, 2.0, 0.5, 1.0], [1.0, -1.0, 2.0])
W3 = np.cos(np.arange(9.0)).reshape(3, 3)


def fd(f: Callable[[np.ndarray], float], x: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    g = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        e = np.zeros_like(x)
        e[i] = eps
        g[i] = (f(x + e) - f(x - e)) / (2 * eps)
    return g


def _sqrtm_real(x: np.ndarray) -> np.ndarray:
    return np.real(scipy.linalg.sqrtm(x))


def _logm_real(x: np.ndarray) -> np.ndarray:
    return np.real(scipy.linalg.logm(x))


def _torch_eigh_fn(f: Callable) -> Callable:
    """A matrix function of a symmetric matrix the way PyTorch users write it (PyTorch has no
    sqrtm or logm): V f(w) V^T from torch.linalg.eigh."""
    return lambda a: (lambda w, v: (v * f(w)) @ v.T)(*torch.linalg.eigh(a))


def _jax_eigh_fn(f: Callable) -> Callable:
    return lambda a: (lambda w, v: (v * f(w)) @ v.T)(*jnp.linalg.eigh(a))


I3 = np.eye(3)

# name, point, the closed-form (or high-accuracy) gradient, and the function in each library
CASES: list[dict[str, Any]] = [
    {
        "name": "sum(W o sqrtm(A)) at A = I (symmetric, eigenvalue 1 three times)",
        "x": I3,
        "want": W3 / 2,  # L_sqrt(I, E) = E / 2
        "mg": lambda a: mg.sum(mg.sqrtm(a) * W3),
        "torch": lambda a: (_torch_eigh_fn(torch.sqrt)(a) * torch.tensor(W3)).sum(),
        "jax": lambda a: (_jax_eigh_fn(jnp.sqrt)(a) * W3).sum(),
    },
    {
        "name": "sum(W o logm(A)) at A = I",
        "x": I3,
        "want": W3,  # L_log(I, E) = E
        "mg": lambda a: mg.sum(mg.logm(a) * W3),
        "torch": lambda a: (_torch_eigh_fn(torch.log)(a) * torch.tensor(W3)).sum(),
        "jax": lambda a: (_jax_eigh_fn(jnp.log)(a) * W3).sum(),
    },
    {
        "name": "sum(W o sqrtm(A)), A a 3x3 Jordan block (defective)",
        "x": JORDAN,
        "want": fd(lambda a: float(np.sum(W3 * _sqrtm_real(a))), JORDAN),
        "mg": lambda a: mg.sum(mg.sqrtm(a) * W3),
        "torch": None,  # no matrix square root
        "jax": lambda a: jnp.real(jsl.sqrtm(a) * W3).sum(),
    },
    {
        "name": "sum(W o logm(A)), A a 3x3 Jordan block",
        "x": JORDAN,
        "want": fd(lambda a: float(np.sum(W3 * _logm_real(a))), JORDAN),
        "mg": lambda a: mg.sum(mg.logm(a) * W3),
        "torch": None,  # no matrix logarithm
        "jax": None,  # no matrix logarithm
    },
    {
        "name": "tr(logm(A)), A a 3x3 Jordan block (closed form A^-T)",
        "x": JORDAN,
        "want": np.linalg.inv(JORDAN).T,
        "mg": lambda a: mg.trace(mg.logm(a)),
        "torch": None,
        "jax": None,
    },
    {
        "name": "sum(W o expm(A)), A a 3x3 Jordan block",
        "x": JORDAN,
        "want": fd(lambda a: float(np.sum(W3 * scipy.linalg.expm(a))), JORDAN),
        "mg": lambda a: mg.sum(mg.expm(a) * W3),
        "torch": lambda a: (torch.linalg.matrix_exp(a) * torch.tensor(W3)).sum(),
        "jax": lambda a: (jsl.expm(a) * W3).sum(),
    },
    {
        "name": "sum(eigvalsh(A)^2), eigenvalue 1 three times",
        "x": REPEATED,
        "want": 2 * REPEATED,
        "mg": lambda a: mg.sum(mg.eigvalsh(a) ** 2),
        "torch": lambda a: (torch.linalg.eigvalsh(a) ** 2).sum(),
        "jax": lambda a: (jnp.linalg.eigvalsh(a) ** 2).sum(),
    },
    {
        "name": "nuclear norm sum(svdvals(A)) at A = I",
        "x": I3,
        "want": I3,
        "mg": lambda a: mg.sum(mg.svdvals(a)),
        "torch": lambda a: torch.linalg.svdvals(a).sum(),
        "jax": lambda a: jnp.linalg.svd(a, compute_uv=False).sum(),
    },
    {
        "name": "sum(svd(A)[1]^2), A rank 1, 4x3",
        "x": RANK1,
        "want": 2 * RANK1,
        "mg": lambda a: mg.sum(mg.svd(a)[1] ** 2),
        "torch": lambda a: (torch.linalg.svd(a, full_matrices=False)[1] ** 2).sum(),
        "jax": lambda a: (jnp.linalg.svd(a, full_matrices=False)[1] ** 2).sum(),
    },
    {
        "name": "sum(W o V diag(w) V^T) at A = I (a 0/0 the VJP cannot resolve)",
        "x": I3,
        "want": (W3 + W3.T) / 2,
        "mg": lambda a: mg.sum((lambda w, v: (v * w) @ v.T)(*mg.eigh(a)) * W3),
        "torch": lambda a: (_torch_eigh_fn(lambda w: w)(a) * torch.tensor(W3)).sum(),
        "jax": lambda a: (_jax_eigh_fn(lambda w: w)(a) * W3).sum(),
    },
]


def grad_with(lib: str, f: Callable | None, x: np.ndarray) -> np.ndarray | str:
    if f is None:
        return "not available"
    try:
        if lib == "mg":
            return np.asarray(mg.grad(f)(x))
        if lib == "torch":
            t = torch.tensor(x, dtype=torch.float64, requires_grad=True)
            f(t).backward()
            return t.grad.numpy()
        return np.asarray(jax.grad(f)(jnp.asarray(x)))
    except Exception as e:
        return f"raises {type(e).__name__}"


def describe(g: np.ndarray | str, want: np.ndarray) -> str:
    if isinstance(g, str):
        return g
    if not np.all(np.isfinite(g)):
        bad = "NaN" if np.any(np.isnan(g)) else "inf"
        return f"**{bad}**"
    err = float(np.max(np.abs(g - want)) / max(1.0, float(np.max(np.abs(want)))))
    return f"error {err:.1e}" if err > 1e-6 else f"right ({err:.0e})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", help="write the raw results here")
    args = ap.parse_args()
    libs = ["mg"] + (["torch"] if torch is not None else []) + (["jax"] if jax is not None else [])
    heads = {"mg": f"matgrad {mg.__version__}"}
    if torch is not None:
        heads["torch"] = f"PyTorch {torch.__version__}"
    if jax is not None:
        heads["jax"] = f"JAX {jax.__version__}"
    print("| gradient of | " + " | ".join(heads[k] for k in libs) + " |")
    print("|---|" + "---|" * len(libs))
    raw = []
    for c in CASES:
        row = {k: describe(grad_with(k, c[k], c["x"]), c["want"]) for k in libs}
        raw.append({"case": c["name"], **row})
        print(f"| {c['name']} | " + " | ".join(row[k] for k in libs) + " |")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(raw, fh, indent=1)


if __name__ == "__main__":
    main()
