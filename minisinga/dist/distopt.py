"""DistOpt: synchronous data-parallel training around any Optimizer.

One gradient pipeline serves every mode:

    backward ──(p, g) as each gradient is final──> bucket (fused up to the limit, or alone when
    large) ──start node──> communicator (optional compression) ... ──wait node──> update

A mode is a small strategy object that says what a bucket carries (gradients, or parameters
for partialUpdate), how it is communicated (fp32, fp16 on the wire, sparse with error
feedback, or only one partition per step) and what happens after the wait (the update).

Every communication is issued through `dev.exec_python(fn, reads, writes, name)`: in eager
mode that runs `fn` at once; while a graph is being recorded it becomes a graph node, so each
replay communicates again. A start node only hands the bucket to the communicator (a worker
thread on CPU, the device stream on CUDA) and returns, so communication overlaps the rest of
backward; the matching wait node comes after the last gradient. All comm nodes also list one
token tensor per device, which keeps them in issue order under any graph scheduling.
"""

from __future__ import annotations

import weakref

from .. import _core, autograd, tensor
from ..device import eager
from ..tensor import Tensor
from .base import Communicator, DistError
from .ids import NcclIdHolder


def _check_int(name: str, v, lo: int, hi: int | None = None) -> int:
    if not isinstance(v, int) or isinstance(v, bool):
        raise TypeError(f"DistOpt: {name} must be an int, got {v!r}")
    if v < lo or (hi is not None and v >= hi):
        rng = f"in [{lo}, {hi})" if hi is not None else f">= {lo}"
        raise ValueError(f"DistOpt: {name} must be {rng}, got {v}")
    return v


def _core_of(t):
    return t.data if isinstance(t, Tensor) else t


class _Bucket:
    """Tensors communicated together: (param, grad, item) triples in backward order."""

    def __init__(self, index: int):
        self.index = index
        self.entries: list[tuple] = []
        self.numel = 0
        self.handle = None
        self.extra: list = []  # more core tensors the comm nodes read and write (residuals)

    def add(self, p: Tensor, g: Tensor, item: Tensor) -> None:
        self.entries.append((p, g, item))
        self.numel += item.size()

    def tensors(self) -> list:
        return [item.data for _, _, item in self.entries]


# ---- modes: small strategies plugged into the one pipeline ----

class _Mode:
    name = "plain"

    def __init__(self, dopt: DistOpt, threshold: int):
        self.dopt = dopt
        self.threshold = int(threshold)
        if self.threshold < 1:
            raise ValueError(f"DistOpt {self.name}: threshold must be >= 1, got {threshold}")

    def item(self, p: Tensor, g: Tensor) -> Tensor:
        """What the bucket carries for this gradient."""
        return g

    def prepare(self, b: _Bucket) -> None:
        """Creates per-bucket state (eagerly, once) before the bucket's nodes are issued."""

    def start(self, comm: Communicator, tensors: list, b: _Bucket):
        """Starts the bucket's communication; returns a Handle (or None: nothing sent)."""
        return comm.start_all_reduce(tensors, scale=1.0 / self.dopt.world_size)

    def finish(self, b: _Bucket) -> None:
        """After the wait: update the bucket's parameters with the averaged gradients."""
        for p, g, _ in b.entries:
            self.dopt.opt.update(p, g)

    def end(self, buckets: list[_Bucket]) -> None:
        """After every bucket is done, before the optimizer steps."""


class _Half(_Mode):
    name = "half"

    def __init__(self, dopt, threshold, clipping: bool, clip_value: float):
        super().__init__(dopt, threshold)
        self.clip = float(clip_value) if clipping else None
        if self.clip is not None and not self.clip > 0:
            raise ValueError(f"DistOpt half: clip_Value must be positive, got {clip_value}")

    def start(self, comm, tensors, b):
        return comm.start_all_reduce(tensors, scale=1.0 / self.dopt.world_size, wire="float16",
                                     clip=self.clip)


def _check_spars(spars, topk: bool) -> float:
    """spars as a float, checked at the call (a bad one inside the communication thread
    would break the communicator for every later call, on every rank)."""
    try:
        spars = float(spars)
    except (TypeError, ValueError):
        raise TypeError(f"DistOpt: spars must be a number, got {spars!r}") from None
    if topk and not 0.0 < spars <= 1.0:
        raise ValueError(f"DistOpt sparseTopK: spars is the fraction of elements sent, "
                         f"in (0, 1]; got {spars}")
    if not topk and not spars >= 0.0:
        raise ValueError(f"DistOpt sparseThreshold: spars is the magnitude threshold, "
                         f">= 0; got {spars}")
    return spars


class _Sparse(_Mode):
    name = "sparse"

    def __init__(self, dopt, threshold, spars: float, topk: bool, corr: bool):
        super().__init__(dopt, threshold)
        self.spars, self.topk, self.corr = _check_spars(spars, topk), bool(topk), bool(corr)

    def prepare(self, b):
        if not self.corr:
            return
        p = b.entries[0][0]
        key = (p.device.name, self.threshold, b.index)
        res = self.dopt._residuals.get(key)
        if res is None or res.size() != b.numel:
            with eager(p.device):
                res = tensor.zeros((b.numel,), p.device)
            self.dopt._residuals[key] = res
        b.extra = [res.data]

    def start(self, comm, tensors, b):
        res = b.extra[0] if b.extra else None
        return comm.start_sparse_all_reduce(tensors, res, self.spars, self.topk,
                                            scale=1.0 / self.dopt.world_size)


class _Partial(_Mode):
    name = "partialUpdate"

    def item(self, p, g):
        self.dopt.opt.update(p, g)  # local update first; the bucket then carries parameters
        return p

    def start(self, comm, tensors, b):
        if b.index != self.dopt._partial:
            return None
        return comm.start_all_reduce(tensors, scale=1.0 / self.dopt.world_size)

    def finish(self, b):
        pass

    def end(self, buckets):
        n = len(buckets)

        def advance():
            self.dopt._partial = (self.dopt._partial + 1) % n

        self.dopt._node(buckets[0].entries[0][0].device, advance, [], "dist:partial_next")


class DistOpt:
    """Wraps `opt` for data-parallel training; averages gradients over the ranks.

    Args:
        opt: the optimizer that updates this rank's parameters.
        nccl_id: an `NcclIdHolder` made in the parent process, for ranks spawned on one host
            (train_multiprocess.py). Without it the ranks come from MPI (`mpiexec`).
        local_rank: this process's rank on the host (required with nccl_id; under MPI the
            default is the rank among the processes on this host).
        world_size: number of ranks (required with nccl_id; under MPI it must match).
        buffSize: elements per fused buffer; larger gradients are all-reduced on their own.

    Attributes: `world_size`, `local_rank`, `global_rank`, `communicator` (the host one).

    The first call broadcasts rank 0's parameters (as backward yields them, before their
    first update) so all ranks continue from identical values. CPU tensors communicate
    through shared memory (spawned ranks) or MPI; CUDA tensors through NCCL.
    """

    def __init__(self, opt, nccl_id: NcclIdHolder | None = None,
                 local_rank: int | None = None, world_size: int | None = None,
                 buffSize: int = 4194304):
        from ..opt import Optimizer  # here: opt.py re-exports DistOpt at its end

        if not isinstance(opt, Optimizer):
            raise TypeError(f"DistOpt: opt must be an Optimizer (e.g. opt.SGD), got "
                            f"{type(opt).__name__}")
        self.opt = opt
        self.buffSize = _check_int("buffSize", buffSize, 1)
        self._nccl_id = nccl_id
        if nccl_id is not None:
            if not isinstance(nccl_id, NcclIdHolder):
                raise TypeError(f"DistOpt: nccl_id must be an NcclIdHolder, got "
                                f"{type(nccl_id).__name__}")
            if world_size is None or local_rank is None:
                raise ValueError("DistOpt: with nccl_id, pass local_rank and world_size too")
            world_size = _check_int("world_size", world_size, 1)
            local_rank = _check_int("local_rank", local_rank, 0, world_size)
            from .shm import ShmCommunicator

            self.communicator: Communicator = ShmCommunicator(nccl_id.token, local_rank,
                                                              world_size)
            self.global_rank = local_rank
        else:
            if world_size is not None:
                _check_int("world_size", world_size, 1)
            if local_rank is not None:
                _check_int("local_rank", local_rank, 0)
            from .mpi import MpiCommunicator

            comm = MpiCommunicator()
            if world_size is not None and world_size != comm.world_size:
                comm.close()
                raise DistError(f"DistOpt: world_size={world_size} but mpiexec started "
                                f"{comm.world_size} processes")
            if local_rank is not None and local_rank >= comm.local_size:
                comm.close()
                raise ValueError(f"DistOpt: local_rank {local_rank} is out of range: "
                                 f"{comm.local_size} MPI processes run on this host")
            self.communicator = comm
            world_size = comm.world_size
            local_rank = comm.local_rank if local_rank is None else local_rank
            self.global_rank = comm.rank
        self.world_size, self.local_rank = world_size, local_rank
        self._nccl = None
        self._tokens: dict[str, Tensor] = {}
        self._pending: list = []
        self._residuals: dict[tuple, Tensor] = {}
        self._partial = 0
        # The parameters broadcast from rank 0, by id (a WeakSet would compare Tensors with ==).
        self._synced: dict[int, weakref.ref] = {}
        self._device = None

    # ---- the training modes (SINGA's names) ----
    def __call__(self, loss: Tensor) -> None:
        self.backward_and_update(loss)

    def backward_and_update(self, loss: Tensor, threshold: int | None = None) -> None:
        """Backward, all-reduce (mean) of the gradients, update, step. Gradients of more
        than `threshold` elements (default buffSize) are reduced alone, the rest fused."""
        self._step(loss, _Mode(self, self.buffSize if threshold is None else threshold))

    def backward_and_update_half(self, loss: Tensor, threshold: int = 2097152,
                                 clipping: bool = False, clip_Value: float = 100) -> None:
        """Like backward_and_update with float16 on the wire; with `clipping`, gradients are
        clamped to [-clip_Value, clip_Value] first."""
        self._step(loss, _Half(self, threshold, clipping, clip_Value))

    def backward_and_partial_update(self, loss: Tensor, threshold: int = 2097152) -> None:
        """Each rank updates locally, then one partition of the parameters (partitions of up
        to `threshold` elements, taken in turn, one per step) is averaged over the ranks."""
        self._step(loss, _Partial(self, threshold))

    def backward_and_sparse_update(self, loss: Tensor, threshold: int = 2097152,
                                   spars: float = 0.05, topK: bool = False,
                                   corr: bool = True) -> None:
        """Sends only significant gradient entries: the `spars` fraction of largest
        magnitude (topK) or those with |g| >= spars. With `corr`, what is not sent is kept
        in a local residual and added to the next step's gradient (error feedback)."""
        self._step(loss, _Sparse(self, threshold, spars, topK, corr))

    # ---- the pipeline ----
    def _step(self, loss: Tensor, mode: _Mode) -> None:
        dev = loss.device
        comm = self._comm_for(dev)
        self.opt._begin(dev)
        limit = min(mode.threshold, self.buffSize)
        buckets: list[_Bucket] = []
        cur = _Bucket(0)
        dev.set_graph_phase("backward")
        for p, g in autograd.backward(loss, retain_graph=False):
            dev.set_graph_phase("communication")
            seen = self._synced.get(id(p))
            if seen is None or seen() is not p:  # its first step (maybe after others')
                with eager(dev):
                    comm.broadcast(p.data, 0)
                self._synced[id(p)] = weakref.ref(p)
            item = mode.item(p, g)
            if item.size() > limit:
                alone = _Bucket(len(buckets))
                alone.add(p, g, item)
                buckets.append(self._launch(dev, comm, mode, alone))
            else:
                if cur.numel and cur.numel + item.size() > limit:
                    cur.index = len(buckets)
                    buckets.append(self._launch(dev, comm, mode, cur))
                    cur = _Bucket(0)
                cur.add(p, g, item)
            dev.set_graph_phase("backward")
        if cur.numel:
            cur.index = len(buckets)
            buckets.append(self._launch(dev, comm, mode, cur))
        if not buckets:
            raise ValueError("DistOpt: backward yielded no parameter gradients")
        for b in buckets:
            dev.set_graph_phase("communication")
            self._await(dev, b)
            dev.set_graph_phase("update")
            mode.finish(b)
        mode.end(buckets)
        self.opt.step()

    def _launch(self, dev, comm, mode: _Mode, b: _Bucket) -> _Bucket:
        mode.prepare(b)
        tensors = b.tensors()

        def start():
            b.handle = mode.start(comm, tensors, b)

        self._node(dev, start, tensors + b.extra, f"dist:{mode.name}")
        return b

    def _await(self, dev, b: _Bucket) -> None:
        def wait():
            h, b.handle = b.handle, None
            if h is not None:
                h.wait()

        self._node(dev, wait, b.tensors() + b.extra, "dist:wait")

    def _node(self, dev, fn, tensors: list, name: str) -> None:
        """Runs `fn` now (eager) or records it (graph), ordered after every earlier comm node."""
        token = self._tokens.get(dev.name)
        if token is None:
            with eager(dev):
                token = tensor.zeros((1,), dev)
            self._tokens[dev.name] = token
        ts = list(tensors) + [token.data]
        dev.exec_python(fn, ts, ts, name)

    def _comm_for(self, dev) -> Communicator:
        self._device = dev
        if not dev.is_cuda:
            return self.communicator
        if self._nccl is None:
            self._nccl = self._make_nccl(dev)
        return self._nccl

    def _make_nccl(self, dev) -> Communicator:
        from ..device import get_num_gpus
        from .nccl import NcclCommunicator

        if dev.id() >= get_num_gpus():
            raise ValueError(f"DistOpt: device {dev.name} does not exist ({get_num_gpus()} "
                             "GPUs visible)")
        holder = self._nccl_id
        if holder is None:  # MPI: rank 0 makes the id and broadcasts it
            mine = NcclIdHolder(with_nccl=True) if self.global_rank == 0 else None
            holder = self.communicator.bcast_object(mine, 0)
        if holder.id is None:
            raise DistError("DistOpt: CUDA tensors need an NCCL id, but the NcclIdHolder was "
                            "made without one: "
                            + (holder.nccl_error or "no GPU was visible where it was made"))
        self.communicator.barrier()  # all ranks present before NCCL's blocking init
        return NcclCommunicator(holder.id, self.global_rank, self.world_size, dev,
                                self.local_rank, self.communicator.timeout)

    # ---- SINGA's lower-level API ----
    def all_reduce(self, t) -> None:
        """Starts summing `t` (Tensor or core tensor) over the ranks, in place; see wait()."""
        self._issue(t, lambda comm, ts: comm.start_all_reduce(ts), "dist:all_reduce")

    def fused_all_reduce(self, tensors, send: bool = True) -> None:
        """Starts summing the tensors over the ranks through one fused buffer."""
        if send:
            self._issue(tensors, lambda comm, ts: comm.start_all_reduce(ts),
                        "dist:fused_all_reduce")

    def all_reduce_half(self, t) -> None:
        """all_reduce with float16 on the wire."""
        self._issue(t, lambda comm, ts: comm.start_all_reduce(ts, wire="float16"),
                    "dist:all_reduce_half")

    def fused_all_reduce_half(self, tensors) -> None:
        self._issue(tensors, lambda comm, ts: comm.start_all_reduce(ts, wire="float16"),
                    "dist:fused_all_reduce_half")

    def sparsification(self, t, accumulation=None, spars: float = 0.05,
                       topK: bool = False) -> None:
        """Sparse sum of `t` over the ranks; `accumulation` (same size) is the residual."""
        self.fused_sparsification([t], accumulation, spars, topK)

    def fused_sparsification(self, tensors, accumulation=None, spars: float = 0.05,
                             topK: bool = False) -> None:
        spars = _check_spars(spars, topK)
        res = _core_of(accumulation) if accumulation is not None else None
        extra = [res] if res is not None else []
        self._issue(tensors, lambda comm, ts: comm.start_sparse_all_reduce(ts, res, spars, topK),
                    "dist:sparsification", extra)

    def _issue(self, ts, start, name: str, extra=()) -> None:
        ts = [_core_of(t) for t in (ts if isinstance(ts, (list, tuple)) else [ts])]
        if not ts:
            raise ValueError(f"{name}: no tensors given")
        dev = ts[0].device
        comm = self._comm_for(dev)

        def fn():
            self._pending.append(start(comm, ts))

        self._node(dev, fn, ts + list(extra), name)

    def wait(self) -> None:
        """Waits for every all_reduce / sparsification started with the calls above."""
        dev = self._device
        if dev is None:
            return
        comm = self._comm_for(dev)

        def fn():
            pending, self._pending = self._pending, []
            for h in pending:
                h.wait()
            comm.synchronize()

        self._node(dev, fn, [], "dist:wait")

    def update(self, param: Tensor, grad: Tensor) -> None:
        """Updates `param` with `grad` / world_size (SINGA: the gradient was summed)."""
        if self.world_size > 1:
            _core.unary(_core.UnaryOp.MulScalar, grad.data, 1.0 / self.world_size,
                        out=grad.data)
        self.opt.update(param, grad)

    def step(self) -> None:
        self.opt.step()

    @property
    def lr(self):
        return self.opt.lr

    @lr.setter
    def lr(self, lr) -> None:
        self.opt.lr = lr

    def get_states(self):
        return self.opt.get_states()

    def set_states(self, states) -> None:
        self.opt.set_states(states)

    def barrier(self) -> None:
        self.communicator.barrier()

    def close(self) -> None:
        """Closes the communicators (also done at interpreter exit)."""
        if self._nccl is not None:
            self._nccl.close()
            self._nccl = None
        self.communicator.close()

    def __getattr__(self, name):
        # lr_value, step_counter, dtype, ... come from the wrapped optimizer.
        opt = self.__dict__.get("opt")
        if opt is None:
            raise AttributeError(name)
        return getattr(opt, name)
