"""Numerical differentiation and gradient checking (book chapters 4-5).

Central differences ``(f(x + h) - f(x - h)) / (2h)`` with the book's
``h = 1e-4``.  Use float64: in float32 the rounding error of ``f`` is of the
order of the difference itself.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

__all__ = ["numerical_diff", "numerical_gradient", "gradient_descent", "gradient_check"]


def numerical_diff(f: Callable[[float], float], x: float, h: float = 1e-4) -> float:
    """Derivative of a scalar function ``f`` at ``x`` by central difference."""
    return (f(x + h) - f(x - h)) / (2 * h)


def numerical_gradient(f: Callable[[np.ndarray], Any], x: np.ndarray, h: float = 1e-4) -> np.ndarray:
    """Gradient of the scalar ``f(x)`` with respect to every element of ``x``.

    x: a writable float ndarray of any shape.  Each element is perturbed in
    place by +h and -h (so ``f`` may also ignore its argument and read ``x``
    through a model, as the book's networks do) and restored exactly
    afterwards, also when ``f`` raises.  Returns an array of x's shape and dtype.
    """
    if not isinstance(x, np.ndarray) or not np.issubdtype(x.dtype, np.floating):
        raise TypeError(f"x must be a float ndarray, got {type(x).__name__} "
                        f"{getattr(x, 'dtype', '')}".rstrip())
    grad = np.empty_like(x)
    for idx in np.ndindex(x.shape):
        tmp = x[idx]
        try:
            x[idx] = tmp + h
            fxh1 = float(f(x))
            x[idx] = tmp - h
            fxh2 = float(f(x))
        finally:
            x[idx] = tmp
        grad[idx] = (fxh1 - fxh2) / (2 * h)
    return grad


def gradient_descent(f: Callable[[np.ndarray], Any], init_x: np.ndarray, lr: float = 0.01,
                     step_num: int = 100) -> np.ndarray:
    """Minimise ``f`` by ``step_num`` steps ``x -= lr * grad``, from a copy of ``init_x``."""
    x = np.array(init_x)
    if not np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float64)
    for _ in range(step_num):
        x -= lr * numerical_gradient(f, x)
    return x


def gradient_check(network: Any, x: np.ndarray, t: np.ndarray, h: float = 1e-4,
                   floor: float = 1e-6) -> dict[str, float]:
    """Compare ``network.gradient(x, t)`` (backprop) with numerical gradients of its loss.

    ``network`` has ``params`` (dict of arrays), ``gradient(x, t)`` and
    ``loss(x, t, train_flg=True)`` -- every fastdl model does.  Build it in
    float64 and without dropout (a random mask makes the loss non-smooth).
    Returns, per parameter name, ``max|backprop - numerical|`` divided by the
    largest magnitude of either gradient, or by ``floor`` when that is smaller
    (a gradient that is truly 0, e.g. of a bias before batch norm, comes out
    numerically as rounding noise of about 1e-12).  The model's
    state (parameters and batch-norm running statistics) is restored afterwards.
    """
    saved = network.state_dict() if hasattr(network, "state_dict") else None
    try:
        grads = network.gradient(x, t)
        errors = {}
        for key, param in network.params.items():
            num = numerical_gradient(lambda _: network.loss(x, t, train_flg=True), param, h)
            scale = max(float(np.abs(grads[key]).max(initial=0)), float(np.abs(num).max(initial=0)))
            diff = float(np.abs(grads[key] - num).max(initial=0))
            errors[key] = diff / max(scale, floor)
    finally:
        if saved is not None:
            network.load_state_dict(saved)
    return errors
