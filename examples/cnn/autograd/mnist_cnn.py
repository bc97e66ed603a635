"""The MNIST CNN trained imperatively: layers called directly (no Model, no graph), one-hot
labels, `autograd.backward` and an SGD update per gradient. `train_mnist_cnn(DIST=True, ...)`
wraps the optimizer in `opt.DistOpt` and is what mnist_multiprocess.py, mnist_dist.py and
sparsification_mnist.py run.

    python mnist_cnn.py [--data-dir DIR] [-m EPOCHS] [-b BATCH] [-l LR] [--device auto|cpu|cuda]
        [--max-steps N] [--seed S]
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
    sys.path.insert(0, CNN_DIR)  # examples/cnn: the `data` package and train_cnn helpers
_REPO = os.path.dirname(os.path.dirname(CNN_DIR))
if os.path.isdir(os.path.join(_REPO, "minisinga")) and _REPO not in sys.path:
    sys.path.append(_REPO)

from data import mnist  # noqa: E402
from data.common import DatasetError  # noqa: E402
from train_cnn import (  # noqa: E402
    UsageError,
    augmentation,
    check_settings,
    get_device,
    reduce_variable,
)

from minisinga import autograd, layer, opt, tensor  # noqa: E402


class CNN(layer.Layer):
    """Conv(1,20,5) -> ReLU -> MaxPool(2,2) -> Conv(20,50,5) -> ReLU -> MaxPool(2,2) ->
    Flatten -> Linear(800,500) -> ReLU -> Linear(500,10)."""

    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.conv1 = layer.Conv2d(1, 20, 5, padding=0)
        self.conv2 = layer.Conv2d(20, 50, 5, padding=0)
        self.linear1 = layer.Linear(4 * 4 * 50, 500)
        self.linear2 = layer.Linear(500, num_classes)
        self.pooling1 = layer.MaxPool2d(2, 2, padding=0)
        self.pooling2 = layer.MaxPool2d(2, 2, padding=0)

    def forward(self, x):
        y = self.pooling1(autograd.relu(self.conv1(x)))
        y = self.pooling2(autograd.relu(self.conv2(y)))
        y = autograd.flatten(y)
        y = autograd.relu(self.linear1(y))
        return self.linear2(y)


def to_categorical(y: np.ndarray, num_classes: int) -> np.ndarray:
    """One-hot float32 rows (N, num_classes) of int labels y (N,)."""
    out = np.zeros((y.shape[0], num_classes), dtype=np.float32)
    out[np.arange(y.shape[0]), y.astype(np.int64)] = 1
    return out


def accuracy(pred: np.ndarray, target: np.ndarray) -> int:
    """Rows where the argmax of the prediction and of the one-hot target agree."""
    return int((np.argmax(pred, axis=1) == np.argmax(target, axis=1)).sum())


def synchronize(t, dist_opt) -> None:
    """Makes a parameter identical on all ranks: the all-reduced mean."""
    dist_opt.all_reduce(t.data)
    dist_opt.wait()
    t /= dist_opt.world_size


def data_partition(dataset_x, dataset_y, global_rank: int, world_size: int):
    per = dataset_x.shape[0] // world_size
    return (dataset_x[global_rank * per:(global_rank + 1) * per],
            dataset_y[global_rank * per:(global_rank + 1) * per])


def train_mnist_cnn(DIST: bool = False, local_rank: Optional[int] = None,
                    world_size: Optional[int] = None, nccl_id=None, spars: float = 0,
                    topK: bool = False, corr: bool = True, max_epoch: int = 10,
                    batch_size: int = 64, lr: float = 0.005, device: str = "auto",
                    data_dir: Optional[str] = None, max_steps: Optional[int] = None,
                    seed: int = 0) -> float:
    """Trains the CNN on MNIST; returns the last evaluation accuracy.

    With DIST the SGD is wrapped in `opt.DistOpt(sgd, nccl_id, local_rank, world_size)`,
    every rank trains on its slice of the data, the initial parameters are averaged over
    the ranks, and the update is `backward_and_update` (spars == 0) or
    `backward_and_sparse_update(spars, topK, corr)`."""
    check_settings(batch_size=batch_size, max_epoch=max_epoch, max_steps=max_steps, seed=seed,
                   lr=lr)
    sgd = opt.SGD(lr=lr, momentum=0.9, weight_decay=1e-5)
    train_x, train_y, test_x, test_y = mnist.load(data_dir)
    num_classes = 10
    image_size = train_x.shape[2]
    train_y = to_categorical(train_y, num_classes)
    test_y = to_categorical(test_y, num_classes)

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

    model = CNN(num_classes)
    tx = tensor.Tensor((batch_size, 1, image_size, image_size), dev, requires_grad=False)
    ty = tensor.Tensor((batch_size, num_classes), dev, requires_grad=False)  # one-hot
    num_train_batch = train_x.shape[0] // batch_size
    num_test_batch = test_x.shape[0] // batch_size
    if num_train_batch == 0 or num_test_batch == 0:
        raise UsageError(f"batch size {batch_size} is larger than the data "
                         f"({train_x.shape[0]} training, {test_x.shape[0]} test images)")
    if max_steps is not None:
        num_train_batch = min(num_train_batch, max_steps)
        num_test_batch = min(num_test_batch, max_steps)
    idx = np.arange(train_x.shape[0], dtype=np.int32)

    # Create the parameters (layers size themselves on the first call).
    tx.copy_from_numpy(train_x[:batch_size])
    autograd.training = False
    model(tx)
    if DIST:  # same initial parameters on every rank
        for p in model.get_params().values():
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
            x = augmentation(train_x[sel], batch_size)
            y = train_y[sel]
            tx.copy_from_numpy(x)
            ty.copy_from_numpy(y)
            out = model(tx)
            loss = autograd.softmax_cross_entropy(out, ty)
            train_correct += accuracy(tensor.to_numpy(out), y)
            train_loss += float(tensor.to_numpy(loss).reshape(-1)[0])
            if DIST and spars:
                sgd.backward_and_sparse_update(loss, spars=spars, topK=topK, corr=corr)
            elif DIST:
                sgd.backward_and_update(loss, threshold=50000)
            else:
                for p, g in autograd.backward(loss):
                    sgd.update(p, g)
                sgd.step()

        if DIST:
            reducer = tensor.Tensor((1,), dev, dtype=tensor.float32, requires_grad=False)
            train_correct = reduce_variable(train_correct, sgd, reducer)
            train_loss = reduce_variable(train_loss, sgd, reducer)
        if global_rank == 0:
            print("Training loss = %f, training accuracy = %f" %
                  (train_loss[0], train_correct[0] / (num_train_batch * batch_size * world_size)),
                  flush=True)

        autograd.training = False
        for b in range(num_test_batch):
            x = test_x[b * batch_size:(b + 1) * batch_size]
            y = test_y[b * batch_size:(b + 1) * batch_size]
            tx.copy_from_numpy(x)
            out_test = model(tx)
            test_correct += accuracy(tensor.to_numpy(out_test), y)
        if DIST:
            test_correct = reduce_variable(test_correct, sgd, reducer)
        test_acc = float(test_correct[0]) / (num_test_batch * batch_size * world_size)
        if global_rank == 0:
            print("Evaluation accuracy = %f, Elapsed Time = %fs" %
                  (test_acc, time.time() - start_time), flush=True)
    return test_acc


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="MNIST CNN, imperative training")
    parser.add_argument("-m", "--max-epoch", default=10, type=int, dest="max_epoch")
    parser.add_argument("-b", "--batch-size", default=64, type=int, dest="batch_size")
    parser.add_argument("-l", "--learning-rate", default=0.005, type=float, dest="lr")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--max-steps", default=None, type=int,
                        help="at most this many training (and evaluation) batches per epoch")
    parser.add_argument("--seed", default=0, type=int)
    args = parser.parse_args(argv)
    try:
        train_mnist_cnn(max_epoch=args.max_epoch, batch_size=args.batch_size, lr=args.lr,
                        device=args.device, data_dir=args.data_dir, max_steps=args.max_steps,
                        seed=args.seed)
    except DatasetError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
