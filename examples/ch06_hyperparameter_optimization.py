"""Book figure 6-24: random search for the learning rate and weight decay.

Each trial draws lr = 10**U(-6, -2) and weight decay = 10**U(-8, -4), trains a
784-(100 x 6)-10 network with SGD on 400 images and measures accuracy on 100 held-out
validation images (never the test set). The figure shows the best trials' curves.
"""
from __future__ import annotations

import numpy as np

import _common
from fastdl.models import MultiLayerNet
from fastdl.plots import new_figure
from fastdl.trainer import Trainer


def main() -> None:
    args = _common.parser(__doc__, data=True).parse_args()
    _common.setup(args)
    name, ((x, t), _) = _common.load_images(args)
    trials, epochs = (4, 8) if args.quick else (100, 50)
    x, t = _common.subset(x, t, 500, args.seed)
    x_val, t_val, x_tr, t_tr = x[:100], t[:100], x[100:], t[100:]
    rng = np.random.default_rng(args.seed)
    results = []
    for i in range(trials):
        lr = 10 ** rng.uniform(-6, -2)
        decay = 10 ** rng.uniform(-8, -4)
        net = MultiLayerNet(784, [100] * 6, 10, weight_decay_lambda=decay, seed=args.seed + i)
        trainer = Trainer(net, x_tr, t_tr, x_val, t_val, epochs=epochs, mini_batch_size=100,
                          optimizer="sgd", optimizer_param={"lr": lr}, verbose=False,
                          seed=args.seed + i)
        trainer.train()
        results.append((trainer.test_acc_list[-1], lr, decay, trainer.train_acc_list,
                        trainer.test_acc_list))
        print(f"trial {i + 1:3d}: val acc {results[-1][0]:.3f}  lr {lr:.2e}  decay {decay:.2e}")
    results.sort(key=lambda r: -r[0])
    best = results[:min(len(results), 20)]
    cols = 5
    rows = -(-len(best) // cols)
    fig = new_figure(3 * cols, 2.4 * rows)
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, (val, lr, decay, tr_acc, val_acc) in zip(axes, best):
        ax.plot(range(1, epochs + 1), val_acc, label="validation")
        ax.plot(range(1, epochs + 1), tr_acc, "--", label="train")
        ax.set(ylim=(0, 1), title=f"lr {lr:.1e}, wd {decay:.1e}")
        ax.title.set_fontsize(8)
    for ax in axes[len(best):]:
        ax.set_axis_off()
    axes[0].legend(fontsize=7)
    fig.suptitle(f"random search on {name}: best {len(best)} of {trials} trials "
                 f"(best val acc {best[0][0]:.3f})")
    print("best: lr {1:.3e}, weight decay {2:.3e}, val acc {0:.3f}".format(*best[0][:3]))
    _common.write_figure(args, fig, "ch06_hyperparameter_optimization.png")


if __name__ == "__main__":
    main()
