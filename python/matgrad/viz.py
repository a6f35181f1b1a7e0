"""Pictures of the recorded graph: Graphviz DOT text (:func:`to_dot`) and rendered files (:func:`draw`).

Each node shows its op, its shape, its value when it has at most four elements and its adjoint
df/dnode: with ``adjoints=True`` every node's, from a reverse sweep made for the picture;
otherwise the ``.grad`` that a ``backward()`` filled (leaves, and nodes with ``retain_grad()``). Inputs (leaves that require a gradient) are green boxes, constants grey boxes, the
output a double octagon; edges run from each parent to its child, left to right, as in the
lecture's pictures of x_i = g_i(x_Pa(i)).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from typing import Any

import numpy as np

from . import _core
from ._core import Tensor

_SMALL = 4  # values and adjoints with at most this many elements are written out


def _fmt(a: Any) -> str:
    v = np.asarray(a, dtype=np.float64)
    if v.ndim == 0:
        return f"{float(v):.4g}"
    return np.array2string(v, precision=4, separator=", ", max_line_width=40).replace("\n", "")


def _escape(s: str) -> str:
    return s.replace("\\", "\\\\").replace('"', '\\"')


def to_dot(
    tensor: Tensor, names: dict[str, Tensor] | None = None, title: str | None = None, adjoints: bool = False
) -> str:
    """to_dot(tensor, names=None, title=None, adjoints=False) -> str

    The graph that computed ``tensor`` as Graphviz DOT text.

    ``names`` maps names to Tensors of the graph (e.g. the lecture's ``{"x": x, "a": a, ...}``)
    to print beside their ops. Each node shows its op, its shape and dtype, its value when it has
    at most four elements, and its adjoint ``df/dnode`` (of the node's shape):

    - ``adjoints=True``: the adjoint of every node a gradient flows through (the inputs and the
      nodes computed from them; constants have none), ``f`` being ``tensor``, which must have
      one element. They come from a reverse sweep made for the picture: no ``.grad`` is read
      or changed.
    - ``adjoints=False``: the ``.grad`` a ``backward()`` filled, which is only kept for leaves
      with ``requires_grad=True`` and nodes that called ``retain_grad()``.

    Not differentiable: nothing is recorded, and no gradient flows.
    """
    if not isinstance(tensor, Tensor):
        raise TypeError(f"to_dot: expected a Tensor, got {type(tensor).__name__}")
    named = {_core._node_id(t): n for n, t in (names or {}).items()}
    graph = _core._graph(tensor)
    swept: dict[int, Any] = {}
    if adjoints:
        if tensor.size != 1:
            raise ValueError(
                f"to_dot: adjoints=True needs a tensor with one element (the f of df/dnode), got shape {tensor.shape}"
            )
        active = [(t, node_id) for t, _, node_id in graph if t.requires_grad]
        values = _core._grad_values(tensor, [t for t, _ in active], None, "to_dot") if active else []
        swept = {node_id: v for (_, node_id), v in zip(active, values)}
    lines = [
        "digraph matgrad {",
        "  rankdir=LR;",
        '  node [fontname="Helvetica", fontsize=11];',
        '  edge [color="#555555"];',
    ]
    if title:
        lines.append(f'  labelloc="t"; label="{_escape(title)}";')
    for i, (t, parents, node_id) in enumerate(graph):
        kind = "input" if t.is_leaf and t.requires_grad else ("const" if t.is_leaf else t.op)
        name = named.get(node_id)
        rows = [f"{name} = {kind}" if name is not None else kind]
        rows.append(f"shape {tuple(t.shape)} {np.dtype(t.dtype).name}")
        if t.size <= _SMALL:
            rows.append(f"value {_fmt(t.numpy())}")
        g = swept.get(node_id) if adjoints else (None if t.grad is None else t.grad.numpy())
        if g is not None:
            rows.append(f"adjoint {_fmt(g)}" if g.size <= _SMALL else "adjoint (filled)")
        label = "\\n".join(_escape(r) for r in rows)
        if i == len(graph) - 1:
            style = 'shape=doubleoctagon, style=filled, fillcolor="#fde9c9"'
        elif t.is_leaf and t.requires_grad:
            style = 'shape=box, style="filled,rounded", fillcolor="#d5f0d5"'
        elif t.is_leaf:
            style = 'shape=box, style=filled, fillcolor="#eeeeee"'
        else:
            style = 'shape=ellipse, style=filled, fillcolor="#ddeeff"'
        lines.append(f'  n{i} [label="{label}", {style}];')
        for p in parents:
            lines.append(f"  n{p} -> n{i};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def draw(
    tensor: Tensor,
    path: str,
    names: dict[str, Tensor] | None = None,
    title: str | None = None,
    adjoints: bool = False,
) -> str:
    """draw(tensor, path, names=None, title=None, adjoints=False) -> str

    Render :func:`to_dot` of ``tensor`` to ``path`` (.svg, .png or .pdf) with Graphviz's ``dot``:
    each node with its op, shape, small values and adjoints, as there (``adjoints=True``: every
    node's adjoint, from a sweep made for the picture).

    Not differentiable: nothing is computed or recorded. Raises RuntimeError naming the Debian
    package (graphviz) when ``dot`` is not installed. Returns ``path``.
    """
    fmt = os.path.splitext(path)[1].lower().lstrip(".")
    if fmt not in ("svg", "png", "pdf"):
        raise ValueError(f"draw: the file name must end in .svg, .png or .pdf, got {path!r}")
    dot = shutil.which("dot")
    if dot is None:
        raise RuntimeError(
            "draw: Graphviz's 'dot' program was not found; install it (Debian: apt-get install graphviz) "
            "or write the DOT text of mg.to_dot(tensor) yourself"
        )
    src = to_dot(tensor, names=names, title=title, adjoints=adjoints)
    res = subprocess.run([dot, f"-T{fmt}", "-o", path], input=src.encode(), capture_output=True)
    if res.returncode != 0:
        raise RuntimeError(
            f"draw: dot failed ({res.returncode}): {res.stderr.decode(errors='replace').strip()}"
        )
    return path
