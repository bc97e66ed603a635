"""Neural-network operators: convolution, batch norm, pooling, dropout, softmax and losses."""

from __future__ import annotations

from typing import Sequence, Tuple, Union

import numpy as np

from .. import tensor as _tensor
from ..tensor import Tensor
from . import _f as F
from . import math as M
from .engine import Operator, is_training
from .layout import in_float32, reshape

IntPair = Union[int, Sequence[int]]


def pair(v: IntPair, name: str) -> Tuple[int, int]:
    """(v, v) for an int, else the two values of a sequence."""
    if isinstance(v, (int, np.integer)):
        return int(v), int(v)
    v = tuple(int(x) for x in v)
    if len(v) != 2:
        raise ValueError(f"{name} must be an int or a pair, got {v}")
    return v


def same_padding(in_hw, kernel, stride, dilation, mode: str = "SAME_UPPER"):
    """(top, bottom, left, right) so that out = ceil(in / stride), as ONNX defines SAME_*."""
    pads = []
    for i in range(2):
        out = -(-in_hw[i] // stride[i])
        total = max(0, (out - 1) * stride[i] + (kernel[i] - 1) * dilation[i] + 1 - in_hw[i])
        small, big = total // 2, total - total // 2
        pads += [small, big] if mode == "SAME_UPPER" else [big, small]
    return tuple(pads)


class _Conv2d(Operator):
    """2-d convolution, NCHW; padding is (top, bottom, left, right). (SINGA's private name:
    `autograd.Conv2d` is the layer, as in SINGA.)"""

    def __init__(self, stride=(1, 1), padding=(0, 0, 0, 0), dilation=(1, 1), groups: int = 1):
        super().__init__("Conv2d")
        self.stride, self.padding = tuple(stride), tuple(padding)
        self.dilation, self.groups = tuple(dilation), int(groups)

    def forward(self, x, w, b=None):
        y = F.core.conv2d(x, w, b, self.stride, self.padding, self.dilation, self.groups)
        if self.requires_grad:
            self.x, self.w, self.has_b = x, w, b is not None
        return y

    def backward(self, dy):
        args = (self.stride, self.padding, self.dilation, self.groups)
        dx = F.core.conv2d_backward_data(dy, self.w, list(self.x.shape), *args) \
            if self.need(0) else None  # e.g. the first layer's input images
        dw = F.core.conv2d_backward_weight(dy, self.x, list(self.w.shape), *args) \
            if self.need(1) else None
        if self.has_b:
            return dx, dw, F.core.conv2d_backward_bias(dy) if self.need(2) else None
        return dx, dw


def conv2d(x: Tensor, w: Tensor, b: Tensor = None, stride=(1, 1), padding=(0, 0, 0, 0),
           dilation=(1, 1), groups: int = 1) -> Tensor:
    """Convolution of x (N, C, H, W) with w (O, C/groups, kh, kw), optional bias b (O,)."""
    op = _Conv2d(pair(stride, "stride"), _pads4(padding), pair(dilation, "dilation"), groups)
    return op(x, w) if b is None else op(x, w, b)


def _pads4(padding):
    if isinstance(padding, (int, np.integer)):
        return (int(padding),) * 4
    p = tuple(int(v) for v in padding)
    if len(p) == 2:
        return (p[0], p[0], p[1], p[1])
    if len(p) == 4:
        return p
    raise ValueError(f"padding must be an int, (ph, pw) or (top, bottom, left, right), got {p}")


class _BatchNorm2d(Operator):
    """Batch normalisation over (N, H, W) per channel; running statistics updated in place
    while training, used while not. Fusions, in the same passes over the activations: a
    fourth input `residual` is added to the result, then `relu` applies max(y, 0):
    relu(batchnorm(x) + residual), the same values as the ops in turn."""

    def __init__(self, running_mean: Tensor, running_var: Tensor, momentum: float = 0.1,
                 eps: float = 1e-5, relu: bool = False):
        super().__init__("BatchNorm2d")
        self.running_mean, self.running_var = running_mean, running_var
        self.momentum, self.eps, self.relu = float(momentum), float(eps), bool(relu)

    def forward(self, x, scale, bias, residual=None):
        if is_training():
            y, mean, inv_std = F.core.batchnorm_forward_training(
                x, scale, bias, self.running_mean.data, self.running_var.data, self.momentum,
                self.eps, self.relu, residual)
            if self.requires_grad:
                self.x, self.scale, self.mean, self.inv_std = x, scale, mean, inv_std
                self.y = y if self.relu else None  # the ReLU's mask
                self.residual = residual is not None
            return y
        return F.core.batchnorm_forward_inference(
            x, scale, bias, self.running_mean.data, self.running_var.data, self.eps, self.relu,
            residual)

    def backward(self, dy):
        return tuple(F.core.batchnorm_backward(dy, self.x, self.scale, self.mean, self.inv_std,
                                               self.y, self.residual))


def batchnorm_2d(x: Tensor, scale: Tensor, bias: Tensor, running_mean: Tensor,
                 running_var: Tensor, momentum: float = 0.1, eps: float = 1e-5,
                 relu: bool = False, residual: Tensor = None) -> Tensor:
    """Batch norm of x (then + residual, then ReLU where asked), fused in one op."""
    op = _BatchNorm2d(running_mean, running_var, momentum, eps, relu)
    return op(x, scale, bias) if residual is None else op(x, scale, bias, residual)


class _Pooling2d(Operator):
    """Max or average pooling, NCHW; padding (top, bottom, left, right)."""

    def __init__(self, kernel, stride, padding=(0, 0, 0, 0), is_max: bool = True,
                 count_include_pad: bool = True):
        super().__init__("Pool2d")
        self.kernel, self.stride, self.padding = tuple(kernel), tuple(stride), tuple(padding)
        self.is_max, self.count_include_pad = is_max, count_include_pad

    def forward(self, x):
        y, idx = F.core.pool2d(x, self.kernel, self.stride, self.padding, self.is_max,
                               self.count_include_pad)
        if self.requires_grad:
            self.xshape, self.idx = x.shape, idx
        return y

    def backward(self, dy):
        return F.core.pool2d_backward(dy, list(self.xshape), self.idx, self.kernel, self.stride,
                                      self.padding, self.is_max, self.count_include_pad)


def pooling_2d(x: Tensor, kernel: IntPair, stride: IntPair = None, padding=0,
               is_max: bool = True, count_include_pad: bool = True) -> Tensor:
    k = pair(kernel, "kernel")
    s = k if stride is None else pair(stride, "stride")
    return _Pooling2d(k, s, _pads4(padding), is_max, count_include_pad)(x)


def max_pool_2d(x, kernel, stride=None, padding=0):
    return pooling_2d(x, kernel, stride, padding, True)


def avg_pool_2d(x, kernel, stride=None, padding=0, count_include_pad=True):
    return pooling_2d(x, kernel, stride, padding, False, count_include_pad)


def _pool1d(x: Tensor, kernel: int, stride, padding: int, is_max: bool) -> Tensor:
    if x.ndim() != 3:
        raise ValueError(f"pooling_1d: expected (N, C, L) input, got shape {x.shape}")
    n, c, length = x.shape
    stride = kernel if stride is None else int(stride)
    x4 = reshape(x, [n, c, 1, length])
    y = _Pooling2d((1, int(kernel)), (1, stride), (0, 0, int(padding), int(padding)), is_max)(x4)
    return reshape(y, [n, c, y.shape[-1]])


def max_pool_1d(x, kernel: int, stride=None, padding: int = 0):
    return _pool1d(x, kernel, stride, padding, True)


def avg_pool_1d(x, kernel: int, stride=None, padding: int = 0):
    return _pool1d(x, kernel, stride, padding, False)


def globalaveragepool(x: Tensor, data_format: str = "channels_first") -> Tensor:
    """Mean over the spatial axes, kept as size 1: (N, C, H, W) -> (N, C, 1, 1) for
    'channels_first' (NCHW), (N, H, W, C) -> (N, 1, 1, C) for 'channels_last' (NHWC); any
    number (>= 1) of spatial axes."""
    if data_format not in ("channels_first", "channels_last"):
        raise ValueError(f"globalaveragepool: data_format {data_format!r} is not supported; "
                         "expected 'channels_first' or 'channels_last'")
    if x.ndim() < 3:
        raise ValueError(f"globalaveragepool: expected (N, C, spatial...) or (N, spatial..., "
                         f"C) input with at least one spatial axis, got shape {x.shape}")
    first = 2 if data_format == "channels_first" else 1
    return M.reduce_mean(x, list(range(first, first + x.ndim() - 2)), keepdims=True)


class LSTMCell(Operator):
    """The elementwise part of an LSTM step, one fused kernel each way: from the gate
    pre-activations z (batch, 4H), blocks i, f, g, o as PyTorch's, and the previous cell
    state c0 (batch, H; omitted: zeros), returns (h, c) with i, f, o = sigmoid, g = tanh,
    c = f * c0 + i * g, h = o * tanh(c)."""

    def forward(self, z, c0=None):
        h, c, act = F.core.lstm_cell(z, c0)
        if self.requires_grad:
            self.act, self.c0, self.c = act, c0, c
        return h, c

    def backward(self, dh, dc):
        dz, dc0 = F.core.lstm_cell_backward(self.act, self.c0, self.c, dh, dc)
        return dz if self.c0 is None else (dz, dc0)


def lstm_cell(z: Tensor, c0: Tensor = None) -> Tuple[Tensor, Tensor]:
    """(h, c) of an LSTM step from its gate pre-activations z (batch, 4H) and the previous
    cell state c0 (None: zeros); see LSTMCell."""
    return LSTMCell()(z) if c0 is None else LSTMCell()(z, c0)


class GRUCell(Operator):
    """The elementwise part of a GRU step, one fused kernel each way: from the input side's
    pre-activations gx (batch, 3H), the hidden side's gh = h Wh + bh (batch, 3H), blocks
    r, z, n as PyTorch's, and the previous state h, returns h' = n + z * (h - n) with
    r, z = sigmoid(gx_r + gh_r, gx_z + gh_z), n = tanh(gx_n + r * gh_n)."""

    def forward(self, gx, gh, h):
        y, act = F.core.gru_cell(gx, gh, h)
        if self.requires_grad:
            self.act, self.h = act, h
        return y

    def backward(self, dy):
        return F.core.gru_cell_backward(self.act, self.h, dy)


def gru_cell(gx: Tensor, gh: Tensor, h: Tensor) -> Tensor:
    """The next GRU state from gx, gh and h; see GRUCell."""
    return GRUCell()(gx, gh, h)


class Dropout(Operator):
    """Zeroes each element with probability p and scales the rest by 1/(1-p) while training;
    the identity otherwise. The mask is drawn on the device at every run."""

    def __init__(self, ratio: float = 0.5):
        super().__init__()
        if not 0.0 <= ratio < 1.0:
            raise ValueError(f"dropout: ratio must be in [0, 1), got {ratio}")
        self.ratio = float(ratio)

    def forward(self, x):
        if not is_training() or self.ratio == 0.0:
            return x
        mask = F.core.Tensor(list(x.shape), x.device, x.dtype)
        F.core.bernoulli(mask, 1.0 - self.ratio)
        mask = F.scale(mask, 1.0 / (1.0 - self.ratio))
        if self.requires_grad:
            self.mask = mask
        return F.mul(x, mask)

    def backward(self, dy):
        if not hasattr(self, "mask"):
            return dy
        return F.mul(dy, self.mask)


def dropout(x: Tensor, ratio: float = 0.5) -> Tensor:
    return Dropout(ratio)(x)


class SoftMax(Operator):
    def __init__(self, axis: int = 1):
        super().__init__()
        self.axis = axis

    def forward(self, x):
        y = F.core.softmax(x, self.axis)
        if self.requires_grad:
            self.y = y
        return y

    def backward(self, dy):
        return F.core.softmax_backward(self.y, dy, self.axis)


def softmax(x: Tensor, axis: int = 1) -> Tensor:
    return SoftMax(axis)(x)


class LogSoftMax(SoftMax):
    def forward(self, x):
        y = F.core.log_softmax(x, self.axis)
        if self.requires_grad:
            self.y = y
        return y

    def backward(self, dy):
        return F.core.log_softmax_backward(self.y, dy, self.axis)


def log_softmax(x: Tensor, axis: int = 1) -> Tensor:
    return LogSoftMax(axis)(x)


class SoftMaxCrossEntropy(Operator):
    """Mean over the batch of -log softmax(x)[label]; t holds int32 labels (N,) or
    one-hot / soft targets (N, C)."""

    def __init__(self, t: Tensor):
        super().__init__()
        self.t = t

    def forward(self, x):
        if x.ndim != 2:
            raise ValueError(f"softmax_cross_entropy: expected logits (N, C), got {x.shape}")
        loss, prob = F.core.softmax_cross_entropy(x, self.t.data)
        if self.requires_grad:
            self.prob, self.n = prob, x.shape[0]
        return F.core.reduce_mean(loss, [0], True)  # shape (1,), as SINGA's losses

    def backward(self, dy):
        dloss = F.core.broadcast_to(F.scale(dy, 1.0 / self.n).reshape([1]), [self.n])
        return F.core.softmax_cross_entropy_backward(self.prob, self.t.data, dloss)


def softmax_cross_entropy(x: Tensor, t: Tensor) -> Tensor:
    return in_float32(lambda x, t: SoftMaxCrossEntropy(t)(x), x, t)


def _one_hot_like(t: Tensor, p: Tensor) -> Tensor:
    if t.dtype == _tensor.int32:
        return Tensor(data=F.core.one_hot(t.data.reshape([-1]), p.shape[-1], p.dtype),
                      requires_grad=False)
    return t


def _batch(y: Tensor) -> int:
    return y.shape[0] if y.ndim() else 1


def _loss(v: Tensor) -> Tensor:
    """A loss value as SINGA gives it: shape (1,) (`tensor.to_numpy(loss)[0]`)."""
    return reshape(v, [1])


def cross_entropy(y: Tensor, t: Tensor, eps: float = 1e-7) -> Tensor:
    """SINGA's CrossEntropy: -sum(t * log(y)) / N for probabilities y (N, C); t as above."""
    if y.ndim() != 2:
        raise ValueError(f"cross_entropy: expected probabilities (N, C), got shape {y.shape}")
    if t.dtype == _tensor.int32 and t.size() != y.shape[0]:
        raise ValueError(f"cross_entropy: int32 labels have shape {t.shape}, expected one per "
                         f"sample ({y.shape[0]},) for probabilities {y.shape}")
    if t.dtype != _tensor.int32 and tuple(t.shape) != tuple(y.shape):
        raise ValueError(f"cross_entropy: a {t.dtype} target has shape {t.shape}, expected "
                         f"{y.shape} like the probabilities (or int32 labels of shape "
                         f"({y.shape[0]},))")

    def ce(y, t):
        t = _one_hot_like(t, y)
        logp = M.log(M.clip(y, eps, 1.0))
        return _loss(M.mul(M.reduce_sum(M.mul(t, logp), None, False), -1.0 / _batch(y)))

    return in_float32(ce, y, t)


def binary_cross_entropy(y: Tensor, t: Tensor, eps: float = 1e-7) -> Tensor:
    """SINGA's BinaryCrossEntropy: -sum(t log y + (1 - t) log(1 - y)) / N over all elements,
    N the batch size y.shape[0] (PyTorch's mean divides by every element); y is clipped to
    [eps, 1 - eps]."""
    def bce(y, t):
        yc = M.clip(y, eps, 1.0 - eps)
        pos = M.mul(t, M.log(yc))
        neg = M.mul(M.sub(1.0, t), M.log(M.sub(1.0, yc)))
        return _loss(M.mul(M.reduce_sum(M.add(pos, neg), None, False), -1.0 / _batch(y)))

    return in_float32(bce, y, t)


def mse_loss(x: Tensor, t: Tensor) -> Tensor:
    """SINGA's MeanSquareError: sum((x - t)^2) / (2N), N the batch size x.shape[0], so the
    gradient is (x - t) / N (PyTorch's MSELoss is the mean over every element)."""
    def mse(x, t):
        d = M.sub(x, t)
        return _loss(M.mul(M.reduce_sum(M.mul(d, d), None, False), 0.5 / _batch(x)))

    return in_float32(mse, x, t)
