"""Makes torch_layers.npz, PyTorch's values and gradients for the layers of minisinga/layer.py
and minisinga/rnn.py that tests/test_torch_parity_layers.py checks (run once where torch is
installed; the output is committed, so the test needs no torch):

    python tests/data/make_torch_layers.py

Every case is computed by torch.nn / torch.nn.functional in float64 from float32 inputs drawn
with numpy (seeded), with a random upstream gradient `r` (the loss is sum(r * output), plus
sum(rh * h_n) and sum(rc * c_n) for the recurrent layers). The npz holds `configs`, a JSON
list of {"name", "kind", ...settings, "arrays": [[what, shape, dtype], ...]}, and for each
case one float32 vector `<name>` holding those arrays one after the other (int32 ones as exact
floats; empty ones where a case has no such value):

    conv, sep:  x, W, b (conv) or the SeparableConv2d parameters p/<name>, r, y, dx, dW, db or
                g/<name>. Padding is (top, bottom, left, right); SAME_UPPER / SAME_LOWER pads
                follow ONNX (out = ceil(in / stride), the odd cell at the end / the start).
    pool, pool1d: x, r, y, dx (max pools pad with -inf; average pools count the padding when
                count_include_pad, else divide by the cells inside the input).
    bn:         scale, bias, then for each training step s: x<s>, res<s> (residual), r<s>, y<s>,
                dx<s>, dres<s>, dscale<s>, dbias<s>, rm<s>, rv<s> (running statistics after the
                step; minisinga's momentum m is torch's 1 - m), and xe, ye in eval mode.
    rnn:        torch.nn.RNN / LSTM / GRU with its parameters under minisinga's names p/<name>
                (Wx = weight_ih.T, Wh = weight_hh.T, b = bias_ih + bias_hh, for GRU
                b = bias_ih and bh = bias_hh), x, h0, c0, ry, rh, rc, y, hn, cn, dx, dh0, dc0,
                g/<name>. h0/c0/hn/cn/rh/rc are (layers * directions, N, H).
    cudnn:      as rnn, for CudnnRNN with seq_lengths (torch's packed sequences); y is at each
                sequence's last step when return_sequences is False.
    embedding:  idx (int32), W, r, y, dW.
    loss:       x, t, y (the loss; BinaryCrossEntropy and MeanSquareError by SINGA's
                conventions, see loss_case), dx (times the upstream gradient 1.7).
"""

import json
import os

import numpy as np
import torch
import torch.nn.functional as F
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

HERE = os.path.dirname(os.path.abspath(__file__))
D64 = torch.float64


def t64(a, grad=False):
    return torch.tensor(np.asarray(a), dtype=D64, requires_grad=grad)


def f32(t):
    return t.detach().numpy().astype(np.float32) if isinstance(t, torch.Tensor) else \
        np.asarray(t, np.float32)


def same_pads(hw, k, s, d, mode):
    pads = []
    for i in range(2):
        out = -(-hw[i] // s[i])
        total = max(0, (out - 1) * s[i] + (k[i] - 1) * d[i] + 1 - hw[i])
        small, big = total // 2, total - total // 2
        pads += [small, big] if mode == "SAME_UPPER" else [big, small]
    return pads


def conv_case(rng, name, N, C, H, W, cout, k, stride=(1, 1), padding=(0, 0, 0, 0),
              dilation=(1, 1), group=1, bias=True, pad_mode="NOTSET"):
    x = rng.standard_normal((N, C, H, W)).astype(np.float32)
    w = rng.standard_normal((cout, C // group) + tuple(k)).astype(np.float32)
    b = rng.standard_normal(cout).astype(np.float32)
    pads = list(padding)
    if pad_mode in ("SAME_UPPER", "SAME_LOWER"):
        pads = same_pads((H, W), k, stride, dilation, pad_mode)
    elif pad_mode == "VALID":
        pads = [0, 0, 0, 0]
    xt, wt, bt = t64(x, True), t64(w, True), t64(b, True)
    y = F.conv2d(F.pad(xt, (pads[2], pads[3], pads[0], pads[1])), wt, bt if bias else None,
                 stride, 0, dilation, group)
    r = rng.standard_normal(tuple(y.shape)).astype(np.float32)
    (y * t64(r)).sum().backward()
    cfg = dict(name=name, kind="conv", O=cout, k=list(k), stride=list(stride),
               padding=list(padding), dilation=list(dilation), group=group, bias=bias,
               pad_mode=pad_mode)
    arrays = dict(x=x, W=w, b=b, r=r, y=f32(y), dx=f32(xt.grad), dW=f32(wt.grad),
                  db=f32(bt.grad) if bias else np.zeros(0, np.float32))
    return cfg, arrays


def pool_case(rng, name, shape, k, stride, padding, is_max, cip=True, pad_mode="NOTSET"):
    x = rng.standard_normal(shape).astype(np.float32)
    pads = list(padding)
    if pad_mode in ("SAME_UPPER", "SAME_LOWER"):
        pads = same_pads(shape[2:], k, stride, (1, 1), pad_mode)
    xt = t64(x, True)
    tp = (pads[2], pads[3], pads[0], pads[1])
    if is_max:
        y = F.max_pool2d(F.pad(xt, tp, value=-np.inf), k, stride)
    else:
        num = F.avg_pool2d(F.pad(xt, tp), k, stride, divisor_override=1)
        cnt = F.avg_pool2d(F.pad(torch.ones_like(xt), tp), k, stride, divisor_override=1)
        y = num / (k[0] * k[1]) if cip else num / cnt
    r = rng.standard_normal(tuple(y.shape)).astype(np.float32)
    (y * t64(r)).sum().backward()
    cfg = dict(name=name, kind="pool", k=list(k), stride=list(stride), padding=list(padding),
               is_max=is_max, cip=cip, pad_mode=pad_mode)
    return cfg, dict(x=x, r=r, y=f32(y), dx=f32(xt.grad))


def pool1d_case(rng, name, shape, k, stride, padding, is_max):
    x = rng.standard_normal(shape).astype(np.float32)
    xt = t64(x, True)
    s = k if stride is None else stride
    y = F.max_pool1d(xt, k, s, padding) if is_max else F.avg_pool1d(xt, k, s, padding)
    r = rng.standard_normal(tuple(y.shape)).astype(np.float32)
    (y * t64(r)).sum().backward()
    cfg = dict(name=name, kind="pool1d", k=k, stride=stride, padding=padding, is_max=is_max)
    return cfg, dict(x=x, r=r, y=f32(y), dx=f32(xt.grad))


def bn_case(rng, name, shape, momentum=0.9, eps=1e-5, relu=False, residual=False, steps=2):
    C = shape[1]
    cls = torch.nn.BatchNorm2d if len(shape) == 4 else torch.nn.BatchNorm1d
    bn = cls(C, eps=eps, momentum=1.0 - momentum).double()
    scale = rng.uniform(0.5, 1.5, C).astype(np.float32)
    bias = rng.standard_normal(C).astype(np.float32)
    with torch.no_grad():
        bn.weight.copy_(t64(scale))
        bn.bias.copy_(t64(bias))
    arrays = dict(scale=scale, bias=bias)
    for s in range(steps):
        x = (rng.standard_normal(shape) * 2 + 1).astype(np.float32)
        res = rng.standard_normal(shape).astype(np.float32)
        xt, rt = t64(x, True), t64(res, True)
        bn.zero_grad()
        y = bn(xt)
        if residual:
            y = y + rt
        if relu:
            y = torch.relu(y)
        r = rng.standard_normal(shape).astype(np.float32)
        (y * t64(r)).sum().backward()
        arrays.update({f"x{s}": x, f"res{s}": res, f"r{s}": r, f"y{s}": f32(y),
                       f"dx{s}": f32(xt.grad),
                       f"dres{s}": f32(rt.grad) if residual else np.zeros(0, np.float32),
                       f"dscale{s}": f32(bn.weight.grad), f"dbias{s}": f32(bn.bias.grad),
                       f"rm{s}": f32(bn.running_mean), f"rv{s}": f32(bn.running_var)})
    bn.eval()
    xe = rng.standard_normal(shape).astype(np.float32)
    with torch.no_grad():
        ye = bn(t64(xe))
        if relu:
            ye = torch.relu(ye)
    arrays.update(xe=xe, ye=f32(ye))
    cfg = dict(name=name, kind="bn", momentum=momentum, eps=eps, relu=relu, residual=residual,
               steps=steps)
    return cfg, arrays


def sep_case(rng, name, N, C, H, W, cout, k, stride, padding, bias):
    x = rng.standard_normal((N, C, H, W)).astype(np.float32)
    p = {"depthwise_conv.W": rng.standard_normal((C, 1, k, k)).astype(np.float32),
         "point_conv.W": rng.standard_normal((cout, C, 1, 1)).astype(np.float32)}
    if bias:
        p["depthwise_conv.b"] = rng.standard_normal(C).astype(np.float32)
        p["point_conv.b"] = rng.standard_normal(cout).astype(np.float32)
    pt = {n: t64(v, True) for n, v in p.items()}
    xt = t64(x, True)
    y = F.conv2d(xt, pt["depthwise_conv.W"], pt.get("depthwise_conv.b"), stride, padding,
                 groups=C)
    y = F.conv2d(y, pt["point_conv.W"], pt.get("point_conv.b"))
    r = rng.standard_normal(tuple(y.shape)).astype(np.float32)
    (y * t64(r)).sum().backward()
    arrays = dict(x=x, r=r, y=f32(y), dx=f32(xt.grad))
    for n in p:
        arrays["p/" + n] = p[n]
        arrays["g/" + n] = f32(pt[n].grad)
    cfg = dict(name=name, kind="sep", O=cout, k=k, stride=stride, padding=padding, bias=bias)
    return cfg, arrays


def torch_rnn(kind, isz, H, L, bidir, bias, batch_first, nonlin):
    if kind == "rnn":
        return torch.nn.RNN(isz, H, L, nonlinearity=nonlin, bias=bias, batch_first=batch_first,
                            bidirectional=bidir)
    cls = torch.nn.LSTM if kind == "lstm" else torch.nn.GRU
    return cls(isz, H, L, bias=bias, batch_first=batch_first, bidirectional=bidir)


def rnn_names(m, kind, L, D):
    """minisinga name -> (torch parameter names, how: 'T' transposed, '+' sum, '' as is)."""
    out = {}
    for layer in range(L):
        for d in range(D):
            ts = f"_l{layer}" + ("_reverse" if d else "")
            ms = ("" if layer == 0 else f"_l{layer}") + ("_reverse" if d else "")
            out["Wx" + ms] = (["weight_ih" + ts], "T")
            out["Wh" + ms] = (["weight_hh" + ts], "T")
            if m.bias:
                if kind == "gru":
                    out["b" + ms] = (["bias_ih" + ts], "")
                    out["bh" + ms] = (["bias_hh" + ts], "")
                else:
                    out["b" + ms] = (["bias_ih" + ts, "bias_hh" + ts], "+")
    return out


def rnn_params(m, names, grad):
    res = {}
    for n, (tn, how) in names.items():
        vs = [getattr(m, t).grad if grad else getattr(m, t) for t in tn]
        v = vs[0] if how != "+" else vs[0] + vs[1]
        if how == "+" and grad:
            v = vs[0]  # the summed bias's gradient is either one's
        res[n] = f32(v.T if how == "T" else v)
    return res


def rnn_case(rng, name, kind, isz=3, H=4, L=1, bidir=False, bias=True, batch_first=False, S=4,
             N=2, give_h=False, give_c=False, nonlin="tanh", lens=None, rs=True,
             cudnn=False):
    D = 2 if bidir else 1
    m = torch_rnn(kind, isz, H, L, bidir, bias, batch_first, nonlin).double()
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(t64(rng.uniform(-0.6, 0.6, tuple(p.shape)).astype(np.float32)))
    names = rnn_names(m, kind, L, D)
    params = rnn_params(m, names, False)
    x = rng.standard_normal((N, S, isz) if batch_first else (S, N, isz)).astype(np.float32)
    h0 = rng.standard_normal((L * D, N, H)).astype(np.float32)
    c0 = rng.standard_normal((L * D, N, H)).astype(np.float32)
    xt, h0t, c0t = t64(x, True), t64(h0, True), t64(c0, True)
    hx = None
    if kind == "lstm" and (give_h or give_c):
        hx = (h0t if give_h else torch.zeros_like(h0t), c0t if give_c else torch.zeros_like(c0t))
    elif give_h:
        hx = h0t
    if lens is not None:
        packed = pack_padded_sequence(xt, torch.tensor(lens), batch_first=batch_first,
                                      enforce_sorted=False)
        out, st = m(packed, hx)
        y, _ = pad_packed_sequence(out, batch_first=batch_first, total_length=S)
    else:
        y, st = m(xt, hx)
    hn, cn = st if kind == "lstm" else (st, None)
    if not rs:
        last = torch.tensor(lens if lens is not None else [S] * N) - 1
        y = y[torch.arange(N), last] if batch_first else y[last, torch.arange(N)]
    ry = rng.standard_normal(tuple(y.shape)).astype(np.float32)
    rh = rng.standard_normal((L * D, N, H)).astype(np.float32)
    rc = rng.standard_normal((L * D, N, H)).astype(np.float32)
    loss = (y * t64(ry)).sum() + (hn * t64(rh)).sum()
    if cn is not None:
        loss = loss + (cn * t64(rc)).sum()
    loss.backward()
    arrays = dict(x=x, h0=h0, c0=c0, ry=ry, rh=rh, rc=rc, y=f32(y), hn=f32(hn), dx=f32(xt.grad),
                  dh0=f32(h0t.grad) if give_h else np.zeros(0, np.float32),
                  dc0=f32(c0t.grad) if give_c else np.zeros(0, np.float32),
                  cn=f32(cn) if cn is not None else np.zeros(0, np.float32))
    grads = rnn_params(m, names, True)
    for n in names:
        arrays["p/" + n] = params[n]
        arrays["g/" + n] = grads[n]
    cfg = dict(name=name, kind="cudnn" if cudnn else "rnn", cell=kind, I=isz, H=H, L=L,
               bidir=bidir, bias=bias, batch_first=batch_first, give_h=give_h, give_c=give_c,
               nonlin=nonlin, lens=list(lens) if lens is not None else None, rs=rs)
    return cfg, arrays


def embedding_case(rng, name):
    idx = np.array([[1, 2, 1], [4, 1, 0]], np.int32)
    w = rng.standard_normal((5, 3)).astype(np.float32)
    emb = torch.nn.Embedding(5, 3).double()
    with torch.no_grad():
        emb.weight.copy_(t64(w))
    y = emb(torch.tensor(idx, dtype=torch.long))
    r = rng.standard_normal(tuple(y.shape)).astype(np.float32)
    (y * t64(r)).sum().backward()
    return dict(name=name, kind="embedding"), dict(idx=idx, W=w, r=r, y=f32(y),
                                                   dW=f32(emb.weight.grad))


def loss_case(rng, name, loss, x, t):
    xt = t64(x, True)
    tt = torch.tensor(t, dtype=torch.long) if t.dtype == np.int32 else t64(t)
    if loss == "sce":
        y = F.cross_entropy(xt, tt)
    elif loss == "ce":
        oh = F.one_hot(tt, x.shape[1]).to(D64) if t.dtype == np.int32 else tt
        y = -(oh * torch.log(xt)).sum() / x.shape[0]
    elif loss == "bce":  # SINGA's: summed over all elements, divided by the batch size
        y = F.binary_cross_entropy(xt, tt, reduction="sum") / x.shape[0]
    else:  # SINGA's MeanSquareError: sum / (2 N)
        y = F.mse_loss(xt, tt, reduction="sum") / (2 * x.shape[0])
    (1.7 * y).backward()
    return dict(name=name, kind="loss", loss=loss), dict(x=x, t=t, y=f32(y), dx=f32(xt.grad))


def main():
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    cases = []
    add = cases.append
    # ---- convolutions
    add(conv_case(rng, "conv_basic", 2, 3, 7, 6, 4, (3, 3)))
    add(conv_case(rng, "conv_batch1_nonsquare_stride", 1, 3, 7, 6, 4, (2, 3), stride=(2, 1)))
    add(conv_case(rng, "conv_stride23_pad1", 2, 3, 8, 9, 4, (3, 3), (2, 3), (1, 1, 1, 1)))
    add(conv_case(rng, "conv_asym_pad", 2, 3, 8, 9, 4, (3, 3), padding=(0, 2, 1, 0)))
    add(conv_case(rng, "conv_dilation", 2, 3, 9, 9, 4, (3, 3), padding=(2, 2, 1, 1),
                  dilation=(2, 1)))
    add(conv_case(rng, "conv_groups2", 2, 4, 7, 7, 6, (3, 3), group=2))
    add(conv_case(rng, "conv_depthwise", 2, 4, 7, 7, 4, (3, 3), padding=(1, 1, 1, 1), group=4))
    add(conv_case(rng, "conv_depthwise_x2_stride", 2, 4, 7, 7, 8, (3, 3), (2, 2), (1, 1, 1, 1),
                  group=4))
    add(conv_case(rng, "conv_nobias", 2, 3, 7, 6, 4, (3, 3), bias=False))
    add(conv_case(rng, "conv_1x1", 2, 3, 4, 5, 2, (1, 1)))
    add(conv_case(rng, "conv_1x1x1", 1, 1, 1, 1, 1, (1, 1)))
    add(conv_case(rng, "conv_valid", 2, 3, 7, 7, 4, (3, 3), padding=(2, 2, 2, 2),
                  pad_mode="VALID"))
    for mode in ("SAME_UPPER", "SAME_LOWER"):
        tag = mode[5:].lower()
        add(conv_case(rng, f"conv_same_{tag}_s2", 2, 3, 8, 8, 4, (3, 3), (2, 2),
                      pad_mode=mode))
        add(conv_case(rng, f"conv_same_{tag}_even_k", 1, 3, 7, 8, 4, (4, 2), (2, 1),
                      pad_mode=mode))
        add(conv_case(rng, f"conv_same_{tag}_dil", 2, 2, 9, 6, 3, (3, 3), dilation=(2, 2),
                      pad_mode=mode))
    # ---- separable
    add(sep_case(rng, "sep_nobias", 2, 4, 7, 6, 5, 3, 2, 1, False))
    add(sep_case(rng, "sep_bias", 1, 3, 5, 5, 2, 3, 1, 1, True))
    # ---- pooling
    for is_max in (True, False):
        for cip in ((True,) if is_max else (True, False)):
            tag = "max" if is_max else ("avg_incl" if cip else "avg_excl")
            add(pool_case(rng, f"pool_{tag}_k3s2p1", (2, 3, 7, 7), (3, 3), (2, 2), (1, 1, 1, 1),
                          is_max, cip))
            add(pool_case(rng, f"pool_{tag}_rect", (2, 2, 9, 8), (2, 3), (3, 2), (1, 1, 1, 1),
                          is_max, cip))
            add(pool_case(rng, f"pool_{tag}_asym", (2, 2, 6, 5), (3, 3), (2, 2), (0, 1, 1, 0),
                          is_max, cip))
            add(pool_case(rng, f"pool_{tag}_overlap_odd", (1, 2, 5, 5), (3, 3), (1, 1),
                          (1, 1, 1, 1), is_max, cip))
            add(pool_case(rng, f"pool_{tag}_1x1", (1, 2, 1, 1), (1, 1), (1, 1), (0, 0, 0, 0),
                          is_max, cip))
    for mode in ("SAME_UPPER", "SAME_LOWER"):
        for is_max in (True, False):
            tag = ("max" if is_max else "avg") + "_" + mode[5:].lower()
            add(pool_case(rng, f"pool_same_{tag}", (1, 2, 7, 6), (3, 2), (2, 2), (0, 0, 0, 0),
                          is_max, True, mode))
    for is_max in (True, False):
        tag = "max" if is_max else "avg"
        add(pool1d_case(rng, f"pool1d_{tag}_k3s2p1", (2, 3, 7), 3, 2, 1, is_max))
        add(pool1d_case(rng, f"pool1d_{tag}_default_stride", (2, 3, 6), 2, None, 0, is_max))
        add(pool1d_case(rng, f"pool1d_{tag}_k5p2", (1, 2, 5), 5, 1, 2, is_max))
    # ---- batch norm
    add(bn_case(rng, "bn_basic", (4, 3, 5, 5)))
    add(bn_case(rng, "bn_momentum_eps", (4, 3, 5, 5), momentum=0.5, eps=1e-3))
    add(bn_case(rng, "bn_batch1", (1, 3, 4, 5)))
    add(bn_case(rng, "bn_spatial1", (5, 3, 1, 1)))
    add(bn_case(rng, "bn_2d_input", (6, 4)))
    add(bn_case(rng, "bn_one_channel", (3, 1, 2, 7)))
    add(bn_case(rng, "bn_relu_residual", (4, 3, 3, 3), relu=True, residual=True))
    # ---- recurrent
    for kind in ("rnn", "lstm", "gru"):
        gc = kind == "lstm"
        add(rnn_case(rng, f"{kind}_basic", kind))
        add(rnn_case(rng, f"{kind}_h0", kind, give_h=True, give_c=gc))
        add(rnn_case(rng, f"{kind}_l2_bidir_h0", kind, L=2, bidir=True, give_h=True,
                     give_c=gc))
        add(rnn_case(rng, f"{kind}_l3", kind, L=3))
        add(rnn_case(rng, f"{kind}_bf_bidir_seq1", kind, L=2, bidir=True, batch_first=True,
                     S=1))
        add(rnn_case(rng, f"{kind}_seq1_batch1_h0", kind, S=1, N=1, give_h=True))
        add(rnn_case(rng, f"{kind}_nobias_bidir", kind, L=2, bidir=True, bias=False,
                     give_h=True))
        add(rnn_case(rng, f"{kind}_nobias_noh0", kind, bias=False))
        add(rnn_case(rng, f"{kind}_bf_h0", kind, batch_first=True, N=3, give_h=True,
                     give_c=gc))
    add(rnn_case(rng, "lstm_c0_only", "lstm", give_c=True))
    add(rnn_case(rng, "lstm_l2_h0_only", "lstm", L=2, give_h=True))
    add(rnn_case(rng, "rnn_relu_l2_bidir", "rnn", L=2, bidir=True, give_h=True, nonlin="relu"))
    for kind in ("lstm", "gru", "rnn"):
        add(rnn_case(rng, f"cudnn_{kind}_lens", kind, S=5, N=3, lens=(5, 3, 1),
                     batch_first=True, cudnn=True))
        add(rnn_case(rng, f"cudnn_{kind}_lens_bidir_l2_h0", kind, S=5, N=3, lens=(2, 5, 3),
                     L=2, bidir=True, give_h=True, give_c=kind == "lstm", cudnn=True))
        add(rnn_case(rng, f"cudnn_{kind}_last_bidir", kind, S=4, N=3, lens=(4, 1, 2),
                     bidir=True, batch_first=True, rs=False, cudnn=True))
    # ---- embedding and losses
    add(embedding_case(rng, "embedding_repeated"))
    x = (rng.standard_normal((4, 5)) * 2).astype(np.float32)
    lab = np.array([0, 4, 2, 2], np.int32)
    onehot = np.eye(5, dtype=np.float32)[lab]
    soft = rng.dirichlet(np.ones(5), 4).astype(np.float32)
    p = np.exp(x) / np.exp(x).sum(1, keepdims=True)
    add(loss_case(rng, "sce_int", "sce", x, lab))
    add(loss_case(rng, "sce_onehot", "sce", x, onehot))
    add(loss_case(rng, "sce_soft", "sce", x, soft))
    add(loss_case(rng, "sce_batch1", "sce", x[:1], lab[:1]))
    add(loss_case(rng, "sce_large_logits", "sce", x * 50, lab))
    add(loss_case(rng, "ce_int", "ce", p.astype(np.float32), lab))
    add(loss_case(rng, "ce_soft", "ce", p.astype(np.float32), soft))
    pr = rng.uniform(0.05, 0.95, (4, 5)).astype(np.float32)
    tb = (rng.uniform(size=(4, 5)) > 0.5).astype(np.float32)
    add(loss_case(rng, "bce", "bce", pr, tb))
    add(loss_case(rng, "bce_soft", "bce", pr, soft))
    add(loss_case(rng, "mse", "mse", x, soft))
    add(loss_case(rng, "mse_3d", "mse", x.reshape(2, 2, 5), soft.reshape(2, 2, 5)))

    data, configs = {}, []
    for cfg, arrays in cases:  # one flat float32 vector per case (few npz entries)
        cfg["arrays"] = [[k, list(v.shape), str(v.dtype)] for k, v in arrays.items()]
        configs.append(cfg)
        data[cfg["name"]] = np.concatenate([np.ravel(v).astype(np.float32)
                                            for v in arrays.values()])
    data["configs"] = np.array(json.dumps(configs))
    np.savez_compressed(os.path.join(HERE, "torch_layers.npz"), **data)
    print(len(configs), "cases,", len(data), "arrays")


if __name__ == "__main__":
    main()
