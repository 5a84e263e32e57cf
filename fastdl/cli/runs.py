"""The files of a ``fastdl train`` run: checkpoint, history.json, model.json, weights, plot."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

from ._common import CHECKPOINT


def save(out: Path, model, optimizer, state: dict[str, Any]) -> None:
    """Replace ``out/checkpoint.ckpt`` atomically with the model, optimizer and ``state``."""
    from ..checkpoint import capture, save_checkpoint

    save_checkpoint(out / CHECKPOINT, capture(model, optimizer, **state))


def write_results(out: Path, model, state: dict[str, Any], test_acc: Optional[float]) -> None:
    """history.json, model.json, weights.npz and learning_curve.png (each written atomically)."""
    from .. import plots
    from ..io import atomic_write_bytes

    hist = state["history"]
    doc = {"model": model.name, "model_config": model.config(), "options": state["options"],
           "backend": state["backend"], "threads": state["threads"],
           "epochs_completed": state["epoch"], "history": hist, "test_acc": test_acc,
           "seconds": round(sum(r["seconds"] for r in hist), 3)}
    if "world_size" in state:
        doc["world_size"] = state["world_size"]
    atomic_write_bytes(out / "history.json", json.dumps(doc, indent=2).encode())
    atomic_write_bytes(out / "model.json",
                       json.dumps({"name": model.name, "config": model.config()}, indent=2).encode())
    model.save_params(out / "weights.npz")
    if hist:
        plots.learning_curve(hist, out / "learning_curve.png",
                             title=f"{model.name} on {state['options']['dataset']}")


def summary(r: dict[str, Any], epochs: int) -> str:
    """One line per completed epoch, as ``fastdl train`` prints it."""
    s = f"epoch {r['epoch']}/{epochs}: train loss {r['train_loss']:.4f} acc {r['train_acc']:.4f}"
    if "val_acc" in r:
        s += f" | val loss {r['val_loss']:.4f} acc {r['val_acc']:.4f}"
    return s + f" | test acc {r['test_acc']:.4f} | {r['seconds']:.1f} s"
