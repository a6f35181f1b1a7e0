#!/usr/bin/env python3
"""`python -m matgrad train`'s training, in matgrad and in PyTorch: time per epoch, side by side.

The same network, data, initial weights, minibatch order, optimiser and threads:
  data       scikit-learn's digits, matgrad.train.load_digits() (fixed stratified split,
             standardised): 1347 training images of 64 pixels, 10 classes
  network    64 -> hidden... -> 10, sigmoid hidden layers (--activation), identity logits,
             softmax cross-entropy averaged over the minibatch
  optimiser  Adam (lr 0.01, betas (0.9, 0.999), eps 1e-8), or --optimizer sgd (momentum 0.9)
  batches    a seeded permutation per epoch cut into --batch-size rows (43 steps at 32)

Systems:
  matgrad    matgrad.train.train's loop: nn.MLP, nn.softmax_cross_entropy, backward(),
             optim.Adam.step() (NumPy in, as a user writes it)
  torch      the same loop in PyTorch eager: torch.sigmoid(x @ A + b), F.cross_entropy,
             backward(), torch.optim.Adam (its default implementation: on the CPU one
             parameter at a time), the data as torch tensors indexed with the same permutation
  torch fused  the same with torch.optim.Adam(fused=True) (one fused kernel over all
             parameters, as matgrad's step); the ratio is taken against the faster torch row

Method: each worker pins itself to N cores and sets every thread pool to N before NumPy or
torch load (bench/_common.py). It first checks that both systems train the same thing: from
the same initial weights on the same batches, the first --check-steps losses and the weights
after them agree (float64: rtol 1e-10; float32: rtol 1e-4). Then it trains each system for
--epochs epochs after one warm-up epoch, the systems alternating epoch by epoch (so drift on
this shared machine hits both alike), and reports the median seconds per epoch (training
only: forward, backward, optimiser step; evaluation excluded), the ratio matgrad/torch, and
each system's final test accuracy. Target: matgrad not slower than PyTorch (ratio <= 1).

Run:  env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/train.py [--threads 2] [--dtypes f32,f64]
Needs scikit-learn (pip install "matgrad[train]") and, for the comparison, torch==2.13.0.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C

TARGET = 1.0


def worker(args):
    w = C.Worker(args)  # pins threads before numpy is imported
    np = w.np
    mg = w.import_matgrad()
    from matgrad import train as T

    torch = w.peer("torch")
    hidden = tuple(int(h) for h in args.hidden.split(","))
    dtypes = [{"f32": "float32", "f64": "float64"}.get(d.strip(), d.strip()) for d in args.dtypes.split(",")]
    results = []
    for dtype in dtypes:
        cfg = T.TrainConfig(
            epochs=args.epochs,
            batch_size=args.batch_size,
            lr=args.lr,
            hidden=hidden,
            activation=args.activation,
            optimizer=args.optimizer,
            seed=0,
            dtype=dtype,
        )
        cfg.check()
        data = T.load_digits(np.dtype(dtype))

        # ---- matgrad: the loop of matgrad.train.train, one epoch per call ----
        def mg_system():
            model, opt = T.build(cfg, data.X_train.shape[1], T.N_CLASSES)
            rng = np.random.default_rng([cfg.seed, 2])
            X, y = data.X_train, data.y_train
            init = [np.array(p.numpy()) for p in model.parameters()]

            def run_steps(batch_list):
                losses = []
                for idx in batch_list:
                    loss = mg.nn.softmax_cross_entropy(model(X[idx]), y[idx])
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                    losses.append(loss.item())
                return losses

            def epoch():
                return run_steps(T.batches(len(y), cfg.batch_size, rng))

            def params():
                return [np.array(p.numpy()) for p in model.parameters()]

            def acc():
                return T.accuracy(model, data.X_test, data.y_test)

            return init, run_steps, epoch, params, acc

        # ---- torch: the same loop ----
        def torch_system(init, fused=False):
            tdt = getattr(torch, dtype)
            ps = [torch.tensor(p, dtype=tdt, requires_grad=True) for p in init]
            kw = (
                {"fused": True} if fused else {}
            )  # default: torch's own choice (on the CPU: one tensor at a time)
            if cfg.optimizer == "adam":
                opt = torch.optim.Adam(ps, lr=cfg.lr, **kw)
            else:
                opt = torch.optim.SGD(ps, lr=cfg.lr, momentum=cfg.momentum, **kw)
            act = {"sigmoid": torch.sigmoid, "tanh": torch.tanh, "relu": torch.relu}[cfg.activation]
            Xt = torch.from_numpy(data.X_train)
            yt = torch.from_numpy(data.y_train)
            rng = np.random.default_rng([cfg.seed, 2])
            F = torch.nn.functional

            def forward(x):
                for k in range(0, len(ps) - 2, 2):
                    x = act(x @ ps[k] + ps[k + 1])
                return x @ ps[-2] + ps[-1]

            def run_steps(batch_list):
                losses = []
                for idx in batch_list:
                    it = torch.from_numpy(idx)
                    loss = F.cross_entropy(forward(Xt[it]), yt[it])
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                    losses.append(loss.item())
                return losses

            def epoch():
                return run_steps(T.batches(len(yt), cfg.batch_size, rng))

            def params():
                return [p.detach().numpy().copy() for p in ps]

            def acc():
                with torch.no_grad():
                    logits = forward(torch.from_numpy(data.X_test)).numpy()
                return float(np.mean(np.argmax(logits, axis=1) == data.y_test))

            return run_steps, epoch, params, acc

        # ---- check: the same training, step for step ----
        rtol = 1e-10 if dtype == "float64" else 1e-4
        check_batches = T.batches(len(data.y_train), cfg.batch_size, np.random.default_rng([cfg.seed, 99]))
        check_batches = check_batches[: args.check_steps]
        init, mg_steps, mg_epoch, mg_params, mg_acc = mg_system()
        systems = {"matgrad": (mg_epoch, mg_acc)}
        if torch is not None:
            lm = mg_steps(check_batches)
            for name, fused in (("torch", False), ("torch fused", True)):
                t_steps, t_epoch, t_params, t_acc = torch_system(init, fused)
                lt = t_steps(check_batches)
                np.testing.assert_allclose(lm, lt, rtol=rtol, err_msg=f"{dtype}: losses differ from {name}'s")
                for k, (a, b) in enumerate(zip(mg_params(), t_params())):
                    np.testing.assert_allclose(
                        a,
                        b,
                        rtol=rtol,
                        atol=rtol * float(np.max(np.abs(b))),
                        err_msg=f"{dtype}: parameter {k} differs from {name}'s after "
                        f"{len(check_batches)} steps",
                    )
            C.log(
                f"[{dtype}] check: {len(check_batches)} steps, losses and weights agree with torch's, default "
                f"and fused optimiser (rtol {rtol:g}); first loss {lm[0]:.6g}, last {lm[-1]:.6g}"
            )
            # fresh systems for the timing, from the same initial weights
            init, mg_steps, mg_epoch, mg_params, mg_acc = mg_system()
            systems = {"matgrad": (mg_epoch, mg_acc)}
            for name, fused in (("torch", False), ("torch fused", True)):
                _, t_epoch, _, t_acc = torch_system(init, fused)
                systems[name] = (t_epoch, t_acc)

        # ---- timing: one warm-up epoch each, then alternate epoch by epoch ----
        times = {name: [] for name in systems}
        for ep, _ in systems.values():
            ep()
        w.gate.wait()
        cpu0 = C._cpu_snapshot()
        for _ in range(cfg.epochs):
            for name, (ep, _) in systems.items():
                gc.collect()
                gc.disable()
                t0 = time.perf_counter()
                ep()
                times[name].append(time.perf_counter() - t0)
                gc.enable()
        foreign = C.foreign_load(cpu0, C._cpu_snapshot())
        disturbed = foreign >= args.quiet_threshold
        for name, (_, acc) in systems.items():
            med = statistics.median(times[name])
            results.append(
                {
                    "workload": "train digits",
                    "variant": f"{dtype} {w.threads}T",
                    "system": name,
                    "threads": w.threads,
                    "malloc": "tuned" if os.environ.get("MALLOC_MMAP_THRESHOLD_") else "default",
                    "tag": "",
                    "median_s": med,
                    "epoch_s": times[name],
                    "accuracy": acc(),
                    "disturbed": disturbed,
                    "steps_per_epoch": len(
                        T.batches(len(data.y_train), cfg.batch_size, np.random.default_rng(0))
                    ),
                }
            )
            C.log(
                f"[{dtype} {w.threads}T] {name}: median {1000 * med:.2f} ms/epoch over {cfg.epochs} epochs, "
                f"test accuracy {100 * results[-1]['accuracy']:.2f}%"
            )
    w.results = results
    w.finish()


def parent(args, argv):
    C.warn_env()
    t0 = time.time()
    thread_counts = [1] + ([args.threads] if args.threads > 1 else [])
    payloads = [C.run_worker(__file__, argv, threads=n, malloc=args.malloc) for n in thread_counts]
    results = [r for p in payloads for r in p["results"]]
    m = payloads[0]["meta"]
    v = m["versions"]
    print(
        f"bench/train.py: python -m matgrad train's training, matgrad vs PyTorch  "
        f"{time.strftime('%Y-%m-%d %H:%M:%S')}  cpu: {C.cpu_model()}"
    )
    print("versions: " + ", ".join(f"{k} {val}" for k, val in v.items()))
    print(f"matgrad module: {m.get('matgrad_module')} (built {m.get('matgrad_module_mtime')})")
    print(
        f"network 64 -> {args.hidden.replace(',', ' -> ')} -> 10 ({args.activation}), {args.optimizer} lr {args.lr}, "
        f"batch {args.batch_size}; median of {args.epochs} epochs after 1 warm-up, systems alternating; "
        f"wall time {time.time() - t0:.0f} s"
    )
    print()
    print(
        f"| {'dtype, threads':<16} | {'matgrad ms/epoch':>16} | {'torch ms/epoch':>14} | "
        f"{'torch fused ms/epoch':>20} | {'matgrad/fastest torch':>21} | {'test acc matgrad':>16} | "
        f"{'test acc torch':>14} |"
    )
    print(f"|{'-' * 18}|{'-' * 17}:|{'-' * 15}:|{'-' * 21}:|{'-' * 22}:|{'-' * 17}:|{'-' * 15}:|")
    verdicts = []
    for variant in dict.fromkeys(r["variant"] for r in results):
        rows = {r["system"]: r for r in results if r["variant"] == variant}
        mgr, tr, tf = rows["matgrad"], rows.get("torch"), rows.get("torch fused")
        fastest = min((r for r in (tr, tf) if r is not None), key=lambda r: r["median_s"], default=None)
        ratio = None if fastest is None else mgr["median_s"] / fastest["median_s"]
        flag = " !" if mgr["disturbed"] else ""
        t_ms = "-" if tr is None else f"{1000 * tr['median_s']:.2f}"
        f_ms = "-" if tf is None else f"{1000 * tf['median_s']:.2f}"
        t_acc = "-" if tr is None else f"{100 * tr['accuracy']:.2f}%"
        r_txt = "-" if ratio is None else f"{ratio:.3f}x"
        print(
            f"| {variant:<16} | {1000 * mgr['median_s']:16.2f} | {t_ms:>14} | {f_ms:>20} | {r_txt:>21} | "
            f"{100 * mgr['accuracy']:15.2f}% | {t_acc:>14} |{flag}"
        )
        if ratio is not None:
            verdicts.append((variant, ratio))
    print()
    for variant, ratio in verdicts:
        print(
            f"  {variant}: matgrad {ratio:.3f}x the faster torch per epoch: "
            f"{'PASS' if ratio <= TARGET else 'FAIL'} (target: not slower, <= {TARGET:.2f}x)"
        )
    if any(r["disturbed"] for r in results):
        print(
            f"'!' = other processes used >= {args.quiet_threshold:.2f} cores "
            "on our cores while timing: treat with caution"
        )
    if args.json:
        C.write_json(
            args.json,
            {
                "meta": [p["meta"] for p in payloads],
                "results": results,
                "args": {k: v for k, v in vars(args).items() if not k.startswith("_")},
            },
        )
    if any(ratio > TARGET for _, ratio in verdicts) and args.strict:
        sys.exit(1)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=1, help="also run with this many threads (besides 1)")
    ap.add_argument("--dtypes", default="f32,f64", help="comma list: f32,f64 (default both)")
    ap.add_argument("--epochs", type=int, default=20, help="timed epochs per system (default 20)")
    ap.add_argument("--batch-size", type=int, default=32, help="minibatch size (default 32)")
    ap.add_argument("--lr", type=float, default=0.01, help="learning rate (default 0.01)")
    ap.add_argument("--hidden", default="64", help="hidden sizes, comma list (default 64)")
    ap.add_argument("--activation", choices=("sigmoid", "tanh", "relu"), default="sigmoid")
    ap.add_argument("--optimizer", choices=("adam", "sgd"), default="adam")
    ap.add_argument(
        "--check-steps", type=int, default=20, help="steps compared with torch first (default 20)"
    )
    ap.add_argument("--strict", action="store_true", help="exit 1 when matgrad is slower than torch")
    C.run_script(ap, worker, parent)


if __name__ == "__main__":
    main()
