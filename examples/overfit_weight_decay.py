"""Book figures 6-20 and 6-21: overfitting, and weight decay against it.

A 7-layer network (six hidden layers of 100) trained on only 300 images with SGD
(lr 0.01): without regularisation the training accuracy reaches ~100% while the test
accuracy stalls; with weight decay (lambda 0.1) the gap shrinks.
"""
from __future__ import annotations

import _common
from fastdl.models import MultiLayerNet
from fastdl.plots import new_figure, save
from fastdl.trainer import Trainer


def run(x, t, xt, tt, decay: float, epochs: int, seed: int):
    net = MultiLayerNet(784, [100] * 6, 10, weight_decay_lambda=decay, seed=seed)
    trainer = Trainer(net, x, t, xt, tt, epochs=epochs, mini_batch_size=100, optimizer="sgd",
                      optimizer_param={"lr": 0.01}, verbose=False, seed=seed)
    trainer.train()
    return trainer.train_acc_list, trainer.test_acc_list


def main() -> None:
    args = _common.parser(__doc__).parse_args()
    _common.setup(args)
    name, ((x, t), (xt, tt)) = _common.load_images()
    epochs, n_test = (100, 500) if args.quick else (200, 10000)
    x, t = x[:300], t[:300]
    xt, tt = xt[:n_test], tt[:n_test]
    fig = new_figure(10, 4)
    for ax, decay in zip(fig.subplots(1, 2, sharey=True), (0.0, 0.1)):
        train_acc, test_acc = run(x, t, xt, tt, decay, epochs, args.seed)
        ax.plot(range(1, epochs + 1), train_acc, label="train")
        ax.plot(range(1, epochs + 1), test_acc, label="test")
        ax.set(xlabel="epoch", ylabel="accuracy", ylim=(0, 1),
               title=f"weight decay lambda = {decay}" if decay else "no weight decay")
        ax.legend(loc="lower right")
        print(f"lambda {decay}: train acc {train_acc[-1]:.3f}, test acc {test_acc[-1]:.3f}, "
              f"gap {train_acc[-1] - test_acc[-1]:.3f}")
    fig.suptitle(f"overfitting on 300 {name} images")
    out = args.out / "overfit_weight_decay.png"
    save(fig, out)
    _common.saved(out)


if __name__ == "__main__":
    main()
