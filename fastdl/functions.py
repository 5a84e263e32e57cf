"""Activation functions, softmax and losses (book chapters 3-4).

Floating inputs keep their dtype (float32 stays float32); other inputs are
computed in float64.  Losses return a Python float.

Where this module differs from the book, on purpose:

* ``sigmoid`` never overflows (``exp`` of a large negative number is never taken).
* ``relu_grad`` is 0 at 0, like the ``Relu`` layer (the book's is 1 there).
* ``cross_entropy_error`` returns the exact ``-log(y)``: the book adds 1e-7,
  which caps the loss of a confidently wrong prediction at 16.1.  A
  probability of exactly 0 for the true class costs ``inf``.  To get finite,
  exact losses from scores use :func:`softmax_loss`, which works on logits
  with log-sum-exp (logits ``[0, 100]`` with label 0 cost 100).
* Labels out of range (including negative ones) raise ``IndexError``
  instead of wrapping around.
"""
from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from . import ops

__all__ = [
    "identity_function",
    "step_function",
    "sigmoid",
    "sigmoid_grad",
    "relu",
    "relu_grad",
    "softmax",
    "sum_squared_error",
    "cross_entropy_error",
    "softmax_loss",
]


def _float(x: ArrayLike) -> np.ndarray:
    """x as an array of its own float dtype, or float64 when it is not floating."""
    a = np.asarray(x)
    return a if np.issubdtype(a.dtype, np.floating) else a.astype(np.float64)


def identity_function(x: ArrayLike) -> ArrayLike:
    """Return ``x`` unchanged (the output activation of regression)."""
    return x


def step_function(x: ArrayLike) -> np.ndarray:
    """1 where ``x > 0``, else 0; same shape, x's float dtype (int64 for non-float input)."""
    a = np.asarray(x)
    return (a > 0).astype(a.dtype if np.issubdtype(a.dtype, np.floating) else np.int64)


def sigmoid(x: ArrayLike) -> np.ndarray:
    """``1 / (1 + exp(-x))`` elementwise, without overflow for large ``|x|``."""
    a = _float(x)
    s = np.negative(a, out=np.empty_like(a))  # out=: an array for 0-d input too
    tame = a.size == 0 or a.min() >= -30  # no exp(-a) can overflow (False for NaN too)
    if tame:
        np.exp(s, out=s)
    else:
        with np.errstate(over="ignore"):
            np.exp(s, out=s)  # exp(-a); inf below about -88 (float32) or -709 (float64)
    s += 1
    np.reciprocal(s, out=s)  # 1 / (1 + exp(-a)), 0 where exp(-a) overflowed
    if not tame:  # there exp(a) / (1 + exp(a)) keeps the tiny (subnormal) values
        tail = a < -30
        e = np.exp(a[tail])
        s[tail] = e / (1 + e)
    return s


def sigmoid_grad(x: ArrayLike) -> np.ndarray:
    """Derivative of :func:`sigmoid` at ``x``: ``s * (1 - s)``."""
    s = sigmoid(x)
    return (1 - s) * s


def relu(x: ArrayLike) -> np.ndarray:
    """``max(0, x)`` elementwise (NaN propagates)."""
    return np.maximum(0, _float(x))


def relu_grad(x: ArrayLike) -> np.ndarray:
    """Derivative of :func:`relu`: 1 where ``x > 0``, else 0 (0 at 0, as the Relu layer)."""
    a = _float(x)
    return (a > 0).astype(a.dtype)


def softmax(x: ArrayLike) -> np.ndarray:
    """Softmax over the last axis: (K,) or (N, K) (any ndim) -> same shape, rows sum to 1.

    The row maximum is subtracted first, so large scores do not overflow.
    """
    a = _float(x)
    if a.ndim == 0:
        raise ValueError("softmax needs at least 1-D input")
    z = a - a.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def sum_squared_error(y: ArrayLike, t: ArrayLike) -> float:
    """``0.5 * sum((y - t)**2)`` over all elements (not averaged, as the book)."""
    y, t = _float(y), _float(t)
    if y.shape != t.shape:
        raise ValueError(f"y and t must have the same shape, got {y.shape} and {t.shape}")
    return float(0.5 * np.sum((y.astype(np.float64) - t) ** 2))


def book_labels(t: np.ndarray, y_shape: tuple) -> np.ndarray:
    """Integer labels of shape (N, 1) for scores y (N, K), K > 1, as labels (N,).

    The book's losses treat t as one-hot only when ``t.size == y.size``, so its
    ch. 7 ``gradient_check`` passes the label 1 as ``np.array([1]).reshape((1,1))``.
    Anything else is returned unchanged.
    """
    if (len(y_shape) == 2 and y_shape[1] != 1 and t.shape == (y_shape[0], 1)
            and np.issubdtype(t.dtype, np.integer)):
        return t.reshape(y_shape[0])
    return t


def _labels(t: np.ndarray, n: int, k: int) -> np.ndarray:
    """Validate integer labels t (n,) against k classes."""
    if t.shape != (n,):
        raise ValueError(f"integer labels must have shape ({n},), got {t.shape}")
    bad = (t < 0) | (t >= k)
    if bad.any():
        raise IndexError(f"label {t[bad][0]} out of range [0, {k})")
    return t


def _batch(y: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Make 1-D y a batch of one; turn integer one-hot targets into floats of y's dtype."""
    if t.dtype == np.bool_:
        raise TypeError("t must be integer labels or float targets, got bool")
    if y.ndim == 1:
        y = y.reshape(1, -1)
        t = t.reshape(1, -1) if t.size == y.size and t.ndim == 1 else t.reshape(-1)
    if y.ndim != 2:
        raise ValueError(f"y must be 1-D or 2-D, got shape {y.shape}")
    t = book_labels(t, y.shape)
    if np.issubdtype(t.dtype, np.integer) and t.ndim == 2:
        t = t.astype(y.dtype)
    return y, t


def cross_entropy_error(y: ArrayLike, t: ArrayLike) -> float:
    """Mean cross-entropy of probabilities ``y`` against labels ``t``.

    y: (K,) or (N, K) probabilities.  t: integer class labels (N,) (a scalar
    for 1-D y), or targets of y's shape (one-hot or any distribution).
    Returns ``-sum(t * log(y)) / N`` exactly, with ``0 * log(0) = 0``; a zero
    probability on a target class gives ``inf`` (no 1e-7 cap, see module doc).
    """
    y, t = _batch(_float(y), np.asarray(t))
    n, k = y.shape
    y64 = y.astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        if np.issubdtype(t.dtype, np.integer):
            t = _labels(t, n, k)
            total = -np.log(y64[np.arange(n), t]).sum()
        elif np.issubdtype(t.dtype, np.floating):
            if t.shape != y.shape:
                raise ValueError(f"target t must have y's shape {y.shape}, got {t.shape}")
            total = -np.where(t != 0, t * np.log(y64), 0.0).sum()
        else:
            raise TypeError(f"t must be integer labels or float targets, got dtype {t.dtype}")
    return float(total / n)


def softmax_loss(X: ArrayLike, t: ArrayLike) -> float:
    """Cross-entropy of ``softmax(X)`` against ``t``, computed from the logits.

    X: (K,) or (N, K) scores; t as in :func:`cross_entropy_error`.  Uses
    log-sum-exp, so the loss is exact even for very confident predictions.
    """
    X, t = _batch(_float(X), np.asarray(t))
    loss, _ = ops.softmax_cross_entropy(X, t)
    return loss
