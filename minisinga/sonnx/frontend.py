"""ONNX export: minisinga operators -> an ONNX graph (opset OPSET).

Two ways to find the operators. `to_onnx(inputs, y)` (SINGA's) walks back from `y` along the
creators that a forward run with `autograd.training = True` recorded. `export(model, inputs)`
runs one inference forward under `autograd.tracing()` and takes every operator called, in call
order; results that do not depend on the inputs or the parameters become initializers.

Each operator class has one emitter below, `(ctx, op, ins, outs)`: `ins` are the ONNX names of
its inputs, `outs` the names its outputs must get. Shapes are static (those of the traced run).
"""

from __future__ import annotations

import math
import os
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from .. import autograd, tensor
from ..autograd import indexing as _ix
from ..autograd import layout as _ly
from ..autograd import math as _m
from ..autograd import nn as _nn
from ..autograd import pointwise as _pw
from ..autograd import variadic as _va
from ..autograd.engine import Operator
from ..tensor import Tensor

OPSET = 13

_ONNX_DTYPE = {tensor.float32: TensorProto.FLOAT, tensor.float16: TensorProto.FLOAT16,
               tensor.int32: TensorProto.INT32}


def _np_dtype(dt) -> np.dtype:
    return {tensor.float32: np.float32, tensor.float16: np.float16,
            tensor.int32: np.int32}[dt]


class _Ctx:
    """The graph under construction: nodes, initializers, each value's dtype and shape."""

    def __init__(self):
        self.nodes: List[onnx.NodeProto] = []
        self.inits: List[onnx.TensorProto] = []
        self.dtypes: Dict[str, object] = {}
        self.shapes: Dict[str, tuple] = {}
        # With a dynamic batch: each value's shape in the other trace (traced at another
        # batch size), and the other trace's shape of each tensor of this one, by id.
        self.shapes2: Dict[str, tuple] = {}
        self.other: Optional[Dict[int, tuple]] = None
        self._n = 0
        self._leaf_names: Dict[int, str] = {}
        self._leaves: List[Tensor] = []  # keeps leaf ids valid while names refer to them
        self.param_names: Dict[int, str] = {}

    def fresh(self, stem: str) -> str:
        self._n += 1
        return f"{stem}_{self._n}"

    def node(self, op_type: str, ins: Sequence[str], outs: Sequence[str], **attrs) -> None:
        self.nodes.append(helper.make_node(op_type, list(ins), list(outs),
                                           name=self.fresh(op_type), **attrs))

    def const(self, value, dtype=None, stem: str = "const") -> str:
        """An initializer holding `value` (numpy dtype `dtype`, or value's own)."""
        arr = np.asarray(value, dtype=dtype)
        name = self.fresh(stem)
        self.inits.append(numpy_helper.from_array(arr, name))
        return name

    def ints(self, values) -> str:
        return self.const(np.asarray(values, dtype=np.int64).reshape(-1), stem="ints")

    def scalar_like(self, value: float, like: str) -> str:
        return self.const(np.asarray(value, dtype=_np_dtype(self.dtypes[like])), stem="scalar")

    def leaf(self, t: Tensor) -> str:
        """The initializer holding tensor t's value (made once per tensor)."""
        key = id(t)
        if key not in self._leaf_names:
            name = self.param_names.get(key) or (t.name if getattr(t, "name", None) else None) \
                or self.fresh("param" if t.stores_grad else "const")
            if name in self.dtypes:
                name = self.fresh(name)
            self.inits.append(numpy_helper.from_array(t.to_numpy(), name))
            self.dtypes[name] = t.dtype
            self._shape(name, t)
            self._leaf_names[key] = name
            self._leaves.append(t)
        return self._leaf_names[key]

    def _shape(self, name: str, t: Tensor) -> None:
        self.shapes[name] = tuple(t.shape)
        self.shapes2[name] = self.shapes[name] if self.other is None else \
            self.other.get(id(t), self.shapes[name])
        if len(self.shapes2[name]) != len(self.shapes[name]):
            raise ValueError(f"sonnx: dynamic_batch: a value has shape {self.shapes[name]} at "
                             f"one batch size and {self.shapes2[name]} at another: its rank "
                             "depends on the batch")

    def batch_dims(self, name: str) -> List[int]:
        """The dims of value `name` that change with the batch size (none if static)."""
        return [i for i, (a, b) in enumerate(zip(self.shapes[name], self.shapes2[name]))
                if a != b]

    def dims(self, name: str) -> list:
        """The shape of `name` for a value_info: 'batch' where it changes with the batch."""
        dyn = self.batch_dims(name)
        return ["batch" if i in dyn else d for i, d in enumerate(self.shapes[name])]

    def cast_from_bool(self, bool_name: str, out: str) -> None:
        self.node("Cast", [bool_name], [out], to=_ONNX_DTYPE[self.dtypes[out]])

    def to_bool(self, name: str) -> str:
        b = self.fresh("bool")
        self.node("Cast", [name], [b], to=TensorProto.BOOL)
        return b


Emitter = Callable[[_Ctx, Operator, List[str], List[str]], None]
_EMIT: Dict[type, Emitter] = {}


def _emits(*classes):
    def deco(fn):
        for c in classes:
            _EMIT[c] = fn
        return fn
    return deco


def _simple(op_type: str, **attrs) -> Emitter:
    return lambda ctx, op, ins, outs: ctx.node(op_type, ins, outs, **attrs)


# ---- pointwise ----

for _cls, _name in [
        (_m.Neg, "Neg"), (_m.Exp, "Exp"), (_m.Log, "Log"), (_m.Sqrt, "Sqrt"), (_m.Abs, "Abs"),
        (_m.ReLU, "Relu"), (_m.Sigmoid, "Sigmoid"), (_m.Tanh, "Tanh"),
        (_m.SoftPlus, "Softplus"), (_m.SoftSign, "Softsign"), (_m.Erf, "Erf"),
        (_pw.Sin, "Sin"), (_pw.Cos, "Cos"), (_pw.Tan, "Tan"), (_pw.Asin, "Asin"),
        (_pw.Acos, "Acos"), (_pw.Atan, "Atan"), (_pw.Sinh, "Sinh"), (_pw.Cosh, "Cosh"),
        (_pw.Asinh, "Asinh"), (_pw.Acosh, "Acosh"), (_pw.Atanh, "Atanh"),
        (_pw.Reciprocal, "Reciprocal"), (_pw.Sign, "Sign"), (_pw.Ceil, "Ceil"),
        (_pw.Floor, "Floor"), (_pw.Rounde, "Round"),  # ONNX Round halves to even
        (_m.Add, "Add"), (_m.Sub, "Sub"), (_m.Mul, "Mul"), (_m.Div, "Div"), (_m.Pow, "Pow"),
        (_m.Maximum, "Max"), (_m.Minimum, "Min"), (_m.PRelu, "PRelu"),
        (_m.Matmul, "MatMul"), (_va.Sum, "Sum"), (_va.Mean, "Mean"), (_va.Max, "Max"),
        (_va.Min, "Min"), (_ly.Identity, "Identity")]:
    _EMIT[_cls] = _simple(_name)


@_emits(_m.LeakyReLU)
def _leaky(ctx, op, ins, outs):
    ctx.node("LeakyRelu", ins, outs, alpha=float(op.params[0]))


@_emits(_m.Elu)
def _elu(ctx, op, ins, outs):
    ctx.node("Elu", ins, outs, alpha=float(op.params[0]))


@_emits(_m.Selu)
def _selu(ctx, op, ins, outs):
    ctx.node("Selu", ins, outs, alpha=float(op.params[0]), gamma=float(op.params[1]))


@_emits(_m.HardSigmoid)
def _hardsigmoid(ctx, op, ins, outs):
    ctx.node("HardSigmoid", ins, outs, alpha=float(op.params[0]), beta=float(op.params[1]))


@_emits(_m.Gelu)
def _gelu(ctx, op, ins, outs):  # opset 13 has no Gelu: x/2 (1 + erf(x / sqrt 2)), or tanh form
    x = ins[0]
    arg, inner, one, half = (ctx.fresh(n) for n in ("arg", "inner", "one_plus", "half_x"))
    if op.approximate == "none":
        ctx.node("Mul", [x, ctx.scalar_like(1 / math.sqrt(2), x)], [arg])
        ctx.node("Erf", [arg], [inner])
    else:  # tanh(sqrt(2/pi) (x + 0.044715 x^3))
        sq, cube, cubek, s = (ctx.fresh(n) for n in ("sq", "cube", "cube_k", "sum"))
        ctx.node("Mul", [x, x], [sq])
        ctx.node("Mul", [sq, x], [cube])
        ctx.node("Mul", [cube, ctx.scalar_like(0.044715, x)], [cubek])
        ctx.node("Add", [x, cubek], [s])
        ctx.node("Mul", [s, ctx.scalar_like(math.sqrt(2 / math.pi), x)], [arg])
        ctx.node("Tanh", [arg], [inner])
    ctx.node("Add", [inner, ctx.scalar_like(1.0, x)], [one])
    ctx.node("Mul", [x, ctx.scalar_like(0.5, x)], [half])
    ctx.node("Mul", [half, one], outs)


@_emits(_pw.Round)
def _round_away(ctx, op, ins, outs):  # halves away from zero: sign(x) * floor(|x| + 0.5)
    x = ins[0]
    a, f, s = ctx.fresh("abs"), ctx.fresh("floor"), ctx.fresh("sign")
    h = ctx.fresh("half")
    ctx.node("Abs", [x], [a])
    ctx.node("Add", [a, ctx.scalar_like(0.5, x)], [h])
    ctx.node("Floor", [h], [f])
    ctx.node("Sign", [x], [s])
    ctx.node("Mul", [s, f], outs)


@_emits(_m.Clip)
def _clip(ctx, op, ins, outs):
    lo, hi = op.params
    ctx.node("Clip", [ins[0], ctx.scalar_like(lo, ins[0]), ctx.scalar_like(hi, ins[0])], outs)


def _scalar_op(op_type: str, scalar_first: bool) -> Emitter:
    def emit(ctx, op, ins, outs):
        c = ctx.scalar_like(op.params[0], ins[0])
        ctx.node(op_type, [c, ins[0]] if scalar_first else [ins[0], c], outs)
    return emit


_EMIT[_m.AddScalar] = _scalar_op("Add", False)
_EMIT[_m.MulScalar] = _scalar_op("Mul", False)
_EMIT[_m.DivScalar] = _scalar_op("Div", False)
_EMIT[_m.PowScalar] = _scalar_op("Pow", False)
_EMIT[_m.RSubScalar] = _scalar_op("Sub", True)
_EMIT[_m.RDivScalar] = _scalar_op("Div", True)
_EMIT[_m.RPowScalar] = _scalar_op("Pow", True)


# ---- comparisons and logic: ONNX computes them on booleans; minisinga's give 0/1 floats ----

def _compare(op_type: str, logical: bool) -> Emitter:
    def emit(ctx, op, ins, outs):
        args = [ctx.to_bool(i) for i in ins] if logical else ins
        b = ctx.fresh("bool")
        ctx.node(op_type, args, [b])
        ctx.cast_from_bool(b, outs[0])
    return emit


for _cls, _name, _logical in [(_m.Less, "Less", False), (_m.Greater, "Greater", False),
                              (_m.Equal, "Equal", False), (_m.And, "And", True),
                              (_m.Or, "Or", True), (_m.Xor, "Xor", True),
                              (_m.Not, "Not", True)]:
    _EMIT[_cls] = _compare(_name, _logical)


# ---- matrices and reductions ----

@_emits(_m.Gemm)
def _gemm(ctx, op, ins, outs):
    ctx.node("Gemm", ins, outs, alpha=op.alpha, beta=op.beta, transA=int(op.transA),
             transB=int(op.transB))


@_emits(_m.AddBias)
def _add_bias(ctx, op, ins, outs):
    b = ins[1]
    if op.axis != 0:  # a column vector: b (N,) -> (N, 1)
        b = ctx.fresh("bias")
        ctx.node("Unsqueeze", [ins[1], ctx.ints([1])], [b])
    ctx.node("Add", [ins[0], b], outs)


def _axes(op, ctx, x: str) -> List[int]:
    nd = len(ctx.shapes[x])
    return _m._norm_axes(op.axes, nd)


@_emits(_m.ReduceSum)
def _reduce_sum(ctx, op, ins, outs):
    ctx.node("ReduceSum", [ins[0], ctx.ints(_axes(op, ctx, ins[0]))], outs,
             keepdims=int(op.keepdims))


def _reduce(op_type: str) -> Emitter:
    def emit(ctx, op, ins, outs):
        ctx.node(op_type, ins, outs, axes=_axes(op, ctx, ins[0]), keepdims=int(op.keepdims))
    return emit


_EMIT[_m.ReduceMean] = _reduce("ReduceMean")
_EMIT[_m.ReduceMax] = _reduce("ReduceMax")
_EMIT[_m.ReduceMin] = _reduce("ReduceMin")


# ---- neural-network ops ----

@_emits(_nn._Conv2d)
def _conv(ctx, op, ins, outs):
    t, b, lf, r = op.padding
    kernel = list(ctx.shapes[ins[1]][2:])
    ctx.node("Conv", ins, outs, kernel_shape=kernel, strides=list(op.stride),
             pads=[t, lf, b, r], dilations=list(op.dilation), group=op.groups)


@_emits(_nn._BatchNorm2d)
def _batchnorm(ctx, op, ins, outs):
    y = outs[0]
    fused = len(ins) > 3 or op.relu
    bn = ctx.fresh("bn") if fused else y
    ctx.node("BatchNormalization",
             [ins[0], ins[1], ins[2], ctx.leaf(op.running_mean), ctx.leaf(op.running_var)],
             [bn], epsilon=op.eps, momentum=1.0 - op.momentum)
    if len(ins) > 3:  # the fused residual
        s = ctx.fresh("residual") if op.relu else y
        ctx.node("Add", [bn, ins[3]], [s])
        bn = s
    if op.relu:
        ctx.node("Relu", [bn], [y])


@_emits(_nn._Pooling2d)
def _pool(ctx, op, ins, outs):
    t, b, lf, r = op.padding
    attrs = dict(kernel_shape=list(op.kernel), strides=list(op.stride), pads=[t, lf, b, r])
    if op.is_max:
        ctx.node("MaxPool", ins, outs, **attrs)
    else:
        ctx.node("AveragePool", ins, outs, count_include_pad=int(op.count_include_pad),
                 **attrs)


@_emits(_nn.LSTMCell)
def _lstm_cell(ctx, op, ins, outs):  # the fused cell as ONNX's elementwise ops
    z = ins[0]
    H = ctx.shapes[z][1] // 4
    i, f, g, o = (ctx.fresh(n) for n in ("zi", "zf", "zg", "zo"))
    ctx.node("Split", [z, ctx.ints([H] * 4)], [i, f, g, o], axis=1)
    si, sf, tg, so = (ctx.fresh(n) for n in ("i", "f", "g", "o"))
    ctx.node("Sigmoid", [i], [si])
    ctx.node("Sigmoid", [f], [sf])
    ctx.node("Tanh", [g], [tg])
    ctx.node("Sigmoid", [o], [so])
    h, c = outs
    if len(ins) == 1:  # no c0: c = i * g
        ctx.node("Mul", [si, tg], [c])
    else:
        ig, fc = ctx.fresh("ig"), ctx.fresh("fc")
        ctx.node("Mul", [si, tg], [ig])
        ctx.node("Mul", [sf, ins[1]], [fc])
        ctx.node("Add", [fc, ig], [c])
    tc = ctx.fresh("tanh_c")
    ctx.node("Tanh", [c], [tc])
    ctx.node("Mul", [so, tc], [h])


@_emits(_nn.GRUCell)
def _gru_cell(ctx, op, ins, outs):  # the fused cell as ONNX's elementwise ops
    gx, gh, h = ins
    H = ctx.shapes[h][1]
    xs = [ctx.fresh(n) for n in ("xr", "xz", "xn")]
    hs = [ctx.fresh(n) for n in ("hr", "hz", "hn")]
    ctx.node("Split", [gx, ctx.ints([H] * 3)], xs, axis=1)
    ctx.node("Split", [gh, ctx.ints([H] * 3)], hs, axis=1)
    pr, pz, r, z, rh, pn, n, d, zd = (ctx.fresh(v) for v in (
        "pre_r", "pre_z", "r", "z", "r_hn", "pre_n", "n", "h_minus_n", "z_d"))
    ctx.node("Add", [xs[0], hs[0]], [pr])
    ctx.node("Sigmoid", [pr], [r])
    ctx.node("Add", [xs[1], hs[1]], [pz])
    ctx.node("Sigmoid", [pz], [z])
    ctx.node("Mul", [r, hs[2]], [rh])
    ctx.node("Add", [xs[2], rh], [pn])
    ctx.node("Tanh", [pn], [n])
    ctx.node("Sub", [h, n], [d])  # h' = n + z (h - n)
    ctx.node("Mul", [z, d], [zd])
    ctx.node("Add", [n, zd], outs)


@_emits(_nn.Dropout)
def _dropout(ctx, op, ins, outs):
    ctx.node("Dropout", [ins[0], ctx.const(np.float32(op.ratio), stem="ratio")], outs)


@_emits(_nn.SoftMax)
def _softmax(ctx, op, ins, outs):
    ctx.node("Softmax", ins, outs, axis=op.axis)


@_emits(_nn.LogSoftMax)
def _log_softmax(ctx, op, ins, outs):
    ctx.node("LogSoftmax", ins, outs, axis=op.axis)


# ---- layout ----

@_emits(_ly.Reshape)
def _reshape(ctx, op, ins, outs):
    target, dyn = list(ctx.shapes[outs[0]]), ctx.batch_dims(outs[0])
    if len(dyn) > 1:
        raise ValueError(f"sonnx: dynamic_batch: reshape to {tuple(target)} has several dims "
                         "that change with the batch")
    if dyn:  # 0 copies the input's dim where it is that one, else -1 infers it
        i, x = dyn[0], ins[0]
        same = i < len(ctx.shapes[x]) and ctx.shapes[x][i] == target[i] and \
            ctx.shapes2[x][i] == ctx.shapes2[outs[0]][i]
        if 0 in target:
            raise ValueError("sonnx: dynamic_batch: a reshape to a size-0 dim")
        target[i] = 0 if same else -1
    ctx.node("Reshape", [ins[0], ctx.ints(target)], outs)


@_emits(_ly.Flatten)
def _flatten(ctx, op, ins, outs):
    ctx.node("Flatten", ins, outs, axis=op.axis)


@_emits(_ly.Transpose)
def _transpose(ctx, op, ins, outs):
    nd = len(ctx.shapes[ins[0]])
    perm = list(range(nd))[::-1] if op.perm is None else [p % nd for p in op.perm]
    ctx.node("Transpose", ins, outs, perm=perm)


@_emits(_ly.Concat)
def _concat(ctx, op, ins, outs):
    ctx.node("Concat", ins, outs, axis=op.axis)


@_emits(_ly.Split)
def _split(ctx, op, ins, outs):
    axis = op.axis % len(ctx.shapes[ins[0]])
    if axis in ctx.batch_dims(ins[0]):
        raise ValueError("sonnx: dynamic_batch: a split along the batch axis")
    ctx.node("Split", [ins[0], ctx.ints([ctx.shapes[o][axis] for o in outs])], outs,
             axis=axis)


@_emits(_ly.Slice)
def _slice(ctx, op, ins, outs):
    nd = len(ctx.shapes[ins[0]])
    axes = list(range(len(op.starts))) if op.axes is None else op.axes
    steps = [1] * len(op.starts) if op.steps is None else op.steps
    big = np.iinfo(np.int64).max
    ends = [min(int(e), big) for e in op.ends]
    ctx.node("Slice", [ins[0], ctx.ints(op.starts), ctx.ints(ends),
                       ctx.ints([a % nd for a in axes]), ctx.ints(steps)], outs)


@_emits(_ly.Squeeze, _ly.Unsqueeze)
def _squeeze(ctx, op, ins, outs):
    # The output shape decides which axes went or came (Squeeze with no axis, None or [],
    # drops every 1: those axes are written, as ONNX reads empty axes as "squeeze nothing").
    src, dst = ctx.shapes[ins[0]], ctx.shapes[outs[0]]
    if isinstance(op, _ly.Squeeze):
        axes = [i for i, d in enumerate(src) if d == 1]
        if op.axis is not None and len(op.axis):
            axes = [a % len(src) for a in op.axis]
        ctx.node("Squeeze", [ins[0], ctx.ints(axes)], outs)
    else:
        axes = sorted(a % len(dst) for a in op.axis)
        ctx.node("Unsqueeze", [ins[0], ctx.ints(axes)], outs)


@_emits(_ly.Cast)
def _cast(ctx, op, ins, outs):
    ctx.node("Cast", ins, outs, to=_ONNX_DTYPE[op.dtype])


@_emits(_ly.Tile)
def _tile(ctx, op, ins, outs):
    nd = len(ctx.shapes[ins[0]])
    reps = list(op.repeats)
    reps = [1] * (nd - len(reps)) + reps if len(reps) < nd else reps
    x = ins[0]
    if len(reps) > nd:  # numpy.tile promotes x with leading 1s first
        x = ctx.fresh("promoted")
        ctx.node("Unsqueeze", [ins[0], ctx.ints(range(len(reps) - nd))], [x])
    ctx.node("Tile", [x, ctx.ints(reps)], outs)


@_emits(_ly.Expand)
def _expand(ctx, op, ins, outs):
    target, x = list(ctx.shapes[outs[0]]), ins[0]
    lead = len(target) - len(ctx.shapes[x])
    for i in ctx.batch_dims(outs[0]):  # kept from x (1 in the target) where x has that dim
        if i < lead or i - lead not in ctx.batch_dims(x):
            raise ValueError("sonnx: dynamic_batch: expand to a batch-sized dim that the "
                             "input does not have")
        target[i] = 1
    ctx.node("Expand", [x, ctx.ints(target)], outs)


@_emits(_ly.UpSample)
def _upsample(ctx, op, ins, outs):
    scales = ctx.const(np.asarray(op.scales, dtype=np.float32), stem="scales")
    ctx.node("Resize", [ins[0], "", scales], outs, mode="nearest",
             coordinate_transformation_mode="asymmetric", nearest_mode="floor")


@_emits(_ly.Pad)
def _pad(ctx, op, ins, outs):
    args = [ins[0], ctx.ints(op.pads)]
    if op.mode == "constant":
        args.append(ctx.scalar_like(op.constant, ins[0]))
    ctx.node("Pad", args, outs, mode=op.mode)


@_emits(_ly.DepthToSpace)
def _d2s(ctx, op, ins, outs):
    ctx.node("DepthToSpace", ins, outs, blocksize=op.blocksize, mode=op.mode)


@_emits(_ly.SpaceToDepth)
def _s2d(ctx, op, ins, outs):
    if op.mode != "DCR":
        raise NotImplementedError("sonnx: ONNX SpaceToDepth has only the DCR order; got mode "
                                  f"{op.mode!r}")
    ctx.node("SpaceToDepth", ins, outs, blocksize=op.blocksize)


# ---- indexing (tensor-valued attributes are graph values when traced, else constants) ----

def _attr_value(ctx, t, dtype) -> str:
    if isinstance(t, Tensor):
        return ctx.value(t)
    return ctx.const(np.asarray(t, dtype=dtype))


@_emits(_ix.Embedding)
def _embedding(ctx, op, ins, outs):
    idx = ins[0]
    if ctx.dtypes[idx] != tensor.int32:
        idx = ctx.fresh("indices")
        ctx.node("Cast", [ins[0]], [idx], to=TensorProto.INT32)
    ctx.node("Gather", [ins[1], idx], outs, axis=0)


@_emits(_ix.Gather)
def _gather(ctx, op, ins, outs):
    idx = _attr_value(ctx, op.idx if op.idx is not None else op.host_idx, np.int32)
    ctx.node("Gather", [ins[0], idx], outs, axis=op.axis)


@_emits(_ix.Where)
def _where(ctx, op, ins, outs):
    cond = _attr_value(ctx, op.condition, np.float32)
    ctx.node("Where", [ctx.to_bool(cond), ins[0], ins[1]], outs)


@_emits(_ix.OneHot)
def _onehot(ctx, op, ins, outs):
    vals = ctx.const(np.asarray([op.off, op.on], dtype=np.float32), stem="values")
    idx = ctx.fresh("indices")  # int64 (onnxruntime's kernel); float indices truncate
    ctx.node("Cast", [ins[0]], [idx], to=TensorProto.INT64)
    ctx.node("OneHot", [idx, ctx.ints([op.depth]), vals], outs, axis=op.axis)


@_emits(_ix.ScatterElements)
def _scatter(ctx, op, ins, outs):
    idx = _attr_value(ctx, op.indices if op.indices is not None else op.host_indices,
                      np.int32)
    upd = ins[1] if len(ins) > 1 else _attr_value(ctx, op.updates, _np_dtype(ctx.dtypes[ins[0]]))
    ctx.node("ScatterElements", [ins[0], idx, upd], outs, axis=op.axis)


@_emits(_ix.NonZero)
def _nonzero(ctx, op, ins, outs):
    i64 = ctx.fresh("nonzero")
    ctx.node("NonZero", ins, [i64])
    ctx.node("Cast", [i64], outs, to=_ONNX_DTYPE[ctx.dtypes[outs[0]]])


def _unsupported(op) -> NotImplementedError:
    known = sorted(c.__name__ for c in _EMIT)
    return NotImplementedError(
        f"sonnx: cannot export operator {type(op).__name__} ({op.name}): it has no ONNX "
        f"translation here (losses are not exported; export the model's forward). Exported "
        f"operators: {', '.join(known)}")


# ---- graph assembly ----

class _Graph(_Ctx):
    """A _Ctx that also names graph values (inputs, op outputs) by key."""

    def __init__(self, inputs: Sequence[Tensor], input_names, other=None):
        super().__init__()
        self.other = other
        self.values: Dict[object, str] = {}
        self.input_infos = []
        for i, x in enumerate(inputs):
            if not isinstance(x, Tensor):
                raise TypeError(f"sonnx: inputs must be Tensors, got {type(x).__name__} at "
                                f"position {i}")
            name = input_names[i] if input_names else f"input_{i}"
            self.values[("t", id(x))] = name
            self.dtypes[name] = x.dtype
            self._shape(name, x)
            self.input_infos.append(helper.make_tensor_value_info(
                name, _ONNX_DTYPE[x.dtype], self.dims(name)))
        self.inputs = list(inputs)

    def value(self, t: Tensor) -> str:
        """The name of tensor t: a graph input, a traced op's output, or a new initializer."""
        return self.values.get(("t", id(t))) or self.leaf(t)

    def define(self, key, meta, t: Optional[Tensor] = None) -> str:
        """A new value for `key`: (shape, dtype) `meta`, the traced tensor `t` if any."""
        name = self.fresh("v")
        self.values[key] = name
        self.dtypes[name], self.shapes[name] = meta[1], tuple(meta[0])
        self.shapes2[name] = self.shapes[name]
        if t is not None:
            self._shape(name, t)
        return name

    def emit(self, op: Operator, ins: List[str], outs: List[str]) -> None:
        # by class, then its bases (SINGA's Negative is a Neg)
        fn = next((_EMIT[c] for c in type(op).__mro__ if c in _EMIT), None)
        if fn is None:
            raise _unsupported(op)
        fn(self, op, ins, outs)

    def model(self, outputs: List[str], output_names, model_name: str) -> onnx.ModelProto:
        used = {i for n in self.nodes for i in n.input} | set(outputs)
        for i, x in enumerate(self.inputs):
            if self.values[("t", id(x))] not in used:
                raise ValueError(
                    f"sonnx: input {i} (shape {tuple(x.shape)}) does not reach the outputs "
                    "through recorded operators; with to_onnx, run the forward with "
                    "autograd.training = True on inputs with requires_grad=True, or use "
                    "sonnx.export(model, inputs)")
        # Rename the outputs: an Identity where an output is also an input or repeated.
        out_infos, final = [], []
        for i, v in enumerate(outputs):
            name = output_names[i] if output_names else f"output_{i}"
            self.node("Identity", [v], [name])
            out_infos.append(helper.make_tensor_value_info(
                name, _ONNX_DTYPE[self.dtypes[v]], self.dims(v)))
            final.append(name)
        graph = helper.make_graph(self.nodes, model_name, self.input_infos, out_infos,
                                  initializer=self.inits)
        m = helper.make_model(graph, producer_name="minisinga.sonnx",
                              opset_imports=[helper.make_opsetid("", OPSET)])
        onnx.checker.check_model(m)
        return m


def _as_list(v, what: str) -> list:
    if isinstance(v, Tensor):
        return [v]
    if isinstance(v, (list, tuple)) and all(isinstance(t, Tensor) for t in v):
        return list(v)
    raise TypeError(f"sonnx: {what} must be a Tensor or a list of Tensors, got {v!r}")


def to_onnx(inputs, y, model_name: str = "sonnx", input_names: Optional[Sequence[str]] = None,
            output_names: Optional[Sequence[str]] = None) -> onnx.ModelProto:
    """SINGA's export: the ONNX model computing `y` (a Tensor or a list) from `inputs` (a list
    of Tensors), from the creators that the forward run with `autograd.training = True`
    recorded. Parameters and other leaf tensors become initializers (parameters keep their
    `name` where they have one). Batch norm is exported with its running statistics."""
    inputs, ys = _as_list(inputs, "inputs"), _as_list(y, "y")
    g = _Graph(inputs, input_names)
    order = _creator_order(ys)
    for op in order:
        ins = []
        for creator, idx, x in op.src:
            if creator is not None:
                ins.append(g.values[("op", id(creator), idx)])
            elif x is not None:
                ins.append(g.value(x))
            else:
                raise ValueError(f"sonnx: an input of {op.name} was not kept (its graph was "
                                 "back-propagated with retain_graph=False); run the forward "
                                 "again")
        outs = [g.define(("op", id(op), i), m) for i, m in enumerate(op._out_meta)]
        g.emit(op, ins, outs)
    outs = [g.values[("op", id(t.creator), getattr(t, "_out_idx", 0))] if t.creator is not None
            else g.value(t) for t in ys]
    return g.model(outs, output_names, model_name)


def _creator_order(ys: List[Tensor]) -> List[Operator]:
    """Every operator that the ys' creators reach, each after those feeding it."""
    order, done = [], set()
    for y in ys:
        if y.creator is None:
            continue
        stack = [(y.creator, False)]
        while stack:
            op, expanded = stack.pop()
            if id(op) in done:
                continue
            if expanded:
                done.add(id(op))
                order.append(op)
                continue
            if getattr(op, "_released", False):
                raise ValueError(f"sonnx: {op.name} was back-propagated with "
                                 "retain_graph=False; run the forward again before to_onnx")
            stack.append((op, True))
            for creator, _, _ in reversed(op.src):
                if creator is not None and id(creator) not in done:
                    stack.append((creator, False))
    return order


def export(model, inputs, path: Optional[str] = None, model_name: Optional[str] = None,
           input_names: Optional[Sequence[str]] = None,
           output_names: Optional[Sequence[str]] = None,
           dynamic_batch: bool = False) -> onnx.ModelProto:
    """Traces one inference forward of `model` (a Model or Layer, whose `forward` is called,
    or any function of Tensors) on `inputs` and returns it as an ONNX model, also written to
    `path` when given. Initializers take the model's state names (`conv1.W`); results that
    depend on neither the inputs nor the parameters are stored as constants.

    Shapes are those of `inputs`, unless `dynamic_batch`: then the forward is traced again with
    one more sample in every input, the dims that change are the symbolic 'batch' (inputs'
    first dims, and whatever follows them), and the two traces must give the same graph, else
    a ValueError names what depends on the batch size (a constant of the batch's shape, a
    reshape merging the batch with another dim, ...)."""
    inputs = _as_list(inputs, "inputs")
    fn, names = model, {}
    if hasattr(model, "get_states"):
        names = {id(t): n for n, t in model.get_states().items()}
        fn = model.forward if hasattr(model, "train_one_batch") else model
    first = _trace(fn, inputs)
    if not dynamic_batch:
        g = _build(first, inputs, names, input_names, None)
    else:
        inputs2 = [_one_more(x) for x in inputs]
        second = _trace(fn, inputs2)
        shapes1, shapes2 = _pair(first, second, inputs, inputs2)
        g = _build(first, inputs, names, input_names, shapes2)
        g2 = _build(second, inputs2, names, input_names, shapes1)
        _same_graph(g, g2)
    return _finish(g, g.final, output_names, model_name or type(model).__name__, path)


def _trace(fn, inputs):
    """(operators called as (op, inputs, outputs), results) of fn(*inputs), not training."""
    old = autograd.is_training()
    autograd.set_training(False)
    try:
        with autograd.tracing() as trace:
            ys = fn(*inputs)
    finally:
        autograd.set_training(old)
    return trace, _as_list(ys, "the forward's result")


def _build(traced, inputs, names, input_names, other) -> _Graph:
    """The graph of a trace; `other`: the other trace's shape of each tensor, by id."""
    trace, ys = traced
    g = _Graph(inputs, input_names, other)
    g.param_names = names
    live = {("t", id(x)) for x in inputs} | {("t", i) for i in names}
    for op, xs, outs in trace:
        if not (any(("t", id(x)) in live or x.stores_grad for x in xs)
                or _reads_live(op, live)):
            continue  # a constant: its outputs become initializers where used
        ins = [g.value(x) for x in xs]
        outs_named = [g.define(("t", id(t)), (t.shape, t.dtype), t) for t in outs]
        live.update(("t", id(t)) for t in outs)
        g.emit(op, ins, outs_named)
    g.final = [g.value(t) for t in ys]
    return g


def _one_more(x: Tensor) -> Tensor:
    """x with its first sample repeated at the end: the batch size plus one."""
    a = x.to_numpy()
    if a.ndim == 0 or a.shape[0] == 0:
        raise ValueError(f"sonnx: dynamic_batch needs inputs with a batch dim, got shape "
                         f"{a.shape}")
    return tensor.from_numpy(np.concatenate([a, a[:1]]), x.device)


def _pair(first, second, inputs, inputs2):
    """The shape in the other trace of every tensor of each trace (by id), the traces'
    operators matched one to one."""
    (t1, y1), (t2, y2) = first, second
    kinds = [type(op).__name__ for op, _, _ in t1]
    if kinds != [type(op).__name__ for op, _, _ in t2] or len(y1) != len(y2):
        raise ValueError("sonnx: dynamic_batch: the forward calls other operators at another "
                         "batch size")
    s1, s2 = {}, {}
    pairs = list(zip(inputs, inputs2)) + list(zip(y1, y2))
    for (op1, xs1, o1), (op2, xs2, o2) in zip(t1, t2):
        pairs += list(zip(xs1, xs2)) + list(zip(o1, o2))
        for attr in _TENSOR_ATTRS:
            a, b = getattr(op1, attr, None), getattr(op2, attr, None)
            if isinstance(a, Tensor) and isinstance(b, Tensor):
                pairs.append((a, b))
    for a, b in pairs:
        s2[id(a)], s1[id(b)] = tuple(b.shape), tuple(a.shape)
    return s1, s2


def _same_graph(g: _Graph, g2: _Graph) -> None:
    """Refuses a dynamic batch unless both traces gave the same nodes and constants."""
    if len(g.nodes) != len(g2.nodes):
        raise ValueError("sonnx: dynamic_batch: the graphs at two batch sizes differ")
    for a, b in zip(g.nodes, g2.nodes):
        if a != b:
            raise ValueError(f"sonnx: dynamic_batch: node {a.name} ({a.op_type}) differs at "
                             "another batch size (an attribute or a shape there depends on the "
                             "batch)")
    consts2 = {t.name: t for t in g2.inits}
    for t in g.inits:
        other = consts2.get(t.name)
        if other is None or not np.array_equal(numpy_helper.to_array(t),
                                                numpy_helper.to_array(other)):
            user = next((n for n in g.nodes if t.name in n.input), None)
            where = "" if user is None else f" of node {user.name} ({user.op_type})"
            raise ValueError(f"sonnx: dynamic_batch: the constant {t.name}{where} (shape "
                             f"{tuple(t.dims)}) changes with the batch size (a tensor made in "
                             "the forward from the batch's shape, or an argument computed from "
                             "it); make it from the input instead, or export with a fixed "
                             "batch")


# Operator attributes that may hold a Tensor the op reads (gather's indices, where's condition).
_TENSOR_ATTRS = ("idx", "condition", "indices", "updates")


def _reads_live(op, live) -> bool:
    """Whether a tensor-valued attribute (gather indices, where's condition) is live."""
    for attr in _TENSOR_ATTRS:
        t = getattr(op, attr, None)
        if isinstance(t, Tensor) and ("t", id(t)) in live:
            return True
    return False


def _finish(g: _Graph, outs, output_names, model_name, path):
    m = g.model(outs, output_names, model_name)
    if path is not None:  # written whole or not at all
        tmp = f"{path}.tmp{os.getpid()}"
        try:
            onnx.save(m, tmp)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
    return m


class SingaFrontend:
    """SINGA's class name for the exporter."""

    singa_to_onnx_model = staticmethod(to_onnx)
    _target_opset_version = OPSET
