"""Kernel backends: interchangeable modules implementing the contract of DESIGN.md.

``numpy_ref`` is the reference; ``numba_jit`` and ``cpp`` are the fast ones.
Use :mod:`fastdl.backend` to pick one; do not import them directly in layers.
"""
