"""No file can exhaust memory (issue 20): headers that claim more than the file holds are refused
with the documented error, naming the file, before anything is allocated.

Weight files (.npz) raise WeightFileError, checkpoints CheckpointError, IDX files ValueError.
Peak memory is measured with tracemalloc (NumPy reports its buffers to it), so a reader that
trusts a header fails these tests instead of allocating gigabytes.
"""
import gzip
import io as _io
import hashlib
import struct
import tracemalloc
import zipfile

import numpy as np
import pytest

from fastdl import checkpoint, io
from fastdl.checkpoint import CheckpointError
from fastdl.datasets import read_idx, write_idx
from fastdl.io import WeightFileError
from fastdl.models import MultiLayerNetExtend, TwoLayerNet
from fastdl.optimizers import SGD, Adam, Momentum

GiB = 1 << 30
PEAK = 64 << 20  # far below any claim below; far above what the files hold


class _peak_memory:
    """Peak bytes traced by tracemalloc inside the block: ``with _peak_memory() as p: ...; p.peak``."""

    def __enter__(self):
        tracemalloc.start()
        tracemalloc.reset_peak()
        return self

    def __exit__(self, *exc):
        self.peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()


def _npy(shape, dtype="<f8", data=b"\0" * 16, fortran=False) -> bytes:
    """A .npy member whose header claims ``shape`` of ``dtype`` and holds ``data``."""
    buf = _io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": dtype, "fortran_order": fortran, "shape": shape})
    return buf.getvalue() + data


def _npz(members: dict, compression=zipfile.ZIP_STORED) -> bytes:
    buf = _io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as zf:
        for name, raw in members.items():
            zf.writestr(name, raw)
    return buf.getvalue()


HUGE = [(1 << 33,), (1 << 16, 1 << 17), (2 ** 62,), (2 ** 40, 2 ** 40, 2 ** 40)]  # 64 GiB, 64 GiB, overflow


# ---------------------------------------------------------------- weight files (.npz)

@pytest.mark.parametrize("compression", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
@pytest.mark.parametrize("shape", HUGE, ids=str)
def test_npz_header_claiming_64_gib_is_a_weight_file_error(tmp_path, shape, compression):
    good = np.ones((2, 3))
    path = tmp_path / "huge.npz"
    path.write_bytes(_npz({"W1.npy": _npy(good.shape, data=good.tobytes()), "b1.npy": _npy(shape)}, compression))
    with _peak_memory() as mem:
        with pytest.raises(WeightFileError, match=r"huge\.npz: array 'b1': its header claims shape"):
            io.load_params_file(path)
    assert mem.peak < PEAK
    net = TwoLayerNet(6, 3, 2, seed=0)
    before = {k: v.copy() for k, v in net.params.items()}
    with pytest.raises(WeightFileError, match=r"huge\.npz"):
        net.load_params(path)  # and the model is left unchanged
    for k, v in before.items():
        np.testing.assert_array_equal(net.params[k], v)


def test_npz_zip_directory_claiming_more_than_the_archive_is_refused(tmp_path):
    raw = bytearray(_npz({"W1.npy": _npy((4,), data=b"\0" * 32)}))
    # the central directory's compressed and uncompressed sizes claim 3 GiB for the stored member
    cd = raw.rindex(b"PK\x01\x02")
    struct.pack_into("<II", raw, cd + 20, 3 * GiB, 3 * GiB)
    path = tmp_path / "lying.npz"
    path.write_bytes(bytes(raw))
    with _peak_memory() as mem:
        with pytest.raises(WeightFileError, match=r"lying\.npz"):
            io.load_params_file(path)
    assert mem.peak < PEAK


@pytest.mark.parametrize("member,match", [
    (_npy((4,), data=b"\0" * 31), "claims shape"),  # one byte short
    (_npy((4,), data=b"\0" * 33), "claims shape"),  # one byte too many
    (_npy((2,), dtype="|O", data=b"\0" * 16), "non-numeric dtype"),  # an object array: a pickle
    (_npy((2,), dtype="<U3", data=b"\0" * 24), "non-numeric dtype"),
    (b"\x93NUMPY\x09\x00" + b"\0" * 40, r"format version \(9, 0\)"),
    (b"not an npy", "corrupt or unreadable"),
], ids=["short", "long", "object", "str", "version", "garbage"])
def test_npz_bad_members(tmp_path, member, match):
    path = tmp_path / "bad.npz"
    path.write_bytes(_npz({"W1.npy": member}))
    with pytest.raises(WeightFileError, match=rf"bad\.npz.*{match}"):
        io.load_params_file(path)


def test_npz_reader_keeps_every_honest_array(tmp_path):
    arrays = {"a": np.arange(12, dtype=">f4").reshape(3, 4), "f": np.asfortranarray(np.arange(6.0).reshape(2, 3)),
              "e": np.zeros((0, 5), np.float32), "s": np.array(3.5), "i": np.arange(5, dtype=np.int16),
              "z": np.array([True, False])}
    for save in (np.savez, np.savez_compressed):
        path = tmp_path / f"{save.__name__}.npz"
        save(path, **arrays)
        got = io.load_params_file(path)
        assert set(got) == set(arrays)
        for k, v in arrays.items():
            assert got[k].dtype == v.dtype and got[k].shape == v.shape
            np.testing.assert_array_equal(got[k], v)
            got[k][...] = 0  # writable


def test_book_pickle_claiming_a_huge_bytes_object_is_a_weight_file_error(tmp_path):
    # BINBYTES8 with a length of 64 GiB and 3 bytes behind it
    path = tmp_path / "huge.pkl"
    path.write_bytes(b"\x80\x04\x8e" + struct.pack("<Q", 64 * GiB) + b"abc")
    with _peak_memory() as mem:
        with pytest.raises(WeightFileError, match=r"huge\.pkl: corrupt pickle"):
            io.load_params_file(path)
    assert mem.peak < PEAK


# ---------------------------------------------------------------- checkpoints

def _checkpoint_bytes(body: bytes) -> bytes:
    return checkpoint.MAGIC + bytes([checkpoint.VERSION]) + hashlib.sha256(body).digest() + body


@pytest.mark.parametrize("shape", HUGE, ids=str)
def test_checkpoint_header_claiming_64_gib_is_a_checkpoint_error(tmp_path, shape):
    meta = np.frombuffer(b'{"model": {"name": "two_layer", "config": {}}}', np.uint8)
    body = _npz({"meta.npy": _npy(meta.shape, "|u1", meta.tobytes()), "model/W1.npy": _npy(shape)})
    path = tmp_path / "huge.ckpt"
    path.write_bytes(_checkpoint_bytes(body))  # a valid checksum: the header itself lies
    with _peak_memory() as mem:
        with pytest.raises(CheckpointError, match=r"huge\.ckpt: unreadable checkpoint body.*claims shape"):
            checkpoint.load_checkpoint(path)
    assert mem.peak < PEAK


def _trained(opt_cls, backend_seed=0):
    net = MultiLayerNetExtend(6, [5], 3, use_batchnorm=True, seed=backend_seed)
    opt = opt_cls(lr=0.1)
    x, t = np.random.default_rng(1).standard_normal((4, 6)), np.array([0, 1, 2, 0])
    for _ in range(2):
        opt.update(net.params, net.gradient(x, t))
    return net, opt


@pytest.mark.parametrize("opt_cls", [Momentum, Adam], ids=lambda c: c.__name__)
def test_restore_refuses_optimizer_slots_that_do_not_fit_and_applies_nothing(backend, tmp_path, opt_cls):
    src_net, src_opt = _trained(opt_cls, 0)
    good = checkpoint.capture(src_net, src_opt, epoch=1)
    slot = sorted(src_opt.state_dict()["slots"])[0]
    bad_cases = {
        "wrong shape": (dict(good.optim, **{f"{slot}/W1": np.zeros((5, 6))}),
                        rf"slot '{slot}' for parameter 'W1' has shape \(5, 6\), the parameter has \(6, 5\)"),
        "unknown parameter": (dict(good.optim, **{f"{slot}/W9": np.zeros(3)}),
                              rf"slot '{slot}' holds state for 'W9', which is not a parameter"),
        "running statistic": (dict(good.optim, **{f"{slot}/running_mean1": np.zeros(5)}),
                              r"slot .* holds state for 'running_mean1', which is not a parameter"),
        "no slot name": (dict(good.optim, W1=np.zeros((6, 5))), r"state 'W1' is not named <slot>/<parameter>"),
    }
    for case, (optim, match) in bad_cases.items():
        ckpt = checkpoint.Checkpoint(meta=good.meta, params=good.params, optim=optim)
        path = tmp_path / "c.ckpt"
        checkpoint.save_checkpoint(path, ckpt)
        net, opt = _trained(opt_cls, 1)  # another state, which must survive
        net_before, opt_before = net.state_dict(), opt.state_dict()
        with pytest.raises(CheckpointError, match=rf"c\.ckpt: optimizer {match}"):
            checkpoint.restore(checkpoint.load_checkpoint(path), net, opt, source=path)
        for k, v in net_before.items():
            np.testing.assert_array_equal(net.state_dict()[k], v, err_msg=case)
        after = opt.state_dict()
        assert after["iter"] == opt_before["iter"]
        assert {s: sorted(a) for s, a in after["slots"].items()} == \
            {s: sorted(a) for s, a in opt_before["slots"].items()}, case
        for s, arrays in opt_before["slots"].items():
            for k, v in arrays.items():
                np.testing.assert_array_equal(after["slots"][s][k], v, err_msg=case)
    net, opt = _trained(opt_cls, 1)  # and the good checkpoint restores
    checkpoint.restore(good, net, opt)
    for k, v in src_net.state_dict().items():
        np.testing.assert_array_equal(net.state_dict()[k], v)
    assert opt.state_dict()["iter"] == src_opt.state_dict()["iter"]


def test_restore_without_slots_still_fits():
    net = TwoLayerNet(6, 5, 3, seed=0)
    ckpt = checkpoint.capture(net, SGD())  # SGD keeps no state
    checkpoint.restore(ckpt, TwoLayerNet(6, 5, 3, seed=1), SGD())


# ---------------------------------------------------------------- IDX files

def _idx_header(type_code, dims) -> bytes:
    return struct.pack(f">HBB{len(dims)}I", 0, type_code, len(dims), *dims)


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("dims,type_code", [((2 ** 32 - 1,) * 3, 0x08), ((2 ** 32 - 1,) * 2, 0x0E),
                                            ((2 ** 32 - 1,) * 8, 0x0B)])
def test_idx_dimensions_whose_product_overflows_int64(tmp_path, dims, type_code, gz):
    raw = _idx_header(type_code, dims) + b"\0" * 64
    path = tmp_path / "overflow-idx3-ubyte"
    path.write_bytes(gzip.compress(raw) if gz else raw)
    with _peak_memory() as mem:
        with pytest.raises(ValueError, match=r"overflow-idx3-ubyte: IDX header declares dimensions .* "
                                             r"more than any array can hold"):
            read_idx(path)
    assert mem.peak < PEAK


@pytest.mark.parametrize("gz", [False, True])
def test_idx_header_promising_more_than_the_file_can_hold(tmp_path, gz):
    # 60,000,000 images of 28x28: 47 GB promised by a file of a few hundred bytes
    raw = _idx_header(0x08, (60_000_000, 28, 28)) + bytes(range(256))
    path = tmp_path / "big-images-idx3-ubyte"
    path.write_bytes(gzip.compress(raw) if gz else raw)
    with _peak_memory() as mem:
        with pytest.raises(ValueError, match=r"big-images-idx3-ubyte: truncated IDX file: header says "
                                             r"\(60000000, 28, 28\).*more than the \d+-byte file can hold"):
            read_idx(path)
    assert mem.peak < PEAK


def test_idx_small_gzip_that_inflates_to_1_gib_is_not_decompressed_whole(tmp_path):
    """A 1 MB gzip: a header promising 10 labels, then 1 GiB of zeros (64 gzip members of 16 MiB,
    which gzip reads as one stream).  Only the promised bytes and one more are inflated."""
    head = gzip.compress(_idx_header(0x08, (10,)) + bytes(range(10)), mtime=0)
    bomb = gzip.compress(bytes(16 << 20), compresslevel=9, mtime=0)
    path = tmp_path / "bomb-labels-idx1-ubyte.gz"
    path.write_bytes(head + bomb * 64)
    assert path.stat().st_size < 2 << 20
    with _peak_memory() as mem:
        with pytest.raises(ValueError, match=r"bomb-labels-idx1-ubyte\.gz: malformed IDX file: .*trailing data"):
            read_idx(path)
    assert mem.peak < PEAK
    # the same file without the bomb is fine
    path.write_bytes(head)
    np.testing.assert_array_equal(read_idx(path), np.arange(10, dtype=np.uint8))


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.float32, np.float64])
def test_idx_streamed_reader_round_trip(tmp_path, gz, dtype):
    a = (np.arange(2 * 3 * 5) - 7).astype(dtype).reshape(2, 3, 5)
    path = tmp_path / ("a.gz" if gz else "a")
    write_idx(path, a)
    got = read_idx(path)
    assert got.dtype == np.dtype(dtype) and got.dtype.isnative and got.flags.writeable
    np.testing.assert_array_equal(got, a)
    e = tmp_path / ("e.gz" if gz else "e")
    write_idx(e, np.zeros((0, 28, 28), np.uint8))
    assert read_idx(e).shape == (0, 28, 28)
