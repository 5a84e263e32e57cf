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


def _scalar(value: Any, what: str) -> float:
    """``value`` (a number or an array of one element) as a float; ValueError otherwise."""
    a = np.asarray(value)
    if a.size != 1:
        raise ValueError(f"{what} must return a scalar, got an array of shape {a.shape}")
    return float(a.reshape(-1)[0])


def numerical_gradient(f: Callable[[np.ndarray], Any], x: np.ndarray, h: float = 1e-4) -> np.ndarray:
    """Gradient of the scalar ``f(x)`` with respect to every element of ``x``.

    x: a writable float ndarray of any shape.  Each element is perturbed in
    place by +h and -h (so ``f`` may also ignore its argument and read ``x``
    through a model, as the book's networks do) and restored exactly
    afterwards, also when ``f`` raises.  Returns an array of x's shape and dtype.

    A batch of points, as in the book's ch. 4 ``gradient_2d``: when x is 2-D
    (or more) and ``f(x)`` returns one value per row (shape ``(len(x),)``)
    rather than a scalar, row ``i`` of the result is the gradient of ``f`` at
    the point ``x[i]`` (``f`` is then called with the rows, as the book does).
    """
    if not isinstance(x, np.ndarray) or not np.issubdtype(x.dtype, np.floating):
        raise TypeError(f"x must be a float ndarray, got {type(x).__name__} "
                        f"{getattr(x, 'dtype', '')}".rstrip())
    grad = np.empty_like(x)
    if x.ndim >= 2 and x.size:
        probe = np.asarray(f(x))
        if probe.size != 1:
            if probe.shape != (x.shape[0],):
                raise ValueError(f"f must return a scalar, or one value per row of x (shape "
                                 f"({x.shape[0]},)) for a batch of points; got shape {probe.shape}")
            for i in range(x.shape[0]):  # the book's batch: one point per row
                grad[i] = numerical_gradient(f, x[i], h)
            return grad
    for idx in np.ndindex(x.shape):
        tmp = x[idx]
        try:
            x[idx] = tmp + h
            fxh1 = _scalar(f(x), "f")
            x[idx] = tmp - h
            fxh2 = _scalar(f(x), "f")
        finally:
            x[idx] = tmp
        grad[idx] = (fxh1 - fxh2) / (2 * h)
    return grad


def gradient_descent(f: Callable[[np.ndarray], Any], init_x: np.ndarray, lr: float = 0.01,
                     step_num: int = 100, return_history: bool = False):
    """Minimise ``f`` by ``step_num`` steps ``x -= lr * grad``, from a copy of ``init_x``.

    Returns the final x.  With ``return_history=True`` returns ``(x, x_history)``
    as the book's ch. 4 ``gradient_method`` does: ``x_history`` (step_num,
    *x.shape) holds x before each step (for the plot).  Note that the book's
    ``x, x_history = gradient_descent(...)`` without ``return_history=True``
    would unpack the final point itself.
    """
    x = np.array(init_x)
    if not np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float64)
    history = []
    for _ in range(step_num):
        if return_history:
            history.append(x.copy())
        x -= lr * numerical_gradient(f, x)
    if return_history:
        return x, np.array(history).reshape((len(history),) + x.shape)
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
