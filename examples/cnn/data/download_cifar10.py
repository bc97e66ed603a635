#!/usr/bin/env python3
"""Download CIFAR-10, verify its MD5 checksums and unpack it into the data directory.

Usage: python examples/cnn/data/download_cifar10.py [--data-dir DIR] [--url URL ...]
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from data import cifar10  # noqa: E402
from data.common import download_cli  # noqa: E402

if __name__ == "__main__":
    sys.exit(
        download_cli(
            cifar10.SOURCE, cifar10.download, cifar10.URLS,
            "URL of cifar-10-python.tar.gz",
        )
    )
