"""MPI communicator (mpi4py) for CPU tensors, one process per rank under `mpiexec`.

Collectives are non-blocking MPI calls polled to completion by the communication thread, so
each is bounded by the timeout. After a timeout the job cannot be cancelled: the process
calls MPI_Abort when it exits, so `mpiexec` ends every rank instead of hanging in
MPI_Finalize. (A rank that dies is usually noticed by `mpiexec` itself, which then stops the
others with a "BAD TERMINATION" report.)"""

from __future__ import annotations

import atexit
import sys
import time

import numpy as np

from .base import COLLECTIVE_KINDS, Backoff, DistError, HostCommunicator, disagreement


def import_mpi():
    """mpi4py's MPI module, or a DistError that says how to install it."""
    try:
        from mpi4py import MPI
    except ImportError as e:
        raise DistError("the MPI communicator needs mpi4py and an MPI library: "
                        f"pip install mpi4py mpich ({e})") from None
    return MPI


class MpiCommunicator(HostCommunicator):
    """All processes of MPI_COMM_WORLD (a duplicate of it, so user MPI calls never match ours).

    `local_rank` is the rank among the processes on this host."""

    backend = "mpi"

    def __init__(self, timeout: float | None = None):
        MPI = import_mpi()
        self._MPI = MPI
        world = MPI.COMM_WORLD
        self.comm = world.Dup()
        self.world_size, self.rank = self.comm.Get_size(), self.comm.Get_rank()
        node = self.comm.Split_type(MPI.COMM_TYPE_SHARED)
        self.local_rank, self.local_size = node.Get_rank(), node.Get_size()
        node.Free()
        self._abort_at_exit = False
        self._seq = 0
        super().__init__(timeout)
        atexit.register(self._atexit)

    def bcast_object(self, obj, root: int = 0):
        """Rank `root`'s picklable `obj` on every rank (in order with the other collectives)."""
        self._check_root(root)
        out = []
        self._submit("broadcast of an object", lambda: out.append(self._bcast_obj(obj, root))
                     ).wait()
        return out[0]

    # ---- primitives: non-blocking MPI polled with the timeout ----
    def _wait(self, req, what: str) -> None:
        deadline = time.monotonic() + self.timeout
        backoff = Backoff()
        while not req.Test():
            if time.monotonic() > deadline:
                self._abort_at_exit = True
                raise DistError(f"mpi communicator: rank {self.rank} timed out after "
                                f"{self.timeout:g} s in {what} (a peer is stuck or dead; set "
                                "MINISINGA_DIST_TIMEOUT to change the limit)")
            backoff.pause()

    def _agree(self, kind: int, nbytes: int) -> None:
        """Checks that every rank issues this collective (seq, kind, bytes) before it runs: MPI
        would match, say, an all-reduce with an all-gather of as many bytes and give garbage,
        abort inside MPICH or wait for the timeout. One small all-gather of headers."""
        self._seq += 1
        mine = np.array([self._seq, kind, nbytes], np.int64)
        every = np.empty((self.world_size, 3), np.int64)
        self._wait(self.comm.Iallgather([mine, self._MPI.INT64_T], [every, self._MPI.INT64_T]),
                   f"the header of {COLLECTIVE_KINDS[kind]} #{self._seq}")
        bad = np.flatnonzero((every != mine).any(axis=1))
        if bad.size:
            r = int(bad[0])
            raise DistError(f"mpi communicator: {disagreement(self.rank, mine, r, every[r])}")

    def _allreduce_(self, a):
        MPI = self._MPI
        self._agree(1, a.nbytes)
        self._wait(self.comm.Iallreduce(MPI.IN_PLACE, [a, MPI.FLOAT], op=MPI.SUM),
                   f"all_reduce of {a.size} elements")

    def _allgather(self, a):
        MPI = self._MPI
        raw = a.view(np.uint8)
        out = np.empty((self.world_size, raw.nbytes), np.uint8)
        self._agree(2, raw.nbytes)
        self._wait(self.comm.Iallgather([raw, MPI.BYTE], [out, MPI.BYTE]),
                   f"all_gather of {raw.nbytes} bytes")
        return out.view(a.dtype).reshape(self.world_size, a.size)

    def _bcast_(self, a, root):
        MPI = self._MPI
        self._agree(3, a.nbytes)
        self._wait(self.comm.Ibcast([a.view(np.uint8), MPI.BYTE], root=root),
                   f"broadcast of {a.nbytes} bytes")

    def _bcast_obj(self, obj, root):
        import pickle

        payload = np.frombuffer(pickle.dumps(obj), np.uint8) if self.rank == root else None
        n = np.array([0 if payload is None else payload.size], np.int64)
        self._bcast_(n, root)
        buf = payload.copy() if payload is not None else np.empty(int(n[0]), np.uint8)
        self._bcast_(buf, root)
        return pickle.loads(buf.tobytes())

    def _barrier(self):
        self._agree(4, 0)
        self._wait(self.comm.Ibarrier(), "barrier")

    def _on_failure(self, error):
        self._abort_at_exit = True

    def _shutdown(self):
        if not self._abort_at_exit:
            try:
                self.comm.Free()
            except Exception:  # noqa: BLE001, S110 - MPI may already be finalized
                pass

    def _atexit(self) -> None:
        # A collective that timed out can never complete: MPI_Finalize would hang on it.
        if self._abort_at_exit:
            sys.stdout.flush()
            sys.stderr.flush()
            self._MPI.COMM_WORLD.Abort(1)
