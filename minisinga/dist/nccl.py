"""NCCL communicator for CUDA tensors, through `cupy.cuda.nccl` on our device pointers and the
device's stream. cupy is imported only when this communicator is created, so CPU-only use
never needs it.

Every operation is enqueued on the device's stream (so it is ordered with the kernels, and a
recorded graph replays it in place); fusion, fp16 conversion and clipping run as cupy kernels
on that same stream, the sparse modes' selection as our select kernels. A dead rank gives a
DistError instead of a hang: `synchronize()` waits for the stream with the timeout, and a
watchdog thread aborts the NCCL communicator when an enqueued collective has not completed
within it (so a host read that waits for the stream, e.g. `loss.item()`, returns), after
which every call raises the DistError."""

from __future__ import annotations

import contextlib
import time

from .. import _core
from .base import Backoff, Communicator, DistError, DoneHandle, Watchdog, timeout_seconds


def import_cupy():
    try:
        import cupy
        from cupy.cuda import nccl
    except ImportError as e:
        raise DistError("the NCCL communicator needs cupy: pip install 'minisinga[cuda]' "
                        f"(cupy-cuda13x, nvidia-nccl-cu13) ({e})") from None
    return cupy, nccl


def make_unique_id():
    """A new NCCL unique id (bytes or tuple, as cupy returns it)."""
    _, nccl = import_cupy()
    return nccl.get_unique_id()


class NcclCommunicator(Communicator):
    """One rank of an NCCL group on CUDA device `device`.

    Args:
        unique_id: the group's NCCL id (made once by one process, shared with all ranks).
        rank, world_size: this rank and the group size.
        device: the minisinga CUDA Device the tensors live on.
        local_rank: rank on this host (informational).
        timeout: seconds `synchronize()` may wait (default $MINISINGA_DIST_TIMEOUT or 60).
    """

    backend = "nccl"

    def __init__(self, unique_id, rank: int, world_size: int, device, local_rank: int = 0,
                 timeout: float | None = None):
        if not device.is_cuda:
            raise ValueError(f"nccl communicator: {device.name} is not a CUDA device")
        cupy, nccl = import_cupy()
        self._cp, self._nccl = cupy, nccl
        self.world_size, self.rank, self.local_rank = world_size, rank, local_rank
        self.device = device
        self.timeout = timeout_seconds(timeout)
        self._dtypes = {
            "float32": nccl.NCCL_FLOAT32, "float16": nccl.NCCL_FLOAT16,
            "int32": nccl.NCCL_INT32, "int64": nccl.NCCL_INT64, "uint8": nccl.NCCL_UINT8,
        }
        with cupy.cuda.Device(device.id()):
            self._stream = cupy.cuda.ExternalStream(device.stream_handle, device.id())
            self._comm = nccl.NcclCommunicator(world_size, unique_id, rank)
        self._watchdog = Watchdog(self.timeout, self._abort, f"nccl communicator rank {rank}")

    def _abort(self) -> None:
        """The watchdog's: ends the collectives spinning on the stream (their results are
        garbage: every later call raises)."""
        self._comm.abort()

    def _track(self, what: str) -> None:
        """After enqueueing `what`: the watchdog bounds it by the timeout."""
        ev = self._cp.cuda.Event(block=False, disable_timing=True)
        ev.record(self._stream)
        dev = self.device.id()

        def done() -> bool:
            with self._cp.cuda.Device(dev):
                return ev.done
        self._watchdog.track(done, what)

    # ---- helpers ----
    def _array(self, t):
        """A cupy array aliasing a `_core.Tensor` (or minisinga Tensor) on the device."""
        core = getattr(t, "data", t)
        if not core.device.is_cuda:
            raise ValueError(f"nccl communicator: tensor is on {core.device.name}, not CUDA")
        cp = self._cp
        dtype = {"float32": cp.float32, "float16": cp.float16, "int32": cp.int32}[
            core.dtype.name]
        nbytes = core.nbytes
        mem = cp.cuda.UnownedMemory(core.data_ptr(), nbytes, core, self.device.id())
        return cp.ndarray(tuple(core.shape), dtype, cp.cuda.MemoryPointer(mem, 0))

    @contextlib.contextmanager
    def _ctx(self):
        """cupy work inside runs on our GPU and on the device's stream."""
        with self._cp.cuda.Device(self.device.id()), self._stream:
            yield

    def _allreduce(self, buf) -> None:
        self._comm.allReduce(buf.data.ptr, buf.data.ptr, buf.size, self._dtypes[buf.dtype.name],
                             self._nccl.NCCL_SUM, self._stream.ptr)

    def _allgather(self, buf):
        out = self._cp.empty((self.world_size, buf.size), buf.dtype)
        self._comm.allGather(buf.data.ptr, out.data.ptr, buf.size,
                             self._dtypes[buf.dtype.name], self._stream.ptr)
        return out

    # ---- the interface ----
    def start_all_reduce(self, tensors, scale=1.0, wire="float32", clip=None):
        if wire not in ("float32", "float16"):
            raise ValueError(f"all_reduce: wire dtype must be float32 or float16, got {wire!r}")
        cp = self._cp
        self._watchdog.check()
        with self._ctx():
            arrs = [self._array(t) for t in tensors]
            what = f"all_reduce of {sum(a.size for a in arrs)} elements"
            if len(arrs) == 1 and wire == "float32" and clip is None:
                buf = arrs[0].reshape(-1)
                self._allreduce(buf)
                self._track(what)
                if scale != 1.0:
                    buf *= cp.float32(scale)
                return DoneHandle("all_reduce")
            buf = cp.concatenate([a.reshape(-1) for a in arrs])
            if clip is not None:
                cp.clip(buf, -clip, clip, out=buf)
            if wire == "float16":
                # Scaled before the float16 sum (as the host communicators sum in float32): a
                # sum of ranks' values may overflow float16 where their mean does not.
                if scale != 1.0:
                    buf *= cp.float32(scale)
                half = buf.astype(cp.float16)
                self._allreduce(half)
                self._track(what)
                buf[...] = half
            else:
                self._allreduce(buf)
                self._track(what)
                if scale != 1.0:
                    buf *= cp.float32(scale)
            self._scatter(buf, arrs)
        return DoneHandle("all_reduce")

    def start_sparse_all_reduce(self, tensors, residual, spars, topk, scale=1.0):
        cp = self._cp
        self._watchdog.check()
        with self._ctx():
            arrs = [self._array(t) for t in tensors]
            # The fused buffer is one of our tensors on the device, so the selection runs in
            # the select kernels on the same stream (it waits for the count it returns).
            fused = _core.Tensor([sum(a.size for a in arrs)], self.device, _core.DType.float32)
            buf = self._array(fused)
            cp.concatenate([a.reshape(-1) for a in arrs], out=buf)
            res = self._array(residual).reshape(-1) if residual is not None else None
            if res is not None:
                buf += res
            sel = _core.select_sparse(fused, spars, topk)
            idx = self._array(sel) if sel.numel else cp.zeros(0, cp.int32)
            vals = buf[idx]
            if res is not None:
                res[...] = buf
                res[idx] = 0
            counts = self._allgather(cp.array([idx.size], cp.int64))[:, 0]
            self._track("the sparse all_reduce's counts")
            m = int(counts.max().get())  # waits for the stream: sizes are needed on the host
            self._watchdog.check()  # an aborted all-gather returns garbage
            payload = cp.zeros(2 * m, cp.int32)
            payload[:idx.size] = idx
            payload[m:m + idx.size] = vals.view(cp.int32)
            parts = self._allgather(payload)
            self._track(f"the sparse all_reduce of {2 * m} values")
            buf[...] = 0
            for r, c in enumerate(counts.get().tolist()):
                buf[parts[r, :c]] += parts[r, m:m + c].view(cp.float32)
            if scale != 1.0:
                buf *= cp.float32(scale)
            self._scatter(buf, arrs)
        return DoneHandle("sparse all_reduce")

    def start_broadcast(self, tensors, root=0):
        if not 0 <= root < self.world_size:
            raise ValueError(f"broadcast: root {root} is not a rank (world size "
                             f"{self.world_size})")
        self._watchdog.check()
        with self._ctx():
            for t in tensors:
                a = self._array(t).reshape(-1)
                raw = a.view(self._cp.uint8)
                self._comm.bcast(raw.data.ptr, raw.size, self._nccl.NCCL_UINT8, root,
                                 self._stream.ptr)
            self._track("broadcast")
        return DoneHandle("broadcast")

    def all_gather(self, t, out) -> None:
        with self._ctx():
            a, o = self._array(t), self._array(out)
            if o.shape != (self.world_size,) + a.shape or o.dtype != a.dtype:
                raise ValueError(f"all_gather: out has shape {o.shape}, expected "
                                 f"{(self.world_size,) + a.shape}")
            self._comm.allGather(a.data.ptr, o.data.ptr, a.size, self._dtypes[a.dtype.name],
                                 self._stream.ptr)
        self.synchronize()

    def barrier(self) -> None:
        with self._ctx():
            self._allreduce(self._cp.zeros(1, self._cp.float32))
        self.synchronize()

    def synchronize(self) -> None:
        self._watchdog.check()
        deadline = time.monotonic() + self.timeout
        backoff = Backoff()
        while not self._stream.done:
            if time.monotonic() > deadline:
                self._comm.abort()
                raise DistError(f"nccl communicator: rank {self.rank} timed out after "
                                f"{self.timeout:g} s waiting for the device stream (a peer is "
                                "stuck or dead); the NCCL communicator was aborted")
            backoff.pause()
        self._watchdog.check()
        self._comm.check_async_error()

    def close(self) -> None:
        if getattr(self, "_watchdog", None) is not None:
            self._watchdog.close()
        if getattr(self, "_comm", None) is not None:
            self._comm.destroy()
            self._comm = None

    @staticmethod
    def _scatter(buf, arrs) -> None:
        off = 0
        for a in arrs:
            n = a.size
            a.reshape(-1)[...] = buf[off:off + n]
            off += n
