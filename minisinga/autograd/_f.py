"""Short names for the core calls that backward passes are written with (internal)."""

from __future__ import annotations

from .. import _core

B = _core.BinaryOp
U = _core.UnaryOp

core = _core


def add(a, b):
    return _core.binary(B.Add, a, b)


def sub(a, b):
    return _core.binary(B.Sub, a, b)


def mul(a, b):
    return _core.binary(B.Mul, a, b)


def div(a, b):
    return _core.binary(B.Div, a, b)


def un(op, x, a=0.0, b=0.0):
    return _core.unary(op, x, float(a), float(b))


def scale(x, s):
    return _core.unary(U.MulScalar, x, float(s))


def full_like(x, value):
    t = _core.Tensor(list(x.shape), x.device, x.dtype)
    _core.fill(t, float(value))
    return t


def sum_to(x, shape):
    """Reduces a broadcast gradient back to `shape`."""
    if tuple(x.shape) == tuple(shape):
        return x
    return _core.sum_to_shape(x, list(shape))
