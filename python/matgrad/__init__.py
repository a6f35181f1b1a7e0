"""matgrad: reverse-mode automatic differentiation for matrix programs.

A C++17/Eigen engine with a NumPy-shaped Python API::

    import matgrad as mg
    x = mg.tensor([1.0, 2.0], requires_grad=True)
    y = (mg.sin(x) * x).sum()
    y.backward()
    x.grad            # cos(x) * x + sin(x)

Every public function's docstring starts with its signature, then gives the shapes it takes and
returns and the derivative rule it implements: ``d/dx: ...`` is the adjoint passed back to input
``x``, written with ``G``, the adjoint (cotangent) of the output, which has the output's shape.
"""

from __future__ import annotations

from . import _core, _protocols, nn, optim  # nn, optim: the submodules mg.nn, mg.optim
from ._cmake import get_cmake_dir, get_include
from ._compile import CompiledFunction as CompiledFunction
from ._compile import compile, load
from ._core import *  # noqa: F403  (the public ops: one entry point each, defined in the engine)
from ._core import AnomalyError as AnomalyError
from ._core import Tensor
from ._core import get_cache_limit as get_cache_limit  # the per-thread buffer caches
from ._core import get_num_threads as get_num_threads  # the kernels' threads
from ._core import is_grad_enabled as is_grad_enabled  # re-exported (listed in _core.__all__)
from ._core import set_cache_limit as set_cache_limit
from ._core import set_num_threads as set_num_threads
from ._core import tensor as tensor  # re-exported (listed in _core.__all__)
from ._creation import arange, eye, linspace, ones, ones_like, zeros, zeros_like
from ._indexing import getitem as _getitem
from ._transforms import (
    check_grad,
    detect_anomaly,
    grad,
    hessian,
    jacobian,
    jvp,
    no_grad,
    value_and_grad,
    vjp,
)
from .viz import draw, to_dot

Tensor.__getitem__ = _getitem  # type: ignore[method-assign]
_protocols.install()  # format(), int(), tolist(), comparisons, NumPy functions, pickle, copy

__version__: str = _core.__version__

if _core._cache_limit_env_error():  # MATGRAD_CACHE_LIMIT that is not a size: say so once
    import warnings as _warnings

    _warnings.warn(_core._cache_limit_env_error(), RuntimeWarning, stacklevel=2)

# The engine's public names (Tensor, tensor, is_grad_enabled and every op, from its registry of
# entry points), then the package's own.
__all__ = [
    "no_grad",
    "detect_anomaly",
    # tensors from a shape
    "zeros",
    "ones",
    "zeros_like",
    "ones_like",
    "eye",
    "arange",
    "linspace",
    "AnomalyError",
    # transforms
    "grad",
    "value_and_grad",
    "jacobian",
    "hessian",
    "vjp",
    "jvp",
    "check_grad",
    # compiled programs
    "compile",
    "load",
    # pictures
    "to_dot",
    "draw",
    # threads
    "set_num_threads",
    "get_num_threads",
    # memory
    "set_cache_limit",
    "get_cache_limit",
    # the C++ package (find_package(matgrad) from a wheel)
    "get_include",
    "get_cmake_dir",
    # training
    "nn",
    "optim",
    "__version__",
]
__all__ += _core.__all__
