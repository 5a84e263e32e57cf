"""Book chapter 6 (weight_init_compare.py, figure 6-15): std 0.01 vs Xavier vs He initialisation.

Three 784-100-100-100-100-10 ReLU networks, identical but for the initial weight std
(0.01, Xavier sqrt(1/n), He sqrt(2/n)), trained with SGD (lr 0.01, batches of 128) on the
same mini-batches; the figure shows each smoothed training loss.  With std 0.01 the loss
hardly moves (the signal vanishes through the layers); He learns fastest.
The book runs 2,000 iterations; --quick runs 60.
"""
from __future__ import annotations

import _common
from fastdl.models import MultiLayerNet
from fastdl.optimizers import SGD
from fastdl.plots import new_figure

INITS = {"std=0.01": 0.01, "Xavier": "sigmoid", "He": "relu"}



def main() -> None:
    p = _common.parser(__doc__, data=True)
    p.add_argument("--iters", type=int, default=None)
    args = p.parse_args()
    _common.setup(args)
    name, ((x, t), _) = _common.load_images(args)
    iters = args.iters or (60 if args.quick else 2000)
    nets = {k: MultiLayerNet(784, [100] * 4, 10, weight_init_std=v, seed=args.seed)
            for k, v in INITS.items()}
    optimizer = SGD(lr=0.01)
    runs = {k: (net, optimizer) for k, net in nets.items()}
    for i, losses in _common.train_side_by_side(runs, x, t, iters, batch=128, seed=args.seed):
        if i % max(iters // 5, 1) == 0 or i == iters - 1:
            print(f"iteration {i}: " + ", ".join(f"{k}:{v[-1]:.4f}" for k, v in losses.items()))
    fig = new_figure(7, 4.5)
    ax = fig.subplots()
    for (key, v), marker in zip(losses.items(), "osD"):
        ax.plot(_common.smooth(v, 11), marker=marker, markevery=max(iters // 20, 1), label=key)
    ax.set(xlabel="iterations", ylabel="loss (moving average)", ylim=(0, 2.5),
           title=f"weight initialisation, {name}, SGD lr 0.01")
    ax.legend()
    _common.write_figure(args, fig, "ch06_weight_init_compare.png")


if __name__ == "__main__":
    main()
