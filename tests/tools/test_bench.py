"""``fastdl bench``: JSON schema, --compare, --plot, FLOP counts and machine info (no timing asserted)."""
from __future__ import annotations

import copy
import copy as copy_mod
import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import fastdl
from fastdl import bench
from fastdl.bench import compare, machine, schema, targets, timing
from fastdl.bench import report as bench_report
from fastdl.cli import main


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    """One ``python -m fastdl bench --quick --json --plot`` run in a fresh process: (report, png path, stdout)."""
    out = tmp_path_factory.mktemp("bench")
    js, png = out / "quick.json", out / "quick.png"
    cmd = [sys.executable, "-m", "fastdl", "bench", "--quick", "--repeats", "2", "--no-progress",
           "--json", str(js)]
    try:
        import matplotlib  # noqa: F401
        cmd += ["--plot", str(png)]
    except ImportError:
        png = None
    # Run from a scratch folder with this test's fastdl first on the path: the child must not
    # pick up a source tree from its working directory instead of the installed package.
    env = dict(os.environ, PYTHONPATH=bench._same_fastdl_path())
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False, cwd=out, env=env)
    assert proc.returncode == 0, proc.stderr
    with open(js, encoding="utf-8") as f:
        return json.load(f), png, proc.stdout


def test_quick_report_schema(quick_run):
    report, _, _ = quick_run
    assert schema.validate_report(report) is report
    assert report["schema"] == "fastdl-bench/1"
    assert report["settings"]["quick"] is True
    assert report["settings"]["warmup_calls"] == 1
    assert "1 untimed call at the start of every sample" in bench_report.format_header(report)
    assert report["versions"]["numpy"] == np.__version__
    assert report["machine"]["cpu"]["simd"] in ("AVX-512", "AVX2+FMA", "AVX", "SSE4.2", "baseline")
    probe = report["machine"].get("fma_probe_gflops")
    if machine.fma_probe_gflops(seconds=0.001, trials=1) is None:
        assert probe is None
    else:  # measured before and after the cases, and after each of the 2 rounds
        assert len(probe) == 2 and all(g > 0 for g in probe)
        rounds = report["machine"]["fma_probe_rounds_gflops"]
        assert len(rounds) == 2 and all(g > 0 for g in rounds)
        assert "FMA probe after each round" in bench_report.format_header(report)
        if not os.environ.get("FASTDL_PEAK_GFLOPS"):  # the peak is the run's best probe reading
            assert report["machine"]["peak_gflops_per_core_fp32"] == max(probe + rounds)
    store = report["machine"].get("store_probe_gbps")
    if machine.store_probe_gbps(nbytes=4096, trials=1) is None:
        assert store is None
    else:
        assert len(store) == 2 and all(g > 0 for g in store)
        assert "store probe (one core, this run)" in bench_report.format_header(report)
    impls = report["settings"]["impls"]
    assert impls[: len(fastdl.available_backends())] == fastdl.available_backends()
    has_torch = importlib.util.find_spec("torch") is not None  # no import: torch is slow to import
    assert ("torch" in impls) == has_torch
    if not has_torch:
        assert any(s["impl"] == "torch" for s in report["skipped"])
    rows = {(r["case"], r["impl"]): r for r in report["results"]}
    skipped = {s["impl"] for s in report["skipped"]}
    for case in bench.QUICK_CASES:
        for impl in impls:
            if (case.name, impl) not in rows:  # only a case an implementation cannot run may be missing
                assert impl in skipped, (case.name, impl)
                continue
            r = rows[(case.name, impl)]
            assert r["kind"] == case.kind and r["dtype"] == "float32"
            assert r["samples"] == 2 and r["threads"] == fastdl.get_num_threads()
            assert (r["flops"] is None) == (case.flops() is None)
            if r["flops"]:
                assert r["gflops"] == pytest.approx(r["flops"] / r["median_s"] / 1e9)
            if "numpy" in impls and (case.name, "numpy") in rows:
                assert r["speedup_vs_numpy"] == pytest.approx(rows[(case.name, "numpy")]["median_s"] / r["median_s"])
            if impl == "numpy":
                assert r["speedup_vs_numpy"] == 1.0
            if impl == "torch":
                assert r["ratio_to_torch"] == 1.0


def test_quick_report_printed(quick_run):
    _, _, stdout = quick_run
    assert "machine:" in stdout and "SIMD" in stdout and "BLAS" in stdout and "versions:" in stdout
    for case in bench.QUICK_CASES:
        assert case.name in stdout
    assert "| case |" in stdout  # the Markdown summary


def test_plot_writes_png(quick_run):
    pytest.importorskip("matplotlib")
    _, png, _ = quick_run
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_validate_report_rejects_broken(quick_run):
    report, _, _ = quick_run
    for breakage in (
        lambda r: r.pop("results"),
        lambda r: r.update(schema="fastdl-bench/0"),
        lambda r: r["results"][0].pop("median_s"),
        lambda r: r["results"][0].update(median_s="fast"),
        lambda r: r["results"][0].update(min_s=r["results"][0]["max_s"] * 2),
        lambda r: r["machine"]["cpu"].pop("simd"),
        lambda r: r["settings"].update(quick="yes"),
        lambda r: r["machine"].update(fma_probe_gflops=[100.0]),
        lambda r: r["machine"].update(fma_probe_gflops=[100.0, -1.0]),
        lambda r: r["machine"].update(store_probe_gbps=[20.0]),
        lambda r: r["machine"].update(store_probe_gbps=[20.0, 0.0]),
        lambda r: r["machine"].update(fma_probe_rounds_gflops=[]),
        lambda r: r["machine"].update(fma_probe_rounds_gflops=[150.0, 0.0]),
        lambda r: r["machine"].update(fma_probe_rounds_gflops=150.0),
        lambda r: r["settings"].update(warmup_calls=-1),
        lambda r: r["settings"].update(warmup_calls=1.0),
        lambda r: r["settings"].update(warmup_calls=True),
    ):
        bad = copy.deepcopy(report)
        breakage(bad)
        with pytest.raises(ValueError, match="fastdl-bench/1"):
            schema.validate_report(bad)


def _scaled(report: dict, factor_by_impl: dict[str, float]) -> dict:
    new = copy.deepcopy(report)
    for r in new["results"]:
        f = factor_by_impl.get(r["impl"], 1.0)
        for k in ("median_s", "min_s", "max_s"):
            r[k] *= f
    return new


def test_compare_two_jsons(quick_run, tmp_path, capsys):
    report, _, _ = quick_run
    new = _scaled(report, {"numpy": 0.5, fastdl.available_backends()[-1]: 2.0})
    new["results"].pop()  # a row that is gone
    old_path, new_path = tmp_path / "old.json", tmp_path / "new.json"
    old_path.write_text(json.dumps(report))
    new_path.write_text(json.dumps(new))
    verdicts = {(r["case"], r["impl"]): r["verdict"] for r in compare.compare_reports(report, new)}
    last = report["results"][-1]
    assert verdicts.pop((last["case"], last["impl"])) == "gone"
    for (case, impl), v in verdicts.items():
        want = {"numpy": "faster", fastdl.available_backends()[-1]: "slower"}.get(impl, "same")
        assert v == want, (case, impl)
    assert main(["bench", "--input", str(new_path), "--compare", str(old_path)]) == 0
    out = capsys.readouterr().out
    assert "faster" in out and "slower" in out and "gone" in out


def test_reports_without_warmup_calls_still_load(quick_run, capsys, tmp_path):
    """Reports from before the field existed timed every call: they load, and a comparison says so."""
    report, _, _ = quick_run
    old = copy.deepcopy(report)
    del old["settings"]["warmup_calls"]
    assert schema.validate_report(old) is old
    assert "the first call of every sample timed too" in bench_report.format_header(old)
    assert compare.settings_differences(old, report) == [
        "untimed calls per sample (warmup_calls): 0 in the old report, 1 in the new one"]
    assert compare.settings_differences(report, report) == []
    old_path = tmp_path / "old.json"
    old_path.write_text(json.dumps(old))
    new_path = tmp_path / "new.json"
    new_path.write_text(json.dumps(report))
    assert main(["bench", "--input", str(new_path), "--compare", str(old_path)]) == 0
    assert "note: measured differently: untimed calls per sample" in capsys.readouterr().out


def test_input_rejects_non_report(tmp_path):
    p = tmp_path / "x.json"
    p.write_text('{"schema": "something else"}')
    with pytest.raises(SystemExit, match="x.json"):
        main(["bench", "--input", str(p)])
    with pytest.raises(SystemExit, match="missing.json"):
        main(["bench", "--input", str(p.with_name("missing.json"))])


@pytest.mark.parametrize("argv", [["--threads", "0"], ["--threads", "a"], ["--repeats", "0"],
                                  ["--min-time", "-1"], ["--min-time", "nan"],
                                  ["--warmup-calls", "-1"], ["--warmup-calls", "x"]])
def test_bad_numbers(argv):
    with pytest.raises(SystemExit) as exc:
        main(["bench", *argv])
    assert exc.value.code == 2


@pytest.mark.parametrize("argv, message", [
    (["--backends", "nosuch"], "unknown backend"),
    (["--dtype", "float16"], "--dtype"),
    (["--cases", "no-such-case"], "no case matches"),
])
def test_bad_options(argv, message):
    with pytest.raises(SystemExit, match=message):
        main(["bench", *argv])


def _row(case, impl, threads, median, **kw):
    c = bench.Case(*case.split(" "))
    row = {"case": case, "kind": c.kind, "shape": c.shape(), "dtype": "float32", "threads": threads,
           "impl": impl, "median_s": median, "min_s": median, "max_s": median, "samples": 1, "inner": 1,
           "flops": c.flops(), "gflops": None, "peak_fraction": None, "speedup_vs_numpy": None,
           "ratio_to_torch": None, "fallbacks": []}
    row.update(kw)
    return row


TARGETS = os.path.join(os.path.dirname(__file__), "..", "..", "benchmarks", "targets.json")


def test_check_targets():
    """The project's targets (benchmarks/targets.json, not the library) checked on given rows."""
    rows = [
        _row("pool_fwd deep.pool1", "numba", 1, 1.0, speedup_vs_numpy=25.0),
        _row("pool_bwd deep.pool1", "numba", 1, 1.0, speedup_vs_numpy=4.0),
        _row("train_step simple_convnet", "numba", 1, 2.0, speedup_vs_numpy=3.5),
        _row("train_step simple_convnet", "numba", 2, 1.5, speedup_vs_numpy=3.5),
        _row("train_step simple_convnet", "cpp", 2, 1.0, ratio_to_torch=0.9),
        _row("train_step deep_convnet", "cpp", 1, 1.0, ratio_to_torch=1.2),
        _row("conv_fwd deep.conv2", "cpp", 1, 1.0, peak_fraction=0.5),
        _row("conv_fwd simple.conv1", "cpp", 1, 1.0, peak_fraction=0.5),  # not a DeepConvNet layer
        _row("pool_fwd deep.pool1", "numba", 1, 1.0, speedup_vs_numpy=1.0, dtype="float64"),  # float32 only
    ]
    rules = [r for r in targets.load_targets(TARGETS) if r["issue"] in (3, 4)]
    got = {(t["case"], t["impl"], t["threads"], t["goal"]): t["ok"] for t in targets.check_targets(rows, rules)}
    assert got == {
        ("pool_fwd deep.pool1", "numba", 1, ">= 20x"): True,
        ("pool_bwd deep.pool1", "numba", 1, ">= 5x"): False,
        ("train_step simple_convnet", "numba", 1, ">= 3x"): True,
        ("train_step simple_convnet", "numba", 2, "> 1x"): True,
        ("train_step simple_convnet", "cpp", 2, "< 1x"): True,
        ("train_step deep_convnet", "cpp", 1, "<= 1.3x (floor)"): True,
        ("train_step deep_convnet", "cpp", 1, "< 1x (goal)"): False,
        ("conv_fwd deep.conv2", "cpp", 1, ">= 60%"): False,
    }
    text = targets.format_targets(targets.check_targets(rows, rules), "t.json")
    assert "Targets of t.json" in text and "MISSED" in text and "5 of 8 met" in text


def test_targets_file_is_checked(tmp_path):
    """A broken targets file is refused with its name; the library itself holds no targets."""
    bad = tmp_path / "t.json"
    bad.write_text('[{"issue": 1, "impl": "cpp", "case": "*", "metric": "x", "op": "=~", "value": 1}]')
    with pytest.raises(ValueError, match="t.json: rule 0"):
        targets.load_targets(str(bad))
    with pytest.raises(SystemExit, match="t.json"):
        main(["bench", "--targets", str(bad), "--input", str(bad)])
    import fastdl.bench.report as rep
    assert not hasattr(rep, "_NUMBA_SPEEDUP_TARGETS") and not hasattr(rep, "check_targets")


def test_conv_flops_count_only_real_taps():
    simple = bench.Case("conv_fwd", "simple.conv1")  # no padding: every tap is real
    assert simple.flops() == 2 * 100 * 30 * 1 * (24 * 24) * (5 * 5)
    deep1 = bench.Case("conv_fwd", "deep.conv1")     # 3x3 pad 1 on 28: 28*3 - 2 real taps per axis
    assert deep1.flops() == 2 * 100 * 16 * 1 * 82 * 82
    deep4 = bench.Case("conv_fwd", "deep.conv4")     # 3x3 pad 2 on 14: 16 outputs, 14*3 real taps per axis
    assert deep4.flops() == 2 * 100 * 32 * 32 * 42 * 42
    assert bench.Case("conv_bwd", "deep.conv1").flops() == deep1.flops()        # no dx for the input layer
    assert bench.Case("conv_bwd", "deep.conv2").flops() == 2 * bench.Case("conv_fwd", "deep.conv2").flops()
    assert bench.Case("pool_fwd", "deep.pool1").flops() is None


def test_cases_cover_the_book_shapes():
    names = {c.name for c in bench.CASES}
    for layer in ["simple.conv1"] + [f"deep.conv{i}" for i in range(1, 7)]:
        assert f"conv_fwd {layer}" in names and f"conv_bwd {layer}" in names
    assert {bench.Case("pool_fwd", p).shape() for p, _ in bench.POOL_LAYERS} == {
        "x(100,30,24,24) 2x2/2", "x(100,16,28,28) 2x2/2", "x(100,32,16,16) 2x2/2", "x(100,64,8,8) 2x2/2"}
    assert {"softmax_ce 100x10", "softmax_ce 4096x1000", "train_step simple_convnet",
            "train_step deep_convnet"} <= names
    assert any(c.kind == "im2col" for c in bench.CASES) and any(c.kind == "col2im" for c in bench.CASES)
    assert bench.Case("adam", "simple.affine1").shape() == "W(4320,100) in place"


def test_adam_case_times_every_backend():
    case = bench.Case("adam", "deep.affine1")
    assert case.flops() is None
    results, skipped = bench.run_cases([case], fastdl.available_backends(), ["float32"], [1], repeats=1,
                                       min_time=0.0, progress=False)
    assert {r["impl"] for r in results} == set(fastdl.available_backends()) and not skipped
    assert all(r["kind"] == "adam" and r["shape"] == "W(1024,50) in place" for r in results)
    assert all(r["median_s"] > 0 for r in results)


def test_each_round_samples_every_case(monkeypatch):
    """A case's samples are spread over the run: round r samples every case before round r + 1."""
    log = []

    def fake_prepare(case, impl, dtype, warmup=2):
        return lambda: log.append((case.layer, impl))

    monkeypatch.setattr(timing, "prepare", fake_prepare)
    monkeypatch.setattr(timing, "_PAUSE", 0.0)
    cases = [bench.Case("pool_fwd", "deep.pool1"), bench.Case("pool_fwd", "deep.pool2")]
    results, skipped = bench.run_cases(cases, ["numpy", "numba"], ["float32"], [1], repeats=3,
                                       min_time=0.0, progress=False, warmup_calls=0)
    calibration, rounds = log[:4], log[4:]  # one timing call per (case, impl) sets the calls per sample
    assert sorted(calibration) == sorted((c.layer, i) for c in cases for i in ("numpy", "numba"))
    assert [layer for layer, _ in rounds] == ["deep.pool1"] * 2 + ["deep.pool2"] * 2 + \
        ["deep.pool1"] * 2 + ["deep.pool2"] * 2 + ["deep.pool1"] * 2 + ["deep.pool2"] * 2
    assert [impl for layer, impl in rounds if layer == "deep.pool1"] == \
        ["numpy", "numba", "numba", "numpy", "numpy", "numba"]  # the order rotates every round
    assert not skipped and len(results) == 4
    assert all(r["samples"] == 3 and r["inner"] == 1 for r in results)


@pytest.mark.parametrize("warmup_calls", [0, 1, 2])
def test_sample_warmup_calls_are_not_timed(monkeypatch, warmup_calls):
    """Each sample makes ``warmup_calls`` untimed calls after its pause, then times ``inner`` calls.

    A fake clock advances 1 s on every untimed call and 1 ms on every timed one (the
    implementation knows which is which by counting its calls), so the recorded time per
    call is exactly 1 ms when the untimed calls are left out, and more otherwise.
    """
    clock = [0.0]
    calls = []
    per_sample = warmup_calls + 1  # min_time=0: inner is 1

    def fake_prepare(case, impl, dtype, warmup=2):
        def fn():
            n = len(calls)  # the first call is the calibration of inner
            calls.append(impl)
            clock[0] += 1e-3 if n == 0 or (n - 1) % per_sample >= warmup_calls else 1.0
        return fn

    slept = []
    fake_time = type("T", (), {"perf_counter": staticmethod(lambda: clock[0]),
                               "sleep": staticmethod(slept.append)})
    monkeypatch.setattr(timing, "prepare", fake_prepare)
    monkeypatch.setattr(timing, "time", fake_time)
    results, _ = bench.run_cases([bench.Case("pool_fwd", "deep.pool1")], ["numba"], ["float32"], [1],
                                 repeats=4, min_time=0.0, progress=False, warmup_calls=warmup_calls)
    assert len(calls) == 1 + 4 * per_sample and slept == [timing._PAUSE] * 4
    (row,) = results
    assert row["inner"] == 1 and row["samples"] == 4
    assert row["median_s"] == pytest.approx(1e-3) and row["max_s"] == pytest.approx(1e-3)


def test_run_cases_rejects_negative_warmup_calls():
    with pytest.raises(ValueError, match="warmup_calls"):
        bench.run_cases([bench.Case("pool_fwd", "deep.pool1")], ["numpy"], ["float32"], [1],
                        repeats=1, min_time=0.0, progress=False, warmup_calls=-1)


def test_prepare_runs_every_available_backend():
    case = bench.Case("pool_bwd", "deep.pool3")
    for impl in fastdl.available_backends():
        fn = bench.prepare(case, impl, "float64", warmup=0)
        with bench.impl_context(impl):
            dx = fn()
        assert dx.shape == (100, 64, 8, 8) and dx.dtype == np.float64


def test_simd_level_and_peak(monkeypatch):
    assert machine.simd_level({"avx512f", "avx2", "fma"}) == "AVX-512"
    assert machine.simd_level({"avx2", "fma", "avx"}) == "AVX2+FMA"
    assert machine.simd_level({"avx"}) == "AVX"
    assert machine.simd_level(set()) == "baseline"
    monkeypatch.delenv("FASTDL_PEAK_GFLOPS", raising=False)
    assert not hasattr(machine, "AVX512_FP32_PEAK_PER_CORE")  # no fixed 117: the probe of the run
    assert machine.peak_gflops({"simd": "AVX-512", "mhz": 2000.0})[0] == pytest.approx(128.0)
    peak, source = machine.peak_gflops({"simd": "AVX-512", "mhz": 2000.0}, probe=[150.0, 171.0, 90.0])
    assert peak == 171.0 and "best of this run's 3 FMA probe readings" in source
    assert machine.peak_gflops({"simd": "AVX2+FMA", "mhz": 3000.0})[0] == pytest.approx(96.0)
    assert machine.peak_gflops({"simd": "AVX2+FMA", "mhz": None}) == (None, "unknown")
    assert machine.peak_gflops({"simd": "AVX-512", "mhz": None}, override=50.0)[0] == 50.0
    monkeypatch.setenv("FASTDL_PEAK_GFLOPS", "80")
    assert machine.peak_gflops({"simd": "AVX-512", "mhz": None}, probe=[150.0]) == (80.0, "FASTDL_PEAK_GFLOPS")


def test_peak_fraction_uses_the_runs_peak_per_thread():
    from fastdl.bench import roofline
    rows = [{"threads": 2, "dtype": "float32", "gflops": 150.0}, {"threads": 1, "dtype": "float64", "gflops": 30.0},
            {"threads": 1, "dtype": "float32", "gflops": None}]
    roofline.add_peak_fractions(rows, 100.0)
    assert [r["peak_fraction"] for r in rows] == [0.75, 0.6, None]


def test_fma_probe():
    """The probe's figure follows from the FLOPs it reports doing; bad input is refused."""
    cpp = pytest.importorskip("fastdl._cpp")
    per_iter = cpp.fma_probe_flops_per_iter()
    assert per_iter in (0, 12 * 8 * 2, 12 * 16 * 2)  # no SIMD path, AVX2, AVX-512
    assert np.isfinite(cpp.fma_probe(1000))
    with pytest.raises(ValueError, match="iters"):
        cpp.fma_probe(-1)
    g = machine.fma_probe_gflops(seconds=0.002, trials=2)
    assert (g is None) == (per_iter == 0)
    if g is not None:
        assert 0 < g < 10_000


def test_store_probe():
    """The store probe writes every element (odd lengths too) and refuses what it cannot write."""
    cpp = pytest.importorskip("fastdl._cpp")
    for n in (0, 1, 15, 17, 1001):
        buf = np.zeros(n, np.float32)
        cpp.store_probe(buf, 2.5)
        assert np.all(buf == 2.5)
    ro = np.zeros(8, np.float32)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="not writeable"):
        cpp.store_probe(ro, 1.0)
    with pytest.raises(TypeError):
        cpp.store_probe(np.zeros(8, np.float64), 1.0)
    g = machine.store_probe_gbps(nbytes=1 << 20, trials=2)
    assert g is not None and 0 < g < 10_000


def test_probe_note_gives_conv1_store_floor():
    """With the store probe in the report, the note puts deep.conv1's store time against its budget."""
    row = {"case": "conv_fwd deep.conv1", "kind": "conv_fwd", "threads": 1, "impl": "cpp", "dtype": "float32",
           "gflops": 60.0, "flops": 21_504_000, "median_s": 21_504_000 / 60e9}
    report = {"machine": {"fma_probe_gflops": [150.0, 140.0], "store_probe_gbps": [10.0, 20.0],
                          "peak_gflops_per_core_fp32": 117.0}, "results": [row]}
    note = bench_report.format_probe_note(report)
    # 5,017,600 bytes at 20 GB/s: 251 us; 60% of 117 GFLOP/s on 21.5 MFLOP: 306 us
    assert "takes 251 us, 82% of the 306 us" in note and "cpp took 358 us" in note, note


def test_round_probe_line_counts_shared_rounds():
    line = bench_report._rounds_line([160.0, 150.0, 80.0, 119.0, 121.0])
    # 75% of the best (160) is 120: 80 and 119 are below it
    assert line.startswith("FMA probe after each round: 80 / 121 / 160 GFLOP/s (min / median / max of 5); "
                           "2 below 75% of the best"), line


def test_cold_start_numpy():
    rows = bench.cold_start(["numpy"], threads=1)
    assert [r["cache"] for r in rows] == ["empty", "warm"]
    for r in rows:
        assert r["backend"] == "numpy" and r["threads"] == 1
        assert r["wall_s"] > r["import_s"] > 0 and r["setup_s"] > 0
        assert r["first_step_s"] > 0 and r["second_step_s"] > 0


# --------------------------------------------------------------------------- issue 16: roofline, networks, runs


def test_roofline_floors_from_given_probe_readings():
    """Floors follow from the counts and the probes: compute = FLOPs / (peak x threads), memory =
    bytes / (copy rate x threads), the multiple = time / the larger floor."""
    from fastdl.bench import roofline
    rows = [
        {"threads": 1, "dtype": "float32", "flops": 2_000_000_000, "bytes": 100_000_000, "median_s": 0.04},
        {"threads": 2, "dtype": "float32", "flops": 2_000_000_000, "bytes": 100_000_000, "median_s": 0.04},
        {"threads": 1, "dtype": "float64", "flops": 100_000_000, "bytes": 400_000_000, "median_s": 0.05},
        {"threads": 1, "dtype": "float32", "flops": None, "bytes": 10_000_000, "median_s": 0.002},
    ]
    roofline.add_roofline(rows, peak_per_core=100.0, copy_gbps=20.0)
    # 2 GFLOP at 100 GFLOP/s: 20 ms; 100 MB at 20 GB/s: 5 ms; 40 ms / 20 ms = 2x
    assert rows[0]["compute_floor_s"] == pytest.approx(0.02) and rows[0]["memory_floor_s"] == pytest.approx(0.005)
    assert rows[0]["roofline_multiple"] == pytest.approx(2.0)
    assert rows[1]["compute_floor_s"] == pytest.approx(0.01) and rows[1]["roofline_multiple"] == pytest.approx(4.0)
    # float64: half the peak (2 ms); 400 MB at 20 GB/s: 20 ms is the larger floor
    assert rows[2]["compute_floor_s"] == pytest.approx(0.002) and rows[2]["roofline_multiple"] == pytest.approx(2.5)
    assert rows[3]["compute_floor_s"] is None and rows[3]["roofline_multiple"] == pytest.approx(4.0)
    roofline.add_roofline(rows, peak_per_core=None, copy_gbps=None)
    assert all(r["roofline_multiple"] is None for r in rows)


def test_training_step_counts_are_the_sum_of_its_layers():
    """FLOPs of a step = the layers' sum (conv: forward + dW + dx but the input layer's; affine x3);
    bytes by the README's rules, checked by hand on TwoLayerNet."""
    from fastdl.bench import cases, roofline
    for net, convs in (("simple_convnet", ["simple.conv1"]), ("deep_convnet", [f"deep.conv{i}" for i in range(1, 7)])):
        affine = {"simple_convnet": ((4320, 100), (100, 10)), "deep_convnet": ((1024, 50), (50, 10))}[net]
        want = sum(bench.Case("conv_fwd", c).flops() * (3 if i else 2) for i, c in enumerate(convs))
        want += sum(2 * 100 * a * b * 3 for a, b in affine)
        assert bench.Case("train_step", net).flops() == want
        model = cases.build_net("train_step", net, "float32")
        layers = roofline.model_costs(model, (100, 1, 28, 28), train=True)
        assert sum(c["flops"] for c in layers) == want and layers[-1]["name"] == "SoftmaxWithLoss"
    n, d, h, k, it = 100, 784, 50, 10, 4

    def affine(i, o):  # forward x, W, b, y; backward dy, x, W and b, dW and db, dx
        p = i * o + o
        return (n * i + p + n * o) + (n * o + n * i + p + p + n * i)

    relu = 4 * n * h * it + 2 * n * h  # y, x, dy, dx at 4 bytes; the mask written and read at 1 byte
    softmax = 2 * n * k * it + n * 8   # logits, dx; int64 labels
    sgd = 3 * (d * h + h + h * k + k) * it
    flops, nbytes = bench.Case("train_step", "two_layer_net").cost("float32")
    assert flops == 3 * 2 * n * (d * h + h * k)
    assert nbytes == (affine(d, h) + affine(h, k)) * it + relu + softmax + sgd
    f64 = bench.Case("train_step", "two_layer_net").cost("float64")
    assert f64[0] == flops and f64[1] > nbytes


def test_inference_counts_forward_only():
    flops, nbytes = bench.Case("predict", "sample_weight@1000").cost("float32")
    assert flops == 2 * 1000 * (784 * 50 + 50 * 100 + 100 * 10)
    one = bench.Case("predict", "sample_weight@1").cost("float32")
    assert one[0] * 1000 == flops and one[1] < nbytes
    deep = bench.Case("predict", "deep_convnet@1").flops()
    assert deep * 3 < bench.Case("train_step", "deep_convnet").flops() / 100 * 1.01  # no backward


def test_every_book_network_is_a_case():
    names = {c.name for c in bench.CASES}
    for net in ("two_layer_net", "multi_layer_net", "multi_layer_net_extend", "simple_convnet", "deep_convnet"):
        assert f"train_step {net}" in names
    for net in ("sample_weight", "simple_convnet", "deep_convnet"):
        assert {f"predict {net}@1", f"predict {net}@1000"} <= names
    extend = bench.cases.build_net("train_step", "multi_layer_net_extend", "float32")
    kinds = {type(layer).__name__ for layer in extend.layers.values()}
    assert {"BatchNormalization", "Dropout", "Affine", "Relu"} <= kinds
    sample = bench.cases.build_net("predict", "sample_weight", "float32")
    assert "Sigmoid" in {type(layer).__name__ for layer in sample.layers.values()}


_NET_CASES = [c for c in bench.CASES if c.kind in ("train_step", "predict")]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("case", _NET_CASES, ids=lambda c: c.name)
def test_network_cases_run_on_every_implementation(case, dtype):
    """Every network case prepares on every backend (and torch when installed); the cheap ones run once."""
    impls = fastdl.available_backends() + (["torch"] if bench.torch_available() else [])
    cheap = case.flops() < 0.1e9
    for impl in impls:
        fn = bench.prepare(case, impl, dtype, warmup=0)
        if cheap:
            with bench.impl_context(impl):
                out = fn()
            if case.kind == "predict":
                assert tuple(out.shape) == (bench.cases.predict_case(case.layer)[1], 10)
                assert str(out.dtype).endswith(dtype)  # numpy float64 and torch.float64 alike


def test_predict_loads_the_books_weights_when_found(monkeypatch):
    from fastdl.bench import impls
    data = os.environ.get("FASTDL_TEST_DATA")
    if not data or not os.path.isfile(os.path.join(data, "book", "sample_weight.pkl")):
        pytest.skip("the book's weights are not here (FASTDL_TEST_DATA/book)")
    monkeypatch.delenv("FASTDL_BOOK_WEIGHTS", raising=False)
    assert impls.book_weights("sample_weight.pkl") == os.path.join(data, "book", "sample_weight.pkl")
    monkeypatch.setenv("FASTDL_BOOK_WEIGHTS", "/nonexistent")
    monkeypatch.setenv("HOME", "/nonexistent")
    monkeypatch.delenv("FASTDL_TEST_DATA")
    monkeypatch.delenv("FASTDL_DATA", raising=False)
    assert impls.book_weights("sample_weight.pkl") is None


def _run_row(case, impl, median, **kw):
    return _row(case, impl, 1, median, min_s=median * 0.9, max_s=median * 1.1, samples=3, **kw)


def test_runs_give_min_median_max_of_each_ratio():
    from fastdl.bench import runs
    per_run = [
        [_run_row("train_step deep_convnet", "cpp", 0.05, ratio_to_torch=0.5),
         _run_row("train_step deep_convnet", "torch", 0.10, ratio_to_torch=1.0)],
        [_run_row("train_step deep_convnet", "cpp", 0.07, ratio_to_torch=0.7),
         _run_row("train_step deep_convnet", "torch", 0.10, ratio_to_torch=1.0)],
        [_run_row("train_step deep_convnet", "cpp", 0.04, ratio_to_torch=0.4),
         _run_row("train_step deep_convnet", "torch", 0.10, ratio_to_torch=1.0)],
    ]
    merged = {r["impl"]: r for r in runs.merge_runs(per_run)}
    cpp = merged["cpp"]
    assert cpp["runs"]["ratio_to_torch"] == [0.5, 0.7, 0.4] and cpp["ratio_to_torch"] == 0.5
    assert runs.run_range(cpp, "ratio_to_torch") == (0.4, 0.5, 0.7)
    assert cpp["median_s"] == 0.05 and cpp["samples"] == 9
    assert cpp["min_s"] == pytest.approx(0.036) and cpp["max_s"] == pytest.approx(0.077)
    assert cpp["gflops"] == pytest.approx(cpp["flops"] / 0.05 / 1e9)
    assert "vs torch 0.50 [0.40-0.70]" in bench_report.format_summary(list(merged.values()))


def _report(rows, rounds):
    return {"machine": {"fma_probe_rounds_gflops": rounds}, "settings": {}, "results": rows}


def test_compare_flags_only_what_the_probe_does_not_explain():
    old = _report([_row("conv_fwd deep.conv1", "cpp", 1, 1.0), _row("conv_fwd deep.conv2", "cpp", 1, 1.0),
                   _row("conv_fwd deep.conv3", "cpp", 1, 1.0)], [150.0, 150.0, 150.0])
    # the new machine's probe reads 100 instead of 150: every time is expected 1.5x; the rounds spread 10%
    new = _report([_row("conv_fwd deep.conv1", "cpp", 1, 1.6), _row("conv_fwd deep.conv2", "cpp", 1, 2.0),
                   _row("conv_fwd deep.conv3", "cpp", 1, 1.0)], [100.0, 110.0, 100.0])
    assert compare.machine_factor(old, new) == pytest.approx(1.5)
    assert compare.probe_noise(new) == pytest.approx(0.1)
    rows = compare.compare_reports(old, new)
    assert [r["verdict"] for r in rows] == ["same", "slower", "faster"]
    assert rows[0]["tolerance"] == pytest.approx(0.2) and rows[0]["expected"] == pytest.approx(1.5)
    assert "SLOWER" in compare.format_compare(rows)
    # with several runs, overlapping run ranges are not a change
    for rep, meds in ((old, [1.0, 1.4]), (new, [1.9, 2.1])):
        rep["results"][1]["runs"] = {"median_s": meds}
    assert compare.compare_reports(old, new)[1]["verdict"] == "same"  # 1.9 <= 1.4 * 1.5


def test_quick_report_has_roofline_and_runs(quick_run):
    report, _, stdout = quick_run
    assert report["settings"]["runs"] == 1
    assert "Roofline, float32" in stdout
    copy = report["machine"]["copy_probe_gbps"]
    assert len(copy) == 2 and all(g > 0 for g in copy)
    for r in report["results"]:
        case = bench.Case(*r["case"].split(" "))
        assert (r["flops"] or 0, r["bytes"]) == case.cost("float32")
        assert r["runs"]["median_s"] == [r["median_s"]]
        assert r["memory_floor_s"] == pytest.approx(r["bytes"] / (max(copy) * r["threads"] * 1e9))
        floors = [f for f in (r["compute_floor_s"], r["memory_floor_s"]) if f]
        assert r["roofline_multiple"] == pytest.approx(r["median_s"] / max(floors))
    bad = copy_mod.deepcopy(report)
    bad["results"][0]["runs"]["median_s"] = [1.0, 2.0]
    with pytest.raises(ValueError, match="runs"):
        schema.validate_report(bad)
