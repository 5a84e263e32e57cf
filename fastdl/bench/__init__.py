"""``fastdl bench``: time the kernels and training steps of every backend side by side.

The cases are the book's shapes at batch 100: SimpleConvNet's conv (1->30, 5x5
on 28x28) and DeepConvNet's six 3x3 convs (forward, and backward without dx for
each network's input layer), the four 2x2/2 max pools, softmax cross-entropy
on (100, 10) and (4096, 1000), im2col/col2im, the Adam update of each network's
largest parameter, and whole training steps
(forward, backward, Adam update) of SimpleConvNet and DeepConvNet.  Each
case runs on every fastdl backend and, when PyTorch is installed, on
``torch.nn.functional`` at the same thread count ("torch" rows).  The same
case list drives the pytest-benchmark suite in ``benchmarks/``.

Timing: per thread count, every case is prepared on every implementation
(inputs made, JIT warmed); then each round samples every case, its
implementations back to back (the order rotates every round) so that a drift
in machine speed hits all of them alike, and a case's samples are spread over
the whole run rather than bunched in a few seconds of it (on a shared host a
core can run at half speed for seconds at a time).  A 1 ms pause before each
sample lets the previous thread pool's spinning workers go to sleep; then one
untimed call (``warmup_calls``) absorbs what the pause and the other cases
left behind (sleeping pool workers, an idle core, evicted inputs).  A sample
then times the call ``inner`` times, with ``inner`` chosen so that a sample
lasts at least ``min_time``; the report gives the median, min and max time
per call.

The JSON report and its schema: :mod:`fastdl.bench.report`.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import gc
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from .. import backend as _backend
from . import machine as _machine
from .. import ops
from .report import (
    SCHEMA,
    TORCH,
    check_targets,
    compare_reports,
    format_case_tables,
    format_cold_start,
    format_compare,
    format_header,
    format_probe_note,
    format_summary,
    format_targets,
    load_report,
    plot_report,
    settings_differences,
)

__all__ = [
    "Case",
    "CASES",
    "QUICK_CASES",
    "Unavailable",
    "torch_available",
    "impl_context",
    "prepare",
    "run_cases",
    "cold_start",
    "register",
]

# --------------------------------------------------------------------------- the book's shapes (batch 100)

#: (name, x shape, filters, kernel, pad, need_dx): every conv layer of the book's two CNNs.
CONV_LAYERS = (
    ("simple.conv1", (100, 1, 28, 28), 30, 5, 0, False),
    ("deep.conv1", (100, 1, 28, 28), 16, 3, 1, False),
    ("deep.conv2", (100, 16, 28, 28), 16, 3, 1, True),
    ("deep.conv3", (100, 16, 14, 14), 32, 3, 1, True),
    ("deep.conv4", (100, 32, 14, 14), 32, 3, 2, True),
    ("deep.conv5", (100, 32, 8, 8), 64, 3, 1, True),
    ("deep.conv6", (100, 64, 8, 8), 64, 3, 1, True),
)
#: (name, x shape): the input of every 2x2 / stride 2 max pool of the two CNNs.
POOL_LAYERS = (
    ("simple.pool1", (100, 30, 24, 24)),
    ("deep.pool1", (100, 16, 28, 28)),
    ("deep.pool2", (100, 32, 16, 16)),
    ("deep.pool3", (100, 64, 8, 8)),
)
SOFTMAX_SHAPES = ((100, 10), (4096, 1000))
IM2COL_LAYERS = ("simple.conv1", "deep.conv2", "deep.conv4")
#: (in, out) of the affine layers, for the FLOP count of a training step.
#: Adam cases: the largest parameter of each network (SimpleConvNet's first affine weight).
ADAM_PARAMS = {"simple.affine1": (4320, 100), "deep.affine1": (1024, 50)}
AFFINE_LAYERS = {"simple_convnet": ((4320, 100), (100, 10)), "deep_convnet": ((1024, 50), (50, 10))}
NET_CONVS = {"simple_convnet": ("simple.conv1",),
             "deep_convnet": tuple(f"deep.conv{i}" for i in range(1, 7))}
BATCH = 100


class Unavailable(Exception):
    """An implementation cannot run a case here (e.g. PyTorch or a model is missing)."""


@dataclass(frozen=True)
class Case:
    """One benchmark case: a kernel (or a training step) on one of the book's shapes."""

    kind: str    # conv_fwd, conv_bwd, pool_fwd, pool_bwd, softmax_ce, im2col, col2im, adam, train_step
    layer: str   # e.g. "deep.conv2", "simple.pool1", "4096x1000", "simple.affine1", "deep_convnet"

    @property
    def name(self) -> str:
        return f"{self.kind} {self.layer}"

    def shape(self) -> str:
        """Human-readable shapes and hyperparameters."""
        if self.kind in ("conv_fwd", "conv_bwd", "im2col", "col2im"):
            _, xs, fn, k, pad, need_dx = _conv(self.layer)
            text = f"x{_fmt_shape(xs)} W{_fmt_shape((fn, xs[1], k, k))} pad {pad}"
            if self.kind in ("im2col", "col2im"):
                text = f"x{_fmt_shape(xs)} {k}x{k} pad {pad}"
            if self.kind == "conv_bwd":
                text += " with dx" if need_dx else " no dx"
            return text
        if self.kind in ("pool_fwd", "pool_bwd"):
            return f"x{_fmt_shape(_pool(self.layer))} 2x2/2"
        if self.kind == "softmax_ce":
            return f"logits{_fmt_shape(_softmax(self.layer))}"
        if self.kind == "adam":
            return f"W{_fmt_shape(ADAM_PARAMS[self.layer])} in place"
        return f"batch {BATCH}, forward + backward + Adam"

    def flops(self) -> int | None:
        """FLOPs of one call (multiply-add = 2, conv taps on padding not counted); None if not a FLOP kernel."""
        if self.kind == "conv_fwd":
            return _conv_flops(self.layer)
        if self.kind == "conv_bwd":
            return _conv_flops(self.layer) * (2 if _conv(self.layer)[5] else 1)
        if self.kind == "train_step":
            convs = NET_CONVS[self.layer]
            total = sum(_conv_flops(c) * (3 if i else 2) for i, c in enumerate(convs))
            total += sum(2 * BATCH * a * b * 3 for a, b in AFFINE_LAYERS[self.layer])
            return total
        return None


def _fmt_shape(s: Sequence[int]) -> str:
    return "(" + ",".join(str(v) for v in s) + ")"


def _conv(layer: str):
    for row in CONV_LAYERS:
        if row[0] == layer:
            return row
    raise KeyError(layer)


def _pool(layer: str) -> tuple[int, int, int, int]:
    return dict(POOL_LAYERS)[layer]


def _softmax(layer: str) -> tuple[int, int]:
    n, k = layer.split("x")
    return int(n), int(k)


def _valid_taps(size: int, k: int, stride: int, pad: int) -> int:
    """Sum over output positions of the kernel taps that land inside [0, size)."""
    out = ops.conv_output_size(size, k, stride, pad)
    return sum(max(0, min(o * stride - pad + k, size) - max(o * stride - pad, 0)) for o in range(out))


def _conv_flops(layer: str) -> int:
    _, (n, c, h, w), fn, k, pad, _ = _conv(layer)
    return 2 * n * fn * c * _valid_taps(h, k, 1, pad) * _valid_taps(w, k, 1, pad)


def _all_cases() -> tuple[Case, ...]:
    cases = [Case("conv_fwd", c[0]) for c in CONV_LAYERS]
    cases += [Case("conv_bwd", c[0]) for c in CONV_LAYERS]
    cases += [Case("pool_fwd", p[0]) for p in POOL_LAYERS]
    cases += [Case("pool_bwd", p[0]) for p in POOL_LAYERS]
    cases += [Case("softmax_ce", f"{n}x{k}") for n, k in SOFTMAX_SHAPES]
    cases += [Case("im2col", c) for c in IM2COL_LAYERS]
    cases += [Case("col2im", c) for c in IM2COL_LAYERS]
    cases += [Case("adam", a) for a in ADAM_PARAMS]
    cases += [Case("train_step", "simple_convnet"), Case("train_step", "deep_convnet")]
    return tuple(cases)


CASES: tuple[Case, ...] = _all_cases()
QUICK_CASES: tuple[Case, ...] = (
    Case("conv_fwd", "simple.conv1"),
    Case("pool_fwd", "simple.pool1"),
    Case("softmax_ce", "100x10"),
    Case("train_step", "simple_convnet"),
)

# --------------------------------------------------------------------------- implementations


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


def _set_threads(n: int, impls: Sequence[str]) -> None:
    _backend.set_num_threads(n)
    if TORCH in impls:
        import torch

        torch.set_num_threads(n)


# --------------------------------------------------------------------------- running


#: Seconds between two samples: OpenMP/Numba workers spin briefly after a parallel region.
_PAUSE = 0.001


def run_cases(cases: Sequence[Case], impls: Sequence[str], dtypes: Sequence[str], threads: Sequence[int],
              repeats: int, min_time: float, progress: bool | None = None,
              peak_per_core: float | None = None,
              round_probes: list | None = None,
              warmup_calls: int = 1) -> tuple[list[dict], list[dict]]:
    """Time every case on every implementation; returns ``(results, skipped)`` rows of the JSON report.

    Per thread count, every case is prepared first; then each of the ``repeats`` rounds takes
    one sample of every case on every implementation, the implementations of a case back to
    back.  A case's samples are thus spread over the whole run, not bunched in one stretch of
    it: on a shared host whose cores slow down for seconds at a time, a median then reflects
    the typical state of the machine, and the ratios are still taken side by side.  Each
    sample starts with ``warmup_calls`` untimed calls after its pause.  With a
    list for ``round_probes``, a short FMA probe after every round appends what the core
    delivered then (GFLOP/s), which shows how much of the run it was shared.
    """
    from tqdm import tqdm

    if warmup_calls < 0:
        raise ValueError(f"warmup_calls must be >= 0, got {warmup_calls}")
    results: list[dict] = []
    skipped: dict[tuple[str, str], str] = {}
    total = len(threads) * len(dtypes) * len(cases) * (repeats + 1)
    bar = tqdm(total=total, file=sys.stderr, desc="fastdl bench", unit="case", leave=False,
               disable=(None if progress is None else not progress))
    try:
        for n in threads:
            _set_threads(n, impls)
            timings = []
            for dtype in dtypes:
                for case in cases:
                    bar.set_postfix_str(f"preparing {case.name} {dtype} {n}t")
                    t = _CaseTiming(case, dtype, impls, min_time, skipped, warmup_calls)
                    if t.fns:
                        timings.append(t)
                    bar.update()
            for r in range(repeats):
                gc.collect()
                bar.set_postfix_str(f"round {r + 1}/{repeats} {n}t")
                for t in timings:
                    t.sample(r)
                    bar.update()
                bar.update(len(dtypes) * len(cases) - len(timings))
                if round_probes is not None:
                    g = _machine.fma_probe_gflops(seconds=0.002, trials=1)
                    if g is not None:
                        round_probes.append(g)
            for t in timings:
                results += t.rows(n, peak_per_core)
            timings.clear()
    finally:
        bar.close()
    return results, [{"impl": i, "reason": r} for (i, _), r in sorted(skipped.items())]


class _CaseTiming:
    """One case in one dtype: its prepared implementations, calls per sample, and samples."""

    def __init__(self, case: Case, dtype: str, impls: Sequence[str], min_time: float, skipped: dict,
                 warmup_calls: int = 1):
        self.case, self.dtype, self.warmup_calls = case, dtype, warmup_calls
        self.fns: dict[str, Callable[[], Any]] = {}
        self.fallbacks: dict[str, list[str]] = {}
        for impl in impls:
            before = _backend.fallback_counts()
            try:
                self.fns[impl] = prepare(case, impl, dtype)
            except Unavailable as exc:
                skipped.setdefault((impl, str(exc)), str(exc))
                continue
            after = _backend.fallback_counts()
            self.fallbacks[impl] = sorted({k for (b, k), c in after.items()
                                           if b == impl and c > before.get((b, k), 0)})
        self.inner: dict[str, int] = {}
        for impl, fn in self.fns.items():
            with impl_context(impl):
                t0 = time.perf_counter()
                fn()
                dt = time.perf_counter() - t0
            self.inner[impl] = max(1, min(10_000, math.ceil(min_time / max(dt, 1e-9))))
        self.samples: dict[str, list[float]] = {impl: [] for impl in self.fns}

    def sample(self, r: int) -> None:
        """Round ``r``: one sample of every implementation, starting with a different one each round."""
        order = list(self.fns)
        for impl in order[r % len(order):] + order[:r % len(order)]:
            fn, k = self.fns[impl], self.inner[impl]
            time.sleep(_PAUSE)  # let the previous implementation's spinning pool threads go to sleep
            with impl_context(impl):
                # Untimed: after the pause the pool's workers sleep, the core has idled and the
                # other cases have evicted this one's inputs.  Measured (cpp conv1 forward, 1
                # thread): 275 us back to back, 330 us as the first call after a 1 ms sleep.
                for _ in range(self.warmup_calls):
                    fn()
                t0 = time.perf_counter()
                for _ in range(k):
                    fn()
                self.samples[impl].append((time.perf_counter() - t0) / k)

    def rows(self, threads: int, peak_per_core: float | None) -> list[dict]:
        """The JSON result rows of the samples taken (and the prepared calls released)."""
        self.fns.clear()
        case, dtype = self.case, self.dtype
        flops = case.flops()
        med = {impl: statistics.median(s) for impl, s in self.samples.items()}
        rows = []
        for impl, s in self.samples.items():
            gflops = flops / med[impl] / 1e9 if flops else None
            peak = None
            if gflops is not None and peak_per_core:
                peak = peak_per_core * threads * (0.5 if dtype == "float64" else 1.0)
            rows.append({
                "case": case.name, "kind": case.kind, "shape": case.shape(), "dtype": dtype,
                "threads": threads, "impl": impl,
                "median_s": med[impl], "min_s": min(s), "max_s": max(s), "samples": len(s),
                "inner": self.inner[impl],
                "flops": flops, "gflops": gflops, "peak_fraction": gflops / peak if peak else None,
                "speedup_vs_numpy": med["numpy"] / med[impl] if "numpy" in med else None,
                "ratio_to_torch": med[impl] / med[TORCH] if TORCH in med else None,
                "fallbacks": self.fallbacks.get(impl, []),
            })
        return rows


# --------------------------------------------------------------------------- cold start

_COLD_SCRIPT = r"""
import json, sys, time
t0 = time.perf_counter()
import numpy as np
import fastdl
from fastdl.models import SimpleConvNet
from fastdl.optimizers import Adam
t1 = time.perf_counter()
fastdl.set_backend(sys.argv[1])
fastdl.set_num_threads(int(sys.argv[2]))
rng = np.random.default_rng(0)
x = rng.random((100, 1, 28, 28)).astype(np.float32)
t = rng.integers(0, 10, 100)
net = SimpleConvNet(dtype=np.float32, seed=0)
opt = Adam(lr=0.001)
t2 = time.perf_counter()
opt.update(net.params, net.gradient(x, t))
t3 = time.perf_counter()
opt.update(net.params, net.gradient(x, t))
t4 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "setup_s": t2 - t1, "first_step_s": t3 - t2, "second_step_s": t4 - t3}))
"""


def _same_fastdl_path() -> str:
    """PYTHONPATH for a child process that must import this very fastdl (not one found from its cwd)."""
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    rest = os.environ.get("PYTHONPATH")
    return here + (os.pathsep + rest if rest else "")


def cold_start(backends: Sequence[str], threads: int) -> list[dict]:
    """Time a fresh process's first SimpleConvNet training step (float32, batch 100), per backend.

    Per run: ``import_s`` (import fastdl, models, optimizers), ``setup_s``
    (select the backend, which imports it, set threads, build the network),
    ``first_step_s`` (includes JIT compilation or loading from the cache),
    ``second_step_s`` and ``wall_s`` (the whole process, interpreter start included).

    Each backend runs twice with ``NUMBA_CACHE_DIR`` pointing at a new empty
    directory: first with the cache empty, then warm (filled by the first run).
    """
    rows = []
    for name in backends:
        with tempfile.TemporaryDirectory(prefix="fastdl-numba-cache-") as cache:
            env = dict(os.environ, NUMBA_CACHE_DIR=cache, PYTHONPATH=_same_fastdl_path())
            env.pop("FASTDL_BACKEND", None)
            for state in ("empty", "warm"):
                t0 = time.perf_counter()
                proc = subprocess.run([sys.executable, "-c", _COLD_SCRIPT, name, str(threads)], cwd=cache,
                                      env=env, capture_output=True, text=True, check=False)
                wall = time.perf_counter() - t0
                if proc.returncode != 0:
                    raise RuntimeError(f"cold-start run of backend {name!r} failed:\n{proc.stderr.strip()}")
                rec = json.loads(proc.stdout.strip().splitlines()[-1])
                rows.append({"backend": name, "cache": state, "threads": threads, "wall_s": wall, **rec})
    return rows


# --------------------------------------------------------------------------- command line


def _csv(text: str) -> list[str]:
    return [v.strip() for v in text.split(",") if v.strip()]


def _threads_arg(text: str) -> list[int]:
    try:
        vals = [int(v) for v in _csv(text)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--threads expects positive ints like 1 or 1,2; got {text!r}") from None
    if not vals or min(vals) < 1:
        raise argparse.ArgumentTypeError(f"--threads expects positive ints like 1 or 1,2; got {text!r}")
    return vals


def _int_at_least(low: int, what: str) -> Callable[[str], int]:
    """An argparse type: an int >= ``low`` (``what`` names it in the error)."""
    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            v = low - 1
        if v < low:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return v
    return parse


_positive_int = _int_at_least(1, "a positive int")
_non_negative_int = _int_at_least(0, "an int >= 0")


def _non_negative_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        v = -1.0
    if not v >= 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}")
    return v


def register(subparsers) -> None:
    """Add the ``bench`` subcommand to the ``fastdl`` command line."""
    p = subparsers.add_parser(
        "bench", help="time kernels and training steps on every backend (and PyTorch)",
        description="Time fastdl's kernels and training steps on the book's shapes, every backend side by "
                    "side (round-robin), against the NumPy reference and PyTorch when installed.")
    p.add_argument("--quick", action="store_true", help="a few cases, a few seconds")
    p.add_argument("--threads", type=_threads_arg, default=None, metavar="N[,N...]",
                   help="thread counts to run (default: all usable cores), e.g. 1,2")
    p.add_argument("--backends", type=_csv, default=None, metavar="NAMES",
                   help="comma-separated implementations: numpy, numba, cpp, torch "
                        "(default: every available backend, plus torch when installed)")
    p.add_argument("--dtype", type=_csv, default=["float32"], metavar="DTYPES",
                   help="float32 and/or float64 (default float32)")
    p.add_argument("--cases", default=None, metavar="TEXT",
                   help="only cases whose name contains one of these comma-separated words, e.g. conv_fwd,train")
    p.add_argument("--repeats", type=_positive_int, default=None, help="rounds; each samples every case on every implementation (default 9, quick 3)")
    p.add_argument("--min-time", type=_non_negative_float, default=None,
                   help="seconds per sample; short calls repeat inside a sample (default 0.002, quick 0.0005)")
    p.add_argument("--warmup-calls", type=_non_negative_int, default=1, metavar="N",
                   help="untimed calls at the start of every sample, after its 1 ms pause (default 1; "
                        "0 times the first call too, as reports made before 2026-11-29 did)")
    p.add_argument("--peak", type=float, default=None, metavar="GFLOPS",
                   help="FP32 FMA peak of one core in GFLOP/s (default: detected, see the header)")
    p.add_argument("--json", default=None, metavar="PATH", help="write the report as JSON (schema fastdl-bench/1)")
    p.add_argument("--plot", default=None, metavar="PATH", help="write a PNG bar chart of speed-ups (matplotlib)")
    p.add_argument("--compare", default=None, metavar="OLD.json", help="show what got faster or slower since OLD")
    p.add_argument("--input", default=None, metavar="NEW.json",
                   help="do not run: report, plot or --compare the results of an earlier --json")
    p.add_argument("--cold-start", action="store_true",
                   help="also time a fresh process's first training step with an empty and a warm Numba cache")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    p.set_defaults(func=main)


def _resolve_impls(requested: list[str] | None) -> tuple[list[str], list[dict]]:
    avail = _backend.available_backends()
    skipped = []
    if requested is None:
        impls = list(avail)
        if torch_available():
            impls.append(TORCH)
        else:
            skipped.append({"impl": TORCH, "reason": "PyTorch is not installed (torch rows skipped)"})
        return impls, skipped
    impls = []
    for name in dict.fromkeys(requested):  # in order, without repeats
        if name == TORCH:
            if torch_available():
                impls.append(name)
            else:
                skipped.append({"impl": TORCH, "reason": "PyTorch is not installed (torch rows skipped)"})
        elif name in avail:
            impls.append(name)
        else:
            try:
                _backend.backend_module(name)
            except (ValueError, ImportError) as exc:
                raise SystemExit(f"fastdl bench: --backends: {exc}") from None
    if not impls:
        raise SystemExit("fastdl bench: nothing to run: no requested implementation is available")
    return impls, skipped


def _load_or_exit(path: str) -> dict:
    try:
        return load_report(path)
    except (OSError, ValueError) as exc:
        raise SystemExit(f"fastdl bench: {exc}") from None


def main(args: argparse.Namespace) -> int:
    """Run ``fastdl bench`` with parsed arguments; returns the exit status."""
    old = _load_or_exit(args.compare) if args.compare else None  # a bad file fails before the run
    report = _load_or_exit(args.input) if args.input else _run(args)
    print(format_header(report))
    print()
    print(format_case_tables(report["results"]))
    print(format_summary(report["results"]))
    targets = check_targets(report["results"])
    if targets:
        print(format_targets(targets))
    note = format_probe_note(report)
    if note:
        print(note)
    if report.get("cold_start"):
        print(format_cold_start(report["cold_start"]))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(report, f, indent=1)
            f.write("\n")
        print(f"wrote {args.json}")
    if args.plot:
        plot_report(report, args.plot)
        print(f"wrote {args.plot}")
    if old is not None:
        rows = compare_reports(old, report)
        print(format_compare(rows, 0.10))
        for line in settings_differences(old, report):
            print(f"note: measured differently: {line}")
    return 0


def _run(args: argparse.Namespace) -> dict:
    for d in args.dtype:
        if d not in ("float32", "float64"):
            raise SystemExit(f"fastdl bench: --dtype must be float32 and/or float64, got {d!r}")
    impls, skipped = _resolve_impls(args.backends)
    threads = args.threads or [_backend.get_num_threads()]
    cases = QUICK_CASES if args.quick else CASES
    if args.cases:
        words = _csv(args.cases)
        cases = tuple(c for c in cases if any(w in c.name for w in words))
        if not cases:
            raise SystemExit(f"fastdl bench: no case matches --cases {args.cases!r}")
    repeats = args.repeats or (3 if args.quick else 9)
    min_time = args.min_time if args.min_time is not None else (0.0005 if args.quick else 0.002)
    machine = _machine.machine_info(args.peak)
    probe_before = _machine.fma_probe_gflops()
    store_before = _machine.store_probe_gbps()
    round_probes: list[float] = []
    results, more_skipped = run_cases(cases, impls, args.dtype, threads, repeats, min_time,
                                      progress=False if args.no_progress else None,
                                      peak_per_core=machine["peak_gflops_per_core_fp32"],
                                      round_probes=round_probes, warmup_calls=args.warmup_calls)
    report = {
        "schema": SCHEMA,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": list(sys.argv),
        "machine": _machine.machine_info(args.peak),  # after the run: lists every BLAS/OpenMP pool loaded
        "versions": _machine.versions(),
        "settings": {"impls": impls, "dtypes": list(args.dtype), "threads": threads, "quick": bool(args.quick),
                     "repeats": repeats, "min_time_s": min_time, "warmup_calls": args.warmup_calls},
        "skipped": skipped + more_skipped,
        "results": results,
    }
    if probe_before is not None:
        report["machine"]["fma_probe_gflops"] = [probe_before, _machine.fma_probe_gflops()]
    if round_probes:
        report["machine"]["fma_probe_rounds_gflops"] = round_probes
    if store_before is not None:
        report["machine"]["store_probe_gbps"] = [store_before, _machine.store_probe_gbps()]
    if args.cold_start:
        report["cold_start"] = cold_start([i for i in impls if i != TORCH], threads[0])
    return report
