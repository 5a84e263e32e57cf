"""Book chapter 4 (train_neuralnet.py, two_layer_net.py): training with numerical gradients.

Chapter 4 trains TwoLayerNet with ``network.numerical_gradient`` (its script has the line,
commented out for speed).  This trains the same network from the same start twice, with
numerical and with backprop gradients (SGD, lr 0.1): the loss curves coincide and the
time per iteration shows why chapter 5 exists.  Numerical gradients cost two forward passes
per weight, so this uses a small network (784-10-10, batches of 10, 20 iterations;
--quick: 784-2-10, 2 iterations).
"""
from __future__ import annotations

import time

import numpy as np

import _common
from fastdl.models import TwoLayerNet
from fastdl.plots import new_figure


def train(net, x, t, idx_list, numerical: bool, lr: float = 0.1):
    losses, start = [], time.perf_counter()
    for idx in idx_list:
        grad = net.numerical_gradient(x[idx], t[idx]) if numerical else net.gradient(x[idx], t[idx])
        for key in ("W1", "b1", "W2", "b2"):
            net.params[key] -= lr * grad[key]
        losses.append(net.loss(x[idx], t[idx]))
    return losses, (time.perf_counter() - start) / len(idx_list)


def main() -> None:
    p = _common.parser(__doc__, data=True)
    p.add_argument("--iters", type=int, default=None)
    args = p.parse_args()
    _common.setup(args)
    name, ((x, t), _) = _common.load_images(args)
    iters = args.iters or (2 if args.quick else 20)
    hidden = 2 if args.quick else 10
    rng = np.random.default_rng(args.seed)
    idx_list = [rng.choice(len(x), 10) for _ in range(iters)]
    x64 = x.astype(np.float64)
    results = {}
    for numerical in (True, False):
        net = TwoLayerNet(784, hidden, 10, dtype=np.float64, seed=args.seed)
        results["numerical" if numerical else "backprop"] = train(net, x64, t, idx_list, numerical)
    for key, (losses, dt) in results.items():
        print(f"{key:9s}: {dt * 1e3:10.3f} ms per iteration, final loss {losses[-1]:.6f}")
    gap = np.max(np.abs(np.subtract(results["numerical"][0], results["backprop"][0])))
    print(f"largest |numerical - backprop| loss difference over {iters} iterations: {gap:.2e}")
    print(f"numerical / backprop time: {results['numerical'][1] / results['backprop'][1]:.0f}x")
    fig = new_figure(6, 4)
    ax = fig.subplots()
    ax.plot(results["numerical"][0], "o-", label="numerical gradient")
    ax.plot(results["backprop"][0], "x--", label="backprop")
    ax.set(xlabel="iteration", ylabel="training loss", title=f"TwoLayerNet 784-{hidden}-10 on {name}")
    ax.legend()
    _common.write_figure(args, fig, "ch04_train_neuralnet.png")


if __name__ == "__main__":
    main()
