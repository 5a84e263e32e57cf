"""fastdl: the book "Deep Learning from Scratch" as a fast, tested library.

Switch the kernel backend with one call::

    import fastdl
    fastdl.available_backends()      # ['numpy', 'numba', 'cpp']
    fastdl.set_backend('cpp')
    with fastdl.use_backend('numba'):
        ...
"""
from __future__ import annotations

from importlib.metadata import PackageNotFoundError as _NotInstalled
from importlib.metadata import version as _version

try:  # written once, in pyproject.toml (the C++ extension gets it from CMake)
    __version__ = _version("fastdl")
except _NotInstalled:  # the source tree, never installed
    __version__ = "0+unknown"

from .backend import (
    BackendUnavailableError,
    available_backends,
    fusion_enabled,
    get_backend,
    get_num_threads,
    set_backend,
    set_fusion,
    set_num_threads,
    show_config,
    use_backend,
)

__all__ = [
    "__version__",
    "BackendUnavailableError",
    "available_backends",
    "fusion_enabled",
    "get_backend",
    "get_num_threads",
    "set_backend",
    "set_fusion",
    "set_num_threads",
    "show_config",
    "use_backend",
]

from .backend import _init_from_env, _warn_if_source_tree

_warn_if_source_tree()
_init_from_env()
del _init_from_env, _warn_if_source_tree
