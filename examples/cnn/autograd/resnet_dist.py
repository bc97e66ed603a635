"""ResNet training throughput over MPI on synthetic data:

    mpiexec -n 2 python resnet_dist.py [--model resnet50] [--batch-size 32] [--iters 100]

Each rank trains on its own random batch (forward, loss, backward and the DistOpt update)
and rank 0 prints the images per second of all ranks together and the time per iteration
split into forward, softmax and backward + update."""

import argparse
import os
import sys
import time

import numpy as np

CNN_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, CNN_DIR)  # examples/cnn: the `model` package and train_cnn
_REPO = os.path.join(CNN_DIR, "..", "..")
if os.path.isdir(os.path.join(_REPO, "minisinga")):
    sys.path.append(_REPO)  # a source checkout without an installed minisinga

from model import resnet  # noqa: E402 - examples/cnn/model/resnet.py
from train_cnn import UsageError, check_settings  # noqa: E402

from minisinga import autograd, device, opt, tensor  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", choices=["resnet18", "resnet34", "resnet50", "resnet101",
                                        "resnet152"], default="resnet50")
    ap.add_argument("--batch-size", type=int, default=32, help="per rank")
    ap.add_argument("--image-size", type=int, default=224)
    ap.add_argument("--iters", type=int, default=100)
    ap.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    ap.add_argument("--dist-option", choices=["plain", "half"], default="plain")
    args = ap.parse_args()
    try:
        check_settings(batch_size=args.batch_size, iters=args.iters)
    except UsageError as e:
        ap.error(str(e))

    sgd = opt.DistOpt(opt.SGD(lr=0.1, momentum=0.9, weight_decay=1e-5))
    if sgd.global_rank == 0:
        print("Start initialization...", flush=True)
    cuda = args.device == "cuda" or (args.device == "auto" and device.cuda_available())
    dev = device.create_cuda_gpu_on(sgd.local_rank) if cuda else device.get_default_device()
    dev.SetRandSeed(0)
    model = getattr(resnet, args.model)(num_classes=1000, input_size=args.image_size)
    b, s = args.batch_size, args.image_size
    tx = tensor.Tensor((b, 3, s, s), dev)
    ty = tensor.Tensor((b,), dev, dtype=tensor.int32)
    r = np.random.default_rng(sgd.global_rank)
    tx.copy_from_numpy(r.standard_normal((b, 3, s, s)).astype(np.float32))
    ty.copy_from_numpy(r.integers(0, 1000, b).astype(np.int32))
    with autograd.train_mode():
        step(model, sgd, tx, ty, args.dist_option)  # creates the parameters, syncs them
        dev.Sync()
        sgd.barrier()
        fwd = soft = 0.0
        start = time.time()
        for _ in range(args.iters):
            tick = time.time()
            x = model.forward(tx)
            dev.Sync()
            fwd += time.time() - tick
            tick = time.time()
            loss = autograd.softmax_cross_entropy(x, ty)
            dev.Sync()
            soft += time.time() - tick
            update(sgd, loss, args.dist_option)
        dev.Sync()
        total = time.time() - start
    if sgd.global_rank == 0:
        it = total / args.iters
        print(f"\nThroughput = {sgd.world_size * args.iters * b / total} per second", flush=True)
        print(f"Total={it}, forward={fwd / args.iters}, softmax={soft / args.iters}, "
              f"backward={it - (fwd + soft) / args.iters}", flush=True)
    sgd.close()


def update(sgd, loss, option) -> None:
    if option == "half":
        sgd.backward_and_update_half(loss)
    else:
        sgd.backward_and_update(loss)


def step(model, sgd, tx, ty, option) -> None:
    update(sgd, autograd.softmax_cross_entropy(model.forward(tx), ty), option)


if __name__ == "__main__":
    main()
