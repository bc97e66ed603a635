"""MNIST CNN (mnist_cnn.py) trained data-parallel over MPI:

    mpiexec -n 2 python mnist_dist.py [--max-epoch 10] [--max-steps S] [--data-dir DIR]

DistOpt takes rank and world size from MPI (NCCL on GPUs, MPI on CPU)."""

import argparse
import sys

from mnist_cnn import train_mnist_cnn

if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-m", "--max-epoch", default=10, type=int, dest="max_epoch")
    ap.add_argument("-b", "--batch-size", default=64, type=int, dest="batch_size")
    ap.add_argument("-l", "--learning-rate", default=0.005, type=float, dest="lr")
    ap.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--max-steps", default=None, type=int)
    ap.add_argument("--seed", default=0, type=int)
    a = ap.parse_args()
    train_mnist_cnn(DIST=True, max_epoch=a.max_epoch, batch_size=a.batch_size, lr=a.lr,
                    device=a.device, data_dir=a.data_dir, max_steps=a.max_steps, seed=a.seed)
    sys.exit(0)
