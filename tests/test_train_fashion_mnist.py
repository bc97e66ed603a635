"""Real training: the SPEC CNN on a few thousand Fashion-MNIST images (Debian package
dataset-fashion-mnist, installed by .ci/run) must learn well above chance."""

import gzip
import os

import numpy as np
import pytest

from minisinga import autograd as ag
from minisinga import layer, model, opt, tensor

DATA = "/usr/share/datasets/fashion-mnist"


def read_idx(name):
    with gzip.open(os.path.join(DATA, name)) as f:
        raw = f.read()
    if name.endswith("images-idx3-ubyte.gz"):
        return np.frombuffer(raw, np.uint8, offset=16).reshape(-1, 1, 28, 28)
    return np.frombuffer(raw, np.uint8, offset=8)


class CNN(model.Model):
    """The CNN of SPEC-cnn.md."""

    def __init__(self, num_classes=10, num_channels=1):
        super().__init__()
        self.conv1 = layer.Conv2d(num_channels, 20, 5, activation="RELU")
        self.pool1 = layer.MaxPool2d(2, 2)
        self.conv2 = layer.Conv2d(20, 50, 5, activation="RELU")
        self.pool2 = layer.MaxPool2d(2, 2)
        self.flatten = layer.Flatten()
        self.fc1 = layer.Linear(500)
        self.relu = layer.ReLU()
        self.fc2 = layer.Linear(num_classes)
        self.loss = layer.SoftMaxCrossEntropy()

    def forward(self, x):
        y = self.pool1(self.conv1(x))
        y = self.pool2(self.conv2(y))
        return self.fc2(self.relu(self.fc1(self.flatten(y))))

    def train_one_batch(self, x, y):
        out = self.forward(x)
        loss = self.loss(out, y)
        self.optimizer(loss)
        return out, loss


def test_cnn_learns_fashion_mnist():
    if not os.path.exists(os.path.join(DATA, "train-images-idx3-ubyte.gz")):
        pytest.fail(f"{DATA} is missing: install the Debian package dataset-fashion-mnist")
    x_train = read_idx("train-images-idx3-ubyte.gz")[:3000].astype(np.float32) / 255
    y_train = read_idx("train-labels-idx1-ubyte.gz")[:3000].astype(np.int32)
    x_test = read_idx("t10k-images-idx3-ubyte.gz")[:1000].astype(np.float32) / 255
    y_test = read_idx("t10k-labels-idx1-ubyte.gz")[:1000].astype(np.int32)
    bs = 50
    tensor.get_default_device().SetRandSeed(0)
    tx = tensor.Tensor((bs, 1, 28, 28))
    ty = tensor.Tensor((bs,), dtype=tensor.int32)
    m = CNN()
    m.set_optimizer(opt.SGD(0.05, momentum=0.9, weight_decay=1e-5))
    m.compile([tx], is_train=True)
    losses = []
    for _epoch in range(2):
        for i in range(0, len(x_train), bs):
            tx.copy_from_numpy(x_train[i:i + bs])
            ty.copy_from_numpy(y_train[i:i + bs])
            _, loss = m(tx, ty)
            losses.append(loss.item())
    m.eval()
    correct = 0
    for i in range(0, len(x_test), bs):
        tx.copy_from_numpy(x_test[i:i + bs])
        pred = m(tx).to_numpy().argmax(1)
        correct += (pred == y_test[i:i + bs]).sum()
    acc = correct / len(x_test)
    assert np.mean(losses[-10:]) < 0.5 * np.mean(losses[:10])
    assert acc > 0.70, f"test accuracy {acc:.3f}"
    ag.training = False
