"""``fastdl train``: train one of the book's networks, checkpointing as it goes.

``fastdl train`` writes into ``--out``: ``checkpoint.ckpt`` (after every epoch and on
Ctrl-C; see :mod:`fastdl.checkpoint`), ``history.json``, ``learning_curve.png``,
``weights.npz`` and ``model.json`` (the model's name and configuration, so that
``fastdl eval`` can rebuild it). ``--resume`` continues the run in ``--out`` exactly
where it stopped, mid-epoch included: each epoch's batch order is a function of the seed
and the epoch number, and the optimizer state is restored.
"""
from __future__ import annotations

import argparse
import math
import signal
import sys
import time
from pathlib import Path
from typing import Any, Optional

import numpy as np

from ..models import MODELS, build_model
from ..optimizers import _OPTIMIZERS
from . import runs
from ._common import CHECKPOINT, UsageError, add_backend_options, guard, setup_backend
from .data import Data, load_data
from .evaluate import evaluate

# multi_layer_extend is multi_layer with --dropout or --batchnorm
MODEL_NAMES = tuple(name for name in MODELS if name != "multi_layer_extend")
OPTIMIZER_NAMES = tuple(_OPTIMIZERS)

# Options that define a run, with their defaults; on --resume they come from the
# checkpoint and may only be repeated with the same value.
_RUN_OPTIONS: dict[str, Any] = {
    "model": "simple_convnet", "dataset": "fashion-mnist", "data_dir": None,
    "batch_size": 100, "optimizer": "adam", "lr": 0.001, "lr_decay": 1.0, "weight_decay": 0.0,
    "dropout": None, "batchnorm": False, "seed": 0, "val_split": 0.0, "train_size": None,
    "test_size": None, "hidden": None, "dtype": "float32", "weight_init": "he",
}

__all__ = ["MODEL_NAMES", "OPTIMIZER_NAMES", "UsageError", "build", "fit", "cmd_train", "register"]


# ----------------------------------------------------------------------------- model

def _flat_input(model_name: str) -> bool:
    return model_name in ("two_layer", "multi_layer")


def _check_model_options(opts: dict[str, Any], input_shape: tuple[int, ...]):
    """Refuse options that do not fit the model; returns the weight init (name or std)."""
    name, hidden = opts["model"], opts["hidden"]
    if name not in MODEL_NAMES:
        raise UsageError(f"unknown --model {name!r}; expected one of {MODEL_NAMES}")
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
    return init


def build(opts: dict[str, Any], input_shape: tuple[int, ...], n_classes: int):
    """The model of a run, from its options (see ``fastdl train --help``), by
    :func:`fastdl.models.build_model`."""
    init = _check_model_options(opts, input_shape)
    name, hidden = opts["model"], opts["hidden"]
    cfg: dict[str, Any] = dict(output_size=n_classes, dtype=opts["dtype"], seed=opts["seed"])
    if name == "two_layer":
        cfg.update(input_size=input_shape[0], hidden_size=hidden[0] if hidden else 50,
                   weight_init_std=init)
    elif name == "multi_layer":
        cfg.update(input_size=input_shape[0], hidden_size_list=hidden or [100, 100, 100],
                   weight_decay_lambda=opts["weight_decay"], weight_init_std=init)
        if opts["dropout"] or opts["batchnorm"]:
            name = "multi_layer_extend"
            cfg.update(use_dropout=bool(opts["dropout"]), dropout_ration=opts["dropout"] or 0.5,
                       use_batchnorm=opts["batchnorm"])
    elif name == "simple_convnet":
        cfg.update(input_dim=input_shape, hidden_size=hidden[0] if hidden else 100,
                   weight_init_std=init)
    else:  # deep_convnet
        cfg.update(input_dim=input_shape, hidden_size=hidden[0] if hidden else 50,
                   dropout_ratio=0.5 if opts["dropout"] is None else opts["dropout"])
    model = build_model(name, **cfg)
    if opts["model"] != "multi_layer":  # the others take weight decay as an attribute
        model.weight_decay_lambda = float(opts["weight_decay"])
    return model


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


def fit(model, optimizer, data: Data, state: dict[str, Any], epochs: int, out: Path) -> bool:
    """Train with :class:`fastdl.trainer.Trainer` (and its progress display) until ``epochs``
    epochs are complete, checkpointing after each; returns False when stopped by a signal
    (after saving).

    ``state`` (updated in place, stored in every checkpoint): ``epoch`` (completed),
    ``step`` (batches done in the current epoch), ``partial`` (that epoch's batch losses
    and seconds so far), ``history`` (one record per completed epoch), ``options``.
    Under MPI (``mpirun -n N``) every rank trains its share of each batch; rank 0 alone
    evaluates the validation split, prints and writes the (atomic) checkpoints.
    """
    from ..distributed import rank as _rank
    from ..trainer import Trainer

    rank = _rank()
    opts = state["options"]
    part = state["partial"]
    clock = [time.perf_counter()]

    def on_event(trainer: Trainer, rec: dict) -> None:
        if stop.requested:
            trainer.request_stop()
        if rec["event"] == "iteration":
            loss = rec["loss"]
            if not math.isfinite(loss):
                raise FloatingPointError(
                    f"loss became {loss} at epoch {rec['epoch']}, iteration {rec['iteration']}; "
                    f"lower --lr (the last checkpoint in {out} is from before)")
            part["losses"].append(loss)
            return
        record = {"epoch": rec["epoch"], "lr": optimizer.lr,
                  "train_loss": float(np.mean(part["losses"])), "train_acc": rec["train_acc"]}
        if data.x_val is not None and rank == 0:
            record["val_loss"], record["val_acc"], _ = evaluate(model, data.x_val, data.t_val)
        record["test_acc"] = rec["test_acc"]
        record["seconds"] = round(part["seconds"] + time.perf_counter() - clock[0], 3)
        state["history"].append(record)
        state["epoch"], state["step"] = rec["epoch"], 0
        part["losses"], part["seconds"] = [], 0.0
        if rank == 0:
            runs.save(out, model, optimizer, state)
            print(runs.summary(record, epochs), flush=True)
        optimizer.lr = opts["lr"] * opts["lr_decay"] ** rec["epoch"]  # the next epoch's
        clock[0] = time.perf_counter()

    with _StopOnInterrupt() as stop:
        trainer = Trainer(model, data.x_train, data.t_train, data.x_test, data.t_test,
                          epochs=epochs, mini_batch_size=opts["batch_size"], optimizer=optimizer,
                          evaluate_sample_num_per_epoch=len(data.x_test), verbose=False,
                          seed=opts["seed"], callbacks=[on_event], start_epoch=state["epoch"],
                          start_iteration=state["step"], progress=True)
        optimizer.lr = opts["lr"] * opts["lr_decay"] ** trainer.current_epoch
        clock[0] = time.perf_counter()
        trainer.train()
    if trainer.current_epoch >= epochs:
        return True
    step = trainer.current_iter - trainer.current_epoch * trainer.iter_per_epoch
    if step:  # stopped mid-epoch: save the position inside it
        state["step"] = step
        part["seconds"] += time.perf_counter() - clock[0]
        if rank == 0:
            runs.save(out, model, optimizer, state)
    return False


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


def _say(text: str) -> None:
    """Print on rank 0 only (every line of ``fastdl train`` goes through here)."""
    from .. import distributed

    if distributed.rank() == 0:
        print(text, flush=True)


def _open_run(args: argparse.Namespace):
    """(out, checkpoint path, checkpoint or None) of the run that --out and --resume name."""
    from ..checkpoint import load_checkpoint

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
    return out, ckpt_path, ckpt


def _check_options(opts: dict[str, Any], world_size: int) -> None:
    if opts["batch_size"] < 1:
        raise UsageError(f"--batch-size must be >= 1, got {opts['batch_size']}")
    if opts["batch_size"] % world_size:
        raise UsageError(f"--batch-size {opts['batch_size']} is the global batch and must be "
                         f"divisible by the {world_size} MPI ranks")
    if not 0 < opts["lr_decay"] <= 1:
        raise UsageError(f"--lr-decay must be in (0, 1], got {opts['lr_decay']}")
    if not 0 <= opts["val_split"] < 1:
        raise UsageError(f"--val-split must be in [0, 1), got {opts['val_split']}")


def cmd_train(args: argparse.Namespace) -> int:
    import fastdl
    from .. import distributed
    from ..checkpoint import restore
    from ..optimizers import get_optimizer

    out, ckpt_path, ckpt = _open_run(args)
    setup_backend(args, *((ckpt.meta.get("backend"), ckpt.meta.get("threads")) if ckpt
                           else (None, None)))
    opts = _run_options(args, ckpt.meta["options"] if ckpt else None)
    world = distributed.world_size()
    _check_options(opts, world)
    data = load_data(opts, flatten=_flat_input(opts["model"]))
    model = build(opts, data.input_shape, data.n_classes)
    optimizer = get_optimizer(opts["optimizer"], lr=opts["lr"])
    state: dict[str, Any] = {
        "format": "fastdl-train", "options": opts, "epoch": 0, "step": 0,
        "partial": {"losses": [], "seconds": 0.0}, "history": []}
    if ckpt is not None:
        restore(ckpt, model, optimizer, ckpt_path)
        state.update({k: ckpt.meta[k] for k in ("epoch", "step", "partial", "history")})
        _say(f"resuming {out} at epoch {state['epoch']} batch {state['step']}")
    state["backend"] = fastdl.get_backend()
    state["threads"] = fastdl.get_num_threads()
    state["world_size"] = world
    epochs = args.epochs
    if epochs < state["epoch"] or epochs < 1:
        raise UsageError(f"--epochs {epochs}: the run has already completed {state['epoch']}")
    if distributed.rank() == 0:
        out.mkdir(parents=True, exist_ok=True)
    _say(f"training {model.name} on {data.name}: {len(data.x_train)} train, "
         f"{0 if data.x_val is None else len(data.x_val)} val, {len(data.x_test)} test; "
         f"{opts['optimizer']} lr {opts['lr']}"
         f"{'' if opts['lr_decay'] == 1 else ' x ' + str(opts['lr_decay']) + '/epoch'}, "
         f"batch {opts['batch_size']}, backend {state['backend']}, {state['threads']} threads"
         + (f", {world} MPI ranks (batch {opts['batch_size'] // world} each)" if world > 1 else ""))
    finished = fit(model, optimizer, data, state, epochs, out)
    return _finish(out, model, state, finished, epochs)


def _finish(out: Path, model, state: dict[str, Any], finished: bool, epochs: int) -> int:
    """Write the results (rank 0), say how the run ended; the exit status."""
    from .. import distributed

    test_acc = state["history"][-1]["test_acc"] if finished and state["history"] else None
    if distributed.rank() == 0:
        runs.write_results(out, model, state, test_acc)
    if not finished:
        _say(f"stopped at epoch {state['epoch']} batch {state['step']}; checkpoint saved in "
             f"{out / CHECKPOINT}; continue with: fastdl train --out {out} --resume "
             f"--epochs {epochs}")
        return 130
    total = sum(r["seconds"] for r in state["history"])
    if test_acc is not None:
        _say(f"done: test accuracy {test_acc:.4f} after {state['epoch']} epochs "
             f"({total:.1f} s training); results in {out}")
    return 0


def register(subparsers) -> None:
    """Add ``fastdl train`` to ``fastdl``'s parser."""
    p = subparsers.add_parser(
        "train", help="train a network; checkpoints, history.json, learning curve, weights",
        description="Train one of the book's networks. Results go to --out. Started "
                    "under `mpirun -n N` (pip install \"fastdl[mpi]\"), it trains "
                    "data-parallel on N processes with the same results as one process "
                    "(batch normalisation: per-process statistics); --resume works on any "
                    "N that divides --batch-size.")
    p.add_argument("--model", choices=MODEL_NAMES, help="default simple_convnet")
    p.add_argument("--dataset", help="fashion-mnist (default), mnist, spiral, or a directory "
                                     "of IDX files")
    p.add_argument("--data-dir", help="directory searched first for the dataset files")
    p.add_argument("--epochs", type=int, default=10, help="total epochs (default 10)")
    p.add_argument("--batch-size", type=int, help="global mini-batch (default 100); under "
                   "`mpirun -n N` each of the N ranks takes batch/N of it, so N must divide it")
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
    add_backend_options(p)
    p.set_defaults(func=guard(cmd_train))
