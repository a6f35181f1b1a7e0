#!/usr/bin/env python3
"""matgrad on matrix workloads (docs/benchmarks.md W4, W5, W6) against the NumPy closed form, PyTorch, JAX and autograd.

All float64, 1 thread (pinned to one core); data and closed forms as in docs/benchmarks.md:

  W4  value and gradient w.r.t. X of g(X) = log|det X| + trace(inv X) + a^T inv(X) b,
      n = 64 and 256, X = n I + N(0, 1) (well conditioned), a, b ~ N(0, 1);
      closed form X^-T - (X^-2)^T - X^-T a b^T X^-T (checked by a finite difference first)
  W5  full Jacobian of K = B^T B w.r.t. B, B 16 x 16 ~ N(0, 1): a (16, 16, 16, 16) array
  W6  full Hessian of h(x) = sum(sin x) + 0.5 x^T A x + log(sum(exp x)), x in R^100 ~ N(0, 1),
      A 100 x 100 ~ N(0, 1) (not symmetric): 0.5 (A + A^T) + diag(s - sin x) - s s^T, s = softmax(x)

Systems:
  numpy (closed form)              the hand-written derivative (the limit)
  matgrad value_and_grad           W4: mg.value_and_grad(g)(X, a, b), g written with mg.logdet(X) +
                                   mg.trace(Xi) + a @ Xi @ b, Xi = mg.inv(X): NumPy value and gradient out
  matgrad eager (backward)         W4: X = mg.tensor(X, requires_grad=True) (a fresh leaf each call),
                                   g(X, a, b).backward(), X.grad.numpy()
  matgrad jacobian                 W5: mg.jacobian(lambda B: B.T @ B)(B): NumPy (16, 16, 16, 16) out
  matgrad hessian, mg.logsumexp    W6: mg.hessian(h)(x, A), h written with mg.logsumexp(x): NumPy out
  matgrad hessian, log(sum(exp))   W6: the same with mg.log(mg.sum(mg.exp(x))), the peers' formula
  torch eager                      W4: torch.autograd.grad on a leaf created once; W5, W6:
                                   torch.autograd.functional.jacobian / hessian (as the peers' figures)
  torch.func                       torch.func.grad_and_value / jacrev / hessian
  jax eager, jax jit               jax.value_and_grad / jacrev / hessian, without and with jax.jit
  autograd                         HIPS autograd's value_and_grad / jacobian / hessian (NumPy traced)

Every answer is checked against the float64 closed form first (W4: rtol 1e-8, atol 1e-10 x max|ref|;
W5: 1e-12, 1e-14; W6: 1e-10, 1e-12). Ratios are against the numpy closed form ("x numpy") and
torch.func ("x tfunc") of the same run. The aims, printed as PASS/MISS (a MISS does not
fail the run, a wrong answer does): W4 matgrad within 1.3x of the numpy closed form at n = 256;
W5 and W6 matgrad faster than torch.func (jacrev, hessian).

Run:  env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/matrix.py [--workloads W4,W6]
      [--systems peers]   (--systems: a subset of the systems; the numpy closed form always runs)
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import types

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C

WORKLOADS = ("W4", "W5", "W6")
MG_FUNC = "matgrad value_and_grad"
MG_EAGER = "matgrad eager (backward)"
MG_JAC = "matgrad jacobian"
MG_HESS = "matgrad hessian, mg.logsumexp"
MG_HESS_LSE = "matgrad hessian, log(sum(exp))"
MG_COMPILED = "matgrad compiled"
MATGRAD = (MG_FUNC, MG_EAGER, MG_JAC, MG_HESS, MG_HESS_LSE, MG_COMPILED)
TORCH = "torch eager"
TFUNC = "torch.func"
JAX = "jax eager"
JAX_JIT = "jax jit"
AUTOGRAD = "autograd"
SYSTEM_KEYS = {
    "numpy": (C.REF,),
    "matgrad": MATGRAD,
    "torch-eager": (TORCH,),
    "torch-func": (TFUNC,),
    "jax-eager": (JAX,),
    "jax-jit": (JAX_JIT,),
    "torch": (TORCH, TFUNC),
    "jax": (JAX, JAX_JIT),
    "autograd": (AUTOGRAD,),
    "peers": (TORCH, TFUNC, JAX, JAX_JIT, AUTOGRAD),
}
# the matgrad functions each workload needs (checked up front, so a module without them fails clearly)
MG_NEEDS = {
    "W4": ("value_and_grad", "tensor", "inv", "logdet", "trace"),
    "W5": ("jacobian",),
    "W6": ("hessian", "sum", "sin", "exp", "log", "logsumexp"),
}
W4_AIM_N, W4_AIM = 256, 1.3
# docs/benchmarks.md's peer figures (another run, 2026-11-26): median µs (numpy closed form, torch.func)
ANCHOR_US = {
    ("W4", "n=64"): (86.8, 382.0),
    ("W4", "n=256"): (2766.0, 5236.0),
    ("W5", "B 16x16"): (21.5, 403.0),
    ("W6", "n=100"): (22.7, 1967.0),
}


# ------------------------------------------------------------------------------------------
# worker
# ------------------------------------------------------------------------------------------
def worker(args):
    w = C.Worker(args)  # pins threads before numpy is imported
    np = w.np
    mg = w.import_matgrad()
    torch = w.peer("torch")
    jax = w.peer("jax")
    if jax is not None:
        jax.config.update("jax_enable_x64", True)
        import jax.numpy as jnp

        try:
            import importlib.metadata as md

            w.versions["jaxlib"] = md.version("jaxlib")
        except Exception:
            pass
    autograd = w.peer("autograd")
    only = [x for x in WORKLOADS if x in args.workloads]

    def want(name):
        return w.systems_filter is None or name in w.systems_filter

    if any(want(s) for s in MATGRAD):
        missing = sorted({n for wid in only for n in MG_NEEDS[wid] if not hasattr(mg, n)})
        if missing:
            raise SystemExit(
                f"FAILED: the installed matgrad ({w.extra_meta.get('matgrad_module')}) has no "
                f"{', '.join('mg.' + n for n in missing)}: rebuild it, or leave matgrad out "
                "(--systems peers)"
            )

    # ---- namespaces for the peers' generic implementations (as the peers' figures) ----------
    def ns(mod, inv, slogdet, trace):
        return types.SimpleNamespace(
            sin=mod.sin,
            exp=mod.exp,
            log=mod.log,
            sum=mod.sum,
            inv=inv,
            logabsdet=lambda X: slogdet(X)[1],
            trace=trace,
        )

    T = ns(torch, torch.linalg.inv, torch.linalg.slogdet, torch.trace) if torch is not None else None
    J = ns(jnp, jnp.linalg.inv, jnp.linalg.slogdet, jnp.trace) if jax is not None else None
    if autograd is not None:
        import autograd.numpy as anp

        AG = ns(anp, anp.linalg.inv, anp.linalg.slogdet, anp.trace)

    def w4_f(m):
        def f(X, a, b):
            Xi = m.inv(X)
            return m.logabsdet(X) + m.trace(Xi) + a @ Xi @ b

        return f

    def w5_f(m):
        def f(B):
            return B.T @ B

        return f

    def w6_f(m):
        def f(x, A):
            return m.sum(m.sin(x)) + 0.5 * (x @ (A @ x)) + m.log(m.sum(m.exp(x)))

        return f

    # ---- matgrad's (mg.* looked up at call time) ------------------------------------------
    def w4_mg(X, a, b):
        Xi = mg.inv(X)
        return mg.logdet(X) + mg.trace(Xi) + a @ Xi @ b

    def w6_mg(x, A):
        return mg.sum(mg.sin(x)) + 0.5 * (x @ (A @ x)) + mg.logsumexp(x)

    w6_mg_lse = w6_f(mg)  # mg.log(mg.sum(mg.exp(x))), exactly the peers' formula

    # ---- closed forms (the reference) -----------------------------------------------------
    def w4_np(X, a, b):
        Xi = np.linalg.inv(X)
        val = np.linalg.slogdet(X)[1] + np.trace(Xi) + a @ Xi @ b
        XiT = Xi.T
        grad = XiT - (Xi @ Xi).T - np.outer(XiT @ a, Xi @ b)  # X^-T - (X^-2)^T - X^-T a b^T X^-T
        return val, grad

    def w5_np(B):
        m_, n_ = B.shape
        Jac = np.zeros((n_, n_, m_, n_), dtype=B.dtype)  # [p, q, i, j]
        idx = np.arange(n_)
        BT = B.T
        Jac[idx, :, :, idx] += BT  # delta_jp B_iq
        Jac[:, idx, :, idx] += BT  # delta_jq B_ip
        return Jac

    def w5_np_einsum(B):  # independent check of w5_np (not timed)
        eye = np.eye(B.shape[1])
        return np.einsum("jp,iq->pqij", eye, B) + np.einsum("jq,ip->pqij", eye, B)

    def w6_np(x, A):
        s = np.exp(x - np.max(x))
        s /= s.sum()
        H = 0.5 * (A + A.T) - np.outer(s, s)
        H[np.diag_indices_from(H)] += s - np.sin(x)
        return H

    # ---- peers ----------------------------------------------------------------------------
    def tt(a, requires_grad=False):
        t = torch.from_numpy(np.array(a, copy=True))
        if requires_grad:
            t.requires_grad_(True)
        return t

    def bur(x):
        return jax.block_until_ready(x)

    def rng_for(wid):  # data of a workload does not depend on which other workloads run
        return np.random.default_rng([20240601, int(wid[1:])])

    # ---- cases: one builder per case, so every closure has its own scope ----------------------
    def w4_case(n, X, a, b):
        ref = w4_np(X, a, b)
        sysd = {C.REF: lambda: w4_np(X, a, b)}
        if want(MG_FUNC):
            vg = mg.value_and_grad(w4_mg)
            sysd[MG_FUNC] = lambda: vg(X, a, b)
        if want(MG_COMPILED):
            cvg = mg.compile(w4_mg).value_and_grad
            sysd[MG_COMPILED] = w.first_call(f"W4 n={n} {MG_COMPILED}", lambda: cvg(X, a, b))
        if want(MG_EAGER):

            def mg_eager():
                Xt = mg.tensor(X, requires_grad=True)
                y = w4_mg(Xt, a, b)
                y.backward()
                return y.numpy(), Xt.grad.numpy()

            sysd[MG_EAGER] = mg_eager
        if torch is not None:
            ft = w4_f(T)
            p = tt(X, True)
            p_list = (p,)
            Xt_plain, at, bt = tt(X), tt(a), tt(b)

            def torch_eager():  # as the peers' figures were measured: a leaf created once
                y = ft(p, at, bt)
                g = torch.autograd.grad(y, p_list)
                return y.detach(), g[0]

            sysd[TORCH] = torch_eager
            gvt = torch.func.grad_and_value(ft, argnums=0)

            def torch_func():
                g, v = gvt(Xt_plain, at, bt)
                return v, g

            sysd[TFUNC] = torch_func
        if jax is not None:
            Xj, aj, bj = jnp.asarray(X), jnp.asarray(a), jnp.asarray(b)
            vgj = jax.value_and_grad(w4_f(J), argnums=0)
            vgj_jit = jax.jit(vgj)
            sysd[JAX] = lambda: bur(vgj(Xj, aj, bj))
            sysd[JAX_JIT] = w.first_call(f"W4 n={n} {JAX_JIT}", lambda: bur(vgj_jit(Xj, aj, bj)))
        if autograd is not None and want(AUTOGRAD):
            vga = autograd.value_and_grad(w4_f(AG), 0)

            def autograd_vg():  # NumPy in, NumPy out (its value is a NumPy scalar)
                v, g = vga(X, a, b)
                return np.asarray(v), g

            sysd[AUTOGRAD] = autograd_vg
        return C.Case(
            "W4",
            f"n={n}",
            "float64",
            sysd,
            ref,
            1e-8,
            1e-10,
            numpy_out=(MG_FUNC, MG_EAGER, MG_COMPILED, AUTOGRAD),
        )

    def w4_cases():
        rng = rng_for("W4")
        out = []
        for n in (64, 256):
            X = n * np.eye(n) + rng.standard_normal((n, n))
            a = rng.standard_normal(n)
            b = rng.standard_normal(n)
            # independent sanity check of the closed form: directional finite difference
            V = rng.standard_normal((n, n))
            V /= np.linalg.norm(V)
            hstep = 1e-2  # tiny relative to ||X|| ~ n^1.5; central difference error O(h^2)

            def g_val(Z):
                return np.linalg.slogdet(Z)[1] + np.trace(np.linalg.inv(Z)) + a @ np.linalg.inv(Z) @ b

            fd = (g_val(X + hstep * V) - g_val(X - hstep * V)) / (2 * hstep)
            if not np.isclose(fd, np.sum(w4_np(X, a, b)[1] * V), rtol=1e-4, atol=1e-9):
                raise AssertionError(f"W4 n={n}: closed form fails the finite-difference check")
            out.append(w4_case(n, X, a, b))
        return out

    def w5_cases():
        B = rng_for("W5").standard_normal((16, 16))
        ref = w5_np(B)
        np.testing.assert_allclose(ref, w5_np_einsum(B), rtol=0, atol=0)
        sysd = {C.REF: lambda: w5_np(B)}
        if want(MG_JAC):
            jac_mg = mg.jacobian(lambda B: B.T @ B)
            sysd[MG_JAC] = lambda: jac_mg(B)
        if want(MG_COMPILED):
            cjac = mg.compile(lambda B: B.T @ B).jacobian
            sysd[MG_COMPILED] = w.first_call(f"W5 {MG_COMPILED}", lambda: cjac(B))
        if torch is not None:
            f_t, Bt = w5_f(T), tt(B)
            jr_t = torch.func.jacrev(f_t)
            sysd[TORCH] = lambda: torch.autograd.functional.jacobian(f_t, Bt)
            sysd[TFUNC] = lambda: jr_t(Bt)
        if jax is not None:
            Bj = jnp.asarray(B)
            jr_j = jax.jacrev(w5_f(J))
            jr_jit = jax.jit(jr_j)
            sysd[JAX] = lambda: bur(jr_j(Bj))
            sysd[JAX_JIT] = w.first_call(f"W5 {JAX_JIT}", lambda: bur(jr_jit(Bj)))
        if autograd is not None and want(AUTOGRAD):
            jac_a = autograd.jacobian(w5_f(AG))
            sysd[AUTOGRAD] = lambda: jac_a(B)
        return [
            C.Case(
                "W5", "B 16x16", "float64", sysd, ref, 1e-12, 1e-14, numpy_out=(MG_JAC, MG_COMPILED, AUTOGRAD)
            )
        ]

    def w6_cases():
        rng = rng_for("W6")
        n = 100
        x = rng.standard_normal(n)
        Am = rng.standard_normal((n, n))
        ref = w6_np(x, Am)
        sysd = {C.REF: lambda: w6_np(x, Am)}
        if want(MG_HESS):
            h_mg = mg.hessian(w6_mg)
            sysd[MG_HESS] = lambda: h_mg(x, Am)
        if want(MG_HESS_LSE):
            h_mg_lse = mg.hessian(w6_mg_lse)
            sysd[MG_HESS_LSE] = lambda: h_mg_lse(x, Am)
        if want(MG_COMPILED):
            chess = mg.compile(w6_mg).hessian
            sysd[MG_COMPILED] = w.first_call(f"W6 {MG_COMPILED}", lambda: chess(x, Am))
        if torch is not None:
            f_t, xt, At = w6_f(T), tt(x), tt(Am)
            h_t = torch.func.hessian(f_t, argnums=0)
            sysd[TORCH] = lambda: torch.autograd.functional.hessian(lambda z: f_t(z, At), xt)
            sysd[TFUNC] = lambda: h_t(xt, At)
        if jax is not None:
            xj, Aj = jnp.asarray(x), jnp.asarray(Am)
            h_j = jax.hessian(w6_f(J), argnums=0)
            h_jit = jax.jit(h_j)
            sysd[JAX] = lambda: bur(h_j(xj, Aj))
            sysd[JAX_JIT] = w.first_call(f"W6 {JAX_JIT}", lambda: bur(h_jit(xj, Aj)))
        if autograd is not None and want(AUTOGRAD):
            h_a = autograd.hessian(w6_f(AG), 0)
            sysd[AUTOGRAD] = lambda: h_a(x, Am)
        return [
            C.Case(
                "W6",
                "n=100",
                "float64",
                sysd,
                ref,
                1e-10,
                1e-12,
                numpy_out=(MG_HESS, MG_HESS_LSE, MG_COMPILED),
            )
        ]

    builders = {"W4": w4_cases, "W5": w5_cases, "W6": w6_cases}
    cases = [c for wid in only for c in builders[wid]()]
    w.run(cases)
    w.finish()


# ------------------------------------------------------------------------------------------
# parent
# ------------------------------------------------------------------------------------------
def verdicts(results):
    """The aims, one entry per matgrad row that has an aim and a measured baseline."""
    out = []
    for r in results:
        if r["system"] not in MATGRAD:
            continue
        if r["workload"] == "W4" and r["variant"] == f"n={W4_AIM_N}" and r["ratios"].get("numpy") is not None:
            ratio = r["ratios"]["numpy"]
            out.append(
                {
                    "workload": "W4",
                    "variant": r["variant"],
                    "system": r["system"],
                    "against": C.REF,
                    "ratio": ratio,
                    "aim": f"<= {W4_AIM:.2f}x numpy closed form",
                    "pass": ratio <= W4_AIM,
                    "disturbed": r["disturbed"],
                }
            )
        elif r["workload"] in ("W5", "W6") and r["ratios"].get("tfunc") is not None:
            ratio = r["ratios"]["tfunc"]
            out.append(
                {
                    "workload": r["workload"],
                    "variant": r["variant"],
                    "system": r["system"],
                    "against": TFUNC,
                    "ratio": ratio,
                    "aim": f"faster than torch.func ({'jacrev' if r['workload'] == 'W5' else 'hessian'})",
                    "pass": ratio < 1.0,
                    "disturbed": r["disturbed"],
                }
            )
    return out


def parent(args, argv):
    C.warn_env()
    t0 = time.time()
    systems = None
    if args.systems:
        # the numpy closed form always runs: it is the reference every ratio and aim needs
        systems = list(dict.fromkeys([C.REF] + [s for k in args.systems for s in SYSTEM_KEYS[k]]))
    payload = C.run_worker(__file__, argv, threads=1, malloc=args.malloc, systems=systems)
    baselines = [("numpy", C.REF), ("tfunc", TFUNC)]
    results = C.add_ratios(payload["results"], baselines)
    lines = C.header_lines(
        "bench/matrix.py (W4 value and gradient, W5 Jacobian, W6 Hessian; NumPy in -> NumPy out)",
        args,
        [payload],
        t0,
    )
    print("\n".join(lines))
    print()
    print(C.format_table(results, baselines))
    print()

    def base_disturbed(r, base):
        return any(
            b["disturbed"]
            for b in results
            if b["system"] == base and all(b[k] == r[k] for k in ("workload", "variant"))
        )

    vd = verdicts(results)
    print("aims (median ratio from this run; lower is faster for matgrad; a MISS does not fail the run):")
    w4_64 = [
        r
        for r in results
        if r["workload"] == "W4"
        and r["variant"] != f"n={W4_AIM_N}"
        and r["system"] in MATGRAD
        and r["ratios"].get("numpy") is not None
    ]
    for r in w4_64:
        t = r["ratios"].get("tfunc")
        print(
            f"  W4 {r['variant']:<8} {r['system']:<31} {r['ratios']['numpy']:6.3f}x numpy"
            f"{'' if t is None else f', {t:6.3f}x torch.func'}   (aim is for n={W4_AIM_N})"
        )
    for v in vd:
        other = next(
            r
            for r in results
            if r["system"] == v["system"] and r["workload"] == v["workload"] and r["variant"] == v["variant"]
        )
        if v["against"] == C.REF:
            t = other["ratios"].get("tfunc")
            ratios = f"{v['ratio']:6.3f}x numpy{'' if t is None else f', {t:6.3f}x torch.func'}"
        else:
            ratios = f"{v['ratio']:6.3f}x torch.func, {other['ratios']['numpy']:6.3f}x numpy"
        print(
            f"  {v['workload']} {v['variant']:<8} {v['system']:<31} {ratios}   aim {v['aim']}: "
            f"{'PASS' if v['pass'] else 'MISS'}"
            f"{'  (! disturbed)' if v['disturbed'] or base_disturbed(v, v['against']) else ''}"
        )
    if not any(r["system"] in MATGRAD for r in results):
        print("  not evaluated: matgrad not measured")
    elif not any(v["against"] == TFUNC for v in vd) and any(r["workload"] in ("W5", "W6") for r in results):
        print("  W5/W6 not evaluated: torch.func not measured (torch not installed or not selected)")
    # sanity check of the peer on this machine: torch.func's cost relative to numpy, here and in
    # docs/benchmarks.md; if they differ a lot, the W5/W6 verdicts are flattered or hurt by the peer
    sane = []
    for (wid, var), (a_np, a_tf) in ANCHOR_US.items():
        m = {r["system"]: r["median_us"] for r in results if r["workload"] == wid and r["variant"] == var}
        if TFUNC in m and C.REF in m:
            sane.append(f"{wid} {var} {m[TFUNC] / m[C.REF]:.1f} (anchor {a_tf / a_np:.1f})")
    if sane:
        print(
            "  peer sanity, torch.func / numpy closed form here (docs/benchmarks.md anchor): "
            + "; ".join(sane)
        )
    if any(r["disturbed"] for r in results):
        print(
            f"'!' = other processes used >= {args.quiet_threshold:.2f} cores "
            "on our core during the timed repeats: treat with caution"
        )
    if args.json:
        C.write_json(
            args.json,
            {
                "meta": payload["meta"],
                "results": results,
                "aims": vd,
                "args": {k: v for k, v in vars(args).items() if not k.startswith("_")},
            },
        )


def _workloads(text):
    ws = [x.strip().upper() for x in text.split(",") if x.strip()]
    bad = [x for x in ws if x not in WORKLOADS]
    if bad or not ws:
        raise argparse.ArgumentTypeError(
            f"unknown workload(s) {', '.join(bad) or '(none)'}; choose from {', '.join(WORKLOADS)}"
        )
    return ws


def _systems(text):
    ks = [k.strip() for k in text.split(",") if k.strip()]
    bad = [k for k in ks if k not in SYSTEM_KEYS]
    if bad or not ks:
        raise argparse.ArgumentTypeError(
            f"unknown system(s) {', '.join(bad) or '(none)'}; choose from {', '.join(SYSTEM_KEYS)}"
        )
    return ks


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--workloads",
        type=_workloads,
        default=list(WORKLOADS),
        help="comma list of workloads: W4,W5,W6 (default all)",
    )
    ap.add_argument(
        "--systems",
        type=_systems,
        default=None,
        help="comma list of systems: "
        + ", ".join(SYSTEM_KEYS)
        + " (default all; the numpy closed form always runs, it is the reference). "
        "E.g. --systems peers leaves matgrad out",
    )
    C.run_script(ap, worker, parent)


if __name__ == "__main__":
    main()
