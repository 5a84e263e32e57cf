"""Reports of ``fastdl bench``: the JSON schema and its check, comparison, targets, tables, plot.

JSON report (``--json PATH``), schema ``"fastdl-bench/1"``::

    {
      "schema": "fastdl-bench/1",
      "created": "2026-11-28T23:00:00+00:00",      # UTC, ISO 8601
      "command": ["fastdl", "bench", ...],
      "machine": {"cpu": {"model", "logical_cores", "usable_cores", "simd", "mhz"},
                  "platform": str, "load_avg": [float, float, float] | null,
                  "blas": [{"user_api", "internal_api", "version", "num_threads", "prefix",
                            "architecture"}],
                  "peak_gflops_per_core_fp32": float | null, "peak_source": str,
                  "fma_probe_gflops": [before, after],    # when the extension has a SIMD path
                  "store_probe_gbps": [before, after],    # when the extension is built
                  "fma_probe_rounds_gflops": [float]},    # a short FMA probe after every round
      "versions": {"python", "fastdl", "numpy", "numba", "scipy", "threadpoolctl",
                   "torch", "fastdl._cpp": str | null},
      "settings": {"impls": [str], "dtypes": [str], "threads": [int], "quick": bool,
                   "repeats": int, "min_time_s": float,
                   "warmup_calls": int},                  # absent in reports before 2026-11-29: 0
      "skipped": [{"impl": str, "reason": str}],
      "results": [{"case": str, "kind": str, "shape": str, "dtype": str, "threads": int,
                   "impl": str, "median_s": float, "min_s": float, "max_s": float,
                   "samples": int, "inner": int, "flops": int | null,
                   "gflops": float | null, "peak_fraction": float | null,
                   "speedup_vs_numpy": float | null, "ratio_to_torch": float | null,
                   "fallbacks": [str]}],
      "cold_start": [{"backend": str, "cache": "empty" | "warm", "threads": int,
                      "wall_s": float, "import_s": float, "setup_s": float,
                      "first_step_s": float, "second_step_s": float}]   # only with --cold-start
    }

``speedup_vs_numpy`` is the NumPy reference's median over this one;
``ratio_to_torch`` is this median over PyTorch's (below 1: faster than PyTorch).
``flops`` counts multiply-adds as two FLOPs and, for convolutions, only the
taps that touch real input (not padding); ``peak_fraction`` divides GFLOP/s by
the FP32 FMA peak of ``threads`` cores (half of it for float64).
``fallbacks`` names kernels that the backend declined during the case (the
reference ran instead; the timing then is not the backend's).
"""
from __future__ import annotations

import json
import math
import statistics
from typing import Any

from .machine import CONV1_OUTPUT_BYTES

__all__ = [
    "SCHEMA",
    "TORCH",
    "validate_report",
    "load_report",
    "compare_reports",
    "check_targets",
    "plot_report",
]

SCHEMA = "fastdl-bench/1"
#: The implementation name of the PyTorch rows.
TORCH = "torch"


# --------------------------------------------------------------------------- report checks


def _check(cond: bool, where: str, what: str) -> None:
    if not cond:
        raise ValueError(f"not a {SCHEMA} report: {where}: {what}")


def _check_fields(obj: Any, where: str, fields: dict[str, tuple]) -> None:
    _check(isinstance(obj, dict), where, "expected an object")
    for key, types in fields.items():
        _check(key in obj, where, f"missing field {key!r}")
        _check(isinstance(obj[key], types) and not (isinstance(obj[key], bool) and bool not in types),
               f"{where}.{key}", f"expected {'/'.join(t.__name__ for t in types)}, got {type(obj[key]).__name__}")


_NUM = (int, float)
_OPT_NUM = (int, float, type(None))
_RESULT_FIELDS = {
    "case": (str,), "kind": (str,), "shape": (str,), "dtype": (str,), "threads": (int,), "impl": (str,),
    "median_s": _NUM, "min_s": _NUM, "max_s": _NUM, "samples": (int,), "inner": (int,),
    "flops": (int, type(None)), "gflops": _OPT_NUM, "peak_fraction": _OPT_NUM,
    "speedup_vs_numpy": _OPT_NUM, "ratio_to_torch": _OPT_NUM, "fallbacks": (list,),
}
_COLD_FIELDS = {"backend": (str,), "cache": (str,), "threads": (int,), "wall_s": _NUM,
                "import_s": _NUM, "setup_s": _NUM, "first_step_s": _NUM, "second_step_s": _NUM}


def validate_report(report: Any) -> dict:
    """Check a ``fastdl bench --json`` report against the schema above; return it or raise ValueError."""
    _check_fields(report, "report", {"schema": (str,), "created": (str,), "command": (list,),
                                     "machine": (dict,), "versions": (dict,), "settings": (dict,),
                                     "skipped": (list,), "results": (list,)})
    _check(report["schema"] == SCHEMA, "report.schema", f"expected {SCHEMA!r}, got {report['schema']!r}")
    m = report["machine"]
    _check_fields(m, "machine", {"cpu": (dict,), "platform": (str,), "load_avg": (list, type(None)),
                                 "blas": (list,),
                                 "peak_gflops_per_core_fp32": _OPT_NUM, "peak_source": (str,)})
    _check_fields(m["cpu"], "machine.cpu", {"model": (str,), "logical_cores": (int, type(None)),
                                            "usable_cores": (int,), "simd": (str,), "mhz": _OPT_NUM})
    for key, unit in (("fma_probe_gflops", "GFLOP/s"), ("store_probe_gbps", "GB/s")):
        pair = m.get(key)
        _check(pair is None or (_positive_numbers(pair) and len(pair) == 2),
               f"machine.{key}", f"expected [before, after] in {unit}")
    rounds = m.get("fma_probe_rounds_gflops")
    _check(rounds is None or _positive_numbers(rounds),
           "machine.fma_probe_rounds_gflops", "expected a non-empty list of GFLOP/s readings")
    for i, lib in enumerate(m["blas"]):
        _check_fields(lib, f"machine.blas[{i}]", {"user_api": (str, type(None)),
                                                  "internal_api": (str, type(None))})
    for key in ("python", "fastdl", "numpy", "numba", "torch"):
        _check(key in report["versions"], "versions", f"missing {key!r}")
    _check_fields(report["settings"], "settings", {"impls": (list,), "dtypes": (list,), "threads": (list,),
                                                   "quick": (bool,), "repeats": (int,), "min_time_s": _NUM})
    wc = report["settings"].get("warmup_calls", 0)
    _check(type(wc) is int and wc >= 0, "settings.warmup_calls", "expected an int >= 0")
    for i, row in enumerate(report["skipped"]):
        _check_fields(row, f"skipped[{i}]", {"impl": (str,), "reason": (str,)})
    for i, row in enumerate(report["results"]):
        where = f"results[{i}]"
        _check_fields(row, where, _RESULT_FIELDS)
        _check(0 < row["min_s"] <= row["median_s"] <= row["max_s"], where, "expected 0 < min_s <= median_s <= max_s")
        _check(row["samples"] >= 1 and row["inner"] >= 1, where, "samples and inner must be >= 1")
        _check(all(isinstance(k, str) for k in row["fallbacks"]), f"{where}.fallbacks", "expected strings")
    for i, row in enumerate(report.get("cold_start", [])):
        _check_fields(row, f"cold_start[{i}]", _COLD_FIELDS)
        _check(row["cache"] in ("empty", "warm"), f"cold_start[{i}].cache", "expected 'empty' or 'warm'")
    return report


def load_report(path: str) -> dict:
    """Read and validate a JSON report written by ``fastdl bench --json``."""
    with open(path, encoding="utf-8") as f:
        try:
            data = json.load(f)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}: not JSON: {exc}") from None
    try:
        return validate_report(data)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None


def _warmup_text(settings: dict) -> str:
    n = settings.get("warmup_calls", 0)
    return (f"{n} untimed call{'s' if n != 1 else ''} at the start of every sample" if n
            else "the first call of every sample timed too")


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


# --------------------------------------------------------------------------- printing


def _fmt_time(s: float | None) -> str:
    if s is None:
        return "-"
    if s < 1e-3:
        return f"{s * 1e6:.1f} us"
    if s < 1:
        return f"{s * 1e3:.2f} ms"
    return f"{s:.2f} s"


def _fmt_x(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v:.2f}x" if v >= 0.1 else f"{v:.3f}x"


def _probe_line(probe: list, peak: float | None) -> str:
    """The FMA probe before and after the cases, against the nominal peak."""
    rel = (lambda g: f" ({100 * g / peak:.0f}%)") if peak else (lambda g: "")
    return (f"FMA probe (one core, this run): {probe[0]:.0f} GFLOP/s{rel(probe[0])} before the cases, "
            f"{probe[1]:.0f}{rel(probe[1])} after; well below the peak means the core was shared "
            "and every time here is slower by about as much")


def _positive_numbers(v: Any) -> bool:
    """A non-empty list of positive numbers (probe readings)."""
    return isinstance(v, list) and len(v) > 0 and all(isinstance(g, (int, float)) and g > 0 for g in v)


def _rounds_line(rounds: list) -> str:
    """The short FMA probes taken after every round: how much of the run the core was shared."""
    best = max(rounds)
    slow = sum(g < 0.75 * best for g in rounds)
    return (f"FMA probe after each round: {min(rounds):.0f} / {statistics.median(rounds):.0f} / {best:.0f} "
            f"GFLOP/s (min / median / max of {len(rounds)}); {slow} below 75% of the best (rounds in "
            "which the core was shared)")


def _conv1_store_s(gbps: float) -> float:
    """Seconds to write DeepConvNet conv1's output at ``gbps`` GB/s."""
    return CONV1_OUTPUT_BYTES / (gbps * 1e9)


def _store_line(store: list) -> str:
    """The store probe before and after the cases, as the time to write DeepConvNet conv1's output."""
    us = [_conv1_store_s(g) * 1e6 for g in store]
    return (f"store probe (one core, this run): {store[0]:.1f} GB/s before the cases, {store[1]:.1f} after; "
            f"writing a {CONV1_OUTPUT_BYTES / 1e6:.1f} MB output (deep.conv1's) takes {us[0]:.0f} / {us[1]:.0f} us "
            "at that rate, whatever the arithmetic")


def format_header(report: dict) -> str:
    """Machine, BLAS, peak and versions, as printed at the top of the report."""
    m, v, st = report["machine"], report["versions"], report["settings"]
    cpu = m["cpu"]
    blas = ", ".join(f"{b.get('internal_api')} {b.get('version')} ({b.get('user_api')}, "
                     f"{b.get('num_threads')} threads)" for b in m["blas"]) or "none loaded"
    peak = m["peak_gflops_per_core_fp32"]
    lines = [
        f"machine: {cpu['model']}, {cpu['usable_cores']} usable of {cpu['logical_cores']} cores, "
        f"SIMD {cpu['simd']}" + (f", {cpu['mhz']:.0f} MHz" if cpu.get("mhz") else ""),
        f"BLAS/OpenMP: {blas}",
        "load average (1, 5, 15 min) when the run ended: "
        + (", ".join(f"{v:.2f}" for v in m["load_avg"]) if m["load_avg"] else "unknown")
        + " (other processes' load makes timings noisy)",
        "peak: " + (f"{peak:.0f} GFLOP/s FP32 per core ({m['peak_source']})" if peak else "unknown"),
        *([_probe_line(m["fma_probe_gflops"], peak)] if m.get("fma_probe_gflops") else []),
        *([_rounds_line(m["fma_probe_rounds_gflops"])] if m.get("fma_probe_rounds_gflops") else []),
        *([_store_line(m["store_probe_gbps"])] if m.get("store_probe_gbps") else []),
        "versions: " + ", ".join(f"{k} {val}" for k, val in v.items() if val is not None),
        "not installed: " + (", ".join(k for k, val in v.items() if val is None) or "-"),
        f"implementations: {', '.join(st['impls'])}; dtypes: {', '.join(st['dtypes'])}; "
        f"threads: {', '.join(map(str, st['threads']))}; {st['repeats']} rounds, each sampling every case; "
        f"{_warmup_text(st)}",
    ]
    by_reason: dict[str, list[str]] = {}
    for row in report["skipped"]:
        by_reason.setdefault(row["reason"], []).append(row["impl"])
    for reason, names in by_reason.items():
        lines.append(f"skipped {', '.join(names)}: {reason}")
    lines.append("speed-up = numpy reference time / this time;  vs torch = this time / PyTorch time "
                 "(below 1.00x: faster than PyTorch)")
    return "\n".join(lines)


def format_case_tables(results: list[dict]) -> str:
    """One table per (case, dtype, threads): median, min-max, speed-up, vs torch, GFLOP/s, % of peak."""
    blocks: dict[tuple, list[dict]] = {}
    for r in results:
        blocks.setdefault((r["threads"], r["dtype"], r["case"]), []).append(r)
    out = []
    for (threads, dtype, case), rows in blocks.items():
        first = rows[0]
        title = f"{case}  {first['shape']}  {dtype}  {threads} thread{'s' if threads > 1 else ''}"
        if first["flops"]:
            title += f"  {first['flops'] / 1e9:.3f} GFLOP"
        out.append(title)
        out.append(f"  {'impl':7s} {'median':>10s} {'min - max':>21s} {'speed-up':>9s} {'vs torch':>9s}"
                   f" {'GFLOP/s':>8s} {'peak':>5s}")
        for r in rows:
            span = f"{_fmt_time(r['min_s'])} - {_fmt_time(r['max_s'])}"
            gf = "-" if r["gflops"] is None else f"{r['gflops']:.1f}"
            pk = "-" if r["peak_fraction"] is None else f"{100 * r['peak_fraction']:.0f}%"
            note = f"  FALLBACK: {', '.join(r['fallbacks'])}" if r["fallbacks"] else ""
            out.append(f"  {r['impl']:7s} {_fmt_time(r['median_s']):>10s} {span:>21s}"
                       f" {_fmt_x(r['speedup_vs_numpy']):>9s} {_fmt_x(r['ratio_to_torch']):>9s}"
                       f" {gf:>8s} {pk:>5s}{note}")
        out.append("")
    return "\n".join(out)


def format_summary(results: list[dict]) -> str:
    """A Markdown table per (dtype, threads): rows are cases, cells 'median (speed-up over numpy)'."""
    impls: list[str] = []
    for r in results:
        if r["impl"] not in impls:
            impls.append(r["impl"])
    tables: dict[tuple, dict[str, dict[str, dict]]] = {}
    for r in results:
        tables.setdefault((r["dtype"], r["threads"]), {}).setdefault(r["case"], {})[r["impl"]] = r
    out = []
    for (dtype, threads), cases in tables.items():
        out.append(f"Summary, {dtype}, {threads} thread{'s' if threads > 1 else ''}: median time "
                   "(speed-up over numpy; vs torch = time / PyTorch time)")
        out.append("")
        out.append("| case | " + " | ".join(impls) + " |")
        out.append("|---|" + "---|" * len(impls))
        for case, by_impl in cases.items():
            cells = []
            for impl in impls:
                r = by_impl.get(impl)
                if r is None:
                    cells.append("-")
                    continue
                extra = []
                if impl != "numpy" and r["speedup_vs_numpy"] is not None:
                    extra.append(f"{r['speedup_vs_numpy']:.1f}x")
                if impl != TORCH and r["ratio_to_torch"] is not None:
                    extra.append(f"vs torch {r['ratio_to_torch']:.2f}")
                cells.append(_fmt_time(r["median_s"]) + (f" ({', '.join(extra)})" if extra else ""))
            out.append(f"| {case} | " + " | ".join(cells) + " |")
        out.append("")
    return "\n".join(out)


#: Issue 3: minimum float32 speed-up of the numba backend over the reference, per kernel kind.
_NUMBA_SPEEDUP_TARGETS = {"pool_fwd": 20.0, "pool_bwd": 5.0, "im2col": 3.0, "col2im": 3.0,
                          "conv_fwd": 2.5, "conv_bwd": 2.5}


def check_targets(results: list[dict]) -> list[dict]:
    """The speed targets of issues 3 (numba) and 4 (cpp) that this run measured, float32 rows only.

    Each row: ``issue``, ``impl``, ``case``, ``threads``, ``what``, ``value``, ``goal``, ``ok``.
    """
    f32 = [r for r in results if r["dtype"] == "float32"]
    by_key = {(r["case"], r["threads"], r["impl"]): r for r in f32}
    out = []

    def add(issue, r, what, value, goal, ok):
        out.append({"issue": issue, "impl": r["impl"], "case": r["case"], "threads": r["threads"],
                    "what": what, "value": value, "goal": goal, "ok": bool(ok)})

    for r in f32:
        kind, sp, vs = r["kind"], r["speedup_vs_numpy"], r["ratio_to_torch"]
        if r["impl"] == "numba" and sp is not None:
            if kind in _NUMBA_SPEEDUP_TARGETS:
                want = _NUMBA_SPEEDUP_TARGETS[kind]
                add(3, r, "speed-up over numpy", sp, f">= {want:g}x", sp >= want)
            elif kind == "train_step" and r["threads"] == 1:
                add(3, r, "speed-up over numpy", sp, ">= 3x", sp >= 3.0)
        if r["impl"] == "numba" and kind == "train_step" and r["threads"] > 1:
            one = by_key.get((r["case"], 1, r["impl"]))
            if one is not None:
                gain = one["median_s"] / r["median_s"]
                add(3, r, "speed-up over 1 thread", gain, "> 1x", gain > 1.0)
        if r["impl"] == "cpp":
            if r["case"] == "train_step simple_convnet" and vs is not None:
                add(4, r, "time / torch", vs, "< 1x", vs < 1.0)
            if r["case"] == "train_step deep_convnet" and vs is not None:
                if r["threads"] == 1:
                    add(4, r, "time / torch", vs, "<= 1.3x (floor)", vs <= 1.3)
                add(4, r, "time / torch", vs, "< 1x (goal)", vs < 1.0)
            if kind == "conv_fwd" and r["case"].startswith("conv_fwd deep.") and r["peak_fraction"] is not None:
                add(4, r, "fraction of peak", r["peak_fraction"], ">= 60%", r["peak_fraction"] >= 0.6)
    return sorted(out, key=lambda t: (t["issue"], t["threads"]))


def format_targets(rows: list[dict]) -> str:
    out = ["Targets of issue 3 (numba vs the reference) and issue 4 (cpp vs PyTorch), float32, this run:",
           f"  {'issue':5s} {'impl':5s} {'case':26s} {'thr':>3s} {'measured':>9s}  {'target':16s} {'what':24s} result"]
    for t in rows:
        v = f"{100 * t['value']:.0f}%" if t["what"] == "fraction of peak" else f"{t['value']:.2f}x"
        out.append(f"  {t['issue']:<5d} {t['impl']:5s} {t['case']:26s} {t['threads']:>3d} {v:>9s}  {t['goal']:16s}"
                   f" {t['what']:24s} {'met' if t['ok'] else 'MISSED'}")
    out.append(f"  {sum(t['ok'] for t in rows)} of {len(rows)} met")
    return "\n".join(out) + "\n"


def format_probe_note(report: dict) -> str:
    """The conv forward GFLOP/s of the fast backends on 1 thread against the FMA probe of the
    same run (what the core delivered), next to the nominal peak the targets use."""
    probe = report["machine"].get("fma_probe_gflops")
    rows = [r for r in report["results"] if r["kind"] == "conv_fwd" and r["threads"] == 1
            and r["impl"] in ("cpp", "numba") and r["gflops"] is not None and r["dtype"] == "float32"]
    if not probe or not rows:
        return ""
    best = max(probe)
    out = [f"Conv forward, 1 thread, against the FMA probe of this run ({best:.0f} GFLOP/s, the better "
           "of before/after) rather than the nominal peak:"]
    for impl in ("cpp", "numba"):
        cells = [f"{r['case'].split()[-1]} {100 * r['gflops'] / best:.0f}%" for r in rows if r["impl"] == impl]
        if cells:
            out.append(f"  {impl}: " + ", ".join(cells))
    store = report["machine"].get("store_probe_gbps")
    peak = report["machine"].get("peak_gflops_per_core_fp32")
    conv1 = [r for r in rows if r["impl"] == "cpp" and r["case"] == "conv_fwd deep.conv1"]
    if store and peak and conv1:
        r = conv1[0]
        floor = _conv1_store_s(max(store))
        budget = r["flops"] / (0.6 * peak * 1e9)
        out.append(f"  deep.conv1 writes {CONV1_OUTPUT_BYTES / 1e6:.1f} MB: at this run's best store rate "
                   f"({max(store):.1f} GB/s) that alone takes {floor * 1e6:.0f} us, {100 * floor / budget:.0f}% "
                   f"of the {budget * 1e6:.0f} us that 60% of {peak:.0f} GFLOP/s allows; cpp took "
                   f"{r['median_s'] * 1e6:.0f} us")
    return "\n".join(out) + "\n"


def format_cold_start(rows: list[dict]) -> str:
    out = ["Cold start: fresh process, SimpleConvNet float32 batch 100, "
           f"{rows[0]['threads']} thread(s) (NUMBA_CACHE_DIR empty, then warm)",
           f"  {'backend':7s} {'cache':6s} {'import':>9s} {'setup':>9s} {'1st step':>10s} {'2nd step':>10s}"
           f" {'process':>9s}"]
    for r in rows:
        out.append(f"  {r['backend']:7s} {r['cache']:6s} {_fmt_time(r['import_s']):>9s} {_fmt_time(r['setup_s']):>9s}"
                   f" {_fmt_time(r['first_step_s']):>10s} {_fmt_time(r['second_step_s']):>10s}"
                   f" {_fmt_time(r['wall_s']):>9s}")
    return "\n".join(out) + "\n"


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


def plot_report(report: dict, path: str) -> None:
    """Bar chart PNG of the speed-up over the NumPy reference, one panel per (dtype, threads)."""
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise RuntimeError("--plot needs matplotlib (pip install matplotlib)") from exc
    panels: dict[tuple, list[dict]] = {}
    for r in report["results"]:
        panels.setdefault((r["dtype"], r["threads"]), []).append(r)
    if not panels:
        raise ValueError("the report has no results to plot")
    impls = [i for i in report["settings"]["impls"] if i != "numpy"] or ["numpy"]
    cases = list(dict.fromkeys(r["case"] for r in report["results"]))
    fig = Figure(figsize=(9, 1.2 + 0.28 * len(cases) * len(panels) + 0.6 * len(panels)))
    axes = fig.subplots(len(panels), 1, squeeze=False)[:, 0]
    height = 0.8 / len(impls)
    for ax, ((dtype, threads), rows) in zip(axes, panels.items()):
        by = {(r["case"], r["impl"]): r["speedup_vs_numpy"] for r in rows}
        for j, impl in enumerate(impls):
            ys = [i + j * height for i in range(len(cases))]
            vals = [by.get((c, impl)) or math.nan for c in cases]  # nan: no bar
            ax.barh(ys, [v - 1.0 for v in vals], left=1.0, height=height, label=impl)  # bars grow from 1x
        ax.set_yticks([i + 0.4 - height / 2 for i in range(len(cases))], cases, fontsize=7)
        ax.invert_yaxis()
        ax.axvline(1.0, color="black", linewidth=0.8)
        ax.set_xscale("log")
        ax.set_xlabel("speed-up over the NumPy reference (log scale)")
        ax.set_title(f"fastdl bench: {dtype}, {threads} thread{'s' if threads > 1 else ''}", fontsize=9)
        ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
