"""The reference backend: plain NumPy, written to be read.  It defines what is correct.

Every function follows the kernel contract of DESIGN.md: inputs are
C-contiguous float32 or float64 arrays of one dtype (already validated by
:mod:`fastdl.ops`), outputs have the dtype of ``x``, inputs are never
modified (except by ``adam_update``, the optimizer step, which updates its
parameter and moment arrays in place).  This module never imports the fast
backends.
"""
from __future__ import annotations

import numpy as np

from .contract import KERNELS, conv_output_size

__all__ = list(KERNELS)


def backend_info() -> str:
    return f"NumPy {np.__version__} reference"


def _patches(x, kh, kw, stride, pad, fill=0.0):
    """(N, C, H, W) -> (N, C, kh, kw, OH, OW): every window tap, padding filled with ``fill``."""
    N, C, H, W = x.shape
    OH, OW = conv_output_size(H, kh, stride, pad), conv_output_size(W, kw, stride, pad)
    img = np.pad(x, [(0, 0), (0, 0), (pad, pad), (pad, pad)], constant_values=fill)
    out = np.empty((N, C, kh, kw, OH, OW), dtype=x.dtype)
    for ky in range(kh):
        for kx in range(kw):
            out[:, :, ky, kx] = img[:, :, ky:ky + stride * OH:stride, kx:kx + stride * OW:stride]
    return out


def im2col(x, kh, kw, stride, pad):
    """(N, C, H, W) -> col (N*OH*OW, C*kh*kw); rows ordered (n, oy, ox), columns (c, ky, kx)."""
    N, C = x.shape[:2]
    p = _patches(x, kh, kw, stride, pad)
    return np.ascontiguousarray(p.transpose(0, 4, 5, 1, 2, 3)).reshape(N * p.shape[4] * p.shape[5], C * kh * kw)


def col2im(col, x_shape, kh, kw, stride, pad):
    """Adjoint of :func:`im2col`: scatter-add col (N*OH*OW, C*kh*kw) back to x_shape (N, C, H, W)."""
    N, C, H, W = x_shape
    OH, OW = conv_output_size(H, kh, stride, pad), conv_output_size(W, kw, stride, pad)
    c = col.reshape(N, OH, OW, C, kh, kw).transpose(0, 3, 4, 5, 1, 2)
    img = np.zeros((N, C, H + 2 * pad + stride - 1, W + 2 * pad + stride - 1), dtype=col.dtype)
    for ky in range(kh):
        for kx in range(kw):
            img[:, :, ky:ky + stride * OH:stride, kx:kx + stride * OW:stride] += c[:, :, ky, kx]
    return np.ascontiguousarray(img[:, :, pad:pad + H, pad:pad + W])


def conv2d_forward(x, W, b, stride, pad):
    """x (N, C, H, W), W (FN, C, kh, kw), b (FN,) -> y (N, FN, OH, OW) and a context for backward."""
    N, C, H, Wd = x.shape
    FN, _, kh, kw = W.shape
    OH, OW = conv_output_size(H, kh, stride, pad), conv_output_size(Wd, kw, stride, pad)
    col = im2col(x, kh, kw, stride, pad)
    W2 = W.reshape(FN, C * kh * kw)  # explicit: -1 is ambiguous when FN == 0
    y = col @ W2.T + b
    y = np.ascontiguousarray(y.reshape(N, OH, OW, FN).transpose(0, 3, 1, 2))
    return y, (col, W, x.shape, stride, pad)


def conv2d_backward(dy, ctx, need_dx):
    """dy (N, FN, OH, OW) -> (dx (N, C, H, W) or None, dW (FN, C, kh, kw), db (FN,))."""
    col, W, x_shape, stride, pad = ctx
    FN, C, kh, kw = W.shape
    dy2 = dy.transpose(0, 2, 3, 1).reshape(col.shape[0], FN)
    db = dy2.sum(axis=0)
    dW = (dy2.T @ col).reshape(W.shape)
    dx = None
    if need_dx:
        dcol = dy2 @ W.reshape(FN, C * kh * kw)
        dx = col2im(dcol, x_shape, kh, kw, stride, pad)
    return dx, np.ascontiguousarray(dW), db


def maxpool2d_forward(x, ph, pw, stride, pad):
    """x (N, C, H, W) -> (y (N, C, OH, OW), argmax (N, C, OH, OW) int64).

    Padding acts as -inf.  ``argmax`` is the flat index ``iy * W + ix`` into
    the unpadded input plane of the first maximum in row-major window order;
    a NaN in a window wins (and propagates).  A window whose real cells are
    all -inf points at its first real cell.
    """
    N, C, H, W = x.shape
    OH, OW = conv_output_size(H, ph, stride, pad), conv_output_size(W, pw, stride, pad)
    p = _patches(x, ph, pw, stride, pad, fill=-np.inf)       # (N, C, ph, pw, OH, OW)
    win = p.reshape(N, C, ph * pw, OH, OW)
    k = np.argmax(win, axis=2)                                 # first max; NaN wins
    y = np.take_along_axis(win, k[:, :, None], axis=2)[:, :, 0]
    ky, kx = np.divmod(k, pw)
    oy = np.arange(OH)[:, None]
    ox = np.arange(OW)[None, :]
    iy = oy * stride - pad + ky
    ix = ox * stride - pad + kx
    # All real cells -inf: the first max may be a pad cell; use the first real cell instead.
    first_y = np.maximum(oy * stride - pad, 0) + 0 * ox
    first_x = np.maximum(ox * stride - pad, 0) + 0 * oy
    pad_win = (iy < 0) | (iy >= H) | (ix < 0) | (ix >= W)
    iy = np.where(pad_win, first_y, iy)
    ix = np.where(pad_win, first_x, ix)
    argmax = (iy * W + ix).astype(np.int64)
    return np.ascontiguousarray(y), argmax


def maxpool2d_backward(dy, argmax, x_shape, ph, pw, stride, pad):
    """Scatter dy (N, C, OH, OW) to the argmax cells; returns dx of shape x_shape."""
    N, C, H, W = x_shape
    if argmax.size and (argmax.min() < 0 or argmax.max() >= H * W):
        raise ValueError(f"argmax holds an index outside the input plane [0, {H * W})")
    plane = (np.arange(N * C, dtype=np.int64) * (H * W)).reshape(N, C, 1, 1)
    dx = np.bincount((argmax + plane).ravel(), weights=dy.ravel().astype(np.float64),
                     minlength=N * C * H * W)
    return dx.astype(dy.dtype).reshape(x_shape)


def softmax_cross_entropy(logits, t):
    """Mean cross-entropy of softmax(logits) against t, and its gradient.

    logits (N, K); t int (N,) class indices or (N, K) target distribution.
    Returns ``(loss: float, dlogits (N, K))`` with ``dlogits = (softmax - t) / N``.
    The loss uses log-sum-exp, so a confident wrong answer costs its full margin.
    """
    N, K = logits.shape
    if K == 0:  # no classes: the sum over them is 0 (and log(0) is not taken)
        return (0.0 if N else float("nan")), np.zeros((N, 0), logits.dtype)
    m = logits.max(axis=1, keepdims=True)
    z = logits - m
    e = np.exp(z)
    s = e.sum(axis=1, keepdims=True)
    log_p = z - np.log(s)
    if t.ndim == 1:
        onehot = np.zeros_like(logits)
        onehot[np.arange(N), t] = 1
        picked = log_p[np.arange(N), t].astype(np.float64)
    else:
        onehot = t
        # 0 * log(0) counts as 0 (a -inf logit with zero target weight).
        with np.errstate(invalid="ignore"):  # 0 * -inf is masked out by the where
            picked = np.where(t != 0, t * log_p, 0).astype(np.float64).sum(axis=1)
    loss = float(-picked.sum() / N) if N else float("nan")
    dlogits = (e / s - onehot) / max(N, 1)
    return loss, dlogits.astype(logits.dtype, copy=False)


def adam_update(p, g, m, v, lr, beta1, beta2, eps):
    """One Adam step, in place on ``p``, ``m`` and ``v`` (``g`` is only read).

    ``m += (1 - beta1) * (g - m)``, ``v += (1 - beta2) * (g * g - v)``,
    entries of m and v below the dtype's smallest normal number (``np.finfo(dtype).tiny``,
    1.2e-38 for float32) set to 0, then ``p -= lr * m / (sqrt(v) + eps)`` with ``lr`` the
    bias-corrected step size.  The flush keeps the state out of the subnormal range,
    where a parameter whose gradient has become 0 (a dead ReLU unit) would otherwise take
    its m after some 700 steps of decay by beta1, and where every CPU operation is 15-55x
    slower; it changes the step by less than lr * tiny / eps.
    The Python-float hyperparameters act in the arrays' dtype (NumPy's rule for
    Python scalars) and every operation is rounded on its own: the fast
    backends reproduce these values bit for bit.  Works on any strides and
    float dtype; the only kernel of the contract that writes to its arguments.
    """
    m += (1 - beta1) * (g - m)
    v += (1 - beta2) * (g * g - v)
    tiny = np.finfo(p.dtype).tiny
    m[np.abs(m) < tiny] = 0
    v[np.abs(v) < tiny] = 0
    p -= lr * m / (np.sqrt(v) + p.dtype.type(eps))


def relu_forward(x):
    """x (any shape) -> (y = max(x, 0) in x's dtype, mask = x > 0).  NaN stays NaN in y
    (its mask is False); -0 becomes +0."""
    return np.maximum(x, 0), x > 0


def relu_backward(dout, mask):
    """dout, bool mask (same shape) -> dx = dout * mask in dout's dtype (NaN * 0 is NaN)."""
    return np.multiply(dout, mask, dtype=dout.dtype)


def affine_forward(x, W, b, act):
    """act(x @ W + b): x (N, D), W (D, M), b (M,) -> (N, M); act None, "relu" or "sigmoid".

    The book's layers in a row: ``Affine`` (the product, then the bias added in place),
    then ``Relu`` (``np.maximum``) or ``Sigmoid`` (:func:`fastdl.functions.sigmoid`).
    """
    out = x @ W
    out += b
    if act == "relu":
        return np.maximum(out, 0)
    if act == "sigmoid":
        from ..functions import sigmoid  # functions imports ops, which imports this module

        return sigmoid(out)
    return out


def affine_backward(dout, x, W, need_dx):
    """dout (N, M), x (N, D), W (D, M) -> (dx = dout @ W.T or None, dW = x.T @ dout, db = dout.sum(0))."""
    return (dout @ W.T if need_dx else None), x.T @ dout, np.sum(dout, axis=0)


# --------------------------------------------------------------------------- fused layer paths
# Each is the composition of the unfused kernels above, so that it is correct by reading; the
# fast backends fuse the passes.  States are private to the backend that made them.

def conv2d_bias_relu_forward(x, W, b, stride, pad):
    """relu(conv2d(x, W) + b): y (N, FN, OH, OW) and a state for the backward."""
    z, conv_state = conv2d_forward(x, W, b, stride, pad)
    y, mask = relu_forward(z)
    return y, (conv_state, mask)


def conv2d_bias_relu_backward(dy, state, need_dx):
    """dy (N, FN, OH, OW) -> (dx or None, dW, db) of relu(conv2d(x, W) + b)."""
    conv_state, mask = state
    return conv2d_backward(relu_backward(dy, mask), conv_state, need_dx)


def relu_maxpool2d_forward(x, ph, pw, stride, pad):
    """maxpool2d(relu(x)): y (N, C, OH, OW) and a state for the backward."""
    r, mask = relu_forward(x)
    y, argmax = maxpool2d_forward(r, ph, pw, stride, pad)
    return y, (mask, argmax, x.shape, ph, pw, stride, pad)


def relu_maxpool2d_backward(dy, state):
    """dy (N, C, OH, OW) -> dx (N, C, H, W) of maxpool2d(relu(x))."""
    mask, argmax, x_shape, ph, pw, stride, pad = state
    return relu_backward(maxpool2d_backward(dy, argmax, x_shape, ph, pw, stride, pad), mask)


def compose_conv_relu_pool(conv_forward, relu_pool_forward, conv_backward, relu_pool_backward):
    """``conv2d_relu_maxpool2d_forward`` and ``_backward`` of a backend from its own kernels:
    the convolution, then the fused ReLU + max pool; dy back through the pool, then the
    convolution.  (The C++ backend has a kernel that keeps the convolution's output in cache.)"""

    def forward(x, W, b, stride, pad, ph, pw, pool_stride, pool_pad):
        """maxpool2d(relu(conv2d(x, W) + b)): y (N, FN, POH, POW) and a state for the backward."""
        z, conv_state = conv_forward(x, W, b, stride, pad)
        y, pool_state = relu_pool_forward(z, ph, pw, pool_stride, pool_pad)
        return y, (conv_state, pool_state)

    def backward(dy, state, need_dx):
        """dy (N, FN, POH, POW) -> (dx or None, dW, db)."""
        conv_state, pool_state = state
        return conv_backward(relu_pool_backward(dy, pool_state), conv_state, need_dx)

    forward.__name__, backward.__name__ = "conv2d_relu_maxpool2d_forward", "conv2d_relu_maxpool2d_backward"
    return forward, backward


conv2d_relu_maxpool2d_forward, conv2d_relu_maxpool2d_backward = compose_conv_relu_pool(
    conv2d_forward, relu_maxpool2d_forward, conv2d_backward, relu_maxpool2d_backward)


# --------------------------------------------------------------------------- inference
# The forward values alone (Model.predict without training): nothing kept for a backward.

def conv2d_infer(x, W, b, stride, pad, relu):
    """y of :func:`conv2d_forward`, through :func:`relu_forward` if ``relu``."""
    y = conv2d_forward(x, W, b, stride, pad)[0]
    return relu_forward(y)[0] if relu else y


def maxpool2d_infer(x, ph, pw, stride, pad, relu):
    """y of :func:`maxpool2d_forward` (of ``relu_forward(x)`` if ``relu``)."""
    if relu:
        x = relu_forward(x)[0]
    return maxpool2d_forward(x, ph, pw, stride, pad)[0]


def batchnorm_forward(x, gamma, beta, eps):
    """The book's BatchNormalization in training: x (N, D), N >= 1 -> (y, xc, xn, std, mu, var).

    mu and var are the batch's mean and (biased) variance per feature, xc = x - mu,
    std = sqrt(var + eps), xn = xc / std, y = gamma * xn + beta.
    """
    mu = x.mean(axis=0)
    xc = x - mu
    var = np.mean(xc ** 2, axis=0)
    std = np.sqrt(var + x.dtype.type(eps))
    xn = xc / std
    return gamma * xn + beta, xc, xn, std, mu, var


def batchnorm_backward(dout, xc, xn, std, gamma):
    """Gradients of :func:`batchnorm_forward` from what it kept: (dx (N, D), dgamma, dbeta (D,))."""
    n = dout.shape[0]
    dbeta = dout.sum(axis=0)
    dgamma = np.sum(xn * dout, axis=0)
    dxn = gamma * dout
    dxc = dxn / std
    dstd = -np.sum((dxn * xc) / (std * std), axis=0)
    dvar = 0.5 * dstd / std
    dxc = dxc + (2.0 / n) * xc * dvar
    dmu = np.sum(dxc, axis=0)
    return dxc - dmu / n, dgamma, dbeta
