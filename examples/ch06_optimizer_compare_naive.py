"""Book figure 6-8: SGD, Momentum, AdaGrad and Adam on f(x, y) = x**2 / 20 + y**2.

Each optimizer starts at (-7, 2) and takes 30 steps with the book's learning rates.
"""
from __future__ import annotations

import numpy as np

import _common
from fastdl.optimizers import SGD, AdaGrad, Adam, Momentum
from fastdl.plots import new_figure


def f(x, y):
    return x ** 2 / 20.0 + y ** 2


def df(x, y):
    return x / 10.0, 2.0 * y


def trajectory(opt, steps: int, start=(-7.0, 2.0)) -> np.ndarray:
    # The book keeps params as Python floats; fastdl's optimizers update arrays in place
    # (issue 19 may accept floats later), so each coordinate is a 0-d array here.
    params = {"x": np.array(start[0]), "y": np.array(start[1])}
    path = [(float(params["x"]), float(params["y"]))]
    for _ in range(steps):
        gx, gy = df(params["x"], params["y"])
        opt.update(params, {"x": np.asarray(gx), "y": np.asarray(gy)})
        path.append((float(params["x"]), float(params["y"])))
    return np.array(path)


def main() -> None:
    args = _common.parser(__doc__).parse_args()
    _common.setup(args)
    steps = 30
    optimizers = {"SGD": SGD(lr=0.95), "Momentum": Momentum(lr=0.1),
                  "AdaGrad": AdaGrad(lr=1.5), "Adam": Adam(lr=0.3)}
    grid = 0.1 if args.quick else 0.01
    X, Y = np.meshgrid(np.arange(-10, 10, grid), np.arange(-5, 5, grid))
    Z = f(X, Y)
    Z[Z > 7] = 0
    fig = new_figure(10, 8)
    for ax, (name, opt) in zip(fig.subplots(2, 2).ravel(), optimizers.items()):
        path = trajectory(opt, steps)
        ax.contour(X, Y, Z)
        ax.plot(path[:, 0], path[:, 1], "o-", color="red", markersize=3)
        ax.plot(0, 0, "+", color="black")
        ax.set(xlim=(-10, 10), ylim=(-10, 10), xlabel="x", ylabel="y",
               title=f"{name}: f = {f(*path[-1]):.2e} after {steps} steps")
        print(f"{name:9s} final point ({path[-1, 0]: .4f}, {path[-1, 1]: .4f})")
    _common.write_figure(args, fig, "ch06_optimizer_compare_naive.png")


if __name__ == "__main__":
    main()
