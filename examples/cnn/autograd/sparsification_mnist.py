"""MNIST CNN trained data-parallel by N processes, sending only significant gradients:

    python sparsification_mnist.py N [--topK] [--spars 0.05] [--no-corr] [mnist options]

By default every gradient entry with |g| >= 0.05 is sent (sparseThreshold); with --topK the
fraction `spars` of largest entries (sparseTopK). Without --no-corr, what is not sent is kept
in a local residual and added to the next gradient (error feedback)."""

import sys

from mnist_cnn import train_mnist_cnn
from mnist_multiprocess import build_parser, launch, train_kwargs

if __name__ == "__main__":
    ap = build_parser(__doc__.splitlines()[0])
    ap.add_argument("--topK", action="store_true", help="send the spars fraction of largest")
    ap.add_argument("--spars", type=float, default=0.05,
                    help="threshold (default) or fraction (--topK)")
    ap.add_argument("--no-corr", dest="corr", action="store_false",
                    help="drop what is not sent instead of accumulating it")
    a = ap.parse_args()
    if not a.spars > 0:
        sys.exit(f"error: --spars must be positive, got {a.spars}")
    sys.exit(launch(train_mnist_cnn, a.world_size, (a.spars, a.topK, a.corr), train_kwargs(a)))
