"""The kernel contract: the one list of kernels every backend module implements.

``fastdl.ops`` validates arguments and calls the same-named kernel of the active
backend; a backend may return ``NotImplemented`` for a case it does not handle,
and ops then runs the reference (counted, see :func:`fastdl.backend.fallback_counts`).
Inputs arrive C-contiguous, float32 or float64, one dtype; outputs keep that dtype;
inputs are never modified (``adam_update`` alone updates p, m, v in place).
This module imports nothing from any backend.
"""
from __future__ import annotations

__all__ = ["KERNELS", "OPTIONAL_KERNELS", "BACKEND_HOOKS", "conv_output_size"]

#: kernel name -> its signature and meaning (shapes as in :mod:`fastdl.ops`).
KERNELS: dict[str, str] = {
    "im2col": "(x, kh, kw, stride, pad) -> col (N*OH*OW, C*kh*kw), rows (n, oy, ox), columns (c, ky, kx)",
    "col2im": "(col, x_shape, kh, kw, stride, pad) -> x (N, C, H, W): the adjoint of im2col",
    "conv2d_forward": "(x, W, b, stride, pad) -> (y (N, FN, OH, OW), state for conv2d_backward)",
    "conv2d_backward": "(dy, state, need_dx) -> (dx or None, dW, db)",
    "conv2d_bias_relu_forward": "(x, W, b, stride, pad) -> (relu(conv2d(x, W) + b), state for its backward)",
    "conv2d_bias_relu_backward": "(dy, state, need_dx) -> (dx or None, dW, db), dy masked by output > 0",
    "maxpool2d_forward": "(x, ph, pw, stride, pad) -> (y, argmax int64 iy*W+ix); padding is -inf",
    "maxpool2d_backward": "(dy, argmax, x_shape, ph, pw, stride, pad) -> dx of x_shape",
    "relu_maxpool2d_forward": "(x, ph, pw, stride, pad) -> (maxpool2d(relu(x)), state for its backward)",
    "relu_maxpool2d_backward": "(dy, state) -> dx of the forward's x shape",
    "conv2d_relu_maxpool2d_forward": "(x, W, b, stride, pad, ph, pw, pool_stride, pool_pad) -> "
                                     "(maxpool2d(relu(conv2d(x, W) + b)), state for its backward)",
    "conv2d_relu_maxpool2d_backward": "(dy, state, need_dx) -> (dx or None, dW, db)",
    "conv2d_infer": "(x, W, b, stride, pad, relu) -> y of conv2d_forward (of conv2d_bias_relu_forward if relu); no state",
    "maxpool2d_infer": "(x, ph, pw, stride, pad, relu) -> y of maxpool2d_forward (of relu(x) if relu); no argmax",
    "softmax_cross_entropy": "(logits (N, K), t int64 (N,) or (N, K)) -> (mean loss, (softmax - t) / N)",
    "relu_forward": "(x) -> (max(x, 0), x > 0)",
    "relu_backward": "(dout, mask) -> dout * mask",
    "adam_update": "(p, g, m, v, lr, beta1, beta2, eps) -> None; p, m, v updated in place",
    "affine_forward": "(x (N, D), W (D, M), b (M,), act) -> act(x @ W + b) (N, M); act None, 'relu' or 'sigmoid'",
    "affine_backward": "(dout (N, M), x (N, D), W (D, M), need_dx) -> (dx (N, D) or None, dW = x.T @ dout, db)",
    "batchnorm_forward": "(x (N, D), gamma (D,), beta (D,), eps) -> (y, xc, xn (N, D), std, mu, var (D,)), "
                         "batch statistics (training)",
    "batchnorm_backward": "(dout (N, D), xc, xn (N, D), std (D,), gamma (D,)) -> (dx (N, D), dgamma, dbeta)",
}

#: Kernels a backend may offer for speed alone; callers check for them and otherwise use KERNELS.
OPTIONAL_KERNELS: dict[str, str] = {
    "adam_update_many": "(ps, gs, ms, vs, lr, beta1, beta2, eps) -> bool: adam_update on each (p, g, m, v) "
                        "of four lists, or False with nothing updated (an array the backend does not take)",
}

#: Functions a backend module may offer besides its kernels (the registry calls them if present).
BACKEND_HOOKS = ("set_num_threads", "backend_info")


def conv_output_size(size: int, k: int, stride: int, pad: int) -> int:
    """Output length of a window of length ``k`` sliding over ``size + 2*pad`` with ``stride``."""
    return (size + 2 * pad - k) // stride + 1
