"""Small, explicit building blocks for the lecture's network f_i = sigma(A_{i-1} f_{i-1} + b_{i-1}).

Rows are samples: a layer maps a batch X of shape (batch, n_in) to sigma(X @ A + b), A of shape
(n_in, n_out) and b of shape (n_out,) (the lecture's column form, transposed). Parameters are
leaf Tensors with ``requires_grad=True``; :mod:`matgrad.optim` updates them in place.
"""

from __future__ import annotations

from typing import Callable, Dict, List, Optional, Sequence, Union

import numpy as np

from . import _core
from ._core import Tensor

ACTIVATIONS: Dict[str, Callable[[Tensor], Tensor]] = {
    "sigmoid": _core.sigmoid,
    "tanh": _core.tanh,
    "relu": _core.relu,
    "identity": lambda z: z,
}

Seed = Union[None, int, np.random.Generator]


def _activation(name: str) -> Callable[[Tensor], Tensor]:
    try:
        return ACTIVATIONS[name]
    except KeyError:
        raise ValueError(f"nn: unknown activation {name!r}; choose one of {sorted(ACTIVATIONS)}") from None


class Dense:
    """One layer: ``sigma(X @ A + b)``.

    Initialisation from a seeded NumPy Generator (``rng``: a Generator or a seed): A is normal
    with standard deviation sqrt(2 / n_in) for relu (He) and sqrt(2 / (n_in + n_out)) otherwise
    (Glorot); b is zero. d/dA: X^T (G * sigma'), d/db: the column sums of G * sigma'.
    """

    def __init__(self, n_in: int, n_out: int, activation: str = "sigmoid", rng: Seed = None, dtype=np.float64):
        if n_in < 1 or n_out < 1:
            raise ValueError(f"Dense: sizes must be positive, got ({n_in}, {n_out})")
        self.activation = activation
        self._sigma = _activation(activation)
        gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
        std = np.sqrt(2.0 / n_in) if activation == "relu" else np.sqrt(2.0 / (n_in + n_out))
        self.A = _core.tensor(gen.normal(0.0, std, (n_in, n_out)).astype(dtype), requires_grad=True)
        self.b = _core.tensor(np.zeros(n_out, dtype=dtype), requires_grad=True)

    def __call__(self, x: Union[Tensor, np.ndarray]) -> Tensor:
        return self._sigma(x @ self.A + self.b)

    def parameters(self) -> List[Tensor]:
        """The leaf Tensors [A, b]."""
        return [self.A, self.b]


class MLP:
    """Layers ``sizes[0] -> sizes[1] -> ... -> sizes[-1]``, one activation per layer (a name, or a
    list with one name per layer). The lecture's network is ``MLP([784, 256, 128, 10])``."""

    def __init__(self, sizes: Sequence[int], activations: Union[str, Sequence[str]] = "sigmoid",
                 rng: Seed = None, dtype=np.float64):
        sizes = list(sizes)
        if len(sizes) < 2:
            raise ValueError(f"MLP: needs at least two sizes (input and output), got {sizes}")
        acts = [activations] * (len(sizes) - 1) if isinstance(activations, str) else list(activations)
        if len(acts) != len(sizes) - 1:
            raise ValueError(f"MLP: {len(sizes) - 1} layers need {len(sizes) - 1} activations, got {len(acts)}")
        gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
        self.layers = [Dense(i, o, a, gen, dtype) for i, o, a in zip(sizes[:-1], sizes[1:], acts)]

    def __call__(self, x: Union[Tensor, np.ndarray]) -> Tensor:
        for layer in self.layers:
            x = layer(x)
        return x

    def parameters(self) -> List[Tensor]:
        """The leaf Tensors [A0, b0, A1, b1, ...]."""
        return [p for layer in self.layers for p in layer.parameters()]

    def state_dict(self) -> Dict[str, np.ndarray]:
        """Copies of the parameters by name ("A0", "b0", ...): ``np.savez(path, **m.state_dict())``."""
        out = {}
        for k, layer in enumerate(self.layers):
            out[f"A{k}"] = np.array(layer.A.numpy())
            out[f"b{k}"] = np.array(layer.b.numpy())
        return out

    def load_state_dict(self, state) -> None:
        """Set the parameters in place from a state_dict (or ``np.load`` of a saved .npz)."""
        for k, layer in enumerate(self.layers):
            for name, p in (("A", layer.A), ("b", layer.b)):
                key = f"{name}{k}"
                if key not in state:
                    raise KeyError(f"load_state_dict: {key!r} is missing")
                _core._assign_(p, np.asarray(state[key]))

    def save(self, path: str) -> None:
        """Write the state_dict to an .npz file."""
        np.savez(path, **self.state_dict())

    def load(self, path: str) -> None:
        """Read parameters saved by :meth:`save`."""
        with np.load(path) as data:
            self.load_state_dict(data)


def _reduce(x: Tensor, reduction: str, op: str) -> Tensor:
    if reduction == "mean":
        return _core.mean(x)
    if reduction == "sum":
        return _core.sum(x)
    raise ValueError(f"{op}: reduction must be 'mean' or 'sum', got {reduction!r}")


def mse(pred: Tensor, target, reduction: str = "mean") -> Tensor:
    """Squared error ``(target - pred)^2``, averaged ("mean") or summed ("sum": the lecture's
    ||y - f_K||^2). d/dpred: 2 (pred - target) (/ size for "mean")."""
    r = target - pred
    return _reduce(r * r, reduction, "mse")


def softmax_cross_entropy(logits: Tensor, labels, reduction: str = "mean") -> Tensor:
    """Cross-entropy of softmax(logits) (rows are samples) against integer class labels (shape
    (batch,)) or one-hot/probability rows (shape (batch, classes)).

    Computed as logsumexp(z) - z[label] per row, stable for any logits; d/dlogits =
    softmax(z) - onehot (divided by the batch size for "mean").
    """
    shape = tuple(logits.shape)
    if len(shape) != 2:
        raise ValueError(f"softmax_cross_entropy: logits must be (batch, classes), got shape {shape}")
    lab = np.asarray(labels)
    if lab.ndim == 1:
        if not np.issubdtype(lab.dtype, np.integer) or lab.shape[0] != shape[0] or lab.min(initial=0) < 0 or \
                lab.max(initial=0) >= shape[1]:
            raise ValueError(f"softmax_cross_entropy: labels must be {shape[0]} integers in [0, {shape[1]}), "
                             f"got shape {lab.shape} dtype {lab.dtype}")
        onehot = np.zeros(shape, dtype=np.dtype(logits.dtype))
        onehot[np.arange(shape[0]), lab] = 1.0
    elif lab.shape == shape:
        onehot = lab.astype(np.dtype(logits.dtype))
    else:
        raise ValueError(f"softmax_cross_entropy: labels of shape {lab.shape} do not match logits of shape {shape}")
    per_row = _core.logsumexp(logits, axis=1) - _core.sum(logits * onehot, axis=1)
    return _reduce(per_row, reduction, "softmax_cross_entropy")


def binary_cross_entropy(logits: Tensor, targets, reduction: str = "mean") -> Tensor:
    """Binary cross-entropy of sigmoid(logits) against targets in [0, 1], computed from the logits
    as softplus(z) - y z (stable for any z). d/dlogits: sigmoid(z) - y."""
    y = np.asarray(targets, dtype=np.dtype(logits.dtype))
    if y.shape != tuple(logits.shape):
        raise ValueError(f"binary_cross_entropy: targets of shape {y.shape} do not match logits of shape "
                         f"{tuple(logits.shape)}")
    return _reduce(_core.softplus(logits) - logits * y, reduction, "binary_cross_entropy")
