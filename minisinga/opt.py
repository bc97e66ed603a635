"""Optimizers: state in the class, math in one fused device kernel per parameter.

The learning rate and the step count are 1-element device tensors updated by recorded ops, so a
replayed graph sees their new values at every step. As in SINGA, every other float setting
(momentum, dampening, weight decay, betas, epsilon, rho) may be a DecayScheduler too: then the
update kernels read all of them from one small device tensor that step() rewrites."""

from __future__ import annotations

import itertools
import weakref
from typing import Dict, Optional, Union

import numpy as np

from . import _core, autograd, tensor
from .device import eager
from .tensor import Tensor

_U = _core.UnaryOp
_AUTO_NAMES = itertools.count()  # names of unnamed parameters: never reused, unlike id()


def _real(owner: str, name: str, v, lo: float = 0.0, hi: Optional[float] = None,
          open_hi: bool = False, alt: str = "") -> float:
    """v as a float, checked finite and in [lo, hi] ([lo, hi) with open_hi) when made, not at
    the first update (which may be inside a recorded graph); `alt` names what else the
    setting may be."""
    ok = tensor.is_number(v) and bool(np.isfinite(v)) and v >= lo
    if ok and hi is not None:
        ok = v < hi if open_hi else v <= hi
    if not ok:
        bound = f">= {lo:g}" if hi is None else f"in [{lo:g}, {hi:g}{')' if open_hi else ']'}"
        raise ValueError(f"{owner}: {name} must be a finite number {bound}{alt}, got {v!r}")
    return float(v)


class DecayScheduler:
    """Maps the step counter (a one-element device tensor) to a learning rate (another).

    As in SINGA, a subclass implements `call(step: Tensor) -> Tensor`; the built-in ones
    work on the core tensors directly (`_core_call`). The ops run on the device, so a
    recorded training step computes each step's rate when it is replayed."""

    def __init__(self, init_value: float):
        self.init_value = _real(type(self).__name__, "init_value", init_value)

    def __call__(self, step):
        """step: a Tensor or a core tensor; returns the same kind."""
        raw = not isinstance(step, Tensor)
        if type(self).call is DecayScheduler.call:
            out = self._core_call(step if raw else step.data)
            return out if raw else Tensor(data=out, requires_grad=False)
        out = self.call(Tensor(data=step, requires_grad=False) if raw else step)
        if not isinstance(out, Tensor):
            raise TypeError(f"{type(self).__name__}.call must return a Tensor, got "
                            f"{type(out).__name__}")
        return out.data if raw else out

    def call(self, step: Tensor) -> Tensor:
        raise NotImplementedError(f"{type(self).__name__}: a DecayScheduler implements "
                                  "call(step), step being the step counter (a Tensor)")

    def _core_call(self, step: "_core.Tensor") -> "_core.Tensor":
        return self.call(Tensor(data=step, requires_grad=False)).data


class Constant(DecayScheduler):
    def _core_call(self, step):
        return _core.unary(_U.AddScalar, _core.unary(_U.MulScalar, step, 0.0), self.init_value)


class ExponentialDecay(DecayScheduler):
    """lr = init * decay_rate ^ (step / decay_steps), floored exponent when staircase."""

    def __init__(self, init_value: float, decay_steps: int, decay_rate: float,
                 staircase: bool = False):
        super().__init__(init_value)
        if _real("ExponentialDecay", "decay_steps", decay_steps) == 0:
            raise ValueError("ExponentialDecay: decay_steps must be positive, got 0")
        self.decay_steps = decay_steps
        self.decay_rate = _real("ExponentialDecay", "decay_rate", decay_rate)
        self.staircase = staircase

    def _core_call(self, step):
        e = _core.unary(_U.MulScalar, step, 1.0 / self.decay_steps)
        if self.staircase:
            e = _core.unary(_U.Floor, e)
        return _core.unary(_U.MulScalar, _core.unary(_U.RPowScalar, e, self.decay_rate),
                           self.init_value)


class Optimizer:
    """Base: `opt(loss)` runs backward, updates every parameter as its gradient arrives, then
    advances the step counter."""

    state_kinds: Optional[tuple] = None  # the per-parameter buffers a subclass keeps
    # The float settings a DecayScheduler may drive, in the order of the update op's `hyper`.
    hyper_names: tuple = ()

    def __init__(self, lr: Union[float, DecayScheduler], dtype=tensor.float32):
        self.step_counter: Optional[Tensor] = None
        self.lr_value: Optional[Tensor] = None
        self.hyper_value: Optional[Tensor] = None  # made when a setting is a schedule
        self.lr = lr
        self.dtype = tensor.to_dtype(dtype)
        self._states: Dict[str, Dict[str, Tensor]] = {}
        # As in SINGA, the step counter and the current rate exist from the start (on the
        # default device; they move to the parameters' device at the first update).
        self._begin(tensor.get_default_device())

    @property
    def lr(self) -> DecayScheduler:
        """The learning-rate schedule; a number set here becomes Constant(number). A new
        schedule applies from the next update (a Model re-records its graph for it)."""
        return self._lr

    @lr.setter
    def lr(self, lr: Union[float, DecayScheduler]) -> None:
        if not isinstance(lr, DecayScheduler):
            lr = Constant(_real(type(self).__name__, "lr", lr, alt=" or a DecayScheduler"))
        self._lr = lr
        if self.lr_value is not None:
            with eager(self.lr_value.device):
                self._refresh_lr()

    # ---- the public SINGA API ----
    def __call__(self, loss: Tensor) -> None:
        """Back-propagates `loss`, updates every parameter, then steps (SINGA's
        call + step)."""
        self.call(loss)
        self.step()

    def call(self, loss: Tensor) -> None:
        """Back-propagates `loss` and updates every parameter; step() is the caller's, as
        in SINGA."""
        self._begin(loss.device)
        self._backward_and_apply(loss)

    def _backward_and_apply(self, loss: Tensor) -> None:
        dev = loss.device
        dev.set_graph_phase("backward")  # labels recorded nodes for profiling
        for p, g in autograd.backward(loss, retain_graph=False):
            dev.set_graph_phase("update")
            self.apply(self._name(p), p, g)
            dev.set_graph_phase("backward")
        dev.set_graph_phase("update")

    backward_and_update = __call__

    def step(self) -> None:
        """Advances the step counter, the learning rate and the scheduled settings (recorded
        device ops)."""
        _core.unary(_U.AddScalar, self.step_counter.data, 1.0, out=self.step_counter.data)
        self._refresh_lr()
        self._refresh_hyper()

    def update(self, param: Tensor, grad: Tensor) -> None:
        """Updates one parameter with its gradient (SINGA's name)."""
        if self.step_counter is None:
            self._begin(param.device)
        self.apply(self._name(param), param, grad)

    def apply(self, name: str, param: Tensor, grad: Tensor) -> None:
        raise NotImplementedError

    # ---- states ----
    def get_states(self) -> Dict[str, Tensor]:
        """Step counter and per-parameter buffers, by name."""
        out: Dict[str, Tensor] = {}
        if self.step_counter is not None:
            out["step_counter"] = self.step_counter
        for pname, bufs in self._states.items():
            for bname, t in bufs.items():
                out[f"{pname}:{bname}"] = t
        return out

    def check_states(self, states: Dict[str, object]) -> None:
        """Raises, changing nothing, unless set_states can restore every entry of `states`."""
        for key, v in states.items():
            if key == "step_counter":
                if np.size(v.to_numpy() if isinstance(v, Tensor) else v) != 1:
                    raise ValueError(f"set_states: step_counter must hold one number, got "
                                     f"{v!r}")
                continue
            pname, _, bname = key.rpartition(":")
            if not pname:
                raise KeyError(f"set_states: unknown optimizer state {key!r} (expected "
                               "'step_counter' or '<parameter>:<buffer>')")
            if self.state_kinds is not None and bname not in self.state_kinds:
                raise ValueError(f"set_states: {type(self).__name__} keeps no {bname!r} state "
                                 f"(got {key!r}; its states are {list(self.state_kinds)}): "
                                 "saved by another optimizer?")

    def set_states(self, states: Dict[str, object]) -> None:
        """Restores what get_states returned (numpy arrays or Tensors)."""
        self.check_states(states)
        for key, v in states.items():
            arr = v.to_numpy() if isinstance(v, Tensor) else np.asarray(v)
            if key == "step_counter":
                if self.step_counter is None:
                    self._begin(tensor.get_default_device())
                self.step_counter.copy_from_numpy(arr)
                self._refresh_lr()
                self._refresh_hyper()
                continue
            pname, _, bname = key.rpartition(":")
            old = self._states.get(pname, {}).get(bname)
            if old is not None and tuple(old.shape) == tuple(arr.shape):
                # In place: a recorded graph updates this buffer at every replay.
                old.copy_from_numpy(arr)
                continue
            buf = Tensor(arr.shape, self.step_counter.device if self.step_counter is not None
                         else None, requires_grad=False)
            buf.copy_from_numpy(arr)
            self._states.setdefault(pname, {})[bname] = buf

    def settings(self) -> tuple:
        """The numeric settings (momentum, betas, ...) and schedules: a recorded training step
        holds the numbers and the schedules' ops, so a Model records again when they change
        (a schedule compares by identity)."""
        return tuple(sorted(((k, v) for k, v in vars(self).items() if not k.startswith("_")
                             and isinstance(v, (bool, int, float, DecayScheduler))),
                            key=lambda kv: kv[0]))

    def rename_states(self, old: str, new: str) -> None:
        """Keys the buffers kept for parameter name `old` by `new` (Model names parameters
        that trained before they had names)."""
        if old in self._states:
            self._states[new] = self._states.pop(old)

    # ---- helpers for subclasses ----
    def _begin(self, device) -> None:
        if self.step_counter is None:
            with eager(device):  # created once, not at every replay of a recorded graph
                self.step_counter = tensor.zeros((1,), device)
                self.lr_value = tensor.zeros((1,), device)
                self._refresh_lr()
        elif self.step_counter.device != device:
            with eager(device):  # moved once, also when the first update is being recorded
                self.step_counter.to_device(device)
                self.lr_value.to_device(device)
                if self.hyper_value is not None:
                    self.hyper_value.to_device(device)

    def _refresh_lr(self) -> None:
        _core.copy(self.lr_value.data, self.lr(self.step_counter.data))

    def _setting(self, name: str, v, hi: Optional[float] = None, open_hi: bool = False) -> None:
        """Stores float setting `name`: a number >= 0 (below or up to `hi`), checked, or a
        DecayScheduler, whose init_value is checked so and decides, as in SINGA, which terms
        the update has (momentum 0: no momentum buffer)."""
        owner = type(self).__name__
        if isinstance(v, DecayScheduler):
            _real(owner, f"{name}'s init_value", v.init_value, hi=hi, open_hi=open_hi)
        else:
            v = _real(owner, name, v, hi=hi, open_hi=open_hi, alt=" or a DecayScheduler")
        setattr(self, name, v)

    def _number(self, name: str) -> float:
        """Setting `name` as a number: itself, or its schedule's init_value."""
        v = getattr(self, name)
        return v.init_value if isinstance(v, DecayScheduler) else v

    def _hyper(self) -> Optional["_core.Tensor"]:
        """The update op's `hyper`: None where every setting of hyper_names is a number; else
        the device tensor of their values at the current step (made here, on the step
        counter's device, outside any recording; step() rewrites it, _begin moves it)."""
        if not any(isinstance(getattr(self, n), DecayScheduler) for n in self.hyper_names):
            return None
        if self.hyper_value is None:
            dev = self.step_counter.device
            with eager(dev):
                self.hyper_value = tensor.zeros((len(self.hyper_names),), dev)
                self._refresh_hyper()
        return self.hyper_value.data

    def _refresh_hyper(self) -> None:
        if self.hyper_value is None:
            return
        step = self.step_counter.data
        values = []
        for name in self.hyper_names:
            v = getattr(self, name)
            sched = v if isinstance(v, DecayScheduler) else Constant(v)
            out = sched(step)
            if out.numel != 1:
                raise ValueError(f"{type(self).__name__}: the schedule of {name} must give one "
                                 f"value per step, got shape {out.shape}")
            values.append(out.reshape([1]))
        _core.copy(self.hyper_value.data, _core.concat(values, 0))

    @staticmethod
    def _name(p: Tensor) -> str:
        if p.name is None:
            p.name = f"param{next(_AUTO_NAMES)}"
            p._auto_named = True  # its states go when it does (see _buffer)
        return p.name

    def _buffer(self, name: str, key: str, like: Tensor, value: float = 0.0) -> Tensor:
        bufs = self._states.setdefault(name, {})
        b = bufs.get(key)
        if b is not None and tuple(b.shape) == tuple(like.shape) and b.device != like.device:
            with eager(like.device):  # the parameter moved (Model.on_device): its state too
                b.to_device(like.device)
        if not bufs and getattr(like, "_auto_named", False) and like.name == name:
            # Nothing else will ever ask for an unnamed parameter's states: drop them with it.
            weakref.finalize(like, _drop_states, weakref.ref(self), name)
        if b is None or tuple(b.shape) != tuple(like.shape):
            # float16 params keep float32 state: the update runs in float32 (csrc/ops/half.h)
            # and small running averages would round away in float16.
            dtype = tensor.float32 if like.dtype == tensor.float16 else like.dtype
            with eager(like.device):
                b = tensor.full(like.shape, value, like.device, dtype)
            bufs[key] = b
        return b

    @staticmethod
    def _check(name: str, param: Tensor, grad: Tensor) -> None:
        if tuple(param.shape) != tuple(grad.shape):
            raise ValueError(f"update of {name}: gradient shape {grad.shape} does not match "
                             f"parameter shape {param.shape}")


def _drop_states(opt_ref, name: str) -> None:
    opt = opt_ref()
    if opt is not None:
        opt._states.pop(name, None)


class SGD(Optimizer):
    """SGD with momentum, dampening, weight decay and Nesterov momentum:
    g = grad + wd * p; buf = momentum * buf + (1 - dampening) * g (buf starts at 0);
    g = g + momentum * buf if nesterov else buf; p -= lr * g."""

    state_kinds = ("momentum",)

    hyper_names = ("momentum", "dampening", "weight_decay")

    def __init__(self, lr=0.1, momentum: Union[float, DecayScheduler] = 0.0,
                 dampening: Union[float, DecayScheduler] = 0.0,
                 weight_decay: Union[float, DecayScheduler] = 0.0, nesterov: bool = False,
                 dtype=tensor.float32):
        super().__init__(lr, dtype)
        self._setting("momentum", momentum)
        self._setting("dampening", dampening, hi=1.0)
        self._setting("weight_decay", weight_decay)
        if nesterov and (self._number("momentum") <= 0 or self._number("dampening") != 0):
            raise ValueError("SGD: nesterov needs momentum > 0 and dampening = 0 (a schedule's "
                             "init_value)")
        self.nesterov = bool(nesterov)

    def apply(self, name, param, grad):
        self._check(name, param, grad)
        momentum = self._number("momentum")
        buf = self._buffer(name, "momentum", param).data if momentum > 0 else None
        _core.sgd_update(param.data, grad.data, self.lr_value.data, buf, momentum,
                         self._number("dampening"), self._number("weight_decay"),
                         self.nesterov, hyper=self._hyper())  # buf starts at 0


class Adam(Optimizer):
    """Adam with bias correction; weight decay is added to the gradient (L2)."""

    state_kinds = ("m", "v")

    hyper_names = ("beta_1", "beta_2", "epsilon", "weight_decay")

    def __init__(self, lr=0.001, beta_1: Union[float, DecayScheduler] = 0.9,
                 beta_2: Union[float, DecayScheduler] = 0.999,
                 epsilon: Union[float, DecayScheduler] = 1e-8,
                 weight_decay: Union[float, DecayScheduler] = 0.0, dtype=tensor.float32):
        super().__init__(lr, dtype)
        self._setting("beta_1", beta_1, hi=1.0, open_hi=True)
        self._setting("beta_2", beta_2, hi=1.0, open_hi=True)
        self._setting("epsilon", epsilon)
        self._setting("weight_decay", weight_decay)
        self._t: Optional["_core.Tensor"] = None

    def call(self, loss):
        self._begin(loss.device)
        # t = step + 1 for the bias correction of this step, computed on the device.
        self._t = _core.unary(_U.AddScalar, self.step_counter.data, 1.0)
        self._backward_and_apply(loss)

    def apply(self, name, param, grad):
        self._check(name, param, grad)
        if self._t is None:
            self._t = _core.unary(_U.AddScalar, self.step_counter.data, 1.0)
        m = self._buffer(name, "m", param)
        v = self._buffer(name, "v", param)
        _core.adam_update(param.data, grad.data, m.data, v.data, self.lr_value.data, self._t,
                          *(self._number(n) for n in self.hyper_names), hyper=self._hyper())

    def step(self):
        super().step()
        self._t = None


class AdaGrad(Optimizer):
    """sum_sq += g^2; p -= lr * g / (sqrt(sum_sq) + eps)."""

    state_kinds = ("sum_sq",)

    hyper_names = ("epsilon", "weight_decay")

    def __init__(self, lr=0.01, epsilon: Union[float, DecayScheduler] = 1e-10,
                 weight_decay: Union[float, DecayScheduler] = 0.0, dtype=tensor.float32):
        super().__init__(lr, dtype)
        self._setting("epsilon", epsilon)
        self._setting("weight_decay", weight_decay)

    def apply(self, name, param, grad):
        self._check(name, param, grad)
        s = self._buffer(name, "sum_sq", param)
        _core.adagrad_update(param.data, grad.data, s.data, self.lr_value.data,
                             *(self._number(n) for n in self.hyper_names), hyper=self._hyper())


class RMSProp(Optimizer):
    """sq = rho * sq + (1 - rho) * g^2; p -= lr * g / (sqrt(sq) + eps)."""

    state_kinds = ("sq_avg",)

    hyper_names = ("rho", "epsilon", "weight_decay")

    def __init__(self, lr=0.01, rho: Union[float, DecayScheduler] = 0.9,
                 epsilon: Union[float, DecayScheduler] = 1e-8,
                 weight_decay: Union[float, DecayScheduler] = 0.0, dtype=tensor.float32):
        super().__init__(lr, dtype)
        self._setting("rho", rho, hi=1.0, open_hi=True)
        self._setting("epsilon", epsilon)
        self._setting("weight_decay", weight_decay)

    def apply(self, name, param, grad):
        self._check(name, param, grad)
        s = self._buffer(name, "sq_avg", param)
        _core.rmsprop_update(param.data, grad.data, s.data, self.lr_value.data,
                             *(self._number(n) for n in self.hyper_names), hyper=self._hyper())

from .dist.distopt import DistOpt  # noqa: E402,F401 - SINGA's opt.DistOpt
