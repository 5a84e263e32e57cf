"""Numba-backend specifics: threads, repeatability, the on-disk cache, one compile per dtype.

Kernel correctness is in test_kernels.py (run on every backend).
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

import fastdl
from fastdl import backend, ops

if "numba" not in fastdl.available_backends():
    pytest.skip("numba backend unavailable", allow_module_level=True)

import numba  # noqa: E402

from fastdl.backends import numba_jit  # noqa: E402
from fastdl.backends._numba import _common as numba_common, pool as numba_pool  # noqa: E402

MAX_THREADS = numba.config.NUMBA_NUM_THREADS


@pytest.fixture
def restore_threads():
    before = fastdl.get_num_threads()
    yield
    fastdl.set_num_threads(before)


def _conv_step(x, w, b, stride=1, pad=1):
    with fastdl.use_backend("numba"):
        y, ctx = ops.conv2d_forward(x, w, b, stride, pad)
        dx, dW, db = ops.conv2d_backward(y, ctx)
        z, am = ops.maxpool2d_forward(y, 2, 2)
        dz = ops.maxpool2d_backward(z, am, y.shape, 2, 2)
        loss, dl = ops.softmax_cross_entropy(y.reshape(len(y), -1), np.arange(len(y)) % 3)
    return [y, dx, dW, db, z, am, dz, np.array(loss), dl]


def _inputs(dtype=np.float32, n=9):
    rng = np.random.default_rng(0)
    return (rng.standard_normal((n, 4, 10, 10)).astype(dtype), rng.standard_normal((6, 4, 3, 3)).astype(dtype),
            rng.standard_normal(6).astype(dtype))


# --------------------------------------------------------------------------- threads

@pytest.mark.parametrize("threads", sorted({1, MAX_THREADS}))
def test_results_repeat_exactly_for_a_thread_count(threads, restore_threads):
    fastdl.set_num_threads(threads)
    first = _conv_step(*_inputs())
    for _ in range(2):
        for a, b in zip(first, _conv_step(*_inputs())):
            np.testing.assert_array_equal(a, b)


def test_thread_counts_agree_to_rounding(restore_threads):
    fastdl.set_num_threads(1)
    one = _conv_step(*_inputs(np.float64))
    fastdl.set_num_threads(MAX_THREADS)
    many = _conv_step(*_inputs(np.float64))
    for a, b in zip(one, many):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


def _every_kernel(dtype):
    """Every Numba kernel family through fastdl.ops, on small float inputs of ``dtype``."""
    rng = np.random.default_rng(1)
    x, w, b = _inputs(dtype, n=5)
    out = []
    with fastdl.use_backend("numba"):
        wide = rng.standard_normal((40, 4, 3, 3)).astype(dtype)  # more filters than C*kh*kw
        for W_, b_ in ((w, b), (wide, np.zeros(40, dtype))):  # the im2col-rows and the column layout
            y, ctx = ops.conv2d_forward(x, W_, b_, 1, 1)
            out += [y, *ops.conv2d_backward(y, ctx)]
        y, ctx = ops.conv2d_bias_relu_forward(x, w, b, 2, 1)
        out += [y, *ops.conv2d_bias_relu_backward(y, ctx)]
        out += [ops.conv2d_infer(x, w, b, 1, 0, relu=True)]
        col = ops.im2col(x, 3, 3, 2, 1)
        out += [col, ops.col2im(col, x.shape, 3, 3, 2, 1)]
        for ph, stride in ((2, 2), (3, 2)):  # the 2x2 kernel and the general one
            z, am = ops.maxpool2d_forward(x, ph, ph, stride, 0)
            out += [z, am, ops.maxpool2d_backward(z, am, x.shape, ph, ph, stride, 0)]
        z, pctx = ops.relu_maxpool2d_forward(x, 2, 2)
        out += [z, ops.relu_maxpool2d_backward(z, pctx), ops.maxpool2d_infer(x, 2, 2, relu=True)]
        r, mask = ops.relu_forward(x)
        out += [r, mask, ops.relu_backward(x, mask)]
        logits = x.reshape(len(x), -1)
        for t in (np.arange(len(x)) % 7, np.eye(logits.shape[1], dtype=dtype)[np.arange(len(x)) % 7]):
            loss, d = ops.softmax_cross_entropy(logits, t)
            out += [np.array(loss), d]
        p, g = rng.standard_normal(300).astype(dtype), rng.standard_normal(300).astype(dtype)
        m, v = np.zeros_like(p), np.zeros_like(p)
        ops.adam_update(p, g, m, v, 0.01, 0.9, 0.999)
        out += [p, m, v]
    return out


def _twins():
    import importlib

    mods = [importlib.import_module(f"fastdl.backends._numba.{m}")
            for m in ("conv", "elementwise", "fused", "im2col", "optim", "pool", "softmax")]
    return {f"{m.__name__}.{k}": f for m in mods for k, f in vars(m).items()
            if isinstance(f, numba_common._OneOrMoreThreads)}


@pytest.fixture
def serial_twins(monkeypatch):
    """The policy of a workqueue pool (the fork-safe fallback without TBB), whatever runs here."""
    monkeypatch.setattr(numba_common, "_serial_when_small", True)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_one_thread_runs_the_serial_twins_and_agrees_with_the_pool(dtype, restore_threads, serial_twins):
    # Under workqueue, one thread runs every prange kernel's serial compilation (no thread
    # pool); it must give what the parallel one gives: float64 to rounding, float32 to a few ulp.
    twins = _twins()
    assert len(twins) >= 10, sorted(twins)
    before = {k: len(f.serial.signatures) for k, f in twins.items()}
    fastdl.set_num_threads(1)
    one = _every_kernel(dtype)
    unused = [k for k, f in twins.items() if len(f.serial.signatures) == before[k]
              and not any(s[0].dtype == numba.from_dtype(np.dtype(dtype)) for s in f.serial.signatures
                          if hasattr(s[0], "dtype"))]
    assert unused == [], "kernels whose serial twin did not run on one thread"
    fastdl.set_num_threads(MAX_THREADS)
    many = _every_kernel(dtype)
    tol = 1e-12 if dtype == np.float64 else 3e-4  # float32: sums of 500 terms in another order
    for a, b in zip(one, many):
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol)


def test_the_pool_is_tbb_where_fastdl_depends_on_it():
    # pyproject.toml depends on tbb on x86-64 Linux; _common.py loads its library so that
    # Numba's 'forksafe' choice finds it (else every kernel call pays workqueue's wake-up).
    import importlib.metadata
    import platform

    if "NUMBA_THREADING_LAYER" in os.environ:
        pytest.skip("NUMBA_THREADING_LAYER chooses the layer here")
    try:
        importlib.metadata.distribution("tbb")
    except importlib.metadata.PackageNotFoundError:
        if sys.platform.startswith("linux") and platform.machine() == "x86_64":
            pytest.fail("fastdl depends on tbb on x86-64 Linux, but it is not installed")
        pytest.skip("no tbb on this platform: the pool is workqueue")
    _conv_step(*_inputs())
    assert numba.threading_layer() == "tbb"
    assert numba_common._slow_pool() is False


def test_thread_count_applies_in_every_python_thread(restore_threads):
    """Numba's thread count is per thread; the backend applies fastdl's to each calling thread."""
    fastdl.set_num_threads(1)
    seen = []

    def work():
        x, w, b = _inputs()
        _conv_step(x, w, b)
        seen.append(numba.get_num_threads())

    t = threading.Thread(target=work)
    t.start()
    t.join()
    assert seen == [1]
    assert numba_jit.backend_info().count(" 1 threads") == 1


def test_concurrent_calls_from_python_threads_are_correct():
    x, w, b = _inputs(n=16)
    want = _conv_step(x, w, b)
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: _conv_step(x, w, b), range(8)))
    for got in results:
        for a, e in zip(got, want):
            np.testing.assert_array_equal(a, e)


def test_scipy_blas_is_kept_single_threaded_inside_kernels(restore_threads):
    assert numba_common.BLAS, "SciPy's BLAS was not found by threadpoolctl"
    fastdl.set_num_threads(MAX_THREADS)  # under the numpy backend: every BLAS to MAX_THREADS
    for lib in numba_common.BLAS:
        lib.set_num_threads(MAX_THREADS)  # as a user's own threadpoolctl call would
    with fastdl.use_backend("numba"):
        _conv_step(*_inputs())
        assert all(lib.num_threads == 1 for lib in numba_common.BLAS)


def test_blas_is_single_threaded_under_a_fast_backend(restore_threads):
    """One pool at a time: the backend's own pool gets the threads, BLAS gets one."""
    from threadpoolctl import threadpool_info

    def blas_threads():
        return {lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"}

    fastdl.set_num_threads(2)
    with fastdl.use_backend("numpy"):
        assert blas_threads() == {2}
        with fastdl.use_backend("numba"):
            assert blas_threads() == {1}
        assert blas_threads() == {2}


def test_backend_info():
    text = numba_jit.backend_info()
    assert f"Numba {numba.__version__}" in text
    assert f"threading layer {numba.threading_layer()}" in text and "cache" in text
    with open(os.devnull, "w") as sink:
        assert text in fastdl.show_config(file=sink)


# --------------------------------------------------------------------------- compiles and contract details

def test_inputs_are_compiled_as_read_only_one_signature_per_dtype():
    x = np.zeros((1, 1, 4, 4), np.float64)
    frozen = x.copy()
    frozen.flags.writeable = False
    with fastdl.use_backend("numba"):
        ops.maxpool2d_forward(x, 2, 2)
        ops.maxpool2d_forward(frozen, 2, 2)
    sigs = [s for s in numba_pool._pool_fwd_2x2.signatures if s[0].dtype == numba.float64]
    assert len(sigs) == 1 and not sigs[0][0].mutable


def test_pool_backward_rejects_argmax_outside_the_plane():
    dy = np.ones((1, 1, 2, 2))
    with fastdl.use_backend("numba"):
        with pytest.raises(ValueError, match=r"argmax has 2 entries outside \[0, 16\)"):
            ops.maxpool2d_backward(dy, np.array([[[[0, 16], [-1, 5]]]]), (1, 1, 4, 4), 2, 2)


def test_degenerate_conv_falls_back_to_the_reference():
    before = backend.fallback_counts().get(("numba", "conv2d_forward"), 0)
    with fastdl.use_backend("numba"):
        y, ctx = ops.conv2d_forward(np.ones((2, 3, 4, 4)), np.ones((0, 3, 3, 3)))
        dx, dW, db = ops.conv2d_backward(y, ctx)
    assert y.shape == (2, 0, 2, 2) and dx.shape == (2, 3, 4, 4) and dW.shape == (0, 3, 3, 3)
    assert backend.fallback_counts()[("numba", "conv2d_forward")] == before + 1


# --------------------------------------------------------------------------- on-disk cache

CACHE_PROBE = """
    import numpy as np, fastdl
    from fastdl import ops
    from fastdl.backends._numba import pool as numba_pool
    with fastdl.use_backend("numba"):
        dx = ops.maxpool2d_backward(np.ones((1, 1, 1, 1)), np.zeros((1, 1, 1, 1), np.int64), (1, 1, 2, 2), 2, 2)
    assert dx.tolist() == [[[[1.0, 0.0], [0.0, 0.0]]]]
    stats = numba_pool._pool_bwd.stats
    print(stats.cache_path)
    print(sum(stats.cache_hits.values()))
"""


def _probe(prelude: str = "", **env: str) -> tuple[str, int]:
    full = {k: v for k, v in os.environ.items() if k not in ("NUMBA_CACHE_DIR", "FASTDL_BACKEND")}
    full.update(env)
    code = textwrap.dedent(prelude) + textwrap.dedent(CACHE_PROBE)
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=full, timeout=600)
    assert res.returncode == 0, res.stderr
    path, hits = res.stdout.split("\n")[-3:-1]
    return path, int(hits)


def test_numba_cache_dir_is_honoured(tmp_path):
    path, hits = _probe(NUMBA_CACHE_DIR=str(tmp_path))
    assert path.startswith(str(tmp_path)) and hits == 0
    assert list(tmp_path.rglob("pool._pool_bwd*.nbi")) and list(tmp_path.rglob("pool._pool_bwd*.nbc"))
    path, hits = _probe(NUMBA_CACHE_DIR=str(tmp_path))  # a fresh process loads instead of compiling
    assert path.startswith(str(tmp_path)) and hits == 1


UNWRITABLE_PACKAGE = """
    from numba.core import caching
    def refuse(self):
        raise PermissionError("read-only site-packages (simulated)")
    caching.InTreeCacheLocator.ensure_cache_path = refuse
"""


def test_cache_moves_to_the_user_cache_when_the_package_is_read_only(tmp_path):
    path, _ = _probe(UNWRITABLE_PACKAGE, XDG_CACHE_HOME=str(tmp_path))
    assert Path(path).is_relative_to(tmp_path / "numba")
    assert list(tmp_path.rglob("pool._pool_bwd*.nbi"))


def test_backend_still_works_without_any_writable_cache(tmp_path):
    prelude = UNWRITABLE_PACKAGE + "    caching.UserWideCacheLocator.ensure_cache_path = refuse\n"
    path, hits = _probe(prelude, XDG_CACHE_HOME=str(tmp_path))
    assert path == "None" and hits == 0
    assert not list(tmp_path.rglob("*.nbi"))
