"""A process forked after the fast kernels ran (multiprocessing's fork start method) runs them too.

GNU OpenMP, behind the cpp backend, cannot start a parallel region in such a child (it
waited forever), and Numba's 'omp' threading layer terminated it.  Each check runs in a
fresh interpreter with a time limit, so a broken fork fails the test instead of hanging it.
"""
from __future__ import annotations

import os
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
            x32, w32 = x.astype(np.float32), w.astype(np.float32)  # the C++ GEMM is float32
            h = ops.affine_forward(x32.reshape(64, -1), np.ones((4096, 40), np.float32) / 64, np.zeros(40, np.float32))
            gx, gw, gb = ops.affine_backward(h, x32.reshape(64, -1), np.ones((4096, 40), np.float32))
            cp, cctx = ops.conv2d_relu_maxpool2d_forward(x32, w32, None, 1, 1, 2, 2)
            cdx, cdw, cdb = ops.conv2d_relu_maxpool2d_backward(cp, cctx)
        return [y, dx, dw, db, p, am, d, np.array(loss), h, gx, gw, gb, cp, cdx, cdw, cdb]

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


@pytest.mark.parametrize("name", ["numba", "cpp"])
def test_forked_child_runs_the_kernels_of_its_parent(name, tmp_path):
    if name not in fastdl.available_backends():  # shown as a skip, not a test that vanished
        pytest.skip(f"backend {name!r} is not available")
    script = tmp_path / "probe.py"
    script.write_text(textwrap.dedent(FORK_PROBE.format(backend=name)))
    try:
        res = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300)
    except subprocess.TimeoutExpired:
        pytest.fail(f"a process forked after {name} kernels ran hung (timed out)")
    assert res.returncode == 0 and "fork ok" in res.stdout, res.stderr[-3000:]


OMP_PROBE = """
    import multiprocessing as mp
    import numpy as np
    import numba
    import fastdl
    from fastdl import ops

    def run():
        with fastdl.use_backend("numba"):
            x = np.random.default_rng(0).standard_normal((4, 3, 16, 16))
            return ops.conv2d_forward(x, np.ones((2, 3, 3, 3)), None, 1, 1)[0]

    if __name__ == "__main__":
        fastdl.set_num_threads(2)
        run()
        print("layer", numba.threading_layer(), flush=True)
        proc = mp.get_context("fork").Process(target=run)
        proc.start()
        proc.join(60)
        if proc.exitcode is None:
            proc.kill()
        print("child exit", proc.exitcode, flush=True)
"""


def test_numba_omp_layer_names_the_spawn_start_method_at_fork(tmp_path):
    """Numba's 'omp' layer, chosen explicitly, cannot survive fork(): the parent says so, naming
    the spawn start method, before GNU OpenMP terminates the child."""
    if "numba" not in fastdl.available_backends():
        pytest.skip("backend 'numba' is not available")
    script = tmp_path / "omp.py"
    script.write_text(textwrap.dedent(OMP_PROBE))
    env = dict(os.environ, NUMBA_THREADING_LAYER="omp")
    try:
        res = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300, env=env)
    except subprocess.TimeoutExpired:
        pytest.fail("the omp fork probe hung (timed out)")
    if "layer omp" not in res.stdout:
        pytest.skip(f"Numba's omp threading layer is not available here: {res.stdout[-300:]} {res.stderr[-500:]}")
    assert "child exit" in res.stdout, res.stderr[-3000:]
    assert "NUMBA_THREADING_LAYER" in res.stderr and "get_context('spawn')" in res.stderr, res.stderr[-3000:]
