"""Saving and loading weights: ``.npz`` without pickle, and a safe reader for the book's ``.pkl``.

A weight file is a flat dict ``{name: ndarray}`` (``W1``, ``b1``, ...).
:func:`save_params` writes ``.npz`` atomically: a crash mid-write leaves the
previous file intact.  :func:`load_params_file` recognises a file by its
content (zip = npz, pickle = the book's format), never by its name, and never
runs code from it: npz is read with ``allow_pickle=False``, and pickles go
through :func:`load_book_params`, which admits NumPy arrays and nothing else.
Every problem with a file raises :class:`WeightFileError` (a ``ValueError``), and no
header in a file can make a load allocate more than the file holds (:func:`read_npz`).
"""
from __future__ import annotations

import io
import os
import pickle
import struct
import tempfile
import typing
import zipfile
import zlib
from pathlib import Path
from typing import Mapping, Union

import numpy as np

__all__ = ["WeightFileError", "atomic_write_bytes", "save_params", "load_params_file", "load_book_params",
           "read_npz"]

PathLike = Union[str, "os.PathLike[str]"]

# numpy's array-unpickling helper, whatever module the running numpy keeps it in.
_reconstruct = np.zeros(1).__reduce__()[0]
_ALLOWED = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
}


class WeightFileError(pickle.UnpicklingError, ValueError):
    """A weight file is corrupt, of an unknown format, not a dict of numeric arrays, or unsafe."""


def _check_arrays(d: object, path: PathLike) -> dict[str, np.ndarray]:
    if not isinstance(d, dict):
        raise WeightFileError(f"{os.fspath(path)}: expected a dict of arrays, got {type(d).__name__}")
    for k, v in d.items():
        if not isinstance(k, str) or not isinstance(v, np.ndarray):
            raise WeightFileError(f"{os.fspath(path)}: entry {k!r} is not a named ndarray")
        if not (np.issubdtype(v.dtype, np.number) or v.dtype == np.bool_):
            raise WeightFileError(f"{os.fspath(path)}: array {k!r} has non-numeric dtype {v.dtype}")
    return d


_TMP_SUFFIX = ".tmp"


def _tmp_prefix(path: Path) -> str:
    return f".{path.name}."


def _remove_stale_temps(path: Path) -> None:
    """Delete temporary files left next to ``path`` by writers that died (not by live ones)."""
    prefix = _tmp_prefix(path)
    for p in path.parent.glob(prefix + "*" + _TMP_SUFFIX):
        pid_part = p.name[len(prefix):].split(".", 1)[0]
        if pid_part.isdigit() and int(pid_part) != os.getpid() and _pid_alive(int(pid_part)):
            continue
        try:
            p.unlink()
        except FileNotFoundError:
            pass


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def atomic_write_bytes(path: PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temp file in the same directory, flush, fsync,
    ``os.replace``, fsync of the directory). On any error or interrupt the temp file is
    removed and ``path`` keeps its previous content."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temps(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f"{_tmp_prefix(path)}{os.getpid()}.",
                               suffix=_TMP_SUFFIX)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    try:
        dfd = os.open(path.parent, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(dfd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(dfd)


def save_params(params: Mapping[str, np.ndarray], path: PathLike) -> None:
    """Write ``{name: array}`` to ``path`` as ``.npz`` (exactly that path; no pickle).

    The data goes to a temporary file in the same directory, is flushed and
    fsync'ed, then renamed over ``path`` with ``os.replace``: readers see the
    old file or the new one, never a partial one.
    """
    arrays = _check_arrays({k: np.asarray(v) for k, v in params.items()}, path)
    buf = io.BytesIO()
    np.savez(buf, allow_pickle=False, **arrays)
    atomic_write_bytes(path, buf.getvalue())


# Deflate's largest expansion: 258 bytes from 2 bits is 1032:1; no honest member inflates more.
_DEFLATE_MAX_RATIO = 1032
_CHUNK = 1 << 24


def read_npz(fileobj: typing.BinaryIO, source: PathLike = "npz") -> dict[str, np.ndarray]:
    """The arrays of an ``.npz`` archive, never allocating more than the file can hold.

    Each member is read through :mod:`zipfile` and its ``.npy`` header with
    ``numpy.lib.format``'s header readers; before anything is allocated, the size the
    header claims (``prod(shape) * itemsize``) must equal the member's size in the zip
    directory, and that size must fit in the archive (stored members) or within
    deflate's largest ratio of the compressed bytes.  The data is then read in chunks,
    so memory grows with what the file really holds, never with what a header claims:
    a header that claims 64 GiB in a small file is a :class:`WeightFileError`, not a
    MemoryError.  Object arrays (pickles) and non-numeric dtypes are refused.
    """
    name = os.fspath(source)
    fileobj.seek(0, os.SEEK_END)
    archive = fileobj.tell()
    fileobj.seek(0)
    out: dict[str, np.ndarray] = {}
    try:
        with zipfile.ZipFile(fileobj) as zf:
            for info in zf.infolist():
                key = info.filename
                if not key.endswith(".npy"):
                    raise WeightFileError(f"{name}: member {key!r} is not a .npy array")
                out[key[:-4]] = _read_member(zf, info, archive, name)
    except WeightFileError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError, EOFError, NotImplementedError,
            RuntimeError, KeyError, struct.error, zlib.error) as exc:
        raise WeightFileError(f"{name}: corrupt or unreadable .npz file ({type(exc).__name__}: {exc})") from exc
    return out


def _read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, archive: int, name: str) -> np.ndarray:
    key = info.filename[:-4]
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise WeightFileError(f"{name}: array {key!r} uses zip compression {info.compress_type} "
                              f"(only stored and deflated members are read)")
    if info.compress_size > archive or (
            info.file_size > (info.compress_size if info.compress_type == zipfile.ZIP_STORED
                              else _DEFLATE_MAX_RATIO * info.compress_size + 1024)):
        raise WeightFileError(f"{name}: array {key!r}: the zip directory claims {info.file_size} bytes "
                              f"({info.compress_size} compressed) in an archive of {archive} bytes")
    with zf.open(info) as f:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
        else:
            raise WeightFileError(f"{name}: array {key!r} has .npy format version {version} "
                                  f"(1.0 and 2.0 are read)")
        if dtype.hasobject or not (np.issubdtype(dtype, np.number) or dtype == np.bool_):
            raise WeightFileError(f"{name}: array {key!r} has non-numeric dtype {dtype}")
        count = 1
        for d in shape:  # Python ints: no overflow
            count *= d
        claimed = count * dtype.itemsize
        held = info.file_size - f.tell()
        if claimed != held:
            raise WeightFileError(f"{name}: array {key!r}: its header claims shape {shape} of {dtype} "
                                  f"= {claimed} bytes, the file holds {held}")
        buf = bytearray()
        while len(buf) < claimed:
            chunk = f.read(min(_CHUNK, claimed - len(buf)))
            if not chunk:
                break
            buf += chunk
        if len(buf) != claimed or f.read(1):  # the read to the end checks the CRC too
            raise WeightFileError(f"{name}: array {key!r}: truncated or corrupt data "
                                  f"({len(buf)} of {claimed} bytes)")
    arr = np.frombuffer(buf, dtype=dtype)  # writable: the bytearray is ours
    if fortran:
        return arr.reshape(shape[::-1]).transpose()
    return arr.reshape(shape)


def load_params_file(path: PathLike) -> dict[str, np.ndarray]:
    """Read a weight file written by :func:`save_params` (npz) or by the book (pkl).

    No header in the file can make this allocate more than the file holds (see
    :func:`read_npz`); every problem raises :class:`WeightFileError`.
    """
    with open(path, "rb") as f:
        head = f.read(4)
    if head.startswith(b"PK"):
        with open(path, "rb") as f:
            return _check_arrays(read_npz(f, path), path)
    if head.startswith(b"\x80"):
        return load_book_params(path)
    raise WeightFileError(f"{os.fspath(path)}: not a weight file (expected .npz or the book's .pkl)")


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickler that resolves only numpy.ndarray, numpy.dtype and numpy's array _reconstruct."""

    def find_class(self, module: str, name: str):
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise WeightFileError(
                f"refusing to load {module}.{name}: weight pickles may contain only NumPy arrays"
            ) from None


def load_book_params(path: PathLike) -> dict[str, np.ndarray]:
    """Read one of the book's pickled weight files (a dict of NumPy arrays) safely.

    Any reference to another class or function -- e.g. ``os.system`` in a
    malicious file -- raises :class:`WeightFileError` before it can run.
    """
    with open(path, "rb") as f:
        data = f.read()  # from memory: a length in the pickle cannot make read() allocate more than this
    with io.BytesIO(data) as f:
        try:
            d = _NumpyOnlyUnpickler(f).load()
        except WeightFileError as exc:
            raise WeightFileError(f"{os.fspath(path)}: {exc}") from None
        except Exception as exc:  # truncated or garbled pickles raise many types
            raise WeightFileError(f"{os.fspath(path)}: corrupt pickle ({type(exc).__name__}: {exc})") from exc
    return _check_arrays(d, path)
