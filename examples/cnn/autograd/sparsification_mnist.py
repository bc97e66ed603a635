"""MNIST CNN trained data-parallel by N processes, sending only significant gradients:

    python sparsification_mnist.py N [--topK] [--spars 0.05] [--no-corr]

By default every gradient entry with |g| >= 0.05 is sent (sparseThreshold); with --topK the
fraction `spars` of largest entries (sparseTopK). Without --no-corr, what is not sent is kept
in a local residual and added to the next gradient (error feedback)."""

import argparse
import sys

from mnist_multiprocess import launch

if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("world_size", type=int, help="number of processes")
    ap.add_argument("--topK", action="store_true", help="send the spars fraction of largest")
    ap.add_argument("--spars", type=float, default=0.05,
                    help="threshold (default) or fraction (--topK)")
    ap.add_argument("--no-corr", dest="corr", action="store_false",
                    help="drop what is not sent instead of accumulating it")
    a = ap.parse_args()
    if a.world_size < 1:
        sys.exit(f"error: the number of processes must be >= 1, got {a.world_size}")
    sys.exit(launch(a.world_size, a.spars, a.topK, a.corr))
