"""A small data-parallel training run for the distributed tests (not collected by pytest).

    python tests/dist_worker.py spawn OUT [options]     # parent spawns --world ranks (shm)
    mpiexec -n 2 python tests/dist_worker.py mpi OUT [options]

Each rank trains an MLP on its slice of every global batch of real Fashion-MNIST images and
writes OUT/rank<r>.npz (parameters, losses, a metric all-reduce). Fault options make one
rank die, hang or lie about the world size. The parent of a spawn run prints each rank's exit
code and exits non-zero if any rank failed."""

from __future__ import annotations

import argparse
import gzip
import os
import signal
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DATA = "/usr/share/datasets/fashion-mnist"
MODES = ["plain", "half", "partialUpdate", "sparseTopK", "sparseThreshold"]


def load(n: int, offset: int = 0):
    """The first `n` Fashion-MNIST training images (flattened, in [0, 1]) and labels."""
    with gzip.open(os.path.join(DATA, "train-images-idx3-ubyte.gz")) as f:
        x = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 784)
    with gzip.open(os.path.join(DATA, "train-labels-idx1-ubyte.gz")) as f:
        y = np.frombuffer(f.read(), np.uint8, offset=8)
    return (x[offset:offset + n].astype(np.float32) / 255, y[offset:offset + n].astype(np.int32))


def make_model(hidden: int):
    from minisinga import layer, model

    class MLP(model.Model):
        def __init__(self):
            super().__init__()
            self.fc1 = layer.Linear(hidden)
            self.relu = layer.ReLU()
            self.fc2 = layer.Linear(10)
            self.loss = layer.SoftMaxCrossEntropy()

        def forward(self, x):
            return self.fc2(self.relu(self.fc1(x)))

        def train_one_batch(self, x, y, dist_option="plain", spars=None):
            out = self.forward(x)
            loss = self.loss(out, y)
            o = self.optimizer
            if dist_option == "plain":
                o(loss)
            elif dist_option == "half":
                o.backward_and_update_half(loss)
            elif dist_option == "partialUpdate":
                o.backward_and_partial_update(loss, threshold=8000)
            elif dist_option == "sparseTopK":
                o.backward_and_sparse_update(loss, topK=True, spars=spars)
            elif dist_option == "sparseThreshold":
                o.backward_and_sparse_update(loss, topK=False, spars=spars)
            return out, loss

    return MLP()


def device_for(args, rank: int):
    from minisinga import device, tensor

    if args.device == "cuda":
        return device.create_cuda_gpu_on(rank)
    return tensor.get_default_device()


def train(rank: int, world: int, sgd_factory, args, dist=None):
    """Trains for args.steps steps on rank `rank` of `world`; returns (params, losses)."""
    from minisinga import tensor

    dev = device_for(args, rank)
    dev.SetRandSeed(args.seed + (rank if args.rank_seeds else 0))
    np.random.seed(0)
    bs = args.batch // world
    x, y = load(args.batch * args.steps)
    tx = tensor.Tensor((bs, 784), dev)
    ty = tensor.Tensor((bs,), dev, dtype=tensor.int32)
    m = make_model(args.hidden)
    sgd = dist if dist is not None else sgd_factory()
    m.set_optimizer(sgd)
    m.compile([tx], is_train=True, use_graph=args.graph, sequential=True)
    losses = []
    for step in range(args.steps):
        if step == args.fault_at and rank == args.fault_rank:
            if args.fault == "die":
                os.kill(os.getpid(), signal.SIGKILL)
            if args.fault == "hang":
                time.sleep(3600)
        lo = step * args.batch + rank * bs
        tx.copy_from_numpy(x[lo:lo + bs])
        ty.copy_from_numpy(y[lo:lo + bs])
        _, loss = m(tx, ty, args.mode, args.spars)
        losses.append(loss.item())
    params = {k: v.to_numpy() for k, v in m.get_params().items()}
    # What the graph recorded, read while m lives (a dropped model releases its recording).
    args.graph_node_names = dev.graph_node_names() if args.graph else []
    return params, np.array(losses)


def sgd_factory(args):
    from minisinga import opt

    return lambda: opt.SGD(lr=args.lr, momentum=0.9, weight_decay=1e-5)


def rank_main(rank, world, holder, args) -> None:
    from minisinga import opt, tensor

    sgd = sgd_factory(args)()
    if holder is None:
        dist = opt.DistOpt(sgd, world_size=args.claim_world)
    else:
        w = args.claim_world if rank == args.fault_rank and args.claim_world else world
        dist = opt.DistOpt(sgd, nccl_id=holder, local_rank=rank, world_size=w)
    rank = dist.global_rank
    params, losses = train(rank, dist.world_size, None, args, dist)
    # The metric path of train_cnn: sum a small tensor over the ranks.
    r = tensor.Tensor((2,), device_for(args, rank))
    r.copy_from_numpy(np.array([rank + 1, 10 * (rank + 1)], np.float32))
    dist.all_reduce(r.data)
    dist.wait()
    np.savez(os.path.join(args.out, f"rank{rank}.npz"), losses=losses, metric=r.to_numpy(),
             world=dist.world_size, **{"p:" + k: v for k, v in params.items()})
    dist.close()


def comm_inputs(rank: int, n: int = 5000):
    """The deterministic per-rank vectors that comm_main reduces (the tests rebuild them)."""
    g = np.random.default_rng(100 + rank)
    return {"a": g.standard_normal(n).astype(np.float32),
            "b": g.standard_normal((3, 7)).astype(np.float32),
            "c": g.standard_normal(11).astype(np.float32),
            "s": g.standard_normal(n).astype(np.float32)}


def comm_main(rank, world, holder, args) -> None:
    """Runs every communicator operation once and saves the results for the tests."""
    from minisinga import tensor
    from minisinga.dist import MpiCommunicator, ShmCommunicator

    comm = MpiCommunicator() if holder is None else ShmCommunicator(holder.token, rank, world)
    rank, world = comm.rank, comm.world_size
    x = comm_inputs(rank)

    def t(a):
        r = tensor.Tensor(a.shape)
        r.copy_from_numpy(a)
        return r

    out = {}
    a = t(x["a"])
    comm.all_reduce(a.data)
    out["sum_a"] = a.to_numpy()
    b, c = t(x["b"]), t(x["c"])
    comm.fused_all_reduce([b.data, c.data])
    out["sum_b"], out["sum_c"] = b.to_numpy(), c.to_numpy()
    h = t(x["a"])
    comm.start_all_reduce([h.data], scale=0.5, wire="float16", clip=1.0).wait()
    out["half_a"] = h.to_numpy()
    for topk, spars in ((True, 0.1), (False, 1.5)):
        s, res = t(x["s"]), t(np.zeros_like(x["s"]))
        comm.start_sparse_all_reduce([s.data], res.data, spars, topk).wait()
        out[f"sparse_{topk}"], out[f"res_{topk}"] = s.to_numpy(), res.to_numpy()
    bc = t(x["b"])
    comm.broadcast(bc.data, world - 1)
    out["bcast"] = bc.to_numpy()
    g = tensor.Tensor((world,) + x["c"].shape)
    comm.all_gather(t(x["c"]).data, g.data)
    out["gather"] = g.to_numpy()
    comm.barrier()
    np.savez(os.path.join(args.out, f"comm{rank}.npz"), **out)
    comm.close()


def _spawned(rank, world, holder, args):
    try:
        (comm_main if args.what == "comm" else rank_main)(rank, world, holder, args)
    except BaseException as e:
        print(f"rank {rank} failed: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
        raise


def spawn(args) -> int:
    import multiprocessing as mp

    from minisinga.dist import NcclIdHolder

    holder = NcclIdHolder()
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_spawned, args=(r, args.world, holder, args))
             for r in range(args.world)]
    for p in procs:
        p.start()
    deadline = time.monotonic() + args.parent_timeout
    while any(p.is_alive() for p in procs) and time.monotonic() < deadline:
        if any(p.exitcode not in (None, 0) for p in procs):
            # One rank failed: the others must fail too, within the communication timeout.
            grace = time.monotonic() + float(os.environ.get("MINISINGA_DIST_TIMEOUT", "60")) + 3
            while any(p.is_alive() for p in procs) and time.monotonic() < grace:
                time.sleep(0.05)
            break
        time.sleep(0.05)
    for r, p in enumerate(procs):
        if p.is_alive():
            print(f"rank {r} still running: killed by the parent", flush=True)
            p.kill()
        p.join()
        print(f"rank {r} exited with code {p.exitcode}", flush=True)
    return 0 if all(p.exitcode == 0 for p in procs) else 1


def parse(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("launch", choices=["spawn", "mpi"])
    ap.add_argument("out")
    ap.add_argument("--world", type=int, default=2)
    ap.add_argument("--what", choices=["train", "comm"], default="train")
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu",
                    help="cuda: rank r trains on GPU r (NCCL)")
    ap.add_argument("--mode", choices=MODES, default="plain")
    ap.add_argument("--spars", type=float, default=0.05)
    ap.add_argument("--graph", action="store_true")
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--batch", type=int, default=64, help="global batch size")
    ap.add_argument("--hidden", type=int, default=32)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--rank-seeds", action="store_true", help="a different init per rank")
    ap.add_argument("--fault", choices=["die", "hang"])
    ap.add_argument("--fault-at", type=int, default=-1)
    ap.add_argument("--fault-rank", type=int, default=1)
    ap.add_argument("--claim-world", type=int, default=None,
                    help="world_size passed to DistOpt (by --fault-rank when spawned)")
    ap.add_argument("--parent-timeout", type=float, default=300)
    return ap.parse_args(argv)


if __name__ == "__main__":
    a = parse()
    os.makedirs(a.out, exist_ok=True)
    if a.launch == "spawn":
        sys.exit(spawn(a))
    (comm_main if a.what == "comm" else rank_main)(None, None, None, a)
