"""MLP: Linear(100) -> ReLU -> Linear(num_classes) on flattened images (dimension 2)."""

from __future__ import annotations

from minisinga import layer, model

from . import update


class MLP(model.Model):
    """A one-hidden-layer perceptron. `input_size` is the number of input features
    (`data_size`); the input is (batch, data_size)."""

    def __init__(self, data_size: int = 10, perceptron_size: int = 100, num_classes: int = 10):
        super().__init__()
        self.num_classes = num_classes
        self.input_size = data_size
        self.dimension = 2
        self.linear1 = layer.Linear(perceptron_size)
        self.relu = layer.ReLU()
        self.linear2 = layer.Linear(num_classes)
        self.softmax_cross_entropy = layer.SoftMaxCrossEntropy()

    def forward(self, x):
        return self.linear2(self.relu(self.linear1(x)))

    def train_one_batch(self, x, y, dist_option: str = "plain", spars=None):
        out = self.forward(x)
        loss = self.softmax_cross_entropy(out, y)
        update(self.optimizer, loss, dist_option, spars)
        return out, loss

    def set_optimizer(self, optimizer) -> None:
        self.optimizer = optimizer


def create_model(pretrained: bool = False, **kwargs) -> MLP:
    """An MLP; kwargs: data_size, perceptron_size (100), num_classes."""
    if pretrained:
        raise ValueError("mlp: there are no pretrained weights")
    return MLP(**kwargs)


__all__ = ["MLP", "create_model"]
