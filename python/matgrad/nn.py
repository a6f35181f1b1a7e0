"""Small, explicit building blocks for the lecture's network f_i = sigma(A_{i-1} f_{i-1} + b_{i-1}).

Rows are samples: a layer maps a batch X of shape (batch, n_in) to sigma(X @ A + b), A of shape
(n_in, n_out) and b of shape (n_out,) (the lecture's column form, transposed). Parameters are
leaf Tensors with ``requires_grad=True``; :mod:`matgrad.optim` updates them in place.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Callable, Union

import numpy as np

from . import _core
from ._core import Tensor
from ._transforms import _numeric_array

if TYPE_CHECKING:
    import numpy.typing as npt

    from ._core import _ArrayLike

ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {
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
    """Dense(n_in, n_out, activation="sigmoid", rng=None, dtype=numpy.float64)

    One layer: ``sigma(X @ A + b)``, ``sigma`` one of "sigmoid", "tanh", "relu", "identity".

    Shapes: ``A`` is ``(n_in, n_out)`` and ``b`` is ``(n_out,)``; a batch ``X`` of shape
    ``(batch, n_in)`` gives ``(batch, n_out)``, one sample ``(n_in,)`` gives ``(n_out,)``.

    Initialisation from a seeded NumPy Generator (``rng``: a Generator or a seed): A is normal
    with standard deviation sqrt(2 / n_in) for relu (He) and sqrt(2 / (n_in + n_out)) otherwise
    (Glorot); b is zero. Both are leaves of ``dtype`` with ``requires_grad=True``.

    d/dA: ``X^T H``, d/db: the column sums of ``H``, d/dX: ``H A^T``, with
    ``H = G * sigma'(X @ A + b)``.
    """

    def __init__(
        self,
        n_in: int,
        n_out: int,
        activation: str = "sigmoid",
        rng: Seed = None,
        dtype: npt.DTypeLike = np.float64,
    ) -> None:
        if n_in < 1 or n_out < 1:
            raise ValueError(f"Dense: sizes must be positive, got ({n_in}, {n_out})")
        self.activation = activation
        self._sigma = _activation(activation)
        gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
        std = np.sqrt(2.0 / n_in) if activation == "relu" else np.sqrt(2.0 / (n_in + n_out))
        self.A = _core.tensor(gen.normal(0.0, std, (n_in, n_out)).astype(dtype), requires_grad=True)
        self.b = _core.tensor(np.zeros(n_out, dtype=dtype), requires_grad=True)

    def __call__(self, x: Tensor | np.ndarray) -> Tensor:
        """__call__(x) -> Tensor

        The layer's output ``sigma(x @ A + b)``.

        Shapes: ``(batch, n_in) -> (batch, n_out)``; ``(n_in,) -> (n_out,)``.

        d/dx: ``H A^T``, d/dA: ``x^T H``, d/db: the column sums of ``H``, with
        ``H = G * sigma'(x @ A + b)`` (for a 1-D x, d/dA is ``outer(x, H)`` and d/db is ``H``).
        """
        # ndarray @ Tensor is a Tensor (Tensor.__array_ufunc__ = None); NumPy's stubs say ndarray.
        return self._sigma(x @ self.A + self.b)  # type: ignore[arg-type]

    def __getstate__(self) -> dict[str, Any]:
        """pickle and copy.deepcopy: the parameters (values, dtype, requires_grad) and the
        activation's name; the activation function is looked up again on load."""
        state = dict(self.__dict__)
        del state["_sigma"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._sigma = _activation(self.activation)

    def parameters(self) -> list[Tensor]:
        """parameters() -> list[Tensor]

        The leaf Tensors ``[A, b]``, of shapes ``(n_in, n_out)`` and ``(n_out,)``; after
        ``backward()`` their ``.grad`` holds d/dA and d/db (see the class).
        """
        return [self.A, self.b]


class MLP:
    """MLP(sizes, activations="sigmoid", rng=None, dtype=numpy.float64)

    Layers ``sizes[0] -> sizes[1] -> ... -> sizes[-1]``, one :class:`Dense` per step with one
    activation per layer (a name, or a list with one name per layer). The lecture's network is
    ``MLP([784, 256, 128, 10])``.

    Shapes: layer k has ``A_k`` of shape ``(sizes[k], sizes[k+1])`` and ``b_k`` of shape
    ``(sizes[k+1],)``; a batch ``(batch, sizes[0])`` gives ``(batch, sizes[-1])``.

    d/dA_k, d/db_k: the :class:`Dense` rules, each layer passing ``d/dX = H_k A_k^T`` back as the
    ``G`` of the layer before it (the chain rule, one reverse sweep).
    """

    def __init__(
        self,
        sizes: Sequence[int],
        activations: str | Sequence[str] = "sigmoid",
        rng: Seed = None,
        dtype: npt.DTypeLike = np.float64,
    ) -> None:
        sizes = list(sizes)
        if len(sizes) < 2:
            raise ValueError(f"MLP: needs at least two sizes (input and output), got {sizes}")
        acts = [activations] * (len(sizes) - 1) if isinstance(activations, str) else list(activations)
        if len(acts) != len(sizes) - 1:
            raise ValueError(
                f"MLP: {len(sizes) - 1} layers need {len(sizes) - 1} activations, got {len(acts)}"
            )
        gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
        self.layers = [Dense(i, o, a, gen, dtype) for i, o, a in zip(sizes[:-1], sizes[1:], acts)]

    def __call__(self, x: Tensor | np.ndarray) -> Tensor:
        """__call__(x) -> Tensor

        The network's output: the layers applied in turn.

        Shapes: ``(batch, sizes[0]) -> (batch, sizes[-1])``; ``(sizes[0],) -> (sizes[-1],)``.

        d/dx and d/dA_k, d/db_k: the :class:`Dense` rules chained from the last layer back to the
        first, each layer's d/dx being the ``G`` of the layer before.
        """
        for layer in self.layers:
            x = layer(x)
        return x  # type: ignore[return-value]  # a Tensor: there is at least one layer

    def parameters(self) -> list[Tensor]:
        """parameters() -> list[Tensor]

        The leaf Tensors ``[A0, b0, A1, b1, ...]``, ``A_k`` of shape ``(sizes[k], sizes[k+1])`` and
        ``b_k`` of shape ``(sizes[k+1],)``; after ``backward()`` their ``.grad`` holds the
        gradients (see the class).
        """
        return [p for layer in self.layers for p in layer.parameters()]

    def state_dict(self) -> dict[str, np.ndarray]:
        """state_dict() -> dict[str, numpy.ndarray]

        Copies of the parameters by name ("A0", "b0", ...): ``np.savez(path, **m.state_dict())``.

        Shapes: ``A{k}`` is ``(sizes[k], sizes[k+1])``, ``b{k}`` is ``(sizes[k+1],)``. Plain
        arrays, outside the graph: no gradient flows through them.
        """
        out = {}
        for k, layer in enumerate(self.layers):
            out[f"A{k}"] = np.array(layer.A.numpy())
            out[f"b{k}"] = np.array(layer.b.numpy())
        return out

    def load_state_dict(self, state: Mapping[str, npt.ArrayLike]) -> None:
        """load_state_dict(state) -> None

        Set the parameters in place from a state_dict (or ``np.load`` of a saved .npz).

        Shapes: each array must have its parameter's shape (ValueError otherwise; KeyError for a
        missing name; TypeError for values that are not real numbers). All or nothing: every
        entry is checked and converted to its parameter's dtype before any parameter is
        written, so on an error the network is unchanged. The update happens outside the graph,
        as an optimiser's step: nothing is recorded and no gradient flows.
        """
        new: list[tuple[Tensor, np.ndarray]] = []
        for k, layer in enumerate(self.layers):
            for name, p in (("A", layer.A), ("b", layer.b)):
                key = f"{name}{k}"
                if key not in state:
                    raise KeyError(f"load_state_dict: {key!r} is missing")
                value = _numeric_array(state[key], "load_state_dict", repr(key))
                if value.shape != tuple(p.shape):
                    raise ValueError(
                        f"load_state_dict: {key!r} has shape {value.shape} but the parameter has "
                        f"shape {tuple(p.shape)}"
                    )
                new.append((p, np.array(value, dtype=np.dtype(p.dtype))))
        for p, value in new:
            _core._assign_(p, value)

    def save(self, path: str) -> None:
        """save(path) -> None

        Write the state_dict to an .npz file (each array with its parameter's shape; see
        :meth:`state_dict`). Outside the graph: no gradient involved.
        """
        np.savez(path, **self.state_dict())  # type: ignore[arg-type]  # (mypy: a key could be allow_pickle)

    def load(self, path: str) -> None:
        """load(path) -> None

        Read parameters saved by :meth:`save`, in place (shapes must match, as in
        :meth:`load_state_dict`). Outside the graph: no gradient involved.
        """
        with np.load(path) as data:
            self.load_state_dict(data)


def _reduce(x: Tensor, reduction: str, op: str) -> Tensor:
    if reduction == "mean":
        return _core.mean(x)
    if reduction == "sum":
        return _core.sum(x)
    raise ValueError(f"{op}: reduction must be 'mean' or 'sum', got {reduction!r}")


def mse(pred: Tensor, target: _ArrayLike, reduction: str = "mean") -> Tensor:
    """mse(pred, target, reduction="mean") -> Tensor

    Squared error ``(target - pred)^2``, averaged ("mean") or summed ("sum": the lecture's
    ``||y - f_K||^2``).

    Shapes: ``pred`` and ``target`` of one shape (or broadcast together as in NumPy) -> ``()``.

    d/dpred: ``2 G (pred - target)``, divided by the number of elements for "mean"; a ``target``
    that requires a gradient gets the negative of that.
    """
    r = target - pred
    # ndarray - Tensor is a Tensor (Tensor.__array_ufunc__ = None); NumPy's stubs say ndarray.
    return _reduce(r * r, reduction, "mse")  # type: ignore[arg-type]


def softmax_cross_entropy(logits: Tensor, labels: npt.ArrayLike, reduction: str = "mean") -> Tensor:
    """softmax_cross_entropy(logits, labels, reduction="mean") -> Tensor

    Cross-entropy of ``softmax(logits)`` (rows are samples) against class labels, averaged over
    the batch ("mean") or summed ("sum").

    Shapes: ``logits`` ``(batch, classes)``; ``labels`` either ``(batch,)`` integers in
    ``[0, classes)`` or ``(batch, classes)`` one-hot/probability rows ``Y`` -> ``()``.

    One fused op per batch: ``-sum_j Y_j log softmax(z)_j`` per row, computed in one pass as
    ``sum_j Y_j ((max(z) - z_j) + log sum_k exp(z_k - max(z)))``, stable for any logits ``z``.
    d/dlogits: ``G (softmax(z) sum_j Y_j - Y)`` row by row, one kernel; ``G (softmax(z) - Y)``
    for one-hot rows (``Y`` the one-hot rows of integer labels); divided by the batch size for
    "mean". The labels get no gradient.
    """
    shape = tuple(logits.shape)
    if len(shape) != 2:
        raise ValueError(f"softmax_cross_entropy: logits must be (batch, classes), got shape {shape}")
    lab = _numeric_array(labels, "softmax_cross_entropy", "labels")
    if lab.ndim == 1:
        if lab.dtype.kind not in "iu":
            raise ValueError(
                f"softmax_cross_entropy: labels must be {shape[0]} integers in [0, {shape[1]}), "
                f"got shape {lab.shape} dtype {lab.dtype}"
            )
        # integer labels: the C++ side checks them and builds the one-hot rows
        return _reduce(_core._softmax_cross_entropy(logits, lab), reduction, "softmax_cross_entropy")
    if lab.shape == shape:
        onehot = lab.astype(np.dtype(logits.dtype))
    else:
        raise ValueError(
            f"softmax_cross_entropy: labels of shape {lab.shape} do not match logits of shape {shape}"
        )
    per_row = _core._softmax_cross_entropy(logits, onehot)
    return _reduce(per_row, reduction, "softmax_cross_entropy")


def binary_cross_entropy(logits: Tensor, targets: npt.ArrayLike, reduction: str = "mean") -> Tensor:
    """binary_cross_entropy(logits, targets, reduction="mean") -> Tensor

    Binary cross-entropy of ``sigmoid(logits)`` against targets in ``[0, 1]``, computed from the
    logits ``z`` as ``softplus(z) - y z`` (stable for any z), averaged ("mean") or summed ("sum").

    Shapes: ``logits`` of any shape, ``targets`` of the same shape -> ``()``. Both must hold real
    numbers (float, int or bool): complex, string or datetime arrays raise TypeError.

    d/dlogits: ``G (sigmoid(z) - y)``, divided by the number of elements for "mean". The
    targets get no gradient.
    """
    if not isinstance(logits, Tensor):
        logits = _core.tensor(_numeric_array(logits, "binary_cross_entropy", "logits"))
    y = np.asarray(_numeric_array(targets, "binary_cross_entropy", "targets"), dtype=np.dtype(logits.dtype))
    if y.shape != tuple(logits.shape):
        raise ValueError(
            f"binary_cross_entropy: targets of shape {y.shape} do not match logits of shape "
            f"{tuple(logits.shape)}"
        )
    return _reduce(_core.softplus(logits) - logits * y, reduction, "binary_cross_entropy")
