"""Elementwise operators over any number of tensors, broadcast together (SINGA's sum, mean,
max, min): each input's gradient is summed back to its shape."""

from __future__ import annotations

from ..tensor import Tensor
from . import _f as F
from ._f import B, U
from .engine import Operator


def _check_args(fn: str, xs, hint: str = "") -> None:
    if not xs:
        raise TypeError(f"{fn}: expected one or more Tensors, got no arguments")
    for i, x in enumerate(xs):
        if not isinstance(x, Tensor):
            raise TypeError(f"{fn}: argument {i} is a {type(x).__name__}, expected a Tensor"
                            f"{hint}")


class _Variadic(Operator):
    fn = ""  # the function's name, for messages

    def _check_shapes(self, xs) -> None:
        shape = list(xs[0].shape)
        for x in xs[1:]:
            try:
                shape = F.core.broadcast_shapes(shape, list(x.shape))
            except ValueError:
                raise ValueError(f"{self.fn}: input shapes {[tuple(x.shape) for x in xs]} do "
                                 "not broadcast together") from None


class Sum(_Variadic):
    """Elementwise sum of its inputs; each gradient is dy summed back to the input's shape."""
    fn = "sum"

    def forward(self, *xs):
        self._check_shapes(xs)
        y = xs[0]
        for x in xs[1:]:
            y = F.add(y, x)
        if self.requires_grad:
            self.shapes = [x.shape for x in xs]
        return y

    def backward(self, dy):
        return tuple(F.sum_to(dy, s) if self.need(i) else None for i, s in enumerate(self.shapes))


class Mean(Sum):
    """Elementwise mean of its inputs (their sum divided by how many there are)."""
    fn = "mean"

    def forward(self, *xs):
        return F.scale(super().forward(*xs), 1.0 / len(xs))

    def backward(self, dy):
        return super().backward(F.scale(dy, 1.0 / len(self.shapes)))


class Max(_Variadic):
    """Elementwise maximum of its inputs. Where several inputs attain it, the first of them
    (in argument order) gets the whole gradient and the others none (as Maximum does)."""
    fn = "max"
    pair = B.Maximum

    def forward(self, *xs):
        self._check_shapes(xs)
        y = xs[0]
        for x in xs[1:]:
            y = F.core.binary(self.pair, y, x)
        if self.requires_grad:
            self.xs, self.y = list(xs), y
        return y

    def backward(self, dy):
        if len(self.xs) == 1:
            return dy
        grads, taken = [], None  # taken: 1 where an earlier input already got the gradient
        for i, x in enumerate(self.xs):
            hit = F.core.binary(B.Eq, x, self.y)  # y's shape
            if taken is not None:
                hit = F.mul(hit, F.un(U.RSubScalar, taken, 1.0))
            if i + 1 < len(self.xs):
                taken = hit if taken is None else F.add(taken, hit)
            grads.append(F.sum_to(F.mul(dy, hit), x.shape) if self.need(i) else None)
        return tuple(grads)


class Min(Max):
    """Elementwise minimum of its inputs; ties as in Max (the first input attaining it)."""
    fn = "min"
    pair = B.Minimum


def _reduce_hint(name: str, what: str) -> str:
    return (f" ({name}(*tensors) is element-wise over several tensors, as in SINGA; for the "
            f"{what} of one tensor over axes use autograd.reduce_{name}(x, axes, keepdims))")


def sum(*l: Tensor) -> Tensor:  # noqa: A001,E741
    """Elementwise sum of one or more tensors (broadcast together)."""
    _check_args("sum", l)
    return Sum()(*l)


def mean(*l: Tensor) -> Tensor:  # noqa: E741
    """Elementwise mean of one or more tensors (broadcast together)."""
    _check_args("mean", l)
    return Mean()(*l)


def max(*l: Tensor) -> Tensor:  # noqa: A001,E741
    """Elementwise maximum of one or more tensors (broadcast together); on ties the first input
    attaining it gets the gradient. The maximum over axes is reduce_max."""
    _check_args("max", l, _reduce_hint("max", "maximum"))
    return Max()(*l)


def min(*l: Tensor) -> Tensor:  # noqa: A001,E741
    """Elementwise minimum of one or more tensors; ties as in max. The minimum over axes is
    reduce_min."""
    _check_args("min", l, _reduce_hint("min", "minimum"))
    return Min()(*l)
