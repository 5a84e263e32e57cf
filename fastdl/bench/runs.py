"""``fastdl bench --runs N``: the whole interleaved measurement N times, each ratio as min/median/max."""
from __future__ import annotations

import statistics
from typing import Sequence

__all__ = ["merge_runs", "run_range", "RUN_FIELDS"]

#: Per-run values kept in every row's ``runs`` (one entry per run).
RUN_FIELDS = ("median_s", "speedup_vs_numpy", "ratio_to_torch")


def _median_or_none(values: list) -> float | None:
    vals = [v for v in values if v is not None]
    return statistics.median(vals) if vals else None


def merge_runs(runs: Sequence[list[dict]]) -> list[dict]:
    """One row per (case, dtype, threads, impl) from the rows of several runs.

    ``runs`` holds the per-run values of :data:`RUN_FIELDS`; ``median_s``,
    ``speedup_vs_numpy`` and ``ratio_to_torch`` become the medians over the runs
    (each ratio taken inside its own run, side by side), ``min_s``/``max_s``
    the extremes of all samples, ``samples`` their count.
    """
    merged: dict[tuple, dict] = {}
    for rows in runs:
        for r in rows:
            key = (r["case"], r["dtype"], r["threads"], r["impl"])
            m = merged.get(key)
            if m is None:
                m = merged[key] = dict(r, runs={f: [] for f in RUN_FIELDS}, samples=0)
            m["min_s"], m["max_s"] = min(m["min_s"], r["min_s"]), max(m["max_s"], r["max_s"])
            m["samples"] += r["samples"]
            for f in RUN_FIELDS:
                m["runs"][f].append(r[f])
    for m in merged.values():
        for f in RUN_FIELDS:
            m[f] = _median_or_none(m["runs"][f])
        m["gflops"] = m["flops"] / m["median_s"] / 1e9 if m["flops"] else None
    return list(merged.values())


def run_range(row: dict, field: str) -> tuple[float, float, float] | None:
    """(min, median, max) of ``field`` over the row's runs, or None."""
    vals = [v for v in row.get("runs", {}).get(field, []) if v is not None]
    return (min(vals), statistics.median(vals), max(vals)) if vals else None
