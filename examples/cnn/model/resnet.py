"""ResNet-18/34/50/101/152 in torchvision's layout (basic blocks for 18/34, bottlenecks for
50/101/152), with batch normalisation, `layer.Add` joins and a 7x7 average pooling head at
224x224 input.

Every block, and the downsample path (1x1 convolution + BN) of the first block of a stage,
is a registered sub-layer, so all parameters and BN statistics appear in `get_states()`
and in checkpoints (SINGA's original kept the downsample in a closure and lost it).

`fused_residual=True` (not the default, which is SPEC-cnn's `layer.Add` joins) ends each
block in one op instead, relu(bn(x) + residual) (`layer.BatchNorm2d(relu=True)` called with
the residual): the same numbers bit for bit and the same states, with two passes over the
block's output fewer each way. benchmarks/bench_gpu.py --fused-residual measures it.
"""

from __future__ import annotations

from typing import Optional, Sequence, Type

from minisinga import layer, model

from . import Sequential, conv_out, update


def conv3x3(in_planes: int, out_planes: int, stride: int = 1) -> layer.Conv2d:
    """3x3 convolution with padding 1, no bias."""
    return layer.Conv2d(in_planes, out_planes, 3, stride=stride, padding=1, bias=False)


class Downsample(layer.Layer):
    """The shortcut of a block that changes shape: 1x1 convolution (stride) then BN."""

    def __init__(self, in_planes: int, out_planes: int, stride: int):
        super().__init__()
        self.conv = layer.Conv2d(in_planes, out_planes, 1, stride=stride, bias=False)
        self.bn = layer.BatchNorm2d(out_planes)

    def forward(self, x):
        return self.bn(self.conv(x))


class BasicBlock(layer.Layer):
    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1,
                 downsample: Optional[Downsample] = None, fused_residual: bool = False):
        super().__init__()
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = layer.BatchNorm2d(planes, relu=True)  # batch norm, then ReLU, fused
        self.conv2 = conv3x3(planes, planes)
        self.fused_residual = fused_residual
        self.bn2 = layer.BatchNorm2d(planes, relu=fused_residual)
        if not fused_residual:
            self.add = layer.Add()
            self.relu2 = layer.ReLU()
        self.downsample = downsample  # registered when it is a Layer
        self.stride = stride

    def forward(self, x):
        out = self.conv2(self.bn1(self.conv1(x)))
        residual = x if self.downsample is None else self.downsample(x)
        if self.fused_residual:
            return self.bn2(out, residual)
        return self.relu2(self.add(self.bn2(out), residual))


class Bottleneck(layer.Layer):
    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1,
                 downsample: Optional[Downsample] = None, fused_residual: bool = False):
        super().__init__()
        self.conv1 = layer.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = layer.BatchNorm2d(planes, relu=True)  # batch norm, then ReLU, fused
        self.conv2 = conv3x3(planes, planes, stride)
        self.bn2 = layer.BatchNorm2d(planes, relu=True)
        self.conv3 = layer.Conv2d(planes, planes * self.expansion, 1, bias=False)
        self.fused_residual = fused_residual
        self.bn3 = layer.BatchNorm2d(planes * self.expansion, relu=fused_residual)
        if not fused_residual:
            self.add = layer.Add()
            self.relu3 = layer.ReLU()
        self.downsample = downsample
        self.stride = stride

    def forward(self, x):
        out = self.bn1(self.conv1(x))
        out = self.conv3(self.bn2(self.conv2(out)))
        residual = x if self.downsample is None else self.downsample(x)
        if self.fused_residual:
            return self.bn3(out, residual)
        return self.relu3(self.add(self.bn3(out), residual))


def _feature_side(size: int) -> int:
    """Side of the last stage's output for an input of side `size`."""
    s = conv_out(size, 7, 2, 3)       # conv1
    s = conv_out(s, 3, 2, 1)          # maxpool
    for _ in range(3):                # layer2..layer4 (stride 2, 3x3 conv, padding 1)
        s = conv_out(s, 3, 2, 1)
    return s


class ResNet(model.Model):
    """Input (batch, num_channels, input_size, input_size). input_size is 224 by default;
    another size makes the head's average pooling cover the whole last feature map (7x7 at
    224), so small inputs (e.g. 32 for quick tests) work too."""

    def __init__(self, block: Type[layer.Layer], layers: Sequence[int], num_classes: int = 10,
                 num_channels: int = 3, input_size: int = 224, fused_residual: bool = False):
        super().__init__()
        self.fused_residual = bool(fused_residual)
        if input_size < 1 or _feature_side(input_size) < 1:
            raise ValueError(f"ResNet: input_size {input_size} is too small")
        self.num_classes = num_classes
        self.input_size = input_size
        self.dimension = 4
        self.inplanes = 64
        self.conv1 = layer.Conv2d(num_channels, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = layer.BatchNorm2d(64, relu=True)  # batch norm, then ReLU, fused
        self.maxpool = layer.MaxPool2d(3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, 64, layers[0])
        self.layer2 = self._make_layer(block, 128, layers[1], stride=2)
        self.layer3 = self._make_layer(block, 256, layers[2], stride=2)
        self.layer4 = self._make_layer(block, 512, layers[3], stride=2)
        self.avgpool = layer.AvgPool2d(_feature_side(input_size), stride=1)
        self.flatten = layer.Flatten()
        self.fc = layer.Linear(num_classes)
        self.softmax_cross_entropy = layer.SoftMaxCrossEntropy()

    def _make_layer(self, block, planes: int, blocks: int, stride: int = 1) -> Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = Downsample(self.inplanes, planes * block.expansion, stride)
        fused = self.fused_residual
        stage = [block(self.inplanes, planes, stride, downsample, fused)]
        self.inplanes = planes * block.expansion
        stage += [block(self.inplanes, planes, fused_residual=fused) for _ in range(1, blocks)]
        return Sequential(*stage)

    def forward(self, x):
        x = self.maxpool(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = self.flatten(self.avgpool(x))
        return self.fc(x)

    def train_one_batch(self, x, y, dist_option: str = "plain", spars=None):
        out = self.forward(x)
        loss = self.softmax_cross_entropy(out, y)
        update(self.optimizer, loss, dist_option, spars)
        return out, loss

    def set_optimizer(self, optimizer) -> None:
        self.optimizer = optimizer


def _check(pretrained: bool, name: str) -> None:
    if pretrained:
        raise ValueError(f"{name}: there are no pretrained weights")


def resnet18(pretrained: bool = False, **kwargs) -> ResNet:
    """ResNet-18; kwargs: num_classes, num_channels, input_size, fused_residual."""
    _check(pretrained, "resnet18")
    return ResNet(BasicBlock, [2, 2, 2, 2], **kwargs)


def resnet34(pretrained: bool = False, **kwargs) -> ResNet:
    """ResNet-34; kwargs: num_classes, num_channels, input_size, fused_residual."""
    _check(pretrained, "resnet34")
    return ResNet(BasicBlock, [3, 4, 6, 3], **kwargs)


def resnet50(pretrained: bool = False, **kwargs) -> ResNet:
    """ResNet-50; kwargs: num_classes, num_channels, input_size, fused_residual."""
    _check(pretrained, "resnet50")
    return ResNet(Bottleneck, [3, 4, 6, 3], **kwargs)


def resnet101(pretrained: bool = False, **kwargs) -> ResNet:
    """ResNet-101; kwargs: num_classes, num_channels, input_size, fused_residual."""
    _check(pretrained, "resnet101")
    return ResNet(Bottleneck, [3, 4, 23, 3], **kwargs)


def resnet152(pretrained: bool = False, **kwargs) -> ResNet:
    """ResNet-152; kwargs: num_classes, num_channels, input_size, fused_residual."""
    _check(pretrained, "resnet152")
    return ResNet(Bottleneck, [3, 8, 36, 3], **kwargs)


def create_model(depth: int = 50, pretrained: bool = False, **kwargs) -> ResNet:
    """ResNet of the given depth (18, 34, 50, 101 or 152; 50 by default, which is what
    `train_cnn.py resnet` trains)."""
    constructors = {18: resnet18, 34: resnet34, 50: resnet50, 101: resnet101, 152: resnet152}
    if depth not in constructors:
        raise ValueError(f"resnet: depth must be one of {sorted(constructors)}, got {depth}")
    return constructors[depth](pretrained, **kwargs)


__all__ = ["ResNet", "resnet18", "resnet34", "resnet50", "resnet101", "resnet152",
           "create_model"]
