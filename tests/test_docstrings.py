"""Every public callable documents its signature, its shapes and the derivative rule it implements.

The inventory is walked from the package itself: ``mg.__all__``, the members of ``mg.Tensor``
(public names and the operator dunders it defines), and the classes and functions that
``mg.nn``, ``mg.optim`` and ``mg.distributed`` define. A new public op without such a docstring fails here.

What each docstring must give:
- a first line that is a signature naming the callable, ``name(params) -> result`` as pybind11
  writes them (``name -> type`` for a property; a class gives its constructor). For Python
  callables the parameters (names, kinds, defaults) must match ``inspect.signature``;
- a body after that line;
- the word "shape" (the shapes taken and returned), unless listed in ``SHAPE_EXEMPT``;
- a derivative rule ``d/dx: ...`` for differentiable ops; for the transforms, what they compute
  (``df/dx``, ``J v``, ...); for the few public names that are not differentiable
  (``NOT_DIFFERENTIABLE``), that no gradient flows or what they return instead.
"""

from __future__ import annotations

import ast
import contextlib
import inspect
import re
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest

import matgrad as mg
import matgrad.distributed as mgd

# The public names of mg.__all__ that are not differentiable, with what they do instead. Their
# docstrings must say so (NO_GRADIENT_RE); everything else in mg.__all__ gives a derivative rule.
NOT_DIFFERENTIABLE = {
    "tensor": "makes a new leaf (a Tensor given as data loses its graph)",
    "is_grad_enabled": "reports whether ops record the graph",
    "no_grad": "switches recording off",
    "to_dot": "writes the recorded graph as DOT text",
    "draw": "renders the recorded graph to a file",
    "load": "reads a saved compiled function",
    "set_num_threads": "sets the kernels' thread count",
    "get_num_threads": "reports the kernels' thread count",
    "detect_anomaly": "switches NaN/Inf checks on",
    "AnomalyError": "an exception",
    "set_cache_limit": "sets the per-thread cache bound",
    "get_cache_limit": "reports the per-thread cache bound",
    "get_include": "returns a folder's path",
    "get_cmake_dir": "returns a folder's path",
    "zeros": "makes a new leaf",
    "ones": "makes a new leaf",
    "zeros_like": "makes a new leaf of another's shape",
    "ones_like": "makes a new leaf of another's shape",
    "eye": "makes a new leaf",
    "arange": "makes a new leaf",
    "linspace": "makes a new leaf",
}
NO_GRADIENT_RE = re.compile(
    r"no gradient|not differentiable|not an op of the graph|outside the graph", re.IGNORECASE
)

# Names whose docstrings need not talk about shapes: they take and return no arrays.
SHAPE_EXEMPT = {
    "is_grad_enabled": "takes nothing, returns a bool",
    "set_num_threads": "takes an int",
    "get_num_threads": "takes nothing, returns an int",
    "set_cache_limit": "takes an int",
    "get_cache_limit": "takes nothing, returns an int",
    "get_include": "takes nothing, returns a path",
    "get_cmake_dir": "takes nothing, returns a path",
    "AnomalyError": "an exception with a message",
    "Tensor.dtype": "a dtype",
    "Tensor.is_leaf": "a bool",
    "Tensor.op": "a string",
    "Tensor.requires_grad": "a bool",
    "optim.Optimizer.zero_grad": "sets .grad to None",
    "distributed.DataParallel.bytes_sent": "returns byte counts",
    "distributed.DataParallel.rebalance": "moves shards between workers",
    "distributed.DataParallel.num_shards": "an int",
    "distributed.DataParallel.client": "the Dask client",
    "distributed.DataParallel.placement": "worker addresses",
}

# Members of mg.Tensor that are Python/pybind11 plumbing rather than API.
TENSOR_PLUMBING = {
    "__init__": "Tensor() is not a constructor (it raises); the class docstring gives mg.tensor's signature",
    "__hash__": "object's identity hash, kept when the comparisons became elementwise",
}

DERIVATIVE_RULE = "d/d"
# A transform says what it computes: df/dx, d/dargs[j], ...
TRANSFORM_RULE_RE = re.compile(r"\bd\S*/d\w")

# ---------------------------------------------------------------------------------------------
# the inventory


class Item:
    """One public callable: its dotted name, the object, and what its docstring must contain."""

    def __init__(
        self,
        name: str,
        obj: Any,
        doc: str | None,
        *,
        sig_name: str,
        kind: str,
        python_sig: Callable[..., Any] | type | None = None,
        is_property: bool = False,
    ) -> None:
        self.name = name  # e.g. "matmul", "Tensor.sum", "nn.Dense.__call__"
        self.obj = obj
        self.doc = doc
        self.sig_name = sig_name  # the name the first line must give
        self.kind = kind  # "op", "transform", "no_grad" or "plain"
        self.python_sig = python_sig  # a Python callable whose inspect.signature the line must match
        self.is_property = is_property

    def __repr__(self) -> str:
        return self.name


def _tensor_member_is_differentiable(name: str) -> bool:
    """Whether x.<name> (called with the first argument list that works) returns a Tensor that
    requires a gradient when x does: such members are ops and must give their derivative rule."""
    x = mg.tensor([[2.0, 1.0], [1.0, 3.0]], requires_grad=True)
    y = mg.tensor([[1.0, 2.0], [3.0, 4.0]])

    def connected(result: Any) -> bool:
        return isinstance(result, mg.Tensor) and result.requires_grad

    if isinstance(inspect.getattr_static(mg.Tensor, name), property):
        return connected(getattr(x, name))
    for args in [(), (y,), (0,), (-1,)]:
        # an argument list that does not fit raises; try the next
        with contextlib.suppress(TypeError, ValueError, IndexError, RuntimeError):
            return connected(getattr(x, name)(*args))
    return False


def tensor_items() -> Iterator[Item]:
    t = mg.Tensor
    names = [n for n in dir(t) if not n.startswith("_")]
    names += [
        n
        for n, v in vars(t).items()
        if n.startswith("__") and n.endswith("__") and callable(v) and n not in TENSOR_PLUMBING
    ]
    for n in sorted(set(names)):
        attr = inspect.getattr_static(t, n)
        is_prop = isinstance(attr, property)
        kind = "op" if _tensor_member_is_differentiable(n) else "plain"
        fn = attr.fget if is_prop else getattr(t, n)
        py = fn if inspect.isfunction(fn) and not is_prop else None
        yield Item(
            f"Tensor.{n}",
            fn,
            attr.__doc__ if is_prop else fn.__doc__,
            sig_name=n,
            kind=kind,
            python_sig=py,
            is_property=is_prop,
        )


def _class_members(prefix: str, cls: type) -> Iterator[tuple[str, Any]]:
    for n, v in vars(cls).items():
        if n.startswith("_") and n != "__call__":
            continue
        if isinstance(v, (staticmethod, classmethod)):
            v = v.__func__
        if inspect.isfunction(v) or isinstance(v, property):
            yield f"{prefix}.{cls.__name__}.{n}", v


def module_items(mod: Any, prefix: str) -> Iterator[Item]:
    """The classes and functions a submodule (mg.nn, mg.optim) defines, and their public methods."""
    for n, obj in sorted(vars(mod).items()):
        if n.startswith("_") or getattr(obj, "__module__", None) != mod.__name__:
            continue
        if inspect.isclass(obj):
            kind = "no_grad" if prefix == "optim" else "plain"
            yield Item(f"{prefix}.{n}", obj, obj.__doc__, sig_name=n, kind=kind, python_sig=obj)
            for qual, member in _class_members(prefix, obj):
                mname = qual.rsplit(".", 1)[1]
                # a layer's __call__ is differentiable; an optimiser's methods work outside the graph
                mkind = "op" if mname == "__call__" else ("no_grad" if prefix == "optim" else "plain")
                if prefix == "distributed" and mname == "__call__":
                    mkind = "transform"  # a data-parallel value_and_grad: says what it computes
                if isinstance(member, property):
                    yield Item(
                        qual, member.fget, member.__doc__, sig_name=mname, kind=mkind, is_property=True
                    )
                else:
                    yield Item(qual, member, member.__doc__, sig_name=mname, kind=mkind, python_sig=member)
        elif inspect.isfunction(obj):
            # mg.nn's functions are losses of Tensors (differentiable); mg.optim has none today
            kind = {"nn": "op", "distributed": "transform"}.get(prefix, "no_grad")
            yield Item(f"{prefix}.{n}", obj, obj.__doc__, sig_name=n, kind=kind, python_sig=obj)


def top_level_items() -> Iterator[Item]:
    for n in mg.__all__:
        obj = getattr(mg, n)
        if n == "Tensor":
            yield Item(n, obj, obj.__doc__, sig_name="tensor", kind="plain")
            continue
        if inspect.ismodule(obj):
            continue  # mg.nn, mg.optim: walked by module_items
        if not callable(obj):
            continue  # __version__
        if n in NOT_DIFFERENTIABLE:
            kind = "no_grad"
        elif getattr(obj, "__module__", "") == "matgrad._core":
            kind = "op"  # every op of the engine is differentiable unless exempted above
        else:
            kind = "transform"
        py = obj if (inspect.isfunction(obj) or inspect.isclass(obj)) else None
        if inspect.isclass(obj) and issubclass(obj, BaseException):
            py = None  # an exception made in C has no signature to compare its first line with
        yield Item(n, obj, obj.__doc__, sig_name=n, kind=kind, python_sig=py)


def inventory() -> list[Item]:
    return [
        *top_level_items(),
        *tensor_items(),
        *module_items(mg.nn, "nn"),
        *module_items(mg.optim, "optim"),
        *module_items(mgd, "distributed"),
    ]


# ---------------------------------------------------------------------------------------------
# the checks


def _default_value(node: ast.expr) -> Any:
    try:
        return ast.literal_eval(node)
    except ValueError:
        return eval(ast.unparse(node), {"numpy": np, "np": np})  # e.g. numpy.float64


def _line_params(fn: ast.FunctionDef) -> list[tuple[str, str, Any]]:
    """(name, kind, default) of the parameters a signature line gives, as inspect names them."""
    a = fn.args
    out: list[tuple[str, str, Any]] = []
    pos = a.posonlyargs + a.args
    defaults = [inspect.Parameter.empty] * (len(pos) - len(a.defaults)) + [
        _default_value(d) for d in a.defaults
    ]
    for i, (p, d) in enumerate(zip(pos, defaults)):
        out.append((p.arg, "POSITIONAL_ONLY" if i < len(a.posonlyargs) else "POSITIONAL_OR_KEYWORD", d))
    if a.vararg:
        out.append((a.vararg.arg, "VAR_POSITIONAL", inspect.Parameter.empty))
    for p, d in zip(a.kwonlyargs, a.kw_defaults):
        out.append((p.arg, "KEYWORD_ONLY", inspect.Parameter.empty if d is None else _default_value(d)))
    if a.kwarg:
        out.append((a.kwarg.arg, "VAR_KEYWORD", inspect.Parameter.empty))
    return [p for p in out if p[0] != "self"]


def _real_params(obj: Any) -> list[tuple[str, str, Any]]:
    sig = inspect.signature(obj)
    return [(p.name, p.kind.name, p.default) for p in sig.parameters.values() if p.name != "self"]


def problems(item: Item) -> list[str]:
    """What is missing from item's docstring (empty when it is complete)."""
    doc = item.doc
    if not doc or not doc.strip():
        return ["no docstring"]
    lines = inspect.cleandoc(doc).splitlines()
    first = lines[0].strip()
    out = []
    if item.is_property:
        if not re.fullmatch(rf"{re.escape(item.sig_name)} -> \S.*", first):
            out.append(f"first line {first!r} is not '{item.sig_name} -> type'")
    else:
        try:
            fn = ast.parse(f"def {first}: pass").body[0]
            assert isinstance(fn, ast.FunctionDef)
        except (SyntaxError, AssertionError):
            out.append(f"first line {first!r} is not a signature 'name(params) -> result'")
        else:
            if fn.name != item.sig_name:
                out.append(f"the signature line names {fn.name!r}, not {item.sig_name!r}")
            elif item.python_sig is not None and _line_params(fn) != _real_params(item.python_sig):
                out.append(
                    f"the signature line gives {_line_params(fn)}, the function takes "
                    f"{_real_params(item.python_sig)}"
                )
    body = "\n".join(lines[1:]).strip()
    if not body:
        out.append("nothing after the signature line")
    if item.name not in SHAPE_EXEMPT and "shape" not in body.lower():
        out.append("no shapes (the word 'shape' does not occur)")
    if item.kind == "op" and DERIVATIVE_RULE not in body:
        out.append(f"no derivative rule ('{DERIVATIVE_RULE}...' with G the output's adjoint)")
    if item.kind == "transform" and not TRANSFORM_RULE_RE.search(body):
        out.append("no statement of the derivative it computes (df/dx, d/dx, ...)")
    if item.kind == "no_grad" and not NO_GRADIENT_RE.search(body):
        out.append("does not say that no gradient flows (or what it returns instead)")
    return out


ITEMS = inventory()


def test_inventory_covers_the_public_api() -> None:
    names = {i.name for i in ITEMS}
    # a few of each family, so that a broken walk cannot pass by finding nothing
    for n in [
        "matmul",
        "sin",
        "add",
        "sum",
        "det",
        "solve",
        "where",
        "tensor",
        "grad",
        "jacobian",
        "jvp",
        "no_grad",
        "check_grad",
        "to_dot",
        "draw",
        "Tensor",
        "Tensor.backward",
        "Tensor.sum",
        "Tensor.T",
        "Tensor.grad",
        "Tensor.__add__",
        "Tensor.__matmul__",
        "Tensor.__getitem__",
        "Tensor.__pow__",
        "nn.Dense",
        "nn.Dense.__call__",
        "nn.MLP.state_dict",
        "nn.mse",
        "optim.SGD",
        "optim.Adam.step",
        "optim.Optimizer.zero_grad",
        "distributed.value_and_grad",
        "distributed.DataParallel.__call__",
    ]:
        assert n in names, n
    kinds = {i.name: i.kind for i in ITEMS}
    assert kinds["matmul"] == kinds["Tensor.__matmul__"] == kinds["Tensor.T"] == kinds["nn.mse"] == "op"
    assert kinds["Tensor.detach"] == kinds["Tensor.numpy"] == "plain"
    assert kinds["grad"] == kinds["jvp"] == "transform"


@pytest.mark.parametrize("item", ITEMS, ids=repr)
def test_docstring(item: Item) -> None:
    assert not problems(item), f"{item.name}: " + "; ".join(problems(item))


def test_exemptions_are_real() -> None:
    """The names exempt from a derivative rule are indeed not differentiable, and every
    exemption names something that exists."""
    x = mg.tensor([1.0, 2.0], requires_grad=True)
    t = mg.tensor(x)
    assert t.is_leaf and not t.requires_grad
    assert isinstance(mg.is_grad_enabled(), bool)
    with mg.no_grad():
        assert not (x * 2.0).requires_grad
    assert isinstance(mg.to_dot(mg.sin(x)), str)
    assert set(NOT_DIFFERENTIABLE) <= set(mg.__all__)
    names = {i.name for i in ITEMS}
    assert set(SHAPE_EXEMPT) <= names
    assert all(n in vars(mg.Tensor) for n in TENSOR_PLUMBING)


def test_tensor_class_names_its_factory() -> None:
    """Tensor() raises; the class docstring starts with mg.tensor's signature and lists the
    operators with their rules."""
    doc, factory = mg.Tensor.__doc__, mg.tensor.__doc__
    assert doc and factory
    assert doc.splitlines()[0] == factory.splitlines()[0]
    for op in ["x + y", "x - y", "x * y", "x / y", "x ** y", "x @ y", "-x", "x[key]"]:
        assert f"`{op}`" in doc, op


def test_the_check_catches_undocumented_ops() -> None:
    """problems() rejects what a careless new op would look like."""

    def op_item(obj: Any, name: str) -> Item:
        return Item(name, obj, obj.__doc__, sig_name=name, kind="op")

    # a pybind11 function bound without a docstring: the signature line only
    bare = mg._core._pool_trim
    assert (bare.__doc__ or "").strip().startswith("_pool_trim(")
    assert "nothing after the signature line" in problems(op_item(bare, "_pool_trim"))

    # a docstring with no signature line, no shapes and no rule (as the fast-path ops once had)
    def f(x: Any) -> Any:
        """f(x) = x, elementwise."""

    assert problems(op_item(f, "f"))

    # a signature line that does not match the function
    def g(x: Any, y: Any = 1) -> Any:
        """g(x, z=1) -> Tensor

        Shapes: any. d/dx: G"""

    assert any(
        "function takes" in p
        for p in problems(Item("g", g, g.__doc__, sig_name="g", kind="op", python_sig=g))
    )

    # a complete one passes
    def h(x: Any, y: Any = 1) -> Any:
        """h(x, y=1) -> Tensor

        Shapes: any. d/dx: G"""

    assert problems(Item("h", h, h.__doc__, sig_name="h", kind="op", python_sig=h)) == []
