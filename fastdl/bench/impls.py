"""What a case runs on each implementation: deterministic inputs, the fastdl call, the PyTorch call."""
from __future__ import annotations

import contextlib
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from .. import backend as _backend
from .. import ops
from .cases import ADAM_PARAMS, BATCH, Case, _conv, _pool, _softmax
from .schema import TORCH

__all__ = ["Unavailable", "torch_available", "impl_context", "prepare", "set_threads"]


class Unavailable(Exception):
    """An implementation cannot run a case here (e.g. PyTorch or a model is missing)."""


def torch_available() -> bool:
    """True when PyTorch imports (it is never a dependency of fastdl)."""
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


@contextlib.contextmanager
def impl_context(impl: str) -> Iterator[None]:
    """Make ``impl`` the active fastdl backend for the block (nothing to do for ``torch``)."""
    if impl == TORCH:
        yield
    else:
        with _backend.use_backend(impl):
            yield


def _inputs(case: Case, dtype: np.dtype) -> dict[str, Any]:
    """Deterministic NumPy inputs of a case (the same for every implementation)."""
    rng = np.random.default_rng(0)
    if case.kind in ("conv_fwd", "conv_bwd", "im2col", "col2im"):
        _, xs, fn, k, pad, need_dx = _conv(case.layer)
        x = rng.standard_normal(xs).astype(dtype)
        W = (rng.standard_normal((fn, xs[1], k, k)) * 0.1).astype(dtype)
        b = rng.standard_normal(fn).astype(dtype)
        oh, ow = ops.conv_output_size(xs[2], k, 1, pad), ops.conv_output_size(xs[3], k, 1, pad)
        d = {"x": x, "W": W, "b": b, "k": k, "pad": pad, "need_dx": need_dx}
        if case.kind == "conv_bwd":
            d["dy"] = rng.standard_normal((xs[0], fn, oh, ow)).astype(dtype)
        if case.kind == "col2im":
            d["col"] = rng.standard_normal((xs[0] * oh * ow, xs[1] * k * k)).astype(dtype)
        return d
    if case.kind in ("pool_fwd", "pool_bwd"):
        xs = _pool(case.layer)
        x = rng.standard_normal(xs).astype(dtype)
        dy = rng.standard_normal((xs[0], xs[1], xs[2] // 2, xs[3] // 2)).astype(dtype)
        return {"x": x, "dy": dy}
    if case.kind == "softmax_ce":
        n, k = _softmax(case.layer)
        return {"logits": (rng.standard_normal((n, k)) * 3).astype(dtype),
                "t": rng.integers(0, k, n).astype(np.int64)}
    if case.kind == "adam":
        shape = ADAM_PARAMS[case.layer]
        return {"p": rng.standard_normal(shape).astype(dtype), "g": rng.standard_normal(shape).astype(dtype),
                "m": (0.1 * rng.standard_normal(shape)).astype(dtype), "v": (0.01 * rng.random(shape)).astype(dtype)}
    if case.kind == "train_step":
        return {"x": rng.random((BATCH, 1, 28, 28)).astype(dtype),
                "t": rng.integers(0, 10, BATCH).astype(np.int64)}
    raise ValueError(f"unknown case kind {case.kind!r}")


def _fastdl_callable(case: Case, dtype: np.dtype) -> Callable[[], Any]:
    """The timed call of a case on the active fastdl backend (inputs made outside it)."""
    d = _inputs(case, dtype)
    kind = case.kind
    if kind == "conv_fwd":
        x, W, b, pad = d["x"], d["W"], d["b"], d["pad"]
        return lambda: ops.conv2d_forward(x, W, b, 1, pad)
    if kind == "conv_bwd":
        _, ctx = ops.conv2d_forward(d["x"], d["W"], d["b"], 1, d["pad"])
        dy, need_dx = d["dy"], d["need_dx"]
        return lambda: ops.conv2d_backward(dy, ctx, need_dx)
    if kind == "im2col":
        x, k, pad = d["x"], d["k"], d["pad"]
        return lambda: ops.im2col(x, k, k, 1, pad)
    if kind == "col2im":
        col, xs, k, pad = d["col"], d["x"].shape, d["k"], d["pad"]
        return lambda: ops.col2im(col, xs, k, k, 1, pad)
    if kind == "pool_fwd":
        x = d["x"]
        return lambda: ops.maxpool2d_forward(x, 2, 2, 2, 0)
    if kind == "pool_bwd":
        x, dy = d["x"], d["dy"]
        _, argmax = ops.maxpool2d_forward(x, 2, 2, 2, 0)
        return lambda: ops.maxpool2d_backward(dy, argmax, x.shape, 2, 2, 2, 0)
    if kind == "softmax_ce":
        logits, t = d["logits"], d["t"]
        return lambda: ops.softmax_cross_entropy(logits, t)
    if kind == "adam":  # the same step size every call: each call is one Adam update of p
        p, g, m, v = d["p"], d["g"], d["m"], d["v"]
        return lambda: ops.adam_update(p, g, m, v, 1e-3, 0.9, 0.999, 1e-7)
    if kind == "train_step":
        return _fastdl_train_step(case.layer, dtype, d["x"], d["t"])
    raise ValueError(f"unknown case kind {kind!r}")


def _fastdl_train_step(net_name: str, dtype: np.dtype, x: np.ndarray, t: np.ndarray) -> Callable[[], Any]:
    try:
        from ..models import DeepConvNet, SimpleConvNet
        from ..optimizers import Adam
    except ImportError as exc:
        raise Unavailable(f"fastdl models/optimizers not importable: {exc}") from exc
    net = (SimpleConvNet if net_name == "simple_convnet" else DeepConvNet)(dtype=dtype, seed=0)
    opt = Adam(lr=0.001)

    def step():
        opt.update(net.params, net.gradient(x, t))

    return step


def _torch_callable(case: Case, dtype: np.dtype) -> Callable[[], Any]:
    """The same case with ``torch.nn.functional`` on the CPU (no input gradient anywhere)."""
    try:
        import torch
        import torch.nn.functional as F
    except ImportError as exc:
        raise Unavailable("PyTorch is not installed") from exc
    d = _inputs(case, dtype)
    T = {k: torch.from_numpy(v) for k, v in d.items() if isinstance(v, np.ndarray)}
    kind = case.kind
    aten = torch.ops.aten
    if kind == "conv_fwd":
        x, W, b, pad = T["x"], T["W"], T["b"], d["pad"]
        return lambda: F.conv2d(x, W, b, 1, pad)
    if kind == "conv_bwd":
        x, W, dy, pad = T["x"], T["W"], T["dy"], d["pad"]
        mask = [bool(d["need_dx"]), True, True]
        return lambda: aten.convolution_backward(dy, x, W, [W.shape[0]], [1, 1], [pad, pad], [1, 1],
                                                 False, [0, 0], 1, mask)
    if kind == "im2col":  # layout (N, C*kh*kw, OH*OW): the transpose of fastdl's
        x, k, pad = T["x"], d["k"], d["pad"]
        return lambda: F.unfold(x, (k, k), padding=pad)
    if kind == "col2im":
        n, c, h, w = d["x"].shape
        k, pad = d["k"], d["pad"]
        col = T["col"].reshape(n, -1, c * k * k).transpose(1, 2).contiguous()
        return lambda: F.fold(col, (h, w), (k, k), padding=pad)
    if kind == "pool_fwd":
        x = T["x"]
        return lambda: F.max_pool2d(x, 2, 2, return_indices=True)
    if kind == "pool_bwd":
        x, dy = T["x"], T["dy"]
        _, idx = F.max_pool2d(x, 2, 2, return_indices=True)
        return lambda: aten.max_pool2d_with_indices_backward(dy, x, [2, 2], [2, 2], [0, 0], [1, 1], False, idx)
    if kind == "softmax_ce":
        logits, t = T["logits"].clone().requires_grad_(True), T["t"]

        def ce():
            loss = F.cross_entropy(logits, t)
            (g,) = torch.autograd.grad(loss, logits)
            return loss.item(), g

        return ce
    if kind == "adam":  # torch.optim.Adam's default (foreach) update of one CPU parameter
        p = torch.nn.Parameter(T["p"].clone())
        p.grad = T["g"].clone()
        opt = torch.optim.Adam([p], lr=1e-3)
        opt.step()  # creates the moment buffers
        return opt.step
    if kind == "train_step":
        return _torch_train_step(case.layer, dtype, T["x"], T["t"])
    raise ValueError(f"unknown case kind {kind!r}")


def _torch_train_step(net_name: str, dtype: np.dtype, x, t) -> Callable[[], Any]:
    """The book's network built from torch layers; Adam(lr=0.001); the input needs no gradient."""
    import torch
    from torch import nn

    torch.manual_seed(0)
    if net_name == "simple_convnet":
        layers = [nn.Conv2d(1, 30, 5), nn.ReLU(), nn.MaxPool2d(2, 2), nn.Flatten(),
                  nn.Linear(4320, 100), nn.ReLU(), nn.Linear(100, 10)]
    else:
        def block(cin, cout, pad):
            return [nn.Conv2d(cin, cout, 3, padding=pad), nn.ReLU()]

        layers = (block(1, 16, 1) + block(16, 16, 1) + [nn.MaxPool2d(2, 2)]
                  + block(16, 32, 1) + block(32, 32, 2) + [nn.MaxPool2d(2, 2)]
                  + block(32, 64, 1) + block(64, 64, 1) + [nn.MaxPool2d(2, 2)]
                  + [nn.Flatten(), nn.Linear(1024, 50), nn.ReLU(), nn.Dropout(0.5),
                     nn.Linear(50, 10), nn.Dropout(0.5)])
    model = nn.Sequential(*layers).to(torch.float64 if dtype == np.float64 else torch.float32)
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=0.001)
    loss_fn = nn.CrossEntropyLoss()

    def step():
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), t)
        loss.backward()
        opt.step()

    return step


def prepare(case: Case, impl: str, dtype: Any, warmup: int = 2) -> Callable[[], Any]:
    """The timed callable of ``case`` on ``impl`` (a backend name or ``"torch"``), warmed up.

    Call it (and time it) inside :func:`impl_context` ``(impl)``.  Raises
    :class:`Unavailable` when the implementation cannot run here.
    """
    dtype = np.dtype(dtype).type
    with impl_context(impl):
        fn = _torch_callable(case, dtype) if impl == TORCH else _fastdl_callable(case, dtype)
        for _ in range(warmup):  # the first call compiles JIT kernels
            fn()
    return fn


def set_threads(n: int, impls: Sequence[str]) -> None:
    _backend.set_num_threads(n)
    if TORCH in impls:
        import torch

        torch.set_num_threads(n)
