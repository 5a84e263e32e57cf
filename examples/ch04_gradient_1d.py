"""Book chapter 4 (gradient_1d.py, figure 4-7): numerical derivative and tangent lines.

f(x) = 0.01 x**2 + 0.1 x; fastdl.gradient.numerical_diff gives 0.2 at x = 5 and 0.3 at
x = 10 (the exact derivatives are 0.2 and 0.3).
"""
from __future__ import annotations

import numpy as np

import _common
from fastdl.gradient import numerical_diff
from fastdl.plots import new_figure


def function_1(x):
    return 0.01 * x ** 2 + 0.1 * x


def main() -> None:
    args = _common.parser(__doc__).parse_args()
    _common.setup(args)
    x = np.arange(0.0, 20.0, 0.1)
    fig = new_figure(6, 4)
    ax = fig.subplots()
    ax.plot(x, function_1(x), label="f(x)")
    for x0 in (5.0, 10.0):
        d = numerical_diff(function_1, x0)
        print(f"numerical_diff at x = {x0:g}: {d:.10f}")
        ax.plot(x, d * (x - x0) + function_1(x0), "--", label=f"tangent at x = {x0:g} (slope {d:.3f})")
    ax.set(xlabel="x", ylabel="f(x)", title="f(x) = 0.01 x^2 + 0.1 x")
    ax.legend()
    _common.write_figure(args, fig, "ch04_gradient_1d.png")


if __name__ == "__main__":
    main()
