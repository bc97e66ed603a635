"""AlexNet (the variant of SINGA's examples): five convolutions with ReLU and max pooling,
an average pooling, then three fully connected layers with dropout; input 224x224."""

from __future__ import annotations

from minisinga import layer, model

from . import conv_out, update


def _feature_side(size: int) -> int:
    """Side of the feature map after the last (average) pooling."""
    s = conv_out(size, 11, 4, 2) // 2       # conv1, pooling1
    s = conv_out(s, 5, 1, 2) // 2           # conv2, pooling2
    s = s // 2                              # conv3-5 keep the size, pooling3
    return conv_out(s, 3, 2)                # avg_pooling1


class AlexNet(model.Model):
    """Input (batch, num_channels, input_size, input_size); input_size 224 by default (at
    least 99, so that the last average pooling has a 3x3 window to pool)."""

    def __init__(self, num_classes: int = 10, num_channels: int = 1, input_size: int = 224):
        super().__init__()
        if _feature_side(input_size) < 1:  # true below 99
            raise ValueError(f"AlexNet: input_size must be at least 99, got {input_size}")
        self.num_classes = num_classes
        self.input_size = input_size
        self.dimension = 4
        self.conv1 = layer.Conv2d(num_channels, 64, 11, stride=4, padding=2)
        self.conv2 = layer.Conv2d(64, 192, 5, padding=2)
        self.conv3 = layer.Conv2d(192, 384, 3, padding=1)
        self.conv4 = layer.Conv2d(384, 256, 3, padding=1)
        self.conv5 = layer.Conv2d(256, 256, 3, padding=1)
        # in features inferred: 256 * 2 * 2 = 1024 at 224x224
        self.linear1 = layer.Linear(4096)
        self.linear2 = layer.Linear(4096)
        self.linear3 = layer.Linear(num_classes)
        self.pooling1 = layer.MaxPool2d(2, 2, padding=0)
        self.pooling2 = layer.MaxPool2d(2, 2, padding=0)
        self.pooling3 = layer.MaxPool2d(2, 2, padding=0)
        self.avg_pooling1 = layer.AvgPool2d(3, 2, padding=0)
        self.relu1 = layer.ReLU()
        self.relu2 = layer.ReLU()
        self.relu3 = layer.ReLU()
        self.relu4 = layer.ReLU()
        self.relu5 = layer.ReLU()
        self.relu6 = layer.ReLU()
        self.relu7 = layer.ReLU()
        self.flatten = layer.Flatten()
        self.dropout1 = layer.Dropout()
        self.dropout2 = layer.Dropout()
        self.softmax_cross_entropy = layer.SoftMaxCrossEntropy()

    def forward(self, x):
        y = self.pooling1(self.relu1(self.conv1(x)))
        y = self.pooling2(self.relu2(self.conv2(y)))
        y = self.relu3(self.conv3(y))
        y = self.relu4(self.conv4(y))
        y = self.pooling3(self.relu5(self.conv5(y)))
        y = self.flatten(self.avg_pooling1(y))
        y = self.relu6(self.linear1(self.dropout1(y)))
        y = self.relu7(self.linear2(self.dropout2(y)))
        return self.linear3(y)

    def train_one_batch(self, x, y, dist_option: str = "plain", spars=None):
        out = self.forward(x)
        loss = self.softmax_cross_entropy(out, y)
        update(self.optimizer, loss, dist_option, spars)
        return out, loss

    def set_optimizer(self, optimizer) -> None:
        self.optimizer = optimizer


def create_model(pretrained: bool = False, **kwargs) -> AlexNet:
    """An AlexNet; kwargs: num_classes, num_channels, input_size (224)."""
    if pretrained:
        raise ValueError("alexnet: there are no pretrained weights")
    return AlexNet(**kwargs)


__all__ = ["AlexNet", "create_model"]
