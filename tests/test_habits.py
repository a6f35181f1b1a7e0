"""Python's and NumPy's habits on Tensors: format(), int(), tolist(), comparisons, NumPy functions,
pickle and copy, keyword arguments through the transforms, the tensors made from a shape, and
that every value reader raises while mg.compile traces."""

from __future__ import annotations

import copy
import operator
import pickle

import numpy as np
import pytest

import matgrad as mg

RNG = np.random.default_rng(7)


# ---- format, int, tolist ----


@pytest.mark.parametrize("shape", [(), (1,), (1, 1)])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_format_of_one_element_formats_its_float(shape, dtype):
    v = np.full(shape, -2.71828, dtype=dtype)
    t = mg.tensor(v)
    for spec in [".3f", "8.2e", "+g", ">10.1f"]:
        assert f"{t:{spec}}" == format(float(v.reshape(-1)[0]), spec)
    assert int(t) == -2 and int(mg.tensor(np.full(shape, 3.99, dtype))) == 3


def test_format_with_an_empty_spec_is_str_and_a_spec_needs_one_element():
    t = mg.tensor([1.0, 2.0], requires_grad=True)
    assert f"{t}" == str(t) == repr(t)
    with pytest.raises(
        TypeError, match=r"format: the format spec '\.2f' needs a tensor with one element, got shape \(2,\)"
    ):
        f"{t:.2f}"


def test_int_needs_one_element_and_a_float_tensor_is_no_index():
    with pytest.raises(TypeError, match=r"int: only tensors with one element .*\(2, 2\)"):
        int(mg.tensor(np.ones((2, 2))))
    with pytest.raises(ValueError):
        int(mg.tensor(float("nan")))
    with pytest.raises(TypeError):  # as NumPy's float arrays: not an index
        operator.index(mg.tensor(1.0))
    with pytest.raises(TypeError):
        list(range(3))[mg.tensor(1.0)]


@pytest.mark.parametrize("shape", [(), (3,), (2, 3), (0,), (0, 2)])
def test_tolist_is_numpys(shape):
    v = RNG.standard_normal(shape)
    got = mg.tensor(v, requires_grad=True).tolist()
    assert got == v.tolist()
    if shape:
        assert isinstance(got, list)
    else:
        assert isinstance(got, float)
    assert mg.tensor(np.float32(0.5)).tolist() == 0.5


# ---- comparisons ----

OPS = [operator.eq, operator.ne, operator.lt, operator.le, operator.gt, operator.ge]


@pytest.mark.parametrize("op", OPS, ids=lambda o: o.__name__)
def test_comparisons_give_numpy_bool_arrays_of_the_values(op):
    a = np.array([[1.0, 2.0, 3.0], [3.0, 2.0, 1.0]])
    b = np.array([2.0, 2.0, 2.0])
    x, y = mg.tensor(a, requires_grad=True), mg.tensor(b)
    for lhs, rhs, ref in [
        (x, y, op(a, b)),
        (x, b, op(a, b)),
        (x, 2.0, op(a, 2.0)),
        (x, [2, 2, 2], op(a, b)),
        (a, y, op(a, b)),  # ndarray on the left: its operator defers to the Tensor's reflection
        (2.0, x, op(2.0, a)),
        (x, x, op(a, a)),
    ]:
        got = op(lhs, rhs)
        assert isinstance(got, np.ndarray) and got.dtype == np.bool_, (lhs, rhs)
        np.testing.assert_array_equal(got, ref)


def test_comparisons_are_not_identity_and_tensors_stay_hashable():
    x = mg.tensor([1.0, 2.0])
    y = mg.tensor([1.0, 2.0])
    assert (x == y).all() and x is not y
    assert not (x == None)  # noqa: E711  (a non-numeric operand: identity, as for any object)
    assert x != "a"
    d = {x: 1, y: 2}  # hashing stays by identity
    assert d[x] == 1 and d[y] == 2 and len({x, y, x}) == 2
    with pytest.raises(TypeError):
        x < None  # noqa: B015
    with pytest.raises(ValueError, match=r"comparison <: shapes \(2,\) and \(3,\) do not broadcast"):
        x < np.ones(3)  # noqa: B015
    with pytest.raises(ValueError, match="ambiguous"):  # bool of many elements, as NumPy
        bool(mg.tensor([1.0, 2.0]))
    # the result feeds mg.where (a mask, no gradient)
    z = mg.tensor([-1.0, 2.0], requires_grad=True)
    mg.sum(mg.where(z > 0, z, 0.0)).backward()
    np.testing.assert_array_equal(np.asarray(z.grad), [0.0, 1.0])


# ---- NumPy functions ----

A = RNG.standard_normal((3, 3)) + 3 * np.eye(3)
B = RNG.standard_normal((3, 2))
V = RNG.standard_normal(3)

RECORDED = [
    ("sum", lambda x: np.sum(x), lambda x: mg.sum(x)),
    ("sum axis", lambda x: np.sum(np.sum(x, axis=0) ** 2), lambda x: mg.sum(mg.sum(x, axis=0) ** 2)),
    ("mean", lambda x: np.mean(x, axis=1).sum(), lambda x: mg.mean(x, axis=1).sum()),
    ("max", lambda x: np.max(x), lambda x: mg.max(x)),
    ("transpose", lambda x: mg.sum(np.transpose(x) @ B), lambda x: mg.sum(mg.transpose(x) @ B)),
    ("transpose axes", lambda x: mg.sum(np.transpose(x, (1, 0)) @ B), lambda x: mg.sum(x.T @ B)),
    (
        "reshape",
        lambda x: mg.sum(np.reshape(x, (9,)) * np.arange(9.0)),
        lambda x: mg.sum(x.reshape(9) * np.arange(9.0)),
    ),
    (
        "concatenate",
        lambda x: mg.sum(np.concatenate([x, x * 2], axis=1) ** 2),
        lambda x: mg.sum(mg.concatenate([x, x * 2], 1) ** 2),
    ),
    ("stack", lambda x: mg.sum(np.stack([x[0], x[1]]) ** 3), lambda x: mg.sum(mg.stack([x[0], x[1]]) ** 3)),
    ("trace", lambda x: np.trace(x @ x), lambda x: mg.trace(x @ x)),
    ("dot", lambda x: np.dot(x[0], x[1]), lambda x: mg.dot(x[0], x[1])),
    ("outer", lambda x: mg.sum(np.outer(x[0], V) ** 2), lambda x: mg.sum(mg.outer(x[0], V) ** 2)),
    ("kron", lambda x: mg.sum(np.kron(x, np.eye(2)) ** 2), lambda x: mg.sum(mg.kron(x, np.eye(2)) ** 2)),
    ("where", lambda x: mg.sum(np.where(A > 3, x, x * x)), lambda x: mg.sum(mg.where(A > 3, x, x * x))),
    ("diag", lambda x: mg.sum(np.diag(x) ** 2), lambda x: mg.sum(mg.diag(x) ** 2)),
    ("det", lambda x: np.linalg.det(x), lambda x: mg.det(x)),
    ("slogdet", lambda x: np.linalg.slogdet(x)[1], lambda x: mg.slogdet(x)[1]),
    ("inv", lambda x: mg.sum(np.linalg.inv(x)), lambda x: mg.sum(mg.inv(x))),
    ("solve", lambda x: mg.sum(np.linalg.solve(x, B)), lambda x: mg.sum(mg.solve(x, B))),
    ("cholesky", lambda x: mg.sum(np.linalg.cholesky(x @ x.T)), lambda x: mg.sum(mg.cholesky(x @ x.T))),
    (
        "cholesky upper",
        lambda x: mg.sum(np.linalg.cholesky(x @ x.T, upper=True) * np.triu(np.ones((3, 3)))),
        lambda x: mg.sum(mg.cholesky(x @ x.T).T),
    ),
    ("norm", lambda x: np.linalg.norm(x), lambda x: mg.norm(x)),
    ("matrix_power", lambda x: mg.sum(np.linalg.matrix_power(x, 3)), lambda x: mg.sum(mg.matrix_power(x, 3))),
]


@pytest.mark.parametrize("name,numpy_f,mg_f", RECORDED, ids=[r[0] for r in RECORDED])
def test_numpy_functions_with_an_mg_op_are_recorded(name, numpy_f, mg_f):
    if name == "cholesky upper" and np.lib.NumpyVersion(np.__version__) < "2.0.0":
        pytest.skip("numpy.linalg.cholesky(upper=) is NumPy 2's")
    x = mg.tensor(A, requires_grad=True)
    out = numpy_f(x)
    assert isinstance(out, mg.Tensor) and out.requires_grad
    np.testing.assert_allclose(np.asarray(out), np.asarray(mg_f(mg.tensor(A))), rtol=1e-12)
    np.testing.assert_allclose(mg.grad(numpy_f)(A), mg.grad(mg_f)(A), rtol=1e-10, atol=1e-12)
    mg.check_grad(numpy_f, A)


def test_numpy_arguments_an_op_lacks_raise_naming_it():
    x = mg.tensor(np.ones((2, 3)), requires_grad=True)
    with pytest.raises(TypeError, match=r"numpy.sum on a matgrad Tensor: the argument keepdims=True"):
        np.sum(x, keepdims=True)
    with pytest.raises(TypeError, match=r"argument dtype="):
        np.mean(x, dtype=np.float32)
    with pytest.raises(TypeError, match=r"order='C'"):
        np.reshape(x, (3, 2), order="F")
    with pytest.raises(TypeError, match=r"ord=None"):
        np.linalg.norm(x, ord=1)
    with pytest.raises(TypeError, match=r"three-argument form"):
        np.where(x)
    with pytest.raises(ValueError, match=r"axes \(0, 0\)"):
        np.transpose(x, (0, 0))


def test_other_numpy_functions_refuse_tensors_and_say_what_to_use():
    x = mg.tensor([3.0, 1.0, 2.0], requires_grad=True)
    with pytest.raises(
        TypeError, match=r"numpy.cumsum is not recorded .* np.asarray\(x\) for the values alone"
    ):
        np.cumsum(x)
    with pytest.raises(TypeError, match=r"numpy.clip is not recorded"):
        np.clip(x, 0, 1)
    with pytest.raises(TypeError, match="ufunc"):  # ufuncs: Tensor.__array_ufunc__ is None
        np.exp(x)
    # with the values: fine, and no gradient
    np.testing.assert_allclose(np.cumsum(np.asarray(x)), [3.0, 4.0, 6.0])


def test_numpy_readers_see_the_values_and_shapes():
    x = mg.tensor([[3.0, 1.0], [2.0, 5.0]], requires_grad=True)
    assert np.allclose(x, [[3, 1], [2, 5]]) and np.array_equal(x, np.asarray(x))
    np.testing.assert_array_equal(np.isclose(x, 3.0), [[True, False], [False, False]])
    assert np.argmax(x) == 3 and np.count_nonzero(x) == 4 and np.any(x) and np.all(x)
    np.testing.assert_array_equal(np.argsort(x[0]), [1, 0])
    assert np.shape(x) == (2, 2) and np.ndim(x) == 2 and np.size(x) == 4 and np.size(x, 1) == 2
    c = np.copy(x)
    assert isinstance(c, np.ndarray) and c.flags.writeable
    assert "5." in np.array2string(x)


def test_numpy_save_writes_the_values(tmp_path):
    x = mg.tensor(np.arange(6.0).reshape(2, 3))
    np.save(tmp_path / "x.npy", x)
    np.testing.assert_array_equal(np.load(tmp_path / "x.npy"), np.arange(6.0).reshape(2, 3))


# ---- pickle and copy ----


@pytest.mark.parametrize("shape", [(), (4,), (2, 3), (0, 3)])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("requires_grad", [False, True])
def test_pickle_and_deepcopy_keep_value_dtype_and_requires_grad(shape, dtype, requires_grad):
    v = RNG.standard_normal(shape).astype(dtype)
    t = mg.tensor(v, requires_grad=requires_grad)
    for c in (pickle.loads(pickle.dumps(t)), copy.deepcopy(t), copy.copy(t)):
        assert c is not t and c.is_leaf and c.requires_grad == requires_grad
        assert c.dtype == dtype and c.shape == shape
        np.testing.assert_array_equal(np.asarray(c), v)


def test_a_copy_has_no_graph_and_its_own_memory():
    x = mg.tensor([1.0, 2.0], requires_grad=True)
    y = x * 3
    for c in (pickle.loads(pickle.dumps(y)), copy.deepcopy(y)):
        assert c.is_leaf and c.requires_grad  # a leaf: no gradient flows back to x
        mg.sum(c * c).backward()
        assert x.grad is None
        np.testing.assert_array_equal(np.asarray(c.grad), [6.0, 12.0])
    x2 = copy.deepcopy(x)
    mg.optim.SGD([x2], lr=1.0).zero_grad()
    mg.sum(x2).backward()
    mg.optim.SGD([x2], lr=1.0).step()
    np.testing.assert_array_equal(np.asarray(x), [1.0, 2.0])  # the original is untouched


def test_deepcopy_copies_grad_and_pickle_does_not():
    x = mg.tensor([1.0, 2.0], requires_grad=True)
    mg.sum(x * x).backward()
    d = copy.deepcopy(x)
    np.testing.assert_array_equal(np.asarray(d.grad), [2.0, 4.0])
    assert d.grad is not x.grad
    assert pickle.loads(pickle.dumps(x)).grad is None
    # memo: one tensor twice in a structure stays one tensor
    a, b = copy.deepcopy([x, x])
    assert a is b


@pytest.mark.parametrize(
    "opt", [lambda p: mg.optim.Adam(p, lr=0.05), lambda p: mg.optim.SGD(p, lr=0.1, momentum=0.9)]
)
def test_a_model_and_its_optimiser_pickle_and_train_on_identically(opt):
    X = RNG.standard_normal((16, 3))
    Y = RNG.standard_normal((16, 2))
    m = mg.nn.MLP([3, 4, 2], activations=["tanh", "identity"], rng=1)
    o = opt(m.parameters())

    def step(model, optimiser):
        optimiser.zero_grad()
        loss = mg.nn.mse(model(X), Y)
        loss.backward()
        optimiser.step()
        return loss.item()

    for _ in range(3):
        step(m, o)
    m2, o2 = pickle.loads(pickle.dumps((m, o)))
    assert all(p is q for p, q in zip(o2.params, m2.parameters()))
    m3 = copy.deepcopy(m)
    np.testing.assert_array_equal(np.asarray(m3(X)), np.asarray(m(X)))
    for _ in range(3):
        assert step(m, o) == step(m2, o2)
    np.testing.assert_array_equal(np.asarray(m2(X)), np.asarray(m(X)))


# ---- keyword arguments through the transforms ----


def f_kw(x, y, *, scale=1.0, power=2):
    return mg.sum(scale * x**power * y)


def test_keyword_arguments_pass_through_every_transform():
    x, y = np.array([1.0, 2.0]), np.array([3.0, 4.0])
    np.testing.assert_allclose(mg.grad(f_kw)(x, y, scale=3.0), 3.0 * 2 * x * y)
    np.testing.assert_allclose(mg.grad(f_kw, argnums=1)(x, y, scale=3.0, power=3), 3.0 * x**3)
    v, (gx, gy) = mg.value_and_grad(f_kw, argnums=(0, 1))(x, y, power=1)
    assert v == pytest.approx(np.sum(x * y))
    np.testing.assert_allclose(gx, y)
    np.testing.assert_allclose(gy, x)
    np.testing.assert_allclose(mg.hessian(f_kw)(x, y, scale=0.5), np.diag(0.5 * 2 * y))
    np.testing.assert_allclose(mg.jacobian(lambda x, *, k: x * k)(x, k=4.0), 4.0 * np.eye(2))
    # nested transforms keep them too
    g = mg.grad(lambda x, *, c: mg.grad(lambda z, *, c: mg.sum(c * z**3))(x, c=c).sum())
    np.testing.assert_allclose(g(x, c=2.0), 2.0 * 6 * x)
    # argnums counts positional arguments only, as in JAX
    with pytest.raises((IndexError, ValueError, TypeError), match="argnums"):
        mg.grad(f_kw, argnums=1)(x, y=y)


# ---- tensors from a shape ----


def test_tensors_from_a_shape_match_numpy():
    cases = [
        (mg.zeros((2, 3)), np.zeros((2, 3))),
        (mg.zeros(4), np.zeros(4)),
        (mg.zeros(()), np.zeros(())),
        (mg.ones([3, 1]), np.ones((3, 1))),
        (mg.zeros_like(mg.tensor(np.ones((2, 2), np.float32))), np.zeros((2, 2), np.float32)),
        (mg.ones_like(np.arange(3)), np.ones(3)),
        (mg.ones_like(np.float32(1.0)), np.ones((), np.float32)),
        (mg.eye(3), np.eye(3)),
        (mg.eye(2, 4, k=1), np.eye(2, 4, k=1)),
        (mg.arange(5), np.arange(5.0)),
        (mg.arange(1, 2, 0.25), np.arange(1, 2, 0.25)),
        (mg.arange(5, step=2), np.arange(0, 5, 2.0)),
        (mg.linspace(0, 1, 5), np.linspace(0, 1, 5)),
        (
            mg.linspace(0, 1, 4, endpoint=False, dtype=np.float32),
            np.linspace(0, 1, 4, endpoint=False).astype(np.float32),
        ),
        (mg.zeros(3, dtype="float32"), np.zeros(3, np.float32)),
    ]
    for t, ref in cases:
        assert isinstance(t, mg.Tensor) and t.is_leaf and not t.requires_grad
        assert t.shape == ref.shape and t.dtype == ref.dtype, (t, ref)
        np.testing.assert_array_equal(np.asarray(t), ref)
    w = mg.zeros((2, 2), requires_grad=True)
    mg.sum(w * 3).backward()
    np.testing.assert_array_equal(np.asarray(w.grad), np.full((2, 2), 3.0))


def test_tensors_from_a_shape_refuse_bad_arguments():
    with pytest.raises(
        ValueError, match=r"zeros: matgrad tensors have at most 2 dimensions, got shape \(1, 2, 3\)"
    ):
        mg.zeros((1, 2, 3))
    with pytest.raises(ValueError, match=r"ones: negative dimensions"):
        mg.ones(-1)
    with pytest.raises(TypeError, match=r"eye: dtype must be float64 or float32, got int64"):
        mg.eye(2, dtype=np.int64)
    with pytest.raises(TypeError, match=r"zeros: shape must be an int or a tuple of ints"):
        mg.zeros(2.5)
    with pytest.raises(ValueError, match=r"arange"):
        mg.arange(0, 1, 0)
    with pytest.raises(ValueError, match=r"linspace: num must be non-negative"):
        mg.linspace(0, 1, -2)
    with pytest.raises(TypeError, match=r"zeros_like: expected .*dtype <U1"):
        mg.zeros_like(np.array(["a"]))
    with pytest.raises(TypeError, match=r"arange: stop must be a Python number"):
        mg.arange(0, mg.tensor(3.0))


# ---- every value reader raises while mg.compile traces ----

READERS = {
    "format": lambda x: f"{mg.sum(x):.3f}",
    "format (empty spec)": lambda x: f"{x}",
    "int": lambda x: int(mg.sum(x)),
    "float": lambda x: float(mg.sum(x)),
    "item": lambda x: mg.sum(x).item(),
    "bool": lambda x: bool(mg.sum(x)),
    "tolist": lambda x: x.tolist(),
    "==": lambda x: x == 1.0,
    "!=": lambda x: 1.0 != x,
    "<": lambda x: x < 0,
    ">=": lambda x: np.zeros(3) >= x,
    "numpy.allclose": lambda x: np.allclose(x, 1),
    "numpy.argmax": lambda x: np.argmax(x),
    "pickle": lambda x: pickle.dumps(x),
    "deepcopy": lambda x: copy.deepcopy(x),
    "numpy": lambda x: x.numpy(),
    "__array__": lambda x: np.asarray(x),
}


@pytest.mark.parametrize("name", READERS)
def test_value_readers_raise_while_compile_traces(name):
    read = READERS[name]

    def f(x):
        read(x)
        return mg.sum(x)

    with pytest.raises(RuntimeError, match=r"traced by mg\.compile"):
        mg.compile(f)(np.ones(3))
    read(mg.tensor(np.ones(3)))  # outside a trace: fine


def test_shapes_and_recorded_numpy_functions_work_while_tracing():
    def f(x):
        assert np.shape(x) == (3,) and np.ndim(x) == 1 and np.size(x) == 3 and len(x) == 3
        z = mg.zeros_like(x) + mg.ones_like(x) * 2
        return np.sum(np.dot(x, x) * z) + np.linalg.norm(x)

    cf = mg.compile(f)
    x = np.array([1.0, -2.0, 0.5])
    assert cf(x) == pytest.approx(float(f(mg.tensor(x))))
    np.testing.assert_allclose(cf.grad(x), mg.grad(f)(x), rtol=1e-13)


# ---- parameter trees: a dict of arrays to grad / value_and_grad ----


def test_grad_of_a_dict_gives_a_dict_of_the_same_structure():
    rng = np.random.default_rng(0)
    p = {
        "w": rng.standard_normal((2, 3)),
        "b": [rng.standard_normal(3), 2.0],
        "inner": {"s": np.float64(3.0)},
    }
    x = rng.standard_normal((3, 4))

    def loss(p, x, scale=1.0):
        return scale * (mg.sum((p["w"] @ x) ** 2) + mg.sum(p["b"][0] * p["b"][1]) + p["inner"]["s"] ** 2)

    g = mg.grad(loss)(p, x, scale=2.0)
    assert sorted(g) == ["b", "inner", "w"] and isinstance(g["b"], list)
    np.testing.assert_allclose(g["w"], 2.0 * 2 * (p["w"] @ x) @ x.T, rtol=1e-12)
    np.testing.assert_allclose(g["b"][0], 2.0 * 2.0 * np.ones(3), rtol=1e-12)
    np.testing.assert_allclose(g["b"][1], 2.0 * np.sum(p["b"][0]), rtol=1e-12)
    np.testing.assert_allclose(g["inner"]["s"], 2.0 * 2 * 3.0, rtol=1e-12)
    v, (gp, gx) = mg.value_and_grad(loss, argnums=(0, 1))(p, x)
    assert float(v) == pytest.approx(float(loss(p, x).numpy()))
    np.testing.assert_allclose(gp["w"], g["w"] / 2.0, rtol=1e-12)
    np.testing.assert_allclose(gx, 2 * p["w"].T @ (p["w"] @ x), rtol=1e-12)
    with pytest.raises(ValueError, match=r"^grad: a differentiated dict has no arrays"):
        mg.grad(lambda d: mg.sum(x))({})
