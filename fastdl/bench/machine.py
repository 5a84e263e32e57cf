"""What machine a benchmark ran on: CPU model, cores, SIMD level, BLAS, peak FLOP rate, versions.

Used by ``fastdl bench`` for its header and its JSON report.  Everything here
is best-effort: a field that cannot be found is ``None`` (or ``"unknown"``),
never an error.
"""
from __future__ import annotations

import os
import platform
import sys
import time
from typing import Any

__all__ = ["cpu_info", "simd_level", "blas_info", "peak_gflops", "fma_probe_gflops", "store_probe_gbps",
           "copy_probe_gbps",
           "machine_info", "versions"]

#: FP32 FLOPs per cycle and core by SIMD level, assuming two FMA units
#: (lanes * 2 FLOPs per FMA * 2 units); used to estimate a peak when the CPU is not AVX-512.
_FP32_FLOPS_PER_CYCLE = {"AVX-512": 64, "AVX2+FMA": 32, "AVX": 16, "SSE4.2": 8, "baseline": 8}


def _proc_cpuinfo() -> dict[str, str]:
    """First processor block of /proc/cpuinfo as a dict ({} when not on Linux)."""
    info: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if not line.strip():
                    if info:
                        break
                    continue
                key, _, value = line.partition(":")
                info.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    return info


def simd_level(flags: set[str] | None = None) -> str:
    """Widest x86 SIMD level the CPU reports: ``AVX-512``, ``AVX2+FMA``, ``AVX``, ``SSE4.2`` or ``baseline``."""
    if flags is None:
        flags = set(_proc_cpuinfo().get("flags", "").split())
    if "avx512f" in flags:
        return "AVX-512"
    if "avx2" in flags and "fma" in flags:
        return "AVX2+FMA"
    if "avx" in flags:
        return "AVX"
    if "sse4_2" in flags:
        return "SSE4.2"
    return "baseline"


def usable_cores() -> int:
    """Cores this process may run on (the affinity mask on Linux)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def cpu_info() -> dict[str, Any]:
    """CPU model, logical and usable cores, SIMD level and nominal MHz."""
    info = _proc_cpuinfo()
    mhz = info.get("cpu MHz")
    return {
        "model": info.get("model name") or platform.processor() or platform.machine() or "unknown",
        "logical_cores": os.cpu_count(),
        "usable_cores": usable_cores(),
        "simd": simd_level(set(info.get("flags", "").split())),
        "mhz": float(mhz) if mhz else None,
    }


def blas_info() -> list[dict[str, Any]]:
    """Loaded BLAS/OpenMP libraries as threadpoolctl sees them (API, implementation, version, threads)."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:  # pragma: no cover - threadpoolctl is a dependency
        return []
    keep = ("user_api", "internal_api", "version", "num_threads", "prefix", "architecture")
    return [{k: lib.get(k) for k in keep} for lib in threadpool_info()]


def peak_gflops(cpu: dict[str, Any], override: float | None = None,
                probe: list[float] | None = None) -> tuple[float | None, str]:
    """FP32 FMA peak of ONE core in GFLOP/s and where the number comes from.

    Order: ``override`` (``--peak``), ``FASTDL_PEAK_GFLOPS``, the best of the FMA
    probe's readings ``probe`` taken in the same run (what a core of this machine
    delivered), else an estimate from the SIMD level and the nominal clock.  Halve
    it for float64; multiply by the thread count for several cores.
    """
    if override is not None:
        return float(override), "given with --peak"
    env = os.environ.get("FASTDL_PEAK_GFLOPS")
    if env:
        try:
            return float(env), "FASTDL_PEAK_GFLOPS"
        except ValueError:
            pass
    if probe:
        return float(max(probe)), f"the best of this run's {len(probe)} FMA probe readings"
    if cpu.get("mhz"):
        per_cycle = _FP32_FLOPS_PER_CYCLE[cpu["simd"]]
        return per_cycle * cpu["mhz"] / 1000.0, f"estimate: {per_cycle} FLOP/cycle ({cpu['simd']}) x nominal clock"
    return None, "unknown"


def versions() -> dict[str, str | None]:
    """Versions of Python, fastdl and the libraries a benchmark may use (``None`` = not installed)."""
    from importlib import metadata

    from .. import __version__

    out: dict[str, str | None] = {"python": sys.version.split()[0], "fastdl": __version__}
    for name in ("numpy", "numba", "scipy", "threadpoolctl", "torch"):
        try:
            out[name] = metadata.version(name)  # no import: torch is heavy and may be absent
        except metadata.PackageNotFoundError:
            out[name] = None
    try:
        from .. import _cpp  # type: ignore[attr-defined]

        info = _cpp.build_info()
        out["fastdl._cpp"] = f"{info.get('version')} ({info.get('compiler')}, openmp={info.get('openmp')})"
    except Exception:  # noqa: BLE001 - the extension is optional
        out["fastdl._cpp"] = None
    return out


def fma_probe_gflops(seconds: float = 0.02, trials: int = 5) -> float | None:
    """The FP32 FMA rate one core delivers right now, in GFLOP/s.

    The best of ``trials`` runs (about ``seconds`` each) of the C++ extension's
    loop of independent FMA chains on the calling thread.  Close to the nominal
    peak on a quiet machine; lower when other work shares the core (on a VM,
    other tenants), and every timing taken then is slower by about as much.
    ``None`` without the extension or without an AVX2/AVX-512 path.
    """
    try:
        from .. import _cpp  # type: ignore[attr-defined]
    except ImportError:
        return None
    per_iter = _cpp.fma_probe_flops_per_iter()
    if per_iter <= 0:
        return None
    iters = 10_000
    start = time.perf_counter()
    _cpp.fma_probe(iters)
    elapsed = max(time.perf_counter() - start, 1e-7)
    iters = max(iters, int(iters * seconds / elapsed))
    best = float("inf")
    for _ in range(trials):
        start = time.perf_counter()
        _cpp.fma_probe(iters)
        best = min(best, time.perf_counter() - start)
    return per_iter * iters / best / 1e9


# DeepConvNet conv1's float32 output at batch 100, (100, 16, 28, 28): the largest store of
# the benchmark's conv layers relative to its arithmetic.
CONV1_OUTPUT_BYTES = 100 * 16 * 28 * 28 * 4


def store_probe_gbps(nbytes: int = CONV1_OUTPUT_BYTES, trials: int = 7) -> float | None:
    """The rate one core writes ``nbytes`` of memory right now, in GB/s (1e9 bytes/s).

    The best of ``trials`` passes of the C++ extension's vector store loop over one
    float32 buffer of that size, the way a kernel writes its output: a 5 MB output
    does not fit in a core's L2, so its lines go out to the shared L3 or memory, at a
    rate other tenants' traffic changes.  ``nbytes / rate`` is the floor of any kernel
    that writes that many bytes.  ``None`` without the extension.
    """
    try:
        from .. import _cpp  # type: ignore[attr-defined]
    except ImportError:
        return None
    if not hasattr(_cpp, "store_probe"):
        return None
    import numpy as np

    buf = np.empty(max(1, nbytes // 4), dtype=np.float32)
    _cpp.store_probe(buf, 0.0)  # first touch: page faults are not part of the rate
    best = float("inf")
    for k in range(trials):
        start = time.perf_counter()
        _cpp.store_probe(buf, float(k + 1))
        best = min(best, time.perf_counter() - start)
    return buf.nbytes / max(best, 1e-9) / 1e9


def copy_probe_gbps(nbytes: int = CONV1_OUTPUT_BYTES, trials: int = 7) -> float:
    """The rate one core reads and writes memory right now, in GB/s (bytes read + bytes written).

    The best of ``trials`` copies (``numpy.copyto``, i.e. the C library's vectorised
    memcpy) of one ``nbytes`` float32 buffer into another: a layer streams its
    input in and its output out the same way.  The memory floor of the roofline
    report is ``bytes / rate``.  Needs no extension.
    """
    import numpy as np

    src = np.ones(max(1, nbytes // 4), dtype=np.float32)
    dst = np.zeros_like(src)  # first touch outside the timing
    np.copyto(dst, src)
    best = float("inf")
    for _ in range(trials):
        start = time.perf_counter()
        np.copyto(dst, src)
        best = min(best, time.perf_counter() - start)
    return 2 * src.nbytes / max(best, 1e-9) / 1e9


def machine_info(peak_override: float | None = None, probe: list[float] | None = None) -> dict[str, Any]:
    """Everything above in one dict: ``cpu``, ``platform``, ``load_avg`` (1, 5, 15 min; others' load
    makes timings noisy), ``blas``, ``peak_gflops_per_core_fp32``, ``peak_source`` (``probe``: the
    FMA probe readings of the run, see :func:`peak_gflops`)."""
    import numpy  # noqa: F401 - load NumPy's BLAS so that threadpoolctl can see it

    cpu = cpu_info()
    peak, source = peak_gflops(cpu, peak_override, probe)
    return {
        "cpu": cpu,
        "platform": platform.platform(),
        "load_avg": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "blas": blas_info(),
        "peak_gflops_per_core_fp32": peak,
        "peak_source": source,
    }
