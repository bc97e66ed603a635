"""train_cnn.py's recipe for `cnn mnist` run in PyTorch: the same CNN with the same
initialisation (Gaussian, std sqrt(2 / (fan_in + fan_out)), zero biases), SGD (lr 0.005,
momentum 0.9, weight decay 1e-5), batch 64, shuffling and augmentation (train_cnn.py's own
function), evaluated on the full test batches after each epoch. It shows what the recipe
itself reaches, independently of minisinga; compare with train_cnn.py's printed lines.

    python benchmarks/recipe_pytorch.py [--epochs 3] [--no-augment] [--lr 0.005]
        [--data-dir /usr/share/datasets/fashion-mnist]
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "examples", "cnn"))

import train_cnn  # noqa: E402
from data import mnist  # noqa: E402

BATCH = 64


def make_cnn(nn, torch):
    net = nn.Sequential(nn.Conv2d(1, 20, 5), nn.ReLU(), nn.MaxPool2d(2, 2),
                        nn.Conv2d(20, 50, 5), nn.ReLU(), nn.MaxPool2d(2, 2), nn.Flatten(),
                        nn.Linear(800, 500), nn.ReLU(), nn.Linear(500, 10))
    with torch.no_grad():
        for m in net:
            if isinstance(m, nn.Conv2d):  # as minisinga's layer.Conv2d
                fan = m.in_channels * m.kernel_size[0] * m.kernel_size[1] + m.out_channels
            elif isinstance(m, nn.Linear):  # as layer.Linear
                fan = m.in_features + m.out_features
            else:
                continue
            m.weight.normal_(0.0, math.sqrt(2.0 / fan))
            m.bias.zero_()
    return net


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--lr", type=float, default=0.005)
    ap.add_argument("--no-augment", action="store_true", help="no pad/crop/flip")
    ap.add_argument("--data-dir", default="/usr/share/datasets/fashion-mnist")
    args = ap.parse_args()
    try:
        import torch
        import torch.nn as nn
    except ImportError:
        sys.exit("recipe_pytorch.py needs PyTorch (pip install torch)")
    torch.manual_seed(0)
    np.random.seed(0)
    torch.set_num_threads(os.cpu_count() or 1)
    train_x, train_y, val_x, val_y = mnist.load(args.data_dir)
    net = make_cnn(nn, torch)
    sgd = torch.optim.SGD(net.parameters(), lr=args.lr, momentum=0.9, weight_decay=1e-5)
    lossf = nn.CrossEntropyLoss()
    idx = np.arange(train_x.shape[0])
    nb, nv = train_x.shape[0] // BATCH, val_x.shape[0] // BATCH
    print(f"PyTorch {torch.__version__}, cnn mnist, lr {args.lr}, augmentation "
          f"{'off' if args.no_augment else 'on'}", flush=True)
    for epoch in range(args.epochs):
        t0 = time.time()
        np.random.shuffle(idx)
        net.train()
        correct, loss_sum = 0, 0.0
        for b in range(nb):
            sel = idx[b * BATCH:(b + 1) * BATCH]
            x, y = train_x[sel], train_y[sel]
            if not args.no_augment:
                x = train_cnn.augmentation(x, BATCH)
            sgd.zero_grad()
            out = net(torch.from_numpy(np.ascontiguousarray(x)))
            loss = lossf(out, torch.from_numpy(y.astype(np.int64)))
            loss.backward()
            sgd.step()
            correct += int((out.detach().numpy().argmax(1) == y).sum())
            loss_sum += loss.item()
        net.eval()
        ok = 0
        with torch.no_grad():
            for b in range(nv):
                x = torch.from_numpy(val_x[b * BATCH:(b + 1) * BATCH])
                ok += int((net(x).numpy().argmax(1) == val_y[b * BATCH:(b + 1) * BATCH]).sum())
        print(f"epoch {epoch}: training loss = {loss_sum:f}, training accuracy = "
              f"{correct / (nb * BATCH):f}, evaluation accuracy = {ok / (nv * BATCH):f}, "
              f"{time.time() - t0:.1f}s", flush=True)


if __name__ == "__main__":
    main()
