"""The fuzz harness (tools/fuzz/fuzz_ops.py) on its committed seed corpus, without atheris.

Each seed decodes into a small op program (forward values against NumPy, exception kinds, a
gradient against central differences through one transform); together they cover every op
family and every transform. A subprocess, so that a crash in the engine fails this test rather
than pytest. The open-ended run is tools/fuzz/run.sh.
"""

from __future__ import annotations

import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
HARNESS = ROOT / "tools" / "fuzz" / "fuzz_ops.py"
CORPUS = ROOT / "tools" / "fuzz" / "corpus"


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(  # the caller inspects the return code
        [sys.executable, str(HARNESS), *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        check=False,
    )


def test_seed_corpus_has_no_findings():
    seeds = sorted(CORPUS.iterdir())
    assert len(seeds) >= 8 and all(s.stat().st_size <= 256 for s in seeds)
    r = run("--corpus", str(CORPUS))
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"{len(seeds)} inputs, 0 findings" in r.stdout


def test_harness_reports_a_finding(tmp_path, monkeypatch):
    """A harness that cannot fail proves nothing: with a wrong NumPy reference for sin (cos),
    the seed that runs sin must be reported, with its program, and exit non-zero."""
    sys.path.insert(0, str(HARNESS.parent))
    try:
        import fuzz_ops
    finally:
        sys.path.pop(0)
    import numpy as np

    sin = next(op for op in fuzz_ops.OPS if op.name == "sin")
    monkeypatch.setattr(sin, "np_fn", np.cos)
    failed = []
    for seed in sorted(CORPUS.iterdir()):
        try:
            fuzz_ops.test_one_input(seed.read_bytes())
        except fuzz_ops.Finding as e:
            failed.append(str(e))
    assert failed and any("sin" in f and "NumPy gives" in f and "program:" in f for f in failed), failed
    assert run("--corpus", str(tmp_path / "missing")).returncode == 2
