"""The ``fastdl bench`` subcommand: options, the run, and what it prints."""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import sys
from typing import Any, Callable

from .. import backend as _backend
from . import machine as _machine
from .cases import CASES, QUICK_CASES
from .cold_start import cold_start
from .impls import torch_available
from .roofline import add_peak_fractions, add_roofline
from .runs import merge_runs
from .report import (format_case_tables, format_cold_start, format_header, format_probe_note,
                     format_roofline, format_summary, plot_report)
from .compare import compare_reports, format_compare, settings_differences
from .schema import SCHEMA, TORCH, load_report
from .targets import check_targets, format_targets, load_targets
from .timing import run_cases

__all__ = ["register", "main"]

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
    p.add_argument("--runs", type=_positive_int, default=1, metavar="N",
                   help="repeat the whole measurement N times; ratios are then min/median/max over the runs")
    p.add_argument("--warmup-calls", type=_non_negative_int, default=1, metavar="N",
                   help="untimed calls at the start of every sample, after its 1 ms pause (default 1; "
                        "0 times the first call too, as reports made before 2026-11-29 did)")
    p.add_argument("--peak", type=float, default=None, metavar="GFLOPS",
                   help="FP32 FMA peak of one core in GFLOP/s (default: the best FMA probe reading of the run)")
    p.add_argument("--json", default=None, metavar="PATH", help="write the report as JSON (schema fastdl-bench/1)")
    p.add_argument("--plot", default=None, metavar="PATH", help="write a PNG bar chart of speed-ups (matplotlib)")
    p.add_argument("--compare", default=None, metavar="OLD.json", help="show what got faster or slower since OLD")
    p.add_argument("--input", default=None, metavar="NEW.json",
                   help="do not run: report, plot or --compare the results of an earlier --json")
    p.add_argument("--targets", default=None, metavar="FILE",
                   help="check the run against the speed targets in FILE (the project's: benchmarks/targets.json)")
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


def _load_or_exit(path: str, load: Callable[[str], Any] = load_report) -> Any:
    try:
        return load(path)
    except (OSError, ValueError) as exc:
        raise SystemExit(f"fastdl bench: {exc}") from None


def main(args: argparse.Namespace) -> int:
    """Run ``fastdl bench`` with parsed arguments; returns the exit status."""
    old = _load_or_exit(args.compare) if args.compare else None  # a bad file fails before the run
    if args.targets:
        _load_or_exit(args.targets, load_targets)
    report = _load_or_exit(args.input) if args.input else _run(args)
    print(format_header(report))
    print()
    print(format_case_tables(report["results"]))
    print(format_summary(report["results"]))
    roof = format_roofline(report["results"])
    if roof:
        print(roof)
    if args.targets:
        print(format_targets(check_targets(report["results"], _load_or_exit(args.targets, load_targets)),
                             args.targets))
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
        print(format_compare(rows))
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
    probe_before = _machine.fma_probe_gflops()
    store_before = _machine.store_probe_gbps()
    copy_before = _machine.copy_probe_gbps()
    round_probes: list[float] = []
    runs, more_skipped = [], []
    for _ in range(args.runs):
        rows, more_skipped = run_cases(cases, impls, args.dtype, threads, repeats, min_time,
                                       progress=False if args.no_progress else None,
                                       round_probes=round_probes, warmup_calls=args.warmup_calls)
        runs.append(rows)
    results = merge_runs(runs)
    probes = [probe_before, _machine.fma_probe_gflops()] if probe_before is not None else []
    copy = [copy_before, _machine.copy_probe_gbps()]
    # After the run: the peak is the best FMA reading of this run, and every BLAS/OpenMP pool is loaded.
    machine = _machine.machine_info(args.peak, probes + round_probes)
    machine["copy_probe_gbps"] = copy
    add_peak_fractions(results, machine["peak_gflops_per_core_fp32"])
    add_roofline(results, machine["peak_gflops_per_core_fp32"], max(copy))
    report = {
        "schema": SCHEMA,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": list(sys.argv),
        "machine": machine,
        "versions": _machine.versions(),
        "settings": {"impls": impls, "dtypes": list(args.dtype), "threads": threads, "quick": bool(args.quick),
                     "repeats": repeats, "min_time_s": min_time, "warmup_calls": args.warmup_calls,
                     "runs": args.runs},
        "skipped": skipped + more_skipped,
        "results": results,
    }
    if probes:
        machine["fma_probe_gflops"] = probes
    if round_probes:
        machine["fma_probe_rounds_gflops"] = round_probes
    if store_before is not None:
        machine["store_probe_gbps"] = [store_before, _machine.store_probe_gbps()]
    if args.cold_start:
        report["cold_start"] = cold_start([i for i in impls if i != TORCH], threads[0])
    return report
