"""ResNet on CIFAR-10 trained imperatively: the network of model/resnet.py called as a plain
layer (no compile, no graph), `autograd.softmax_cross_entropy`, then
`sgd.backward_and_update(loss)` (or `backward_and_partial_update` with DistOpt).
`train_cifar10(DIST=True, ...)` is what cifar10_multiprocess.py runs.

    python resnet_cifar10.py [--data-dir DIR] [-m EPOCHS] [-b BATCH] [-l LR] [--depth 50]
        [--image-size 224] [--device auto|cpu|cuda] [--max-steps N] [--seed S]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Optional

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
CNN_DIR = os.path.dirname(HERE)
if CNN_DIR not in sys.path:
    sys.path.insert(0, CNN_DIR)  # examples/cnn: `data`, `model` and train_cnn helpers
_REPO = os.path.dirname(os.path.dirname(CNN_DIR))
if os.path.isdir(os.path.join(_REPO, "minisinga")) and _REPO not in sys.path:
    sys.path.append(_REPO)

from data import cifar10  # noqa: E402
from data.common import DatasetError  # noqa: E402
from model import resnet  # noqa: E402
from train_cnn import (  # noqa: E402
    UsageError,
    accuracy,
    augmentation,
    check_settings,
    get_device,
    reduce_variable,
    resize_bilinear,
)

from minisinga import autograd, opt, tensor  # noqa: E402


def synchronize(t, dist_opt) -> None:
    """Makes a parameter identical on all ranks: the all-reduced mean."""
    dist_opt.all_reduce(t.data)
    dist_opt.wait()
    t /= dist_opt.world_size


def data_partition(dataset_x, dataset_y, global_rank: int, world_size: int):
    per = dataset_x.shape[0] // world_size
    return (dataset_x[global_rank * per:(global_rank + 1) * per],
            dataset_y[global_rank * per:(global_rank + 1) * per])


def train_cifar10(DIST: bool = False, local_rank: Optional[int] = None,
                  world_size: Optional[int] = None, nccl_id=None, partial_update: bool = False,
                  max_epoch: int = 5, batch_size: int = 32, lr: float = 0.005, depth: int = 50,
                  image_size: int = 224, device: str = "auto", data_dir: Optional[str] = None,
                  max_steps: Optional[int] = None, seed: int = 0) -> float:
    """Trains ResNet-`depth` on CIFAR-10 resized to `image_size`; returns the last
    evaluation accuracy."""
    check_settings(batch_size=batch_size, max_epoch=max_epoch, max_steps=max_steps, seed=seed,
                   lr=lr)
    sgd = opt.SGD(lr=lr, momentum=0.9, weight_decay=1e-5)
    train_x, train_y, test_x, test_y = cifar10.load(data_dir)  # normalised per channel
    num_classes = 10

    if DIST:
        if not hasattr(opt, "DistOpt"):
            raise UsageError("DIST=True needs opt.DistOpt, which this minisinga does not have")
        sgd = opt.DistOpt(sgd, nccl_id=nccl_id, local_rank=local_rank, world_size=world_size)
        dev = get_device(device, sgd.local_rank)
        train_x, train_y = data_partition(train_x, train_y, sgd.global_rank, sgd.world_size)
        test_x, test_y = data_partition(test_x, test_y, sgd.global_rank, sgd.world_size)
        world_size, global_rank = sgd.world_size, sgd.global_rank
    else:
        dev = get_device(device, 0)
        world_size, global_rank = 1, 0
    dev.SetRandSeed(seed)
    np.random.seed(seed)

    try:
        model = resnet.create_model(depth, num_classes=num_classes, num_channels=3,
                                    input_size=image_size)
    except ValueError as e:
        raise UsageError(str(e)) from None

    tx = tensor.Tensor((batch_size, 3, image_size, image_size), dev, requires_grad=False)
    ty = tensor.Tensor((batch_size,), dev, dtype=tensor.int32, requires_grad=False)
    num_train_batch = train_x.shape[0] // batch_size
    num_test_batch = test_x.shape[0] // batch_size
    if num_train_batch == 0 or num_test_batch == 0:
        raise UsageError(f"batch size {batch_size} is larger than the data "
                         f"({train_x.shape[0]} training, {test_x.shape[0]} test images)")
    if max_steps is not None:
        num_train_batch = min(num_train_batch, max_steps)
        num_test_batch = min(num_test_batch, max_steps)
    idx = np.arange(train_x.shape[0], dtype=np.int32)

    # Create the parameters: the layers size themselves on the first call.
    tx.copy_from_numpy(resize_bilinear(train_x[:batch_size], image_size))
    autograd.training = False
    model.forward(tx)
    params = list(model.get_params().values())
    if DIST:  # same initial parameters on every rank
        for p in params:
            synchronize(p, sgd)

    test_acc = 0.0
    for epoch in range(max_epoch):
        start_time = time.time()
        np.random.shuffle(idx)
        if global_rank == 0:
            print("Starting Epoch %d:" % epoch, flush=True)

        autograd.training = True
        train_correct = np.zeros(shape=[1], dtype=np.float32)
        test_correct = np.zeros(shape=[1], dtype=np.float32)
        train_loss = np.zeros(shape=[1], dtype=np.float32)
        for b in range(num_train_batch):
            sel = idx[b * batch_size:(b + 1) * batch_size]
            x = resize_bilinear(augmentation(train_x[sel], batch_size), image_size)
            y = train_y[sel]
            tx.copy_from_numpy(x)
            ty.copy_from_numpy(y)
            out = model.forward(tx)
            loss = autograd.softmax_cross_entropy(out, ty)
            train_correct += accuracy(tensor.to_numpy(out), y)
            train_loss += float(tensor.to_numpy(loss).reshape(-1)[0])
            if partial_update:
                sgd.backward_and_partial_update(loss)
            else:
                sgd.backward_and_update(loss)

        if DIST:
            reducer = tensor.Tensor((1,), dev, dtype=tensor.float32, requires_grad=False)
            train_correct = reduce_variable(train_correct, sgd, reducer)
            train_loss = reduce_variable(train_loss, sgd, reducer)
        if global_rank == 0:
            print("Training loss = %f, training accuracy = %f" %
                  (train_loss[0], train_correct[0] / (num_train_batch * batch_size * world_size)),
                  flush=True)

        if DIST and partial_update:  # the ranks' parameters drift apart: average them
            for p in params:
                synchronize(p, sgd)

        autograd.training = False
        for b in range(num_test_batch):
            x = resize_bilinear(test_x[b * batch_size:(b + 1) * batch_size], image_size)
            y = test_y[b * batch_size:(b + 1) * batch_size]
            tx.copy_from_numpy(x)
            out_test = model.forward(tx)
            test_correct += accuracy(tensor.to_numpy(out_test), y)
        if DIST:
            test_correct = reduce_variable(test_correct, sgd, reducer)
        test_acc = float(test_correct[0]) / (num_test_batch * batch_size * world_size)
        if global_rank == 0:
            print("Evaluation accuracy = %f, Elapsed Time = %fs" %
                  (test_acc, time.time() - start_time), flush=True)
    return test_acc


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="ResNet on CIFAR-10, imperative training")
    parser.add_argument("-m", "--max-epoch", default=5, type=int, dest="max_epoch")
    parser.add_argument("-b", "--batch-size", default=32, type=int, dest="batch_size")
    parser.add_argument("-l", "--learning-rate", default=0.005, type=float, dest="lr")
    parser.add_argument("--depth", default=50, type=int, choices=[18, 34, 50, 101, 152])
    parser.add_argument("--image-size", default=224, type=int,
                        help="side the 32x32 images are resized to (224)")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--max-steps", default=None, type=int,
                        help="at most this many training (and evaluation) batches per epoch")
    parser.add_argument("--seed", default=0, type=int)
    args = parser.parse_args(argv)
    try:
        train_cifar10(max_epoch=args.max_epoch, batch_size=args.batch_size, lr=args.lr,
                      depth=args.depth, image_size=args.image_size, device=args.device,
                      data_dir=args.data_dir, max_steps=args.max_steps, seed=args.seed)
    except DatasetError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
