"""Where the wheel keeps the C++ package: the engine's headers and library and its CMake
config, as pybind11's wheel keeps its own (``pybind11.get_cmake_dir()``)."""

from __future__ import annotations

import os

import matgrad


def _find(*parts: str) -> str:
    # __path__, not __file__: an editable install imports the package from the source tree and
    # puts what CMake installs into site-packages; __path__ lists both.
    for root in matgrad.__path__:
        path = os.path.join(root, *parts)
        if os.path.exists(path):
            return os.path.abspath(path)
    raise FileNotFoundError(
        f"matgrad's C++ package is not installed with this matgrad ({'/'.join(parts)} not found under "
        f"{list(matgrad.__path__)}): reinstall it from its sources or wheel with pip"
    )


def get_include() -> str:
    """get_include() -> str

    The folder of matgrad's C++ headers (``#include <matgrad/matgrad.hpp>``); the Eigen
    headers the engine was compiled against are in its subfolder ``eigen3``.
    Not differentiable: a path. For CMake, ``get_cmake_dir()`` sets all of this up.

    Example:
        >>> import os, matgrad as mg
        >>> os.path.isfile(os.path.join(mg.get_include(), "matgrad", "matgrad.hpp"))
        True
    """
    _find("include", "matgrad", "matgrad.hpp")
    return _find("include")


def get_cmake_dir() -> str:
    """get_cmake_dir() -> str

    The folder of ``matgradConfig.cmake`` in this installation, for a C++ project's
    ``find_package(matgrad CONFIG)``: ``cmake -Dmatgrad_DIR=<this folder>``, or
    ``python -m matgrad --cmakedir`` from a shell. The package gives the target
    ``matgrad::matgrad`` (the engine's library, headers, compile flags and the Eigen it was
    built with). Not differentiable: a path. Raises FileNotFoundError when this matgrad was
    installed without its C++ package.

    Example:
        >>> import os, matgrad as mg
        >>> os.path.isfile(os.path.join(mg.get_cmake_dir(), "matgradConfig.cmake"))
        True
    """
    return os.path.dirname(_find("lib", "cmake", "matgrad", "matgradConfig.cmake"))
