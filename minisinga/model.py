"""Model: a Layer with compile(), train/eval modes, graph buffering and checkpoints."""

from __future__ import annotations

import io
import json
import os
import tempfile
import weakref
import zipfile
import zlib
from typing import Dict, Optional, Sequence

import numpy as np

from . import autograd, tensor
from .layer import Layer
from .tensor import Tensor

_FORMAT = "minisinga-states"


class _NoOptimizer:
    """Model.optimizer until set_optimizer: falsy, and calling it says what is missing."""

    def __bool__(self) -> bool:
        return False

    def __call__(self, *args, **kwargs):
        raise RuntimeError("the model has no optimizer: call model.set_optimizer(opt.SGD(...)) "
                           "before training")

    def __repr__(self) -> str:
        return "<no optimizer>"


class Model(Layer):
    """Subclasses define `forward(*inputs)` and `train_one_batch(*inputs)`.

    Calling the model runs `train_one_batch` in training mode and `forward` in eval mode. With
    `use_graph=True` the first training call records the step on the device (nothing is
    computed while recording) and runs it; later calls replay the recorded graph in C++.
    A replay repeats the recorded device work only: Python in `train_one_batch` runs once,
    so host values made there (numbers, numpy arrays, branches on them) are those of the
    first call (reading a tensor's value while recording is refused), and every call returns
    the same result tensors, refilled (copy what you keep). The step is recorded again when
    the inputs change how they alias, the optimizer, its settings or its schedule change, or
    another model records on the device."""

    def __init__(self):
        super().__init__()
        self.training = True
        self.graph_mode = False
        self.sequential = False
        self.optimizer = _NoOptimizer()
        self._compiled = False
        self._graph_inputs: Optional[tuple] = None
        self._graph_leaves: Optional[list] = None  # _leaves(self._graph_inputs)
        self._graph_results = None
        self._graph_version = None
        self._graph_key = None
        self._release = None  # resets the device's recording when this model is dropped
        self._device = None

    # ---- setup ----
    def set_optimizer(self, optimizer) -> None:
        self.optimizer = optimizer
        self._drop_graph()  # a recorded step holds the old optimizer's updates

    def compile(self, inputs: Sequence[Tensor], is_train: bool = True, use_graph: bool = False,
                sequential: bool = False) -> None:
        """Creates the parameters by running forward once on `inputs` (no gradients, no
        side effects on running statistics) and sets the training and graph modes."""
        inputs = list(inputs)
        if not inputs or not all(isinstance(t, Tensor) for t in inputs):
            raise TypeError("compile: inputs must be a non-empty list of Tensors")
        self._device = inputs[0].device
        with autograd.train_mode(False):
            self.forward(*inputs)
        self._name_params()
        self._compiled = True
        self.graph(use_graph, sequential)
        self.train(is_train)

    def _name_params(self) -> None:
        """Names each parameter by its dotted name (the optimizer keys its states by parameter
        name; one that trained eagerly before compile, or without it, had an id-based name,
        and its states move to the new one)."""
        opts = [o for _, o in self._optimizers()]
        for name, p in self.get_params().items():
            if p.name != name:
                if p.name is not None:
                    for o in opts:
                        o.rename_states(p.name, name)
                p.name = name

    def _optimizers(self):
        """(key, optimizer) for model.optimizer (key "") and for each other optimizer kept
        as an attribute (key: the attribute's name), e.g. one per head: all are
        checkpointed."""
        from .dist.distopt import DistOpt
        from .opt import Optimizer

        out = [("", self.optimizer)] if self.optimizer else []
        for k, v in vars(self).items():
            if (k != "optimizer" and not k.startswith("_") and isinstance(v, (Optimizer, DistOpt))
                    and v is not self.optimizer):
                out.append((k, v))
        return out

    def train(self, mode: bool = True) -> None:
        """Training mode: calls run train_one_batch and operators record gradients."""
        self.training = bool(mode)
        autograd.set_training(self.training)

    def eval(self) -> None:
        """Eval mode: calls run forward; BN uses running statistics, dropout is off."""
        self.train(False)

    def graph(self, mode: bool = True, sequential: bool = False) -> None:
        """Turns graph buffering on or off; any recorded graph is dropped."""
        self.graph_mode, self.sequential = bool(mode), bool(sequential)
        self._drop_graph()

    def _drop_graph(self) -> None:
        if (self._graph_inputs is not None and self._device is not None
                and self._device.graph_version() == self._graph_version):  # still ours
            self._device.ResetGraph()
        self._graph_inputs, self._graph_results = None, None

    def on_device(self, device) -> None:
        self._drop_graph()  # the old device's recorded step, and the memory it holds
        self._device = device
        for t in self.get_states().values():
            t.to_device(device)

    # ---- running ----
    def __call__(self, *args, **kwargs):
        if not self.training:
            return self.forward(*args, **kwargs)
        if not self.graph_mode:
            return self.train_one_batch(*args, **kwargs)
        return self._graph_step(args, kwargs)

    def train_one_batch(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} does not implement train_one_batch")

    def _graph_step(self, args, kwargs):
        if not self._compiled:
            raise RuntimeError("graph mode needs compile() first")
        leaves = _leaves((args, dict(kwargs)))
        # The step runs where its inputs are (the layers move their parameters there).
        x = next((v for v in leaves if isinstance(v, Tensor)), None)
        if x is not None and x.device != self._device:
            self._drop_graph()
            self._device = x.device
        dev = self._device
        # Recorded here, unless the device's graph changed since (another model recorded on
        # it: a device holds one graph): then replaying would run that model's step. Or the
        # optimizer's settings or learning-rate schedule changed (the recorded step has the
        # old ones), or the inputs alias each other differently.
        key = _optimizer_key(self.optimizer)
        if (self._graph_inputs is None or dev.graph_version() != self._graph_version
                or key != self._graph_key or not self._feed(leaves)):
            dev.ResetGraph()
            self._graph_inputs, self._graph_leaves = (args, dict(kwargs)), leaves
            try:  # from EnableGraph on: an interrupt anywhere must leave the device eager
                dev.EnableGraph(True)
                dev.set_graph_phase("forward")
                self._graph_results = self.train_one_batch(*args, **kwargs)
            except BaseException:
                dev.EnableGraph(False)
                dev.set_graph_phase("")
                dev.ResetGraph()
                self._graph_inputs = None
                raise
            dev.EnableGraph(False)
            dev.set_graph_phase("")
            self._graph_version = dev.graph_version()
            self._graph_key = key
            # The device keeps the recording (and the memory it holds) until it records
            # again; a model that is dropped releases it.
            if self._release is not None:
                self._release.detach()
            self._release = weakref.finalize(self, _reset_if_unchanged, dev,
                                             self._graph_version)
            self._release.atexit = False  # the process's end frees everything anyway
            # Drop the recorded autograd tape: only the graph should hold intermediates, so
            # it can release them after their last use.
            for t in _tensors_in(self._graph_results):
                t.creator = None
        dev.RunGraph(self.sequential)
        return self._graph_results

    def _feed(self, new: list) -> bool:
        """Checks a call (its _leaves) against the recorded one and copies its tensors (also
        inside lists, tuples and dicts) into the recorded input tensors (same shape and
        dtype). False when the step must be recorded again: the new tensors alias each other
        where the recorded ones did not, or the other way round."""
        rec = self._graph_leaves
        if len(rec) != len(new) or _aliases(rec) != _aliases(new):
            if len(rec) == len(new) and all(
                    isinstance(r, Tensor) == isinstance(n, Tensor) for r, n in zip(rec, new)):
                return False
            raise ValueError("graph mode: the model was recorded with different arguments; "
                             "call it with the same arguments or call graph() to re-record")
        for i, (r, n) in enumerate(zip(rec, new)):
            if not isinstance(r, Tensor):
                if isinstance(n, Tensor) or not _same_value(r, n):
                    raise ValueError(f"graph mode: input {i} was {r!r} when recorded, got "
                                     f"{n!r}; call graph() to re-record")
                continue
            if not isinstance(n, Tensor):
                raise TypeError(f"graph mode: input {i} was a Tensor when recorded, got "
                                f"{type(n).__name__}")
            if tuple(n.shape) != tuple(r.shape) or n.dtype != r.dtype:
                raise ValueError(
                    f"graph mode: input {i} has shape {tuple(n.shape)} and dtype "
                    f"{n.dtype.name}, but the graph was recorded with shape "
                    f"{tuple(r.shape)} and dtype {r.dtype.name}; refill the input "
                    "tensors with copy_from_numpy or call graph() to re-record")
            if n is not r and not n.data.same_block(r.data):
                r.copy_from(n)
        return True

    # ---- checkpoints ----
    # SINGA's checkpoint format: a zip holding these two files (save_states(format="singa")
    # writes it, load_states reads it as well as minisinga's own).
    TENSOR_DICT_FILENAME = "/tensor_dict.npz"
    STATES_ATTR_FILENAME = "/states_attr.json"
    MODEL_STATE_TYPE = 0
    AUX_STATE_TYPE = 1

    def save_states(self, fpath: str, aux_states: Optional[Dict[str, object]] = None,
                    format: str = "minisinga") -> None:  # noqa: A002
        """Writes the model's states (parameters, BN statistics) and `aux_states` (Tensors,
        arrays or numbers) to `fpath` atomically (a temporary file renamed into place).
        format "minisinga" (default) also keeps the optimizers' states (model.optimizer's and
        any other optimizer attribute's); "singa" writes Apache SINGA's zip (tensor_dict.npz +
        states_attr.json), which SINGA's Model.load_states reads: model and aux states only."""
        if format not in ("minisinga", "singa"):
            raise ValueError(f"save_states: format must be 'minisinga' or 'singa', got "
                             f"{format!r}")
        _check_save_path(fpath)
        model = {k: t.to_numpy() for k, t in self.get_states().items()}
        aux = {k: _aux_array(k, v) for k, v in (aux_states or {}).items()}
        if format == "singa":
            clash = sorted(set(model) & set(aux))
            if clash:
                raise ValueError(f"save_states: aux state names {clash} are model states too; "
                                 "SINGA's format keeps one namespace")
            _write_atomically(fpath, lambda f: _write_singa_zip(f, model, aux))
            return
        arrays: Dict[str, np.ndarray] = {"model/" + k: v for k, v in model.items()}
        self._name_params()
        for key, o in self._optimizers():
            for k, t in o.get_states().items():
                arrays[_opt_prefix(key) + k] = t.to_numpy()
        arrays.update({"aux/" + k: v for k, v in aux.items()})
        meta = {"format": _FORMAT, "version": 1, "model": type(self).__name__}
        arrays["__meta__"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
        _write_atomically(fpath, lambda f: _write_npz(f, arrays))

    def load_states(self, fpath: str) -> Dict[str, Tensor]:
        """Restores what save_states wrote, in minisinga's format or SINGA's zip; returns the
        aux states as Tensors (on the default device), as SINGA does. The model must have
        been compiled (its parameters exist)."""
        if not os.path.exists(fpath):
            raise FileNotFoundError(f"load_states: no checkpoint at {fpath!r}")
        try:
            with zipfile.ZipFile(fpath) as zf:
                names = set(zf.namelist())
                if {"tensor_dict.npz", "states_attr.json"} <= names:
                    model, aux = _read_singa_zip(zf)
                    opts = {}
                else:
                    model, opts, aux = self._read_own(fpath)
        except _CheckpointError:
            raise
        except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError, zlib.error,
                NotImplementedError, RuntimeError) as e:  # zipfile: a bad method, encrypted
            raise ValueError(f"load_states: {fpath!r} is not a readable checkpoint "
                             f"(truncated or corrupt): {e}") from None
        own = self.get_states()
        if not own:
            raise RuntimeError("load_states: the model has no parameters yet; compile it first")
        missing = sorted(set(own) - set(model))
        extra = sorted(set(model) - set(own))
        if missing or extra:
            raise ValueError(f"load_states: {fpath!r} does not match this model "
                             f"(missing: {missing}, unexpected: {extra})")
        for k, t in own.items():
            if tuple(model[k].shape) != tuple(t.shape):
                raise ValueError(f"load_states: {k!r} has shape {tuple(t.shape)} in the model "
                                 f"but {model[k].shape} in {fpath!r}")
            a = model[k]
            if t.dtype == tensor.float16 and a.dtype != np.float16 and a.size and np.any(
                    np.isfinite(a) & (np.abs(a) > np.finfo(np.float16).max)):
                raise ValueError(f"load_states: {k!r} in {fpath!r} holds values beyond "
                                 "float16's range (65504) and the model's tensor is float16; "
                                 "load it into a float32 model")
        # Optimizer states for the optimizers this model has (a model without one, e.g. for
        # inference, ignores them), checked before anything changes.
        self._name_params()
        params = self.get_params()
        restore = []
        for key, o in self._optimizers():
            states = opts.get(key)
            if not states:
                continue
            strays = sorted(k for k in states if k != "step_counter"
                            and k.rpartition(":")[0] not in params)
            if strays:
                raise ValueError(f"load_states: {fpath!r} holds optimizer states for "
                                 f"parameters this model does not have: {strays[:5]}")
            o.check_states(states)
            restore.append((o, states))
        try:  # also before anything changes
            aux_tensors = {k: Tensor(data=v, requires_grad=False) for k, v in aux.items()}
        except (TypeError, ValueError) as e:
            raise ValueError(f"load_states: an aux state in {fpath!r} cannot be a tensor: "
                             f"{e}") from None
        for k, t in own.items():
            t.copy_from_numpy(model[k])
        for o, states in restore:
            o.set_states(states)
        return aux_tensors

    def _read_own(self, fpath: str):
        """minisinga's npz: (model, optimizer, aux) arrays, the model's class checked."""
        with np.load(fpath, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        meta_raw = arrays.pop("__meta__", None)
        try:
            meta = json.loads(bytes(meta_raw).decode()) if meta_raw is not None else None
        except ValueError:
            meta = None
        if not meta or meta.get("format") != _FORMAT:
            raise _CheckpointError(f"load_states: {fpath!r} is not a minisinga or SINGA "
                                   "checkpoint")
        if meta.get("model") != type(self).__name__:
            raise _CheckpointError(f"load_states: {fpath!r} holds a {meta.get('model')} model, "
                                   f"not a {type(self).__name__}")
        model, aux = ({k[len(p):]: v for k, v in arrays.items() if k.startswith(p)}
                      for p in ("model/", "aux/"))
        opts: Dict[str, Dict[str, np.ndarray]] = {}
        for k, v in arrays.items():
            if k.startswith("opt/"):
                opts.setdefault("", {})[k[4:]] = v
            elif k.startswith("opt@"):  # another optimizer attribute: opt@<name>/<state>
                name, _, state = k[4:].partition("/")
                opts.setdefault(name, {})[state] = v
        return model, opts, aux


class _CheckpointError(ValueError):
    """A checkpoint that was read but is not one this model can load (message as is)."""


# SINGA's DataType numbers, for states_attr.json.
_SINGA_DTYPE = {np.dtype(np.float32): 0, np.dtype(np.float16): 1, np.dtype(np.int32): 2}


def _aux_array(key: str, v) -> np.ndarray:
    """An aux state as the array save_states writes, refused (naming it) unless load_states
    can make it a Tensor again: numbers, bool/int/float arrays, Tensors."""
    a = v.to_numpy() if isinstance(v, Tensor) else np.asarray(v)
    ok = a.dtype.kind in "biuf"
    if ok and a.dtype.kind in "iu" and a.size:
        ok = np.iinfo(np.int32).min <= a.min() and a.max() <= np.iinfo(np.int32).max
    if not ok:
        raise ValueError(f"save_states: aux state {key!r} is {v!r:.80}; expected a Tensor, a "
                         "number or a bool/int/float array (integers within int32), which "
                         "load_states gives back as a Tensor")
    return a


def _write_npz(f, arrays: Dict[str, np.ndarray]) -> None:
    """np.savez's layout (one <name>.npy per array), written here: np.savez(f, **arrays)
    would take names such as 'file' or 'allow_pickle' as its own arguments."""
    with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for k, v in arrays.items():
            with zf.open(k + ".npy", "w", force_zip64=True) as out:
                np.lib.format.write_array(out, np.asanyarray(v), allow_pickle=False)


def _write_singa_zip(f, model: Dict[str, np.ndarray], aux: Dict[str, np.ndarray]) -> None:
    buf = io.BytesIO()
    _write_npz(buf, {**model, **aux})
    attrs = {k: {"state_type": t, "shape": list(v.shape),
                 "dtype": _SINGA_DTYPE.get(v.dtype, 0)}
             for t, group in ((Model.MODEL_STATE_TYPE, model), (Model.AUX_STATE_TYPE, aux))
             for k, v in group.items()}
    with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(Model.TENSOR_DICT_FILENAME.lstrip("/"), buf.getvalue())
        zf.writestr(Model.STATES_ATTR_FILENAME.lstrip("/"), json.dumps(attrs))


def _read_singa_zip(zf: zipfile.ZipFile):
    """SINGA's zip: (model, aux) arrays by the state_type in states_attr.json."""
    attrs = json.loads(zf.read(Model.STATES_ATTR_FILENAME.lstrip("/")).decode())
    with np.load(io.BytesIO(zf.read(Model.TENSOR_DICT_FILENAME.lstrip("/"))),
                 allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    model, aux = {}, {}
    for k, v in arrays.items():
        kind = attrs.get(k, {}).get("state_type")
        if kind not in (Model.MODEL_STATE_TYPE, Model.AUX_STATE_TYPE):
            raise _CheckpointError(f"load_states: state {k!r} has no valid state_type in "
                                   "states_attr.json")
        (model if kind == Model.MODEL_STATE_TYPE else aux)[k] = v
    return model, aux


def _check_save_path(fpath) -> None:
    if not isinstance(fpath, (str, os.PathLike)) or not os.fspath(fpath) or \
            os.fspath(fpath).endswith(os.sep):
        raise ValueError(f"save_states: {fpath!r} is not a file path; give one such as "
                         "'checkpoint.zip'")


def _write_atomically(fpath: str, write) -> None:
    """write(f) into a temporary file beside fpath, synced, then renamed onto fpath (onto
    the file a symbolic link names: the link stays)."""
    fpath = os.path.realpath(fpath)
    d = os.path.dirname(fpath)
    if os.path.isdir(fpath):
        raise IsADirectoryError(f"save_states: {fpath!r} is a directory; give a file path")
    if not os.path.isdir(d):
        raise FileNotFoundError(f"save_states: the directory {d!r} of {fpath!r} does not "
                                "exist; create it first")
    fd, tmp = tempfile.mkstemp(prefix=os.path.basename(fpath) + ".", suffix=".tmp", dir=d)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            # mkstemp made it 0600: give it the mode of the file it replaces, else a new
            # file's (0666 less the umask).
            os.fchmod(f.fileno(), _new_file_mode(fpath))
            os.fsync(f.fileno())
        os.replace(tmp, fpath)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _opt_prefix(key: str) -> str:
    """Where an optimizer's states go in minisinga's checkpoint: opt/ for model.optimizer,
    opt@<attribute>/ for another one."""
    return "opt/" if key == "" else f"opt@{key}/"


def _new_file_mode(fpath: str) -> int:
    try:
        return os.stat(fpath).st_mode & 0o7777
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def _tensors_in(obj):
    if isinstance(obj, Tensor):
        yield obj
    elif isinstance(obj, (list, tuple)):
        for o in obj:
            yield from _tensors_in(o)
    elif isinstance(obj, dict):
        for o in obj.values():
            yield from _tensors_in(o)


def _leaves(obj, out: Optional[list] = None) -> list:
    """The tensors and other values in args/kwargs, depth first; a container is a leaf of
    (its type, its length or keys) followed by its items. (No recursive closure: its
    reference cycle would keep the call's input tensors alive until the cyclic GC ran.)"""
    out = [] if out is None else out
    if isinstance(obj, (list, tuple)):
        out.append(_Shape((type(obj), len(obj))))
        for e in obj:
            _leaves(e, out)
    elif isinstance(obj, dict):
        out.append(_Shape((dict, tuple(obj))))
        for e in obj.values():
            _leaves(e, out)
    else:
        out.append(obj)
    return out


class _Shape(tuple):
    """A container's place in _leaves (compared by value)."""

    def __eq__(self, other):
        return isinstance(other, _Shape) and tuple(self) == tuple(other)

    __hash__ = tuple.__hash__


def _aliases(leaves) -> list:
    """For each tensor leaf, the index of the first leaf holding the same tensor."""
    first: dict = {}
    return [first.setdefault(id(t), i) for i, t in enumerate(leaves) if isinstance(t, Tensor)]


def _reset_if_unchanged(dev, version: int) -> None:
    if dev.graph_version() == version:  # nobody recorded on it since
        dev.ResetGraph()


def _optimizer_key(optimizer):
    """What a recorded step took from the optimizer: itself, its schedule and its settings.
    The objects, not their ids (compared by identity): a new schedule may take a freed one's
    address, and holding them keeps that from happening."""
    settings = getattr(optimizer, "settings", None)
    return (_Same(optimizer), _Same(getattr(optimizer, "lr", None)),
            settings() if callable(settings) else None)


class _Same:
    """Holds an object; equal only to a holder of the same object."""
    __slots__ = ("obj",)

    def __init__(self, obj):
        self.obj = obj

    def __eq__(self, other):
        return isinstance(other, _Same) and other.obj is self.obj

    __hash__ = None


def _same_value(a, b) -> bool:
    try:
        return bool(a == b)
    except Exception:
        return a is b
