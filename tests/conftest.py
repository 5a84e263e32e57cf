"""Shared fixtures: the real-data folder and one-test-body-per-backend parametrization."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

import fastdl

BACKENDS = fastdl.available_backends()

# Tests run from an empty folder (below); a relative data path must keep working there.
if os.environ.get("FASTDL_TEST_DATA"):
    os.environ["FASTDL_TEST_DATA"] = str(Path(os.environ["FASTDL_TEST_DATA"]).resolve())


@pytest.fixture(scope="session", autouse=True)
def _run_outside_the_source_tree(tmp_path_factory):
    """Work from an empty folder, so that ``python -c`` in a subprocess imports the installed
    fastdl (with its compiled ``_cpp``) rather than the source tree in the current directory."""
    old = os.getcwd()
    os.chdir(tmp_path_factory.mktemp("cwd"))
    yield
    os.chdir(old)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """``$FASTDL_TEST_DATA`` (the shared real data: mnist/ and book/); skips when absent."""
    root = os.environ.get("FASTDL_TEST_DATA")
    if not root or not Path(root).is_dir():
        pytest.skip("FASTDL_TEST_DATA is not set to the shared data folder")
    return Path(root)


@pytest.fixture(params=BACKENDS)
def backend(request):
    """Run the test body once on every available backend, with that backend active."""
    with fastdl.use_backend(request.param):
        yield request.param
