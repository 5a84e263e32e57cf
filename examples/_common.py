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


def write_figure(args: argparse.Namespace, fig, filename: str) -> Path:
    """Write ``fig`` as PNG to ``--out``/``filename`` and say so; returns the path."""
    from fastdl.plots import save

    out = args.out / filename
    save(fig, out)
    saved(out)
    return out


def smooth(y, k: int) -> np.ndarray:
    """Moving average of ``y`` over ``k`` points (``y`` itself when it is shorter)."""
    y = np.asarray(y)
    return y if len(y) < k else np.convolve(y, np.ones(k) / k, mode="valid")


def train_side_by_side(runs: dict, x: np.ndarray, t: np.ndarray, iters: int, batch: int,
                       seed: int, replace: bool = True):
    """The book's ch. 6 comparisons: ``runs`` maps a name to ``(net, optimizer)``; every
    iteration draws one mini-batch of ``batch`` training images (with or without
    ``replace``ment) and takes one step of every net on it.  Yields ``(i, losses)`` after
    iteration ``i`` (from 0), ``losses`` mapping each name to its list of losses so far."""
    losses: dict[str, list[float]] = {k: [] for k in runs}
    rng = np.random.default_rng(seed)
    for i in range(iters):
        idx = rng.choice(len(x), batch, replace=replace)
        for key, (net, optimizer) in runs.items():
            loss, grads = net.loss_and_gradient(x[idx], t[idx])
            optimizer.update(net.params, grads)
            losses[key].append(loss)
        yield i, losses


def convnet_training(description: str, epochs: int, quick_epochs: int, quick_train: int,
                     quick_test: int):
    """The start of the book's ch. 7-8 training scripts: the options (also --epochs), the
    backend, the images as (N, 1, 28, 28); --quick keeps ``quick_train`` random training
    images and the first ``quick_test`` test images.  Returns ``args`` (``args.epochs``
    set), the dataset's name and ``(x_train, t_train, x_test, t_test)``."""
    p = parser(description, data=True)
    p.add_argument("--epochs", type=int, default=None)
    args = p.parse_args()
    setup(args)
    name, ((x, t), (xt, tt)) = load_images(args, flatten=False)
    args.epochs = args.epochs or (quick_epochs if args.quick else epochs)
    if args.quick:
        x, t = subset(x, t, quick_train, args.seed)
        xt, tt = xt[:quick_test], tt[:quick_test]
    return args, name, (x, t, xt, tt)


def adam_trainer(args: argparse.Namespace, net, data):
    """The book's ch. 7-8 Trainer for ``net`` on ``data`` (as :func:`convnet_training` gives it):
    Adam (lr 0.001), batches of 100, ``args.epochs`` epochs, accuracy on (up to) 1,000 images
    per epoch."""
    from fastdl.trainer import Trainer

    return Trainer(net, *data, epochs=args.epochs, mini_batch_size=100, optimizer="Adam",
                   optimizer_param={"lr": 0.001}, evaluate_sample_num_per_epoch=min(1000, len(data[0])),
                   verbose=False, seed=args.seed)


def report_training(args: argparse.Namespace, net, trainer, test_acc: float, params_file: str,
                    figure_file: str, title: str, markevery: int | None = None) -> None:
    """The end of the book's ch. 7-8 training scripts: the accuracies of every epoch and the
    final one, the weights saved (``save_params``) and the accuracy curves plotted."""
    from fastdl.plots import new_figure

    for e, (a, b) in enumerate(zip(trainer.train_acc_list, trainer.test_acc_list), start=1):
        print(f"=== epoch:{e}, train acc:{a:.4f}, test acc:{b:.4f} ===")
    print(f"=============== Final Test Accuracy ===============\ntest acc:{test_acc:.4f}")
    params = args.out / params_file
    net.save_params(params)
    print(f"Saved Network Parameters! ({params})")
    fig = new_figure(6, 4)
    ax = fig.subplots()
    ep = np.arange(1, args.epochs + 1)
    ax.plot(ep, trainer.train_acc_list, marker="o", label="train", markevery=markevery)
    ax.plot(ep, trainer.test_acc_list, marker="s", label="test", markevery=markevery)
    ax.set(xlabel="epochs", ylabel="accuracy", ylim=(0, 1.0), title=title)
    ax.legend(loc="lower right")
    write_figure(args, fig, figure_file)


def overfitting_figure(args: argparse.Namespace, runs, epochs: int, filename: str) -> None:
    """The book's overfitting setup, once per entry of ``runs``, as side-by-side learning curves.

    ``runs`` is a list of ``(title, make_net)``; each network is trained with SGD (lr 0.01,
    batch 100) on only 300 training images and evaluated on the test set every epoch.
    """
    from fastdl.plots import new_figure
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
    write_figure(args, fig, filename)


def add_weights_option(p: argparse.ArgumentParser, filename: str) -> argparse.ArgumentParser:
    """--weights: one of the book's pretrained weight files (``filename``)."""
    p.add_argument("--weights", type=Path, default=None,
                   help=f"the book's {filename} (default: $FASTDL_TEST_DATA/book/{filename}, "
                        f"./{filename}, ~/.cache/fastdl/book/{filename})")
    return p


def setup_with_weights(args: argparse.Namespace, filename: str, dataset: str = "mnist") -> Path:
    """:func:`setup`, then the book's weight file ``filename`` (trained on ``dataset``):
    exits when ``--dataset`` asks for another dataset or the file is not found."""
    setup(args)
    check_dataset(args, dataset)
    return find_weights(args, filename)


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
