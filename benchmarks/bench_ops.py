"""minisinga against PyTorch, op by op on the CPU: forward, and forward + backward, of the
autograd operators (elementwise, reductions, softmax, GEMM, convolution, pooling, batch norm,
layout, dropout, embedding, LSTM/GRU), the optimizers' update and tensor creation/copies, on the
same numpy data in the same run. Needs PyTorch (it prints nothing but that, and exits 2,
without it).

    OMP_NUM_THREADS=2 python benchmarks/bench_ops.py [--only SUBSTR ...] [--groups G ...]
        [--reps 5] [--out results.json]

Each row: minisinga's and PyTorch's milliseconds per call and their ratio (minisinga / torch:
below 1 means minisinga is faster), "F" forward only (autograd.training on), "FB" forward plus
backward (minisinga's autograd.backward drained; torch's y.backward). Each measurement warms
up, calibrates an inner loop (~8 ms per sample), then alternates minisinga and torch samples
`reps` times with a pause between the libraries (so the other's OpenMP workers go idle) and
keeps the best per-call time of each: the steadier figure on a shared machine. Torch views
(transpose, slices) are made contiguous so both sides produce the result. Torch's CPU
allocator does not cache: its large results are page-faulted in at every call, which
minisinga's caching pool avoids (ratios far below 1 on big elementwise ops are that, not the
kernels). Not a test: nothing asserts a time.
"""
import argparse
import json
import math
import os
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "2")
sys.path.append(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))  # uninstalled

import numpy as np  # noqa: E402

torch = TF = None  # imported by main(), after the arguments (--help needs no PyTorch)

from minisinga import _core, autograd, layer, opt, rnn, tensor  # noqa: E402,F401
from minisinga.tensor import Tensor  # noqa: E402

DEV = tensor.get_default_device()
RNG = np.random.default_rng(0)
SLEEP = 0.01  # let the other library's OpenMP workers go idle


def rnd(*shape, lo=None):
    a = RNG.standard_normal(shape).astype(np.float32)
    if lo is not None:
        a = np.abs(a) + lo
    return a


def mst(a, grad=True):
    return Tensor(data=a, requires_grad=grad, stores_grad=grad)


def tt(a, grad=True):
    return torch.from_numpy(np.array(a, copy=True)).requires_grad_(grad)


def sync():
    DEV.Sync()


# ---------------------------------------------------------------- harness
def ms_fwd(fn, ins):
    def f():
        autograd.training = True
        fn(*ins)
        sync()
    return f


def ms_fb(fn, ins):
    autograd.training = True
    y = fn(*ins)
    ys = y if isinstance(y, tuple) else (y,)
    y0 = ys[0]
    dy = Tensor(data=np.ones(y0.shape, np.float32) * 0.5, requires_grad=False)

    def f():
        autograd.training = True
        y = fn(*ins)
        y = y[0] if isinstance(y, tuple) else y
        for _p, _g in autograd.backward(y, dy):
            pass
        sync()
    return f


def t_fwd(fn, ins):
    def f():
        fn(*ins)
    return f


def t_fb(fn, ins):
    y = fn(*ins)
    y0 = y[0] if isinstance(y, tuple) else y
    dy = torch.full(y0.shape, 0.5)
    leaves = [x for x in ins if isinstance(x, torch.Tensor) and x.requires_grad]

    def f():
        for x in leaves:
            x.grad = None
        y = fn(*ins)
        y = y[0] if isinstance(y, tuple) else y
        y.backward(dy)
    return f


def calib(f, target=0.008):
    f()
    t0 = time.perf_counter()
    f()
    dt = time.perf_counter() - t0
    return max(1, min(2000, int(target / max(dt, 1e-7)))), dt


def sample(f, inner):
    time.sleep(SLEEP)
    t0 = time.perf_counter()
    for _ in range(inner):
        f()
    return (time.perf_counter() - t0) / inner


def compare(fa, fb, reps):
    ia, da = calib(fa)
    ib, db = calib(fb)
    r = reps if max(da, db) < 0.1 else (max(3, reps // 3) if max(da, db) < 0.5 else 3)
    ba = bb = float("inf")
    for _ in range(r):
        ba = min(ba, sample(fa, ia))
        bb = min(bb, sample(fb, ib))
    return ba * 1e3, bb * 1e3


RESULTS = []


def case(family, name, shape, ms_fn, ms_ins, t_fn, t_ins, backward=True, fwd=True,
         ms_fwd_fn=None, t_fwd_fn=None):
    if ARGS.only and not any(o in f"{family} {name} {shape}" for o in ARGS.only):
        return
    row = dict(family=family, op=name, shape=shape)
    try:
        if fwd:
            a, b = compare(ms_fwd_fn or ms_fwd(ms_fn, ms_ins), t_fwd_fn or t_fwd(t_fn, t_ins),
                           ARGS.reps)
            row.update(ms_f=a, t_f=b)
        if backward:
            a, b = compare(ms_fb(ms_fn, ms_ins), t_fb(t_fn, t_ins), ARGS.reps)
            row.update(ms_fb=a, t_fb=b)
    except Exception as e:  # noqa: BLE001
        row["error"] = f"{type(e).__name__}: {e}"
    RESULTS.append(row)
    show(row)
    autograd.training = True


def show(row):
    def r(a, b):
        return f"{a:9.3f} {b:9.3f} {a / b:6.2f}x"
    s = f"{row['family']:10s} {row['op']:28s} {row['shape']:34s}"
    if "ms_f" in row:
        s += " F " + r(row["ms_f"], row["t_f"])
    if "ms_fb" in row:
        s += " FB " + r(row["ms_fb"], row["t_fb"])
    if "error" in row:
        s += " ERR " + row["error"][:100]
    print(s, flush=True)


def both(*arrs, grad=True):
    return [mst(a, grad) for a in arrs], [tt(a, grad) for a in arrs]


# ---------------------------------------------------------------- cases
def overhead():
    a, b = rnd(1), rnd(1)
    (ma, mb), (ta, tb) = both(a, b)
    case("overhead", "add 1-elem autograd", "(1,)+(1,)", autograd.add, [ma, mb],
         torch.add, [ta, tb])
    ca, cb = ma.data, mb.data
    (na, nb), (ua, ub) = both(a, b, grad=False)

    def ms_core():
        _core.binary(_core.BinaryOp.Add, ca, cb)

    def ms_tensor():
        autograd.training = False
        na + nb

    def t_nograd():
        with torch.no_grad():
            ua + ub
    case("overhead", "add 1-elem _core.binary", "(1,)+(1,)", None, [], None, [],
         backward=False, ms_fwd_fn=ms_core, t_fwd_fn=lambda: ua + ub)
    case("overhead", "add 1-elem Tensor no-train", "(1,)+(1,)", None, [], None, [],
         backward=False, ms_fwd_fn=ms_tensor, t_fwd_fn=t_nograd)
    x = rnd(1, 1)
    (mx,), (tx,) = both(x)
    case("overhead", "relu 1-elem autograd", "(1,1)", autograd.relu, [mx], torch.relu, [tx])
    w = rnd(1, 1, 1, 1)
    x4 = rnd(1, 1, 3, 3)
    (mx4, mw), (tx4, tw) = both(x4, w)
    case("overhead", "conv2d tiny", "(1,1,3,3)*(1,1,1,1)",
         lambda x, w: autograd.conv2d(x, w), [mx4, mw], lambda x, w: TF.conv2d(x, w), [tx4, tw])


def elementwise():
    S = (64, 32, 28, 28)
    L = (64, 64, 56, 56)
    for an, bn in [(S, S), (L, L)]:
        (ma, mb), (ta, tb) = both(rnd(*an), rnd(*bn))
        case("binary", "add", f"{an}+{bn}", autograd.add, [ma, mb], torch.add, [ta, tb])
    (ma, mb), (ta, tb) = both(rnd(*S), rnd(*S))
    case("binary", "mul", f"{S}*{S}", autograd.mul, [ma, mb], torch.mul, [ta, tb])
    (ma, mb), (ta, tb) = both(rnd(*S), rnd(*S, lo=0.5))
    case("binary", "div", f"{S}/{S}", autograd.div, [ma, mb], torch.div, [ta, tb])
    for an, bn in [((64, 1, 28, 28), (1, 32, 1, 1)), (L, (1, 64, 1, 1)), (S, (1, 32, 1, 1)),
                   ((64, 1000), (1000,)), (S, (64, 32, 1, 1)), ((64, 1, 28, 28), S)]:
        (ma, mb), (ta, tb) = both(rnd(*an), rnd(*bn))
        case("binary", "add bcast", f"{an}+{bn}", autograd.add, [ma, mb], torch.add, [ta, tb])
    (ma, mb), (ta, tb) = both(rnd(*S), rnd(1, 32, 1, 1))
    case("binary", "mul bcast", f"{S}*(1,32,1,1)", autograd.mul, [ma, mb], torch.mul, [ta, tb])
    (ma,), (ta,) = both(rnd(*S))
    case("scalar", "mul scalar", f"{S}*2", lambda x: autograd.mul(x, 2.0), [ma],
         lambda x: x * 2.0, [ta])
    for nm, mf, tf, lo in [("exp", autograd.exp, torch.exp, None),
                           ("log", autograd.log, torch.log, 0.1),
                           ("sqrt", autograd.sqrt, torch.sqrt, 0.1),
                           ("abs", autograd.abs, torch.abs, None)]:
        (ma,), (ta,) = both(rnd(*S, lo=lo))
        case("unary", nm, str(S), mf, [ma], tf, [ta])
    for shp in [S, L, (64, 1000)]:
        (ma,), (ta,) = both(rnd(*shp))
        case("activation", "relu", str(shp), autograd.relu, [ma], torch.relu, [ta])
    for shp in [S, (64, 1000)]:
        (ma,), (ta,) = both(rnd(*shp))
        case("activation", "sigmoid", str(shp), autograd.sigmoid, [ma], torch.sigmoid, [ta])
        case("activation", "tanh", str(shp), autograd.tanh, [ma], torch.tanh, [ta])

        def gelu(x):
            inner = autograd.erf(autograd.mul(x, 1 / math.sqrt(2)))
            return autograd.mul(autograd.mul(x, 0.5), autograd.add(inner, 1.0))
        case("activation", "gelu (composed erf)", str(shp), gelu, [ma], TF.gelu, [ta])
        case("activation", "gelu", str(shp), autograd.gelu, [ma], TF.gelu, [ta])
    (ma,), (ta,) = both(rnd(*S))
    case("activation", "leakyrelu", str(S), lambda x: autograd.leakyrelu(x, 0.01), [ma],
         lambda x: TF.leaky_relu(x, 0.01), [ta])
    case("activation", "clip", str(S), lambda x: autograd.clip(x, -0.5, 0.5), [ma],
         lambda x: torch.clamp(x, -0.5, 0.5), [ta])


def reductions():
    S = (64, 32, 28, 28)
    (ma,), (ta,) = both(rnd(*S))
    for ax in [0, 1, 2, 3, (2, 3), (0, 2, 3), None]:
        axl = None if ax is None else ([ax] if isinstance(ax, int) else list(ax))
        tax = tuple(range(4)) if ax is None else ax
        case("reduce", f"sum axis={ax}", str(S), lambda x, a=axl: autograd.reduce_sum(x, a),
             [ma], lambda x, a=tax: torch.sum(x, a, keepdim=True), [ta])
    for ax in [1, (2, 3)]:
        axl = [ax] if isinstance(ax, int) else list(ax)
        case("reduce", f"mean axis={ax}", str(S), lambda x, a=axl: autograd.reduce_mean(x, a),
             [ma], lambda x, a=ax: torch.mean(x, a, keepdim=True), [ta])
    for ax in [0, 1, 3]:
        case("reduce", f"max axis={ax}", str(S), lambda x, a=ax: autograd.reduce_max(x, [a]),
             [ma], lambda x, a=ax: torch.amax(x, a, keepdim=True), [ta])
    (mb,), (tb,) = both(rnd(64, 1000))
    case("reduce", "sum axis=1", "(64, 1000)", lambda x: autograd.reduce_sum(x, [1]), [mb],
         lambda x: torch.sum(x, 1, keepdim=True), [tb])
    case("reduce", "sum axis=0", "(64, 1000)", lambda x: autograd.reduce_sum(x, [0]), [mb],
         lambda x: torch.sum(x, 0, keepdim=True), [tb])


def softmaxes():
    for shp, ax in [((64, 1000), 1), ((64, 10), 1), ((64, 32, 28, 28), 1),
                    ((64, 32, 28, 28), 0), ((64, 32, 28, 28), 3)]:
        (ma,), (ta,) = both(rnd(*shp))
        case("softmax", f"softmax axis={ax}", str(shp), lambda x, a=ax: autograd.softmax(x, a),
             [ma], lambda x, a=ax: torch.softmax(x, a), [ta])
        if ax != 3:
            case("softmax", f"log_softmax axis={ax}", str(shp),
                 lambda x, a=ax: autograd.log_softmax(x, a), [ma],
                 lambda x, a=ax: torch.log_softmax(x, a), [ta])
    for n, c in [(64, 1000), (64, 10), (256, 10000)]:
        x = rnd(n, c)
        lab = RNG.integers(0, c, n).astype(np.int32)
        mt = Tensor(data=lab, requires_grad=False)
        tl = torch.from_numpy(lab.astype(np.int64))
        (ma,), (ta,) = both(x)
        case("softmax", "softmax_cross_entropy", f"({n}, {c})",
             lambda x, t=mt: autograd.softmax_cross_entropy(x, t), [ma],
             lambda x, t=tl: TF.cross_entropy(x, t), [ta])


def blas():
    for (m, k, n) in [(64, 784, 1000), (64, 1000, 10), (256, 1024, 1024), (64, 4096, 4096)]:
        x, w, b = rnd(m, k), rnd(k, n) * 0.03, rnd(n)
        (mx, mw, mb), (tx, tw, tb) = both(x, w, b)
        case("linear", "matmul+add_bias", f"({m},{k})x({k},{n})",
             lambda x, w, b: autograd.add_bias(autograd.matmul(x, w), b, 0), [mx, mw, mb],
             lambda x, w, b: torch.addmm(b, x, w), [tx, tw, tb])
    a, b = rnd(32, 128, 64), rnd(32, 64, 128)
    (ma, mb), (ta, tb) = both(a, b)
    case("linear", "batched matmul", "(32,128,64)x(32,64,128)", autograd.matmul, [ma, mb],
         torch.matmul, [ta, tb])
    a, b = rnd(8, 64, 128, 64), rnd(64, 32)
    (ma, mb), (ta, tb) = both(a, b)
    case("linear", "matmul 4d x 2d", "(8,64,128,64)x(64,32)", autograd.matmul, [ma, mb],
         torch.matmul, [ta, tb])


def convs():
    cfgs = [  # name, x, w, stride, pad, groups
        ("3x3 s1", (64, 32, 28, 28), (32, 32, 3, 3), 1, 1, 1),
        ("3x3 s1", (64, 64, 56, 56), (64, 64, 3, 3), 1, 1, 1),
        ("1x1", (64, 64, 56, 56), (256, 64, 1, 1), 1, 0, 1),
        ("1x1", (64, 256, 14, 14), (256, 256, 1, 1), 1, 0, 1),
        ("5x5 first layer", (64, 1, 28, 28), (32, 1, 5, 5), 1, 0, 1),
        ("5x5", (64, 32, 14, 14), (64, 32, 5, 5), 1, 2, 1),
        ("3x3 s2", (64, 64, 56, 56), (128, 64, 3, 3), 2, 1, 1),
        ("7x7 s2 stem", (16, 3, 224, 224), (64, 3, 7, 7), 2, 3, 1),
        ("depthwise 3x3", (64, 64, 56, 56), (64, 1, 3, 3), 1, 1, 64),
        ("depthwise 3x3", (64, 256, 14, 14), (256, 1, 3, 3), 1, 1, 256),
        ("grouped g=4 3x3", (64, 64, 28, 28), (128, 16, 3, 3), 1, 1, 4),
    ]
    for nm, xs, ws, st, pd, g in cfgs:
        fan = ws[1] * ws[2] * ws[3]
        x, w, b = rnd(*xs), rnd(*ws) / math.sqrt(fan), rnd(ws[0])
        (mx, mw, mb), (tx, tw, tb) = both(x, w, b)
        case("conv2d", nm, f"{xs}*{ws}",
             lambda x, w, b, st=st, pd=pd, g=g: autograd.conv2d(x, w, b, st, pd, 1, g),
             [mx, mw, mb],
             lambda x, w, b, st=st, pd=pd, g=g: TF.conv2d(x, w, b, st, pd, 1, g),
             [tx, tw, tb])


def pools():
    for nm, xs, k, s, p, is_max in [("max 2x2 s2", (64, 64, 56, 56), 2, 2, 0, True),
                                    ("max 3x3 s2 p1", (64, 64, 56, 56), 3, 2, 1, True),
                                    ("max 2x2 s2", (64, 32, 28, 28), 2, 2, 0, True),
                                    ("avg 2x2 s2", (64, 32, 28, 28), 2, 2, 0, False),
                                    ("avg 3x3 s1 p1", (64, 64, 56, 56), 3, 1, 1, False)]:
        (mx,), (tx,) = both(rnd(*xs))
        if is_max:
            mf = lambda x, k=k, s=s, p=p: autograd.max_pool_2d(x, k, s, p)  # noqa: E731
            tf = lambda x, k=k, s=s, p=p: TF.max_pool2d(x, k, s, p)  # noqa: E731
        else:
            mf = lambda x, k=k, s=s, p=p: autograd.avg_pool_2d(x, k, s, p)  # noqa: E731
            tf = lambda x, k=k, s=s, p=p: TF.avg_pool2d(x, k, s, p)  # noqa: E731
        case("pool", nm, str(xs), mf, [mx], tf, [tx])
    (mx,), (tx,) = both(rnd(64, 512, 7, 7))
    case("pool", "global avg", "(64, 512, 7, 7)", autograd.globalaveragepool, [mx],
         lambda x: TF.adaptive_avg_pool2d(x, 1), [tx])


def batchnorms():
    for xs in [(64, 32, 28, 28), (64, 64, 56, 56), (64, 256, 14, 14)]:
        c = xs[1]
        x, g, b = rnd(*xs), rnd(c, lo=0.5), rnd(c)
        (mx, mg, mb), (tx, tg, tb) = both(x, g, b)
        mrm = Tensor(data=np.zeros(c, np.float32), requires_grad=False)
        mrv = Tensor(data=np.ones(c, np.float32), requires_grad=False)
        trm, trv = torch.zeros(c), torch.ones(c)
        case("batchnorm", "train", str(xs),
             lambda x, g, b, rm=mrm, rv=mrv: autograd.batchnorm_2d(x, g, b, rm, rv, 0.1, 1e-5),
             [mx, mg, mb],
             lambda x, g, b, rm=trm, rv=trv: TF.batch_norm(x, rm, rv, g, b, True, 0.1, 1e-5),
             [tx, tg, tb])

        def ms_eval(x=mx, g=mg, b=mb, rm=mrm, rv=mrv):
            autograd.training = False
            autograd.batchnorm_2d(x, g, b, rm, rv, 0.1, 1e-5)
            sync()

        def t_eval(x=tx, g=tg, b=tb, rm=trm, rv=trv):
            with torch.no_grad():
                TF.batch_norm(x, rm, rv, g, b, False, 0.1, 1e-5)
        case("batchnorm", "eval (fwd)", str(xs), None, [], None, [], backward=False,
             ms_fwd_fn=ms_eval, t_fwd_fn=t_eval)


def layouts():
    S = (64, 32, 28, 28)
    (mx,), (tx,) = both(rnd(*S))
    for perm in [(0, 2, 1, 3), (0, 2, 3, 1), (1, 0, 2, 3), (0, 1, 3, 2)]:
        case("layout", f"transpose {perm}", str(S),
             lambda x, p=perm: autograd.transpose(x, p), [mx],
             lambda x, p=perm: x.permute(*p).contiguous(), [tx])
    (m2,), (t2,) = both(rnd(1024, 1024))
    case("layout", "transpose 2d", "(1024, 1024)", lambda x: autograd.transpose(x, (1, 0)),
         [m2], lambda x: x.t().contiguous(), [t2])
    (ma, mb, mc), (ta, tb, tc) = both(rnd(*S), rnd(*S), rnd(*S))
    for ax in [0, 1, 3]:
        case("layout", f"concat 3x axis={ax}", str(S),
             lambda a, b, c, ax=ax: autograd.cat([a, b, c], ax), [ma, mb, mc],
             lambda a, b, c, ax=ax: torch.cat([a, b, c], ax), [ta, tb, tc])
    case("layout", "slice [:, 8:24]", str(S), lambda x: autograd.slice(x, [8], [24], [1]),
         [mx], lambda x: x[:, 8:24].contiguous(), [tx])
    case("layout", "slice [:,:,2:26,2:26]", str(S),
         lambda x: autograd.slice(x, [2, 2], [26, 26], [2, 3]), [mx],
         lambda x: x[:, :, 2:26, 2:26].contiguous(), [tx])
    case("layout", "slice [:,:,:,::2]", str(S),
         lambda x: autograd.slice(x, [0], [28], [3], [2]), [mx],
         lambda x: x[:, :, :, ::2].contiguous(), [tx])
    case("layout", "pad const 1 (H,W)", str(S),
         lambda x: autograd.pad(x, "constant", [0, 0, 1, 1, 0, 0, 1, 1]), [mx],
         lambda x: TF.pad(x, (1, 1, 1, 1)), [tx])
    case("layout", "pad reflect 2 (H,W)", str(S),
         lambda x: autograd.pad(x, "reflect", [0, 0, 2, 2, 0, 0, 2, 2]), [mx],
         lambda x: TF.pad(x, (2, 2, 2, 2), mode="reflect"), [tx])
    idx = RNG.integers(0, 32, 16).astype(np.int32)
    mi = Tensor(data=idx, requires_grad=False)
    ti = torch.from_numpy(idx.astype(np.int64))
    case("layout", "gather axis=1 (16 idx)", str(S), lambda x: autograd.gather(x, 1, mi), [mx],
         lambda x: torch.index_select(x, 1, ti), [tx])
    (my,), (ty,) = both(rnd(64, 1000))
    idx2 = RNG.integers(0, 1000, 100).astype(np.int32)
    mi2 = Tensor(data=idx2, requires_grad=False)
    ti2 = torch.from_numpy(idx2.astype(np.int64))
    case("layout", "gather axis=1 (100 idx)", "(64, 1000)",
         lambda x: autograd.gather(x, 1, mi2), [my],
         lambda x: torch.index_select(x, 1, ti2), [ty])
    case("layout", "reshape+flatten", str(S), lambda x: autograd.flatten(x, 1), [mx],
         lambda x: torch.flatten(x, 1), [tx])
    (mz,), (tz,) = both(rnd(64, 1, 28, 28))
    case("layout", "expand/tile to 32 ch", "(64,1,28,28)->(64,32,28,28)",
         lambda x: autograd.expand(x, [64, 32, 28, 28]), [mz],
         lambda x: x.expand(64, 32, 28, 28).contiguous(), [tz])


def misc():
    for shp in [(64, 32, 28, 28), (64, 4096)]:
        (mx,), (tx,) = both(rnd(*shp))
        case("dropout", "dropout p=0.5", str(shp), lambda x: autograd.dropout(x, 0.5), [mx],
             lambda x: TF.dropout(x, 0.5, True), [tx])
    for V, D, idx_shape in [(30000, 256, (64, 50)), (1000, 64, (32, 20))]:
        w = rnd(V, D)
        idx = RNG.integers(0, V, idx_shape).astype(np.int32)
        mi = Tensor(data=idx, requires_grad=False)
        ti = torch.from_numpy(idx.astype(np.int64))
        (mw,), (tw,) = both(w)
        case("embedding", "embedding", f"W({V},{D}) idx{idx_shape}",
             lambda w, mi=mi: autograd.gather(w, 0, mi), [mw],
             lambda w, ti=ti: TF.embedding(ti, w), [tw])


def rnns():
    T, N, H = 20, 32, 256
    x = rnd(T, N, H)
    for kind in ["LSTM", "GRU"]:
        ml = getattr(rnn, kind)(H, H)
        tl = getattr(torch.nn, kind)(H, H)
        mx = mst(x)
        tx = tt(x)
        autograd.training = True
        ml(mx)  # initialise
        # same weights
        with torch.no_grad():
            tl.weight_ih_l0.copy_(torch.from_numpy(ml.Wx.to_numpy().T))
            tl.weight_hh_l0.copy_(torch.from_numpy(ml.Wh.to_numpy().T))
            if kind == "LSTM":
                tl.bias_ih_l0.copy_(torch.from_numpy(ml.b.to_numpy()))
                tl.bias_hh_l0.zero_()
            else:
                tl.bias_ih_l0.copy_(torch.from_numpy(ml.b.to_numpy()))
                tl.bias_hh_l0.copy_(torch.from_numpy(ml.bh.to_numpy()))
        for p in ml.get_params().values():
            p.requires_grad, p.stores_grad = True, True
        got = ml(mx)[0].to_numpy()
        want = tl(tx)[0].detach().numpy()
        err = float(np.abs(got - want).max())
        print(f"# {kind} max |diff| = {err:.2e}")
        case("rnn", kind, f"seq {T} batch {N} in {H} hid {H}", lambda x, m=ml: m(x)[0], [mx],
             lambda x, m=tl: m(x)[0], [tx])


def optimizers():
    shapes = [(1024, 1024)] * 24 + [(256,)] * 64 + [(256, 256)] * 16
    n = sum(int(np.prod(s)) for s in shapes)
    desc = f"{len(shapes)} tensors, {n / 1e6:.1f}M params"
    arrs = [rnd(*s) * 0.01 for s in shapes]
    grads = [rnd(*s) * 0.01 for s in shapes]
    for kind in ["SGD momentum", "Adam"]:
        mps = [Tensor(data=a, requires_grad=True, stores_grad=True) for a in arrs]
        mgs = [Tensor(data=g, requires_grad=False) for g in grads]
        for i, p in enumerate(mps):
            p.name = f"p{i}"
        tps = [torch.nn.Parameter(torch.from_numpy(a.copy())) for a in arrs]
        for p, g in zip(tps, grads):
            p.grad = torch.from_numpy(g.copy())
        if kind == "Adam":
            mo = opt.Adam(lr=1e-3)
            to = torch.optim.Adam(tps, lr=1e-3)
            to_fe = torch.optim.Adam(tps, lr=1e-3, foreach=True)
        else:
            mo = opt.SGD(lr=0.01, momentum=0.9)
            to = torch.optim.SGD(tps, lr=0.01, momentum=0.9)
            to_fe = torch.optim.SGD(tps, lr=0.01, momentum=0.9, foreach=True)

        def ms_step(mo=mo, mps=mps, mgs=mgs):
            for p, g in zip(mps, mgs):
                mo.update(p, g)
            mo.step()
            sync()
        case("optim", kind + " (torch default)", desc, None, [], None, [], backward=False,
             ms_fwd_fn=ms_step, t_fwd_fn=to.step)
        case("optim", kind + " (torch foreach)", desc, None, [], None, [], backward=False,
             ms_fwd_fn=ms_step, t_fwd_fn=to_fe.step)


def creation():
    L = (64, 64, 56, 56)
    a = rnd(*L)
    mt = Tensor(L, requires_grad=False)
    tt_ = torch.empty(L)
    case("tensor", "create (uninit)", str(L), None, [], None, [], backward=False,
         ms_fwd_fn=lambda: Tensor(L, requires_grad=False), t_fwd_fn=lambda: torch.empty(L))
    case("tensor", "zeros", str(L), None, [], None, [], backward=False,
         ms_fwd_fn=lambda: tensor.zeros(L), t_fwd_fn=lambda: torch.zeros(L))
    case("tensor", "copy_from_numpy", str(L), None, [], None, [], backward=False,
         ms_fwd_fn=lambda: mt.copy_from_numpy(a),
         t_fwd_fn=lambda: tt_.copy_(torch.from_numpy(a)))
    case("tensor", "Tensor(data=ndarray)", str(L), None, [], None, [], backward=False,
         ms_fwd_fn=lambda: Tensor(data=a, requires_grad=False),
         t_fwd_fn=lambda: torch.tensor(a))
    mt.copy_from_numpy(a)
    tt_.copy_(torch.from_numpy(a))
    case("tensor", "to_numpy", str(L), None, [], None, [], backward=False,
         ms_fwd_fn=lambda: mt.to_numpy(), t_fwd_fn=lambda: tt_.numpy().copy())
    case("tensor", "clone", str(L), None, [], None, [], backward=False,
         ms_fwd_fn=lambda: mt.clone(), t_fwd_fn=lambda: tt_.clone())
    s = rnd(64, 10)
    ms_ = Tensor((64, 10), requires_grad=False)
    ts_ = torch.empty(64, 10)
    case("tensor", "copy_from_numpy small", "(64, 10)", None, [], None, [], backward=False,
         ms_fwd_fn=lambda: ms_.copy_from_numpy(s),
         t_fwd_fn=lambda: ts_.copy_(torch.from_numpy(s)))
    case("tensor", "to_numpy small", "(64, 10)", None, [], None, [], backward=False,
         ms_fwd_fn=lambda: ms_.to_numpy(), t_fwd_fn=lambda: ts_.numpy().copy())


GROUPS = dict(overhead=overhead, elementwise=elementwise, reductions=reductions,
              softmax=softmaxes, blas=blas, conv=convs, pool=pools, batchnorm=batchnorms,
              layout=layouts, misc=misc, rnn=rnns, optim=optimizers, creation=creation)

def _import_torch() -> None:
    global torch, TF
    try:
        import torch
        import torch.nn.functional as TF
    except ImportError:
        print("bench_ops.py compares against PyTorch, which is not installed (pip install torch)")
        sys.exit(2)
    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", nargs="*", default=None, help="substrings of 'family op shape'")
    ap.add_argument("--groups", nargs="*", default=list(GROUPS))
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--out", default=None, help="also write the rows to this JSON file")
    ARGS = ap.parse_args()
    _import_torch()
    print(f"# torch {torch.__version__} threads {torch.get_num_threads()}, "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}")
    print(f"# {'family':10s} {'op':28s} {'shape':34s}    ms_ms      t_ms  ratio")
    t0 = time.time()
    for g in ARGS.groups:
        GROUPS[g]()
        if ARGS.out:
            with open(ARGS.out, "w") as f:
                json.dump(RESULTS, f, indent=1)
    print(f"# done in {time.time() - t0:.0f} s")
