"""Book chapter 5 (train_neuralnet.py; ch04 train_neuralnet.py with backprop): TwoLayerNet by SGD.

784-50-10, mini-batches of 100, lr 0.1, gradients by backprop, the book's plain loop
``params[key] -= lr * grad[key]``; train and test accuracy once per epoch (figure 4-12).
The book runs 10,000 iterations; --quick runs 300 on 6,000 images.
"""
from __future__ import annotations

import numpy as np

import _common
from fastdl.models import TwoLayerNet
from fastdl.plots import new_figure


def main() -> None:
    p = _common.parser(__doc__, data=True)
    p.add_argument("--iters", type=int, default=None)
    args = p.parse_args()
    _common.setup(args)
    name, ((x, t), (xt, tt)) = _common.load_images(args)
    if args.quick:
        x, t = _common.subset(x, t, 6000, args.seed)
        xt, tt = xt[:1000], tt[:1000]
    iters = args.iters or (300 if args.quick else 10000)
    batch, lr = 100, 0.1
    net = TwoLayerNet(784, 50, 10, seed=args.seed)
    rng = np.random.default_rng(args.seed)
    per_epoch = max(len(x) // batch, 1)
    losses, train_acc, test_acc = [], [], []
    for i in range(iters):
        idx = rng.choice(len(x), batch)
        loss, grad = net.loss_and_gradient(x[idx], t[idx])
        for key in ("W1", "b1", "W2", "b2"):
            net.params[key] -= lr * grad[key]
        losses.append(loss)
        if i % per_epoch == 0:
            train_acc.append(net.accuracy(x, t))
            test_acc.append(net.accuracy(xt, tt))
            print(f"train acc, test acc | {train_acc[-1]:.4f}, {test_acc[-1]:.4f}")
    fig = new_figure(10, 4)
    ax_loss, ax_acc = fig.subplots(1, 2)
    ax_loss.plot(losses)
    ax_loss.set(xlabel="iteration", ylabel="training loss")
    ax_acc.plot(train_acc, "o-", label="train acc")
    ax_acc.plot(test_acc, "s--", label="test acc")
    ax_acc.set(xlabel="epoch", ylabel="accuracy", ylim=(0, 1))
    ax_acc.legend(loc="lower right")
    fig.suptitle(f"TwoLayerNet on {name}, {iters} iterations")
    _common.write_figure(args, fig, "ch05_train_neuralnet.png")


if __name__ == "__main__":
    main()
