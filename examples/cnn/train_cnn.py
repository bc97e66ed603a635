"""Trains a CNN example model on MNIST, CIFAR-10 or CIFAR-100 in one process, eagerly or by
replaying a recorded graph (the default), on CPU or GPU.

    python train_cnn.py MODEL DATA [-p float32|float16] [-m EPOCHS] [-b BATCH] [-l LR]
        [-i DEVICE_ID] [-g] [-v VERBOSITY] [--device auto|cpu|cuda] [--data-dir DIR]
        [--max-steps N] [--seed S] [--image-size S]

`run()` is also the training loop of train_multiprocess.py and train_mpi.py.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from typing import Optional

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)  # the `data` and `model` packages next to this script
_REPO = os.path.dirname(os.path.dirname(HERE))
if os.path.isdir(os.path.join(_REPO, "minisinga")) and _REPO not in sys.path:
    sys.path.append(_REPO)  # a source checkout without an installed minisinga

from data.common import DatasetError  # noqa: E402

from minisinga import device, opt, tensor  # noqa: E402

MODELS = ("mlp", "cnn", "alexnet", "resnet", "xceptionnet")
DATASETS = ("mnist", "cifar10", "cifar100")
np_dtype = {"float16": np.float16, "float32": np.float32}
singa_dtype = {"float16": tensor.float16, "float32": tensor.float32}


class UsageError(ValueError):
    """A bad command-line setting (sizes, device): reported in one line, no traceback."""


def check_settings(*, batch_size: int, max_epoch: Optional[int] = None,
                   max_steps: Optional[int] = None, seed: Optional[int] = None,
                   lr: Optional[float] = None, **counts: int) -> None:
    """Raises UsageError naming the first bad one of the example scripts' common settings;
    `counts` are further sizes that must be positive (iters=..., num_classes=...)."""
    sizes = {"batch size": batch_size, **{k.replace("_", " "): v for k, v in counts.items()}}
    for name, v in sizes.items():
        if v < 1:
            raise UsageError(f"{name} must be positive, got {v}")
    if max_epoch is not None and max_epoch < 0:
        raise UsageError(f"max epoch must be >= 0, got {max_epoch}")
    if max_steps is not None and max_steps < 1:
        raise UsageError(f"--max-steps must be positive, got {max_steps}")
    if seed is not None and not 0 <= seed < 2 ** 32:  # numpy's and the devices' range
        raise UsageError(f"--seed must be in [0, 2**32), got {seed}")
    if lr is not None and not (math.isfinite(lr) and lr >= 0):
        raise UsageError(f"the learning rate must be a finite number >= 0, got {lr}")


# ---- data ----
def augmentation(x: np.ndarray, batch_size: Optional[int] = None, pad: int = 4) -> np.ndarray:
    """Pads each image symmetrically by `pad`, crops it back to its size at a random offset
    and flips it horizontally with probability 1/2 (numpy's global RNG). x: (N, C, H, W);
    returns a new array (the first `batch_size` images, all by default)."""
    if batch_size is not None:
        x = x[:batch_size]
    n, c, h, w = x.shape
    xpad = np.pad(x, [(0, 0), (0, 0), (pad, pad), (pad, pad)], mode="symmetric")
    off = np.random.randint(0, 2 * pad + 1, size=(n, 2))
    flip = np.random.randint(0, 2, size=n).astype(bool)
    rows = off[:, 0, None] + np.arange(h)                                   # (N, H)
    cols = np.where(flip[:, None], np.arange(w)[::-1], np.arange(w)) + off[:, 1, None]
    return xpad[np.arange(n)[:, None, None, None], np.arange(c)[None, :, None, None],
                rows[:, None, :, None], cols[:, None, None, :]]


def _bilinear_taps(n_in: int, n_out: int):
    """Source indices and weights of a 1-d bilinear resize with half-pixel centres."""
    src = (np.arange(n_out, dtype=np.float64) + 0.5) * (n_in / n_out) - 0.5
    src = np.clip(src, 0.0, n_in - 1)
    i0 = np.floor(src).astype(np.intp)
    i1 = np.minimum(i0 + 1, n_in - 1)
    return i0, i1, (src - i0).astype(np.float32)


def resize_bilinear(x: np.ndarray, size: int) -> np.ndarray:
    """Resizes images x (N, C, H, W) to (N, C, size, size) by bilinear interpolation with
    half-pixel centres and edge clamping (PIL's BILINEAR when enlarging; no antialiasing
    when shrinking). Vectorised: two gathers and two weighted sums."""
    n, c, h, w = x.shape
    if h == size and w == size:
        return x
    r0, r1, wr = _bilinear_taps(h, size)
    c0, c1, wc = _bilinear_taps(w, size)
    xf = x.astype(np.float32, copy=False)
    wr = wr[:, None]
    rows = xf[:, :, r0, :] * (1 - wr) + xf[:, :, r1, :] * wr                # (N, C, S, W)
    out = rows[..., c0] * (1 - wc) + rows[..., c1] * wc                       # (N, C, S, S)
    return out.astype(x.dtype, copy=False)


def load_data(data: str, data_dir: Optional[str] = None):
    """(train_x, train_y, val_x, val_y) of `data` from `data_dir`; DatasetError when a file
    is missing or corrupt."""
    if data == "mnist":
        from data import mnist as loader
    elif data == "cifar10":
        from data import cifar10 as loader
    elif data == "cifar100":
        from data import cifar100 as loader
    else:
        raise ValueError(f"unknown dataset {data!r}; expected one of {', '.join(DATASETS)}")
    return loader.load(data_dir)


def accuracy(pred: np.ndarray, target: np.ndarray) -> int:
    """Number of rows of `pred` whose argmax is the label in `target`."""
    return int((np.argmax(pred, axis=1) == target).sum())


def partition(global_rank: int, world_size: int, train_x, train_y, val_x, val_y):
    """The contiguous slice of the training and validation data of rank `global_rank`."""
    def part(a):
        per = a.shape[0] // world_size
        return a[global_rank * per:(global_rank + 1) * per]
    return part(train_x), part(train_y), part(val_x), part(val_y)


def reduce_variable(variable: np.ndarray, dist_opt, reducer) -> np.ndarray:
    """Sums a numpy value over all ranks with the DistOpt's all-reduce."""
    reducer.copy_from_numpy(variable)
    dist_opt.all_reduce(reducer.data)
    dist_opt.wait()
    return tensor.to_numpy(reducer)


# ---- model and device ----
def create_model(name: str, num_channels: int, num_classes: int, data_size: int,
                 image_size: Optional[int] = None):
    """The example model `name` for the data's channels and classes; `image_size` overrides
    the input side of the 4-d models (224 for alexnet and resnet, 299 for xceptionnet)."""
    if name == "mlp":
        from model import mlp
        return mlp.create_model(data_size=data_size, num_classes=num_classes)
    kwargs = {"num_channels": num_channels, "num_classes": num_classes}
    if image_size is not None:
        kwargs["input_size"] = image_size
    if name == "cnn":
        from model import cnn
        return cnn.create_model(**kwargs)
    if name == "alexnet":
        from model import alexnet
        return alexnet.create_model(**kwargs)
    if name == "resnet":
        from model import resnet
        return resnet.resnet50(**kwargs)
    if name == "xceptionnet":
        from model import xceptionnet
        return xceptionnet.create_model(**kwargs)
    raise ValueError(f"unknown model {name!r}; expected one of {', '.join(MODELS)}")


def get_device(kind: str = "auto", device_id: int = 0):
    """The device to train on: `cpu`, `cuda` (GPU `device_id`) or `auto` (CUDA when a GPU
    is there, else the CPU)."""
    if kind not in ("auto", "cpu", "cuda"):
        raise UsageError(f"unknown device {kind!r}; expected auto, cpu or cuda")
    if kind == "auto":
        kind = "cuda" if device.cuda_available() else "cpu"
    if kind == "cpu":
        return device.get_default_device()
    if not device.cuda_available():
        raise UsageError("--device cuda: no GPU is visible or minisinga was built without "
                           "CUDA; use --device cpu (or auto)")
    return device.create_cuda_gpu_on(device_id)


def _progress(iterable, total: int, enabled: bool, desc: str):
    """A tqdm progress bar when stderr is an interactive terminal, else the iterable."""
    if not enabled or not sys.stderr.isatty():
        return iterable
    try:
        from tqdm import tqdm
    except ImportError:
        return iterable
    return tqdm(iterable, total=total, desc=desc, leave=False, dynamic_ncols=True)


# ---- training ----
def run(global_rank: int, world_size: int, local_rank: int, max_epoch: int, batch_size: int,
        model: str, data: str, sgd, graph: bool, verbosity: int, dist_option: str = "plain",
        spars: Optional[float] = None, precision: str = "float32", device: str = "auto",
        data_dir: Optional[str] = None, max_steps: Optional[int] = None, seed: int = 0,
        image_size: Optional[int] = None) -> dict:
    """Trains `model` on `data` for `max_epoch` epochs and evaluates after each one.

    Args:
        global_rank, world_size, local_rank: this process's place among the training
            processes (0, 1, device id for a single process).
        sgd: the optimizer (opt.SGD, or opt.DistOpt wrapping it for distributed training).
        graph: record the training step once and replay it (True) or run eagerly.
        verbosity: the device's profiling verbosity (per-op times at the end when > 0).
        dist_option, spars: how the model updates (see model.update).
        precision: 'float32' or 'float16' (inputs and parameters).
        device: 'auto', 'cpu' or 'cuda' (GPU local_rank).
        data_dir: where the dataset files are (see data/common.py for the default).
        max_steps: at most this many training and this many evaluation batches per epoch.
        seed: seed of the device RNG and numpy's global RNG.
        image_size: input side of the 4-d models, instead of the model's default.
    Returns:
        the last epoch's {'train_loss', 'train_acc', 'val_acc', 'epoch_time'}.
    """
    if precision not in np_dtype:
        raise UsageError(f"precision must be float32 or float16, got {precision!r}")
    check_settings(batch_size=batch_size, max_epoch=max_epoch, max_steps=max_steps, seed=seed)
    dev = get_device(device, local_rank)
    dev.SetRandSeed(seed)
    np.random.seed(seed)

    train_x, train_y, val_x, val_y = load_data(data, data_dir)
    if len(train_y) == 0 or len(val_y) == 0:
        raise UsageError(f"the {data} data holds {len(train_y)} training and {len(val_y)} "
                         "validation images: nothing to train on")
    num_channels = train_x.shape[1]
    data_image_size = train_x.shape[2]
    data_size = int(np.prod(train_x.shape[1:]))
    num_classes = int(np.max(train_y)) + 1

    try:
        net = create_model(model, num_channels, num_classes, data_size, image_size)
    except ValueError as e:  # e.g. an --image-size too small for the model
        raise UsageError(str(e)) from None

    # A DistOpt has a communicator; distributed training runs the graph in sequential order.
    dist = hasattr(sgd, "communicator") or world_size > 1
    sequential = dist
    if dist:
        train_x, train_y, val_x, val_y = partition(global_rank, world_size, train_x, train_y,
                                                   val_x, val_y)
    if net.dimension == 2:
        train_x = train_x.reshape(train_x.shape[0], -1)
        val_x = val_x.reshape(val_x.shape[0], -1)
        tx = tensor.Tensor((batch_size, data_size), dev, dtype=singa_dtype[precision],
                           requires_grad=False)
    else:
        tx = tensor.Tensor((batch_size, num_channels, net.input_size, net.input_size), dev,
                           dtype=singa_dtype[precision], requires_grad=False)
    ty = tensor.Tensor((batch_size,), dev, dtype=tensor.int32, requires_grad=False)

    num_train_batch = train_x.shape[0] // batch_size
    num_val_batch = val_x.shape[0] // batch_size
    if num_train_batch == 0 or num_val_batch == 0:
        raise UsageError(f"batch size {batch_size} is larger than the training set "
                         f"({train_x.shape[0]}) or the validation set ({val_x.shape[0]})")
    if max_steps is not None:
        num_train_batch = min(num_train_batch, max_steps)
        num_val_batch = min(num_val_batch, max_steps)
    idx = np.arange(train_x.shape[0], dtype=np.int32)

    net.set_optimizer(sgd)
    net.compile([tx], is_train=True, use_graph=graph, sequential=sequential)
    dev.SetVerbosity(verbosity)
    show = global_rank == 0

    def batch_x(x):
        if net.dimension == 4 and data_image_size != net.input_size:
            x = resize_bilinear(x, net.input_size)
        return x.astype(np_dtype[precision], copy=False)

    result = {}
    for epoch in range(max_epoch):
        start_time = time.time()
        np.random.shuffle(idx)
        if show:
            print("Starting Epoch %d:" % epoch, flush=True)

        train_correct = np.zeros(shape=[1], dtype=np.float32)
        test_correct = np.zeros(shape=[1], dtype=np.float32)
        train_loss = np.zeros(shape=[1], dtype=np.float32)

        net.train()
        for b in _progress(range(num_train_batch), num_train_batch, show, f"epoch {epoch}"):
            sel = idx[b * batch_size:(b + 1) * batch_size]
            x = train_x[sel]
            if net.dimension == 4:
                x = augmentation(x, batch_size)
            x = batch_x(x)
            y = train_y[sel]
            tx.copy_from_numpy(x)
            ty.copy_from_numpy(y)
            out, loss = net(tx, ty, dist_option, spars)
            train_correct += accuracy(tensor.to_numpy(out), y)
            train_loss += float(tensor.to_numpy(loss).reshape(-1)[0])

        if dist:
            reducer = tensor.Tensor((1,), dev, dtype=tensor.float32, requires_grad=False)
            train_correct = reduce_variable(train_correct, sgd, reducer)
            train_loss = reduce_variable(train_loss, sgd, reducer)

        train_acc = float(train_correct[0]) / (num_train_batch * batch_size * world_size)
        if show:
            print("Training loss = %f, training accuracy = %f" % (train_loss[0], train_acc),
                  flush=True)

        net.eval()
        for b in range(num_val_batch):
            x = batch_x(val_x[b * batch_size:(b + 1) * batch_size])
            y = val_y[b * batch_size:(b + 1) * batch_size]
            tx.copy_from_numpy(x)
            ty.copy_from_numpy(y)
            out_test = net(tx)
            test_correct += accuracy(tensor.to_numpy(out_test), y)

        if dist:
            test_correct = reduce_variable(test_correct, sgd, reducer)

        val_acc = float(test_correct[0]) / (num_val_batch * batch_size * world_size)
        elapsed = time.time() - start_time
        if show:
            print("Evaluation accuracy = %f, Elapsed Time = %fs" % (val_acc, elapsed),
                  flush=True)
        result = {"train_loss": float(train_loss[0]), "train_acc": train_acc,
                  "val_acc": val_acc, "epoch_time": elapsed}

    dev.PrintTimeProfiling()
    return result


def learning_rate(text: str) -> float:
    """argparse type of -l: a finite number >= 0."""
    v = float(text)
    if not math.isfinite(v) or v < 0:
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return v


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Training using the autograd and graph.")
    parser.add_argument("model", choices=MODELS)
    parser.add_argument("data", choices=DATASETS)
    parser.add_argument("-p", choices=["float32", "float16"], default="float32",
                        dest="precision")
    parser.add_argument("-m", "--max-epoch", default=100, type=int, help="maximum epochs",
                        dest="max_epoch")
    parser.add_argument("-b", "--batch-size", default=64, type=int, help="batch size",
                        dest="batch_size")
    parser.add_argument("-l", "--learning-rate", default=0.005, type=learning_rate,
                        help="initial learning rate", dest="lr")
    parser.add_argument("-i", "--device-id", default=0, type=int, help="which GPU to use",
                        dest="device_id")
    parser.add_argument("-g", "--disable-graph", action="store_false",
                        help="disable graph (run eagerly)", dest="graph")
    parser.add_argument("-v", "--log-verbosity", default=0, type=int,
                        help="logging verbosity", dest="verbosity")
    add_common_options(parser)
    return parser


def add_common_options(parser: argparse.ArgumentParser) -> None:
    """The options minisinga adds to SINGA's (shared with the distributed scripts)."""
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto",
                        help="auto: CUDA when a GPU is there, else CPU")
    parser.add_argument("--data-dir", default=None,
                        help="directory of the dataset files (default: $MINISINGA_DATA, else "
                             "~/.cache/minisinga/data/<dataset>)")
    parser.add_argument("--max-steps", default=None, type=int,
                        help="at most this many training (and evaluation) batches per epoch")
    parser.add_argument("--seed", default=0, type=int, help="seed of the device and numpy")
    parser.add_argument("--image-size", default=None, type=int,
                        help="input side of alexnet/resnet/xceptionnet/cnn instead of "
                             "224/224/299/28 (smaller is faster, e.g. for smoke tests)")


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    sgd = opt.SGD(lr=args.lr, momentum=0.9, weight_decay=1e-5,
                  dtype=singa_dtype[args.precision])
    try:
        run(0, 1, args.device_id, args.max_epoch, args.batch_size, args.model, args.data, sgd,
            args.graph, args.verbosity, precision=args.precision, device=args.device,
            data_dir=args.data_dir, max_steps=args.max_steps, seed=args.seed,
            image_size=args.image_size)
    except DatasetError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
