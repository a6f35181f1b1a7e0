"""Reductions (sum, mean, max, logsumexp) beyond the registry's table and the closed forms of
test_matrix_calculus.py: their axis takes any integer with __index__ (np.int64 too) as NumPy's
does, and so do the ops that share the argument (the axis of concatenate and stack, diag's k)."""

from __future__ import annotations

import numpy as np
import pytest

import matgrad as mg


@pytest.mark.parametrize("red", ["sum", "mean"])
def test_axis_accepts_numpy_integers(red):
    # Regression: np.int64 axes were refused (NumPy, and matgrad's reshape, take __index__ ints).
    x = np.arange(6.0).reshape(2, 3)
    got = getattr(mg, red)(x, axis=np.int64(1)).numpy()
    np.testing.assert_allclose(got, getattr(np, red)(x, axis=1), rtol=1e-15)


@pytest.mark.parametrize(
    "label, got, want",
    [
        ("max", lambda a: mg.max(a, axis=np.int64(1)), lambda a: np.max(a, axis=1)),
        ("logsumexp", lambda a: mg.logsumexp(a, axis=np.int64(-1)), lambda a: np.log(np.exp(a).sum(axis=-1))),
        (
            "concatenate",
            lambda a: mg.concatenate([a, a], axis=np.int64(1)),
            lambda a: np.concatenate([a, a], axis=1),
        ),
        (
            "stack",
            lambda a: mg.stack([a[0], a[1]], axis=np.int64(1)),
            lambda a: np.stack([a[0], a[1]], axis=1),
        ),
        ("diag", lambda a: mg.diag(a, k=np.int64(1)), lambda a: np.diag(a, k=1)),
    ],
    ids=["max", "logsumexp", "concatenate", "stack", "diag"],
)
def test_new_ops_accept_numpy_integer_axes(label, got, want):
    # As for sum and mean (test_axis_accepts_numpy_integers): any __index__ int is an axis.
    a = np.arange(6.0).reshape(2, 3)
    np.testing.assert_allclose(got(a).numpy(), want(a), rtol=1e-15, err_msg=label)
