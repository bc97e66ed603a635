"""Elementwise, matrix and reduction operators; also re-exports the other operator families
(pointwise, variadic, compare, similarity) so that `autograd.math` has SINGA's whole set."""

from __future__ import annotations

import math as _m
from typing import Optional, Sequence, Union

import numpy as np

from ..tensor import Tensor, is_number
from . import _f as F
from ._f import B, U
from .compare import (  # noqa: F401  (re-exported: SINGA has them in autograd)
    And,
    Equal,
    Greater,
    Less,
    Not,
    Or,
    Xor,
    _and,
    _not,
    _or,
    _xor,
    equal,
    greater,
    less,
)
from .engine import Operator
from .pointwise import (  # noqa: F401
    Acos,
    Acosh,
    Asin,
    Asinh,
    Atan,
    Atanh,
    Ceil,
    Cos,
    Cosh,
    Floor,
    Reciprocal,
    Round,
    Rounde,
    Sign,
    Sin,
    Sinh,
    Tan,
    _Pointwise,
    acos,
    acosh,
    asin,
    asinh,
    atan,
    atanh,
    ceil,
    cos,
    cosh,
    floor,
    reciprocal,
    round,
    rounde,
    sign,
    sin,
    sinh,
    tan,
)
from .similarity import CosSim, RankingLoss, cossim, ranking_loss  # noqa: F401
from .variadic import Max, Mean, Min, Sum, max, mean, min, sum  # noqa: F401

Number = Union[int, float]

Operation = Operator  # SINGA's other name for the base class


# ---- pointwise: y = f(x; params), backward = dy * f'(x) (the base class is in pointwise.py)

class Neg(_Pointwise):
    op = U.Neg
    keeps = ()

    def backward(self, dy):
        return F.un(U.Neg, dy)


class Exp(_Pointwise):
    op = U.Exp
    keeps = ("y",)

    def grad(self, x, y):
        return y


class Log(_Pointwise):
    op = U.Log
    keeps = ("x",)

    def backward(self, dy):  # dy / x: 0 where dy is (dy * (1 / x) is NaN where 1 / x is inf)
        return F.div(dy, self.x)


class Sqrt(_Pointwise):
    op = U.Sqrt
    keeps = ("y",)

    def grad(self, x, y):
        return F.un(U.RDivScalar, y, 0.5)


class Abs(_Pointwise):
    op = U.Abs
    keeps = ("x",)

    def grad(self, x, y):
        return F.un(U.Sign, x)


class ReLU(_Pointwise):
    op = U.Relu
    keeps = ("y",)  # y > 0 exactly where x > 0 (NaN and -0 give 0)

    def backward(self, dy):  # one pass: dy where y > 0, else 0
        return F.core.binary(B.ReluBackward, dy, self.y)


class LeakyReLU(_Pointwise):
    op = U.LeakyRelu

    def grad(self, x, y):  # 1 where x > 0 else a
        a = self.params[0]
        return F.un(U.AddScalar, F.scale(F.un(U.GtScalar, x, 0.0), 1.0 - a), a)


class Elu(_Pointwise):
    op = U.Elu

    def grad(self, x, y):  # 1 where x > 0 else y + a
        pos = F.un(U.GtScalar, x, 0.0)
        neg = F.un(U.AddScalar, y, self.params[0])
        return F.core.where(pos, F.full_like(x, 1.0), neg)


class Selu(_Pointwise):
    op = U.Selu

    def grad(self, x, y):  # scale where x > 0 else y + scale*alpha
        alpha, scale = self.params
        pos = F.un(U.GtScalar, x, 0.0)
        return F.core.where(pos, F.full_like(x, scale), F.un(U.AddScalar, y, scale * alpha))


class Sigmoid(_Pointwise):
    op = U.Sigmoid
    keeps = ("y",)

    def backward(self, dy):  # one pass: dy * y * (1 - y)
        return F.core.binary(B.SigmoidBackward, dy, self.y)


class HardSigmoid(_Pointwise):
    op = U.HardSigmoid

    def grad(self, x, y):  # alpha inside (0, 1), 0 where clipped
        inside = F.mul(F.un(U.GtScalar, y, 0.0), F.un(U.LtScalar, y, 1.0))
        return F.scale(inside, self.params[0])


class Tanh(_Pointwise):
    op = U.Tanh
    keeps = ("y",)

    def backward(self, dy):  # one pass: dy * (1 - y^2)
        return F.core.binary(B.TanhBackward, dy, self.y)


class SoftPlus(_Pointwise):
    op = U.Softplus

    def grad(self, x, y):
        return F.un(U.Sigmoid, x)


class SoftSign(_Pointwise):
    op = U.Softsign

    def grad(self, x, y):  # 1 / (1 + |x|)^2
        return F.un(U.Reciprocal, F.un(U.Square, F.un(U.AddScalar, F.un(U.Abs, x), 1.0)))


class Erf(_Pointwise):
    op = U.Erf

    def grad(self, x, y):  # 2/sqrt(pi) * exp(-x^2)
        return F.scale(F.un(U.Exp, F.un(U.Neg, F.un(U.Square, x))), 2.0 / _m.sqrt(_m.pi))


class Gelu(_Pointwise):
    """x Phi(x), Phi the standard normal CDF (approximate='none'), or PyTorch's tanh form
    x/2 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) (approximate='tanh'); one kernel each way."""

    APPROXIMATIONS = ("none", "tanh")
    keeps = ("x",)

    def __init__(self, approximate: str = "none"):
        if approximate not in self.APPROXIMATIONS:
            raise ValueError(f"gelu: approximate={approximate!r} is not supported; expected "
                             "'none' or 'tanh'")
        super().__init__()
        self.approximate = approximate
        self.op = U.Gelu if approximate == "none" else U.GeluTanh

    def backward(self, dy):
        op = B.GeluBackward if self.approximate == "none" else B.GeluTanhBackward
        return F.core.binary(op, dy, self.x)


class Clip(_Pointwise):
    op = U.Clip

    def grad(self, x, y):  # 1 inside [low, high], 0 outside
        low, high = self.params
        return F.mul(F.un(U.GeScalar, x, low), F.un(U.LeScalar, x, high))


class PowScalar(_Pointwise):
    op = U.PowScalar

    def grad(self, x, y):  # c * x^(c-1); 0 for c = 0 (also at x = 0, as PyTorch)
        c = self.params[0]
        if c == 0:
            return F.full_like(x, 0.0)
        return F.scale(F.un(U.PowScalar, x, c - 1.0), c)


class RPowScalar(_Pointwise):
    op = U.RPowScalar

    def grad(self, x, y):  # c^x ln c: NaN for c < 0; for c = 0, 0 where x >= 0 (as PyTorch)
        c = self.params[0]
        if c > 0:
            return F.scale(y, _m.log(c))
        if c < 0 or c != c:
            return F.full_like(x, float("nan"))
        return F.core.where(F.un(U.GeScalar, x, 0.0), F.full_like(x, 0.0),
                            F.scale(y, -_m.inf))


class AddScalar(_Pointwise):
    op = U.AddScalar
    keeps = ()

    def backward(self, dy):
        return dy


class MulScalar(_Pointwise):
    op = U.MulScalar
    keeps = ()

    def backward(self, dy):
        return F.scale(dy, self.params[0])


class DivScalar(_Pointwise):
    """x / c (a division, not a product with 1/c: exact for int32, inf for c = 0)."""
    op = U.DivScalar
    keeps = ()

    def backward(self, dy):
        return F.un(U.DivScalar, dy, self.params[0])


class RSubScalar(_Pointwise):
    op = U.RSubScalar
    keeps = ()

    def backward(self, dy):
        return F.un(U.Neg, dy)


class RDivScalar(_Pointwise):
    op = U.RDivScalar

    def grad(self, x, y):  # -c / x^2 = -y / x
        return F.un(U.Neg, F.div(y, x))


class Negative(Neg):
    """SINGA's name for Neg: -x."""


LeakyRelu = LeakyReLU  # SINGA's spellings of the same operators
SeLU = Selu


# ---- binary with broadcasting ----

class _Binary(Operator):
    op = None
    keeps = ("a", "b", "y")  # what grads reads (see _Pointwise.keeps); the shapes always

    def forward(self, a, b):
        y = F.core.binary(self.op, a, b)
        if self.requires_grad:
            self.a_shape, self.b_shape = a.shape, b.shape
            self.a = a if "a" in self.keeps else None
            self.b = b if "b" in self.keeps else None
            self.y = y if "y" in self.keeps else None
        return y

    def backward(self, dy):
        da, db = self.grads(dy)
        return (None if da is None else F.sum_to(da, self.a_shape),
                None if db is None else F.sum_to(db, self.b_shape))


class Add(_Binary):
    op = B.Add
    keeps = ()

    def grads(self, dy):
        return dy, dy


class Sub(_Binary):
    op = B.Sub
    keeps = ()

    def grads(self, dy):
        return dy, F.un(U.Neg, dy)


class Mul(_Binary):
    op = B.Mul
    keeps = ("a", "b")

    def grads(self, dy):
        return F.mul(dy, self.b), F.mul(dy, self.a)


class Div(_Binary):
    op = B.Div
    keeps = ("b", "y")

    def grads(self, dy):
        da = F.div(dy, self.b)
        return da, F.un(U.Neg, F.mul(da, self.y))  # -dy * a / b^2 = -(dy / b) * y


class Pow(_Binary):
    op = B.Pow

    def grads(self, dy):  # d(a^b)/da = b a^(b-1); d/db = a^b ln a, 0 where a = 0 <= b
        a, b = self.a, self.b
        da = F.mul(dy, F.mul(b, F.core.binary(B.Pow, a, F.un(U.AddScalar, b, -1))))
        zero_base = F.mul(F.un(U.EqScalar, a, 0.0), F.un(U.GeScalar, b, 0.0))
        ylna = F.core.where(zero_base, F.full_like(self.y, 0.0),
                            F.mul(self.y, F.un(U.Log, a)))
        return da, F.mul(dy, ylna)


class Maximum(_Binary):
    op = B.Maximum

    def grads(self, dy):
        m = F.core.binary(B.Ge, self.a, self.b)
        return F.mul(dy, m), F.mul(dy, F.un(U.RSubScalar, m, 1.0))


class Minimum(_Binary):
    op = B.Minimum

    def grads(self, dy):
        m = F.core.binary(B.Le, self.a, self.b)
        return F.mul(dy, m), F.mul(dy, F.un(U.RSubScalar, m, 1.0))


class PRelu(Operator):
    """y = x where x > 0, else slope * x; slope broadcasts to x's shape (ONNX PRelu)."""

    def forward(self, x, slope):
        try:
            shape = F.core.broadcast_shapes(list(x.shape), list(slope.shape))
        except ValueError:
            shape = None
        if shape is None or tuple(shape) != tuple(x.shape):
            raise ValueError(f"prelu: slope of shape {tuple(slope.shape)} does not broadcast to "
                             f"x's shape {tuple(x.shape)}")
        pos = F.un(U.GtScalar, x, 0.0)
        if self.requires_grad:
            self.x, self.slope, self.pos = x, slope, pos
        return F.core.where(pos, x, F.mul(x, slope))

    def backward(self, dy):
        dx = dslope = None
        if self.need(0):  # 1 where x > 0 else slope
            dx = F.mul(dy, F.core.where(self.pos, F.full_like(self.x, 1.0), self.slope))
        if self.need(1):  # min(x, 0), summed over the broadcast axes
            dslope = F.sum_to(F.mul(dy, F.un(U.MinScalar, self.x, 0.0)), self.slope.shape)
        return dx, dslope


def _scalar_dispatch(a, b, both, left, right):
    """Applies `both(a, b)` to two tensors, `left(a, s)` for tensor-scalar, `right(s, b)`."""
    if isinstance(a, Tensor) and isinstance(b, Tensor):
        return both()(a, b)
    if isinstance(a, Tensor) and is_number(b):
        return left(float(b))(a)
    if is_number(a) and isinstance(b, Tensor):
        return right(float(a))(b)
    raise TypeError(f"unsupported operand types {type(a).__name__} and {type(b).__name__}")


def add(a, b):
    """a + b (tensors broadcast; either may be a number)."""
    return _scalar_dispatch(a, b, Add, AddScalar, AddScalar)


def sub(a, b):
    """a - b."""
    return _scalar_dispatch(a, b, Sub, lambda s: AddScalar(-s), RSubScalar)


def mul(a, b):
    """a * b elementwise."""
    return _scalar_dispatch(a, b, Mul, MulScalar, MulScalar)


def div(a, b):
    """a / b elementwise."""
    return _scalar_dispatch(a, b, Div, DivScalar, RDivScalar)


def pow(a, b):  # noqa: A001
    """a ** b elementwise."""
    return _scalar_dispatch(a, b, Pow, PowScalar, RPowScalar)


def maximum(a: Tensor, b: Tensor) -> Tensor:
    return Maximum()(a, b)


def minimum(a: Tensor, b: Tensor) -> Tensor:
    return Minimum()(a, b)


def prelu(x: Tensor, slope: Tensor) -> Tensor:
    """x where x > 0, else slope * x (slope broadcast to x's shape); gradients for both."""
    return PRelu()(x, slope)


def neg(x: Tensor) -> Tensor:
    return Neg()(x)


def negative(x: Tensor) -> Tensor:
    """-x (SINGA's name for neg)."""
    return Negative()(x)


def exp(x: Tensor) -> Tensor:
    return Exp()(x)


def log(x: Tensor) -> Tensor:
    return Log()(x)


def sqrt(x: Tensor) -> Tensor:
    return Sqrt()(x)


def abs(x: Tensor) -> Tensor:  # noqa: A001
    return Abs()(x)


def relu(x: Tensor) -> Tensor:
    return ReLU()(x)


def leakyrelu(x: Tensor, a: float = 0.01) -> Tensor:
    return LeakyReLU(a)(x)


def elu(x: Tensor, alpha: float = 1.0) -> Tensor:
    return Elu(alpha)(x)


def selu(x: Tensor, alpha: float = 1.67326, gamma: float = 1.0507) -> Tensor:
    return Selu(alpha, gamma)(x)


def sigmoid(x: Tensor) -> Tensor:
    return Sigmoid()(x)


def hardsigmoid(x: Tensor, alpha: float = 0.2, gamma: float = 0.5) -> Tensor:
    return HardSigmoid(alpha, gamma)(x)


def tanh(x: Tensor) -> Tensor:
    return Tanh()(x)


def softplus(x: Tensor) -> Tensor:
    return SoftPlus()(x)


def softsign(x: Tensor) -> Tensor:
    return SoftSign()(x)


def erf(x: Tensor) -> Tensor:
    return Erf()(x)


def gelu(x: Tensor, approximate: str = "none") -> Tensor:
    """GELU (as torch.nn.functional.gelu): x Phi(x), or its tanh approximation with
    approximate='tanh'."""
    return Gelu(approximate)(x)


def clip(x: Tensor, min: Optional[float] = None,  # noqa: A002,F811 (SINGA's keyword names)
         max: Optional[float] = None) -> Tensor:  # noqa: A002,F811
    """Clamps x into [min, max] (either bound may be None); the gradient is 1 inside, 0
    outside."""
    lo = -float("inf") if min is None else float(min)
    hi = float("inf") if max is None else float(max)
    if lo > hi:
        raise ValueError(f"clip: min ({lo}) is greater than max ({hi})")
    return Clip(lo, hi)(x)


# ---- matrix product ----

class Matmul(Operator):
    """a @ b for 2-d or batched (leading dims broadcast) operands."""

    def forward(self, a, b):
        if a.ndim < 2 or b.ndim < 2:
            raise ValueError(f"matmul: autograd needs operands with at least 2 dims, got "
                             f"{a.shape} and {b.shape}")
        if self.requires_grad:
            self.a, self.b = a, b
        return F.core.matmul(a, b, False, False, 1.0, 0.0, None)

    def backward(self, dy):
        a, b = self.a, self.b
        need_a, need_b = self.need(0), self.need(1)
        da = F.core.matmul(dy, b, False, True, 1.0, 0.0, None) if need_a else None
        if b.ndim == 2 and a.ndim > 2:  # shared weight: fold the batch into rows
            a2 = a.reshape([-1, a.shape[-1]])
            dy2 = dy.reshape([-1, dy.shape[-1]])
            db = F.core.matmul(a2, dy2, True, False, 1.0, 0.0, None) if need_b else None
            return da, db
        db = F.core.matmul(a, dy, True, False, 1.0, 0.0, None) if need_b else None
        return (F.sum_to(da, a.shape) if need_a else None,
                F.sum_to(db, b.shape) if need_b else None)


def matmul(a: Tensor, b: Tensor) -> Tensor:
    """Matrix product with gradient."""
    return Matmul()(a, b)


class Gemm(Operator):
    """ONNX Gemm: Y = alpha * A' B' + beta * C, where A' is A transposed if transA (B' likewise)
    and C (optional) broadcasts to Y's shape (M, N)."""

    def __init__(self, alpha: float = 1.0, beta: float = 1.0, transA: int = 0, transB: int = 0):
        super().__init__()
        self.alpha, self.beta = float(alpha), float(beta)
        self.transA, self.transB = bool(transA), bool(transB)

    def forward(self, a, b, c=None):
        if a.ndim != 2 or b.ndim != 2:
            raise ValueError(f"gemm: A and B must be 2-d, got {tuple(a.shape)} and "
                             f"{tuple(b.shape)}")
        m, k = a.shape[::-1] if self.transA else a.shape
        k2, n = b.shape[::-1] if self.transB else b.shape
        if k != k2:
            raise ValueError(f"gemm: A' is ({m}, {k}) and B' is ({k2}, {n}) (A {tuple(a.shape)} "
                             f"transA={int(self.transA)}, B {tuple(b.shape)} "
                             f"transB={int(self.transB)}): inner sizes differ")
        y = F.core.matmul(a, b, self.transA, self.transB, self.alpha, 0.0, None)
        if c is not None:
            try:
                fits = F.core.broadcast_shapes(list(c.shape), [m, n]) == [m, n]
            except ValueError:
                fits = False
            if not fits:
                raise ValueError(f"gemm: C of shape {tuple(c.shape)} does not broadcast to "
                                 f"Y's shape ({m}, {n})")
            y = F.add(y, F.scale(c, self.beta))
        if self.requires_grad:
            self.a, self.b = a, b
            self.c_shape = None if c is None else c.shape
        return y

    def backward(self, dy):
        a, b, al, ta, tb = self.a, self.b, self.alpha, self.transA, self.transB
        da = db = None
        if self.need(0):  # dA' = alpha dY B'^T, transposed back when transA
            da = F.core.matmul(b, dy, tb, True, al, 0.0, None) if ta else \
                F.core.matmul(dy, b, False, not tb, al, 0.0, None)
        if self.need(1):  # dB' = alpha A'^T dY, transposed back when transB
            db = F.core.matmul(dy, a, True, ta, al, 0.0, None) if tb else \
                F.core.matmul(a, dy, not ta, False, al, 0.0, None)
        if self.c_shape is None:
            return da, db
        dc = F.sum_to(F.scale(dy, self.beta), self.c_shape) if self.need(2) else None
        return da, db, dc


def gemm(A: Tensor, B: Tensor, C: Optional[Tensor] = None, alpha: float = 1.0,
         beta: float = 1.0, transA: int = 0, transB: int = 0) -> Tensor:
    """alpha * A' @ B' + beta * C (ONNX Gemm; A, B 2-d, C optional and broadcast to the
    result), with gradients for A, B and C."""
    op = Gemm(alpha, beta, transA, transB)
    return op(A, B) if C is None else op(A, B, C)


class AddBias(Operator):
    """x + b broadcast along `axis` (SINGA: axis 0 adds a row vector to every row)."""

    def __init__(self, axis: int = 0):
        super().__init__()
        if axis not in (0, 1) or isinstance(axis, bool):
            raise ValueError(f"add_bias: axis must be 0 (b has one value per column) or 1 (per "
                             f"row), got {axis!r}")
        self.axis = axis

    def forward(self, x, b):
        if x.ndim != 2 or b.ndim != 1:
            raise ValueError(f"add_bias: expected x (N, D) and b (D,), got {x.shape}, {b.shape}")
        bb = b.reshape([1, -1]) if self.axis == 0 else b.reshape([-1, 1])
        if self.requires_grad:
            self.bshape = b.shape
            self.bview = bb.shape
        return F.add(x, bb)

    def backward(self, dy):
        return dy, F.sum_to(dy, self.bview).reshape(list(self.bshape))


def add_bias(x: Tensor, b: Tensor, axis: int = 0) -> Tensor:
    return AddBias(axis)(x, b)


# ---- reductions ----

def _norm_axes(axes, ndim, op: str = "reduce"):
    """`axes` (None: all; an int; a sequence) as sorted non-negative axes of an ndim-d
    tensor; an axis outside [-ndim, ndim) or given twice is refused."""
    if axes is None:
        return list(range(ndim))
    if isinstance(axes, (int, np.integer)):
        axes = [axes]
    out = []
    for a in axes:
        if isinstance(a, bool) or not isinstance(a, (int, np.integer)):
            raise TypeError(f"{op}: axes must be integers, got {a!r}")
        if not -ndim <= a < ndim:
            raise ValueError(f"{op}: axis {a} is out of range for a {ndim}-d tensor "
                             f"(expected [{-ndim}, {ndim}))")
        out.append(int(a) + ndim if a < 0 else int(a))
    if len(set(out)) != len(out):
        raise ValueError(f"{op}: axes {list(axes)} name an axis twice")
    return sorted(out)


def _keep_shape(shape, axes):
    return [1 if i in axes else d for i, d in enumerate(shape)]


class ReduceSum(Operator):
    def __init__(self, axes=None, keepdims: bool = True):
        super().__init__()
        self.axes, self.keepdims = axes, keepdims

    def forward(self, x):
        self.xshape = x.shape
        self.ax = _norm_axes(self.axes, x.ndim, "reduce_sum")
        return F.core.reduce_sum(x, self.ax, self.keepdims)

    def backward(self, dy):
        dy = dy.reshape(_keep_shape(self.xshape, self.ax))
        return F.core.broadcast_to(dy, list(self.xshape))


class ReduceMean(ReduceSum):
    def forward(self, x):
        self.xshape = x.shape
        self.ax = _norm_axes(self.axes, x.ndim, "reduce_mean")
        return F.core.reduce_mean(x, self.ax, self.keepdims)

    def backward(self, dy):
        n = 1
        for a in self.ax:
            n *= self.xshape[a]
        return F.scale(super().backward(dy), 1.0 / n)


class _ReduceExtreme(Operator):
    reducer = None

    def __init__(self, axes=None, keepdims: bool = True):
        super().__init__()
        self.axes, self.keepdims = axes, keepdims

    def forward(self, x):
        ax = _norm_axes(self.axes, x.ndim, self.reducer)
        y = getattr(F.core, self.reducer)(x, ax, self.keepdims)
        if self.requires_grad:
            self.x, self.ax = x, ax
            self.y = y
        return y

    def backward(self, dy):  # the gradient goes to the elements equal to the extreme
        keep = _keep_shape(self.x.shape, self.ax)
        mask = F.core.binary(B.Eq, self.x, self.y.reshape(keep))
        if mask.dtype == F.core.DType.float16:  # counted in float32: ties may pass 65504
            f32 = F.core.DType.float32
            mask, dy = F.core.as_type(mask, f32), F.core.as_type(dy, f32)
        count = F.core.reduce_sum(mask, self.ax, True)
        return F.mul(mask, F.div(dy.reshape(keep), count))  # the engine casts it back


class ReduceMax(_ReduceExtreme):
    reducer = "reduce_max"


class ReduceMin(_ReduceExtreme):
    reducer = "reduce_min"


def reduce_sum(x: Tensor, axes: Optional[Sequence[int]] = None, keepdims: bool = True):
    """Sum over `axes` (all by default); ONNX/SINGA keep the dims by default."""
    return ReduceSum(axes, keepdims)(x)


def reduce_mean(x: Tensor, axes: Optional[Sequence[int]] = None, keepdims: bool = True):
    return ReduceMean(axes, keepdims)(x)


def reduce_max(x: Tensor, axes: Optional[Sequence[int]] = None, keepdims: bool = True):
    """Maximum over `axes` (all by default; ONNX ReduceMax keeps the dims by default); ties
    share the gradient equally."""
    return ReduceMax(axes, keepdims)(x)


def reduce_min(x: Tensor, axes: Optional[Sequence[int]] = None, keepdims: bool = True):
    """Minimum over `axes`, as reduce_max."""
    return ReduceMin(axes, keepdims)(x)


def add_all(*xs) -> Tensor:
    """xs[0] + xs[1] + ... (tensors broadcast; numbers allowed beside tensors), returned."""
    if not any(isinstance(x, Tensor) for x in xs):
        raise TypeError(f"add_all: expected one or more Tensors, got "
                        f"{[type(x).__name__ for x in xs]}")
    y = xs[0]
    for x in xs[1:]:
        y = add(y, x)
    return y
