"""What every Numba kernel family shares: JIT flavours, threads, read-only views.

Compiled code is cached on disk (``cache=True``): next to the package when it is
writable, otherwise in Numba's per-user cache directory; ``NUMBA_CACHE_DIR`` overrides
both; with no writable location at all the kernels compile in every process.

Threads: Numba's pool runs the ``prange`` loops; matrix products inside them call
SciPy's BLAS (how Numba reaches BLAS), which is kept at one thread so that only one
pool is busy.  The threading layer is Numba's fork-safe choice (``tbb`` if installed,
else ``workqueue``; GNU OpenMP's ``omp`` layer kills a forked child) unless
``NUMBA_THREADING_LAYER`` says otherwise.  ``workqueue`` must not be entered from two
Python threads at once, so every kernel holds :data:`_POOL_LOCK` while it runs.
"""
from __future__ import annotations

import functools
import os
import sys
import threading

import numba
import numpy as np
import scipy.linalg.cython_blas  # noqa: F401 - the BLAS that np.dot calls inside @njit
from numba import njit
from threadpoolctl import ThreadpoolController

if "NUMBA_THREADING_LAYER" not in os.environ:
    numba.config.THREADING_LAYER = "forksafe"

# Reassociation and contraction let LLVM vectorise sums and fuse multiply-adds;
# 'nnan' / 'ninf' / 'afn' are left out so NaN and inf behave as in NumPy.
_FASTMATH = {"contract", "reassoc", "nsz"}


def _jit(parallel: bool, fastmath=_FASTMATH, **extra):
    """``@njit`` with an on-disk cache; without one if Numba finds no writable cache location."""
    opts = dict(cache=True, nogil=True, fastmath=fastmath, parallel=parallel, **extra)

    def wrap(fn):
        try:
            return njit(**opts)(fn)
        except RuntimeError:  # "cannot cache function ...: no locator available"
            return njit(**dict(opts, cache=False))(fn)

    return wrap


serial, parallel = _jit(False), _jit(True)
# For kernels that must round exactly as NumPy does: no contraction to fused multiply-add, and
# IEEE division (x / 0 is inf or NaN, as in NumPy, instead of Python's ZeroDivisionError, whose
# per-element test also kept LLVM from vectorising).
exact_serial = _jit(False, fastmath=False, error_model="numpy")
exact_parallel = _jit(True, fastmath=False, error_model="numpy")


# --------------------------------------------------------------------------- threads

def _scipy_blas():
    """threadpoolctl controllers of the BLAS that SciPy (hence Numba's np.dot) uses.

    A SciPy wheel ships its own BLAS under ``scipy*/``; otherwise every BLAS but
    NumPy's own is taken to be SciPy's.
    """
    import scipy

    libs = ThreadpoolController().select(user_api="blas").lib_controllers
    scipy_dir = os.path.dirname(scipy.__file__)
    numpy_dir = os.path.dirname(np.__file__)
    own = [lib for lib in libs if lib.filepath.startswith(scipy_dir)]
    return own or [lib for lib in libs if not lib.filepath.startswith(numpy_dir)]


BLAS = _scipy_blas()
_threads = numba.config.NUMBA_NUM_THREADS
_POOL_LOCK = threading.RLock()
_ran = False  # a parallel kernel has run in this process (Numba's pool exists)


def _after_fork_in_child() -> None:
    """A fork may have happened while another thread held the lock: the child gets a fresh one."""
    global _POOL_LOCK
    _POOL_LOCK = threading.RLock()


def _before_fork() -> None:
    """Name the way out when the pool in use cannot survive fork (only an explicit 'omp')."""
    if _ran and numba.threading_layer() == "omp":
        sys.stderr.write(
            "fastdl: Numba's 'omp' threading layer (NUMBA_THREADING_LAYER) does not survive "
            "fork(); use multiprocessing.get_context('spawn') or leave NUMBA_THREADING_LAYER unset\n"
        )


os.register_at_fork(before=_before_fork, after_in_child=_after_fork_in_child)


def threads() -> int:
    """The thread count the parallel kernels use."""
    return _threads


def set_num_threads(n: int) -> None:
    """Run the parallel kernels on ``n`` threads (at most ``NUMBA_NUM_THREADS``)."""
    global _threads
    _threads = max(1, min(int(n), numba.config.NUMBA_NUM_THREADS))
    numba.set_num_threads(_threads)


def enter(uses_blas: bool = False) -> int:
    """Apply the thread count to the calling thread (Numba's setting is per thread);
    keep SciPy's BLAS single-threaded for kernels that call it inside ``prange``."""
    if numba.get_num_threads() != _threads:
        numba.set_num_threads(_threads)
    if uses_blas:
        for lib in BLAS:
            if lib.num_threads != 1:
                lib.set_num_threads(1)
    return _threads


def kernel(fn):
    """A public kernel: runs holding the pool lock (one kernel in Numba's pool at a time)."""
    @functools.wraps(fn)
    def run(*args):
        global _ran
        with _POOL_LOCK:
            _ran = True
            return fn(*args)

    return run


def chunk_count(n: int, threads: int) -> int:
    """Parallel chunks for n independent items: one per thread, at least one."""
    return max(1, min(n, threads))


def elementwise_chunks(n: int, grain: int = 65536) -> int:
    """Threads for an elementwise pass over n elements: one per ``grain`` elements at most
    (below that, waking the pool costs more than it saves), capped by the thread count."""
    return max(1, min(enter(), n // grain))


def ro(a: np.ndarray) -> np.ndarray:
    """A read-only view: the kernels cannot write to inputs and compile once per dtype."""
    v = a.view()
    v.flags.writeable = False
    return v
