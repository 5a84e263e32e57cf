"""A process forked after the fast kernels ran (multiprocessing's fork start method) runs them too.

GNU OpenMP, behind the cpp backend, cannot start a parallel region in such a child (it
waited forever), and Numba's 'omp' threading layer terminated it.  Each check runs in a
fresh interpreter with a time limit, so a broken fork fails the test instead of hanging it.
"""
from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

import fastdl

FORK_PROBE = """
    import multiprocessing as mp
    import numpy as np
    import fastdl
    from fastdl import ops

    BACKEND = {backend!r}

    def run():
        rng = np.random.default_rng(0)
        x = rng.standard_normal((16, 16, 32, 32))
        w = rng.standard_normal((8, 16, 3, 3))
        with fastdl.use_backend(BACKEND):
            y, ctx = ops.conv2d_forward(x, w, None, 1, 1)
            dx, dw, db = ops.conv2d_backward(y, ctx)
            p, am = ops.maxpool2d_forward(x, 2, 2)
            loss, d = ops.softmax_cross_entropy(x.reshape(-1, 64), np.arange(x.size // 64) % 64)
        return [y, dx, dw, db, p, am, d, np.array(loss)]

    def child(q):
        q.put(run())

    if __name__ == "__main__":
        fastdl.set_num_threads(2)
        want = run()  # the parent's pools start here
        ctx = mp.get_context("fork")
        q = ctx.Queue()
        proc = ctx.Process(target=child, args=(q,))
        proc.start()
        got = q.get(timeout=120)
        proc.join(60)
        assert proc.exitcode == 0, proc.exitcode
        for a, b in zip(got, want):
            np.testing.assert_array_equal(a, b)
        again = run()  # and the parent's pools still work
        for a, b in zip(again, want):
            np.testing.assert_array_equal(a, b)
        print("fork ok")
"""


@pytest.mark.parametrize("name", [b for b in ("numba", "cpp") if b in fastdl.available_backends()])
def test_forked_child_runs_the_kernels_of_its_parent(name, tmp_path):
    script = tmp_path / "probe.py"
    script.write_text(textwrap.dedent(FORK_PROBE.format(backend=name)))
    try:
        res = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300)
    except subprocess.TimeoutExpired:
        pytest.fail(f"a process forked after {name} kernels ran hung (timed out)")
    assert res.returncode == 0 and "fork ok" in res.stdout, res.stderr[-3000:]
