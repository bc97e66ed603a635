#!/usr/bin/env python3
"""Download CIFAR-100, verify its MD5 checksums and unpack it into the data directory.

Usage: python examples/cnn/data/download_cifar100.py [--data-dir DIR] [--url URL ...]
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from data import cifar100  # noqa: E402
from data.common import download_cli  # noqa: E402

if __name__ == "__main__":
    sys.exit(
        download_cli(
            cifar100.SOURCE, cifar100.download, cifar100.URLS,
            "URL of cifar-100-python.tar.gz",
        )
    )
