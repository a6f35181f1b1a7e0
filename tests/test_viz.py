"""Graph pictures: mg.to_dot (DOT text of the recorded graph) and mg.draw (rendered by Graphviz)."""

from __future__ import annotations

import re
import shutil

import numpy as np
import pytest

import matgrad as mg


def lecture():
    x = mg.tensor(0.7, requires_grad=True)
    a = x**2
    b = mg.exp(a)
    c = a + b
    d = mg.sqrt(c)
    e = mg.cos(c)
    f = d + e
    return {"x": x, "a": a, "b": b, "c": c, "d": d, "e": e, "f": f}


def parse(src):
    nodes = dict(re.findall(r'^\s+(n\d+) \[label="([^"]*)"', src, re.M))
    edges = re.findall(r"^\s+(n\d+) -> (n\d+);", src, re.M)
    return nodes, edges


def test_dot_of_the_lecture_example_has_its_nodes_edges_values_and_adjoints():
    t = lecture()
    for k in "abcde":
        t[k].retain_grad()
    t["f"].backward()
    src = mg.to_dot(t["f"], names=t)
    assert src.startswith("digraph matgrad {") and src.rstrip().endswith("}")
    nodes, edges = parse(src)
    assert len(nodes) == 7
    by_name = {label.split(" = ")[0]: n for n, label in nodes.items()}
    assert set(by_name) == set("xabcdef")
    want_edges = {
        ("x", "a"),
        ("a", "b"),
        ("a", "c"),
        ("b", "c"),
        ("c", "d"),
        ("c", "e"),
        ("d", "f"),
        ("e", "f"),
    }
    assert {(a, b) for a, b in edges} == {(by_name[p], by_name[q]) for p, q in want_edges}
    lx = nodes[by_name["x"]]
    assert lx.startswith("x = input") and "value 0.7" in lx
    assert f"adjoint {float(t['x'].grad):.4g}" in lx
    assert nodes[by_name["b"]].startswith("b = exp") and f"value {np.exp(0.49):.4g}" in nodes[by_name["b"]]
    assert "adjoint" not in nodes[by_name["f"]]  # the output's own grad is not retained
    # styles: the input, the output and the intermediates are drawn apart
    assert re.search(rf'{by_name["x"]} \[label="[^"]*", shape=box', src)
    assert re.search(rf'{by_name["f"]} \[label="[^"]*", shape=doubleoctagon', src)
    assert re.search(rf'{by_name["c"]} \[label="[^"]*", shape=ellipse', src)


def test_dot_of_a_matrix_graph_shows_shapes_and_leaves_out_big_values():
    A = mg.tensor(np.arange(6.0).reshape(2, 3))  # a constant
    x = mg.tensor(np.ones(3), requires_grad=True)
    y = mg.sum(A @ x)
    nodes, edges = parse(mg.to_dot(y))
    labels = list(nodes.values())
    assert any(
        lbl.startswith("const") and "shape (2, 3) float64" in lbl and "value" not in lbl for lbl in labels
    )
    assert any(
        lbl.startswith("input") and "shape (3,)" in lbl and "value [1., 1., 1.]" in lbl for lbl in labels
    )
    assert any(lbl.startswith("matmul") for lbl in labels) and any(lbl.startswith("sum") for lbl in labels)
    assert len(edges) == 3


def test_to_dot_refuses_what_is_not_a_tensor():
    with pytest.raises(TypeError, match=r"^to_dot: expected a Tensor"):
        mg.to_dot(np.ones(3))


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed")
@pytest.mark.parametrize("ext, magic", [("svg", b"<svg"), ("png", b"\x89PNG")])
def test_draw_renders_the_picture(tmp_path, ext, magic):
    t = lecture()
    t["f"].backward()
    path = str(tmp_path / f"graph.{ext}")
    assert mg.draw(t["f"], path, names=t, title="lecture") == path
    data = (tmp_path / f"graph.{ext}").read_bytes()
    assert magic in data[:400]


def test_draw_names_the_package_when_dot_is_missing(monkeypatch, tmp_path):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(RuntimeError, match="apt-get install graphviz"):
        mg.draw(lecture()["f"], str(tmp_path / "g.svg"))


def test_draw_refuses_an_unknown_format(tmp_path):
    with pytest.raises(ValueError, match=r"^draw: the file name must end in \.svg, \.png or \.pdf"):
        mg.draw(lecture()["f"], str(tmp_path / "g.jpg"))


def _adjoint_labels(dot):
    """{node label's first row: adjoint text} of to_dot's output."""
    out = {}
    for m in re.finditer(r'label="([^"]*)"', dot):
        rows = m.group(1).split("\\n")
        adj = [r for r in rows if r.startswith("adjoint ")]
        out[rows[0]] = adj[0][len("adjoint ") :] if adj else None
    return out


def test_adjoints_true_shows_every_intermediate_adjoint_without_touching_grad():
    x = mg.tensor(0.7, requires_grad=True)
    a = x**2
    b = mg.exp(a)
    c = a + b
    f = mg.sqrt(c) + mg.cos(c)
    names = {"x": x, "a": a, "b": b, "c": c, "f": f}
    labels = _adjoint_labels(mg.to_dot(f, names=names, adjoints=True))
    assert x.grad is None  # the picture's sweep leaves .grad alone
    # the same adjoints as a backward() that retains every intermediate's
    for t in (a, b, c, f):
        t.retain_grad()
    f.backward()
    for name, t in names.items():
        assert labels[f"{name} = {'input' if name == 'x' else t.op}"] == f"{t.grad.item():.4g}"
    # without the option only what backward() kept appears: the named nodes, not sqrt and cos
    kept = _adjoint_labels(mg.to_dot(f, names=names))
    assert kept == {**labels, "sqrt": None, "cos": None} and labels["sqrt"] == labels["cos"] == "1"


def test_adjoints_false_shows_only_kept_grads():
    x = mg.tensor([1.0, 2.0], requires_grad=True)
    y = mg.sum(mg.sin(x) * mg.tensor([3.0, 3.0]))
    y.backward()
    labels = _adjoint_labels(mg.to_dot(y))
    assert labels["input"] is not None and labels["mul"] is None and labels["sin"] is None
    labels = _adjoint_labels(mg.to_dot(y, adjoints=True))
    assert labels["mul"] is not None and labels["sin"] is not None and labels["const"] is None
    np.testing.assert_allclose(np.asarray(x.grad), 3 * np.cos([1.0, 2.0]))  # unchanged


def test_adjoints_true_needs_a_one_element_output():
    x = mg.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(ValueError, match=r"to_dot: adjoints=True needs a tensor with one element.*\(2,\)"):
        mg.to_dot(x * 2, adjoints=True)
    # a graph with nothing to differentiate shows no adjoints
    assert "adjoint" not in mg.to_dot(mg.tensor(2.0) * 3, adjoints=True)


def test_draw_passes_adjoints_through(tmp_path):
    if shutil.which("dot") is None:
        pytest.skip("Graphviz's dot is not installed")
    x = mg.tensor(0.5, requires_grad=True)
    out = mg.draw(mg.exp(x * x), str(tmp_path / "g.svg"), adjoints=True)
    assert "adjoint" in (tmp_path / "g.svg").read_text() and out.endswith("g.svg")
