"""`python -m matgrad` (the README's main job) and the examples run and print true numbers."""

from __future__ import annotations

import math
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=120, cwd=cwd)


def closed_form(x: float) -> float:
    c = x**2 + math.exp(x**2)
    return 2 * x * (1 / (2 * math.sqrt(c)) - math.sin(c)) * (1 + math.exp(x**2))


@pytest.mark.parametrize("argv", [["-m", "matgrad"], ["-m", "matgrad", "lecture", "--x", "-1.3"]])
def test_main_job_prints_every_node_and_the_closed_form(argv, tmp_path):
    r = run(*argv, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    x0 = float(argv[-1]) if "--x" in argv else 0.7
    out = r.stdout
    for name, op in (
        ("x", "leaf"),
        ("a", "pow"),
        ("b", "exp"),
        ("c", "add"),
        ("d", "sqrt"),
        ("e", "cos"),
        ("f", "add"),
    ):
        assert re.search(rf"^\s+{name}\s+{op}\s", out, re.M), out
    # The values and adjoints printed are the engine's: check a few against closed forms.
    a, b = x0**2, math.exp(x0**2)
    c = a + b
    row = {
        m.group(1): (float(m.group(2)), float(m.group(3)))
        for m in re.finditer(r"^\s+([a-f])\s+\w+\s+\S+(?: \+ \S+)?\s+(\S+)\s+(\S+)$", out, re.M)
    }
    assert row["c"][0] == pytest.approx(c, rel=1e-15)
    assert row["d"][1] == 1.0 and row["e"][1] == 1.0
    assert row["c"][1] == pytest.approx(1 / (2 * math.sqrt(c)) - math.sin(c), rel=1e-14)
    got = float(re.search(r"df/dx \(reverse sweep\)\s+=\s+(\S+)", out).group(1))
    want = float(re.search(r"df/dx \(closed form\)\s+=\s+(\S+)", out).group(1))
    assert want == pytest.approx(closed_form(x0), rel=1e-15)
    assert got == pytest.approx(want, rel=1e-14)


def test_main_job_draws_the_graph(tmp_path):
    """The default run also draws the lecture's graph (or writes its DOT text without Graphviz)."""
    import shutil

    r = run("-m", "matgrad", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    if shutil.which("dot"):
        svg = (tmp_path / "lecture-graph.svg").read_text()
        assert "<svg" in svg and "x = input" in svg and "adjoint" in svg
        assert "lecture-graph.svg" in r.stdout
    else:
        assert "digraph matgrad" in (tmp_path / "lecture-graph.dot").read_text()
    r = run("-m", "matgrad", "lecture", "--no-graph", cwd=tmp_path / "..")
    assert r.returncode == 0 and "graph" not in r.stdout.split("relative difference")[1]


def test_main_help_lists_the_subcommands():
    r = run("-m", "matgrad", "--help")
    assert r.returncode == 0, r.stderr
    assert re.search(r"^\s+lecture\s+the lecture's scalar example", r.stdout, re.M), r.stdout
    assert re.search(r"^\s+train\s+train the lecture's network", r.stdout, re.M), r.stdout
    r = run("-m", "matgrad", "train", "--help")
    for option in ("--epochs", "--batch-size", "--lr", "--hidden", "--seed", "--out"):
        assert option in r.stdout, r.stdout


def test_the_default_command_takes_the_lecture_options_without_its_name(tmp_path):
    r = run("-m", "matgrad", "--no-graph", "--x", "0.3", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "at x = 0.3" in r.stdout and not list(tmp_path.iterdir())
    r = run("-m", "matgrad", "--x", "2", "--no-graph", "lecture", cwd=tmp_path)  # options before the word
    assert r.returncode == 0 and "at x = 2.0" in r.stdout and not list(tmp_path.iterdir()), r.stdout
    r = run("-m", "matgrad", "--graph", "g.svg", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "g.svg").exists() or (tmp_path / "g.dot").exists()


@pytest.mark.parametrize("example", sorted(p.name for p in (ROOT / "examples").glob("*.py")))
def test_example_runs(example):
    r = run(str(ROOT / "examples" / example))
    assert r.returncode == 0, r.stdout + r.stderr


def test_readme_matrix_calculus_table_cites_existing_tests():
    """Every test the README's identity table names exists (the table stays true)."""
    import pathlib
    import re

    root = pathlib.Path(__file__).resolve().parent.parent
    readme = (root / "README.md").read_text()
    table = readme.split("## Matrix calculus", 1)[1].split("\n## ", 1)[0]
    cited = set(re.findall(r"`(test_[a-z0-9_]+)`", table))
    assert len(cited) > 30
    defined = set()
    for path in (root / "tests").glob("test_*.py"):
        defined |= set(re.findall(r"^def (test_[a-z0-9_]+)\(", path.read_text(), re.M))
    assert cited <= defined, f"README cites tests that do not exist: {sorted(cited - defined)}"
