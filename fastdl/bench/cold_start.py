"""``fastdl bench --cold-start``: a fresh process's first training steps, with an empty and a warm Numba cache."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from typing import Sequence

__all__ = ["cold_start"]

_COLD_SCRIPT = r"""
import json, sys, time
t0 = time.perf_counter()
import numpy as np
import fastdl
from fastdl.models import SimpleConvNet
from fastdl.optimizers import Adam
t1 = time.perf_counter()
fastdl.set_backend(sys.argv[1])
fastdl.set_num_threads(int(sys.argv[2]))
rng = np.random.default_rng(0)
x = rng.random((100, 1, 28, 28)).astype(np.float32)
t = rng.integers(0, 10, 100)
net = SimpleConvNet(dtype=np.float32, seed=0)
opt = Adam(lr=0.001)
t2 = time.perf_counter()
opt.update(net.params, net.gradient(x, t))
t3 = time.perf_counter()
opt.update(net.params, net.gradient(x, t))
t4 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "setup_s": t2 - t1, "first_step_s": t3 - t2, "second_step_s": t4 - t3}))
"""


def _same_fastdl_path() -> str:
    """PYTHONPATH for a child process that must import this very fastdl (not one found from its cwd)."""
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    rest = os.environ.get("PYTHONPATH")
    return here + (os.pathsep + rest if rest else "")


def cold_start(backends: Sequence[str], threads: int) -> list[dict]:
    """Time a fresh process's first SimpleConvNet training step (float32, batch 100), per backend.

    Per run: ``import_s`` (import fastdl, models, optimizers), ``setup_s``
    (select the backend, which imports it, set threads, build the network),
    ``first_step_s`` (includes JIT compilation or loading from the cache),
    ``second_step_s`` and ``wall_s`` (the whole process, interpreter start included).

    Each backend runs twice with ``NUMBA_CACHE_DIR`` pointing at a new empty
    directory: first with the cache empty, then warm (filled by the first run).
    """
    rows = []
    for name in backends:
        with tempfile.TemporaryDirectory(prefix="fastdl-numba-cache-") as cache:
            env = dict(os.environ, NUMBA_CACHE_DIR=cache, PYTHONPATH=_same_fastdl_path())
            env.pop("FASTDL_BACKEND", None)
            for state in ("empty", "warm"):
                t0 = time.perf_counter()
                proc = subprocess.run([sys.executable, "-c", _COLD_SCRIPT, name, str(threads)], cwd=cache,
                                      env=env, capture_output=True, text=True, check=False)
                wall = time.perf_counter() - t0
                if proc.returncode != 0:
                    raise RuntimeError(f"cold-start run of backend {name!r} failed:\n{proc.stderr.strip()}")
                rec = json.loads(proc.stdout.strip().splitlines()[-1])
                rows.append({"backend": name, "cache": state, "threads": threads, "wall_s": wall, **rec})
    return rows
