"""Book chapter 3 (step_function.py, sigmoid.py, relu.py, sig_step_compare.py): activation plots.

--plot step | sigmoid | relu | compare | all (default): one figure each, drawn with
fastdl.functions on x in [-5, 5), as the book's figures 3-6, 3-7, 3-8 and 3-9.
"""
from __future__ import annotations

import numpy as np

import _common
from fastdl.functions import relu, sigmoid, step_function
from fastdl.plots import new_figure

PLOTS = {
    "step": ([(step_function, "-", "step function")], (-0.1, 1.1)),
    "sigmoid": ([(sigmoid, "-", "sigmoid")], (-0.1, 1.1)),
    "relu": ([(relu, "-", "ReLU")], (-1.0, 5.5)),
    "compare": ([(sigmoid, "-", "sigmoid"), (step_function, "k--", "step function")], (-0.1, 1.1)),
}


def main() -> None:
    p = _common.parser(__doc__)
    p.add_argument("--plot", choices=[*PLOTS, "all"], default="all")
    args = p.parse_args()
    _common.setup(args)
    x = np.arange(-5.0, 5.0, 0.1)
    for key in PLOTS if args.plot == "all" else [args.plot]:
        curves, ylim = PLOTS[key]
        fig = new_figure(5, 3.5)
        ax = fig.subplots()
        for f, style, label in curves:
            ax.plot(x, f(x), style, label=label)
        ax.set(ylim=ylim, xlabel="x", ylabel="y", title=" vs ".join(c[2] for c in curves))
        ax.legend(loc="upper left")
        print(f"{key}: f(-1), f(0), f(1) = " + ", ".join(
            f"{float(curves[0][0](np.array(v))):.4f}" for v in (-1.0, 0.0, 1.0)))
        _common.write_figure(args, fig, f"ch03_{key}.png")


if __name__ == "__main__":
    main()
