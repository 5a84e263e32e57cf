"""Book chapter 8 (train_deepnet.py): training DeepConvNet.

The book's setup: DeepConvNet (six 3x3 convolutions 16-16-32-32-64-64 with He init, three
max-pools, affine 50 with dropout, affine 10 with dropout), Adam (lr 0.001), batches of 100,
20 epochs, accuracy on 1,000 images per epoch (about 0.99 on MNIST; hours on one core with
the numpy backend, much less with --backend cpp).  Saves the weights (``save_params``: an
.npz; ``load_params`` reads it and the book's deep_convnet_params.pkl) and the accuracy
curves.  --quick trains 1 epoch on 300 images.
"""
from __future__ import annotations

import numpy as np

import _common
from fastdl.models import DeepConvNet
from fastdl.plots import new_figure, save
from fastdl.trainer import Trainer


def main() -> None:
    p = _common.parser(__doc__, data=True)
    p.add_argument("--epochs", type=int, default=None)
    args = p.parse_args()
    _common.setup(args)
    name, ((x, t), (xt, tt)) = _common.load_images(args, flatten=False)
    epochs = args.epochs or (1 if args.quick else 20)
    if args.quick:
        x, t = _common.subset(x, t, 300, args.seed)
        xt, tt = xt[:200], tt[:200]
    net = DeepConvNet(seed=args.seed)
    trainer = Trainer(net, x, t, xt, tt, epochs=epochs, mini_batch_size=100, optimizer="Adam",
                      optimizer_param={"lr": 0.001},
                      evaluate_sample_num_per_epoch=min(1000, len(x)),
                      verbose=False, seed=args.seed)
    test_acc = trainer.train()
    for e, (a, b) in enumerate(zip(trainer.train_acc_list, trainer.test_acc_list), start=1):
        print(f"=== epoch:{e}, train acc:{a:.4f}, test acc:{b:.4f} ===")
    print(f"=============== Final Test Accuracy ===============\ntest acc:{test_acc:.4f}")
    params = args.out / "ch08_deep_convnet_params.npz"
    net.save_params(params)
    print(f"Saved Network Parameters! ({params})")
    fig = new_figure(6, 4)
    ax = fig.subplots()
    ep = np.arange(1, epochs + 1)
    ax.plot(ep, trainer.train_acc_list, marker="o", label="train")
    ax.plot(ep, trainer.test_acc_list, marker="s", label="test")
    ax.set(xlabel="epochs", ylabel="accuracy", ylim=(0, 1.0), title=f"DeepConvNet on {name}")
    ax.legend(loc="lower right")
    out = args.out / "ch08_train_deepnet.png"
    save(fig, out)
    _common.saved(out)


if __name__ == "__main__":
    main()
