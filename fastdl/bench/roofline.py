"""How close a case came to the machine's limits: fraction of the FMA peak, and the roofline floors.

Counting rules (one call of a case):

- FLOPs: a multiply-add is two; only convolutions and affine layers count
  (forward; backward dW, and dx where it is computed); a convolution counts
  only the kernel taps that touch real input (padding taps are free).
- Bytes that must move: every tensor a layer reads or writes, once, at the
  dtype's size, as if nothing stayed in cache between layers: forward reads
  the input and parameters and writes the output; backward reads dy, what the
  forward saved (the input of a conv/affine/batch norm, the output of a
  sigmoid) and the parameters, and writes dx (where computed) and the
  gradients.  A mask or argmax index kept for backward (ReLU, dropout, max
  pool) counts one byte per element, the least that holds it.  Inference
  keeps nothing.  Softmax cross-entropy reads the logits and labels and
  writes dx; an optimizer reads and writes its parameters, gradients and
  state (Adam 7 arrays per parameter, SGD 3, Momentum/AdaGrad/RMSprop 5).
- Floors: compute = FLOPs / (the FMA probe's best reading x threads, half for
  float64); memory = bytes / (the copy probe's best reading x threads);
  ``roofline_multiple`` = median time / the larger floor (1.0 = at the limit).
"""
from __future__ import annotations

from typing import Any, Sequence

__all__ = ["add_peak_fractions", "add_roofline", "valid_taps", "conv_flops", "model_costs",
           "optimizer_bytes", "OPTIMIZER_ARRAYS"]

#: Arrays an optimizer reads or writes per parameter per update (parameter, gradient, state).
OPTIMIZER_ARRAYS = {"SGD": 3, "Momentum": 5, "Nesterov": 5, "AdaGrad": 5, "RMSprop": 5, "Adam": 7}


def valid_taps(size: int, k: int, stride: int, pad: int) -> int:
    """Sum over output positions of the kernel taps that land inside [0, size)."""
    out = (size + 2 * pad - k) // stride + 1
    return sum(max(0, min(o * stride - pad + k, size) - max(o * stride - pad, 0)) for o in range(out))


def conv_flops(x_shape: Sequence[int], filters: int, k: int, stride: int, pad: int) -> int:
    """FLOPs of one conv forward on x (N, C, H, W) with ``filters`` k x k kernels (real taps only)."""
    n, c, h, w = x_shape
    return 2 * n * filters * c * valid_taps(h, k, stride, pad) * valid_taps(w, k, stride, pad)


def _size(shape: Sequence[int]) -> int:
    out = 1
    for v in shape:
        out *= int(v)
    return out


def _layer_cost(layer: Any, x_shape: tuple, itemsize: int, train: bool) -> tuple[tuple, int, int]:
    """(output shape, FLOPs, bytes) of one layer of the book, forward and (``train``) backward."""
    kind = type(layer).__name__
    n, x = x_shape[0], _size(x_shape)
    if kind == "Convolution":
        fn, c, k, _ = layer.W.shape
        oh = (x_shape[2] + 2 * layer.pad - k) // layer.stride + 1
        ow = (x_shape[3] + 2 * layer.pad - k) // layer.stride + 1
        y, p = n * fn * oh * ow, layer.W.size + layer.b.size
        f = conv_flops(x_shape, fn, k, layer.stride, layer.pad)
        flops, elems = f, x + p + y
        if train:
            dx = bool(getattr(layer, "need_dx", True))
            flops += f * (2 if dx else 1)
            elems += y + x + p + p + (x if dx else 0)
        return (n, fn, oh, ow), flops, elems * itemsize
    if kind == "Affine":
        d_in, d_out = layer.W.shape
        y, p = n * d_out, layer.W.size + layer.b.size
        f = 2 * n * d_in * d_out
        flops, elems = f, x + p + y
        if train:
            flops += 2 * f
            elems += y + x + p + p + x
        return (n, d_out), flops, elems * itemsize
    if kind == "Pooling":
        oh = (x_shape[2] + 2 * layer.pad - layer.pool_h) // layer.stride + 1
        ow = (x_shape[3] + 2 * layer.pad - layer.pool_w) // layer.stride + 1
        y = n * x_shape[1] * oh * ow
        nbytes = (x + y) * itemsize
        if train:  # forward writes the index; backward reads dy and the index, writes dx
            nbytes += y + y * itemsize + y + x * itemsize
        return (n, x_shape[1], oh, ow), 0, nbytes
    if kind in ("Relu", "Dropout"):  # y and a one-byte mask; backward reads dy and the mask, writes dx
        return x_shape, 0, 2 * x * itemsize + (x + 2 * x * itemsize + x if train else 0)
    if kind == "Sigmoid":  # backward reads dy and y, writes dx
        return x_shape, 0, 2 * x * itemsize + (3 * x * itemsize if train else 0)
    if kind == "BatchNormalization":
        p = 2 * layer.gamma.size
        elems = x + p + x + (x + x + p + x + p if train else 0)
        return x_shape, 0, elems * itemsize
    raise ValueError(f"no cost rule for layer {kind}")


def model_costs(model: Any, x_shape: Sequence[int], train: bool) -> list[dict]:
    """Per layer of ``model`` on input ``x_shape``: ``name``, ``flops``, ``bytes``.

    ``train``: forward and backward, with the softmax cross-entropy on top (the
    optimizer is not a layer: :func:`optimizer_bytes`); else the forward of
    inference only.
    """
    itemsize = model.dtype.itemsize
    shape = tuple(int(v) for v in x_shape)
    inner = getattr(model, "_input_shape", None)
    if inner is not None and len(shape) == 2:
        shape = (shape[0], *inner)
    out = []
    for name, layer in model.layers.items():
        shape, flops, nbytes = _layer_cost(layer, shape, itemsize, train)
        out.append({"name": name, "flops": flops, "bytes": nbytes})
    if train:  # logits and int64 labels read, dx written
        out.append({"name": "SoftmaxWithLoss", "flops": 0,
                    "bytes": 2 * _size(shape) * itemsize + shape[0] * 8})
    return out


def optimizer_bytes(model: Any, optimizer: str) -> int:
    """Bytes one update of ``optimizer`` (a class name) moves over the model's parameters."""
    return OPTIMIZER_ARRAYS[optimizer] * sum(p.nbytes for p in model.params.values())


def _peak(peak_per_core: float | None, threads: int, dtype: str) -> float | None:
    """GFLOP/s of ``threads`` cores (half for float64), or None without a peak."""
    if not peak_per_core:
        return None
    return peak_per_core * threads * (0.5 if dtype == "float64" else 1.0)


def add_peak_fractions(results: list[dict], peak_per_core: float | None) -> None:
    """Set ``peak_fraction`` (GFLOP/s over the peak of the row's thread count) in place."""
    for r in results:
        peak = _peak(peak_per_core, r["threads"], r["dtype"])
        r["peak_fraction"] = r["gflops"] / peak if peak and r["gflops"] is not None else None


def add_roofline(results: list[dict], peak_per_core: float | None, copy_gbps: float | None) -> None:
    """Set ``compute_floor_s``, ``memory_floor_s`` and ``roofline_multiple`` of every row in place.

    A floor needs its count (``flops``, ``bytes``) and its probe; without either it is None.
    """
    for r in results:
        peak = _peak(peak_per_core, r["threads"], r["dtype"])
        flops, nbytes = r.get("flops"), r.get("bytes")
        r["compute_floor_s"] = flops / (peak * 1e9) if peak and flops else None
        r["memory_floor_s"] = nbytes / (copy_gbps * r["threads"] * 1e9) if copy_gbps and nbytes else None
        floors = [f for f in (r["compute_floor_s"], r["memory_floor_s"]) if f]
        r["roofline_multiple"] = r["median_s"] / max(floors) if floors else None
