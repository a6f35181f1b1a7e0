"""``python -m matgrad train``: the lecture's network trained by backpropagation on real data.

The data are the 8 x 8 handwritten digits shipped inside scikit-learn (``load_digits``: 1797
images, 64 pixels, 10 classes; no download), split once into a fixed stratified train/test
split (75/25, ``random_state=0``, whatever ``--seed`` is) and standardised with the training
set's mean and standard deviation. The network is the lecture's

    f_0 = X,   f_i = sigma(f_{i-1} A_{i-1} + b_{i-1}),   logits = f_{K-1} A_{K-1} + b_{K-1}

(rows are samples), trained on the softmax cross-entropy with minibatches drawn in a seeded
random order each epoch. Needs the ``train`` extra: ``pip install "matgrad[train]"``
(scikit-learn, tqdm, matplotlib).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
from numpy.typing import DTypeLike

from . import nn, optim
from ._core import Tensor
from ._transforms import no_grad

__all__ = [
    "Digits",
    "load_digits",
    "TrainConfig",
    "TrainResult",
    "train",
    "accuracy",
    "plot_loss_curve",
    "add_arguments",
    "run",
]

N_CLASSES = 10


@dataclass
class Digits:
    """The standardised digits: ``X_train`` (n_train, 64), ``y_train`` (n_train,) int64 labels, and
    the same for the test set; ``mean``/``std`` are the training set's per-pixel statistics."""

    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    mean: np.ndarray
    std: np.ndarray


def _need(module: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise ImportError(
            f'matgrad train needs {module}: install the train extra, pip install "matgrad[train]" '
            f'(in a clone of matgrad: pip install ".[train]"; it brings scikit-learn, tqdm, '
            f"matplotlib)"
        ) from None


def load_digits(dtype: DTypeLike = np.float64, test_size: float = 0.25) -> Digits:
    """scikit-learn's digits, split (stratified, ``random_state=0``) and standardised.

    Pixels that are constant on the training set (std 0) are only centred. The split does not
    depend on any seed, so every run and every system (bench/train.py) sees the same data.
    """
    datasets = _need("sklearn.datasets")
    model_selection = _need("sklearn.model_selection")
    X, y = datasets.load_digits(return_X_y=True)
    X_tr, X_te, y_tr, y_te = model_selection.train_test_split(
        X, y, test_size=test_size, random_state=0, stratify=y
    )
    mean = X_tr.mean(axis=0)
    std = X_tr.std(axis=0)
    std[std == 0] = 1.0
    dt = np.dtype(dtype)

    def prep(a: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(((a - mean) / std).astype(dt))

    return Digits(prep(X_tr), y_tr.astype(np.int64), prep(X_te), y_te.astype(np.int64), mean, std)


@dataclass
class TrainConfig:
    """What ``python -m matgrad train`` takes (its options, same names)."""

    epochs: int = 20
    batch_size: int = 32
    lr: float = 0.01
    hidden: Sequence[int] = (64,)
    activation: str = "sigmoid"
    optimizer: str = "adam"
    momentum: float = 0.9
    seed: int = 0
    dtype: str = "float64"

    def check(self) -> None:
        if self.epochs < 1:
            raise ValueError(f"train: epochs must be >= 1, got {self.epochs}")
        if self.batch_size < 1:
            raise ValueError(f"train: batch size must be >= 1, got {self.batch_size}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"train: learning rate must be positive and finite, got {self.lr}")
        if self.seed < 0:
            raise ValueError(f"train: seed must be >= 0, got {self.seed}")
        if any(h < 1 for h in self.hidden):
            raise ValueError(f"train: hidden sizes must be positive, got {list(self.hidden)}")
        if self.activation not in ("sigmoid", "tanh", "relu"):
            raise ValueError(f"train: activation must be sigmoid, tanh or relu, got {self.activation!r}")
        if self.optimizer not in ("adam", "sgd"):
            raise ValueError(f"train: optimizer must be adam or sgd, got {self.optimizer!r}")
        if self.dtype not in ("float64", "float32"):
            raise ValueError(f"train: dtype must be float64 or float32, got {self.dtype!r}")


@dataclass
class TrainResult:
    """Per step: the minibatch losses; per epoch: mean training loss, test accuracy and the
    seconds spent training (forward, backward and optimiser steps; evaluation excluded)."""

    model: nn.MLP
    step_losses: list[float] = field(default_factory=list)
    epoch_losses: list[float] = field(default_factory=list)
    test_accuracy: list[float] = field(default_factory=list)
    epoch_seconds: list[float] = field(default_factory=list)


def build(cfg: TrainConfig, n_in: int = 64, n_out: int = N_CLASSES) -> tuple[nn.MLP, optim.Optimizer]:
    """The network ``n_in -> hidden... -> n_out`` (activation on the hidden layers, identity on
    the logits), initialised from ``cfg.seed``, and its optimiser."""
    sizes = [n_in, *cfg.hidden, n_out]
    acts = [cfg.activation] * len(cfg.hidden) + ["identity"]
    model = nn.MLP(sizes, acts, rng=np.random.default_rng([cfg.seed, 1]), dtype=np.dtype(cfg.dtype))
    opt: optim.Optimizer
    if cfg.optimizer == "adam":
        opt = optim.Adam(model.parameters(), lr=cfg.lr)
    else:
        opt = optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum)
    return model, opt


def batches(n: int, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """One epoch's minibatch indices: a random permutation cut into batches (the last may be short)."""
    perm = rng.permutation(n)
    return [perm[i : i + batch_size] for i in range(0, n, batch_size)]


def accuracy(model: Callable[[np.ndarray], Tensor], X: np.ndarray, y: np.ndarray) -> float:
    """Fraction of rows of X whose largest logit is the label."""
    with no_grad():
        logits = model(X).numpy()
    return float(np.mean(np.argmax(logits, axis=1) == y))


def train(
    cfg: TrainConfig,
    data: Digits | None = None,
    on_step: Callable[[int, int, float], None] | None = None,
    on_epoch: Callable[[int, TrainResult], None] | None = None,
) -> TrainResult:
    """Train the network of ``cfg`` on ``data`` (default: :func:`load_digits`).

    ``on_step(epoch, step, loss)`` is called after every optimiser step and ``on_epoch(epoch,
    result)`` after every epoch (progress bars hang on these).
    """
    cfg.check()
    if data is None:
        data = load_digits(np.dtype(cfg.dtype))
    model, opt = build(cfg, data.X_train.shape[1], N_CLASSES)
    rng = np.random.default_rng([cfg.seed, 2])
    res = TrainResult(model)
    X, y = data.X_train, data.y_train
    for epoch in range(cfg.epochs):
        total = 0.0
        in_callbacks = 0.0  # the progress bar's time, not the training's
        t0 = time.perf_counter()
        for step, idx in enumerate(batches(len(y), cfg.batch_size, rng)):
            loss = nn.softmax_cross_entropy(model(X[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            value = loss.item()
            total += value * len(idx)
            res.step_losses.append(value)
            if on_step is not None:
                t_cb = time.perf_counter()
                on_step(epoch, step, value)
                in_callbacks += time.perf_counter() - t_cb
        res.epoch_seconds.append(time.perf_counter() - t0 - in_callbacks)
        res.epoch_losses.append(total / len(y))
        res.test_accuracy.append(accuracy(model, data.X_test, data.y_test))
        if on_epoch is not None:
            on_epoch(epoch, res)
    return res


def plot_loss_curve(res: TrainResult, path: str, title: str = "") -> None:
    """Write the loss curve (every minibatch, and each epoch's mean) and the test accuracy to a PNG."""
    matplotlib = _need("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps_per_epoch = len(res.step_losses) / max(1, len(res.epoch_losses))
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    ax.plot(
        np.arange(1, len(res.step_losses) + 1) / steps_per_epoch,
        res.step_losses,
        lw=0.6,
        alpha=0.5,
        label="minibatch",
    )
    ax.plot(np.arange(1, len(res.epoch_losses) + 1), res.epoch_losses, "o-", lw=1.5, label="epoch mean")
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("softmax cross-entropy (training)")
    ax.legend()
    ax.grid(alpha=0.3)
    ax2.plot(np.arange(1, len(res.test_accuracy) + 1), 100 * np.asarray(res.test_accuracy), "o-", color="C2")
    ax2.set_xlabel("epoch")
    ax2.set_ylabel("test accuracy (%)")
    ax2.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``python -m matgrad train``."""
    d = TrainConfig()
    p.add_argument(
        "--epochs", type=int, default=d.epochs, help=f"passes over the training set (default {d.epochs})"
    )
    p.add_argument(
        "--batch-size", type=int, default=d.batch_size, help=f"minibatch size (default {d.batch_size})"
    )
    p.add_argument("--lr", type=float, default=d.lr, help=f"learning rate (default {d.lr})")
    p.add_argument(
        "--hidden",
        type=int,
        nargs="+",
        default=list(d.hidden),
        metavar="H",
        help=f"hidden layer sizes (default {' '.join(map(str, d.hidden))})",
    )
    p.add_argument(
        "--activation",
        choices=("sigmoid", "tanh", "relu"),
        default=d.activation,
        help=f"sigma of the hidden layers (default {d.activation}, the lecture's)",
    )
    p.add_argument(
        "--optimizer",
        choices=("adam", "sgd"),
        default=d.optimizer,
        help=f"adam, or sgd with momentum {d.momentum} (default {d.optimizer})",
    )
    p.add_argument(
        "--seed",
        type=int,
        default=d.seed,
        help=f"seeds the initial weights and the minibatch order (default {d.seed})",
    )
    p.add_argument("--dtype", choices=("float64", "float32"), default=d.dtype, help=f"default {d.dtype}")
    p.add_argument(
        "--out",
        default="train-output",
        metavar="DIR",
        help="folder for loss-curve.png and model.npz (default train-output)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar (one line per epoch only)")


def run(args: argparse.Namespace) -> int:
    """``python -m matgrad train``: train, print the test accuracy and time per epoch, write the
    loss curve and the weights. Exit status 0 when the test accuracy reaches 95%."""
    cfg = TrainConfig(
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        hidden=tuple(args.hidden),
        activation=args.activation,
        optimizer=args.optimizer,
        seed=args.seed,
        dtype=args.dtype,
    )
    try:
        cfg.check()
    except ValueError as e:
        print(f"python -m matgrad train: error: {e}", file=sys.stderr)
        return 2
    tqdm = _need("tqdm").tqdm
    data = load_digits(np.dtype(cfg.dtype))
    _need("matplotlib")  # fail before training, not after
    try:
        os.makedirs(args.out, exist_ok=True)
    except OSError as e:
        print(f"python -m matgrad train: error: --out {args.out}: {e.strerror or e}", file=sys.stderr)
        return 2
    arch = " -> ".join(map(str, [data.X_train.shape[1], *cfg.hidden, N_CLASSES]))
    print(
        f"digits (scikit-learn): {len(data.y_train)} training and {len(data.y_test)} test images of 8 x 8 "
        f"pixels, standardised"
    )
    print(
        f"network {arch}, {cfg.activation} hidden layers, softmax cross-entropy; {cfg.optimizer} lr {cfg.lr}, "
        f"batch {cfg.batch_size}, {cfg.epochs} epochs, seed {cfg.seed}, {cfg.dtype}"
    )
    steps = -(-len(data.y_train) // cfg.batch_size)
    bar = tqdm(
        total=cfg.epochs * steps, unit="step", disable=args.no_progress, dynamic_ncols=True, leave=False
    )
    running: list[float] = []

    def on_step(epoch: int, step: int, loss: float) -> None:
        running.append(loss)
        if step % 8 == 0 or step == steps - 1:
            window = running[-steps:]
            bar.set_description(f"epoch {epoch + 1}/{cfg.epochs}", refresh=False)
            bar.set_postfix(loss=f"{sum(window) / len(window):.4f}", refresh=False)
        bar.update(1)

    def on_epoch(epoch: int, res: TrainResult) -> None:
        bar.write(
            f"epoch {epoch + 1:3d}/{cfg.epochs}  loss {res.epoch_losses[-1]:.4f}  "
            f"test accuracy {100 * res.test_accuracy[-1]:6.2f}%  {1000 * res.epoch_seconds[-1]:7.1f} ms"
        )

    try:
        res = train(cfg, data, on_step, on_epoch)
    finally:
        bar.close()
    acc = res.test_accuracy[-1]
    secs = np.asarray(res.epoch_seconds)
    curve = os.path.join(args.out, "loss-curve.png")
    weights = os.path.join(args.out, "model.npz")
    plot_loss_curve(
        res, curve, title=f"matgrad: digits, {arch}, {cfg.optimizer} lr {cfg.lr}, batch {cfg.batch_size}"
    )
    res.model.save(weights)
    print(f"test accuracy: {100 * acc:.2f}% ({round(acc * len(data.y_test))}/{len(data.y_test)})")
    print(
        f"time per epoch: {1000 * np.median(secs):.1f} ms median, {1000 * secs.mean():.1f} ms mean "
        f"({steps} steps of forward, backward and {cfg.optimizer} update)"
    )
    print(f"loss curve: {curve}")
    print(f"weights: {weights}")
    if acc < 0.95:
        print(f"test accuracy {100 * acc:.2f}% is below 95%: train longer (--epochs) or change --lr")
        return 1
    return 0
