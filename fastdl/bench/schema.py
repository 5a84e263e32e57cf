"""The JSON report of ``fastdl bench``: its schema, its check, and reading one from a file.

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
                  "copy_probe_gbps": [before, after],     # read + write rate of one core (NumPy copy)
                  "fma_probe_rounds_gflops": [float]},    # a short FMA probe after every round
      "versions": {"python", "fastdl", "numpy", "numba", "scipy", "threadpoolctl",
                   "torch", "fastdl._cpp": str | null},
      "settings": {"impls": [str], "dtypes": [str], "threads": [int], "quick": bool,
                   "repeats": int, "min_time_s": float,
                   "warmup_calls": int,                   # absent in reports before 2026-11-29: 0
                   "runs": int},                          # --runs; absent before 2026-12-03: 1
      "skipped": [{"impl": str, "reason": str}],
      "results": [{"case": str, "kind": str, "shape": str, "dtype": str, "threads": int,
                   "impl": str, "median_s": float, "min_s": float, "max_s": float,
                   "samples": int, "inner": int, "flops": int | null,
                   "gflops": float | null, "peak_fraction": float | null,
                   "speedup_vs_numpy": float | null, "ratio_to_torch": float | null,
                   "fallbacks": [str],
                   # from 2026-12-03: the roofline (fastdl.bench.roofline) and the per-run values
                   "bytes": int, "compute_floor_s": float | null, "memory_floor_s": float | null,
                   "roofline_multiple": float | null,
                   "runs": {"median_s": [float], "speedup_vs_numpy": [...], "ratio_to_torch": [...]}}],
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
from typing import Any

__all__ = ["SCHEMA", "TORCH", "validate_report", "load_report"]

SCHEMA = "fastdl-bench/1"
#: The implementation name of the PyTorch rows.
TORCH = "torch"


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
#: Roofline fields (absent in reports before 2026-12-03).
_OPTIONAL_RESULT_FIELDS = ("bytes", "compute_floor_s", "memory_floor_s", "roofline_multiple")
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
    for key, unit in (("fma_probe_gflops", "GFLOP/s"), ("store_probe_gbps", "GB/s"), ("copy_probe_gbps", "GB/s")):
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
    runs = report["settings"].get("runs", 1)
    _check(type(runs) is int and runs >= 1, "settings.runs", "expected an int >= 1")
    for i, row in enumerate(report["results"]):
        where = f"results[{i}]"
        _check_fields(row, where, _RESULT_FIELDS)
        for key in _OPTIONAL_RESULT_FIELDS:
            _check(isinstance(row.get(key), _OPT_NUM) and not isinstance(row.get(key), bool), f"{where}.{key}",
                   "expected a number or null")
        _check(not isinstance(row.get("runs"), dict) or all(
            isinstance(v, list) and len(v) == runs for v in row["runs"].values()), f"{where}.runs",
            f"expected a list of {runs} values per field")
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


def _positive_numbers(v: Any) -> bool:
    """A non-empty list of positive numbers (probe readings)."""
    return isinstance(v, list) and len(v) > 0 and all(isinstance(g, (int, float)) and g > 0 for g in v)
