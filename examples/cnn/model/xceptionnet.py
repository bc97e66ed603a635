"""Xception (https://arxiv.org/abs/1610.02357): separable convolutions (a depthwise group
convolution followed by a 1x1 convolution) with BN, residual blocks with 1x1 skip
convolutions, and a 10x10 max pooling head at 299x299 input."""

from __future__ import annotations

from minisinga import layer, model

from . import Sequential, conv_out, update


class Block(layer.Layer):
    """`reps` x (ReLU, SeparableConv2d 3x3, BN), an optional strided 3x3 max pooling, and a
    shortcut (identity, or 1x1 convolution + BN when the shape changes), joined by Add."""

    def __init__(self, in_filters: int, out_filters: int, reps: int, strides: int = 1,
                 padding: int = 0, start_with_relu: bool = True, grow_first: bool = True):
        super().__init__()
        if out_filters != in_filters or strides != 1:
            self.skip = layer.Conv2d(in_filters, out_filters, 1, stride=strides,
                                     padding=padding, bias=False)
            self.skipbn = layer.BatchNorm2d(out_filters)
        else:
            self.skip = None

        def unit(cin, cout):
            return [layer.ReLU(),
                    layer.SeparableConv2d(cin, cout, 3, stride=1, padding=1, bias=False),
                    layer.BatchNorm2d(cout)]

        layers = []
        filters = in_filters
        if grow_first:
            layers += unit(in_filters, out_filters)
            filters = out_filters
        for _ in range(reps - 1):
            layers += unit(filters, filters)
        if not grow_first:
            layers += unit(in_filters, out_filters)
        if not start_with_relu:
            layers = layers[1:]
        if strides != 1:
            layers.append(layer.MaxPool2d(3, strides, padding + 1))
        self.rep = Sequential(*layers)
        self.add = layer.Add()

    def forward(self, x):
        y = self.rep(x)
        skip = self.skipbn(self.skip(x)) if self.skip is not None else x
        return self.add(y, skip)


def _feature_side(size: int) -> int:
    """Side of the feature map entering the max pooling head."""
    s = conv_out(size, 3, 2, 0)       # conv1 (conv2 keeps the size)
    for _ in range(4):                # block1-3 and block12: 3x3 max pooling, stride 2, pad 1
        s = conv_out(s, 3, 2, 1)
    return s


class Xception(model.Model):
    """Input (batch, num_channels, input_size, input_size); input_size 299 by default
    (another size makes the head's max pooling cover the whole last feature map, 10x10 at
    299)."""

    def __init__(self, num_classes: int = 10, num_channels: int = 3, input_size: int = 299):
        super().__init__()
        if input_size < 3 or _feature_side(input_size) < 1:
            raise ValueError(f"Xception: input_size {input_size} is too small")
        self.num_classes = num_classes
        self.input_size = input_size
        self.dimension = 4

        self.conv1 = layer.Conv2d(num_channels, 32, 3, stride=2, padding=0, bias=False)
        self.bn1 = layer.BatchNorm2d(32, relu=True)  # batch norm, then ReLU, fused
        self.conv2 = layer.Conv2d(32, 64, 3, stride=1, padding=1, bias=False)
        self.bn2 = layer.BatchNorm2d(64, relu=True)

        self.block1 = Block(64, 128, 2, 2, padding=0, start_with_relu=False, grow_first=True)
        self.block2 = Block(128, 256, 2, 2, padding=0, start_with_relu=True, grow_first=True)
        self.block3 = Block(256, 728, 2, 2, padding=0, start_with_relu=True, grow_first=True)
        self.block4 = Block(728, 728, 3, 1, start_with_relu=True, grow_first=True)
        self.block5 = Block(728, 728, 3, 1, start_with_relu=True, grow_first=True)
        self.block6 = Block(728, 728, 3, 1, start_with_relu=True, grow_first=True)
        self.block7 = Block(728, 728, 3, 1, start_with_relu=True, grow_first=True)
        self.block8 = Block(728, 728, 3, 1, start_with_relu=True, grow_first=True)
        self.block9 = Block(728, 728, 3, 1, start_with_relu=True, grow_first=True)
        self.block10 = Block(728, 728, 3, 1, start_with_relu=True, grow_first=True)
        self.block11 = Block(728, 728, 3, 1, start_with_relu=True, grow_first=True)
        self.block12 = Block(728, 1024, 2, 2, start_with_relu=True, grow_first=False)

        self.conv3 = layer.SeparableConv2d(1024, 1536, 3, stride=1, padding=1)
        self.bn3 = layer.BatchNorm2d(1536, relu=True)
        self.conv4 = layer.SeparableConv2d(1536, 2048, 3, stride=1, padding=1)
        self.bn4 = layer.BatchNorm2d(2048)
        self.relu4 = layer.ReLU()
        self.globalpooling = layer.MaxPool2d(_feature_side(input_size), 1)
        self.flatten = layer.Flatten()
        self.fc = layer.Linear(num_classes)
        self.softmax_cross_entropy = layer.SoftMaxCrossEntropy()

    def features(self, x):
        x = self.bn1(self.conv1(x))
        x = self.bn2(self.conv2(x))
        for i in range(1, 13):
            x = getattr(self, f"block{i}")(x)
        x = self.bn3(self.conv3(x))
        return self.bn4(self.conv4(x))

    def logits(self, features):
        x = self.globalpooling(self.relu4(features))
        return self.fc(self.flatten(x))

    def forward(self, x):
        return self.logits(self.features(x))

    def train_one_batch(self, x, y, dist_option: str = "plain", spars=None):
        out = self.forward(x)
        loss = self.softmax_cross_entropy(out, y)
        update(self.optimizer, loss, dist_option, spars)
        return out, loss

    def set_optimizer(self, optimizer) -> None:
        self.optimizer = optimizer


def create_model(pretrained: bool = False, **kwargs) -> Xception:
    """An Xception; kwargs: num_classes, num_channels, input_size (299)."""
    if pretrained:
        raise ValueError("xceptionnet: there are no pretrained weights")
    return Xception(**kwargs)


__all__ = ["Xception", "Block", "create_model"]
