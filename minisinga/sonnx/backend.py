"""ONNX import: run an ONNX graph with minisinga's operators (SINGA's `sonnx` backend API).

`prepare(model, device)` checks the model and turns every node into a handler once; the
returned `SingaRep` runs the graph on numpy arrays or Tensors. `SONNXModel` is a `Model` built
from a graph: its weights are parameters, so it trains, records graphs and saves states like
any Model. Opsets 11 to 21 of the default domain are read (attributes that later opsets turned
into inputs are taken in both forms).

Values during a run are either known on the host (numpy: initializers, Constant nodes, shapes
and what shape-like ops compute from them, graph inputs that some node reads as a shape or
axes) or device Tensors. Arguments an operator needs as Python values (a Reshape's shape, a
Slice's starts, ...) must be host-known: a device value there is an error, never read back.
Host values become Tensors only where an operator consumes one: those that cannot change
between runs (initializers, Constant nodes and what is computed from them only) once per rep
(cached, created outside any graph recording so a recorded step does not copy them from the
host); others (graph inputs kept on the host, what is computed from them) at every run, unless
small and equal to the previous run's values.

Types: minisinga tensors are float32, float16 or int32. Integer values become int32 tensors;
float64 becomes float32; booleans are float32 0/1, as minisinga's comparisons return them.
Numpy results are converted back to the ONNX type of the value (bool, int64, ...).
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import onnx
from onnx import helper, numpy_helper
from onnx.backend.base import Backend, BackendRep

from .. import _core, autograd, model, tensor
from .. import device as _device
from ..tensor import Tensor

MIN_OPSET, MAX_OPSET = 11, 21
_SMALL = 1 << 16  # host values up to this many elements are compared to reuse their tensor


# ---------------------------------------------------------------------------------------------
# Nodes, their attributes, and the handler registry
# ---------------------------------------------------------------------------------------------

class _Node:
    """A NodeProto with its attributes decoded; records which attributes a handler read, so an
    attribute no handler knows is refused rather than ignored."""

    def __init__(self, proto: onnx.NodeProto, opset: int, label: str):
        self.proto, self.opset, self.label = proto, opset, label
        self.op_type = proto.op_type
        self.attrs = {a.name: a for a in proto.attribute}
        self._read = set()

    def get(self, name: str, default=None):
        self._read.add(name)
        if name not in self.attrs:
            return default
        v = helper.get_attribute_value(self.attrs[name])
        if isinstance(v, bytes):
            return v.decode()
        if isinstance(v, onnx.TensorProto):
            return numpy_helper.to_array(v)
        if isinstance(v, list) and v and isinstance(v[0], bytes):
            return [s.decode() for s in v]
        return v

    def unread(self) -> List[str]:
        return sorted(set(self.attrs) - self._read)

    def outputs_used(self) -> int:
        """How many outputs the graph names (trailing empty names do not count)."""
        return len([o for o in self.proto.output if o])


# op_type -> (argument kinds, factory). A factory reads the node's attributes (ValueError for
# values we cannot compute) and returns a function of the inputs. Argument kinds, one letter per
# input (the last letter repeats for further inputs): "t" a Tensor (a host value is made one),
# "h" a host numpy array (a device value is an error), "a" as it is, "p" a host array when it
# holds one element, else a Tensor; "s" a Tensor that the op updates in place while training
# (batch norm's running statistics): a host value is then a new Tensor, not the rep's constant.
_DEVICE: Dict[str, Tuple[str, Callable]] = {}
# op_type -> factory of a numpy implementation, used when every input is known on the host.
_HOST: Dict[str, Callable] = {}


def _op(*op_types: str, sig: str = "t"):
    def register(factory):
        for t in op_types:
            _DEVICE[t] = (sig, factory)
        return factory
    return register


def _host(*op_types: str):
    def register(factory):
        for t in op_types:
            _HOST[t] = factory
        return factory
    return register


def supported_ops() -> List[str]:
    """The op types of the default ONNX domain that can be imported."""
    return sorted(set(_DEVICE) | set(_HOST))


class _NodeOp:
    """One node turned into its handlers; calling it maps input values to output values."""

    def __init__(self, proto: onnx.NodeProto, opset: int, label: Optional[str] = None):
        self.proto = proto
        self.label = label or _label(proto)
        t = proto.op_type
        if proto.domain not in ("", "ai.onnx") or t not in set(_DEVICE) | set(_HOST):
            where = "" if proto.domain in ("", "ai.onnx") else f" of domain {proto.domain!r}"
            raise NotImplementedError(
                f"{self.label}: op type {t!r}{where} is not supported by minisinga's ONNX "
                f"import; supported (default domain): {', '.join(supported_ops())}")
        n = _Node(proto, opset, self.label)
        try:
            self.sig, factory = _DEVICE.get(t, ("h", None))
            self.device = factory(n) if factory else None
            self.host = _HOST[t](n) if t in _HOST else None
            bad = n.unread()
            if bad:
                raise ValueError(f"attribute(s) {bad} are not supported")
        except (ValueError, TypeError) as e:
            raise _located(e, self.label) from None

    def kind(self, k: int) -> str:
        return self.sig[min(k, len(self.sig) - 1)]

    def __call__(self, ctx: "_Context", args: Sequence) -> list:
        if self.host is not None and all(a is None or isinstance(a, np.ndarray) for a in args):
            outs = self.host(*args)
            outs = [np.asarray(o) for o in (outs if isinstance(outs, (list, tuple)) else [outs])]
        else:
            if self.device is None:
                k = next(i for i, a in enumerate(args) if isinstance(a, Tensor))
                raise ValueError(f"{self.proto.op_type} is computed on the host only, but input "
                                 f"{k} ({self.proto.input[k]!r}) is a device tensor")
            conv = [ctx.convert(self.kind(k), name, a, k)
                    for k, (name, a) in enumerate(zip(self.proto.input, args))]
            outs = self.device(*conv)
        return list(outs) if isinstance(outs, (list, tuple)) else [outs]


def _label(proto: onnx.NodeProto, index: Optional[int] = None) -> str:
    if proto.name:
        return f"node {proto.name!r} ({proto.op_type})"
    first = proto.output[0] if proto.output else "?"
    at = "" if index is None else f"#{index} "
    return f"node {at}({proto.op_type}, output {first!r})"


def _located(e: Exception, label: str) -> Exception:
    """e with the node's label in front of its message (same exception type)."""
    msg = str(e)
    if msg.startswith(label):
        return e
    try:
        return type(e)(f"{label}: {msg}")
    except Exception:  # an exception type that takes other arguments
        return e


def get_op(node: onnx.NodeProto, opset_version: int = MAX_OPSET) -> _NodeOp:
    """The handler of one node (SINGA's `_onnx_node_to_singa_op`): NotImplementedError for an
    op type that cannot be imported, ValueError for an attribute value that cannot be."""
    return _NodeOp(node, opset_version)


# ---------------------------------------------------------------------------------------------
# Running: values, constants, conversions
# ---------------------------------------------------------------------------------------------

class _Context:
    """The device of a rep and its constant tensors (host values made Tensors), by name.
    `fixed`: the names whose values cannot change between runs (see _Graph.fixed)."""

    def __init__(self, dev, fixed=frozenset()):
        self.dev, self.fixed = dev, fixed
        self._consts: Dict[str, Tuple[np.ndarray, Tensor]] = {}

    def const(self, name: str, arr: np.ndarray) -> Tensor:
        """A Tensor holding host value `arr` (named `name` in the graph). A fixed value's is made
        once; another's is reused while the value is small and equal to the one it was made from
        (compared with a copy: a caller may change its input array in place between runs)."""
        hit = self._consts.get(name)
        fixed = name in self.fixed
        if hit is not None:
            old, t = hit
            if (fixed and old.shape == arr.shape and old.dtype == arr.dtype) or (
                    arr.size <= _SMALL and old.shape == arr.shape and old.dtype == arr.dtype
                    and np.array_equal(old, arr)):
                return t
        t = self._tensor(arr)
        if fixed:
            self._consts[name] = (arr, t)
        elif arr.size <= _SMALL:
            self._consts[name] = (arr.copy(), t)
        return t

    def _tensor(self, arr: np.ndarray) -> Tensor:
        with _device.eager(self.dev):
            return Tensor(data=arr, device=self.dev, requires_grad=False)

    def convert(self, kind: str, name: str, v, k: int):
        if v is None or kind == "a":
            return v
        if isinstance(v, np.ndarray):
            if kind == "p" and v.size == 1:
                return v
            if kind == "s" and autograd.is_training():  # updated in place: not the cached one
                return self._tensor(v)
            return v if kind == "h" else self.const(name, v)
        if kind == "h":
            raise ValueError(
                f"input {k} ({name!r}) must be known on the host (an initializer, a constant, or "
                "computed from shapes), but it is a tensor computed on the device at run time; "
                "minisinga does not read device values back while running a graph")
        return v


def _np_dtype(elem_type: int):
    try:
        return np.dtype(helper.tensor_dtype_to_np_dtype(elem_type))
    except (KeyError, TypeError, ValueError):
        return None


def _shape_of(vi: onnx.ValueInfoProto) -> Optional[list]:
    """A graph input's shape: ints for fixed dims, None for free ones; None if unknown."""
    tt = vi.type.tensor_type
    if not tt.HasField("shape"):
        return None
    return [d.dim_value if d.HasField("dim_value") else None for d in tt.shape.dim]


class _Graph:
    """A checked graph: its inputs, initializers and node handlers, and how to run it."""

    def __init__(self, model_proto: onnx.ModelProto, check: bool = True):
        if check:
            onnx.checker.check_model(model_proto)
        self.opset = _opset_of(model_proto)
        try:
            inferred = onnx.shape_inference.infer_shapes(model_proto)
        except Exception:  # inference is only used for the types of intermediate values
            inferred = model_proto
        g = model_proto.graph
        self.initializers = {t.name: numpy_helper.to_array(t) for t in g.initializer}
        self.inputs = [vi for vi in g.input if vi.name not in self.initializers]
        self.input_names = [vi.name for vi in self.inputs]
        self.output_names = [vi.name for vi in g.output]
        ig = inferred.graph
        self.types = {vi.name: vi.type.tensor_type.elem_type
                      for vi in list(ig.value_info) + list(ig.output) + list(g.output)
                      if vi.type.HasField("tensor_type")}
        self.ops = [_NodeOp(p, self.opset, _label(p, i)) for i, p in enumerate(g.node)]
        # Graph inputs that some node reads as a host value (a shape, axes, ...): numpy values
        # given for them stay on the host.
        self.host_inputs = {name for op in self.ops for k, name in enumerate(op.proto.input)
                            if name in self.input_names and
                            (op.kind(k) == "h" or op.device is None)}
        # Values that cannot change between runs: initializers, and the outputs of nodes that
        # read only such values (Constant nodes read none). Only their tensors are cached.
        fixed = set(self.initializers)
        for op in self.ops:
            if all(not name or name in fixed for name in op.proto.input):
                fixed.update(name for name in op.proto.output if name)
        self.fixed = frozenset(fixed)

    def feeds(self, ctx: _Context, inputs: Sequence) -> Dict[str, object]:
        if len(inputs) != len(self.inputs):
            raise ValueError(f"the graph takes {len(self.inputs)} input(s) "
                             f"{self.input_names}, got {len(inputs)}")
        env = {}
        for k, (vi, x) in enumerate(zip(self.inputs, inputs)):
            if isinstance(x, Tensor):
                if x.device != ctx.dev:
                    x = Tensor(data=x.data, requires_grad=x.requires_grad).to_device(ctx.dev)
            elif isinstance(x, (np.ndarray, np.generic, int, float, bool, list)):
                x = self._as_declared(k, vi, np.asarray(x))
            else:
                raise TypeError(f"input {k} ({vi.name!r}) must be a numpy array or a Tensor, "
                                f"got {type(x).__name__}")
            want = _shape_of(vi)
            if want is not None and (len(want) != len(x.shape) or any(
                    w is not None and w != d for w, d in zip(want, x.shape))):
                shown = tuple("?" if w is None else w for w in want)
                raise ValueError(f"input {k} ({vi.name!r}): expected shape {shown} ('?' is a "
                                 f"free dimension), got {tuple(x.shape)}")
            if isinstance(x, np.ndarray) and vi.name not in self.host_inputs:
                x = Tensor(data=x, device=ctx.dev, requires_grad=False)
            env[vi.name] = x
        return env

    @staticmethod
    def _as_declared(k: int, vi: onnx.ValueInfoProto, x: np.ndarray) -> np.ndarray:
        """x cast to the input's declared type, as SINGA does (uint8 images or int data for a
        float input, float64 for float32, int64 for int32); refused: a non-numeric array and
        a cast that drops the fraction or the magnitude (float to integer, number to bool,
        integers out of the declared type's range)."""
        want = _np_dtype(vi.type.tensor_type.elem_type)
        if want is None or want.kind not in "biuf" or x.dtype == want:
            return x
        ok = x.dtype.kind == "b" or (x.dtype.kind in "iu" and want.kind in "iuf") or (
            x.dtype.kind == "f" and want.kind == "f")
        name = onnx.TensorProto.DataType.Name(vi.type.tensor_type.elem_type)
        if not ok:
            raise TypeError(f"input {k} ({vi.name!r}) is declared {name}, got a numpy array of "
                            f"dtype {x.dtype}, which is not cast to it")
        if want.kind in "iu" and x.size and (x.max() > np.iinfo(want).max or
                                             x.min() < np.iinfo(want).min):
            raise ValueError(f"input {k} ({vi.name!r}) is declared {name}, got {x.dtype} values "
                             f"in [{x.min()}, {x.max()}] that do not fit it")
        return x.astype(want)

    def run(self, ctx: _Context, inputs: Sequence, bound: Dict[str, Tensor],
            last_layers: Optional[int] = None, aux_output: Sequence[str] = ()):
        """Runs the nodes (the first `last_layers` of them, when given). Returns the names and
        values of the graph outputs computed, then of the last node run's outputs when only
        part of the graph ran, then of `aux_output`."""
        env: Dict[str, object] = dict(self.initializers)
        env.update(bound)
        env.update(self.feeds(ctx, inputs))
        ops = self.ops if last_layers is None else self.ops[:last_layers]
        for op in ops:
            args = [env[name] if name else None for name in op.proto.input]
            try:
                outs = op(ctx, args)
            except (ValueError, TypeError, RuntimeError, IndexError) as e:
                raise _located(e, op.label) from None
            if any(op.proto.output[len(outs):]):
                raise ValueError(f"{op.label}: gives {len(outs)} output(s), the graph names "
                                 f"{len(op.proto.output)}")
            env.update((name, v) for name, v in zip(op.proto.output, outs) if name)
        names = [n for n in self.output_names if n in env]
        if ops and len(ops) < len(self.ops):
            names += [n for n in ops[-1].proto.output if n and n not in names]
        for n in aux_output:
            if n not in env:
                raise ValueError(f"aux_output: {n!r} is not a value computed by the graph")
            names.append(n)
        return names, [env[n] for n in names]

    def to_numpy(self, name: str, v) -> np.ndarray:
        arr = v if isinstance(v, np.ndarray) else v.to_numpy()
        dt = _np_dtype(self.types.get(name, 0))
        return arr if dt is None else arr.astype(dt, copy=False)


def _opset_of(m: onnx.ModelProto) -> int:
    versions = [o.version for o in m.opset_import if o.domain in ("", "ai.onnx")]
    if not versions:
        raise ValueError("the model imports no opset of the default ONNX domain")
    v = versions[0]
    if not MIN_OPSET <= v <= MAX_OPSET:
        raise ValueError(f"the model uses opset {v} of the default domain; minisinga imports "
                         f"opsets {MIN_OPSET} to {MAX_OPSET} (convert it with "
                         f"onnx.version_converter.convert_version(model, {MAX_OPSET}))")
    return v


def _load(m) -> onnx.ModelProto:
    if isinstance(m, (str, os.PathLike)):
        return onnx.load(os.fspath(m))
    if isinstance(m, bytes):
        return onnx.load_from_string(m)
    if not isinstance(m, onnx.ModelProto):
        raise TypeError(f"expected an onnx.ModelProto or a path to a .onnx file, got "
                        f"{type(m).__name__}")
    return m


def _get_device(dev):
    if isinstance(dev, _device.Device):
        return dev
    if isinstance(dev, str):
        kind, _, idx = dev.upper().partition(":")
        if kind == "CPU":
            return _device.get_default_device()
        if kind == "CUDA":
            if not _device.cuda_available():
                raise RuntimeError(f"device {dev!r}: minisinga has no CUDA build or sees no GPU; "
                                   "use device='CPU'")
            return _device.create_cuda_gpu_on(int(idx or 0))
    raise ValueError(f"device must be 'CPU', 'CUDA', 'CUDA:<id>' or a minisinga Device, "
                     f"got {dev!r}")


# ---------------------------------------------------------------------------------------------
# Public classes
# ---------------------------------------------------------------------------------------------

class SingaRep(BackendRep):
    """A prepared ONNX model on a device. `run(inputs)` takes the graph inputs (initializers
    excluded) in order: numpy arrays give numpy results in the outputs' ONNX types, run without
    recording gradients; Tensors give Tensors (under the caller's autograd mode)."""

    def __init__(self, model_proto: onnx.ModelProto, dev, check: bool = True):
        super().__init__()
        self._graph = _Graph(model_proto, check)
        self._ctx = _Context(dev, self._graph.fixed)
        self.device = dev

    @property
    def inputs(self) -> List[str]:
        return list(self._graph.input_names)

    @property
    def outputs(self) -> List[str]:
        return list(self._graph.output_names)

    def run(self, inputs, **kwargs) -> list:
        """kwargs: `last_layers=N` runs only the first N nodes (Python slice semantics, so -1
        skips the last) and also returns the outputs of the last node run; `aux_output=(names)`
        also returns those intermediate values. Order: graph outputs computed, last node's
        outputs, aux values."""
        last_layers = kwargs.pop("last_layers", None)
        aux_output = tuple(kwargs.pop("aux_output", ()))
        if kwargs:
            raise TypeError(f"SingaRep.run: unexpected arguments {sorted(kwargs)}")
        if isinstance(inputs, dict):
            missing = [n for n in self._graph.input_names if n not in inputs]
            if missing:
                raise ValueError(f"inputs: no value for {missing}")
            inputs = [inputs[n] for n in self._graph.input_names]
        elif not isinstance(inputs, (list, tuple)):
            inputs = [inputs]
        as_numpy = not any(isinstance(x, Tensor) for x in inputs)
        with autograd.no_grad() if as_numpy else contextlib.nullcontext():
            names, values = self._graph.run(self._ctx, inputs, {}, last_layers, aux_output)
        if as_numpy:
            return [self._graph.to_numpy(n, v) for n, v in zip(names, values)]
        return [v if isinstance(v, Tensor) else self._ctx.const(n, v)
                for n, v in zip(names, values)]


class SingaBackend(Backend):
    """The ONNX backend API over minisinga (`onnx.backend.base.Backend`)."""

    @classmethod
    def prepare(cls, model, device="CPU", **kwargs) -> SingaRep:
        """Checks `model` (a ModelProto, serialized bytes or a path) and makes a SingaRep on
        `device` ('CPU', 'CUDA', 'CUDA:<id>' or a Device)."""
        if kwargs:
            raise TypeError(f"prepare: unexpected arguments {sorted(kwargs)}")
        return SingaRep(_load(model), _get_device(device))

    @classmethod
    def run_node(cls, node, inputs, device="CPU", outputs_info=None, **kwargs) -> list:
        """Runs one NodeProto on numpy inputs (one per non-empty input name, in order) and
        returns its outputs as numpy arrays. kwargs: opset_version (default 21)."""
        opset = kwargs.pop("opset_version", MAX_OPSET)
        if kwargs:
            raise TypeError(f"run_node: unexpected arguments {sorted(kwargs)}")
        names = [n for n in node.input if n]
        inputs = [np.asarray(x) for x in inputs]
        if len(inputs) != len(names):
            raise ValueError(f"{_label(node)}: it takes {len(names)} input(s) {names}, got "
                             f"{len(inputs)}")
        g = helper.make_graph(
            [node], "run_node",
            [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(x.dtype), x.shape)
             for n, x in zip(names, inputs)],
            [helper.make_empty_tensor_value_info(n) for n in node.output if n])
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
        rep = SingaRep(m, _get_device(device), check=False)
        return rep.run(inputs)

    @classmethod
    def supports_device(cls, device: str) -> bool:
        kind = device.upper().partition(":")[0]
        return kind == "CPU" or (kind == "CUDA" and _device.cuda_available())

    @classmethod
    def _onnx_node_to_singa_op(cls, onnx_node, opset_version: int = MAX_OPSET) -> _NodeOp:
        return get_op(onnx_node, opset_version)


prepare = SingaBackend.prepare
run_node = SingaBackend.run_node


def _trainable(g: onnx.GraphProto, inits: Dict[str, np.ndarray]):
    """(parameters, states) among the float initializers: weights of Conv, Gemm, MatMul, PRelu,
    BatchNormalization and LayerNormalization (scale, bias), Gather's table (an embedding),
    and the addend of a MatMul or Gemm
    result (a Linear's bias); states are BatchNormalization's running mean and variance."""
    producer = {o: n.op_type for n in g.node for o in n.output}
    params, states = [], []
    for n in g.node:
        ins, t = list(n.input), n.op_type
        if t in ("Conv", "Gemm", "LayerNormalization"):
            params += ins[1:3] + (ins[:1] if t == "Gemm" else [])
        elif t == "MatMul":
            params += ins[:2]
        elif t == "PRelu":
            params += ins[1:2]
        elif t == "Gather":  # a float table gathered by row: an embedding
            params += ins[:1]
        elif t == "BatchNormalization":
            params += ins[1:3]
            states += ins[3:5]
        elif t == "Add" and len(ins) == 2:
            params += [a for a, b in (ins, ins[::-1]) if producer.get(b) in ("MatMul", "Gemm")]

    def floats(names):
        return list(dict.fromkeys(n for n in names if n in inits and inits[n].dtype.kind == "f"))
    return floats(params), floats(states)


class SONNXModel(model.Model):
    """A Model computing an ONNX graph. `forward(*inputs, aux_output=())` returns the LIST of
    the graph's output Tensors (then the aux values): subclass it and take `[0]`.

    The float initializers used as weights (of Conv, Gemm, MatMul, PRelu, BatchNormalization
    and LayerNormalization, Gather's table, and the addend of a MatMul or Gemm result) are
    parameters and BatchNormalization's running statistics are states, all registered under
    their ONNX initializer names (dots included: `get_params()["conv1.weight"]`); a name that
    is already an attribute of the model gets "_" appended until it is free (`onnx_names`
    maps the registered names to the ONNX ones). Other initializers are constants of the
    graph, not states.
    BatchNormalization trains with batch statistics and updates its running ones; Dropout
    drops while training."""

    def __init__(self, onnx_model, device=None):
        super().__init__()
        m = _load(onnx_model)
        self._graph = _Graph(m)
        self._ctx = _Context(device or _device.get_default_device(), self._graph.fixed)
        params, states = _trainable(m.graph, self._graph.initializers)
        self._bound: Dict[str, Tensor] = {}
        self.onnx_names: Dict[str, str] = {}  # registered name -> ONNX initializer name
        for name in dict.fromkeys(params + states):
            trainable = name in params
            arr = self._graph.initializers[name]  # float64 becomes float32; float16 stays
            t = Tensor(data=arr.astype(np.float32) if arr.dtype == np.float64 else arr,
                       device=self._ctx.dev, requires_grad=trainable, stores_grad=trainable)
            key = name
            while hasattr(self, key):
                key += "_"
            setattr(self, key, t)
            self._bound[name] = t
            self.onnx_names[key] = name

    def on_device(self, device) -> None:
        super().on_device(device)
        self._ctx = _Context(device, self._graph.fixed)

    def forward(self, *inputs, aux_output: Sequence[str] = ()) -> list:
        x = next((a for a in inputs if isinstance(a, Tensor)), None)
        if x is not None and x.device != self._ctx.dev:  # states follow the input's device
            self.on_device(x.device)
        names, values = self._graph.run(self._ctx, inputs, self._bound, None, aux_output)
        return [v if isinstance(v, Tensor) else self._ctx.const(n, v)
                for n, v in zip(names, values)]


# ---------------------------------------------------------------------------------------------
# Handlers. Each factory reads its node's attributes and returns the function of the inputs.
# ---------------------------------------------------------------------------------------------

def _shape(x) -> tuple:
    return tuple(x.shape)


def _ints(v) -> List[int]:
    return [int(a) for a in np.asarray(v).reshape(-1)]


def _scalar(v, default=None):
    return default if v is None or v.size == 0 else v.reshape(-1)[0].item()


def _axes_arg(n: _Node, input_since: int):
    """Axes taken as an attribute before opset `input_since` and as an input from then on:
    returns f(input value or None) -> list of ints or None (not given)."""
    if n.opset < input_since:
        attr = n.get("axes")
        return lambda given=None: None if attr is None else [int(a) for a in attr]
    return lambda given=None: None if given is None else _ints(given)


def _norm_axis(a: int, nd: int) -> int:
    if not -nd <= a < max(nd, 1):
        raise ValueError(f"axis {a} is out of range for {nd} dimensions")
    return a % max(nd, 1)


# ---- constants and shapes (host) ----

@_host("Constant")
def _constant(n):
    for k in ("sparse_value", "value_string", "value_strings"):
        if k in n.attrs:
            raise ValueError(f"a Constant given by {k!r} is not supported")
    v = n.get("value")
    if v is None:
        f, fs, i, is_ = (n.get("value_float"), n.get("value_floats"), n.get("value_int"),
                         n.get("value_ints"))
        v = (np.array(f, np.float32) if f is not None else
             np.array(fs, np.float32) if fs is not None else
             np.array(i, np.int64) if i is not None else np.array(is_, np.int64))
    return lambda: v


@_op("Shape", sig="a")
def _shape_op(n):
    start, end = n.get("start", 0), n.get("end")
    return lambda x: np.array(_shape(x)[start:end], dtype=np.int64)


@_op("Size", sig="a")
def _size(n):
    return lambda x: np.array(int(np.prod(_shape(x), dtype=np.int64)), dtype=np.int64)


@_host("ConstantOfShape")
def _constant_of_shape(n):
    v = n.get("value")
    v = np.zeros(1, np.float32) if v is None else v.reshape(-1)
    return lambda shape: np.full(_ints(shape), v[0], dtype=v.dtype)


@_host("Range")
def _range(n):
    def run(start, limit, delta):
        if delta.item() == 0:
            raise ValueError("delta is 0")
        return np.arange(start.item(), limit.item(), delta.item(), dtype=start.dtype)
    return run


@_host("ReduceProd")
def _reduce_prod(n):
    axes_of, keep, noop = _reduce_args(n)

    def run(x, axes=None):
        ax = axes_of(axes)
        if not ax and noop:
            return x
        return np.prod(x, axis=None if not ax else tuple(ax), keepdims=keep)
    return run


@_op("Identity", sig="a")
def _identity(n):
    return lambda x: x


# ---- elementwise ----

_BINARY = {"Add": (autograd.add, np.add), "Sub": (autograd.sub, np.subtract),
           "Mul": (autograd.mul, np.multiply), "Div": (autograd.div, None)}


@_op(*_BINARY)
def _binary(n):
    return _BINARY[n.op_type][0]


@_host(*_BINARY)
def _binary_host(n):
    if n.op_type != "Div":
        return _BINARY[n.op_type][1]

    def div(a, b):  # integers: truncated towards zero, as ONNX runtimes do
        if a.dtype.kind in "iu":
            q = np.abs(a) // np.abs(b)
            return (np.sign(a) * np.sign(b) * q).astype(np.result_type(a, b))
        return a / b
    return div


@_host("Mod")
def _mod(n):
    return np.fmod if n.get("fmod", 0) else np.mod  # fmod: the dividend's sign, else divisor's


@_op("Pow", sig="tp")
def _pow(n):
    def run(x, y):
        if isinstance(y, np.ndarray):  # one element: x ** scalar, shaped as broadcasting says
            out = autograd.pow(x, float(y.reshape(-1)[0]))
            full = np.broadcast_shapes(_shape(x), y.shape)
            return out if full == _shape(out) else autograd.reshape(out, list(full))
        if y.dtype != x.dtype:
            y = autograd.cast(y, x.dtype)
        return autograd.pow(x, y)
    return run


_VARIADIC = {"Sum": autograd.sum, "Mean": autograd.mean, "Max": autograd.max,
             "Min": autograd.min}


@_op(*_VARIADIC)
def _variadic(n):
    return _VARIADIC[n.op_type]


@_host("Max", "Min")
def _extreme_host(n):
    f = np.maximum if n.op_type == "Max" else np.minimum
    return lambda *xs: functools.reduce(f, xs)


_UNARY = {
    "Neg": autograd.neg, "Abs": autograd.abs, "Exp": autograd.exp, "Log": autograd.log,
    "Sqrt": autograd.sqrt, "Reciprocal": autograd.reciprocal, "Relu": autograd.relu,
    "Sigmoid": autograd.sigmoid, "Tanh": autograd.tanh, "Softplus": autograd.softplus,
    "Softsign": autograd.softsign, "Erf": autograd.erf, "Sin": autograd.sin,
    "Cos": autograd.cos, "Tan": autograd.tan, "Asin": autograd.asin, "Acos": autograd.acos,
    "Atan": autograd.atan, "Sinh": autograd.sinh, "Cosh": autograd.cosh,
    "Asinh": autograd.asinh, "Acosh": autograd.acosh, "Atanh": autograd.atanh,
    "Sign": autograd.sign, "Ceil": autograd.ceil, "Floor": autograd.floor,
    "Round": autograd.rounde,  # ONNX rounds halves to even
}


# Those that shape arithmetic uses (a head size's square root, ...), also on the host.
_UNARY_HOST = {"Neg": np.negative, "Abs": np.abs, "Sign": np.sign, "Ceil": np.ceil,
               "Floor": np.floor, "Sqrt": np.sqrt, "Reciprocal": np.reciprocal}


@_host(*_UNARY_HOST)
def _unary_host(n):
    return _UNARY_HOST[n.op_type]


@_op(*_UNARY)
def _unary(n):
    return _UNARY[n.op_type]


@_op("LeakyRelu")
def _leaky_relu(n):
    a = n.get("alpha", 0.01)
    return lambda x: autograd.leakyrelu(x, a)


@_op("Elu")
def _elu(n):
    a = n.get("alpha", 1.0)
    return lambda x: autograd.elu(x, a)


@_op("Selu")
def _selu(n):
    a, g = n.get("alpha", 1.67326319217681884765625), n.get("gamma", 1.05070102214813232421875)
    return lambda x: autograd.selu(x, a, g)


@_op("HardSigmoid")
def _hard_sigmoid(n):
    a, b = n.get("alpha", 0.2), n.get("beta", 0.5)
    return lambda x: autograd.hardsigmoid(x, a, b)


@_op("HardSwish")
def _hard_swish(n):  # x * hardsigmoid(x) with alpha 1/6, beta 1/2 (MobileNetV3)
    return lambda x: autograd.mul(x, autograd.hardsigmoid(x, 1 / 6, 0.5))


@_op("Mish")
def _mish(n):  # x * tanh(softplus(x))
    return lambda x: autograd.mul(x, autograd.tanh(autograd.softplus(x)))


@_op("Gelu")
def _gelu(n):
    approx = n.get("approximate", "none")
    if approx not in ("none", "tanh"):
        raise ValueError(f"approximate={approx!r} is not supported")
    return lambda x: autograd.gelu(x, approx)


@_op("Clip", sig="thh")
def _clip(n):
    def run(x, lo=None, hi=None):
        lo, hi = _scalar(lo), _scalar(hi)
        if lo is not None and hi is not None and lo > hi:  # ONNX: every value becomes max
            lo = hi
        return autograd.clip(x, lo, hi)
    return run


@_op("PRelu")
def _prelu(n):
    return autograd.prelu


# ---- comparison and logic (device booleans are float32 0/1) ----

def _as_bool(t: Tensor) -> Tensor:
    return t if t.dtype == tensor.float32 else autograd.cast(t, tensor.float32)


_COMPARE = {"Equal": (autograd.equal, np.equal), "Less": (autograd.less, np.less),
            "Greater": (autograd.greater, np.greater),
            "LessOrEqual": (lambda a, b: a <= b, np.less_equal),
            "GreaterOrEqual": (lambda a, b: a >= b, np.greater_equal)}
_LOGIC = {"And": (autograd._and, np.logical_and), "Or": (autograd._or, np.logical_or),
          "Xor": (autograd._xor, np.logical_xor), "Not": (autograd._not, np.logical_not)}


@_op(*_COMPARE)
def _compare(n):
    fn = _COMPARE[n.op_type][0]
    return lambda a, b: _as_bool(fn(a, b))


@_op(*_LOGIC)
def _logic(n):
    return _LOGIC[n.op_type][0]


@_host(*_COMPARE, *_LOGIC)
def _compare_host(n):
    return {**_COMPARE, **_LOGIC}[n.op_type][1]


@_op("Where")
def _where(n):
    return lambda cond, x, y: autograd.where(x, y, cond)


@_host("Where")
def _where_host(n):
    return np.where


# ---- matrix products, convolution, normalisation, pooling ----

@_op("Gemm")
def _gemm(n):
    alpha, beta = n.get("alpha", 1.0), n.get("beta", 1.0)
    ta, tb = n.get("transA", 0), n.get("transB", 0)
    return lambda a, b, c=None: autograd.gemm(a, b, c, alpha, beta, ta, tb)


@_op("MatMul")
def _matmul(n):
    def run(a, b):  # 1-d operands as numpy: a row (a) or a column (b), removed afterwards
        va, vb = a.ndim() == 1, b.ndim() == 1
        y = autograd.matmul(autograd.reshape(a, [1, -1]) if va else a,
                            autograd.reshape(b, [-1, 1]) if vb else b)
        if va or vb:
            rows, cols = y.shape[-2:]
            y = autograd.reshape(y, list(y.shape[:-2]) + ([] if va else [rows]) +
                                 ([] if vb else [cols]))
        return y
    return run


def _spatial_args(n: _Node, what: str):
    """(strides, pads, dilations, auto_pad) of a Conv or pooling node, checked."""
    auto_pad = n.get("auto_pad", "NOTSET")
    if auto_pad not in ("NOTSET", "VALID", "SAME_UPPER", "SAME_LOWER"):
        raise ValueError(f"auto_pad={auto_pad!r} is not supported")
    ks = n.get("kernel_shape")
    if ks is not None and len(ks) not in (1, 2):
        raise ValueError(f"kernel_shape {list(ks)}: only 1-d and 2-d {what} are supported")
    return n.get("strides"), n.get("pads"), n.get("dilations"), auto_pad


def _to_2d(x: Tensor, what: str):
    """x with 1 spatial axis viewed as 2 (N, C, 1, L); (x, was 1-d)."""
    if x.ndim() == 3:
        return autograd.reshape(x, [x.shape[0], x.shape[1], 1, x.shape[2]]), True
    if x.ndim() != 4:
        raise ValueError(f"{what}: expected an input with 1 or 2 spatial axes, got shape "
                         f"{_shape(x)}")
    return x, False


def _pair(v, one_d: bool, default: int) -> tuple:
    if v is None:
        return (default, default)
    v = [int(a) for a in v]
    return (default, v[0]) if one_d else tuple(v)


def _pads4(pads, one_d: bool) -> tuple:
    """ONNX pads (begins, then ends) as minisinga's (top, bottom, left, right)."""
    if pads is None:
        return (0, 0, 0, 0)
    p = [int(a) for a in pads]
    return (0, 0, p[0], p[1]) if one_d else (p[0], p[2], p[1], p[3])


def _pads_for(x4, kernel, stride, dil, pads, auto_pad, one_d):
    if auto_pad == "VALID":
        return (0, 0, 0, 0)
    if auto_pad.startswith("SAME"):
        return autograd.same_padding(x4.shape[2:], kernel, stride, dil, auto_pad)
    return _pads4(pads, one_d)


@_op("Conv")
def _conv(n):
    strides, pads, dils, auto_pad = _spatial_args(n, "convolutions")
    group = n.get("group", 1)
    kernel = n.get("kernel_shape")

    def run(x, w, b=None):
        if kernel is not None and list(kernel) != list(w.shape[2:]):
            raise ValueError(f"kernel_shape {list(kernel)} does not match the weights' spatial "
                             f"shape {list(w.shape[2:])} (W has shape {_shape(w)})")
        x4, one_d = _to_2d(x, "Conv")
        w4 = autograd.reshape(w, [w.shape[0], w.shape[1], 1, w.shape[2]]) if one_d else w
        s, d = _pair(strides, one_d, 1), _pair(dils, one_d, 1)
        p = _pads_for(x4, w4.shape[2:], s, d, pads, auto_pad, one_d)
        y = autograd.conv2d(x4, w4, b, s, p, d, group)
        return autograd.reshape(y, [y.shape[0], y.shape[1], y.shape[3]]) if one_d else y
    return run


@_op("BatchNormalization", sig="ttts")
def _batchnorm(n):
    eps, momentum = n.get("epsilon", 1e-5), n.get("momentum", 0.9)
    if n.get("training_mode", 0):
        raise ValueError("training_mode=1 is not supported (SONNXModel trains batch norm "
                         "itself: export the model in inference mode)")
    if n.outputs_used() > 1:
        raise ValueError("the running-statistics outputs (training mode) are not supported")
    # minisinga's momentum weighs the new batch statistic; ONNX's weighs the running value
    return lambda x, scale, bias, mean, var: autograd.batchnorm_2d(
        x, scale, bias, mean, var, 1.0 - momentum, eps)


@_op("LayerNormalization")
def _layernorm(n):
    axis, eps = n.get("axis", -1), n.get("epsilon", 1e-5)
    n.get("stash_type")  # the precision of the statistics: float32 here in any case

    def run(x, scale, bias=None):
        axes = list(range(_norm_axis(axis, x.ndim()), x.ndim()))
        mean = autograd.reduce_mean(x, axes, True)
        d = autograd.sub(x, mean)
        inv_std = autograd.reciprocal(autograd.sqrt(
            autograd.add(autograd.reduce_mean(autograd.mul(d, d), axes, True), eps)))
        y = autograd.mul(autograd.mul(d, inv_std), scale)
        return (y if bias is None else autograd.add(y, bias)), mean, inv_std
    return run


@_op("MaxPool", "AveragePool")
def _pool(n):
    is_max = n.op_type == "MaxPool"
    strides, pads, dils, auto_pad = _spatial_args(n, "pools")
    kernel = n.get("kernel_shape")
    ceil = n.get("ceil_mode", 0)
    include_pad = bool(n.get("count_include_pad", 0))
    n.get("storage_order")  # only says how the Indices output counts, refused below
    if dils is not None and any(d != 1 for d in dils):
        raise ValueError(f"dilations {list(dils)} are not supported (only 1)")
    if n.outputs_used() > 1:
        raise ValueError("the Indices output is not supported")
    if ceil and (not is_max or auto_pad != "NOTSET"):
        raise ValueError("ceil_mode=1 is supported for MaxPool with explicit pads only")

    def run(x):
        x4, one_d = _to_2d(x, n.op_type)
        k, s = _pair(kernel, one_d, 1), _pair(strides, one_d, 1)
        p = list(_pads_for(x4, k, s, (1, 1), pads, auto_pad, one_d))
        if ceil:  # pad the ends so the last partial window counts (it must start inside)
            for i, size in enumerate(x4.shape[2:]):
                span = size + p[2 * i] + p[2 * i + 1] - k[i]
                out = -(-span // s[i]) + 1
                if (out - 1) * s[i] >= size + p[2 * i]:
                    out -= 1
                p[2 * i + 1] += max(0, (out - 1) * s[i] - span)
        if is_max and k == s == (2, 2) and p[0] == p[2] == 0 and (p[1] or p[3]):
            # the core's 2x2 stride-2 max pool ignores bottom/right padding: pad explicitly
            x4 = autograd.pad(x4, "constant", [0, 0, 0, 0, 0, 0, p[1], p[3]], -math.inf)
            p = [0, 0, 0, 0]
        y = autograd.pooling_2d(x4, k, s, p, is_max, include_pad)
        return autograd.reshape(y, [y.shape[0], y.shape[1], y.shape[3]]) if one_d else y
    return run


@_op("GlobalAveragePool")
def _global_avg(n):
    return autograd.globalaveragepool


@_op("GlobalMaxPool")
def _global_max(n):
    return lambda x: autograd.reduce_max(x, list(range(2, x.ndim())), True)


@_op("Softmax", "LogSoftmax")
def _softmax(n):
    fn = autograd.softmax if n.op_type == "Softmax" else autograd.log_softmax
    axis = n.get("axis", 1 if n.opset < 13 else -1)
    if n.opset >= 13:
        return lambda x: fn(x, axis)

    def run(x):  # before opset 13: over all axes from `axis` on, as one
        a = _norm_axis(axis, x.ndim())
        rows = int(np.prod(x.shape[:a], dtype=np.int64))
        y = fn(autograd.reshape(x, [rows, -1]), 1)
        return autograd.reshape(y, list(x.shape))
    return run


@_op("Dropout", sig="thh")
def _dropout(n):
    ratio_attr = n.get("ratio", 0.5) if n.opset < 12 else None
    mask = n.outputs_used() > 1

    def run(x, ratio=None, training_mode=None):
        if _scalar(training_mode, False):
            raise ValueError("training_mode=True is not supported: dropout follows minisinga's "
                             "training switch (SONNXModel drops while training)")
        r = ratio_attr if n.opset < 12 else _scalar(ratio, 0.5)
        if not mask:
            return autograd.dropout(x, r)
        if autograd.is_training():
            raise ValueError("the mask output is not available while training")
        return x, np.ones(_shape(x), dtype=bool)
    return run


# ---- shape and layout ----

def _reshape_target(shape_in, shape, allowzero: bool) -> List[int]:
    shape = _ints(shape)
    if allowzero and 0 in shape and -1 in shape:
        raise ValueError(f"allowzero=1 with both 0 and -1 in shape {shape}")
    out = list(shape) if allowzero else [shape_in[i] if d == 0 else d
                                         for i, d in enumerate(shape)]
    if out.count(-1) > 1 or min(out, default=0) < -1:
        raise ValueError(f"shape {shape}: at most one -1 and no other negative size")
    if -1 in out:
        known = int(np.prod([d for d in out if d != -1], dtype=np.int64))
        total = int(np.prod(shape_in, dtype=np.int64))
        if known == 0 or total % known:
            raise ValueError(f"cannot reshape {tuple(shape_in)} to {shape}")
        out[out.index(-1)] = total // known
    return out


@_op("Reshape", sig="th")
def _reshape(n):
    allowzero = n.get("allowzero", 0)
    return lambda x, shape: autograd.reshape(x, _reshape_target(_shape(x), shape, allowzero),
                                             allowzero=True)  # the target has no 0 to copy


@_host("Reshape")
def _reshape_host(n):
    allowzero = n.get("allowzero", 0)
    return lambda x, shape: x.reshape(_reshape_target(x.shape, shape, allowzero))


@_op("Flatten")
def _flatten(n):
    axis = n.get("axis", 1)
    return lambda x: autograd.flatten(x, axis)


@_op("Transpose")
def _transpose(n):
    perm = n.get("perm")
    return lambda x: autograd.transpose(x, None if perm is None else list(perm))


@_host("Transpose")
def _transpose_host(n):
    perm = n.get("perm")
    return lambda x: np.transpose(x, None if perm is None else list(perm))


@_host("Flatten")
def _flatten_host(n):
    axis = n.get("axis", 1)

    def run(x):
        a = axis + x.ndim if axis < 0 else axis
        if not 0 <= a <= x.ndim:
            raise ValueError(f"axis {axis} is out of range for {x.ndim} dimensions")
        return x.reshape(int(np.prod(x.shape[:a], dtype=np.int64)), -1)
    return run


@_op("Concat")
def _concat(n):
    axis = n.get("axis")
    return lambda *xs: autograd.concat(list(xs), axis)


@_host("Concat")
def _concat_host(n):
    axis = n.get("axis")
    return lambda *xs: np.concatenate(xs, axis=axis)


def _split_sizes(n: _Node):
    """f(dim, split input or None) -> the piece sizes along the axis."""
    attr = n.get("split") if n.opset < 13 else None
    count = n.get("num_outputs") or len(n.proto.output)

    def sizes(dim: int, given=None) -> List[int]:
        if attr is not None or given is not None:
            return [int(s) for s in (attr if attr is not None else _ints(given))]
        chunk = -(-dim // count)  # equal pieces; the last one smaller if need be (opset 18)
        return [min(chunk, max(dim - i * chunk, 0)) for i in range(count)]
    return sizes


@_op("Split", sig="th")
def _split(n):
    axis, sizes = n.get("axis", 0), _split_sizes(n)
    return lambda x, split=None: autograd.split(x, axis, sizes(x.shape[axis], split))


@_op("Slice", sig="th")
def _slice(n):
    def run(x, starts, ends, axes=None, steps=None):
        starts, ends = _ints(starts), _ints(ends)
        axes = list(range(len(starts))) if axes is None else _ints(axes)
        steps = [1] * len(starts) if steps is None else _ints(steps)
        pos = ([], [], [], [])
        rev = []
        for a, b, e, st in zip(axes, starts, ends, steps):
            a = _norm_axis(a, x.ndim())
            b, e, st = slice(b, e, st).indices(x.shape[a])
            if st > 0:
                for lst, v in zip(pos, (b, max(b, e), a, st)):
                    lst.append(v)
            else:  # negative steps: gather the positions
                rev.append((a, list(range(b, e, st))))
        y = autograd.slice(x, *pos) if pos[0] else x
        for a, idx in rev:
            y = autograd.gather(y, a, idx)
        return y
    return run


@_host("Slice")
def _slice_host(n):
    def run(x, starts, ends, axes=None, steps=None):
        starts, ends = _ints(starts), _ints(ends)
        axes = range(len(starts)) if axes is None else _ints(axes)
        steps = [1] * len(starts) if steps is None else _ints(steps)
        key = [slice(None)] * x.ndim
        for a, b, e, st in zip(axes, starts, ends, steps):
            key[a] = slice(b, e, st)
        return x[tuple(key)]
    return run


@_op("Squeeze", sig="th")
def _squeeze(n):
    axes_of = _axes_arg(n, 13)
    return lambda x, axes=None: autograd.squeeze(x, axes_of(axes))


@_host("Squeeze")
def _squeeze_host(n):
    axes_of = _axes_arg(n, 13)

    def run(x, axes=None):
        a = axes_of(axes)
        return np.squeeze(x, axis=None if a is None else tuple(a))
    return run


@_op("Unsqueeze", sig="th")
def _unsqueeze(n):
    axes_of = _axes_arg(n, 13)
    return lambda x, axes=None: autograd.unsqueeze(x, axes_of(axes))


@_host("Unsqueeze")
def _unsqueeze_host(n):
    axes_of = _axes_arg(n, 13)
    return lambda x, axes=None: np.expand_dims(x, tuple(axes_of(axes)))


def _cast_to(n: _Node):
    """The numpy dtype of a Cast's `to`, if minisinga can hold it."""
    to = n.get("to")
    n.get("saturate")  # only for float8 targets, which are refused
    dt = _np_dtype(to)
    if dt is None or dt.kind not in "biuf":
        raise ValueError(f"to={onnx.TensorProto.DataType.Name(to)} is not supported")
    return dt


_I32 = np.iinfo(np.int32)


@_op("Cast")
def _cast(n):
    dt = _cast_to(n)
    wide = dt.kind in "iu" and np.iinfo(dt).max > _I32.max  # int64, uint32, uint64

    def run(x):
        if dt.kind == "b":
            return _as_bool(x != 0)
        if wide and x.dtype != tensor.int32 and not x.device.graph_enabled():
            # device integers are int32: refuse what would saturate (read back, while the
            # values exist: not while a graph is recorded)
            v = np.trunc(x.to_numpy())
            if v.size and (v.max() > _I32.max or v.min() < _I32.min):
                raise ValueError(
                    f"to={onnx.TensorProto.DataType.Name(n.get('to'))}: values in "
                    f"[{v.min():g}, {v.max():g}] do not fit minisinga's int32 tensors (range "
                    f"[{_I32.min}, {_I32.max}])")
        return autograd.cast(x, tensor.int32 if dt.kind in "iu" else
                             tensor.float16 if dt == np.float16 else tensor.float32)
    return run


@_host("Cast")
def _cast_host(n):
    dt = _cast_to(n)
    return lambda x: x.astype(dt)


@_op("Gather", sig="tt")
def _gather(n):  # host indices become a cached constant; take checks their range
    axis = n.get("axis", 0)
    return lambda x, idx: autograd.gather(x, axis, idx)


@_op("ScatterElements", sig="tat")
def _scatter_elements(n):
    axis = n.get("axis", 0)
    if n.get("reduction", "none") != "none":
        raise ValueError(f"reduction={n.get('reduction')!r} is not supported (only 'none')")
    return lambda x, idx, updates: autograd.scatter_elements(x, idx, updates, axis)


@_host("Gather")
def _gather_host(n):
    axis = n.get("axis", 0)
    return lambda x, idx: np.take(x, idx, axis=axis)


@_host("ScatterND")
def _scatter_nd_host(n):  # on the host only (masks built from constants, as Swin's)
    if n.get("reduction", "none") != "none":
        raise ValueError(f"reduction={n.get('reduction')!r} is not supported (only 'none')")

    def run(data, indices, updates):
        k = indices.shape[-1]
        if k > data.ndim:
            raise ValueError(f"indices of depth {k} for data of rank {data.ndim}")
        out = data.copy()
        idx = indices.reshape(-1, k)
        out[tuple(idx.T)] = updates.reshape((idx.shape[0],) + data.shape[k:])
        return out
    return run


@_op("Tile", sig="th")
def _tile(n):
    return lambda x, repeats: autograd.tile(x, _ints(repeats))


@_host("Tile")
def _tile_host(n):
    return lambda x, repeats: np.tile(x, _ints(repeats))


@_op("Expand", sig="th")
def _expand(n):
    return lambda x, shape: autograd.expand(x, _ints(shape))


@_host("Expand")
def _expand_host(n):
    return lambda x, shape: np.broadcast_to(
        x, np.broadcast_shapes(x.shape, tuple(_ints(shape)))).copy()


@_op("Pad", sig="thhh")
def _pad(n):
    mode = n.get("mode", "constant")
    if mode not in ("constant", "reflect", "edge"):
        raise ValueError(f"mode={mode!r} is not supported (constant, reflect or edge)")

    def run(x, pads, value=None, axes=None):
        nd, p = x.ndim(), _ints(pads)
        axes = list(range(nd)) if axes is None else [_norm_axis(a, nd) for a in _ints(axes)]
        full = [0] * (2 * nd)
        for i, a in enumerate(axes):
            full[a], full[a + nd] = p[i], p[i + len(axes)]
        if any(d + b + e < 0 for d, b, e in zip(x.shape, full[:nd], full[nd:])):
            raise ValueError(f"pads {p} crop more than the input's shape {tuple(x.shape)}")
        if any(v < 0 for v in full):  # negative pads crop
            x = autograd.slice(x, [max(-b, 0) for b in full[:nd]],
                               [d - max(-e, 0) for d, e in zip(x.shape, full[nd:])])
            full = [max(v, 0) for v in full]
        return autograd.pad(x, mode, full, _scalar(value, 0.0)) if any(full) else x
    return run


@_op("DepthToSpace")
def _depth_to_space(n):
    b, mode = n.get("blocksize"), n.get("mode", "DCR")
    return lambda x: autograd.depth_to_space(x, b, mode)


@_op("SpaceToDepth")
def _space_to_depth(n):
    b = n.get("blocksize")
    return lambda x: autograd.space_to_depth(x, b)


_NEAREST = {"round_prefer_floor": lambda v: np.ceil(v - 0.5),
            "round_prefer_ceil": lambda v: np.floor(v + 0.5),
            "floor": np.floor, "ceil": np.ceil}


def _source_positions(out_len: int, in_len: int, scale, ctm: str, nearest) -> np.ndarray:
    """For nearest resizing: the input position each output position copies (float32, as
    ONNX Runtime computes it)."""
    f = np.float32
    i = np.arange(out_len, dtype=f)
    if ctm == "half_pixel" or (ctm == "pytorch_half_pixel" and out_len > 1):
        v = (i + f(0.5)) / scale - f(0.5)
    elif ctm == "pytorch_half_pixel":
        v = np.zeros_like(i)
    elif ctm == "align_corners":
        v = i * f((in_len - 1) / (out_len - 1)) if out_len > 1 else np.zeros_like(i)
    elif ctm == "asymmetric":
        v = i / scale
    else:  # tf_half_pixel_for_nn
        v = (i + f(0.5)) / scale
    return np.clip(nearest(v), 0, in_len - 1).astype(np.int64)


@_op("Resize", sig="thhh")
def _resize(n):
    mode = n.get("mode", "nearest")
    ctm = n.get("coordinate_transformation_mode", "half_pixel")
    nearest = n.get("nearest_mode", "round_prefer_floor")
    policy = n.get("keep_aspect_ratio_policy", "stretch")
    axes = n.get("axes")
    for irrelevant in ("cubic_coeff_a", "exclude_outside", "extrapolation_value", "antialias"):
        n.get(irrelevant)  # used by linear, cubic or tf_crop_and_resize only
    if mode != "nearest":
        raise ValueError(f"mode={mode!r} is not supported (nearest only)")
    if ctm not in ("half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric",
                   "tf_half_pixel_for_nn"):
        raise ValueError(f"coordinate_transformation_mode={ctm!r} is not supported")
    if nearest not in _NEAREST or policy != "stretch":
        raise ValueError(f"nearest_mode={nearest!r} / keep_aspect_ratio_policy={policy!r} is "
                         "not supported")

    def run(x, roi=None, scales=None, sizes=None):
        nd = x.ndim()
        ax = list(range(nd)) if axes is None else [_norm_axis(a, nd) for a in axes]
        f = np.float32
        given = sizes if sizes is not None and sizes.size else scales
        if given is not None and given.size and given.size != len(ax):
            what = "sizes" if given is sizes else "scales"
            per = f"axis of the input, of shape {_shape(x)}" if axes is None else \
                f"axis in axes {list(axes)}"
            raise ValueError(f"{what} has {given.size} value(s), expected {len(ax)} (one per "
                             f"{per})")
        if sizes is not None and sizes.size:
            outs = dict(zip(ax, _ints(sizes)))
            scl = {a: f(outs[a]) / f(x.shape[a]) for a in ax}
        elif scales is not None and scales.size:
            scl = dict(zip(ax, scales.astype(f).reshape(-1)))
            outs = {a: int(np.floor(f(x.shape[a]) * scl[a])) for a in ax}
        else:
            raise ValueError("Resize needs scales or sizes")
        if any(not scl[a] > 0 or outs[a] < 1 for a in ax):
            raise ValueError(f"scales {[float(scl[a]) for a in ax]} / output sizes "
                             f"{[outs[a] for a in ax]} must be positive")
        y = x
        for a in ax:
            if scl[a] == 1 and outs[a] == x.shape[a]:
                continue  # an axis kept as it is (as ONNX Runtime does, whatever the mode)
            idx = _source_positions(outs[a], x.shape[a], scl[a], ctm, _NEAREST[nearest])
            if not np.array_equal(idx, np.arange(x.shape[a])):
                y = autograd.gather(y, a, idx)
        return y
    return run


# ---- reductions ----

def _reduce_args(n: _Node):
    """(axes_of, keepdims, noop_with_empty_axes) of a Reduce* node."""
    since = 13 if n.op_type == "ReduceSum" else 18
    noop = n.get("noop_with_empty_axes", 0) if n.opset >= since else 0
    return _axes_arg(n, since), bool(n.get("keepdims", 1)), noop


_REDUCE = {
    "ReduceSum": autograd.reduce_sum, "ReduceMean": autograd.reduce_mean,
    "ReduceMax": autograd.reduce_max, "ReduceMin": autograd.reduce_min,
    "ReduceL1": lambda x, a, k: autograd.reduce_sum(autograd.abs(x), a, k),
    "ReduceL2": lambda x, a, k: autograd.sqrt(autograd.reduce_sum(autograd.mul(x, x), a, k)),
    "ReduceSumSquare": lambda x, a, k: autograd.reduce_sum(autograd.mul(x, x), a, k),
}


# The pointwise step of the composite reductions, which ONNX still applies when empty axes
# with noop_with_empty_axes=1 reduce over no axis (sqrt(x * x) is |x|).
_REDUCE_POINTWISE = {"ReduceL1": autograd.abs, "ReduceL2": autograd.abs,
                     "ReduceSumSquare": lambda x: autograd.mul(x, x)}


@_op(*_REDUCE, sig="th")
def _reduce(n):
    axes_of, keep, noop = _reduce_args(n)
    fn = _REDUCE[n.op_type]
    step = _REDUCE_POINTWISE.get(n.op_type)

    def run(x, axes=None):
        ax = axes_of(axes)
        if not ax and noop:
            return x if step is None else step(x)
        return fn(x, ax or None, keep)
    return run


@_op("ArgMax", "ArgMin")
def _arg(n):
    axis, keep = n.get("axis", 0), bool(n.get("keepdims", 1))
    if n.get("select_last_index", 0):
        raise ValueError("select_last_index=1 is not supported")
    fn = _core.argmax if n.op_type == "ArgMax" else _core.argmin
    return lambda x: Tensor(data=fn(x.data, axis, keep), requires_grad=False)


# ---- indexing ----

@_op("OneHot", sig="thh")
def _onehot(n):
    axis = n.get("axis", -1)

    def run(indices, depth, values):
        y = autograd.onehot(axis, indices, _scalar(depth), values)
        return autograd.cast(y, tensor.int32) if values.dtype.kind in "iu" else y
    return run


@_op("NonZero")
def _nonzero(n):
    return autograd.nonzero


@_host("NonZero")
def _nonzero_host(n):
    return lambda x: np.array(np.nonzero(x), dtype=np.int64).reshape(x.ndim, -1)


@_op("Einsum")
def _einsum(n):
    eq = n.get("equation").replace(" ", "")
    ins, arrow, out = eq.partition("->")
    terms = ins.split(",")
    letters = "".join(terms)
    if not arrow:  # implicit output: the letters used once, in alphabetical order
        out = "".join(sorted(c for c in set(letters) if letters.count(c) == 1))
    if (len(terms) not in (1, 2) or not all(t.isalpha() and len(set(t)) == len(t)
                                            for t in terms) or not set(out) <= set(letters)):
        raise ValueError(f"equation {eq!r} is not supported (one or two operands, distinct "
                         "letters per operand, no '...')")

    def run(*xs):
        size = {}
        for t, x in zip(terms, xs):
            if len(t) != x.ndim():
                raise ValueError(f"subscripts {t!r} do not fit shape {_shape(x)}")
            for c, d in zip(t, x.shape):
                if size.setdefault(c, d) != d:
                    raise ValueError(f"letter {c!r} has sizes {size[c]} and {d}")
        xs, ts = list(xs), list(terms)
        for i, t in enumerate(ts):  # sum away letters only this operand has, not the output
            other = ts[1 - i] if len(ts) == 2 else ""
            drop = [k for k, c in enumerate(t) if c not in out and c not in other]
            if drop:
                xs[i] = autograd.reduce_sum(xs[i], drop, False)
                ts[i] = "".join(c for k, c in enumerate(t) if k not in drop)

        def arrange(x, t, order, shape=None):
            perm = [t.index(c) for c in order]
            if perm != list(range(len(perm))):
                x = autograd.transpose(x, perm)
            return x if shape is None else autograd.reshape(x, shape)

        def prod(cs):
            return int(np.prod([size[c] for c in cs], dtype=np.int64))

        if len(xs) == 1:
            return arrange(xs[0], ts[0], list(out))
        a, b = ts
        batch = [c for c in a if c in b and c in out]
        inner = [c for c in a if c in b and c not in out]
        ka, kb = [c for c in a if c not in b], [c for c in b if c not in a]
        y = autograd.matmul(arrange(xs[0], a, batch + ka + inner,
                                    [prod(batch), prod(ka), prod(inner)]),
                            arrange(xs[1], b, batch + inner + kb,
                                    [prod(batch), prod(inner), prod(kb)]))
        got = batch + ka + kb
        y = autograd.reshape(y, [size[c] for c in got]) if got else autograd.reshape(y, [])
        return arrange(y, "".join(got), list(out))
    return run
