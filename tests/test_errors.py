"""Bad input gets a clear exception; never a crash, an abort, a hang or a silent wrong result.

Messages start with the op name and contain every operand shape as a Python tuple
(docs/errors.md). Shape errors and > 2-D arrays raise ValueError, wrong types and complex
input TypeError. The nastiest inputs (NaN/inf, empty arrays, huge ints) run in a subprocess
so that a segfault or abort fails one test instead of killing pytest.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import run_python
from gradcheck import shapes
from hypothesis import given
from hypothesis import strategies as st

import matgrad as mg

T34 = mg.tensor(np.ones((3, 4)))
T52 = mg.tensor(np.ones((5, 2)))
T3 = mg.tensor(np.ones(3))
T4 = mg.tensor(np.ones(4))
L3 = mg.tensor(np.ones(3), requires_grad=True)
SING = np.array([[1.0, 2.0], [2.0, 4.0]])  # exactly singular: LU meets a zero pivot


def leaf(shape):
    return mg.tensor(np.ones(shape), requires_grad=True)


# (id, thunk, exception type, op name the message starts with, shape tuples it must contain)
CASES = [
    (
        "matmul fn",
        lambda: mg.matmul(np.ones((3, 4)), np.ones((5, 2))),
        ValueError,
        "matmul",
        [(3, 4), (5, 2)],
    ),
    ("matmul @", lambda: T34 @ T52, ValueError, "matmul", [(3, 4), (5, 2)]),
    ("matmul ndarray @ T", lambda: np.ones((3, 4)) @ T52, ValueError, "matmul", [(3, 4), (5, 2)]),
    ("matmul T @ ndarray", lambda: T34 @ np.ones((5, 2)), ValueError, "matmul", [(3, 4), (5, 2)]),
    ("matmul leaves", lambda: leaf((3, 4)) @ leaf((5, 2)), ValueError, "matmul", [(3, 4), (5, 2)]),
    ("matmul vectors", lambda: T3 @ T4, ValueError, "matmul", [(3,), (4,)]),
    ("matmul vec-mat", lambda: T3 @ T52, ValueError, "matmul", [(3,), (5, 2)]),
    ("matmul 0-D left", lambda: mg.matmul(np.ones(()), np.ones(3)), ValueError, "matmul", [(), (3,)]),
    ("matmul 0-D right", lambda: mg.matmul(np.ones((3, 3)), 2.0), ValueError, "matmul", [(3, 3), ()]),
    ("matmul @ scalar", lambda: T34 @ 2.0, ValueError, "matmul", [(3, 4), ()]),
    ("matmul scalar @", lambda: 2.0 @ T3, ValueError, "matmul", [(), (3,)]),
    ("add fn", lambda: mg.add(np.ones(3), np.ones(4)), ValueError, "add", [(3,), (4,)]),
    ("add +", lambda: T3 + T4, ValueError, "add", [(3,), (4,)]),
    ("add ndarray +", lambda: np.ones(4) + T3, ValueError, "add", [(4,), (3,)]),
    ("add leaves", lambda: L3 + leaf(4), ValueError, "add", [(3,), (4,)]),
    ("sub", lambda: T3 - T4, ValueError, "sub", [(3,), (4,)]),
    ("mul", lambda: mg.tensor(np.ones((2, 3))) * np.ones((3, 2)), ValueError, "mul", [(2, 3), (3, 2)]),
    ("div", lambda: T3 / T4, ValueError, "div", [(3,), (4,)]),
    ("pow", lambda: T3**T4, ValueError, "pow", [(3,), (4,)]),
    ("maximum", lambda: mg.maximum(T3, T4), ValueError, "maximum", [(3,), (4,)]),
    (
        "minimum",
        lambda: mg.minimum(np.ones((2, 3)), np.ones((3, 3))),
        ValueError,
        "minimum",
        [(2, 3), (3, 3)],
    ),
    ("grad non-scalar", lambda: mg.grad(lambda x: x * 2.0)(np.ones(3)), ValueError, "grad", [(3,)]),
    ("grad (1, 2) output", lambda: mg.grad(lambda x: x)(np.ones((1, 2))), ValueError, "grad", [(1, 2)]),
    ("grad (1,) output", lambda: mg.grad(lambda x: x * 1.0)(np.ones(1)), ValueError, "grad", [(1,)]),
    (
        "value_and_grad non-scalar",
        lambda: mg.value_and_grad(lambda x: x)(np.ones((2, 2))),
        ValueError,
        "value_and_grad",
        [(2, 2)],
    ),
    ("backward non-scalar", lambda: (L3 * 2.0).backward(), ValueError, "backward", [(3,)]),
    (
        "backward cotangent shape",
        lambda: (L3 * 2.0).backward(np.ones(4)),
        ValueError,
        "backward",
        [(4,), (3,)],
    ),
    (
        "backward cotangent rank",
        lambda: (L3 * 2.0).backward(np.ones((1, 3))),
        ValueError,
        "backward",
        [(1, 3), (3,)],
    ),
    ("tensor str", lambda: mg.tensor("abc"), TypeError, "tensor", []),
    ("tensor None", lambda: mg.tensor(None), TypeError, "tensor", []),
    ("tensor list of str", lambda: mg.tensor(["a", "b"]), TypeError, "tensor", []),
    ("sin str", lambda: mg.sin("abc"), TypeError, "sin", []),
    ("add str", lambda: T3 + "abc", TypeError, "add", []),
    ("radd str", lambda: "abc" + T3, TypeError, "add", []),
    ("mul fn str", lambda: mg.mul(T3, "abc"), TypeError, "mul", []),
    ("sum str", lambda: mg.sum("abc"), TypeError, "sum", []),
    ("tensor complex", lambda: mg.tensor(1 + 2j), TypeError, "tensor", []),
    (
        "tensor complex array",
        lambda: mg.tensor(np.ones((2, 2), dtype=complex)),
        TypeError,
        "tensor",
        [(2, 2)],
    ),
    ("exp complex array", lambda: mg.exp(np.ones(3, dtype=np.complex64)), TypeError, "exp", [(3,)]),
    ("mul complex scalar", lambda: T3 * (1 + 1j), TypeError, "mul", []),
    ("mul np.complex128", lambda: T3 * np.complex128(1 + 1j), TypeError, "mul", []),
    (
        "tensor complex requires_grad",
        lambda: mg.tensor(np.ones(2, dtype=complex), requires_grad=True),
        TypeError,
        "tensor",
        [(2,)],
    ),
    (
        "grad complex",
        lambda: mg.grad(lambda x: mg.sum(x))(np.ones(2, dtype=complex)),
        TypeError,
        "grad",
        [(2,)],
    ),
    ("tensor 3-D", lambda: mg.tensor(np.ones((2, 3, 4))), ValueError, "tensor", [(2, 3, 4)]),
    (
        "tensor 3-D requires_grad",
        lambda: mg.tensor(np.ones((2, 3, 4)), requires_grad=True),
        ValueError,
        "tensor",
        [(2, 3, 4)],
    ),
    ("tensor 3-D list", lambda: mg.tensor([[[1.0]]]), ValueError, "tensor", [(1, 1, 1)]),
    ("sin 3-D", lambda: mg.sin(np.ones((2, 2, 2))), ValueError, "sin", [(2, 2, 2)]),
    ("add 3-D", lambda: T3 + np.ones((2, 2, 3)), ValueError, "add", [(2, 2, 3)]),
    ("matmul 3-D", lambda: mg.matmul(np.ones((2, 2, 2)), np.ones((2, 2))), ValueError, "matmul", [(2, 2, 2)]),
    ("grad 3-D", lambda: mg.grad(lambda x: mg.sum(x))(np.ones((2, 2, 2))), ValueError, "grad", [(2, 2, 2)]),
    ("sum axis 2", lambda: mg.sum(np.ones((2, 3)), axis=2), ValueError, "sum", [(2, 3)]),
    ("sum axis -3", lambda: mg.sum(np.ones((2, 3)), axis=-3), ValueError, "sum", [(2, 3)]),
    ("sum axis 1 of 1-D", lambda: mg.sum(np.ones(3), axis=1), ValueError, "sum", [(3,)]),
    ("sum axis -2 of 1-D", lambda: T3.sum(axis=-2), ValueError, "sum", [(3,)]),
    ("mean axis 5", lambda: mg.mean(np.ones((2, 3)), axis=5), ValueError, "mean", [(2, 3)]),
    ("mean axis 2**70", lambda: mg.mean(np.ones((2, 3)), axis=2**70), ValueError, "mean", [(2, 3)]),
    ("sum axis float", lambda: mg.sum(np.ones((2, 3)), axis=1.0), TypeError, "sum", []),
    ("sum axis str", lambda: mg.sum(np.ones((2, 3)), axis="0"), TypeError, "sum", []),
    ("reshape size", lambda: mg.reshape(np.ones(6), (4,)), ValueError, "reshape", [(6,), (4,)]),
    (
        "reshape method size",
        lambda: mg.tensor(np.ones((2, 3))).reshape(4, 2),
        ValueError,
        "reshape",
        [(2, 3), (4, 2)],
    ),
    ("reshape 3-D", lambda: mg.reshape(np.ones(8), (2, 2, 2)), ValueError, "reshape", [(8,), (2, 2, 2)]),
    ("reshape two -1", lambda: mg.reshape(np.ones(8), (-1, -1)), ValueError, "reshape", [(8,)]),
    ("reshape -1 no fit", lambda: mg.reshape(np.ones(7), (2, -1)), ValueError, "reshape", [(7,)]),
    ("reshape negative", lambda: mg.reshape(np.ones(8), (-2, -4)), ValueError, "reshape", [(8,)]),
    ("reshape huge", lambda: mg.reshape(np.ones(8), (2**62, 4)), ValueError, "reshape", [(8,)]),
    ("reshape float", lambda: mg.reshape(np.ones(8), (2.0, 4)), TypeError, "reshape", []),
    ("reshape str", lambda: mg.reshape(np.ones(8), "ab"), TypeError, "reshape", []),
    ("tensor dtype int", lambda: mg.tensor([1.0], dtype=np.int32), TypeError, "tensor", []),
    ("tensor dtype complex", lambda: mg.tensor([1.0], dtype=complex), TypeError, "tensor", []),
    ("grad argnums type", lambda: mg.grad(lambda x: x, argnums=(0.5,))(1.0), TypeError, "grad", []),
    ("grad str output", lambda: mg.grad(lambda x: "a")(1.0), TypeError, "grad", []),
    ("float of vector", lambda: float(T3), TypeError, "float", [(3,)]),
    ("bool of vector", lambda: bool(T3), ValueError, "bool", [(3,)]),
    ("set grad wrong shape", lambda: setattr(leaf(3), "grad", np.ones(4)), ValueError, "grad", [(4,), (3,)]),
    ("backward of a constant", lambda: (T3 * 2.0).sum().backward(), RuntimeError, "backward", []),
    # ---- matrix-calculus ops (det logdet slogdet inv solve cholesky quad_form) ----
    ("det non-square", lambda: mg.det(np.ones((2, 3))), ValueError, "det", [(2, 3)]),
    ("logdet non-square", lambda: mg.logdet(np.ones((2, 3))), ValueError, "logdet", [(2, 3)]),
    ("slogdet non-square", lambda: mg.slogdet(np.ones((2, 3))), ValueError, "slogdet", [(2, 3)]),
    ("inv non-square", lambda: mg.inv(np.ones((2, 3))), ValueError, "inv", [(2, 3)]),
    ("cholesky non-square", lambda: mg.cholesky(np.ones((3, 2))), ValueError, "cholesky", [(3, 2)]),
    ("inv non-square leaf", lambda: mg.inv(leaf((2, 3))), ValueError, "inv", [(2, 3)]),
    ("det 1-D", lambda: mg.det(np.ones(3)), ValueError, "det", [(3,)]),
    ("det (1,)", lambda: mg.det(np.ones(1)), ValueError, "det", [(1,)]),
    ("det 0-D", lambda: mg.det(2.0), ValueError, "det", [()]),
    ("logdet 1-D", lambda: mg.logdet(T3), ValueError, "logdet", [(3,)]),
    ("logdet 0-D", lambda: mg.logdet(np.ones(())), ValueError, "logdet", [()]),
    ("slogdet 1-D", lambda: mg.slogdet(np.ones(3)), ValueError, "slogdet", [(3,)]),
    ("slogdet 0-D", lambda: mg.slogdet(2.0), ValueError, "slogdet", [()]),
    ("inv 1-D", lambda: mg.inv(L3), ValueError, "inv", [(3,)]),
    ("inv 0-D", lambda: mg.inv(2.0), ValueError, "inv", [()]),
    ("cholesky 1-D", lambda: mg.cholesky(np.ones(3)), ValueError, "cholesky", [(3,)]),
    ("cholesky 0-D", lambda: mg.cholesky(2.0), ValueError, "cholesky", [()]),
    ("det 3-D", lambda: mg.det(np.ones((2, 2, 2))), ValueError, "det", [(2, 2, 2)]),
    ("det complex", lambda: mg.det(np.eye(2, dtype=complex)), TypeError, "det", [(2, 2)]),
    ("inv str", lambda: mg.inv("abc"), TypeError, "inv", []),
    ("solve b misaligned", lambda: mg.solve(np.eye(3), np.ones(4)), ValueError, "solve", [(3, 3), (4,)]),
    (
        "solve 2-D b misaligned",
        lambda: mg.solve(np.eye(3), np.ones((4, 2))),
        ValueError,
        "solve",
        [(3, 3), (4, 2)],
    ),
    (
        "solve A non-square",
        lambda: mg.solve(np.ones((3, 2)), np.ones(3)),
        ValueError,
        "solve",
        [(3, 2), (3,)],
    ),
    ("solve A 1-D", lambda: mg.solve(np.ones(2), np.ones(2)), ValueError, "solve", [(2,)]),
    ("solve A 0-D", lambda: mg.solve(2.0, np.ones(2)), ValueError, "solve", [(), (2,)]),
    ("solve b 0-D", lambda: mg.solve(np.eye(2), 2.0), ValueError, "solve", [(2, 2), ()]),
    ("solve b 0-D array", lambda: mg.solve(leaf((2, 2)), np.ones(())), ValueError, "solve", [(2, 2), ()]),
    ("solve b 3-D", lambda: mg.solve(np.eye(2), np.ones((2, 2, 2))), ValueError, "solve", [(2, 2, 2)]),
    ("solve b complex", lambda: mg.solve(np.eye(2), np.ones(2, complex)), TypeError, "solve", [(2,)]),
    ("inv singular", lambda: mg.inv(SING), np.linalg.LinAlgError, "inv", [(2, 2)]),
    ("inv zeros", lambda: mg.inv(np.zeros((2, 2))), np.linalg.LinAlgError, "inv", [(2, 2)]),
    ("inv zero 1x1", lambda: mg.inv(np.zeros((1, 1))), np.linalg.LinAlgError, "inv", [(1, 1)]),
    (
        "inv singular 3x3",
        lambda: mg.inv(np.arange(9.0).reshape(3, 3)),
        np.linalg.LinAlgError,
        "inv",
        [(3, 3)],
    ),
    ("inv singular float32", lambda: mg.inv(SING.astype(np.float32)), np.linalg.LinAlgError, "inv", [(2, 2)]),
    (
        "inv singular leaf",
        lambda: mg.inv(mg.tensor(SING, requires_grad=True)),
        np.linalg.LinAlgError,
        "inv",
        [(2, 2)],
    ),
    (
        "inv singular under grad",
        lambda: mg.grad(lambda a: mg.sum(mg.inv(a)))(SING),
        np.linalg.LinAlgError,
        "inv",
        [(2, 2)],
    ),
    ("solve singular", lambda: mg.solve(SING, np.ones(2)), np.linalg.LinAlgError, "solve", [(2, 2), (2,)]),
    (
        "solve zeros 2-D b",
        lambda: mg.solve(np.zeros((2, 2)), np.ones((2, 3))),
        np.linalg.LinAlgError,
        "solve",
        [(2, 2), (2, 3)],
    ),
    (
        "solve singular leaf",
        lambda: mg.solve(mg.tensor(SING, requires_grad=True), L3[:2]),
        np.linalg.LinAlgError,
        "solve",
        [(2, 2), (2,)],
    ),
    (
        "solve singular under jacobian",
        lambda: mg.jacobian(lambda a: mg.solve(a, np.ones(2)))(SING),
        np.linalg.LinAlgError,
        "solve",
        [(2, 2)],
    ),
    (
        "cholesky indefinite",
        lambda: mg.cholesky(np.array([[1.0, 2.0], [2.0, 1.0]])),
        np.linalg.LinAlgError,
        "cholesky",
        [(2, 2)],
    ),
    (
        "cholesky negative definite",
        lambda: mg.cholesky(-np.eye(3)),
        np.linalg.LinAlgError,
        "cholesky",
        [(3, 3)],
    ),
    ("cholesky zeros", lambda: mg.cholesky(np.zeros((2, 2))), np.linalg.LinAlgError, "cholesky", [(2, 2)]),
    ("cholesky singular PSD", lambda: mg.cholesky(SING), np.linalg.LinAlgError, "cholesky", [(2, 2)]),
    (
        "cholesky indefinite under grad",
        lambda: mg.grad(lambda a: mg.sum(mg.cholesky(a)))(-np.eye(2)),
        np.linalg.LinAlgError,
        "cholesky",
        [(2, 2)],
    ),
    (
        "quad_form misaligned",
        lambda: mg.quad_form(np.ones(3), np.eye(2)),
        ValueError,
        "quad_form",
        [(3,), (2, 2)],
    ),
    (
        "quad_form 2-D x misaligned",
        lambda: mg.quad_form(np.ones((2, 2)), np.eye(3)),
        ValueError,
        "quad_form",
        [(2, 2), (3, 3)],
    ),
    (
        "quad_form B non-square",
        lambda: mg.quad_form(np.ones(3), np.ones((3, 2))),
        ValueError,
        "quad_form",
        [(3,), (3, 2)],
    ),
    ("quad_form B 1-D", lambda: mg.quad_form(T3, np.ones(3)), ValueError, "quad_form", [(3,), (3,)]),
    ("quad_form x 0-D", lambda: mg.quad_form(2.0, np.eye(2)), ValueError, "quad_form", [(), (2, 2)]),
    (
        "quad_form complex",
        lambda: mg.quad_form(np.ones(2), np.eye(2, dtype=complex)),
        TypeError,
        "quad_form",
        [],
    ),
    # ---- logsumexp, max ----
    ("logsumexp axis 2", lambda: mg.logsumexp(np.ones((2, 3)), axis=2), ValueError, "logsumexp", [(2, 3)]),
    ("logsumexp axis -3", lambda: mg.logsumexp(np.ones((2, 3)), axis=-3), ValueError, "logsumexp", [(2, 3)]),
    ("logsumexp axis 1 of 1-D", lambda: mg.logsumexp(T3, axis=1), ValueError, "logsumexp", [(3,)]),
    ("logsumexp axis 0 of 0-D", lambda: mg.logsumexp(2.0, axis=0), ValueError, "logsumexp", [()]),
    ("logsumexp axis float", lambda: mg.logsumexp(np.ones((2, 3)), axis=1.0), TypeError, "logsumexp", []),
    ("logsumexp complex", lambda: mg.logsumexp(np.ones(2, complex)), TypeError, "logsumexp", [(2,)]),
    ("max axis 2", lambda: mg.max(np.ones((2, 3)), axis=2), ValueError, "max", [(2, 3)]),
    ("max axis -3 leaf", lambda: mg.max(leaf((2, 3)), axis=-3), ValueError, "max", [(2, 3)]),
    ("max axis 1 of 1-D", lambda: mg.max(np.ones(3), axis=1), ValueError, "max", [(3,)]),
    ("max axis 0 of 0-D", lambda: mg.max(2.0, axis=0), ValueError, "max", [()]),
    ("max axis 2**70", lambda: mg.max(np.ones((2, 3)), axis=2**70), ValueError, "max", [(2, 3)]),
    ("max axis str", lambda: mg.max(np.ones((2, 3)), axis="0"), TypeError, "max", []),
    ("max empty", lambda: mg.max(np.zeros(0)), ValueError, "max", [(0,)]),
    ("max empty 2-D", lambda: mg.max(np.zeros((0, 3))), ValueError, "max", [(0, 3)]),
    ("max empty 2-D axis 0", lambda: mg.max(np.zeros((0, 3)), axis=0), ValueError, "max", [(0, 3)]),
    ("max empty 2-D axis -1", lambda: mg.max(np.zeros((3, 0)), axis=-1), ValueError, "max", [(3, 0)]),
    ("max empty leaf", lambda: mg.max(leaf(0)), ValueError, "max", [(0,)]),
    # ---- where ----
    (
        "where a vs b",
        lambda: mg.where(np.ones(3, bool), np.ones(4), np.ones(3)),
        ValueError,
        "where",
        [(4,), (3,)],
    ),
    (
        "where mask vs a, b",
        lambda: mg.where(np.ones(4, bool), np.ones((2, 3)), np.ones((2, 3))),
        ValueError,
        "where",
        [(4,), (2, 3)],
    ),
    (
        "where three shapes",
        lambda: mg.where(np.ones((2, 1), bool), np.ones(3), np.ones(4)),
        ValueError,
        "where",
        [(2, 1), (3,), (4,)],
    ),
    (
        "where 2-D",
        lambda: mg.where(np.ones((2, 3), bool), leaf((3, 2)), 1.0),
        ValueError,
        "where",
        [(2, 3), (3, 2)],
    ),
    (
        "where 3-D mask",
        lambda: mg.where(np.ones((2, 2, 2), bool), 1.0, 0.0),
        ValueError,
        "where",
        [(2, 2, 2)],
    ),
    ("where str mask", lambda: mg.where("ab", np.ones(2), 1.0), TypeError, "where", []),
    (
        "where complex",
        lambda: mg.where(np.ones(2, bool), np.ones(2, complex), 1.0),
        TypeError,
        "where",
        [(2,)],
    ),
    # ---- concatenate, stack, diag ----
    (
        "concatenate mismatch",
        lambda: mg.concatenate([np.ones((2, 3)), np.ones((2, 4))]),
        ValueError,
        "concatenate",
        [(2, 3), (2, 4)],
    ),
    (
        "concatenate mismatch axis 1",
        lambda: mg.concatenate([np.ones((2, 3)), leaf((3, 3))], axis=1),
        ValueError,
        "concatenate",
        [(2, 3), (3, 3)],
    ),
    (
        "concatenate ranks",
        lambda: mg.concatenate([np.ones((2, 3)), np.ones(3)]),
        ValueError,
        "concatenate",
        [(2, 3), (3,)],
    ),
    ("concatenate 0-D", lambda: mg.concatenate([np.ones(()), np.ones(())]), ValueError, "concatenate", [()]),
    ("concatenate floats", lambda: mg.concatenate([1.0, 2.0]), ValueError, "concatenate", [()]),
    ("concatenate 1-D and 0-D", lambda: mg.concatenate([T3, 1.0]), ValueError, "concatenate", [(3,), ()]),
    ("concatenate a Tensor", lambda: mg.concatenate(T34), TypeError, "concatenate", []),
    ("concatenate an ndarray", lambda: mg.concatenate(np.ones((3, 4))), TypeError, "concatenate", []),
    ("concatenate None", lambda: mg.concatenate(None), TypeError, "concatenate", []),
    ("concatenate [None]", lambda: mg.concatenate([None, np.ones(2)]), TypeError, "concatenate", []),
    ("concatenate empty", lambda: mg.concatenate([]), ValueError, "concatenate", []),
    (
        "concatenate axis 2",
        lambda: mg.concatenate([np.ones((2, 3)), np.ones((2, 3))], axis=2),
        ValueError,
        "concatenate",
        [(2, 3)],
    ),
    ("concatenate 3-D", lambda: mg.concatenate([np.ones((2, 2, 2))]), ValueError, "concatenate", [(2, 2, 2)]),
    ("stack shapes", lambda: mg.stack([np.ones(3), np.ones(4)]), ValueError, "stack", [(3,), (4,)]),
    ("stack 1-D and 0-D", lambda: mg.stack([L3, 1.0]), ValueError, "stack", [(3,), ()]),
    ("stack 2-D", lambda: mg.stack([np.ones((2, 2)), np.ones((2, 2))]), ValueError, "stack", [(2, 2)]),
    (
        "stack 2-D leaves",
        lambda: mg.stack([leaf((1, 3)), leaf((1, 3))], axis=1),
        ValueError,
        "stack",
        [(1, 3)],
    ),
    ("stack empty", lambda: mg.stack([]), ValueError, "stack", []),
    ("stack a Tensor", lambda: mg.stack(T34), TypeError, "stack", []),
    ("stack an ndarray", lambda: mg.stack(np.ones((3, 4))), TypeError, "stack", []),
    ("stack axis 2", lambda: mg.stack([np.ones(3), np.ones(3)], axis=2), ValueError, "stack", [(3,)]),
    ("diag 0-D", lambda: mg.diag(2.0), ValueError, "diag", [()]),
    ("diag 0-D array", lambda: mg.diag(np.ones(())), ValueError, "diag", [()]),
    ("diag 3-D", lambda: mg.diag(np.ones((2, 2, 2))), ValueError, "diag", [(2, 2, 2)]),
    ("diag k float", lambda: mg.diag(np.ones(3), k=1.0), TypeError, "diag", []),
    ("diag k 2**70", lambda: mg.diag(np.ones(2), k=2**70), ValueError, "diag", [(2,)]),
    # ---- indexing ----
    ("index row out of range", lambda: T34[3], IndexError, "index", [(3, 4)]),
    ("index row -4", lambda: T34[-4], IndexError, "index", [(3, 4)]),
    ("index column out of range", lambda: T34[:, 4], IndexError, "index", [(3, 4)]),
    ("index vector out of range", lambda: T3[3], IndexError, "index", [(3,)]),
    ("index leaf out of range", lambda: L3[-4], IndexError, "index", [(3,)]),
    ("index np.int64 out of range", lambda: T3[np.int64(7)], IndexError, "index", [(3,)]),
    ("index array out of range", lambda: T3[np.array([0, 5])], IndexError, "index", [(3,)]),
    ("index list out of range", lambda: L3[[0, 3]], IndexError, "index", [(3,)]),
    ("index too many", lambda: T34[0, 0, 0], IndexError, "index", [(3, 4)]),
    ("index too many 1-D", lambda: T3[0, 0], IndexError, "index", [(3,)]),
    ("index 0-D", lambda: mg.tensor(2.0)[0], IndexError, "index", [()]),
    ("index 0-D slice", lambda: mg.tensor(2.0, requires_grad=True)[:], IndexError, "index", [()]),
    ("index bool wrong length", lambda: T3[np.array([True, False])], IndexError, "index", [(3,)]),
    ("index float", lambda: T3[1.0], IndexError, "index", [(3,)]),
    ("index step 0", lambda: T3[::0], ValueError, "index", [(3,)]),
    ("index None 2-D", lambda: T34[None, :, :], ValueError, "index", [(1, 3, 4), (3, 4)]),
    ("index None 2-D short", lambda: T34[None], ValueError, "index", [(1, 3, 4), (3, 4)]),
    ("index None None 1-D", lambda: L3[None, :, None], ValueError, "index", [(1, 3, 1), (3,)]),
    (
        "index 2-D int array",
        lambda: T34[np.array([[0, 1], [1, 0]])],
        ValueError,
        "index",
        [(2, 2, 4), (3, 4)],
    ),
    # ---- jacobian, hessian, vjp, jvp ----
    (
        "hessian non-scalar",
        lambda: mg.hessian(lambda x: x * 2.0)(np.ones(3)),
        ValueError,
        "hessian",
        [(3,)],
    ),
    (
        "hessian (2, 2) output",
        lambda: mg.hessian(lambda x: x @ x)(np.ones((2, 2))),
        ValueError,
        "hessian",
        [(2, 2)],
    ),
    ("hessian (1,) output", lambda: mg.hessian(lambda x: x * 2.0)(np.ones(1)), ValueError, "hessian", [(1,)]),
    (
        "hessian complex",
        lambda: mg.hessian(lambda x: mg.sum(x))(np.ones(2, complex)),
        TypeError,
        "hessian",
        [(2,)],
    ),
    (
        "jacobian 3-D",
        lambda: mg.jacobian(lambda x: x)(np.ones((2, 2, 2))),
        ValueError,
        "jacobian",
        [(2, 2, 2)],
    ),
    ("jacobian str output", lambda: mg.jacobian(lambda x: "a")(np.ones(3)), TypeError, "jacobian", []),
    ("jacobian tuple output", lambda: mg.jacobian(lambda x: (x, x))(np.ones(3)), TypeError, "jacobian", []),
    (
        "jacobian list output",
        lambda: mg.jacobian(lambda x: [mg.sum(x), mg.sum(x * x)])(np.ones(3)),
        TypeError,
        "jacobian",
        [],
    ),
    (
        "hessian list output",
        lambda: mg.hessian(lambda x: [mg.sum(x * x * x)])(np.ones(2)),
        TypeError,
        "hessian",
        [],
    ),
    ("vjp tuple output", lambda: mg.vjp(lambda x: (x, x), np.ones(3)), TypeError, "vjp", []),
    (
        "jvp tuple output",
        lambda: mg.jvp(lambda x: (x, x * 2.0), (np.ones(3),), (np.ones(3),)),
        TypeError,
        "jvp",
        [],
    ),
    (
        "jacobian argnums 3",
        lambda: mg.jacobian(lambda x: x, argnums=3)(np.ones(3)),
        ValueError,
        "jacobian",
        [],
    ),
    (
        "jacobian argnums -2",
        lambda: mg.jacobian(lambda x: x, argnums=-2)(np.ones(3)),
        ValueError,
        "jacobian",
        [],
    ),
    (
        "jacobian argnums (0, 5)",
        lambda: mg.jacobian(lambda x, y: x, argnums=(0, 5))(np.ones(3), np.ones(3)),
        ValueError,
        "jacobian",
        [],
    ),
    (
        "jacobian argnums empty",
        lambda: mg.jacobian(lambda x: x, argnums=())(np.ones(3)),
        ValueError,
        "jacobian",
        [],
    ),
    ("jacobian argnums float", lambda: mg.jacobian(lambda x: x, argnums=0.5), TypeError, "jacobian", []),
    ("jacobian argnums None", lambda: mg.jacobian(lambda x: x, argnums=None), TypeError, "jacobian", []),
    (
        "hessian argnums 3",
        lambda: mg.hessian(lambda x: mg.sum(x), argnums=3)(np.ones(3)),
        ValueError,
        "hessian",
        [],
    ),
    ("hessian argnums str", lambda: mg.hessian(lambda x: mg.sum(x), argnums="0"), TypeError, "hessian", []),
    (
        "jvp fewer tangents",
        lambda: mg.jvp(lambda x, y: x * y, (np.ones(3), np.ones(3)), (np.ones(3),)),
        ValueError,
        "jvp",
        [],
    ),
    (
        "jvp more tangents",
        lambda: mg.jvp(lambda x: x, (np.ones(3),), (np.ones(3), np.ones(3))),
        ValueError,
        "jvp",
        [],
    ),
    ("jvp no primals", lambda: mg.jvp(lambda: 1.0, (), ()), ValueError, "jvp", []),
    (
        "jvp tangent shape",
        lambda: mg.jvp(lambda x: x * 2.0, (np.ones(3),), (np.ones(4),)),
        ValueError,
        "jvp",
        [(4,), (3,)],
    ),
    (
        "jvp tangent rank",
        lambda: mg.jvp(lambda x: x * 2.0, (np.ones(3),), (np.ones((1, 3)),)),
        ValueError,
        "jvp",
        [(1, 3), (3,)],
    ),
    (
        "jvp Tensor tangent shape",
        lambda: mg.jvp(lambda x: x * 2.0, (np.ones(3),), (T4,)),
        ValueError,
        "jvp",
        [(4,), (3,)],
    ),
    ("jvp tangent str", lambda: mg.jvp(lambda x: x * 2.0, (np.ones(3),), ("abc",)), TypeError, "jvp", []),
    (
        "jvp tangent complex",
        lambda: mg.jvp(lambda x: x * 2.0, (np.ones(3),), (np.ones(3, complex),)),
        TypeError,
        "jvp",
        [(3,)],
    ),
    ("jvp primals a float", lambda: mg.jvp(lambda x: x, 1.0, 1.0), TypeError, "jvp", []),
    # An ndarray (or Tensor) instead of a tuple would be split into its rows: refused, not reinterpreted.
    (
        "jvp primals an ndarray",
        lambda: mg.jvp(lambda x: x * 2.0, np.ones(1), np.ones(1)),
        TypeError,
        "jvp",
        [],
    ),
    ("jvp primals a Tensor", lambda: mg.jvp(lambda x: x * 2.0, T34, T34), TypeError, "jvp", []),
    ("vjp no primals", lambda: mg.vjp(lambda: 1.0), ValueError, "vjp", []),
    ("vjp complex primal", lambda: mg.vjp(lambda x: x, np.ones(2, complex)), TypeError, "vjp", [(2,)]),
    (
        "vjp_fun cotangent shape",
        lambda: mg.vjp(lambda x: x * 2.0, np.ones(3))[1](np.ones(4)),
        ValueError,
        "vjp",
        [(4,), (3,)],
    ),
    (
        "vjp_fun cotangent rank",
        lambda: mg.vjp(lambda x: x * 2.0, np.ones(3))[1](np.ones((1, 3))),
        ValueError,
        "vjp",
        [(1, 3), (3,)],
    ),
    (
        "vjp_fun cotangent transposed",
        lambda: mg.vjp(lambda x: x * 2.0, np.ones((2, 3)))[1](np.ones((3, 2))),
        ValueError,
        "vjp",
        [(3, 2), (2, 3)],
    ),
    (
        "vjp_fun 0-D cotangent",
        lambda: mg.vjp(lambda x: x * 2.0, np.ones(3))[1](1.0),
        ValueError,
        "vjp",
        [(), (3,)],
    ),
    (
        "vjp_fun vector cotangent of scalar",
        lambda: mg.vjp(lambda x: mg.sum(x), np.ones(3))[1](np.ones(3)),
        ValueError,
        "vjp",
        [(3,), ()],
    ),
    (
        "vjp_fun Tensor cotangent shape",
        lambda: mg.vjp(lambda x: x * 2.0, L3)[1](T4),
        ValueError,
        "vjp",
        [(4,), (3,)],
    ),
    (
        "vjp_fun None cotangent",
        lambda: mg.vjp(lambda x: x * 2.0, np.ones(3))[1](None),
        ValueError,
        "vjp",
        [(3,)],
    ),
    ("vjp_fun str cotangent", lambda: mg.vjp(lambda x: x * 2.0, np.ones(3))[1]("abc"), TypeError, "vjp", []),
]


@pytest.mark.parametrize("label, thunk, exc, op, shape_list", CASES, ids=[c[0] for c in CASES])
def test_clear_error(label, thunk, exc, op, shape_list):
    with pytest.raises(exc) as info:
        thunk()
    msg = str(info.value)
    assert msg.startswith(op + ":"), f"message does not start with the op name {op!r}: {msg!r}"
    for s in shape_list:
        assert str(s) in msg, f"message does not contain the operand shape {s}: {msg!r}"


@pytest.mark.parametrize("axis", [2, 5, -3, 2**70, -(2**70)])
def test_axis_error_names_the_axis_given(axis):
    # Regression: the message used to report a clamped sentinel ("axis 999", "axis -1000").
    with pytest.raises(ValueError) as info:
        mg.sum(np.ones((2, 3)), axis=axis)
    assert f"axis {axis} " in str(info.value), str(info.value)


@pytest.mark.parametrize("transform", ["grad", "value_and_grad", "jacobian", "hessian"])
@pytest.mark.parametrize("argnums", [3, -4, (0, 5), 2**70])
def test_argnums_out_of_range_is_a_value_error(transform, argnums):
    # Regression: an int of the right type but out of range used to raise TypeError.
    with pytest.raises((ValueError, IndexError)) as info:
        getattr(mg, transform)(lambda x, y, z: x, argnums=argnums)(1.0, 2.0, 3.0)
    assert str(info.value).startswith(transform + ":"), str(info.value)


@pytest.mark.parametrize("op", ["logsumexp", "max"])
@pytest.mark.parametrize("axis", [2, 5, -3, 2**70, -(2**70)])
def test_axis_error_of_new_reductions_names_the_axis_given(op, axis):
    with pytest.raises(ValueError) as info:
        getattr(mg, op)(np.ones((2, 3)), axis=axis)
    msg = str(info.value)
    assert msg.startswith(op + ":") and f"axis {axis} " in msg and "(2, 3)" in msg, msg


@pytest.mark.parametrize("op", ["concatenate", "stack"])
@pytest.mark.parametrize("axis", [2, -3, 2**70])
def test_axis_error_of_joins_names_the_axis_given(op, axis):
    with pytest.raises(ValueError) as info:
        getattr(mg, op)([np.ones((2, 3)) if op == "concatenate" else np.ones(3)] * 2, axis=axis)
    msg = str(info.value)
    assert msg.startswith(op + ":") and f"axis {axis} " in msg, msg


@pytest.mark.parametrize(
    "call, pattern",
    [
        (lambda: mg.trace(np.ones(3)), r"^trace: shape \(3,\) "),
        (lambda: mg.trace(np.float64(2.0)), r"^trace: shape \(\) "),
        (lambda: mg.dot(np.ones((3, 4)), np.ones(5)), r"^dot: shapes \(3, 4\) and \(5,\) "),
        (lambda: mg.dot(np.ones(3), np.ones((4, 2))), r"^dot: shapes \(3,\) and \(4, 2\) "),
        (lambda: mg.outer("a", np.ones(2)), r"^outer: "),
    ],
)
def test_linalg_errors_name_the_op_and_shapes(call, pattern):
    with pytest.raises((ValueError, TypeError), match=pattern):
        call()


# Regression: shapes whose element count overflows were not checked (a crash); the ops refuse
# them with a ValueError naming the op.
@pytest.mark.parametrize(
    "make",
    [
        lambda: mg.reshape(mg.tensor(np.arange(6.0)), (132354, 418122854021251)),
        lambda: mg.tensor(np.zeros((0,))).reshape(2**32, 2**32),
        lambda: mg.tensor(np.zeros((2**32, 0))) @ mg.tensor(np.zeros((0, 2**32))),
    ],
)
def test_shapes_whose_size_overflows_are_refused(make):
    with pytest.raises(ValueError, match=r"^(reshape|matmul): "):
        make()


def test_a_tensor_cannot_be_made_without_a_value():
    # Regression: Tensor() and Tensor.__new__(Tensor) made an instance without a node (a crash on use).
    with pytest.raises(TypeError):
        mg.Tensor()
    with pytest.raises(TypeError):
        mg.Tensor.__new__(mg.Tensor)


@pytest.mark.parametrize("transform", ["grad", "jacobian", "hessian"])
def test_a_function_returning_a_tuple_is_refused_not_silently_zero(transform):
    """Regression: a tuple or list of Tensors became a constant and the derivative came out 0."""
    with pytest.raises(TypeError, match=f"^{transform}: the function must return one Tensor"):
        getattr(mg, transform)(lambda x: [mg.sum(x * x)])(np.ones(3))


@pytest.mark.parametrize(
    "label, thunk",
    [
        ("inv", lambda: mg.inv(SING)),
        ("solve", lambda: mg.solve(SING, np.ones(2))),
        ("cholesky", lambda: mg.cholesky(-np.eye(2))),
        ("inv leaf", lambda: mg.inv(mg.tensor(SING, requires_grad=True))),
    ],
)
def test_singular_raises_numpys_own_linalgerror(label, thunk):
    # numpy.linalg.LinAlgError itself, so `except np.linalg.LinAlgError` and numpy-style code work.
    with pytest.raises(np.linalg.LinAlgError) as info:
        thunk()
    assert type(info.value) is np.linalg.LinAlgError, type(info.value)
    assert mg.is_grad_enabled()
    np.testing.assert_allclose(mg.inv(np.eye(2) * 2.0).numpy(), np.eye(2) / 2.0)  # still usable afterwards


def test_state_is_sane_after_errors():
    """An exception in the middle of a transform or backward leaves grad mode and graphs usable."""

    def boom(x):
        raise KeyError("user error")

    with pytest.raises(KeyError):
        mg.grad(boom)(1.0)
    assert mg.is_grad_enabled()
    with pytest.raises(KeyError), mg.no_grad():
        boom(1.0)
    assert mg.is_grad_enabled()
    x = mg.tensor(np.array([1.0, 2.0]), requires_grad=True)
    y = x * x
    with pytest.raises(ValueError):
        y.backward(np.ones(3))
    assert x.grad is None
    y.backward(np.ones(2))
    np.testing.assert_array_equal(np.asarray(x.grad), [2.0, 4.0])
    with pytest.raises(ValueError):
        mg.grad(lambda z: z * 1.0)(np.ones(2))
    assert mg.grad(lambda z: mg.sum(z * z))(np.ones(2)).tolist() == [2.0, 2.0]


# ---- matgrad raises exactly when NumPy raises (and the AD version exactly when the plain one) ----


def outcome(thunk):
    try:
        return ("ok", np.shape(thunk()))
    except ValueError:
        return ("ValueError", None)


@given(a=shapes(), b=shapes())
def test_broadcast_errors_iff_numpy(a, b):
    want = outcome(lambda: np.add(np.ones(a), np.ones(b)))
    for op in (mg.add, mg.mul, mg.maximum):
        assert outcome(lambda op=op: op(np.ones(a), np.ones(b)).numpy()) == want, (op, a, b)
        assert outcome(lambda op=op: op(leaf(a), leaf(b)).numpy()) == want, (op, a, b)


@given(a=shapes(min_ndim=0), b=shapes(min_ndim=0))
def test_matmul_errors_iff_numpy(a, b):
    want = outcome(lambda: np.matmul(np.ones(a), np.ones(b)))
    assert outcome(lambda: mg.matmul(np.ones(a), np.ones(b)).numpy()) == want, (a, b)
    assert outcome(lambda: (leaf(a) @ leaf(b)).numpy()) == want, (a, b)


# Targets use -1 as the only negative entry: NumPy also takes -2, -3, ... as "unknown"
# (an undocumented quirk); matgrad accepts one -1 (docs/concepts.md) and refuses the others.
@given(a=shapes(), target=st.lists(st.integers(-1, 17), max_size=2).map(tuple))
def test_reshape_errors_iff_numpy(a, target):
    want = outcome(lambda: np.reshape(np.ones(a), target))
    assert outcome(lambda: mg.reshape(np.ones(a), target).numpy()) == want, (a, target)
    assert outcome(lambda: leaf(a).reshape(target).numpy()) == want, (a, target)


# ---- the nastiest inputs, in a subprocess ----

NASTY = r"""
import json, warnings
import numpy as np
import matgrad as mg
warnings.simplefilter("ignore")
np.seterr(all="ignore")
results = []

def record(label, thunk, want=None):
    try:
        got = thunk()
        if isinstance(got, mg.Tensor):
            got = got.numpy()
        got = np.asarray(got, dtype=np.float64)
        entry = {"label": label, "status": "ok", "shape": list(got.shape)}
        if want is not None:
            want = np.asarray(want, dtype=np.float64)
            entry["want_shape"] = list(want.shape)
            entry["match"] = bool(got.shape == want.shape and np.array_equal(got, want, equal_nan=True))
            if not entry["match"]:
                entry["got"] = repr(got); entry["want"] = repr(want)
    except (ValueError, TypeError, OverflowError, IndexError, RuntimeError, np.linalg.LinAlgError) as e:
        entry = {"label": label, "status": type(e).__name__, "msg": str(e)}
    results.append(entry)

special = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1e308, -1e308, 5e-324, -1.0, 1.0])
unary = {"neg": np.negative, "exp": np.exp, "log": np.log, "sin": np.sin, "cos": np.cos, "tan": np.tan,
         "tanh": np.tanh, "sqrt": np.sqrt, "abs": np.abs, "square": np.square,
         "sigmoid": lambda x: 1.0 / (1.0 + np.exp(-x)), "relu": lambda x: np.maximum(x, 0.0),
         "softplus": lambda x: np.logaddexp(0.0, x)}
for name, ref in unary.items():
    op = getattr(mg, name)
    record(f"{name} special", lambda: op(special), None)
    record(f"{name} special grad", lambda: mg.grad(lambda x: mg.sum(op(x)))(special))
    record(f"{name} special grad2", lambda: mg.grad(lambda x: mg.sum(mg.grad(lambda z: mg.sum(op(z)))(x)))(special))
    for shape in [(0,), (0, 3), (3, 0)]:
        e = np.zeros(shape)
        record(f"{name} empty {shape}", lambda: op(e), ref(e))
        record(f"{name} empty grad {shape}", lambda: mg.grad(lambda x: mg.sum(op(x)))(e), np.zeros(shape))
for name, ref in {"add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.divide, "pow": np.power,
                  "maximum": np.maximum, "minimum": np.minimum}.items():
    op = getattr(mg, name)
    a, b = np.meshgrid(special, special)
    record(f"{name} special", lambda: op(a, b), None)
    record(f"{name} special grad", lambda: mg.grad(lambda x, y: mg.sum(op(x, y)), argnums=(0, 1))(a, b)[0])
    for sa, sb in [((0,), (0,)), ((0, 3), (3,)), ((0, 3), (1, 3)), ((3, 0), (3, 1)), ((0,), ()), ((0, 1), (1, 0))]:
        x, y = np.ones(sa), np.ones(sb)
        record(f"{name} empty {sa} {sb}", lambda: op(x, y), ref(x, y))
        record(f"{name} empty grad {sa} {sb}",
               lambda: mg.grad(lambda u, v: mg.sum(op(u, v)), argnums=(0, 1))(x, y)[1], np.zeros(sb))
for red, ref in {"sum": np.sum, "mean": np.mean}.items():
    op = getattr(mg, red)
    for shape in [(0,), (0, 3), (3, 0), (0, 0)]:
        for axis in [None, 0, 1, -1, -2]:
            e = np.zeros(shape)
            try:
                want = ref(e, axis=axis)
            except Exception:
                want = None
            record(f"{red} empty {shape} axis={axis}", lambda: op(e, axis=axis), want)
            record(f"{red} empty grad {shape} axis={axis}", lambda: mg.grad(lambda x: mg.sum(op(x, axis=axis)))(e),
                   np.zeros(shape) if want is not None else None)
    record(f"{red} special", lambda: op(special), ref(special))
for sa, sb in [((2, 0), (0, 3)), ((0, 2), (2, 3)), ((2, 3), (3, 0)), ((0,), (0,)), ((0,), (0, 2)), ((2, 0), (0,))]:
    x, y = np.ones(sa), np.ones(sb)
    record(f"matmul empty {sa} {sb}", lambda: mg.matmul(x, y), np.matmul(x, y))
    record(f"matmul empty grad {sa} {sb}",
           lambda: mg.grad(lambda u, v: mg.sum(mg.matmul(u, v)), argnums=(0, 1))(x, y)[0], np.zeros(sa))
record("matmul special", lambda: mg.matmul(special.reshape(2, 5), special.reshape(5, 2)), None)
record("matmul special grad", lambda: mg.grad(lambda x: mg.sum(mg.matmul(x, x.T)))(special.reshape(2, 5)))
for shape, target in [((0, 3), (-1,)), ((0, 3), (3, -1)), ((0, 3), (-1, 0)), ((3, 0), (0,)), ((0,), (0, 5))]:
    e = np.zeros(shape)
    try:
        want = np.reshape(e, target)
    except ValueError:
        want = None
    record(f"reshape empty {shape} {target}", lambda: mg.reshape(e, target), want)
record("transpose empty", lambda: mg.tensor(np.zeros((0, 3))).T, np.zeros((3, 0)))
record("tensor empty list", lambda: mg.tensor([]), np.zeros(0))
record("tensor empty 2-D list", lambda: mg.tensor([[]]), np.zeros((1, 0)))
record("backward empty", lambda: (lambda x: (mg.sum(x * x).backward(), x.grad)[1])(mg.tensor(np.zeros((0, 2)), requires_grad=True)), np.zeros((0, 2)))
record("tensor 2**1000", lambda: mg.tensor(2**1000), float(2**1000))
record("tensor 10**400", lambda: mg.tensor(10**400))
record("tensor -10**400", lambda: mg.tensor(-10**400))
record("add 10**400", lambda: mg.tensor(1.0) + 10**400)
record("radd 10**400", lambda: 10**400 + mg.tensor(1.0))
record("pow 10**400", lambda: mg.tensor(1.0) ** 10**400)
record("maximum 10**400", lambda: mg.maximum(mg.tensor(1.0), 10**400))
record("tensor [2**100, 1]", lambda: mg.tensor([2**100, 1]))
record("tensor [10**400]", lambda: mg.tensor([10**400]))
record("int64 max", lambda: mg.tensor(np.array([2**63 - 1, -2**63])), np.array([2**63 - 1, -2**63], dtype=np.float64))
record("uint64 max", lambda: mg.tensor(np.array([2**64 - 1], dtype=np.uint64)), np.array([2.0**64]))
record("axis 2**70", lambda: mg.sum(np.ones((2, 2)), axis=2**70))
record("axis -2**70", lambda: mg.sum(np.ones((2, 2)), axis=-2**70))
record("reshape 2**70", lambda: mg.reshape(np.ones(4), (2**70, 2)))
record("reshape (2**40, 2**40)", lambda: mg.reshape(np.ones(4), (2**40, 2**40)))
record("reshape -2**70", lambda: mg.reshape(np.ones(4), (-2**70,)))
record("argnums 2**70", lambda: mg.grad(lambda x: x, argnums=2**70)(1.0))
record("object array", lambda: mg.tensor(np.array([1.0, None], dtype=object)))
record("ragged list", lambda: mg.tensor([[1.0, 2.0], [3.0]]))
record("structured", lambda: mg.tensor(np.zeros(2, dtype=[("a", "f8")])))
record("datetime", lambda: mg.tensor(np.array(["2020-01-01"], dtype="datetime64[D]")))
record("float16", lambda: mg.tensor(np.array([1.5], dtype=np.float16)), np.array([1.5]))
record("longdouble", lambda: mg.tensor(np.array([1.5], dtype=np.longdouble)), np.array([1.5]))
record("nan cotangent", lambda: (lambda x: ((x * 2.0).backward(np.array([np.nan, 1.0])), x.grad)[1])(
    mg.tensor(np.ones(2), requires_grad=True)), np.array([np.nan, 2.0]))
record("grad of grad of grad of grad", lambda: mg.grad(mg.grad(mg.grad(mg.grad(lambda x: x ** 5.0))))(2.0), 240.0)
print(json.dumps(results))
"""


@pytest.fixture(scope="module")
def nasty_results():
    proc = run_python(NASTY, timeout=300)
    assert proc.returncode == 0, (
        f"matgrad crashed or aborted on nasty input (return code {proc.returncode})\n"
        f"stderr:\n{proc.stderr[-4000:]}"
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


# The op each nasty case calls, by the first word of its label where that word is not the op.
NASTY_OP = {
    "radd": "add",
    "axis": "sum",
    "argnums": "grad",
    "object": "tensor",
    "ragged": "tensor",
    "structured": "tensor",
    "datetime": "tensor",
    "float16": "tensor",
    "longdouble": "tensor",
    "int64": "tensor",
    "uint64": "tensor",
    "nan": "backward",
}


def nasty_op(label: str) -> str:
    first = label.split()[0]
    return NASTY_OP.get(first, first)


def test_nasty_inputs_never_crash(nasty_results):
    """The child ran every case to the end (the fixture checks its return code) and each left a
    well-formed record: a value of at most 2 dimensions, equal to NumPy's where the case has
    NumPy's answer, or a clear exception of an expected type whose message starts with the name of
    the op the case calls. Every unary op got its special-value cases, forward and through grad."""
    labels = [r["label"] for r in nasty_results]
    assert len(labels) == len(set(labels)) > 200, "each case recorded once, and all of them"
    for name in SPECIAL_UNARY:
        for suffix in ("special", "special grad", "special grad2"):
            assert f"{name} {suffix}" in labels, f"no record of {name} {suffix}"
    for r in nasty_results:
        if r["status"] == "ok":
            assert len(r["shape"]) <= 2 and all(d >= 0 for d in r["shape"]), r
            if "want_shape" in r:
                assert r["match"] and r["shape"] == r["want_shape"], r
        else:
            assert r["status"] in ("ValueError", "TypeError", "IndexError", "LinAlgError"), r
            assert r["msg"].startswith(nasty_op(r["label"]) + ": "), r


def clear_message(msg: str) -> bool:
    """'op: explanation' with a Python identifier as the op name."""
    head, sep, rest = msg.partition(":")
    return bool(sep) and head.isidentifier() and bool(rest.strip())


def test_nasty_inputs_give_numpys_answer_or_a_clear_error(nasty_results):
    # (Regression: ints beyond int64 in a reshape target or argnums used to surface pybind11's
    # "Unable to cast Python instance..." RuntimeError or a bare OverflowError.)
    wrong = [r for r in nasty_results if r.get("match") is False]
    assert not wrong, "silent wrong results:\n" + "\n".join(json.dumps(r) for r in wrong)
    for r in nasty_results:
        if r["status"] != "ok":
            assert clear_message(r["msg"]), f"unclear error message: {r}"
            assert r["status"] in ("ValueError", "TypeError", "IndexError", "LinAlgError"), r


@pytest.mark.parametrize(
    "label",
    [
        "tensor 10**400",
        "tensor -10**400",
        "add 10**400",
        "radd 10**400",
        "tensor [10**400]",
        "axis 2**70",
        "reshape 2**70",
        "reshape (2**40, 2**40)",
        "reshape -2**70",
        "argnums 2**70",
        "object array",
        "ragged list",
        "structured",
        "datetime",
    ],
)
def test_nasty_inputs_that_must_raise(nasty_results, label):
    (r,) = [r for r in nasty_results if r["label"] == label]
    assert r["status"] != "ok", f"{label}: expected a clear exception, got a result {r}"


SPECIAL = np.repeat(
    np.array(
        [
            np.nan,
            np.inf,
            -np.inf,
            0.0,
            -0.0,
            1e308,
            -1e308,
            5e-324,
            1e-310,
            -1.0,
            1.0,
            0.5,
            800.0,
            -800.0,
            30.0,
            -30.0,
        ]
    ),
    8,
)  # repeated: packet and scalar paths
SPECIAL_UNARY = {
    "neg": np.negative,
    "exp": np.exp,
    "log": np.log,
    "sin": np.sin,
    "cos": np.cos,
    "tan": np.tan,
    "tanh": np.tanh,
    "sqrt": np.sqrt,
    "abs": np.abs,
    "square": np.square,
    "sigmoid": lambda x: 1.0 / (1.0 + np.exp(-x)),
    "relu": lambda x: np.maximum(x, 0.0),
    "softplus": lambda x: np.logaddexp(0.0, x),
}


@pytest.mark.parametrize("name", list(SPECIAL_UNARY))
def test_special_values_forward_match_numpy(name, nasty_results):
    """NaN/inf/huge/subnormal inputs (they did not crash in the subprocess): forward equals NumPy."""
    ref = SPECIAL_UNARY[name]
    with np.errstate(all="ignore"):
        want = ref(SPECIAL)
    got = getattr(mg, name)(SPECIAL).numpy()
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want), err_msg=name)
    np.testing.assert_allclose(got, want, rtol=1e-13, atol=0, err_msg=name)


@pytest.mark.parametrize("name", ["add", "sub", "mul", "div", "maximum", "minimum", "pow"])
def test_special_values_binary_forward_match_numpy(name, nasty_results):
    a, b = np.meshgrid(SPECIAL, SPECIAL)
    with np.errstate(all="ignore"):
        want = getattr(
            np, {"sub": "subtract", "mul": "multiply", "div": "divide", "pow": "power"}.get(name, name)
        )(a, b)
    got = getattr(mg, name)(a, b).numpy()
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want), err_msg=name)
    np.testing.assert_allclose(got, want, rtol=1e-13, atol=0, err_msg=name)
