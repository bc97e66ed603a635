"""CIFAR-100 from the python pickles of ``cifar-100-python.tar.gz`` (fine labels)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .cifar10 import normalize, read_batch
from .common import DataSource, download_archive, resolve_data_dir

SOURCE = DataSource(title="CIFAR-100", name="cifar100", script="download_cifar100.py")
FOLDER = "cifar-100-python"
TRAIN_FILE = "train"
TEST_FILE = "test"
ARCHIVE = "cifar-100-python.tar.gz"
URLS = ("https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",)
MD5 = "eb9058c3a382ffc7106e4002c42a8d85"
NUM_CLASSES = 100
LABEL_KEY = "fine_labels"


def load(
    data_dir: str | os.PathLike[str] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Return ``(train_x, train_y, val_x, val_y)``: normalised float32 x (N, 3, 32, 32), int32
    fine labels y.

    Reads ``cifar-100-python/train`` and ``test`` under the data directory, normalised like
    CIFAR-10; raises ``DatasetError`` naming the file, the directory and the download command
    when one is missing or corrupt.
    """
    root = resolve_data_dir(SOURCE.name, data_dir)
    folder = root / FOLDER
    train_data, train_y = read_batch(folder / TRAIN_FILE, LABEL_KEY, NUM_CLASSES, SOURCE, root)
    val_data, val_y = read_batch(folder / TEST_FILE, LABEL_KEY, NUM_CLASSES, SOURCE, root)
    return normalize(train_data), train_y, normalize(val_data), val_y


def download(
    data_dir: str | os.PathLike[str] | None = None,
    urls: Sequence[str] = URLS,
    md5: str = MD5,
) -> Path:
    """Download ``cifar-100-python.tar.gz`` from the first working URL of ``urls``, check its
    MD5 and extract it into the data directory, which is returned."""
    root = resolve_data_dir(SOURCE.name, data_dir)
    expected = [f"{FOLDER}/{name}" for name in (TRAIN_FILE, TEST_FILE)]
    return download_archive(root, ARCHIVE, urls, md5, expected)
