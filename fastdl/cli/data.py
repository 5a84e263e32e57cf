"""``fastdl data``, and the datasets of ``fastdl train``/``fastdl eval`` as arrays."""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np

from ._common import UsageError, guard


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


def load_arrays(dataset: str, data_dir: Optional[str], flatten: bool, splits=("train", "test")):
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
    arrays, shape, names = load_arrays(opts["dataset"], opts["data_dir"], flatten)
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


def register(subparsers) -> None:
    """Add ``fastdl data`` to ``fastdl``'s parser."""
    p = subparsers.add_parser("data", help="where the datasets are, or download them",
                              description="Show where each dataset was found or how to get "
                                          "it; --download fetches it from the official "
                                          "location with checksum verification.")
    p.add_argument("--download", choices=("mnist", "fashion-mnist", "all"))
    p.add_argument("--dest", help="download directory (default ~/.cache/fastdl/<name>)")
    p.add_argument("--url", action="append", help="base URL to download from instead of the "
                                                  "official ones (repeatable)")
    p.set_defaults(func=guard(cmd_data))
