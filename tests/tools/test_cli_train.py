"""`fastdl train` / `fastdl eval` end to end (subprocesses in a temporary directory) and the
safety of checkpoints: atomic writes, resume, Ctrl-C, corrupt and malicious files."""
from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from fastdl.checkpoint import (Checkpoint, CheckpointError, capture, load_checkpoint, restore,
                               save_checkpoint)
from fastdl.datasets import write_idx
from fastdl.models import MultiLayerNet, TwoLayerNet
from fastdl.optimizers import Adam, SGD

SPIRAL = ["--model", "multi_layer", "--dataset", "spiral", "--hidden", "100,100",
          "--lr", "0.01", "--batch-size", "30"]


def fastdl_cmd(*args: str, cwd: Path, check: bool = True, timeout: float = 300):
    env = dict(os.environ, MPLBACKEND="Agg")
    r = subprocess.run([sys.executable, "-m", "fastdl", *args], cwd=cwd, env=env,
                       capture_output=True, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise AssertionError(f"fastdl {' '.join(args)} failed ({r.returncode}):\n"
                             f"{r.stdout}\n{r.stderr}")
    return r


def read_history(out: Path) -> dict:
    return json.loads((out / "history.json").read_text())


def assert_consistent(doc: dict, epochs: int) -> None:
    hist = doc["history"]
    assert [r["epoch"] for r in hist] == list(range(1, epochs + 1))
    assert doc["epochs_completed"] == epochs
    for r in hist:
        assert np.isfinite(r["train_loss"]) and r["train_loss"] > 0
        for key in ("train_acc", "test_acc"):
            assert 0.0 <= r[key] <= 1.0
        assert r["seconds"] >= 0
    assert doc["test_acc"] == hist[-1]["test_acc"]


def no_temp_files(d: Path) -> bool:
    return not [p for p in d.iterdir() if p.name.endswith(".tmp")]


# ----------------------------------------------------------------------------- train / eval

def test_spiral_trains_to_high_accuracy(tmp_path):
    out = tmp_path / "run"
    r = fastdl_cmd("train", *SPIRAL, "--epochs", "60", "--out", str(out), cwd=tmp_path)
    assert "epoch 60/60" in r.stdout and "done: test accuracy" in r.stdout
    for name in ("history.json", "learning_curve.png", "weights.npz", "model.json",
                 "checkpoint.ckpt"):
        assert (out / name).is_file(), name
    assert (out / "learning_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    doc = read_history(out)
    assert_consistent(doc, 60)
    assert doc["test_acc"] >= 0.95
    assert doc["history"][-1]["train_loss"] < doc["history"][0]["train_loss"] / 5
    assert no_temp_files(out)

    # eval from the run directory (the dataset comes from the checkpoint) and from weights.npz
    r = fastdl_cmd("eval", str(out), cwd=tmp_path)
    ev = json.loads((out / "eval.json").read_text())
    assert ev["accuracy"] == pytest.approx(doc["test_acc"])
    assert "per-class accuracy" in r.stdout and "confusion matrix" in r.stdout
    assert np.array(ev["confusion_matrix"]).sum() == 300
    fastdl_cmd("eval", str(out / "weights.npz"), "--dataset", "spiral", "--out",
               str(tmp_path / "ev2"), cwd=tmp_path)
    ev2 = json.loads((tmp_path / "ev2" / "eval.json").read_text())
    assert ev2["accuracy"] == ev["accuracy"]


def test_resume_continues_epoch_count_and_loss_curve(tmp_path):
    opts = ["--model", "two_layer", "--dataset", "spiral", "--hidden", "20", "--lr", "0.05",
            "--lr-decay", "0.9", "--batch-size", "30", "--val-split", "0.2"]
    full, part = tmp_path / "full", tmp_path / "part"
    fastdl_cmd("train", *opts, "--epochs", "6", "--out", str(full), cwd=tmp_path)
    fastdl_cmd("train", *opts, "--epochs", "3", "--out", str(part), cwd=tmp_path)
    assert_consistent(read_history(part), 3)
    r = fastdl_cmd("train", "--resume", "--epochs", "6", "--out", str(part), cwd=tmp_path)
    assert "resuming" in r.stdout and "epoch 4/6" in r.stdout and "epoch 1/6" not in r.stdout
    a, b = read_history(full), read_history(part)
    assert_consistent(b, 6)
    for ra, rb in zip(a["history"], b["history"]):
        for key in ("lr", "train_loss", "train_acc", "val_loss", "val_acc", "test_acc"):
            assert rb[key] == pytest.approx(ra[key], rel=1e-6), (ra["epoch"], key)
    assert b["history"][5]["lr"] == pytest.approx(0.05 * 0.9 ** 5)
    wa, wb = np.load(full / "weights.npz"), np.load(part / "weights.npz")
    for k in wa.files:
        np.testing.assert_array_equal(wa[k], wb[k])

    # Ctrl-C in the middle of epoch 2 (batch 5 of 8), then resume: the same curve again
    mid = tmp_path / "mid"
    script = (
        "import os, signal, sys\n"
        "from fastdl import trainer\n"
        "step, calls = trainer.Trainer.train_step, [0]\n"
        "def train_step(self):\n"
        "    calls[0] += 1\n"
        "    if calls[0] == 13:\n"
        "        os.kill(os.getpid(), signal.SIGINT)\n"
        "    return step(self)\n"
        "trainer.Trainer.train_step = train_step\n"
        "from fastdl.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n")
    r = subprocess.run([sys.executable, "-c", script, "train", *opts, "--epochs", "6", "--out",
                        str(mid)], cwd=tmp_path, env=dict(os.environ, MPLBACKEND="Agg"),
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 130, r.stderr
    ck = load_checkpoint(mid / "checkpoint.ckpt")
    assert (ck.meta["epoch"], ck.meta["step"], len(ck.meta["partial"]["losses"])) == (1, 5, 5)
    fastdl_cmd("train", "--resume", "--epochs", "6", "--out", str(mid), cwd=tmp_path)
    c = read_history(mid)
    assert_consistent(c, 6)
    for ra, rc in zip(a["history"], c["history"]):
        for key in ("lr", "train_loss", "train_acc", "val_loss", "val_acc", "test_acc"):
            assert rc[key] == pytest.approx(ra[key], rel=1e-6), (ra["epoch"], key)

    # a resumed run keeps its options
    r = fastdl_cmd("train", "--resume", "--epochs", "8", "--lr", "0.1", "--out", str(part),
                   cwd=tmp_path, check=False)
    assert r.returncode == 2 and "--lr 0.1 differs" in r.stderr
    # and a finished run is not silently overwritten
    r = fastdl_cmd("train", *opts, "--out", str(part), cwd=tmp_path, check=False)
    assert r.returncode == 2 and "--resume" in r.stderr
    r = fastdl_cmd("train", "--resume", "--out", str(tmp_path / "nothing"), cwd=tmp_path,
                   check=False)
    assert r.returncode == 2 and "no checkpoint.ckpt" in r.stderr


def test_ctrl_c_stops_after_saving_and_resumes(tmp_path):
    out = tmp_path / "run"
    env = dict(os.environ, MPLBACKEND="Agg")
    proc = subprocess.Popen([sys.executable, "-m", "fastdl", "train", *SPIRAL, "--epochs",
                             "100000", "--out", str(out)], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (out / "checkpoint.ckpt").exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, (stdout, stderr)
    assert "checkpoint saved" in stdout and "--resume" in stdout
    ck = load_checkpoint(out / "checkpoint.ckpt")
    done = ck.meta["epoch"]
    assert done >= 1 and no_temp_files(out)
    doc = read_history(out)
    assert [r["epoch"] for r in doc["history"]] == list(range(1, done + 1))
    assert doc["test_acc"] is None
    target = done + 2
    fastdl_cmd("train", "--resume", "--epochs", str(target), "--out", str(out), cwd=tmp_path)
    assert_consistent(read_history(out), target)


def test_idx_directory_dataset(tmp_path):
    """`--dataset DIR` with small IDX files; images are bright in one quadrant = the class."""
    rng = np.random.default_rng(0)
    d = tmp_path / "quadrants"
    d.mkdir()
    for prefix, n in (("train", 400), ("t10k", 100)):
        t = rng.integers(0, 4, n).astype(np.uint8)
        x = rng.integers(0, 60, (n, 12, 12)).astype(np.uint8)
        for i, c in enumerate(t):
            r0, c0 = 6 * (c // 2), 6 * (c % 2)
            x[i, r0:r0 + 6, c0:c0 + 6] += 150
        write_idx(d / f"{prefix}-images-idx3-ubyte.gz", x)
        write_idx(d / f"{prefix}-labels-idx1-ubyte", t)
    out = tmp_path / "run"
    fastdl_cmd("train", "--model", "simple_convnet", "--dataset", str(d), "--epochs", "3",
               "--batch-size", "20", "--lr", "0.003", "--out", str(out), cwd=tmp_path)
    doc = read_history(out)
    assert_consistent(doc, 3)
    assert doc["model_config"]["output_size"] == 4
    assert doc["model_config"]["input_dim"] == [1, 12, 12]
    assert doc["test_acc"] >= 0.9


def test_usage_errors(tmp_path):
    r = fastdl_cmd("train", "--model", "simple_convnet", "--dataset", "spiral", "--out",
                   str(tmp_path / "x"), cwd=tmp_path, check=False)
    assert r.returncode == 2 and "needs image data" in r.stderr
    r = fastdl_cmd("train", "--dataset", str(tmp_path / "missing"), "--out", str(tmp_path / "y"),
                   cwd=tmp_path, check=False)
    assert r.returncode == 2 and "--dataset" in r.stderr
    r = fastdl_cmd("eval", cwd=tmp_path, check=False)
    assert r.returncode == 2


def test_eval_book_weights(data_dir, tmp_path):
    r = fastdl_cmd("eval", "--book-weights", str(data_dir / "book" / "sample_weight.pkl"),
                   "--dataset", "mnist", "--data-dir", str(data_dir / "mnist"), "--out",
                   str(tmp_path), cwd=tmp_path)
    ev = json.loads((tmp_path / "eval.json").read_text())
    assert ev["n"] == 10000 and ev["accuracy"] == pytest.approx(0.9352, abs=1e-9)
    assert ev["misclassified"] == 648
    assert "accuracy 0.9352" in r.stdout


# ----------------------------------------------------------------------------- checkpoints

def _trained(seed=0):
    model = TwoLayerNet(2, 8, 3, seed=seed)
    opt = Adam(lr=0.01)
    rng = np.random.default_rng(seed)
    x, t = rng.standard_normal((20, 2)).astype(np.float32), rng.integers(0, 3, 20)
    for _ in range(3):
        _, g = model.loss_and_gradient(x, t)
        opt.update(model.params, g)
    return model, opt


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def test_checkpoint_roundtrip(tmp_path):
    model, opt = _trained()
    save_checkpoint(tmp_path / "c.ckpt", capture(model, opt, epoch=3, history=[{"x": 1.5}]))
    ck = load_checkpoint(tmp_path / "c.ckpt")
    assert ck.meta["epoch"] == 3 and ck.meta["history"] == [{"x": 1.5}]
    m2, o2 = TwoLayerNet(2, 8, 3, seed=5), Adam(lr=0.01)
    restore(ck, m2, o2)
    assert _same(m2.state_dict(), model.state_dict())
    assert o2.iter == opt.iter == 3
    assert _same(o2.state_dict()["slots"]["m"], opt.state_dict()["slots"]["m"])
    assert no_temp_files(tmp_path)


def test_failed_write_leaves_previous_checkpoint(tmp_path, monkeypatch):
    model, opt = _trained()
    path = tmp_path / "c.ckpt"
    save_checkpoint(path, capture(model, opt, epoch=1))
    before = path.read_bytes()

    def broken_fsync(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="No space"):
        save_checkpoint(path, capture(model, opt, epoch=2))
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert load_checkpoint(path).meta["epoch"] == 1
    assert no_temp_files(tmp_path)


def test_writer_killed_mid_write(tmp_path):
    """SIGKILL between writing and renaming: the previous checkpoint survives, and the next
    write (here: a resumed training run) removes the dead writer's temporary file."""
    out = tmp_path / "run"
    script = (
        "import os, signal, sys\n"
        "real, calls = os.fsync, [0]\n"
        "def fsync(fd):\n"
        "    calls[0] += 1\n"
        "    if calls[0] == 3:  # epoch 2's checkpoint (1: epoch 1 file, 2: its directory)\n"
        "        os.kill(os.getpid(), signal.SIGKILL)\n"
        "    real(fd)\n"
        "os.fsync = fsync\n"
        "from fastdl.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n")
    args = ["train", *SPIRAL, "--epochs", "4", "--out", str(out)]
    r = subprocess.run([sys.executable, "-c", script, *args], cwd=tmp_path,
                       env=dict(os.environ, MPLBACKEND="Agg"), capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == -signal.SIGKILL, r.stderr
    assert load_checkpoint(out / "checkpoint.ckpt").meta["epoch"] == 1
    assert not no_temp_files(out)  # the dead writer's partial file
    fastdl_cmd("train", "--resume", "--epochs", "4", "--out", str(out), cwd=tmp_path)
    assert_consistent(read_history(out), 4)
    assert no_temp_files(out)


class _Evil:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("kind", ["truncated", "bitflip", "pickle", "npz", "empty", "garbage"])
def test_bad_checkpoints_refused(tmp_path, kind):
    model, opt = _trained()
    path = tmp_path / "checkpoint.ckpt"
    save_checkpoint(path, capture(model, opt, epoch=1))
    raw = path.read_bytes()
    marker = tmp_path / "pwned"
    if kind == "truncated":
        path.write_bytes(raw[: len(raw) - 100])
    elif kind == "bitflip":
        path.write_bytes(raw[:200] + bytes([raw[200] ^ 1]) + raw[201:])
    elif kind == "pickle":
        path.write_bytes(pickle.dumps({"W1": _Evil(marker)}))
    elif kind == "npz":
        np.savez(path.with_suffix(".npz"), W1=np.zeros(3))
        path.write_bytes(path.with_suffix(".npz").read_bytes())
    elif kind == "empty":
        path.write_bytes(b"")
    else:
        path.write_bytes(b"hello world, not a checkpoint" * 10)
    with pytest.raises(CheckpointError, match="checkpoint.ckpt"):
        load_checkpoint(path)
    if kind not in ("truncated", "pickle", "npz"):
        return
    # the CLI refuses it too, with one clear line and no traceback
    r = fastdl_cmd("train", "--resume", "--out", str(tmp_path), cwd=tmp_path, check=False)
    assert r.returncode == 2 and "checkpoint.ckpt" in r.stderr and "Traceback" not in r.stderr
    r = fastdl_cmd("eval", str(path), "--dataset", "spiral", cwd=tmp_path, check=False)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert not marker.exists()


def test_mismatched_checkpoint_leaves_model_unchanged(tmp_path):
    model, opt = _trained()
    save_checkpoint(tmp_path / "c.ckpt", capture(model, opt))
    ck = load_checkpoint(tmp_path / "c.ckpt")

    other = TwoLayerNet(2, 9, 3, seed=1)  # same class, other shapes
    before = other.state_dict()
    with pytest.raises(CheckpointError, match="shape"):
        restore(ck, other, Adam(lr=0.01))
    assert _same(other.state_dict(), before)

    mlp = MultiLayerNet(2, [8], 3, seed=1)  # another model
    before = mlp.state_dict()
    with pytest.raises(CheckpointError, match="two_layer"):
        restore(ck, mlp)
    assert _same(mlp.state_dict(), before)

    same = TwoLayerNet(2, 8, 3, seed=1)  # fits, but the optimizer does not
    before = same.state_dict()
    sgd = SGD(lr=0.1)
    with pytest.raises(CheckpointError, match="optimizer"):
        restore(ck, same, sgd)
    assert _same(same.state_dict(), before) and sgd.iter == 0

    bad = Checkpoint(meta=ck.meta, params={**ck.params, "W1": ck.params["W1"][:1]}, optim=ck.optim)
    with pytest.raises(CheckpointError):
        restore(bad, same)
    assert _same(same.state_dict(), before)


def test_build_options():
    from fastdl.cli.train import _RUN_OPTIONS, UsageError, build

    deep = build({**_RUN_OPTIONS, "model": "deep_convnet", "dropout": 0.2}, (1, 28, 28), 10)
    assert deep.config()["dropout_ratio"] == 0.2
    assert build({**_RUN_OPTIONS, "model": "deep_convnet"}, (1, 28, 28), 10
                 ).config()["dropout_ratio"] == 0.5  # the book's
    mlp = build({**_RUN_OPTIONS, "model": "multi_layer", "dropout": 0.3, "batchnorm": True,
                 "hidden": [7, 5], "weight_decay": 0.01}, (784,), 10)
    assert mlp.name == "multi_layer_extend"
    cfg = mlp.config()
    assert (cfg["use_dropout"], cfg["dropout_ration"], cfg["use_batchnorm"]) == (True, 0.3, True)
    assert cfg["hidden_size_list"] == [7, 5] and cfg["weight_decay_lambda"] == 0.01
    conv = build({**_RUN_OPTIONS, "weight_decay": 0.1, "weight_init": "0.01"}, (1, 28, 28), 10)
    assert conv.weight_decay_lambda == 0.1 and conv.config()["weight_init_std"] == 0.01
    for bad in ({"dropout": 0.3}, {"batchnorm": True}, {"hidden": [3, 4]},
                {"weight_init": "zeros"}, {"model": "deep_convnet", "dropout": 1.0}):
        with pytest.raises(UsageError):
            build({**_RUN_OPTIONS, **bad}, (1, 28, 28), 10)
