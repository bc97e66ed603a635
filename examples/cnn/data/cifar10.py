"""CIFAR-10 from the python pickles of ``cifar-10-python.tar.gz`` (``cifar-10-batches-py``)."""

from __future__ import annotations

import os
import pickle
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .common import DataSource, download_archive, resolve_data_dir

SOURCE = DataSource(title="CIFAR-10", name="cifar10", script="download_cifar10.py")
FOLDER = "cifar-10-batches-py"
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
ARCHIVE = "cifar-10-python.tar.gz"
URLS = ("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",)
MD5 = "c58f30108f718f92721af3b95e74349a"
NUM_CLASSES = 10
IMAGE_SHAPE = (3, 32, 32)
MEAN = np.array([0.4914, 0.4822, 0.4465], dtype=np.float32)
STD = np.array([0.2023, 0.1994, 0.2010], dtype=np.float32)


def read_batch(
    path: Path, label_key: str, num_classes: int, source: DataSource, data_dir: Path
) -> tuple[np.ndarray, np.ndarray]:
    """Read one CIFAR pickle: uint8 data (N, 3072) and int32 labels from ``label_key``.

    Errors are reported through ``source`` (the dataset) relative to ``data_dir``.
    """
    try:
        with open(path, "rb") as stream:
            batch = pickle.load(stream, encoding="latin1")
    except FileNotFoundError:
        raise source.error(path, data_dir, "is missing") from None
    except Exception as exc:  # unpickling damaged bytes can fail with almost any exception
        problem = f"cannot be unpickled ({type(exc).__name__}: {exc})"
        raise source.error(path, data_dir, problem) from None
    if not isinstance(batch, dict) or "data" not in batch or label_key not in batch:
        raise source.error(path, data_dir, f"is corrupt: no 'data' and '{label_key}' entries")
    data, labels = batch["data"], np.asarray(batch[label_key])
    pixels = int(np.prod(IMAGE_SHAPE))
    if not (
        isinstance(data, np.ndarray)
        and data.dtype == np.uint8
        and data.ndim == 2
        and data.shape[1] == pixels
    ):
        found = f"{type(data).__name__} {getattr(data, 'dtype', '')} {getattr(data, 'shape', '')}"
        raise source.error(
            path, data_dir, f"is corrupt: 'data' is {found.strip()}, expected uint8 (N, {pixels})"
        )
    if labels.ndim != 1 or len(labels) != len(data):
        raise source.error(path, data_dir, f"has {labels.size} labels for {len(data)} images")
    in_range = not len(labels) or (
        np.issubdtype(labels.dtype, np.integer)
        and labels.min() >= 0
        and labels.max() < num_classes
    )
    if not in_range:
        raise source.error(
            path, data_dir, f"is corrupt: '{label_key}' are not integers in [0, {num_classes})"
        )
    return data, labels.astype(np.int32)


def normalize(data: np.ndarray) -> np.ndarray:
    """Turn uint8 rows (N, 3072) into float32 (N, 3, 32, 32): x / 255, then per-channel
    ``(x - MEAN[c]) / STD[c]`` for all three channels."""
    x = data.reshape(-1, *IMAGE_SHAPE).astype(np.float32)
    x /= 255
    x -= MEAN.reshape(1, 3, 1, 1)
    x /= STD.reshape(1, 3, 1, 1)
    return x


def load(
    data_dir: str | os.PathLike[str] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Return ``(train_x, train_y, val_x, val_y)``: normalised float32 x (N, 3, 32, 32), int32 y.

    Reads ``cifar-10-batches-py/data_batch_1..5`` and ``test_batch`` under the data directory;
    raises ``DatasetError`` naming the file, the directory and the download command when one
    is missing or corrupt.
    """
    root = resolve_data_dir(SOURCE.name, data_dir)
    train = [
        read_batch(root / FOLDER / name, "labels", NUM_CLASSES, SOURCE, root)
        for name in TRAIN_BATCHES
    ]
    val_data, val_y = read_batch(root / FOLDER / TEST_BATCH, "labels", NUM_CLASSES, SOURCE, root)
    train_x = normalize(np.concatenate([data for data, _ in train]))
    train_y = np.concatenate([labels for _, labels in train])
    return train_x, train_y, normalize(val_data), val_y


def download(
    data_dir: str | os.PathLike[str] | None = None,
    urls: Sequence[str] = URLS,
    md5: str = MD5,
) -> Path:
    """Download ``cifar-10-python.tar.gz`` from the first working URL of ``urls``, check its
    MD5 and extract it into the data directory, which is returned."""
    root = resolve_data_dir(SOURCE.name, data_dir)
    expected = [f"{FOLDER}/{name}" for name in (*TRAIN_BATCHES, TEST_BATCH)]
    return download_archive(root, ARCHIVE, urls, md5, expected)
