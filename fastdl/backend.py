"""Backend registry: which kernel module runs, and on how many threads.

A backend is a module under ``fastdl.backends`` that implements the kernel
contract of DESIGN.md.  Backends are imported lazily; an import failure is
kept and shown by :func:`show_config` and in the error raised when somebody
asks for that backend.

The active backend is per thread and per context: :func:`use_backend` changes
it only inside its ``with`` block, :func:`set_backend` changes the process
default.  ``FASTDL_BACKEND`` (``numpy``, ``numba``, ``cpp`` or ``auto``) is
read once, when :mod:`fastdl` is imported.
"""
from __future__ import annotations

import contextlib
import contextvars
import importlib
import os
import sys
import threading
import warnings
from collections import Counter
from pathlib import Path
from types import ModuleType
from typing import Iterator

__all__ = [
    "BackendUnavailableError",
    "available_backends",
    "get_backend",
    "set_backend",
    "use_backend",
    "backend_module",
    "set_num_threads",
    "get_num_threads",
    "show_config",
    "fallback_counts",
    "set_fusion",
    "fusion_enabled",
]

#: Known backends, the reference first; ``auto`` tries them fastest first (reversed).
_MODULES = {
    "numpy": "fastdl.backends.numpy_ref",
    "numba": "fastdl.backends.numba_jit",
    "cpp": "fastdl.backends.cpp",
}
_AUTO_ORDER = tuple(reversed(_MODULES))

# Idle GNU OpenMP workers (the cpp backend's, and Numba's "omp" threading layer, which
# share one libgomp) busy-wait after each parallel region, taking a core from BLAS or
# the Python code that runs next; on a busy machine the next region then waits for a
# whole scheduler time slice.  Measured on the 2-core development machine under load:
# (100,30,24,24) pooling on 2 threads took 12-20 ms per call with the default spin,
# 0.6 ms with PASSIVE (wake-up costs tens of microseconds; the parallel regions here do
# far more work than that).  libgomp reads this when it loads, so it is set before any
# backend loads it; a value the user set wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
# ...but not at once: a worker that sleeps after every region must be woken for the next
# one, and a training step runs a dozen regions tens of microseconds of Python apart (on
# this VM a wake-up can cost more than the region saves).  GOMP_SPINCOUNT bounds the spin
# before the sleep: 20000 spins of libgomp's pause loop is about 0.3 ms here (13 ns a
# pause), against 4 ms for libgomp's default of 300000.  SimpleConvNet's training step on
# 2 threads, median of 6 alternated runs of 300 steps: 4.38 ms passive, 3.06-3.30 ms with
# 10000-50000 spins (1 thread runs no region: unchanged).
os.environ.setdefault("GOMP_SPINCOUNT", "20000")

# OpenBLAS's idle workers spin for 2**28 cycles (~0.1 s) after each multi-threaded product
# before they sleep.  Under the reference backend (BLAS on n threads) that spin took the
# second core from whatever parallel kernel ran next: measured in `fastdl bench` at 2
# threads, cpp conv2 forward right after the reference took 2.7-3.9 ms with the default
# spin and 1.9 ms with 2**20 cycles (~0.4 ms at 2.5 GHz), its 1-thread time being 3.5-4 ms.
# OpenBLAS reads this when it loads (with NumPy), so it only counts when fastdl is imported
# first, as the fastdl command does; a value the user set wins.  (Under numba and cpp,
# BLAS runs on one thread anyway: see set_num_threads.)
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "20")


class BackendUnavailableError(ImportError):
    """A known backend could not be imported; ``__cause__`` is the original error."""


_lock = threading.RLock()
_loaded: dict[str, ModuleType] = {}
_errors: dict[str, BaseException] = {}
_default = "numpy"
_current: contextvars.ContextVar[str | None] = contextvars.ContextVar("fastdl_backend", default=None)
_num_threads: int | None = None
_blas_threads: int | None = None
_fallbacks: Counter = Counter()


def _check_name(name: str) -> str:
    if not isinstance(name, str) or name not in _MODULES:
        raise ValueError(
            f"unknown backend {name!r}; expected one of {sorted(_MODULES)} (or 'auto')"
        )
    return name


def _load(name: str) -> ModuleType | None:
    """Import backend ``name`` once; keep the module or the error."""
    with _lock:
        if name in _loaded:
            return _loaded[name]
        if name in _errors:
            return None
        try:
            mod = importlib.import_module(_MODULES[name])
        except Exception as exc:  # any import failure disables the backend
            _errors[name] = exc
            return None
        _loaded[name] = mod
        if _num_threads is not None and hasattr(mod, "set_num_threads"):
            mod.set_num_threads(_num_threads)
        return mod


def backend_module(name: str | None = None) -> ModuleType:
    """The kernel module of backend ``name`` (default: the active one).

    Raises:
        ValueError: ``name`` is not a known backend.
        BackendUnavailableError: the backend failed to import; the original
            error is chained as ``__cause__``.
    """
    name = get_backend() if name is None else _check_name(name)
    mod = _load(name)
    if mod is None:
        err = _errors[name]
        raise BackendUnavailableError(
            f"backend {name!r} is not available: {type(err).__name__}: {err}"
        ) from err
    return mod


def available_backends() -> list[str]:
    """Names of the backends that import on this machine, e.g. ``['numpy', 'numba', 'cpp']``."""
    return [n for n in _MODULES if _load(n) is not None]


def _resolve(name: str) -> str:
    if name == "auto":
        for cand in _AUTO_ORDER:
            if _load(cand) is not None:
                return cand
        raise BackendUnavailableError("no backend could be imported")  # pragma: no cover
    backend_module(_check_name(name))  # raises if unknown or unavailable
    return name


def get_backend() -> str:
    """Name of the backend that runs kernels in the current thread/context."""
    cur = _current.get()
    return _default if cur is None else cur


def set_backend(name: str) -> None:
    """Make ``name`` (``'numpy'``, ``'numba'``, ``'cpp'`` or ``'auto'``) the process default.

    A :func:`use_backend` block that is active in the calling context keeps
    its own choice until it exits.
    """
    global _default
    _default = _resolve(name)
    _sync_blas()


@contextlib.contextmanager
def use_backend(name: str) -> Iterator[str]:
    """Run the ``with`` block on backend ``name``; other threads are unaffected.

    (The BLAS thread count, see :func:`set_num_threads`, is process-wide and follows
    the most recent choice.)
    """
    token = _current.set(_resolve(name))
    _sync_blas()
    try:
        yield _current.get()
    finally:
        _current.reset(token)
        _sync_blas()


def _sync_blas() -> None:
    """One thread pool at a time: BLAS gets all the threads under the reference backend,
    and one thread under a fast backend, whose own pool (OpenMP or Numba) owns the cores.

    NumPy's OpenBLAS threads spin after each call and fight the other pool: a DeepConvNet
    training step on the cpp backend with 2 threads took 57-72 ms with BLAS on 2 threads
    and 35 ms with BLAS on 1 (55 ms on 1 thread in all).
    """
    global _blas_threads
    want = get_num_threads() if get_backend() == "numpy" else 1
    if want == _blas_threads:
        return
    with _lock:
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=want, user_api="blas")
        _blas_threads = want


def set_num_threads(n: int) -> None:
    """Use ``n`` threads: in the Numba and OpenMP pools, and in BLAS under the reference backend.

    Under a fast backend BLAS runs on one thread, so that only one thread pool is busy
    at a time; on ``cpp`` the float32 affine layers use fastdl's own GEMM on its
    ``n`` threads instead (on AVX-512 CPUs).
    """
    global _num_threads
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    with _lock:
        _num_threads = n
        for name, module_name in _MODULES.items():  # also a backend module imported directly
            if name not in _loaded and module_name in sys.modules:
                _loaded[name] = sys.modules[module_name]
        for mod in _loaded.values():
            if hasattr(mod, "set_num_threads"):
                mod.set_num_threads(n)
        _sync_blas()


def get_num_threads() -> int:
    """The thread count set by :func:`set_num_threads`, or the number of usable cores."""
    if _num_threads is not None:
        return _num_threads
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def count_fallback(backend: str, kernel: str) -> None:
    """Record that ``backend`` declined ``kernel`` and the reference ran instead."""
    _fallbacks[(backend, kernel)] += 1


def fallback_counts() -> dict[tuple[str, str], int]:
    """How often each (backend, kernel) fell back to the reference in this process."""
    return dict(_fallbacks)


# The models' fused layer paths (fastdl/models/_fuse.py): on unless FASTDL_FUSION=0 at import.
_fusion = os.environ.get("FASTDL_FUSION", "1").strip().lower() not in ("0", "false", "off", "no")


def set_fusion(enabled: bool) -> None:
    """Let the models run ``Convolution -> Relu (-> Pooling)`` as fused kernels (True, the
    default) or the book's layers one by one (False: for teaching and for tests).

    Process-wide, read at each forward pass; ``FASTDL_FUSION=0`` at import starts it off.
    Either way the results agree to the test matrix's tolerances (see ``fastdl.ops``'
    ``conv2d_bias_relu_forward`` and ``relu_maxpool2d_forward``).
    """
    global _fusion
    _fusion = bool(enabled)


def fusion_enabled() -> bool:
    """Whether the models run fused layer paths (see :func:`set_fusion`)."""
    return _fusion


def show_config(file=None) -> str:
    """Print (and return) versions, backends, why any is missing, and threads."""
    import platform
    import sys

    import numpy as np

    from . import __version__

    lines = [
        f"fastdl {__version__} ({Path(__file__).resolve().parent})",
        f"python {sys.version.split()[0]} ({platform.machine()})",
        f"numpy {np.__version__}",
        f"active backend: {get_backend()}",
        f"threads: {get_num_threads()}",
        f"fused layer paths: {'on' if _fusion else 'off'}",
        "backends:",
    ]
    for name in _MODULES:
        mod = _load(name)
        if mod is None:
            err = _errors[name]
            lines.append(f"  {name:6s} unavailable: {type(err).__name__}: {err}")
        else:
            info = getattr(mod, "backend_info", lambda: "")()
            lines.append(f"  {name:6s} available{': ' + info if info else ''}")
    if _fallbacks:
        lines.append("fallbacks to the reference:")
        for (b, k), c in sorted(_fallbacks.items()):
            lines.append(f"  {b}.{k}: {c}")
    text = "\n".join(lines)
    print(text, file=file)
    return text


def _init_from_env() -> None:
    """Apply ``FASTDL_BACKEND`` once, at import of :mod:`fastdl`."""
    global _default
    want = os.environ.get("FASTDL_BACKEND", "").strip().lower()
    if not want:
        return
    if want != "auto":
        _check_name(want)
    try:
        _default = _resolve(want)
        _sync_blas()
    except BackendUnavailableError as exc:
        warnings.warn(
            f"FASTDL_BACKEND={want!r} cannot be used ({exc}); using the 'numpy' reference",
            RuntimeWarning,
            stacklevel=3,
        )


def _warn_if_source_tree() -> None:
    """Warn when fastdl is imported from a source checkout that has no compiled ``_cpp``.

    Users and tests import the installed package; importing the checkout itself (for example
    ``python -c "import fastdl"`` at its root) would otherwise silently lose the ``cpp`` backend.
    """
    here = Path(__file__).resolve().parent
    checkout = here.parent
    if not ((checkout / "pyproject.toml").is_file() and (checkout / "csrc").is_dir()):
        return
    if any(here.glob("_cpp*.so")) or any(here.glob("_cpp*.pyd")):
        return
    warnings.warn(
        f"fastdl is imported from its source tree {here}, which has no compiled _cpp, so the "
        f"'cpp' backend is unavailable; install it (pip install {checkout}) and import the "
        "installed package from outside the checkout",
        UserWarning,
        stacklevel=3,
    )
