"""ResNet on CIFAR-10 (resnet_cifar10.py) trained by N processes on one host with partial
updates: each rank updates locally and one partition of the parameters is averaged per step.

    python cifar10_multiprocess.py N"""

import multiprocessing
import sys

from resnet_cifar10 import train_cifar10

from minisinga.dist import NcclIdHolder

if __name__ == "__main__":
    if len(sys.argv) < 2 or not sys.argv[1].isdigit() or int(sys.argv[1]) < 1:
        sys.exit(f"usage: python {sys.argv[0]} NUM_PROCESSES (a positive integer)")
    world_size = int(sys.argv[1])
    nccl_id = NcclIdHolder()
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=train_cifar10, args=(True, local_rank, world_size, nccl_id),
                         kwargs={"partial_update": True}) for local_rank in range(world_size)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    sys.exit(0 if all(p.exitcode == 0 for p in procs) else 1)
