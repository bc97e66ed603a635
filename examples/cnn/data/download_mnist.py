#!/usr/bin/env python3
"""Download MNIST, verify its MD5 checksums and unpack it into the data directory.

Usage: python examples/cnn/data/download_mnist.py [--data-dir DIR] [--url URL ...]
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from data import mnist  # noqa: E402
from data.common import download_cli  # noqa: E402

if __name__ == "__main__":
    sys.exit(
        download_cli(
            mnist.SOURCE, mnist.download, mnist.MIRRORS,
            "base URL of a mirror holding the four MNIST .gz files",
        )
    )
