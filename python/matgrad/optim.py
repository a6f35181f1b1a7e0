"""Optimisers that update leaf parameters in place, outside the graph.

``step()`` reads each parameter's ``.grad`` (filled by ``backward()``) and writes the new value
into the parameter on the documented no-grad path: SGD and Adam with one fused C++ pass per
parameter (``matgrad._core._sgd_update_``, ``_adam_update_``, which also update the optimiser's
state arrays in place), a subclass's own ``_update`` through ``matgrad._core._assign_``. The
path records no graph, gives the parameter memory of its own first (a caller's array it was
created from is never written) and drops any cached factorization of the old value. ``zero_grad()`` clears the
gradients (``backward()`` accumulates, as in PyTorch).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from . import _core
from ._core import Tensor


class Optimizer:
    """Optimizer(params, lr)

    The base of the optimisers: holds the parameters (leaf Tensors with ``requires_grad=True``)
    and the learning rate ``lr > 0``; a subclass gives the update ``x <- update(x, g)`` with
    ``g = x.grad``.

    Shapes: every buffer and update has its parameter's shape and dtype. Not differentiable: the
    steps happen outside the graph.
    """

    def __init__(self, params: Iterable[Tensor], lr: float):
        self.params: list[Tensor] = list(params)
        if not self.params:
            raise ValueError(f"{type(self).__name__}: no parameters given")
        for k, p in enumerate(self.params):
            if not isinstance(p, Tensor) or not p.is_leaf or not p.requires_grad:
                raise TypeError(
                    f"{type(self).__name__}: parameter {k} is not a leaf Tensor with requires_grad=True"
                )
            for j in range(k):
                if self.params[j] is p:
                    raise ValueError(
                        f"{type(self).__name__}: parameters {j} and {k} are the same Tensor "
                        f"(it would be stepped twice)"
                    )
        if not lr > 0:
            raise ValueError(f"{type(self).__name__}: lr must be positive, got {lr}")
        self.lr = float(lr)

    def zero_grad(self) -> None:
        """zero_grad() -> None

        Clear every parameter's ``.grad`` (set it to None): ``backward()`` accumulates, so call
        this between steps. No gradient flows; no graph is recorded.
        """
        for p in self.params:
            p.grad = None

    def step(self) -> None:
        """step() -> None

        Update each parameter that has a ``.grad`` in place by the optimiser's rule, with
        ``g = x.grad`` of the parameter's shape; parameters without a gradient are skipped.
        Outside the graph: nothing is recorded and each parameter stays a leaf of its shape and
        dtype.
        """
        for k, p in enumerate(self.params):
            if p.grad is not None:
                self._step(k, p)

    def _step(self, k: int, p: Tensor) -> None:
        """Update parameter k in place (it has a gradient)."""
        _core._assign_(p, self._update(k, np.asarray(p), np.asarray(p.grad)))

    def _update(self, k: int, x: np.ndarray, g: np.ndarray) -> np.ndarray:
        """The new value of parameter k from its value x and gradient g (NumPy arrays)."""
        raise NotImplementedError


class SGD(Optimizer):
    """SGD(params, lr=0.01, momentum=0.0, weight_decay=0.0)

    Gradient descent with momentum: ``g <- x.grad + weight_decay x``, ``v <- momentum v + g``,
    ``x <- x - lr v``; plain gradient descent ``x <- x - lr g`` at momentum 0.

    Shapes: the velocity ``v`` of each parameter has its shape and dtype. Not differentiable: the
    steps happen outside the graph.
    """

    def __init__(
        self, params: Iterable[Tensor], lr: float = 0.01, momentum: float = 0.0, weight_decay: float = 0.0
    ):
        super().__init__(params, lr)
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"SGD: momentum must be in [0, 1), got {momentum}")
        self.momentum, self.weight_decay = float(momentum), float(weight_decay)
        self._v: list[np.ndarray] = [np.zeros(p.shape, dtype=p.dtype) for p in self.params]

    def _step(self, k: int, p: Tensor) -> None:
        if type(self)._update is not Optimizer._update:  # a subclass's own rule
            return super()._step(k, p)
        # one pass: d = g + weight_decay x; v <- momentum v + d (momentum > 0); x <- x - lr d
        _core._sgd_update_(
            p, self._v[k] if self.momentum else None, self.lr, self.momentum, self.weight_decay
        )


class Adam(Optimizer):
    """Adam(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8)

    Adam (Kingma & Ba) with ``g = x.grad`` and ``(b1, b2) = betas``: ``m <- b1 m + (1 - b1) g``,
    ``v <- b2 v + (1 - b2) g^2``, ``x <- x - lr m_hat / (sqrt(v_hat) + eps)`` with the bias
    corrections ``m_hat = m / (1 - b1^t)``, ``v_hat = v / (1 - b2^t)``, ``t`` the number of steps
    that updated this parameter (as PyTorch: a parameter without a gradient keeps its count).

    Shapes: the moments ``m`` and ``v`` of each parameter have its shape and dtype. Not
    differentiable: the steps happen outside the graph.
    """

    def __init__(
        self,
        params: Iterable[Tensor],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ):
        super().__init__(params, lr)
        b1, b2 = betas
        if not (0.0 <= b1 < 1.0 and 0.0 <= b2 < 1.0):
            raise ValueError(f"Adam: betas must be in [0, 1), got {betas}")
        self.b1, self.b2, self.eps = float(b1), float(b2), float(eps)
        self.t = 0  # steps taken
        self._t: list[int] = [0] * len(
            self.params
        )  # steps that updated each parameter: t in its bias corrections
        self._m: list[np.ndarray] = [np.zeros(p.shape, dtype=p.dtype) for p in self.params]
        self._s: list[np.ndarray] = [np.zeros(p.shape, dtype=p.dtype) for p in self.params]

    def step(self) -> None:
        """step() -> None

        One Adam step: ``t <- t + 1``, then the update above, in place, for every parameter with
        a ``.grad`` (of the parameter's shape). Outside the graph: nothing is recorded.
        """
        self.t += 1
        super().step()

    def _step(self, k: int, p: Tensor) -> None:
        self._t[k] += 1  # this parameter's own step count (it may have had no gradient on some steps)
        if type(self)._update is not Optimizer._update:  # a subclass's own rule
            return super()._step(k, p)
        # one pass over x, g, m and v (the formulas above, in this order)
        _core._adam_update_(p, self._m[k], self._s[k], self.lr, self.b1, self.b2, self.eps, self._t[k])
