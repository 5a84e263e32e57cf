"""Book chapter 7 (train_convnet.py, figure 7-23): training SimpleConvNet.

The book's setup: conv 30 x 5x5 - relu - pool - affine 100 - relu - affine 10, weight std
0.01, Adam (lr 0.001), batches of 100, 20 epochs, accuracy on 1,000 train and test images
per epoch (the book reaches about 0.99 test accuracy on MNIST).  Saves the weights
(``save_params``: an .npz, not the book's pickle) and the accuracy curves.
--quick trains 2 epochs on 1,000 images.
"""
from __future__ import annotations

import numpy as np

import _common
from fastdl.models import SimpleConvNet
from fastdl.plots import new_figure, save
from fastdl.trainer import Trainer


def main() -> None:
    p = _common.parser(__doc__, data=True)
    p.add_argument("--epochs", type=int, default=None)
    args = p.parse_args()
    _common.setup(args)
    name, ((x, t), (xt, tt)) = _common.load_images(args, flatten=False)
    epochs = args.epochs or (2 if args.quick else 20)
    if args.quick:
        x, t = _common.subset(x, t, 1000, args.seed)
        xt, tt = xt[:500], tt[:500]
    net = SimpleConvNet(input_dim=(1, 28, 28),
                        conv_param={"filter_num": 30, "filter_size": 5, "pad": 0, "stride": 1},
                        hidden_size=100, output_size=10, weight_init_std=0.01, seed=args.seed)
    trainer = Trainer(net, x, t, xt, tt, epochs=epochs, mini_batch_size=100, optimizer="Adam",
                      optimizer_param={"lr": 0.001}, evaluate_sample_num_per_epoch=1000,
                      verbose=False, seed=args.seed)
    test_acc = trainer.train()
    for e, (a, b) in enumerate(zip(trainer.train_acc_list, trainer.test_acc_list), start=1):
        print(f"=== epoch:{e}, train acc:{a:.4f}, test acc:{b:.4f} ===")
    print(f"=============== Final Test Accuracy ===============\ntest acc:{test_acc:.4f}")
    params = args.out / "ch07_simple_convnet_params.npz"
    net.save_params(params)
    print(f"Saved Network Parameters! ({params})")
    fig = new_figure(6, 4)
    ax = fig.subplots()
    ep = np.arange(1, epochs + 1)
    ax.plot(ep, trainer.train_acc_list, marker="o", label="train", markevery=2)
    ax.plot(ep, trainer.test_acc_list, marker="s", label="test", markevery=2)
    ax.set(xlabel="epochs", ylabel="accuracy", ylim=(0, 1.0), title=f"SimpleConvNet on {name}")
    ax.legend(loc="lower right")
    out = args.out / "ch07_train_convnet.png"
    save(fig, out)
    _common.saved(out)


if __name__ == "__main__":
    main()
