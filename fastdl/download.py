"""Download MNIST / Fashion-MNIST from their official locations, verifying known checksums.

Each file is accepted when either the MD5 of the downloaded ``.gz`` equals the official
one, or the MD5 of its decompressed content equals the known content checksum (mirrors
and distributions sometimes recompress the same data). Files are written atomically;
nothing unverified is ever left in the destination.
"""
from __future__ import annotations

import gzip
import hashlib
import os
import sys
import urllib.error
import urllib.request
import zlib
from pathlib import Path
from typing import Callable, Sequence, Union

from .io import atomic_write_bytes
from .datasets import read_idx

PathLike = Union[str, "os.PathLike[str]"]

# name -> (official base URLs, tried in order; {file: (gz md5, decompressed md5 or None)})
SOURCES: dict[str, tuple[tuple[str, ...], dict[str, tuple[str, str | None]]]] = {
    "mnist": (
        ("https://ossci-datasets.s3.amazonaws.com/mnist/",
         "http://yann.lecun.com/exdb/mnist/"),
        {
            "train-images-idx3-ubyte.gz": ("f68b3c2dcbeaaa9fbdd348bbdeb94873", None),
            "train-labels-idx1-ubyte.gz": ("d53e105ee54ea40749a09fcbcd1e9432", None),
            "t10k-images-idx3-ubyte.gz": ("9fb629c4189551a2d022fa330f9573f3",
                                          "2646ac647ad5339dbf082846283269ea"),
            "t10k-labels-idx1-ubyte.gz": ("ec29112dd5afa0611ce80d1b7f02629c",
                                          "27ae3e4e09519cfbb04c329615203637"),
        },
    ),
    "fashion-mnist": (
        ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
         "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/"),
        {
            "train-images-idx3-ubyte.gz": ("8d4fb7e6c68d591d4c3dfef9ec88bf0d",
                                           "f4a8712d7a061bf5bd6d2ca38dc4d50a"),
            "train-labels-idx1-ubyte.gz": ("25c81989df183df01b3e8a0aad5dffbe",
                                           "9018921c3c673c538a1fc5bad174d6f9"),
            "t10k-images-idx3-ubyte.gz": ("bef4ecab320f06d8554ea6380940ec79",
                                          "8181f5470baa50b63fa0f6fddb340f0a"),
            "t10k-labels-idx1-ubyte.gz": ("bb300cfdad3c16e7a12a480ee83cd310",
                                          "15d484375f8d13e6eb1aabb0c3f46965"),
        },
    ),
}


class DownloadError(RuntimeError):
    """No location delivered a file with a known checksum."""


def default_dir(name: str) -> Path:
    """``~/.cache/fastdl/<name>``: where downloads go and where the loaders look."""
    return Path.home() / ".cache" / "fastdl" / name


def verify(data: bytes, checksums: tuple[str, str | None]) -> bool:
    """True when ``data`` (a .gz file's bytes) matches the gz MD5 or, decompressed, the
    content MD5."""
    gz_md5, raw_md5 = checksums
    if hashlib.md5(data, usedforsecurity=False).hexdigest() == gz_md5:
        return True
    if raw_md5 is None:
        return False
    try:
        raw = gzip.decompress(data)
    except (EOFError, OSError, zlib.error):
        return False
    return hashlib.md5(raw, usedforsecurity=False).hexdigest() == raw_md5


def _fetch(url: str, timeout: float, report: Callable[[str], None]) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - fixed https/http URLs
        total = int(resp.headers.get("Content-Length") or 0)
        chunks, got = [], 0
        while True:
            chunk = resp.read(1 << 20)
            if not chunk:
                break
            chunks.append(chunk)
            got += len(chunk)
            if total:
                report(f"\r  {url}: {got / 2**20:.1f}/{total / 2**20:.1f} MiB")
        report("\n")
        return b"".join(chunks)


def download(name: str, dest: PathLike | None = None, base_urls: Sequence[str] | None = None,
             timeout: float = 60.0, quiet: bool = False) -> Path:
    """Download dataset ``name`` ('mnist' or 'fashion-mnist') into ``dest``
    (default ``~/.cache/fastdl/<name>``) and return that directory.

    Files already present and verified are kept. Each file is tried at every base URL in
    turn (``base_urls`` overrides the official ones); a file whose checksum does not match
    is discarded. Raises ValueError for an unknown name and :class:`DownloadError` when a
    file could not be obtained, listing every attempt.
    """
    if name not in SOURCES:
        raise ValueError(f"unknown dataset {name!r}; expected one of {tuple(SOURCES)}")
    official, files = SOURCES[name]
    urls = tuple(base_urls) if base_urls is not None else official
    out = Path(dest).expanduser() if dest is not None else default_dir(name)
    out.mkdir(parents=True, exist_ok=True)

    def report(msg: str) -> None:
        if not quiet:
            sys.stderr.write(msg)
            sys.stderr.flush()

    for fname, sums in files.items():
        target = out / fname
        if target.is_file() and verify(target.read_bytes(), sums):
            report(f"{target}: present, checksum ok\n")
            continue
        errors = []
        for base in urls:
            url = base.rstrip("/") + "/" + fname
            try:
                data = _fetch(url, timeout, report)
            except (urllib.error.URLError, OSError, ValueError) as exc:
                errors.append(f"{url}: {exc}")
                continue
            if not verify(data, sums):
                errors.append(f"{url}: checksum mismatch (got md5 "
                              f"{hashlib.md5(data, usedforsecurity=False).hexdigest()}, "
                              f"expected {sums[0]})")
                continue
            atomic_write_bytes(target, data)
            read_idx(target)
            report(f"{target}: downloaded, checksum ok\n")
            break
        else:
            raise DownloadError(f"could not download {fname} for {name}:\n  "
                                + "\n  ".join(errors))
    return out
