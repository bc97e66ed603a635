"""Training-step throughput of the MLP and the SPEC CNN on CPU, minisinga (eager and graph)
against the same model in PyTorch (when installed), in one run.

    python benchmarks/bench_train.py [--batch 64] [--steps 30] [--models mlp,cnn]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.append(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))  # uninstalled

from minisinga import layer, model, opt, tensor  # noqa: E402


class MLP(model.Model):
    def __init__(self, classes=10):
        super().__init__()
        self.fc1 = layer.Linear(100)
        self.relu = layer.ReLU()
        self.fc2 = layer.Linear(classes)
        self.loss = layer.SoftMaxCrossEntropy()

    def forward(self, x):
        return self.fc2(self.relu(self.fc1(x)))

    def train_one_batch(self, x, y):
        out = self.forward(x)
        loss = self.loss(out, y)
        self.optimizer(loss)
        return out, loss


class CNN(model.Model):
    def __init__(self, classes=10):
        super().__init__()
        self.conv1 = layer.Conv2d(1, 20, 5, activation="RELU")
        self.pool1 = layer.MaxPool2d(2, 2)
        self.conv2 = layer.Conv2d(20, 50, 5, activation="RELU")
        self.pool2 = layer.MaxPool2d(2, 2)
        self.flat = layer.Flatten()
        self.fc1 = layer.Linear(500)
        self.relu = layer.ReLU()
        self.fc2 = layer.Linear(classes)
        self.loss = layer.SoftMaxCrossEntropy()

    def forward(self, x):
        y = self.pool2(self.conv2(self.pool1(self.conv1(x))))
        return self.fc2(self.relu(self.fc1(self.flat(y))))

    def train_one_batch(self, x, y):
        out = self.forward(x)
        loss = self.loss(out, y)
        self.optimizer(loss)
        return out, loss


def data(name, batch):
    r = np.random.default_rng(0)
    shape = (batch, 784) if name == "mlp" else (batch, 1, 28, 28)
    return r.random(shape, dtype=np.float32), r.integers(0, 10, batch).astype(np.int32)


def bench_minisinga(name, batch, steps, graph):
    x, y = data(name, batch)
    tensor.get_default_device().SetRandSeed(0)
    tx, ty = tensor.from_numpy(x), tensor.from_numpy(y)
    m = MLP() if name == "mlp" else CNN()
    m.set_optimizer(opt.SGD(0.01, momentum=0.9))
    m.compile([tx], is_train=True, use_graph=graph, sequential=True)
    for _ in range(3):
        m(tx, ty)
    tensor.get_default_device().Sync()
    t0 = time.perf_counter()
    for _ in range(steps):
        tx.copy_from_numpy(x)
        ty.copy_from_numpy(y)
        m(tx, ty)
    tensor.get_default_device().Sync()
    dt = time.perf_counter() - t0
    m.eval()
    return batch * steps / dt


def bench_torch(name, batch, steps):
    import torch
    import torch.nn as nn

    torch.manual_seed(0)
    if name == "mlp":
        net = nn.Sequential(nn.Linear(784, 100), nn.ReLU(), nn.Linear(100, 10))
    else:
        net = nn.Sequential(nn.Conv2d(1, 20, 5), nn.ReLU(), nn.MaxPool2d(2, 2),
                            nn.Conv2d(20, 50, 5), nn.ReLU(), nn.MaxPool2d(2, 2), nn.Flatten(),
                            nn.Linear(800, 500), nn.ReLU(), nn.Linear(500, 10))
    sgd = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    lossf = nn.CrossEntropyLoss()
    x, y = data(name, batch)

    def step():
        xt, yt = torch.from_numpy(x.copy()), torch.from_numpy(y.astype(np.int64))
        sgd.zero_grad()
        loss = lossf(net(xt), yt)
        loss.backward()
        sgd.step()

    for _ in range(3):
        step()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    return batch * steps / (time.perf_counter() - t0)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--models", default="mlp,cnn")
    args = ap.parse_args()
    try:
        import torch

        torch.set_num_threads(os.cpu_count() or 1)
        have_torch = True
    except ImportError:
        have_torch = False
    print(f"CPU training throughput, batch {args.batch}, {args.steps} steps, "
          f"{os.cpu_count()} cores (images/s)")
    head = f"{'model':6} {'eager':>10} {'graph':>10} {'graph/eager':>12}"
    if have_torch:
        head += f" {'pytorch':>10} {'eager/pt':>9} {'graph/pt':>9}"
    print(head)
    for name in args.models.split(","):
        eager = bench_minisinga(name, args.batch, args.steps, graph=False)
        graph = bench_minisinga(name, args.batch, args.steps, graph=True)
        row = f"{name:6} {eager:10.1f} {graph:10.1f} {graph / eager:12.2f}"
        if have_torch:
            pt = bench_torch(name, args.batch, args.steps)
            row += f" {pt:10.1f} {eager / pt:9.2f} {graph / pt:9.2f}"
        print(row, flush=True)


if __name__ == "__main__":
    main()
