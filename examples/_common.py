"""Helpers shared by the example scripts: arguments, data, output path."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np


def parser(description: str) -> argparse.ArgumentParser:
    """Common options: --quick (a small run, well under a minute), --out, --seed, --backend."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true", help="a small, fast run (for tests and CI)")
    p.add_argument("--out", type=Path, default=Path("."), help="directory for the figure")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--backend", default=None, help="kernel backend (numpy, numba, cpp)")
    p.add_argument("--threads", type=int, default=None, help="threads for kernels and BLAS")
    return p


def setup(args: argparse.Namespace) -> None:
    """Activate the backend and thread count; create the output directory."""
    import fastdl

    if args.backend:
        fastdl.set_backend(args.backend)
    if args.threads:
        fastdl.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)


def load_images(flatten: bool = True, dataset: str = "auto"):
    """Fashion-MNIST if it is installed, else MNIST (both via fastdl.datasets).

    Exits with the loader's explanation (where it looked, how to get the files) when
    neither is available.
    """
    from fastdl import datasets

    names = ["fashion-mnist", "mnist"] if dataset == "auto" else [dataset]
    errors = []
    for name in names:
        loader = datasets.load_fashion_mnist if name == "fashion-mnist" else datasets.load_mnist
        try:
            return name, loader(flatten=flatten)
        except FileNotFoundError as exc:
            errors.append(str(exc))
    sys.exit("no image data found:\n" + "\n".join(errors))


def subset(x: np.ndarray, t: np.ndarray, n: int, seed: int = 0):
    """A random subset of ``n`` samples (all of them if ``n >= len(x)``)."""
    if n >= len(x):
        return x, t
    idx = np.random.default_rng(seed).choice(len(x), n, replace=False)
    return x[idx], t[idx]


def saved(path: Path) -> None:
    print(f"wrote {path}")
