#!/usr/bin/env bash
# train_cnn.py over {mlp, cnn, resnet, alexnet} x {mnist, cifar10, cifar100}, graph mode,
# on CUDA when a GPU is there, else on the CPU. Extra arguments go to every run, e.g.
#   bash run.sh --data-dir ~/data -m 10
#   bash run.sh --device cpu -m 1 --max-steps 20
# Get the data first (see README.md): python data/download_mnist.py, download_cifar10.py,
# download_cifar100.py (or MINISINGA_DATA / --data-dir pointing at the files).
set -euo pipefail
cd "$(dirname "$0")"

for model in mlp cnn resnet alexnet; do
  for data in mnist cifar10 cifar100; do
    echo "=== train_cnn.py $model $data $*"
    python train_cnn.py "$model" "$data" "$@"
  done
done
