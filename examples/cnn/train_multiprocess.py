"""Data-parallel training with one process per device on one host:

    python train_multiprocess.py cnn mnist -w 2 [train_cnn.py options] [-d DIST_OPTION] [-s SPARS]

The parent makes a group id with `NcclIdHolder()` and spawns one process per rank; each wraps
its SGD in `opt.DistOpt(sgd, nccl_id=..., local_rank=r, world_size=w)` and runs train_cnn.run
on its slice of the data. CUDA ranks all-reduce through NCCL, CPU ranks through shared memory
(each with cores / world_size OpenMP threads unless OMP_NUM_THREADS is set). If a rank fails,
the others stop with an error within MINISINGA_DIST_TIMEOUT seconds (default 60) and the
script exits non-zero."""

from __future__ import annotations

import multiprocessing
import os
import sys
import time

from train_mpi import build_parser, check_devices, make_sgd, run_rank


def rank_main(args, local_rank: int, world_size: int, nccl_id) -> None:
    from minisinga import opt

    sgd = opt.DistOpt(make_sgd(args), nccl_id=nccl_id, local_rank=local_rank,
                      world_size=world_size)
    try:
        code = run_rank(args, sgd)
    except BaseException as e:
        print(f"rank {local_rank}: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
        raise
    finally:
        sgd.close()
    sys.exit(code)


def supervise(procs, timeout: float) -> int:
    """Waits for the ranks. When one fails, the others get the communication timeout (plus a
    little) to fail too; any still running then is killed. Returns the exit status."""
    failed_at = None
    while any(p.is_alive() for p in procs):
        if failed_at is None and any(p.exitcode not in (None, 0) for p in procs):
            failed_at = time.monotonic()
        if failed_at is not None and time.monotonic() - failed_at > timeout + 5:
            for r, p in enumerate(procs):
                if p.is_alive():
                    print(f"rank {r} still running {timeout:g} s after another rank failed: "
                          "killed", file=sys.stderr, flush=True)
                    p.kill()
        time.sleep(0.1)
    bad = [(r, p.exitcode) for r, p in enumerate(procs) if p.exitcode != 0]
    for r, code in bad:
        print(f"rank {r} exited with code {code}", file=sys.stderr, flush=True)
    return 1 if bad else 0


def main() -> None:
    ap = build_parser("Data-parallel training, one process per device on one host.")
    ap.add_argument("-w", "--world-size", default=2, type=int,
                    help="number of processes (devices) to train with", dest="world_size")
    args = ap.parse_args()
    if args.world_size < 1:
        sys.exit(f"error: --world-size must be >= 1, got {args.world_size}")
    check_devices(args, args.world_size)

    from minisinga.dist import NcclIdHolder, timeout_seconds

    nccl_id = NcclIdHolder()
    ctx = multiprocessing.get_context("spawn")  # no fork after CUDA / OpenMP start-up
    if "OMP_NUM_THREADS" not in os.environ:  # the ranks share the cores
        os.environ["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // args.world_size))
    procs = [ctx.Process(target=rank_main, args=(args, r, args.world_size, nccl_id),
                         name=f"rank{r}") for r in range(args.world_size)]
    for p in procs:
        p.start()
    try:
        code = supervise(procs, timeout_seconds())
    except KeyboardInterrupt:
        for p in procs:
            p.kill()
        code = 130
    sys.exit(code)


if __name__ == "__main__":
    main()
