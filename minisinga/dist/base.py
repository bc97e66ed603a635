"""What every communicator shares: the error type, the timeout, handles of in-flight
operations, and the host-side base class that runs collectives on numpy views of CPU tensors
in one worker thread (so communication overlaps with the backward pass).

A communicator works on `_core.Tensor`s. Its `start_*` methods return a `Handle` at once;
`Handle.wait()` blocks until the operation is done and re-raises its error. All ranks must
issue the same collectives in the same order; every wait is bounded by the timeout
(`MINISINGA_DIST_TIMEOUT` seconds, default 60), after which a `DistError` names the operation
and the ranks that did not answer."""

from __future__ import annotations

import collections
import os
import queue
import threading
import time
from collections.abc import Sequence
from typing import Callable

import numpy as np

from .. import _core

DEFAULT_TIMEOUT = 60.0


class DistError(RuntimeError):
    """A distributed operation failed: a peer died, timed out, or the ranks disagree."""


# The collectives, as the host communicators check that every rank issues the same one.
COLLECTIVE_KINDS = {1: "all_reduce", 2: "all_gather", 3: "broadcast", 4: "barrier"}


def disagreement(rank: int, mine: Sequence[int], r: int, theirs: Sequence[int]) -> str:
    """The message for rank `rank` in collective (seq, kind, bytes) `mine` while rank `r` is
    in `theirs`."""
    def name(h):
        return f"{COLLECTIVE_KINDS.get(int(h[1]), '?')} #{int(h[0])} of {int(h[2])} bytes"
    return (f"ranks disagree on the collective: rank {rank} is in {name(mine)}, rank {r} in "
            f"{name(theirs)} (same model and options on every rank?)")


def timeout_seconds(value: float | None = None) -> float:
    """The communication timeout: `value`, else $MINISINGA_DIST_TIMEOUT, else 60 s."""
    if value is None:
        raw = os.environ.get("MINISINGA_DIST_TIMEOUT", "")
        if not raw:
            return DEFAULT_TIMEOUT
        try:
            value = float(raw)
        except ValueError:
            raise ValueError(f"MINISINGA_DIST_TIMEOUT must be a number of seconds, got {raw!r}")
    value = float(value)
    if not value > 0:
        raise ValueError(f"the distributed timeout must be positive, got {value}")
    return value


class Backoff:
    """Polling schedule for waits: spin briefly, then sleep up to 1 ms between checks."""

    def __init__(self):
        self.n = 0

    def pause(self) -> None:
        self.n += 1
        if self.n < 64:
            time.sleep(0)
        else:
            time.sleep(min(1e-3, 1e-5 * (self.n - 63)))


class Watchdog:
    """Bounds work enqueued on a device stream by the timeout, where nothing on the host waits
    for it (NCCL collectives: a dead peer leaves them spinning, and the next host read of the
    stream would block for ever). `track(done, what)` after each enqueue, `done` telling
    whether the stream has passed it; a daemon thread checks the oldest pending one and, when
    it is not done within `timeout` s, records a DistError and calls `on_timeout()` once (which
    must make the stream move on: NCCL's abort). `check()` raises the recorded error."""

    def __init__(self, timeout: float, on_timeout: Callable[[], None], name: str):
        self.timeout, self._on_timeout, self._name = timeout, on_timeout, name
        self._pending: collections.deque = collections.deque()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = False
        self._thread: threading.Thread | None = None
        self.error: DistError | None = None

    def track(self, done: Callable[[], bool], what: str) -> None:
        self.check()
        with self._lock:
            self._pending.append((done, time.monotonic(), what))
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=f"{self._name}-watchdog",
                                            daemon=True)
            self._thread.start()

    def check(self) -> None:
        if self.error is not None:
            raise self.error

    def close(self) -> None:
        self._stop = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        period = min(1.0, self.timeout / 4)
        while not self._stop:
            self._wake.wait(period)
            with self._lock:
                while self._pending and self._pending[0][0]():
                    self._pending.popleft()
                head = self._pending[0] if self._pending else None
            if head is not None and time.monotonic() - head[1] > self.timeout:
                self.error = DistError(f"{self._name}: {head[2]} did not complete within "
                                       f"{self.timeout:g} s (a peer is stuck or dead; set "
                                       "MINISINGA_DIST_TIMEOUT to change the limit); the "
                                       "communicator was aborted")
                self._on_timeout()
                return


class Handle:
    """An operation in flight. `wait()` returns when it is done (re-raising its error)."""

    def __init__(self, what: str, timeout: float):
        self.what = what
        self._timeout = timeout
        self._event = threading.Event()
        self._error: BaseException | None = None

    def _finish(self, error: BaseException | None = None) -> None:
        self._error = error
        self._event.set()

    def done(self) -> bool:
        return self._event.is_set()

    def wait(self) -> None:
        # The worker bounds each collective by the timeout; this outer bound only catches a
        # worker that is stuck in something else.
        if not self._event.wait(3 * self._timeout + 30):
            raise DistError(f"{self.what}: no completion after {3 * self._timeout + 30:.0f} s "
                            "(the communication thread is stuck)")
        if self._error is not None:
            raise self._error


class DoneHandle(Handle):
    """A handle for work already ordered on a device stream (NCCL): nothing to wait for here."""

    def __init__(self, what: str):
        super().__init__(what, DEFAULT_TIMEOUT)
        self._event.set()


class Communicator:
    """The interface of every communicator (host or device).

    Attributes: `world_size`, `rank` (global), `local_rank` (on this host), `backend`."""

    backend = "?"
    world_size: int
    rank: int
    local_rank: int

    # ---- asynchronous, on _core.Tensors ----
    def start_all_reduce(self, tensors: Sequence, scale: float = 1.0, wire: str = "float32",
                         clip: float | None = None) -> Handle:
        """Sums each tensor over the ranks in place, then multiplies by `scale`. Several
        tensors are fused through one buffer. `wire` is the dtype sent ("float32" or
        "float16"); `clip` clamps values to [-clip, clip] before sending."""
        raise NotImplementedError

    def start_sparse_all_reduce(self, tensors: Sequence, residual, spars: float, topk: bool,
                                scale: float = 1.0) -> Handle:
        """Sparse all-reduce of the (fused) tensors: each rank adds its `residual` (or None),
        sends only the top `spars` fraction (topk) or the entries with |v| >= spars, keeps the
        rest in `residual`, and every rank ends with the sum of what all ranks sent (times
        `scale`) in `tensors`."""
        raise NotImplementedError

    def start_broadcast(self, tensors: Sequence, root: int = 0) -> Handle:
        """Copies `root`'s values of each tensor to every rank."""
        raise NotImplementedError

    def all_gather(self, t, out) -> None:
        """`out` (shape (world_size, *t.shape)) receives every rank's `t`, in rank order."""
        raise NotImplementedError

    def barrier(self) -> None:
        raise NotImplementedError

    def synchronize(self) -> None:
        """Waits until every operation issued so far is done."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    # ---- synchronous conveniences ----
    def all_reduce(self, t) -> None:
        """Sums `t` over the ranks, in place."""
        self.start_all_reduce([t]).wait()

    def fused_all_reduce(self, tensors: Sequence) -> None:
        """Sums each tensor over the ranks, in place, through one fused buffer."""
        self.start_all_reduce(list(tensors)).wait()

    def broadcast(self, t, root: int = 0) -> None:
        self.start_broadcast([t], root).wait()


class HostCommunicator(Communicator):
    """Base of the CPU communicators (shm, mpi). Subclasses provide four blocking primitives
    on contiguous 1-D numpy arrays, all bounded by the timeout:

    `_allreduce_(a)` (float32, in place sum, the same bits on every rank), `_allgather(a)`
    (any dtype; returns (world_size, n)), `_bcast_(a, root)` (any dtype, in place),
    `_barrier()`. Everything else (fusion, fp16 on the wire, clipping, sparsification with
    error feedback, scaling) is written once here."""

    def __init__(self, timeout: float | None = None):
        self.timeout = timeout_seconds(timeout)
        self._jobs: queue.Queue = queue.Queue()
        self._broken: BaseException | None = None
        self._inflight: list[Handle] = []
        self._closed = False
        self._cpu = None
        self._worker = threading.Thread(target=self._work, name="minisinga-comm", daemon=True)
        self._worker.start()

    # ---- the worker thread: collectives run one at a time, in issue order ----
    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            fn, handle = job
            if self._broken is not None:
                handle._finish(self._broken)
                continue
            try:
                fn()
                handle._finish()
            except BaseException as e:  # noqa: BLE001 - handed to the waiting thread
                if not isinstance(e, DistError):
                    e = DistError(f"{handle.what} failed on rank {self.rank}: "
                                  f"{type(e).__name__}: {e}")
                self._broken = e
                self._on_failure(e)
                handle._finish(e)

    def _select_device(self):
        """A CPU device of the worker thread's own (created on first use): the fused buffers
        live there, so selection and casts run in our kernels without touching the main
        thread's devices."""
        if self._cpu is None:
            self._cpu = _core.create_cpu_device()
        return self._cpu

    def _fused(self, views):
        """The tensors' values, flattened one after another into a new float32 tensor of the
        worker's device (float16 tensors are reduced in float32 and rounded back when
        scattered): (tensor, numpy view of it)."""
        n = sum(v.size for v in views)
        fused = _core.Tensor([n], self._select_device(), _core.DType.float32)
        buf = fused.host_view()
        np.concatenate([v.reshape(-1) for v in views], out=buf)
        return fused, buf

    def _on_failure(self, error: BaseException) -> None:
        """Called once in the worker when a collective fails (e.g. to tell the peers)."""

    def _submit(self, what: str, fn: Callable[[], None]) -> Handle:
        if self._closed:
            raise DistError(f"{what}: the {self.backend} communicator is closed")
        if self._broken is not None:
            raise self._broken
        h = Handle(what, self.timeout)
        self._inflight = [x for x in self._inflight if not x.done()]
        self._inflight.append(h)
        self._jobs.put((fn, h))
        return h

    # ---- the interface ----
    def start_all_reduce(self, tensors, scale=1.0, wire="float32", clip=None):
        if wire not in ("float32", "float16"):
            raise ValueError(f"all_reduce: wire dtype must be float32 or float16, got {wire!r}")
        views = [_view(t, "all_reduce") for t in tensors]
        _check_float(views, "all_reduce")

        def run():
            if (len(views) == 1 and views[0].dtype == np.float32 and wire == "float32"
                    and clip is None):
                buf = views[0].reshape(-1)
                self._allreduce_(buf)
                if scale != 1.0:
                    buf *= np.float32(scale)
                return
            fused, buf = self._fused(views)
            if clip is not None:
                np.clip(buf, -clip, clip, out=buf)
            if wire == "float16":  # the casts run in our cast kernels (numpy's are ~8x slower)
                dev = self._select_device()
                parts = self._allgather(_core.as_type(fused, _core.DType.float16).host_view())
                got = _core.Tensor([self.world_size, buf.size], dev, _core.DType.float16)
                got.host_view()[:] = parts
                wide = _core.as_type(got, _core.DType.float32).host_view()
                buf[:] = wide[0]
                for r in range(1, self.world_size):
                    buf += wide[r]  # rank order: the same float32 sum on every rank
            else:
                self._allreduce_(buf)
            if scale != 1.0:
                buf *= np.float32(scale)
            _scatter(buf, views)

        return self._submit(f"all_reduce of {sum(v.size for v in views)} elements", run)

    def start_sparse_all_reduce(self, tensors, residual, spars, topk, scale=1.0):
        views = [_view(t, "sparse_all_reduce") for t in tensors]
        _check_float(views, "sparse_all_reduce")
        n = sum(v.size for v in views)
        res = None
        if residual is not None:
            res = _view(residual, "sparse_all_reduce").reshape(-1)
            if res.size != n:
                raise ValueError(f"sparse_all_reduce: residual has {res.size} elements, the "
                                 f"tensors have {n}")

        def run():
            fused, buf = self._fused(views)
            if res is not None:
                buf += res
            idx = _core.select_sparse(fused, spars, topk).to_numpy()
            vals = buf[idx]
            if res is not None:  # error feedback: keep what was not sent
                res[:] = buf
                res[idx] = 0.0
            counts = self._allgather(np.array([idx.size], np.int64))[:, 0]
            m = int(counts.max())
            payload = np.zeros(2 * m, np.int32)  # indices, then the values' bits
            payload[:idx.size] = idx
            payload[m:m + idx.size] = vals.view(np.int32)
            parts = self._allgather(payload)
            buf[:] = 0.0
            for r in range(self.world_size):  # indices are unique within a rank
                c = int(counts[r])
                buf[parts[r, :c]] += parts[r, m:m + c].view(np.float32)
            if scale != 1.0:
                buf *= np.float32(scale)
            _scatter(buf, views)

        return self._submit(f"sparse all_reduce of {n} elements", run)

    def start_broadcast(self, tensors, root=0):
        self._check_root(root)
        views = [_view(t, "broadcast") for t in tensors]

        def run():
            for v in views:
                self._bcast_(v.reshape(-1), root)

        return self._submit(f"broadcast from rank {root}", run)

    def all_gather(self, t, out) -> None:
        v, o = _view(t, "all_gather"), _view(out, "all_gather")
        if o.shape != (self.world_size,) + v.shape or o.dtype != v.dtype:
            raise ValueError(f"all_gather: out has shape {o.shape} and dtype {o.dtype}, "
                             f"expected {(self.world_size,) + v.shape} and {v.dtype}")

        def run():
            o.reshape(self.world_size, -1)[:] = self._allgather(v.reshape(-1))

        self._submit("all_gather", run).wait()

    def all_gather_array(self, a: np.ndarray) -> np.ndarray:
        """Every rank's numpy array `a` (same shape and dtype), stacked in rank order."""
        a = np.ascontiguousarray(a)
        out: list[np.ndarray] = []
        self._submit("all_gather", lambda: out.append(self._allgather(a.reshape(-1)))).wait()
        return out[0].reshape((self.world_size,) + a.shape)

    def barrier(self) -> None:
        self._submit("barrier", self._barrier).wait()

    def synchronize(self) -> None:
        pending, self._inflight = self._inflight, []
        for h in pending:
            h.wait()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._jobs.put(None)
        self._worker.join(timeout=self.timeout)
        self._shutdown()

    def _shutdown(self) -> None:
        """Releases the backend's resources (called once by close)."""

    def _check_root(self, root: int) -> None:
        if not 0 <= root < self.world_size:
            raise ValueError(f"broadcast: root {root} is not a rank (world size "
                             f"{self.world_size})")

    # ---- primitives ----
    def _allreduce_(self, a: np.ndarray) -> None:
        raise NotImplementedError

    def _allgather(self, a: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _bcast_(self, a: np.ndarray, root: int) -> None:
        raise NotImplementedError

    def _barrier(self) -> None:
        raise NotImplementedError


def _view(t, op: str) -> np.ndarray:
    """A numpy view of a CPU `_core.Tensor` (or minisinga Tensor)."""
    core = getattr(t, "data", t)
    try:
        return core.host_view()
    except AttributeError:
        raise TypeError(f"{op}: expected a Tensor, got {type(t).__name__}") from None


def _check_float(views: Sequence[np.ndarray], op: str) -> None:
    for v in views:
        if v.dtype not in (np.float32, np.float16):
            raise TypeError(f"{op}: tensors must be float32 or float16, got {v.dtype}")


def _scatter(buf: np.ndarray, views: Sequence[np.ndarray]) -> None:
    off = 0
    for v in views:
        n = v.size
        v.reshape(-1)[:] = buf[off:off + n]
        off += n
