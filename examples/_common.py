"""Helpers shared by the example scripts: arguments, data, output path."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np


def parser(description: str, data: bool = False) -> argparse.ArgumentParser:
    """Common options: --quick (a small run, seconds), --out, --seed, --backend, --threads;
    with ``data`` also --dataset and --data-dir."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true", help="a small, fast run (for tests and CI)")
    p.add_argument("--out", type=Path, default=Path("."), help="directory for the figure")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--backend", choices=["numpy", "numba", "cpp"], default=None,
                   help="kernel backend (default: fastdl's default, $FASTDL_BACKEND)")
    p.add_argument("--threads", type=int, default=None, help="threads for kernels and BLAS")
    return add_data_options(p) if data else p


def setup(args: argparse.Namespace) -> None:
    """Activate the backend and thread count; create the output directory."""
    import fastdl

    if args.backend:
        fastdl.set_backend(args.backend)
    if args.threads:
        fastdl.set_num_threads(args.threads)
    print(f"backend: {fastdl.get_backend()}")
    args.out.mkdir(parents=True, exist_ok=True)


def add_data_options(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """--dataset and --data-dir, for examples that load images."""
    p.add_argument("--dataset", choices=["auto", "mnist", "fashion-mnist"], default="auto",
                   help="image data: mnist, fashion-mnist, or auto (MNIST if its files are "
                        "found, else Fashion-MNIST)")
    p.add_argument("--data-dir", type=Path, default=None,
                   help="directory searched first for the dataset's IDX files")
    return p


def _candidates(args: argparse.Namespace, splits=("train", "test")) -> list[str]:
    from fastdl import datasets

    if args.dataset != "auto":
        return [args.dataset]
    names = []
    for name in ("mnist", "fashion-mnist"):
        try:
            datasets.find_dataset(name, args.data_dir, splits=splits)
            names.append(name)
        except FileNotFoundError:
            pass
    return names or ["mnist", "fashion-mnist"]


def load_images(args: argparse.Namespace, flatten: bool = True):
    """``name, ((x_train, t_train), (x_test, t_test))`` of ``args.dataset`` (fastdl.datasets).

    With ``--dataset auto``: MNIST when its files are found, else Fashion-MNIST.
    Exits with the loader's explanation (where it looked, how to get the files) when
    the data is not available.
    """
    from fastdl import datasets

    errors = []
    for name in _candidates(args):
        loader = datasets.load_fashion_mnist if name == "fashion-mnist" else datasets.load_mnist
        try:
            data = loader(flatten=flatten, path=args.data_dir)
            print(f"data: {name}")
            return name, data
        except FileNotFoundError as exc:
            errors.append(str(exc))
    sys.exit("no image data found (choose with --dataset / --data-dir):\n" + "\n".join(errors))


def check_dataset(args: argparse.Namespace, dataset: str) -> None:
    """Exit, saying why, when ``--dataset`` asks for another dataset than ``dataset``."""
    if args.dataset not in ("auto", dataset):
        sys.exit(f"--dataset {args.dataset}: this example evaluates the book's weights, which were "
                 f"trained on {dataset}, so it runs on {dataset} only")


def load_test_images(args: argparse.Namespace, flatten: bool = True, dataset: str | None = None):
    """``name, (x_test, t_test)``: only the test split (e.g. to evaluate the book's weights).

    ``dataset`` fixes the dataset (the book's weights were trained on MNIST); a different
    ``--dataset`` then exits with that explanation instead of being ignored.
    """
    from fastdl import datasets

    if dataset:
        check_dataset(args, dataset)
    names = [dataset] if dataset else _candidates(args, splits=("test",))
    errors = []
    for name in names:
        try:
            data = datasets.load_split(name, "test", flatten=flatten, path=args.data_dir)
            print(f"data: {name} test set")
            return name, data
        except FileNotFoundError as exc:
            errors.append(str(exc))
    sys.exit("no test images found (give --data-dir):\n" + "\n".join(errors))


def subset(x: np.ndarray, t: np.ndarray, n: int, seed: int = 0):
    """A random subset of ``n`` samples (all of them if ``n >= len(x)``)."""
    if n >= len(x):
        return x, t
    idx = np.random.default_rng(seed).choice(len(x), n, replace=False)
    return x[idx], t[idx]


def saved(path: Path) -> None:
    print(f"wrote {path}")


def overfitting_figure(args: argparse.Namespace, runs, epochs: int, filename: str) -> None:
    """The book's overfitting setup, once per entry of ``runs``, as side-by-side learning curves.

    ``runs`` is a list of ``(title, make_net)``; each network is trained with SGD (lr 0.01,
    batch 100) on only 300 training images and evaluated on the test set every epoch.
    """
    from fastdl.plots import new_figure, save
    from fastdl.trainer import Trainer

    name, ((x, t), (xt, tt)) = load_images(args)
    x, t = x[:300], t[:300]
    n_test = 500 if args.quick else 10000
    xt, tt = xt[:n_test], tt[:n_test]
    fig = new_figure(5 * len(runs), 4)
    for ax, (title, make_net) in zip(fig.subplots(1, len(runs), sharey=True), runs):
        trainer = Trainer(make_net(), x, t, xt, tt, epochs=epochs, mini_batch_size=100,
                          optimizer="sgd", optimizer_param={"lr": 0.01}, verbose=False, seed=args.seed)
        trainer.train()
        train_acc, test_acc = trainer.train_acc_list, trainer.test_acc_list
        ax.plot(range(1, epochs + 1), train_acc, label="train")
        ax.plot(range(1, epochs + 1), test_acc, label="test")
        ax.set(xlabel="epoch", ylabel="accuracy", ylim=(0, 1), title=title)
        ax.legend(loc="lower right")
        print(f"{title}: train acc {train_acc[-1]:.3f}, test acc {test_acc[-1]:.3f}, "
              f"gap {train_acc[-1] - test_acc[-1]:.3f}")
    fig.suptitle(f"overfitting on 300 {name} images")
    out = args.out / filename
    save(fig, out)
    saved(out)


def add_weights_option(p: argparse.ArgumentParser, filename: str) -> argparse.ArgumentParser:
    """--weights: one of the book's pretrained weight files (``filename``)."""
    p.add_argument("--weights", type=Path, default=None,
                   help=f"the book's {filename} (default: $FASTDL_TEST_DATA/book/{filename}, "
                        f"./{filename}, ~/.cache/fastdl/book/{filename})")
    return p


def find_weights(args: argparse.Namespace, filename: str, required: bool = True) -> Path | None:
    """The book's weight file: --weights, else the usual places; exits (or None) if absent."""
    import os

    places = [args.weights] if args.weights else []
    if os.environ.get("FASTDL_TEST_DATA"):
        places.append(Path(os.environ["FASTDL_TEST_DATA"]) / "book" / filename)
    places += [Path(filename), Path.home() / ".cache" / "fastdl" / "book" / filename]
    for p in places:
        if p.is_file():
            print(f"weights: {p}")
            return p
    if not required:
        return None
    sys.exit(f"the book's {filename} was not found (looked in: {', '.join(map(str, places))}).\n"
             "It is published with the book's code (github.com/oreilly-japan/deep-learning-from-scratch); "
             "pass it with --weights.")
