"""Training throughput of ResNet-50 (or another example model) on random data: the full
training step (forward, backward and SGD update), eager or graph, one process or DistOpt.

    python benchmark.py [--dist] [--no-graph] [--verbosity N] [--device auto|cpu|cuda]
        [--batch-size 32] [--iters 100] [--skip 5] [--model resnet50] [--image-size 224]
        [--num-classes 1000]

Prints `Throughput = %f per second` (images per second over all ranks), `TotalTime=%f`
(seconds for the timed iterations) and `Total=%f` (seconds per iteration).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)
_REPO = os.path.dirname(os.path.dirname(HERE))
if os.path.isdir(os.path.join(_REPO, "minisinga")) and _REPO not in sys.path:
    sys.path.append(_REPO)

from train_cnn import UsageError, check_settings, get_device  # noqa: E402

from minisinga import opt, tensor  # noqa: E402

RESNETS = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152")
MODELS = RESNETS + ("alexnet", "xceptionnet", "cnn")


def create_model(name: str, num_classes: int, image_size: int):
    """The benchmarked model, 3 input channels."""
    kwargs = {"num_channels": 3, "num_classes": num_classes, "input_size": image_size}
    if name in RESNETS:
        from model import resnet
        return getattr(resnet, name)(**kwargs)
    if name == "alexnet":
        from model import alexnet
        return alexnet.create_model(**kwargs)
    if name == "xceptionnet":
        from model import xceptionnet
        return xceptionnet.create_model(**kwargs)
    if name == "cnn":
        from model import cnn
        return cnn.create_model(**kwargs)
    raise UsageError(f"unknown model {name!r}; expected one of {', '.join(MODELS)}")


def train_resnet(DIST: bool = False, graph: bool = True, sequential: bool = False,
                 verbosity: int = 0, device: str = "auto", batch_size: int = 32,
                 niters: int = 100, skip: int = 5, model_name: str = "resnet50",
                 image_size: int = 224, num_classes: int = 1000) -> float:
    """Times `niters` training steps after `skip` untimed ones; returns the throughput."""
    check_settings(batch_size=batch_size, iters=niters, num_classes=num_classes)
    if skip < 0:
        raise UsageError(f"--skip must be >= 0, got {skip}")
    sgd = opt.SGD(lr=0.1, momentum=0.9, weight_decay=1e-5)
    if DIST:
        if not hasattr(opt, "DistOpt"):
            raise UsageError("--dist needs opt.DistOpt, which this minisinga does not have")
        sgd = opt.DistOpt(sgd)
        world_size, local_rank, global_rank = sgd.world_size, sgd.local_rank, sgd.global_rank
        sequential = True  # distributed training replays the graph in insertion order
    else:
        world_size, local_rank, global_rank = 1, 0, 0

    dev = get_device(device, local_rank)
    dev.SetRandSeed(0)
    rng = np.random.default_rng(0)
    tx = tensor.Tensor((batch_size, 3, image_size, image_size), dev, requires_grad=False)
    ty = tensor.Tensor((batch_size,), dev, dtype=tensor.int32, requires_grad=False)
    tx.copy_from_numpy(rng.standard_normal((batch_size, 3, image_size, image_size),
                                           dtype=np.float32))
    ty.copy_from_numpy(rng.integers(0, num_classes, batch_size, dtype=np.int32))

    try:
        model = create_model(model_name, num_classes, image_size)
    except ValueError as e:  # an image size too small for the model
        raise UsageError(str(e)) from None
    model.set_optimizer(sgd)
    model.compile([tx], is_train=True, use_graph=graph, sequential=sequential)
    dev.SetVerbosity(verbosity)
    dev.SetSkipIteration(skip)

    show = global_rank == 0 and sys.stderr.isatty()
    for _ in range(skip):  # warm-up: records the graph, fills the memory pool
        model(tx, ty, dist_option="plain", spars=None)
    dev.Sync()
    steps = range(niters)
    if show:
        from tqdm import trange
        steps = trange(niters, leave=False)
    start = time.time()
    for _ in steps:
        out, loss = model(tx, ty, dist_option="plain", spars=None)
    dev.Sync()
    end = time.time()
    loss_value = float(tensor.to_numpy(loss).reshape(-1)[0])
    if not np.isfinite(loss_value):
        raise RuntimeError(f"benchmark: the training loss is {loss_value}")
    titer = (end - start) / niters
    throughput = niters * batch_size * world_size / (end - start)
    if global_rank == 0:
        print("Throughput = %f per second" % throughput, flush=True)
        print("TotalTime=%f" % (end - start), flush=True)
        print("Total=%f" % titer, flush=True)
        dev.PrintTimeProfiling()
    return throughput


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Training throughput test (ResNet-50)")
    parser.add_argument("--dist", "--enable-dist", action="store_true", dest="DIST",
                        help="enable distributed training (opt.DistOpt; run under mpiexec)")
    parser.add_argument("--no-graph", "--disable-graph", action="store_false", dest="graph",
                        help="disable graph (run eagerly)")
    parser.add_argument("--verbosity", "--log-verbosity", default=0, type=int,
                        dest="verbosity",
                        help="logging verbosity (graph mode: 1 phase totals, 2 also per-op "
                             "times)")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument("--batch-size", default=32, type=int)
    parser.add_argument("--iters", default=100, type=int, help="timed iterations")
    parser.add_argument("--skip", default=5, type=int, help="untimed warm-up iterations")
    parser.add_argument("--model", default="resnet50", choices=MODELS)
    parser.add_argument("--image-size", default=224, type=int,
                        help="input side (224; smaller for quick CPU runs)")
    parser.add_argument("--num-classes", default=1000, type=int)
    args = parser.parse_args(argv)
    try:
        train_resnet(DIST=args.DIST, graph=args.graph, verbosity=args.verbosity,
                     device=args.device, batch_size=args.batch_size, niters=args.iters,
                     skip=args.skip, model_name=args.model, image_size=args.image_size,
                     num_classes=args.num_classes)
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
