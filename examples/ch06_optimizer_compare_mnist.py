"""Book figure 6-9: SGD, Momentum, AdaGrad and Adam training the same 5-layer network.

A 784-100-100-100-100-10 ReLU network (He initialisation) on --dataset (MNIST or Fashion-MNIST),
mini-batches of 128; the figure shows the smoothed training loss per iteration.
"""
from __future__ import annotations

import _common
from fastdl.models import MultiLayerNet
from fastdl.optimizers import SGD, AdaGrad, Adam, Momentum
from fastdl.plots import new_figure



def main() -> None:
    args = _common.parser(__doc__, data=True).parse_args()
    _common.setup(args)
    name, ((x, t), _) = _common.load_images(args)
    iterations = 60 if args.quick else 2000
    batch = 128
    optimizers = {"SGD": SGD(), "Momentum": Momentum(), "AdaGrad": AdaGrad(), "Adam": Adam()}
    runs = {k: (MultiLayerNet(784, [100] * 4, 10, seed=args.seed), opt) for k, opt in optimizers.items()}
    for i, losses in _common.train_side_by_side(runs, x, t, iterations, batch, args.seed, replace=False):
        if (i + 1) % max(iterations // 5, 1) == 0:
            print(f"iteration {i + 1}: " + ", ".join(f"{k} {v[-1]:.3f}" for k, v in losses.items()))
    fig = new_figure(8, 5)
    ax = fig.subplots()
    for key, v in losses.items():
        ax.plot(_common.smooth(v, 10), label=key)
    ax.set(xlabel="iteration", ylabel="training loss (moving average of 10)", ylim=(0, 1.5),
           title=f"optimizers on {name}, batch {batch}")
    ax.legend()
    _common.write_figure(args, fig, "ch06_optimizer_compare_mnist.png")


if __name__ == "__main__":
    main()
