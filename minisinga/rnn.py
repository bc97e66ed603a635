"""Recurrent layers with SINGA's names: RNN_Base, RNN (Elman, tanh or relu), LSTM, GRU and
CudnnRNN (SINGA's cuDNN layer's API, computed here by the other three).

Each runs a sequence given as a list of per-step (batch, input_size) tensors (SINGA's way) or as
one 3-d tensor, (seq, batch, feature) or (batch, seq, feature) with batch_first (PyTorch's
way). Layers stack (`num_layers`), may run in both directions (`bidirectional`), and every step
is computed with autograd operators, so eager and recorded-graph training give the same
numbers.

Parameters, one set per layer and direction, with the gates fused:
    Wx (in, G*H), Wh (H, G*H), b (G*H,)       G = 1 for RNN, 4 for LSTM, 3 for GRU
    bh (G*H,)                                 GRU only: the hidden side's bias
named `Wx`, `Wh`, `b` (`bh`) for the first layer's forward direction (SINGA's names), with
`_l{k}` added for layer k > 0 and `_reverse` for the backward direction (`Wx_l1_reverse`).
`in` is input_size for layer 0 and H * num_directions above it. LSTM gate blocks are ordered as
in PyTorch: input, forget, cell (g), output, so PyTorch's weight_ih_l0.T is Wx and
bias_ih_l0 + bias_hh_l0 is b. GRU gate blocks are PyTorch's reset, update, new (r, z, n); its
reset gate scales the hidden side of n including that side's bias, so the two biases stay
apart: weight_ih_l0.T is Wx, weight_hh_l0.T is Wh, bias_ih_l0 is b and bias_hh_l0 is bh.
Every parameter starts uniform in [-1/sqrt(H), 1/sqrt(H)], drawn from the device's RNG.

Hidden states: with one layer and one direction h0/c0 and the returned h/c are (batch, H), as
in SINGA. Otherwise they are (num_layers * num_directions, batch, H), entry
`layer * num_directions + direction` (PyTorch's layout); for the backward direction the final
state is the one after reading the first step.
"""

from __future__ import annotations

import math
import numbers
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np

from . import autograd, device, tensor
from .layer import Layer, _param
from .tensor import Tensor

Steps = Union[Tensor, Sequence[Tensor]]


def _flag(cls: str, name: str, v) -> bool:
    if not isinstance(v, (bool, int, np.bool_, np.integer)) or v not in (0, 1):
        raise TypeError(f"{cls}: {name} must be True or False, got {v!r}")
    return bool(v)


class RNN_Base(Layer):
    """The sequence machinery shared by RNN, LSTM and GRU: input checks, stacking, directions,
    dropout between layers, per-sequence length masks and the output layout. A subclass sets
    `gates` (blocks of H columns in the fused weights), `has_cell` (whether the state carries a
    cell c), `param_kinds` (its parameters per layer and direction; those after Wx and Wh are
    biases) and implements `step_forward`, one time step of one layer and direction, taking
    the weights in `param_kinds` order."""

    gates = 1
    has_cell = False
    param_kinds: Tuple[str, ...] = ("Wx", "Wh", "b")

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 nonlinearity: str = "tanh", bias: bool = True, batch_first: bool = False,
                 dropout: float = 0, bidirectional: bool = False):
        super().__init__()
        cls = type(self).__name__
        self.input_size = tensor.check_count(cls, "input_size", input_size, 1)
        self.hidden_size = tensor.check_count(cls, "hidden_size", hidden_size, 1)
        self.num_layers = tensor.check_count(cls, "num_layers", num_layers, 1)
        if not isinstance(nonlinearity, str):
            raise TypeError(f"{cls}: nonlinearity must be a string, got {nonlinearity!r}")
        self.nonlinearity = nonlinearity.lower()
        self.bias = _flag(cls, "bias", bias)
        self.batch_first = _flag(cls, "batch_first", batch_first)
        self.bidirectional = _flag(cls, "bidirectional", bidirectional)
        if isinstance(dropout, bool) or not isinstance(dropout, numbers.Real) \
                or not 0.0 <= dropout < 1.0:
            raise ValueError(f"{cls}: dropout must be a number in [0, 1), got {dropout!r}")
        self.dropout = float(dropout)

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    # ---- parameters ----
    def _suffix(self, k: int) -> str:
        layer, direction = divmod(k, self.num_directions)
        return ("" if layer == 0 else f"_l{layer}") + ("_reverse" if direction else "")

    def param_names(self) -> List[str]:
        """The parameter attribute names, layer by layer, forward direction first."""
        kinds = self.param_kinds if self.bias else self.param_kinds[:2]
        return [kind + self._suffix(k) for k in range(self.num_layers * self.num_directions)
                for kind in kinds]

    def _weights(self, k: int) -> Tuple[Optional[Tensor], ...]:
        """Layer and direction k's parameters in `param_kinds` order (None for biases when
        bias is False)."""
        s = self._suffix(k)
        return tuple(getattr(self, kind + s) if i < 2 or self.bias else None
                     for i, kind in enumerate(self.param_kinds))

    def initialize(self, xs: Steps, hx=None) -> None:
        first = self._check_input(xs)
        dev, dtype = first.device, first.dtype
        hsz, width = self.hidden_size, self.gates * self.hidden_size
        bound = 1.0 / math.sqrt(hsz)
        for k in range(self.num_layers * self.num_directions):
            fan_in = self.input_size if k < self.num_directions else hsz * self.num_directions
            s = self._suffix(k)
            setattr(self, "Wx" + s, _param((fan_in, width), dev, dtype).uniform(-bound, bound))
            setattr(self, "Wh" + s, _param((hsz, width), dev, dtype).uniform(-bound, bound))
            for kind in self.param_kinds[2:] if self.bias else ():
                setattr(self, kind + s, _param((width,), dev, dtype).uniform(-bound, bound))

    # ---- one step: the input's projection, then the cell ----
    @staticmethod
    def _project(xs: List[Tensor], Wx: Tensor, b: Optional[Tensor]) -> List[Tensor]:
        """x Wx (+ b) for each step's x, as one product over all the steps (a sequence's
        inputs are known before its recurrence runs): (batch, G*H) each. The steps are
        stacked on a new leading axis, not along the batch (which an ONNX export keeps
        dynamic)."""
        x = xs[0] if len(xs) == 1 else autograd.cat(
            [autograd.reshape(t, (1,) + tuple(t.shape), allowzero=True) for t in xs], 0)
        y = autograd.matmul(x, Wx)  # (batch, G*H) or (seq, batch, G*H)
        if b is not None:
            y = autograd.add(y, b)
        if len(xs) == 1:
            return [y]
        return [autograd.reshape(p, p.shape[1:], allowzero=True)
                for p in autograd.split(y, 0, len(xs))]

    @staticmethod
    def _preact(gx: Tensor, h: Optional[Tensor], Wh: Tensor) -> Tensor:
        """gx + h Wh: every gate's pre-activation in one (batch, G*H) tensor; h None is the
        zero state (no h Wh term)."""
        return gx if h is None else autograd.add(gx, autograd.matmul(h, Wh))

    def _cell(self, gx: Tensor, h: Optional[Tensor], c: Optional[Tensor], weights: tuple):
        """The step after the input projection gx: (h', c'), c' None without a cell."""
        raise NotImplementedError

    def _default_weights(self, *weights):
        """step_forward's weights (in `param_kinds` order): those given, else the first
        layer's forward ones."""
        if all(w is None for w in weights):
            if not self._initialized:
                raise RuntimeError(f"{type(self).__name__}.step_forward: the layer has no "
                                   "weights yet; call it on a sequence first (parameters are "
                                   f"created on the first call) or pass "
                                   f"{', '.join(self.param_kinds)}")
            return self._weights(0)
        if weights[0] is None or weights[1] is None:
            raise ValueError(f"{type(self).__name__}.step_forward: give both Wx and Wh, or "
                             "neither (the first layer's weights)")
        return weights

    def step_forward(self, x: Tensor, h: Tensor, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} does not implement step_forward")

    def _own_steps(self) -> bool:
        """Whether the sequence may run as _project + _cell: step_forward is the class's own
        (a subclass overriding it gets its step_forward called at every step)."""
        return any(type(self).step_forward is cls.step_forward for cls in (RNN, LSTM, GRU))

    # ---- the sequence ----
    def _check_input(self, xs: Steps) -> Tensor:
        """Checks the input (no computation); returns its first Tensor."""
        cls = type(self).__name__
        if isinstance(xs, Tensor):
            layout = "(batch, seq, feature)" if self.batch_first else "(seq, batch, feature)"
            if xs.ndim() != 3:
                raise ValueError(f"{cls}: a tensor input must be 3-d {layout}, got shape "
                                 f"{xs.shape}; pass a list of (batch, {self.input_size}) "
                                 "tensors for one tensor per step")
            if xs.shape[1 if self.batch_first else 0] == 0:
                raise ValueError(f"{cls}: empty sequence (input of shape {xs.shape} {layout})")
            if xs.shape[2] != self.input_size:
                raise ValueError(f"{cls}: expected input_size {self.input_size} features, got "
                                 f"input of shape {xs.shape} {layout}")
            first = xs
        else:
            if not isinstance(xs, (list, tuple)):
                raise TypeError(f"{cls}: xs must be a list of (batch, input_size) Tensors or a "
                                f"3-d Tensor, got {type(xs).__name__}")
            if not xs:
                raise ValueError(f"{cls}: empty sequence (xs is an empty {type(xs).__name__})")
            first = xs[0]
            for t, x in enumerate(xs):
                if not isinstance(x, Tensor):
                    raise TypeError(f"{cls}: step {t} of xs is a {type(x).__name__}, expected a "
                                    "Tensor (wrap numpy arrays with tensor.from_numpy)")
                if x.ndim() != 2 or x.shape[1] != self.input_size:
                    raise ValueError(f"{cls}: step {t} of xs has shape {x.shape}, expected "
                                     f"(batch, {self.input_size}) (input_size "
                                     f"{self.input_size})")
                if x.shape[0] != first.shape[0]:
                    raise ValueError(f"{cls}: step {t} of xs has batch size {x.shape[0]} but "
                                     f"step 0 has {first.shape[0]}; every step needs the same "
                                     "batch size")
                if x.device != first.device or x.dtype != first.dtype:
                    raise ValueError(f"{cls}: step {t} of xs is {x.dtype.name} on {x.device}, "
                                     f"step 0 {first.dtype.name} on {first.device}; give every "
                                     "step the same device and dtype")
        if first.dtype not in (tensor.float32, tensor.float16):
            raise TypeError(f"{cls}: the input must be float32 or float16, got "
                            f"{first.dtype.name}")
        return first

    def _steps(self, xs: Steps) -> List[Tensor]:
        """The input as a list of (batch, input_size) tensors, checked."""
        self._check_input(xs)
        if not isinstance(xs, Tensor):
            return list(xs)
        axis = 1 if self.batch_first else 0
        batch, n = xs.shape[1 - axis], xs.shape[axis]
        parts = autograd.split(xs, axis, n) if n > 1 else (xs,)
        return [autograd.reshape(p, (batch, self.input_size), allowzero=True) for p in parts]

    def _states(self, given: Optional[Tensor], name: str, x: Tensor) -> List[Tensor]:
        """A hidden or cell state split per layer and direction; None (the zero state, which
        the steps skip) when not given."""
        cls = type(self).__name__
        n, batch, hsz = self.num_layers * self.num_directions, x.shape[0], self.hidden_size
        if given is None:
            return [None] * n
        if not isinstance(given, Tensor):
            raise TypeError(f"{cls}: {name} must be a Tensor or None, got "
                            f"{type(given).__name__}")
        want = (batch, hsz) if n == 1 else (n, batch, hsz)
        if tuple(given.shape) != want:
            what = "(batch, hidden_size)" if n == 1 else \
                "(num_layers * num_directions, batch, hidden_size)"
            raise ValueError(f"{cls}: {name} has shape {given.shape}, expected {want} {what} "
                             f"for input batch size {batch}")
        if given.device != x.device:
            raise ValueError(f"{cls}: {name} is on {given.device} but the input on {x.device}")
        if given.dtype != x.dtype:
            raise TypeError(f"{cls}: {name} has dtype {given.dtype.name} but the input "
                            f"{x.dtype.name}; give states of the input's dtype")
        if n == 1:
            return [given]
        return [autograd.reshape(p, (batch, hsz), allowzero=True)
                for p in autograd.split(given, 0, n)]

    def _stack_states(self, states: List[Tensor]) -> Tensor:
        if len(states) == 1:
            return states[0]
        batch, hsz = states[0].shape
        return autograd.cat([autograd.reshape(s, (1, batch, hsz), allowzero=True)
                             for s in states], 0)

    def _run_steps(self, steps: List[Tensor], hs: List[Tensor], cs: Optional[List[Tensor]],
                   masks: Optional[List[Tuple[Tensor, Tensor]]] = None):
        """Runs every layer and direction over the per-step inputs from the per-layer and
        direction states; returns the per-step outputs and the final h's and c's (lists).

        masks[t] = (keep, drop), (batch, 1) tensors of 1/0 and 0/1: where keep is 0 (step t
        is past that sequence's length) the step's output is 0 and h (and c) keep their old
        value, so each sequence's final state is the one after its own last step, and the
        backward direction starts from the initial state at that last step."""
        finals_h, finals_c = [], []
        own = self._own_steps()
        inputs = steps
        for layer in range(self.num_layers):
            if layer > 0 and self.dropout > 0:  # autograd.dropout is the identity in eval
                inputs = [autograd.dropout(x, self.dropout) for x in inputs]
            per_direction = []
            for d in range(self.num_directions):
                k = layer * self.num_directions + d
                weights = self._weights(k)
                h, c = hs[k], cs[k] if cs is not None else None
                order = range(len(inputs)) if d == 0 else range(len(inputs) - 1, -1, -1)
                outs = [None] * len(inputs)
                gxs = self._project(inputs, weights[0], weights[2]) if own else None
                for t in order:
                    if own:
                        h_new, c_new = self._cell(gxs[t], h, c, weights)
                    elif self.has_cell:
                        h_new, c_new = self.step_forward(inputs[t], h, c, *weights)
                    else:
                        h_new, c_new = self.step_forward(inputs[t], h, *weights), None
                    if masks is None:
                        h, c, outs[t] = h_new, c_new, h_new
                        continue
                    keep, drop = masks[t]  # h_new * 1 + h * 0 is exactly h_new
                    outs[t] = autograd.mul(h_new, keep)
                    h = outs[t] if h is None else autograd.add(outs[t], autograd.mul(h, drop))
                    if c_new is not None:
                        c_kept = autograd.mul(c_new, keep)
                        c = c_kept if c is None else autograd.add(c_kept, autograd.mul(c, drop))
                per_direction.append(outs)
                finals_h.append(h)
                finals_c.append(c)
            inputs = per_direction[0] if len(per_direction) == 1 else \
                [autograd.cat(list(hs_t), 1) for hs_t in zip(*per_direction)]
        return inputs, finals_h, finals_c

    def _run(self, xs: Steps, hx: Optional[Tensor], cx: Optional[Tensor]):
        """Runs every layer and direction; returns the outputs (in the input's form) and the
        stacked final h (and c)."""
        steps = self._steps(xs)
        self._match_inputs(steps[:1])  # parameters follow the input's device and dtype
        hs = self._states(hx, "h0", steps[0])
        cs = self._states(cx, "c0", steps[0]) if self.has_cell else None
        outs, finals_h, finals_c = self._run_steps(steps, hs, cs)
        h = self._stack_states(finals_h)
        c = self._stack_states(finals_c) if self.has_cell else None
        if not isinstance(xs, Tensor):
            return outs, h, c
        return self._join(outs), h, c

    def _join(self, inputs: List[Tensor]) -> Tensor:
        """Per-step (batch, width) outputs as one 3-d tensor in the layer's layout."""
        batch, width = inputs[0].shape
        shape = (batch, 1, width) if self.batch_first else (1, batch, width)
        axis = 1 if self.batch_first else 0
        if len(inputs) == 1:
            return autograd.reshape(inputs[0], shape, allowzero=True)
        return autograd.cat([autograd.reshape(o, shape, allowzero=True) for o in inputs], axis)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({self.input_size}, {self.hidden_size}, "
                f"num_layers={self.num_layers}, bidirectional={self.bidirectional})")


class RNN(RNN_Base):
    """Elman RNN: h' = act(x Wx + h Wh + b), act tanh or relu.

    forward(xs, h0=None) -> (outs, h): xs a list of (batch, input_size) tensors, outs the list
    of per-step outputs (batch, H * num_directions); or xs a 3-d tensor and outs one tensor in
    the same layout. h0/h as in the module docstring (zeros when h0 is None)."""

    gates = 1

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 nonlinearity: str = "tanh", bias: bool = True, batch_first: bool = False,
                 dropout: float = 0, bidirectional: bool = False):
        super().__init__(input_size, hidden_size, num_layers, nonlinearity, bias, batch_first,
                         dropout, bidirectional)
        if self.nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"RNN: nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")

    def step_forward(self, x: Tensor, h: Tensor, Wx: Optional[Tensor] = None,
                     Wh: Optional[Tensor] = None, b: Optional[Tensor] = None) -> Tensor:
        """One step: the next hidden state (batch, H). Without weights, the first layer's; h
        None is the zero state."""
        Wx, Wh, b = self._default_weights(Wx, Wh, b)
        return self._cell(self._project([x], Wx, b)[0], h, None, (Wx, Wh, b))[0]

    def _cell(self, gx, h, c, weights):
        y = self._preact(gx, h, weights[1])
        return (autograd.tanh(y) if self.nonlinearity == "tanh" else autograd.relu(y)), None

    def forward(self, xs: Steps, h0: Optional[Tensor] = None):
        outs, h, _ = self._run(xs, h0, None)
        return outs, h


class LSTM(RNN_Base):
    """Long short-term memory (PyTorch's equations, gates fused):
        i, f, g, o = sigmoid, sigmoid, tanh, sigmoid of the blocks of x Wx + h Wh + b
        c' = f * c + i * g,   h' = o * tanh(c')

    forward(xs, (h0, c0)=None) -> (outs, h, c), the shapes as for RNN; h0 and c0 may each be
    None (zeros). SINGA's argument order: nonlinearity before num_layers (only tanh)."""

    gates = 4
    has_cell = True

    def __init__(self, input_size: int, hidden_size: int, nonlinearity: str = "tanh",
                 num_layers: int = 1, bias: bool = True, batch_first: bool = False,
                 dropout: float = 0, bidirectional: bool = False):
        super().__init__(input_size, hidden_size, num_layers, nonlinearity, bias, batch_first,
                         dropout, bidirectional)
        if self.nonlinearity != "tanh":
            raise ValueError(f"LSTM: nonlinearity must be 'tanh' (the cell's activation), got "
                             f"{nonlinearity!r}")

    def step_forward(self, x: Tensor, h: Tensor, c: Tensor, Wx: Optional[Tensor] = None,
                     Wh: Optional[Tensor] = None,
                     b: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
        """One step: the next (h, c), each (batch, H). Without weights, the first layer's; h
        or c None is the zero state."""
        Wx, Wh, b = self._default_weights(Wx, Wh, b)
        return self._cell(self._project([x], Wx, b)[0], h, c, (Wx, Wh, b))

    def _cell(self, gx, h, c, weights):
        return autograd.lstm_cell(self._preact(gx, h, weights[1]), c)

    def forward(self, xs: Steps, h0_c0: Optional[Tuple[Optional[Tensor], Optional[Tensor]]]
                = None):
        if h0_c0 is None:
            h0, c0 = None, None
        elif isinstance(h0_c0, (tuple, list)) and len(h0_c0) == 2:
            h0, c0 = h0_c0
        else:
            raise TypeError(f"LSTM: the state must be a pair (h0, c0) or None, got "
                            f"{type(h0_c0).__name__}")
        return self._run(xs, h0, c0)


class GRU(RNN_Base):
    """Gated recurrent unit (PyTorch's equations, gates fused):
        r, z = sigmoid of the r and z blocks of (x Wx + b) + (h Wh + bh)
        n = tanh(x Wx_n + b_n + r * (h Wh_n + bh_n)),   h' = (1 - z) * n + z * h

    forward(xs, h0=None) -> (outs, h), the shapes as for RNN; parameters Wx, Wh, b, bh as in the
    module docstring (bias=False drops b and bh)."""

    gates = 3
    param_kinds = ("Wx", "Wh", "b", "bh")

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0, bidirectional: bool = False):
        super().__init__(input_size, hidden_size, num_layers, "tanh", bias, batch_first,
                         dropout, bidirectional)

    def step_forward(self, x: Tensor, h: Tensor, Wx: Optional[Tensor] = None,
                     Wh: Optional[Tensor] = None, b: Optional[Tensor] = None,
                     bh: Optional[Tensor] = None) -> Tensor:
        """One step: the next hidden state (batch, H). Without weights, the first layer's; h
        None is the zero state (h Wh is then just bh)."""
        Wx, Wh, b, bh = self._default_weights(Wx, Wh, b, bh)
        return self._cell(self._project([x], Wx, b)[0], h, None, (Wx, Wh, b, bh))[0]

    def _cell(self, gx, h, c, weights):
        Wh, bh = weights[1], weights[3]
        if h is None:
            xr, xz, xn = autograd.split(gx, 1, 3)
            if bh is None:
                r, z, n = autograd.sigmoid(xr), autograd.sigmoid(xz), autograd.tanh(xn)
            else:
                hr, hz, hn = autograd.split(bh, 0, 3)
                r = autograd.sigmoid(autograd.add_bias(xr, hr, axis=0))
                z = autograd.sigmoid(autograd.add_bias(xz, hz, axis=0))
                n = autograd.tanh(autograd.add(xn, autograd.mul(r, hn)))
            return autograd.sub(n, autograd.mul(z, n)), None  # (1 - z) n
        gh = autograd.matmul(h, Wh)
        if bh is not None:
            gh = autograd.add_bias(gh, bh, axis=0)
        return autograd.gru_cell(gx, gh, h), None  # (1 - z) n + z h, one fused op

    def forward(self, xs: Steps, h0: Optional[Tensor] = None):
        outs, h, _ = self._run(xs, h0, None)
        return outs, h


_MODES = ("lstm", "gru", "tanh", "relu", "vanilla")


class CudnnRNN(Layer):
    """SINGA's `layer.CudnnRNN` API, computed with this module's LSTM, GRU or RNN (it does not
    use cuDNN; the name is kept so SINGA code ports).

    CudnnRNN(hidden_size, activation="tanh", num_layers=1, bias=True, batch_first=True,
             dropout=0, bidirectional=False, rnn_mode="lstm", use_mask=False,
             return_sequences=True)
    rnn_mode: "lstm", "gru", "tanh" or "relu" (an Elman RNN with that nonlinearity), or
    "vanilla", an Elman RNN with `activation` ("tanh" or "relu"; SINGA accepts it but does not
    read it, and only "vanilla" reads it here). input_size comes from the first input.

    forward(x, hx=None, cx=None, seq_lengths=None) -> y, as SINGA (return_state=True also
    gives the final states: (y, hy) or, for "lstm", (y, hy, cy)):
        x (batch, seq, input_size) with batch_first, else (seq, batch, input_size);
        hx, cx (num_layers * num_directions, batch, H), zeros when None (cx only for "lstm");
        y all steps' outputs (in x's layout, width H * num_directions) with
        return_sequences, else (batch, H * num_directions), each sequence's output at its last
        step; hy, cy (num_layers * num_directions, batch, H).
    seq_lengths (use_mask=True): each sequence's length, an int32 tensor or a list of ints,
    (batch,). Outputs past a sequence's length are 0 and its state stops changing after its
    last step; the masks are computed on the device, so a tensor of lengths may change
    between replays of a recorded graph (a list is fixed when the graph is recorded). A list
    is checked (1 <= length <= seq); a tensor's values are checked only outside training.

    Parameters are the wrapped layer's, under its names (`Wx`, `Wh`, `b`, GRU's `bh`, `_l{k}`,
    `_reverse`: see the module docstring) and its initialisation, not SINGA's single flat
    cuDNN weight `W`."""

    def __init__(self, hidden_size: int, activation: str = "tanh", num_layers: int = 1,
                 bias: bool = True, batch_first: bool = True, dropout: float = 0,
                 bidirectional: bool = False, rnn_mode: str = "lstm", use_mask: bool = False,
                 return_sequences: bool = True):
        super().__init__()
        self.hidden_size = tensor.check_count("CudnnRNN", "hidden_size", hidden_size, 1)
        self.num_layers = tensor.check_count("CudnnRNN", "num_layers", num_layers, 1)
        for name, v in (("rnn_mode", rnn_mode), ("activation", activation)):
            if not isinstance(v, str):
                raise TypeError(f"CudnnRNN: {name} must be a string, got {v!r}")
        self.rnn_mode, self.activation = rnn_mode.lower(), activation.lower()
        if self.rnn_mode not in _MODES:
            raise ValueError(f"CudnnRNN: rnn_mode must be one of {', '.join(_MODES)}, got "
                             f"{rnn_mode!r}")
        if self.activation not in ("tanh", "relu"):
            raise ValueError(f"CudnnRNN: activation must be 'tanh' or 'relu', got "
                             f"{activation!r}")
        self.bias = _flag("CudnnRNN", "bias", bias)
        self.batch_first = _flag("CudnnRNN", "batch_first", batch_first)
        self.bidirectional = _flag("CudnnRNN", "bidirectional", bidirectional)
        self.use_mask = _flag("CudnnRNN", "use_mask", use_mask)
        self.return_sequences = _flag("CudnnRNN", "return_sequences", return_sequences)
        if isinstance(dropout, bool) or not isinstance(dropout, numbers.Real) \
                or not 0.0 <= dropout < 1.0:
            raise ValueError(f"CudnnRNN: dropout must be a number in [0, 1), got {dropout!r}")
        self.dropout = float(dropout)
        self.input_size: Optional[int] = None

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    def _make(self, input_size: int) -> RNN_Base:
        """The wrapped layer for this rnn_mode."""
        common = dict(num_layers=self.num_layers, bias=self.bias, batch_first=self.batch_first,
                      dropout=self.dropout, bidirectional=self.bidirectional)
        if self.rnn_mode == "lstm":
            return LSTM(input_size, self.hidden_size, **common)
        if self.rnn_mode == "gru":
            return GRU(input_size, self.hidden_size, **common)
        act = self.activation if self.rnn_mode == "vanilla" else self.rnn_mode
        return RNN(input_size, self.hidden_size, nonlinearity=act, **common)

    def initialize(self, x: Tensor, hx=None, cx=None, seq_lengths=None,
                   return_state: bool = False) -> None:
        self._check_x(x)
        self.input_size = x.shape[2]
        inner = self._make(self.input_size)
        inner.initialize(x)
        inner._initialized = True
        object.__setattr__(self, "rnn", inner)  # not a sub-layer: its tensors are ours
        for name in inner.param_names():
            setattr(self, name, getattr(inner, name))

    def _check_x(self, x) -> None:
        layout = "(batch, seq, input_size)" if self.batch_first else "(seq, batch, input_size)"
        if not isinstance(x, Tensor):
            raise TypeError(f"CudnnRNN: x must be a 3-d Tensor {layout}, got "
                            f"{type(x).__name__}")
        if x.ndim() != 3:
            raise ValueError(f"CudnnRNN: x must be 3-d {layout}, got shape {x.shape}")

    def _state(self, given, name: str, x: Tensor, batch: int) -> List[Tensor]:
        """hx or cx as per-layer and direction (batch, H) tensors; None (the zero state)
        when not given."""
        n, hsz = self.num_layers * self.num_directions, self.hidden_size
        if given is None:
            return [None] * n
        if not isinstance(given, Tensor):
            raise TypeError(f"CudnnRNN: {name} must be a Tensor or None, got "
                            f"{type(given).__name__}")
        if tuple(given.shape) not in ((n, batch, hsz), (batch, hsz) if n == 1 else None):
            raise ValueError(f"CudnnRNN: {name} has shape {given.shape}, expected "
                             f"{(n, batch, hsz)} (num_layers * num_directions, batch, "
                             f"hidden_size) for input of shape {x.shape}")
        if given.device != x.device:
            raise ValueError(f"CudnnRNN: {name} is on {given.device} but x on {x.device}")
        if given.dtype != x.dtype:
            raise TypeError(f"CudnnRNN: {name} has dtype {given.dtype.name} but x "
                            f"{x.dtype.name}; give states of x's dtype")
        parts = autograd.split(given, 0, n) if n > 1 else (given,)
        return [autograd.reshape(p, (batch, hsz), allowzero=True) for p in parts]

    def _lengths(self, seq_lengths, x: Tensor, batch: int, seq: int) -> Tensor:
        """seq_lengths, checked, as an int32 (batch,) tensor on x's device."""
        if isinstance(seq_lengths, Tensor):
            if seq_lengths.dtype != tensor.int32 or tuple(seq_lengths.shape) != (batch,):
                raise ValueError(f"CudnnRNN: seq_lengths must be an int32 tensor of shape "
                                 f"({batch},) (one length per sequence), got "
                                 f"{seq_lengths.dtype.name} of shape {seq_lengths.shape}")
            if seq_lengths.device != x.device:
                raise ValueError(f"CudnnRNN: seq_lengths is on {seq_lengths.device} but x on "
                                 f"{x.device}")
            if not autograd.is_training() and not x.device.graph_enabled():
                self._check_values(seq_lengths.to_numpy(), batch, seq)  # no graph to break
            return seq_lengths
        if not isinstance(seq_lengths, (list, tuple)) or \
                not all(isinstance(v, numbers.Integral) and not isinstance(v, bool)
                        for v in seq_lengths):
            raise TypeError(f"CudnnRNN: seq_lengths must be an int32 Tensor or a list of "
                            f"ints, got {seq_lengths!r}")
        self._check_values(seq_lengths, batch, seq)
        with device.eager(x.device):  # a constant of the recorded step, not a host copy
            return Tensor(data=[int(v) for v in seq_lengths], device=x.device,
                          dtype=tensor.int32, requires_grad=False)

    @staticmethod
    def _check_values(lengths, batch: int, seq: int) -> None:
        if len(lengths) != batch:
            raise ValueError(f"CudnnRNN: seq_lengths has {len(lengths)} lengths for a batch of "
                             f"{batch} sequences; expected one per sequence")
        bad = [int(v) for v in lengths if not 1 <= int(v) <= seq]
        if bad:
            raise ValueError(f"CudnnRNN: seq_lengths must be in [1, {seq}] (the padded "
                             f"sequence length), got {bad}")

    def forward(self, x: Tensor, hx: Optional[Tensor] = None, cx: Optional[Tensor] = None,
                seq_lengths=None, return_state: bool = False):
        self._check_x(x)
        if x.shape[2] != self.input_size:
            raise ValueError(f"CudnnRNN: built for input_size {self.input_size}, got x of shape "
                             f"{x.shape}")
        if cx is not None and self.rnn_mode != "lstm":
            raise ValueError(f"CudnnRNN: cx is the LSTM's cell state, but rnn_mode is "
                             f"{self.rnn_mode!r}")
        if self.use_mask and seq_lengths is None:
            raise ValueError("CudnnRNN: use_mask=True needs seq_lengths (one length per "
                             "sequence)")
        if seq_lengths is not None and not self.use_mask:
            raise ValueError("CudnnRNN: seq_lengths given but use_mask is False; construct "
                             "the layer with use_mask=True to mask padded steps")
        inner = self.rnn
        steps = inner._steps(x)
        batch, seq = steps[0].shape[0], len(steps)
        hs = self._state(hx, "hx", x, batch)
        cs = self._state(cx, "cx", x, batch) if inner.has_cell else None
        masks = last = None
        if seq_lengths is not None:
            lens = self._lengths(seq_lengths, x, batch, seq)

            def col(t: Tensor) -> Tensor:  # a 0/1 int32 (batch,) as a (batch, 1) of x's dtype
                return t.as_type(x.dtype).reshape((batch, 1))

            masks = [(col(lens > t), col(lens <= t)) for t in range(seq)]
            last = [col(lens == t + 1) for t in range(seq)]
            # Padded steps read zeros, not the padding: masking their results afterwards would
            # keep a NaN or inf there (NaN * 0), also in every weight's gradient.
            zero = tensor.zeros((1, 1), x.device, x.dtype)
            steps = [autograd.where(s, zero, keep) for s, (keep, _) in zip(steps, masks)]
        outs, finals_h, finals_c = inner._run_steps(steps, hs, cs, masks)
        if self.return_sequences:
            y = inner._join(outs)
        elif last is None:
            y = outs[-1]
        else:  # each sequence's output at its own last step
            y = autograd.add_all(*[autograd.mul(o, e) for o, e in zip(outs, last)])
        if not return_state:
            return y
        hy = self._stack(finals_h)
        return (y, hy, self._stack(finals_c)) if inner.has_cell else (y, hy)

    @staticmethod
    def _stack(states: List[Tensor]) -> Tensor:
        batch, hsz = states[0].shape
        if len(states) == 1:
            return autograd.reshape(states[0], (1, batch, hsz), allowzero=True)
        return autograd.cat([autograd.reshape(s, (1, batch, hsz), allowzero=True)
                             for s in states], 0)

    def __repr__(self) -> str:
        return (f"CudnnRNN({self.hidden_size}, rnn_mode={self.rnn_mode!r}, "
                f"num_layers={self.num_layers}, bidirectional={self.bidirectional})")
