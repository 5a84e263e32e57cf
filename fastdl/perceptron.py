"""Logic gates as perceptrons (book chapter 2).

Each gate takes two inputs that are 0 or 1 and returns 0 or 1 (a Python int):
a weighted sum plus a bias, passed through a step.  XOR is not linearly
separable, so it is built from two layers: ``XOR = AND(NAND, OR)``.
"""
from __future__ import annotations

import numpy as np

__all__ = ["AND", "NAND", "OR", "XOR"]


def _perceptron(x1: float, x2: float, w1: float, w2: float, b: float) -> int:
    """1 if ``w1*x1 + w2*x2 + b > 0`` else 0."""
    return int(np.dot([x1, x2], [w1, w2]) + b > 0)


def AND(x1: float, x2: float) -> int:
    """1 only when both inputs are 1."""
    return _perceptron(x1, x2, 0.5, 0.5, -0.7)


def NAND(x1: float, x2: float) -> int:
    """0 only when both inputs are 1."""
    return _perceptron(x1, x2, -0.5, -0.5, 0.7)


def OR(x1: float, x2: float) -> int:
    """1 when at least one input is 1."""
    return _perceptron(x1, x2, 0.5, 0.5, -0.2)


def XOR(x1: float, x2: float) -> int:
    """1 when exactly one input is 1: a two-layer perceptron ``AND(NAND(x), OR(x))``."""
    return AND(NAND(x1, x2), OR(x1, x2))
