"""The Numba backend: the kernel contract, JIT-compiled and parallel over ``prange``.

Same functions and semantics as :mod:`fastdl.backends.numpy_ref` (the oracle), for
float32 and float64.  The kernels live by family in :mod:`fastdl.backends._numba`
(each module's docstring says how it works); this module gathers them.
"""
from __future__ import annotations

import os

import numba

from ._numba._common import TBB_LOADED, set_num_threads, threads
from ._numba.conv import conv2d_backward, conv2d_forward
from ._numba.elementwise import relu_backward, relu_forward
from ._numba.fused import (conv2d_bias_relu_backward, conv2d_bias_relu_forward, conv2d_infer, maxpool2d_infer,
                           relu_maxpool2d_backward, relu_maxpool2d_forward)
from ._numba.im2col import _im2col, col2im, im2col
from ._numba.optim import adam_update
from ._numba.pool import maxpool2d_backward, maxpool2d_forward
from ._numba.softmax import softmax_cross_entropy
from .contract import BACKEND_HOOKS, KERNELS
# A product Numba would hand to the same BLAS (np.dot in nopython mode calls it): the reference's.
from .numpy_ref import affine_backward, affine_forward, batchnorm_backward, batchnorm_forward, compose_conv_relu_pool

conv2d_relu_maxpool2d_forward, conv2d_relu_maxpool2d_backward = compose_conv_relu_pool(
    conv2d_forward, relu_maxpool2d_forward, conv2d_backward, relu_maxpool2d_backward)

__all__ = [*KERNELS, *BACKEND_HOOKS]


def backend_info() -> str:
    """Numba version, threading layer, thread count and cache directory."""
    cache = _im2col.stats.cache_path or "off (no writable location)"
    try:
        layer = numba.threading_layer()
    except ValueError:  # no parallel kernel has run yet: the layer is chosen at first launch
        why = ("TBB loaded" if TBB_LOADED else "set by NUMBA_THREADING_LAYER"
               if "NUMBA_THREADING_LAYER" in os.environ else "TBB not found: workqueue")
        layer = f"{numba.config.THREADING_LAYER} (chosen at first use; {why})"
    return f"Numba {numba.__version__}, threading layer {layer}, {threads()} threads, cache {cache}"
