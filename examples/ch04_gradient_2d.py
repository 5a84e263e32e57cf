"""Book chapter 4 (gradient_2d.py, figure 4-9): the negative gradient of x0**2 + x1**2 as arrows.

The arrows point to the minimum at the origin and grow with the distance from it.
"""
from __future__ import annotations

import numpy as np

import _common
from fastdl.gradient import numerical_gradient
from fastdl.plots import new_figure


def function_2(x):
    return np.sum(x ** 2)


def main() -> None:
    args = _common.parser(__doc__).parse_args()
    _common.setup(args)
    x0 = np.arange(-2, 2.5, 0.25)
    X, Y = np.meshgrid(x0, x0)
    points = np.stack([X.ravel(), Y.ravel()], axis=1).astype(np.float64)
    # The book passes all points at once; fastdl's numerical_gradient takes one point
    # (a batch of points is issue 19), so loop over them.
    grad = np.array([numerical_gradient(function_2, p.copy()) for p in points])
    for p in ([3.0, 4.0], [0.0, 2.0], [3.0, 0.0]):
        g = numerical_gradient(function_2, np.array(p))
        print(f"gradient at {p}: {np.round(g, 6)}")
    fig = new_figure(6, 6)
    ax = fig.subplots()
    ax.quiver(points[:, 0], points[:, 1], -grad[:, 0], -grad[:, 1], angles="xy", color="#666666")
    ax.set(xlim=(-2, 2), ylim=(-2, 2), xlabel="x0", ylabel="x1",
           title="-grad f for f(x0, x1) = x0^2 + x1^2")
    ax.grid()
    _common.write_figure(args, fig, "ch04_gradient_2d.png")


if __name__ == "__main__":
    main()
