"""The Numba backend's kernels, one module per family (as csrc/ is split).

``_common`` holds what every family shares (the JIT flavours, the thread count, the
lock around Numba's thread pool); :mod:`fastdl.backends.numba_jit` gathers the kernels.
"""
