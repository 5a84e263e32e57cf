"""The installed package is the one under test, with the backends the environment requires."""
from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

import fastdl


def test_required_backends_are_available():
    """CI sets FASTDL_REQUIRE_BACKENDS so a broken build cannot hide behind skipped tests."""
    required = [n for n in os.environ.get("FASTDL_REQUIRE_BACKENDS", "").split(",") if n]
    if not required:
        pytest.skip("FASTDL_REQUIRE_BACKENDS is not set")
    missing = [n for n in required if n not in fastdl.available_backends()]
    assert not missing, f"backends {missing} unavailable:\n{fastdl.show_config(file=io.StringIO())}"


REPO = Path(__file__).resolve().parents[2]


def _python(code: str, cwd: Path, **env: str) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    full_env.update(env)
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=full_env, capture_output=True,
                          text=True, timeout=120)


def test_import_in_the_checkout_is_never_silently_the_source_tree():
    """``python -c "import fastdl"`` at the checkout's root finds the source tree first, which has
    no compiled ``_cpp``: that must say so (and how to fix it), never silently lose ``cpp``."""
    if not (REPO / "pyproject.toml").is_file() or not (REPO / "fastdl" / "__init__.py").is_file():
        pytest.skip("not run from a checkout")
    out = _python("import fastdl; print(fastdl.__file__); print(','.join(fastdl.available_backends()))",
                  cwd=REPO)
    assert out.returncode == 0, out.stderr
    where, backends = out.stdout.split()
    if Path(where).resolve().is_relative_to(REPO) and "cpp" not in backends.split(","):
        assert "imported from its source tree" in out.stderr and "pip install" in out.stderr
    else:
        assert backends.split(",") == fastdl.available_backends()


def test_the_installed_package_does_not_warn():
    """The installed package (what the tests import) is not mistaken for a source tree."""
    out = _python("import fastdl", cwd=Path(fastdl.__file__).resolve().parent.parent)
    assert out.returncode == 0, out.stderr
    assert "source tree" not in out.stderr
