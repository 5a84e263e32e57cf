"""Book chapter 4 (gradient_method.py, figure 4-10): gradient descent on x0**2 + x1**2.

From (-3, 4), 20 steps with lr 0.1 reach about (-0.035, 0.046); also prints the book's
lr = 10 (diverges) and lr = 1e-10 (barely moves).
"""
from __future__ import annotations

import numpy as np

import _common
from fastdl.gradient import gradient_descent, numerical_gradient
from fastdl.plots import new_figure


def function_2(x):
    return x[0] ** 2 + x[1] ** 2


def descent_history(f, init_x, lr: float, step_num: int) -> np.ndarray:
    # fastdl.gradient.gradient_descent returns only the final point (the book's x_history
    # is issue 19), so the steps are written out here for the plot.
    x = np.array(init_x, dtype=np.float64)
    history = []
    for _ in range(step_num):
        history.append(x.copy())
        x -= lr * numerical_gradient(f, x)
    return np.array(history + [x])


def main() -> None:
    args = _common.parser(__doc__).parse_args()
    _common.setup(args)
    history = descent_history(function_2, [-3.0, 4.0], lr=0.1, step_num=20)
    print(f"lr 0.1, 20 steps: {np.round(history[-1], 6)}")
    for lr in (10.0, 1e-10):
        x = gradient_descent(function_2, np.array([-3.0, 4.0]), lr=lr, step_num=100)
        print(f"lr {lr:g}, 100 steps: {x}")
    fig = new_figure(5, 6)
    ax = fig.subplots()
    ax.plot([-5, 5], [0, 0], "--b")
    ax.plot([0, 0], [-5, 5], "--b")
    ax.plot(history[:, 0], history[:, 1], "o")
    ax.set(xlim=(-3.5, 3.5), ylim=(-4.5, 4.5), xlabel="X0", ylabel="X1",
           title="gradient descent, lr 0.1, 20 steps")
    _common.write_figure(args, fig, "ch04_gradient_method.png")


if __name__ == "__main__":
    main()
