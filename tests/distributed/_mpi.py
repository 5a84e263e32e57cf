"""Helpers of the data-parallel tests: ``mpiexec`` (MPICH from the ``mpich`` wheel of the
``test`` extra, or any MPI on PATH) and mpi4py.  Absent, the tests skip with the reason;
with ``FASTDL_REQUIRE_MPI=1`` (set by .ci/run) they fail instead."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def find_mpiexec() -> tuple[list[str] | None, str]:
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return None, 'mpi4py is not installed (pip install "fastdl[mpi]")'
    for name in ("mpiexec", "mpirun"):
        beside = Path(sys.executable).parent / name
        exe = str(beside) if beside.is_file() else shutil.which(name)
        if exe:
            break
    else:
        return None, "no mpiexec or mpirun (the mpich wheel of fastdl[mpi] installs one)"
    version = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=30)
    cmd = [exe]
    if "Open MPI" in version.stdout + version.stderr:  # more ranks than cores, loopback only
        cmd += ["--oversubscribe", "--mca", "btl_tcp_if_include", "lo"]
    return cmd, ""



def mpi_env(**extra: str) -> dict[str, str]:
    """The environment of a launched job: 1 thread per rank, a short collective timeout,
    no plotting display."""
    env = dict(os.environ, MPLBACKEND="Agg", NUMBA_NUM_THREADS="1", OMP_NUM_THREADS="1",
               OPENBLAS_NUM_THREADS="1", FASTDL_MPI_TIMEOUT="60")
    env.update(extra)
    return env


def run_mpi(mpiexec: list[str], n: int, args: list[str], cwd: Path, timeout: float = 240,
            **env: str) -> subprocess.CompletedProcess:
    """``mpiexec -n n args...``; a job that outlives ``timeout`` fails the test."""
    return subprocess.run([*mpiexec, "-n", str(n), *args], cwd=cwd, env=mpi_env(**env),
                          capture_output=True, text=True, timeout=timeout)
