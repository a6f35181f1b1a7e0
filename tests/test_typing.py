"""Typing: the installed package ships py.typed and a stub for its C++ module that matches the
module (stubtest, names, pybind11 signatures), and the examples type-check against it.

mypy is in the `test` extra: without it these tests fail (they do not skip), so a CI that lost
it cannot pass while the stub drifts from the bindings. The mypy cache goes to build/mypy-cache
when the checkout has a build/ directory (it is git-ignored; reruns take ~1 s instead of ~8 s),
else to a temporary directory; stubtest runs in a temporary directory (it writes .mypy_cache
into its working directory).
"""

from __future__ import annotations

import ast
import inspect
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import matgrad
from matgrad import _core

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "pyproject.toml"
PKG = Path(matgrad.__file__).resolve().parent  # the package under test (installed or editable)
STUB = PKG / "_core.pyi"
ALLOWLIST = Path(__file__).with_name("stubtest-allowlist.txt")


@pytest.fixture(scope="module")
def mypy_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    build = ROOT / "build"
    if build.is_dir() and os.access(build, os.W_OK):
        return build / "mypy-cache"
    return tmp_path_factory.mktemp("mypy-cache")


def run_module(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(  # the callers check the return code and show the output
        [sys.executable, "-m", *args], capture_output=True, text=True, timeout=600, cwd=cwd, check=False
    )


def run_mypy(*args: str, cache: Path) -> subprocess.CompletedProcess:
    return run_module("mypy", "--config-file", str(CONFIG), "--cache-dir", str(cache), *args, cwd=ROOT)


def stub_module() -> ast.Module:
    return ast.parse(STUB.read_text(), filename=str(STUB))


def declared(body: list[ast.stmt]) -> dict[str, list[ast.stmt]]:
    """The names a stub body declares (functions with all their overloads, classes, variables)."""
    names: dict[str, list[ast.stmt]] = {}
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.setdefault(node.name, []).append(node)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.setdefault(node.target.id, []).append(node)
        elif isinstance(node, ast.Assign):
            for t in node.targets:
                if isinstance(t, ast.Name):
                    names.setdefault(t.id, []).append(node)
    return names


def stub_tensor() -> ast.ClassDef:
    (cls,) = declared(stub_module().body)["Tensor"]
    assert isinstance(cls, ast.ClassDef)
    return cls


def test_the_package_ships_py_typed_and_the_stub() -> None:
    # PEP 561: without py.typed, type checkers ignore the package's annotations and its stub.
    assert (PKG / "py.typed").is_file(), f"py.typed missing in {PKG}"
    assert STUB.is_file(), f"_core.pyi missing in {PKG}"


def test_stubtest_passes(tmp_path: Path) -> None:
    r = run_module(
        "mypy.stubtest",
        "matgrad._core",
        "--mypy-config-file",
        str(CONFIG),
        "--allowlist",
        str(ALLOWLIST),
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stdout + r.stderr


def test_every_name_of_the_module_and_of_tensor_is_in_the_stub() -> None:
    # stubtest skips private runtime names (_vg, _trace, ...) that the stub leaves out; the
    # package calls them, so they must be declared too.
    names = declared(stub_module().body)
    missing = [n for n in dir(_core) if (not n.startswith("__") or n == "__version__") and n not in names]
    assert not missing, f"matgrad._core names missing from {STUB.name}: {missing}"
    members = declared(stub_tensor().body)
    # pybind11's own, and __repr__ (object's signature, so stubs leave it out)
    internal = {"__doc__", "__module__", "_pybind11_conduit_v1_", "__repr__"}
    missing = [n for n in vars(_core.Tensor) if n not in internal and n not in members]
    assert not missing, f"Tensor members missing from {STUB.name}: {missing}"


def split_params(text: str) -> list[str]:
    parts, depth, cur = [], 0, ""
    for ch in text:
        depth += ch in "([{"
        depth -= ch in ")]}"
        if ch == "," and depth == 0:
            parts.append(cur.strip())
            cur = ""
        else:
            cur += ch
    if cur.strip():
        parts.append(cur.strip())
    return parts


def runtime_params(obj: object, name: str) -> list[tuple[str, str | None]] | None:
    """(name, default text) per parameter (without self), '*' + name for *args/**kwargs; from
    inspect for Python functions, else from the signature line pybind11 (and the METH_O / FASTCALL
    functions' docstrings) put first. None when there is no signature to read."""
    if inspect.isfunction(obj):
        ps = list(inspect.signature(obj).parameters.values())
        return [
            (
                "*" * (p.kind == p.VAR_POSITIONAL) + "**" * (p.kind == p.VAR_KEYWORD) + p.name,
                None if p.default is p.empty else repr(p.default),
            )
            for p in ps
        ]
    first = (getattr(obj, "__doc__", None) or "").lstrip().split("\n", 1)[0]
    m = re.fullmatch(rf"{re.escape(name)}\((.*)\)\s*->\s*\S.*", first)
    if not m:
        return None
    out: list[tuple[str, str | None]] = []
    for p in split_params(m.group(1)):
        if p in ("/", "*"):
            continue
        head, _, default = p.partition("=")
        out.append((head.split(":", 1)[0].strip(), default.strip() or None))
    return out


def stub_params(fn: ast.FunctionDef) -> list[tuple[str, str | None, bool]]:
    """(name, default text, positional-only) per parameter, '*' + name for *args/**kwargs."""
    a = fn.args
    pos = a.posonlyargs + a.args
    defaults: list[ast.expr | None] = [None] * (len(pos) - len(a.defaults)) + list(a.defaults)
    out = [
        (p.arg, None if d is None else ast.unparse(d), i < len(a.posonlyargs))
        for i, (p, d) in enumerate(zip(pos, defaults))
    ]
    if a.vararg:
        out.append(("*" + a.vararg.arg, None, False))
    out += [
        (p.arg, None if d is None else ast.unparse(d), False) for p, d in zip(a.kwonlyargs, a.kw_defaults)
    ]
    if a.kwarg:
        out.append(("**" + a.kwarg.arg, None, False))
    return out


def same_signature(rt: list[tuple[str, str | None]], st: list[tuple[str, str | None, bool]]) -> bool:
    if len(rt) != len(st):
        return False
    for (rname, rdef), (sname, sdef, posonly) in zip(rt, st):
        if rname.startswith("*") or sname.startswith("*"):
            # *args / **kwargs: the kind must agree; the name is the caller's business
            if rname.count("*", 0, 2) != sname.count("*", 0, 2):
                return False
        elif re.fullmatch(r"arg\d+", rname):
            if not posonly:  # pybind11's unnamed parameters can only be passed by position
                return False
        elif rname != sname:
            return False
        if rdef != sdef:
            return False
    return True


def test_stub_signatures_match_the_pybind11_signatures() -> None:
    # stubtest cannot read the signatures of compiled functions; pybind11 writes them as the
    # first docstring line. Compare names, defaults and *args with the stub (types aside).
    checked, wrong = 0, []
    targets = [
        (n, getattr(_core, n), nodes, False)
        for n, nodes in declared(stub_module().body).items()
        if isinstance(nodes[0], ast.FunctionDef)
    ]
    targets += [
        (n, getattr(_core.Tensor, n), nodes, True)
        for n, nodes in declared(stub_tensor().body).items()
        if isinstance(nodes[0], ast.FunctionDef)
        and n != "__init__"
        and not any(
            (isinstance(d, ast.Name) and d.id == "property") or isinstance(d, ast.Attribute)
            for node in nodes
            for d in node.decorator_list
        )
    ]
    for name, obj, nodes, method in targets:
        rt = runtime_params(obj, name)
        if rt is None:
            continue
        checked += 1
        if method:  # drop self (runtime: its first parameter, whatever it is called)
            rt = rt[1:]
        sigs = [
            stub_params(fn)[1:] if method else stub_params(fn)
            for fn in nodes
            if isinstance(fn, ast.FunctionDef)
        ]
        if not any(same_signature(rt, st) for st in sigs):
            wrong.append(f"{'Tensor.' if method else ''}{name}: runtime {rt}, stub {sigs}")
    assert not wrong, "\n".join(wrong)
    assert checked >= 40, f"only {checked} signatures could be read"  # the check must not go vacuous


def test_mypy_passes_on_the_examples(mypy_cache: Path) -> None:
    r = run_mypy(str(ROOT / "examples"), cache=mypy_cache)
    assert r.returncode == 0, r.stdout + r.stderr


SNIPPET = """
    from typing import Any

    import numpy as np
    import numpy.typing as npt
    from typing_extensions import assert_type

    import matgrad as mg
    from matgrad import Tensor

    x = mg.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    a = np.ones((2, 2))
    assert_type(x.shape, tuple[int, ...])
    assert_type(x.ndim, int)
    assert_type(x.size, int)
    assert_type(x.dtype, np.dtype[np.floating[Any]])
    assert_type(x.grad, Tensor | None)
    assert_type(x.requires_grad, bool)
    assert_type(x.is_leaf, bool)
    assert_type(x.op, str)
    assert_type(x.T, Tensor)
    assert_type(x.numpy(), npt.NDArray[np.floating[Any]])
    assert_type(x.item(), float)
    assert_type(x + 1.0, Tensor)
    assert_type(2 * x, Tensor)
    assert_type(1.0 - x, Tensor)
    assert_type(x / a, Tensor)
    assert_type(x**2, Tensor)
    assert_type(2.0**x, Tensor)
    assert_type(x @ x, Tensor)
    assert_type(-x, Tensor)
    assert_type(abs(x), Tensor)
    assert_type(x[0], Tensor)
    assert_type(x[:, 1], Tensor)
    assert_type(x[np.array([0, 1])], Tensor)
    assert_type(x.sum(), Tensor)
    assert_type(x.mean(axis=0), Tensor)
    assert_type(x.reshape(4), Tensor)
    assert_type(x.reshape(1, 4), Tensor)
    assert_type(x.reshape((4, 1)), Tensor)
    assert_type(mg.slogdet(x), tuple[Tensor, Tensor])
    assert_type(mg.matmul(a, x), Tensor)
    assert_type(mg.stack([x[0], x[1]]), Tensor)
    assert_type(mg.where(a > 0, x, 0.0), Tensor)
    assert_type(mg.tensor(3, dtype=np.float32), Tensor)
    assert_type(np.asarray(x), npt.NDArray[Any])
    assert_type(mg.nn.MLP([2, 3, 1])(a), Tensor)
    assert_type(mg.to_dot(x), str)
    assert_type(x < x, npt.NDArray[Any])
    assert_type(x >= 1.0, npt.NDArray[Any])
    assert_type(int(x[0, 0]), int)
    assert_type(f"{x.sum():.3f}", str)
    assert_type(mg.zeros((2, 2)), Tensor)
    assert_type(mg.ones_like(x), Tensor)
    assert_type(mg.arange(3), Tensor)
    x.grad = None
    x.requires_grad = False
    x.backward(np.ones((2, 2)))
    with mg.no_grad():
        pass

    # Mistakes the stub must catch: with warn_unused_ignores, a missed one fails the check.
    mg.exp("1.0")  # type: ignore[arg-type]
    mg.Tensor([1.0])  # type: ignore[arg-type]
    x.shape = (4,)  # type: ignore[misc]
    x.item(0)  # type: ignore[call-arg]
    mg.sum(x, axis=0.5)  # type: ignore[arg-type]
    mg.tensor(1.0).grad.sum()  # type: ignore[union-attr]
    mg.nonexistent(x)  # type: ignore[attr-defined]
    x < "a"  # type: ignore[operator]
"""


def test_the_stub_types_what_users_write(tmp_path: Path, mypy_cache: Path) -> None:
    src = tmp_path / "typing_snippet.py"
    src.write_text(textwrap.dedent(SNIPPET))
    r = run_mypy("--strict", str(src), cache=mypy_cache)
    assert r.returncode == 0, r.stdout + r.stderr
