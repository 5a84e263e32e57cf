"""The C++ backend's own concerns: build info, threads, SIMD fallbacks, GIL, optional build.

Kernel correctness against the reference on every backend lives in test_kernels.py;
here are the things only the compiled extension has.
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import fastdl
from fastdl import ops

needs_cpp = pytest.mark.skipif("cpp" not in fastdl.available_backends(), reason="fastdl._cpp not built")
LEVELS = ("scalar", "avx2", "avx512")


def _run(code: str, **env: str) -> subprocess.CompletedProcess:
    full_env = {**os.environ, **env}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, env=full_env, timeout=300)


def test_package_works_without_the_extension():
    """With fastdl._cpp unimportable, fastdl imports, the reference runs and show_config says why."""
    res = _run("""
        import importlib.abc, sys, warnings
        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name == "fastdl._cpp":
                    raise ImportError("fastdl._cpp hidden by the test")
        sys.meta_path.insert(0, Block())
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            import fastdl
        assert any("FASTDL_BACKEND='cpp'" in str(w.message) for w in caught), caught
        import numpy as np
        from fastdl import ops
        assert fastdl.get_backend() == "numpy"
        assert "cpp" not in fastdl.available_backends(), fastdl.available_backends()
        try:
            fastdl.set_backend("cpp")
        except fastdl.BackendUnavailableError as exc:
            assert isinstance(exc.__cause__, ImportError)
        else:
            raise AssertionError("set_backend('cpp') did not raise")
        x = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
        y, am = ops.maxpool2d_forward(x, 2, 2)
        assert y.tolist() == [[[[5.0, 7.0], [13.0, 15.0]]]], y
        text = fastdl.show_config()
        assert "cpp" in text and "unavailable" in text and "hidden by the test" in text, text
        print("OK")
    """, FASTDL_BACKEND="cpp")
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip().endswith("OK")


@needs_cpp
def test_build_and_backend_info():
    from fastdl import _cpp
    from fastdl.backends import cpp

    info = _cpp.build_info()
    assert info["version"] == fastdl.__version__
    assert info["cpu_level"] in LEVELS
    assert isinstance(info["openmp"], bool) and info["compiler"]
    text = cpp.backend_info()
    assert info["cpu_level"] in text and "OpenMP" in text and info["compiler"] in text
    assert "result cache" in text and "MiB" in text
    with open(os.devnull, "w") as sink:
        assert text in fastdl.show_config(file=sink)


@needs_cpp
def test_set_num_threads_reaches_openmp():
    from fastdl import _cpp

    before = fastdl.get_num_threads()
    try:
        fastdl.set_num_threads(1)
        assert _cpp.get_num_threads() == 1
        fastdl.set_num_threads(3)
        assert _cpp.get_num_threads() == 3
    finally:
        fastdl.set_num_threads(before)
    with pytest.raises(ValueError):
        _cpp.set_num_threads(0)


def _kernel_outputs(dtype) -> dict[str, np.ndarray]:
    """Every C++ kernel on fixed inputs with ties, NaN and -inf; keyed results."""
    rng = np.random.default_rng(7)
    x = rng.integers(-3, 4, (3, 4, 13, 38)).astype(dtype)
    x[0, 0, 0, :5] = np.nan
    x[1, 2] = -np.inf
    out = {}
    with fastdl.use_backend("cpp"):
        for k, s, p in [(2, 2, 0), (3, 2, 1), (3, 1, 1)]:
            y, am = ops.maxpool2d_forward(x, k, k, s, p)
            out[f"pool{k}{s}{p}"], out[f"argmax{k}{s}{p}"] = y, am
            out[f"dpool{k}{s}{p}"] = ops.maxpool2d_backward(rng.standard_normal(y.shape).astype(dtype), am,
                                                             x.shape, k, k, s, p)
            col = ops.im2col(x, k, k, s, p)
            out[f"col{k}{s}{p}"], out[f"im{k}{s}{p}"] = col, ops.col2im(col, x.shape, k, k, s, p)
        z = (rng.standard_normal((37, 1003)) * 5).astype(dtype)
        z[3, 5] = -np.inf
        t = rng.integers(0, 1003, 37)
        loss, dz = ops.softmax_cross_entropy(z, t)
        out["loss"], out["dz"] = np.array(loss), dz
    return out


@needs_cpp
@pytest.mark.parametrize("level", ["scalar", "avx2"])
def test_simd_fallbacks_match(level, tmp_path):
    """FASTDL_CPU caps the SIMD level; the portable paths give the same results."""
    from fastdl import _cpp

    res = _run(f"""
        import numpy as np, sys
        sys.path.insert(0, {os.path.dirname(__file__)!r})
        from fastdl import _cpp
        from test_cpp import _kernel_outputs
        for dt in ("float32", "float64"):
            np.savez({str(tmp_path)!r} + "/" + dt + ".npz", **_kernel_outputs(np.dtype(dt)))
        print(_cpp.build_info()["cpu_level"])
    """, FASTDL_CPU=level)
    assert res.returncode == 0, res.stderr
    got = res.stdout.split()[-1]
    assert LEVELS.index(got) <= LEVELS.index(level)
    if LEVELS.index(got) >= LEVELS.index(_cpp.build_info()["cpu_level"]):
        pytest.skip(f"this CPU has no level above {got}")
    for dt in (np.float32, np.float64):
        mine = _kernel_outputs(dt)
        with np.load(tmp_path / f"{np.dtype(dt).name}.npz") as theirs:
            for key, want in mine.items():
                if key in ("loss", "dz"):  # different exp implementations
                    np.testing.assert_allclose(theirs[key], want, rtol=2e-6, atol=1e-9, err_msg=key)
                else:
                    np.testing.assert_array_equal(theirs[key], want, err_msg=key)


@needs_cpp
def test_results_do_not_depend_on_thread_count():
    before = fastdl.get_num_threads()
    try:
        fastdl.set_num_threads(1)
        one = _kernel_outputs(np.float32)
        fastdl.set_num_threads(2)
        two = _kernel_outputs(np.float32)
    finally:
        fastdl.set_num_threads(before)
    for key in one:
        np.testing.assert_array_equal(one[key], two[key], err_msg=key)


@needs_cpp
def test_kernels_run_concurrently_from_python_threads():
    """The GIL is released around kernels; concurrent calls give the serial results."""
    rng = np.random.default_rng(3)
    xs = [rng.standard_normal((8, 6, 32, 32)).astype(np.float32) for _ in range(6)]

    def work(x):
        with fastdl.use_backend("cpp"):
            y, am = ops.maxpool2d_forward(x, 2, 2)
            return y, am, ops.im2col(x, 3, 3, 1, 1)

    serial = [work(x) for x in xs]
    with ThreadPoolExecutor(3) as pool:
        parallel = list(pool.map(work, xs))
    for a, b in zip(serial, parallel):
        for u, v in zip(a, b):
            np.testing.assert_array_equal(u, v)


@needs_cpp
def test_extension_takes_exact_contiguous_arrays_and_read_only_inputs():
    from fastdl import _cpp

    x = np.random.default_rng(0).standard_normal((2, 3, 8, 8))
    x.flags.writeable = False
    y, am = _cpp.maxpool2d_forward(x, 2, 2, 2, 0)
    assert y.dtype == np.float64 and am.dtype == np.int64 and y.shape == (2, 3, 4, 4)
    col = _cpp.im2col(x, 3, 3, 1, 1)
    assert col.dtype == np.float64 and col.shape == (2 * 64, 27)
    with pytest.raises(TypeError):  # no silent copy of a strided view
        _cpp.im2col(np.asarray(x)[:, :, ::2], 3, 3, 1, 0)
    with pytest.raises(TypeError):  # no silent dtype conversion
        _cpp.im2col(x.astype(np.float16), 3, 3, 1, 0)


@needs_cpp
@pytest.mark.parametrize("shape", [(2, 3, 8, 8), (2, 3, 9, 40), (1, 2, 6, 33)])
def test_pool_backward_with_any_in_plane_argmax_is_a_scatter(shape):
    """The dense 2x2 backward path checks each argmax lies in its window, else scatters."""
    from fastdl.backends import numpy_ref

    rng = np.random.default_rng(5)
    H, W = shape[2:]
    out = (shape[0], shape[1], H // 2, W // 2)
    for dtype in (np.float32, np.float64):
        dy = rng.standard_normal(out).astype(dtype)
        argmax = rng.integers(0, H * W, out)  # mostly outside their own windows
        with fastdl.use_backend("cpp"):
            got = ops.maxpool2d_backward(dy, argmax, shape, 2, 2)
        want = numpy_ref.maxpool2d_backward(dy, argmax, shape, 2, 2, 2, 0)
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


@needs_cpp
@pytest.mark.parametrize("user", [None, ("ACTIVE", "0")])
def test_openmp_workers_sleep_after_a_short_spin_unless_the_user_says_otherwise(user):
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    if user:
        env["OMP_WAIT_POLICY"], env["GOMP_SPINCOUNT"] = user
    code = ("import os, fastdl.backends.cpp; "
            "print(os.environ['OMP_WAIT_POLICY'], os.environ['GOMP_SPINCOUNT'])")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == list(user or ("PASSIVE", "20000"))


# --------------------------------------------------------------------------- result block cache

@pytest.fixture
def cache_limit():
    """Restores the block cache's limit (and empties it) after a test that changes it."""
    from fastdl import _cpp
    before = _cpp.cache_info()["limit_bytes"]
    yield _cpp
    _cpp.set_cache_limit(before)


@needs_cpp
def test_large_results_reuse_freed_blocks(cache_limit):
    """A freed large result's block comes back for the next result of that size: no fresh pages."""
    _cpp = cache_limit
    _cpp.set_cache_limit(1 << 30)
    x = np.random.default_rng(0).standard_normal((16, 8, 32, 32)).astype(np.float32)  # y: 512 KiB
    y = _cpp.relu_forward(x)[0]
    addr = y.ctypes.data
    assert y.flags.c_contiguous and y.flags.writeable and y.nbytes >= 1 << 18
    del y
    hits = _cpp.cache_info()["hits"]
    y2 = _cpp.relu_forward(x)[0]
    assert _cpp.cache_info()["hits"] == hits + 1
    assert y2.ctypes.data == addr
    np.testing.assert_array_equal(y2, np.maximum(x, 0))  # fully rewritten, not the old contents


@needs_cpp
def test_a_block_stays_with_its_views(cache_limit):
    """A view keeps its base's block: the next result never lands on memory still in use."""
    _cpp = cache_limit
    _cpp.set_cache_limit(1 << 30)
    x = np.random.default_rng(1).standard_normal((8, 4, 32, 32))
    view = _cpp.relu_forward(x)[0][2:5]
    expect = np.maximum(x[2:5], 0)
    for _ in range(3):
        other = _cpp.relu_forward(-x)[0]
        assert not np.shares_memory(view, other)
    np.testing.assert_array_equal(view, expect)


@needs_cpp
def test_cache_limit_and_clear(cache_limit):
    _cpp = cache_limit
    _cpp.set_cache_limit(1 << 30)
    x = np.ones((4, 1 << 16), np.float64)  # 2 MiB results
    ys = [_cpp.relu_forward(x)[0] for _ in range(3)]
    del ys
    info = _cpp.cache_info()
    assert info["cached_blocks"] >= 3 and info["cached_bytes"] >= 3 * x.nbytes
    _cpp.set_cache_limit(x.nbytes)  # frees all but one 2 MiB block
    assert _cpp.cache_info()["cached_bytes"] <= x.nbytes
    _cpp.cache_clear()
    info = _cpp.cache_info()
    assert info["cached_bytes"] == 0 and info["cached_blocks"] == 0
    _cpp.set_cache_limit(0)  # nothing kept: a freed block goes straight back to the system
    y = _cpp.relu_forward(x)[0]
    del y
    assert _cpp.cache_info()["cached_bytes"] == 0
    with pytest.raises(ValueError, match="bytes"):
        _cpp.set_cache_limit(-1)


@needs_cpp
def test_cache_limit_from_environment():
    res = _run("""
        from fastdl import _cpp
        print(_cpp.cache_info()["limit_bytes"])
    """, FASTDL_CPP_CACHE_MB="3")
    assert res.returncode == 0, res.stderr
    assert int(res.stdout) == 3 << 20
