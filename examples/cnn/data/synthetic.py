"""Small synthetic datasets written in the exact on-disk formats of MNIST and CIFAR, for tests.

Every class has a fixed blocky pattern (left-right symmetric, so random horizontal flips keep
it); an image is 0.6 x its class pattern plus 0.4 x uniform noise, scaled to uint8. Train and
test splits share the patterns, so even a tiny model can learn them. Labels are balanced: each
split holds every class ``n // num_classes`` or one more times, in random order.
"""

from __future__ import annotations

import gzip
import os
import pickle
import struct
from pathlib import Path

import numpy as np

CIFAR10_LABEL_NAMES = [
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
]
PICKLE_PROTOCOL = 2
IDX_UBYTE = 0x08


def _class_patterns(
    rng: np.random.Generator, num_classes: int, channels: int, size: int, block: int
) -> np.ndarray:
    """Return float patterns (K, C, size, size) in [0, 1] made of block x block squares."""
    cells = size // block
    half = rng.random((num_classes, channels, cells, (cells + 1) // 2))
    mirrored = half[..., ::-1][..., cells % 2 :]
    grid = np.concatenate([half, mirrored], axis=-1)
    return grid.repeat(block, axis=2).repeat(block, axis=3)


def _split(
    rng: np.random.Generator, patterns: np.ndarray, n: int
) -> tuple[np.ndarray, np.ndarray]:
    """Return ``n`` uint8 images (n, C, S, S) and their balanced int64 labels."""
    labels = rng.permutation(np.arange(n) % len(patterns))
    noise = rng.random((n, *patterns.shape[1:]))
    images = np.rint(255 * (0.6 * patterns[labels] + 0.4 * noise)).astype(np.uint8)
    return images, labels


def _write_idx_gz(path: Path, array: np.ndarray) -> None:
    """Write a uint8 array as a gzip IDX file (magic 0x0800 + ndim, big-endian dimensions)."""
    header = struct.pack(f">I{array.ndim}I", (IDX_UBYTE << 8) | array.ndim, *array.shape)
    path.write_bytes(gzip.compress(header + array.astype(np.uint8).tobytes(), mtime=0))


def _write_pickle(path: Path, obj: object) -> None:
    with open(path, "wb") as stream:
        pickle.dump(obj, stream, protocol=PICKLE_PROTOCOL)


def write_mnist(
    data_dir: str | os.PathLike[str], n_train: int = 600, n_test: int = 100, seed: int = 0
) -> Path:
    """Write the four MNIST gzip IDX files (28x28 images, 10 classes) into ``data_dir``."""
    root = Path(data_dir)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    patterns = _class_patterns(rng, 10, 1, 28, 7)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images, labels = _split(rng, patterns, n)
        _write_idx_gz(root / f"{prefix}-images-idx3-ubyte.gz", images[:, 0])
        _write_idx_gz(root / f"{prefix}-labels-idx1-ubyte.gz", labels)
    return root


def _cifar_record(
    images: np.ndarray, batch_label: str, label_keys: dict[str, np.ndarray]
) -> dict[str, object]:
    """Return a CIFAR batch dict: uint8 'data' (N, 3072), label lists, names, batch label."""
    record: dict[str, object] = {
        "batch_label": batch_label,
        "data": images.reshape(len(images), -1),
        "filenames": [f"synthetic_{i:05d}.png" for i in range(len(images))],
    }
    record.update({key: values.tolist() for key, values in label_keys.items()})
    return record


def write_cifar10(
    data_dir: str | os.PathLike[str], n_train_per_batch: int = 100, n_test: int = 100, seed: int = 0
) -> Path:
    """Write ``cifar-10-batches-py`` (data_batch_1..5, test_batch, batches.meta) into
    ``data_dir`` with 10 classes."""
    root = Path(data_dir)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    patterns = _class_patterns(rng, 10, 3, 32, 8)
    for i in range(1, 6):
        images, labels = _split(rng, patterns, n_train_per_batch)
        record = _cifar_record(images, f"training batch {i} of 5", {"labels": labels})
        _write_pickle(folder / f"data_batch_{i}", record)
    images, labels = _split(rng, patterns, n_test)
    _write_pickle(
        folder / "test_batch",
        _cifar_record(images, "testing batch 1 of 1", {"labels": labels}),
    )
    meta = {
        "num_cases_per_batch": n_train_per_batch,
        "label_names": CIFAR10_LABEL_NAMES,
        "num_vis": 3072,
    }
    _write_pickle(folder / "batches.meta", meta)
    return root


def write_cifar100(
    data_dir: str | os.PathLike[str], n_train: int = 1000, n_test: int = 200, seed: int = 0
) -> Path:
    """Write ``cifar-100-python`` (train, test, meta) into ``data_dir`` with 100 fine classes;
    the synthetic coarse label of fine class c is c // 5."""
    root = Path(data_dir)
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    patterns = _class_patterns(rng, 100, 3, 32, 8)
    for name, batch_label, n in (
        ("train", "training batch 1 of 1", n_train),
        ("test", "testing batch 1 of 1", n_test),
    ):
        images, labels = _split(rng, patterns, n)
        keys = {"fine_labels": labels, "coarse_labels": labels // 5}
        _write_pickle(folder / name, _cifar_record(images, batch_label, keys))
    meta = {
        "fine_label_names": [f"class_{i:02d}" for i in range(100)],
        "coarse_label_names": [f"superclass_{i:02d}" for i in range(20)],
    }
    _write_pickle(folder / "meta", meta)
    return root
