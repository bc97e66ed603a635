"""Recurrent layers (minisinga/rnn.py: RNN, LSTM, GRU, CudnnRNN), the corners the other tests
leave out: hidden size 1, three bidirectional layers, one step of one sequence, 200-step
sequences, float16, one input reused at every step, dropout between layers (its masks and the
gradients through them), graph mode with states as model inputs, and padded sequences whose
padding is not finite. PyTorch's values come from tests/data/torch_rnn.npz (written by
tests/data/make_torch_rnn.py), the rest from numpy, so the tests need no torch."""

import json
import os

import numpy as np
import pytest
from gradcheck import numeric_grad

from minisinga import autograd as ag
from minisinga import device, layer, model, opt, rnn, tensor

_NPZ = np.load(os.path.join(os.path.dirname(os.path.abspath(__file__)), "data",
                            "torch_rnn.npz"))
CONFIGS = {c["name"]: c for c in json.loads(str(_NPZ["configs"]))}
RNN_CASES = [n for n, c in CONFIGS.items() if "I" in c]
REUSE_CASES = [n for n in CONFIGS if n.startswith("reuse_")]


def case(name):
    """The case's settings and its arrays (see make_torch_rnn.py)."""
    cfg, flat, arrays, off = CONFIGS[name], _NPZ[name], {}, 0
    for key, shape in cfg["arrays"]:
        n = int(np.prod(shape))
        arrays[key] = flat[off:off + n].reshape(shape)
        off += n
    assert off == flat.size
    return cfg, arrays


def leaf(a, dtype=np.float32, dev=None):
    return tensor.Tensor(data=np.asarray(a, dtype), device=dev, requires_grad=True,
                         stores_grad=True)


def const(a, dtype=np.float32, dev=None):
    return tensor.Tensor(data=np.asarray(a, dtype), device=dev, requires_grad=False)


def dot(t, r):
    """sum(t * r) as a scalar Tensor (r numpy, cast to t's dtype)."""
    dt = np.float16 if t.dtype == tensor.float16 else np.float32
    return ag.reduce_sum(ag.mul(t, const(r, dt, t.device)), None, False)


def close(got, want, rtol, atol, what):
    got = got.to_numpy() if isinstance(got, tensor.Tensor) else got
    np.testing.assert_allclose(np.asarray(got, np.float64).reshape(np.shape(want)), want,
                               rtol=rtol, atol=atol, err_msg=what)


def make(cell, isz, hid, **kw):
    if cell == "lstm":
        kw.pop("nonlinearity", None)
        return rnn.LSTM(isz, hid, **kw)
    if cell == "gru":
        kw.pop("nonlinearity", None)
        return rnn.GRU(isz, hid, **kw)
    return rnn.RNN(isz, hid, **kw)


# ---- against PyTorch ----

@pytest.mark.parametrize("name", RNN_CASES)
def test_recurrent_corner_matches_torch(name):
    """Outputs, final states and the gradients of the input, the initial states and every
    parameter against torch.nn with the weights copied (layout: Wx = weight_ih.T, Wh =
    weight_hh.T, LSTM / RNN b = bias_ih + bias_hh, GRU b = bias_ih and bh = bias_hh, gate
    blocks in torch's (and cuDNN's) order)."""
    cfg, a = case(name)
    half = cfg["dtype"] == "float16"
    dt = np.float16 if half else np.float32
    lay = make(cfg["cell"], cfg["I"], cfg["H"], num_layers=cfg["L"], bias=cfg["bias"],
               batch_first=cfg["batch_first"], bidirectional=cfg["bidir"],
               nonlinearity=cfg["nonlin"])
    single = cfg["L"] * (2 if cfg["bidir"] else 1) == 1
    x = leaf(a["x"], dt)
    h0 = leaf(a["h0"][0] if single else a["h0"], dt) if cfg["give_h"] else None
    c0 = leaf(a["c0"][0] if single else a["c0"], dt) if cfg["give_c"] else None
    state = ((h0, c0),) if cfg["cell"] == "lstm" else (h0,)
    lay(x, *state)
    lay.set_params({k[2:]: v.astype(dt) for k, v in a.items() if k.startswith("p/")})
    with ag.train_mode():
        out = lay(x, *state)
        y, hn = out[0], out[1]
        cn = out[2] if cfg["cell"] == "lstm" else None
        terms = [dot(y, a["ry"]), dot(hn, a["rh"].reshape(hn.shape))]
        if cn is not None:
            terms.append(dot(cn, a["rc"].reshape(cn.shape)))
        loss = ag.add_all(*terms)
    g = ag.gradients(loss)
    assert y.dtype == x.dtype and hn.dtype == x.dtype
    assert hn.shape == ((a["h0"].shape[1:]) if single else a["h0"].shape)
    # float32 against torch's float64; float16 (10-bit mantissa) relative to the largest value
    scale = (lambda w: 2e-2 * max(1.0, float(np.abs(w).max()))) if half else (lambda w: 1e-4)
    rt = 2e-2 if half else 1e-4
    grt = 3e-2 if half else 1e-3
    close(y, a["y"], rt, scale(a["y"]), "y")
    close(hn, a["hn"], rt, scale(a["hn"]), "h_n")
    if cn is not None:
        close(cn, a["cn"], rt, scale(a["cn"]), "c_n")
    close(g[x], a["dx"], grt, scale(a["dx"]), "dx")
    if h0 is not None:
        close(g[h0], a["dh0"], grt, scale(a["dh0"]), "dh0")
    if c0 is not None:
        close(g[c0], a["dc0"], grt, scale(a["dc0"]), "dc0")
    params = lay.get_params()
    assert set(params) == {k[2:] for k in a if k.startswith("p/")}
    for n, p in params.items():
        got = g[p] if p in g else np.zeros(p.shape, np.float32)  # never used: torch's 0
        if half:
            assert g[p].dtype == tensor.float16
        close(got, a["g/" + n], grt, scale(a["g/" + n]), n)


@pytest.mark.parametrize("name", REUSE_CASES)
def test_one_input_at_every_step_and_two_calls_in_one_loss(name):
    """The same (batch, input) tensor fed at every step and the same layer called twice, all
    in one loss (the LSTM's h0 and c0 the same tensor too): the gradients accumulate as
    torch's do."""
    cfg, a = case(name)
    lay = make(cfg["cell"], 3, 4)
    x, h = leaf(a["x"]), leaf(a["h0"])
    state = ((h, h),) if cfg["cell"] == "lstm" else (h,)
    lay([x], *state)
    lay.set_params({k[2:]: v for k, v in a.items() if k.startswith("p/")})
    with ag.train_mode():
        y1 = lay([x, x, x], *state)[0]
        y2 = lay([x, x], *state)[0]
        loss = ag.add_all(*[ag.reduce_sum(ag.mul(o, o), None, False) for o in y1],
                          *[dot(o, np.full((2, 4), 3.0)) for o in y2])
    g = ag.gradients(loss)
    close(loss.to_numpy(), a["loss"], 1e-5, 1e-5, "loss")
    close(g[x], a["dx"], 1e-4, 1e-5, "dx")
    close(g[h], a["dh0"], 1e-4, 1e-5, "dh0")
    for n, p in lay.get_params().items():
        close(g[p], a["g/" + n], 1e-4, 1e-5, n)


def test_layer_called_twice_carries_no_state(rng):
    """As SINGA's layers (and torch's): each call starts from h0 (zeros when not given), not
    from the previous call's final state."""
    x = const(rng.standard_normal((4, 2, 3)))
    for lay in (rnn.LSTM(3, 5, num_layers=2), rnn.GRU(3, 5, bidirectional=True),
                rnn.RNN(3, 5, nonlinearity="relu")):
        first = [t.to_numpy() for t in lay(x) if t is not None]
        second = [t.to_numpy() for t in lay(x) if t is not None]
        for f, s in zip(first, second):
            np.testing.assert_array_equal(f, s)


# ---- dropout between layers ----

def _reveal_masks_rnn(p, seq, batch, hid, dev):
    """A 2-layer ReLU RNN whose first layer outputs 1 everywhere (Wx = Wh = 0, b = 1) and
    whose second is the identity on its input (Wx = I, Wh = 0, b = 0): its output is the
    dropout mask between the layers (0 or 1 / (1 - p))."""
    lay = rnn.RNN(hid, hid, num_layers=2, nonlinearity="relu", dropout=p)
    x = const(np.zeros((seq, batch, hid)), dev=dev)
    lay(x)
    lay.set_params({"Wx": np.zeros((hid, hid), np.float32), "Wh": np.zeros((hid, hid),
                                                                         np.float32),
                    "b": np.ones(hid, np.float32), "Wx_l1": np.eye(hid, dtype=np.float32),
                    "Wh_l1": np.zeros((hid, hid), np.float32),
                    "b_l1": np.zeros(hid, np.float32)})
    return lay, x


def test_dropout_masks_statistics_and_gradients_through_kept_units():
    """Training: between the layers each unit of each step is kept with probability 1 - p and
    scaled by 1 / (1 - p), fresh masks at every call; the gradient reaches the first layer
    only through the kept units. Eval: the identity."""
    dev = device.create_cpu_device()
    dev.SetRandSeed(3)
    p, seq, batch, hid = 0.3, 10, 16, 32
    lay, x = _reveal_masks_rnn(p, seq, batch, hid, dev)
    r = np.random.default_rng(1).standard_normal((seq, batch, hid))
    with ag.train_mode():
        y, _ = lay(x)
        loss = dot(y, r)
    g = ag.gradients(loss)
    m = y.to_numpy()
    kept = m != 0
    np.testing.assert_allclose(m[kept], 1 / (1 - p), rtol=1e-6)
    assert abs(1 - kept.mean() - p) < 0.03, kept.mean()
    assert kept.any(axis=(1, 2)).all() and not np.array_equal(kept[0], kept[1])  # per step
    # d loss / d b (first layer) = sum over steps and batch of mask * r: only kept units
    np.testing.assert_allclose(g[lay.b].to_numpy(), (m * r).sum((0, 1)), rtol=1e-4,
                               atol=1e-4)
    # d loss / d Wx_l1 = sum of input^T (r * relu'), input = mask * 1
    np.testing.assert_allclose(g[lay.Wx_l1].to_numpy(),
                               np.einsum("tni,tnj->ij", m, r * kept), rtol=1e-4, atol=1e-4)
    with ag.train_mode():
        again = lay(x)[0].to_numpy()
    assert not np.array_equal(again != 0, kept)  # fresh masks at every call
    np.testing.assert_array_equal(lay(x)[0].to_numpy(), np.ones((seq, batch, hid)))  # eval


def _np_forward(kind, xs, weights, num_layers, dirs, masks):
    """float64 reference from the zero state: xs (seq, batch, in); weights[k] = the layer's
    (Wx, Wh, b[, bh]); masks[l - 1][t] multiplies step t's input of layer l >= 1."""
    def sig(v):
        return 1 / (1 + np.exp(-v))

    seq, inputs, finals = xs.shape[0], list(xs), []
    for lyr in range(num_layers):
        if lyr > 0:
            inputs = [v * mk for v, mk in zip(inputs, masks[lyr - 1])]
        per_dir = []
        for d in range(dirs):
            w = weights[lyr * dirs + d]
            hsz = w[1].shape[0]
            h = np.zeros((xs.shape[1], hsz))
            c = np.zeros_like(h)
            outs = [None] * seq
            for t in (range(seq) if d == 0 else range(seq - 1, -1, -1)):
                if kind == "gru":
                    gx, gh = inputs[t] @ w[0] + w[2], h @ w[1] + w[3]
                    (xr, xz, xn), (hr, hz, hn) = np.split(gx, 3, 1), np.split(gh, 3, 1)
                    rr, z = sig(xr + hr), sig(xz + hz)
                    n = np.tanh(xn + rr * hn)
                    h = (1 - z) * n + z * h
                else:  # lstm
                    i, f, gg, o = np.split(inputs[t] @ w[0] + h @ w[1] + w[2], 4, 1)
                    c = sig(f) * c + sig(i) * np.tanh(gg)
                    h = sig(o) * np.tanh(c)
                outs[t] = h
            per_dir.append(outs)
            finals.append(h)
        inputs = [np.concatenate([pd[t] for pd in per_dir], 1) for t in range(seq)]
    return np.stack(inputs), np.stack(finals)


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_dropout_gradients_match_finite_differences_of_the_masked_network(kind):
    """Two bidirectional layers with dropout 0.4 in training: the masks (drawn from the
    device's RNG, reproduced here with its seed: one (batch, 2H) draw per step) enter the
    forward and the gradients of the input and of every parameter exactly as a fixed
    multiplication would."""
    dev = device.create_cpu_device()
    p, seq, batch, isz, hid = 0.4, 3, 2, 2, 2
    lay = make(kind, isz, hid, num_layers=2, bidirectional=True, dropout=p)
    xs = np.random.default_rng(2).standard_normal((seq, batch, isz))
    x = leaf(xs, dev=dev)
    lay(x)
    r = np.random.default_rng(3)
    ry, rh = r.standard_normal((seq, batch, 2 * hid)), r.standard_normal((4, batch, hid))
    dev.SetRandSeed(21)
    with ag.train_mode():
        out = lay(x)
        loss = ag.add(dot(out[0], ry), dot(out[1], rh))
    g = ag.gradients(loss)
    dev.SetRandSeed(21)
    masks = [[tensor.Tensor((batch, 2 * hid), dev).bernoulli(1 - p).to_numpy() / (1 - p)
              for _ in range(seq)]]
    assert 0 < np.mean([mk == 0 for mk in masks[0]]) < 1
    names = lay.param_names()
    arrays = {"x": xs, **{n: v.to_numpy().astype(np.float64)
                          for n, v in lay.get_params().items()}}

    def loss_np(a):
        ws = [tuple(a[kd + lay._suffix(k)] for kd in lay.param_kinds) for k in range(4)]
        o, h = _np_forward(kind, a["x"], ws, 2, 2, masks)
        return (o * ry).sum() + (h * rh).sum()

    want, _ = _np_forward(kind, xs, [tuple(arrays[kd + lay._suffix(k)] for kd in
                                           lay.param_kinds) for k in range(4)], 2, 2, masks)
    close(out[0], want, 1e-5, 1e-5, "y")
    for n in ["x", *names]:
        num = numeric_grad(lambda v, n=n: loss_np({**arrays, n: v}), arrays[n])
        got = g[x] if n == "x" else g[lay.get_params()[n]]
        close(got, num, 1e-2, 1e-3, n)


# ---- graph mode ----

class _StateModel(model.Model):
    """A bidirectional batch-first 2-layer LSTM with dropout, its initial states model inputs,
    the last step's output and the final cells -> Linear -> softmax cross-entropy."""

    def __init__(self):
        super().__init__()
        self.lstm = rnn.LSTM(3, 4, num_layers=2, bidirectional=True, batch_first=True,
                             dropout=0.25)
        self.fc = layer.Linear(2)
        self.loss = layer.SoftMaxCrossEntropy()

    def forward(self, x, h0, c0):
        y, _, c = self.lstm(x, (h0, c0))
        last = ag.reshape(ag.split(y, 1, y.shape[1])[-1], (y.shape[0], 8))
        cell = ag.reshape(ag.transpose(c, (1, 0, 2)), (y.shape[0], 16))  # the final cells too
        return self.fc(ag.cat([last, cell], 1))

    def train_one_batch(self, x, h0, c0, t):
        out = self.forward(x, h0, c0)
        loss = self.loss(out, t)
        self.optimizer(loss)
        return out, loss


def _train_state_model(graph, steps=3):
    dev = device.create_cpu_device()
    dev.SetRandSeed(0)
    r = np.random.default_rng(0)
    n, s = 3, 5
    tx, th, tc = (tensor.Tensor(shape, dev) for shape in ((n, s, 3), (4, n, 4), (4, n, 4)))
    ty = tensor.Tensor((n,), dev, dtype=tensor.int32)
    m = _StateModel()
    m.set_optimizer(opt.SGD(0.1, momentum=0.9))
    m.compile([tx, th, tc], is_train=True, use_graph=graph)
    losses = []
    for _ in range(steps):  # new data and new initial states at every step
        for t in (tx, th, tc):
            t.copy_from_numpy(r.standard_normal(t.shape).astype(np.float32))
        ty.copy_from_numpy(r.integers(0, 2, n).astype(np.int32))
        _, loss = m(tx, th, tc, ty)
        losses.append(loss.item())
    m.eval()
    return losses, {k: v.to_numpy() for k, v in m.get_states().items()}


def test_graph_mode_with_states_as_inputs_equals_eager():
    ref_losses, ref_states = _train_state_model(False)
    losses, states = _train_state_model(True)
    np.testing.assert_allclose(losses, ref_losses, rtol=1e-5, atol=1e-6)
    assert sorted(states) == sorted(ref_states) and "lstm.Wh_l1_reverse" in states
    for k in ref_states:
        np.testing.assert_allclose(states[k], ref_states[k], rtol=1e-5, atol=1e-6, err_msg=k)
    _, untrained = _train_state_model(False, steps=0)
    assert not np.allclose(states["lstm.Wh_l1_reverse"], untrained["lstm.Wh_l1_reverse"])


# ---- CudnnRNN ----

@pytest.mark.parametrize("mode", ["lstm", "gru", "tanh"])
def test_cudnn_rnn_float16_with_lengths_follows_float32(rng, mode):
    """float16 input with seq_lengths: outputs and states float16, within float16's precision
    of the float32 run with the same parameters, the padding's outputs exactly 0."""
    c = layer.CudnnRNN(4, rnn_mode=mode, num_layers=2, bidirectional=True, use_mask=True)
    x = rng.standard_normal((3, 5, 3))
    lens = [5, 2, 1]
    want = c(const(x), seq_lengths=lens, return_state=True)
    want = [t.to_numpy() for t in want]
    c16 = layer.CudnnRNN(4, rnn_mode=mode, num_layers=2, bidirectional=True, use_mask=True)
    c16(const(x, np.float16), seq_lengths=lens)
    c16.set_params({k: v.astype(np.float16) for k, v in
                    {n: t.to_numpy() for n, t in c.get_params().items()}.items()})
    got = c16(const(x, np.float16), seq_lengths=lens, return_state=True)
    for a, b in zip(got, want):
        assert a.dtype == tensor.float16
        np.testing.assert_allclose(a.to_numpy().astype(np.float32), b, rtol=0, atol=1e-2)
    y = got[0].to_numpy()
    assert np.all(y[1, 2:] == 0) and np.all(y[2, 1:] == 0)


@pytest.mark.parametrize("bad", [np.nan, np.inf], ids=["nan", "inf"])
@pytest.mark.parametrize("mode", ["lstm", "gru", "tanh"])
def test_cudnn_rnn_padding_values_never_reach_the_result(rng, mode, bad):
    # BUG: CudnnRNN masks padded steps by multiplying by 0 (rnn.py RNN_Base._run_steps: outs[t]
    # = h_new * keep, h = outs[t] + h * drop), and the padded inputs still go through the
    # step, so a NaN / inf in the padding (uninitialised or sentinel-filled buffers) makes the
    # outputs, the final states and every parameter's gradient NaN (NaN * 0 = NaN). torch's
    # packed sequences never read the padding; the docstring promises 0 outputs and frozen
    # states past each length.
    c = layer.CudnnRNN(4, rnn_mode=mode, bidirectional=True, use_mask=True)
    x = rng.standard_normal((2, 5, 3))
    lens = [5, 2]
    clean = c(const(x), seq_lengths=lens, return_state=True)
    clean = [t.to_numpy() for t in clean]
    xb = x.copy()
    xb[1, 2:] = bad
    with ag.train_mode():
        tx = leaf(xb)
        out = c(tx, seq_lengths=lens, return_state=True)
        loss = dot(out[0], np.ones(out[0].shape))
    g = ag.gradients(loss)
    for a, b, what in zip(out, clean, ("y", "hy", "cy")):
        np.testing.assert_allclose(a.to_numpy(), b, rtol=1e-6, atol=1e-6, err_msg=what)
    for n, p in c.get_params().items():
        assert np.isfinite(g[p].to_numpy()).all(), n
    assert np.isfinite(g[tx].to_numpy()[0]).all()


def test_cudnn_rnn_refuses_states_of_another_dtype():
    # BUG (unclear error): RNN/LSTM/GRU refuse an h0 / c0 whose dtype is not the input's
    # ("h0 has dtype float16 but the input float32"), CudnnRNN._state does not check, so a
    # float16 hx with float32 x fails deep inside as "Add: dtypes differ (float16 and
    # float32)" and an int32 one as "matmul: a has dtype int32".
    x = tensor.Tensor((2, 3, 4)).set_value(0.5)
    for mode, kw in (("gru", {}), ("lstm", {"cx": const(np.zeros((1, 2, 5)), np.float16)})):
        c = layer.CudnnRNN(5, rnn_mode=mode)
        c(x)
        for hx in (const(np.zeros((1, 2, 5)), np.float16), const(np.zeros((1, 2, 5)), np.int32),
                   None):
            if hx is None and not kw:
                continue
            with pytest.raises(TypeError, match=r"CudnnRNN: (hx|cx) has dtype"):
                c(x, hx if hx is not None else const(np.zeros((1, 2, 5))), **kw)


@pytest.mark.parametrize("flag", ["bias", "batch_first", "bidirectional"])
def test_flags_accept_numpy_bools(flag):
    # BUG (refuses valid input): _flag accepts only bool / int, so np.bool_ (what a flag read
    # from a numpy array or a config parsed with numpy is) is refused with "bias must be True
    # or False, got np.False_" although np.False_ == False; torch.nn.LSTM and SINGA accept it.
    for value in (np.bool_(True), np.bool_(False)):
        lay = rnn.LSTM(3, 4, **{flag: value})
        assert getattr(lay, flag) is bool(value)
        c = layer.CudnnRNN(4, **{flag: value})
        assert getattr(c, flag) is bool(value)
