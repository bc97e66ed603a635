"""Autograd: operators with backward, `backward()` as a generator, the `training` switch.

`autograd.training = True` (SINGA's way) and `with autograd.train_mode():` both set the
thread-local recording flag.
"""

import sys as _sys
import types as _types

from .engine import (  # noqa: F401
    Operator,
    backward,
    gradients,
    infer_dependency,
    is_training,
    no_grad,
    set_training,
    train_mode,
)
from .math import *  # noqa: F401,F403
from .math import (  # noqa
    Abs,
    Add,
    AddBias,
    Div,
    Elu,
    Erf,
    Exp,
    HardSigmoid,
    LeakyReLU,
    Log,
    Matmul,
    Mul,
    Neg,
    Pow,
    ReduceMax,
    ReduceMean,
    ReduceMin,
    ReduceSum,
    ReLU,
    Selu,
    Sigmoid,
    SoftPlus,
    SoftSign,
    Sqrt,
    Sub,
    Tanh,
    abs,
    add,
    add_bias,
    clip,
    div,
    elu,
    erf,
    exp,
    hardsigmoid,
    leakyrelu,
    log,
    matmul,
    max,
    maximum,
    min,
    minimum,
    mul,
    neg,
    pow,
    reduce_mean,
    reduce_sum,
    relu,
    selu,
    sigmoid,
    softplus,
    softsign,
    sqrt,
    sub,
    tanh,
)
from .nn import (  # noqa: F401
    BatchNorm2d,
    Conv2d,
    Dropout,
    LogSoftMax,
    Pool2d,
    SoftMax,
    SoftMaxCrossEntropy,
    avg_pool_1d,
    avg_pool_2d,
    batchnorm_2d,
    binary_cross_entropy,
    conv2d,
    cross_entropy,
    dropout,
    globalaveragepool,
    log_softmax,
    max_pool_1d,
    max_pool_2d,
    mse_loss,
    pooling_2d,
    same_padding,
    softmax,
    softmax_cross_entropy,
)
from .shape import (  # noqa: F401
    Cast,
    Concat,
    Flatten,
    Gather,
    Identity,
    Reshape,
    Slice,
    Split,
    Squeeze,
    Transpose,
    Unsqueeze,
    Where,
    cast,
    cat,
    concat,
    flatten,
    gather,
    identity,
    reshape,
    slice,
    split,
    squeeze,
    transpose,
    unsqueeze,
    where,
)


class _AutogradModule(_types.ModuleType):
    """Lets `autograd.training` read and write the thread-local flag."""

    @property
    def training(self) -> bool:
        return is_training()

    @training.setter
    def training(self, flag: bool) -> None:
        set_training(flag)


_sys.modules[__name__].__class__ = _AutogradModule
