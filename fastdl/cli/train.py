"""``fastdl train``, ``fastdl eval`` and ``fastdl data``.

``fastdl train`` writes into ``--out``: ``checkpoint.ckpt`` (after every epoch and on
Ctrl-C; see :mod:`fastdl.checkpoint`), ``history.json``, ``learning_curve.png``,
``weights.npz`` and ``model.json`` (the model's name and configuration, so that
``fastdl eval`` can rebuild it). ``--resume`` continues the run in ``--out`` exactly
where it stopped, mid-epoch included: each epoch's batch order is a function of the seed
and the epoch number, and the optimizer state is restored.
"""
from __future__ import annotations

import argparse
import json
import math
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np

CHECKPOINT = "checkpoint.ckpt"
MODEL_NAMES = ("two_layer", "multi_layer", "simple_convnet", "deep_convnet")
OPTIMIZER_NAMES = ("sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam")

# Options that define a run, with their defaults; on --resume they come from the
# checkpoint and may only be repeated with the same value.
_RUN_OPTIONS: dict[str, Any] = {
    "model": "simple_convnet", "dataset": "fashion-mnist", "data_dir": None,
    "batch_size": 100, "optimizer": "adam", "lr": 0.001, "lr_decay": 1.0, "weight_decay": 0.0,
    "dropout": None, "batchnorm": False, "seed": 0, "val_split": 0.0, "train_size": None,
    "test_size": None, "hidden": None, "dtype": "float32", "weight_init": "he",
}


class UsageError(Exception):
    """A command-line mistake: printed without a traceback, exit status 2."""


# ----------------------------------------------------------------------------- data

@dataclass
class Data:
    """Arrays of one dataset, ready for a model (images flat or (N, 1, H, W))."""

    name: str
    x_train: np.ndarray
    t_train: np.ndarray
    x_val: Optional[np.ndarray]
    t_val: Optional[np.ndarray]
    x_test: np.ndarray
    t_test: np.ndarray
    input_shape: tuple[int, ...]
    n_classes: int
    class_names: Optional[tuple[str, ...]]


def _load_arrays(dataset: str, data_dir: Optional[str], flatten: bool, splits=("train", "test")):
    """{split: (x, t)}, input shape, class names."""
    from .. import datasets

    if dataset == "spiral":
        (xtr, ttr), (xte, tte) = datasets.load_spiral()
        return {"train": (xtr, ttr), "test": (xte, tte)}, (2,), None
    if dataset in datasets.DATASETS:
        out = {s: datasets.load_split(dataset, s, flatten=flatten, path=data_dir) for s in splits}
        names = datasets.FASHION_MNIST_CLASSES if dataset == "fashion-mnist" else None
    else:
        d = Path(dataset)
        if not d.is_dir():
            raise UsageError(f"--dataset must be fashion-mnist, mnist, spiral or a directory of "
                             f"IDX files; {dataset!r} is none of these")
        out = {s: datasets.load_idx_split(d, s, flatten=flatten, n_classes=None) for s in splits}
        names = None
    x = out[splits[0]][0]
    shape = (int(np.prod(x.shape[1:])),) if flatten else tuple(int(v) for v in x.shape[1:])
    return out, shape, names


def load_data(opts: dict[str, Any], flatten: bool) -> Data:
    """Load and split the dataset of a run (train subset, validation split, test subset)."""
    arrays, shape, names = _load_arrays(opts["dataset"], opts["data_dir"], flatten)
    x, t = arrays["train"]
    xt, tt = arrays["test"]
    if opts["train_size"]:
        x, t = x[:opts["train_size"]], t[:opts["train_size"]]
    if opts["test_size"]:
        xt, tt = xt[:opts["test_size"]], tt[:opts["test_size"]]
    xv = tv = None
    if opts["val_split"]:
        n_val = int(round(len(x) * opts["val_split"]))
        if not 0 < n_val < len(x):
            raise UsageError(f"--val-split {opts['val_split']} leaves no training or no "
                             f"validation samples out of {len(x)}")
        perm = np.random.default_rng([opts["seed"], 7919]).permutation(len(x))
        xv, tv = x[perm[:n_val]], t[perm[:n_val]]
        x, t = x[perm[n_val:]], t[perm[n_val:]]
    n_classes = int(max(t.max(), tt.max())) + 1
    if names is not None:
        n_classes = len(names)
    elif opts["dataset"] == "mnist":
        n_classes = 10
    return Data(opts["dataset"], np.ascontiguousarray(x), t, xv, tv, np.ascontiguousarray(xt),
                tt, shape, n_classes, names)


# ----------------------------------------------------------------------------- model

def _flat_input(model_name: str) -> bool:
    return model_name in ("two_layer", "multi_layer")


def build(opts: dict[str, Any], input_shape: tuple[int, ...], n_classes: int):
    """The model of a run, from its options (see ``fastdl train --help``)."""
    from ..models import (DeepConvNet, MultiLayerNet, MultiLayerNetExtend, SimpleConvNet,
                         TwoLayerNet)

    name, dtype, seed = opts["model"], opts["dtype"], opts["seed"]
    hidden = opts["hidden"]
    if name in ("simple_convnet", "deep_convnet") and len(input_shape) != 3:
        raise UsageError(f"--model {name} needs image data, not {opts['dataset']}")
    if opts["dropout"] is not None and name not in ("multi_layer", "deep_convnet"):
        raise UsageError("--dropout applies to --model multi_layer and deep_convnet")
    if hidden and len(hidden) > 1 and name != "multi_layer":
        raise UsageError(f"--model {name} has one hidden layer size, got --hidden {hidden}")
    if opts["batchnorm"] and name != "multi_layer":
        raise UsageError("--batchnorm applies to --model multi_layer")
    if opts["dropout"] is not None and not 0 <= opts["dropout"] < 1:
        raise UsageError(f"--dropout must be in [0, 1), got {opts['dropout']}")
    if opts["weight_decay"] < 0:
        raise UsageError(f"--weight-decay must be >= 0, got {opts['weight_decay']}")
    init = opts["weight_init"]
    try:
        init = float(init)
    except ValueError:
        if init not in ("he", "relu", "xavier", "sigmoid"):
            raise UsageError(f"--weight-init must be he, xavier or a number, got {init!r}") from None
    if name == "deep_convnet" and init not in ("he", "relu"):
        raise UsageError("deep_convnet always uses He initialisation (the book's)")
    d = input_shape[0]
    if name == "two_layer":
        model = TwoLayerNet(d, hidden[0] if hidden else 50, n_classes, weight_init_std=init,
                            dtype=dtype, seed=seed)
    elif name == "multi_layer":
        kw = dict(input_size=d, hidden_size_list=hidden or [100, 100, 100],
                  output_size=n_classes, weight_decay_lambda=opts["weight_decay"],
                  weight_init_std=init, dtype=dtype, seed=seed)
        if opts["dropout"] or opts["batchnorm"]:
            model = MultiLayerNetExtend(use_dropout=bool(opts["dropout"]),
                                        dropout_ration=opts["dropout"] or 0.5,
                                        use_batchnorm=opts["batchnorm"], **kw)
        else:
            model = MultiLayerNet(**kw)
    elif name == "simple_convnet":
        model = SimpleConvNet(input_dim=input_shape, hidden_size=hidden[0] if hidden else 100,
                              output_size=n_classes, weight_init_std=init, dtype=dtype, seed=seed)
    elif name == "deep_convnet":
        model = DeepConvNet(input_dim=input_shape, hidden_size=hidden[0] if hidden else 50,
                            output_size=n_classes, dtype=dtype, seed=seed,
                            dropout_ratio=0.5 if opts["dropout"] is None else opts["dropout"])
    else:
        raise UsageError(f"unknown --model {name!r}; expected one of {MODEL_NAMES}")
    if name != "multi_layer":  # the others take weight decay as an attribute
        model.weight_decay_lambda = float(opts["weight_decay"])
    return model


def evaluate(model, x: np.ndarray, t: np.ndarray, batch_size: int = 500):
    """Mean loss (without weight decay), accuracy and predicted labels (N,) int64."""
    from .. import ops

    preds = np.empty(len(x), dtype=np.int64)
    loss_sum = 0.0
    for i in range(0, len(x), batch_size):
        logits = model.predict(x[i:i + batch_size])
        tb = np.asarray(t[i:i + batch_size], dtype=np.int64)
        loss, _ = ops.softmax_cross_entropy(logits, tb)
        loss_sum += loss * len(tb)
        preds[i:i + batch_size] = np.argmax(logits, axis=1)
    acc = float(np.mean(preds == np.asarray(t))) if len(x) else float("nan")
    return loss_sum / max(len(x), 1), acc, preds


# ----------------------------------------------------------------------------- training

class _StopOnInterrupt:
    """First Ctrl-C (SIGINT) or SIGTERM: finish the current batch, save, stop.
    A second Ctrl-C raises KeyboardInterrupt at once (checkpoint writes stay atomic)."""

    def __init__(self) -> None:
        self.requested = False
        self._prev: dict[int, Any] = {}

    def _handler(self, signum, frame) -> None:
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = True
        sys.stderr.write("\nstopping after this batch (Ctrl-C again to abort now)\n")

    def __enter__(self) -> "_StopOnInterrupt":
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._prev[sig] = signal.signal(sig, self._handler)
        return self

    def __exit__(self, *exc) -> None:
        for sig, prev in self._prev.items():
            signal.signal(sig, prev)


class _Progress:
    """tqdm bar on a terminal; otherwise a plain line every ~10% of the epoch, at most one
    per ``min_interval`` seconds (the epoch summary line follows anyway)."""

    def __init__(self, epoch: int, epochs: int, total: int, initial: int,
                 min_interval: float = 2.0) -> None:
        self.desc = f"epoch {epoch}/{epochs}"
        self.total = total
        self.every = max(1, total // 10)
        self.min_interval = min_interval
        self.last = time.perf_counter()
        self.bar = None
        if sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=initial, desc=self.desc, leave=False,
                            dynamic_ncols=True, unit="batch")

    def update(self, step: int, loss: float, acc: Optional[float]) -> None:
        text = f"loss {loss:.4f}" + ("" if acc is None else f" acc {acc:.4f}")
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix_str(text, refresh=False)
        elif step % self.every == 0 and step < self.total:
            now = time.perf_counter()
            if now - self.last >= self.min_interval:
                self.last = now
                sys.stderr.write(f"{self.desc} {step}/{self.total} {text}\n")
                sys.stderr.flush()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _save(out: Path, model, optimizer, state: dict[str, Any]) -> None:
    from ..checkpoint import capture, save_checkpoint

    save_checkpoint(out / CHECKPOINT, capture(model, optimizer, **state))


def _write_results(out: Path, model, state: dict[str, Any], test_acc: Optional[float]) -> None:
    from .. import plots
    from ..io import atomic_write_bytes

    hist = state["history"]
    doc = {"model": model.name, "model_config": model.config(), "options": state["options"],
           "backend": state["backend"], "threads": state["threads"],
           "epochs_completed": state["epoch"], "history": hist, "test_acc": test_acc,
           "seconds": round(sum(r["seconds"] for r in hist), 3)}
    atomic_write_bytes(out / "history.json", json.dumps(doc, indent=2).encode())
    atomic_write_bytes(out / "model.json",
                       json.dumps({"name": model.name, "config": model.config()}, indent=2).encode())
    model.save_params(out / "weights.npz")
    if hist:
        plots.learning_curve(hist, out / "learning_curve.png",
                             title=f"{model.name} on {state['options']['dataset']}")


def fit(model, optimizer, data: Data, state: dict[str, Any], epochs: int, out: Path) -> bool:
    """Train with :class:`fastdl.trainer.Trainer` until ``epochs`` epochs are complete,
    checkpointing after each; returns False when stopped by a signal (after saving).

    ``state`` (updated in place, stored in every checkpoint): ``epoch`` (completed),
    ``step`` (batches done in the current epoch), ``partial`` (that epoch's batch losses
    and seconds so far), ``history`` (one record per completed epoch), ``options``.
    """
    from ..trainer import Trainer

    opts = state["options"]
    part = state["partial"]
    progress: list[_Progress] = []
    clock = [time.perf_counter()]

    def on_event(trainer: Trainer, rec: dict) -> None:
        if rec["event"] == "iteration":
            loss = rec["loss"]
            if not math.isfinite(loss):
                raise FloatingPointError(
                    f"loss became {loss} at epoch {rec['epoch']}, iteration {rec['iteration']}; "
                    f"lower --lr (the last checkpoint in {out} is from before)")
            part["losses"].append(loss)
            step = trainer.current_iter - trainer.current_epoch * trainer.iter_per_epoch
            progress[0].update(step, float(np.mean(part["losses"])), rec.get("running_acc"))
            if stop.requested:
                trainer.stop_training = True
            return
        progress.pop().close()
        record = {"epoch": rec["epoch"], "lr": optimizer.lr,
                  "train_loss": float(np.mean(part["losses"])), "train_acc": rec["train_acc"]}
        if data.x_val is not None:
            record["val_loss"], record["val_acc"], _ = evaluate(model, data.x_val, data.t_val)
        record["test_acc"] = rec["test_acc"]
        record["seconds"] = round(part["seconds"] + time.perf_counter() - clock[0], 3)
        state["history"].append(record)
        state["epoch"], state["step"] = rec["epoch"], 0
        part["losses"], part["seconds"] = [], 0.0
        _save(out, model, optimizer, state)
        print(_summary(record, epochs), flush=True)

    with _StopOnInterrupt() as stop:
        trainer = Trainer(model, data.x_train, data.t_train, data.x_test, data.t_test,
                          epochs=epochs, mini_batch_size=opts["batch_size"], optimizer=optimizer,
                          evaluate_sample_num_per_epoch=len(data.x_test), verbose=False,
                          seed=opts["seed"], callbacks=[on_event], start_epoch=state["epoch"],
                          start_iteration=state["step"])
        while trainer.current_epoch < epochs:
            if not progress:
                optimizer.lr = opts["lr"] * opts["lr_decay"] ** trainer.current_epoch
                clock[0] = time.perf_counter()
                progress.append(_Progress(trainer.current_epoch + 1, epochs,
                                          trainer.iter_per_epoch, state["step"]))
            trainer.train_step()
            if stop.requested:
                break
    if trainer.current_epoch >= epochs:
        return True
    if progress:  # stopped mid-epoch: save the position inside it
        progress.pop().close()
        state["step"] = trainer.current_iter - trainer.current_epoch * trainer.iter_per_epoch
        part["seconds"] += time.perf_counter() - clock[0]
        _save(out, model, optimizer, state)
    return False


def _summary(r: dict[str, Any], epochs: int) -> str:
    s = f"epoch {r['epoch']}/{epochs}: train loss {r['train_loss']:.4f} acc {r['train_acc']:.4f}"
    if "val_acc" in r:
        s += f" | val loss {r['val_loss']:.4f} acc {r['val_acc']:.4f}"
    return s + f" | test acc {r['test_acc']:.4f} | {r['seconds']:.1f} s"


def _parse_hidden(text: Optional[str]) -> Optional[list[int]]:
    if text is None:
        return None
    try:
        sizes = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise UsageError(f"--hidden must be comma-separated integers, got {text!r}") from None
    if not sizes or min(sizes) < 1:
        raise UsageError(f"--hidden must be positive sizes, got {text!r}")
    return sizes


def _run_options(args: argparse.Namespace, saved: Optional[dict[str, Any]]) -> dict[str, Any]:
    """Options of the run: defaults < command line; on resume, the checkpoint's, which the
    command line may only repeat."""
    given = {k: getattr(args, k) for k in _RUN_OPTIONS if getattr(args, k) is not None}
    if "hidden" in given:
        given["hidden"] = _parse_hidden(given["hidden"])
    if saved is None:
        return {**_RUN_OPTIONS, **given}
    for k, v in given.items():
        if saved.get(k) != v:
            flag = "--" + k.replace("_", "-")
            raise UsageError(f"{flag} {v} differs from the resumed run's {saved.get(k)}; "
                             f"--resume continues the same run (only --epochs, --backend and "
                             f"--threads may change)")
    return dict(saved)


def _setup_backend(args: argparse.Namespace, run_backend: Optional[str] = None,
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


def cmd_train(args: argparse.Namespace) -> int:
    import fastdl
    from ..checkpoint import load_checkpoint, restore
    from ..optimizers import get_optimizer

    out = Path(args.out)
    ckpt_path = out / CHECKPOINT
    ckpt = None
    if args.resume:
        if not ckpt_path.is_file():
            raise UsageError(f"--resume: no {CHECKPOINT} in {out}")
        ckpt = load_checkpoint(ckpt_path)
        if ckpt.meta.get("format") != "fastdl-train":
            raise UsageError(f"{ckpt_path} was not written by `fastdl train`")
    elif ckpt_path.exists():
        raise UsageError(f"{out} already holds a run ({CHECKPOINT}); continue it with --resume "
                         f"or choose another --out")
    _setup_backend(args, *((ckpt.meta.get("backend"), ckpt.meta.get("threads")) if ckpt
                           else (None, None)))
    opts = _run_options(args, ckpt.meta["options"] if ckpt else None)
    if opts["batch_size"] < 1:
        raise UsageError(f"--batch-size must be >= 1, got {opts['batch_size']}")
    if not 0 < opts["lr_decay"] <= 1:
        raise UsageError(f"--lr-decay must be in (0, 1], got {opts['lr_decay']}")
    if not 0 <= opts["val_split"] < 1:
        raise UsageError(f"--val-split must be in [0, 1), got {opts['val_split']}")
    data = load_data(opts, flatten=_flat_input(opts["model"]))
    model = build(opts, data.input_shape, data.n_classes)
    optimizer = get_optimizer(opts["optimizer"], lr=opts["lr"])
    state: dict[str, Any] = {
        "format": "fastdl-train", "options": opts, "epoch": 0, "step": 0,
        "partial": {"losses": [], "seconds": 0.0}, "history": []}
    if ckpt is not None:
        restore(ckpt, model, optimizer, ckpt_path)
        state.update({k: ckpt.meta[k] for k in ("epoch", "step", "partial", "history")})
        print(f"resuming {out} at epoch {state['epoch']} batch {state['step']}", flush=True)
    state["backend"] = fastdl.get_backend()
    state["threads"] = fastdl.get_num_threads()
    out.mkdir(parents=True, exist_ok=True)
    epochs = args.epochs
    if epochs < state["epoch"] or epochs < 1:
        raise UsageError(f"--epochs {epochs}: the run has already completed {state['epoch']}")
    print(f"training {model.name} on {data.name}: {len(data.x_train)} train, "
          f"{0 if data.x_val is None else len(data.x_val)} val, {len(data.x_test)} test; "
          f"{opts['optimizer']} lr {opts['lr']}"
          f"{'' if opts['lr_decay'] == 1 else ' x ' + str(opts['lr_decay']) + '/epoch'}, "
          f"batch {opts['batch_size']}, "
          f"backend {state['backend']}, {state['threads']} threads", flush=True)
    finished = fit(model, optimizer, data, state, epochs, out)
    if not finished:
        _write_results(out, model, state, None)
        print(f"stopped at epoch {state['epoch']} batch {state['step']}; checkpoint saved in "
              f"{ckpt_path}; continue with: fastdl train --out {out} --resume --epochs {epochs}",
              flush=True)
        return 130
    test_acc = state["history"][-1]["test_acc"] if state["history"] else None
    _write_results(out, model, state, test_acc)
    total = sum(r["seconds"] for r in state["history"])
    if test_acc is not None:
        print(f"done: test accuracy {test_acc:.4f} after {state['epoch']} epochs "
              f"({total:.1f} s training); results in {out}", flush=True)
    return 0


# ----------------------------------------------------------------------------- eval

def _book_model(params: dict[str, np.ndarray], dtype: str):
    """The book network matching a weight dict's keys and shapes."""
    from ..models import DeepConvNet, MultiLayerNet, SimpleConvNet

    keys = set(params)
    if keys == {f"{p}{i}" for p in "Wb" for i in range(1, 9)}:
        return DeepConvNet(hidden_size=params["W7"].shape[1], output_size=params["W8"].shape[1],
                           dtype=dtype)
    if keys == {f"{p}{i}" for p in "Wb" for i in range(1, 4)}:
        W1 = params["W1"]
        if W1.ndim == 4:
            fn, c, fs, _ = W1.shape
            return SimpleConvNet(input_dim=(c, 28, 28), conv_param={"filter_num": fn,
                                                                    "filter_size": fs},
                                 hidden_size=params["W2"].shape[1],
                                 output_size=params["W3"].shape[1], dtype=dtype)
        return MultiLayerNet(W1.shape[0], [W1.shape[1], params["W2"].shape[1]],
                             params["W3"].shape[1], activation="sigmoid", dtype=dtype)
    raise UsageError(f"unrecognised book weights (keys {sorted(keys)}); expected the book's "
                     f"sample_weight, simple_convnet_params or deep_convnet_params")


def _load_for_eval(args: argparse.Namespace):
    """(model, source description, default output dir, dataset option or None)."""
    from .. import io
    from ..checkpoint import CheckpointError, load_checkpoint, restore
    from ..models import build_model

    if args.book_weights:
        params = io.load_book_params(args.book_weights)
        model = _book_model(params, args.dtype or "float64")
        model.load_state_dict(params)
        return model, args.book_weights, Path("."), None
    if not args.weights:
        raise UsageError("give WEIGHTS (a run directory, checkpoint or .npz) or --book-weights")
    path = Path(args.weights)
    if path.is_dir():
        path = path / CHECKPOINT if (path / CHECKPOINT).is_file() else path / "weights.npz"
    if not path.is_file():
        raise UsageError(f"{args.weights}: no such checkpoint or weight file")
    with open(path, "rb") as fh:
        head = fh.read(8)
    if head.startswith(b"PK"):  # .npz from save_params: the model comes from model.json
        spec_path = path.parent / "model.json"
        if not spec_path.is_file():
            raise UsageError(f"{path}: no model.json next to it, so the architecture is unknown")
        spec = json.loads(spec_path.read_text())
        cfg = dict(spec["config"], **({"dtype": args.dtype} if args.dtype else {}))
        model = build_model(spec["name"], **cfg)
        model.load_params(path)
        return model, str(path), path.parent, None
    if head.startswith(b"\x80"):
        raise CheckpointError(f"{path}: a Python pickle; refused (book weights are read safely "
                              f"with --book-weights FILE)")
    ckpt = load_checkpoint(path)
    info = ckpt.meta.get("model", {})
    cfg = dict(info.get("config", {}), **({"dtype": args.dtype} if args.dtype else {}))
    try:
        model = build_model(info.get("name"), **cfg)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: cannot rebuild the model: {exc}") from None
    restore(ckpt, model, None, path)
    dataset = ckpt.meta.get("options", {}).get("dataset")
    return model, str(path), path.parent, dataset


def confusion_matrix(t: np.ndarray, y: np.ndarray, n_classes: int) -> np.ndarray:
    """(n_classes, n_classes) int64 counts: row = true label, column = prediction."""
    m = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(m, (np.asarray(t, dtype=np.int64), np.asarray(y, dtype=np.int64)), 1)
    return m


def cmd_eval(args: argparse.Namespace) -> int:
    from .. import plots
    from ..io import atomic_write_bytes

    _setup_backend(args)
    model, source, default_out, run_dataset = _load_for_eval(args)
    dataset = args.dataset or run_dataset
    if dataset is None:
        raise UsageError("--dataset is required for this weight file")
    # flat images suit every model: the convnets reshape (N, C*H*W) to their input shape
    arrays, _, names = _load_arrays(dataset, args.data_dir, True, splits=("test",))
    x, t = arrays["test"]
    if args.test_size:
        x, t = x[:args.test_size], t[:args.test_size]
    t0 = time.perf_counter()
    loss, acc, pred = evaluate(model, x, t, args.batch_size)
    seconds = time.perf_counter() - t0
    k = max(int(t.max()) + 1, int(pred.max()) + 1, len(names) if names else 0)
    cm = confusion_matrix(t, pred, k)
    per_class = cm.diagonal() / np.maximum(cm.sum(axis=1), 1)
    label = [names[i] if names else str(i) for i in range(k)]
    print(f"{source} on {dataset} test ({len(t)} images, {model.dtype.name}): "
          f"accuracy {acc:.4f}, loss {loss:.4f}  [{seconds:.1f} s]")
    print("per-class accuracy:")
    for i in range(k):
        print(f"  {label[i]:>12s}  {per_class[i]:.4f}  ({cm[i].sum()} images)")
    print("confusion matrix (rows: true, columns: predicted):")
    print("\n".join("  " + " ".join(f"{v:5d}" for v in row) for row in cm))
    out = Path(args.out) if args.out else default_out
    out.mkdir(parents=True, exist_ok=True)
    n_wrong = int(np.sum(pred != t))
    written = [out / "eval.json"]
    if dataset != "spiral":  # images: the book's figure of misclassified examples
        plots.misclassified_grid(x, t, pred, out / "misclassified.png", names)
        written.insert(0, out / "misclassified.png")
    result = {"weights": source, "dataset": dataset, "n": int(len(t)), "accuracy": acc,
              "loss": loss, "misclassified": n_wrong, "class_names": label,
              "per_class_accuracy": per_class.tolist(), "confusion_matrix": cm.tolist()}
    atomic_write_bytes(out / "eval.json", json.dumps(result, indent=2).encode())
    print("wrote " + " and ".join(str(p) for p in written))
    return 0


# ----------------------------------------------------------------------------- data

def cmd_data(args: argparse.Namespace) -> int:
    from .. import datasets, download

    status = 0
    for name in datasets.DATASETS:
        if args.download in (name, "all"):
            try:
                where = download.download(name, dest=args.dest, base_urls=args.url or None)
            except download.DownloadError as exc:
                print(f"{name}: download failed: {exc}")
                status = 1
                continue
            print(f"{name}: downloaded to {where}")
        try:
            files = datasets.find_dataset(name, args.dest)
        except FileNotFoundError as exc:
            print(f"{name}: not found\n{exc}\n")
            continue
        counts = {s: len(datasets.read_idx(files[f"{s}-labels"])) for s in ("train", "test")}
        print(f"{name}: {files['train-images'].parent} "
              f"({counts['train']} train, {counts['test']} test images)")
    print("spiral: synthetic, always available (fastdl.datasets.spiral)")
    return status


# ----------------------------------------------------------------------------- parsers

def _guard(func):
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
            print(f"fastdl {args.command}: error: {exc}", file=sys.stderr)
            return 2
    return run


def _add_backend_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backend", help="kernel backend: numpy, numba, cpp or auto")
    p.add_argument("--threads", type=int, help="threads for the kernels and BLAS")


def register(subparsers) -> None:
    """Add the train, eval and data subcommands to ``fastdl``'s parser."""
    p = subparsers.add_parser(
        "train", help="train a network; checkpoints, history.json, learning curve, weights",
        description="Train one of the book's networks. Results go to --out.")
    p.add_argument("--model", choices=MODEL_NAMES, help="default simple_convnet")
    p.add_argument("--dataset", help="fashion-mnist (default), mnist, spiral, or a directory "
                                     "of IDX files")
    p.add_argument("--data-dir", help="directory searched first for the dataset files")
    p.add_argument("--epochs", type=int, default=10, help="total epochs (default 10)")
    p.add_argument("--batch-size", type=int, help="default 100")
    p.add_argument("--optimizer", choices=OPTIMIZER_NAMES, help="default adam")
    p.add_argument("--lr", type=float, help="learning rate (default 0.001)")
    p.add_argument("--lr-decay", type=float, help="learning rate multiplier per epoch: epoch e "
                                                  "uses lr * decay**(e-1) (default 1: constant)")
    p.add_argument("--weight-decay", type=float, help="L2 weight decay lambda (default 0)")
    p.add_argument("--dropout", type=float, help="dropout ratio: multi_layer (default: no "
                                                 "dropout layers), deep_convnet (default 0.5, "
                                                 "the book's)")
    p.add_argument("--batchnorm", action="store_const", const=True,
                   help="batch normalisation for multi_layer")
    p.add_argument("--hidden", help="hidden layer sizes, comma-separated (e.g. 100,100)")
    p.add_argument("--weight-init", help="he (default), xavier, or a fixed std such as the "
                                         "book's 0.01")
    p.add_argument("--dtype", choices=("float32", "float64"), help="default float32")
    p.add_argument("--seed", type=int, help="initialisation and batch order (default 0)")
    p.add_argument("--val-split", type=float, help="fraction of training data held out for "
                                                   "validation (default 0)")
    p.add_argument("--train-size", type=int, help="use only the first N training images")
    p.add_argument("--test-size", type=int, help="use only the first N test images")
    p.add_argument("--out", default="runs/latest", help="output directory (default runs/latest)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out (with "
                   "its backend and threads unless --backend/--threads are given)")
    _add_backend_options(p)
    p.set_defaults(func=_guard(cmd_train))

    p = subparsers.add_parser(
        "eval", help="accuracy, per-class accuracy, confusion matrix, misclassified images",
        description="Evaluate trained weights (run directory, checkpoint or .npz with "
                    "model.json) or one of the book's .pkl files (--book-weights) on a test set.")
    p.add_argument("weights", nargs="?", help="run directory, checkpoint.ckpt or weights.npz")
    p.add_argument("--book-weights", help="one of the book's pickled weight files (read safely)")
    p.add_argument("--dataset", help="fashion-mnist, mnist, spiral or an IDX directory "
                                     "(default: the run's)")
    p.add_argument("--data-dir", help="directory searched first for the dataset files")
    p.add_argument("--dtype", choices=("float32", "float64"),
                   help="compute dtype (default: the model's; float64 for book weights)")
    p.add_argument("--test-size", type=int, help="use only the first N test images")
    p.add_argument("--batch-size", type=int, default=500)
    p.add_argument("--out", help="where misclassified.png and eval.json go "
                                 "(default: next to the weights; . for book weights)")
    _add_backend_options(p)
    p.set_defaults(func=_guard(cmd_eval))

    p = subparsers.add_parser("data", help="where the datasets are, or download them",
                              description="Show where each dataset was found or how to get "
                                          "it; --download fetches it from the official "
                                          "location with checksum verification.")
    p.add_argument("--download", choices=("mnist", "fashion-mnist", "all"))
    p.add_argument("--dest", help="download directory (default ~/.cache/fastdl/<name>)")
    p.add_argument("--url", action="append", help="base URL to download from instead of the "
                                                  "official ones (repeatable)")
    p.set_defaults(func=_guard(cmd_data))
