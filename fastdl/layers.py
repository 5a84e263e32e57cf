"""Layers with the book's interface (chapters 5-7): ``forward`` then ``backward``.

``forward(x)`` remembers what ``backward`` needs; ``backward(dout)`` returns
``dx`` and stores parameter gradients on the layer (``dW``, ``db``,
``dgamma``, ``dbeta``).  Parameters are held by reference, so an optimizer
that updates them in place updates the layer.  Neither method modifies its
arguments; outputs keep the input dtype.  Convolution, pooling and the
softmax cross-entropy run through :mod:`fastdl.ops` (the active backend).

Fixed with respect to the book: ``Relu.backward`` no longer writes into
``dout``; ``Pooling`` honours ``pad`` and pads with -inf; ``SoftmaxWithLoss``
uses log-sum-exp (no loss cap) and rejects labels out of range;
``BatchNormalization`` refuses a training batch of one sample.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
from numpy.typing import ArrayLike

from . import functions, ops
from .init import RNGLike, as_rng

__all__ = [
    "Affine",
    "Relu",
    "Sigmoid",
    "SoftmaxWithLoss",
    "Dropout",
    "BatchNormalization",
    "Convolution",
    "Pooling",
    "MulLayer",
    "AddLayer",
]


class Relu:
    """``max(0, x)``; the gradient is ``dout`` where ``x > 0`` and 0 elsewhere."""

    def __init__(self) -> None:
        self.active: Optional[np.ndarray] = None  # x > 0 (the book keeps the opposite, x <= 0)

    def forward(self, x: np.ndarray) -> np.ndarray:
        """x (any shape) -> same shape and dtype (NaN propagates).  One pass on the active
        backend (``ops.relu_forward``) for the output and the mask."""
        y, self.active = ops.relu_forward(x)
        return y

    def backward(self, dout: np.ndarray) -> np.ndarray:
        """dout (forward's output shape) -> dx = dout * (x > 0), a new array."""
        return ops.relu_backward(dout, self.active)


class Sigmoid:
    """``1 / (1 + exp(-x))`` (overflow-safe); the gradient is ``out * (1 - out)``."""

    def __init__(self) -> None:
        self.out: Optional[np.ndarray] = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        """x (any shape) -> same shape and dtype."""
        self.out = functions.sigmoid(x)
        return self.out

    def backward(self, dout: np.ndarray) -> np.ndarray:
        """dout -> dx."""
        return dout * (1.0 - self.out) * self.out


class Affine:
    """``x @ W + b`` with W (D, M), b (M,).

    x may have any shape (N, ...) with ``prod(...) == D`` (e.g. conv feature
    maps (N, C, H, W)); it is flattened to (N, D), and ``backward`` returns dx
    in x's original shape.
    """

    def __init__(self, W: np.ndarray, b: np.ndarray) -> None:
        self.W = W
        self.b = b
        self.x: Optional[np.ndarray] = None
        self.original_x_shape: Optional[tuple] = None
        self.dW: Optional[np.ndarray] = None
        self.db: Optional[np.ndarray] = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        """x (N, ...) -> out (N, M)."""
        x = np.asarray(x)
        self.original_x_shape = x.shape
        if x.ndim == 0 or int(np.prod(x.shape[1:])) != self.W.shape[0]:
            raise ValueError(f"Affine with W of shape {self.W.shape} needs x of shape (N, ...) with "
                             f"{self.W.shape[0]} features per sample, got {x.shape}")
        self.x = x.reshape(x.shape[0], -1)
        return self.x @ self.W + self.b

    def backward(self, dout: np.ndarray) -> np.ndarray:
        """dout (N, M) -> dx (forward's x shape); sets ``dW`` (D, M) and ``db`` (M,)."""
        self.dW = self.x.T @ dout
        self.db = np.sum(dout, axis=0)
        return (dout @ self.W.T).reshape(self.original_x_shape)


class SoftmaxWithLoss:
    """Softmax followed by the mean cross-entropy loss, fused (``ops.softmax_cross_entropy``).

    ``forward(x, t)``: x (N, K) logits; t int labels (N,) in ``[0, K)`` or
    targets (N, K) (one-hot or a distribution).  Returns the loss, a Python
    float.  ``backward(dout=1)`` returns ``dout * (softmax(x) - t) / N``.
    """

    def __init__(self) -> None:
        self.loss: Optional[float] = None
        self.x: Optional[np.ndarray] = None
        self.t: Optional[np.ndarray] = None
        self._dx: Optional[np.ndarray] = None

    @property
    def y(self) -> np.ndarray:
        """Softmax of the last forward's logits, (N, K)."""
        return functions.softmax(self.x)

    def forward(self, x: np.ndarray, t: ArrayLike) -> float:
        """x (N, K), t (N,) int or (N, K) -> mean loss (float)."""
        x = np.asarray(x)
        t = np.asarray(t)
        if t.ndim == 2 and not np.issubdtype(t.dtype, np.floating) and t.dtype != np.bool_:
            t = t.astype(x.dtype)  # integer one-hot targets
        self.loss, self._dx = ops.softmax_cross_entropy(x, t)
        self.x, self.t = x, t
        return self.loss

    def backward(self, dout: float = 1) -> np.ndarray:
        """Gradient of ``dout * loss`` with respect to the logits, (N, K), logits' dtype."""
        return self._dx * self._dx.dtype.type(dout)


class Dropout:
    """The book's dropout: in training keep each unit with probability ``1 - dropout_ratio``.

    Training multiplies by a random 0/1 mask; inference multiplies by
    ``1 - dropout_ratio`` (the book's scaling, kept so its trained weights
    give its accuracies).  ``rng`` (seed or Generator) makes masks reproducible;
    ``forward(x, mask=...)`` uses a given mask instead (for tests).
    """

    def __init__(self, dropout_ratio: float = 0.5, rng: RNGLike = None) -> None:
        if not 0 <= dropout_ratio < 1:
            raise ValueError(f"dropout_ratio must be in [0, 1), got {dropout_ratio!r}")
        self.dropout_ratio = float(dropout_ratio)
        self.rng = as_rng(rng)
        self.mask: Optional[np.ndarray] = None

    def forward(self, x: np.ndarray, train_flg: bool = True, mask: Optional[np.ndarray] = None) -> np.ndarray:
        """x (any shape) -> same shape and dtype; ``mask`` (x's shape, bool) overrides the draw."""
        x = np.asarray(x)
        if not train_flg:
            return x * x.dtype.type(1.0 - self.dropout_ratio)
        if mask is None:
            mask = self.rng.random(x.shape) > self.dropout_ratio
        else:
            mask = np.asarray(mask, dtype=bool)
            if mask.shape != x.shape:
                raise ValueError(f"mask must have x's shape {x.shape}, got {mask.shape}")
        self.mask = mask
        return np.multiply(x, mask, dtype=x.dtype)

    def backward(self, dout: np.ndarray) -> np.ndarray:
        """dout -> dx = dout * mask (of the last training forward)."""
        dout = np.asarray(dout)
        return np.multiply(dout, self.mask, dtype=dout.dtype)


class BatchNormalization:
    """Batch normalisation ``gamma * (x - mean) / sqrt(var + eps) + beta`` (book chapter 6).

    As in the book, x (N, D) is normalised per feature; any other x (N, ...)
    -- e.g. conv maps (N, C, H, W) -- is flattened to (N, D) first, so gamma
    and beta have ``D = prod(x.shape[1:])`` elements.  Training uses the batch
    statistics and updates ``running_mean``/``running_var`` with ``momentum``;
    inference uses the running statistics (zeros and ones until trained).
    ``eps`` is the book's 10e-7.
    """

    def __init__(self, gamma: np.ndarray, beta: np.ndarray, momentum: float = 0.9,
                 running_mean: Optional[np.ndarray] = None, running_var: Optional[np.ndarray] = None,
                 eps: float = 10e-7) -> None:
        self.gamma = gamma
        self.beta = beta
        self.momentum = momentum
        self.eps = eps
        self.input_shape: Optional[tuple] = None
        self.running_mean = running_mean
        self.running_var = running_var
        self.batch_size: Optional[int] = None
        self.xc = self.xn = self.std = None
        self.dgamma: Optional[np.ndarray] = None
        self.dbeta: Optional[np.ndarray] = None

    def forward(self, x: np.ndarray, train_flg: bool = True) -> np.ndarray:
        """x (N, D) or (N, ...) -> same shape and dtype."""
        x = np.asarray(x)
        self.input_shape = x.shape
        x2 = x.reshape(x.shape[0], -1)
        D = x2.shape[1]
        if self.gamma.size != D or self.beta.size != D:
            raise ValueError(f"BatchNormalization with {self.gamma.size} features got x of shape {x.shape} "
                             f"({D} features per sample)")
        if self.running_mean is None:
            self.running_mean = np.zeros(D, dtype=x.dtype)
            self.running_var = np.ones(D, dtype=x.dtype)
        gamma, beta = self.gamma.reshape(D), self.beta.reshape(D)
        if train_flg:
            if x2.shape[0] < 2:
                raise ValueError(f"BatchNormalization needs at least 2 samples in training, got x of shape {x.shape}")
            mu = x2.mean(axis=0)
            xc = x2 - mu
            var = np.mean(xc ** 2, axis=0)
            std = np.sqrt(var + x.dtype.type(self.eps))
            xn = xc / std
            self.batch_size, self.xc, self.xn, self.std = x2.shape[0], xc, xn, std
            m = self.momentum
            self.running_mean = (m * self.running_mean + (1 - m) * mu).astype(x.dtype)
            self.running_var = (m * self.running_var + (1 - m) * var).astype(x.dtype)
        else:
            xn = (x2 - self.running_mean) / np.sqrt(self.running_var + x.dtype.type(self.eps))
        return (gamma * xn + beta).reshape(self.input_shape)

    def backward(self, dout: np.ndarray) -> np.ndarray:
        """dout (forward's shape) -> dx; sets ``dgamma`` and ``dbeta`` (gamma's shape)."""
        dout2 = np.asarray(dout).reshape(dout.shape[0], -1)
        D = dout2.shape[1]
        self.dbeta = dout2.sum(axis=0).reshape(self.beta.shape)
        self.dgamma = np.sum(self.xn * dout2, axis=0).reshape(self.gamma.shape)
        dxn = self.gamma.reshape(D) * dout2
        dxc = dxn / self.std
        dstd = -np.sum((dxn * self.xc) / (self.std * self.std), axis=0)
        dvar = 0.5 * dstd / self.std
        dxc = dxc + (2.0 / self.batch_size) * self.xc * dvar
        dmu = np.sum(dxc, axis=0)
        dx = dxc - dmu / self.batch_size
        return dx.reshape(self.input_shape)


class Convolution:
    """2-D convolution (cross-correlation): W (FN, C, FH, FW), b (FN,), ``stride``, ``pad``.

    x (N, C, H, W) -> (N, FN, OH, OW) with ``OH = (H + 2*pad - FH) // stride + 1``.
    Set ``need_dx = False`` on a network's first layer: backward then skips dx
    and returns None.
    """

    def __init__(self, W: np.ndarray, b: np.ndarray, stride: int = 1, pad: int = 0) -> None:
        self.W = W
        self.b = b
        self.stride = stride
        self.pad = pad
        self.need_dx = True
        self.dW: Optional[np.ndarray] = None
        self.db: Optional[np.ndarray] = None
        self._ctx: Optional[ops.ConvContext] = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        """x (N, C, H, W) -> (N, FN, OH, OW), x's dtype."""
        out, self._ctx = ops.conv2d_forward(x, self.W, self.b, self.stride, self.pad)
        return out

    def backward(self, dout: np.ndarray) -> Optional[np.ndarray]:
        """dout (N, FN, OH, OW) -> dx (N, C, H, W) or None; sets ``dW`` and ``db``."""
        dx, self.dW, self.db = ops.conv2d_backward(dout, self._ctx, self.need_dx)
        return dx


class Pooling:
    """Max pooling over ``pool_h x pool_w`` windows; padding acts as -inf.

    x (N, C, H, W) -> (N, C, OH, OW) with ``OH = (H + 2*pad - pool_h) // stride + 1``.
    The gradient goes to the first maximum of each window.
    """

    def __init__(self, pool_h: int, pool_w: int, stride: int = 2, pad: int = 0) -> None:
        self.pool_h = pool_h
        self.pool_w = pool_w
        self.stride = stride
        self.pad = pad
        self.x_shape: Optional[tuple] = None
        self.arg_max: Optional[np.ndarray] = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        """x (N, C, H, W) -> (N, C, OH, OW), x's dtype."""
        out, self.arg_max = ops.maxpool2d_forward(x, self.pool_h, self.pool_w, self.stride, self.pad)
        self.x_shape = np.shape(x)
        return out

    def backward(self, dout: np.ndarray) -> np.ndarray:
        """dout (N, C, OH, OW) -> dx (N, C, H, W)."""
        return ops.maxpool2d_backward(dout, self.arg_max, self.x_shape, self.pool_h, self.pool_w,
                                      self.stride, self.pad)


class MulLayer:
    """Multiplication node of the book's computational graph (chapter 5): ``out = x * y``.

    x, y: numbers or arrays of the same shape.  ``backward(dout)`` returns
    ``(dout * y, dout * x)``, the gradients with respect to x and y.
    """

    def __init__(self) -> None:
        self.x = None
        self.y = None

    def forward(self, x, y):
        """Remember x and y; return ``x * y``."""
        self.x = x
        self.y = y
        return x * y

    def backward(self, dout):
        """dout -> ``(dx, dy) = (dout * y, dout * x)``."""
        if self.x is None:
            raise RuntimeError("MulLayer.backward called before forward")
        return dout * self.y, dout * self.x


class AddLayer:
    """Addition node of the book's computational graph (chapter 5): ``out = x + y``.

    ``backward(dout)`` passes dout through to both inputs: ``(dout, dout)``.
    """

    def forward(self, x, y):
        """Return ``x + y``."""
        return x + y

    def backward(self, dout):
        """dout -> ``(dx, dy) = (dout * 1, dout * 1)``."""
        return dout * 1, dout * 1
