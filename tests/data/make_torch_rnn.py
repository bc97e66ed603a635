"""Makes torch_rnn.npz, PyTorch's values and gradients for the recurrent layers of
minisinga/rnn.py that tests/test_hunt_rnn.py checks (run once where torch is installed; the
output is committed, so the test needs no torch):

    python tests/data/make_torch_rnn.py

The cases are the corners tests/data/make_torch_layers.py leaves out: hidden size 1 with input
size 1 and batch 1, three bidirectional batch-first layers with initial states, ReLU without
bias, one step of one sequence of hidden size 1 from the zero state, 200-step sequences (the
gradients through a long recurrence), float16 inputs and parameters, and one input tensor fed
at every step to two calls of the same layer.

Every case is torch.nn.RNN / LSTM / GRU in float64 from float32 (or float16-rounded) values
drawn with numpy (seeded); the loss is sum(ry * y) + sum(rh * h_n) (+ sum(rc * c_n)). Each
case has a JSON config in `configs` ({"name", "cell", "I", "H", "L", "bidir", "bias",
"batch_first", "give_h", "give_c", "nonlin", "dtype", "arrays": [[what, shape], ...]}) and
one float32 vector `<name>` holding those arrays one after the other (float16 values exactly;
empty ones where a case has none): x, h0, c0 ((layers * directions, N, H)), ry, rh, rc, y,
hn, cn, dx, dh0, dc0, and the parameters under minisinga's names p/<name> with their
gradients g/<name> (Wx = weight_ih.T, Wh = weight_hh.T, b = bias_ih + bias_hh, for GRU
b = bias_ih and bh = bias_hh). The `reuse` cases hold x (one step, (N, I)), h0 ((N, H), also
LSTM's c0), the parameters, loss and dx, dh0, g/<name> for loss = sum(y1 ** 2) + 3 sum(y2)
where y1 = layer([x, x, x], h0) and y2 = layer([x, x], h0).
"""

import json
import os

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
D64 = torch.float64


def t64(a, grad=False):
    return torch.tensor(np.asarray(a, np.float64), dtype=D64, requires_grad=grad)


def out(t, dtype=np.float32):
    return (t.detach().numpy() if isinstance(t, torch.Tensor) else np.asarray(t)).astype(dtype)


def make(kind, isz, H, L, bidir, bias, batch_first, nonlin):
    kw = dict(num_layers=L, bias=bias, batch_first=batch_first, bidirectional=bidir)
    if kind == "rnn":
        return torch.nn.RNN(isz, H, nonlinearity=nonlin, **kw).double()
    cls = torch.nn.LSTM if kind == "lstm" else torch.nn.GRU
    return cls(isz, H, **kw).double()


def names(kind, L, D, bias):
    """minisinga name -> (torch parameter names, how: 'T' transposed, '+' sum, '' as is)."""
    res = {}
    for layer in range(L):
        for d in range(D):
            ts = f"_l{layer}" + ("_reverse" if d else "")
            ms = ("" if layer == 0 else f"_l{layer}") + ("_reverse" if d else "")
            res["Wx" + ms] = (["weight_ih" + ts], "T")
            res["Wh" + ms] = (["weight_hh" + ts], "T")
            if bias and kind == "gru":
                res["b" + ms] = (["bias_ih" + ts], "")
                res["bh" + ms] = (["bias_hh" + ts], "")
            elif bias:
                res["b" + ms] = (["bias_ih" + ts, "bias_hh" + ts], "+")
    return res


def params(m, nm, grad, dtype):
    res = {}
    for n, (tn, how) in nm.items():
        vs = [getattr(m, t).grad if grad else getattr(m, t) for t in tn]
        v = vs[0] if (how != "+" or grad) else vs[0] + vs[1]  # a summed bias: either's grad
        res[n] = out(v.T if how == "T" else v, dtype)
    return res


def fill(m, rng, dtype):
    """Parameters uniform in [-0.6, 0.6], rounded to `dtype`; for float16 the LSTM / RNN
    bias_hh is 0, so minisinga's b = bias_ih + bias_hh holds exactly torch's values."""
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(t64(rng.uniform(-0.6, 0.6, tuple(p.shape)).astype(dtype)))
        if dtype == np.float16:
            for n, p in m.named_parameters():
                if n.startswith("bias_hh") and not isinstance(m, torch.nn.GRU):
                    p.zero_()


def rnn_case(rng, name, kind, isz=3, H=4, L=1, bidir=False, bias=True, batch_first=False, S=4,
             N=2, give_h=False, give_c=False, nonlin="tanh", dtype=np.float32):
    D = 2 if bidir else 1
    m = make(kind, isz, H, L, bidir, bias, batch_first, nonlin)
    fill(m, rng, dtype)
    nm = names(kind, L, D, bias)
    p = params(m, nm, False, dtype)
    x = rng.standard_normal((N, S, isz) if batch_first else (S, N, isz)).astype(dtype)
    h0 = rng.standard_normal((L * D, N, H)).astype(dtype)
    c0 = rng.standard_normal((L * D, N, H)).astype(dtype)
    xt, h0t, c0t = t64(x, True), t64(h0, True), t64(c0, True)
    hx = None
    if kind == "lstm" and (give_h or give_c):
        hx = (h0t if give_h else torch.zeros_like(h0t), c0t if give_c else torch.zeros_like(c0t))
    elif give_h:
        hx = h0t
    y, st = m(xt, hx)
    hn, cn = st if kind == "lstm" else (st, None)
    ry = rng.standard_normal(tuple(y.shape)).astype(np.float32)
    rh = rng.standard_normal((L * D, N, H)).astype(np.float32)
    rc = rng.standard_normal((L * D, N, H)).astype(np.float32)
    loss = (y * t64(ry)).sum() + (hn * t64(rh)).sum()
    if cn is not None:
        loss = loss + (cn * t64(rc)).sum()
    loss.backward()
    arrays = dict(x=x, h0=h0, c0=c0, ry=ry, rh=rh, rc=rc, y=out(y), hn=out(hn), dx=out(xt.grad),
                  dh0=out(h0t.grad) if give_h else np.zeros(0, np.float32),
                  dc0=out(c0t.grad) if give_c else np.zeros(0, np.float32),
                  cn=out(cn) if cn is not None else np.zeros(0, np.float32))
    g = params(m, nm, True, np.float32)
    for n in nm:
        arrays["p/" + n] = p[n]
        arrays["g/" + n] = g[n]
    cfg = dict(name=name, cell=kind, I=isz, H=H, L=L, bidir=bidir, bias=bias,
               batch_first=batch_first, give_h=give_h, give_c=give_c, nonlin=nonlin,
               dtype=np.dtype(dtype).name)
    return cfg, arrays


def reuse_case(rng, name, kind):
    """One input tensor at every step, the same layer run twice in one loss."""
    m = make(kind, 3, 4, 1, False, True, False, "tanh")
    fill(m, rng, np.float32)
    nm = names(kind, 1, 1, True)
    p = params(m, nm, False, np.float32)
    x = rng.standard_normal((2, 3)).astype(np.float32)
    h0 = rng.standard_normal((2, 4)).astype(np.float32)
    xt, ht = t64(x, True), t64(h0, True)
    state = (ht[None], ht[None]) if kind == "lstm" else ht[None]
    y1, _ = m(torch.stack([xt, xt, xt]), state)
    y2, _ = m(torch.stack([xt, xt]), state)
    loss = (y1 ** 2).sum() + 3 * y2.sum()
    loss.backward()
    arrays = dict(x=x, h0=h0, loss=out(loss), dx=out(xt.grad), dh0=out(ht.grad))
    g = params(m, nm, True, np.float32)
    for n in nm:
        arrays["p/" + n] = p[n]
        arrays["g/" + n] = g[n]
    return dict(name=name, cell=kind), arrays


def main():
    rng = np.random.default_rng(20240611)
    cases = []
    for kind in ("rnn", "lstm", "gru"):
        gc = kind == "lstm"
        cases.append(rnn_case(rng, f"{kind}_h1_i1_n1_l2_bidir_bf", kind, isz=1, H=1, L=2,
                              bidir=True, batch_first=True, S=3, N=1, give_h=True, give_c=gc))
        cases.append(rnn_case(rng, f"{kind}_l3_bidir_bf_h0", kind, isz=3, H=5, L=3, bidir=True,
                              batch_first=True, S=4, N=2, give_h=True, give_c=gc))
        cases.append(rnn_case(rng, f"{kind}_i6_h2_l3_bidir", kind, isz=6, H=2, L=3, bidir=True,
                              S=3, N=3))
        cases.append(rnn_case(rng, f"{kind}_seq1_n1_h1_i4_l3_bidir", kind, isz=4, H=1, L=3,
                              bidir=True, S=1, N=1))
        cases.append(rnn_case(rng, f"{kind}_long200", kind, S=200, N=2, give_h=True,
                              give_c=gc))
        cases.append(rnn_case(rng, f"{kind}_long200_l2_bidir_bf", kind, L=2, bidir=True,
                              batch_first=True, S=200, N=1))
        cases.append(rnn_case(rng, f"{kind}_f16_l2_bidir_h0", kind, L=2, bidir=True, S=5,
                              give_h=True, give_c=gc, dtype=np.float16))
        cases.append(reuse_case(rng, f"reuse_{kind}", kind))
    cases.append(rnn_case(rng, "rnn_relu_l3_bidir_bf_nobias", "rnn", L=3, bidir=True,
                          bias=False, batch_first=True, give_h=True, nonlin="relu"))
    data, configs = {}, []
    for cfg, arrays in cases:  # one flat float32 vector per case (few npz entries)
        cfg["arrays"] = [[k, list(v.shape)] for k, v in arrays.items()]
        configs.append(cfg)
        data[cfg["name"]] = np.concatenate([np.ravel(v).astype(np.float32)
                                            for v in arrays.values()])
    data["configs"] = np.array(json.dumps(configs))
    np.savez_compressed(os.path.join(HERE, "torch_rnn.npz"), **data)
    print(len(configs), "cases,", len(data), "arrays")


if __name__ == "__main__":
    main()
