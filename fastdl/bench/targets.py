"""``fastdl bench --targets FILE``: check a run against speed targets kept outside the library.

The targets are the project's (its issues' goals), not the library's: they live
in ``benchmarks/targets.json`` of the source tree, a list of rules::

    {"issue": 16, "impl": "cpp", "case": "train_step deep_convnet", "threads": [1],
     "metric": "peak_fraction", "op": ">=", "value": 0.75, "goal": ">= 75% of the probe"}

``case`` is a shell pattern (``fnmatch``) on the case name; ``threads`` (a list)
and ``min_threads`` narrow the rows; ``dtype`` defaults to float32.  ``metric``
is a number in the result row (``speedup_vs_numpy``, ``ratio_to_torch``,
``peak_fraction``, ``roofline_multiple``, ...) or ``speedup_over_1_thread``
(the 1-thread median of the same case and implementation over this one).
``goal`` is the text printed (default: ``op value``).
"""
from __future__ import annotations

import fnmatch
import json
import operator
from typing import Any

__all__ = ["load_targets", "check_targets", "format_targets"]

_OPS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}
_FRACTIONS = ("peak_fraction",)  # shown in percent


def load_targets(path: str) -> list[dict]:
    """Read and check a targets file (a JSON list of rules, see the module docstring)."""
    with open(path, encoding="utf-8") as f:
        try:
            rules = json.load(f)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}: not JSON: {exc}") from None
    if not isinstance(rules, list):
        raise ValueError(f"{path}: expected a JSON list of target rules")
    for i, rule in enumerate(rules):
        missing = [k for k in ("issue", "impl", "case", "metric", "op", "value") if k not in rule]
        if missing or rule.get("op") not in _OPS:
            raise ValueError(f"{path}: rule {i}: needs issue, impl, case, metric, value and op in "
                             f"{sorted(_OPS)} (missing {missing}, op {rule.get('op')!r})")
    return rules


def _metric(row: dict, metric: str, by_key: dict) -> Any:
    if metric == "speedup_over_1_thread":
        one = by_key.get((row["case"], row["dtype"], 1, row["impl"]))
        return one["median_s"] / row["median_s"] if one is not None and row["threads"] > 1 else None
    return row.get(metric)


def _applies(rule: dict, row: dict) -> bool:
    return (row["impl"] == rule["impl"] and row["dtype"] == rule.get("dtype", "float32")
            and fnmatch.fnmatchcase(row["case"], rule["case"])
            and ("threads" not in rule or row["threads"] in rule["threads"])
            and row["threads"] >= rule.get("min_threads", 1))


def check_targets(results: list[dict], rules: list[dict]) -> list[dict]:
    """The targets of ``rules`` that this run measured.

    Each row: ``issue``, ``impl``, ``case``, ``threads``, ``what`` (the metric),
    ``value``, ``goal``, ``ok``; sorted by issue and thread count.
    """
    by_key = {(r["case"], r["dtype"], r["threads"], r["impl"]): r for r in results}
    out = []
    for rule in rules:
        for r in results:
            if not _applies(rule, r):
                continue
            value = _metric(r, rule["metric"], by_key)
            if value is None:
                continue
            goal = rule.get("goal", f"{rule['op']} {rule['value']:g}")
            out.append({"issue": rule["issue"], "impl": r["impl"], "case": r["case"], "threads": r["threads"],
                        "what": rule["metric"], "value": value, "goal": goal,
                        "ok": bool(_OPS[rule["op"]](value, rule["value"]))})
    return sorted(out, key=lambda t: (t["issue"], t["threads"]))


def format_targets(rows: list[dict], source: str = "") -> str:
    out = [f"Targets{' of ' + source if source else ''}, this run:",
           f"  {'issue':5s} {'impl':5s} {'case':34s} {'thr':>3s} {'measured':>9s}  {'target':22s} "
           f"{'what':22s} result"]
    for t in rows:
        v = f"{100 * t['value']:.0f}%" if t["what"] in _FRACTIONS else f"{t['value']:.2f}x"
        out.append(f"  {t['issue']:<5d} {t['impl']:5s} {t['case']:34s} {t['threads']:>3d} {v:>9s}  "
                   f"{t['goal']:22s} {t['what']:22s} {'met' if t['ok'] else 'MISSED'}")
    out.append(f"  {sum(t['ok'] for t in rows)} of {len(rows)} met")
    return "\n".join(out) + "\n"
