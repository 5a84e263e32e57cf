"""Book chapter 8 (train_deepnet.py): training DeepConvNet.

The book's setup: DeepConvNet (six 3x3 convolutions 16-16-32-32-64-64 with He init, three
max-pools, affine 50 with dropout, affine 10 with dropout), Adam (lr 0.001), batches of 100,
20 epochs, accuracy on 1,000 images per epoch (about 0.99 on MNIST; hours on one core with
the numpy backend, much less with --backend cpp).  Saves the weights (``save_params``: an
.npz; ``load_params`` reads it and the book's deep_convnet_params.pkl) and the accuracy
curves.  --quick trains 1 epoch on 300 images.
"""
from __future__ import annotations

import _common
from fastdl.models import DeepConvNet


def main() -> None:
    args, name, data = _common.convnet_training(__doc__, epochs=20, quick_epochs=1,
                                                quick_train=300, quick_test=200)
    net = DeepConvNet(seed=args.seed)
    trainer = _common.adam_trainer(args, net, data)
    test_acc = trainer.train()
    _common.report_training(args, net, trainer, test_acc, "ch08_deep_convnet_params.npz",
                            "ch08_train_deepnet.png", f"DeepConvNet on {name}")


if __name__ == "__main__":
    main()
