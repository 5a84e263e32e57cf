"""Book chapter 7 (train_convnet.py, figure 7-23): training SimpleConvNet.

The book's setup: conv 30 x 5x5 - relu - pool - affine 100 - relu - affine 10, weight std
0.01, Adam (lr 0.001), batches of 100, 20 epochs, accuracy on 1,000 train and test images
per epoch (the book reaches about 0.99 test accuracy on MNIST).  Saves the weights
(``save_params``: an .npz, not the book's pickle) and the accuracy curves.
--quick trains 2 epochs on 1,000 images.
"""
from __future__ import annotations

import _common
from fastdl.models import SimpleConvNet


def main() -> None:
    args, name, data = _common.convnet_training(__doc__, epochs=20, quick_epochs=2,
                                                quick_train=1000, quick_test=500)
    net = SimpleConvNet(input_dim=(1, 28, 28),
                        conv_param={"filter_num": 30, "filter_size": 5, "pad": 0, "stride": 1},
                        hidden_size=100, output_size=10, weight_init_std=0.01, seed=args.seed)
    trainer = _common.adam_trainer(args, net, data)
    test_acc = trainer.train()
    _common.report_training(args, net, trainer, test_acc, "ch07_simple_convnet_params.npz",
                            "ch07_train_convnet.png", f"SimpleConvNet on {name}", markevery=2)


if __name__ == "__main__":
    main()
