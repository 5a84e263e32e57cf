"""Figures written straight to PNG files (matplotlib's Agg canvas; no pyplot, no display).

- :func:`learning_curve`: loss and accuracy per epoch from a training history.
- :func:`image_grid`: any stack of images with captions (misclassified examples, filters).
- :func:`misclassified_grid`: the book's chapter 8 figure of wrongly predicted images.
- :func:`filter_grid`: first-layer convolution filters (the book's figure 7-24).
"""
from __future__ import annotations

import os
from typing import Any, Mapping, Sequence, Union

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

PathLike = Union[str, "os.PathLike[str]"]


def new_figure(width: float, height: float) -> Figure:
    """A Figure (constrained layout) attached to an Agg canvas: no pyplot, no display."""
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save(fig: Figure, path: PathLike, dpi: int = 100) -> None:
    """Write ``fig`` as PNG to ``path``."""
    fig.savefig(os.fspath(path), dpi=dpi, bbox_inches="tight")


def learning_curve(history: Sequence[Mapping[str, Any]], path: PathLike,
                   title: str | None = None) -> None:
    """Plot per-epoch ``train_loss`` (and ``val_loss``) and every ``*_acc`` key present.

    ``history`` is a list of records such as ``{"epoch": 1, "train_loss": 0.4,
    "train_acc": 0.86, "val_acc": 0.85}``; missing keys are skipped.
    """
    fig = new_figure(10, 4)
    ax_loss, ax_acc = fig.subplots(1, 2)
    for key in ("train_loss", "val_loss"):
        pts = [(r["epoch"], r[key]) for r in history if r.get(key) is not None]
        if pts:
            ax_loss.plot(*zip(*pts), marker="o", label=key.replace("_", " "))
    found = {k for r in history for k in r if k.endswith("_acc")}
    acc_keys = [k for k in ("train_acc", "val_acc", "test_acc") if k in found]
    acc_keys += sorted(found - set(acc_keys))
    for key in acc_keys:
        pts = [(r["epoch"], r[key]) for r in history if r.get(key) is not None]
        if pts:
            ax_acc.plot(*zip(*pts), marker="o", label=key.replace("_", " "))
    ax_loss.set(xlabel="epoch", ylabel="loss", title="loss")
    ax_acc.set(xlabel="epoch", ylabel="accuracy", title="accuracy")
    for ax in (ax_loss, ax_acc):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if ax.get_legend_handles_labels()[0]:
            ax.legend()
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    save(fig, path)


def image_grid(images: np.ndarray, path: PathLike, captions: Sequence[str] | None = None,
               ncols: int = 10, cmap: str = "gray", title: str | None = None,
               caption_colors: Sequence[str] | None = None, symmetric: bool = False) -> None:
    """Save images (N, H, W) or (N, 1, H, W) as a grid with optional captions.

    Each image is scaled on its own; with ``symmetric`` the colour scale is centred on 0
    (for weights).
    """
    imgs = np.asarray(images)
    if imgs.ndim == 4 and imgs.shape[1] == 1:
        imgs = imgs[:, 0]
    if imgs.ndim != 3:
        raise ValueError(f"images must be (N, H, W) or (N, 1, H, W), got {np.shape(images)}")
    n = max(len(imgs), 1)
    ncols = max(1, min(ncols, n))
    nrows = -(-n // ncols)
    fig = new_figure(1.2 * ncols, 1.35 * nrows + (0.4 if title else 0))
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False)).ravel()
    for i, ax in enumerate(axes):
        ax.set_axis_off()
        if i >= len(imgs):
            continue
        img = imgs[i]
        if symmetric:
            m = float(np.abs(img).max()) or 1.0
            ax.imshow(img, cmap=cmap, vmin=-m, vmax=m, interpolation="nearest")
        else:
            ax.imshow(img, cmap=cmap, interpolation="nearest")
        if captions is not None:
            color = caption_colors[i] if caption_colors is not None else "black"
            ax.set_title(captions[i], fontsize=7, color=color)
    if title:
        fig.suptitle(title)
    save(fig, path)


def misclassified_grid(x: np.ndarray, t: np.ndarray, y: np.ndarray, path: PathLike,
                       class_names: Sequence[str] | None = None, max_images: int = 40,
                       ncols: int = 10) -> int:
    """Save the first ``max_images`` images with ``y != t`` captioned "pred / true".

    x : images (N, 784), (N, H, W) or (N, 1, H, W); t, y : (N,) integer labels.
    Returns the total number of misclassified images.
    """
    t = np.asarray(t)
    y = np.asarray(y)
    wrong = np.flatnonzero(y != t)
    idx = wrong[:max_images]
    imgs = np.asarray(x)[idx]
    if imgs.ndim == 2:
        side = int(round(np.sqrt(imgs.shape[1])))
        imgs = imgs.reshape(len(idx), side, side)

    def name(k: int) -> str:
        return class_names[k] if class_names is not None else str(k)

    captions = [f"{name(int(y[i]))}\n(true {name(int(t[i]))})" for i in idx]
    image_grid(imgs, path, captions, ncols=ncols, caption_colors=["red"] * len(idx),
               title=f"misclassified: {len(wrong)} of {len(t)} (showing {len(idx)})")
    return int(len(wrong))


def filter_grid(W: np.ndarray, path: PathLike, title: str | None = None, ncols: int = 10) -> None:
    """Save the first input channel of conv filters W (FN, C, FH, FW) as a grid."""
    W = np.asarray(W)
    if W.ndim != 4:
        raise ValueError(f"W must be (FN, C, FH, FW), got {W.shape}")
    image_grid(W[:, 0], path, ncols=ncols, cmap="gray_r", title=title, symmetric=True)
