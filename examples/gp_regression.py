"""Gaussian-process regression on scikit-learn's diabetes data: the kernel's hyperparameters
fitted by scipy.optimize.minimize(jac=True) on matgrad's value and gradient of the negative
log marginal likelihood, checked against scikit-learn's GaussianProcessRegressor.

The model: y ~ N(0, K), K = s^2 exp(-|x_i - x_j|^2 / (2 l^2)) + n^2 I over the standardised
data (442 patients, 10 features), with theta = (log l, log s, log n) and

    NLML(theta) = 1/2 y^T K^-1 y + 1/2 log det K + N/2 log(2 pi)

(cholesky, solve and logdet in matgrad; its gradient is one reverse sweep). scikit-learn's
regressor with the same kernel, ConstantKernel * RBF + WhiteKernel, maximises the same
likelihood with L-BFGS-B and its own analytic gradient; both optima must give the same
likelihood to 1e-6 relative. Needs the train extra (scikit-learn; SciPy comes with it).

Run: python examples/gp_regression.py [--n 442]
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Sequence

import numpy as np

import matgrad as mg


def nlml(theta: mg.Tensor, D: np.ndarray, y: np.ndarray) -> mg.Tensor:
    """The negative log marginal likelihood at theta = (log l, log s, log n); D holds the
    squared distances |x_i - x_j|^2 (data, not differentiated)."""
    ell, sf, sn = mg.exp(theta[0]), mg.exp(theta[1]), mg.exp(theta[2])
    K = sf**2 * mg.exp(D * (-0.5 / ell**2)) + sn**2 * np.eye(len(y))
    L = mg.cholesky(K)  # K = L L^T; log det K = 2 sum(log diag L)
    alpha = mg.solve(K, y)
    logdet = 2.0 * mg.sum(mg.log(mg.diag(L)))
    return 0.5 * mg.dot(y, alpha) + 0.5 * logdet + 0.5 * len(y) * math.log(2 * math.pi)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=442, help="patients used (default: all 442)")
    args = ap.parse_args(argv)
    try:
        from scipy.optimize import minimize  # type: ignore[import-untyped]  # (SciPy ships no stubs)
        from sklearn.datasets import load_diabetes  # type: ignore[import-untyped]
        from sklearn.gaussian_process import GaussianProcessRegressor  # type: ignore[import-untyped]
        from sklearn.gaussian_process.kernels import (  # type: ignore[import-untyped]
            RBF,
            ConstantKernel,
            WhiteKernel,
        )
    except ImportError:
        print('gp_regression needs scikit-learn and SciPy: pip install ".[train]"')
        return 0

    X, y = load_diabetes(return_X_y=True)
    X, y = X[: args.n], y[: args.n]
    X = (X - X.mean(0)) / X.std(0)
    y = (y - y.mean()) / y.std()
    D = np.sum((X[:, None, :] - X[None, :, :]) ** 2, axis=-1)
    theta0 = np.log([1.0, 1.0, 1.0])

    value_and_grad = mg.value_and_grad(nlml)
    mg.check_grad(lambda t: nlml(t, D[:12, :12], y[:12]), theta0)  # the gradient is right

    def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
        v, g = value_and_grad(theta, D, y)
        return float(v), g

    t0 = time.perf_counter()
    res = minimize(objective, theta0, jac=True, method="L-BFGS-B", bounds=[(-5.0, 5.0)] * 3)
    t_mg = time.perf_counter() - t0
    ell, sf, sn = np.exp(res.x)

    kernel = ConstantKernel(1.0, (np.exp(-10), np.exp(10))) * RBF(1.0, (np.exp(-5), np.exp(5))) + WhiteKernel(
        1.0, (np.exp(-10), np.exp(10))
    )
    t0 = time.perf_counter()
    gpr = GaussianProcessRegressor(kernel=kernel, alpha=0.0, optimizer="fmin_l_bfgs_b").fit(X, y)
    t_sk = time.perf_counter() - t0
    sk_nlml = -gpr.log_marginal_likelihood_value_

    print(f"diabetes: {len(y)} patients, {X.shape[1]} features (standardised)")
    print(f"matgrad + scipy L-BFGS-B: l = {ell:.4f}, s = {sf:.4f}, noise = {sn:.4f}")
    print(f"  NLML {res.fun:.10f} after {res.nfev} evaluations, {t_mg * 1e3:.1f} ms")
    print(f"scikit-learn GaussianProcessRegressor: {gpr.kernel_}")
    print(f"  NLML {sk_nlml:.10f}, {t_sk * 1e3:.1f} ms")
    rel = abs(res.fun - sk_nlml) / abs(sk_nlml)
    print(f"relative difference of the optima's NLML: {rel:.2e} (tolerance 1e-6)")
    # and matgrad's NLML at scikit-learn's optimum is scikit-learn's value
    p = gpr.kernel_.get_params()
    theta_sk = np.log(
        [p["k1__k2__length_scale"], math.sqrt(p["k1__k1__constant_value"]), math.sqrt(p["k2__noise_level"])]
    )
    at_sk = float(nlml(mg.tensor(theta_sk), D, y))
    print(f"matgrad's NLML at scikit-learn's optimum: {at_sk:.10f}")
    ok = rel <= 1e-6 and abs(at_sk - sk_nlml) <= 1e-8 * abs(sk_nlml) and res.success
    print("the same likelihood at the optimum" if ok else "MISMATCH")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
