"""Tensor: SINGA's tensor API over the C++ core (`_core.Tensor`).

Module functions (`tensor.exp(t)`, `tensor.sum(t)`, ...) compute without recording gradients.
Operators on tensors (`a + b`, `a @ b`, `-a`, `a ** 2`, ...) are autograd operations: recorded
when `autograd.training` is on, plain computations otherwise.
"""

from __future__ import annotations

import builtins as _py
from typing import Iterable, Optional, Sequence, Union

import numpy as np

from . import _core
from .device import eager, get_default_device

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


# SINGA's DataType numbers (kFloat32, kFloat16, kInt) and its as_type names.
_SINGA_DTYPES = {0: float32, 1: float16, 2: int32, "int": int32, "float": float32}


def to_dtype(dtype) -> "_core.DType":
    """Normalises a dtype given as tensor.float32, a numpy dtype, a string ('float32',
    SINGA's 'int' and 'float') or SINGA's DataType number (0 float32, 1 float16, 2 int)."""
    if isinstance(dtype, _core.DType):
        return dtype
    if isinstance(dtype, (int, str)) and not isinstance(dtype, bool) and dtype in _SINGA_DTYPES:
        return _SINGA_DTYPES[dtype]
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
        if d >= 2 ** 63:
            raise ValueError(f"shape {shape}: dimension {d} does not fit a 64-bit size")
    return shape


class Tensor:
    """An n-d array on a device, with the fields autograd needs.

    Args (SINGA's order):
        shape: dimensions (ignored when `data` is given).
        device: where it lives (default: the default CPU device).
        dtype: float32, float16 or int32; by default float32, or with `data` the array's
            own (float64 and bool become float32, other ints int32).
        data: a numpy array to copy (converted to `dtype` when one is given), or a
            `_core.Tensor` to wrap.
        requires_grad: whether autograd tracks it.
        stores_grad: whether backward yields its gradient (True for parameters).
        creator: the autograd Operator that produced it.
        name: an optional name (parameters get their dotted layer path).
    """

    __array_priority__ = 100  # numpy defers `ndarray op Tensor` to Tensor's reflected ops
    _out_idx = 0  # which output of its creator (Operator.__call__ sets it)

    def __init__(self, shape=(), device=None, dtype=None, data=None, requires_grad=True,
                 stores_grad=False, creator=None, name: Optional[str] = None):
        if isinstance(data, _core.Tensor):
            self.data = data
        elif data is not None:
            arr = _as_numpy(data, dtype)
            self.data = _core.Tensor(list(arr.shape), device or get_default_device(),
                                     _DTYPE_OF[arr.dtype])
            self.data.copy_from_numpy(arr)
        else:
            self.data = _core.Tensor(list(_shape_of(shape)), device or get_default_device(),
                                     to_dtype(float32 if dtype is None else dtype))
        self.requires_grad = requires_grad
        self.stores_grad = stores_grad
        self.creator = creator
        self.name = name

    @classmethod
    def _of_op(cls, data, requires_grad: bool, creator, out_idx: int) -> "Tensor":
        """An operator's output: __init__ with a core tensor, without its argument checks."""
        t = cls.__new__(cls)
        t.data, t.requires_grad, t.stores_grad = data, requires_grad, False
        t.creator, t.name = creator, None
        if out_idx:
            t._out_idx = out_idx
        return t

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

    def item(self):
        """The value of a one-element tensor (a loss: shape (1,) as in SINGA) as a Python
        number."""
        if self.size() != 1:
            raise ValueError(f"item: the tensor has shape {self.shape}, not one element")
        return self.to_numpy().reshape(-1)[0].item()

    def __bool__(self) -> bool:
        """numpy's rule: the truth of a one-element tensor (its value read from the device,
        so refused while the device records a graph, where no value exists yet); of any
        other, an error (it was len(), so `if loss > limit` took a branch without a value)."""
        if self.device.graph_enabled():
            self.to_numpy()  # raises: no value while recording
        if self.size() != 1:
            raise ValueError(f"the truth value of a tensor of shape {self.shape} is ambiguous; "
                             "use (t.to_numpy()).any() or .all()")
        return bool(self.to_numpy().reshape(-1)[0])

    def __iter__(self):
        """The sub-tensors along the first axis, as numpy (a 0-d tensor is not iterable)."""
        if self.data.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return (self[i] for i in range(self.shape[0]))

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

    def copy_from(self, t, offset: int = 0) -> None:
        """Copies the values of `t` into this tensor: a Tensor (same shape and dtype, any
        device) or, as in SINGA, a numpy array (same number of elements, converted)."""
        if isinstance(t, np.ndarray):
            self.copy_from_numpy(t, offset)
            return
        if offset != 0:
            raise ValueError("copy_from: offset is only supported for numpy arrays and must be 0")
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

    def to_type(self, dtype) -> "Tensor":
        """Converts the data to `dtype` in place (SINGA's to_type) and returns self."""
        dtype = to_dtype(dtype)
        if dtype != self.dtype:
            self.data = _core.as_type(self.data, dtype)
        return self

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

    def repeat(self, repeats, axis: Optional[int] = None) -> "Tensor":
        """Repeats each element `repeats` times (an int, or one count per element) along
        `axis`, or over the flattened tensor when axis is None (numpy.repeat)."""
        t = self.reshape([-1]) if axis is None else self
        axis = 0 if axis is None else _axis(axis, t.ndim(), "repeat")
        counts = np.broadcast_to(np.asarray(repeats), (t.shape[axis],))
        if counts.dtype.kind not in "iu" or (counts.size and counts.min() < 0):
            raise ValueError(f"repeat: repeats must be integers >= 0, got {repeats!r}")
        total = float(np.sum(counts, dtype=np.float64))  # no wrap-around; exact below 2**53
        if total > np.iinfo(np.int32).max:
            raise ValueError(f"repeat: the result would have {total:.0f} elements along the "
                             f"axis; at most {np.iinfo(np.int32).max} (int32 indices)")
        idx = np.repeat(np.arange(t.shape[axis], dtype=np.int32), repeats)
        return self._wrap(_core.take(t.data, _index_constant(idx, self.device), axis))

    # ---- norms ----
    def l1(self) -> float:
        """SINGA's l1: sum |x| / size."""
        return float(np.abs(self.to_numpy()).astype(np.float64).mean())

    def l2(self) -> float:
        """SINGA's l2: the Euclidean norm / size (not the root mean square)."""
        a = self.to_numpy().astype(np.float64)
        return float(np.sqrt((a ** 2).sum()) / a.size) if a.size else float("nan")

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

    def __getitem__(self, key):
        """numpy's basic indexing: ints, slices (any step), `...` and None, e.g. `t[0]`,
        `t[:, 1:3]`, `t[..., ::-1]`. Returns a copy; differentiable like the other operators."""
        from . import autograd

        keys = key if isinstance(key, tuple) else (key,)
        n_axes = _py.sum(k is not None and k is not Ellipsis for k in keys)
        if _py.sum(k is Ellipsis for k in keys) > 1:
            raise IndexError("an index can only have a single ellipsis ('...')")
        if n_axes > self.ndim():
            raise IndexError(f"too many indices for a tensor of shape {self.shape}: "
                             f"{n_axes} given, {self.ndim()} dimensions")
        # by identity: `in` and index() compare with ==, which numpy arrays answer elementwise
        at = [j for j, k in enumerate(keys) if k is Ellipsis]
        if not at:
            keys, at = keys + (Ellipsis,), [len(keys)]
        i = at[0]
        keys = keys[:i] + (slice(None),) * (self.ndim() - n_axes) + keys[i + 1:]
        starts, ends, axes, steps, gathers, shape = [], [], [], [], [], []
        axis = 0
        for k in keys:
            if k is None:
                shape.append(1)
                continue
            n = self.shape[axis]
            if isinstance(k, (int, np.integer)) and not isinstance(k, bool):
                if not -n <= k < n:
                    raise IndexError(f"index {int(k)} is out of range for axis {axis} of size {n}")
                k = int(k) % n
                starts, ends, axes, steps = starts + [k], ends + [k + 1], axes + [axis], steps + [1]
            elif isinstance(k, slice):
                r = range(*k.indices(n))
                if r.step > 0 and (r.start, r.stop, r.step) != (0, n, 1):
                    starts, ends = starts + [r.start], ends + [_py.max(r.stop, r.start)]
                    axes, steps = axes + [axis], steps + [r.step]
                elif r.step < 0:  # the core's slice takes positive steps: gather these
                    gathers.append((axis, list(r)))
                shape.append(len(r))
            else:
                raise IndexError(f"only integers, slices, '...' and None are valid indices, "
                                 f"got {type(k).__name__}")
            axis += 1
        y = autograd.slice(self, starts, ends, axes, steps) if axes else self
        for a, idx in gathers:
            y = autograd.gather(y, a, idx)  # a constant on the device (see autograd's _const)
        if y is self:  # nothing selected away: still a copy, as every other index gives
            y = autograd.mul(self, 1.0)
        return y if tuple(shape) == y.shape else autograd.reshape(y, shape, allowzero=True)

    def __floordiv__(self, o):
        """floor(self / o) in one kernel (exact for int32), not differentiable (SINGA's
        __floordiv__)."""
        return _floordiv(self, o)

    def __rfloordiv__(self, o):
        return _floordiv(o, self)

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
        half = arr.dtype.kind == "f" and arr.dtype.itemsize == 2  # either byte order
        target = {"f": np.float16 if half else np.float32}.get(
            arr.dtype.kind, np.int32 if arr.dtype.kind in "iu" else np.float32)
    else:
        target = _NP_OF[to_dtype(dtype)]
    if arr.dtype.kind in "iu" and target == np.int32 and arr.size and (
            arr.max() > np.iinfo(np.int32).max or arr.min() < np.iinfo(np.int32).min):
        raise ValueError("integer values do not fit in int32")
    return np.asarray(arr, dtype=target, order="C")  # keeps 0-d arrays 0-d


def is_number(v) -> bool:
    """A real number, Python's or numpy's (not a bool): what operators take beside a
    Tensor."""
    return (isinstance(v, (int, float, np.integer, np.floating))
            and not isinstance(v, (bool, np.bool_)))


def check_count(where: str, name: str, v, lo: int) -> int:
    """v as an int >= lo (a size or offset argument), else a ValueError naming it."""
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
        raise ValueError(f"{where}: {name} must be an integer >= {lo}, got {v!r}")
    return int(v)


def _axis(axis, ndim: int, where: str) -> int:
    """axis (may be negative) as an index into ndim dimensions, else an IndexError."""
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
        raise TypeError(f"{where}: axis must be an int, got {type(axis).__name__}")
    if not -ndim <= axis < _py.max(ndim, 1):
        raise IndexError(f"{where}: axis {axis} is out of range for {ndim} dimensions")
    return int(axis) % _py.max(ndim, 1)


def _shape_like(shape) -> tuple:
    """A shape given as an int or a sequence of ints (-1 allowed; the core checks sizes)."""
    dims = (shape,) if isinstance(shape, (int, np.integer)) else tuple(shape)
    for d in dims:
        if isinstance(d, (bool, np.bool_)) or not isinstance(d, (int, np.integer)):
            raise TypeError(f"shape entries must be integers, got {d!r} in {shape!r}")
    return tuple(int(d) for d in dims)


def _int(v, where: str, what: str = "axis") -> int:
    """v as an int; a float or bool is refused (not truncated)."""
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
        raise TypeError(f"{where}: {what} must be an int, got {v!r}")
    return int(v)


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
            _core.unary(_U.DivScalar, t.data, float(o), out=t.data)
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


def _index_constant(idx: np.ndarray, dev) -> "_core.Tensor":
    """int32 indices on `dev`, made at once even while it records a graph (a constant the
    replays read, not a host copy at every run)."""
    with eager(dev):
        t = _core.Tensor(list(idx.shape), dev, int32)
        t.copy_from_numpy(np.ascontiguousarray(idx, dtype=np.int32))
    return t


def _raw(data) -> Tensor:
    return Tensor(data=data, requires_grad=False)


def _unary(op, t: Tensor, a: float = 0.0, b: float = 0.0) -> Tensor:
    return _raw(_core.unary(op, _data(t), float(a), float(b)))


# ---- creation ----

def from_numpy(np_array, dev=None) -> Tensor:
    """A tensor holding a copy of `np_array` (float64 and bool become float32, ints int32)."""
    if np_array is None or isinstance(np_array, Tensor):
        raise TypeError(f"from_numpy: expected a numpy array, got {type(np_array).__name__}")
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


def ceil(t: Tensor) -> Tensor:
    return _unary(_U.Ceil, t)


def floor(t: Tensor) -> Tensor:
    return _unary(_U.Floor, t)


def clip(t: Tensor, low: float, high: float) -> Tensor:
    if low > high:
        raise ValueError(f"clip: low ({low}) is greater than high ({high})")
    return _unary(_U.Clip, t, low, high)


def _binary(op, uop, ruop, lhs, rhs) -> Tensor:
    if isinstance(lhs, Tensor) and isinstance(rhs, Tensor):
        return _raw(_core.binary(op, lhs.data, rhs.data))
    name = op.name.lower()
    for v in (lhs, rhs):
        if not isinstance(v, Tensor) and not is_number(v):
            raise TypeError(f"{name}: operands must be Tensors or numbers, got "
                            f"{type(v).__name__}")
    if isinstance(lhs, Tensor):
        return _unary(uop[0], lhs, uop[1](float(rhs)))
    if isinstance(rhs, Tensor):
        return _unary(ruop, rhs, float(lhs))
    raise TypeError(f"{name}: at least one operand must be a Tensor")


def _floordiv(lhs, rhs) -> Tensor:
    return _binary(_B.FloorDiv, (_U.FloorDivScalar, lambda v: v), _U.RFloorDivScalar, lhs, rhs)


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
    return _binary(_B.Div, (_U.DivScalar, lambda v: v), _U.RDivScalar, lhs, rhs)


def pow(t, x, out: Optional[Tensor] = None) -> Tensor:  # noqa: A001 - SINGA's name
    return _into(_binary(_B.Pow, (_U.PowScalar, lambda v: v), _U.RPowScalar, t, x), out)


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
    _core.binary(_B.Add, _data(y), _core.unary(_U.MulScalar, _data(x), float(alpha)),
                 out=y.data)
    return y


# ---- reductions ----

def _axes(axis) -> Optional[list]:
    if axis is None:
        return None
    if isinstance(axis, (int, np.integer, float, bool, np.bool_)):
        return [_int(axis, "reduction")]
    return [_int(a, "reduction") for a in axis]


def _into(r: Tensor, out: Optional[Tensor]) -> Tensor:
    if out is None:
        return r
    out.copy_from(r)
    return out


def sum(t: Tensor, axis=None, keepdims: bool = False,  # noqa: A001
        out: Optional[Tensor] = None) -> Tensor:
    """Sum over `axis` (int, sequence or None for all), into `out` when given. SINGA's third
    argument is `out`: a Tensor there is taken as out."""
    if isinstance(keepdims, Tensor):
        keepdims, out = False, keepdims
    return _into(_raw(_core.reduce_sum(_data(t), _axes(axis), keepdims)), out)


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
    return _raw(_core.argmax(_data(t), _int(axis, "argmax"), keepdims))


def softmax(t: Tensor, axis: int = -1, out: Optional[Tensor] = None) -> Tensor:
    """Softmax along `axis`, into `out` when given. SINGA's second argument is `out`: a Tensor
    there is taken as out (the axis is then the last)."""
    if isinstance(axis, Tensor):
        axis, out = -1, axis
    return _into(_raw(_core.softmax(_data(t), _int(axis, "softmax"))), out)


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
    return _raw(_core.concat([_data(t) for t in tensors], _int(axis, "concatenate")))


def contiguous(t: Tensor) -> Tensor:
    return t.contiguous()


def repeat(t: Tensor, repeats, axis: Optional[int] = None) -> Tensor:
    """numpy.repeat: each element `repeats` times along `axis` (flattened when None)."""
    return t.repeat(repeats, axis)


def sum_columns(M: Tensor) -> Tensor:
    """The sum of a matrix's columns: shape (rows, 1) (SINGA's sum_columns)."""
    _check_matrix("sum_columns", M)
    return sum(M, 1, keepdims=True)


def sum_rows(M: Tensor) -> Tensor:
    """The sum of a matrix's rows: shape (1, columns) (SINGA's sum_rows)."""
    _check_matrix("sum_rows", M)
    return sum(M, 0, keepdims=True)


def add_column(alpha: float, v: Tensor, beta: float, M: Tensor) -> Tensor:
    """In place: every column of matrix M becomes alpha * v + beta * column (v: rows
    elements); returns M."""
    return _scale_add("add_column", alpha, v, beta, M, (M.shape[0], 1))


def add_row(alpha: float, v: Tensor, beta: float, M: Tensor) -> Tensor:
    """In place: every row of matrix M becomes alpha * v + beta * row (v: columns elements);
    returns M."""
    return _scale_add("add_row", alpha, v, beta, M, (1, M.shape[-1]))


def _check_matrix(where: str, M: Tensor) -> None:
    if M.ndim() != 2:
        raise ValueError(f"{where}: expected a matrix (2-d tensor), got shape {M.shape}")


def _scale_add(where: str, alpha, v: Tensor, beta, M: Tensor, vshape) -> Tensor:
    _check_matrix(where, M)
    need = int(np.prod(vshape))
    if v.size() != need:
        raise ValueError(f"{where}: v has {v.size()} elements, the matrix of shape {M.shape} "
                         f"needs {need}")
    av = _core.unary(_U.MulScalar, v.data.reshape(list(vshape)), float(alpha))
    bm = _core.unary(_U.MulScalar, M.data, float(beta))
    _core.binary(_B.Add, bm, av, out=M.data)
    return M


def einsum(ops: str, *args: Tensor) -> Tensor:
    """numpy.einsum for one or two tensors, e.g. einsum("ij,jk->ik", A, B) or
    einsum("bij->bji", A): letters in both inputs and the output are batched, letters missing
    from the output are summed. Repeated letters within one input (diagonals) and "..." are
    not supported. Computed with transposes, sums and one (batched) matrix product."""
    spec = ops.replace(" ", "")
    ins, arrow, out = spec.partition("->")
    ins = ins.split(",")
    if len(ins) != len(args) or len(args) not in (1, 2):
        raise ValueError(f"einsum: {ops!r} names {len(ins)} operand(s) and {len(args)} were "
                         "given; one or two are supported")
    letters = "".join(ins)
    if not arrow:  # implicit output: the letters used once, in alphabetical order
        out = "".join(sorted(c for c in set(letters) if letters.count(c) == 1))
    for term, t in zip(ins, args):
        if not term.isalpha() or len(set(term)) != len(term) or len(term) != t.ndim():
            raise ValueError(f"einsum: subscripts {term!r} do not fit a tensor of shape "
                             f"{t.shape} (one distinct letter per dimension; no '...')")
    if len(set(out)) != len(out) or not set(out) <= set(letters):
        raise ValueError(f"einsum: output subscripts {out!r} must be distinct letters of the "
                         "inputs")
    size = {}
    for term, t in zip(ins, args):
        for c, d in zip(term, t.shape):
            if size.setdefault(c, d) != d:
                raise ValueError(f"einsum: letter {c!r} has sizes {size[c]} and {d}")
    # Sum away, first, each letter that only one input has and the output lacks.
    data, terms = [], []
    for i, (term, t) in enumerate(zip(ins, args)):
        other = ins[1 - i] if len(ins) == 2 else ""
        drop = [k for k, c in enumerate(term) if c not in out and c not in other]
        d = _core.reduce_sum(t.data, drop, False) if drop else t.data
        data.append(d)
        terms.append("".join(c for k, c in enumerate(term) if k not in drop))
    if len(data) == 1:
        perm = [terms[0].index(c) for c in out]
        return _raw(_core.transpose(data[0], perm) if perm != sorted(perm) else
                    _core.clone(data[0]))
    a, b = terms
    batch = [c for c in a if c in b and c in out]
    contract = [c for c in a if c in b and c not in out]
    akeep = [c for c in a if c not in b]
    bkeep = [c for c in b if c not in a]

    def prod(cs):
        return int(np.prod([size[c] for c in cs], dtype=np.int64))

    def arrange(d, term, order, shape):
        perm = [term.index(c) for c in order]
        if perm != list(range(len(perm))):
            d = _core.transpose(d, perm)
        return d.reshape(shape)

    nb = prod(batch)
    x = arrange(data[0], a, batch + akeep + contract, [nb, prod(akeep), prod(contract)])
    y = arrange(data[1], b, batch + contract + bkeep, [nb, prod(contract), prod(bkeep)])
    got = batch + akeep + bkeep
    z = _core.matmul(x, y, False, False, 1.0, 0.0, None).reshape([size[c] for c in got])
    return _raw(arrange(z, "".join(got), list(out), [size[c] for c in out]))


def tensordot(A: Tensor, B: Tensor, axes=2) -> Tensor:
    """numpy.tensordot: sums the products over A's last `axes` dimensions and B's first ones
    (an int), or over the axes listed in a pair of sequences."""
    if isinstance(axes, (int, np.integer)):
        if not 0 <= axes <= _py.min(A.ndim(), B.ndim()):
            raise ValueError(f"tensordot: axes={axes} does not fit shapes {A.shape} and "
                             f"{B.shape}")
        ax_a, ax_b = list(range(A.ndim() - axes, A.ndim())), list(range(axes))
    else:
        ax_a, ax_b = ([axes[0]] if isinstance(axes[0], (int, np.integer)) else list(axes[0]),
                      [axes[1]] if isinstance(axes[1], (int, np.integer)) else list(axes[1]))
        if len(ax_a) != len(ax_b):
            raise ValueError(f"tensordot: {len(ax_a)} axes of A against {len(ax_b)} of B")
    ax_a = [_axis(a, A.ndim(), "tensordot") for a in ax_a]
    ax_b = [_axis(b, B.ndim(), "tensordot") for b in ax_b]
    letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
    if A.ndim() + B.ndim() > len(letters):
        raise ValueError("tensordot: too many dimensions")
    ta = list(letters[:A.ndim()])
    tb = list(letters[A.ndim():A.ndim() + B.ndim()])
    for i, j in zip(ax_a, ax_b):
        tb[j] = ta[i]
    out = [c for k, c in enumerate(ta) if k not in ax_a] + \
        [c for k, c in enumerate(tb) if k not in ax_b]
    return einsum(f"{''.join(ta)},{''.join(tb)}->{''.join(out)}", A, B)


def product(shape) -> int:
    """The number of elements of a shape."""
    return int(np.prod(_shape_like(shape), dtype=np.int64))


def sizeof(dtype) -> int:
    """Bytes per element of a dtype."""
    return int(np.dtype(_NP_OF[to_dtype(dtype)]).itemsize)


def from_raw_tensor(t: "_core.Tensor") -> Tensor:
    """Wraps a core tensor (`Tensor.data`) in a Tensor, sharing its data."""
    return _raw(t)


def from_raw_tensors(tt) -> list:
    return [from_raw_tensor(t) for t in tt]


PlaceHolder = Tensor  # SINGA's name for a graph input


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
