"""The backend registry: names, availability errors, context/thread-local switching, env var, threads."""
from __future__ import annotations

import contextvars
import os
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest

import fastdl
from fastdl import backend, ops

needs_numba = pytest.mark.skipif("numba" not in fastdl.available_backends(), reason="numba unavailable")


def _python(code: str, **env: str) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if k != "FASTDL_BACKEND"}
    full.update(env)
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          env=full, timeout=300)


# --------------------------------------------------------------------------- names and availability

def test_numpy_is_always_available_and_first():
    names = fastdl.available_backends()
    assert names[0] == "numpy"
    assert set(names) <= {"numpy", "numba", "cpp"}


@pytest.mark.parametrize("name", ["bogus", "NumPy", "", "torch", None, 3])
def test_unknown_backend_is_a_value_error(name):
    with pytest.raises(ValueError, match="unknown backend"):
        fastdl.set_backend(name)
    with pytest.raises(ValueError, match="unknown backend"):
        with fastdl.use_backend(name):
            pass  # pragma: no cover
    assert fastdl.get_backend() in backend._MODULES
    if name is not None:  # backend_module(None) means the active backend
        with pytest.raises(ValueError, match="unknown backend"):
            backend.backend_module(name)


@pytest.fixture
def broken_numba(monkeypatch):
    """Pretend the numba backend fails to import (fresh registry state, restored afterwards)."""
    monkeypatch.setitem(backend._MODULES, "numba", "fastdl.backends._no_such_module")
    monkeypatch.setattr(backend, "_loaded", {k: v for k, v in backend._loaded.items() if k != "numba"})
    monkeypatch.setattr(backend, "_errors", {})


def test_unavailable_backend_keeps_the_import_error(broken_numba):
    before = fastdl.get_backend()
    with pytest.raises(fastdl.BackendUnavailableError, match="backend 'numba' is not available") as info:
        fastdl.set_backend("numba")
    assert isinstance(info.value, ImportError)
    assert isinstance(info.value.__cause__, ModuleNotFoundError)
    assert "_no_such_module" in str(info.value.__cause__)
    assert fastdl.get_backend() == before
    with pytest.raises(fastdl.BackendUnavailableError):
        with fastdl.use_backend("numba"):
            pass  # pragma: no cover
    assert "numba" not in fastdl.available_backends()
    with open(os.devnull, "w") as sink:
        text = fastdl.show_config(file=sink)
    assert "numba  unavailable: ModuleNotFoundError" in text and "_no_such_module" in text


def test_auto_skips_an_unavailable_backend(broken_numba, monkeypatch):
    monkeypatch.setattr(backend, "_AUTO_ORDER", ("numba", "numpy"))
    monkeypatch.setattr(backend, "_default", backend._default)
    fastdl.set_backend("auto")
    assert fastdl.get_backend() == "numpy"


def test_package_works_without_numba():
    """numba unimportable: fastdl imports, kernels run on the reference, show_config says why."""
    res = _python("""
        import sys, warnings
        sys.modules["numba"] = None          # makes `import numba` raise ImportError
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            import fastdl
        assert any("FASTDL_BACKEND='numba'" in str(w.message) for w in caught), caught
        assert fastdl.get_backend() == "numpy"
        assert "numba" not in fastdl.available_backends()
        try:
            fastdl.set_backend("numba")
        except fastdl.BackendUnavailableError as exc:
            assert isinstance(exc.__cause__, ImportError), exc.__cause__
        else:
            raise AssertionError("set_backend('numba') did not raise")
        import numpy as np
        from fastdl import ops
        loss, _ = ops.softmax_cross_entropy(np.array([[0.0, 100.0]]), np.array([0]))
        assert abs(loss - 100.0) < 1e-9, loss
        text = fastdl.show_config()
        assert "numba  unavailable: ModuleNotFoundError" in text and "numba" in text, text
        print("OK")
    """, FASTDL_BACKEND="numba")
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip().endswith("OK")


# --------------------------------------------------------------------------- switching

def test_set_backend_changes_the_process_default(monkeypatch):
    monkeypatch.setattr(backend, "_default", backend._default)
    for name in fastdl.available_backends():
        fastdl.set_backend(name)
        assert fastdl.get_backend() == name
        assert backend.backend_module() is backend.backend_module(name)


@pytest.mark.parametrize("name", fastdl.available_backends())
def test_use_backend_restores_on_exit_and_on_error(name):
    before = fastdl.get_backend()
    with fastdl.use_backend(name) as active:
        assert active == name == fastdl.get_backend()
        with fastdl.use_backend("numpy"):
            assert fastdl.get_backend() == "numpy"
        assert fastdl.get_backend() == name
    assert fastdl.get_backend() == before
    with pytest.raises(RuntimeError):
        with fastdl.use_backend(name):
            raise RuntimeError("boom")
    assert fastdl.get_backend() == before


def test_use_backend_wins_over_set_backend_inside_its_block(monkeypatch):
    monkeypatch.setattr(backend, "_default", "numpy")
    other = fastdl.available_backends()[-1]
    with fastdl.use_backend("numpy"):
        fastdl.set_backend(other)
        assert fastdl.get_backend() == "numpy"
    assert fastdl.get_backend() == other


def test_use_backend_is_thread_local():
    other = fastdl.available_backends()[-1]
    default = fastdl.get_backend()
    seen = {}
    inside = threading.Event()
    release = threading.Event()

    def worker():
        with fastdl.use_backend("numpy"):
            inside.set()
            release.wait(10)
            seen["worker"] = fastdl.get_backend()
        seen["worker_after"] = fastdl.get_backend()

    with fastdl.use_backend(other):
        t = threading.Thread(target=worker)
        t.start()
        inside.wait(10)
        seen["main"] = fastdl.get_backend()       # the worker's block does not leak here
        probe = threading.Thread(target=lambda: seen.setdefault("fresh", fastdl.get_backend()))
        probe.start()
        probe.join()
        release.set()
        t.join()
    assert seen == {"main": other, "fresh": default, "worker": "numpy", "worker_after": default}


def test_use_backend_is_context_local():
    other = fastdl.available_backends()[-1]
    default = fastdl.get_backend()
    outside = contextvars.copy_context()

    def switch_inside():
        with fastdl.use_backend(other):
            return fastdl.get_backend()

    assert contextvars.copy_context().run(switch_inside) == other
    assert fastdl.get_backend() == default
    with fastdl.use_backend(other):
        assert outside.run(fastdl.get_backend) == default
        assert contextvars.copy_context().run(fastdl.get_backend) == other


@pytest.mark.parametrize("name", fastdl.available_backends())
def test_ops_dispatch_to_the_active_backend(name, monkeypatch):
    mod = backend.backend_module(name)
    calls = []
    real = mod.im2col
    monkeypatch.setattr(mod, "im2col", lambda *a: calls.append(name) or real(*a))
    with fastdl.use_backend(name):
        ops.im2col(np.zeros((1, 1, 3, 3)), 2, 2)
    assert calls == [name]


# --------------------------------------------------------------------------- FASTDL_BACKEND

PRINT_BACKEND = "import fastdl; print(fastdl.get_backend())"


@pytest.mark.parametrize("value", ["numpy", "NUMPY", " numpy "])
def test_env_numpy(value):
    res = _python(PRINT_BACKEND, FASTDL_BACKEND=value)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "numpy"


@needs_numba
def test_env_numba():
    res = _python(PRINT_BACKEND, FASTDL_BACKEND="numba")
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "numba"


def test_env_auto_picks_the_fastest_available():
    res = _python(PRINT_BACKEND, FASTDL_BACKEND="auto")
    assert res.returncode == 0, res.stderr
    want = next(n for n in backend._AUTO_ORDER if n in fastdl.available_backends())
    assert res.stdout.strip() == want


def test_env_unset_means_numpy():
    res = _python(PRINT_BACKEND)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "numpy"


def test_env_bogus_fails_at_import_with_the_name():
    res = _python(PRINT_BACKEND, FASTDL_BACKEND="bogus")
    assert res.returncode != 0
    assert "ValueError" in res.stderr and "unknown backend 'bogus'" in res.stderr


# --------------------------------------------------------------------------- threads

@pytest.fixture
def restore_threads():
    before = fastdl.get_num_threads()
    yield before
    fastdl.set_num_threads(before)


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2", None])
def test_set_num_threads_validation(bad, restore_threads):
    with pytest.raises(ValueError, match="n must be a positive int"):
        fastdl.set_num_threads(bad)
    assert fastdl.get_num_threads() == restore_threads


def test_get_num_threads_reports_the_setting(restore_threads):
    fastdl.set_num_threads(1)
    assert fastdl.get_num_threads() == 1


@needs_numba
def test_set_num_threads_reaches_a_directly_imported_backend():
    """A script that imports the backend module itself (not through use_backend) is reached too."""
    proc = _python("""
        import fastdl
        from fastdl.backends import numba_jit
        fastdl.set_num_threads(1)
        assert numba_jit.threads() == 1, numba_jit.threads()
    """)
    assert proc.returncode == 0, proc.stderr


@needs_numba
def test_set_num_threads_reaches_numba(restore_threads):
    import numba

    from fastdl.backends import numba_jit

    x = np.random.default_rng(0).standard_normal((4, 3, 8, 8))
    fastdl.set_num_threads(1)
    assert numba_jit.threads() == 1 and numba.get_num_threads() == 1
    with fastdl.use_backend("numba"):
        y1, _ = ops.maxpool2d_forward(x, 2, 2)
    fastdl.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    assert numba.get_num_threads() == numba.config.NUMBA_NUM_THREADS
    with fastdl.use_backend("numba"):
        y2, _ = ops.maxpool2d_forward(x, 2, 2)
    np.testing.assert_array_equal(y1, y2)
    # More threads than Numba has: clamped, not an error.
    fastdl.set_num_threads(numba.config.NUMBA_NUM_THREADS + 3)
    assert numba.get_num_threads() == numba.config.NUMBA_NUM_THREADS
    assert fastdl.get_num_threads() == numba.config.NUMBA_NUM_THREADS + 3


@pytest.mark.parametrize("user", [None, "28"])
def test_openblas_idle_spin_is_short_unless_the_user_says_otherwise(user):
    """Imported first, fastdl sets OPENBLAS_THREAD_TIMEOUT before NumPy (hence OpenBLAS) loads."""
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_THREAD_TIMEOUT"}
    if user:
        env["OPENBLAS_THREAD_TIMEOUT"] = user
    code = (
        "import os, sys\n"
        "class Spy:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'numpy':\n"
        "            print(os.environ.get('OPENBLAS_THREAD_TIMEOUT'))\n"
        "            sys.meta_path.remove(self)\n"
        "        return None\n"
        "sys.meta_path.insert(0, Spy())\n"
        "import fastdl\n"
        "import numpy\n"  # (fastdl itself imports NumPy lazily)
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == (user or "20")  # the value OpenBLAS saw when NumPy was imported
