"""Tensor indexing: x[i], x[:, j], x[a:b, c:d], x[int_array], ... with NumPy's semantics.

Basic keys (integers and step-1 slices) take a contiguous block (one ``block`` node); every
other key (steps, negative steps, integer arrays, boolean masks) is resolved by NumPy itself on
an array of flat element indices and becomes one ``gather`` node. Both VJPs place the
cotangent back where the elements came from, adding up repeated indices (scatter-add).
"""

from __future__ import annotations

import operator
from typing import Any

import numpy as np

from . import _core


def _basic(key: Any, shape: tuple[int, ...]) -> tuple[int, int, int, int, tuple[int, ...]] | None:
    """(r0, c0, rows, cols, result_shape) of the block a basic key selects, or None."""
    parts = key if isinstance(key, tuple) else (key,)
    if len(parts) > len(shape):
        return None
    spans = []  # (start, length, keeps_axis)
    for part, n in zip(parts, shape):
        if isinstance(part, slice):
            if part.step == 0:
                raise ValueError(f"index: slice step cannot be zero (tensor of shape {shape})")
            start, stop, step = part.indices(n)
            if step != 1:
                return None
            spans.append((start, max(0, stop - start), True))
        elif isinstance(part, (int, np.integer)) and not isinstance(part, (bool, np.bool_)):
            i = operator.index(part)
            if not -n <= i < n:
                return None  # NumPy raises the IndexError with its own message
            spans.append((i + n if i < 0 else i, 1, False))
        else:
            return None
    for n in shape[len(spans) :]:
        spans.append((0, n, True))
    result = tuple(length for (_, length, keep) in spans if keep)
    if len(shape) == 1:
        ((c0, cols, _),) = spans
        return 0, c0, 1, cols, result
    (r0, rows, _), (c0, cols, _) = spans
    return r0, c0, rows, cols, result


def getitem(x: _core.Tensor, key: Any) -> _core.Tensor:
    """__getitem__(x, key) -> Tensor

    ``x[key]`` as a node of the graph, with NumPy's indexing rules: integers, slices (any step),
    integer arrays and boolean masks.

    Shapes: as NumPy's ``x.numpy()[key]``; results of more than 2 dimensions raise ValueError,
    out-of-range indices IndexError.

    d/dx: ``G`` placed back where the elements came from, zeros elsewhere, repeated indices
    adding up (scatter-add).
    """
    shape = tuple(x.shape)
    block = _basic(key, shape) if shape else None
    if block is not None:
        return _core._block(x, *block)
    flat = np.arange(int(np.prod(shape)), dtype=np.int64).reshape(shape)
    if isinstance(key, _core.Tensor):
        key = np.asarray(key)
    elif isinstance(key, tuple):
        key = tuple(np.asarray(k) if isinstance(k, _core.Tensor) else k for k in key)
    try:
        sel = flat[key]
    except IndexError as e:
        raise IndexError(f"index: {e} (tensor of shape {shape})") from None
    if sel.ndim > 2:
        raise ValueError(
            f"index: the result would have shape {sel.shape} (at most 2 dimensions are supported; "
            f"tensor of shape {shape})"
        )
    return _core._gather(x, sel)
