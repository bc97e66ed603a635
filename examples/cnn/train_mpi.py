"""Data-parallel training with one process per MPI rank:

    mpiexec -n 2 python train_mpi.py cnn mnist [train_cnn.py options] [-d DIST_OPTION] [-s SPARS]

Each rank wraps its SGD in `opt.DistOpt(sgd)`, which takes rank and world size from MPI, and
runs train_cnn.run on its slice of the data. CUDA ranks all-reduce through NCCL (local rank r
uses GPU r; choose GPUs with CUDA_VISIBLE_DEVICES), CPU ranks through MPI. The pip packages
`mpi4py` and `mpich` (dependencies of minisinga) provide `mpiexec`."""

from __future__ import annotations

import argparse
import sys

from train_cnn import DATASETS, add_common_options, learning_rate

DIST_OPTIONS = ["plain", "half", "partialUpdate", "sparseTopK", "sparseThreshold"]
MODELS = ["resnet", "xceptionnet", "cnn", "mlp"]


def build_parser(description: str) -> argparse.ArgumentParser:
    """train_cnn.py's command line plus -d/--dist-option and -s/--sparsification."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("model", choices=MODELS)
    p.add_argument("data", choices=DATASETS)
    p.add_argument("-p", choices=["float32", "float16"], default="float32", dest="precision")
    p.add_argument("-m", "--max-epoch", default=100, type=int, help="maximum epochs",
                   dest="max_epoch")
    p.add_argument("-b", "--batch-size", default=64, type=int, help="batch size per process",
                   dest="batch_size")
    p.add_argument("-l", "--learning-rate", default=0.005, type=learning_rate,
                   help="initial learning rate", dest="lr")
    p.add_argument("-i", "--device-id", default=0, type=int,
                   help="kept for SINGA's command line: local rank r trains on GPU r",
                   dest="device_id")
    p.add_argument("-g", "--disable-graph", action="store_false",
                   help="disable graph (run eagerly)", dest="graph")
    p.add_argument("-v", "--log-verbosity", default=0, type=int, help="logging verbosity",
                   dest="verbosity")
    add_common_options(p)
    p.add_argument("-d", "--dist-option", default="plain", choices=DIST_OPTIONS,
                   help="distributed training option", dest="dist_option")
    p.add_argument("-s", "--sparsification", default=0.05, type=float,
                   help="sparseTopK: fraction of gradient elements sent; sparseThreshold: "
                        "magnitude threshold", dest="spars")
    return p


def check_devices(args, local_ranks: int) -> None:
    """Clear errors for device choices that cannot work, before training starts."""
    from minisinga import device

    if args.device == "cuda" or (args.device == "auto" and device.cuda_available()):
        if args.device_id != 0:
            sys.exit(f"error: --device-id {args.device_id}: the distributed scripts put local "
                     "rank r on GPU r (select GPUs with CUDA_VISIBLE_DEVICES)")
        n = device.get_num_gpus()
        if local_ranks > n:
            sys.exit(f"error: {local_ranks} processes on this host need {local_ranks} GPUs, "
                     f"but {n} are visible (use --device cpu to train on the CPU)")


def make_sgd(args):
    from minisinga import opt, tensor

    dtype = tensor.float16 if args.precision == "float16" else tensor.float32
    return opt.SGD(lr=args.lr, momentum=0.9, weight_decay=1e-5, dtype=dtype)


def run_rank(args, sgd) -> int:
    """train_cnn.run for this rank; returns the exit status (errors as train_cnn.py)."""
    import train_cnn

    try:
        train_cnn.run(sgd.global_rank, sgd.world_size, sgd.local_rank, args.max_epoch,
                      args.batch_size, args.model, args.data, sgd, args.graph, args.verbosity,
                      args.dist_option, args.spars, args.precision, device=args.device,
                      data_dir=args.data_dir, max_steps=args.max_steps, seed=args.seed,
                      image_size=args.image_size)
    except (train_cnn.DatasetError, train_cnn.UsageError) as e:
        print(f"error (rank {sgd.global_rank}): {e}", file=sys.stderr, flush=True)
        return 2 if isinstance(e, train_cnn.UsageError) else 1  # as train_cnn.py
    return 0


def main() -> None:
    args = build_parser("Data-parallel training, one process per MPI rank.").parse_args()
    from minisinga import opt

    sgd = opt.DistOpt(make_sgd(args))
    check_devices(args, sgd.communicator.local_size)
    try:
        code = run_rank(args, sgd)
    finally:
        sgd.close()
    sys.exit(code)


if __name__ == "__main__":
    main()
