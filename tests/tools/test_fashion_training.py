"""A short real training run: SimpleConvNet, 5,000 Fashion-MNIST images, one epoch."""
from __future__ import annotations

import numpy as np
import pytest

from fastdl import datasets
from fastdl.models import SimpleConvNet
from fastdl.trainer import Trainer


def test_simple_convnet_one_epoch_fashion_mnist():
    try:
        (x, t), (xt, tt) = datasets.load_fashion_mnist(flatten=False)
    except FileNotFoundError:
        pytest.skip("Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)")
    x, t, xt, tt = x[:5000], t[:5000], xt[:1000], tt[:1000]
    assert x.shape == (5000, 1, 28, 28) and x.dtype == np.float32
    # The book's architecture with He initialisation: the book's fixed std 0.01 needs
    # more than 50 Adam steps to leave the plateau.
    net = SimpleConvNet(weight_init_std="he", seed=0)
    trainer = Trainer(net, x, t, xt, tt, epochs=1, mini_batch_size=100, optimizer="adam",
                      optimizer_param={"lr": 0.001}, evaluate_sample_num_per_epoch=1000,
                      verbose=False, seed=0)
    test_acc = trainer.train()
    assert len(trainer.train_loss_list) == 50
    assert trainer.train_loss_list[-1] < trainer.train_loss_list[0] / 2
    assert test_acc >= 0.70, test_acc
