"""NcclIdHolder: what the processes of one launch need to find each other."""

from __future__ import annotations

import uuid


class NcclIdHolder:
    """A picklable group id, made once (in the parent process, or on MPI rank 0) and handed
    to every rank.

    Attributes:
        token: names the shared-memory group that CPU ranks on one host join.
        id: the NCCL unique id for CUDA ranks (None when no GPU or no cupy is available
            where the holder was made; a CUDA DistOpt then raises a clear error).
    """

    def __init__(self, with_nccl: bool | None = None):
        """Args: with_nccl: make an NCCL id too (default: when a GPU is visible and cupy is
        installed)."""
        self.token = uuid.uuid4().hex
        self.id = None
        self.nccl_error = None
        if with_nccl is None:
            from ..device import cuda_available

            with_nccl = cuda_available()
        if with_nccl:
            from .base import DistError
            from .nccl import make_unique_id

            try:
                self.id = make_unique_id()
            except DistError as e:
                self.nccl_error = str(e)

    def __repr__(self) -> str:
        return f"NcclIdHolder(token={self.token[:8]}..., nccl={'yes' if self.id else 'no'})"
