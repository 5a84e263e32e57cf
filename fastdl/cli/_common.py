"""What every fastdl subcommand shares: the usage error, the error guard, --backend/--threads."""
from __future__ import annotations

import argparse
import sys
from typing import Optional

#: File name of a run's checkpoint inside ``--out``.
CHECKPOINT = "checkpoint.ckpt"


class UsageError(Exception):
    """A command-line mistake: printed without a traceback, exit status 2."""


def guard(func):
    """Run a command; report usage and file errors as one line, exit status 2
    (130 for an interrupt that came before training could stop cleanly)."""
    def run(args: argparse.Namespace) -> int:
        from ..checkpoint import CheckpointError

        try:
            return func(args)
        except KeyboardInterrupt:
            print(f"fastdl {args.command}: interrupted (checkpoints on disk are complete: "
                  f"they are only ever replaced atomically)", file=sys.stderr)
            return 130
        except (UsageError, CheckpointError, FileNotFoundError, FloatingPointError,
                ValueError) as exc:
            _report(args.command, exc)
            return 2
    return run


def _report(command: str, exc: Exception) -> None:
    """One error line; under MPI, usage errors (the same on every rank) from rank 0 only,
    and any other error with the rank that met it."""
    from .. import distributed

    r = distributed.rank()
    if r and isinstance(exc, UsageError):
        return
    where = f" (rank {r} of {distributed.world_size()})" if distributed.world_size() > 1 else ""
    print(f"fastdl {command}: error{where}: {exc}", file=sys.stderr)


def add_backend_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backend", help="kernel backend: numpy, numba, cpp or auto")
    p.add_argument("--threads", type=int, help="threads for the kernels and BLAS")


def setup_backend(args: argparse.Namespace, run_backend: Optional[str] = None,
                  run_threads: Optional[int] = None) -> None:
    """Apply --backend/--threads; a resumed run defaults to the backend and threads it used
    (when that backend is available here)."""
    import fastdl

    backend = args.backend
    if backend is None and run_backend in fastdl.available_backends():
        backend = run_backend
    if backend:
        fastdl.set_backend(backend)
    threads = args.threads or run_threads
    if threads:
        fastdl.set_num_threads(threads)
