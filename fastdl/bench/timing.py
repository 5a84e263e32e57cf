"""The timing loop of ``fastdl bench``: every case prepared, then rounds that sample each case in turn."""
from __future__ import annotations

import gc
import math
import statistics
import sys
import time
from typing import Any, Callable, Sequence

from .. import backend as _backend
from . import machine as _machine
from .cases import Case
from .impls import Unavailable, impl_context, prepare, set_threads
from .schema import TORCH

__all__ = ["run_cases"]

#: Seconds between two samples: OpenMP/Numba workers spin briefly after a parallel region.
_PAUSE = 0.001


def run_cases(cases: Sequence[Case], impls: Sequence[str], dtypes: Sequence[str], threads: Sequence[int],
              repeats: int, min_time: float, progress: bool | None = None,
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
            set_threads(n, impls)
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
                results += t.rows(n)
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

    def rows(self, threads: int) -> list[dict]:
        """The JSON result rows of the samples taken (and the prepared calls released)."""
        self.fns.clear()
        case, dtype = self.case, self.dtype
        flops, nbytes = case.cost(dtype)
        flops = flops or None
        med = {impl: statistics.median(s) for impl, s in self.samples.items()}
        rows = []
        for impl, s in self.samples.items():
            gflops = flops / med[impl] / 1e9 if flops else None
            rows.append({
                "case": case.name, "kind": case.kind, "shape": case.shape(), "dtype": dtype,
                "threads": threads, "impl": impl,
                "median_s": med[impl], "min_s": min(s), "max_s": max(s), "samples": len(s),
                "inner": self.inner[impl],
                "flops": flops, "bytes": nbytes, "gflops": gflops,
                "peak_fraction": None,  # set from the run's peak: roofline.add_peak_fractions
                "speedup_vs_numpy": med["numpy"] / med[impl] if "numpy" in med else None,
                "ratio_to_torch": med[impl] / med[TORCH] if TORCH in med else None,
                "fallbacks": self.fallbacks.get(impl, []),
            })
        return rows
