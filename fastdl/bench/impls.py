"""What a case runs on each implementation: deterministic inputs, the fastdl call, the PyTorch call."""
from __future__ import annotations

import contextlib
import os
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from .. import backend as _backend
from .. import ops
from .cases import (ADAM_PARAMS, BATCH, PRETRAINED, TRAIN_NETS, Case, _affine, _conv, _pool, _softmax,
                    build_net, net_input_shape, predict_case)
from .schema import TORCH
from .torch_nets import torch_net, torch_optimizer

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
    if case.kind in ("affine_fwd", "affine_bwd"):
        (n, dim), m = _affine(case.layer)
        return {"x": rng.standard_normal((n, dim)).astype(dtype),
                "W": (rng.standard_normal((dim, m)) / np.sqrt(dim)).astype(dtype),
                "b": rng.standard_normal(m).astype(dtype), "dy": rng.standard_normal((n, m)).astype(dtype)}
    if case.kind == "adam":
        shape = ADAM_PARAMS[case.layer]
        return {"p": rng.standard_normal(shape).astype(dtype), "g": rng.standard_normal(shape).astype(dtype),
                "m": (0.1 * rng.standard_normal(shape)).astype(dtype), "v": (0.01 * rng.random(shape)).astype(dtype)}
    if case.kind == "train_step":
        return {"x": rng.random(net_input_shape(case.layer, BATCH)).astype(dtype),
                "t": rng.integers(0, 10, BATCH).astype(np.int64)}
    if case.kind == "predict":
        net, batch = predict_case(case.layer)
        return {"x": rng.random(net_input_shape(net, batch)).astype(dtype)}
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
    if kind == "affine_fwd":  # the Affine layer's forward (x @ W + b)
        x, W, b = d["x"], d["W"], d["b"]
        return lambda: ops.affine_forward(x, W, b)
    if kind == "affine_bwd":
        x, W, dy = d["x"], d["W"], d["dy"]
        return lambda: ops.affine_backward(dy, x, W)
    if kind == "adam":  # the same step size every call: each call is one Adam update of p
        p, g, m, v = d["p"], d["g"], d["m"], d["v"]
        return lambda: ops.adam_update(p, g, m, v, 1e-3, 0.9, 0.999, 1e-7)
    if kind == "train_step":
        return _fastdl_train_step(case.layer, dtype, d["x"], d["t"])
    if kind == "predict":
        return _fastdl_predict(case.layer, dtype, d["x"])
    raise ValueError(f"unknown case kind {kind!r}")


def _fastdl_train_step(net_name: str, dtype: np.dtype, x: np.ndarray, t: np.ndarray) -> Callable[[], Any]:
    """One step as the book trains the network: gradient by backprop, then its optimizer's update."""
    from .. import optimizers

    net = build_net("train_step", net_name, dtype)
    _, _, opt_name, opt_kwargs = TRAIN_NETS[net_name]
    opt = getattr(optimizers, opt_name)(**opt_kwargs)

    def step():
        opt.update(net.params, net.gradient(x, t))

    return step


def book_weights(filename: str) -> str | None:
    """The book's weight file, if found: ``$FASTDL_BOOK_WEIGHTS``, ``$FASTDL_DATA/book``,
    ``$FASTDL_TEST_DATA/book`` or ``~/.cache/fastdl/book`` (else None)."""
    dirs = [os.environ.get("FASTDL_BOOK_WEIGHTS")]
    dirs += [os.path.join(os.environ[v], "book") for v in ("FASTDL_DATA", "FASTDL_TEST_DATA") if os.environ.get(v)]
    dirs.append(os.path.join(os.path.expanduser("~"), ".cache", "fastdl", "book"))
    for d in dirs:
        if d and os.path.isfile(os.path.join(d, filename)):
            return os.path.join(d, filename)
    return None


def _fastdl_predict(layer: str, dtype: np.dtype, x: np.ndarray) -> Callable[[], Any]:
    """``predict`` (inference, no training-only work) with the book's weights when found, else seed 0."""
    from .. import io

    net_name, _ = predict_case(layer)
    net = build_net("predict", net_name, dtype)
    path = book_weights(PRETRAINED[net_name][2])
    if path is not None:
        net.load_state_dict(io.load_book_params(path))
    return lambda: net.predict(x, train_flg=False)


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
    if kind == "affine_fwd":  # F.linear takes the weight as (out, in): W.T, made contiguous once
        x, Wt, b = T["x"], T["W"].t().contiguous(), T["b"]
        return lambda: F.linear(x, Wt, b)
    if kind == "affine_bwd":  # autograd's products for linear: dx = dy W^T, dW = x^T dy, db
        x, W, dy = T["x"], T["W"], T["dy"]
        return lambda: (dy @ W.t(), x.t() @ dy, dy.sum(0))
    if kind == "adam":  # torch.optim.Adam's default (foreach) update of one CPU parameter
        p = torch.nn.Parameter(T["p"].clone())
        p.grad = T["g"].clone()
        opt = torch.optim.Adam([p], lr=1e-3)
        opt.step()  # creates the moment buffers
        return opt.step
    if kind == "train_step":
        return _torch_train_step(case.layer, dtype, T["x"], T["t"])
    if kind == "predict":
        return _torch_predict(case.layer, dtype, T["x"])
    raise ValueError(f"unknown case kind {kind!r}")


def _torch_train_step(net_name: str, dtype: np.dtype, x, t) -> Callable[[], Any]:
    """The book's network built from torch layers, its optimizer; the input needs no gradient."""
    from torch import nn

    model = torch_net("train_step", net_name, dtype)
    opt = torch_optimizer(net_name, model.parameters())
    loss_fn = nn.CrossEntropyLoss()

    def step():
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), t)
        loss.backward()
        opt.step()

    return step


def _torch_predict(layer: str, dtype: np.dtype, x) -> Callable[[], Any]:
    """The network in eval mode under ``torch.inference_mode``."""
    import torch

    model = torch_net("predict", predict_case(layer)[0], dtype)

    def predict():
        with torch.inference_mode():
            return model(x)

    return predict


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
