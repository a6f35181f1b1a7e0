"""The command line and the scripts: `python -m matgrad` (the lecture's example, the README's main
job: every node, the closed form, the graph), `python -m matgrad train` (the lecture's network on
scikit-learn's digits: its options, outputs and refusals, and the train module behind it), every
example in examples/, and bench/train.py's smoke run."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


def run(*args: str, cwd: Path = ROOT, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=timeout, cwd=cwd)


def run_train(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    """run() with the time a training run needs."""
    return run(*args, cwd=cwd, timeout=300)


@pytest.fixture
def train_extra():
    """Skips the test without scikit-learn (the train extra, part of the test extra)."""
    pytest.importorskip("sklearn", reason="the train extra (scikit-learn) is part of the test extra")


# ---- python -m matgrad: the lecture's example ----


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


# ---- python -m matgrad train ----


@pytest.mark.usefixtures("train_extra")
def test_train_with_the_defaults_reaches_95_percent_and_writes_its_outputs(tmp_path):
    r = run_train("-m", "matgrad", "train", "--no-progress", "--out", str(tmp_path / "out"))
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout
    acc = float(re.search(r"^test accuracy: ([\d.]+)% \((\d+)/450\)$", out, re.M).group(1))
    assert acc >= 95.0, out
    assert (
        len(re.findall(r"^epoch +\d+/20 +loss [\d.]+ +test accuracy +[\d.]+% +[\d.]+ ms$", out, re.M)) == 20
    ), out
    per_epoch = re.search(r"^time per epoch: ([\d.]+) ms median, ([\d.]+) ms mean \(43 steps", out, re.M)
    assert per_epoch and float(per_epoch.group(1)) > 0, out
    png = (tmp_path / "out" / "loss-curve.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    with np.load(tmp_path / "out" / "model.npz") as m:
        assert {k: m[k].shape for k in m.files} == {"A0": (64, 64), "b0": (64,), "A1": (64, 10), "b1": (10,)}
        assert all(m[k].dtype == np.float64 for k in m.files)


@pytest.mark.usefixtures("train_extra")
def test_train_options_shape_the_network_and_the_seed_makes_it_reproducible(tmp_path):
    common = [
        "-m",
        "matgrad",
        "train",
        "--epochs",
        "2",
        "--hidden",
        "32",
        "16",
        "--activation",
        "tanh",
        "--optimizer",
        "sgd",
        "--lr",
        "0.05",
        "--batch-size",
        "64",
        "--dtype",
        "float32",
        "--no-progress",
    ]
    r1 = run_train(*common, "--seed", "3", "--out", str(tmp_path / "a"))
    r2 = run_train(*common, "--seed", "3", "--out", str(tmp_path / "b"))
    r3 = run_train(*common, "--seed", "4", "--out", str(tmp_path / "c"))
    for r in (r1, r2, r3):
        assert r.returncode in (0, 1), r.stdout + r.stderr  # 1: below 95% after only 2 epochs
        assert "network 64 -> 32 -> 16 -> 10, tanh hidden layers" in r.stdout
        assert "sgd lr 0.05, batch 64, 2 epochs" in r.stdout and "(22 steps" in r.stdout
    a, b, c = (np.load(tmp_path / d / "model.npz") for d in "abc")
    assert {k: a[k].shape for k in a.files} == {
        "A0": (64, 32),
        "b0": (32,),
        "A1": (32, 16),
        "b1": (16,),
        "A2": (16, 10),
        "b2": (10,),
    }
    assert all(a[k].dtype == np.float32 for k in a.files)
    assert all(np.array_equal(a[k], b[k]) for k in a.files)  # same seed: the same weights, bit for bit
    assert not np.array_equal(a["A0"], c["A0"])
    # the printed accuracies are the same too
    acc = [re.search(r"^test accuracy: (.*)$", r.stdout, re.M).group(1) for r in (r1, r2)]
    assert acc[0] == acc[1]


@pytest.mark.usefixtures("train_extra")
def test_train_shows_a_progress_bar_with_the_running_loss(tmp_path):
    r = run_train("-m", "matgrad", "train", "--epochs", "1", "--out", str(tmp_path))
    assert r.returncode in (0, 1), r.stderr
    assert re.search(r"epoch 1/1.*loss=\d\.\d{4}", r.stderr), r.stderr  # tqdm writes to stderr


@pytest.mark.usefixtures("train_extra")
@pytest.mark.parametrize(
    "argv, message",
    [
        (["--epochs", "0"], "epochs must be >= 1"),
        (["--batch-size", "0"], "batch size must be >= 1"),
        (["--lr", "-1"], "learning rate must be positive"),
        (["--hidden", "0"], "hidden sizes must be positive"),
    ],
)
def test_train_refuses_bad_options_with_a_message(tmp_path, argv, message):
    r = run_train("-m", "matgrad", "train", *argv, "--out", str(tmp_path))
    assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr, r.stderr


@pytest.mark.usefixtures("train_extra")
@pytest.mark.parametrize(
    "argv, message",
    [
        (["--seed", "-1"], "seed must be >= 0"),
        (["--lr", "inf"], "learning rate must be positive and finite"),
    ],
)
def test_train_refuses_more_bad_options(tmp_path, argv, message):
    r = run_train("-m", "matgrad", "train", *argv, "--out", str(tmp_path / "out"))
    assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.usefixtures("train_extra")
def test_train_says_when_the_output_folder_cannot_be_made(tmp_path):
    (tmp_path / "afile").write_text("")
    r = run_train(
        "-m", "matgrad", "train", "--epochs", "1", "--no-progress", "--out", str(tmp_path / "afile")
    )
    assert r.returncode == 2 and "error: --out" in r.stderr and "Traceback" not in r.stderr, r.stderr


@pytest.mark.usefixtures("train_extra")
def test_train_says_which_extra_is_missing(monkeypatch):
    from matgrad import train

    with pytest.raises(ImportError, match=r"matgrad\[train\]"):
        train._need("a_module_that_does_not_exist_here")


@pytest.mark.usefixtures("train_extra")
def test_train_function_reports_per_epoch_history():
    from matgrad import train

    data = train.load_digits()
    assert data.X_train.shape == (1347, 64) and data.X_test.shape == (450, 64)
    np.testing.assert_allclose(data.X_train.mean(axis=0), 0, atol=1e-12)
    stds = data.X_train.std(axis=0)
    assert np.all((np.abs(stds - 1) < 1e-12) | (stds == 0))
    # stratified: each class has the same share of the test and the training set (to one image)
    share_te = np.bincount(data.y_test, minlength=10) / len(data.y_test)
    share_tr = np.bincount(data.y_train, minlength=10) / len(data.y_train)
    assert np.max(np.abs(share_te - share_tr)) < 1.0 / len(data.y_test)
    res = train.train(train.TrainConfig(epochs=3, hidden=(32,), seed=1), data)
    assert len(res.epoch_losses) == len(res.test_accuracy) == len(res.epoch_seconds) == 3
    assert len(res.step_losses) == 3 * 43
    assert res.epoch_losses[2] < res.epoch_losses[0]
    assert res.test_accuracy[-1] == train.accuracy(res.model, data.X_test, data.y_test)
    with pytest.raises(ValueError, match="activation"):
        train.train(train.TrainConfig(activation="softmax"), data)


# ---- the examples and the benchmark script ----


@pytest.mark.parametrize(
    "example",
    sorted(p.name for p in (ROOT / "examples").glob("*.py") if p.name != "distributed_training.py"),
)
def test_example_runs(example):
    r = run(str(ROOT / "examples" / example))
    assert r.returncode == 0, r.stdout + r.stderr


def test_distributed_example_matches_one_process():
    """The data-parallel example, small: 1 and 2 workers give client=None's weights to 1e-12."""
    pytest.importorskip("distributed", reason="the distributed extra (Dask) is part of the test extra")
    r = run_train(
        str(ROOT / "examples" / "distributed_training.py"),
        "--samples",
        "3000",
        "--shards",
        "5",
        "--steps",
        "3",
    )
    assert r.returncode == 0, r.stdout + r.stderr
    errs = [float(x) for x in re.findall(r"weights vs client=None: ([\d.e+-]+) relative", r.stdout)]
    assert len(errs) == 2 and max(errs) <= 1e-12, r.stdout
    assert re.search(r"speed-up of 2 workers over 1: [\d.]+x", r.stdout), r.stdout


@pytest.mark.usefixtures("train_extra")
def test_digits_example_learns():
    r = run_train(str(ROOT / "examples" / "digits_network.py"), "--epochs", "8")
    assert r.returncode == 0, r.stdout + r.stderr
    acc = float(re.search(r"^test accuracy: ([\d.]+)%$", r.stdout, re.M).group(1))
    assert acc >= 95.0, r.stdout


@pytest.mark.usefixtures("train_extra")
def test_weighted_least_squares_example_matches_its_closed_forms():
    for argv in ([], ["--m", "2", "--n", "1"], ["--m", "9", "--n", "7", "--seed", "2"]):
        r = run_train(str(ROOT / "examples" / "weighted_least_squares.py"), *argv)
        assert r.returncode == 0 and "all match the closed forms" in r.stdout, r.stdout + r.stderr
        assert len(re.findall(r"relative error", r.stdout)) == 6


@pytest.mark.usefixtures("train_extra")
def test_gp_regression_example_finds_scikit_learns_optimum():
    r = run_train(str(ROOT / "examples" / "gp_regression.py"), "--n", "150")
    assert r.returncode == 0 and "the same likelihood at the optimum" in r.stdout, r.stdout + r.stderr
    rel = float(re.search(r"relative difference of the optima's NLML: ([\d.e+-]+)", r.stdout).group(1))
    assert rel <= 1e-6, r.stdout


@pytest.mark.usefixtures("train_extra")
def test_bench_train_smoke_run():
    """bench/train.py runs (torch rows only when torch is installed) and checks matgrad's training."""
    r = run_train(str(ROOT / "bench" / "train.py"), "--quick", "--epochs", "2", "--dtypes", "f64")
    assert r.returncode == 0, r.stdout + r.stderr
    assert re.search(r"^\| float64 1T +\| +[\d.]+ \|", r.stdout, re.M), r.stdout


def test_version_prints_the_package_version():
    import matgrad as mg

    r = run("-m", "matgrad", "--version")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"matgrad {mg.__version__}"


def test_a_missing_train_extra_is_one_line_without_a_traceback(tmp_path):
    # scikit-learn made unimportable (a None entry in sys.modules), as on a machine without the extra
    code = "import sys; sys.modules['sklearn'] = None; from matgrad.__main__ import main; sys.exit(main(['train']))"
    r = run("-c", code, cwd=tmp_path)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    assert 'pip install "matgrad[train]"' in r.stderr and "scikit-learn" in r.stderr


def test_bench_run_quick_writes_results_chart_and_table(tmp_path):
    """bench/run.py --quick: W1-W6 in one command (peers when installed), results.json, the chart
    when matplotlib is there, and the table; W7 from a bench_w7 binary (a stand-in printing its
    table here)."""
    fake = tmp_path / "bench_w7"
    fake.write_text(
        "#!/bin/sh\n"
        "echo 'W7: n = 10; all gradients match the hand-written ones.'\n"
        "echo 'workload nodes record-us rec+bwd-us ns/node replay-us instrs ns/instr hand-us hand-ns/el AD/hand rep/hand'\n"
        "echo 'matrix product 64       3       1.00       27.50       9.1      10.50       5       2.1     10.00       0.01     2.7x     1.0x'\n"
    )
    fake.chmod(0o755)
    out = tmp_path / "res"
    r = run(str(ROOT / "bench" / "run.py"), "--quick", "--out", str(out), "--w7", str(fake), timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    data = json.loads((out / "results.json").read_text())
    rows = data["results"]
    assert {row["workload"] for row in rows} == {"W1", "W2", "W3", "W4", "W5", "W6", "W7"}
    systems = {row["system"] for row in rows}
    assert {"numpy (closed form)", "matgrad compiled", "matgrad value_and_grad"} <= systems
    w7 = {row["system"]: row["median_us"] for row in rows if row["workload"] == "W7"}
    assert w7 == {
        "matgrad eager (C++ record + backward)": 27.5,
        "matgrad compiled (C++ replay)": 10.5,
        "hand-written C++": 10.0,
    }
    assert re.search(
        r"^W7 +matrix product 64 +float64 +matgrad compiled \(C\+\+ replay\) +10\.50 +1\.050", r.stdout, re.M
    )
    assert re.search(r"^W4 +n=256 +float64 +numpy \(closed form\) +[\d.]+ +1\.000", r.stdout, re.M), r.stdout
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return
    assert (out / "results.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
