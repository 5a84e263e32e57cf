"""``fastdl bench --compare OLD.json``: each row of two reports side by side, faster / slower / same."""
from __future__ import annotations

import statistics

from .report import _fmt_time
from .runs import run_range

__all__ = ["compare_reports", "settings_differences", "format_compare", "probe_noise", "machine_factor"]


def settings_differences(old: dict, new: dict) -> list[str]:
    """How two reports were measured differently (sample length, rounds, untimed calls)."""
    out = []
    for key, what in (("min_time_s", "seconds per sample"), ("repeats", "rounds"),
                      ("warmup_calls", "untimed calls per sample")):
        a, b = old["settings"].get(key, 0), new["settings"].get(key, 0)
        if a != b:
            out.append(f"{what} ({key}): {a} in the old report, {b} in the new one")
    return out


def probe_noise(report: dict) -> float:
    """How much the FMA probe moved during a run: best / median of its per-round readings - 1 (0 without)."""
    rounds = report["machine"].get("fma_probe_rounds_gflops") or []
    return max(rounds) / statistics.median(rounds) - 1 if rounds else 0.0


def machine_factor(old: dict, new: dict) -> float:
    """How much slower the machine was in ``new`` than in ``old`` by the FMA probe (median of the rounds'
    readings, else the before/after pair): every time is expected to change by this much (1.0 without)."""
    def level(report):
        m = report["machine"]
        readings = m.get("fma_probe_rounds_gflops") or m.get("fma_probe_gflops")
        return statistics.median(readings) if readings else None

    a, b = level(old), level(new)
    return a / b if a and b else 1.0


def compare_reports(old: dict, new: dict, threshold: float = 0.10) -> list[dict]:
    """Match rows by (case, dtype, threads, impl); ``change`` = new median / old median.

    The change the probe explains is ``expected`` (:func:`machine_factor`); the
    tolerance is ``threshold`` plus the larger :func:`probe_noise` of the two runs.
    ``verdict`` is ``"slower"`` when ``change > expected * (1 + tolerance)`` (and, when
    both rows have several runs, even the new fastest run is slower than the old
    slowest one by more than ``expected``), ``"faster"`` likewise the other way, else
    ``"same"``; rows present in only one report get ``"new"`` or ``"gone"``.
    """
    def key(r):
        return (r["case"], r["dtype"], r["threads"], r["impl"])

    expected = machine_factor(old, new)
    tol = threshold + max(probe_noise(old), probe_noise(new))
    olds = {key(r): r for r in old["results"]}
    news = {key(r): r for r in new["results"]}
    out = []
    for k in list(olds) + [k for k in news if k not in olds]:
        o, n = olds.get(k), news.get(k)
        row = {"case": k[0], "dtype": k[1], "threads": k[2], "impl": k[3], "expected": expected,
               "tolerance": tol, "old_s": o["median_s"] if o else None, "new_s": n["median_s"] if n else None}
        if o and n:
            row["change"] = n["median_s"] / o["median_s"]
            row["verdict"] = _verdict(row["change"], expected, tol, o, n)
        else:
            row["change"] = None
            row["verdict"] = "new" if n else "gone"
        out.append(row)
    return out


def _verdict(change: float, expected: float, tol: float, old: dict, new: dict) -> str:
    a, b = run_range(old, "median_s"), run_range(new, "median_s")
    several = a is not None and b is not None and len(old["runs"]["median_s"]) > 1 \
        and len(new["runs"]["median_s"]) > 1
    if change > expected * (1 + tol) and not (several and b[0] <= a[2] * expected):
        return "slower"
    if change < expected / (1 + tol) and not (several and b[2] >= a[0] * expected):
        return "faster"
    return "same"


def format_compare(rows: list[dict]) -> str:
    """The comparison table; ``SLOWER`` marks a row slower than the probe's noise explains."""
    head = rows[0] if rows else {"expected": 1.0, "tolerance": 0.0}
    out = [f"Compared with the old report: the FMA probe expects every time x{head['expected']:.2f}; "
           f"faster/slower = beyond that by more than {head['tolerance']:.0%} (10% + the probe's spread):",
           f"  {'case':34s} {'dtype':7s} {'thr':>3s} {'impl':6s} {'old':>10s} {'new':>10s} {'new/old':>8s}  verdict"]
    for r in rows:
        ch = "-" if r["change"] is None else f"{r['change']:.2f}"
        verdict = "SLOWER" if r["verdict"] == "slower" else r["verdict"]
        out.append(f"  {r['case']:34s} {r['dtype']:7s} {r['threads']:>3d} {r['impl']:6s} {_fmt_time(r['old_s']):>10s}"
                   f" {_fmt_time(r['new_s']):>10s} {ch:>8s}  {verdict}")
    counts = {v: sum(r["verdict"] == v for r in rows) for v in ("faster", "slower", "same", "new", "gone")}
    out.append("  " + ", ".join(f"{c} {v}" for v, c in counts.items() if c))
    return "\n".join(out) + "\n"
