"""Tensor: SINGA's tensor API over the C++ core (`_core.Tensor`).

Module functions (`tensor.exp(t)`, `tensor.sum(t)`, ...) compute without recording gradients.
Operators on tensors (`a + b`, `a @ b`, `-a`, `a ** 2`, ...) are autograd operations: recorded
when `autograd.training` is on, plain computations otherwise.
"""

from __future__ import annotations

from typing import Iterable, Optional, Sequence, Union

import numpy as np

from . import _core
from .device import get_default_device

float32 = _core.DType.float32
float16 = _core.DType.float16
int32 = _core.DType.int32

_NP_OF = {float32: np.float32, float16: np.float16, int32: np.int32}
_DTYPE_OF = {
    np.dtype(np.float32): float32,
    np.dtype(np.float16): float16,
    np.dtype(np.int32): int32,
}
_U, _B = _core.UnaryOp, _core.BinaryOp

Number = Union[int, float]


def to_dtype(dtype) -> "_core.DType":
    """Normalises a dtype given as tensor.float32, a numpy dtype or a string."""
    if isinstance(dtype, _core.DType):
        return dtype
    try:
        nd = np.dtype(dtype)
    except TypeError:
        raise TypeError(
            f"unsupported dtype {dtype!r}; expected float32, float16 or int32") from None
    if nd in _DTYPE_OF:
        return _DTYPE_OF[nd]
    raise TypeError(f"unsupported dtype {nd}; expected float32, float16 or int32")


def _shape_of(shape) -> tuple:
    if isinstance(shape, (int, np.integer)):
        shape = (int(shape),)
    try:
        dims = tuple(shape)
    except TypeError:
        raise TypeError(f"shape must be an int or a sequence of ints, got {shape!r}") from None
    if not all(isinstance(d, (int, np.integer)) and not isinstance(d, bool) for d in dims):
        raise TypeError(f"shape must be an int or a sequence of ints, got {shape!r}")
    shape = tuple(int(d) for d in dims)
    for d in shape:
        if d < 0:
            raise ValueError(f"shape {shape} has a negative dimension")
    return shape


class Tensor:
    """An n-d array on a device, with the fields autograd needs.

    Args (SINGA's order):
        shape: dimensions (ignored when `data` is given).
        device: where it lives (default: the default CPU device).
        dtype: float32 (default), float16 or int32.
        data: a numpy array to copy, or a `_core.Tensor` to wrap.
        requires_grad: whether autograd tracks it.
        stores_grad: whether backward yields its gradient (True for parameters).
        creator: the autograd Operator that produced it.
        name: an optional name (parameters get their dotted layer path).
    """

    __array_priority__ = 100  # numpy defers `ndarray op Tensor` to Tensor's reflected ops

    def __init__(self, shape=(), device=None, dtype=float32, data=None, requires_grad=True,
                 stores_grad=False, creator=None, name: Optional[str] = None):
        if isinstance(data, _core.Tensor):
            self.data = data
        elif data is not None:
            arr = _as_numpy(data, dtype if dtype is not float32 else None)
            self.data = _core.Tensor(list(arr.shape), device or get_default_device(),
                                     _DTYPE_OF[arr.dtype])
            self.data.copy_from_numpy(arr)
        else:
            self.data = _core.Tensor(list(_shape_of(shape)), device or get_default_device(),
                                     to_dtype(dtype))
        self.requires_grad = requires_grad
        self.stores_grad = stores_grad
        self.creator = creator
        self.name = name

    # ---- properties (SINGA names) ----
    @property
    def shape(self) -> tuple:
        return self.data.shape

    @property
    def device(self):
        return self.data.device

    @property
    def dtype(self):
        return self.data.dtype

    def ndim(self) -> int:
        """Number of dimensions."""
        return self.data.ndim

    def size(self) -> int:
        """Number of elements."""
        return self.data.numel

    def memsize(self) -> int:
        """Bytes of storage."""
        return self.data.nbytes

    def is_empty(self) -> bool:
        return self.data.numel == 0

    def __len__(self) -> int:
        if self.data.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.shape[0]

    def __repr__(self) -> str:
        return f"Tensor(shape={self.shape}, dtype={self.dtype.name}, device={self.device.name})"

    # ---- data movement ----
    def to_numpy(self) -> np.ndarray:
        """A numpy copy of the values (waits for the device)."""
        return self.data.to_numpy()

    def numpy(self) -> np.ndarray:
        return self.to_numpy()

    def copy_from_numpy(self, np_array, offset: int = 0) -> None:
        """Copies a numpy array (same number of elements) into this tensor, converting dtype."""
        if offset != 0:
            raise ValueError("copy_from_numpy: offset is not supported, copy the whole tensor")
        arr = _as_numpy(np_array, self.dtype)
        if arr.size != self.size():
            raise ValueError(f"copy_from_numpy: array of shape {arr.shape} ({arr.size} elements) "
                             f"does not fit tensor of shape {self.shape} ({self.size()} elements)")
        self.data.copy_from_numpy(arr.reshape(self.shape))

    def copy_from(self, t: "Tensor") -> None:
        """Copies the values of `t` (same shape and dtype, any device) into this tensor."""
        _core.copy(self.data, _data(t))

    def copy_data(self, t: "Tensor") -> None:
        self.copy_from(t)

    def clone(self) -> "Tensor":
        """A new tensor with a copy of the data (no autograd history)."""
        return self._wrap(_core.clone(self.data))

    def deepcopy(self) -> "Tensor":
        return self.clone()

    def to_device(self, device) -> "Tensor":
        """Moves the data to `device` in place (SINGA semantics) and returns self."""
        self.data = _core.to_device(self.data, device)
        return self

    def to_host(self) -> "Tensor":
        return self.to_device(get_default_device())

    def as_type(self, dtype) -> "Tensor":
        """A copy converted to `dtype`."""
        dtype = to_dtype(dtype)
        if dtype == self.dtype:
            return self.clone()
        return self._wrap(_core.as_type(self.data, dtype))

    def _wrap(self, data) -> "Tensor":
        return Tensor(data=data, requires_grad=self.requires_grad, stores_grad=False)

    # ---- in-place initialisation ----
    def set_value(self, x: Number) -> "Tensor":
        """Fills every element with x."""
        _core.fill(self.data, float(x))
        return self

    def gaussian(self, mean: float, std: float) -> "Tensor":
        """Fills with N(mean, std^2) samples from the device RNG."""
        _core.gaussian(self.data, float(mean), float(std))
        return self

    def uniform(self, low: float, high: float) -> "Tensor":
        """Fills with U[low, high) samples from the device RNG."""
        _core.uniform(self.data, float(low), float(high))
        return self

    def bernoulli(self, p: float) -> "Tensor":
        """Fills with 1 (probability p) or 0."""
        _core.bernoulli(self.data, float(p))
        return self

    # ---- shape ----
    def reshape(self, shape) -> "Tensor":
        """A view with another shape (one dim may be -1)."""
        return Tensor(data=self.data.reshape(list(_shape_like(shape))),
                      requires_grad=self.requires_grad)

    def transpose(self, axes: Optional[Sequence[int]] = None) -> "Tensor":
        """A materialised transpose (axes reversed by default)."""
        return self._wrap(_core.transpose(self.data, None if axes is None else list(axes)))

    def T(self) -> "Tensor":
        return self.transpose()

    def contiguous(self) -> "Tensor":
        return self

    def repeat(self, repeats: int, axis: int) -> "Tensor":
        """Repeats each element `repeats` times along `axis` (numpy.repeat)."""
        idx = np.repeat(np.arange(self.shape[axis], dtype=np.int32), repeats)
        return self._wrap(_core.take(self.data, from_numpy(idx, self.device).data, axis))

    # ---- norms ----
    def l1(self) -> float:
        return float(np.abs(self.to_numpy()).astype(np.float64).mean())

    def l2(self) -> float:
        return float(np.sqrt((self.to_numpy().astype(np.float64) ** 2).mean()))

    # ---- operators: differentiable (see autograd) ----
    def _op(self, name, *args):
        from . import autograd  # tensor <- autograd is one-way at import time

        return getattr(autograd, name)(*args)

    def __add__(self, o):
        return self._op("add", self, o)

    def __radd__(self, o):
        return self._op("add", o, self)

    def __sub__(self, o):
        return self._op("sub", self, o)

    def __rsub__(self, o):
        return self._op("sub", o, self)

    def __mul__(self, o):
        return self._op("mul", self, o)

    def __rmul__(self, o):
        return self._op("mul", o, self)

    def __truediv__(self, o):
        return self._op("div", self, o)

    def __rtruediv__(self, o):
        return self._op("div", o, self)

    def __pow__(self, o):
        return self._op("pow", self, o)

    def __rpow__(self, o):
        return self._op("pow", o, self)

    def __matmul__(self, o):
        return self._op("matmul", self, o)

    def __rmatmul__(self, o):
        return self._op("matmul", o, self)

    def __neg__(self):
        return self._op("neg", self)

    def __abs__(self):
        return self._op("abs", self)

    # in-place arithmetic never records: it updates the data held here.
    def __iadd__(self, o):
        _binary_into(_B.Add, self, o)
        return self

    def __isub__(self, o):
        _binary_into(_B.Sub, self, o)
        return self

    def __imul__(self, o):
        _binary_into(_B.Mul, self, o)
        return self

    def __itruediv__(self, o):
        _binary_into(_B.Div, self, o)
        return self

    # comparisons give 0/1 tensors of the same dtype and are not differentiable.
    def __lt__(self, o):
        return _compare(self, o, _B.Lt, _U.LtScalar)

    def __le__(self, o):
        return _compare(self, o, _B.Le, _U.LeScalar)

    def __gt__(self, o):
        return _compare(self, o, _B.Gt, _U.GtScalar)

    def __ge__(self, o):
        return _compare(self, o, _B.Ge, _U.GeScalar)

    def __eq__(self, o):
        return _compare(self, o, _B.Eq, _U.EqScalar)

    def __ne__(self, o):
        return _compare(self, o, _B.Ne, _U.NeScalar)

    __hash__ = object.__hash__


# ---- helpers ----

def _as_numpy(x, dtype=None) -> np.ndarray:
    arr = np.asarray(x)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"cannot make a tensor from a numpy array of dtype {arr.dtype}; "
                        "expected a boolean, integer or floating array")
    if dtype is None:
        target = {"f": np.float16 if arr.dtype == np.float16 else np.float32}.get(
            arr.dtype.kind, np.int32 if arr.dtype.kind in "iu" else np.float32)
    else:
        target = _NP_OF[to_dtype(dtype)]
    if arr.dtype.kind in "iu" and target == np.int32 and arr.size and (
            arr.max() > np.iinfo(np.int32).max or arr.min() < np.iinfo(np.int32).min):
        raise ValueError("integer values do not fit in int32")
    return np.asarray(arr, dtype=target, order="C")  # keeps 0-d arrays 0-d


def check_count(where: str, name: str, v, lo: int) -> int:
    """v as an int >= lo (a size or offset argument), else a ValueError naming it."""
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
        raise ValueError(f"{where}: {name} must be an integer >= {lo}, got {v!r}")
    return int(v)


def _shape_like(shape) -> tuple:
    if isinstance(shape, (int, np.integer)):
        return (int(shape),)
    return tuple(int(d) for d in shape)


def _data(t) -> "_core.Tensor":
    if isinstance(t, Tensor):
        return t.data
    raise TypeError(f"expected a minisinga Tensor, got {type(t).__name__}")


def _binary_into(op, t: Tensor, o) -> None:
    if isinstance(o, Tensor):
        _core.binary(op, t.data, o.data, out=t.data)
    elif isinstance(o, (int, float, np.number)):
        uop = {_B.Add: _U.AddScalar, _B.Mul: _U.MulScalar}
        if op == _B.Sub:
            _core.unary(_U.AddScalar, t.data, -float(o), out=t.data)
        elif op == _B.Div:
            _core.unary(_U.MulScalar, t.data, 1.0 / float(o), out=t.data)
        else:
            _core.unary(uop[op], t.data, float(o), out=t.data)
    else:
        raise TypeError(f"unsupported operand type {type(o).__name__} for an in-place op")


def _compare(t: Tensor, o, bop, uop) -> Tensor:
    if isinstance(o, Tensor):
        return Tensor(data=_core.binary(bop, t.data, o.data), requires_grad=False)
    if isinstance(o, (int, float, np.number)):
        return Tensor(data=_core.unary(uop, t.data, float(o)), requires_grad=False)
    return NotImplemented


def _raw(data) -> Tensor:
    return Tensor(data=data, requires_grad=False)


def _unary(op, t: Tensor, a: float = 0.0, b: float = 0.0) -> Tensor:
    return _raw(_core.unary(op, _data(t), float(a), float(b)))


# ---- creation ----

def from_numpy(np_array, dev=None) -> Tensor:
    """A tensor holding a copy of `np_array` (float64 and bool become float32, ints int32)."""
    return Tensor(data=np_array, device=dev, requires_grad=False)


def to_numpy(t: Tensor) -> np.ndarray:
    """A numpy copy of t's values."""
    return _data(t).to_numpy()


def to_host(t: Tensor) -> Tensor:
    """A copy of t on the default CPU device."""
    return _raw(_core.to_device(_data(t), get_default_device()))


def zeros(shape, device=None, dtype=float32) -> Tensor:
    """A tensor of zeros."""
    return Tensor(shape, device, requires_grad=False, dtype=dtype).set_value(0)


def ones(shape, device=None, dtype=float32) -> Tensor:
    """A tensor of ones."""
    return Tensor(shape, device, requires_grad=False, dtype=dtype).set_value(1)


def full(shape, value: Number, device=None, dtype=float32) -> Tensor:
    """A tensor filled with `value`."""
    return Tensor(shape, device, requires_grad=False, dtype=dtype).set_value(value)


def zeros_like(t: Tensor) -> Tensor:
    return zeros(t.shape, t.device, t.dtype)


def ones_like(t: Tensor) -> Tensor:
    return ones(t.shape, t.device, t.dtype)


def random(shape, device=None) -> Tensor:
    """Uniform samples in [0, 1)."""
    return Tensor(shape, device, requires_grad=False).uniform(0.0, 1.0)


def gaussian(mean: float, std: float, t: Tensor) -> Tensor:
    return t.gaussian(mean, std)


def uniform(low: float, high: float, t: Tensor) -> Tensor:
    return t.uniform(low, high)


def bernoulli(p: float, t: Tensor) -> Tensor:
    return t.bernoulli(p)


# ---- elementwise math (not recorded) ----

def abs(t: Tensor) -> Tensor:  # noqa: A001 - SINGA's name
    return _unary(_U.Abs, t)


def exp(t: Tensor) -> Tensor:
    return _unary(_U.Exp, t)


def log(t: Tensor) -> Tensor:
    return _unary(_U.Log, t)


def sqrt(t: Tensor) -> Tensor:
    return _unary(_U.Sqrt, t)


def square(t: Tensor) -> Tensor:
    return _unary(_U.Square, t)


def sign(t: Tensor) -> Tensor:
    return _unary(_U.Sign, t)


def relu(t: Tensor) -> Tensor:
    return _unary(_U.Relu, t)


def sigmoid(t: Tensor) -> Tensor:
    return _unary(_U.Sigmoid, t)


def tanh(t: Tensor) -> Tensor:
    return _unary(_U.Tanh, t)


def softplus(t: Tensor) -> Tensor:
    return _unary(_U.Softplus, t)


def erf(t: Tensor) -> Tensor:
    return _unary(_U.Erf, t)


def clip(t: Tensor, low: float, high: float) -> Tensor:
    if low > high:
        raise ValueError(f"clip: low ({low}) is greater than high ({high})")
    return _unary(_U.Clip, t, low, high)


def _binary(op, uop, ruop, lhs, rhs) -> Tensor:
    if isinstance(lhs, Tensor) and isinstance(rhs, Tensor):
        return _raw(_core.binary(op, lhs.data, rhs.data))
    if isinstance(lhs, Tensor):
        return _unary(uop[0], lhs, uop[1](float(rhs)))
    if isinstance(rhs, Tensor):
        return _unary(ruop, rhs, float(lhs))
    raise TypeError("at least one operand must be a Tensor")


def add(lhs, rhs, ret: Optional[Tensor] = None) -> Tensor:
    """lhs + rhs with broadcasting (into `ret` when given)."""
    if ret is not None:
        _core.binary(_B.Add, _data(lhs), _data(rhs), out=ret.data)
        return ret
    return _binary(_B.Add, (_U.AddScalar, lambda v: v), _U.AddScalar, lhs, rhs)


def sub(lhs, rhs, ret: Optional[Tensor] = None) -> Tensor:
    if ret is not None:
        _core.binary(_B.Sub, _data(lhs), _data(rhs), out=ret.data)
        return ret
    return _binary(_B.Sub, (_U.AddScalar, lambda v: -v), _U.RSubScalar, lhs, rhs)


def eltwise_mult(lhs, rhs, ret: Optional[Tensor] = None) -> Tensor:
    if ret is not None:
        _core.binary(_B.Mul, _data(lhs), _data(rhs), out=ret.data)
        return ret
    return _binary(_B.Mul, (_U.MulScalar, lambda v: v), _U.MulScalar, lhs, rhs)


def div(lhs, rhs, ret: Optional[Tensor] = None) -> Tensor:
    if ret is not None:
        _core.binary(_B.Div, _data(lhs), _data(rhs), out=ret.data)
        return ret
    return _binary(_B.Div, (_U.MulScalar, lambda v: 1.0 / v), _U.RDivScalar, lhs, rhs)


def pow(t, x) -> Tensor:  # noqa: A001 - SINGA's name
    return _binary(_B.Pow, (_U.PowScalar, lambda v: v), _U.RPowScalar, t, x)


def maximum(a, b) -> Tensor:
    return _binary(_B.Maximum, (_U.MaxScalar, lambda v: v), _U.MaxScalar, a, b)


def minimum(a, b) -> Tensor:
    return _binary(_B.Minimum, (_U.MinScalar, lambda v: v), _U.MinScalar, a, b)


def lt(t: Tensor, x) -> Tensor:
    return t < x


def le(t: Tensor, x) -> Tensor:
    return t <= x


def gt(t: Tensor, x) -> Tensor:
    return t > x


def ge(t: Tensor, x) -> Tensor:
    return t >= x


def eq(t: Tensor, x) -> Tensor:
    return t == x


def where(cond: Tensor, x: Tensor, y: Tensor) -> Tensor:
    """x where cond != 0 else y, with broadcasting."""
    return _raw(_core.where(_data(cond), _data(x), _data(y)))


def axpy(alpha: float, x: Tensor, y: Tensor) -> Tensor:
    """y += alpha * x, in place."""
    _core.binary(_B.Add, y.data, _core.unary(_U.MulScalar, x.data, float(alpha)), out=y.data)
    return y


# ---- reductions ----

def _axes(axis) -> Optional[list]:
    if axis is None:
        return None
    if isinstance(axis, (int, np.integer)):
        return [int(axis)]
    return [int(a) for a in axis]


def sum(t: Tensor, axis=None, keepdims: bool = False) -> Tensor:  # noqa: A001
    """Sum over `axis` (int, sequence or None for all)."""
    return _raw(_core.reduce_sum(_data(t), _axes(axis), keepdims))


def average(t: Tensor, axis=None, keepdims: bool = False) -> Tensor:
    """Mean over `axis`."""
    return _raw(_core.reduce_mean(_data(t), _axes(axis), keepdims))


mean = average


def max(t: Tensor, axis=None, keepdims: bool = False) -> Tensor:  # noqa: A001
    return _raw(_core.reduce_max(_data(t), _axes(axis), keepdims))


def min(t: Tensor, axis=None, keepdims: bool = False) -> Tensor:  # noqa: A001
    return _raw(_core.reduce_min(_data(t), _axes(axis), keepdims))


def argmax(t: Tensor, axis: int = -1, keepdims: bool = False) -> Tensor:
    """Indices (int32) of the maxima along `axis`."""
    return _raw(_core.argmax(_data(t), int(axis), keepdims))


def softmax(t: Tensor, axis: int = -1, out: Optional[Tensor] = None) -> Tensor:
    """Softmax along `axis`."""
    r = _raw(_core.softmax(_data(t), int(axis)))
    if out is not None:
        out.copy_from(r)
        return out
    return r


# ---- linear algebra and shape ----

def mult(A: Tensor, B: Tensor, C: Optional[Tensor] = None, alpha: float = 1.0,
         beta: float = 0.0) -> Tensor:
    """alpha * A @ B + beta * C (into C when given); batched over leading dims."""
    if C is None:
        return _raw(_core.matmul(_data(A), _data(B), False, False, float(alpha), 0.0, None))
    _core.matmul(_data(A), _data(B), False, False, float(alpha), float(beta), C.data)
    return C


def matmul(A: Tensor, B: Tensor) -> Tensor:
    return mult(A, B)


def reshape(t: Tensor, shape) -> Tensor:
    return t.reshape(shape)


def transpose(t: Tensor, axes: Optional[Sequence[int]] = None) -> Tensor:
    return t.transpose(axes)


def concatenate(tensors: Iterable[Tensor], axis: int = 0) -> Tensor:
    """Joins tensors along `axis`."""
    tensors = list(tensors)
    if not tensors:
        raise ValueError("concatenate: needs at least one tensor")
    return _raw(_core.concat([_data(t) for t in tensors], int(axis)))


def copy_data_to_from(dst: Tensor, src: Tensor, size: int, dst_offset: int = 0,
                      src_offset: int = 0) -> None:
    """Copies `size` elements of src, from flat index src_offset, into dst at flat index
    dst_offset (SINGA's CopyDataToFrom). One dtype; the devices may differ. The copy stays on
    the devices: the rest of dst is kept by rebuilding it from its own slices."""
    size, dst_offset, src_offset = (check_count("copy_data_to_from", n, v, 0) for n, v in (
        ("size", size), ("dst_offset", dst_offset), ("src_offset", src_offset)))
    if dst.dtype != src.dtype:
        raise TypeError(f"copy_data_to_from: dst is {dst.dtype.name} but src is "
                        f"{src.dtype.name}; convert one with as_type first")
    for name, t, off in (("src", src, src_offset), ("dst", dst, dst_offset)):
        if off + size > t.size():
            raise ValueError(f"copy_data_to_from: {name}_offset {off} + size {size} is past the "
                             f"end of {name} ({t.size()} elements, shape {t.shape})")
    if size == 0:
        return
    if size == dst.size() == src.size():  # offsets are 0 here
        dst.copy_from(src.reshape(dst.shape))
        return
    piece = _core.slice(src.data.reshape([-1]), [src_offset], [src_offset + size])
    if piece.device != dst.device:
        piece = _core.to_device(piece, dst.device)
    flat, end = dst.data.reshape([-1]), dst_offset + size
    parts = ([_core.slice(flat, [0], [dst_offset])] if dst_offset else []) + [piece] + (
        [_core.slice(flat, [end], [dst.size()])] if end < dst.size() else [])
    _core.copy(dst.data, _core.concat(parts, 0).reshape(list(dst.shape)))
