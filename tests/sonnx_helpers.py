"""Shared by the sonnx tests: SINGA's documented SONNXModel subclass, and the examples/cnn
models."""

import importlib
import os
import sys

from minisinga import autograd, sonnx

EXAMPLES = os.path.join(os.path.dirname(__file__), os.pardir, "examples", "cnn")


class Trainer(sonnx.SONNXModel):
    """The imported graph's first output, trained with softmax cross-entropy."""

    def forward(self, *x):
        return super().forward(*x)[0]

    def train_one_batch(self, x, y):
        out = self.forward(x)
        loss = autograd.softmax_cross_entropy(out, y)
        self.optimizer(loss)
        return out, loss


def example_module(name: str):
    """examples/cnn/model/<name>.py as a module."""
    sys.path.insert(0, EXAMPLES)
    try:
        return importlib.import_module(f"model.{name}")
    finally:
        sys.path.remove(EXAMPLES)
