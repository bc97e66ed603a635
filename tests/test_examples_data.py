"""Tests for examples/cnn/data: loaders, synthetic writers and download helpers (numpy only)."""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.server
import importlib
import io
import os
import pickle
import shlex
import socket
import struct
import subprocess
import sys
import tarfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
CNN_DIR = REPO / "examples" / "cnn"
SCRIPTS = CNN_DIR / "data"
FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2023, 0.1994, 0.2010)


@pytest.fixture(scope="module")
def data() -> Iterator[SimpleNamespace]:
    """The ``data`` package of examples/cnn, imported with examples/cnn on sys.path."""
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(CNN_DIR))
        modules = {
            name: importlib.import_module(f"data.{name}")
            for name in ("common", "mnist", "cifar10", "cifar100", "synthetic")
        }
    assert Path(modules["common"].__file__).parent == SCRIPTS
    yield SimpleNamespace(**modules)


@pytest.fixture(autouse=True)
def no_data_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MINISINGA_DATA", raising=False)


def md5_of(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def write_gz(path: Path, payload: bytes) -> None:
    path.write_bytes(gzip.compress(payload))


def idx_bytes(magic: int, dims: tuple[int, ...], payload: bytes) -> bytes:
    return struct.pack(f">I{len(dims)}I", magic, *dims) + payload


def dump_pickle(path: Path, obj: object) -> None:
    path.write_bytes(pickle.dumps(obj, protocol=2))


def load_pickle(path: Path) -> dict:
    return pickle.loads(path.read_bytes(), encoding="latin1")


def make_tar_gz(archive: Path, source_dir: Path, names: list[str]) -> Path:
    with tarfile.open(archive, "w:gz") as tar:
        for name in names:
            tar.add(source_dir / name, arcname=name)
    return archive


def nearest_mean_accuracy(
    train_x: np.ndarray, train_y: np.ndarray, val_x: np.ndarray, val_y: np.ndarray
) -> float:
    flat_train = train_x.reshape(len(train_x), -1)
    means = np.stack([flat_train[train_y == c].mean(axis=0) for c in range(train_y.max() + 1)])
    dist = ((val_x.reshape(len(val_x), -1)[:, None, :] - means[None]) ** 2).sum(axis=2)
    return float((dist.argmin(axis=1) == val_y).mean())


def assert_names_file_and_command(
    message: str, file_name: str, script: str, data_dir: Path
) -> None:
    assert f"'{file_name}'" in message
    assert f"{script} --data-dir {shlex.quote(str(data_dir))}" in message
    assert "python " in message


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.startswith("."))


# --------------------------------------------------------------------------- data directory


def test_data_dir_argument_then_env_then_cache(data, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    default = tmp_path / "home" / ".cache" / "minisinga" / "data" / "cifar10"
    assert data.common.resolve_data_dir("cifar10") == default
    monkeypatch.setenv("MINISINGA_DATA", str(tmp_path / "env"))
    assert data.common.resolve_data_dir("cifar10") == tmp_path / "env"
    assert data.common.resolve_data_dir("cifar10", tmp_path / "arg") == tmp_path / "arg"


def test_loaders_use_env_var_and_default_cache(data, tmp_path, monkeypatch):
    data.synthetic.write_mnist(tmp_path / "env", 20, 10, seed=1)
    monkeypatch.setenv("MINISINGA_DATA", str(tmp_path / "env"))
    assert len(data.mnist.load()[0]) == 20
    monkeypatch.delenv("MINISINGA_DATA")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    cache = tmp_path / "home" / ".cache" / "minisinga" / "data"
    data.synthetic.write_cifar10(cache / "cifar10", 4, 6, seed=1)
    assert len(data.cifar10.load()[0]) == 20
    with pytest.raises(data.common.DatasetError) as err:
        data.cifar100.load()
    assert str(cache / "cifar100" / "cifar-100-python") in str(err.value)


# --------------------------------------------------------------------------- round trips


def test_mnist_round_trip(data, tmp_path):
    data.synthetic.write_mnist(tmp_path, n_train=120, n_test=40, seed=3)
    train_x, train_y, val_x, val_y = data.mnist.load(tmp_path)
    assert train_x.shape == (120, 1, 28, 28) and val_x.shape == (40, 1, 28, 28)
    assert train_x.dtype == val_x.dtype == np.float32
    assert train_y.dtype == val_y.dtype == np.int32
    assert 0.0 <= train_x.min() and train_x.max() <= 1.0
    assert np.bincount(train_y).tolist() == [12] * 10
    assert np.bincount(val_y).tolist() == [4] * 10
    raw = gzip.decompress((tmp_path / "train-images-idx3-ubyte.gz").read_bytes())
    pixels = np.frombuffer(raw, np.uint8, offset=16).reshape(120, 1, 28, 28)
    np.testing.assert_allclose(train_x, pixels / 255.0, rtol=1e-6)
    labels = gzip.decompress((tmp_path / "t10k-labels-idx1-ubyte.gz").read_bytes())
    assert val_y.tolist() == list(labels[8:])


def test_mnist_synthetic_headers(data, tmp_path):
    data.synthetic.write_mnist(tmp_path, n_train=30, n_test=10, seed=0)
    for name, magic, dims in (
        ("train-images-idx3-ubyte.gz", 2051, (30, 28, 28)),
        ("train-labels-idx1-ubyte.gz", 2049, (30,)),
        ("t10k-images-idx3-ubyte.gz", 2051, (10, 28, 28)),
        ("t10k-labels-idx1-ubyte.gz", 2049, (10,)),
    ):
        raw = gzip.decompress((tmp_path / name).read_bytes())
        header = struct.unpack(f">I{len(dims)}I", raw[: 4 + 4 * len(dims)])
        assert header == (magic, *dims)
        assert len(raw) == 4 + 4 * len(dims) + int(np.prod(dims))


def test_synthetic_writers_are_seeded(data, tmp_path):
    for seed, name in ((5, "a"), (5, "b"), (6, "c")):
        data.synthetic.write_mnist(tmp_path / name, 20, 10, seed=seed)
    a, b, c = (data.mnist.load(tmp_path / name) for name in "abc")
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not np.array_equal(a[0], c[0])


def expected_cifar(rows: np.ndarray) -> np.ndarray:
    """Reference normalisation in float64, channel by channel."""
    x = rows.reshape(-1, 3, 32, 32).astype(np.float64) / 255.0
    out = np.empty_like(x)
    for channel in range(3):
        out[:, channel] = (x[:, channel] - MEAN[channel]) / STD[channel]
    return out


def test_cifar10_round_trip_and_normalisation(data, tmp_path):
    data.synthetic.write_cifar10(tmp_path, n_train_per_batch=30, n_test=20, seed=2)
    folder = tmp_path / "cifar-10-batches-py"
    train_x, train_y, val_x, val_y = data.cifar10.load(tmp_path)
    assert train_x.shape == (150, 3, 32, 32) and val_x.shape == (20, 3, 32, 32)
    assert train_x.dtype == val_x.dtype == np.float32
    assert train_y.dtype == val_y.dtype == np.int32
    assert np.bincount(train_y).tolist() == [15] * 10
    assert np.bincount(val_y).tolist() == [2] * 10
    batches = [load_pickle(folder / f"data_batch_{i}") for i in range(1, 6)]
    raw_train = np.concatenate([batch["data"] for batch in batches])
    assert train_y.tolist() == sum((batch["labels"] for batch in batches), [])
    np.testing.assert_allclose(train_x, expected_cifar(raw_train), atol=1e-5)
    test_batch = load_pickle(folder / "test_batch")
    np.testing.assert_allclose(val_x, expected_cifar(test_batch["data"]), atol=1e-5)
    assert val_y.tolist() == test_batch["labels"]
    # channel 2 is normalised like the others: undoing the transform restores x / 255
    blue = raw_train.reshape(-1, 3, 32, 32)[:, 2] / 255.0
    np.testing.assert_allclose(train_x[:, 2] * STD[2] + MEAN[2], blue, atol=1e-5)
    assert not np.allclose(train_x[:, 2], blue, atol=1e-2)


def test_cifar10_synthetic_format(data, tmp_path):
    data.synthetic.write_cifar10(tmp_path, n_train_per_batch=10, n_test=7, seed=0)
    folder = tmp_path / "cifar-10-batches-py"
    for i in range(1, 6):
        batch = load_pickle(folder / f"data_batch_{i}")
        assert batch["data"].dtype == np.uint8 and batch["data"].shape == (10, 3072)
        assert isinstance(batch["labels"], list) and len(batch["labels"]) == 10
        assert batch["batch_label"] == f"training batch {i} of 5"
    test_batch = load_pickle(folder / "test_batch")
    assert test_batch["data"].shape == (7, 3072) and len(test_batch["labels"]) == 7
    meta = load_pickle(folder / "batches.meta")
    assert len(meta["label_names"]) == 10 and meta["num_vis"] == 3072


def test_cifar100_round_trip_and_normalisation(data, tmp_path):
    data.synthetic.write_cifar100(tmp_path, n_train=300, n_test=200, seed=4)
    folder = tmp_path / "cifar-100-python"
    train_x, train_y, val_x, val_y = data.cifar100.load(tmp_path)
    assert train_x.shape == (300, 3, 32, 32) and val_x.shape == (200, 3, 32, 32)
    assert train_x.dtype == val_x.dtype == np.float32
    assert train_y.dtype == val_y.dtype == np.int32
    assert np.bincount(train_y, minlength=100).tolist() == [3] * 100
    assert np.bincount(val_y, minlength=100).tolist() == [2] * 100
    train = load_pickle(folder / "train")
    assert train_y.tolist() == train["fine_labels"]
    assert train["coarse_labels"] == [label // 5 for label in train["fine_labels"]]
    np.testing.assert_allclose(train_x, expected_cifar(train["data"]), atol=1e-5)
    test = load_pickle(folder / "test")
    np.testing.assert_allclose(val_x, expected_cifar(test["data"]), atol=1e-5)
    meta = load_pickle(folder / "meta")
    assert len(meta["fine_label_names"]) == 100 and len(meta["coarse_label_names"]) == 20


@pytest.mark.parametrize(
    "writer, module, sizes",
    [
        ("write_mnist", "mnist", (200, 100)),
        ("write_cifar10", "cifar10", (40, 100)),
        ("write_cifar100", "cifar100", (500, 200)),
    ],
)
def test_synthetic_data_is_learnable(data, tmp_path, writer, module, sizes):
    getattr(data.synthetic, writer)(tmp_path, *sizes, seed=7)
    accuracy = nearest_mean_accuracy(*getattr(data, module).load(tmp_path))
    assert accuracy > 0.9


def test_real_fashion_mnist(data):
    train_x, train_y, val_x, val_y = data.mnist.load(FASHION_MNIST)
    assert train_x.shape == (60000, 1, 28, 28) and val_x.shape == (10000, 1, 28, 28)
    assert train_x.dtype == val_x.dtype == np.float32
    assert train_y.dtype == val_y.dtype == np.int32
    assert train_x.min() == 0.0 and train_x.max() == 1.0
    assert np.bincount(train_y).tolist() == [6000] * 10
    assert np.bincount(val_y).tolist() == [1000] * 10


# --------------------------------------------------------------------------- corrupt MNIST

IMAGES, LABELS = "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"
N_MNIST = 20
MNIST_PIXELS = bytes(N_MNIST * 784)


def _labels_payload(n: int) -> bytes:
    return bytes(i % 10 for i in range(n))


MNIST_CORRUPTIONS: dict[str, tuple[str, Callable[[Path], None], str]] = {
    "missing images": (IMAGES, lambda p: p.unlink(), "is missing"),
    "missing test labels": (
        "t10k-labels-idx1-ubyte.gz", lambda p: p.unlink(), "is missing"
    ),
    "wrong image magic": (
        IMAGES,
        lambda p: write_gz(p, idx_bytes(2049, (N_MNIST, 28, 28), MNIST_PIXELS)),
        "magic number 2049, expected 2051",
    ),
    "wrong label magic": (
        LABELS,
        lambda p: write_gz(p, idx_bytes(2051, (N_MNIST,), _labels_payload(N_MNIST))),
        "magic number 2051, expected 2049",
    ),
    "truncated payload": (
        IMAGES,
        lambda p: write_gz(p, idx_bytes(2051, (N_MNIST, 28, 28), MNIST_PIXELS[:-1])),
        f"payload has {N_MNIST * 784 - 1} bytes",
    ),
    "trailing bytes": (
        IMAGES,
        lambda p: write_gz(p, idx_bytes(2051, (N_MNIST, 28, 28), MNIST_PIXELS + b"x")),
        f"payload has {N_MNIST * 784 + 1} bytes",
    ),
    "short header": (IMAGES, lambda p: write_gz(p, b"\0\0\x08"), "too short for an IDX header"),
    "truncated gzip": (
        IMAGES,
        lambda p: p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2]),
        "not a readable gzip file",
    ),
    "not gzip": (LABELS, lambda p: p.write_bytes(b"plain bytes"), "not a readable gzip file"),
    "count mismatch": (
        LABELS,
        lambda p: write_gz(p, idx_bytes(2049, (N_MNIST - 1,), _labels_payload(N_MNIST - 1))),
        f"has {N_MNIST - 1} labels but {IMAGES} has {N_MNIST} images",
    ),
    "wrong image size": (
        IMAGES,
        lambda p: write_gz(p, idx_bytes(2051, (N_MNIST, 27, 27), bytes(N_MNIST * 27 * 27))),
        "27x27 images, expected 28x28",
    ),
    "label out of range": (
        LABELS,
        lambda p: write_gz(p, idx_bytes(2049, (N_MNIST,), bytes([10] * N_MNIST))),
        "label 10 is not below 10",
    ),
}


@pytest.mark.parametrize("case", list(MNIST_CORRUPTIONS))
def test_mnist_corruption_is_reported(data, tmp_path, case):
    file_name, corrupt, problem = MNIST_CORRUPTIONS[case]
    data.synthetic.write_mnist(tmp_path, N_MNIST, 10, seed=0)
    corrupt(tmp_path / file_name)
    with pytest.raises(data.common.DatasetError) as err:
        data.mnist.load(tmp_path)
    message = str(err.value)
    assert problem in message
    assert_names_file_and_command(message, file_name, "download_mnist.py", tmp_path)
    assert f"Looked for it in {tmp_path} " in message
    assert "dataset-fashion-mnist" in message and str(FASHION_MNIST) in message


def test_error_command_is_exact_and_runs(data, tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    target = tmp_path / "dir with space"
    with pytest.raises(data.common.DatasetError) as err:
        data.mnist.load(target)
    expected = f"python examples/cnn/data/download_mnist.py --data-dir {shlex.quote(str(target))}"
    lines = [line.strip() for line in str(err.value).splitlines()]
    command = next(line for line in lines if line.startswith("python "))
    assert command == expected
    argv = shlex.split(command)
    result = subprocess.run(
        [sys.executable, *argv[1:], "--url", (tmp_path / "no-mirror").as_uri()],
        cwd=REPO, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 1
    assert "could not download train-images-idx3-ubyte.gz" in result.stderr
    assert "Traceback" not in result.stderr


# --------------------------------------------------------------------------- corrupt CIFAR

CIFAR_SETUPS = {
    "cifar10": ("write_cifar10", (8, 6), "cifar-10-batches-py", "data_batch_3", "labels", 10),
    "cifar100": ("write_cifar100", (30, 20), "cifar-100-python", "train", "fine_labels", 100),
}


def _edit_batch(edit: Callable[[dict], object]) -> Callable[[Path], None]:
    def apply(path: Path) -> None:
        batch = load_pickle(path)
        dump_pickle(path, edit(batch))

    return apply


def _set(key: str, value: Callable[[dict], object]) -> Callable[[dict], dict]:
    return lambda batch: {**batch, key: value(batch)}


CIFAR_CORRUPTIONS: dict[str, tuple[Callable[[Path, str], None], str]] = {
    "missing file": (lambda p, key: p.unlink(), "is missing"),
    "garbage bytes": (lambda p, key: p.write_bytes(b"\x80\x02garbage"), "cannot be unpickled"),
    "truncated pickle": (
        lambda p, key: p.write_bytes(p.read_bytes()[:1000]),
        "cannot be unpickled",
    ),
    "empty file": (lambda p, key: p.write_bytes(b""), "cannot be unpickled"),
    "not a dict": (lambda p, key: dump_pickle(p, [1, 2, 3]), "no 'data' and"),
    "missing labels": (
        lambda p, key: _edit_batch(lambda b: {k: v for k, v in b.items() if k != key})(p),
        "no 'data' and",
    ),
    "float data": (
        lambda p, key: _edit_batch(_set("data", lambda b: b["data"].astype(np.float32)))(p),
        "expected uint8 (N, 3072)",
    ),
    "wrong row size": (
        lambda p, key: _edit_batch(_set("data", lambda b: b["data"][:, :-1]))(p),
        "expected uint8 (N, 3072)",
    ),
    "label count mismatch": (
        lambda p, key: _edit_batch(_set(key, lambda b: b[key][:-1]))(p),
        "labels for",
    ),
    "label out of range": (
        lambda p, key: _edit_batch(_set(key, lambda b: [1000] * len(b[key])))(p),
        "are not integers in [0,",
    ),
    "negative label": (
        lambda p, key: _edit_batch(_set(key, lambda b: [-1] * len(b[key])))(p),
        "are not integers in [0,",
    ),
    "string labels": (
        lambda p, key: _edit_batch(_set(key, lambda b: ["cat"] * len(b[key])))(p),
        "are not integers in [0,",
    ),
}


@pytest.mark.parametrize("dataset", list(CIFAR_SETUPS))
@pytest.mark.parametrize("case", list(CIFAR_CORRUPTIONS))
def test_cifar_corruption_is_reported(data, tmp_path, dataset, case):
    writer, sizes, folder, file_name, label_key, _ = CIFAR_SETUPS[dataset]
    corrupt, problem = CIFAR_CORRUPTIONS[case]
    getattr(data.synthetic, writer)(tmp_path, *sizes, seed=0)
    corrupt(tmp_path / folder / file_name, label_key)
    with pytest.raises(data.common.DatasetError) as err:
        getattr(data, dataset).load(tmp_path)
    message = str(err.value)
    assert problem in message
    assert_names_file_and_command(message, file_name, f"download_{dataset}.py", tmp_path)
    assert f"Looked for it in {tmp_path / folder} " in message


@pytest.mark.parametrize("dataset", list(CIFAR_SETUPS))
def test_cifar_missing_folder_names_first_file(data, tmp_path, dataset):
    folder = CIFAR_SETUPS[dataset][2]
    with pytest.raises(data.common.DatasetError) as err:
        getattr(data, dataset).load(tmp_path)
    first = "data_batch_1" if dataset == "cifar10" else "train"
    assert "is missing" in str(err.value)
    assert_names_file_and_command(str(err.value), first, f"download_{dataset}.py", tmp_path)
    assert str(tmp_path / folder) in str(err.value)


# --------------------------------------------------------------------------- download helpers


def test_verify_checksum(data, tmp_path):
    path = tmp_path / "file.bin"
    path.write_bytes(b"minisinga")
    md5, sha256 = hashlib.md5(b"minisinga").hexdigest(), hashlib.sha256(b"minisinga").hexdigest()
    data.common.verify_checksum(path, md5=md5, sha256=sha256)
    data.common.verify_checksum(path, md5=md5.upper())
    with pytest.raises(data.common.DatasetError, match="MD5 checksum mismatch"):
        data.common.verify_checksum(path, md5="0" * 32)
    with pytest.raises(data.common.DatasetError, match="SHA256 checksum mismatch"):
        data.common.verify_checksum(path, md5=md5, sha256="0" * 64)


def test_fetch_file_url_verifies_and_writes_atomically(data, tmp_path):
    source = tmp_path / "src" / "payload.bin"
    source.parent.mkdir()
    source.write_bytes(os.urandom(3 << 20))
    dest_dir = tmp_path / "dest"
    dest = dest_dir / "payload.bin"
    with pytest.raises(data.common.DatasetError, match="checksum mismatch"):
        data.common.fetch([source.as_uri()], dest, md5="0" * 32)
    assert not dest.exists() and leftovers(dest_dir) == []
    got = data.common.fetch([source.as_uri()], dest, md5=md5_of(source))
    assert got == dest and dest.read_bytes() == source.read_bytes()
    assert leftovers(dest_dir) == []


def test_fetch_falls_back_to_next_url_and_reports_all(data, tmp_path):
    source = tmp_path / "payload.bin"
    source.write_bytes(b"abc" * 1000)
    missing = tmp_path / "missing.bin"
    dest = tmp_path / "dest" / "payload.bin"
    data.common.fetch([missing.as_uri(), source.as_uri()], dest, md5=md5_of(source))
    assert dest.read_bytes() == source.read_bytes()
    with pytest.raises(data.common.DatasetError) as err:
        data.common.fetch([missing.as_uri(), "nosuchscheme://x"], tmp_path / "other.bin")
    assert missing.as_uri() in str(err.value) and "nosuchscheme://x" in str(err.value)
    assert "copy it to" in str(err.value)


def test_fetch_keeps_verified_file_and_never_clobbers_on_failure(data, tmp_path):
    dest = tmp_path / "payload.bin"
    dest.write_bytes(b"good")
    unreachable = (tmp_path / "nowhere").as_uri()
    assert data.common.fetch([unreachable], dest, md5=md5_of(dest)) == dest
    with pytest.raises(data.common.DatasetError, match="could not download"):
        data.common.fetch([unreachable], dest, md5="0" * 32)
    assert dest.read_bytes() == b"good" and leftovers(tmp_path) == []


class _TTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_fetch_shows_progress_on_a_terminal(data, tmp_path, monkeypatch):
    source = tmp_path / "payload.bin"
    source.write_bytes(bytes(5 << 20))
    terminal = _TTY()
    monkeypatch.setattr(sys, "stderr", terminal)
    data.common.fetch([source.as_uri()], tmp_path / "copy.bin", md5=md5_of(source))
    assert "100%" in terminal.getvalue()


@pytest.fixture
def http_root(tmp_path) -> Iterator[tuple[Path, str]]:
    """A local HTTP server serving a fresh directory; yields (directory, base URL)."""

    class QuietHandler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_fetch_over_http(data, tmp_path, http_root):
    root, base = http_root
    (root / "payload.bin").write_bytes(os.urandom(100_000))
    dest = tmp_path / "dest" / "payload.bin"
    data.common.fetch([f"{base}/payload.bin"], dest, md5=md5_of(root / "payload.bin"))
    assert dest.read_bytes() == (root / "payload.bin").read_bytes()
    with pytest.raises(data.common.DatasetError, match="HTTP Error 404"):
        data.common.fetch([f"{base}/absent.bin"], tmp_path / "absent.bin")


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_fetch_connection_refused(data, tmp_path):
    url = f"http://127.0.0.1:{closed_port()}/file.bin"
    with pytest.raises(data.common.DatasetError, match="could not download file.bin"):
        data.common.fetch([url], tmp_path / "file.bin")
    assert leftovers(tmp_path) == []


def test_extract_tar_gz_replaces_previous_extraction(data, tmp_path):
    src = tmp_path / "src"
    (src / "pkg" / "sub").mkdir(parents=True)
    (src / "pkg" / "a.txt").write_text("A")
    (src / "pkg" / "sub" / "b.txt").write_text("B")
    archive = make_tar_gz(tmp_path / "pkg.tar.gz", src, ["pkg"])
    dest = tmp_path / "dest"
    (dest / "pkg").mkdir(parents=True)
    (dest / "pkg" / "stale.txt").write_text("old")
    assert data.common.extract_tar_gz(archive, dest) == [dest / "pkg"]
    assert (dest / "pkg" / "a.txt").read_text() == "A"
    assert (dest / "pkg" / "sub" / "b.txt").read_text() == "B"
    assert not (dest / "pkg" / "stale.txt").exists()
    assert leftovers(dest) == []


def _tar_with(archive: Path, member: tarfile.TarInfo, payload: bytes = b"") -> Path:
    with tarfile.open(archive, "w:gz") as tar:
        safe = tarfile.TarInfo("ok.txt")
        safe.size = 2
        tar.addfile(safe, io.BytesIO(b"ok"))
        member.size = len(payload) if member.isfile() else 0
        tar.addfile(member, io.BytesIO(payload) if member.isfile() else None)
    return archive


def _member(name: str, kind: bytes = tarfile.REGTYPE, target: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info


@pytest.mark.parametrize(
    "member, problem",
    [
        (_member("../evil.txt"), "unsafe path"),
        (_member("pkg/../../evil.txt"), "unsafe path"),
        (_member("/tmp/evil.txt"), "unsafe path"),
        (_member("link", tarfile.SYMTYPE, "/etc/passwd"), "only regular files"),
        (_member("hard", tarfile.LNKTYPE, "ok.txt"), "only regular files"),
        (_member("fifo", tarfile.FIFOTYPE), "only regular files"),
    ],
    ids=["dotdot", "nested-dotdot", "absolute", "symlink", "hardlink", "fifo"],
)
def test_extract_tar_gz_refuses_unsafe_members(data, tmp_path, member, problem):
    archive = _tar_with(tmp_path / "bad.tar.gz", member, b"evil")
    dest = tmp_path / "a" / "dest"
    with pytest.raises(data.common.DatasetError, match=problem):
        data.common.extract_tar_gz(archive, dest)
    assert list(dest.iterdir()) == []
    assert not (tmp_path / "a" / "evil.txt").exists() and not (tmp_path / "evil.txt").exists()


def test_extract_tar_gz_corrupt_archive(data, tmp_path):
    archive = tmp_path / "broken.tar.gz"
    archive.write_bytes(b"not a tar archive")
    with pytest.raises(data.common.DatasetError, match="broken.tar.gz"):
        data.common.extract_tar_gz(archive, tmp_path / "dest")
    assert leftovers(tmp_path / "dest") == []


@pytest.mark.parametrize(
    "dataset, writer, sizes, folder",
    [
        ("cifar10", "write_cifar10", (6, 5), "cifar-10-batches-py"),
        ("cifar100", "write_cifar100", (20, 10), "cifar-100-python"),
    ],
)
def test_cifar_download_end_to_end(data, tmp_path, dataset, writer, sizes, folder):
    module = getattr(data, dataset)
    getattr(data.synthetic, writer)(tmp_path / "src", *sizes, seed=9)
    archive = make_tar_gz(tmp_path / module.ARCHIVE, tmp_path / "src", [folder])
    dest = tmp_path / "dest"
    assert module.download(dest, urls=[archive.as_uri()], md5=md5_of(archive)) == dest
    assert (dest / module.ARCHIVE).read_bytes() == archive.read_bytes()
    for got, want in zip(module.load(dest), module.load(tmp_path / "src")):
        np.testing.assert_array_equal(got, want)
    # a second run reuses the verified archive without any reachable URL
    module.download(dest, urls=[(tmp_path / "nowhere").as_uri()], md5=md5_of(archive))
    assert leftovers(dest) == []


def test_cifar_download_checks_archive_contents(data, tmp_path):
    data.synthetic.write_cifar10(tmp_path / "src", 4, 4, seed=0)
    (tmp_path / "src" / "cifar-10-batches-py" / "test_batch").unlink()
    archive = make_tar_gz(tmp_path / "c.tar.gz", tmp_path / "src", ["cifar-10-batches-py"])
    with pytest.raises(data.common.DatasetError, match="did not contain.*test_batch"):
        data.cifar10.download(tmp_path / "dest", urls=[archive.as_uri()], md5=md5_of(archive))


def test_mnist_download_from_mirror_directory(data, tmp_path, http_root):
    root, base = http_root
    data.synthetic.write_mnist(root, 30, 10, seed=2)
    checksums = {name: md5_of(root / name) for name in data.mnist.MD5}
    dest = tmp_path / "dest"
    broken_mirror = (tmp_path / "no-mirror").as_uri()
    assert data.mnist.download(dest, mirrors=[broken_mirror, base], checksums=checksums) == dest
    for got, want in zip(data.mnist.load(dest), data.mnist.load(root)):
        np.testing.assert_array_equal(got, want)
    with pytest.raises(data.common.DatasetError, match="MD5 checksum mismatch"):
        data.mnist.download(tmp_path / "official", mirrors=[base])


def run_script(name: str, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "MINISINGA_DATA"}
    return subprocess.run(
        [sys.executable, str(SCRIPTS / name), *args],
        capture_output=True, text=True, timeout=120, env=env, cwd=REPO,
    )


@pytest.mark.parametrize("script", ["download_mnist.py", "download_cifar10.py",
                                    "download_cifar100.py"])
def test_download_script_unreachable_url_exits_nonzero(tmp_path, script):
    for url in ((tmp_path / "nowhere").as_uri(), f"http://127.0.0.1:{closed_port()}/x"):
        result = run_script(script, "--data-dir", str(tmp_path / "d"), "--url", url)
        assert result.returncode == 1, result.stderr
        assert "error: could not download" in result.stderr and url in result.stderr
        assert "Traceback" not in result.stderr
        assert leftovers(tmp_path / "d") == []


def test_download_script_rejects_wrong_archive(data, tmp_path):
    data.synthetic.write_cifar10(tmp_path / "src", 4, 4, seed=0)
    archive = make_tar_gz(tmp_path / "c.tar.gz", tmp_path / "src", ["cifar-10-batches-py"])
    result = run_script("download_cifar10.py", "--data-dir", str(tmp_path / "d"),
                        "--url", archive.as_uri())
    assert result.returncode == 1
    assert f"MD5 checksum mismatch (expected {data.cifar10.MD5}" in result.stderr
    assert "Traceback" not in result.stderr
    assert list((tmp_path / "d").iterdir()) == []


def test_download_script_help(tmp_path):
    result = run_script("download_cifar100.py", "--help")
    assert result.returncode == 0
    assert "--data-dir" in result.stdout and "cifar-100-python.tar.gz" in result.stdout
