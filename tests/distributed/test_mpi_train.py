"""``fastdl train`` on 2 MPI ranks (issue 15): one history and one checkpoint from rank 0,
resume on 2 ranks and on 1, a batch the ranks cannot split, and a rank killed mid-run."""
from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from _mpi import HERE, mpi_env, run_mpi
from fastdl.checkpoint import load_checkpoint

ARGS = ["--dataset", "fashion-mnist", "--train-size", "600", "--test-size", "200",
        "--batch-size", "100", "--threads", "1"]


@pytest.fixture(scope="module")
def fashion():
    from fastdl import datasets

    try:
        datasets.find_dataset("fashion-mnist")
    except FileNotFoundError:
        pytest.skip("Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)")


def _fastdl(*args: str) -> list[str]:
    return [sys.executable, "-m", "fastdl", *args]


def _history(out) -> dict:
    return json.loads((out / "history.json").read_text())


def test_train_two_ranks_then_resume(mpiexec, fashion, tmp_path):
    out = tmp_path / "run"
    r = run_mpi(mpiexec, 2, _fastdl("train", *ARGS, "--epochs", "1", "--out", str(out)),
                cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.count("epoch 1/1:") == 1 and r.stdout.count("done:") == 1  # rank 0 alone
    assert "2 MPI ranks (batch 50 each)" in r.stdout
    assert sorted(p.name for p in out.iterdir()) == [
        "checkpoint.ckpt", "history.json", "learning_curve.png", "model.json", "weights.npz"]
    h = _history(out)
    assert h["world_size"] == 2 and len(h["history"]) == 1 and h["test_acc"] > 0.3
    r = run_mpi(mpiexec, 2, _fastdl("train", "--resume", "--epochs", "2", "--out", str(out)),
                cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "resuming" in r.stdout and r.stdout.count("epoch 2/2:") == 1
    assert load_checkpoint(out / "checkpoint.ckpt").meta["epoch"] == 2
    # any world size that divides the batch: here one process
    r = subprocess.run(_fastdl("train", "--resume", "--epochs", "3", "--out", str(out)),
                       cwd=tmp_path, env=mpi_env(), capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, r.stdout + r.stderr
    h = _history(out)
    assert [e["epoch"] for e in h["history"]] == [1, 2, 3] and h["world_size"] == 1
    assert h["history"][2]["train_loss"] < h["history"][0]["train_loss"]


def test_batch_not_divisible_by_ranks(mpiexec, fashion, tmp_path):
    r = run_mpi(mpiexec, 3, _fastdl("train", *ARGS, "--epochs", "1", "--out",
                                    str(tmp_path / "run")), cwd=tmp_path)
    assert r.returncode == 2, r.stdout + r.stderr
    assert r.stderr.count("--batch-size 100 is the global batch and must be divisible by the "
                          "3 MPI ranks") == 1
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("hang", [False, True], ids=["killed", "hung"])
def test_failed_rank_ends_the_run(mpiexec, fashion, tmp_path, hang):
    """Rank 1 dies (or hangs) in epoch 2: the job ends with an error in bounded time (the
    launcher ends a job whose rank died; fastdl's collective timeout, here 10 s, aborts a
    job whose rank hangs), and the checkpoint on disk is epoch 1's, complete."""
    out = tmp_path / "run"
    t0 = time.monotonic()
    r = run_mpi(mpiexec, 2, [sys.executable, str(HERE / "_kill.py"), "train", *ARGS,
                             "--epochs", "3", "--out", str(out)],
                cwd=tmp_path, timeout=180, FASTDL_MPI_TIMEOUT="10",
                FASTDL_TEST_ACTION="hang" if hang else "kill")
    assert r.returncode != 0, r.stdout + r.stderr
    assert time.monotonic() - t0 < 180
    text = (r.stdout + r.stderr).lower()
    if hang:
        assert "did not complete within 10 s" in text and "another rank died or hangs" in text
    else:
        assert "terminat" in text or "abort" in text or "killed" in text, text
    ck = load_checkpoint(out / "checkpoint.ckpt")
    assert (ck.meta["epoch"], ck.meta["step"]) == (1, 0)


def test_ctrl_c_on_one_rank_stops_all_at_the_same_step(mpiexec, fashion, tmp_path):
    """Only rank 0 is interrupted (in epoch 2, its 9th step): the ranks agree to stop after
    the same step, rank 0 saves that position, both exit with 130, and the run resumes."""
    out = tmp_path / "run"
    r = run_mpi(mpiexec, 2, [sys.executable, str(HERE / "_kill.py"), "train", *ARGS,
                             "--epochs", "2", "--out", str(out)],
                cwd=tmp_path, timeout=180, FASTDL_TEST_ACTION="sigint")
    assert r.returncode == 130, r.stdout + r.stderr
    assert r.stdout.count("stopped at epoch 1 batch 4;") == 1
    ck = load_checkpoint(out / "checkpoint.ckpt")
    assert (ck.meta["epoch"], ck.meta["step"], len(ck.meta["partial"]["losses"])) == (1, 4, 4)
    r = run_mpi(mpiexec, 2, _fastdl("train", "--resume", "--epochs", "2", "--out", str(out)),
                cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert [e["epoch"] for e in _history(out)["history"]] == [1, 2]
