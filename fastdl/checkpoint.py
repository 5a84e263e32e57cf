"""Safe, atomic training checkpoints.

File layout::

    b"FASTDLCK" | version (1 byte) | SHA-256 of the body (32 bytes) | body

The body is an uncompressed ``.npz`` archive (read with ``allow_pickle=False``) holding
``meta`` (UTF-8 JSON as uint8: model configuration, optimizer configuration and scalar
state, epoch, history, anything the trainer adds) and the arrays under ``model/<name>``
and ``optim/<name>``.

Writes are atomic: a temporary file in the destination directory is written, flushed,
fsync'ed and moved over the target with ``os.replace``, so a crash or Ctrl-C at any
moment leaves either the old or the new checkpoint, never a broken one. Loads verify
magic, version, length and checksum and refuse pickles, plain ``.npz`` files and
anything else with :class:`CheckpointError`.
"""
from __future__ import annotations

import copy
import hashlib
import io
import json
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Union

import numpy as np

from .io import atomic_write_bytes, read_npz

PathLike = Union[str, "os.PathLike[str]"]

MAGIC = b"FASTDLCK"
VERSION = 1
_HEADER = len(MAGIC) + 1 + 32


class CheckpointError(ValueError):
    """A checkpoint file is corrupt, truncated, of another format, or does not fit the model."""


@dataclass
class Checkpoint:
    """Contents of a checkpoint.

    meta : JSON-serialisable dict (model/optimizer configuration, epoch, history, ...).
    params : model parameters by name.
    optim : optimizer state arrays by name (flat keys, e.g. ``"m/W1"``).
    """

    meta: dict[str, Any]
    params: dict[str, np.ndarray]
    optim: dict[str, np.ndarray] = field(default_factory=dict)


def _encode(ckpt: Checkpoint) -> bytes:
    arrays: dict[str, np.ndarray] = {}
    for prefix, group in (("model/", ckpt.params), ("optim/", ckpt.optim)):
        for k, v in group.items():
            arrays[prefix + k] = np.asarray(v)
    meta = json.dumps(ckpt.meta, allow_nan=True, sort_keys=True).encode("utf-8")
    arrays["meta"] = np.frombuffer(meta, dtype=np.uint8)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    body = buf.getvalue()
    return MAGIC + bytes([VERSION]) + hashlib.sha256(body).digest() + body


def save_checkpoint(path: PathLike, ckpt: Checkpoint) -> None:
    """Serialise ``ckpt`` and write it atomically to ``path`` (see the module docstring)."""
    atomic_write_bytes(path, _encode(ckpt))


def load_checkpoint(path: PathLike) -> Checkpoint:
    """Read and verify a checkpoint. Never unpickles anything.

    Raises FileNotFoundError if absent and :class:`CheckpointError` naming the file when it
    is a pickle, a plain npz, truncated, corrupt (checksum), or of an unknown version.
    """
    path = Path(path)
    raw = path.read_bytes()
    if raw[:len(MAGIC)] != MAGIC:
        if raw[:1] == b"\x80" or raw[:1] in (b"(", b"}", b"]"):
            kind = "a Python pickle (refused: pickles can run arbitrary code)"
        elif raw[:2] == b"PK":
            kind = "a plain .npz/zip archive, not a fastdl checkpoint"
        elif not raw:
            kind = "empty"
        else:
            kind = "not a fastdl checkpoint (bad magic bytes)"
        raise CheckpointError(f"{path}: {kind}")
    if len(raw) < _HEADER:
        raise CheckpointError(f"{path}: truncated checkpoint header ({len(raw)} bytes)")
    if raw[len(MAGIC)] != VERSION:
        raise CheckpointError(f"{path}: unsupported checkpoint version {raw[len(MAGIC)]}, "
                              f"this fastdl reads version {VERSION}")
    digest, body = raw[len(MAGIC) + 1:_HEADER], raw[_HEADER:]
    if hashlib.sha256(body).digest() != digest:
        raise CheckpointError(f"{path}: checksum mismatch: the checkpoint is truncated or corrupt")
    try:
        # each array's header is checked against the bytes the body holds before anything is
        # allocated: a header claiming 64 GiB is a CheckpointError, not a MemoryError
        arrays = read_npz(io.BytesIO(body), path)
        meta = json.loads(arrays.pop("meta").tobytes().decode("utf-8"))
    except (ValueError, KeyError, OSError, zipfile.BadZipFile, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path}: unreadable checkpoint body ({exc})") from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"{path}: checkpoint metadata is not a JSON object")
    params = {k[6:]: v for k, v in arrays.items() if k.startswith("model/")}
    optim = {k[6:]: v for k, v in arrays.items() if k.startswith("optim/")}
    return Checkpoint(meta=meta, params=params, optim=optim)


def capture(model: Any, optimizer: Any | None, **meta: Any) -> Checkpoint:
    """A checkpoint of ``model`` (``name``, ``config()``, ``state_dict()``) and ``optimizer``
    (``state_dict()``: name, hyperparameters, iteration count, state slots), plus ``meta``
    (epoch, history, ... : JSON-serialisable)."""
    info: dict[str, Any] = {"model": {"name": model.name, "config": model.config()}}
    optim: dict[str, np.ndarray] = {}
    if optimizer is not None:
        st = optimizer.state_dict()
        info["optimizer"] = {k: v for k, v in st.items() if k != "slots"}
        for slot, arrays in st["slots"].items():
            for key, arr in arrays.items():
                optim[f"{slot}/{key}"] = arr
        info["optimizer"]["slot_names"] = sorted(st["slots"])
    info.update(meta)
    return Checkpoint(meta=info, params=model.state_dict(), optim=optim)


def optimizer_state(ckpt: Checkpoint) -> dict[str, Any]:
    """The ``optimizer.load_state_dict`` argument stored in ``ckpt``."""
    info = dict(ckpt.meta["optimizer"])
    slots: dict[str, dict[str, np.ndarray]] = {s: {} for s in info.pop("slot_names")}
    for flat, arr in ckpt.optim.items():
        slot, key = flat.split("/", 1)
        slots.setdefault(slot, {})[key] = arr
    info["slots"] = slots
    return info


def restore(ckpt: Checkpoint, model: Any, optimizer: Any | None = None,
            source: PathLike = "checkpoint") -> None:
    """Load ``ckpt`` into ``model`` (and ``optimizer``), all or nothing.

    Raises :class:`CheckpointError` when the model name, parameter names or shapes, or the
    optimizer differ -- an optimizer slot for a parameter the model does not have, or of
    another shape than its parameter, included; then neither object is changed.
    """
    info = ckpt.meta.get("model")
    if not isinstance(info, dict) or info.get("name") != model.name:
        got = info.get("name") if isinstance(info, dict) else None
        raise CheckpointError(f"{source}: checkpoint is of model {got!r}, not {model.name!r}")
    check_arrays(ckpt.params, model.state_dict(), "model parameter", source)
    if optimizer is not None:
        if "optimizer" not in ckpt.meta:
            raise CheckpointError(f"{source}: checkpoint holds no optimizer state")
        check_slots(ckpt.optim, model.params, source)
        try:
            trial = copy.deepcopy(optimizer)
            trial.load_state_dict(optimizer_state(ckpt))
        except (ValueError, KeyError, TypeError) as exc:
            raise CheckpointError(f"{source}: optimizer state does not fit: {exc}") from None
    try:
        model.load_state_dict(ckpt.params)
    except ValueError as exc:
        raise CheckpointError(f"{source}: {exc}") from None
    if optimizer is not None:
        optimizer.load_state_dict(optimizer_state(ckpt))


def check_arrays(found: Mapping[str, np.ndarray], expected: Mapping[str, np.ndarray],
                 what: str, source: PathLike) -> None:
    """Raise :class:`CheckpointError` unless ``found`` has exactly the keys of ``expected``
    with the same shapes (dtype is converted on assignment)."""
    missing = sorted(set(expected) - set(found))
    extra = sorted(set(found) - set(expected))
    if missing or extra:
        raise CheckpointError(f"{source}: {what} keys do not match (missing {missing}, "
                              f"unexpected {extra})")
    for k, v in expected.items():
        if found[k].shape != np.shape(v):
            raise CheckpointError(f"{source}: {what} {k!r} has shape {found[k].shape}, "
                                  f"expected {np.shape(v)}")


def check_slots(optim: Mapping[str, np.ndarray], params: Mapping[str, np.ndarray], source: PathLike) -> None:
    """Raise :class:`CheckpointError` unless every optimizer state array ``<slot>/<name>``
    belongs to a parameter ``name`` of the model and has that parameter's shape."""
    for flat in sorted(optim):
        slot, sep, key = flat.partition("/")
        if not sep:
            raise CheckpointError(f"{source}: optimizer state {flat!r} is not named <slot>/<parameter>")
        if key not in params:
            raise CheckpointError(f"{source}: optimizer slot {slot!r} holds state for {key!r}, which is not "
                                  f"a parameter of the model (parameters: {sorted(params)})")
        if np.shape(optim[flat]) != np.shape(params[key]):
            raise CheckpointError(f"{source}: optimizer slot {slot!r} for parameter {key!r} has shape "
                                  f"{np.shape(optim[flat])}, the parameter has {np.shape(params[key])}")
