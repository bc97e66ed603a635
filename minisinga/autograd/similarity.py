"""Row-wise cosine similarity and the margin ranking loss (SINGA's CosSim, RankingLoss)."""

from __future__ import annotations

from .. import tensor as _tensor
from ..tensor import Tensor
from . import _f as F
from ._f import U
from .engine import Operator
from .layout import in_float32

# Added to each squared row norm: a zero row gives similarity 0 and a finite gradient
# instead of NaN; for rows of norm >= 1e-3 the relative change is below 1e-6.
_EPS = 1e-12


class CosSim(Operator):
    """y[i] = <a[i], b[i]> / (|a[i]| |b[i]|) for two (n, d) tensors; y has shape (n,)."""

    def forward(self, a, b):
        if a.ndim != 2 or tuple(a.shape) != tuple(b.shape):
            raise ValueError(f"cossim: expected two 2-d tensors of the same shape (n, d), got "
                             f"{tuple(a.shape)} and {tuple(b.shape)}")
        n = a.shape[0]
        dot = F.core.reduce_sum(F.mul(a, b), [1], True)
        sa = F.un(U.AddScalar, F.core.reduce_sum(F.un(U.Square, a), [1], True), _EPS)
        sb = F.un(U.AddScalar, F.core.reduce_sum(F.un(U.Square, b), [1], True), _EPS)
        den = F.un(U.Sqrt, F.mul(sa, sb))  # |a| |b|, shape (n, 1)
        y = F.div(dot, den)
        if self.requires_grad:
            self.a, self.b, self.sa, self.sb, self.den, self.y = a, b, sa, sb, den, y
        return y.reshape([n])

    def backward(self, dy):
        # dy/da = b / (|a||b|) - y a / |a|^2, and the same with a and b swapped
        g = dy.reshape([dy.shape[0], 1])
        da = db = None
        if self.need(0):
            da = F.mul(g, F.sub(F.div(self.b, self.den), F.mul(self.a, F.div(self.y, self.sa))))
        if self.need(1):
            db = F.mul(g, F.sub(F.div(self.a, self.den), F.mul(self.b, F.div(self.y, self.sb))))
        return da, db


def cossim(a: Tensor, b: Tensor) -> Tensor:
    """Cosine similarity of the rows of a and b, both (n, d): a tensor of shape (n,).
    float16 rows are computed in float32 (their squared norms overflow or vanish in float16)."""
    if a.dtype == _tensor.float16 and b.dtype == _tensor.float16:
        return in_float32(CosSim(), a, b)
    return CosSim()(a, b)


class RankingLoss(Operator):
    """mean(max(0, M - pos + neg)): pushes each positive score above its negative by M."""

    def __init__(self, M: float = 0.2):
        super().__init__()
        self.M = float(M)

    def forward(self, pos, neg):
        try:
            F.core.broadcast_shapes(list(pos.shape), list(neg.shape))
        except ValueError:
            raise ValueError(f"ranking_loss: pos {tuple(pos.shape)} and neg "
                             f"{tuple(neg.shape)} do not broadcast against each other") from None
        v = F.un(U.AddScalar, F.sub(neg, pos), self.M)
        if self.requires_grad:
            self.pos_shape, self.neg_shape = pos.shape, neg.shape
            self.active = F.un(U.GtScalar, v, 0.0)  # where the hinge is open (0 at the kink)
        return F.core.reduce_mean(F.un(U.Relu, v), None, False)

    def backward(self, dy):
        g = F.scale(F.mul(self.active, dy), 1.0 / self.active.numel)
        dpos = F.sum_to(F.un(U.Neg, g), self.pos_shape) if self.need(0) else None
        dneg = F.sum_to(g, self.neg_shape) if self.need(1) else None
        return dpos, dneg


def ranking_loss(pos: Tensor, neg: Tensor, M: float = 0.2) -> Tensor:
    """Margin ranking loss mean(max(0, M - pos + neg)) over all (broadcast) elements, a scalar."""
    return RankingLoss(M)(pos, neg)
