"""Book chapter 8 (awesome_net.py): "Create your awesome net!!" -- your own network on fastdl.

The book's file is one comment line, an invitation.  This is a starting point: a network of
your own design as a subclass of fastdl.models.Model, built from fastdl.layers with
``_add`` (which records where each gradient lives), so that loss, backprop, accuracy,
save_params and the Trainer all work on it.  This one is conv 3x3 x16 - batch norm - relu -
pool - conv 3x3 x32 - relu - pool - affine 100 - relu - dropout - affine 10, trained with Adam.
--quick trains 1 epoch on 1,000 images; change the layers and see what you get.
"""
from __future__ import annotations

import numpy as np

import _common
from fastdl.init import he_normal
from fastdl.layers import Affine, BatchNormalization, Convolution, Dropout, Pooling, Relu
from fastdl.models import Model
from fastdl.plots import new_figure


class AwesomeNet(Model):
    name = "awesome_net"

    def __init__(self, *, dtype=np.float32, seed=None) -> None:
        super().__init__({}, dtype, seed)
        self._input_shape = (1, 28, 28)
        rng = np.random.default_rng(seed)
        conv1 = Convolution(self._param("W1", he_normal((16, 1, 3, 3), rng)),
                            self._param("b1", np.zeros(16)), stride=1, pad=1)
        conv1.need_dx = False  # first layer: no gradient for the images
        self._add("Conv1", conv1, grads={"W1": "dW", "b1": "db"})
        d = 16 * 28 * 28  # the book's batch norm normalises each of the C*H*W features
        bn = BatchNormalization(self._param("gamma1", np.ones(d)), self._param("beta1", np.zeros(d)),
                                running_mean=np.zeros(d, self.dtype), running_var=np.ones(d, self.dtype))
        self._add("BatchNorm1", bn, grads={"gamma1": "dgamma", "beta1": "dbeta"},
                  buffers={"running_mean1": "running_mean", "running_var1": "running_var"})
        self._add("Relu1", Relu())
        self._add("Pool1", Pooling(2, 2, stride=2))                      # 16 x 14 x 14
        self._add("Conv2", Convolution(self._param("W2", he_normal((32, 16, 3, 3), rng)),
                                       self._param("b2", np.zeros(32)), stride=1, pad=1),
                  grads={"W2": "dW", "b2": "db"})
        self._add("Relu2", Relu())
        self._add("Pool2", Pooling(2, 2, stride=2))                      # 32 x 7 x 7
        self._add("Affine1", Affine(self._param("W3", he_normal((32 * 7 * 7, 100), rng)),
                                    self._param("b3", np.zeros(100))), grads={"W3": "dW", "b3": "db"})
        self._add("Relu3", Relu())
        self._add("Dropout1", Dropout(0.3, rng=int(rng.integers(2**63))))
        self._add("Affine2", Affine(self._param("W4", he_normal((100, 10), rng)),
                                    self._param("b4", np.zeros(10))), grads={"W4": "dW", "b4": "db"})


def main() -> None:
    args, name, data = _common.convnet_training(__doc__, epochs=10, quick_epochs=1,
                                                quick_train=1000, quick_test=500)
    net = AwesomeNet(seed=args.seed)
    print("layers: " + " - ".join(net.layers))
    print(f"parameters: {sum(v.size for v in net.params.values()):,}")
    trainer = _common.adam_trainer(args, net, data)
    test_acc = trainer.train()
    print(f"test acc:{test_acc:.4f} after {args.epochs} epoch(s) on {len(data[0])} {name} images")
    fig = new_figure(6, 4)
    ax = fig.subplots()
    ax.plot(trainer.train_loss_list)
    ax.set(xlabel="iteration", ylabel="training loss", title=f"AwesomeNet on {name}")
    _common.write_figure(args, fig, "ch08_awesome_net.png")


if __name__ == "__main__":
    main()
