"""Data-parallel training steps over MPI against one process (issue 15).

    python benchmarks/bench_distributed.py [--steps 20] [--models simple_convnet,deep_convnet]

For each model, side by side in one run: 1 process with 1 thread, 1 process with 2 threads,
and ``mpiexec -n 2`` with 1 thread per rank, all on a global batch of 100 (float32,
synthetic 28x28 images).  Reports time per step, samples/s, the all-reduce's share of a
step (time inside :func:`fastdl.distributed.allreduce_gradients`: packing, the
collective and any wait for the slower rank), the gradient bytes each rank sends per
step, and a ring all-reduce model of 8 and 64 nodes on 10 and 100 Gbit/s.
Each configuration is a fresh process (``--worker`` mode prints one JSON line).
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

GLOBAL_BATCH = 100


def worker(model: str, threads: int, steps: int, warmup: int, backend: str) -> dict:
    import numpy as np

    import fastdl
    from fastdl import distributed
    from fastdl.models import build_model
    from fastdl.trainer import Trainer

    fastdl.set_backend(backend)
    fastdl.set_num_threads(threads)
    rng = np.random.default_rng(0)
    # one epoch longer than the run: no end-of-epoch evaluation (rank 0 alone, the other
    # rank waiting in the next all-reduce) falls inside the timed steps
    x = rng.standard_normal((GLOBAL_BATCH * (warmup + steps + 1), 1, 28, 28)).astype(np.float32)
    t = rng.integers(0, 10, len(x))
    net = build_model(model, weight_init_std="he", seed=0) if model == "simple_convnet" \
        else build_model(model, seed=0)
    tr = Trainer(net, x, t, x[:10], t[:10], epochs=10**6, mini_batch_size=GLOBAL_BATCH,
                 optimizer="adam", optimizer_param={"lr": 1e-3}, verbose=False, seed=0)
    spent = [0.0]
    real = distributed.allreduce_gradients

    def timed(grads):
        t0 = time.perf_counter()
        out = real(grads)
        spent[0] += time.perf_counter() - t0
        return out

    distributed.allreduce_gradients = timed
    for _ in range(warmup):
        tr.train_step()
    spent[0] = 0.0
    distributed.allreduce_sum([0.0])  # start the timed steps together
    t0 = time.perf_counter()
    for _ in range(steps):
        tr.train_step()
    wall = time.perf_counter() - t0
    alone = _allreduce_alone(real, net)
    return {"model": model, "ranks": distributed.world_size(), "threads": threads,
            "step_ms": 1e3 * wall / steps, "samples_per_s": GLOBAL_BATCH * steps / wall,
            "allreduce_ms": 1e3 * spent[0] / steps, "bytes": distributed.last_step_bytes(),
            "allreduce_alone_ms": alone, "rank": distributed.rank(),
            "backend": fastdl.get_backend()}


def _allreduce_alone(allreduce, net, repeats: int = 10) -> float:
    """ms of one gradient all-reduce with every rank ready (after a small collective):
    the collective itself, without waiting for a slower rank's compute."""
    from fastdl import distributed

    if not distributed.is_distributed():
        return 0.0
    grads = {k: v.copy() for k, v in net.params.items()}
    total = 0.0
    for _ in range(repeats):
        distributed.allreduce_sum([0.0])
        t0 = time.perf_counter()
        allreduce(grads)
        total += time.perf_counter() - t0
    return 1e3 * total / repeats


def _mpiexec() -> str:
    beside = Path(sys.executable).parent / "mpiexec"
    exe = str(beside) if beside.is_file() else shutil.which("mpiexec")
    if exe is None:
        raise SystemExit('no mpiexec: pip install "fastdl[mpi]"')
    return exe


def _run(cmd: list[str], timeout: float) -> dict:
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if r.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{r.stdout}\n{r.stderr}")
    rows = [json.loads(x) for x in r.stdout.splitlines() if x.startswith("{")]
    return rows[0]


def _configs(args) -> list[tuple[str, list[str]]]:
    me = [sys.executable, str(Path(__file__).resolve()), "--steps", str(args.steps),
          "--warmup", str(args.warmup), "--backend", args.backend, "--worker"]
    return [("1 process, 1 thread", me + ["1"]),
            ("1 process, 2 threads", me + ["2"]),
            ("2 ranks x 1 thread", [_mpiexec(), "-n", "2"] + me + ["1"])]


def scaling_model(row: dict, one: dict) -> list[str]:
    """Weak scaling to N nodes, 50 samples per rank (the 2-rank share): compute of one
    node = the 1-process 1-thread step scaled to 50 samples (linear in the batch), plus a
    ring all-reduce of 2(N-1)/N x the measured gradient bytes per rank at the link's
    bandwidth and a latency of 2(N-1) x 10 us."""
    local = GLOBAL_BATCH // row["ranks"]
    compute_s = one["step_ms"] / 1e3 * local / GLOBAL_BATCH
    lines = []
    for gbit in (10, 100):
        for n in (8, 64):
            comm = 2 * (n - 1) / n * row["bytes"] * 8 / (gbit * 1e9) + 2 * (n - 1) * 10e-6
            step = compute_s + comm
            lines.append(f"  {n:3d} nodes, {gbit:3d} Gbit/s: all-reduce {1e3 * comm:7.2f} ms, "
                         f"step {1e3 * step:7.2f} ms, {n * local / step:9.0f} samples/s "
                         f"({n * local / step / one['samples_per_s']:5.1f}x one process, "
                         f"communication {100 * comm / step:4.1f}% of a step)")
    return lines


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=20, help="timed steps per configuration")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    p.add_argument("--models", default="simple_convnet,deep_convnet")
    p.add_argument("--backend", default="cpp", help="kernel backend (default cpp)")
    p.add_argument("--worker", type=int, metavar="THREADS", help=argparse.SUPPRESS)
    p.add_argument("--model", default="simple_convnet", help=argparse.SUPPRESS)
    p.add_argument("--json", help="also write the rows to this file")
    args = p.parse_args(argv)
    if args.worker:
        row = worker(args.model, args.worker, args.steps, args.warmup, args.backend)
        if row["rank"] == 0:  # one line: two ranks writing at once can interleave
            print(json.dumps(row), flush=True)
        return 0
    rows = []
    for model in args.models.split(","):
        print(f"{model}, global batch {GLOBAL_BATCH}, float32, backend {args.backend}, "
              f"{args.steps} steps:")
        one = None
        for label, cmd in _configs(args):
            row = _run(cmd + ["--model", model], timeout=600)
            row["config"] = label
            rows.append(row)
            one = one or row
            share = 100 * row["allreduce_ms"] / row["step_ms"]
            print(f"  {label:22s} {row['step_ms']:8.2f} ms/step {row['samples_per_s']:8.0f} "
                  f"samples/s  all-reduce {row['allreduce_ms']:6.2f} ms ({share:4.1f}%), "
                  f"{row['bytes'] / 1e6:.3f} MB/rank/step; alone {row['allreduce_alone_ms']:.2f} ms"
                  if row["ranks"] > 1 else
                  f"  {label:22s} {row['step_ms']:8.2f} ms/step {row['samples_per_s']:8.0f} "
                  f"samples/s")
        print("  model (weak scaling, 50 samples per rank):")
        print("\n".join(scaling_model(rows[-1], one)))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
