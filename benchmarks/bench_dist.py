"""Data-parallel training on CPU: throughput of 1 rank vs 2 ranks, and the time one step's
gradient communication takes by mode and fusion buffer size (shared memory and MPI).

    python benchmarks/bench_dist.py [--steps 20] [--batch 64] [--model cnn] [--reps 5]

Scaling: the SPEC CNN (or the MLP) in graph mode on random 28x28 images, `--batch` images per
rank per step (weak scaling): one process with one OpenMP thread and with one per core, then
two ranks with one thread each, DistOpt over shared memory (spawned) and over MPI. Communication:
every rank holds gradients shaped like the model's parameters (or ResNet-18's, 11.7 M), cut
into buckets as DistOpt does (fused up to min(threshold, buffSize), larger ones alone), and
the table gives the median wall time to start and finish all of them."""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import shutil
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.append(os.path.join(HERE, ".."))  # a checkout without an installed minisinga
sys.path.insert(0, HERE)

MODES = ["plain", "half", "sparseTopK", "sparseThreshold"]
BUFFS = [16384, 262144, 4194304]


# ---- scaling ----

def train_rate(model: str, batch: int, steps: int, dist=None) -> float:
    """Images per second of this process (graph mode, after 3 warm-up steps)."""
    from bench_train import CNN, MLP

    from minisinga import opt, tensor

    r = np.random.default_rng(0)
    shape = (batch, 784) if model == "mlp" else (batch, 1, 28, 28)
    x = r.random(shape, dtype=np.float32)
    y = r.integers(0, 10, batch).astype(np.int32)
    tensor.get_default_device().SetRandSeed(0)
    tx, ty = tensor.from_numpy(x), tensor.from_numpy(y)
    m = MLP() if model == "mlp" else CNN()
    m.set_optimizer(dist if dist is not None else opt.SGD(0.01, momentum=0.9))
    m.compile([tx], is_train=True, use_graph=True, sequential=True)
    for _ in range(3):
        m(tx, ty)
    if dist is not None:
        dist.barrier()
    t0 = time.perf_counter()
    for _ in range(steps):
        tx.copy_from_numpy(x)
        _, loss = m(tx, ty)
    loss.to_numpy()
    return batch * steps / (time.perf_counter() - t0)


def _dist_rate(rank, world, holder, args, q):
    from minisinga import opt

    d = opt.DistOpt(opt.SGD(0.01, momentum=0.9), nccl_id=holder, local_rank=rank,
                    world_size=world)
    rate = train_rate(args.model, args.batch, args.steps, d)
    q.put((rank, rate))
    d.close()


def _single_rate(rank, world, holder, args, q):
    q.put((rank, train_rate(args.model, args.batch, args.steps)))


def spawn_ranks(target, args, world=2, threads=1):
    """Runs target(rank, world, holder, args, queue) in `world` spawned processes with
    `threads` OpenMP threads each; returns the queued results by rank."""
    from minisinga.dist import NcclIdHolder

    holder = NcclIdHolder()
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    old = os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = str(threads)  # read by each child's OpenMP at start
    procs = [ctx.Process(target=target, args=(r, world, holder, args, q)) for r in range(world)]
    for p in procs:
        p.start()
    if old is None:
        del os.environ["OMP_NUM_THREADS"]
    else:
        os.environ["OMP_NUM_THREADS"] = old
    out = {}
    for _ in procs:
        k, v = q.get(timeout=600)
        out[k] = v
    for p in procs:
        p.join(60)
        if p.exitcode != 0:
            raise RuntimeError(f"a benchmark rank exited with code {p.exitcode}")
    return out


def mpi_run(args, what: str):
    """Runs this script under `mpiexec -n 2` for `what`; returns rank 0's JSON result."""
    exe = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    exe = exe if os.path.exists(exe) else shutil.which("mpiexec")
    if not exe:
        return None
    cmd = [exe, "-n", "2", sys.executable, os.path.abspath(__file__), "--mpi-child", what,
           "--steps", str(args.steps), "--batch", str(args.batch), "--model", args.model,
           "--reps", str(args.reps)]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1800, check=False)
    if p.returncode != 0:
        raise RuntimeError(f"mpiexec run failed:\n{p.stdout}\n{p.stderr}")
    for line in p.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise RuntimeError(f"no result from the MPI run:\n{p.stdout}")


# ---- communication per step ----

def grad_shapes(which: str):
    if which == "resnet18":
        s = [(64, 3, 7, 7)]
        for cin, cout, n in ((64, 64, 2), (64, 128, 2), (128, 256, 2), (256, 512, 2)):
            for i in range(n):
                s += [(cout, cin if i == 0 else cout, 3, 3), (cout, cout, 3, 3)]
                s += [(cout,)] * 4
            if cin != cout:
                s += [(cout, cin, 1, 1), (cout,), (cout,)]
        return s + [(512, 1000), (1000,)]
    if which == "mlp":
        return [(784, 100), (100,), (100, 10), (10,)]
    return [(20, 1, 5, 5), (20,), (50, 20, 5, 5), (50,), (800, 500), (500,), (500, 10), (10,)]


def buckets(sizes, limit):
    """DistOpt's bucketing: gradients (in backward order) fused up to `limit` elements; one
    larger than `limit` goes alone."""
    out, cur, n = [], [], 0
    for i, s in enumerate(sizes):
        if s > limit:
            out.append([i])
        else:
            if n and n + s > limit:
                out.append(cur)
                cur, n = [], 0
            cur.append(i)
            n += s
    return out + ([cur] if cur else [])


def comm_times(comm, which: str, reps: int):
    """{(mode, buffSize): (number of buckets, median ms)} for one rank."""
    from minisinga import tensor

    shapes = grad_shapes(which)[::-1]  # backward yields the last layer first
    r = np.random.default_rng(comm.rank)
    values = [r.standard_normal(s).astype(np.float32) * 0.01 for s in shapes]
    grads = [tensor.from_numpy(v) for v in values]
    sizes = [g.size() for g in grads]
    res = {}
    for mode in MODES:
        for buff in BUFFS:
            plan = buckets(sizes, min(2097152, buff) if mode != "plain" else buff)
            resid = [tensor.zeros((sum(sizes[i] for i in b),)) for b in plan]
            times = []
            for _ in range(reps):
                for g, v in zip(grads, values):  # the reductions work in place
                    g.copy_from_numpy(v)
                comm.barrier()
                t0 = time.perf_counter()
                hs = []
                for b, rr in zip(plan, resid):
                    ts = [grads[i].data for i in b]
                    if mode == "plain":
                        hs.append(comm.start_all_reduce(ts, scale=0.5))
                    elif mode == "half":
                        hs.append(comm.start_all_reduce(ts, scale=0.5, wire="float16"))
                    else:
                        topk = mode == "sparseTopK"
                        hs.append(comm.start_sparse_all_reduce(
                            ts, rr.data, 0.05 if topk else 0.01, topk, scale=0.5))
                for h in hs:
                    h.wait()
                times.append(time.perf_counter() - t0)
            res[f"{mode}/{buff}"] = (len(plan), 1e3 * float(np.median(times)))
    return res


def _shm_comm(rank, world, holder, args, q):
    from minisinga.dist import ShmCommunicator

    c = ShmCommunicator(holder.token, rank, world)
    q.put((rank, {w: comm_times(c, w, args.reps) for w in (args.model, "resnet18")}))
    c.close()


# ---- main ----

def mpi_child(args) -> None:
    from minisinga import opt

    if args.mpi_child == "rate":
        d = opt.DistOpt(opt.SGD(0.01, momentum=0.9))
        rate = train_rate(args.model, args.batch, args.steps, d)
        rates = d.communicator.all_gather_array(np.array([rate]))
        result = float(rates.sum())
        d.close()
        rank = d.global_rank
    else:
        from minisinga.dist import MpiCommunicator

        c = MpiCommunicator()
        result = {w: comm_times(c, w, args.reps) for w in (args.model, "resnet18")}
        rank = c.rank
        c.close()
    if rank == 0:
        print("RESULT " + json.dumps(result), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--batch", type=int, default=64, help="images per rank per step")
    ap.add_argument("--model", choices=["cnn", "mlp"], default="cnn")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--skip-mpi", action="store_true")
    ap.add_argument("--mpi-child", choices=["rate", "comm"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.mpi_child:
        mpi_child(args)
        return

    print(f"Scaling: {args.model}, graph mode, batch {args.batch} per rank, {args.steps} steps "
          f"({os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at start)")
    cores = os.cpu_count() or 1
    one = spawn_ranks(_single_rate, args, 1, 1)[0]
    rows = [("1 process, 1 thread", "-", one)]
    if cores > 1:
        rows.append((f"1 process, {cores} threads", "-",
                     spawn_ranks(_single_rate, args, 1, cores)[0]))
    shm = spawn_ranks(_dist_rate, args)
    rows.append(("2 ranks, 1 core each", "shm", sum(shm.values())))
    if not args.skip_mpi:
        m = mpi_run(args, "rate")
        if m is not None:
            rows.append(("2 ranks, 1 core each", "mpi", m))
    print(f"{'run':<24}{'backend':>8}{'images/s':>12}{'vs 1 thread':>13}")
    for name, be, rate in rows:
        print(f"{name:<24}{be:>8}{rate:>12.1f}{rate / one:>12.2f}x")

    print("\nGradient communication per step, 2 ranks (median of "
          f"{args.reps}; buckets as DistOpt cuts them)")
    results = {"shm": spawn_ranks(_shm_comm, args)[0]}
    if not args.skip_mpi:
        m = mpi_run(args, "comm")
        if m is not None:
            results["mpi"] = m
    for which in (args.model, "resnet18"):
        n = sum(int(np.prod(s)) for s in grad_shapes(which))
        print(f"\n{which}: {n} parameters")
        head = f"{'mode':<18}{'buffSize':>10}{'buckets':>9}"
        print(head + "".join(f"{be + ' ms':>12}" for be in results))
        for mode in MODES:
            for buff in BUFFS:
                key = f"{mode}/{buff}"
                nb = results["shm"][which][key][0]
                print(f"{mode:<18}{buff:>10}{nb:>9}"
                      + "".join(f"{r[which][key][1]:>12.2f}" for r in results.values()))


if __name__ == "__main__":
    main()
