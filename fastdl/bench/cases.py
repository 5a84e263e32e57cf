"""The cases of ``fastdl bench``: the book's shapes at batch 100, and their FLOP counts."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from .. import ops

__all__ = ["Case", "CASES", "QUICK_CASES", "BATCH", "CONV_LAYERS", "POOL_LAYERS", "SOFTMAX_SHAPES",
           "IM2COL_LAYERS", "ADAM_PARAMS"]

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
#: (in, out) of the affine layers, for the FLOP count of a training step.
#: Adam cases: the largest parameter of each network (SimpleConvNet's first affine weight).
ADAM_PARAMS = {"simple.affine1": (4320, 100), "deep.affine1": (1024, 50)}
AFFINE_LAYERS = {"simple_convnet": ((4320, 100), (100, 10)), "deep_convnet": ((1024, 50), (50, 10))}
NET_CONVS = {"simple_convnet": ("simple.conv1",),
             "deep_convnet": tuple(f"deep.conv{i}" for i in range(1, 7))}
BATCH = 100


@dataclass(frozen=True)
class Case:
    """One benchmark case: a kernel (or a training step) on one of the book's shapes."""

    kind: str    # conv_fwd, conv_bwd, pool_fwd, pool_bwd, softmax_ce, im2col, col2im, adam, train_step
    layer: str   # e.g. "deep.conv2", "simple.pool1", "4096x1000", "simple.affine1", "deep_convnet"

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
        if self.kind == "adam":
            return f"W{_fmt_shape(ADAM_PARAMS[self.layer])} in place"
        return f"batch {BATCH}, forward + backward + Adam"

    def flops(self) -> int | None:
        """FLOPs of one call (multiply-add = 2, conv taps on padding not counted); None if not a FLOP kernel."""
        if self.kind == "conv_fwd":
            return _conv_flops(self.layer)
        if self.kind == "conv_bwd":
            return _conv_flops(self.layer) * (2 if _conv(self.layer)[5] else 1)
        if self.kind == "train_step":
            convs = NET_CONVS[self.layer]
            total = sum(_conv_flops(c) * (3 if i else 2) for i, c in enumerate(convs))
            total += sum(2 * BATCH * a * b * 3 for a, b in AFFINE_LAYERS[self.layer])
            return total
        return None


def _fmt_shape(s: Sequence[int]) -> str:
    return "(" + ",".join(str(v) for v in s) + ")"


def _conv(layer: str):
    for row in CONV_LAYERS:
        if row[0] == layer:
            return row
    raise KeyError(layer)


def _pool(layer: str) -> tuple[int, int, int, int]:
    return dict(POOL_LAYERS)[layer]


def _softmax(layer: str) -> tuple[int, int]:
    n, k = layer.split("x")
    return int(n), int(k)


def _valid_taps(size: int, k: int, stride: int, pad: int) -> int:
    """Sum over output positions of the kernel taps that land inside [0, size)."""
    out = ops.conv_output_size(size, k, stride, pad)
    return sum(max(0, min(o * stride - pad + k, size) - max(o * stride - pad, 0)) for o in range(out))


def _conv_flops(layer: str) -> int:
    _, (n, c, h, w), fn, k, pad, _ = _conv(layer)
    return 2 * n * fn * c * _valid_taps(h, k, 1, pad) * _valid_taps(w, k, 1, pad)


def _all_cases() -> tuple[Case, ...]:
    cases = [Case("conv_fwd", c[0]) for c in CONV_LAYERS]
    cases += [Case("conv_bwd", c[0]) for c in CONV_LAYERS]
    cases += [Case("pool_fwd", p[0]) for p in POOL_LAYERS]
    cases += [Case("pool_bwd", p[0]) for p in POOL_LAYERS]
    cases += [Case("softmax_ce", f"{n}x{k}") for n, k in SOFTMAX_SHAPES]
    cases += [Case("im2col", c) for c in IM2COL_LAYERS]
    cases += [Case("col2im", c) for c in IM2COL_LAYERS]
    cases += [Case("adam", a) for a in ADAM_PARAMS]
    cases += [Case("train_step", "simple_convnet"), Case("train_step", "deep_convnet")]
    return tuple(cases)


CASES: tuple[Case, ...] = _all_cases()
QUICK_CASES: tuple[Case, ...] = (
    Case("conv_fwd", "simple.conv1"),
    Case("pool_fwd", "simple.pool1"),
    Case("softmax_ce", "100x10"),
    Case("train_step", "simple_convnet"),
)
