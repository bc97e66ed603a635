"""Shape and layout operators with SINGA's (and ONNX's) names: reshape, flatten, transpose,
concat, split, slice, squeeze, unsqueeze, cast, identity, shape, tile, expand, pad, upsample,
depth_to_space, space_to_depth (the indexing ones are in indexing.py).

Every operator computes on the device through `_core` calls. The int32 index tensors some of
them take from (pad's reflect/edge modes) are built from shapes alone, so a recorded graph
replays them as constants.
"""

from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import numpy as np

from .. import device as _device
from .. import tensor as _tensor
from ..tensor import Tensor
from . import _f as F
from .engine import Operator


class Reshape(Operator):
    """ONNX Reshape: a 0 in `shape` copies the input's dim there, unless `allowzero` (then it
    is a size-0 dim); one -1 is inferred."""

    def __init__(self, shape: Sequence[int], allowzero: bool = False):
        super().__init__()
        self.shape = [int(d) for d in shape]
        self.allowzero = bool(allowzero)

    def forward(self, x):
        self.xshape = x.shape
        shape = self.shape if self.allowzero else \
            [x.shape[i] if d == 0 and i < x.ndim else d for i, d in enumerate(self.shape)]
        return x.reshape(shape)

    def backward(self, dy):
        return dy.reshape(list(self.xshape))


def reshape(x: Tensor, shape: Sequence[int], allowzero: bool = False) -> Tensor:
    return Reshape(shape, allowzero)(x)


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
    """Pieces of sizes `parts` along `axis`; `parts` None (or an int) means `num_output` (or
    that many) equal pieces."""

    def __init__(self, axis: int, parts, num_output: Optional[int] = None):
        super().__init__()
        if parts is None and num_output is None:
            raise ValueError("split: give parts (the piece sizes) or num_output (a number of "
                             "equal pieces)")
        if isinstance(parts, (int, np.integer)):
            parts, num_output = None, int(parts)
        elif parts is not None:
            parts = [int(p) for p in parts]
            if num_output is not None and len(parts) != num_output:
                raise ValueError(f"split: {len(parts)} part sizes {parts} but num_output is "
                                 f"{num_output}")
        self.axis, self.parts, self.num_output = axis, parts, num_output

    def forward(self, x):
        if not -x.ndim <= self.axis < x.ndim:
            raise ValueError(f"split: axis {self.axis} out of range for shape {x.shape}")
        parts = self.parts
        if parts is None:
            n, k = x.shape[self.axis], self.num_output
            if k <= 0 or n % k:
                raise ValueError(f"split: cannot split axis {self.axis} of size {n} (shape "
                                 f"{x.shape}) into {k} equal parts")
            parts = [n // k] * k
        return tuple(F.core.split(x, parts, self.axis))

    def backward(self, *dys):
        return F.core.concat(list(dys), self.axis)


def split(x: Tensor, axis: int, parts, num_output: Optional[int] = None) -> tuple:
    """Splits x along `axis` into pieces of sizes `parts` (a list), or, with `parts` None,
    into `num_output` equal pieces (SINGA's signature; an int `parts` also means equal pieces).
    Returns a tuple of Tensors."""
    return Split(axis, parts, num_output)(x)


class Slice(Operator):
    """numpy-style x[start:stop:step] on the given axes."""

    def __init__(self, starts, ends, axes=None, steps=None):
        super().__init__()
        self.starts, self.ends = list(starts), list(ends)
        self.axes = None if axes is None else list(axes)
        self.steps = None if steps is None else list(steps)

    def forward(self, x):
        self.xshape = x.shape
        starts, ends, axes, steps = self.starts, self.ends, self.axes, self.steps
        flips = []  # (axis, positions) of the negative steps
        if steps is not None and any(isinstance(st, int) and st < 0 for st in steps):
            # The core slices forward only: a backward axis becomes a gather of its
            # positions, range(n)[start:end:step] as SINGA and ONNX define them.
            axes = list(range(len(starts))) if axes is None else axes
            if not len(axes) == len(starts) == len(ends) == len(steps):
                raise ValueError(f"slice: starts, ends, axes and steps differ in length "
                                 f"({len(starts)}, {len(ends)}, {len(axes)}, {len(steps)})")
            for i, st in enumerate(steps):
                if st < 0:
                    a = axes[i] + x.ndim if -x.ndim <= axes[i] < 0 else axes[i]
                    if not 0 <= a < x.ndim:
                        raise ValueError(f"slice: axis {axes[i]} is out of range for a "
                                         f"{x.ndim}-d tensor")
                    flips.append((a, list(range(x.shape[a])[starts[i]:ends[i]:st])))
            keep = [i for i, st in enumerate(steps) if not st < 0]
            starts, ends = [starts[i] for i in keep], [ends[i] for i in keep]
            axes, steps = [axes[i] for i in keep], [steps[i] for i in keep]
        self.sliced = (starts, ends, axes, steps)
        y = F.core.slice(x, *self.sliced) if starts or not flips else x
        self.gathers = []  # (axis, index constant, shape before) for backward
        for a, pos in flips:
            idx = _ints(pos, x.device)
            self.gathers.append((a, idx, y.shape))
            y = F.core.take(y, idx, a)
        return y

    def backward(self, dy):
        for a, idx, shape in reversed(self.gathers):
            dy = F.core.take_backward(dy, idx, a, list(shape))
        if self.sliced[0] or not self.gathers:
            dy = F.core.slice_backward(dy, list(self.xshape), *self.sliced)
        return dy


def slice(x: Tensor, starts, ends, axes=None, steps=None) -> Tensor:  # noqa: A001
    return Slice(starts, ends, axes, steps)(x)


class Squeeze(Operator):
    """Drops the size-1 axes in `axis` (an int or a list); None or [] (SINGA's default)
    drops every size-1 axis."""

    def __init__(self, axis=None):
        super().__init__()
        self.axis = [axis] if isinstance(axis, (int, np.integer)) else axis

    def forward(self, x):
        self.xshape = x.shape
        nd = x.ndim
        if self.axis is None or len(self.axis) == 0:
            shape = [d for d in x.shape if d != 1]
        else:
            axes = [a + nd if a < 0 else a for a in self.axis]
            for given, a in zip(self.axis, axes):
                if not 0 <= a < nd or x.shape[a] != 1:
                    raise ValueError(f"squeeze: axis {given} of shape {x.shape} is not of "
                                     "size 1")
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
        for given in self.axis:
            if not -nd <= given < nd:
                raise ValueError(f"unsqueeze: axis {given} out of range for output of {nd} dims")
        for a in sorted(a + nd if a < 0 else a for a in self.axis):
            shape.insert(a, 1)
        return x.reshape(shape)

    def backward(self, dy):
        return dy.reshape(list(self.xshape))


def unsqueeze(x: Tensor, axis=-1) -> Tensor:
    """Inserts size-1 axes at `axis` (an int or a list, counted in the output's dims)."""
    return Unsqueeze(axis)(x)


def _to_device(t, device):
    """Core tensor t on `device` (moved only if needed)."""
    return t if t.device == device else F.core.to_device(t, device)


def _const(values, device, dtype=_tensor.int32):
    """A core tensor holding `values` (from shapes or the caller's lists, never from data) on
    `device`, made at once even while the device records a graph: a constant that replays
    (and a captured CUDA graph) read, rather than copy from the host at every run."""
    a = np.array(values, dtype=_tensor._NP_OF[dtype], order="C")  # 0-d stays 0-d
    with _device.eager(device):
        t = F.core.Tensor(list(a.shape), device, dtype)
        t.copy_from_numpy(a)
    return t


def _ints(values, device):
    """An int32 constant (see _const)."""
    return _const(values, device)


def _host_values(v, op: str, what: str) -> np.ndarray:
    """The values of a Tensor (read on the host, so not while its device records a graph) or
    of a number / sequence, as a numpy array."""
    if isinstance(v, (Tensor, F.core.Tensor)):
        if v.device.graph_enabled():
            raise RuntimeError(
                f"{op}: {what} is a Tensor whose values must be read on the host, which is not "
                f"possible while device {v.device.name} records a graph; pass a list, or call "
                f"{op} outside the recorded step")
        return v.to_numpy()
    return np.asarray(v)


def _int_list(v, op: str, what: str) -> List[int]:
    """A number, a 1-d sequence or a Tensor of whole numbers as a list of ints."""
    a = _host_values(v, op, what)
    a = a.reshape(1) if a.ndim == 0 else a
    if a.ndim != 1 or a.dtype.kind not in "iuf" or (a.dtype.kind == "f" and
                                                    not np.all(a == np.round(a))):
        raise ValueError(f"{op}: {what} must be a 1-d list of integers, got {v!r}")
    return [int(d) for d in a]


class Cast(Operator):
    def __init__(self, dtype):
        super().__init__()
        self.dtype = _tensor.to_dtype(dtype)

    def forward(self, x):
        self.xdtype = x.dtype
        return x if x.dtype == self.dtype else F.core.as_type(x, self.dtype)

    def backward(self, dy):
        if F.core.DType.int32 in (self.dtype, self.xdtype):
            return None  # to or from integers: piecewise constant, no gradient (as SINGA)
        return dy if dy.dtype == self.xdtype else F.core.as_type(dy, self.xdtype)


def cast(x: Tensor, dtype) -> Tensor:
    return Cast(dtype)(x)


def in_float32(fn, *xs: Tensor) -> Tensor:
    """fn(*xs) computed in float32 when any x is float16 (logs of clipped probabilities
    overflow or round to log 0 in float16, sums over a batch or a row overflow, a confident
    softmax rounds to exactly 1), the result cast back to xs[0]'s dtype."""
    if _tensor.float16 not in (x.dtype for x in xs):
        return fn(*xs)
    f32 = _tensor.float32
    out = fn(*(cast(x, f32) if x.dtype == _tensor.float16 else x for x in xs))
    return out if xs[0].dtype == f32 else cast(out, xs[0].dtype)


class Identity(Operator):
    def forward(self, x):
        return x

    def backward(self, dy):
        return dy


def identity(x: Tensor) -> Tensor:
    return Identity()(x)



class Shape(Operator):
    """x's shape as a 1-d float32 tensor on x's device. No gradient: the output does not depend
    on x's values (backward gives None)."""

    def forward(self, x):
        return _const(x.shape, x.device, _tensor.float32)

    def backward(self, dy):
        return None


def shape(x: Tensor) -> Tensor:
    """x's shape as a 1-d float32 tensor (no gradient)."""
    return Shape()(x)


class _Interleave(Operator):
    """Tile and UpSample: x viewed with a size-1 axis beside each of its axes (`small`),
    broadcast to `big`, then each pair of axes merged. Backward sums the broadcast axes back.
    (Not `src`: the engine keeps an operator's inputs there.)"""

    def plan(self, shape) -> Tuple[List[int], List[int]]:
        raise NotImplementedError

    def forward(self, x):
        self.xshape = x.shape
        self.small, self.big = self.plan(list(x.shape))
        out = [self.big[i] * self.big[i + 1] for i in range(0, len(self.big), 2)]
        return F.core.broadcast_to(x.reshape(self.small), self.big).reshape(out)

    def backward(self, dy):
        g = F.core.sum_to_shape(dy.reshape(self.big), self.small)
        return g.reshape(list(self.xshape))


def _counts(v, op: str, what: str, low: int) -> List[int]:
    vals = [v] if isinstance(v, (int, float, np.integer, np.floating)) else \
        _int_list(v, op, what)
    if not all(float(r) == int(r) and int(r) >= low for r in vals):
        raise ValueError(f"{op}: {what} must be integers >= {low}, got {v!r}")
    return [int(r) for r in vals]


class Tile(_Interleave):
    """numpy.tile(x, repeats): a shorter `repeats` is padded with leading 1s, a longer one
    gives x leading size-1 axes. Gradient: the sum over the copies."""

    def __init__(self, repeats):
        super().__init__()
        self.repeats = _counts(repeats, "tile", "repeats", 0)

    def plan(self, shape):
        nd = max(len(shape), len(self.repeats))
        shape = [1] * (nd - len(shape)) + shape
        reps = [1] * (nd - len(self.repeats)) + self.repeats
        return ([v for s in shape for v in (1, s)],
                [v for r, s in zip(reps, shape) for v in (r, s)])


def tile(x: Tensor, repeats) -> Tensor:
    """numpy.tile(x, repeats) (an int or a list of ints >= 0)."""
    return Tile(repeats)(x)


class UpSample(_Interleave):
    """Nearest-neighbour upsampling by whole `scales`, one per axis: y[i] = x[i // s] on every
    axis. Gradient: the sum over each block of copies."""

    def __init__(self, mode: str, scales):
        super().__init__()
        if mode != "nearest":
            raise ValueError(f"upsample: mode {mode!r} is not supported; expected 'nearest'")
        self.mode = mode
        self.scales = _counts(scales, "upsample", "scales", 1)

    def plan(self, shape):
        if len(self.scales) != len(shape):
            raise ValueError(f"upsample: {len(self.scales)} scales {self.scales} for an input "
                             f"of shape {tuple(shape)}; give one scale per axis")
        return ([v for n in shape for v in (n, 1)],
                [v for n, s in zip(shape, self.scales) for v in (n, s)])


def upsample(x: Tensor, mode: str, scales) -> Tensor:
    """Nearest-neighbour upsampling (mode 'nearest') by integer `scales`, one per axis of x."""
    return UpSample(mode, scales)(x)


class Expand(Operator):
    """ONNX Expand: x broadcast against `shape` both ways (numpy rules), so the output has shape
    broadcast(x.shape, shape) and a 1 in `shape` keeps x's size. Gradient: summed back."""

    def __init__(self, shape):
        super().__init__()
        self.shape = _int_list(shape, "expand", "shape")

    def forward(self, x):
        try:
            out = F.core.broadcast_shapes(list(x.shape), self.shape)
        except ValueError:
            raise ValueError(f"expand: x of shape {x.shape} cannot be broadcast with shape "
                             f"{tuple(self.shape)}") from None
        self.xshape = x.shape
        return F.core.broadcast_to(x, out)

    def backward(self, dy):
        return F.sum_to(dy, self.xshape)


def expand(x: Tensor, shape) -> Tensor:
    """x broadcast with `shape` (ONNX Expand: bidirectional numpy broadcasting)."""
    return Expand(shape)(x)


def _pad_source(mode: str, n: int, b: int, e: int, axis: int) -> List[int]:
    """For reflect / edge padding of `b` before and `e` after an axis of size n: the input
    index each output position copies."""
    if mode == "reflect":
        if b > n - 1 or e > n - 1:
            raise ValueError(f"pad: reflect mode pads axis {axis} of size {n} by ({b}, {e}); "
                             f"each pad must be at most the size minus 1 ({n - 1})")
        return list(range(b, 0, -1)) + list(range(n)) + [n - 2 - i for i in range(e)]
    if n == 0:
        raise ValueError(f"pad: edge mode cannot pad axis {axis} of size 0")
    return [0] * b + list(range(n)) + [n - 1] * e


class Pad(Operator):
    """ONNX Pad: `pads` = [x1_begin, x2_begin, ..., x1_end, x2_end, ...] (>= 0). Modes:
    'constant' (the value `constant`), 'reflect' (mirrored, edge not repeated, as numpy's
    'reflect') and 'edge' (the edge value repeated). Gradient: the interior for 'constant';
    for the others each copy's gradient is added to its source."""

    MODES = ("constant", "reflect", "edge")

    def __init__(self, mode: str, pads, constant: float = 0.0):
        super().__init__()
        if mode not in self.MODES:
            raise ValueError(f"pad: mode {mode!r} is not supported; expected one of "
                             f"{', '.join(repr(m) for m in self.MODES)}")
        self.mode, self.constant = mode, float(constant)
        self.pads = _int_list(pads, "pad", "pads")
        if any(p < 0 for p in self.pads):
            raise ValueError(f"pad: pads {self.pads} has negative values; only pads >= 0 are "
                             "supported (use slice to crop)")

    def forward(self, x):
        nd = x.ndim
        if len(self.pads) != 2 * nd:
            raise ValueError(f"pad: {len(self.pads)} pads {self.pads} for an input of shape "
                             f"{x.shape}; expected {2 * nd} (all begins, then all ends)")
        pairs = [(self.pads[d], self.pads[d + nd]) for d in range(nd)]
        if self.mode == "constant":
            self.pairs = pairs
            return F.core.pad(x, pairs, self.constant)
        self.steps = []  # (axis, source indices, shape before) of each padded axis
        for d, (b, e) in enumerate(pairs):
            if b or e:
                idx = _ints(_pad_source(self.mode, x.shape[d], b, e, d), x.device)
                self.steps.append((d, idx, x.shape))
                x = F.core.take(x, idx, d)
        return x

    def backward(self, dy):
        if self.mode == "constant":
            return F.core.pad_backward(dy, self.pairs)
        for d, idx, shape_before in reversed(self.steps):
            dy = F.core.take_backward(dy, idx, d, list(shape_before))
        return dy


def pad(x: Tensor, mode: str, pads, constant: float = 0.0) -> Tensor:
    """Pads x (ONNX Pad): mode 'constant', 'reflect' or 'edge'; pads [x1_begin, x2_begin, ...,
    x1_end, x2_end, ...]; `constant` is the fill value of 'constant' mode."""
    return Pad(mode, pads, constant)(x)


def _block_args(op: str, blocksize, mode: str) -> Tuple[int, str]:
    if isinstance(blocksize, bool) or not isinstance(blocksize, (int, np.integer)) or \
            blocksize < 1:
        raise ValueError(f"{op}: blocksize must be an int >= 1, got {blocksize!r}")
    m = str(mode).upper()
    if m not in ("DCR", "CRD"):
        raise ValueError(f"{op}: mode {mode!r} is not supported; expected 'DCR' or 'CRD'")
    return int(blocksize), m


def _depth_to_space(x, b: int, mode: str):
    n, c, h, w = x.shape
    c2 = c // (b * b)
    if mode == "DCR":  # channel (i * b + j) * c2 + k
        t, perm = x.reshape([n, b, b, c2, h, w]), [0, 3, 4, 1, 5, 2]
    else:  # CRD: channel k * b * b + i * b + j
        t, perm = x.reshape([n, c2, b, b, h, w]), [0, 1, 4, 2, 5, 3]
    return F.core.transpose(t, perm).reshape([n, c2, h * b, w * b])


def _space_to_depth(x, b: int, mode: str):
    n, c, h, w = x.shape
    t = x.reshape([n, c, h // b, b, w // b, b])
    perm = [0, 3, 5, 1, 2, 4] if mode == "DCR" else [0, 1, 3, 5, 2, 4]
    return F.core.transpose(t, perm).reshape([n, c * b * b, h // b, w // b])


def _check_nchw(op: str, x) -> None:
    if x.ndim != 4:
        raise ValueError(f"{op}: expected an NCHW input, got shape {x.shape}")


class DepthToSpace(Operator):
    """ONNX DepthToSpace on NCHW: (N, C, H, W) -> (N, C / b^2, H * b, W * b). Mode 'DCR' takes
    the block offset from the leading channel bits, 'CRD' from the trailing ones. Its gradient
    is SpaceToDepth of the same mode."""

    def __init__(self, blocksize: int, mode: str = "DCR"):
        super().__init__()
        self.blocksize, self.mode = _block_args("depth_to_space", blocksize, mode)

    def forward(self, x):
        _check_nchw("depth_to_space", x)
        b = self.blocksize
        if x.shape[1] % (b * b):
            raise ValueError(f"depth_to_space: {x.shape[1]} channels (shape {x.shape}) are not "
                             f"divisible by blocksize^2 = {b * b}")
        return _depth_to_space(x, b, self.mode)

    def backward(self, dy):
        return _space_to_depth(dy, self.blocksize, self.mode)


def depth_to_space(x: Tensor, blocksize: int, mode: str = "DCR") -> Tensor:
    """Moves channel blocks into b x b spatial blocks (NCHW; mode 'DCR' or 'CRD')."""
    return DepthToSpace(blocksize, mode)(x)


class SpaceToDepth(Operator):
    """The inverse of DepthToSpace of the same mode: (N, C, H, W) -> (N, C * b^2, H / b, W / b).
    ONNX defines only 'DCR' (its default); 'CRD' undoes DepthToSpace's 'CRD'."""

    def __init__(self, blocksize: int, mode: str = "DCR"):
        super().__init__()
        self.blocksize, self.mode = _block_args("space_to_depth", blocksize, mode)

    def forward(self, x):
        _check_nchw("space_to_depth", x)
        b = self.blocksize
        if x.shape[2] % b or x.shape[3] % b:
            raise ValueError(f"space_to_depth: height and width of shape {x.shape} must be "
                             f"divisible by blocksize {b}")
        return _space_to_depth(x, b, self.mode)

    def backward(self, dy):
        return _depth_to_space(dy, self.blocksize, self.mode)


def space_to_depth(x: Tensor, blocksize: int, mode: str = "DCR") -> Tensor:
    """Moves b x b spatial blocks into channels (NCHW; mode 'DCR' or 'CRD')."""
    return SpaceToDepth(blocksize, mode)(x)


__all__: List[str] = [
    "reshape", "flatten", "transpose", "concat", "cat", "split", "slice", "squeeze", "unsqueeze",
    "cast", "identity", "shape", "tile", "expand", "pad", "upsample", "depth_to_space",
    "space_to_depth",
]
