"""MNIST CNN (mnist_cnn.py) trained data-parallel by N processes on one host:

    python mnist_multiprocess.py N [--max-epoch 10] [--max-steps S] [--data-dir DIR]
                                   [--device auto|cpu|cuda]

The parent makes the group id with NcclIdHolder() and spawns one process per rank; each runs
train_mnist_cnn with DistOpt over NCCL (GPUs) or shared memory (CPU)."""

import argparse
import multiprocessing
import os
import sys

from mnist_cnn import train_mnist_cnn

from minisinga.dist import NcclIdHolder


def build_parser(description: str) -> argparse.ArgumentParser:
    """N plus the training options of mnist_cnn.py."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("world_size", type=int, help="number of processes")
    ap.add_argument("-m", "--max-epoch", default=10, type=int, dest="max_epoch")
    ap.add_argument("-b", "--batch-size", default=64, type=int, dest="batch_size",
                    help="per process")
    ap.add_argument("-l", "--learning-rate", default=0.005, type=float, dest="lr")
    ap.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--max-steps", default=None, type=int,
                    help="at most this many batches per epoch (smoke runs)")
    ap.add_argument("--seed", default=0, type=int)
    return ap


def train_kwargs(a) -> dict:
    return {"max_epoch": a.max_epoch, "batch_size": a.batch_size, "lr": a.lr,
            "device": a.device, "data_dir": a.data_dir, "max_steps": a.max_steps,
            "seed": a.seed}


def launch(target, world_size: int, extra: tuple = (), kwargs: "dict | None" = None) -> int:
    """Runs target(True, rank, world_size, nccl_id, *extra, **kwargs) in world_size spawned
    processes; returns 0 when every rank succeeded."""
    if world_size < 1:
        print(f"error: the number of processes must be >= 1, got {world_size}",
              file=sys.stderr)
        return 2
    nccl_id = NcclIdHolder()
    ctx = multiprocessing.get_context("spawn")
    if "OMP_NUM_THREADS" not in os.environ:  # the ranks share the cores
        os.environ["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // world_size))
    procs = [ctx.Process(target=target, args=(True, rank, world_size, nccl_id) + tuple(extra),
                         kwargs=kwargs or {}) for rank in range(world_size)]
    for p in procs:
        p.start()
    for p in procs:  # a rank whose peer died fails within MINISINGA_DIST_TIMEOUT
        p.join()
    failed = [r for r, p in enumerate(procs) if p.exitcode != 0]
    for r in failed:
        print(f"rank {r} exited with code {procs[r].exitcode}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    a = build_parser(__doc__.splitlines()[0]).parse_args()
    sys.exit(launch(train_mnist_cnn, a.world_size, (), train_kwargs(a)))
