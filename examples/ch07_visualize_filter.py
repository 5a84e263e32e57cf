"""Book figure 7-24: the first-layer filters of SimpleConvNet before and after training.

Random filters show no structure; after training they respond to edges and blobs.
Trains SimpleConvNet (He initialisation, Adam) for one epoch on --dataset (MNIST or Fashion-MNIST),
or shows the filters of the book's pretrained weights with --weights.
"""
from __future__ import annotations

from pathlib import Path

import _common
from fastdl import io
from fastdl.models import SimpleConvNet
from fastdl.plots import filter_grid
from fastdl.trainer import Trainer


def main() -> None:
    p = _common.parser(__doc__, data=True)
    p.add_argument("--weights", "--book-weights", dest="book_weights", type=Path,
                   help="the book's simple_convnet_params.pkl (the 'after' filters)")
    args = p.parse_args()
    _common.setup(args)
    net = SimpleConvNet(weight_init_std="he", seed=args.seed)
    filter_grid(net.params["W1"], args.out / "ch07_visualize_filter_before.png",
                title="first-layer filters, random initialisation")
    if args.book_weights:
        net.load_state_dict(io.load_book_params(args.book_weights))
        what = "the book's trained weights (MNIST)"
    else:
        name, ((x, t), (xt, tt)) = _common.load_images(args, flatten=False)
        n, n_test = (600, 300) if args.quick else (len(x), 1000)
        trainer = Trainer(net, x[:n], t[:n], xt[:n_test], tt[:n_test], epochs=1,
                          mini_batch_size=100, optimizer="adam", optimizer_param={"lr": 0.001},
                          verbose=not args.quick, seed=args.seed)
        acc = trainer.train()
        what = f"after 1 epoch on {n} {name} images (test acc {acc:.3f})"
        print(f"test accuracy {acc:.3f}")
    out = args.out / "ch07_visualize_filter_after.png"
    filter_grid(net.params["W1"], out, title=f"first-layer filters, {what}")
    _common.saved(args.out / "ch07_visualize_filter_before.png")
    _common.saved(out)


if __name__ == "__main__":
    main()
