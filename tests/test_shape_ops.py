"""Shape ops and indexing (reshape, transpose, concatenate, stack, diag, Tensor.__getitem__)
beyond the registry's table, which checks their values and gradients over many shapes: a 0-D
tensor indexed with None, and a tensor assembled from Tensors (mg.stack keeps the graph,
mg.tensor of such a list is refused)."""

from __future__ import annotations

import numpy as np
import pytest

import matgrad as mg


def test_index_0d_with_newaxis():
    # Regression: NumPy's np.array(2.0)[None] has shape (1,); matgrad raised IndexError
    x = mg.tensor(2.0, requires_grad=True)
    y = x[None]
    assert y.shape == (1,)
    assert y.numpy()[0] == 2.0


def test_a_list_of_tensors_that_require_grad_is_refused_not_silently_constant():
    """Regression: mg.tensor([x[0], x[1]]) made a constant, so a gradient through it was 0."""
    x = mg.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(TypeError, match=r"^tensor: the list holds Tensors that require grad"):
        mg.tensor([x[0] * 3.0, x[1]])
    with pytest.raises(TypeError, match=r"use mg.stack"):
        mg.grad(lambda z: mg.sum(mg.tensor([[z[0], z[1]]])))(np.ones(2))
    # constants in a list are fine, and stack keeps the graph
    np.testing.assert_array_equal(mg.tensor([x[0].detach(), 5.0]).numpy(), [1.0, 5.0])
    np.testing.assert_array_equal(
        mg.grad(lambda z: mg.sum(mg.stack([z[0] * 3.0, z[1]])))(np.ones(2)), [3.0, 1.0]
    )
