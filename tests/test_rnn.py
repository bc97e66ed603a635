"""Recurrent layers (layer.RNN, layer.LSTM, layer.GRU, layer.CudnnRNN): forward against a numpy
implementation of the same equations, gradients against its central finite differences,
eager == graph, checkpoints, dropout between layers, per-sequence lengths, the errors, and the
char-RNN example."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from dist_helpers import pythonpath
from gradcheck import check_op, numeric_grad

from minisinga import _core, device, layer, model, opt, tensor
from minisinga import autograd as ag

REPO = Path(__file__).resolve().parents[1]


# ---- the numpy reference (float64) ----
def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def np_rnn(kind, xs, h0, c0, weights, num_layers, num_dirs, nonlinearity="tanh", masks=None):
    """xs (seq, batch, in); h0, c0 (layers * dirs, batch, H); weights[k] = (Wx, Wh, b or None)
    (GRU: and bh or None) for layer * dirs + direction; masks[l - 1][t] multiplies step t's
    input of layer l >= 1.
    Returns outs (seq, batch, dirs * H), h (layers * dirs, batch, H) and c (or None)."""
    seq = xs.shape[0]
    inputs = list(xs)
    hs, cs = [], []
    for layer_ in range(num_layers):
        if layer_ > 0 and masks is not None:
            inputs = [x * m for x, m in zip(inputs, masks[layer_ - 1])]
        per_dir = []
        for d in range(num_dirs):
            k = layer_ * num_dirs + d
            wx, wh, b = weights[k][:3]
            bh = weights[k][3] if len(weights[k]) > 3 else None
            h, c = h0[k], (c0[k] if c0 is not None else None)
            outs = [None] * seq
            for t in (range(seq) if d == 0 else range(seq - 1, -1, -1)):
                if kind == "gru":
                    gx = inputs[t] @ wx + (0.0 if b is None else b)
                    gh = h @ wh + (0.0 if bh is None else bh)
                    (xr, xz, xn), (hr, hz, hn) = np.split(gx, 3, 1), np.split(gh, 3, 1)
                    r, z = sigmoid(xr + hr), sigmoid(xz + hz)
                    n = np.tanh(xn + r * hn)
                    h = (1 - z) * n + z * h
                    outs[t] = h
                    continue
                g = inputs[t] @ wx + h @ wh + (0.0 if b is None else b)
                if kind == "lstm":
                    i, f, gg, o = np.split(g, 4, axis=1)
                    c = sigmoid(f) * c + sigmoid(i) * np.tanh(gg)
                    h = sigmoid(o) * np.tanh(c)
                else:
                    h = np.tanh(g) if nonlinearity == "tanh" else np.maximum(g, 0.0)
                outs[t] = h
            hs.append(h)
            cs.append(c)
            per_dir.append(outs)
        inputs = [np.concatenate([p[t] for p in per_dir], axis=1) for t in range(seq)]
    return np.stack(inputs), np.stack(hs), (np.stack(cs) if kind == "lstm" else None)


# (id, kind, constructor kwargs, input form, seq, batch, input_size, hidden, give states)
CONFIGS = [
    ("rnn_tanh_list", "rnn", {}, "list", 3, 2, 3, 4, True),
    ("rnn_relu_list", "rnn", {"nonlinearity": "relu"}, "list", 3, 2, 3, 4, True),
    ("rnn_2layers_seq", "rnn", {"num_layers": 2}, "seq", 3, 2, 3, 3, True),
    ("rnn_bidir_batch_first", "rnn", {"bidirectional": True, "batch_first": True},
     "batch_first", 3, 2, 2, 3, True),
    ("rnn_nobias_zero_state", "rnn", {"bias": False}, "list", 2, 3, 3, 2, False),
    ("lstm_list", "lstm", {}, "list", 3, 2, 3, 3, True),
    ("lstm_2layers_seq", "lstm", {"num_layers": 2}, "seq", 3, 2, 2, 3, True),
    ("lstm_bidir_2layers_list", "lstm", {"num_layers": 2, "bidirectional": True}, "list",
     3, 2, 2, 2, True),
    ("lstm_batch_first_zero_state", "lstm", {"batch_first": True}, "batch_first", 2, 2, 3, 2,
     False),
    ("lstm_one_step_seq", "lstm", {}, "seq", 1, 2, 3, 2, True),
    ("gru_list", "gru", {}, "list", 3, 2, 3, 4, True),
    ("gru_2layers_seq", "gru", {"num_layers": 2}, "seq", 3, 2, 3, 3, True),
    ("gru_bidir_batch_first", "gru", {"bidirectional": True, "batch_first": True},
     "batch_first", 3, 2, 2, 3, True),
    ("gru_bidir_2layers_list", "gru", {"num_layers": 2, "bidirectional": True}, "list",
     3, 2, 2, 2, True),
    ("gru_nobias_zero_state_seq", "gru", {"bias": False}, "seq", 2, 3, 3, 2, False),
]
IDS = [c[0] for c in CONFIGS]


def make_layer(kind, inp, hid, kwargs):
    return {"lstm": layer.LSTM, "gru": layer.GRU, "rnn": layer.RNN}[kind](inp, hid, **kwargs)


def case_data(cfg, seed=0):
    """float64 arrays: xs (seq, batch, in), h0, c0 (layers * dirs, batch, H) or None."""
    _, kind, kwargs, _, seq, batch, inp, hid, give = cfg
    n = kwargs.get("num_layers", 1) * (2 if kwargs.get("bidirectional") else 1)
    r = np.random.default_rng(seed)
    xs = r.standard_normal((seq, batch, inp))
    h0 = r.standard_normal((n, batch, hid)) * 0.5 if give else np.zeros((n, batch, hid))
    c0 = (r.standard_normal((n, batch, hid)) * 0.5 if give else np.zeros((n, batch, hid))) \
        if kind == "lstm" else None
    return xs, h0, c0


def to_t(a, dev, grad=False):
    return tensor.Tensor(data=np.asarray(a, np.float32), device=dev, requires_grad=grad,
                         stores_grad=grad)


def run_layer(cfg, lay, xs, h0, c0, dev, grad=False):
    """Runs `lay` on the case's inputs in the case's form; returns (input tensors, state
    tensors, outs (seq, batch, out) as a list of tensors or one tensor, h, c)."""
    _, kind, kwargs, form, *_ = cfg
    n = h0.shape[0]
    if form == "list":
        x_in = [to_t(x, dev, grad) for x in xs]
    elif form == "seq":
        x_in = to_t(xs, dev, grad)
    else:
        x_in = to_t(xs.transpose(1, 0, 2), dev, grad)
    given = cfg[8]
    shape = h0.shape[1:] if n == 1 else h0.shape
    h_t = to_t(h0.reshape(shape), dev, grad) if given else None
    c_t = to_t(c0.reshape(shape), dev, grad) if (given and kind == "lstm") else None
    if kind == "lstm":
        outs, h, c = lay(x_in, (h_t, c_t)) if given else lay(x_in)
    else:
        outs, h = lay(x_in, h_t) if given else lay(x_in)
        c = None
    return x_in, (h_t, c_t), outs, h, c


def outs_numpy(cfg, outs):
    form = cfg[3]
    if form == "list":
        return np.stack([o.to_numpy() for o in outs])
    a = outs.to_numpy()
    return a.transpose(1, 0, 2) if form == "batch_first" else a


def weights_of(lay):
    """The layer's parameters as float64 (Wx, Wh, b or None (, bh or None)) per layer and
    direction."""
    out = []
    for k in range(lay.num_layers * lay.num_directions):
        out.append(tuple(None if t is None else t.to_numpy().astype(np.float64)
                         for t in lay._weights(k)))
    return out


@pytest.mark.parametrize("cfg", CONFIGS, ids=IDS)
def test_forward_matches_numpy(dev, cfg):
    _, kind, kwargs, form, seq, batch, inp, hid, _ = cfg
    xs, h0, c0 = case_data(cfg)
    lay = make_layer(kind, inp, hid, kwargs)
    _, _, outs, h, c = run_layer(cfg, lay, xs, h0, c0, dev)
    n = lay.num_layers * lay.num_directions
    want_o, want_h, want_c = np_rnn(kind, xs, h0, c0, weights_of(lay), lay.num_layers,
                                    lay.num_directions, kwargs.get("nonlinearity", "tanh"))
    if form == "list":
        assert isinstance(outs, list) and len(outs) == seq
        assert all(o.shape == (batch, hid * lay.num_directions) for o in outs)
    else:
        assert outs.shape == ((batch, seq) if form == "batch_first" else (seq, batch)) + (
            hid * lay.num_directions,)
    assert h.shape == ((batch, hid) if n == 1 else (n, batch, hid))
    assert h.device == dev
    np.testing.assert_allclose(outs_numpy(cfg, outs), want_o, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(h.to_numpy().reshape(want_h.shape), want_h, rtol=1e-5,
                               atol=1e-5)
    if kind == "lstm":
        assert c.shape == h.shape
        np.testing.assert_allclose(c.to_numpy().reshape(want_c.shape), want_c, rtol=1e-5,
                                   atol=1e-5)


@pytest.mark.parametrize("cfg", CONFIGS, ids=IDS)
def test_gradients_match_finite_differences(dev, cfg):
    """d(loss)/d(inputs, h0, c0, every parameter) for loss = sum(outs * R) + sum(h * Rh)
    (+ sum(c * Rc)), against central differences of the float64 reference."""
    _, kind, kwargs, form, seq, batch, inp, hid, given = cfg
    xs, h0, c0 = case_data(cfg, seed=1)
    lay = make_layer(kind, inp, hid, kwargs)
    with ag.train_mode():
        x_in, (h_t, c_t), outs, h, c = run_layer(cfg, lay, xs, h0, c0, dev, grad=True)
        r = np.random.default_rng(2)
        n = lay.num_layers * lay.num_directions
        ro = r.standard_normal((seq, batch, hid * lay.num_directions))
        rh, rc = r.standard_normal((n, batch, hid)), r.standard_normal((n, batch, hid))
        hc_shape = (batch, hid) if n == 1 else (n, batch, hid)
        if form == "list":
            pairs = [(o, ro[t]) for t, o in enumerate(outs)]
        else:
            pairs = [(outs, ro.transpose(1, 0, 2) if form == "batch_first" else ro)]
        pairs.append((h, rh.reshape(hc_shape)))
        if kind == "lstm":
            pairs.append((c, rc.reshape(hc_shape)))
        loss = None
        for t, w in pairs:
            term = ag.reduce_sum(ag.mul(t, to_t(w, dev)), None, False)
            loss = term if loss is None else ag.add(loss, term)
    grads = ag.gradients(loss)

    weights = weights_of(lay)
    names = lay.param_names()
    arrays = {"xs": xs, "h0": h0, **({"c0": c0} if kind == "lstm" else {})}
    for k, ws in enumerate(weights):
        for kind_name, w in zip(lay.param_kinds, ws):
            if w is not None:
                arrays[kind_name + lay._suffix(k)] = w

    def loss_np(a):
        ws = [tuple(a.get(p + lay._suffix(k)) for p in lay.param_kinds)
              for k in range(len(weights))]
        o, hh, cc = np_rnn(kind, a["xs"], a["h0"], a.get("c0"), ws, lay.num_layers,
                           lay.num_directions, kwargs.get("nonlinearity", "tanh"))
        total = (o * ro).sum() + (hh * rh).sum()
        return total + ((cc * rc).sum() if kind == "lstm" else 0.0)

    def numeric(name):
        return numeric_grad(lambda v: loss_np({**arrays, name: v}), arrays[name])

    params = lay.get_params()
    assert sorted(params) == sorted(names) == sorted(k for k in arrays if k not in
                                                     ("xs", "h0", "c0"))
    tol = dict(rtol=1e-2, atol=1e-3)
    for name in names:
        assert params[name] in grads, f"no gradient for {name}"
        np.testing.assert_allclose(grads[params[name]].to_numpy(), numeric(name),
                                   err_msg=name, **tol)
    num_x = numeric("xs")
    if form == "list":
        for t, x in enumerate(x_in):
            np.testing.assert_allclose(grads[x].to_numpy(), num_x[t], err_msg=f"x[{t}]", **tol)
    else:
        got = grads[x_in].to_numpy()
        got = got.transpose(1, 0, 2) if form == "batch_first" else got
        np.testing.assert_allclose(got, num_x, err_msg="xs", **tol)
    if given:
        for name, t in (("h0", h_t), ("c0", c_t)):
            if t is not None:
                np.testing.assert_allclose(grads[t].to_numpy().reshape(arrays[name].shape),
                                           numeric(name), err_msg=name, **tol)


def test_step_forward_is_one_step_of_the_first_layer():
    r = np.random.default_rng(3)
    x, h, c = (to_t(r.standard_normal(s), None) for s in ((2, 3), (2, 4), (2, 4)))
    lstm = layer.LSTM(3, 4)
    with pytest.raises(RuntimeError, match="LSTM.step_forward: the layer has no weights yet"):
        lstm.step_forward(x, h, c)
    outs, h1, c1 = lstm([x], (h, c))
    sh, sc = lstm.step_forward(x, h, c)
    np.testing.assert_array_equal(sh.to_numpy(), h1.to_numpy())
    np.testing.assert_array_equal(sc.to_numpy(), c1.to_numpy())
    rnn = layer.RNN(3, 4, num_layers=2)
    rnn([x])
    sh = rnn.step_forward(x, h)  # SINGA's call: the first layer's weights
    sh2 = rnn.step_forward(x, h, rnn.Wx, rnn.Wh, rnn.b)
    want = np.tanh(x.to_numpy() @ rnn.Wx.to_numpy() + h.to_numpy() @ rnn.Wh.to_numpy()
                   + rnn.b.to_numpy())
    np.testing.assert_allclose(sh.to_numpy(), want, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(sh2.to_numpy(), sh.to_numpy())
    with pytest.raises(ValueError, match="give both Wx and Wh"):
        rnn.step_forward(x, h, rnn.Wx)
    assert isinstance(lstm, layer.RNN_Base) and isinstance(rnn, layer.RNN_Base)


@pytest.mark.parametrize("kind", ["RNN", "LSTM", "GRU"])
def test_a_sequence_equals_its_steps_and_an_overriding_step_forward_is_called(kind):
    """A sequence runs as one input projection for all its steps, then the recurrence: the
    same numbers as step_forward step by step; a subclass's own step_forward is called at
    every step instead."""
    r = np.random.default_rng(5)
    xs = [to_t(r.standard_normal((2, 3)), None) for _ in range(4)]
    base = getattr(layer, kind)
    calls = []

    class Counted(base):
        def step_forward(self, x, h, *args):
            calls.append(1)
            return super().step_forward(x, h, *args)

    def run(cls):
        tensor.get_default_device().SetRandSeed(7)
        m = cls(3, 4)
        outs = m(xs)[0]
        h = c = None
        for x in xs:  # the first layer's step, by hand
            if kind == "LSTM":
                h, c = m.step_forward(x, h, c)
            else:
                h = m.step_forward(x, h)
        return [o.to_numpy() for o in outs], h.to_numpy()

    outs, h = run(base)
    np.testing.assert_allclose(outs[-1], h, rtol=1e-6, atol=1e-7)
    calls.clear()
    outs_c, _ = run(Counted)
    assert len(calls) == 2 * len(xs)  # the sequence's steps, then the steps by hand
    np.testing.assert_allclose(np.array(outs_c), np.array(outs), rtol=1e-6, atol=1e-7)


def test_parameters_shapes_names_initialisation_and_seed():
    dev = device.create_cpu_device()
    x = tensor.Tensor((4, 2, 5), dev).set_value(0.1)

    def params(seed):
        dev.SetRandSeed(seed)
        lstm = layer.LSTM(5, 16, num_layers=2, bidirectional=True)
        lstm(x)
        return {k: v.to_numpy() for k, v in lstm.get_params().items()}

    p = params(7)
    assert list(p) == ["Wx", "Wh", "b", "Wx_reverse", "Wh_reverse", "b_reverse",
                       "Wx_l1", "Wh_l1", "b_l1", "Wx_l1_reverse", "Wh_l1_reverse",
                       "b_l1_reverse"]
    assert p["Wx"].shape == (5, 64) and p["Wh"].shape == (16, 64) and p["b"].shape == (64,)
    assert p["Wx_l1"].shape == (32, 64) and p["Wx_l1_reverse"].shape == (32, 64)
    bound = 1.0 / np.sqrt(16)
    every = np.concatenate([v.ravel() for v in p.values()])
    assert np.abs(every).max() <= bound
    assert abs(every.std() - bound / np.sqrt(3)) < 0.1 * bound  # uniform's std
    assert abs(every.mean()) < 0.05 * bound
    same, other = params(7), params(8)
    for k in p:
        np.testing.assert_array_equal(same[k], p[k])
        assert not np.array_equal(other[k], p[k])
    rnn = layer.RNN(5, 3, bias=False)
    rnn(x)
    assert list(rnn.get_params()) == ["Wx", "Wh"]
    assert all(t.stores_grad and t.requires_grad for t in rnn.get_params().values())


class CharModel(model.Model):
    """LSTM (or GRU) over (seq, batch, vocab) -> Linear per step -> softmax cross-entropy
    against the (seq * batch,) labels."""

    def __init__(self, vocab, hidden, num_layers=1, dropout=0.0, kind="lstm"):
        super().__init__()
        self.hidden = hidden
        self.rnn = make_layer(kind, vocab, hidden, {"num_layers": num_layers,
                                                    "dropout": dropout})
        self.fc = layer.Linear(vocab)
        self.loss = layer.SoftMaxCrossEntropy()

    def forward(self, x):
        out = self.rnn(x)[0]
        return self.fc(ag.reshape(out, (-1, self.hidden)))

    def train_one_batch(self, x, y):
        out = self.forward(x)
        loss = self.loss(out, y)
        self.optimizer(loss)
        return out, loss


def train_char_model(dev, graph, sequential=True, steps=3, num_layers=2, dropout=0.3,
                     kind="lstm"):
    dev.SetRandSeed(0)
    r = np.random.default_rng(0)
    seq, batch, vocab = 4, 3, 6
    tx = tensor.Tensor((seq, batch, vocab), dev)
    ty = tensor.Tensor((seq * batch,), dev, dtype=tensor.int32)
    m = CharModel(vocab, 5, num_layers, dropout, kind)
    m.set_optimizer(opt.Adam(0.05))
    m.compile([tx], is_train=True, use_graph=graph, sequential=sequential)
    losses = []
    for _ in range(steps):
        ids = r.integers(0, vocab, (seq + 1, batch))
        tx.copy_from_numpy(np.eye(vocab, dtype=np.float32)[ids[:-1]])
        ty.copy_from_numpy(ids[1:].reshape(-1).astype(np.int32))
        _, loss = m(tx, ty)
        losses.append(loss.item())
    states = {k: v.to_numpy() for k, v in m.get_states().items()}
    m.eval()
    return losses, states


@pytest.mark.parametrize("sequential", [True, False], ids=["sequential", "dependency"])
def test_graph_mode_equals_eager(dev, sequential):
    """An LSTM (2 layers, dropout between them) + Linear + softmax cross-entropy trained 3
    steps by replaying the recorded graph gives eager mode's losses and parameters."""
    ref_losses, ref_states = train_char_model(dev, graph=False)
    losses, states = train_char_model(dev, graph=True, sequential=sequential)
    np.testing.assert_allclose(losses, ref_losses, rtol=1e-5, atol=1e-6)
    assert sorted(states) == sorted(ref_states) and "rnn.Wx_l1" in states
    for k in ref_states:
        np.testing.assert_allclose(states[k], ref_states[k], rtol=1e-5, atol=1e-6, err_msg=k)
    _, untrained = train_char_model(dev, graph=False, steps=0)
    assert not np.allclose(states["rnn.Wh"], untrained["rnn.Wh"])  # the steps trained it


def test_gru_graph_mode_equals_eager(dev):
    """The same with a 2-layer GRU (dropout between the layers): graph replays give eager
    mode's losses and parameters, the hidden-side biases included."""
    ref_losses, ref_states = train_char_model(dev, graph=False, kind="gru")
    losses, states = train_char_model(dev, graph=True, kind="gru")
    np.testing.assert_allclose(losses, ref_losses, rtol=1e-5, atol=1e-6)
    assert sorted(states) == sorted(ref_states) and "rnn.bh_l1" in states
    for k in ref_states:
        np.testing.assert_allclose(states[k], ref_states[k], rtol=1e-5, atol=1e-6, err_msg=k)
    _, untrained = train_char_model(dev, graph=False, steps=0, kind="gru")
    assert not np.allclose(states["rnn.bh"], untrained["rnn.bh"])


def test_gru_step_forward_and_parameters():
    r = np.random.default_rng(4)
    x, h = to_t(r.standard_normal((2, 3)), None), to_t(r.standard_normal((2, 4)), None)
    gru = layer.GRU(3, 4, num_layers=2)
    with pytest.raises(RuntimeError, match="pass Wx, Wh, b, bh"):
        gru.step_forward(x, h)
    gru([x])
    p = {k: v.to_numpy() for k, v in gru.get_params().items()}
    assert list(p) == ["Wx", "Wh", "b", "bh", "Wx_l1", "Wh_l1", "b_l1", "bh_l1"]
    assert p["Wx"].shape == (3, 12) and p["Wh"].shape == (4, 12) and p["bh"].shape == (12,)
    assert p["Wx_l1"].shape == (4, 12)
    assert np.abs(np.concatenate([v.ravel() for v in p.values()])).max() <= 0.5
    want = np_rnn("gru", x.to_numpy()[None].astype(np.float64),
                  h.to_numpy()[None].astype(np.float64), None, weights_of(gru)[:1], 1, 1)[1][0]
    np.testing.assert_allclose(gru.step_forward(x, h).to_numpy(), want, rtol=1e-5, atol=1e-6)
    nobias = layer.GRU(3, 4, bias=False)
    nobias([x])
    assert list(nobias.get_params()) == ["Wx", "Wh"]
    assert isinstance(gru, layer.RNN_Base)


def test_save_and_load_states_round_trip(tmp_path):
    dev = device.create_cpu_device()
    _, states = train_char_model(dev, graph=False, steps=2)
    x = tensor.from_numpy(np.random.default_rng(5).random((4, 3, 6)).astype(np.float32), dev)
    a = CharModel(6, 5, 2, 0.3)
    a.set_optimizer(opt.Adam(0.05))
    a.compile([x], is_train=False)
    a.set_states(states)
    path = str(tmp_path / "lstm.npz")
    a.save_states(path)
    dev.SetRandSeed(99)  # another initialisation
    b = CharModel(6, 5, 2, 0.3)
    b.set_optimizer(opt.Adam(0.05))
    b.compile([x], is_train=False)
    assert not np.array_equal(b.rnn.Wx.to_numpy(), states["rnn.Wx"])
    b.load_states(path)
    for k, v in b.get_states().items():
        np.testing.assert_array_equal(v.to_numpy(), states[k], err_msg=k)
    a.eval()
    b.eval()
    np.testing.assert_array_equal(a(x).to_numpy(), b(x).to_numpy())


def test_dropout_between_layers_only_in_training():
    """Training: step t's input of layer l >= 1 is multiplied by a fresh mask (1/(1-p) or 0)
    from the device RNG (reproduced here with the same seed); not the network input, not in
    eval mode, and not with one layer."""
    dev = device.create_cpu_device()
    p, seq, batch, inp, hid = 0.4, 3, 4, 3, 5
    cfg = ("", "rnn", {"num_layers": 3, "dropout": p}, "seq", seq, batch, inp, hid, True)
    xs, h0, _ = case_data(cfg)
    rnn = layer.RNN(inp, hid, num_layers=3, dropout=p)
    rnn(to_t(xs, dev))  # creates the parameters
    weights = weights_of(rnn)
    plain, _, _ = np_rnn("rnn", xs, h0, None, weights, 3, 1)

    def run(training):
        dev.SetRandSeed(11)
        with ag.train_mode(training):
            out, _ = rnn(to_t(xs, dev), to_t(h0, dev))
        return out.to_numpy()

    np.testing.assert_allclose(run(False), plain, rtol=1e-5, atol=1e-5)
    trained = run(True)
    dev.SetRandSeed(11)
    masks = [[tensor.Tensor((batch, hid), dev).bernoulli(1 - p).to_numpy() / (1 - p)
              for _ in range(seq)] for _ in range(2)]
    assert 0 < np.mean([m == 0 for ms in masks for m in ms]) < 1
    want, _, _ = np_rnn("rnn", xs, h0, None, weights, 3, 1, masks=masks)
    np.testing.assert_allclose(trained, want, rtol=1e-5, atol=1e-5)
    assert not np.allclose(trained, plain)
    np.testing.assert_allclose(run(True), trained)  # same seed, same masks

    one = layer.LSTM(inp, hid, dropout=p)
    with ag.train_mode():
        a, _, _ = one(to_t(xs, dev))
    b, _, _ = one(to_t(xs, dev))
    np.testing.assert_array_equal(a.to_numpy(), b.to_numpy())


def test_constructor_errors():
    with pytest.raises(ValueError, match="RNN: nonlinearity must be 'tanh' or 'relu'"):
        layer.RNN(3, 4, nonlinearity="sigmoid")
    with pytest.raises(ValueError, match="LSTM: nonlinearity must be 'tanh'"):
        layer.LSTM(3, 4, "relu")
    with pytest.raises(TypeError, match="nonlinearity must be a string"):
        layer.RNN(3, 4, 1, None)
    with pytest.raises(ValueError, match="hidden_size must be an integer >= 1"):
        layer.RNN(3, 0)
    with pytest.raises(ValueError, match="input_size must be an integer >= 1"):
        layer.LSTM(2.5, 4)
    with pytest.raises(ValueError, match="num_layers must be an integer >= 1"):
        layer.LSTM(3, 4, num_layers=0)
    with pytest.raises(ValueError, match=r"dropout must be a number in \[0, 1\)"):
        layer.LSTM(3, 4, num_layers=2, dropout=1.0)
    with pytest.raises(TypeError, match="bidirectional must be True or False"):
        layer.RNN(3, 4, bidirectional="yes")


@pytest.mark.parametrize("fresh", [True, False], ids=["before_init", "after_init"])
def test_input_errors(fresh):
    def f(*s):
        return tensor.Tensor(s).set_value(0.5)

    def lstm():
        m = layer.LSTM(3, 4)
        if not fresh:
            m([f(2, 3)])
        return m

    def rnn2():
        m = layer.RNN(3, 4, num_layers=2)
        if not fresh:
            m([f(2, 3)])
        return m

    cases = [
        (lambda: lstm()([f(2, 3), f(2, 5)]), ValueError,
         r"LSTM: step 1 of xs has shape \(2, 5\), expected \(batch, 3\)"),
        (lambda: lstm()(f(4, 2, 5)), ValueError,
         r"expected input_size 3 features, got input of shape \(4, 2, 5\) \(seq, batch"),
        (lambda: lstm()(f(2, 3)), ValueError, "a tensor input must be 3-d"),
        (lambda: lstm()([]), ValueError, "LSTM: empty sequence"),
        (lambda: lstm()(f(0, 2, 3)), ValueError, "LSTM: empty sequence"),
        (lambda: lstm()([f(2, 3), f(3, 3)]), ValueError,
         "step 1 of xs has batch size 3 but step 0 has 2"),
        (lambda: lstm()([f(2, 3)], (f(3, 4), None)), ValueError,
         r"h0 has shape \(3, 4\), expected \(2, 4\) \(batch, hidden_size\)"),
        (lambda: lstm()([f(2, 3)], (None, f(2, 5))), ValueError, "c0 has shape"),
        (lambda: lstm()([f(2, 3)], f(2, 4)), TypeError, r"a pair \(h0, c0\) or None"),
        (lambda: rnn2()([f(2, 3)], f(2, 4)), ValueError,
         r"expected \(2, 2, 4\) \(num_layers \* num_directions, batch, hidden_size\)"),
        (lambda: rnn2()([f(2, 3)], np.zeros((2, 2, 4), np.float32)), TypeError,
         "inputs must be Tensors"),
        (lambda: rnn2()([np.zeros((2, 3), np.float32)]), TypeError,
         "step 0 of xs is a ndarray, expected a Tensor"),
        (lambda: rnn2()(5), TypeError, "xs must be a list of"),
        (lambda: rnn2()([tensor.Tensor((2, 3), dtype=tensor.int32)]), TypeError,
         "must be float32 or float16, got int32"),
        (lambda: layer.RNN(3, 4, batch_first=True)(f(2, 0, 3)), ValueError,
         r"empty sequence \(input of shape \(2, 0, 3\) \(batch, seq, feature\)\)"),
    ]
    for fn, exc, match in cases:
        with pytest.raises(exc, match=match):
            fn()


def test_h0_on_another_device_is_refused():
    other = device.create_cpu_device()
    rnn = layer.RNN(3, 4)
    with pytest.raises(ValueError, match="h0 is on .* but the input on"):
        rnn([tensor.Tensor((2, 3)).set_value(1.0)], tensor.Tensor((2, 4), other).set_value(0))


# ---- CudnnRNN: SINGA's cuDNN layer's API on our layers ----
# (rnn_mode, activation, kind of the wrapped layer, its constructor kwargs)
MODES = [
    ("lstm", "tanh", "lstm", {}),
    ("gru", "tanh", "gru", {}),
    ("tanh", "tanh", "rnn", {"nonlinearity": "tanh"}),
    ("relu", "tanh", "rnn", {"nonlinearity": "relu"}),  # SINGA: rnn_mode wins over activation
    ("vanilla", "relu", "rnn", {"nonlinearity": "relu"}),
]
MODE_IDS = [f"{m}_{a}" for m, a, _, _ in MODES]


def cudnn_inputs(dev, kind, n, batch, seq, inp, hid, seed=0, batch_first=True):
    """float64 x (batch, seq, in) (or (seq, batch, in)), hx, cx (n, batch, H) and tensors."""
    r = np.random.default_rng(seed)
    x = r.standard_normal((batch, seq, inp) if batch_first else (seq, batch, inp))
    hx = r.standard_normal((n, batch, hid)) * 0.5
    cx = r.standard_normal((n, batch, hid)) * 0.5 if kind == "lstm" else None
    return x, hx, cx


@pytest.mark.parametrize("mode", MODES, ids=MODE_IDS)
def test_cudnn_rnn_equals_the_wrapped_layer(dev, mode):
    """Every rnn_mode gives the corresponding layer's outputs and final states when that layer
    has the same parameters (copied by name); return_sequences=False gives the last step."""
    rnn_mode, act, kind, nl = mode
    batch_first = rnn_mode in ("lstm", "relu", "vanilla")
    batch, seq, inp, hid = 2, 4, 3, 3
    x, hx, cx = cudnn_inputs(dev, kind, 4, batch, seq, inp, hid, batch_first=batch_first)
    c = layer.CudnnRNN(hid, activation=act, num_layers=2, batch_first=batch_first,
                       bidirectional=True, rnn_mode=rnn_mode)
    tx, thx = to_t(x, dev), to_t(hx, dev)
    tcx = to_t(cx, dev) if kind == "lstm" else None
    y = c(tx, thx, tcx)
    assert isinstance(y, tensor.Tensor) and y.shape == tx.shape[:2] + (2 * hid,)
    assert c.input_size == inp and type(c.rnn).__name__ == kind.upper()
    ref = make_layer(kind, inp, hid, {"num_layers": 2, "bidirectional": True,
                                      "batch_first": batch_first, **nl})
    ref(tx)
    ref.set_params(c.get_params())
    assert list(ref.get_params()) == list(c.get_params())
    got = ref(tx, (thx, tcx)) if kind == "lstm" else ref(tx, thx)
    np.testing.assert_allclose(y.to_numpy(), got[0].to_numpy(), rtol=1e-6, atol=1e-6)
    states = c(tx, thx, tcx, return_state=True)
    assert len(states) == (3 if kind == "lstm" else 2)
    for a, b in zip(states, got):
        np.testing.assert_allclose(a.to_numpy(), b.to_numpy(), rtol=1e-6, atol=1e-6)
    # the reference in numpy, to be sure both are right
    xs = x if not batch_first else x.transpose(1, 0, 2)
    want, _, _ = np_rnn(kind, xs, hx, cx, weights_of(c.rnn), 2, 2, nl.get("nonlinearity"))
    want = want.transpose(1, 0, 2) if batch_first else want
    np.testing.assert_allclose(y.to_numpy(), want, rtol=1e-5, atol=1e-5)
    last = layer.CudnnRNN(hid, activation=act, num_layers=2, batch_first=batch_first,
                          bidirectional=True, rnn_mode=rnn_mode, return_sequences=False)
    last(tx)
    last.set_params(c.get_params())
    y_last = last(tx, thx, tcx)
    np.testing.assert_allclose(y_last.to_numpy(), want[:, -1] if batch_first else want[-1],
                               rtol=1e-5, atol=1e-5)
    y0 = c(tx)  # zero states
    want0, _, _ = np_rnn(kind, xs, 0 * hx, None if cx is None else 0 * cx, weights_of(c.rnn),
                         2, 2, nl.get("nonlinearity"))
    np.testing.assert_allclose(y0.to_numpy(), want0.transpose(1, 0, 2) if batch_first
                               else want0, rtol=1e-5, atol=1e-5)


def alone(kind, nl, x, hx, cx, weights, lengths, num_layers, dirs):
    """Each sequence b of the batch-first x run alone for lengths[b] steps (numpy): its
    outputs (L, width), final h and c (n, H)."""
    runs = []
    for b, n_steps in enumerate(lengths):
        o, h, c = np_rnn(kind, x[b, :n_steps][:, None], hx[:, b:b + 1],
                         None if cx is None else cx[:, b:b + 1], weights, num_layers, dirs,
                         nl.get("nonlinearity", "tanh"))
        runs.append((o[:, 0], h[:, 0], None if c is None else c[:, 0]))
    return runs


@pytest.mark.parametrize("as_tensor", [False, True], ids=["list", "tensor"])
@pytest.mark.parametrize("mode", MODES[:3], ids=MODE_IDS[:3])
def test_cudnn_rnn_seq_lengths(dev, mode, as_tensor):
    """Padded sequences: the outputs past each length are 0, the final states and the valid
    outputs are those of running each sequence alone at its own length (both directions, two
    layers; the padding holds random values), and return_sequences=False gives each
    sequence's output at its own last step."""
    rnn_mode, act, kind, nl = mode
    batch, seq, inp, hid, lengths = 3, 4, 3, 3, [4, 1, 3]
    x, hx, cx = cudnn_inputs(dev, kind, 4, batch, seq, inp, hid, seed=5)
    tx, thx = to_t(x, dev), to_t(hx, dev)
    tcx = to_t(cx, dev) if kind == "lstm" else None
    kw = dict(num_layers=2, bidirectional=True, rnn_mode=rnn_mode, use_mask=True)
    c = layer.CudnnRNN(hid, **kw)

    def lens():
        return to_int(lengths, dev) if as_tensor else lengths

    y, *states = c(tx, thx, tcx, seq_lengths=lens(), return_state=True)
    runs = alone(kind, nl, x, hx, cx, weights_of(c.rnn), lengths, 2, 2)
    y = y.to_numpy()
    for b, (o, h, cc) in enumerate(runs):
        n_steps = lengths[b]
        np.testing.assert_allclose(y[b, :n_steps], o, rtol=1e-5, atol=1e-5, err_msg=f"y[{b}]")
        assert np.all(y[b, n_steps:] == 0), f"padding outputs of sequence {b}"
        np.testing.assert_allclose(states[0].to_numpy()[:, b], h, rtol=1e-5, atol=1e-5)
        if kind == "lstm":
            np.testing.assert_allclose(states[1].to_numpy()[:, b], cc, rtol=1e-5, atol=1e-5)
    last = layer.CudnnRNN(hid, return_sequences=False, **kw)
    last(tx, seq_lengths=lens())
    last.set_params(c.get_params())
    y_last = last(tx, thx, tcx, seq_lengths=lens()).to_numpy()
    assert y_last.shape == (batch, 2 * hid)
    for b, (o, _, _) in enumerate(runs):
        np.testing.assert_allclose(y_last[b], o[-1], rtol=1e-5, atol=1e-5)
    # all full length: the same as no masking
    full = c(tx, thx, tcx, seq_lengths=[seq] * batch).to_numpy()
    c.use_mask = False
    np.testing.assert_allclose(full, c(tx, thx, tcx).to_numpy(), rtol=0, atol=0)


def to_int(values, dev):
    return tensor.Tensor(data=np.asarray(values, np.int32), device=dev, dtype=tensor.int32,
                         requires_grad=False)


# (id, mode, extra kwargs, return_sequences)
MASK_GRAD_CASES = [
    ("lstm_bidir_sequences", MODES[0], {"bidirectional": True}, True),
    ("gru_2layers_last", MODES[1], {"num_layers": 2}, False),
    ("tanh_bidir_last", MODES[2], {"bidirectional": True}, False),
]


@pytest.mark.parametrize("case", MASK_GRAD_CASES, ids=[c[0] for c in MASK_GRAD_CASES])
def test_cudnn_rnn_seq_lengths_gradients(case):
    """d(loss)/d(x, hx, cx, every parameter) with seq_lengths, against central differences
    of running each sequence alone in numpy (so the padding steps' inputs get 0)."""
    _, (rnn_mode, act, kind, nl), kw, return_sequences = case
    dev = device.get_default_device()
    batch, seq, inp, hid, lengths = 2, 3, 2, 2, [3, 1]
    c = layer.CudnnRNN(hid, rnn_mode=rnn_mode, use_mask=True,
                       return_sequences=return_sequences, **kw)
    n = c.num_layers * c.num_directions
    x, hx, cx = cudnn_inputs(dev, kind, n, batch, seq, inp, hid, seed=7)
    r = np.random.default_rng(8)
    width = hid * c.num_directions
    ry = r.standard_normal((batch, seq, width) if return_sequences else (batch, width))
    rh, rc = r.standard_normal((n, batch, hid)), r.standard_normal((n, batch, hid))
    with ag.train_mode():
        tx, thx = to_t(x, dev, True), to_t(hx, dev, True)
        tcx = to_t(cx, dev, True) if kind == "lstm" else None
        outs = c(tx, thx, tcx, seq_lengths=to_int(lengths, dev), return_state=True)
        loss = None
        for t, w in zip(outs, (ry, rh, rc)):
            term = ag.reduce_sum(ag.mul(t, to_t(w, dev)), None, False)
            loss = term if loss is None else ag.add(loss, term)
    grads = ag.gradients(loss)

    lay = c.rnn
    names = lay.param_names()
    arrays = {"x": x, "hx": hx, **({"cx": cx} if kind == "lstm" else {})}
    for k, ws in enumerate(weights_of(lay)):
        for kind_name, w in zip(lay.param_kinds, ws):
            if w is not None:
                arrays[kind_name + lay._suffix(k)] = w

    def loss_np(a):
        ws = [tuple(a.get(p + lay._suffix(k)) for p in lay.param_kinds) for k in range(n)]
        total = 0.0
        runs = alone(kind, nl, a["x"], a["hx"], a.get("cx"), ws, lengths, c.num_layers,
                     c.num_directions)
        for b, (o, h, cc) in enumerate(runs):
            total += (o * ry[b, :lengths[b]]).sum() if return_sequences else \
                (o[-1] * ry[b]).sum()
            total += (h * rh[:, b]).sum() + ((cc * rc[:, b]).sum() if cc is not None else 0.0)
        return total

    params = c.get_params()
    assert list(params) == names
    tol = dict(rtol=1e-2, atol=1e-3)
    for name, t in [*params.items(), ("x", tx), ("hx", thx), ("cx", tcx)]:
        if t is None:
            continue
        num = numeric_grad(lambda v, n=name: loss_np({**arrays, n: v}), arrays[name])
        np.testing.assert_allclose(grads[t].to_numpy(), num, err_msg=name, **tol)
    assert np.all(grads[tx].to_numpy()[1, 1:] == 0)  # the padding never reaches the loss


class SeqClassifier(model.Model):
    """CudnnRNN over padded (batch, seq, in) sequences with their lengths -> the output at each
    sequence's last step -> Linear -> softmax cross-entropy."""

    def __init__(self, rnn_mode):
        super().__init__()
        self.rnn = layer.CudnnRNN(4, rnn_mode=rnn_mode, bidirectional=True, use_mask=True,
                                  return_sequences=False, dropout=0.2, num_layers=2)
        self.fc = layer.Linear(3)
        self.loss = layer.SoftMaxCrossEntropy()

    def forward(self, x, lens):
        return self.fc(self.rnn(x, seq_lengths=lens))

    def train_one_batch(self, x, lens, y):
        out = self.forward(x, lens)
        loss = self.loss(out, y)
        self.optimizer(loss)
        return out, loss


def train_classifier(dev, graph, rnn_mode, steps=3):
    dev.SetRandSeed(0)
    r = np.random.default_rng(0)
    batch, seq, inp = 4, 5, 3
    tx = tensor.Tensor((batch, seq, inp), dev)
    tl = tensor.Tensor((batch,), dev, dtype=tensor.int32)
    ty = tensor.Tensor((batch,), dev, dtype=tensor.int32)
    tx.copy_from_numpy(r.standard_normal((batch, seq, inp)).astype(np.float32))
    tl.copy_from_numpy(np.full(batch, seq, np.int32))
    m = SeqClassifier(rnn_mode)
    m.set_optimizer(opt.SGD(0.1, momentum=0.9))
    m.compile([tx, tl], is_train=True, use_graph=graph)
    losses = []
    for _ in range(steps):  # other data and other lengths at every step
        tx.copy_from_numpy(r.standard_normal((batch, seq, inp)).astype(np.float32))
        tl.copy_from_numpy(r.integers(1, seq + 1, batch).astype(np.int32))
        ty.copy_from_numpy(r.integers(0, 3, batch).astype(np.int32))
        _, loss = m(tx, tl, ty)
        losses.append(loss.item())
    m.eval()
    return losses, {k: v.to_numpy() for k, v in m.get_states().items()}


@pytest.mark.parametrize("rnn_mode", ["lstm", "gru"])
def test_cudnn_rnn_seq_lengths_graph_equals_eager(dev, rnn_mode):
    """Training with lengths that change at every step: replaying the recorded graph (masks
    computed on the device from the lengths tensor) gives eager mode's losses and
    parameters."""
    ref_losses, ref_states = train_classifier(dev, False, rnn_mode)
    losses, states = train_classifier(dev, True, rnn_mode)
    np.testing.assert_allclose(losses, ref_losses, rtol=1e-5, atol=1e-6)
    assert sorted(states) == sorted(ref_states) and "rnn.Wx_l1_reverse" in states
    for k in ref_states:
        np.testing.assert_allclose(states[k], ref_states[k], rtol=1e-5, atol=1e-6, err_msg=k)
    _, untrained = train_classifier(dev, False, rnn_mode, steps=0)
    assert not np.allclose(states["rnn.Wh"], untrained["rnn.Wh"])


def test_cudnn_rnn_errors():
    x = tensor.Tensor((2, 3, 4)).set_value(0.5)  # (batch 2, seq 3, input 4)
    with pytest.raises(ValueError, match="CudnnRNN: rnn_mode must be one of lstm, gru, tanh"):
        layer.CudnnRNN(4, rnn_mode="sigmoid")
    with pytest.raises(ValueError, match="CudnnRNN: activation must be 'tanh' or 'relu'"):
        layer.CudnnRNN(4, activation="sigmoid")
    with pytest.raises(TypeError, match="CudnnRNN: rnn_mode must be a string"):
        layer.CudnnRNN(4, rnn_mode=2)
    with pytest.raises(ValueError, match="CudnnRNN: hidden_size must be an integer >= 1"):
        layer.CudnnRNN(0)
    with pytest.raises(ValueError, match=r"CudnnRNN: dropout must be a number in \[0, 1\)"):
        layer.CudnnRNN(4, dropout=-0.1)
    with pytest.raises(TypeError, match="CudnnRNN: use_mask must be True or False"):
        layer.CudnnRNN(4, use_mask="yes")

    def masked(**kw):
        c = layer.CudnnRNN(5, use_mask=True, **kw)
        c(x, seq_lengths=[3, 1])
        return c

    cases = [
        (lambda: masked()(x, seq_lengths=[4, 1]), ValueError,
         r"seq_lengths must be in \[1, 3\] \(the padded sequence length\), got \[4\]"),
        (lambda: masked()(x, seq_lengths=[0, 2]), ValueError, r"got \[0\]"),
        (lambda: masked()(x, seq_lengths=[3, 2, 1]), ValueError,
         "seq_lengths has 3 lengths for a batch of 2 sequences"),
        (lambda: masked()(x, seq_lengths=to_int([3, 3, 3], None)), ValueError,
         r"int32 tensor of shape \(2,\)"),
        (lambda: masked()(x, seq_lengths=tensor.Tensor((2,)).set_value(3)), ValueError,
         "must be an int32 tensor"),
        (lambda: masked()(x, seq_lengths=to_int([3, 5], None)), ValueError,
         r"seq_lengths must be in \[1, 3\]"),  # a tensor's values, checked outside training
        (lambda: masked()(x, seq_lengths=[2.5, 1]), TypeError, "list of ints"),
        (lambda: masked()(x), ValueError, "use_mask=True needs seq_lengths"),
        (lambda: layer.CudnnRNN(5)(x, seq_lengths=[3, 1]), ValueError,
         "seq_lengths given but use_mask is False"),
        (lambda: layer.CudnnRNN(5, rnn_mode="gru")(x, None, tensor.Tensor((1, 2, 5))),
         ValueError, "cx is the LSTM's cell state, but rnn_mode is 'gru'"),
        (lambda: layer.CudnnRNN(5, num_layers=2)(x, tensor.Tensor((1, 2, 5))), ValueError,
         r"hx has shape \(1, 2, 5\), expected \(2, 2, 5\)"),
        (lambda: layer.CudnnRNN(5)(tensor.Tensor((2, 4))), ValueError,
         r"x must be 3-d \(batch, seq, input_size\)"),
        (lambda: masked()(tensor.Tensor((2, 3, 6))), ValueError, "built for input_size 4"),
        (lambda: layer.CudnnRNN(5)([x]), TypeError, "x must be a 3-d Tensor"),
    ]
    for fn, exc, match in cases:
        with ag.train_mode(False), pytest.raises(exc, match=match):
            fn()
    # training never reads a tensor's lengths back (a recorded graph could not): no error there
    c = masked()
    with ag.train_mode():
        c(x, seq_lengths=to_int([3, 5], None))


def test_cudnn_rnn_checkpoint_names_are_the_wrapped_layers():
    """A CudnnRNN's parameters carry the wrapped layer's names, so states saved from a model
    with layer.LSTM load into one with layer.CudnnRNN(rnn_mode="lstm") and give the same
    outputs."""
    x = tensor.from_numpy(np.random.default_rng(9).random((2, 3, 4)).astype(np.float32))
    lstm = layer.LSTM(4, 5, num_layers=2, batch_first=True)
    out, _, _ = lstm(x)
    c = layer.CudnnRNN(5, num_layers=2)
    c(x)
    assert list(c.get_params()) == list(lstm.get_params())
    c.set_states(lstm.get_states())
    np.testing.assert_array_equal(c(x).to_numpy(), out.to_numpy())


# ---- the example ----
LOSS_RE = re.compile(r"^Epoch (\d+): loss = (\d+\.\d{4}), (\d+\.\d{3})s$", re.M)


def run_char_rnn(*args, timeout=300):
    env = dict(os.environ, PYTHONPATH=pythonpath(), OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, str(REPO / "examples" / "rnn" / "char_rnn.py"),
                           *args], capture_output=True, text=True, timeout=timeout, env=env,
                          cwd=str(REPO))


def epoch_losses(proc, n):
    assert proc.returncode == 0, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    found = LOSS_RE.findall(proc.stdout)
    assert [int(e) for e, _, _ in found] == list(range(n)), proc.stdout
    return [float(v) for _, v, _ in found]


def test_char_rnn_example_learns_a_repetitive_text(tmp_path):
    text = tmp_path / "abc.txt"
    text.write_text("the cat sat on the mat. " * 40)
    common = [str(text), "--device", "cpu", "--hidden", "24", "--seq-len", "12",
              "--batch-size", "8", "--lr", "0.02", "--sample-len", "40", "--seed", "1"]
    proc = run_char_rnn(*common, "--epochs", "6")
    losses = epoch_losses(proc, 6)
    assert "vocabulary: 11 characters" in proc.stdout
    assert re.search(r"^Sample: .+", proc.stdout, re.M), proc.stdout
    sample = proc.stdout.split("Sample: ", 1)[1]
    assert len(sample.rstrip("\n")) >= 40
    assert all(np.isfinite(losses)) and losses[-1] < 0.5 * losses[0], losses
    # eager and graph mode print the same losses
    eager = epoch_losses(run_char_rnn(*common, "--epochs", "2", "--no-graph"), 2)
    graph = epoch_losses(run_char_rnn(*common, "--epochs", "2", "--graph"), 2)
    np.testing.assert_allclose(graph, eager, rtol=1e-3)
    np.testing.assert_allclose(graph, losses[:2], rtol=1e-3)


def test_char_rnn_example_default_text_and_bad_arguments():
    proc = run_char_rnn("--device", "cpu", "--epochs", "1", "--max-steps", "2", "--hidden",
                        "8", "--seq-len", "5", "--batch-size", "2", "--sample-len", "10")
    epoch_losses(proc, 1)
    assert "README.md" in proc.stdout
    bad = run_char_rnn(str(REPO / "no-such-file.txt"), "--device", "cpu")
    assert bad.returncode != 0 and "no-such-file.txt" in bad.stderr
    assert "Traceback" not in bad.stderr
    short = run_char_rnn("--device", "cpu", "--seq-len", "100000")
    assert short.returncode != 0 and "too short" in short.stderr


def test_rnn_module_imports_first():
    # rnn.py imports layer.py, which names the recurrent layers lazily: either order works
    import subprocess
    import sys

    code = ("import minisinga.rnn as r; from minisinga import autograd, layer; "
            "from minisinga.layer import GRU; "
            "assert layer.LSTM is r.LSTM and GRU is r.GRU and autograd.RNN is r.RNN")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr


def test_cudnn_rnn_list_lengths_are_a_constant_of_the_recorded_step(dev):
    from conftest import recorded_nodes

    rnn = layer.CudnnRNN(5, rnn_mode="gru", use_mask=True, return_sequences=False)
    x = tensor.Tensor(data=np.random.default_rng(0).standard_normal((3, 4, 2)).astype(
        np.float32), device=dev)
    want = rnn(x, seq_lengths=[4, 1, 2]).to_numpy()
    names = recorded_nodes(dev, lambda: rnn(x, seq_lengths=[4, 1, 2]))
    assert names and "CopyFromHost" not in names, names
    dev.ResetGraph()
    dev.EnableGraph(True)
    y = rnn(x, seq_lengths=[4, 1, 2])
    dev.EnableGraph(False)
    dev.RunGraph(True)
    np.testing.assert_allclose(y.to_numpy(), want, rtol=1e-6)
    dev.ResetGraph()


@pytest.mark.parametrize("kind,bias", [("rnn", True), ("lstm", True), ("gru", True),
                                       ("gru", False), ("lstm", False)])
def test_step_forward_none_state_is_the_zero_state(kind, bias):
    """h (and c) None is the zero state, computed without the h Wh product: the same values
    as zeros, and the gradients of the weights too."""
    r = np.random.default_rng(4)
    lay = make_layer(kind, 3, 4, {"bias": bias})
    x = to_t(r.standard_normal((2, 3)), None)
    lay([x])
    zeros = to_t(np.zeros((2, 4)), None)
    states = {"lstm": ((None, None), (zeros, zeros))}.get(kind, ((None,), (zeros,)))
    results = []
    for st in states:
        with ag.train_mode():
            y = lay.step_forward(x, *st)
            y = y[0] if kind == "lstm" else y
            grads = {id(p): g.to_numpy() for p, g in ag.backward(ag.reduce_sum(ag.mul(y, y)))}
        results.append((y.to_numpy(), grads))
    (y0, g0), (y1, g1) = results
    np.testing.assert_allclose(y0, y1, rtol=1e-6, atol=1e-7)
    assert set(g1) - set(g0) == {id(lay.Wh)}  # no h: no product with Wh, no gradient
    for key, g in g0.items():
        np.testing.assert_allclose(g, g1[key], rtol=1e-5, atol=1e-7)


# ---- the fused LSTM cell (autograd.lstm_cell, _core.lstm_cell) ----
def np_lstm_cell(z, c0):
    """(h, c) of the LSTM step from pre-activations z (n, 4H) and c0 (n, H) or None."""
    i, f, g, o = np.split(z, 4, axis=1)
    c = sigmoid(i) * np.tanh(g) + (0 if c0 is None else sigmoid(f) * c0)
    return sigmoid(o) * np.tanh(c), c


@pytest.mark.parametrize("with_c0", [True, False])
def test_lstm_cell_forward_and_gradients(dev, with_c0):
    """The fused kernel against numpy (h and c), and its gradients (of both inputs, through
    both outputs) against finite differences; rows long enough for the vectorised loop and
    its remainder (H = 21)."""
    r = np.random.default_rng(3)
    z = (r.standard_normal((5, 84)) * 2).astype(np.float32)
    c0 = r.standard_normal((5, 21)).astype(np.float32)
    wh, wc = r.standard_normal((5, 21)), r.standard_normal((5, 21))
    args = [z, c0] if with_c0 else [z]

    def ref(*a):  # a weighted sum of both outputs: one scalar's gradients cover both
        h, c = np_lstm_cell(a[0], a[1] if with_c0 else None)
        return h * wh + c * wc

    def fn(*ts):
        h, c = ag.lstm_cell(*ts)
        return ag.add(ag.mul(h, tensor.from_numpy(wh.astype(np.float32)).to_device(dev)),
                      ag.mul(c, tensor.from_numpy(wc.astype(np.float32)).to_device(dev)))

    check_op(fn, ref, args, device=dev, rtol=1e-5, atol=1e-5, grad_rtol=1e-3, grad_atol=1e-4)


def test_lstm_cell_float16_computes_in_float32(dev):
    r = np.random.default_rng(4)
    z = r.standard_normal((4, 32)).astype(np.float16)
    c0 = r.standard_normal((4, 8)).astype(np.float16)
    dh = r.standard_normal((4, 8)).astype(np.float16)
    dc = r.standard_normal((4, 8)).astype(np.float16)
    t = lambda a: tensor.from_numpy(a).to_device(dev).data  # noqa: E731
    h, c, act = _core.lstm_cell(t(z), t(c0))
    want_h, want_c = np_lstm_cell(z.astype(np.float64), c0.astype(np.float64))
    assert h.to_numpy().dtype == np.float16
    np.testing.assert_allclose(h.to_numpy(), want_h, rtol=2e-3, atol=2e-3)
    np.testing.assert_allclose(c.to_numpy(), want_c, rtol=2e-3, atol=2e-3)
    dz, dc0 = _core.lstm_cell_backward(act, t(c0), c, t(dh), t(dc))
    h32, c32, act32 = _core.lstm_cell(t(z.astype(np.float32)), t(c0.astype(np.float32)))
    dz32, dc032 = _core.lstm_cell_backward(act32, t(c0.astype(np.float32)), c32,
                                           t(dh.astype(np.float32)), t(dc.astype(np.float32)))
    np.testing.assert_allclose(dz.to_numpy(), dz32.to_numpy(), rtol=1e-2, atol=1e-2)
    np.testing.assert_allclose(dc0.to_numpy(), dc032.to_numpy(), rtol=1e-2, atol=1e-2)
    dz, none = _core.lstm_cell_backward(act, None, c, t(dh), t(dc))
    assert none is None and dz.to_numpy().shape == (4, 32)


def test_lstm_cell_long_rows_run_in_parallel():
    """A batch large enough for threads, against numpy."""
    r = np.random.default_rng(5)
    z = r.standard_normal((64, 4 * 300)).astype(np.float32)
    c0 = r.standard_normal((64, 300)).astype(np.float32)
    h, c = ag.lstm_cell(tensor.from_numpy(z), tensor.from_numpy(c0))
    want_h, want_c = np_lstm_cell(z.astype(np.float64), c0.astype(np.float64))
    np.testing.assert_allclose(h.to_numpy(), want_h, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(c.to_numpy(), want_c, rtol=1e-5, atol=1e-6)


def test_lstm_cell_errors():
    t = lambda *s, dt=np.float32: tensor.from_numpy(np.zeros(s, dt)).data  # noqa: E731
    with pytest.raises(ValueError, match=r"lstm_cell: z must be \(batch, 4 \* hidden\), got "
                                         r"shape \(2, 6\)"):
        _core.lstm_cell(t(2, 6))
    with pytest.raises(ValueError, match=r"lstm_cell: c0 has shape \(2, 3\), expected \(2, 2\)"):
        _core.lstm_cell(t(2, 8), t(2, 3))
    with pytest.raises(ValueError, match="lstm_cell: c0 has dtype float16, expected float32"):
        _core.lstm_cell(t(2, 8), t(2, 2, dt=np.float16))
    with pytest.raises(TypeError, match="lstm_cell: z has dtype int32"):
        _core.lstm_cell(t(2, 8, dt=np.int32))
    with pytest.raises(ValueError, match=r"lstm_cell_backward: dh has shape \(3, 2\), expected "
                                         r"\(2, 2\)"):
        _core.lstm_cell_backward(t(2, 8), None, t(2, 2), t(3, 2), t(2, 2))


# ---- the fused GRU cell (autograd.gru_cell, _core.gru_cell) ----
def np_gru_cell(gx, gh, h):
    xr, xz, xn = np.split(gx, 3, axis=1)
    hr, hz, hn = np.split(gh, 3, axis=1)
    r, z = sigmoid(xr + hr), sigmoid(xz + hz)
    n = np.tanh(xn + r * hn)
    return n + z * (h - n)


def test_gru_cell_forward_and_gradients(dev):
    """The fused kernel against numpy, and the gradients of all three inputs against finite
    differences (H = 21: the vectorised loop and its remainder)."""
    r = np.random.default_rng(6)
    args = [(r.standard_normal((5, 63)) * 2).astype(np.float32),
            (r.standard_normal((5, 63)) * 2).astype(np.float32),
            r.standard_normal((5, 21)).astype(np.float32)]
    check_op(ag.gru_cell, np_gru_cell, args, device=dev, rtol=1e-5, atol=1e-5, grad_rtol=1e-3,
             grad_atol=1e-4)


def test_gru_cell_float16_and_parallel_rows(dev):
    r = np.random.default_rng(7)
    gx, gh = r.standard_normal((64, 900)), r.standard_normal((64, 900))
    h, dy = r.standard_normal((64, 300)), r.standard_normal((64, 300))
    t = lambda a, dt: tensor.from_numpy(a.astype(dt)).to_device(dev).data  # noqa: E731
    outs = {}
    for dt in (np.float32, np.float16):
        y, act = _core.gru_cell(t(gx, dt), t(gh, dt), t(h, dt))
        grads = _core.gru_cell_backward(act, t(h, dt), t(dy, dt))
        outs[dt] = [y.to_numpy()] + [g.to_numpy() for g in grads]
        assert all(o.dtype == dt for o in outs[dt])
    want = np_gru_cell(*(a.astype(np.float16).astype(np.float64) for a in (gx, gh, h)))
    np.testing.assert_allclose(outs[np.float32][0], np_gru_cell(gx, gh, h), rtol=1e-5,
                               atol=1e-6)
    np.testing.assert_allclose(outs[np.float16][0], want, rtol=2e-3, atol=2e-3)
    for a, b in zip(outs[np.float16][1:], outs[np.float32][1:]):
        np.testing.assert_allclose(a, b, rtol=1e-2, atol=1e-2)


def test_gru_cell_errors():
    t = lambda *s, dt=np.float32: tensor.from_numpy(np.zeros(s, dt)).data  # noqa: E731
    with pytest.raises(ValueError, match=r"gru_cell: gx must be \(batch, 3 \* hidden\), got "
                                         r"shape \(2, 4\)"):
        _core.gru_cell(t(2, 4), t(2, 4), t(2, 1))
    with pytest.raises(ValueError, match=r"gru_cell: gh has shape \(2, 3\), expected \(2, 6\)"):
        _core.gru_cell(t(2, 6), t(2, 3), t(2, 2))
    with pytest.raises(ValueError, match=r"gru_cell: h has dtype float16, expected float32"):
        _core.gru_cell(t(2, 6), t(2, 6), t(2, 2, dt=np.float16))
    with pytest.raises(ValueError, match=r"gru_cell_backward: dy has shape \(2, 3\), expected "
                                         r"\(2, 2\)"):
        _core.gru_cell_backward(t(2, 8), t(2, 2), t(2, 3))
