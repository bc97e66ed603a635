"""train_cnn.py's epoch loop (augmentation, copy_from_numpy, train step, evaluation) for the
mlp and cnn models on real Fashion-MNIST, against the same loop, model, data and optimizer in
PyTorch (when installed), in one run. Images/s counts training and evaluation images.

    python benchmarks/bench_epoch.py [--steps 150] [--data-dir /usr/share/datasets/fashion-mnist]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.append(os.path.join(HERE, ".."))  # a checkout without an installed minisinga
sys.path.insert(0, os.path.join(HERE, "..", "examples", "cnn"))

import train_cnn  # noqa: E402
from data import mnist  # noqa: E402

from minisinga import opt  # noqa: E402

BATCH, LR = 64, 0.005


def minisinga_epoch(model, steps, graph, data_dir):
    sgd = opt.SGD(LR, momentum=0.9, weight_decay=1e-5)
    with contextlib.redirect_stdout(io.StringIO()):
        r = train_cnn.run(0, 1, 0, 1, BATCH, model, "mnist", sgd, graph, 0, device="cpu",
                          data_dir=data_dir, max_steps=steps)
    return 2 * steps * BATCH / r["epoch_time"]


def torch_epoch(model, steps, data_dir):
    import torch
    import torch.nn as nn

    torch.manual_seed(0)
    np.random.seed(0)
    train_x, train_y, val_x, val_y = mnist.load(data_dir)
    if model == "mlp":
        net = nn.Sequential(nn.Flatten(), nn.Linear(784, 100), nn.ReLU(), nn.Linear(100, 10))
    else:
        net = nn.Sequential(nn.Conv2d(1, 20, 5), nn.ReLU(), nn.MaxPool2d(2, 2),
                            nn.Conv2d(20, 50, 5), nn.ReLU(), nn.MaxPool2d(2, 2), nn.Flatten(),
                            nn.Linear(800, 500), nn.ReLU(), nn.Linear(500, 10))
    sgd = torch.optim.SGD(net.parameters(), lr=LR, momentum=0.9, weight_decay=1e-5)
    lossf = nn.CrossEntropyLoss()
    idx = np.arange(train_x.shape[0])
    t0 = time.time()
    np.random.shuffle(idx)
    net.train()
    for b in range(steps):
        sel = idx[b * BATCH:(b + 1) * BATCH]
        x = train_x[sel]
        if model == "cnn":  # the same augmentation as train_cnn.py
            x = train_cnn.augmentation(x, BATCH)
        y = train_y[sel]
        sgd.zero_grad()
        out = net(torch.from_numpy(np.ascontiguousarray(x)))
        loss = lossf(out, torch.from_numpy(y.astype(np.int64)))
        loss.backward()
        sgd.step()
        (out.detach().numpy().argmax(1) == y).sum()
        loss.item()
    net.eval()
    with torch.no_grad():
        for b in range(steps):
            x = val_x[b * BATCH:(b + 1) * BATCH]
            (net(torch.from_numpy(x)).numpy().argmax(1) == val_y[b * BATCH:(b + 1) * BATCH]).sum()
    return 2 * steps * BATCH / (time.time() - t0)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--steps", type=int, default=150, help="training (and eval) batches")
    ap.add_argument("--data-dir", default="/usr/share/datasets/fashion-mnist")
    args = ap.parse_args()
    try:
        import torch

        torch.set_num_threads(os.cpu_count() or 1)
        have_torch = True
    except ImportError:
        have_torch = False
    print(f"train_cnn epoch loop on CPU, batch {BATCH}, {args.steps} train + {args.steps} eval "
          f"batches, {os.cpu_count()} cores (images/s)")
    head = f"{'model':6} {'graph':>10} {'eager':>10}"
    if have_torch:
        head += f" {'pytorch':>10} {'graph/pt':>9} {'eager/pt':>9}"
    print(head)
    for model in ("mlp", "cnn"):
        g = minisinga_epoch(model, args.steps, True, args.data_dir)
        e = minisinga_epoch(model, args.steps, False, args.data_dir)
        row = f"{model:6} {g:10.1f} {e:10.1f}"
        if have_torch:
            pt = torch_epoch(model, args.steps, args.data_dir)
            row += f" {pt:10.1f} {g / pt:9.2f} {e / pt:9.2f}"
        print(row, flush=True)


if __name__ == "__main__":
    main()
