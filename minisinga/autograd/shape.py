"""Shape and indexing operators: reshape, flatten, transpose, concat, split, slice, squeeze,
unsqueeze, gather, where, cast."""

from __future__ import annotations

from typing import List, Optional, Sequence

import numpy as np

from .. import tensor as _tensor
from ..tensor import Tensor
from . import _f as F
from .engine import Operator


class Reshape(Operator):
    def __init__(self, shape: Sequence[int]):
        super().__init__()
        self.shape = [int(d) for d in shape]

    def forward(self, x):
        self.xshape = x.shape
        # ONNX: 0 copies the input dim
        shape = [x.shape[i] if d == 0 and i < x.ndim else d for i, d in enumerate(self.shape)]
        return x.reshape(shape)

    def backward(self, dy):
        return dy.reshape(list(self.xshape))


def reshape(x: Tensor, shape: Sequence[int]) -> Tensor:
    return Reshape(shape)(x)


class Flatten(Operator):
    """Flattens to 2-d: dims before `axis` become rows, the rest columns."""

    def __init__(self, axis: int = 1):
        super().__init__()
        self.axis = axis

    def forward(self, x):
        axis = self.axis + x.ndim if self.axis < 0 else self.axis
        if not 0 <= axis <= x.ndim:
            raise ValueError(f"flatten: axis {self.axis} out of range for {x.ndim}-d input")
        self.xshape = x.shape
        rows = int(np.prod(x.shape[:axis], dtype=np.int64))
        return x.reshape([rows, -1] if rows else [0, int(np.prod(x.shape[axis:]))])

    def backward(self, dy):
        return dy.reshape(list(self.xshape))


def flatten(x: Tensor, axis: int = 1) -> Tensor:
    return Flatten(axis)(x)


class Transpose(Operator):
    def __init__(self, perm: Optional[Sequence[int]] = None):
        super().__init__()
        self.perm = None if perm is None else [int(p) for p in perm]

    def forward(self, x):
        perm = self.perm if self.perm is not None else list(range(x.ndim))[::-1]
        self.inv = list(np.argsort([p + x.ndim if p < 0 else p for p in perm]))
        return F.core.transpose(x, perm)

    def backward(self, dy):
        return F.core.transpose(dy, [int(i) for i in self.inv])


def transpose(x: Tensor, perm: Optional[Sequence[int]] = None) -> Tensor:
    return Transpose(perm)(x)


class Concat(Operator):
    def __init__(self, axis: int = 0):
        super().__init__()
        self.axis = axis

    def forward(self, *xs):
        out = F.core.concat(list(xs), self.axis)  # checks the axis and shapes first
        self.sizes = [x.shape[self.axis] for x in xs]
        return out

    def backward(self, dy):
        return tuple(F.core.split(dy, self.sizes, self.axis))


def concat(xs: Sequence[Tensor], axis: int = 0) -> Tensor:
    return Concat(axis)(*xs)


cat = concat


class Split(Operator):
    def __init__(self, axis: int, parts: Sequence[int]):
        super().__init__()
        self.axis, self.parts = axis, [int(p) for p in parts]

    def forward(self, x):
        return tuple(F.core.split(x, self.parts, self.axis))

    def backward(self, *dys):
        return F.core.concat(list(dys), self.axis)


def split(x: Tensor, axis: int, parts) -> tuple:
    """Splits x along `axis` into pieces of sizes `parts` (or `parts` equal pieces)."""
    if isinstance(parts, int):
        n = x.shape[axis]
        if parts <= 0 or n % parts:
            raise ValueError(f"split: cannot split axis of size {n} into {parts} equal parts")
        parts = [n // parts] * parts
    return Split(axis, parts)(x)


class Slice(Operator):
    """numpy-style x[start:stop:step] on the given axes."""

    def __init__(self, starts, ends, axes=None, steps=None):
        super().__init__()
        self.starts, self.ends = list(starts), list(ends)
        self.axes = None if axes is None else list(axes)
        self.steps = None if steps is None else list(steps)

    def forward(self, x):
        self.xshape = x.shape
        return F.core.slice(x, self.starts, self.ends, self.axes, self.steps)

    def backward(self, dy):
        return F.core.slice_backward(dy, list(self.xshape), self.starts, self.ends, self.axes,
                                     self.steps)


def slice(x: Tensor, starts, ends, axes=None, steps=None) -> Tensor:  # noqa: A001
    return Slice(starts, ends, axes, steps)(x)


class Squeeze(Operator):
    def __init__(self, axis=None):
        super().__init__()
        self.axis = [axis] if isinstance(axis, int) else axis

    def forward(self, x):
        self.xshape = x.shape
        nd = x.ndim
        if self.axis is None:
            shape = [d for d in x.shape if d != 1]
        else:
            axes = [a + nd if a < 0 else a for a in self.axis]
            for a in axes:
                if not 0 <= a < nd or x.shape[a] != 1:
                    raise ValueError(f"squeeze: axis {a} of shape {x.shape} is not of size 1")
            shape = [d for i, d in enumerate(x.shape) if i not in axes]
        return x.reshape(shape)

    def backward(self, dy):
        return dy.reshape(list(self.xshape))


def squeeze(x: Tensor, axis=None) -> Tensor:
    return Squeeze(axis)(x)


class Unsqueeze(Operator):
    def __init__(self, axis):
        super().__init__()
        self.axis = [axis] if isinstance(axis, int) else list(axis)

    def forward(self, x):
        self.xshape = x.shape
        shape = list(x.shape)
        nd = x.ndim + len(self.axis)
        for a in sorted(a + nd if a < 0 else a for a in self.axis):
            if not 0 <= a <= len(shape):
                raise ValueError(f"unsqueeze: axis {a} out of range for output of {nd} dims")
            shape.insert(a, 1)
        return x.reshape(shape)

    def backward(self, dy):
        return dy.reshape(list(self.xshape))


def unsqueeze(x: Tensor, axis) -> Tensor:
    return Unsqueeze(axis)(x)


class Gather(Operator):
    """numpy.take(x, indices, axis)."""

    def __init__(self, axis: int, indices):
        super().__init__()
        self.axis = axis
        idx = indices if isinstance(indices, Tensor) else _tensor.from_numpy(
            np.asarray(indices, dtype=np.int32))
        if idx.dtype != _tensor.int32:
            raise TypeError(f"gather: indices must be int32, got {idx.dtype.name}")
        self.idx = idx

    def forward(self, x):
        self.xshape = x.shape
        idx = self.idx.data if self.idx.device == x.device else \
            F.core.to_device(self.idx.data, x.device)
        self.idx_data = idx
        return F.core.take(x, idx, self.axis)

    def backward(self, dy):
        return F.core.take_backward(dy, self.idx_data, self.axis, list(self.xshape))


def gather(x: Tensor, axis: int, indices) -> Tensor:
    return Gather(axis, indices)(x)


class Where(Operator):
    """cond ? a : b (cond is not differentiated)."""

    def __init__(self, cond: Tensor):
        super().__init__()
        self.cond = cond

    def forward(self, a, b):
        self.ashape, self.bshape = a.shape, b.shape
        return F.core.where(self.cond.data, a, b)

    def backward(self, dy):
        zero = F.full_like(dy, 0.0)
        da = F.core.where(self.cond.data, dy, zero)
        db = F.core.where(self.cond.data, zero, dy)
        return F.sum_to(da, self.ashape), F.sum_to(db, self.bshape)


def where(cond: Tensor, a: Tensor, b: Tensor) -> Tensor:
    return Where(cond)(a, b)


class Cast(Operator):
    def __init__(self, dtype):
        super().__init__()
        self.dtype = _tensor.to_dtype(dtype)

    def forward(self, x):
        self.xdtype = x.dtype
        return x if x.dtype == self.dtype else F.core.as_type(x, self.dtype)

    def backward(self, dy):
        return dy if dy.dtype == self.xdtype else F.core.as_type(dy, self.xdtype)


def cast(x: Tensor, dtype) -> Tensor:
    return Cast(dtype)(x)


class Identity(Operator):
    def forward(self, x):
        return x

    def backward(self, dy):
        return dy


def identity(x: Tensor) -> Tensor:
    return Identity()(x)


__all__: List[str] = [
    "reshape", "flatten", "transpose", "concat", "cat", "split", "slice", "squeeze", "unsqueeze",
    "gather", "where", "cast", "identity",
]
