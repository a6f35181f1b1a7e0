# SPDX-License-Identifier: MIT
"""A Griffe extension that lets mkdocstrings document matgrad's compiled module.

``matgrad._core`` is a pybind11 extension: there is no Python source to read, and the
package in ``python/matgrad`` (which the API pages are generated from) holds no ``.so``.
Griffe's static loader therefore cannot resolve ``matgrad.det -> matgrad._core.det``, and its
inspector, asked to inspect the whole package, takes pybind11's function records (whose
``__qualname__`` is ``pybind11_detail_function_record_....det``) for methods of another
object. So once the package is loaded this extension imports the real ``matgrad._core``,
inspects it alone (that works), and gives the package that module:

- without a stub file, the inspected module becomes ``matgrad._core``;
- with a stub (``python/matgrad/_core.pyi``), the stub's signatures stay and every docstring
  is taken from the live object, so the pages always show the docstrings the code has.

Docstrings of the compiled module are plain text: pybind11's leading signature line
(``det(x: object) -> matgrad._core.Tensor``) is dropped where the page shows the signature, and
``<`` outside code spans is escaped so ``d<u, y>/dx`` is not taken for an HTML tag.
"""

from __future__ import annotations

import html
import importlib
import re
from typing import Any

import griffe

# pybind11's signature lines: "det(x: object) -> matgrad._core.Tensor" (with " -> ", always).
_SIGNATURE = re.compile(r"^\s*(?:\d+\.\s*)?[A-Za-z_][A-Za-z0-9_]*\(.*\)\s*->\s*\S.*$")
_ROLE = re.compile(r":(?:func|class|meth|mod|attr|data|obj):`~?([^`]+)`")


def _escape_outside_code(text: str) -> str:
    parts = re.split(r"(`+[^`]*`+)", text)
    return "".join(p if p.startswith("`") else html.escape(p, quote=False) for p in parts)


def compiled_docstring(doc: str, keep_signature: bool = False) -> str:
    """The Markdown shown for a docstring of the compiled module.

    pybind11 starts each docstring with the signature it generated. The page shows the
    signature from the stub (or from inspection), so a single one is dropped, unless
    ``keep_signature`` (inspection found no parameters): then it stays, as a code block, as
    does the list of an overloaded function.
    """
    lines = doc.strip("\n").splitlines()
    overloads = []
    if lines and _SIGNATURE.match(lines[0]):
        signature = lines.pop(0).strip().replace("matgrad._core.", "")
        if keep_signature:
            overloads = [signature]
    elif lines and lines[0].strip() == "Overloaded function.":
        lines.pop(0)
        rest = []
        for line in lines:
            (overloads if _SIGNATURE.match(line) else rest).append(line)
        overloads = [re.sub(r"^\s*\d+\.\s*", "", s).strip().replace("matgrad._core.", "") for s in overloads]
        lines = rest
    text = _escape_outside_code(_ROLE.sub(r"`\1`", "\n".join(lines).strip()))
    if overloads:
        code = "\n".join(overloads)
        text = f"```python\n{code}\n```\n\n{text}"
    return text.rstrip() + "\n"


def python_docstring(doc: str, name: str = "") -> str:
    """Docstrings written in Python: Sphinx roles (:func:`grad`) become code spans, and a first
    line that only repeats the signature (``grad(f, argnums=0) -> Callable``) is dropped."""
    lines = doc.strip("\n").splitlines()
    if name and lines and _SIGNATURE.match(lines[0]) and lines[0].strip().startswith(f"{name}("):
        lines = lines[1:]
        while lines and not lines[0].strip():
            lines.pop(0)
    return _ROLE.sub(r"`\1`", "\n".join(lines))


def _set_doc(obj: Any, text: str) -> None:
    if obj.docstring is None:
        obj.docstring = griffe.Docstring(text, parent=obj)
    else:
        obj.docstring.value = text


def _live_docs(stub: Any, live_obj: Any, inspected: Any) -> None:
    """Put the live docstrings (converted) on the stub's objects, and add what the stub lacks.

    ``inspected`` is the same object as Griffe's inspector sees it: public members the stub
    does not define (a stub's overload-only method, for one) are taken from there.
    """
    doc = getattr(live_obj, "__doc__", None)
    if isinstance(doc, str) and doc.strip():
        _set_doc(stub, compiled_docstring(doc))
    if not (stub.is_module or stub.is_class):
        return
    for name, member in list(stub.members.items()):
        if member.is_alias or not hasattr(live_obj, name) or name not in inspected.members:
            continue
        sub = getattr(live_obj, name)
        if member.is_attribute and stub.is_class:  # a property: its own docstring
            sub = live_obj.__dict__.get(name, sub)
        _live_docs(member, sub, inspected.members[name])
    for name, member in inspected.members.items():
        if name not in stub.members and not name.startswith("_") and not member.is_alias:
            _convert(member)
            stub.set_member(name, member)


def _convert(obj: Any) -> None:
    if obj.docstring is not None and obj.docstring.value:
        unknown = obj.is_function and not [p for p in obj.parameters if p.name != "self"]
        obj.docstring.value = compiled_docstring(obj.docstring.value, keep_signature=unknown)
    if obj.is_module or obj.is_class:
        for member in obj.members.values():
            if not member.is_alias:
                _convert(member)


class CompiledCore(griffe.Extension):
    """Give the package ``matgrad`` its compiled module ``matgrad._core``, with live docstrings."""

    def __init__(self, package: str = "matgrad", module: str = "_core") -> None:
        super().__init__()
        self.package, self.module = package, module

    def on_package(self, *, pkg: griffe.Module, loader: griffe.GriffeLoader, **kwargs: Any) -> None:
        if pkg.path != self.package:
            return
        live = importlib.import_module(f"{self.package}.{self.module}")
        inspected = griffe.inspect(
            f"{self.package}.{self.module}",
            docstring_parser=loader.docstring_parser,
            docstring_options=loader.docstring_options,
        )
        stub = pkg.members.get(self.module)
        if stub is not None and not stub.is_alias:
            _live_docs(stub, live, inspected)
        else:
            _convert(inspected)
            inspected.parent = pkg
            pkg.set_member(self.module, inspected)
        for obj in _walk(pkg):
            if obj.docstring is not None and obj.docstring.value and not _in(obj, self.module):
                obj.docstring.value = python_docstring(obj.docstring.value, obj.name)


def _in(obj: Any, module: str) -> bool:
    parent = obj
    while parent is not None:
        if parent.name == module and parent.is_module:
            return True
        parent = parent.parent
    return False


def _walk(obj: Any):
    yield obj
    if obj.is_module or obj.is_class:
        for member in obj.members.values():
            if not member.is_alias:
                yield from _walk(member)
