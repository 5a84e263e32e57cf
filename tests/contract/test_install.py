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


def test_import_in_the_checkout_loads_the_installed_package():
    """``python -c "import fastdl"`` at the checkout's root must find the installed package (with
    its compiled ``_cpp``), not the source tree: the src/ layout keeps ``fastdl/`` off that path."""
    if not (REPO / "pyproject.toml").is_file():
        pytest.skip("not run from a checkout")
    out = _python("import fastdl; print(fastdl.__file__); print(','.join(fastdl.available_backends()))",
                  cwd=REPO)
    assert out.returncode == 0, out.stderr
    where, backends = out.stdout.split()
    assert Path(where).resolve().parent == Path(fastdl.__file__).resolve().parent
    assert not Path(where).resolve().is_relative_to(REPO / "src")
    assert backends.split(",") == fastdl.available_backends()
    assert "source tree" not in out.stderr


def test_importing_the_source_tree_warns():
    """Putting ``src/`` on ``sys.path`` by hand gives a package without ``_cpp``: it says so."""
    if not (REPO / "src" / "fastdl" / "__init__.py").is_file():
        pytest.skip("not run from a checkout")
    out = _python("import fastdl; print(fastdl.__file__)", cwd=REPO, PYTHONPATH=str(REPO / "src"))
    assert out.returncode == 0, out.stderr
    assert Path(out.stdout.strip()).resolve().is_relative_to(REPO / "src")
    assert "imported from its source tree" in out.stderr and "pip install" in out.stderr
