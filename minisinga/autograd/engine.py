"""The autograd engine: the training switch, Operator, and backward as a generator."""

from __future__ import annotations

import contextlib
import copy
import threading
from collections import deque
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

from .. import _core
from ..tensor import Tensor

_state = threading.local()  # the sonnx tracer, per thread
_training = False  # one switch for the process, as SINGA's autograd.training


def is_training() -> bool:
    """Whether operators record their creators (False by default)."""
    return _training


def set_training(flag: bool) -> None:
    """Turns recording on or off (also `autograd.training = flag`): one switch for every
    thread, as in SINGA (a model compiled in one thread trains in another)."""
    global _training
    _training = bool(flag)


@contextlib.contextmanager
def train_mode(flag: bool = True):
    """Context manager: `with autograd.train_mode(): ...` records; restores on exit."""
    old = is_training()
    set_training(flag)
    try:
        yield
    finally:
        set_training(old)


def no_grad():
    """Context manager that turns recording off."""
    return train_mode(False)


class Operator:
    """An autograd operation. Subclasses implement `forward` and `backward` on `_core.Tensor`s.

    `forward(*xs)` returns one core tensor or a tuple; `backward(*dys)` returns one gradient per
    input (None where an input needs none). Save what backward needs only when
    `self.requires_grad` is True. `self.needs_grad[i]` says whether input i's gradient is used
    (it is a parameter, or comes from an op that needs gradients): a costly backward may skip
    the others and return None for them.
    """

    def __init__(self, name: Optional[str] = None):
        self.name = name or type(self).__name__
        self.requires_grad = False

    def __call__(self, *xs: Tensor):
        # (The hot path of every eager op: a few plain loops, no generators.)
        any_grad = False
        for x in xs:
            if not isinstance(x, Tensor):
                raise TypeError(f"{self.name}: inputs must be Tensors, got {type(x).__name__}")
            any_grad = any_grad or bool(x.requires_grad)
        d = self.__dict__
        if _training and d.get("src") is not None:
            # This instance is already a node of a recorded graph (called twice, e.g.
            # `relu = ReLU(); relu(relu(x))`): record this call as a node of its own, so
            # the first call's inputs and saved tensors stay as they were.
            op = copy.copy(self)
            op.src = None
            return op(*xs)
        rg = self.requires_grad = _training and any_grad
        before = d.copy() if rg else None
        ys = self.forward(*[x.data for x in xs])
        single = not isinstance(ys, tuple)
        ys = (ys,) if single else ys
        if rg:
            # What forward saved for backward (not what __init__ configured, e.g. the labels
            # of a SoftMaxCrossEntropy that a script calls at every step): release() drops it.
            self._saved = [k for k, v in d.items()
                           if before.get(k) is not v and _holds_tensor(v)]
            self._released = False
            # (creator, output index, tensor) of each input: enough to route gradients. The
            # tensor only where it is a leaf (no creator: a parameter, whose gradient is
            # collected by identity, or data and constants, which sonnx.to_onnx names):
            # keeping every input would hold the intermediates' memory until the backward
            # pass, even where the op's backward does not read them (an add's inputs, a
            # ReLU's input).
            src, needs = [], []
            for x in xs:
                c = x.creator
                src.append((c, x._out_idx, x if c is None else None))
                # backward() below drops the gradients of the other inputs (data, constants).
                needs.append(bool(x.stores_grad) or (c is not None and c.requires_grad))
            self.src, self.needs_grad = src, tuple(needs)
            self._out_meta = [(y.shape, y.dtype, y.device) for y in ys]
        creator = self if rg else None
        outs = tuple(Tensor._of_op(y, rg, creator, i) for i, y in enumerate(ys))
        tracer = getattr(_state, "tracer", None)
        if tracer is not None:  # sonnx.export is tracing a forward pass
            tracer.append((self, xs, outs))
        return outs[0] if single else outs

    needs_grad: Tuple[bool, ...] = ()  # set by __call__

    def need(self, i: int) -> bool:
        """Whether input i's gradient is used (True when unknown: a direct backward call)."""
        return i >= len(self.needs_grad) or self.needs_grad[i]

    def release(self) -> None:
        """Drops the tensors kept for backward once it has run (backward with
        retain_graph=False), so their memory returns to the pool during the backward pass
        rather than when the whole graph goes. A second backward through this op is refused."""
        for k in self._saved + ["src"]:
            setattr(self, k, None)
        self._released = True

    def forward(self, *xs):
        raise NotImplementedError

    def backward(self, *dys):
        raise NotImplementedError


def _holds_tensor(v) -> bool:
    if isinstance(v, (list, tuple)):
        for e in v:  # (a loop: any() over a generator costs more on this hot path)
            if _holds_tensor(e):
                return True
        return False
    return isinstance(v, (_core.Tensor, Tensor))


def _zeros(meta) -> "_core.Tensor":
    shape, dtype, device = meta
    t = _core.Tensor(list(shape), device, dtype)
    _core.fill(t, 0.0)
    return t


def _accumulate(old, new):
    if old is None:
        return new
    return _core.binary(_core.BinaryOp.Add, old, new)


def backward(y: Tensor, dy: Optional[Tensor] = None,
             retain_graph: bool = True) -> Iterator[Tuple[Tensor, Tensor]]:
    """Back-propagates from `y`, yielding (param, grad) for each tensor with `stores_grad`
    as soon as its gradient is final. Iterative (no recursion); gradients of shared nodes add.

    Args:
        y: the output (usually a scalar loss) produced while `training` was on.
        dy: its gradient: a Tensor of y's shape, or a number (SINGA's: that value
            everywhere); ones by default.
        retain_graph: True (SINGA's behaviour) keeps what each op saved, so the graph can be
            back-propagated again; False frees it as soon as the op's backward has run, which
            lowers eager mode's peak memory (the optimizers' training step uses False).
    """
    if y.creator is None:
        raise ValueError("backward: y has no creator; run the forward pass with "
                         "autograd.training = True and inputs that require grad")
    if dy is None or (isinstance(dy, (int, float)) and not isinstance(dy, bool)):
        # ones, or SINGA's number: the gradient of y everywhere (it rescales the loss)
        g = _core.Tensor(list(y.shape), y.device, y.dtype)
        _core.fill(g, 1.0 if dy is None else float(dy))
    elif not isinstance(dy, Tensor):
        raise TypeError(f"backward: dy must be a Tensor or a number, got {type(dy).__name__}")
    else:
        if tuple(dy.shape) != tuple(y.shape):
            raise ValueError(f"backward: dy has shape {dy.shape}, expected {y.shape}")
        g = dy.data

    # Count, for every operator, how many gradient contributions it waits for, and for every
    # parameter how many times it is used.
    pending: Dict[int, int] = {}
    param_uses: Dict[int, int] = {}
    seen = {id(y.creator)}
    stack = [y.creator]
    while stack:
        op = stack.pop()
        if getattr(op, "_released", False):
            raise RuntimeError(f"backward: {op.name} was already back-propagated and its saved "
                               "tensors are freed; run the forward pass again")
        for creator, _, x in op.src:
            if x is not None and x.stores_grad:
                param_uses[id(x)] = param_uses.get(id(x), 0) + 1
            if creator is not None and creator.requires_grad:
                pending[id(creator)] = pending.get(id(creator), 0) + 1
                if id(creator) not in seen:
                    seen.add(id(creator))
                    stack.append(creator)

    dys: Dict[int, List] = {id(y.creator): [None] * len(y.creator._out_meta)}
    dys[id(y.creator)][getattr(y, "_out_idx", 0)] = g
    param_grads: Dict[int, "_core.Tensor"] = {}
    ready = deque([y.creator])
    while ready:
        op = ready.popleft()
        grads_out = dys.pop(id(op))
        grads_out = [d if d is not None else _zeros(m) for d, m in zip(grads_out, op._out_meta)]
        dxs = op.backward(*grads_out)
        if not isinstance(dxs, (tuple, list)):
            dxs = (dxs,)
        if len(dxs) != len(op.src):
            raise RuntimeError(f"{op.name}.backward returned {len(dxs)} gradients for "
                               f"{len(op.src)} inputs")
        for (creator, idx, x), dx in zip(op.src, dxs):
            if dx is not None:  # a gradient has its input's dtype (mixed float16/32 ops)
                want = x.dtype if x is not None else creator._out_meta[idx][1]
                if dx.dtype != want:
                    dx = _core.as_type(dx, want)
            if x is not None and x.stores_grad:
                param_grads[id(x)] = _accumulate(param_grads.get(id(x)), dx) if dx is not None \
                    else param_grads.get(id(x))
                param_uses[id(x)] -= 1
                if param_uses[id(x)] == 0 and param_grads.get(id(x)) is not None:
                    yield x, Tensor(data=param_grads.pop(id(x)), requires_grad=False)
            if creator is not None and creator.requires_grad:
                slot = dys.setdefault(id(creator), [None] * len(creator._out_meta))
                if dx is not None:
                    slot[idx] = _accumulate(slot[idx], dx)
                pending[id(creator)] -= 1
                if pending[id(creator)] == 0:
                    ready.append(creator)
        if not retain_graph:
            op.release()
        del grads_out, dxs


def gradients(y: Tensor, dy: Optional[Tensor] = None) -> Dict[Tensor, Tensor]:
    """All (param -> grad) pairs of `backward(y, dy)` as a dict."""
    return {p: g for p, g in backward(y, dy)}


@contextlib.contextmanager
def tracing():
    """Context manager yielding a list that gets (operator, inputs, outputs) for every
    operator called in this thread inside it, in call order (for sonnx.export)."""
    old = getattr(_state, "tracer", None)
    _state.tracer = trace = []
    try:
        yield trace
    finally:
        _state.tracer = old


def infer_dependency(op: Operator) -> Dict[int, int]:
    """For SINGA compatibility: number of consumers of each operator reachable from `op`."""
    deps: Dict[int, int] = {}
    seen, stack = {id(op)}, [op]
    while stack:
        o = stack.pop()
        for creator, _, _ in getattr(o, "src", []):
            if creator is not None:
                deps[id(creator)] = deps.get(id(creator), 0) + 1
                if id(creator) not in seen:
                    seen.add(id(creator))
                    stack.append(creator)
    return deps


def as_tensors(xs: Sequence) -> List[Tensor]:
    return list(xs)
