"""Book chapter 3 (mnist_show.py): the first training image and its label.

Loads the raw pixels (normalize=False, flatten=True), prints the label and the shapes
(784,) -> (28, 28), and writes the image.  With only the MNIST test set at hand
(e.g. --data-dir with the t10k files), the first test image is shown instead.
"""
from __future__ import annotations

import numpy as np

import _common
from fastdl import datasets
from fastdl.plots import image_grid


def main() -> None:
    args = _common.parser(__doc__, data=True).parse_args()
    _common.setup(args)
    split = "train"
    names = _common._candidates(args)
    try:
        name = names[0]
        x, t = datasets.load_split(name, "train", normalize=False, path=args.data_dir)
    except FileNotFoundError:
        split = "test"
        name, _ = _common.load_test_images(args)
        x, t = datasets.load_split(name, "test", normalize=False, path=args.data_dir)
    img, label = x[0], int(t[0])
    print(f"{name} {split}[0]")
    print(label)
    print(img.shape)
    img = img.reshape(28, 28)
    print(img.shape, img.dtype, f"pixels {int(img.min())}..{int(img.max())}")
    classes = datasets.FASHION_MNIST_CLASSES if name == "fashion-mnist" else datasets.MNIST_CLASSES
    out = args.out / "ch03_mnist_show.png"
    image_grid(np.asarray(img)[None], out, captions=[f"label {label} ({classes[label]})"],
               title=f"{name} {split} image 0")
    _common.saved(out)


if __name__ == "__main__":
    main()
