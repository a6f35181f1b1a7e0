"""NumPy interop, exactly as the Python API contract in docs/concepts.md states it: arrays in
(zero copy for constants, one copy for leaves, conversions), values out (read-only views that
keep their owner alive), transforms' results the caller owns, gradients that never alias the
caller's arrays, dtypes (NEP 50), ndarrays and foreign types as operands, and the fast call
path."""

from __future__ import annotations

import gc

import numpy as np
import pytest
from conftest import run_python

import matgrad as mg

# ---- in: zero copy for constants, one copy for leaves, correct conversion for the rest ----


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape", [(), (5,), (3, 4), (1, 1), (1, 6), (6, 1), (40, 30)])
def test_c_contiguous_constant_is_mapped_not_copied(dtype, shape):
    a = np.arange(int(np.prod(shape)), dtype=dtype).reshape(shape)
    t = mg.tensor(a)
    assert t.dtype == dtype
    assert np.shares_memory(t.numpy(), a)
    assert np.shares_memory(np.asarray(t), a)
    assert a.flags.writeable, "the caller's array must stay writable"


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape", [(), (5,), (3, 4), (40, 30)])
def test_requires_grad_leaf_owns_a_copy(dtype, shape):
    a = np.array(np.arange(int(np.prod(shape))).reshape(shape) + 1, dtype=dtype)
    keep = a.copy()
    t = mg.tensor(a, requires_grad=True)
    assert t.requires_grad and t.dtype == dtype and t.shape == shape
    assert not np.shares_memory(t.numpy(), a)
    assert a.flags.writeable
    a[...] = -7  # the caller may keep using its array: the leaf is not affected
    np.testing.assert_array_equal(t.numpy(), keep)


def test_setting_requires_grad_on_a_mapped_constant_copies():
    a = np.arange(3.0)
    t = mg.tensor(a)
    t.requires_grad = True
    a[0] = 100.0
    np.testing.assert_array_equal(t.numpy(), [0.0, 1.0, 2.0])


CONVERSIONS = [
    # (input, expected dtype, expected values)
    ("python float", 2.5, np.float64, np.array(2.5)),
    ("python int", 3, np.float64, np.array(3.0)),
    ("python bool", True, np.float64, np.array(1.0)),
    ("list of ints", [1, 2, 3], np.float64, np.array([1.0, 2.0, 3.0])),
    ("list of floats", [[1.5, 2.5], [3.5, 4.5]], np.float64, np.array([[1.5, 2.5], [3.5, 4.5]])),
    ("list of bools", [True, False], np.float64, np.array([1.0, 0.0])),
    (
        "int64 array",
        np.array([[1, -2], [3, 4]], dtype=np.int64),
        np.float64,
        np.array([[1.0, -2.0], [3.0, 4.0]]),
    ),
    ("int32 array", np.array([5, -6], dtype=np.int32), np.float64, np.array([5.0, -6.0])),
    ("uint8 array", np.array([255, 0], dtype=np.uint8), np.float64, np.array([255.0, 0.0])),
    ("bool array", np.array([True, False, True]), np.float64, np.array([1.0, 0.0, 1.0])),
    ("np.float64 scalar", np.float64(1.25), np.float64, np.array(1.25)),
    ("np.float32 scalar", np.float32(1.25), np.float32, np.array(1.25)),
    ("np.int64 scalar", np.int64(7), np.float64, np.array(7.0)),
    (
        "strided float64",
        np.arange(12.0).reshape(3, 4)[:, ::2],
        np.float64,
        np.array([[0.0, 2.0], [4, 6], [8, 10]]),
    ),
    ("strided float32", np.arange(12.0, dtype=np.float32)[::3], np.float32, np.array([0.0, 3, 6, 9])),
    (
        "fortran order",
        np.asfortranarray(np.arange(6.0).reshape(2, 3)),
        np.float64,
        np.arange(6.0).reshape(2, 3),
    ),
    ("transposed view", np.arange(6.0).reshape(2, 3).T, np.float64, np.arange(6.0).reshape(2, 3).T),
    ("big-endian float64", np.arange(4.0).astype(">f8"), np.float64, np.arange(4.0)),
    ("0-d float32 array", np.array(3.5, dtype=np.float32), np.float32, np.array(3.5)),
]


@pytest.mark.parametrize("requires_grad", [False, True])
@pytest.mark.parametrize("label, data, dtype, values", CONVERSIONS, ids=[c[0] for c in CONVERSIONS])
def test_conversion(label, data, dtype, values, requires_grad):
    t = mg.tensor(data, requires_grad=requires_grad)
    assert t.dtype == dtype, label
    assert t.shape == values.shape and t.ndim == values.ndim
    out = t.numpy()
    assert out.dtype == dtype and out.shape == values.shape
    np.testing.assert_array_equal(out, values)
    if isinstance(data, np.ndarray) and not (data.flags.c_contiguous and data.dtype == dtype):
        assert not np.shares_memory(out, data)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, "float32", "float64", np.dtype(np.float32)])
@pytest.mark.parametrize(
    "data", [[1, 2, 3], np.arange(3.0), np.arange(3, dtype=np.float32), 2.0, np.arange(3)]
)
def test_dtype_argument(data, dtype):
    t = mg.tensor(data, dtype=dtype)
    assert t.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(t.numpy(), np.asarray(data, dtype=dtype))
    t2 = mg.tensor(data, dtype=dtype, requires_grad=True)
    assert t2.dtype == np.dtype(dtype)


@pytest.mark.parametrize("shape", [(), (1,), (4,), (1, 1), (1, 4), (4, 1), (2, 3)])
def test_shapes_round_trip(shape):
    a = np.random.default_rng(0).standard_normal(shape)
    t = mg.tensor(a)
    assert t.shape == shape and t.ndim == len(shape)
    assert t.numpy().shape == shape and np.asarray(t).shape == shape
    r = (t * 2.0).numpy()
    assert r.shape == shape
    np.testing.assert_array_equal(r, a * 2.0)
    g = mg.grad(lambda x: mg.sum(x * x))(a)
    assert g.shape == shape
    x = mg.tensor(a, requires_grad=True)
    mg.sum(x * x).backward()
    assert x.grad.shape == shape


def test_gradient_shapes_follow_inputs():
    g = mg.grad(lambda x: mg.sum(x * x))(np.array([1.0, 2.0, 3.0]))
    assert g.shape == (3,)
    np.testing.assert_array_equal(g, [2.0, 4.0, 6.0])
    g = mg.grad(lambda x: x * x)(3.0)
    assert isinstance(g, np.ndarray) and g.shape == () and g.dtype == np.float64
    assert g == 6.0
    g = mg.grad(lambda x: mg.sum(x))([1.0, 2.0])
    assert g.shape == (2,)


# ---- out: read-only views that keep their owner alive ----


def test_values_are_read_only_views():
    a = np.arange(6.0).reshape(2, 3)
    for t in (mg.tensor(a), mg.tensor(a, requires_grad=True), mg.tensor(a) * 2.0, mg.exp(mg.tensor(a))):
        v = t.numpy()
        assert not v.flags.writeable
        with pytest.raises(ValueError):
            v[0, 0] = 1.0
        w = np.asarray(t)
        with pytest.raises(ValueError):
            w[0, 0] = 1.0
    assert a.flags.writeable
    a[0, 0] = 5.0  # the caller's own array stays writable


def test_gradient_view_is_read_only():
    x = mg.tensor(np.ones(3), requires_grad=True)
    mg.sum(x * x).backward()
    g = np.asarray(x.grad)
    with pytest.raises(ValueError):
        g[0] = 0.0


@pytest.mark.parametrize("n", [3, 1000])
def test_returned_arrays_keep_their_owner_alive(n):
    x = mg.tensor(np.arange(float(n)), requires_grad=True)
    y = mg.sin(x) * 2.0
    v = y.numpy()
    w = np.asarray(y)
    mg.sum(y).backward()
    gv = np.asarray(x.grad)
    # copies taken while the owners live (matgrad's sin and cos may differ from NumPy's in the
    # last bits: Note [vectorised math]); freed and reused memory would change the views
    v0, gv0 = v.copy(), gv.copy()
    np.testing.assert_allclose(v0, 2.0 * np.sin(np.arange(float(n))), rtol=1e-15, atol=1e-15)
    np.testing.assert_allclose(gv0, 2.0 * np.cos(np.arange(float(n))), rtol=1e-15, atol=1e-15)
    del x, y
    gc.collect()
    for _ in range(20):  # churn the allocator: freed memory would be reused
        mg.exp(mg.tensor(np.full(n, 9.0), requires_grad=True)).numpy()
    np.testing.assert_array_equal(v, v0)
    np.testing.assert_array_equal(w, v)
    np.testing.assert_array_equal(gv, gv0)


def test_mapped_constant_keeps_the_callers_array_alive():
    a = np.arange(1000.0)
    t = mg.tensor(a)
    del a
    gc.collect()
    for _ in range(20):
        np.full(1000, 9.0)
    np.testing.assert_array_equal(t.numpy(), np.arange(1000.0))
    np.testing.assert_array_equal((t + 1.0).numpy(), np.arange(1000.0) + 1.0)


def test_numpy_view_outlives_a_leaf_moving_to_its_own_storage():
    # Regression: .numpy() once kept only the node alive; requires_grad=True moved the node's storage and
    # freed the caller's array under the view (a segfault).
    r = run_python(
        """
        import numpy as np, matgrad as mg
        a = np.full(2_000_000, 7.0); t = mg.tensor(a); v = t.numpy(); del a
        t.requires_grad = True
        b = np.full(2_000_000, 1.0)
        assert (v[:3] == 7.0).all() and (t.numpy()[:3] == 7.0).all()
        print("ok")
        """
    )
    assert r.returncode == 0 and "ok" in r.stdout, r.stderr


# ---- transforms: results of their own ----


def test_transforms_return_writable_arrays_the_caller_owns():
    a = np.array([1.0, 2.0, 3.0])
    v, g = mg.value_and_grad(lambda x: mg.sum(x * x))(a)
    for out in (v, g):
        assert type(out) is np.ndarray and out.flags.writeable
        assert not np.shares_memory(out, a)
    assert v.shape == () and v == 14.0
    np.testing.assert_array_equal(g, [2.0, 4.0, 6.0])
    g[:] = 0.0  # the caller's to modify
    np.testing.assert_array_equal(mg.grad(lambda x: mg.sum(x * x))(a), [2.0, 4.0, 6.0])
    np.testing.assert_array_equal(a, [1.0, 2.0, 3.0])  # inputs are never written
    assert a.flags.writeable
    # value of an identity function is a copy, not the caller's array
    v2, _ = mg.value_and_grad(lambda x: mg.sum(x))(a)
    assert v2.flags.writeable


def test_value_of_identity_is_not_the_callers_array():
    a = np.array(3.0)
    v, g = mg.value_and_grad(lambda x: x)(a)
    assert not np.shares_memory(v, a)
    v[...] = 7.0
    assert a == 3.0
    assert g == 1.0


# ---- gradients never alias the caller's arrays ----

ALIASING = [
    ("x + 1.0", lambda x: x + 1.0, False),
    ("x + 1.0", lambda x: x + 1.0, True),
    ("x - 1.0", lambda x: x - 1.0, False),
    ("x - 1.0", lambda x: x - 1.0, True),
    ("reshape", lambda x: x.reshape(1, -1), False),
]


@pytest.mark.parametrize("n", [3, 100])
@pytest.mark.parametrize(
    "label, f, create_graph", ALIASING, ids=[f"{a[0]}-create_graph={a[2]}" for a in ALIASING]
)
def test_grad_does_not_alias_the_callers_cotangent(label, f, create_graph, n):
    # Regression: x.grad used to map the caller's cotangent array when the VJPs passed it on.
    x = mg.tensor(np.arange(float(n)), requires_grad=True)
    y = f(x)
    c = np.ones(y.shape)
    y.backward(c, create_graph=create_graph)
    c[...] = 5.0  # the caller reuses its array
    np.testing.assert_array_equal(np.asarray(x.grad), np.ones(n))


@pytest.mark.parametrize("create_graph", [False, True])
def test_grad_does_not_alias_the_cotangent_for_other_ops(create_graph):
    for f in (lambda x: x * 1.0, lambda x: x.T, lambda x: x + x, lambda x: mg.neg(x)):
        x = mg.tensor(np.arange(3.0), requires_grad=True)
        y = f(x)
        c = np.ones(y.shape)
        y.backward(c, create_graph=create_graph)
        want = np.asarray(x.grad).copy()
        c[...] = 5.0
        np.testing.assert_array_equal(np.asarray(x.grad), want)


@pytest.mark.parametrize("create_graph", [False, True])
@pytest.mark.parametrize("kind", ["tensor cotangent", "leaf is the output", "retain_grad node"])
def test_gradients_never_alias_the_callers_arrays(kind, create_graph):
    c = np.ones(3)
    x = mg.tensor(np.arange(3.0), requires_grad=True)
    watched = x
    if kind == "tensor cotangent":
        (x + 1.0).backward(mg.tensor(c), create_graph=create_graph)
    elif kind == "leaf is the output":
        x.backward(c, create_graph=create_graph)
    else:
        h = x * 2.0
        h.retain_grad()
        (h + 1.0).backward(c, create_graph=create_graph)
        watched = h
    c[...] = 7.0
    np.testing.assert_array_equal(np.asarray(watched.grad), np.ones(3))


def test_assigned_grad_is_a_copy():
    # Regression: x.grad = g kept the caller's array, so writing into g afterwards changed x.grad.
    x = mg.tensor(np.ones(3), requires_grad=True)
    g = np.ones(3)
    x.grad = g
    g[0] = 42.0
    np.testing.assert_array_equal(np.asarray(x.grad), np.ones(3))


# ---- dtypes: NEP 50 ----


def test_nep50_dtype_rules():
    x32 = mg.tensor(np.ones(3, dtype=np.float32))
    x64 = mg.tensor(np.ones(3))
    assert (x32 * 0.9).dtype == np.float32  # Python scalars are weak
    assert (0.9 * x32).dtype == np.float32
    assert (x32 + 2).dtype == np.float32
    assert (x32**2.0).dtype == np.float32
    assert (2.0**x32).dtype == np.float32
    assert (1.0 - x32).dtype == np.float32
    assert (1.0 / x32).dtype == np.float32
    assert mg.maximum(x32, 0.5).dtype == np.float32
    assert (x32 * x64).dtype == np.float64  # float32 with float64 gives float64
    assert (x64 * x32).dtype == np.float64
    assert mg.matmul(x32, x64).dtype == np.float64
    assert (x32 * np.float64(0.9)).dtype == np.float64  # NumPy scalars are strong
    assert (np.float64(0.9) * x32).dtype == np.float64
    assert (x32 * np.float32(0.9)).dtype == np.float32
    assert (x64 * np.float32(0.9)).dtype == np.float64
    assert (np.ones(3) * x32).dtype == np.float64
    assert (np.ones(3, dtype=np.float32) * x32).dtype == np.float32
    # The weak scalar is rounded to float32 like NumPy does.
    np.testing.assert_array_equal((x32 * 0.9).numpy(), np.ones(3, dtype=np.float32) * 0.9)


def test_gradient_has_its_inputs_dtype():
    x = mg.tensor(np.full(3, 0.5, dtype=np.float32), requires_grad=True)
    y = mg.tensor(np.full(3, 2.0), requires_grad=True)
    z = mg.sum(x * y)
    assert z.dtype == np.float64
    z.backward()
    assert x.grad.dtype == np.float32 and y.grad.dtype == np.float64
    np.testing.assert_array_equal(np.asarray(x.grad), np.full(3, 2.0, dtype=np.float32))
    gx, gy = mg.grad(lambda a, b: mg.sum(a * b), argnums=(0, 1))(np.ones(3, np.float32), np.ones(3))
    assert gx.dtype == np.float32 and gy.dtype == np.float64


@pytest.mark.parametrize(
    "f",
    [
        lambda a: mg.add(2.0, a),
        lambda a: mg.sub(1, a),
        lambda a: mg.maximum(0.0, a),
        lambda a: mg.mul(True, a),
    ],
)
def test_weak_scalar_in_first_position_keeps_float32(f):
    # Regression: a Python scalar in first position (mg.add(2.0, a)) promoted float32 to float64;
    # a weak scalar takes the other operand's dtype wherever it stands (NEP 50).
    assert f(np.ones(3, np.float32)).dtype == np.float32


@pytest.mark.parametrize("dt", [np.int8, np.uint8, np.int16, np.uint16, np.bool_, np.int32, np.int64])
def test_float32_with_integer_arrays_follows_numpy(dt):
    # Regression: float32 with a bool or <= 16-bit integer array gave float64; NumPy 2 keeps float32
    # (and int32/int64 give float64).
    a32 = np.ones(3, np.float32)
    got = (mg.tensor(a32) * np.ones(3, dt)).dtype
    assert got == np.result_type(a32, np.ones(3, dt)), (dt, got)
    assert mg.tensor(np.ones(3, dt)).dtype == np.float64  # mg.tensor: ints and bools are float64


# ---- __array_ufunc__ = None and __array__; foreign operands ----

OPS = [
    ("+", lambda a, t: a + t),
    ("-", lambda a, t: a - t),
    ("*", lambda a, t: a * t),
    ("/", lambda a, t: a / t),
    ("**", lambda a, t: a**t),
    ("@", lambda a, t: a @ t),
]

LEFT_OPERANDS = [
    pytest.param(sym, op, left, id=f"{left}{sym}Tensor")
    for left in ("ndarray", "0-d ndarray", "np.float64")
    for sym, op in OPS
    if sym != "@" or left == "ndarray"  # matmul needs a 1-D/2-D left operand
]


@pytest.mark.parametrize("sym, op, left", LEFT_OPERANDS)
def test_ndarray_on_the_left_records_the_op(sym, op, left):
    a = {"ndarray": np.full(3, 1.5), "0-d ndarray": np.array(1.5), "np.float64": np.float64(1.5)}[left]
    t = mg.tensor(np.array([0.5, 1.0, 2.0]), requires_grad=True)
    r = op(a, t)
    assert type(r) is mg.Tensor, f"ndarray {sym} Tensor must give a Tensor, got {type(r).__name__}"
    assert r.requires_grad
    np.testing.assert_allclose(r.numpy(), op(np.asarray(a), np.array([0.5, 1.0, 2.0])), rtol=1e-15)
    mg.sum(r).backward()
    assert t.grad is not None and t.grad.shape == (3,)


def test_ufuncs_on_tensors_are_refused():
    t = mg.tensor(np.ones(3))
    assert mg.Tensor.__array_ufunc__ is None
    with pytest.raises(TypeError):
        np.sin(t)


def test_dunder_array():
    t = mg.tensor(np.arange(3.0))
    a = np.asarray(t)
    assert a.dtype == np.float64 and np.shares_memory(a, t.numpy()) and not a.flags.writeable
    assert np.shares_memory(t.__array__(), t.numpy())
    assert np.shares_memory(t.__array__(None, None), t.numpy())
    c = np.array(t)  # copy=True
    assert c.flags.writeable and not np.shares_memory(c, t.numpy())
    c2 = t.__array__(copy=True)
    assert c2.flags.writeable and not np.shares_memory(c2, t.numpy())
    f = np.asarray(t, dtype=np.float32)
    assert f.dtype == np.float32
    np.testing.assert_array_equal(f, [0.0, 1.0, 2.0])
    assert t.__array__(dtype=np.float32).dtype == np.float32
    assert np.shares_memory(np.array(t, copy=False), t.numpy())
    with pytest.raises(ValueError):
        t.__array__(dtype=np.float32, copy=False)  # a dtype change needs a copy
    assert np.shares_memory(t.__array__(np.float64, copy=False), t.numpy())


def test_foreign_types_get_their_reflected_operator():
    # Regression: an operand of a type matgrad does not know raised TypeError at once instead of
    # NotImplemented, so that type's reflected operator (__radd__, __rmatmul__) never ran.
    class Other:
        def __radd__(self, other):
            return "Other.__radd__"

        def __rmatmul__(self, other):
            return "Other.__rmatmul__"

    t = mg.tensor([1.0, 2.0])
    assert t + Other() == "Other.__radd__"
    assert t @ Other() == "Other.__rmatmul__"
    with pytest.raises(TypeError, match=r"^add: "):
        t + "a"


# ---- the hot call path (python/src/fast.cpp, Note [the hot call path]) ----


def test_the_fast_call_path_is_the_one_running():
    # Results are made in pybind11's simple instance layout without its registration, and
    # Tensor's number slots are matgrad's own: a pybind11 whose layout differs (outside the
    # range pyproject.toml pins) makes this fail instead of silently slowing every op down.
    assert mg._core._fast_path()
    t = mg.tensor([1.0, 2.0])
    for r in (t + 1.0, 2.0 * t, -t, t @ t, mg.sin(t), t.sum()):
        assert type(r) is mg.Tensor
