"""Xception trained imperatively on random data for a few iterations: the network of
model/xceptionnet.py called as a plain layer (no compile, no graph), then
`autograd.softmax_cross_entropy` and `sgd(loss)`; prints the throughput.

    python xceptionnet.py [--niters 20] [-b 16] [--image-size 299] [--num-classes 1000]
        [--device auto|cpu|cuda] [--seed S]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
CNN_DIR = os.path.dirname(HERE)
if CNN_DIR not in sys.path:
    sys.path.insert(0, CNN_DIR)  # examples/cnn: `model` and train_cnn helpers
_REPO = os.path.dirname(os.path.dirname(CNN_DIR))
if os.path.isdir(os.path.join(_REPO, "minisinga")) and _REPO not in sys.path:
    sys.path.append(_REPO)

from model.xceptionnet import Xception  # noqa: E402
from train_cnn import UsageError, get_device  # noqa: E402

from minisinga import autograd, opt, tensor  # noqa: E402


def train(niters: int = 20, batch_size: int = 16, image_size: int = 299,
          num_classes: int = 1000, device: str = "auto", seed: int = 0) -> float:
    """Runs `niters` training steps; returns the last loss."""
    if niters < 1 or batch_size < 1:
        raise UsageError(f"--niters ({niters}) and --batch-size ({batch_size}) must be positive")
    try:
        model = Xception(num_classes=num_classes, num_channels=3, input_size=image_size)
    except ValueError as e:
        raise UsageError(str(e)) from None
    print("Start initialization............", flush=True)
    dev = get_device(device, 0)
    dev.SetRandSeed(seed)
    rng = np.random.default_rng(seed)
    sgd = opt.SGD(lr=0.1, momentum=0.9, weight_decay=1e-5)

    tx = tensor.Tensor((batch_size, 3, image_size, image_size), dev, requires_grad=False)
    ty = tensor.Tensor((batch_size,), dev, dtype=tensor.int32, requires_grad=False)
    tx.copy_from_numpy(rng.standard_normal((batch_size, 3, image_size, image_size),
                                           dtype=np.float32))
    ty.copy_from_numpy(rng.integers(0, num_classes, batch_size, dtype=np.int32))

    autograd.training = True
    steps = range(niters)
    if sys.stderr.isatty():
        from tqdm import trange
        steps = trange(niters)
    start = time.time()
    loss_value = float("nan")
    for _ in steps:
        out = model.forward(tx)  # the Model used as a plain layer
        loss = autograd.softmax_cross_entropy(out, ty)
        sgd(loss)
        loss_value = float(tensor.to_numpy(loss).reshape(-1)[0])
    elapsed = time.time() - start
    autograd.training = False
    if not np.isfinite(loss_value):
        raise RuntimeError(f"xceptionnet: the training loss is {loss_value}")
    print("Loss = %f, Throughput = %f per second" % (loss_value, niters * batch_size / elapsed),
          flush=True)
    return loss_value


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Xception, imperative training on random data")
    parser.add_argument("--niters", "--max-steps", default=20, type=int, dest="niters",
                        help="training iterations")
    parser.add_argument("-b", "--batch-size", default=16, type=int, dest="batch_size")
    parser.add_argument("--image-size", default=299, type=int)
    parser.add_argument("--num-classes", default=1000, type=int)
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument("--seed", default=0, type=int)
    args = parser.parse_args(argv)
    try:
        train(args.niters, args.batch_size, args.image_size, args.num_classes, args.device,
              args.seed)
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
