"""Shared fixtures: the real-data folder and one-test-body-per-backend parametrization."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

import fastdl

BACKENDS = fastdl.available_backends()


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
