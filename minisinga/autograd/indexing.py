"""Indexing operators with SINGA's (and ONNX's) names: gather, embedding, where, onehot,
scatter_elements, constant_of_shape, nonzero.

They compute on the device through `_core` calls; index tensors built from Python lists are
made once, when the operator is created. Two ops read values on the host because their output
shape depends on them (nonzero, constant_of_shape with a Tensor of sizes): they refuse to run
while a graph is recorded.
"""

from __future__ import annotations

from typing import List

import numpy as np

from .. import tensor as _tensor
from ..device import get_default_device
from ..tensor import Tensor
from . import _f as F
from .engine import Operator
from .layout import _const, _host_values, _int_list, _ints, _to_device


class Gather(Operator):
    """numpy.take(x, indices, axis)."""

    def __init__(self, axis: int, indices):
        super().__init__()
        self.axis = axis
        if isinstance(indices, Tensor):
            if indices.dtype != _tensor.int32:
                raise TypeError(f"gather: indices must be int32, got {indices.dtype.name}")
            self.idx, self.host_idx = indices, None
        else:  # a list: a constant on the input's device (see _const)
            self.idx, self.host_idx = None, np.asarray(indices, dtype=np.int32)

    def forward(self, x):
        if self.idx is None:
            return self._take(x, _ints(self.host_idx, x.device))
        return self._take(x, self.idx.data)

    def _take(self, x, idx):
        self.xshape = x.shape
        self.idx_data = _to_device(idx, x.device)
        return F.core.take(x, self.idx_data, self.axis)

    def backward(self, dy):
        return F.core.take_backward(dy, self.idx_data, self.axis, list(self.xshape))


def gather(x: Tensor, axis: int, indices) -> Tensor:
    return Gather(axis, indices)(x)


class Embedding(Gather):
    """SINGA's Embedding: Gather on axis 0 of w with the indices as the first input. The
    gradient goes to w (scatter-added, repeated indices accumulate); x gets none."""

    def __init__(self):
        Operator.__init__(self)
        self.axis = 0

    def forward(self, x, w):
        if w.ndim != 2:
            raise ValueError(f"embedding: w must be 2-d (rows, features), got shape {w.shape}")
        if x.dtype == _tensor.float16 or x.dtype == _tensor.float32:
            x = F.core.as_type(x, _tensor.int32)  # SINGA allows float indices (whole numbers)
        return self._take(w, x)

    def backward(self, dy):
        return None, Gather.backward(self, dy)


def embedding(x: Tensor, w: Tensor) -> Tensor:
    """Rows of w (rows, features) at the integer indices x (any shape, int32 or whole floats):
    x.shape + (features,). Gradient to w only. layer.Embedding computes the same lookup."""
    return Embedding()(x, w)


class Where(Operator):
    """x where `condition` (nonzero) else y, the three broadcast together; the condition is
    not differentiated."""

    def __init__(self, condition):
        super().__init__()
        self.condition = condition  # a Tensor, or values made a constant on x's device

    def forward(self, x, y):
        self.xshape, self.yshape = x.shape, y.shape
        self.cond = _to_device(self.condition.data, x.device) if isinstance(
            self.condition, Tensor) else _const(self.condition, x.device, _tensor.float32)
        return F.core.where(self.cond, x, y)

    def backward(self, dy):
        zero = F.full_like(dy, 0.0)
        dx = F.core.where(self.cond, dy, zero)
        dy_ = F.core.where(self.cond, zero, dy)
        return F.sum_to(dx, self.xshape), F.sum_to(dy_, self.yshape)


def where(x: Tensor, y: Tensor, condition) -> Tensor:
    """x where `condition` is nonzero, else y (broadcasting). SINGA's argument order
    (x, y, condition); minisinga's earlier autograd.where(cond, a, b) had the condition first.
    tensor.where(cond, x, y) keeps numpy's order."""
    return Where(condition)(x, y)


class OneHot(Operator):
    """ONNX OneHot: a new axis of size `depth` at `axis` of the output, holding values[1] (on)
    where it equals the index and values[0] (off) elsewhere. Indices (int32, or floats
    truncated) may be negative down to -depth; an index outside [-depth, depth) gives an
    all-off row. Output float32. No gradient (piecewise constant in the indices)."""

    def __init__(self, axis: int, depth, values):
        super().__init__()
        self.axis = int(axis)
        d = _int_list(depth, "onehot", "depth")
        if len(d) != 1 or d[0] < 1:
            raise ValueError(f"onehot: depth must be one integer >= 1, got {depth!r}")
        self.depth = d[0]
        v = _host_values(values, "onehot", "values").astype(np.float64).reshape(-1)
        if v.size != 2:
            raise ValueError(f"onehot: values must be [off_value, on_value], got {values!r}")
        self.off, self.on = float(v[0]), float(v[1])

    def forward(self, indices):
        r, d = indices.ndim, self.depth
        axis = self.axis + r + 1 if self.axis < 0 else self.axis
        if not 0 <= axis <= r:
            raise ValueError(f"onehot: axis {self.axis} out of range for {r}-d indices (output "
                             f"has {r + 1} dims)")
        idx = indices if indices.dtype == _tensor.int32 else \
            F.core.as_type(indices, _tensor.int32)
        neg = F.un(F.U.LtScalar, idx, 0.0)  # 1 where negative: add depth there
        idx = F.add(idx, F.scale(neg, d))
        hit = F.core.binary(F.B.Eq, idx.reshape(list(idx.shape) + [1]),
                            _ints(np.arange(d), idx.device))
        y = F.core.as_type(hit, _tensor.float32)
        y = F.un(F.U.AddScalar, F.scale(y, self.on - self.off), self.off)
        if axis != r:
            y = F.core.transpose(y, list(range(axis)) + [r] + list(range(axis, r)))
        return y

    def backward(self, dy):
        return None


def onehot(axis: int, indices: Tensor, depth, values) -> Tensor:
    """ONNX OneHot of `indices` with `depth` classes at output axis `axis`; values =
    [off, on]. No gradient."""
    return OneHot(axis, depth, values)(indices)


class ScatterElements(Operator):
    """ONNX ScatterElements without reduction: a copy of x where, for each position p of
    `indices`, out[p with p[axis] replaced by indices[p]] = updates[p]. indices and updates
    have x's rank and one shape, no larger than x off `axis`; indices may be negative.

    indices: an int32 Tensor, or ints (checked here for range and duplicates). Duplicate
    positions, which ONNX leaves undefined without a reduction, add their updates when the
    indices are a Tensor. updates: a Tensor (it gets a gradient) or numbers (a constant).
    Gradients: to x, dy where nothing was scattered (0 elsewhere); to updates, dy at the
    positions each was written to.
    """

    def __init__(self, indices, updates, axis: int = 0):
        super().__init__()
        self.axis = int(axis)
        if isinstance(indices, Tensor):
            if indices.dtype != _tensor.int32:
                raise TypeError(f"scatter_elements: indices must be int32, got "
                                f"{indices.dtype.name}")
            self.indices, self.host_indices = indices, None
        else:
            a = np.asarray(indices)
            if a.dtype.kind not in "iu":
                raise TypeError(f"scatter_elements: indices must be integers, got {a.dtype}")
            self.indices, self.host_indices = None, a.astype(np.int64)
        self.updates = updates

    def __call__(self, x: Tensor):
        upd = self.updates
        if not isinstance(upd, Tensor):
            upd = Tensor(data=_const(upd, x.device, x.dtype), requires_grad=False)
        return super().__call__(x, upd)

    def _flat_indices(self, x, ishape, axis):
        """int32 positions in x.reshape(-1) of every index, as a 1-d device tensor."""
        strides = np.cumprod([1] + list(x.shape[:0:-1]))[::-1]
        coords = np.indices(ishape, dtype=np.int64)
        base = sum(coords[d] * strides[d] for d in range(len(ishape)) if d != axis)
        base = np.zeros(ishape, np.int64) + base
        n = x.shape[axis]
        if self.host_indices is not None:
            hi = self.host_indices
            if hi.size and (hi.min() < -n or hi.max() >= n):
                raise ValueError(f"scatter_elements: an index is out of range for axis {axis} "
                                 f"of size {n} (x shape {x.shape}); valid indices are in "
                                 f"[{-n}, {n})")
            flat = (base + np.where(hi < 0, hi + n, hi) * strides[axis]).reshape(-1)
            if np.unique(flat).size != flat.size:
                raise ValueError("scatter_elements: indices write one position of x more than "
                                 "once (undefined without a reduction)")
            return _ints(flat, x.device)
        idx = _to_device(self.indices.data, x.device)
        # a take from 0..n-1 makes negative indices positive and rejects out-of-range ones
        idx = F.core.take(_ints(np.arange(n), x.device), idx, 0)
        flat = F.add(F.scale(idx, float(strides[axis])), _ints(base, x.device))
        return flat.reshape([flat.numel])

    def forward(self, x, upd):
        r = x.ndim
        axis = self.axis + r if self.axis < 0 else self.axis
        if not 0 <= axis < r:
            raise ValueError(f"scatter_elements: axis {self.axis} out of range for shape "
                             f"{x.shape}")
        ishape = tuple(self.indices.shape if self.host_indices is None
                       else self.host_indices.shape)
        if len(ishape) != r or tuple(upd.shape) != ishape or any(
                ishape[d] > x.shape[d] for d in range(r) if d != axis):
            raise ValueError(f"scatter_elements: indices {ishape} and updates {upd.shape} must "
                             f"have one shape, of x's rank and no larger than x {x.shape} off "
                             f"axis {axis}")
        if upd.dtype != x.dtype:
            raise TypeError(f"scatter_elements: updates are {upd.dtype.name} but x is "
                            f"{x.dtype.name}")
        if x.numel >= 2 ** 31:
            raise ValueError(f"scatter_elements: x of shape {x.shape} has more than 2^31 "
                             "elements (int32 positions)")
        flat = self._flat_indices(x, ishape, axis)
        m = flat.numel
        ones = F.core.Tensor([m], x.device, x.dtype)
        F.core.fill(ones, 1.0)
        hits = F.core.take_backward(ones, flat, 0, [x.numel])  # writes per position
        self.keep = F.un(F.U.EqScalar, hits, 0.0).reshape(list(x.shape))  # 1: x kept
        self.flat, self.ishape = flat, list(ishape)
        written = F.core.take_backward(upd.reshape([m]), flat, 0, [x.numel])
        return F.core.where(self.keep, x, written.reshape(list(x.shape)))

    def backward(self, dy):
        dx = F.core.where(self.keep, dy, F.full_like(dy, 0.0)) if self.need(0) else None
        dupd = F.core.take(dy.reshape([dy.numel]), self.flat, 0).reshape(self.ishape) \
            if self.need(1) else None
        return dx, dupd


def scatter_elements(x: Tensor, indices, updates, axis: int = 0) -> Tensor:
    """ONNX ScatterElements (no reduction): x with updates written at `indices` along `axis`.
    Gradients to x and to updates (when a Tensor)."""
    return ScatterElements(indices, updates, axis)(x)


class ConstantOfShape(Operator):
    """ONNX ConstantOfShape: a float32 tensor of the sizes held in the 1-d tensor x, filled with
    `value`, on x's device. The sizes are read on the host, so it cannot run while x's device
    records a graph (constant_of_shape also takes a list of sizes, which can). No gradient."""

    def __init__(self, value=0.0):
        super().__init__()
        v = _host_values(value, "constant_of_shape", "value").reshape(-1)
        if v.size != 1:
            raise ValueError(f"constant_of_shape: value must be one number, got {value!r}")
        self.value = float(v[0])

    def forward(self, x):
        if x.ndim != 1:
            raise ValueError(f"constant_of_shape: x must be a 1-d tensor of sizes, got shape "
                             f"{x.shape}")
        return self.make(_int_list(x, "constant_of_shape", "x"), x.device)

    def make(self, sizes, device):
        if any(s < 0 for s in sizes):
            raise ValueError(f"constant_of_shape: sizes {sizes} has a negative size")
        t = F.core.Tensor(sizes, device, _tensor.float32)
        F.core.fill(t, self.value)
        return t

    def backward(self, dy):
        return None


def constant_of_shape(x, value=0.0) -> Tensor:
    """A float32 tensor filled with `value`, of the sizes in x: a 1-d Tensor (read on the host,
    eager mode only) or a list of ints (on the default device). No gradient."""
    op = ConstantOfShape(value)
    if isinstance(x, Tensor):
        return op(x)
    return Tensor(data=op.make(_int_list(x, "constant_of_shape", "x"), get_default_device()),
                  requires_grad=False)


class NonZero(Operator):
    """ONNX NonZero: the int32 indices of x's non-zero elements, shape (x.ndim, count), in
    row-major order (numpy.nonzero stacked). The count depends on x's values, which are read on
    the host: it cannot run while x's device records a graph. No gradient."""

    def forward(self, x):
        if x.device.graph_enabled():
            raise RuntimeError(
                f"nonzero: its output shape (ndim, count of non-zeros) depends on the values "
                f"of x, which do not exist yet while device {x.device.name} records a graph; "
                "call nonzero outside the recorded step (before compile or after the graph "
                "has run)")
        if x.ndim == 0:
            raise ValueError("nonzero: x is 0-d; reshape it to 1-d first")
        a = x.to_numpy()
        return _ints(np.array(np.nonzero(a)).reshape(a.ndim, -1), x.device)

    def backward(self, dy):
        return None


def nonzero(x: Tensor) -> Tensor:
    """int32 indices of the non-zero elements of x, shape (x.ndim, count) (eager only; no
    gradient)."""
    return NonZero()(x)


__all__: List[str] = [
    "gather", "embedding", "where", "onehot", "scatter_elements", "constant_of_shape", "nonzero",
]
