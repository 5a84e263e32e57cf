"""Book chapter 2 (and_gate.py, nand_gate.py, or_gate.py, xor_gate.py): logic gates as perceptrons.

Prints each gate's truth table (fastdl.perceptron) and draws the book's figures 2-6 to 2-8:
AND, NAND and OR are separated from their inputs by one straight line (w1*x1 + w2*x2 + b = 0);
XOR is not, and needs two layers, XOR = AND(NAND, OR).
"""
from __future__ import annotations

import numpy as np

import _common
from fastdl.perceptron import AND, NAND, OR, XOR
from fastdl.plots import new_figure

GATES = {"AND": AND, "NAND": NAND, "OR": OR, "XOR": XOR}


def main() -> None:
    args = _common.parser(__doc__).parse_args()
    _common.setup(args)
    inputs = [(0, 0), (1, 0), (0, 1), (1, 1)]
    for name, gate in GATES.items():
        print(f"{name:4s} " + "  ".join(f"{x1}{x2}->{gate(x1, x2)}" for x1, x2 in inputs))
    step = 0.05 if args.quick else 0.01
    g = np.arange(-0.5, 1.5 + step, step)
    fig = new_figure(12, 3.2)
    for ax, (name, gate) in zip(fig.subplots(1, 4), GATES.items()):
        region = np.array([[gate(a, b) for a in g] for b in g])
        ax.contourf(g, g, region, levels=[-0.5, 0.5, 1.5], colors=["white", "#c8dcf0"])
        for x1, x2 in inputs:
            ax.plot(x1, x2, "o" if gate(x1, x2) else "^", color="black", markersize=9)
        ax.set(title=f"{name} (shaded: output 1)", xlabel="x1", ylabel="x2", aspect="equal")
    _common.write_figure(args, fig, "ch02_perceptron_gates.png")


if __name__ == "__main__":
    main()
