"""MNIST CNN (mnist_cnn.py) trained data-parallel by N processes on one host:

    python mnist_multiprocess.py N

The parent makes the group id with NcclIdHolder() and spawns one process per rank; each runs
train_mnist_cnn with DistOpt over NCCL (GPUs) or shared memory (CPU)."""

import multiprocessing
import sys

from mnist_cnn import train_mnist_cnn

from minisinga.dist import NcclIdHolder


def launch(world_size: int, *extra) -> int:
    """Runs train_mnist_cnn(True, rank, world_size, nccl_id, *extra) in world_size spawned
    processes; returns 0 when every rank succeeded."""
    nccl_id = NcclIdHolder()
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=train_mnist_cnn,
                         args=(True, local_rank, world_size, nccl_id) + extra)
             for local_rank in range(world_size)]
    for p in procs:
        p.start()
    for p in procs:  # a rank whose peer died fails within MINISINGA_DIST_TIMEOUT
        p.join()
    failed = [r for r, p in enumerate(procs) if p.exitcode != 0]
    for r in failed:
        print(f"rank {r} exited with code {procs[r].exitcode}", file=sys.stderr)
    return 1 if failed else 0


def world_size_arg() -> int:
    if len(sys.argv) < 2 or not sys.argv[1].isdigit() or int(sys.argv[1]) < 1:
        sys.exit(f"usage: python {sys.argv[0]} NUM_PROCESSES (a positive integer)")
    return int(sys.argv[1])


if __name__ == "__main__":
    sys.exit(launch(world_size_arg()))
