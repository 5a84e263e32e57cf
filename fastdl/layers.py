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

Bad input is refused with a message naming the layer and the argument:
``backward`` before ``forward`` raises RuntimeError; a ``dout`` that is not of
the shape ``forward`` returned raises ValueError; complex, bool or object
input raises TypeError.  An empty batch (N = 0) gives an empty result.
"""
from __future__ import annotations

import math
import numbers
from typing import Any, Optional

import numpy as np
from numpy.typing import ArrayLike

from . import functions, ops
from .backends import numpy_ref as _ref
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


def _input(layer: str, x: Any, name: str = "x") -> np.ndarray:
    """``x`` as an array of a real dtype (int or float); TypeError for complex, bool or object."""
    a = np.asarray(x)
    if a.dtype == np.bool_ or a.dtype.kind not in "fiu":
        raise TypeError(f"{layer}: {name} must be real numbers (int or float), got dtype {a.dtype}")
    return a


_KERNEL_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def _one_float_dtype(*arrays: Any) -> bool:
    """Whether all are arrays of one dtype, float32 or float64 (what the backends' kernels take)."""
    dt = getattr(arrays[0], "dtype", None)
    return dt in _KERNEL_FLOATS and all(getattr(a, "dtype", None) == dt for a in arrays[1:])


def _dout(layer: str, dout: Any, shape: Optional[tuple], what: str = "forward") -> np.ndarray:
    """The shared check of every ``backward``: called after ``forward``, dout of its output shape.

    ``shape`` is the shape of what ``forward`` returned, None before the first forward.
    """
    if shape is None:
        raise RuntimeError(f"{layer}.backward called before {what}: run {layer}.forward first")
    d = _input(layer, dout, "dout")
    if d.shape != tuple(shape):
        raise ValueError(f"{layer}.backward: dout must have the shape of forward's output {tuple(shape)}, "
                         f"got {d.shape}")
    return d


def _same_dtype(layer: str, x: np.ndarray, W: np.ndarray, book: str) -> None:
    """fastdl does not mix float32 and float64 in a kernel; the message names the book's usage."""
    if x.dtype != W.dtype and np.issubdtype(x.dtype, np.floating):
        raise TypeError(f"{layer}: x has dtype {x.dtype} but W has {W.dtype}; fastdl does not mix dtypes "
                        f"({book}). Cast one of them, e.g. x.astype(W.dtype) or W.astype(x.dtype)")


class Relu:
    """``max(0, x)``; the gradient is ``dout`` where ``x > 0`` and 0 elsewhere."""

    def __init__(self) -> None:
        self.active: Optional[np.ndarray] = None  # x > 0 (the book keeps the opposite, x <= 0)

    def forward(self, x: np.ndarray) -> np.ndarray:
        """x (any shape) -> same shape and dtype (NaN propagates).  One pass on the active
        backend (``ops.relu_forward``) for the output and the mask."""
        y, self.active = ops.relu_forward(_input("Relu", x))
        return y

    def backward(self, dout: np.ndarray) -> np.ndarray:
        """dout (forward's output shape) -> dx = dout * (x > 0), a new array."""
        dout = _dout("Relu", dout, None if self.active is None else self.active.shape)
        return ops.relu_backward(dout, self.active)


class Sigmoid:
    """``1 / (1 + exp(-x))`` (overflow-safe); the gradient is ``out * (1 - out)``."""

    def __init__(self) -> None:
        self.out: Optional[np.ndarray] = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        """x (any shape) -> same shape and dtype."""
        self.out = functions.sigmoid(_input("Sigmoid", x))
        return self.out

    def backward(self, dout: np.ndarray) -> np.ndarray:
        """dout (forward's output shape) -> dx."""
        dout = _dout("Sigmoid", dout, None if self.out is None else self.out.shape)
        dx = np.subtract(1.0, self.out, dtype=np.result_type(self.out, dout))
        dx *= self.out
        dx *= dout
        return dx


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
        """x (N, ...) -> out (N, M); N = 0 gives an empty (0, M)."""
        x = _input("Affine", x)
        if x.ndim == 0 or math.prod(x.shape[1:]) != self.W.shape[0]:
            raise ValueError(f"Affine with W of shape {self.W.shape} needs x of shape (N, ...) with "
                             f"{self.W.shape[0]} features per sample, got {x.shape}")
        self.original_x_shape = x.shape
        self.x = x.reshape(x.shape[0], self.W.shape[0])  # not -1: an empty batch has no size to infer
        if _one_float_dtype(self.x, self.W, self.b) and self.b.ndim == 1:
            return ops.affine_forward(self.x, self.W, self.b)  # the active backend's product
        out = self.x @ self.W
        if np.result_type(out, self.b) != out.dtype:
            return out + self.b  # b of a wider dtype: the sum takes it, as x @ W + b would
        out += self.b  # in place: one pass, no second (N, M) array
        return out

    def backward(self, dout: np.ndarray) -> np.ndarray:
        """dout (N, M) -> dx (forward's x shape); sets ``dW`` (D, M) and ``db`` (M,)."""
        shape = None if self.x is None else (self.x.shape[0],) + tuple(np.shape(self.W)[1:])
        dout = _dout("Affine", dout, shape)
        if _one_float_dtype(dout, self.x, self.W):
            dx, self.dW, self.db = ops.affine_backward(dout, self.x, self.W)
            return dx.reshape(self.original_x_shape)
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
        """x (N, K), t (N,) int or (N, K) -> mean loss (float).

        Integer labels of shape (N, 1), as the book's ch. 7 ``gradient_check``
        passes them (``T = np.array([1]).reshape((1,1))``), are labels, as in the
        book (its rule: t is one-hot only when ``t.size == y.size``).
        """
        x = _input("SoftmaxWithLoss", x)
        t = _input("SoftmaxWithLoss", t, "t")
        t = functions.book_labels(t, x.shape)
        if t.ndim == 2 and not np.issubdtype(t.dtype, np.floating):
            t = t.astype(x.dtype)  # integer one-hot targets
        self.loss, self._dx = ops.softmax_cross_entropy(x, t)
        self.x, self.t = x, t
        return self.loss

    def backward(self, dout: float = 1) -> np.ndarray:
        """Gradient of ``dout * loss`` (dout a scalar) with respect to the logits, (N, K), logits' dtype."""
        dout = _dout("SoftmaxWithLoss", dout, None if self._dx is None else ())
        return self._dx * self._dx.dtype.type(dout)


class Dropout:
    """The book's dropout: in training keep each unit with probability ``1 - dropout_ratio``.

    Training multiplies by a random 0/1 mask; inference multiplies by
    ``1 - dropout_ratio`` (the book's scaling, kept so its trained weights
    give its accuracies).  ``rng`` (seed or Generator) makes masks reproducible;
    without it (``rng=None``) masks are drawn from NumPy's global random state
    as the book does (``np.random.rand(*x.shape) > dropout_ratio``), so
    ``np.random.seed(...)`` reproduces them -- the same masks as the book's.
    ``forward(x, mask=...)`` uses a given mask instead (for tests).
    """

    def __init__(self, dropout_ratio: float = 0.5, rng: RNGLike = None) -> None:
        if isinstance(dropout_ratio, (bool, np.bool_)) or not isinstance(dropout_ratio, numbers.Real):
            raise TypeError(f"Dropout: dropout_ratio must be a number in [0, 1), got "
                            f"{type(dropout_ratio).__name__} {dropout_ratio!r}")
        if not 0 <= dropout_ratio < 1:
            raise ValueError(f"Dropout: dropout_ratio must be in [0, 1), got {dropout_ratio!r}")
        self.dropout_ratio = float(dropout_ratio)
        self.rng = None if rng is None else as_rng(rng)
        self.mask: Optional[np.ndarray] = None

    def forward(self, x: np.ndarray, train_flg: bool = True, mask: Optional[np.ndarray] = None) -> np.ndarray:
        """x (any shape) -> same shape and dtype; ``mask`` (x's shape, bool) overrides the draw."""
        x = _input("Dropout", x)
        if not np.issubdtype(x.dtype, np.floating):
            x = x.astype(np.float64)  # int * 0.5 must not round to 0
        if not train_flg:
            return x * x.dtype.type(1.0 - self.dropout_ratio)
        if mask is None:
            draw = np.random.random_sample if self.rng is None else self.rng.random  # rand(*shape) is random_sample(shape)
            mask = draw(x.shape) > self.dropout_ratio
        else:
            mask = np.asarray(mask, dtype=bool)
            if mask.shape != x.shape:
                raise ValueError(f"mask must have x's shape {x.shape}, got {mask.shape}")
        self.mask = mask
        return np.multiply(x, mask, dtype=x.dtype)

    def backward(self, dout: np.ndarray) -> np.ndarray:
        """dout -> dx = dout * mask (of the last training forward)."""
        dout = _dout("Dropout", dout, None if self.mask is None else self.mask.shape, "a training forward")
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
        self._train_shape: Optional[tuple] = None
        self.dgamma: Optional[np.ndarray] = None
        self.dbeta: Optional[np.ndarray] = None

    def forward(self, x: np.ndarray, train_flg: bool = True) -> np.ndarray:
        """x (N, D) or (N, ...) -> same shape and dtype; N = 0 gives an empty result."""
        x = _input("BatchNormalization", x)
        if not np.issubdtype(x.dtype, np.floating):
            x = x.astype(np.float64)
        if x.ndim == 0:
            raise ValueError(f"BatchNormalization needs x of shape (N, D) or (N, ...), got {x.shape}")
        D = math.prod(x.shape[1:])
        x2 = x.reshape(x.shape[0], D)  # not -1: an empty batch has no size to infer
        if self.gamma.size != D or self.beta.size != D:
            raise ValueError(f"BatchNormalization with {self.gamma.size} features got x of shape {x.shape} "
                             f"({D} features per sample)")
        if self.running_mean is None:
            self.running_mean = np.zeros(D, dtype=x.dtype)
            self.running_var = np.ones(D, dtype=x.dtype)
        gamma, beta = self.gamma.reshape(D), self.beta.reshape(D)
        self.input_shape = x.shape
        if train_flg:
            if x2.shape[0] == 1:
                raise ValueError(
                    f"BatchNormalization needs at least 2 samples in training (the variance of one sample "
                    f"is 0, so every output would be beta), got x of shape {x.shape}. The book's ch06 "
                    f"batch_norm_gradient_check checks gradients on x_train[:1]: use 2 or more samples, "
                    f"e.g. x_train[:2], t_train[:2], or forward with train_flg=False")
            if x2.shape[0] == 0:  # an empty batch: empty output, running statistics untouched
                mu = np.zeros(D, dtype=x.dtype)
                xc = xn = x2
                std = np.ones(D, dtype=x.dtype)
                self.batch_size, self.xc, self.xn, self.std = 0, xc, xn, std
                self._train_shape = x.shape
                return (gamma * xn + beta).reshape(x.shape)
            # the active backend's kernel (one call on the fast ones), or with mixed dtypes the
            # reference's NumPy formulas and promotion rules, as the book's code
            kernels = ops if self._one_dtype(x) else _ref
            y, xc, xn, std, mu, var = kernels.batchnorm_forward(x2, gamma, beta, self.eps)
            self.batch_size, self.xc, self.xn, self.std = x2.shape[0], xc, xn, std
            self._train_shape = x.shape
            m = self.momentum
            self.running_mean = (m * self.running_mean + (1 - m) * mu).astype(x.dtype)
            self.running_var = (m * self.running_var + (1 - m) * var).astype(x.dtype)
            return y.reshape(x.shape)
        else:
            xn = (x2 - self.running_mean) / np.sqrt(self.running_var + x.dtype.type(self.eps))
        return (gamma * xn + beta).reshape(x.shape)

    def _one_dtype(self, a: np.ndarray) -> bool:
        """Whether ``a``, gamma and beta share a float32/float64 dtype: then the kernels of
        :mod:`fastdl.ops` run the layer; else NumPy's promotion rules, as the book's code."""
        return (a.dtype in (np.float32, np.float64) and np.asarray(self.gamma).dtype == a.dtype
                and np.asarray(self.beta).dtype == a.dtype)

    def backward(self, dout: np.ndarray) -> np.ndarray:
        """dout (the last training forward's shape) -> dx; sets ``dgamma`` and ``dbeta`` (gamma's shape)."""
        dout = _dout("BatchNormalization", dout, self._train_shape, "a training forward")
        D = self.xn.shape[1]
        dout2 = dout.reshape(dout.shape[0], D)
        if dout2.shape[0] == 0:
            self.dbeta = np.zeros(self.beta.shape, dtype=self.xn.dtype)
            self.dgamma = np.zeros(self.gamma.shape, dtype=self.xn.dtype)
            return np.zeros(self._train_shape, dtype=self.xn.dtype)
        one = self._one_dtype(dout2) and self.xn.dtype == dout2.dtype and self.std.dtype == dout2.dtype
        dx, dgamma, dbeta = (ops if one else _ref).batchnorm_backward(dout2, self.xc, self.xn, self.std,
                                                                      self.gamma.reshape(D))
        self.dbeta, self.dgamma = dbeta.reshape(self.beta.shape), dgamma.reshape(self.gamma.shape)
        return dx.reshape(self._train_shape)


class Convolution:
    """2-D convolution (cross-correlation): W (FN, C, FH, FW), b (FN,), ``stride``, ``pad``.

    x (N, C, H, W) -> (N, FN, OH, OW) with ``OH = (H + 2*pad - FH) // stride + 1``.
    Set ``need_dx = False`` on a network's first layer: backward then skips dx
    and returns None.  A scalar ``b`` (the book's ch. 7 ``apply_filter`` passes
    ``Convolution(w, 0)``) is the same bias for every filter: an (FN,) array.
    """

    def __init__(self, W: np.ndarray, b: np.ndarray, stride: int = 1, pad: int = 0) -> None:
        self.W = W
        if np.ndim(b) == 0 and np.ndim(W) == 4:
            b = np.full(np.shape(W)[0], b, dtype=np.asarray(W).dtype)
        self.b = b
        self.stride = stride
        self.pad = pad
        self.need_dx = True
        self.dW: Optional[np.ndarray] = None
        self.db: Optional[np.ndarray] = None
        self._ctx: Optional[ops.ConvContext] = None

    def _check_input(self, x: Any) -> np.ndarray:
        """x as an array of a real dtype, W's when it is a float (also for the fused steps)."""
        x = _input("Convolution", x)
        _same_dtype("Convolution", x, np.asarray(self.W), "the book's ch07 apply_filter convolves a float32 "
                    "image from matplotlib's imread with float64 weights")
        return x

    def forward(self, x: np.ndarray) -> np.ndarray:
        """x (N, C, H, W) -> (N, FN, OH, OW), x's dtype (W's and b's dtype must be x's)."""
        out, self._ctx = ops.conv2d_forward(self._check_input(x), self.W, self.b, self.stride, self.pad)
        return out

    def backward(self, dout: np.ndarray) -> Optional[np.ndarray]:
        """dout (N, FN, OH, OW) -> dx (N, C, H, W) or None; sets ``dW`` and ``db``."""
        dout = _dout("Convolution", dout, None if self._ctx is None else self._ctx.y_shape)
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
        x = _input("Pooling", x)
        out, self.arg_max = ops.maxpool2d_forward(x, self.pool_h, self.pool_w, self.stride, self.pad)
        self.x_shape = np.shape(x)
        return out

    def backward(self, dout: np.ndarray) -> np.ndarray:
        """dout (N, C, OH, OW) -> dx (N, C, H, W)."""
        dout = _dout("Pooling", dout, None if self.arg_max is None else self.arg_max.shape)
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
