"""``fastdl eval``: accuracy, per-class accuracy, confusion matrix, misclassified images."""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from ._common import CHECKPOINT, UsageError, add_backend_options, guard, setup_backend
from .data import load_arrays


def evaluate(model, x: np.ndarray, t: np.ndarray, batch_size: int = 500):
    """Mean loss (without weight decay), accuracy and predicted labels (N,) int64.

    One forward pass gives all three; :meth:`fastdl.models.Model.accuracy` gives the
    accuracy alone, and ``fastdl eval`` and the validation split need the loss and the
    predictions too.
    """
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

    setup_backend(args)
    model, source, default_out, run_dataset = _load_for_eval(args)
    dataset = args.dataset or run_dataset
    if dataset is None:
        raise UsageError("--dataset is required for this weight file")
    # flat images suit every model: the convnets reshape (N, C*H*W) to their input shape
    arrays, _, names = load_arrays(dataset, args.data_dir, True, splits=("test",))
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


def register(subparsers) -> None:
    """Add ``fastdl eval`` to ``fastdl``'s parser."""
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
    add_backend_options(p)
    p.set_defaults(func=guard(cmd_eval))
