"""The LeNet-style CNN: Conv2d(C,20,5,relu) -> MaxPool(2,2) -> Conv2d(20,50,5,relu) ->
MaxPool(2,2) -> Flatten -> Linear(500) -> ReLU -> Linear(num_classes); input 28x28."""

from __future__ import annotations

from minisinga import layer, model

from . import update


class CNN(model.Model):
    """Input (batch, num_channels, input_size, input_size); input_size 28 by default (any
    side of at least 16 works: the first Linear infers its input features)."""

    def __init__(self, num_classes: int = 10, num_channels: int = 1, input_size: int = 28):
        super().__init__()
        if input_size < 16:
            raise ValueError(f"CNN: input_size must be at least 16, got {input_size}")
        self.num_classes = num_classes
        self.input_size = input_size
        self.dimension = 4
        self.conv1 = layer.Conv2d(num_channels, 20, 5, padding=0, activation="RELU")
        self.conv2 = layer.Conv2d(20, 50, 5, padding=0, activation="RELU")
        self.linear1 = layer.Linear(500)
        self.linear2 = layer.Linear(num_classes)
        self.pooling1 = layer.MaxPool2d(2, 2, padding=0)
        self.pooling2 = layer.MaxPool2d(2, 2, padding=0)
        self.relu = layer.ReLU()
        self.flatten = layer.Flatten()
        self.softmax_cross_entropy = layer.SoftMaxCrossEntropy()

    def forward(self, x):
        y = self.pooling1(self.conv1(x))
        y = self.pooling2(self.conv2(y))
        y = self.flatten(y)
        y = self.relu(self.linear1(y))
        return self.linear2(y)

    def train_one_batch(self, x, y, dist_option: str = "plain", spars=None):
        out = self.forward(x)
        loss = self.softmax_cross_entropy(out, y)
        update(self.optimizer, loss, dist_option, spars)
        return out, loss

    def set_optimizer(self, optimizer) -> None:
        self.optimizer = optimizer


def create_model(pretrained: bool = False, **kwargs) -> CNN:
    """A CNN; kwargs: num_classes, num_channels, input_size (28)."""
    if pretrained:
        raise ValueError("cnn: there are no pretrained weights")
    return CNN(**kwargs)


__all__ = ["CNN", "create_model"]
