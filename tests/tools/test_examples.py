"""Every script in examples/ runs with --quick under MPLBACKEND=Agg and writes its figures."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from fastdl import datasets

EXAMPLES = sorted(p for p in (Path(__file__).resolve().parents[2] / "examples").glob("*.py")
                  if not p.name.startswith("_"))
NO_DATA_NEEDED = {"optimizer_compare_2d", "weight_init_activation_histogram"}


def _have_images() -> bool:
    for name in ("fashion-mnist", "mnist"):
        try:
            datasets.find_dataset(name)
            return True
        except FileNotFoundError:
            pass
    return False


def test_examples_exist():
    assert len(EXAMPLES) >= 8


@pytest.mark.parametrize("script", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_quick(script, tmp_path):
    if script.stem not in NO_DATA_NEEDED and not _have_images():
        pytest.skip("needs Fashion-MNIST (apt-get install dataset-fashion-mnist) or MNIST")
    # one BLAS/kernel thread: these are small problems, and it keeps a shared CI box calm
    env = dict(os.environ, MPLBACKEND="Agg")
    r = subprocess.run([sys.executable, str(script), "--quick", "--threads", "1", "--out",
                        str(tmp_path)], cwd=tmp_path, env=env, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    written = re.findall(r"^wrote (.+\.png)$", r.stdout, flags=re.M)
    assert written, r.stdout
    for f in written:
        assert Path(f).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert Path(f).parent == tmp_path
