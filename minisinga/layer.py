"""Layers: parameters created lazily on the first call, sub-layers and tensors registered by
attribute assignment with dotted names (`conv1.W`), SINGA's names and initialisation."""

from __future__ import annotations

import contextlib
import math
import weakref
from collections import OrderedDict
from typing import Dict, Optional, Sequence

import numpy as np

from . import autograd, tensor
from .autograd.nn import _pads4, pair, same_padding
from .device import eager
from .tensor import Tensor


class Layer:
    """Base class. Subclasses create parameters in `initialize(*inputs)` (called once, on the
    first call, so sizes come from the input) and compute in `forward(*inputs)`."""

    sep = "."
    float32_states: tuple = ()  # tensors kept float32 when the inputs are float16

    def __init__(self):
        object.__setattr__(self, "_layers", OrderedDict())
        object.__setattr__(self, "_tensors", OrderedDict())
        object.__setattr__(self, "_parent", None)  # (weakref to the parent, attribute name)
        object.__setattr__(self, "_name", None)
        self._initialized = False

    @property
    def name(self) -> Optional[str]:
        """As in SINGA: the layer's dotted path in its model ("block.conv1"), set when it is
        assigned to a parent's attribute (None for a model or a free layer), unless a name
        was given; custom layers name their tensors from it."""
        if self._name is not None:
            return self._name
        if self._parent is None:
            return None
        parent = self._parent[0]()
        pname = parent.name if parent is not None else None
        return self._parent[1] if pname is None else pname + self.sep + self._parent[1]

    @name.setter
    def name(self, value: Optional[str]) -> None:
        object.__setattr__(self, "_name", value)

    def __setattr__(self, name: str, value) -> None:
        layers, tensors = self.__dict__.get("_layers"), self.__dict__.get("_tensors")
        if layers is None:
            if isinstance(value, (Layer, Tensor)):
                raise RuntimeError(f"{type(self).__name__}.__init__ must call "
                                   "super().__init__() before assigning layers or tensors")
            object.__setattr__(self, name, value)  # a plain setting, as SINGA allows
            return
        layers.pop(name, None)
        tensors.pop(name, None)
        if isinstance(value, Layer):
            layers[name] = value
            if value._parent is None:
                object.__setattr__(value, "_parent", (weakref.ref(self), name))
        elif isinstance(value, Tensor):
            tensors[name] = value
        object.__setattr__(self, name, value)

    def __delattr__(self, name: str) -> None:
        self._layers.pop(name, None)
        self._tensors.pop(name, None)
        object.__delattr__(self, name)

    def __call__(self, *args, **kwargs):
        for a in args:
            if isinstance(a, np.ndarray):
                raise TypeError(f"{type(self).__name__}: inputs must be Tensors, got a numpy "
                                "array; wrap it with tensor.from_numpy(array, device)")
        if not self._initialized:
            x = next((a for a in args if isinstance(a, Tensor)), None)
            # Eagerly, also inside a recorded step: the parameters are made once, not drawn
            # again at every replay.
            with eager(x.device) if x is not None else contextlib.nullcontext():
                self.initialize(*args, **kwargs)
            self._initialized = True
        self._match_inputs(args)
        return self.forward(*args, **kwargs)

    def register_layers(self, *args) -> None:
        """Registers sublayers that are not attributes (SINGA's register_layers): one
        OrderedDict of name -> layer, or layers named ClassName_index by their position."""
        if len(args) == 1 and isinstance(args[0], dict):
            items = list(args[0].items())
        else:
            items = [(f"{type(v).__name__}_{i}", v) for i, v in enumerate(args)]
        for name, value in items:
            if not isinstance(value, Layer):
                raise TypeError(f"register_layers: {name!r} is a {type(value).__name__}, "
                                "not a Layer")
            setattr(self, name, value)

    def initialize(self, *inputs) -> None:
        """Creates parameters from the first inputs; nothing by default."""

    def forward(self, *inputs):
        raise NotImplementedError(f"{type(self).__name__} does not implement forward")

    # ---- parameters and states ----
    def _named_tensors(self, prefix: str = ""):
        for name, t in self._tensors.items():
            yield prefix + name, t
        for name, layer in self._layers.items():
            sub = prefix + name + self.sep
            # A sublayer that lists its own tensors (SINGA style, e.g. weights kept in a
            # list) is asked for them, under the names it gives.
            if type(layer).get_states is not Layer.get_states:
                yield from layer.get_states().items()
            elif type(layer).get_params is not Layer.get_params:
                yield from layer.get_params().items()
                yield from ((n, t) for n, t in layer._named_tensors(sub) if not t.stores_grad)
            else:
                yield from layer._named_tensors(sub)

    def named_layers(self, prefix: str = ""):
        for name, layer in self._layers.items():
            yield prefix + name, layer
            yield from layer.named_layers(prefix + name + self.sep)

    def get_params(self) -> Dict[str, Tensor]:
        """Trainable tensors (stores_grad) by dotted name."""
        return OrderedDict((n, t) for n, t in self._named_tensors() if t.stores_grad)

    def get_states(self) -> Dict[str, Tensor]:
        """Parameters plus other registered tensors (e.g. BN running statistics)."""
        return OrderedDict(self._named_tensors())

    def set_params(self, params: Dict[str, object]) -> None:
        """Copies values (Tensors or numpy arrays) into the named parameters."""
        own = self.get_params()
        self._assign(own, params, "set_params")

    def set_states(self, states: Dict[str, object]) -> None:
        own = self.get_states()
        self._assign(own, states, "set_states")

    @staticmethod
    def _assign(own, values, what):
        for name, v in values.items():
            if name not in own:
                raise KeyError(f"{what}: no tensor named {name!r}; known: {sorted(own)}")
            t = own[name]
            arr = v.to_numpy() if isinstance(v, Tensor) else np.asarray(v)
            if tuple(arr.shape) != tuple(t.shape):
                raise ValueError(f"{what}: {name!r} has shape {t.shape}, got {arr.shape}")
            t.copy_from_numpy(arr)

    # ---- device and dtype follow the input ----
    def _match_inputs(self, args) -> None:
        x = next((a for a in args if isinstance(a, Tensor)), None)
        if x is None:
            return
        for name, t in self._tensors.items():
            if t.device != x.device:
                with eager(x.device):
                    t.to_device(x.device)
            if (t.dtype != x.dtype and x.dtype != tensor.int32 and t.dtype != tensor.int32
                    and not (name in self.float32_states and t.dtype == tensor.float32)):
                with eager(x.device):  # converted once, not at every replay
                    t.data = t.as_type(x.dtype).data

    def device_check(self, *inputs) -> None:
        self._match_inputs(inputs)

    def dtype_check(self, *inputs) -> None:
        self._match_inputs(inputs)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def _float_input(layer: str, x: Tensor) -> None:
    if x.dtype not in (tensor.float32, tensor.float16):
        raise TypeError(f"{layer}: the input must be float32 or float16, got {x.dtype.name}")


def _param(shape, device, dtype, name=None) -> Tensor:
    return Tensor(shape, device, requires_grad=True, stores_grad=True, dtype=dtype, name=name)


def _act(name: str, x: Tensor) -> Tensor:
    name = (name or "NOTSET").upper()
    if name == "NOTSET":
        return x
    if name == "RELU":
        return autograd.relu(x)
    if name == "SIGMOID":
        return autograd.sigmoid(x)
    if name == "TANH":
        return autograd.tanh(x)
    raise ValueError(f"unsupported activation {name!r}; expected NOTSET, RELU, SIGMOID or TANH")


class Linear(Layer):
    """y = x W + b with W (in, out); `Linear(out)` infers `in` from the first input,
    `Linear(in, out)` also works."""

    def __init__(self, out_features: int, *args, bias: bool = True, **kwargs):
        super().__init__()
        if len(args) > 2 or kwargs:
            raise TypeError(f"Linear: unexpected arguments {args[2:]} {sorted(kwargs)}; "
                            "expected Linear(out[, bias=]) or Linear(in, out[, bias])")
        if args:  # Linear(in_features, out_features[, bias]), SINGA's positional form
            self.in_features = tensor.check_count("Linear", "in_features", out_features, 1)
            self.out_features = tensor.check_count("Linear", "out_features", args[0], 1)
            bias = args[1] if len(args) > 1 else bias
        else:
            self.in_features = None
            self.out_features = tensor.check_count("Linear", "out_features", out_features, 1)
        self.bias = bool(bias)

    def initialize(self, x: Tensor) -> None:
        if x.ndim() != 2:
            raise ValueError(f"Linear: expected a 2-d input (N, features), got shape {x.shape}")
        _float_input("Linear", x)
        fan_in = x.shape[1]
        if self.in_features is not None and self.in_features != fan_in:
            raise ValueError(f"Linear: built for {self.in_features} input features, "
                             f"got input of shape {x.shape}")
        self.in_features = fan_in
        std = math.sqrt(2.0 / (fan_in + self.out_features))
        self.W = _param((fan_in, self.out_features), x.device, x.dtype).gaussian(0.0, std)
        if self.bias:
            self.b = _param((self.out_features,), x.device, x.dtype).set_value(0.0)

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim() != 2 or x.shape[1] != self.in_features:
            raise ValueError(f"Linear: expected input (N, {self.in_features}), got {x.shape}")
        y = autograd.matmul(x, self.W)
        return autograd.add_bias(y, self.b, axis=0) if self.bias else y


class Gemm(Layer):
    """ONNX Gemm: alpha * A' B' + beta * C, with B (out, in) when transB (the default)."""

    def __init__(self, nb_kernels: int, alpha: float = 1.0, beta: float = 1.0,
                 transA: bool = False, transB: bool = True, bias: bool = True,
                 bias_shape: Optional[Sequence[int]] = None):
        super().__init__()
        self.nb_kernels, self.alpha, self.beta = nb_kernels, alpha, beta
        self.transA, self.transB, self.bias = transA, transB, bias
        # SINGA's: the shape of C, broadcast to (N, nb_kernels); (1, nb_kernels) by default
        self.bias_shape = (1, nb_kernels) if bias_shape is None else tuple(bias_shape)

    def initialize(self, x: Tensor) -> None:
        _float_input("Gemm", x)
        fan_in = x.shape[0] if self.transA else x.shape[1]
        shape = (self.nb_kernels, fan_in) if self.transB else (fan_in, self.nb_kernels)
        std = math.sqrt(2.0 / (fan_in + self.nb_kernels))
        self.W = _param(shape, x.device, x.dtype).gaussian(0.0, std)
        if self.bias:
            self.b = _param(self.bias_shape, x.device, x.dtype).set_value(0.0)

    def forward(self, x: Tensor) -> Tensor:
        a = autograd.transpose(x) if self.transA else x
        b = autograd.transpose(self.W) if self.transB else self.W
        y = autograd.matmul(a, b)
        if self.alpha != 1.0:
            y = autograd.mul(y, self.alpha)
        if self.bias:
            c = self.b if self.beta == 1.0 else autograd.mul(self.b, self.beta)
            y = autograd.add(y, c)
        return y


class Conv2d(Layer):
    """2-d convolution. `Conv2d(out, k)` infers in-channels; `Conv2d(in, out, k[, stride[,
    padding]])` also works (SINGA's positional form).
    padding: int, (ph, pw) or (top, bottom, left, right); pad_mode NOTSET, SAME_UPPER,
    SAME_LOWER or VALID; activation NOTSET or RELU (applied after the convolution)."""

    def __init__(self, nb_kernels: int, kernel_size, *args, stride=1, padding=0, dilation=1,
                 group: int = 1, bias: bool = True, pad_mode: str = "NOTSET",
                 activation: str = "NOTSET", **kwargs):
        super().__init__()
        self.in_channels = None
        if len(args) > 3:
            raise TypeError(f"Conv2d: too many positional arguments {args}")
        if args:  # Conv2d(in_channels, out_channels, kernel_size, stride, padding)
            self.in_channels = tensor.check_count("Conv2d", "in_channels", nb_kernels, 1)
            nb_kernels, kernel_size = kernel_size, args[0]
            stride = args[1] if len(args) > 1 else stride
            padding = args[2] if len(args) > 2 else padding
        # SINGA's cuDNN hints (algorithm preference, workspace limit): no cuDNN here.
        kwargs.pop("cudnn_prefer", None)
        kwargs.pop("workspace_MB_limit", None)
        if kwargs:
            raise TypeError(f"Conv2d: unexpected arguments {sorted(kwargs)}")
        self.nb_kernels = tensor.check_count("Conv2d", "nb_kernels", nb_kernels, 1)
        self.kernel_size = pair(kernel_size, "kernel_size")
        for k in self.kernel_size:
            tensor.check_count("Conv2d", "kernel_size", k, 1)
        self.stride = pair(stride, "stride")
        self.padding = _pads4(padding)
        self.dilation = pair(dilation, "dilation")
        self.group = int(group)
        self.bias = bias
        self.pad_mode = pad_mode.upper()
        if self.pad_mode not in ("NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID"):
            raise ValueError(f"Conv2d: unknown pad_mode {pad_mode!r}")
        self.activation = activation
        if self.group <= 0 or self.nb_kernels % self.group:
            raise ValueError(f"Conv2d: group {self.group} must divide nb_kernels "
                             f"{self.nb_kernels}")

    def initialize(self, x: Tensor) -> None:
        if x.ndim() != 4:
            raise ValueError(f"Conv2d: expected an NCHW input, got shape {x.shape}")
        _float_input("Conv2d", x)
        c = x.shape[1]
        if self.in_channels is not None and self.in_channels != c:
            raise ValueError(f"Conv2d: built for {self.in_channels} input channels, "
                             f"got input of shape {x.shape}")
        if c % self.group:
            raise ValueError(f"Conv2d: group {self.group} must divide input channels {c}")
        self.in_channels = c
        kh, kw = self.kernel_size
        w_shape = (self.nb_kernels, c // self.group, kh, kw)
        std = math.sqrt(2.0 / (w_shape[1] * kh * kw + self.nb_kernels))
        self.W = _param(w_shape, x.device, x.dtype).gaussian(0.0, std)
        if self.bias:
            self.b = _param((self.nb_kernels,), x.device, x.dtype).set_value(0.0)

    def _pads(self, x: Tensor):
        if self.pad_mode in ("SAME_UPPER", "SAME_LOWER"):
            return same_padding(x.shape[2:], self.kernel_size, self.stride, self.dilation,
                                self.pad_mode)
        if self.pad_mode == "VALID":
            return (0, 0, 0, 0)
        return self.padding

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"Conv2d: expected input (N, {self.in_channels}, H, W), "
                             f"got {x.shape}")
        y = autograd.conv2d(x, self.W, self.b if self.bias else None, self.stride,
                            self._pads(x), self.dilation, self.group)
        return _act(self.activation, y)


class SeparableConv2d(Layer):
    """Depthwise convolution (one filter per input channel) followed by a 1x1 convolution."""

    def __init__(self, nb_kernels: int, kernel_size, *args, stride=1, padding=0,
                 bias: bool = False, **kwargs):
        super().__init__()
        if len(args) > 3 or kwargs:
            raise TypeError(f"SeparableConv2d: unexpected arguments {args} {sorted(kwargs)}")
        self.in_channels = None
        if args:  # SeparableConv2d(in, out, k, stride, padding)
            self.in_channels = tensor.check_count("SeparableConv2d", "in_channels", nb_kernels,
                                                  1)
            nb_kernels, kernel_size = kernel_size, args[0]
            stride = args[1] if len(args) > 1 else stride
            padding = args[2] if len(args) > 2 else padding
        self.nb_kernels, self.kernel_size = nb_kernels, kernel_size
        self.stride, self.padding, self.bias = stride, padding, bias

    def initialize(self, x: Tensor) -> None:
        if x.ndim() != 4:
            raise ValueError(f"SeparableConv2d: expected an NCHW input, got shape {x.shape}")
        c = x.shape[1]
        if self.in_channels is not None and self.in_channels != c:
            raise ValueError(f"SeparableConv2d: built for {self.in_channels} input channels, "
                             f"got input of shape {x.shape}")
        self.depthwise_conv = Conv2d(c, self.kernel_size, stride=self.stride,
                                     padding=self.padding, group=c, bias=self.bias)
        self.point_conv = Conv2d(self.nb_kernels, 1, bias=self.bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.point_conv(self.depthwise_conv(x))


class BatchNorm2d(Layer):
    """Batch normalisation for NCHW (or (N, C)) inputs. SINGA's momentum: the running statistics
    keep `momentum` of their old value (running = momentum * running + (1 - momentum) * batch);
    they stay float32 beside float16 inputs.
    `relu=True` applies a ReLU to the result in the same kernels (BatchNorm2d then ReLU, with
    one pass over the activations fewer each way); forward(x, residual) adds `residual` before
    that ReLU (a residual block's end, relu(bn(x) + residual), in one op)."""

    float32_states = ("running_mean", "running_var")

    def __init__(self, *args, momentum: float = 0.9, eps: float = 1e-5, relu: bool = False,
                 **kwargs):
        super().__init__()
        self.momentum, self.eps, self.relu = float(momentum), float(eps), bool(relu)
        if not 0.0 <= self.momentum <= 1.0:
            raise ValueError(f"BatchNorm2d: momentum must be in [0, 1], got {momentum}")
        self.channels = args[0] if args else None

    def initialize(self, x: Tensor, residual: Tensor = None) -> None:
        if x.ndim() not in (2, 4):
            raise ValueError(f"BatchNorm2d: expected (N, C, H, W) or (N, C), got {x.shape}")
        c = x.shape[1]
        if self.channels is not None and self.channels != c:
            raise ValueError(f"BatchNorm2d: built for {self.channels} channels, got {x.shape}")
        self.channels = c
        self.scale = _param((c,), x.device, x.dtype).set_value(1.0)
        self.bias = _param((c,), x.device, x.dtype).set_value(0.0)
        # float32 also for float16 inputs: a running average's small updates round away in
        # float16 (it stalls) and a variance past 65504 is inf (the core takes both dtypes)
        stats = tensor.float32 if x.dtype == tensor.float16 else x.dtype
        self.running_mean = Tensor((c,), x.device, requires_grad=False,
                                   dtype=stats).set_value(0.0)
        self.running_var = Tensor((c,), x.device, requires_grad=False,
                                  dtype=stats).set_value(1.0)

    def forward(self, x: Tensor, residual: Tensor = None) -> Tensor:
        if x.shape[1] != self.channels:
            raise ValueError(f"BatchNorm2d: expected {self.channels} channels, got {x.shape}")
        return autograd.batchnorm_2d(x, self.scale, self.bias, self.running_mean,
                                     self.running_var, 1.0 - self.momentum, self.eps, self.relu,
                                     residual)


class Pooling2d(Layer):
    def __init__(self, kernel_size, stride=None, padding=0, is_max: bool = True,
                 pad_mode: str = "NOTSET", count_include_pad: bool = True):
        super().__init__()
        self.kernel_size = pair(kernel_size, "kernel_size")
        self.stride = self.kernel_size if stride is None else pair(stride, "stride")
        self.padding = _pads4(padding)
        self.is_max, self.pad_mode = is_max, pad_mode.upper()
        if self.pad_mode not in ("NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID"):
            raise ValueError(f"{type(self).__name__}: unknown pad_mode {pad_mode!r} (expected "
                             "NOTSET, SAME_UPPER, SAME_LOWER or VALID)")
        self.count_include_pad = count_include_pad

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim() != 4:
            raise ValueError(f"{type(self).__name__}: expected an NCHW input, got {x.shape}")
        pads = (0, 0, 0, 0) if self.pad_mode == "VALID" else self.padding
        if self.pad_mode in ("SAME_UPPER", "SAME_LOWER"):
            pads = same_padding(x.shape[2:], self.kernel_size, self.stride, (1, 1),
                                self.pad_mode)
        return autograd.pooling_2d(x, self.kernel_size, self.stride, pads, self.is_max,
                                   self.count_include_pad)


class MaxPool2d(Pooling2d):
    def __init__(self, kernel_size, stride=None, padding=0, pad_mode: str = "NOTSET"):
        super().__init__(kernel_size, stride, padding, True, pad_mode)


class AvgPool2d(Pooling2d):
    def __init__(self, kernel_size, stride=None, padding=0, pad_mode: str = "NOTSET",
                 count_include_pad: bool = True):
        super().__init__(kernel_size, stride, padding, False, pad_mode, count_include_pad)


class MaxPool1d(Layer):
    """Pooling along the last axis of (N, C, L) input, or of (N, C, 1, L) as SINGA's (a
    Pooling2d with kernel (1, k)); the output keeps the input's rank."""

    def __init__(self, kernel_size: int, stride: Optional[int] = None, padding: int = 0,
                 pad_mode: str = "NOTSET"):
        super().__init__()
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self.pad_mode = pad_mode.upper()
        if self.pad_mode not in ("NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID"):
            raise ValueError(f"{type(self).__name__}: unknown pad_mode {pad_mode!r} (expected "
                             "NOTSET, SAME_UPPER, SAME_LOWER or VALID)")

    def forward(self, x: Tensor) -> Tensor:
        is_max = not isinstance(self, AvgPool1d)
        if x.ndim() == 3 and self.pad_mode in ("NOTSET", "VALID"):
            pool = autograd.max_pool_1d if is_max else autograd.avg_pool_1d
            return pool(x, self.kernel_size, self.stride,
                        0 if self.pad_mode == "VALID" else self.padding)
        if x.ndim() not in (3, 4) or (x.ndim() == 4 and x.shape[2] != 1):
            raise ValueError(f"{type(self).__name__}: expected (N, C, L) or (N, C, 1, L) "
                             f"input, got shape {x.shape}")
        x4 = x if x.ndim() == 4 else autograd.unsqueeze(x, [2])
        k, s = self.kernel_size, self.kernel_size if self.stride is None else self.stride
        pads = (0, 0, 0, 0) if self.pad_mode == "VALID" else (0, 0, self.padding, self.padding)
        if self.pad_mode in ("SAME_UPPER", "SAME_LOWER"):
            pads = same_padding(x4.shape[2:], (1, k), (1, s), (1, 1), self.pad_mode)
        y = autograd.pooling_2d(x4, (1, k), (1, s), pads, is_max)
        return y if x.ndim() == 4 else autograd.squeeze(y, [2])


class AvgPool1d(MaxPool1d):
    pass


class GlobalAvgPool2d(Layer):
    def forward(self, x: Tensor) -> Tensor:
        return autograd.globalaveragepool(x)


class ReLU(Layer):
    def forward(self, x: Tensor) -> Tensor:
        return autograd.relu(x)


class Sigmoid(Layer):
    def forward(self, x: Tensor) -> Tensor:
        return autograd.sigmoid(x)


class Tanh(Layer):
    def forward(self, x: Tensor) -> Tensor:
        return autograd.tanh(x)


class GELU(Layer):
    """GELU activation (torch.nn.GELU): approximate 'none' (exact) or 'tanh'."""

    def __init__(self, approximate: str = "none"):
        super().__init__()
        autograd.Gelu(approximate)  # checks the name now, not at the first forward
        self.approximate = approximate

    def forward(self, x: Tensor) -> Tensor:
        return autograd.gelu(x, self.approximate)


class SoftMax(Layer):
    def __init__(self, axis: int = 1):
        super().__init__()
        self.axis = axis

    def forward(self, x: Tensor) -> Tensor:
        return autograd.softmax(x, self.axis)


class Add(Layer):
    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        return autograd.add(a, b)


class Cat(Layer):
    def __init__(self, axis: int = 0):
        super().__init__()
        self.axis = axis

    def forward(self, xs: Sequence[Tensor]) -> Tensor:
        return autograd.cat(list(xs), self.axis)


class Flatten(Layer):
    def __init__(self, axis: int = 1):
        super().__init__()
        self.axis = axis

    def forward(self, x: Tensor) -> Tensor:
        return autograd.flatten(x, self.axis)


class Reshape(Layer):
    def __init__(self, shape: Optional[Sequence[int]] = None):
        super().__init__()
        self.shape = shape

    def forward(self, x: Tensor, shape: Optional[Sequence[int]] = None) -> Tensor:
        shape = shape if shape is not None else self.shape
        if shape is None:
            raise ValueError("Reshape: no target shape given")
        return autograd.reshape(x, shape)


class Dropout(Layer):
    def __init__(self, ratio: float = 0.5):
        super().__init__()
        if not 0.0 <= ratio < 1.0:
            raise ValueError(f"Dropout: ratio must be in [0, 1), got {ratio}")
        self.ratio = ratio

    def forward(self, x: Tensor) -> Tensor:
        return autograd.dropout(x, self.ratio)


class Embedding(Layer):
    """Looks up rows of W (input_dim, output_dim) for int32 indices of any shape. W starts
    with standard deviation 1/sqrt(output_dim), "gaussian" (default) or "uniform"."""

    def __init__(self, input_dim: int, output_dim: int, initializer: str = "gaussian"):
        super().__init__()
        self.input_dim = tensor.check_count("Embedding", "input_dim", input_dim, 1)
        self.output_dim = tensor.check_count("Embedding", "output_dim", output_dim, 1)
        if initializer not in ("gaussian", "uniform"):
            raise ValueError(f"Embedding: initializer must be 'gaussian' or 'uniform', got "
                             f"{initializer!r}")
        self.initializer = initializer

    def initialize(self, x: Tensor) -> None:
        self.W = _param((self.input_dim, self.output_dim), x.device, tensor.float32)
        std = 1.0 / math.sqrt(self.output_dim)
        if self.initializer == "gaussian":
            self.W.gaussian(0.0, std)
        else:
            self.W.uniform(-std * math.sqrt(3.0), std * math.sqrt(3.0))

    def from_pretrained(self, W, freeze: bool = True) -> "Embedding":
        """Takes W (a Tensor or array of shape (input_dim, output_dim)) as the table; with
        freeze it is not trained (not a parameter; still saved with the states)."""
        arr = W.to_numpy() if isinstance(W, Tensor) else np.asarray(W)
        if arr.shape != (self.input_dim, self.output_dim):
            raise ValueError(f"Embedding.from_pretrained: W has shape {arr.shape}, expected "
                             f"({self.input_dim}, {self.output_dim})")
        dev = W.device if isinstance(W, Tensor) else None
        self.W = Tensor(data=arr.astype(np.float32), device=dev, requires_grad=not freeze,
                        stores_grad=not freeze)
        self._initialized = True
        return self

    def forward(self, x: Tensor) -> Tensor:
        if x.dtype != tensor.int32:
            raise TypeError(f"Embedding: indices must be int32, got {x.dtype.name}")
        return autograd.gather(self.W, 0, x)


class SoftMaxCrossEntropy(Layer):
    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        return autograd.softmax_cross_entropy(x, t)


class CrossEntropy(Layer):
    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        return autograd.cross_entropy(x, t)


class BinaryCrossEntropy(Layer):
    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        return autograd.binary_cross_entropy(x, t)


class MeanSquareError(Layer):
    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        return autograd.mse_loss(x, t)


_RECURRENT = ("RNN_Base", "RNN", "LSTM", "GRU", "CudnnRNN")


def __getattr__(name: str):
    """The recurrent layers live in rnn.py (which imports this module): layer.LSTM etc."""
    if name in _RECURRENT:
        from . import rnn

        return getattr(rnn, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
