"""What every Numba kernel family shares: JIT flavours, threads, read-only views.

Compiled code is cached on disk (``cache=True``): next to the package when it is
writable, otherwise in Numba's per-user cache directory; ``NUMBA_CACHE_DIR`` overrides
both; with no writable location at all the kernels compile in every process.

Threads: Numba's pool runs the ``prange`` loops; matrix products inside them call
SciPy's BLAS (how Numba reaches BLAS), which is kept at one thread so that only one
pool is busy.  The threading layer is Numba's fork-safe choice (``tbb``, which fastdl
depends on and loads, else ``workqueue``; GNU OpenMP's ``omp`` layer kills a forked
child) unless ``NUMBA_THREADING_LAYER`` says otherwise.  Under ``workqueue`` a kernel
on one thread runs a serial twin instead (:class:`_OneOrMoreThreads`), and since
``workqueue`` must not be entered from two Python threads at once, every kernel holds
:data:`_POOL_LOCK` while it runs.
"""
from __future__ import annotations

import functools
import os
import sys
import threading
import types
from typing import Optional

import numba
import numpy as np
import scipy.linalg.cython_blas  # noqa: F401 - the BLAS that np.dot calls inside @njit
from numba import njit
from threadpoolctl import ThreadpoolController


def _load_tbb() -> bool:
    """Make Intel TBB loadable for Numba's ``tbb`` layer; True when it is.

    The ``tbb`` wheel puts ``libtbb.so.12`` in the environment's ``lib/``, which the dynamic
    loader does not search, so Numba reports the layer as unavailable.  Loading the library
    by its path first (RTLD_GLOBAL) lets Numba's ``tbbpool`` extension bind to it.
    """
    import ctypes
    import importlib.metadata

    try:
        files = importlib.metadata.files("tbb") or []
    except importlib.metadata.PackageNotFoundError:
        return False
    for f in files:
        if f.name == "libtbb.so.12":
            try:
                ctypes.CDLL(str(f.locate()), mode=ctypes.RTLD_GLOBAL)
                return True
            except OSError:
                return False
    return False


if "NUMBA_THREADING_LAYER" not in os.environ:
    # 'forksafe': tbb when it loads, else workqueue.  TBB (a dependency on x86-64 Linux)
    # is fork-safe and thread-safe and wakes its workers in microseconds; workqueue wakes
    # them in 0.1-0.3 ms, which small kernels on two threads feel.
    TBB_LOADED = sys.platform.startswith("linux") and _load_tbb()
    numba.config.THREADING_LAYER = "forksafe"
else:
    TBB_LOADED = False

# Reassociation and contraction let LLVM vectorise sums and fuse multiply-adds;
# 'nnan' / 'ninf' / 'afn' are left out so NaN and inf behave as in NumPy.
_FASTMATH = {"contract", "reassoc", "nsz"}


def _njit(fn, opts: dict):
    """``njit(**opts)(fn)``, without the on-disk cache if Numba finds no writable location."""
    try:
        return njit(**opts)(fn)
    except RuntimeError:  # "cannot cache function ...: no locator available"
        return njit(**dict(opts, cache=False))(fn)


def _serial_copy(fn):
    """The same Python function under another name, so that its serial compilation has a
    cache file of its own (Numba keys the cache by name and signature, not by flags)."""
    twin = types.FunctionType(fn.__code__, fn.__globals__, fn.__name__ + "_serial",
                              fn.__defaults__, fn.__closure__)
    twin.__qualname__ = fn.__qualname__ + "_serial"
    twin.__module__ = fn.__module__
    return twin


_serial_when_small: Optional[bool] = None  # the pool is workqueue (known once it started)


def _slow_pool() -> bool:
    """True when Numba's pool is ``workqueue``, whose workers take 0.1-0.3 ms to wake."""
    global _serial_when_small
    if _serial_when_small is None:
        try:
            _serial_when_small = numba.threading_layer() == "workqueue"
        except ValueError:  # no parallel region has run yet: the first call starts the pool
            return False
    return _serial_when_small


class _OneOrMoreThreads:
    """A ``prange`` kernel with a serial twin for one thread (or for a call whose ``chunks``
    argument is 1: work too small to split), used when the pool is ``workqueue``.

    Under ``workqueue`` (the fork-safe layer when TBB is missing) the parallel version hands
    every loop to the pool even on one thread, at 0.1-0.5 ms per call (a 100x10 softmax took
    155 us instead of 20); the serial twin runs in the calling thread.  Under TBB or OpenMP
    the parallel version is as quick on one thread (and LLVM vectorises some of its loops
    better), so the twin is never compiled there.  The kernels are called from Python only,
    so the choice is made here, per call.
    """

    def __init__(self, fn, opts: dict) -> None:
        functools.update_wrapper(self, fn)
        self.parallel = _njit(fn, opts)
        self.serial = _njit(_serial_copy(fn), dict(opts, parallel=False))
        names = fn.__code__.co_varnames[:fn.__code__.co_argcount]
        # a kernel told to split its work into one chunk runs serially on more threads too
        self._chunks = names.index("chunks") if "chunks" in names else None

    def __call__(self, *args):
        one = _threads == 1 or (self._chunks is not None and args[self._chunks] == 1)
        self._last = self.serial if one and _slow_pool() else self.parallel
        return self._last(*args)

    @property
    def stats(self):
        """Numba's cache statistics of the version the last call ran."""
        return getattr(self, "_last", self.parallel).stats

    @property
    def signatures(self) -> list:
        """The argument types compiled so far, by either version (each listed once)."""
        return list(dict.fromkeys([*self.parallel.signatures, *self.serial.signatures]))


def _jit(parallel: bool, fastmath=_FASTMATH, **extra):
    """``@njit`` with an on-disk cache; a parallel kernel also gets a serial twin."""
    opts = dict(cache=True, nogil=True, fastmath=fastmath, parallel=parallel, **extra)

    def wrap(fn):
        return _OneOrMoreThreads(fn, opts) if parallel else _njit(fn, opts)

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
