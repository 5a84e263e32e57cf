"""``fastdl bench``: time the kernels and training steps of every backend side by side.

The cases are the book's shapes at batch 100: SimpleConvNet's conv (1->30, 5x5
on 28x28) and DeepConvNet's six 3x3 convs (forward, and backward without dx for
each network's input layer), the four 2x2/2 max pools, softmax cross-entropy
on (100, 10) and (4096, 1000), im2col/col2im, the Adam update of each network's
largest parameter, whole training steps (forward, backward, the book's
optimizer) of every network the book trains (TwoLayerNet, MultiLayerNet,
MultiLayerNetExtend with batch norm and dropout, SimpleConvNet, DeepConvNet),
and ``predict`` at batch 1 and 1000 of its three pretrained networks, each with
a roofline line (:mod:`~fastdl.bench.roofline`).  Each
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

Where things are: :mod:`~fastdl.bench.cases` (the shapes and FLOP counts),
:mod:`~fastdl.bench.impls` (inputs; the fastdl and PyTorch calls),
:mod:`~fastdl.bench.timing` (the rounds), :mod:`~fastdl.bench.machine` (CPU,
probes, peak), :mod:`~fastdl.bench.schema` (the JSON report),
:mod:`~fastdl.bench.report` (what is printed), :mod:`~fastdl.bench.compare`
(``--compare``), :mod:`~fastdl.bench.targets` (``--targets``),
:mod:`~fastdl.bench.cold_start` and :mod:`~fastdl.bench.cli` (the subcommand).
"""
from __future__ import annotations

from .cases import (ADAM_PARAMS, BATCH, CASES, CONV_LAYERS, IM2COL_LAYERS, POOL_LAYERS, QUICK_CASES,
                    SOFTMAX_SHAPES, Case)
from .cli import main, register
from .cold_start import _same_fastdl_path, cold_start
from .impls import Unavailable, impl_context, prepare, torch_available
from .schema import SCHEMA, TORCH, load_report, validate_report
from .timing import run_cases

__all__ = [
    "Case",
    "CASES",
    "QUICK_CASES",
    "Unavailable",
    "TORCH",
    "torch_available",
    "impl_context",
    "prepare",
    "run_cases",
    "cold_start",
    "register",
    "main",
    "validate_report",
    "load_report",
]
