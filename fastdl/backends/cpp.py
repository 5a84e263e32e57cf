"""The C++ backend: a thin adapter over the compiled extension :mod:`fastdl._cpp`.

Importing this module fails (and :mod:`fastdl.backend` records why) when the
extension was not built, e.g. with ``FASTDL_NO_CPP=1`` or without a compiler.
Kernels follow the contract of DESIGN.md; they release the GIL and run on the
OpenMP threads set by :func:`set_num_threads`.  The SIMD path (scalar, AVX2 or
AVX-512) is chosen at run time for the CPU in hand; ``FASTDL_CPU=scalar|avx2``
caps it.
"""
from __future__ import annotations

import numpy as np

from .. import _cpp  # ImportError propagates: fastdl.backend records why
from . import numpy_ref as _ref
from .contract import BACKEND_HOOKS, KERNELS, OPTIONAL_KERNELS

__all__ = [*KERNELS, *BACKEND_HOOKS, *OPTIONAL_KERNELS]


def backend_info() -> str:
    """SIMD path in use, OpenMP status and threads, compiler."""
    info = _cpp.build_info()
    omp = f"OpenMP on, {_cpp.get_num_threads()} threads" if info["openmp"] else "OpenMP off, 1 thread"
    c = _cpp.cache_info()
    cache = f"result cache {c['cached_bytes'] >> 20}/{c['limit_bytes'] >> 20} MiB"
    return f"C++ {info['cpu_level']} SIMD, {omp}, {info['compiler']}, {cache}"


def set_num_threads(n: int) -> None:
    """Run the C++ kernels on ``n`` OpenMP threads (process-wide)."""
    _cpp.set_num_threads(n)


def im2col(x: np.ndarray, kh: int, kw: int, stride: int, pad: int) -> np.ndarray:
    """x (N, C, H, W) -> col (N*OH*OW, C*kh*kw); rows (n, oy, ox), columns (c, ky, kx)."""
    return _cpp.im2col(x, kh, kw, stride, pad)


def col2im(col: np.ndarray, x_shape, kh: int, kw: int, stride: int, pad: int) -> np.ndarray:
    """Adjoint of :func:`im2col`: col (N*OH*OW, C*kh*kw) -> x (N, C, H, W), overlaps summed."""
    return _cpp.col2im(col, tuple(x_shape), kh, kw, stride, pad)


def conv2d_forward(x: np.ndarray, W: np.ndarray, b: np.ndarray, stride: int, pad: int):
    """x (N, C, H, W), W (FN, C, kh, kw), b (FN,) -> (y (N, FN, OH, OW), state)."""
    return _cpp.conv2d_forward(x, W, b, stride, pad)


def conv2d_backward(dy: np.ndarray, state, need_dx: bool):
    """dy (N, FN, OH, OW) -> (dx (N, C, H, W) or None, dW, db); state from conv2d_forward."""
    return _cpp.conv2d_backward(dy, state, need_dx)


def maxpool2d_forward(x: np.ndarray, ph: int, pw: int, stride: int, pad: int):
    """x (N, C, H, W) -> (y (N, C, OH, OW), argmax int64 (N, C, OH, OW)); padding is -inf."""
    return _cpp.maxpool2d_forward(x, ph, pw, stride, pad)


def maxpool2d_backward(dy: np.ndarray, argmax: np.ndarray, x_shape, ph: int, pw: int,
                       stride: int, pad: int) -> np.ndarray:
    """Scatter dy (N, C, OH, OW) to the argmax cells; dx of shape x_shape."""
    return _cpp.maxpool2d_backward(dy, argmax, tuple(x_shape), ph, pw, stride, pad)


def softmax_cross_entropy(logits: np.ndarray, t: np.ndarray):
    """logits (N, K), t int64 (N,) or float (N, K) -> (mean loss: float, dlogits (N, K))."""
    return _cpp.softmax_cross_entropy(logits, t)


def adam_update(p, g, m, v, lr, beta1, beta2, eps) -> None:
    """One Adam step in place on p, m, v (C-contiguous, one dtype); bit for bit the reference's."""
    _cpp.adam_update(p, g, m, v, lr, 1 - beta1, 1 - beta2, eps)
    return None


def adam_update_many(ps, gs, ms, vs, lr, beta1, beta2, eps) -> bool:
    """adam_update on every (p, g, m, v) of four lists in one call -> True; False (nothing
    updated) unless every array qualifies: C-contiguous, one float dtype for all, p, m and v
    writeable, none of a parameter's four overlapping another (an optional kernel:
    :meth:`fastdl.optimizers.Adam.update` uses it where the backend has it)."""
    return _cpp.adam_update_many(ps, gs, ms, vs, lr, 1 - beta1, 1 - beta2, eps)


_ACT = {None: 0, "relu": 1, "sigmoid": 2}
_DENSE = _cpp.dense_available()  # AVX-512: the kernel's only SIMD path


def affine_forward(x: np.ndarray, W: np.ndarray, b: np.ndarray, act):
    """act(x @ W + b) (N, M) in one pass over the output: the C++ GEMM (csrc/dense) for float32
    on AVX-512 CPUs, else NumPy's BLAS (the reference)."""
    if _DENSE and x.dtype == np.float32:
        return _cpp.affine_forward(x, W, b, _ACT[act])
    return _ref.affine_forward(x, W, b, act)


def affine_backward(dout: np.ndarray, x: np.ndarray, W: np.ndarray, need_dx: bool):
    """(dx (N, D) or None, dW (D, M), db (M,)); float32 on AVX-512 by the C++ GEMM, else BLAS."""
    if _DENSE and dout.dtype == np.float32:
        return _cpp.affine_backward(dout, x, W, need_dx)
    return _ref.affine_backward(dout, x, W, need_dx)


def relu_forward(x: np.ndarray):
    """x (any shape) -> (max(x, 0), x > 0); bit for bit the reference's."""
    return _cpp.relu_forward(x)


def relu_backward(dout: np.ndarray, mask: np.ndarray):
    """dout, bool mask -> dout * mask; bit for bit the reference's."""
    return _cpp.relu_backward(dout, mask)


def conv2d_bias_relu_forward(x: np.ndarray, W: np.ndarray, b: np.ndarray, stride: int, pad: int):
    """relu(conv2d(x, W) + b), the bias and ReLU in the kernel's store -> (y, state)."""
    return _cpp.conv2d_bias_relu_forward(x, W, b, stride, pad)


def conv2d_bias_relu_backward(dy: np.ndarray, state, need_dx: bool):
    """dy -> (dx or None, dW, db) of the fused forward (dy masked by y > 0 in one pass)."""
    return _cpp.conv2d_bias_relu_backward(dy, state, need_dx)


def relu_maxpool2d_forward(x: np.ndarray, ph: int, pw: int, stride: int, pad: int):
    """maxpool2d(relu(x)) in one pass over x -> (y, state); argmax -1 marks no gradient."""
    y, argmax = _cpp.relu_maxpool2d_forward(x, ph, pw, stride, pad)
    return y, (argmax, tuple(x.shape), ph, pw, stride, pad)


def relu_maxpool2d_backward(dy: np.ndarray, state) -> np.ndarray:
    """dy -> dx of the fused forward: dy scattered to the argmax cells, -1 skipped."""
    argmax, x_shape, ph, pw, stride, pad = state
    return _cpp.relu_maxpool2d_backward(dy, argmax, x_shape, ph, pw, stride, pad)


def conv2d_relu_maxpool2d_forward(x: np.ndarray, W: np.ndarray, b: np.ndarray, stride: int, pad: int,
                                  ph: int, pw: int, pool_stride: int, pool_pad: int):
    """maxpool2d(relu(conv2d(x, W) + b)) -> (y, state), a few samples at a time so that the
    convolution's output stays in cache (csrc/conv/conv_pool.cpp)."""
    return _cpp.conv2d_relu_maxpool2d_forward(x, W, b, stride, pad, ph, pw, pool_stride, pool_pad)


def conv2d_relu_maxpool2d_backward(dy: np.ndarray, state, need_dx: bool):
    """dy (N, FN, POH, POW) -> (dx or None, dW, db) of the fused forward."""
    return _cpp.conv2d_relu_maxpool2d_backward(dy, state, need_dx)


def conv2d_infer(x: np.ndarray, W: np.ndarray, b: np.ndarray, stride: int, pad: int, relu: bool):
    """The forward alone (relu: with the fused bias + ReLU), no state."""
    return _cpp.conv2d_infer(x, W, b, stride, pad, relu)


def maxpool2d_infer(x: np.ndarray, ph: int, pw: int, stride: int, pad: int, relu: bool):
    """maxpool2d (of relu(x) if relu) without an argmax array."""
    return _cpp.maxpool2d_infer(x, ph, pw, stride, pad, relu)


def batchnorm_forward(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float):
    """(y, xc, xn, std, mu, var) of a batch (N, D) in one C++ call (the reference takes about ten
    NumPy passes, whose call overhead is most of a 100 x 100 layer's time)."""
    return _cpp.batchnorm_forward(x, gamma, beta, float(eps))


def batchnorm_backward(dout: np.ndarray, xc: np.ndarray, xn: np.ndarray, std: np.ndarray, gamma: np.ndarray):
    """(dx, dgamma, dbeta) in one C++ call."""
    return _cpp.batchnorm_backward(dout, xc, xn, std, gamma)
