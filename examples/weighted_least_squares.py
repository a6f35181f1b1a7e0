"""Weighted least squares, the lecture's quadratic form: L(s) = (x - A s)^T W (x - A s).

The gradients matgrad computes, against the closed forms (r = x - A s, W symmetric here):

    dL/ds = -A^T (W + W^T) r = -2 A^T W r
    dL/dA = -(W + W^T) r s^T
    dL/dW = r r^T
    d2L/ds2 = A^T (W + W^T) A = 2 A^T W A

and the minimiser s* = (A^T W A)^-1 A^T W x, reached from any start by one Newton step
s - H^-1 g with matgrad's gradient and Hessian.

Run: python examples/weighted_least_squares.py [--m 50] [--n 4] [--seed 0]
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import numpy as np

import matgrad as mg


def loss(s: mg.Tensor, A: mg.Tensor, W: mg.Tensor, x: mg.Tensor) -> mg.Tensor:
    """(x - A s)^T W (x - A s) as matgrad records it: one quad_form node."""
    return mg.quad_form(x - A @ s, W)


def rel_err(got: np.ndarray, want: np.ndarray) -> float:
    return float(np.max(np.abs(got - want)) / max(1e-300, float(np.max(np.abs(want)))))


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--m", type=int, default=50, help="observations (rows of A)")
    p.add_argument("--n", type=int, default=4, help="unknowns (columns of A)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if not args.m > args.n >= 1:
        p.error(f"need more observations than unknowns (--m > --n >= 1), got m={args.m}, n={args.n}")
    rng = np.random.default_rng(args.seed)
    A = rng.standard_normal((args.m, args.n))
    s_true = rng.standard_normal(args.n)
    sigma = rng.uniform(0.1, 1.0, args.m)  # noise level per observation
    x = A @ s_true + sigma * rng.standard_normal(args.m)
    W = np.diag(1.0 / sigma**2)  # weights: inverse noise variances
    s0 = rng.standard_normal(args.n)  # any start

    # value and all three gradients in one reverse sweep
    value, (g_s, g_A, g_W) = mg.value_and_grad(loss, argnums=(0, 1, 2))(s0, A, W, x)
    r = x - A @ s0
    checks = {
        "dL/ds = -2 A^T W r": rel_err(g_s, -2 * A.T @ W @ r),
        "dL/dA = -2 W r s^T": rel_err(g_A, -2 * np.outer(W @ r, s0)),
        "dL/dW = r r^T": rel_err(g_W, np.outer(r, r)),
    }
    # the Hessian in s, and one Newton step to the minimiser
    H = mg.hessian(loss)(s0, A, W, x)
    checks["d2L/ds2 = 2 A^T W A"] = rel_err(H, 2 * A.T @ W @ A)
    s_newton = s0 - np.linalg.solve(H, g_s)
    s_star = np.linalg.solve(A.T @ W @ A, A.T @ W @ x)
    checks["one Newton step = (A^T W A)^-1 A^T W x"] = rel_err(s_newton, s_star)
    # at s*, dL/ds vanishes; dL/dA = -2 W r s^T does not
    _, (g_s_star, g_A_star) = mg.value_and_grad(loss, argnums=(0, 1))(s_star, A, W, x)
    r_star = x - A @ s_star
    checks["dL/dA at s* = -2 W r s*^T"] = rel_err(g_A_star, -2 * np.outer(W @ r_star, s_star))
    grad_at_min = float(np.max(np.abs(g_s_star)) / np.max(np.abs(g_s)))

    print(f"weighted least squares: A {A.shape}, W diagonal {W.shape}, L(s0) = {float(value):.6g}")
    for name, err in checks.items():
        print(f"  {name:<42} relative error {err:.1e}")
    print(f"  |dL/ds| at s*, relative to at s0           {grad_at_min:.1e}")
    print(f"  s* = {np.array2string(s_star, precision=4)}  (true s = {np.array2string(s_true, precision=4)})")
    ok = all(err < 1e-10 for err in checks.values()) and grad_at_min < 1e-10
    print("all match the closed forms" if ok else "MISMATCH")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
