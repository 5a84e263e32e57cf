"""Smoke run of benchmarks/bench_distributed.py (one timed step; no timing is asserted)."""
from __future__ import annotations

import json
import subprocess
import sys

from _mpi import HERE, mpi_env


def test_bench_distributed_smoke(mpiexec, tmp_path):
    out = tmp_path / "rows.json"
    script = HERE.parent.parent / "benchmarks" / "bench_distributed.py"
    r = subprocess.run([sys.executable, str(script), "--steps", "1", "--warmup", "1",
                        "--models", "simple_convnet", "--backend", "numpy", "--json", str(out)],
                       capture_output=True, text=True, timeout=300, env=mpi_env())
    assert r.returncode == 0, r.stdout + r.stderr
    rows = json.loads(out.read_text())
    assert [(row["ranks"], row["threads"]) for row in rows] == [(1, 1), (1, 2), (2, 1)]
    assert rows[2]["bytes"] == 4 * sum(  # every float32 gradient, once per step
        v.size for v in __import__("fastdl.models", fromlist=["x"]).build_model(
            "simple_convnet").params.values())
    assert "64 nodes, 100 Gbit/s" in r.stdout
