"""Recurrent layers with SINGA's names: RNN_Base, RNN (Elman, tanh or relu) and LSTM.

Both run a sequence given as a list of per-step (batch, input_size) tensors (SINGA's way) or as
one 3-d tensor, (seq, batch, feature) or (batch, seq, feature) with batch_first (PyTorch's
way). Layers stack (`num_layers`), may run in both directions (`bidirectional`), and every step
is computed with autograd operators, so eager and recorded-graph training give the same
numbers.

Parameters, one set per layer and direction, with the gates fused:
    Wx (in, G*H), Wh (H, G*H), b (G*H,)       G = 1 for RNN, 4 for LSTM
named `Wx`, `Wh`, `b` for the first layer's forward direction (SINGA's names), with `_l{k}`
added for layer k > 0 and `_reverse` for the backward direction (`Wx_l1_reverse`). `in` is
input_size for layer 0 and H * num_directions above it. LSTM gate blocks are ordered as in
PyTorch: input, forget, cell (g), output, so PyTorch's weight_ih_l0.T is Wx and
bias_ih_l0 + bias_hh_l0 is b. Every parameter starts uniform in [-1/sqrt(H), 1/sqrt(H)],
drawn from the device's RNG.

Hidden states: with one layer and one direction h0/c0 and the returned h/c are (batch, H), as
in SINGA. Otherwise they are (num_layers * num_directions, batch, H), entry
`layer * num_directions + direction` (PyTorch's layout); for the backward direction the final
state is the one after reading the first step.
"""

from __future__ import annotations

import math
import numbers
from typing import List, Optional, Sequence, Tuple, Union

from . import autograd, tensor
from .layer import Layer, _param
from .tensor import Tensor

Steps = Union[Tensor, Sequence[Tensor]]


def _flag(cls: str, name: str, v) -> bool:
    if not isinstance(v, (bool, int)) or v not in (0, 1):
        raise TypeError(f"{cls}: {name} must be True or False, got {v!r}")
    return bool(v)


class RNN_Base(Layer):
    """The sequence machinery shared by RNN and LSTM: input checks, stacking, directions,
    dropout between layers and the output layout. A subclass sets `gates` (blocks of H columns
    in the fused weights), `has_cell` (whether the state carries a cell c) and implements
    `step_forward`, one time step of one layer and direction."""

    gates = 1
    has_cell = False

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
        kinds = ("Wx", "Wh", "b") if self.bias else ("Wx", "Wh")
        return [kind + self._suffix(k) for k in range(self.num_layers * self.num_directions)
                for kind in kinds]

    def _weights(self, k: int) -> Tuple[Tensor, Tensor, Optional[Tensor]]:
        s = self._suffix(k)
        return (getattr(self, "Wx" + s), getattr(self, "Wh" + s),
                getattr(self, "b" + s) if self.bias else None)

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
            if self.bias:
                setattr(self, "b" + s, _param((width,), dev, dtype).uniform(-bound, bound))

    # ---- one step ----
    def _preact(self, x: Tensor, h: Tensor, Wx: Tensor, Wh: Tensor,
                b: Optional[Tensor]) -> Tensor:
        """x Wx + h Wh (+ b): every gate's pre-activation in one (batch, G*H) tensor."""
        y = autograd.add(autograd.matmul(x, Wx), autograd.matmul(h, Wh))
        return autograd.add_bias(y, b, axis=0) if b is not None else y

    def _default_weights(self, Wx, Wh, b):
        """step_forward's weights: those given, else the first layer's forward ones."""
        if Wx is None and Wh is None and b is None:
            if not self._initialized:
                raise RuntimeError(f"{type(self).__name__}.step_forward: the layer has no "
                                   "weights yet; call it on a sequence first (parameters are "
                                   "created on the first call) or pass Wx, Wh and b")
            return self._weights(0)
        if Wx is None or Wh is None:
            raise ValueError(f"{type(self).__name__}.step_forward: give both Wx and Wh, or "
                             "neither (the first layer's weights)")
        return Wx, Wh, b

    def step_forward(self, x: Tensor, h: Tensor, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} does not implement step_forward")

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
        return [autograd.reshape(p, (batch, self.input_size)) for p in parts]

    def _states(self, given: Optional[Tensor], name: str, x: Tensor) -> List[Tensor]:
        """A hidden or cell state split per layer and direction; zeros when not given."""
        cls = type(self).__name__
        n, batch, hsz = self.num_layers * self.num_directions, x.shape[0], self.hidden_size
        if given is None:
            return [tensor.zeros((batch, hsz), x.device, x.dtype) for _ in range(n)]
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
        if n == 1:
            return [given]
        return [autograd.reshape(p, (batch, hsz)) for p in autograd.split(given, 0, n)]

    def _stack_states(self, states: List[Tensor]) -> Tensor:
        if len(states) == 1:
            return states[0]
        batch, hsz = states[0].shape
        return autograd.cat([autograd.reshape(s, (1, batch, hsz)) for s in states], 0)

    def _run(self, xs: Steps, hx: Optional[Tensor], cx: Optional[Tensor]):
        """Runs every layer and direction; returns the outputs (in the input's form) and the
        stacked final h (and c)."""
        steps = self._steps(xs)
        self._match_inputs(steps[:1])  # parameters follow the input's device and dtype
        hs = self._states(hx, "h0", steps[0])
        cs = self._states(cx, "c0", steps[0]) if self.has_cell else None
        finals_h, finals_c = [], []
        inputs = steps
        for layer in range(self.num_layers):
            if layer > 0 and self.dropout > 0:  # autograd.dropout is the identity in eval
                inputs = [autograd.dropout(x, self.dropout) for x in inputs]
            per_direction = []
            for d in range(self.num_directions):
                k = layer * self.num_directions + d
                Wx, Wh, b = self._weights(k)
                h, c = hs[k], cs[k] if cs is not None else None
                outs = []
                for x in (inputs if d == 0 else inputs[::-1]):
                    if self.has_cell:
                        h, c = self.step_forward(x, h, c, Wx, Wh, b)
                    else:
                        h = self.step_forward(x, h, Wx, Wh, b)
                    outs.append(h)
                per_direction.append(outs if d == 0 else outs[::-1])
                finals_h.append(h)
                finals_c.append(c)
            inputs = per_direction[0] if len(per_direction) == 1 else \
                [autograd.cat(list(hs_t), 1) for hs_t in zip(*per_direction)]
        h = self._stack_states(finals_h)
        c = self._stack_states(finals_c) if self.has_cell else None
        if not isinstance(xs, Tensor):
            return inputs, h, c
        batch, width = inputs[0].shape
        shape = (batch, 1, width) if self.batch_first else (1, batch, width)
        axis = 1 if self.batch_first else 0
        if len(inputs) == 1:
            return autograd.reshape(inputs[0], shape), h, c
        return autograd.cat([autograd.reshape(o, shape) for o in inputs], axis), h, c

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
        """One step: the next hidden state (batch, H). Without weights, the first layer's."""
        Wx, Wh, b = self._default_weights(Wx, Wh, b)
        y = self._preact(x, h, Wx, Wh, b)
        return autograd.tanh(y) if self.nonlinearity == "tanh" else autograd.relu(y)

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
        """One step: the next (h, c), each (batch, H). Without weights, the first layer's."""
        Wx, Wh, b = self._default_weights(Wx, Wh, b)
        i, f, g, o = autograd.split(self._preact(x, h, Wx, Wh, b), 1, 4)
        c = autograd.add(autograd.mul(autograd.sigmoid(f), c),
                         autograd.mul(autograd.sigmoid(i), autograd.tanh(g)))
        return autograd.mul(autograd.sigmoid(o), autograd.tanh(c)), c

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
