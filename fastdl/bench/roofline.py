"""How close a case came to the machine's limits: fraction of the FMA peak, and the roofline floors."""
from __future__ import annotations

__all__ = ["add_peak_fractions"]


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
