"""The cases of ``fastdl bench``: the book's shapes at batch 100, its networks, and their FLOP and byte counts."""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from .. import ops
from . import roofline

__all__ = ["Case", "CASES", "QUICK_CASES", "BATCH", "CONV_LAYERS", "POOL_LAYERS", "SOFTMAX_SHAPES",
           "IM2COL_LAYERS", "AFFINE_LAYERS", "ADAM_PARAMS", "TRAIN_NETS", "PRETRAINED", "PREDICT_BATCHES", "build_net",
           "net_input_shape", "predict_case"]

#: (name, x shape, filters, kernel, pad, need_dx): every conv layer of the book's two CNNs.
CONV_LAYERS = (
    ("simple.conv1", (100, 1, 28, 28), 30, 5, 0, False),
    ("deep.conv1", (100, 1, 28, 28), 16, 3, 1, False),
    ("deep.conv2", (100, 16, 28, 28), 16, 3, 1, True),
    ("deep.conv3", (100, 16, 14, 14), 32, 3, 1, True),
    ("deep.conv4", (100, 32, 14, 14), 32, 3, 2, True),
    ("deep.conv5", (100, 32, 8, 8), 64, 3, 1, True),
    ("deep.conv6", (100, 64, 8, 8), 64, 3, 1, True),
)
#: (name, x shape): the input of every 2x2 / stride 2 max pool of the two CNNs.
POOL_LAYERS = (
    ("simple.pool1", (100, 30, 24, 24)),
    ("deep.pool1", (100, 16, 28, 28)),
    ("deep.pool2", (100, 32, 16, 16)),
    ("deep.pool3", (100, 64, 8, 8)),
)
SOFTMAX_SHAPES = ((100, 10), (4096, 1000))
IM2COL_LAYERS = ("simple.conv1", "deep.conv2", "deep.conv4")
#: (name, x shape, outputs): the largest affine layer of SimpleConvNet (batch 100) and the first of
#: the book's sample_weight network at predict batch 1000.
AFFINE_LAYERS = (
    ("simple.affine1", (100, 4320), 100),
    ("sample_weight.affine1", (1000, 784), 50),
)
#: Adam cases: the largest parameter of each network (SimpleConvNet's first affine weight).
ADAM_PARAMS = {"simple.affine1": (4320, 100), "deep.affine1": (1024, 50)}
BATCH = 100
#: The networks the book trains, as it trains them: model class and arguments, optimizer and arguments.
TRAIN_NETS = {
    "two_layer_net": ("TwoLayerNet", {"input_size": 784, "hidden_size": 50, "output_size": 10},
                      "SGD", {"lr": 0.1}),                                        # ch. 5 train_neuralnet
    "multi_layer_net": ("MultiLayerNet", {"input_size": 784, "hidden_size_list": [100] * 4, "output_size": 10},
                        "SGD", {"lr": 0.01}),                                     # ch. 6 optimizer_compare
    "multi_layer_net_extend": ("MultiLayerNetExtend",                             # ch. 6 batch_norm, dropout
                               {"input_size": 784, "hidden_size_list": [100] * 5, "output_size": 10,
                                "use_batchnorm": True, "use_dropout": True, "dropout_ration": 0.2},
                               "SGD", {"lr": 0.01}),
    "simple_convnet": ("SimpleConvNet", {}, "Adam", {"lr": 0.001}),               # ch. 7 train_convnet
    "deep_convnet": ("DeepConvNet", {}, "Adam", {"lr": 0.001}),                   # ch. 8 train_deepnet
}
#: The book's pretrained networks: model class and arguments, and the weight file published with the book.
PRETRAINED = {
    "sample_weight": ("MultiLayerNet", {"input_size": 784, "hidden_size_list": [50, 100], "output_size": 10,
                                        "activation": "sigmoid"}, "sample_weight.pkl"),   # ch. 3
    "simple_convnet": ("SimpleConvNet", {}, "simple_convnet_params.pkl"),                 # ch. 7
    "deep_convnet": ("DeepConvNet", {}, "deep_convnet_params.pkl"),                       # ch. 8
}
PREDICT_BATCHES = (1, 1000)


def build_net(kind: str, net: str, dtype) -> Any:
    """The fastdl model of a ``train_step`` or ``predict`` case (seed 0), without weights loaded."""
    from .. import models

    cls_name, kwargs = (TRAIN_NETS[net] if kind == "train_step" else PRETRAINED[net])[:2]
    return getattr(models, cls_name)(**kwargs, dtype=dtype, seed=0)


def net_input_shape(net: str, batch: int) -> tuple[int, ...]:
    """(batch, 784) for the fully connected nets, (batch, 1, 28, 28) for the convnets."""
    return (batch, 1, 28, 28) if net.endswith("convnet") else (batch, 784)


def predict_case(layer: str) -> tuple[str, int]:
    """``"deep_convnet@1000"`` -> ``("deep_convnet", 1000)``."""
    net, _, batch = layer.partition("@")
    return net, int(batch)


@dataclass(frozen=True)
class Case:
    """One benchmark case: a kernel (or a training step) on one of the book's shapes."""

    kind: str    # conv_fwd, conv_bwd, pool_fwd, pool_bwd, softmax_ce, im2col, col2im, affine_fwd, affine_bwd,
    #              adam, train_step, predict
    layer: str   # e.g. "deep.conv2", "simple.pool1", "4096x1000", "simple.affine1", "deep_convnet",
    #              "deep_convnet@1000" (predict: network @ batch)

    @property
    def name(self) -> str:
        return f"{self.kind} {self.layer}"

    def shape(self) -> str:
        """Human-readable shapes and hyperparameters."""
        if self.kind in ("conv_fwd", "conv_bwd", "im2col", "col2im"):
            _, xs, fn, k, pad, need_dx = _conv(self.layer)
            text = f"x{_fmt_shape(xs)} W{_fmt_shape((fn, xs[1], k, k))} pad {pad}"
            if self.kind in ("im2col", "col2im"):
                text = f"x{_fmt_shape(xs)} {k}x{k} pad {pad}"
            if self.kind == "conv_bwd":
                text += " with dx" if need_dx else " no dx"
            return text
        if self.kind in ("pool_fwd", "pool_bwd"):
            return f"x{_fmt_shape(_pool(self.layer))} 2x2/2"
        if self.kind == "softmax_ce":
            return f"logits{_fmt_shape(_softmax(self.layer))}"
        if self.kind in ("affine_fwd", "affine_bwd"):
            xs, m = _affine(self.layer)
            return f"x{_fmt_shape(xs)} W{_fmt_shape((xs[1], m))}" + (" with dx" if self.kind == "affine_bwd" else "")
        if self.kind == "adam":
            return f"W{_fmt_shape(ADAM_PARAMS[self.layer])} in place"
        if self.kind == "predict":
            net, batch = predict_case(self.layer)
            return f"x{_fmt_shape(net_input_shape(net, batch))}, inference"
        return f"x{_fmt_shape(net_input_shape(self.layer, BATCH))}, forward + backward + {TRAIN_NETS[self.layer][2]}"

    def flops(self) -> int | None:
        """FLOPs of one call (multiply-add = 2, conv taps on padding not counted); None if not a FLOP kernel."""
        return self.cost("float32")[0] or None

    def cost(self, dtype: Any) -> tuple[int, int]:
        """(FLOPs, bytes that must move) of one call in ``dtype``: the rules of :mod:`~fastdl.bench.roofline`."""
        return _cost(self, np.dtype(dtype).name)


@functools.lru_cache(maxsize=None)
def _cost(case: Case, dtype: str) -> tuple[int, int]:
    it = np.dtype(dtype).itemsize
    kind = case.kind
    if kind in ("conv_fwd", "conv_bwd", "im2col", "col2im"):
        _, xs, fn, k, pad, need_dx = _conv(case.layer)
        oh, ow = ops.conv_output_size(xs[2], k, 1, pad), ops.conv_output_size(xs[3], k, 1, pad)
        x, y, p = _size(xs), xs[0] * fn * oh * ow, fn * xs[1] * k * k + fn
        col = xs[0] * oh * ow * xs[1] * k * k
        f = roofline.conv_flops(xs, fn, k, 1, pad)
        return {"conv_fwd": (f, (x + p + y) * it),
                "conv_bwd": (f * (2 if need_dx else 1), (y + x + p + p + (x if need_dx else 0)) * it),
                "im2col": (0, (x + col) * it), "col2im": (0, (col + x) * it)}[kind]
    if kind in ("pool_fwd", "pool_bwd"):  # x and y (a quarter of x) at the dtype, the kernel's int64 argmax
        x = _size(_pool(case.layer))
        return 0, (x + x // 4) * it + x // 4 * 8
    if kind == "softmax_ce":
        n, k = _softmax(case.layer)
        return 0, 2 * n * k * it + n * 8
    if kind in ("affine_fwd", "affine_bwd"):  # x, W, b, y; backward: dy, x, W in, dx, dW, db out
        (n, d), m = _affine(case.layer)
        f = 2 * n * d * m
        if kind == "affine_fwd":
            return f, (n * d + d * m + m + n * m) * it
        return 2 * f, (n * m + n * d + d * m + n * d + d * m + m) * it
    if kind == "adam":
        return 0, 7 * _size(ADAM_PARAMS[case.layer]) * it
    if kind == "train_step":
        model = build_net(kind, case.layer, dtype)
        costs = roofline.model_costs(model, net_input_shape(case.layer, BATCH), train=True)
        opt_bytes = roofline.optimizer_bytes(model, TRAIN_NETS[case.layer][2])
        return sum(c["flops"] for c in costs), sum(c["bytes"] for c in costs) + opt_bytes
    if kind == "predict":
        net, batch = predict_case(case.layer)
        costs = roofline.model_costs(build_net(kind, net, dtype), net_input_shape(net, batch), train=False)
        return sum(c["flops"] for c in costs), sum(c["bytes"] for c in costs)
    raise ValueError(f"unknown case kind {kind!r}")


def _size(shape: Sequence[int]) -> int:
    return int(np.prod(shape, dtype=np.int64))


def _fmt_shape(s: Sequence[int]) -> str:
    return "(" + ",".join(str(v) for v in s) + ")"


def _conv(layer: str):
    for row in CONV_LAYERS:
        if row[0] == layer:
            return row
    raise KeyError(layer)


def _pool(layer: str) -> tuple[int, int, int, int]:
    return dict(POOL_LAYERS)[layer]


def _affine(layer: str) -> tuple[tuple[int, int], int]:
    for name, xs, m in AFFINE_LAYERS:
        if name == layer:
            return xs, m
    raise KeyError(layer)


def _softmax(layer: str) -> tuple[int, int]:
    n, k = layer.split("x")
    return int(n), int(k)


def _all_cases() -> tuple[Case, ...]:
    cases = [Case("conv_fwd", c[0]) for c in CONV_LAYERS]
    cases += [Case("conv_bwd", c[0]) for c in CONV_LAYERS]
    cases += [Case("pool_fwd", p[0]) for p in POOL_LAYERS]
    cases += [Case("pool_bwd", p[0]) for p in POOL_LAYERS]
    cases += [Case("softmax_ce", f"{n}x{k}") for n, k in SOFTMAX_SHAPES]
    cases += [Case("im2col", c) for c in IM2COL_LAYERS]
    cases += [Case("col2im", c) for c in IM2COL_LAYERS]
    cases += [Case(kind, a[0]) for kind in ("affine_fwd", "affine_bwd") for a in AFFINE_LAYERS]
    cases += [Case("adam", a) for a in ADAM_PARAMS]
    cases += [Case("train_step", net) for net in TRAIN_NETS]
    cases += [Case("predict", f"{net}@{b}") for net in PRETRAINED for b in PREDICT_BATCHES]
    return tuple(cases)


CASES: tuple[Case, ...] = _all_cases()
QUICK_CASES: tuple[Case, ...] = (
    Case("conv_fwd", "simple.conv1"),
    Case("pool_fwd", "simple.pool1"),
    Case("softmax_ce", "100x10"),
    Case("train_step", "simple_convnet"),
    Case("train_step", "two_layer_net"),
    Case("predict", "sample_weight@1"),
)
