"""What ``fastdl bench`` prints: the header, a table per case, the Markdown summary, probe notes, the plot.

The JSON report and its schema: :mod:`fastdl.bench.schema`.
"""
from __future__ import annotations

import math
import statistics

from .machine import CONV1_OUTPUT_BYTES
from .runs import run_range
from .schema import SCHEMA, TORCH, load_report, validate_report  # noqa: F401 - re-exported

__all__ = ["format_header", "format_case_tables", "format_summary", "format_roofline", "format_probe_note",
           "format_cold_start", "plot_report"]


def _warmup_text(settings: dict) -> str:
    n = settings.get("warmup_calls", 0)
    return (f"{n} untimed call{'s' if n != 1 else ''} at the start of every sample" if n
            else "the first call of every sample timed too")


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
        *([f"copy probe (one core reads and writes 5.0 MB, this run): {m['copy_probe_gbps'][0]:.1f} GB/s before "
           f"the cases, {m['copy_probe_gbps'][1]:.1f} after; the roofline's memory floor uses the better"]
          if m.get("copy_probe_gbps") else []),
        "versions: " + ", ".join(f"{k} {val}" for k, val in v.items() if val is not None),
        "not installed: " + (", ".join(k for k, val in v.items() if val is None) or "-"),
        f"implementations: {', '.join(st['impls'])}; dtypes: {', '.join(st['dtypes'])}; "
        f"threads: {', '.join(map(str, st['threads']))}; {st['repeats']} rounds, each sampling every case; "
        f"{_warmup_text(st)}" + (f"; {st['runs']} runs (ratios: median [min-max] over the runs)"
                                 if st.get("runs", 1) > 1 else ""),
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
                    extra.append(f"vs torch {r['ratio_to_torch']:.2f}{_range_text(r, 'ratio_to_torch')}")
                cells.append(_fmt_time(r["median_s"]) + (f" ({', '.join(extra)})" if extra else ""))
            out.append(f"| {case} | " + " | ".join(cells) + " |")
        out.append("")
    return "\n".join(out)


def _range_text(row: dict, field: str) -> str:
    """`` [min-max]`` of ``field`` over the row's runs when there were several, else ''."""
    rng = run_range(row, field)
    if rng is None or len(row["runs"][field]) < 2:
        return ""
    return f" [{rng[0]:.2f}-{rng[2]:.2f}]"


def format_roofline(results: list[dict]) -> str:
    """A Markdown table per (dtype, threads): FLOPs, bytes, both floors and each time as a multiple of the
    larger floor (1.0x = at the machine's limit; the rules in :mod:`fastdl.bench.roofline`)."""
    tables: dict[tuple, dict[str, dict[str, dict]]] = {}
    impls: list[str] = []
    for r in results:
        if r.get("roofline_multiple") is None:
            continue
        impls += [r["impl"]] if r["impl"] not in impls else []
        tables.setdefault((r["dtype"], r["threads"]), {}).setdefault(r["case"], {})[r["impl"]] = r
    out = []
    for (dtype, threads), cases in tables.items():
        out += [f"Roofline, {dtype}, {threads} thread{'s' if threads > 1 else ''}: time / max(compute floor, "
                "memory floor)", "",
                "| case | GFLOP | MB moved | compute floor | memory floor | " + " | ".join(impls) + " |",
                "|---|---|---|---|---|" + "---|" * len(impls)]
        for case, by_impl in cases.items():
            first = next(iter(by_impl.values()))
            cells = [f"{by_impl[i]['roofline_multiple']:.1f}x{_range_multiple(by_impl[i])}" if i in by_impl else "-"
                     for i in impls]
            out.append(f"| {case} | {(first['flops'] or 0) / 1e9:.3f} | {first['bytes'] / 1e6:.1f} | "
                       f"{_fmt_time(first['compute_floor_s'])} | {_fmt_time(first['memory_floor_s'])} | "
                       + " | ".join(cells) + " |")
        out.append("")
    return "\n".join(out)


def _range_multiple(row: dict) -> str:
    """The roofline multiple's spread over the runs, from the per-run medians."""
    rng = run_range(row, "median_s")
    if rng is None or len(row["runs"]["median_s"]) < 2:
        return ""
    scale = row["roofline_multiple"] / row["median_s"]
    return f" [{rng[0] * scale:.1f}-{rng[2] * scale:.1f}]"


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
