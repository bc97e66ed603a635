"""Pointwise operators: the base class, trigonometric and hyperbolic functions, 1/x, and the
piecewise-constant sign, ceil, floor and round (zero gradient)."""

from __future__ import annotations

from ..tensor import Tensor
from . import _f as F
from ._f import U
from .engine import Operator

# ---- pointwise: y = f(x; params), backward = dy * f'(x) ----

class _Pointwise(Operator):
    op = None  # the UnaryOp computing the forward
    # What backward reads, kept from the forward: an input kept only for its gradient would
    # hold its memory until the backward pass (e.g. ReLU's input where its output suffices).
    keeps = ("x", "y")

    def __init__(self, *params: float):
        super().__init__()
        self.params = params

    def forward(self, x):
        y = F.un(self.op, x, *self.params)
        if self.requires_grad:
            self.x = x if "x" in self.keeps else None
            self.y = y if "y" in self.keeps else None
        return y

    def backward(self, dy):
        return F.mul(dy, self.grad(self.x, self.y))

    def grad(self, x, y):
        raise NotImplementedError


# ---- trigonometric and hyperbolic, and 1/x ----

def _rsqrt(t):
    return F.un(U.Reciprocal, F.un(U.Sqrt, t))


class Sin(_Pointwise):
    op = U.Sin
    keeps = ("x",)

    def grad(self, x, y):
        return F.un(U.Cos, x)


class Cos(_Pointwise):
    op = U.Cos
    keeps = ("x",)

    def grad(self, x, y):
        return F.un(U.Neg, F.un(U.Sin, x))


class Tan(_Pointwise):
    op = U.Tan
    keeps = ("y",)

    def grad(self, x, y):  # 1 + tan^2
        return F.un(U.AddScalar, F.un(U.Square, y), 1.0)


class Asin(_Pointwise):
    op = U.Asin
    keeps = ("x",)

    def grad(self, x, y):  # 1 / sqrt(1 - x^2)
        return _rsqrt(F.un(U.RSubScalar, F.un(U.Square, x), 1.0))


class Acos(_Pointwise):
    op = U.Acos
    keeps = ("x",)

    def grad(self, x, y):  # -1 / sqrt(1 - x^2)
        return F.un(U.Neg, _rsqrt(F.un(U.RSubScalar, F.un(U.Square, x), 1.0)))


class Atan(_Pointwise):
    op = U.Atan
    keeps = ("x",)

    def grad(self, x, y):  # 1 / (1 + x^2)
        return F.un(U.Reciprocal, F.un(U.AddScalar, F.un(U.Square, x), 1.0))


class Sinh(_Pointwise):
    op = U.Sinh
    keeps = ("x",)

    def grad(self, x, y):
        return F.un(U.Cosh, x)


class Cosh(_Pointwise):
    op = U.Cosh
    keeps = ("x",)

    def grad(self, x, y):
        return F.un(U.Sinh, x)


class Asinh(_Pointwise):
    op = U.Asinh
    keeps = ("x",)

    def grad(self, x, y):  # 1 / sqrt(x^2 + 1)
        return _rsqrt(F.un(U.AddScalar, F.un(U.Square, x), 1.0))


class Acosh(_Pointwise):
    op = U.Acosh
    keeps = ("x",)

    def grad(self, x, y):  # 1 / sqrt(x^2 - 1)
        return _rsqrt(F.un(U.AddScalar, F.un(U.Square, x), -1.0))


class Atanh(_Pointwise):
    op = U.Atanh
    keeps = ("x",)

    def grad(self, x, y):  # 1 / (1 - x^2)
        return F.un(U.Reciprocal, F.un(U.RSubScalar, F.un(U.Square, x), 1.0))


class Reciprocal(_Pointwise):
    op = U.Reciprocal
    keeps = ("y",)

    def grad(self, x, y):  # -1 / x^2 = -y^2
        return F.un(U.Neg, F.un(U.Square, y))


# ---- piecewise constant: the gradient is zero wherever it exists ----

class _Flat(_Pointwise):
    """Backward returns zeros (also at the jumps, where no derivative exists)."""
    keeps = ()

    def backward(self, dy):
        return F.full_like(dy, 0.0)


class Sign(_Flat):
    op = U.Sign


class Ceil(_Flat):
    op = U.Ceil


class Floor(_Flat):
    op = U.Floor


class Round(_Flat):
    """Rounds to the nearest integer, halves away from zero (2.5 -> 3, -0.5 -> -1)."""
    op = U.Round


class Rounde(_Flat):
    """Rounds to the nearest integer, halves to even (2.5 -> 2, 1.5 -> 2; numpy.rint)."""
    op = U.Rint


def reciprocal(x: Tensor) -> Tensor:
    """1 / x."""
    return Reciprocal()(x)


def sin(x: Tensor) -> Tensor:
    return Sin()(x)


def cos(x: Tensor) -> Tensor:
    return Cos()(x)


def tan(x: Tensor) -> Tensor:
    return Tan()(x)


def asin(x: Tensor) -> Tensor:
    """arcsin, for x in [-1, 1]."""
    return Asin()(x)


def acos(x: Tensor) -> Tensor:
    """arccos, for x in [-1, 1]."""
    return Acos()(x)


def atan(x: Tensor) -> Tensor:
    return Atan()(x)


def sinh(x: Tensor) -> Tensor:
    return Sinh()(x)


def cosh(x: Tensor) -> Tensor:
    return Cosh()(x)


def asinh(x: Tensor) -> Tensor:
    return Asinh()(x)


def acosh(x: Tensor) -> Tensor:
    """arcosh, for x >= 1."""
    return Acosh()(x)


def atanh(x: Tensor) -> Tensor:
    """artanh, for x in (-1, 1)."""
    return Atanh()(x)


def sign(x: Tensor) -> Tensor:
    """-1, 0 or 1 by the sign of x. Its gradient is zero (backward returns zeros)."""
    return Sign()(x)


def ceil(x: Tensor) -> Tensor:
    """The smallest integer >= x. Its gradient is zero (backward returns zeros)."""
    return Ceil()(x)


def floor(x: Tensor) -> Tensor:
    """The largest integer <= x. Its gradient is zero (backward returns zeros)."""
    return Floor()(x)


def round(x: Tensor) -> Tensor:  # noqa: A001
    """The nearest integer, halves away from zero. Its gradient is zero (backward returns
    zeros)."""
    return Round()(x)


def rounde(x: Tensor) -> Tensor:
    """The nearest integer, halves to even. Its gradient is zero (backward returns zeros)."""
    return Rounde()(x)
