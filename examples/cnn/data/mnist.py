"""MNIST (and Fashion-MNIST, which has the same file names and format) from gzip IDX files."""

from __future__ import annotations

import gzip
import os
import struct
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from .common import DataSource, fetch, resolve_data_dir

SOURCE = DataSource(
    title="MNIST",
    name="mnist",
    script="download_mnist.py",
    advice=(
        "Offline alternative: the Debian package dataset-fashion-mnist installs Fashion-MNIST, "
        "in the same format and with the same file names, under "
        "/usr/share/datasets/fashion-mnist; pass that directory as the data directory."
    ),
)
TRAIN_IMAGES = "train-images-idx3-ubyte.gz"
TRAIN_LABELS = "train-labels-idx1-ubyte.gz"
TEST_IMAGES = "t10k-images-idx3-ubyte.gz"
TEST_LABELS = "t10k-labels-idx1-ubyte.gz"
MD5 = {
    TRAIN_IMAGES: "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    TRAIN_LABELS: "d53e105ee54ea40749a09fcbcd1e9432",
    TEST_IMAGES: "9fb629c4189551a2d022fa330f9573f3",
    TEST_LABELS: "ec29112dd5afa0611ce80d1b7f02629c",
}
MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)
IMAGE_MAGIC = 2051
LABEL_MAGIC = 2049
IMAGE_SIZE = 28
NUM_CLASSES = 10


def _read_gzip(path: Path, data_dir: Path) -> bytes:
    try:
        with gzip.open(path, "rb") as stream:
            return stream.read()
    except FileNotFoundError:
        raise SOURCE.error(path, data_dir, "is missing") from None
    except (OSError, EOFError, zlib.error) as exc:
        raise SOURCE.error(path, data_dir, f"is not a readable gzip file ({exc})") from None


def _read_idx(path: Path, data_dir: Path, magic: int, dims: int) -> tuple[tuple[int, ...], bytes]:
    """Return the dimensions and payload of an IDX file after checking magic and size."""
    raw = _read_gzip(path, data_dir)
    header_size = 4 * (1 + dims)
    if len(raw) < header_size:
        raise SOURCE.error(
            path, data_dir, f"is corrupt: {len(raw)} bytes, too short for an IDX header"
        )
    found_magic, *shape = struct.unpack(f">{1 + dims}I", raw[:header_size])
    if found_magic != magic:
        raise SOURCE.error(
            path, data_dir, f"is corrupt: magic number {found_magic}, expected {magic}"
        )
    payload = raw[header_size:]
    expected = int(np.prod(shape))
    if len(payload) != expected:
        raise SOURCE.error(
            path,
            data_dir,
            f"is corrupt: its header gives dimensions {tuple(shape)} ({expected} bytes) but "
            f"the payload has {len(payload)} bytes",
        )
    return tuple(shape), payload


def _read_split(
    images_name: str, labels_name: str, data_dir: Path
) -> tuple[np.ndarray, np.ndarray]:
    images_path, labels_path = data_dir / images_name, data_dir / labels_name
    shape, pixels = _read_idx(images_path, data_dir, IMAGE_MAGIC, 3)
    if shape[1:] != (IMAGE_SIZE, IMAGE_SIZE):
        raise SOURCE.error(
            images_path,
            data_dir,
            f"has {shape[1]}x{shape[2]} images, expected {IMAGE_SIZE}x{IMAGE_SIZE}",
        )
    (count,), label_bytes = _read_idx(labels_path, data_dir, LABEL_MAGIC, 1)
    if count != shape[0]:
        raise SOURCE.error(
            labels_path, data_dir, f"has {count} labels but {images_name} has {shape[0]} images"
        )
    labels = np.frombuffer(label_bytes, dtype=np.uint8)
    if count and labels.max() >= NUM_CLASSES:
        raise SOURCE.error(
            labels_path, data_dir, f"is corrupt: label {labels.max()} is not below {NUM_CLASSES}"
        )
    x = np.frombuffer(pixels, dtype=np.uint8).astype(np.float32)
    x /= 255
    return x.reshape(count, 1, IMAGE_SIZE, IMAGE_SIZE), labels.astype(np.int32)


def load(
    data_dir: str | os.PathLike[str] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Return ``(train_x, train_y, val_x, val_y)``: x float32 (N, 1, 28, 28) in [0, 1], y int32.

    Raises ``DatasetError`` naming the file, the directory and the download command when a
    file is missing or corrupt (wrong magic number, size disagreeing with the header, image
    and label counts that differ).
    """
    root = resolve_data_dir(SOURCE.name, data_dir)
    train_x, train_y = _read_split(TRAIN_IMAGES, TRAIN_LABELS, root)
    val_x, val_y = _read_split(TEST_IMAGES, TEST_LABELS, root)
    return train_x, train_y, val_x, val_y


def download(
    data_dir: str | os.PathLike[str] | None = None,
    mirrors: Sequence[str] = MIRRORS,
    checksums: Mapping[str, str] = MD5,
) -> Path:
    """Download the four MNIST files into the data directory, verifying their MD5 checksums.

    Each file is tried from every base URL in ``mirrors`` in turn; ``checksums`` maps each
    file name to its MD5 (the official ones by default). Returns the directory.
    """
    root = resolve_data_dir(SOURCE.name, data_dir)
    for name, md5 in checksums.items():
        urls = [mirror.rstrip("/") + "/" + name for mirror in mirrors]
        fetch(urls, root / name, md5=md5)
    return root
