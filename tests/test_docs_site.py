"""The documentation (the site: docs/ and mkdocs.yml; docs/matrix-calculus.md's identity table) stays
true to the code.

- Every ```python block of docs/**/*.md runs, page by page in order in one fresh namespace per
  page, in a temporary working directory, and the asserts inside hold. A block right after a
  line `<!-- no-run -->` is skipped (the training command line, for one); there are few.
- Every public name of matgrad, mg.nn, mg.optim and mg.distributed has a `::: matgrad.NAME` entry on an API page.
- The lecture page's copy of `python -m matgrad lecture` output and its picture of the graph
  show the values and adjoints the engine computes now.
- When mkdocs is installed (pip install ".[docs]"), `mkdocs build --strict` succeeds and the API
  pages hold the docstrings of the compiled module (e.g. det's derivative rule, "adj(X)").
- Every test the identity table of docs/matrix-calculus.md names exists.
"""

from __future__ import annotations

import html
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import matgrad as mg
import matgrad.distributed as mgd
from matgrad.__main__ import lecture_graph

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
NO_RUN = "<!-- no-run -->"
FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)


def pages():
    return sorted(p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md"))


def python_blocks(text: str):
    """(line number, source, runs) of each top-level ```python block."""
    out = []
    for m in FENCE.finditer(text):
        if m.group(1) != "python":
            continue
        before = text[: m.start()].rstrip().splitlines()
        runs = not (before and before[-1].strip() == NO_RUN)
        out.append((text[: m.start()].count("\n") + 2, m.group(2), runs))
    return out


def test_the_site_has_its_pages_and_they_have_code():
    want = {"index.md", "installation.md", "concepts.md", "lecture.md", "errors.md", "api/index.md"}
    assert want <= set(pages())
    blocks = {p: python_blocks((DOCS / p).read_text()) for p in pages()}
    assert sum(len(b) for b in blocks.values()) >= 20
    for page in ("index.md", "concepts.md", "lecture.md", "errors.md"):
        assert sum(runs for _, _, runs in blocks[page]) >= 1, page
    skipped = [(p, line) for p, b in blocks.items() for line, _, runs in b if not runs]
    assert len(skipped) <= 3, f"too many <!-- no-run --> blocks: {skipped}"
    for p, b in blocks.items():
        for line, src, _ in b:
            if "matgrad" in src and "import matgrad" in src:
                assert "import matgrad as mg" in src, f"docs/{p}:{line}: use `import matgrad as mg`"


@pytest.mark.parametrize("page", [p for p in pages() if python_blocks((DOCS / p).read_text())])
def test_python_blocks_run(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": f"docs_{Path(page).stem}"}
    ran = 0
    for line, src, runs in python_blocks((DOCS / page).read_text()):
        if not runs:
            continue
        code = compile("\n" * (line - 1) + src, str(DOCS / page), "exec")
        exec(code, namespace)  # a failing assert points at the page's line
        ran += 1
    assert ran


def test_python_block_parser_sees_fences_and_no_run_markers():
    text = (
        "a\n\n```python\nx = 1\n```\n\n<!-- no-run -->\n```python\nraise SystemExit\n```\n```bash\nls\n```\n"
    )
    assert python_blocks(text) == [(4, "x = 1\n", True), (9, "raise SystemExit\n", False)]


def documented():
    """The ``::: matgrad.NAME`` entries of the API pages, with the ops' markers expanded as
    docs/hooks.py expands them (one entry per public op of the family, from the engine)."""
    names = set()
    for p in (DOCS / "api").glob("*.md"):
        text = p.read_text()
        names |= set(re.findall(r"^::: (matgrad(?:\.\w+)+)\s*$", text, re.MULTILINE))
        for family in re.findall(r"^<!-- matgrad: ops of the (\w+) family\b", text, re.MULTILINE):
            names |= {f"matgrad.{e['name']}" for e in mg._core._entry_points() if e["family"] == family}
    return names


def test_every_public_name_is_in_the_api_reference():
    names = documented()
    for n in mg.__all__:
        if n in ("nn", "optim", "__version__"):
            continue
        assert f"matgrad.{n}" in names, f"docs/api: no `::: matgrad.{n}`"
    # mg.nn, mg.optim and mg.distributed are documented as whole modules (test_mkdocs_build_strict checks that
    # each public class and function gets its entry).
    assert {"matgrad.nn", "matgrad.optim", "matgrad.distributed"} <= names


def public_members(mod):
    return [
        k
        for k, v in vars(mod).items()
        if not k.startswith("_") and getattr(v, "__module__", "") == mod.__name__
    ]


def lecture_rows(text: str):
    return {
        m.group(1): (m.group(2), float(m.group(3)), float(m.group(4)))
        for m in re.finditer(r"^\s+([xa-f])\s+(\w+)\s+.*?\s(\S+)\s+(\S+)\s*$", text, re.MULTILINE)
    }


def test_lecture_page_shows_what_python_m_matgrad_prints(tmp_path):
    page = (DOCS / "lecture.md").read_text()
    block = re.search(r"```text\n(matgrad \S+: the lecture example at x = 0\.7\n.*?)```", page, re.DOTALL)
    assert block, "lecture.md: the ```text block with the output of python -m matgrad lecture --no-graph"
    r = subprocess.run(
        [sys.executable, "-m", "matgrad", "lecture", "--no-graph"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        check=False,
    )
    assert r.returncode == 0, r.stderr
    shown, live = lecture_rows(block.group(1)), lecture_rows(r.stdout)
    assert set(shown) == set("xabcdef") and shown.keys() == live.keys()
    for k in shown:
        assert shown[k][0] == live[k][0], k
        np.testing.assert_allclose(shown[k][1:], live[k][1:], rtol=1e-15, err_msg=k)


def test_lecture_picture_shows_the_engines_values_and_adjoints():
    svg = html.unescape((DOCS / "assets" / "lecture-example-graph.svg").read_text())
    assert "<svg" in svg
    names = {name: t for name, t, _ in lecture_graph(0.7)}  # what python -m matgrad draws
    labels = re.findall(r'label="([^"]*)", shape', mg.to_dot(names["f"], names=names))
    assert len(labels) == 7
    for label in labels:
        for row in label.split("\\n"):
            assert row in svg, (
                f"docs/assets/lecture-example-graph.svg lacks {row!r}: redraw it with "
                "python -m matgrad lecture --graph docs/assets/lecture-example-graph.svg"
            )


def test_mkdocs_build_strict(tmp_path):
    pytest.importorskip("mkdocs")
    pytest.importorskip("mkdocstrings_handlers.python")
    pytest.importorskip("material")
    site = tmp_path / "site"
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "mkdocs",
            "build",
            "--strict",
            "-f",
            str(ROOT / "mkdocs.yml"),
            "-d",
            str(site),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
        env=env,
        check=False,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert "WARNING" not in r.stderr, r.stderr

    def words(s: str) -> str:
        return " ".join(re.findall(r"[A-Za-z0-9]+", s))

    def page_words(page: str) -> str:
        return words(html.unescape(re.sub(r"<[^>]+>", " ", (site / page / "index.html").read_text())))

    assert "adj(X)" in html.unescape((site / "api" / "linalg" / "index.html").read_text())
    # Each function of the compiled module shows its live docstring (its first line of text,
    # after pybind11's signature line), wherever it is documented.
    api = " ".join(page_words(f"api/{p.stem}") for p in (DOCS / "api").glob("*.md") if p.stem != "index")
    checked = 0
    for n in mg.__all__:
        obj = getattr(mg, n, None)
        if getattr(obj, "__module__", None) != "matgrad._core" or not obj.__doc__:
            continue
        lines = [ln for ln in obj.__doc__.strip().splitlines() if ln.strip() and " -> " not in ln]
        assert words(lines[0]) in api, f"the API pages lack the docstring of {n}: {lines[0]!r}"
        checked += 1
    assert checked >= 40
    tensors = (site / "api" / "tensors" / "index.html").read_text()
    for name in ("backward", "retain_grad", "numpy", "reshape", "grad", "shape"):
        assert f'id="matgrad.Tensor.{name}"' in tensors
    for fn in ("grad", "jacobian", "hessian", "vjp", "jvp", "check_grad"):
        assert f'id="matgrad.{fn}"' in (site / "api" / "transforms" / "index.html").read_text()
    for mod, page in ((mg.nn, "nn"), (mg.optim, "optim"), (mgd, "distributed")):
        built = (site / "api" / page / "index.html").read_text()
        assert len(public_members(mod)) >= 2
        for k in public_members(mod):
            assert f'id="{mod.__name__}.{k}"' in built, f"api/{page}: no entry for {mod.__name__}.{k}"
    assert (site / "assets" / "lecture-example-graph.svg").is_file()
    assert not list(site.rglob("*.py")), "docs/*.py must not be published"


def test_matrix_calculus_table_cites_existing_tests():
    """Every test the identity table of docs/matrix-calculus.md names exists (the table stays true)."""
    import pathlib
    import re

    root = pathlib.Path(__file__).resolve().parent.parent
    page = (root / "docs" / "matrix-calculus.md").read_text()
    table = page.split("| identity | test |", 1)[1]
    cited = set(re.findall(r"`(test_[a-z0-9_]+)`", table))
    assert len(cited) > 30
    defined = set()
    for path in (root / "tests").glob("test_*.py"):
        defined |= set(re.findall(r"^def (test_[a-z0-9_]+)\(", path.read_text(), re.M))
    assert cited <= defined, (
        f"docs/matrix-calculus.md cites tests that do not exist: {sorted(cited - defined)}"
    )


def test_readme_python_blocks_run(tmp_path, monkeypatch):
    """The README's tour runs as written (in a temporary working directory)."""
    import pathlib

    root = pathlib.Path(__file__).resolve().parent.parent
    blocks = re.findall(r"```python\n(.*?)```", (root / "README.md").read_text(), re.S)
    assert blocks
    monkeypatch.chdir(tmp_path)
    for src in blocks:
        exec(compile(src, "README.md", "exec"), {"__name__": "readme"})
