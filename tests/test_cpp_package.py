"""The C++ package inside the installed Python package (Note [the C++ package] in CMakeLists.txt):
mg.get_include(), mg.get_cmake_dir(), `python -m matgrad --cmakedir/--includedir`, and
examples/cpp configured, built and run against it with find_package(matgrad) as a C++ user
would; an Eigen other than the one the engine was built with is refused at configure time."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import matgrad as mg

ROOT = Path(__file__).resolve().parents[1]


def cmake() -> str:
    exe = shutil.which(
        "cmake", path=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")
    )
    if exe is None or shutil.which("c++") is None:
        pytest.skip("needs cmake (part of the test extra) and a C++ compiler")
    return exe


def generator() -> list[str]:
    ninja = shutil.which(
        "ninja", path=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")
    )
    return ["-G", "Ninja", f"-DCMAKE_MAKE_PROGRAM={ninja}"] if ninja else []


def run(*args: str, cwd: Path = ROOT, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=timeout, cwd=cwd)


def test_the_package_has_headers_library_and_config():
    inc, cm = Path(mg.get_include()), Path(mg.get_cmake_dir())
    assert (inc / "matgrad" / "matgrad.hpp").is_file()
    assert (inc / "matgrad" / "api_ops.hpp").is_file()  # generated at build time
    assert (inc / "eigen3" / "Eigen" / "Core").is_file()  # the Eigen the engine was compiled against
    assert (cm / "matgradConfig.cmake").is_file() and (cm / "matgradConfigVersion.cmake").is_file()
    assert list((cm.parent.parent).glob("libmatgrad_core.*")), "the engine's library is missing"
    # the config pins the Eigen version the headers above are
    macros = (inc / "eigen3" / "Eigen" / "src" / "Core" / "util" / "Macros.h").read_text()
    ver = ".".join(
        re.search(rf"#define EIGEN_{k}_VERSION +(\d+)", macros).group(1) for k in ("WORLD", "MAJOR", "MINOR")
    )
    assert f'set(matgrad_EIGEN_VERSION "{ver}")' in (cm / "matgradConfig.cmake").read_text()


def test_cli_prints_the_folders():
    r = run(sys.executable, "-m", "matgrad", "--cmakedir")
    assert r.returncode == 0, r.stderr
    assert r.stdout == mg.get_cmake_dir() + "\n"
    r = run(sys.executable, "-m", "matgrad", "--includedir")
    assert r.returncode == 0, r.stderr
    assert r.stdout == mg.get_include() + "\n"


def test_example_builds_and_runs_against_the_installed_package(tmp_path):
    exe = cmake()
    build = tmp_path / "build"
    r = run(exe, "-S", str(ROOT / "examples" / "cpp"), "-B", str(build), *generator(),
            "-DCMAKE_BUILD_TYPE=Release", f"-Dmatgrad_DIR={mg.get_cmake_dir()}")  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    r = run(exe, "--build", str(build))
    assert r.returncode == 0, r.stdout + r.stderr
    r = run(str(build / "example"))
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.count(" ok\n") == 4 and "WRONG" not in r.stdout, r.stdout


def test_another_eigen_version_is_refused(tmp_path):
    """A project whose Eigen3::Eigen is another version than the engine's gets a configure error
    naming both versions (mixing them would be an ODR violation no tool reports)."""
    exe = cmake()
    fake = tmp_path / "eigen" / "Eigen" / "src" / "Core" / "util"
    fake.mkdir(parents=True)
    (fake / "Macros.h").write_text(
        "#define EIGEN_WORLD_VERSION 3\n#define EIGEN_MAJOR_VERSION 3\n#define EIGEN_MINOR_VERSION 9\n"
    )
    (tmp_path / "CMakeLists.txt").write_text(
        "cmake_minimum_required(VERSION 3.19)\nproject(other_eigen LANGUAGES CXX)\n"
        "add_library(Eigen3::Eigen INTERFACE IMPORTED)\n"
        f'set_target_properties(Eigen3::Eigen PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "{(tmp_path / "eigen").as_posix()}")\n'
        "find_package(matgrad CONFIG REQUIRED)\n"
    )
    r = run(
        exe,
        "-S",
        str(tmp_path),
        "-B",
        str(tmp_path / "build"),
        *generator(),
        f"-Dmatgrad_DIR={mg.get_cmake_dir()}",
    )
    assert r.returncode != 0
    out = re.sub(r"\s+", " ", r.stderr)
    assert "matgrad was built with Eigen 3.4." in out and "is Eigen 3.3.9" in out, r.stderr


def declared(header: str) -> set[str]:
    """The functions and classes a public header declares at namespace scope (not detail::)."""
    text = re.sub(r"namespace detail \{.*?\}  // namespace detail", "", header, flags=re.S)
    names = set(re.findall(r"^(?:inline |template <[^>]*>\s*)?[\w:<>, ]+?[ &*](\w+)\(", text, flags=re.M))
    names |= set(re.findall(r"^(?:class|struct|enum class) (\w+)[^;]*$", text, flags=re.M))
    return names - {"operator", "static_assert"}


# Declared in those headers for the Python bindings and the tests, not for C++ users: the helpers
# of the transforms' argument rules, a private member, and the batched sweeps' call counters.
INTERNAL = {"check_scalar_output", "diff_input", "resolve_argnums", "inputs_of", "BatchStats", "batch_stats"}


def test_the_api_page_lists_every_function():
    """docs/cpp.md names every op of the generated header and every function and class of the
    API headers a C++ user calls."""
    page = (ROOT / "docs" / "cpp.md").read_text()
    inc = Path(mg.get_include()) / "matgrad"
    missing = {}
    for h in ("api_ops.hpp", "api.hpp", "autodiff.hpp", "compiled.hpp", "error.hpp"):
        names = declared((inc / h).read_text())
        assert names, h
        gone = sorted(n for n in names - INTERNAL if not re.search(rf"\b{n}\b", page))
        if gone:
            missing[h] = gone
    assert not missing, f"docs/cpp.md does not mention: {missing}"
