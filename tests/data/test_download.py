"""Dataset download against a local file server on 127.0.0.1 (never the network)."""
from __future__ import annotations

import functools
import gzip
import hashlib
import http.server
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest

from fastdl import datasets, download
from fastdl.datasets import load_mnist, write_idx
from fastdl.download import DownloadError


class _Handler(http.server.SimpleHTTPRequestHandler):
    requests: list[str] = []

    def log_message(self, format, *args):  # noqa: A002 - silence the server
        pass

    def do_GET(self):  # noqa: N802
        _Handler.requests.append(self.path)
        super().do_GET()


@pytest.fixture
def server(tmp_path):
    """Serve ``tmp_path / 'www'``; yields (root dir, base URL)."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(_Handler, directory=str(root))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    _Handler.requests = []
    try:
        yield root, f"http://127.0.0.1:{httpd.server_address[1]}/"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def _fake_files(root: Path) -> dict[str, tuple[str, str | None]]:
    rng = np.random.default_rng(1)
    sums = {}
    for prefix, n in (("train", 9), ("t10k", 4)):
        write_idx(root / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28),
                                                                       dtype=np.uint8))
        write_idx(root / f"{prefix}-labels-idx1-ubyte.gz", rng.integers(0, 10, n, dtype=np.uint8))
    for f in root.iterdir():
        sums[f.name] = (hashlib.md5(f.read_bytes()).hexdigest(), None)
    return sums


@pytest.fixture
def fake_sources(monkeypatch, server):
    root, url = server
    sums = _fake_files(root)
    monkeypatch.setitem(download.SOURCES, "mnist", ((url,), sums))
    return root, url


def test_download_and_load(fake_sources, tmp_path):
    root, _ = fake_sources
    dest = download.download("mnist", dest=tmp_path / "cache", quiet=True)
    for f in root.iterdir():
        assert (dest / f.name).read_bytes() == f.read_bytes()
    (x, t), (xt, tt) = load_mnist(path=dest)
    assert x.shape == (9, 784) and xt.shape == (4, 784)
    assert len(_Handler.requests) == 4
    download.download("mnist", dest=dest, quiet=True)  # verified files are not fetched again
    assert len(_Handler.requests) == 4
    assert not list(dest.glob(".*"))


def test_default_destination_is_the_loader_cache(fake_sources, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("FASTDL_DATA", raising=False)
    out = download.download("mnist", quiet=True)
    assert out == tmp_path / "home/.cache/fastdl/mnist"
    assert load_mnist()[0][0].shape == (9, 784)


def test_checksum_mismatch_refused(fake_sources, tmp_path):
    root, _ = fake_sources
    write_idx(root / "t10k-labels-idx1-ubyte.gz", np.zeros(4, np.uint8))  # tampered
    dest = tmp_path / "cache"
    with pytest.raises(DownloadError, match="t10k-labels-idx1-ubyte.gz.*checksum mismatch"):
        download.download("mnist", dest=dest, quiet=True)
    assert not (dest / "t10k-labels-idx1-ubyte.gz").exists()
    assert all(p.name in download.SOURCES["mnist"][1] for p in dest.iterdir())  # no temp files


def test_corrupt_local_file_is_replaced(fake_sources, tmp_path):
    root, _ = fake_sources
    dest = tmp_path / "cache"
    dest.mkdir()
    (dest / "train-images-idx3-ubyte.gz").write_bytes(b"garbage")
    download.download("mnist", dest=dest, quiet=True)
    assert (dest / "train-images-idx3-ubyte.gz").read_bytes() == \
        (root / "train-images-idx3-ubyte.gz").read_bytes()


def test_falls_back_to_next_location(fake_sources, tmp_path):
    root, url = fake_sources
    (root / "mirror").mkdir()
    for f in list(root.glob("*.gz")):
        shutil.move(f, root / "mirror" / f.name)
    dest = download.download("mnist", dest=tmp_path / "c", base_urls=[url, url + "mirror/"],
                             quiet=True)
    assert len(list(dest.glob("*.gz"))) == 4
    assert sum("/mirror/" in r for r in _Handler.requests) == 4


def test_unreachable_server(tmp_path, monkeypatch):
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    with pytest.raises(DownloadError, match="could not download"):
        download.download("fashion-mnist", dest=tmp_path / "c",
                          base_urls=[f"http://127.0.0.1:{port}/"], timeout=5, quiet=True)


def test_unknown_name():
    with pytest.raises(ValueError):
        download.download("cifar10")


def test_real_fashion_mnist_files_verify(server, tmp_path):
    """Debian's recompressed Fashion-MNIST files pass via their content checksums."""
    if not (datasets.DEBIAN_FASHION_MNIST / "t10k-labels-idx1-ubyte.gz").is_file():
        pytest.skip("dataset-fashion-mnist is not installed")
    root, url = server
    for f in datasets.DEBIAN_FASHION_MNIST.glob("*-ubyte.gz"):
        shutil.copy(f, root / f.name)
    dest = download.download("fashion-mnist", dest=tmp_path / "fm", base_urls=[url], quiet=True)
    (x, t), (xt, tt) = datasets.load_fashion_mnist(path=dest)
    assert x.shape == (60000, 784) and xt.shape == (10000, 784)
    raw = gzip.decompress((dest / "t10k-labels-idx1-ubyte.gz").read_bytes())
    assert hashlib.md5(raw).hexdigest() == download.SOURCES["fashion-mnist"][1][
        "t10k-labels-idx1-ubyte.gz"][1]


def test_cli_data_download_and_status(fake_sources, tmp_path, monkeypatch, capsys):
    from fastdl.cli import main

    _, url = fake_sources
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("FASTDL_DATA", raising=False)
    monkeypatch.setattr(datasets, "DEBIAN_FASHION_MNIST", tmp_path / "no-debian")
    assert main(["data"]) == 0
    out = capsys.readouterr().out
    assert "mnist: not found" in out and "fastdl data --download mnist" in out
    assert "apt-get install dataset-fashion-mnist" in out
    assert main(["data", "--download", "mnist", "--url", url]) == 0
    out = capsys.readouterr().out
    cache = tmp_path / "home/.cache/fastdl/mnist"
    assert f"mnist: downloaded to {cache}" in out
    assert f"mnist: {cache} (9 train, 4 test images)" in out
    write_idx(Path(fake_sources[0]) / "train-labels-idx1-ubyte.gz", np.zeros(9, np.uint8))
    for f in cache.iterdir():
        f.unlink()
    assert main(["data", "--download", "mnist", "--url", url]) == 1
    assert "download failed" in capsys.readouterr().out
