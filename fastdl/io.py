"""Saving and loading weights: ``.npz`` without pickle, and a safe reader for the book's ``.pkl``.

A weight file is a flat dict ``{name: ndarray}`` (``W1``, ``b1``, ...).
:func:`save_params` writes ``.npz`` atomically: a crash mid-write leaves the
previous file intact.  :func:`load_params_file` recognises a file by its
content (zip = npz, pickle = the book's format), never by its name, and never
runs code from it: npz is read with ``allow_pickle=False``, and pickles go
through :func:`load_book_params`, which admits NumPy arrays and nothing else.
Every problem with a file raises :class:`WeightFileError` (a ``ValueError``).
"""
from __future__ import annotations

import io
import os
import pickle
import tempfile
import zipfile
from pathlib import Path
from typing import Mapping, Union

import numpy as np

__all__ = ["WeightFileError", "atomic_write_bytes", "save_params", "load_params_file", "load_book_params"]

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


def load_params_file(path: PathLike) -> dict[str, np.ndarray]:
    """Read a weight file written by :func:`save_params` (npz) or by the book (pkl)."""
    with open(path, "rb") as f:
        head = f.read(4)
    if head.startswith(b"PK"):
        try:
            with open(path, "rb") as f, np.load(f, allow_pickle=False) as z:
                return _check_arrays({k: z[k] for k in z.files}, path)
        except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
            if isinstance(exc, WeightFileError):
                raise
            raise WeightFileError(f"{os.fspath(path)}: corrupt or unreadable .npz file ({exc})") from exc
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
        try:
            d = _NumpyOnlyUnpickler(f).load()
        except WeightFileError as exc:
            raise WeightFileError(f"{os.fspath(path)}: {exc}") from None
        except Exception as exc:  # truncated or garbled pickles raise many types
            raise WeightFileError(f"{os.fspath(path)}: corrupt pickle ({type(exc).__name__}: {exc})") from exc
    return _check_arrays(d, path)
