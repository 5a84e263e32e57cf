"""Book figure 6-19: training with and without batch normalisation across weight scales.

For each initial weight std, a 784-(100 x 5)-10 network is trained with SGD (lr 0.01) on
1,000 images, once with batch normalisation and once without; each panel shows the
training accuracy per epoch. Batch norm learns fast at every scale.
"""
from __future__ import annotations

import numpy as np

import _common
from fastdl.models import MultiLayerNetExtend
from fastdl.optimizers import SGD
from fastdl.plots import new_figure
from fastdl.trainer import Trainer


def train(x, t, std: float, batchnorm: bool, epochs: int, seed: int) -> list[float]:
    net = MultiLayerNetExtend(784, [100] * 5, 10, weight_init_std=std, use_batchnorm=batchnorm,
                              seed=seed)
    trainer = Trainer(net, x, t, x[:0], t[:0], epochs=epochs, mini_batch_size=100,
                      optimizer=SGD(lr=0.01), verbose=False, seed=seed)
    with np.errstate(over="ignore", invalid="ignore"):  # std 1 without BN diverges, as in the book
        trainer.train()
    return trainer.train_acc_list


def main() -> None:
    args = _common.parser(__doc__, data=True).parse_args()
    _common.setup(args)
    name, ((x, t), _) = _common.load_images(args)
    n, epochs = (500, 4) if args.quick else (1000, 20)
    scales = np.logspace(0, -4, 3 if args.quick else 16)
    x, t = _common.subset(x, t, n, args.seed)
    cols = 4
    rows = -(-len(scales) // cols)
    fig = new_figure(3.2 * cols, 2.6 * rows)
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, std in zip(axes, scales):
        bn = train(x, t, float(std), True, epochs, args.seed)
        plain = train(x, t, float(std), False, epochs, args.seed)
        ax.plot(range(1, epochs + 1), bn, label="batch norm")
        ax.plot(range(1, epochs + 1), plain, "--", label="no batch norm")
        ax.set(title=f"W std {std:.2g}", ylim=(0, 1), xlabel="epoch")
        print(f"std {std:8.2g}: train acc with BN {bn[-1]:.3f}, without {plain[-1]:.3f}")
    for ax in axes[len(scales):]:
        ax.set_axis_off()
    axes[0].set_ylabel("training accuracy")
    axes[0].legend(fontsize=8)
    fig.suptitle(f"batch normalisation on {n} {name} images")
    _common.write_figure(args, fig, "ch06_batch_norm_test.png")


if __name__ == "__main__":
    main()
