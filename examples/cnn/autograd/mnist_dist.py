"""MNIST CNN (mnist_cnn.py) trained data-parallel over MPI:

    mpiexec -n 2 python mnist_dist.py

DistOpt takes rank and world size from MPI (NCCL on GPUs, MPI on CPU)."""

from mnist_cnn import train_mnist_cnn

if __name__ == "__main__":
    train_mnist_cnn(DIST=True)
