"""``fastdl bench --compare OLD.json``: each row of two reports side by side, faster / slower / same."""
from __future__ import annotations

from .report import _fmt_time

__all__ = ["compare_reports", "settings_differences", "format_compare"]


def settings_differences(old: dict, new: dict) -> list[str]:
    """How two reports were measured differently (sample length, rounds, untimed calls)."""
    out = []
    for key, what in (("min_time_s", "seconds per sample"), ("repeats", "rounds"),
                      ("warmup_calls", "untimed calls per sample")):
        a, b = old["settings"].get(key, 0), new["settings"].get(key, 0)
        if a != b:
            out.append(f"{what} ({key}): {a} in the old report, {b} in the new one")
    return out


def compare_reports(old: dict, new: dict, threshold: float = 0.10) -> list[dict]:
    """Match rows by (case, dtype, threads, impl); ``change`` = new median / old median.

    ``verdict`` is ``"faster"`` when the new time is below ``1 - threshold`` of
    the old one, ``"slower"`` above ``1 + threshold``, else ``"same"``; rows
    present in only one report get ``"new"`` or ``"gone"``.
    """
    def key(r):
        return (r["case"], r["dtype"], r["threads"], r["impl"])

    olds = {key(r): r for r in old["results"]}
    news = {key(r): r for r in new["results"]}
    out = []
    for k in list(olds) + [k for k in news if k not in olds]:
        o, n = olds.get(k), news.get(k)
        row = {"case": k[0], "dtype": k[1], "threads": k[2], "impl": k[3],
               "old_s": o["median_s"] if o else None, "new_s": n["median_s"] if n else None}
        if o and n:
            row["change"] = n["median_s"] / o["median_s"]
            row["verdict"] = ("faster" if row["change"] < 1 - threshold
                              else "slower" if row["change"] > 1 + threshold else "same")
        else:
            row["change"] = None
            row["verdict"] = "new" if n else "gone"
        out.append(row)
    return out


def format_compare(rows: list[dict], threshold: float) -> str:
    out = [f"Compared with the old report (faster/slower: median changed by more than {threshold:.0%}):",
           f"  {'case':26s} {'dtype':7s} {'thr':>3s} {'impl':6s} {'old':>10s} {'new':>10s} {'new/old':>8s}  verdict"]
    for r in rows:
        ch = "-" if r["change"] is None else f"{r['change']:.2f}"
        out.append(f"  {r['case']:26s} {r['dtype']:7s} {r['threads']:>3d} {r['impl']:6s} {_fmt_time(r['old_s']):>10s}"
                   f" {_fmt_time(r['new_s']):>10s} {ch:>8s}  {r['verdict']}")
    counts = {v: sum(r["verdict"] == v for r in rows) for v in ("faster", "slower", "same", "new", "gone")}
    out.append("  " + ", ".join(f"{c} {v}" for v, c in counts.items() if c))
    return "\n".join(out) + "\n"
