"""Functional API of fastdl's kernels: validate once, then run the active backend.

Every function here checks its arguments (shapes, dtypes, hyperparameters,
labels), makes C-contiguous views or copies where needed (inputs are never
modified; ``adam_update`` alone updates its parameter and moments in place),
and calls the same-named kernel of the active backend.  A backend
that returns ``NotImplemented`` for a case falls back to the NumPy reference,
and the fallback is counted (see :func:`fastdl.show_config`).

Shapes: ``x`` (N, C, H, W); ``W`` (FN, C, kh, kw); ``b`` (FN,);
``OH = (H + 2*pad - kh) // stride + 1`` and likewise ``OW``.
Exceptions: ``TypeError`` for unsupported dtypes, ``ValueError`` for shapes
and hyperparameters, ``IndexError`` for labels out of range.
"""
from __future__ import annotations

import operator
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Sequence

import numpy as np

from . import backend as _backend
from .backends import numpy_ref as _ref
from .backends.contract import KERNELS, conv_output_size

__all__ = [*KERNELS, "conv_output_size", "ConvContext", "PoolContext", "ConvPoolContext"]

_FLOATS = (np.float32, np.float64)


# --------------------------------------------------------------------------- checks

def _float_array(a: Any, name: str, ndim: int | None = None) -> np.ndarray:
    """``a`` as a C-contiguous float32/float64 array (never a view that aliases a write)."""
    arr = np.asarray(a)
    if arr.dtype.type not in _FLOATS:
        raise TypeError(f"{name} must be float32 or float64, got dtype {arr.dtype}")
    if ndim is not None and arr.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {arr.shape}")
    return np.ascontiguousarray(arr)


def _real_array(a: Any, name: str) -> np.ndarray:
    """``a`` as an array of a real (integer or float, not bool) dtype; TypeError otherwise."""
    arr = np.asarray(a)
    if arr.dtype == np.bool_ or not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise TypeError(f"{name} must have a real dtype, got {arr.dtype}")
    return arr


def _same_dtype(x: np.ndarray, other: np.ndarray, name: str) -> None:
    if other.dtype != x.dtype:
        raise TypeError(f"{name} has dtype {other.dtype} but x has {x.dtype}; cast one of them")


def _int(v: Any, name: str, lo: int) -> int:
    try:
        if isinstance(v, bool):
            raise TypeError
        iv = operator.index(v)
    except TypeError:
        raise ValueError(f"{name} must be an int >= {lo}, got {v!r}") from None
    if iv < lo:
        raise ValueError(f"{name} must be >= {lo}, got {iv}")
    return iv


def _window(x_shape: Sequence[int], kh, kw, stride, pad, what: str):
    """Validate a window over spatial dims of x_shape; return (kh, kw, stride, pad, OH, OW)."""
    kh, kw = _int(kh, f"{what} height", 1), _int(kw, f"{what} width", 1)
    stride, pad = _int(stride, "stride", 1), _int(pad, "pad", 0)
    H, W = x_shape[2], x_shape[3]
    if kh > H + 2 * pad or kw > W + 2 * pad:
        raise ValueError(
            f"{what} ({kh}, {kw}) is larger than the padded input ({H + 2 * pad}, {W + 2 * pad})"
        )
    return kh, kw, stride, pad, conv_output_size(H, kh, stride, pad), conv_output_size(W, kw, stride, pad)


def _shape4(shape: Sequence[int], name: str) -> tuple[int, int, int, int]:
    try:
        s = tuple(operator.index(v) for v in shape)
    except TypeError:
        raise ValueError(f"{name} must be a 4-tuple of ints (N, C, H, W), got {shape!r}") from None
    if len(s) != 4 or min(s) < 0:
        raise ValueError(f"{name} must be a 4-tuple of non-negative ints (N, C, H, W), got {shape!r}")
    return s  # type: ignore[return-value]


# --------------------------------------------------------------------------- dispatch

def _call(kernel: str, *args):
    """Run ``kernel`` on the active backend; fall back to the reference on NotImplemented."""
    name = _backend.get_backend()
    mod = _backend.backend_module(name)
    out = getattr(mod, kernel)(*args)
    if out is NotImplemented:
        _backend.count_fallback(name, kernel)
        out = getattr(_ref, kernel)(*args)
    return out


def _backend_name(mod: ModuleType) -> str:
    """The registry name ('numpy', 'numba', 'cpp') of a backend kernel module."""
    for name, module_name in _backend._MODULES.items():
        if mod.__name__ == module_name:
            return name
    raise ValueError(f"{mod.__name__} is not a fastdl backend module")


class _ByBackendName:
    """Copy and pickle support for a context that holds its backend module.

    A module can be neither deep-copied nor pickled, so the state stores the backend's
    name and :meth:`__setstate__` looks the module up again (``copy.deepcopy(net)``
    after a forward pass, or pickling a network, works on every backend).
    """

    def __getstate__(self) -> dict:
        state = {f: getattr(self, f) for f in self.__dataclass_fields__}  # type: ignore[attr-defined]
        state["backend"] = _backend_name(state["backend"])
        return state

    def __setstate__(self, state: dict) -> None:
        state = dict(state)
        state["backend"] = _backend.backend_module(state["backend"])
        for k, v in state.items():
            object.__setattr__(self, k, v)  # frozen dataclass


@dataclass(frozen=True)
class _Context(_ByBackendName):
    """What a backward needs from its forward: the backend that ran it, that backend's private
    state, and the shapes and dtype the backward checks its arguments against."""

    backend: ModuleType
    state: Any
    x_shape: tuple
    y_shape: tuple
    dtype: np.dtype


@dataclass(frozen=True)
class ConvContext(_Context):
    """What :func:`conv2d_backward` needs: the backend that ran forward and its private state."""

    w_shape: tuple = ()
    fused: bool = False  # from conv2d_bias_relu_forward


@dataclass(frozen=True)
class PoolContext(_Context):
    """What :func:`relu_maxpool2d_backward` needs: the backend that ran forward and its state."""


@dataclass(frozen=True)
class ConvPoolContext(_Context):
    """What :func:`conv2d_relu_maxpool2d_backward` needs: the forward's backend and its state."""

    w_shape: tuple = ()


# --------------------------------------------------------------------------- kernels

def im2col(x, kh: int, kw: int, stride: int = 1, pad: int = 0) -> np.ndarray:
    """x (N, C, H, W) -> col (N*OH*OW, C*kh*kw); rows ordered (n, oy, ox), columns (c, ky, kx)."""
    x = _float_array(x, "x", 4)
    kh, kw, stride, pad, _, _ = _window(x.shape, kh, kw, stride, pad, "kernel")
    return _call("im2col", x, kh, kw, stride, pad)


def col2im(col, x_shape: Sequence[int], kh: int, kw: int, stride: int = 1, pad: int = 0) -> np.ndarray:
    """Adjoint of :func:`im2col`: col (N*OH*OW, C*kh*kw) -> x (N, C, H, W), overlaps summed."""
    col = _float_array(col, "col", 2)
    x_shape = _shape4(x_shape, "x_shape")
    kh, kw, stride, pad, OH, OW = _window(x_shape, kh, kw, stride, pad, "kernel")
    want = (x_shape[0] * OH * OW, x_shape[1] * kh * kw)
    if col.shape != want:
        raise ValueError(f"col must have shape {want} for x_shape {x_shape}, got {col.shape}")
    return _call("col2im", col, x_shape, kh, kw, stride, pad)


def _conv_args(x, W, b, stride, pad):
    """Validated (x, W, b, stride, pad) of a convolution; b None means zeros."""
    x = _float_array(x, "x", 4)
    W = _float_array(W, "W", 4)
    _same_dtype(x, W, "W")
    FN, C, kh, kw = W.shape
    if C != x.shape[1]:
        raise ValueError(f"W expects {C} input channels (W.shape={W.shape}) but x has {x.shape[1]} (x.shape={x.shape})")
    if b is None:
        b = np.zeros(FN, dtype=x.dtype)
    b = _float_array(b, "b", 1)
    _same_dtype(x, b, "b")
    if b.shape != (FN,):
        raise ValueError(f"b must have shape ({FN},), got {b.shape}")
    kh, kw, stride, pad, OH, OW = _window(x.shape, kh, kw, stride, pad, "kernel")
    return x, W, b, stride, pad


def _with_context(kernel: str, x: np.ndarray, *args):
    """Run a forward ``kernel`` whose state its own backend's backward reads: (mod, y, state)."""
    mod = _backend.backend_module()
    out = getattr(mod, kernel)(x, *args)
    if out is NotImplemented:
        _backend.count_fallback(_backend.get_backend(), kernel)
        mod = _ref
        out = getattr(_ref, kernel)(x, *args)
    y, state = out
    return mod, y, state


def conv2d_forward(x, W, b=None, stride: int = 1, pad: int = 0) -> tuple[np.ndarray, ConvContext]:
    """Convolution (cross-correlation, as the book): x (N, C, H, W), W (FN, C, kh, kw), b (FN,) or None.

    Returns ``(y, ctx)``: y (N, FN, OH, OW) in x's dtype, ctx for :func:`conv2d_backward`.
    """
    x, W, b, stride, pad = _conv_args(x, W, b, stride, pad)
    mod, y, state = _with_context("conv2d_forward", x, W, b, stride, pad)
    return y, ConvContext(mod, state, x.shape, y.shape, x.dtype, W.shape)


def _check_grad(dy, ctx, cls: type, forward: str) -> np.ndarray:
    """dy as a C-contiguous array of the forward output's shape and dtype (ctx from ``forward``)."""
    if not isinstance(ctx, cls):
        raise TypeError(f"ctx must be the {cls.__name__} returned by {forward}, got {type(ctx).__name__}")
    dy = _float_array(dy, "dy")
    if dy.dtype != ctx.dtype:
        raise TypeError(f"dy has dtype {dy.dtype} but the forward pass ran in {ctx.dtype}")
    if dy.shape != ctx.y_shape:
        raise ValueError(f"dy must have the forward output's shape {ctx.y_shape}, got {dy.shape}")
    return dy


def conv2d_backward(dy, ctx: ConvContext, need_dx: bool = True):
    """Gradients of :func:`conv2d_forward`: dy (N, FN, OH, OW) -> (dx or None, dW, db).

    ``need_dx=False`` skips dx (the input layer of a network needs none).
    The backend that ran the forward pass runs the backward pass.
    """
    dy = _check_grad(dy, ctx, ConvContext, "conv2d_forward")
    if ctx.fused:
        raise TypeError("ctx comes from conv2d_bias_relu_forward: use conv2d_bias_relu_backward")
    return ctx.backend.conv2d_backward(dy, ctx.state, bool(need_dx))


def conv2d_bias_relu_forward(x, W, b=None, stride: int = 1, pad: int = 0) -> tuple[np.ndarray, ConvContext]:
    """``relu(conv2d(x, W) + b)`` in one pass over the output (the bias and ReLU in the store).

    Arguments and shapes as :func:`conv2d_forward`; the values are those of
    ``relu_forward(conv2d_forward(x, W, b, stride, pad)[0])[0]``.  Returns
    ``(y, ctx)``, ctx for :func:`conv2d_bias_relu_backward`.
    """
    x, W, b, stride, pad = _conv_args(x, W, b, stride, pad)
    mod, y, state = _with_context("conv2d_bias_relu_forward", x, W, b, stride, pad)
    return y, ConvContext(mod, state, x.shape, y.shape, x.dtype, W.shape, fused=True)


def conv2d_bias_relu_backward(dy, ctx: ConvContext, need_dx: bool = True):
    """Gradients of :func:`conv2d_bias_relu_forward`: dy (N, FN, OH, OW) -> (dx or None, dW, db).

    The ReLU's mask (output > 0) is applied to dy inside the kernel: the values
    are those of ``conv2d_backward(relu_backward(dy, mask), ...)``.
    """
    dy = _check_grad(dy, ctx, ConvContext, "conv2d_bias_relu_forward")
    if not ctx.fused:
        raise TypeError("ctx comes from conv2d_forward: use conv2d_backward")
    return ctx.backend.conv2d_bias_relu_backward(dy, ctx.state, bool(need_dx))


def _pool_window(x_shape, ph, pw, stride, pad):
    res = _window(x_shape, ph, pw, stride, pad, "pool window")
    ph, pw, stride, pad = res[:4]
    if 2 * pad > ph or 2 * pad > pw:
        raise ValueError(f"pad must be at most half the pool window ({ph}, {pw}), got pad={pad}")
    return res


def maxpool2d_forward(x, ph: int, pw: int, stride: int | None = None, pad: int = 0):
    """Max pooling: x (N, C, H, W) -> (y (N, C, OH, OW), argmax (N, C, OH, OW) int64).

    ``stride`` defaults to the window height.  Padding acts as -inf; a NaN in a
    window propagates; ties go to the first maximum in row-major window order.
    ``argmax`` holds ``iy * W + ix`` of the winning input cell.
    """
    x = _float_array(x, "x", 4)
    stride = ph if stride is None else stride
    ph, pw, stride, pad, _, _ = _pool_window(x.shape, ph, pw, stride, pad)
    return _call("maxpool2d_forward", x, ph, pw, stride, pad)


def maxpool2d_backward(dy, argmax, x_shape: Sequence[int], ph: int, pw: int,
                       stride: int | None = None, pad: int = 0) -> np.ndarray:
    """Route dy (N, C, OH, OW) to the argmax cells of an input of shape x_shape.

    Raises ``ValueError`` if ``argmax`` holds an index outside ``[0, H*W)``.
    """
    dy = _float_array(dy, "dy", 4)
    x_shape = _shape4(x_shape, "x_shape")
    stride = ph if stride is None else stride
    ph, pw, stride, pad, OH, OW = _pool_window(x_shape, ph, pw, stride, pad)
    want = (x_shape[0], x_shape[1], OH, OW)
    if dy.shape != want:
        raise ValueError(f"dy must have shape {want}, got {dy.shape}")
    argmax = np.asarray(argmax)
    if argmax.dtype != np.int64:
        raise TypeError(f"argmax must be int64 (as maxpool2d_forward returns it), got {argmax.dtype}")
    if argmax.shape != want:
        raise ValueError(f"argmax must have shape {want}, got {argmax.shape}")
    argmax = np.ascontiguousarray(argmax)
    return _call("maxpool2d_backward", dy, argmax, x_shape, ph, pw, stride, pad)


def relu_maxpool2d_forward(x, ph: int, pw: int, stride: int | None = None, pad: int = 0):
    """``maxpool2d(relu(x))`` in one pass over x: x (N, C, H, W) -> (y (N, C, OH, OW), ctx).

    Window arguments as :func:`maxpool2d_forward`; the values are those of
    ``maxpool2d_forward(relu_forward(x)[0], ...)[0]``.  ctx (a :class:`PoolContext`)
    is for :func:`relu_maxpool2d_backward`; no ReLU mask of x's size is kept.
    """
    x = _float_array(x, "x", 4)
    stride = ph if stride is None else stride
    ph, pw, stride, pad, _, _ = _pool_window(x.shape, ph, pw, stride, pad)
    mod, y, state = _with_context("relu_maxpool2d_forward", x, ph, pw, stride, pad)
    return y, PoolContext(mod, state, x.shape, y.shape, x.dtype)


def relu_maxpool2d_backward(dy, ctx: PoolContext) -> np.ndarray:
    """Gradient of :func:`relu_maxpool2d_forward`: dy (N, C, OH, OW) -> dx (N, C, H, W).

    dy goes to each window's first maximum where that maximum is > 0, as
    ``relu_backward(maxpool2d_backward(dy, ...), x > 0)`` (exactly 0 elsewhere).
    """
    dy = _check_grad(dy, ctx, PoolContext, "relu_maxpool2d_forward")
    return ctx.backend.relu_maxpool2d_backward(dy, ctx.state)


def conv2d_relu_maxpool2d_forward(x, W, b=None, stride: int = 1, pad: int = 0, ph: int = 2, pw: int = 2,
                                  pool_stride: int | None = None, pool_pad: int = 0):
    """``maxpool2d(relu(conv2d(x, W) + b))``: a Convolution -> Relu -> Pooling run as one step.

    Convolution arguments as :func:`conv2d_forward`, pool window (ph, pw), ``pool_stride``
    (default ph) and ``pool_pad`` as :func:`maxpool2d_forward` on the convolution's output.
    Returns ``(y (N, FN, POH, POW), ctx)``; y holds the values of
    ``relu_maxpool2d_forward(conv2d_forward(x, W, b, stride, pad)[0], ph, pw, ...)[0]``.  The
    C++ backend runs a few samples at a time, so the convolution's output never leaves the
    cache.  ctx (a :class:`ConvPoolContext`) is for :func:`conv2d_relu_maxpool2d_backward`.
    """
    x, W, b, stride, pad = _conv_args(x, W, b, stride, pad)
    FN, _, kh, kw = W.shape
    z_shape = (x.shape[0], FN, conv_output_size(x.shape[2], kh, stride, pad),
               conv_output_size(x.shape[3], kw, stride, pad))
    pool_stride = ph if pool_stride is None else pool_stride
    ph, pw, pool_stride, pool_pad, _, _ = _pool_window(z_shape, ph, pw, pool_stride, pool_pad)
    mod, y, state = _with_context("conv2d_relu_maxpool2d_forward", x, W, b, stride, pad, ph, pw, pool_stride,
                                  pool_pad)
    return y, ConvPoolContext(mod, state, x.shape, y.shape, x.dtype, W.shape)


def conv2d_relu_maxpool2d_backward(dy, ctx: ConvPoolContext, need_dx: bool = True):
    """Gradients of :func:`conv2d_relu_maxpool2d_forward`: dy (N, FN, POH, POW) -> (dx or None, dW, db),
    those of ``conv2d_backward(relu_maxpool2d_backward(dy, ...), ...)``.

    The pooled gradient is zero except at each window's argmax (3 cells in 4 for 2 x 2
    windows), and the C++ backend's sums visit those cells only: the same values to rounding
    (another order of the sums), not bit for bit; without dx, the weight gradient of thin
    windows (kw * C <= 8) has a kernel of its own, so dW may differ from ``need_dx=True``'s in
    the last bits.  One consequence: with an inf or NaN in x, the composition's dW is NaN
    wherever a zero cell multiplies it (0 * inf), the C++ backend's only where a window that
    passed the ReLU holds it."""
    dy = _check_grad(dy, ctx, ConvPoolContext, "conv2d_relu_maxpool2d_forward")
    return ctx.backend.conv2d_relu_maxpool2d_backward(dy, ctx.state, bool(need_dx))


def conv2d_infer(x, W, b=None, stride: int = 1, pad: int = 0, relu: bool = False) -> np.ndarray:
    """The value of :func:`conv2d_forward` (of :func:`conv2d_bias_relu_forward` if ``relu``) alone.

    For inference (``Model.predict``): nothing is kept for a backward pass.
    Arguments and shapes as :func:`conv2d_forward`; y (N, FN, OH, OW).
    """
    x, W, b, stride, pad = _conv_args(x, W, b, stride, pad)
    return _call("conv2d_infer", x, W, b, stride, pad, bool(relu))


def maxpool2d_infer(x, ph: int, pw: int, stride: int | None = None, pad: int = 0,
                    relu: bool = False) -> np.ndarray:
    """The y of :func:`maxpool2d_forward` (of :func:`relu_maxpool2d_forward` if ``relu``) alone.

    For inference: no argmax array.  Arguments as :func:`maxpool2d_forward`.
    """
    x = _float_array(x, "x", 4)
    stride = ph if stride is None else stride
    ph, pw, stride, pad, _, _ = _pool_window(x.shape, ph, pw, stride, pad)
    return _call("maxpool2d_infer", x, ph, pw, stride, pad, bool(relu))


def softmax_cross_entropy(logits, t) -> tuple[float, np.ndarray]:
    """Fused softmax + mean cross-entropy: logits (N, K) and labels -> (loss, dlogits (N, K)).

    ``t`` is int class indices (N,) in ``[0, K)`` or a target distribution
    (N, K).  ``dlogits = (softmax(logits) - onehot(t)) / N`` in logits' dtype.
    The loss is computed with log-sum-exp (logits [0, 100] with label 0 cost 100).
    """
    logits = _float_array(logits, "logits", 2)
    t = _check_targets(t, logits.shape)
    return _call("softmax_cross_entropy", logits, np.ascontiguousarray(t, dtype=(
        np.int64 if t.ndim == 1 else logits.dtype)))


def _check_targets(t, logits_shape: Sequence[int]) -> np.ndarray:
    """``t`` checked against scores of shape (N, K): int labels (N,) in ``[0, K)`` or float targets (N, K).

    The checks of :func:`softmax_cross_entropy` (``Model.accuracy`` uses them too):
    TypeError for bool, complex or other dtypes; ValueError for integer labels not of
    shape (N,) and for float targets not of shape (N, K) -- fractional labels (N,) or
    one-hot of the wrong width; IndexError for a label (negative ones too) outside
    ``[0, K)``.  Returns ``np.asarray(t)`` (not copied, not cast).
    """
    N, K = logits_shape
    t = np.asarray(t)
    if t.dtype == np.bool_:
        raise TypeError("t must be integer labels or float targets, got dtype bool")
    if np.issubdtype(t.dtype, np.integer):
        if t.shape != (N,):
            raise ValueError(f"integer labels t must have shape ({N},), got {t.shape}")
        if N and (t.min() < 0 or t.max() >= K):
            bad = t[(t < 0) | (t >= K)][0]
            raise IndexError(f"t: label {bad} out of range [0, {K}) for logits of shape {(N, K)}")
    elif np.issubdtype(t.dtype, np.floating):
        if t.shape != (N, K):
            hint = " (fractional labels? labels must be integers)" if t.shape == (N,) else ""
            raise ValueError(f"one-hot targets t must have logits' shape {(N, K)}, got {t.shape}{hint}")
    else:
        raise TypeError(f"t must be integer labels or float targets, got dtype {t.dtype}")
    return t


def relu_forward(x) -> tuple[np.ndarray, np.ndarray]:
    """ReLU in one pass: x (any shape) -> (y = max(x, 0) in x's dtype, mask = x > 0 (bool)).

    NaN stays NaN in y (mask False), -0 becomes +0, as ``np.maximum(x, 0)``.
    float32/float64 run on the active backend, bit for bit the reference's
    values; other real dtypes run the reference.
    """
    x = _real_array(x, "x")
    if x.dtype.type not in _FLOATS:
        return _ref.relu_forward(x)
    return _call("relu_forward", np.asarray(x, order="C"))  # asarray keeps 0-d arrays 0-d


def relu_backward(dout, mask) -> np.ndarray:
    """dout (any shape) and the forward's bool mask (same shape) -> dx = dout * mask in dout's dtype.

    Rounded as NumPy multiplies by 0 or 1: NaN * 0 is NaN, a negative times 0 is -0.
    """
    dout = np.asarray(dout)
    mask = np.asarray(mask)
    if mask.dtype != np.bool_:
        raise TypeError(f"mask must be a bool array (relu_forward's), got dtype {mask.dtype}")
    if mask.shape != dout.shape:
        raise ValueError(f"mask must have dout's shape {dout.shape}, got {mask.shape}")
    dout = _real_array(dout, "dout")
    if dout.dtype.type not in _FLOATS:
        return _ref.relu_backward(dout, mask)
    return _call("relu_backward", np.asarray(dout, order="C"), np.asarray(mask, order="C"))


_AFFINE_ACTS = (None, "relu", "sigmoid")


def _affine_args(x, W, what: str) -> tuple[np.ndarray, np.ndarray]:
    x = _float_array(x, "x", 2)
    W = _float_array(W, "W", 2)
    _same_dtype(x, W, "W")
    if W.shape[0] != x.shape[1]:
        raise ValueError(f"{what}: W must have shape ({x.shape[1]}, M) for x of shape {x.shape}, got {W.shape}")
    return x, W


def affine_forward(x, W, b, act: str | None = None) -> np.ndarray:
    """``act(x @ W + b)``: the Affine layer's forward, with the following ReLU or sigmoid fused.

    x (N, D), W (D, M), b (M,), one float dtype -> (N, M) of that dtype; ``act`` is None,
    ``"relu"`` (``np.maximum(., 0)``) or ``"sigmoid"`` (:func:`fastdl.functions.sigmoid`).
    The bias is added after the product, as the book's ``Affine``; the fast backends apply
    the activation in the same pass over the output.
    """
    if act not in _AFFINE_ACTS:
        raise ValueError(f"act must be None, 'relu' or 'sigmoid', got {act!r}")
    x, W = _affine_args(x, W, "affine_forward")
    b = _float_array(b, "b", 1)
    _same_dtype(x, b, "b")
    if b.shape[0] != W.shape[1]:
        raise ValueError(f"b must have shape ({W.shape[1]},) for W of shape {W.shape}, got {b.shape}")
    return _call("affine_forward", x, W, b, act)


def affine_backward(dout, x, W, need_dx: bool = True):
    """The Affine layer's backward: dout (N, M), the forward's x (N, D) and W (D, M) ->
    (dx = dout @ W.T (N, D), or None without ``need_dx``; dW = x.T @ dout (D, M); db (M,))."""
    x, W = _affine_args(x, W, "affine_backward")
    dout = _float_array(dout, "dout", 2)
    _same_dtype(x, dout, "dout")
    if dout.shape != (x.shape[0], W.shape[1]):
        raise ValueError(f"dout must have shape {(x.shape[0], W.shape[1])}, got {dout.shape}")
    return _call("affine_backward", dout, x, W, bool(need_dx))


def _finite(val: Any, name: str) -> float:
    """``val`` as a finite Python float; ValueError naming ``name`` otherwise."""
    try:
        out = float(val)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {val!r}") from None
    if not np.isfinite(out):
        raise ValueError(f"{name} must be finite, got {val!r}")
    return out


def batchnorm_forward(x, gamma, beta, eps: float = 10e-7):
    """Batch normalisation in training, the book's ``BatchNormalization.forward``.

    x (N, D) with N >= 1, gamma and beta (D,), one float dtype; ``eps`` finite and > 0.
    Returns ``(y, xc, xn, std, mu, var)``: mu and var (D,) the batch's mean and biased
    variance per feature, xc = x - mu, std = sqrt(var + eps), xn = xc / std and
    y = gamma * xn + beta, all in x's dtype.  The fast backends run it in one pass over
    each array instead of NumPy's ten.
    """
    x = _float_array(x, "x", 2)
    if x.shape[0] < 1:
        raise ValueError(f"x must have at least one sample, got shape {x.shape}")
    D = x.shape[1]
    gamma, beta = _float_array(gamma, "gamma", 1), _float_array(beta, "beta", 1)
    for name, a in (("gamma", gamma), ("beta", beta)):
        _same_dtype(x, a, name)
        if a.shape != (D,):
            raise ValueError(f"{name} must have shape ({D},) for x of shape {x.shape}, got {a.shape}")
    eps = _finite(eps, "eps")
    if eps <= 0:
        raise ValueError(f"eps must be finite and > 0, got {eps!r}")
    return _call("batchnorm_forward", x, gamma, beta, eps)


def batchnorm_backward(dout, xc, xn, std, gamma):
    """Gradients of :func:`batchnorm_forward`: dout (N, D) and its xc, xn (N, D), std (D,)
    with gamma (D,) -> ``(dx (N, D), dgamma (D,), dbeta (D,))`` (the book's formulas)."""
    dout = _float_array(dout, "dout", 2)
    if dout.shape[0] < 1:
        raise ValueError(f"dout must have at least one sample, got shape {dout.shape}")
    N, D = dout.shape
    arrays = []
    for name, a, shape in (("xc", xc, (N, D)), ("xn", xn, (N, D)), ("std", std, (D,)), ("gamma", gamma, (D,))):
        a = _float_array(a, name, len(shape))
        _same_dtype(dout, a, name)
        if a.shape != shape:
            raise ValueError(f"{name} must have shape {shape} for dout of shape {dout.shape}, got {a.shape}")
        arrays.append(a)
    return _call("batchnorm_backward", dout, *arrays)


def adam_update(p, g, m, v, lr: float, beta1: float, beta2: float, eps: float = 1e-7) -> None:
    """One Adam step, in place on ``p``, ``m`` and ``v``; ``g`` is never modified.

    ``m += (1 - beta1) * (g - m)``; ``v += (1 - beta2) * (g * g - v)``; entries
    of m and v below the dtype's smallest normal number (``np.finfo(dtype).tiny``)
    set to 0; ``p -= lr * m / (sqrt(v) + eps)``, with ``lr`` the step size (Adam's
    bias correction folded in).  The flush keeps a dead unit's state, which decays
    by beta1 every step, out of the subnormal range, where each operation is
    15-55x slower (SimpleConvNet on MNIST took twice as long a step after 700).

    p, m, v: float arrays of one shape and dtype, writeable, not overlapping.
    g: p's shape, any real dtype (cast to p's).  0 < lr, 0 <= beta1, beta2 < 1,
    0 < eps, all finite.  float32/float64 C-contiguous arrays run on the active
    backend and give the reference's values bit for bit; other dtypes or
    strides run the reference (NumPy) in place.
    """
    if not isinstance(p, np.ndarray):
        raise TypeError(f"p must be a NumPy array (it is updated in place), got {type(p).__name__}")
    if not np.issubdtype(p.dtype, np.floating):
        raise TypeError(f"p must have a float dtype, got {p.dtype}")
    for name, a in (("p", p), ("m", m), ("v", v)):
        if not isinstance(a, np.ndarray):
            raise TypeError(f"{name} must be a NumPy array (it is updated in place), got {type(a).__name__}")
        if a.dtype != p.dtype:
            raise TypeError(f"{name} has dtype {a.dtype} but p has {p.dtype}")
        if a.shape != p.shape:
            raise ValueError(f"{name} must have p's shape {p.shape}, got {a.shape}")
        if not a.flags.writeable:
            raise ValueError(f"{name} must be writeable: it is updated in place")
    if np.may_share_memory(p, m) or np.may_share_memory(p, v) or np.may_share_memory(m, v):
        raise ValueError("p, m and v must be separate arrays (they are updated in place)")
    g = _real_array(g, "g")
    if g.shape != p.shape:
        raise ValueError(f"g must have p's shape {p.shape}, got {g.shape}")
    lr, eps = _finite(lr, "lr"), _finite(eps, "eps")
    beta1, beta2 = _finite(beta1, "beta1"), _finite(beta2, "beta2")
    for name, val in (("lr", lr), ("eps", eps)):
        if val <= 0:
            raise ValueError(f"{name} must be finite and > 0, got {val!r}")
    for name, val in (("beta1", beta1), ("beta2", beta2)):
        if not 0 <= val < 1:
            raise ValueError(f"{name} must be finite and in [0, 1), got {val!r}")
    if any(np.may_share_memory(g, a) for a in (p, m, v)):
        g = g.copy()  # read while p, m, v are written
    if p.dtype.type in _FLOATS and all(a.flags.c_contiguous for a in (p, m, v)):
        # asarray(order="C") keeps a 0-d array 0-d (ascontiguousarray would make it 1-d)
        _call("adam_update", p, np.asarray(g, dtype=p.dtype, order="C"), m, v, lr, beta1, beta2, eps)
    else:
        _ref.adam_update(p, g.astype(p.dtype, copy=False), m, v, lr, beta1, beta2, eps)


def _adam_update_many_checked_by_caller(ps: list, gs: list, ms: list, vs: list, lr: float, beta1: float,
                                        beta2: float, eps: float) -> bool:
    """Every (p, g, m, v) as :func:`_adam_update_checked_by_caller` would, in one call of the
    active backend's ``adam_update_many`` (an optional kernel: the cpp backend has it); False,
    with nothing updated, where the backend has none or declines an array.  SimpleConvNet's five
    small parameters took 42 us a step one call each, 21 us in one call."""
    many = getattr(_backend.backend_module(_backend.get_backend()), "adam_update_many", None)
    return bool(many is not None and many(ps, gs, ms, vs, lr, beta1, beta2, eps))


def _adam_update_checked_by_caller(p: np.ndarray, g: np.ndarray, m: np.ndarray, v: np.ndarray,
                                   lr: float, beta1: float, beta2: float, eps: float) -> None:
    """:func:`adam_update` for :class:`fastdl.optimizers.Adam`, which has already checked what
    this skips: p a writeable float array, g of p's shape cast to p's dtype, m and v the
    optimizer's own state (zeros_like(p) when made), the hyperparameters when it was built.
    On DeepConvNet's 16 parameters those checks took longer than the updates (0.2 of 0.3 ms).
    Anything unusual (strides, shared memory) goes through adam_update and its checks."""
    if (p.dtype.type in _FLOATS and g.dtype == p.dtype and m.dtype == p.dtype and v.dtype == p.dtype
            and p.flags.c_contiguous and g.flags.c_contiguous and m.flags.c_contiguous and v.flags.c_contiguous
            and m.flags.writeable and v.flags.writeable
            and not any(np.may_share_memory(a, b) for a, b in ((p, m), (p, v), (m, v), (g, p), (g, m), (g, v)))):
        _call("adam_update", p, g, m, v, lr, beta1, beta2, eps)
    else:
        adam_update(p, g, m, v, lr, beta1, beta2, eps)
