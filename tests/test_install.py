"""The installed package is the one under test, with the backends the environment requires."""
from __future__ import annotations

import io
import os

import pytest

import fastdl


def test_required_backends_are_available():
    """CI sets FASTDL_REQUIRE_BACKENDS so a broken build cannot hide behind skipped tests."""
    required = [n for n in os.environ.get("FASTDL_REQUIRE_BACKENDS", "").split(",") if n]
    if not required:
        pytest.skip("FASTDL_REQUIRE_BACKENDS is not set")
    missing = [n for n in required if n not in fastdl.available_backends()]
    assert not missing, f"backends {missing} unavailable:\n{fastdl.show_config(file=io.StringIO())}"
