"""Datasets: the IDX file format, MNIST / Fashion-MNIST loaders, and the synthetic spiral.

``load_mnist`` and ``load_fashion_mnist`` follow the book's ``dataset/mnist.py``::

    (x_train, t_train), (x_test, t_test) = load_mnist(normalize=True, flatten=True,
                                                      one_hot_label=False)

Files are looked up, in order, in ``path``, ``$FASTDL_DATA/<name>``,
``~/.cache/fastdl/<name>`` and (Fashion-MNIST only) Debian's
``/usr/share/datasets/fashion-mnist``; the first directory holding every needed file
wins. Each file may be gzip-compressed or raw; the content decides, not the name.
"""
from __future__ import annotations

import gzip
import os
import struct
import zlib
from pathlib import Path
from typing import Union

import numpy as np

PathLike = Union[str, "os.PathLike[str]"]

# IDX type byte -> big-endian dtype of the stored values.
_IDX_TYPES: dict[int, np.dtype] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_GZIP_MAGIC = b"\x1f\x8b"

DATASETS = ("mnist", "fashion-mnist")
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")

FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                         "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
MNIST_CLASSES = tuple(str(i) for i in range(10))

_HOW_TO_GET = {
    "mnist": ("run `fastdl data --download mnist` (downloads into ~/.cache/fastdl/mnist), "
              "or put the four IDX files there or in $FASTDL_DATA/mnist"),
    "fashion-mnist": ("install Debian's package: `apt-get install dataset-fashion-mnist`, "
                      "or run `fastdl data --download fashion-mnist`"),
}


# ----------------------------------------------------------------------------- IDX format

# Deflate's largest expansion (258 bytes from 2 bits): no gzip member inflates more than this.
_DEFLATE_MAX_RATIO = 1032
_CHUNK = 1 << 24


def _read_exactly(fh, n: int, path: Path, what: str) -> bytearray:
    """Up to ``n`` bytes of ``fh``, read in chunks (memory grows with what the file holds)."""
    buf = bytearray()
    try:
        while len(buf) < n:
            chunk = fh.read(min(_CHUNK, n - len(buf)))
            if not chunk:
                break
            buf += chunk
    except (EOFError, OSError, zlib.error) as exc:
        raise ValueError(f"{path}: corrupt or truncated gzip stream ({exc}) in the {what}") from None
    return buf


def read_idx(path: PathLike) -> np.ndarray:
    """Read an IDX file (LeCun's MNIST format), gzip-compressed or raw.

    Parameters
    ----------
    path : file path. Compression is detected from the gzip magic bytes, not the name.

    Returns
    -------
    ndarray with the file's dimensions and dtype in native byte order: uint8 for
    IDX1/IDX3 MNIST files (labels (N,), images (N, 28, 28)); int8, int16, int32,
    float32 or float64 for the other IDX type codes. The array is writable.

    Raises
    ------
    ValueError naming the file when the magic number, type code or dimensions are
    malformed, or when the data is shorter (truncated) or longer than the header says.

    The header is read first and the data streamed: only the bytes the header
    promises (and one more, to detect trailing data) are read, so a small gzip file
    that inflates to gigabytes is never decompressed whole, and dimensions whose
    product exceeds what any array -- or the file -- can hold are refused before
    anything is allocated.
    """
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as raw:
        gz = raw.read(2) == _GZIP_MAGIC
        raw.seek(0)
        fh = gzip.GzipFile(fileobj=raw, mode="rb") if gz else raw
        head = _read_exactly(fh, 4, path, "header")
        if len(head) < 4:
            raise ValueError(f"{path}: not an IDX file (only {len(head)} bytes, need a 4-byte magic)")
        zero, type_code, ndim = struct.unpack(">HBB", head)
        if zero != 0 or type_code not in _IDX_TYPES:
            raise ValueError(f"{path}: bad IDX magic number 0x{bytes(head).hex()} "
                             f"(expected 00 00 <type in 08,09,0B,0C,0D,0E> <ndim>)")
        if ndim == 0:
            raise ValueError(f"{path}: IDX header declares 0 dimensions")
        header = 4 + 4 * ndim
        dim_bytes = _read_exactly(fh, 4 * ndim, path, "header")
        if len(dim_bytes) < 4 * ndim:
            raise ValueError(f"{path}: truncated IDX header ({4 + len(dim_bytes)} bytes, need {header})")
        dims = struct.unpack(f">{ndim}I", dim_bytes)
        dtype = _IDX_TYPES[type_code]
        count = 1
        for d in dims:  # Python ints: the product cannot overflow
            count *= d
        expected = count * dtype.itemsize
        if expected > np.iinfo(np.intp).max:
            raise ValueError(f"{path}: IDX header declares dimensions {dims} = {count} values of "
                             f"{dtype.itemsize} bytes, more than any array can hold")
        # the most data the file can hold: its size (raw), deflate's largest ratio of it (gzip)
        room = (size * _DEFLATE_MAX_RATIO if gz else size) - (0 if gz else header)
        if expected > room:
            raise ValueError(f"{path}: truncated IDX file: header says {dims} x {dtype.itemsize} bytes "
                             f"= {expected} data bytes, more than the {size}-byte file can hold")
        data = _read_exactly(fh, expected + 1, path, "data")  # one more byte: trailing data?
    actual = len(data)
    if actual < expected:
        raise ValueError(f"{path}: truncated IDX file: header says {dims} x {dtype.itemsize} bytes "
                         f"= {expected} data bytes, found {actual}")
    if actual > expected:
        raise ValueError(f"{path}: malformed IDX file: trailing data after the {expected} data bytes "
                         f"of {dims}")
    arr = np.frombuffer(data, dtype=dtype)  # writable: the bytearray is ours
    if dtype.byteorder not in ("=", "|"):
        arr = arr.astype(dtype.newbyteorder("="))
    return arr.reshape(dims)


def write_idx(path: PathLike, array: np.ndarray) -> None:
    """Write ``array`` as an IDX file; gzip-compressed when the name ends in ``.gz``.

    Supported dtypes: uint8, int8, int16, int32, float32, float64 (stored big-endian).
    Raises TypeError for other dtypes and ValueError for a 0-d array or ndim > 255.
    """
    a = np.asarray(array)
    codes = {dt.newbyteorder("="): code for code, dt in _IDX_TYPES.items()}
    code = codes.get(a.dtype.newbyteorder("="))
    if code is None:
        raise TypeError(f"IDX cannot store dtype {a.dtype}")
    if not 1 <= a.ndim <= 255:
        raise ValueError(f"IDX needs 1 to 255 dimensions, got {a.ndim}")
    body = struct.pack(f">HBB{a.ndim}I", 0, code, a.ndim, *a.shape)
    body += np.ascontiguousarray(a, dtype=_IDX_TYPES[code]).tobytes()
    path = Path(path)
    if path.suffix == ".gz":
        body = gzip.compress(body, mtime=0)
    with open(path, "wb") as fh:
        fh.write(body)


# ----------------------------------------------------------------------------- lookup

_FILES = {  # key -> upstream file name without ".gz"
    "train-images": "train-images-idx3-ubyte",
    "train-labels": "train-labels-idx1-ubyte",
    "test-images": "t10k-images-idx3-ubyte",
    "test-labels": "t10k-labels-idx1-ubyte",
}


def _find_file(directory: Path, stem: str) -> Path | None:
    """``directory/stem`` as distributed upstream (.gz), unpacked, or unpacked with a dot
    (``t10k-images.idx3-ubyte``, as some archive tools name it)."""
    split, what, fmt = stem.split("-", 2)
    for name in (f"{stem}.gz", stem, f"{split}-{what}.{fmt}", f"{split}-{what}.{fmt}.gz"):
        p = directory / name
        if p.is_file():
            return p
    return None


def search_dirs(name: str, path: PathLike | None = None) -> list[Path]:
    """The directories searched for dataset ``name`` ('mnist' or 'fashion-mnist'), in order."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; expected one of {DATASETS}")
    dirs: list[Path] = []
    if path is not None:
        dirs.append(Path(path).expanduser())
    env = os.environ.get("FASTDL_DATA")
    if env:
        dirs.append(Path(env).expanduser() / name)
    dirs.append(Path.home() / ".cache" / "fastdl" / name)
    if name == "fashion-mnist":
        dirs.append(DEBIAN_FASHION_MNIST)
    return dirs


def find_dataset(name: str, path: PathLike | None = None,
                 splits: tuple[str, ...] = ("train", "test")) -> dict[str, Path]:
    """Locate the IDX files of ``name`` for ``splits``.

    Returns a dict ``{'train-images': Path, 'train-labels': Path, ...}`` from the first
    searched directory (see :func:`search_dirs`) holding all of them.
    Raises FileNotFoundError naming the files, every place searched, and how to get them.
    """
    for split in splits:
        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    keys = [f"{split}-{what}" for split in splits for what in ("images", "labels")]
    dirs = search_dirs(name, path)
    for d in dirs:
        found = {k: _find_file(d, _FILES[k]) for k in keys}
        if all(p is not None for p in found.values()):
            return found  # type: ignore[return-value]
    wanted = ", ".join(f"{_FILES[k]}.gz" for k in keys)
    looked = "\n".join(f"  {d}" for d in dirs)
    raise FileNotFoundError(
        f"{name}: could not find {wanted} (gzip or raw) in any of:\n{looked}\n"
        f"To get them: {_HOW_TO_GET[name]}.")


# ----------------------------------------------------------------------------- loaders

def _prepare(images: np.ndarray, labels: np.ndarray, source: str, normalize: bool,
             flatten: bool, one_hot_label: bool, n_classes: int | None = None):
    if images.ndim != 3:
        raise ValueError(f"{source}: images must be IDX3 (N, H, W), got shape {images.shape}")
    if labels.ndim != 1:
        raise ValueError(f"{source}: labels must be IDX1 (N,), got shape {labels.shape}")
    if images.shape[0] != labels.shape[0]:
        raise ValueError(f"{source}: {images.shape[0]} images but {labels.shape[0]} labels")
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"{source}: labels must be integers, got {labels.dtype}")
    if labels.size and labels.min() < 0:
        raise ValueError(f"{source}: negative label {labels.min()}")
    n = images.shape[0]
    x = images.reshape(n, -1) if flatten else images.reshape(n, 1, *images.shape[1:])
    if normalize:
        x = x.astype(np.float32) / np.float32(255.0)
    if one_hot_label:
        k = n_classes if n_classes is not None else (int(labels.max()) + 1 if labels.size else 0)
        if labels.size and labels.max() >= k:
            raise ValueError(f"{source}: label {labels.max()} >= {k} classes")
        t = np.zeros((n, k), dtype=np.float32)
        t[np.arange(n), labels] = 1.0
        return x, t
    return x, labels


def load_idx_split(directory: PathLike, split: str, normalize: bool = True,
                   flatten: bool = True, one_hot_label: bool = False,
                   n_classes: int | None = 10) -> tuple[np.ndarray, np.ndarray]:
    """Load one split ('train' or 'test') from a directory of MNIST-style IDX files.

    Returns ``(x, t)``: x is (N, H*W) when ``flatten`` else (N, 1, H, W); float32 in
    [0, 1] when ``normalize`` else the stored dtype (uint8). t is (N,) uint8 labels, or
    (N, n_classes) float32 one-hot when ``one_hot_label``.
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    d = Path(directory)
    img_stem, lab_stem = _FILES[f"{split}-images"], _FILES[f"{split}-labels"]
    img, lab = _find_file(d, img_stem), _find_file(d, lab_stem)
    if img is None or lab is None:
        missing = [s for s, p in ((img_stem, img), (lab_stem, lab)) if p is None]
        raise FileNotFoundError(f"{d}: missing {', '.join(missing)} (.gz or raw)")
    return _prepare(read_idx(img), read_idx(lab), str(d), normalize, flatten,
                    one_hot_label, n_classes)


def load_idx_dir(directory: PathLike, normalize: bool = True, flatten: bool = True,
                 one_hot_label: bool = False, n_classes: int | None = 10):
    """Load ``(x_train, t_train), (x_test, t_test)`` from a directory of IDX files
    named like MNIST's (``train-images-idx3-ubyte[.gz]``, ``t10k-labels-idx1-ubyte[.gz]``...).
    Semantics as :func:`load_mnist`."""
    return tuple(load_idx_split(directory, s, normalize, flatten, one_hot_label, n_classes)
                 for s in ("train", "test"))


def load_split(name: str, split: str, normalize: bool = True, flatten: bool = True,
               one_hot_label: bool = False, path: PathLike | None = None):
    """Load only one split ('train' or 'test') of 'mnist' or 'fashion-mnist',
    searching like :func:`load_mnist` but requiring only that split's files."""
    files = find_dataset(name, path, splits=(split,))
    return load_idx_split(files[f"{split}-images"].parent, split, normalize, flatten,
                          one_hot_label)


def _load(name: str, normalize: bool, flatten: bool, one_hot_label: bool,
          path: PathLike | None):
    files = find_dataset(name, path)
    return load_idx_dir(files["train-images"].parent, normalize, flatten, one_hot_label)


def load_mnist(normalize: bool = True, flatten: bool = True, one_hot_label: bool = False,
               path: PathLike | None = None):
    """Load MNIST as the book does: ``(x_train, t_train), (x_test, t_test)``.

    Parameters
    ----------
    normalize : pixels as float32 in [0, 1] (divided by 255); else uint8 0..255.
    flatten : images as (N, 784); else (N, 1, 28, 28).
    one_hot_label : labels as (N, 10) float32 one-hot; else (N,) uint8.
    path : directory searched first (see the module docstring for the search order).

    Raises FileNotFoundError (which files, where it looked, how to get them) and
    ValueError for malformed files.
    """
    return _load("mnist", normalize, flatten, one_hot_label, path)


def load_fashion_mnist(normalize: bool = True, flatten: bool = True,
                       one_hot_label: bool = False, path: PathLike | None = None):
    """Load Fashion-MNIST (Zalando; same format and shapes as MNIST) like :func:`load_mnist`.

    Besides ``path``, ``$FASTDL_DATA/fashion-mnist`` and ``~/.cache/fastdl/fashion-mnist``,
    Debian's ``/usr/share/datasets/fashion-mnist`` (``apt-get install
    dataset-fashion-mnist``) is searched. Class names: ``FASHION_MNIST_CLASSES``.
    """
    return _load("fashion-mnist", normalize, flatten, one_hot_label, path)


# ----------------------------------------------------------------------------- spiral

def spiral(n_per_class: int = 100, n_classes: int = 3, seed: int | None = 1984,
           noise: float = 0.2) -> tuple[np.ndarray, np.ndarray]:
    """The book series' synthetic spiral: ``n_classes`` interleaved arms in the plane.

    Point i of arm j has radius ``r = i / n_per_class`` and angle
    ``4 j + 4 r + noise * N(0, 1)``; coordinates ``(r sin, r cos)``. Shuffled.

    Returns ``x`` (n_per_class * n_classes, 2) float32 and ``t`` (same N,) int64.
    The same seed gives the same data (``seed=1984`` train, ``seed=2020`` test, as in DeZero).
    """
    if n_per_class < 1 or n_classes < 1:
        raise ValueError(f"n_per_class and n_classes must be >= 1, got {n_per_class}, {n_classes}")
    if noise < 0:
        raise ValueError(f"noise must be >= 0, got {noise}")
    rng = np.random.default_rng(seed)
    r = np.tile(np.arange(n_per_class) / n_per_class, n_classes)
    t = np.repeat(np.arange(n_classes, dtype=np.int64), n_per_class)
    theta = 4.0 * t + 4.0 * r + noise * rng.standard_normal(r.size)
    x = np.stack([r * np.sin(theta), r * np.cos(theta)], axis=1).astype(np.float32)
    order = rng.permutation(r.size)
    return x[order], t[order]


def load_spiral(n_per_class: int = 100, n_classes: int = 3):
    """Train/test spirals ``(x_train, t_train), (x_test, t_test)`` with seeds 1984 / 2020."""
    return spiral(n_per_class, n_classes, seed=1984), spiral(n_per_class, n_classes, seed=2020)
