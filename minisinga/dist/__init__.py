"""Distributed data-parallel training: DistOpt and its communicators.

- `NcclIdHolder()`: a picklable group id made in a parent process for the ranks it spawns.
- `DistOpt(opt, nccl_id=None, local_rank=None, world_size=None, buffSize=...)`: wraps an
  optimizer; gradients are averaged over the ranks (modes plain, half, partialUpdate,
  sparseTopK, sparseThreshold).
- Communicators, one interface: `ShmCommunicator` (CPU, one host), `MpiCommunicator` (CPU,
  mpi4py), `NcclCommunicator` (CUDA, cupy.cuda.nccl; imported only when used).
- `DistError`: a peer died or timed out (after $MINISINGA_DIST_TIMEOUT s, default 60), or the
  ranks disagree.
"""

from .base import Communicator, DistError, timeout_seconds
from .distopt import DistOpt
from .ids import NcclIdHolder

__all__ = [
    "Communicator",
    "DistError",
    "DistOpt",
    "MpiCommunicator",
    "NcclCommunicator",
    "NcclIdHolder",
    "ShmCommunicator",
    "timeout_seconds",
]


def __getattr__(name):
    # Backends load on first use: mpi4py and cupy are imported only when asked for.
    if name == "ShmCommunicator":
        from .shm import ShmCommunicator
        return ShmCommunicator
    if name == "MpiCommunicator":
        from .mpi import MpiCommunicator
        return MpiCommunicator
    if name == "NcclCommunicator":
        from .nccl import NcclCommunicator
        return NcclCommunicator
    raise AttributeError(f"module 'minisinga.dist' has no attribute {name!r}")
