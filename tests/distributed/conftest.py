"""MPI for the data-parallel tests (see _mpi.py): absent, they skip with the reason; with
``FASTDL_REQUIRE_MPI=1`` (set by .ci/run) they fail instead."""
from __future__ import annotations

import os

import pytest

from _mpi import find_mpiexec


@pytest.fixture(scope="session")
def mpiexec() -> list[str]:
    """The launcher command (without -n); skips (or fails under FASTDL_REQUIRE_MPI=1)."""
    cmd, reason = find_mpiexec()
    if cmd is None:
        if os.environ.get("FASTDL_REQUIRE_MPI") == "1":
            pytest.fail(f"FASTDL_REQUIRE_MPI=1 but {reason}")
        pytest.skip(reason)
    return cmd
