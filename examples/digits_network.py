"""The lecture's network on handwritten digits, trained by backpropagation, written out by hand.

    f_0 = X,  f_1 = sigma(f_0 A_0 + b_0),  logits = f_1 A_1 + b_1     (rows are samples)
    L = mean over the batch of -log softmax(logits)[label]

Each step records the forward pass, runs one reverse sweep (L.backward() fills A_i.grad,
b_i.grad) and lets Adam update the parameters in place. `python -m matgrad train` is the same
loop with a progress bar, a loss-curve picture and more options.

Needs scikit-learn (the digits ship inside it: no download): the train extra,
pip install ".[train]" in a clone of matgrad.
Run: python examples/digits_network.py [--epochs 15] [--hidden 64] [--seed 0]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence

import numpy as np

import matgrad as mg
from matgrad import nn, optim
from matgrad.train import load_digits


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if args.epochs < 1:
        p.error("--epochs must be at least 1")

    # the 8 x 8 digits, a fixed 75/25 split, standardised with the training set's statistics
    data = load_digits()
    X_tr, y_tr, X_te, y_te = data.X_train, data.y_train, data.X_test, data.y_test
    rng = np.random.default_rng(args.seed)
    model = nn.MLP([64, args.hidden, 10], ["sigmoid", "identity"], rng=rng)
    opt = optim.Adam(model.parameters(), lr=args.lr)

    acc = 0.0
    for epoch in range(args.epochs):
        t0 = time.perf_counter()
        perm = rng.permutation(len(y_tr))
        total = 0.0
        for i in range(0, len(perm), args.batch_size):
            idx = perm[i : i + args.batch_size]
            loss = nn.softmax_cross_entropy(model(X_tr[idx]), y_tr[idx])
            opt.zero_grad()
            loss.backward()  # one reverse sweep: every parameter's .grad
            opt.step()  # in place, outside the graph
            total += loss.item() * len(idx)
        seconds = time.perf_counter() - t0
        with mg.no_grad():
            acc = float(np.mean(np.argmax(model(X_te).numpy(), axis=1) == y_te))
        print(
            f"epoch {epoch + 1:2d}  training loss {total / len(y_tr):.4f}  test accuracy {100 * acc:.2f}%  "
            f"{1000 * seconds:.1f} ms"
        )
    print(f"test accuracy: {100 * acc:.2f}%")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
