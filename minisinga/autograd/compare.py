"""Comparisons and logic (SINGA's Less, Greater, Equal, And, Or, Not, Xor): 0/1 outputs.

Inputs broadcast against each other; the output has their dtype (float 0.0 / 1.0 for float
inputs). Logic ops read any non-zero value (NaN included) as true. None of these is
differentiable: the output is piecewise constant, so backward sends no gradient (None, the
engine's mark for "nothing flows to this input") to any input; a loss that depends on a
parameter only through them gives that parameter no gradient.
"""

from __future__ import annotations

from ..tensor import Tensor
from . import _f as F
from ._f import B, U
from .engine import Operator


def _check_broadcast(name: str, a, b) -> None:
    try:
        F.core.broadcast_shapes(list(a.shape), list(b.shape))
    except ValueError:
        raise ValueError(f"{name}: shapes {tuple(a.shape)} and {tuple(b.shape)} do not "
                         "broadcast against each other") from None


def _truth(x):
    """1 where x != 0 (NaN counts as true), else 0."""
    return F.un(U.NeScalar, x, 0.0)


class _NoGrad(Operator):
    """An operator with a piecewise-constant output: backward returns None for every input."""

    def backward(self, dy):
        return (None,) * self.n_inputs


class _Compare(_NoGrad):
    op = None  # the BinaryOp
    fn = ""  # the function's name, for messages
    n_inputs = 2

    def forward(self, x, y):
        _check_broadcast(self.fn, x, y)
        return self._compute(x, y)

    def _compute(self, x, y):
        return F.core.binary(self.op, x, y)


class Less(_Compare):
    """x < y elementwise."""
    op, fn = B.Lt, "less"


class Greater(_Compare):
    """x > y elementwise."""
    op, fn = B.Gt, "greater"


class Equal(_Compare):
    """x == y elementwise."""
    op, fn = B.Eq, "equal"


class And(_Compare):
    """a and b (non-zero is true)."""
    fn = "_and"

    def _compute(self, a, b):
        return F.mul(_truth(a), _truth(b))


class Or(_Compare):
    """a or b (non-zero is true)."""
    fn = "_or"

    def _compute(self, a, b):
        return F.core.binary(B.Maximum, _truth(a), _truth(b))


class Xor(_Compare):
    """Exactly one of a and b is true (non-zero)."""
    fn = "_xor"

    def _compute(self, a, b):
        return F.core.binary(B.Ne, _truth(a), _truth(b))


class Not(_NoGrad):
    """1 where x == 0, else 0."""
    n_inputs = 1

    def forward(self, x):
        return F.un(U.EqScalar, x, 0.0)


def less(x: Tensor, y: Tensor) -> Tensor:
    """1.0 where x < y, else 0.0 (broadcast; no gradient)."""
    return Less()(x, y)


def greater(x: Tensor, y: Tensor) -> Tensor:
    """1.0 where x > y, else 0.0 (broadcast; no gradient)."""
    return Greater()(x, y)


def equal(x: Tensor, y: Tensor) -> Tensor:
    """1.0 where x == y, else 0.0 (broadcast; no gradient)."""
    return Equal()(x, y)


def _and(a: Tensor, b: Tensor) -> Tensor:
    """Logical and of two tensors read as booleans (non-zero is true): 0.0 / 1.0."""
    return And()(a, b)


def _or(a: Tensor, b: Tensor) -> Tensor:
    """Logical or (non-zero is true): 0.0 / 1.0."""
    return Or()(a, b)


def _xor(a: Tensor, b: Tensor) -> Tensor:
    """Logical exclusive or (non-zero is true): 0.0 / 1.0."""
    return Xor()(a, b)


def _not(x: Tensor) -> Tensor:
    """Logical not (non-zero is true): 1.0 where x == 0, else 0.0."""
    return Not()(x)
