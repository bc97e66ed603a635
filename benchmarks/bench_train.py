"""Training-step throughput of the MLP and the SPEC CNN (and, asked for, ResNet-50 at 224x224)
on CPU, minisinga (eager and graph) against the same model in PyTorch (when installed), in one
run.

    python benchmarks/bench_train.py [--batch 64] [--steps 30] [--models mlp,cnn,resnet50]
        [--resnet-batch 8] [--resnet-steps 3]

ResNet-50 is examples/cnn/model/resnet.py's against torchvision's layout written out below in
torch.nn (torchvision itself need not be installed), SGD with momentum on both sides.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.append(ROOT)  # uninstalled
sys.path.append(os.path.join(ROOT, "examples", "cnn"))  # model.resnet

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


# name: (input shape without batch, classes)
SHAPES = {"mlp": ((784,), 10), "cnn": ((1, 28, 28), 10), "resnet50": ((3, 224, 224), 1000)}


def data(name, batch):
    r = np.random.default_rng(0)
    shape, classes = SHAPES[name]
    return (r.random((batch,) + shape, dtype=np.float32),
            r.integers(0, classes, batch).astype(np.int32))


def minisinga_model(name):
    if name == "resnet50":
        from model import resnet

        return resnet.resnet50(num_channels=3, num_classes=1000, input_size=224)
    return MLP() if name == "mlp" else CNN()


def bench_minisinga(name, batch, steps, graph):
    x, y = data(name, batch)
    tensor.get_default_device().SetRandSeed(0)
    tx, ty = tensor.from_numpy(x), tensor.from_numpy(y)
    m = minisinga_model(name)
    m.set_optimizer(opt.SGD(0.01, momentum=0.9))
    m.compile([tx], is_train=True, use_graph=graph, sequential=True)
    for _ in range(2):
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


def torch_resnet50(nn):
    """torchvision's resnet50 (bottlenecks [3, 4, 6, 3], stride on the 3x3) in torch.nn."""

    class Bottleneck(nn.Module):
        def __init__(self, cin, planes, stride):
            super().__init__()
            cout = planes * 4
            self.body = nn.Sequential(
                nn.Conv2d(cin, planes, 1, bias=False), nn.BatchNorm2d(planes), nn.ReLU(),
                nn.Conv2d(planes, planes, 3, stride, 1, bias=False), nn.BatchNorm2d(planes),
                nn.ReLU(), nn.Conv2d(planes, cout, 1, bias=False), nn.BatchNorm2d(cout))
            self.down = None if stride == 1 and cin == cout else nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

        def forward(self, x):
            return (self.body(x) + (x if self.down is None else self.down(x))).relu()

    layers, cin = [nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(),
                   nn.MaxPool2d(3, 2, 1)], 64
    for i, (planes, blocks) in enumerate([(64, 3), (128, 4), (256, 6), (512, 3)]):
        for b in range(blocks):
            layers.append(Bottleneck(cin, planes, 2 if i > 0 and b == 0 else 1))
            cin = planes * 4
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, 1000))


def bench_torch(name, batch, steps):
    import torch
    import torch.nn as nn

    torch.manual_seed(0)
    if name == "mlp":
        net = nn.Sequential(nn.Linear(784, 100), nn.ReLU(), nn.Linear(100, 10))
    elif name == "resnet50":
        net = torch_resnet50(nn)
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

    for _ in range(2):
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
    ap.add_argument("--resnet-batch", type=int, default=8)
    ap.add_argument("--resnet-steps", type=int, default=3)
    args = ap.parse_args()
    names = args.models.split(",")
    for name in names:
        if name not in SHAPES:
            ap.error(f"unknown model {name!r}; expected some of {', '.join(SHAPES)}")
    try:
        import torch

        torch.set_num_threads(os.cpu_count() or 1)
        have_torch = True
    except ImportError:
        have_torch = False
    print(f"CPU training throughput, {os.cpu_count()} cores (images/s; mlp and cnn: batch "
          f"{args.batch}, {args.steps} steps; resnet50: batch {args.resnet_batch}, "
          f"{args.resnet_steps} steps)")
    head = f"{'model':8} {'eager':>10} {'graph':>10} {'graph/eager':>12}"
    if have_torch:
        head += f" {'pytorch':>10} {'eager/pt':>9} {'graph/pt':>9}"
    print(head)
    for name in names:
        batch, steps = ((args.resnet_batch, args.resnet_steps) if name == "resnet50"
                        else (args.batch, args.steps))
        eager = bench_minisinga(name, batch, steps, graph=False)
        graph = bench_minisinga(name, batch, steps, graph=True)
        row = f"{name:8} {eager:10.1f} {graph:10.1f} {graph / eager:12.2f}"
        if have_torch:
            pt = bench_torch(name, batch, steps)
            row += f" {pt:10.1f} {eager / pt:9.2f} {graph / pt:9.2f}"
        print(row, flush=True)

if __name__ == "__main__":
    main()
