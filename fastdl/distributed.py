"""Data-parallel training over MPI (through ``mpi4py``, ``pip install "fastdl[mpi]"``).

Start any fastdl training under an MPI launcher (``mpirun -n 4 fastdl train ...``, or a
script that uses :class:`fastdl.trainer.Trainer`) and every process (*rank*) trains the
same model on its own shard of each global mini-batch; :func:`allreduce_gradients`
averages the gradients so that every rank applies the same update.  Without mpi4py, or
in a process that no MPI launcher started, everything here is a no-op for one rank.

The gradients of a step are packed into a few large contiguous buckets per dtype (at
most ``FASTDL_MPI_BUCKET_MB`` MiB each, default 16; Horovod's "tensor fusion"), one
``Allreduce`` per bucket in the fixed order of the gradient dict's sorted keys, so the
reduction order is the same at every step and on every rank.  A collective that has not
completed within ``FASTDL_MPI_TIMEOUT`` seconds (default 600) raises
:class:`DistributedError` and aborts the job, so a rank that died or hangs never makes
the others wait forever (launchers such as MPICH's and Open MPI's also end the whole job
when one rank exits abnormally).
"""
from __future__ import annotations

import os
import time
from typing import Any, Mapping, MutableMapping, Optional, Sequence

import numpy as np

__all__ = ["DistributedError", "init", "rank", "world_size", "is_distributed",
           "unavailable_reason", "allreduce_gradients", "allreduce_sum", "broadcast",
           "broadcast_params", "ShardedRNG", "last_step_bytes"]

# Variables that MPI launchers set in the processes they start (MPICH/Hydra and Intel
# MPI: PMI_*; Open MPI: OMPI_*; PMIx launchers such as srun: PMIX_RANK).
_LAUNCHER_VARS = ("PMI_SIZE", "PMI_RANK", "OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "MPI_LOCALNRANKS")

_comm: Any = None
_MPI: Any = None
_reason: Optional[str] = None
_initialised = False
_buckets: dict[tuple, list[np.ndarray]] = {}
_bytes = [0]


class DistributedError(RuntimeError):
    """A collective operation failed or timed out (another rank died or hangs)."""


def _launched() -> bool:
    return os.environ.get("FASTDL_DISTRIBUTED", "") == "1" or any(
        v in os.environ for v in _LAUNCHER_VARS)


def init() -> bool:
    """Join the MPI job this process was started in; True when it has more than one rank.

    Idempotent.  Imports mpi4py only when an MPI launcher started the process (or
    ``FASTDL_DISTRIBUTED=1``); otherwise, or without mpi4py, this is one process alone
    and :func:`unavailable_reason` says why.
    """
    global _comm, _MPI, _reason, _initialised
    if _initialised:
        return _comm is not None
    _initialised = True
    if not _launched():
        _reason = ("one process: no MPI launcher started this one (run e.g. "
                   "`mpirun -n 2 fastdl train ...`)")
        if _mpi4py_missing() is not None:
            _reason = _mpi4py_missing()
        return False
    missing = _mpi4py_missing()
    if missing is not None:
        _reason = missing
        size = _launcher_size()
        if size > 1:  # N copies would each train alone and write the same files
            _initialised = False  # every later call says so too
            raise DistributedError(f"this process is one of {size} started by an MPI launcher, but "
                                   f"{missing}; without it every rank would train alone")
        return False
    from mpi4py import MPI

    if MPI.COMM_WORLD.Get_size() < 2:
        _reason = "one process: the MPI job has a single rank"
        return False
    _MPI, _comm = MPI, MPI.COMM_WORLD
    return True


def _launcher_size() -> int:
    """The number of processes the launcher says it started (1 when it says nothing)."""
    for var in ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE"):
        try:
            return int(os.environ[var])
        except (KeyError, ValueError):
            continue
    return 1


def _mpi4py_missing() -> Optional[str]:
    import importlib.util

    try:
        found = importlib.util.find_spec("mpi4py") is not None
    except (ImportError, ValueError):
        found = False
    return None if found else 'mpi4py is not installed (pip install "fastdl[mpi]")'


def unavailable_reason() -> Optional[str]:
    """Why this process trains alone (None when it is one rank of several), or why it cannot
    join the MPI job that started it."""
    try:
        init()
    except DistributedError as e:
        return str(e)
    return _reason


def is_distributed() -> bool:
    """True when this process is one of several MPI ranks."""
    return init()


def rank() -> int:
    """This process's rank (0 when alone)."""
    return _comm.Get_rank() if init() else 0


def world_size() -> int:
    """Number of ranks (1 when alone)."""
    return _comm.Get_size() if init() else 1


def _timeout() -> float:
    return float(os.environ.get("FASTDL_MPI_TIMEOUT", "600"))


def _wait(requests: Sequence[Any], what: str) -> None:
    """Complete non-blocking requests; past the timeout raise and abort the job."""
    deadline = time.monotonic() + _timeout()
    spin_until = time.monotonic() + 0.01
    pending = list(requests)
    while pending:
        pending = [r for r in pending if not r.Test()]
        if not pending:
            return
        now = time.monotonic()
        if now > deadline:
            msg = (f"rank {rank()} of {world_size()}: {what} did not complete within "
                   f"{_timeout():g} s (FASTDL_MPI_TIMEOUT): another rank died or hangs")
            _abort(msg)
        if now > spin_until:
            time.sleep(0.001)


def _abort(msg: str) -> None:
    import sys

    sys.stderr.write(f"fastdl.distributed: error: {msg}; aborting the MPI job\n")
    sys.stderr.flush()
    if os.environ.get("FASTDL_MPI_NO_ABORT") != "1":
        _comm.Abort(70)
    raise DistributedError(msg)


def _bucket_plan(grads: Mapping[str, np.ndarray]) -> tuple[tuple, list[tuple[str, list[str]]]]:
    """A cache key, and per bucket its dtype name and the keys it holds (sorted keys,
    grouped by dtype, each bucket at most FASTDL_MPI_BUCKET_MB MiB unless one array is
    larger)."""
    keys = sorted(grads)
    sig = tuple((k, grads[k].shape, grads[k].dtype.str) for k in keys)
    limit = float(os.environ.get("FASTDL_MPI_BUCKET_MB", "16")) * 2**20
    plan: list[tuple[str, list[str]]] = []
    for dt in sorted({grads[k].dtype.str for k in keys}):
        size, current = 0, []
        for k in (k for k in keys if grads[k].dtype.str == dt):
            nbytes = grads[k].nbytes
            if current and size + nbytes > limit:
                plan.append((dt, current))
                size, current = 0, []
            current.append(k)
            size += nbytes
        if current:
            plan.append((dt, current))
    return sig + (limit,), plan


def allreduce_gradients(grads: MutableMapping[str, np.ndarray]) -> MutableMapping[str, np.ndarray]:
    """Average ``grads`` (name -> float32/float64 array) over all ranks, in place; returns it.

    The arrays are copied into contiguous buckets (one per dtype, split at
    ``FASTDL_MPI_BUCKET_MB``), every bucket is summed with one ``Allreduce`` (all started
    at once, then awaited), divided by the number of ranks and copied back into the same
    arrays.  One rank alone: returns ``grads`` untouched.
    """
    if not init():
        return grads
    for k, g in grads.items():
        if not isinstance(g, np.ndarray) or g.dtype not in (np.float32, np.float64):
            raise TypeError(f"grads[{k!r}] must be a float32 or float64 array, got "
                            f"{getattr(g, 'dtype', type(g))}")
    key, plan = _bucket_plan(grads)
    buffers = _buckets.get(key)
    if buffers is None:
        buffers = [np.empty(sum(grads[k].size for k in ks), dtype=dt) for dt, ks in plan]
        _buckets.clear()
        _buckets[key] = buffers
    for buf, (_, ks) in zip(buffers, plan):
        _pack(buf, grads, ks)
    _wait([_comm.Iallreduce(_MPI.IN_PLACE, buf, op=_MPI.SUM) for buf in buffers],
          "the gradient all-reduce")
    scale = 1.0 / world_size()
    for buf, (_, ks) in zip(buffers, plan):
        buf *= buf.dtype.type(scale)
        _unpack(buf, grads, ks)
    _bytes[0] = sum(b.nbytes for b in buffers)
    return grads


def _pack(buf: np.ndarray, grads: Mapping[str, np.ndarray], keys: list[str]) -> None:
    off = 0
    for k in keys:
        n = grads[k].size
        buf[off:off + n] = grads[k].reshape(-1)
        off += n


def _unpack(buf: np.ndarray, grads: MutableMapping[str, np.ndarray], keys: list[str]) -> None:
    off = 0
    for k in keys:
        g = grads[k]
        n = g.size
        if g.flags.writeable:
            np.copyto(g, buf[off:off + n].reshape(g.shape))
        else:
            grads[k] = buf[off:off + n].reshape(g.shape).copy()
        off += n


def last_step_bytes() -> int:
    """Bytes of the buckets of the last :func:`allreduce_gradients` (what each rank sends
    into the all-reduce; a ring all-reduce moves 2(N-1)/N of it per rank)."""
    return _bytes[0]


def allreduce_sum(values: Sequence[float]) -> np.ndarray:
    """Sum of a few float64 numbers over all ranks (a copy; alone: the values)."""
    arr = np.array(values, dtype=np.float64)
    if init():
        _wait([_comm.Iallreduce(_MPI.IN_PLACE, arr, op=_MPI.SUM)], "a small all-reduce")
    return arr


def broadcast(values: Sequence[float], root: int = 0) -> np.ndarray:
    """``root``'s float64 values on every rank (a copy; alone: the values)."""
    arr = np.array(values, dtype=np.float64)
    if init():
        _wait([_comm.Ibcast(arr, root=root)], "a broadcast")
    return arr


def broadcast_params(params: MutableMapping[str, np.ndarray], root: int = 0) -> None:
    """Overwrite every rank's ``params`` (in place, sorted keys) with ``root``'s."""
    if not init():
        return
    reqs = [_comm.Ibcast(params[k], root=root) for k in sorted(params)
            if params[k].flags.c_contiguous]
    _wait(reqs, "the parameter broadcast")
    for k in sorted(params):
        if not params[k].flags.c_contiguous:
            params[k][...] = _comm.bcast(params[k] if rank() == root else None, root=root)


class ShardedRNG:
    """A Generator stand-in whose ``random(shape)`` is this rank's rows of the draw that
    one process would make for the whole global batch.

    A layer that draws ``rng.random((n_local, ...))`` (Dropout) then gets rows
    ``offset:offset + n_local`` of ``rng.random((n_global, ...))``, and the stream
    advances as in a one-process run: masks equal the one-process run's at every step.
    """

    def __init__(self, rng: np.random.Generator, offset: int, global_n: int) -> None:
        self.rng, self.offset, self.global_n = rng, offset, global_n

    def random(self, size: Any = None, dtype: Any = np.float64) -> np.ndarray:
        shape = (size,) if isinstance(size, (int, np.integer)) else tuple(size)
        full = self.rng.random((self.global_n,) + shape[1:], dtype=dtype)
        return full[self.offset:self.offset + shape[0]]

    def __getattr__(self, name: str) -> Any:
        return getattr(self.rng, name)
