"""Book chapter 7 (apply_filter.py): 16 first-layer filters of SimpleConvNet applied to an image.

Left: the filters W1[0..15] (5x5) of the book's trained simple_convnet_params.pkl (--weights;
random He-initialised filters if the file is not found, which shows no structure).  Right: each
filter alone, as a fastdl.layers.Convolution with one output channel, applied to a grey image:
trained filters pick out edges of one orientation or blobs.  The book uses lena_gray.png,
which is not distributed; --image pattern (default) is a synthetic picture with edges in every
direction, --image data the first test image of --dataset.

The book writes ``Convolution(w, 0)`` (a scalar bias of 0); this uses ``np.zeros(1)``, one
bias per output channel, which fastdl's Convolution takes today (issue 19).
"""
from __future__ import annotations

import numpy as np

import _common
from fastdl import datasets
from fastdl.init import he_normal
from fastdl.layers import Convolution
from fastdl.models import SimpleConvNet
from fastdl.plots import new_figure


def pattern(size: int = 96) -> np.ndarray:
    """A grey test picture (size, size) in [0, 1]: a disc, a tilted square and stripes."""
    yy, xx = np.mgrid[0:size, 0:size] / size
    img = ((xx - 0.3) ** 2 + (yy - 0.3) ** 2 < 0.04).astype(float)
    u, v = (xx - 0.7 + yy - 0.7) / np.sqrt(2), (xx - 0.7 - yy + 0.7) / np.sqrt(2)
    img += (np.maximum(abs(u), abs(v)) < 0.15) * 0.8
    img += (yy > 0.75) * (np.sin(xx * 40) > 0) * 0.6
    return np.clip(img, 0, 1)


def filters(args) -> tuple[np.ndarray, str]:
    path = _common.find_weights(args, "simple_convnet_params.pkl", required=False)
    if path is None:
        print("the book's simple_convnet_params.pkl not found: random He filters (no structure)")
        return he_normal((30, 1, 5, 5), args.seed, np.float64), "random filters"
    net = SimpleConvNet(dtype=np.float64)
    net.load_params(path)
    return net.params["W1"], "the book's trained filters"


def main() -> None:
    p = _common.add_weights_option(_common.parser(__doc__, data=True), "simple_convnet_params.pkl")
    p.add_argument("--image", choices=["pattern", "data"], default="pattern")
    args = p.parse_args()
    _common.setup(args)
    W, what = filters(args)
    if args.image == "data":
        name, _ = _common.load_test_images(args, flatten=False)
        img = datasets.load_split(name, "test", flatten=False, path=args.data_dir)[0][0, 0]
    else:
        img = pattern(48 if args.quick else 96)
    x = np.asarray(img, dtype=np.float64).reshape(1, 1, *img.shape)
    fig = new_figure(12, 6)
    left, right = fig.subfigures(1, 2)
    for i, (ax_w, ax_o) in enumerate(zip(left.subplots(4, 4).ravel(), right.subplots(4, 4).ravel())):
        conv = Convolution(W[i:i + 1], np.zeros(1))
        out = conv.forward(x)[0, 0]
        ax_w.imshow(W[i, 0], cmap="gray_r", interpolation="nearest")
        ax_o.imshow(out, cmap="gray_r", interpolation="nearest")
        for ax in (ax_w, ax_o):
            ax.set_xticks([]), ax.set_yticks([])
        if i < 4:
            print(f"filter {i}: response range {out.min():+.3f} .. {out.max():+.3f}, shape {out.shape}")
    left.suptitle(f"{what} W1[0..15]")
    right.suptitle(f"each applied to a {img.shape[0]}x{img.shape[1]} image")
    _common.write_figure(args, fig, "ch07_apply_filter.png")


if __name__ == "__main__":
    main()
