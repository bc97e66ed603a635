"""float16 hunt: autograd operators, layers, losses, optimizers, models and checkpoints with
float16 tensors against the same computation in float32 (tolerances relative to the output's
scale, suited to float16's ~3 decimal digits), plus the float16 corners test_half.py and
test_cast.py leave open: long reductions, saturated softmaxes, tie counts past 65504, batch-norm
running statistics, range limits, mixed float16/float32 operands and int32 tensors reaching
float-only ops."""

import os

import numpy as np
import pytest

from minisinga import _core, autograd, layer, model, opt, rnn, tensor

F16, F32, I32 = np.float16, np.float32, np.int32


def h(rng, *shape, lo=-2.0, hi=2.0):
    """float16 values (the float32 run sees exactly the same inputs)."""
    return rng.uniform(lo, hi, shape).astype(F16)


def leaf(a, dtype):
    return tensor.Tensor(data=a.astype(dtype), requires_grad=True, stores_grad=True)


def const(a):
    return tensor.Tensor(data=a, requires_grad=False)


def run(fn, arrays, dtype, weight_seed=1):
    """fn on leaves of `dtype` (float16 arrays; other arrays are constants); the output and
    the gradients of sum(w * y) for a fixed random w, all as float64."""
    ts = [leaf(a, dtype) if a.dtype == F16 else const(a) for a in arrays]
    with autograd.train_mode():
        y = fn(*ts)
        w = np.random.default_rng(weight_seed).uniform(-1, 1, y.shape).astype(F32)
        loss = autograd.reduce_sum(autograd.mul(y, const(w).as_type(y.dtype)), None, False)
        g = autograd.gradients(loss)
    grads = [g[t].to_numpy().astype(np.float64) if t in g else None for t in ts]
    return y, y.to_numpy().astype(np.float64), grads


def close(got, want, rtol=4e-3, what=""):
    """|got - want| <= rtol * max|want| + one float16 ulp of want (the rounding of a float16
    result, subnormals included), NaN/inf where want has them."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    fin = np.isfinite(want)
    np.testing.assert_array_equal(np.isfinite(got), fin, err_msg=f"{what}: finiteness")
    if fin.any():
        g, w = got[fin], want[fin]
        scale = np.abs(w).max()
        ulp = np.spacing(np.abs(w).astype(F16)).astype(np.float64)
        bad = np.abs(g - w) > rtol * scale + ulp
        assert not bad.any(), (f"{what}: error {np.abs(g - w).max():.3g} at scale "
                               f"{scale:.3g}, e.g. {g[bad][:3]} for {w[bad][:3]}")


def same_as_float32(fn, *arrays, rtol=4e-3):
    y16, got, g16 = run(fn, arrays, F16)
    _, want, g32 = run(fn, arrays, F32)
    assert y16.dtype == tensor.float16
    close(got, want, rtol, "output")
    for i, (a, b) in enumerate(zip(g16, g32)):
        assert (a is None) == (b is None), i
        if a is not None:
            close(a, b, rtol, f"gradient {i}")


# ---------------------------------------------------------------- operators, float16 vs float32

A = autograd
UNARY = {
    "abs": (A.abs, (-2, 2)), "acos": (A.acos, (-0.9, 0.9)), "acosh": (A.acosh, (1.1, 3)),
    "asin": (A.asin, (-0.9, 0.9)), "asinh": (A.asinh, (-2, 2)), "atan": (A.atan, (-2, 2)),
    "atanh": (A.atanh, (-0.9, 0.9)), "cos": (A.cos, (-2, 2)), "cosh": (A.cosh, (-2, 2)),
    "elu": (A.elu, (-2, 2)), "erf": (A.erf, (-2, 2)), "exp": (A.exp, (-2, 2)),
    "hardsigmoid": (A.hardsigmoid, (-2, 2)), "leakyrelu": (A.leakyrelu, (-2, 2)),
    "log": (A.log, (0.2, 2)), "reciprocal": (A.reciprocal, (0.2, 2)), "relu": (A.relu, (-2, 2)),
    "selu": (A.selu, (-2, 2)), "sigmoid": (A.sigmoid, (-2, 2)), "sin": (A.sin, (-2, 2)),
    "sinh": (A.sinh, (-2, 2)), "softplus": (A.softplus, (-2, 2)),
    "softsign": (A.softsign, (-2, 2)), "sqrt": (A.sqrt, (0.2, 2)), "tan": (A.tan, (-1, 1)),
    "tanh": (A.tanh, (-2, 2)),
}


@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary_operators(name, rng):
    fn, (lo, hi) = UNARY[name]
    same_as_float32(fn, h(rng, 4, 5, lo=lo, hi=hi))


@pytest.mark.parametrize("name", ["add", "sub", "mul", "div", "pow", "maximum", "minimum"])
def test_binary_operators_broadcast(name, rng):
    a = h(rng, 4, 5, lo=0.2) if name == "pow" else h(rng, 4, 5)
    b = h(rng, 1, 5, lo=0.2) if name == "div" else h(rng, 1, 5)
    same_as_float32(getattr(A, name), a, b)


LAYOUT = {
    "prelu": (lambda x, s: A.prelu(x, s), [(4, 5), (5,)]),
    "add_bias": (lambda x, b: A.add_bias(x, b, 0), [(4, 5), (5,)]),
    "gemm": (lambda a, b, c: A.gemm(a, b, c, 0.5, 2.0, 0, 0), [(4, 5), (5, 3), (4, 3)]),
    "reduce_max": (lambda x: A.reduce_max(x, [1], True), [(4, 5)]),
    "concat": (lambda x, y: A.cat([x, y], 1), [(4, 5), (4, 2)]),
    "slice": (lambda x: A.slice(x, [1], [3], [1], [1]), [(4, 5)]),
    "tile": (lambda x: A.tile(x, [2, 1]), [(4, 5)]),
    "expand": (lambda x: A.expand(x, [3, 4, 5]), [(4, 5)]),
    "pad": (lambda x: A.pad(x, "constant", [1, 1, 1, 1], 0.5), [(4, 5)]),
    "gather": (lambda x: A.gather(x, 1, [0, 2, 2]), [(4, 5)]),
    "upsample": (lambda x: A.upsample(x, "nearest", [1, 1, 2, 2]), [(1, 2, 3, 3)]),
    "depth_to_space": (lambda x: A.depth_to_space(x, 2), [(1, 4, 2, 2)]),
    "max_pool_2d": (lambda x: A.max_pool_2d(x, 2, 2, 0), [(2, 3, 4, 4)]),
    "avg_pool_2d": (lambda x: A.avg_pool_2d(x, 2, 2, 0), [(2, 3, 4, 4)]),
    "globalaveragepool": (lambda x: A.globalaveragepool(x), [(2, 3, 4, 4)]),
    "softmax": (lambda x: A.softmax(x, 1), [(4, 5)]),
    "log_softmax": (lambda x: A.log_softmax(x, 1), [(4, 5)]),
    "mse_loss": (lambda x, t: A.mse_loss(x, t), [(4, 5), (4, 5)]),
    "ranking_loss": (lambda x, y: A.ranking_loss(x, y), [(6, 1), (6, 1)]),
}


@pytest.mark.parametrize("name", sorted(LAYOUT))
def test_layout_and_nn_operators(name, rng):
    fn, shapes = LAYOUT[name]
    same_as_float32(fn, *[h(rng, *s) for s in shapes])


def test_embedding_float16_table_and_repeated_index_gradient():
    idx = const(np.zeros(10000, I32))
    for dt in (F32, F16):
        w = leaf(np.ones((3, 4), F32), dt)
        with autograd.train_mode():
            y = A.embedding(idx, w)
            g = autograd.gradients(A.reduce_sum(y, None, False))[w]
        assert y.dtype == w.dtype and g.dtype == w.dtype
        # 10000 contributions of 1 in one row: summed in float32, not stuck at 2048
        np.testing.assert_array_equal(g.to_numpy()[0], [10000] * 4)


# ---------------------------------------------------------------- long reductions, big logits

def test_sum_and_mean_of_100k_float16_accumulate_in_float32(rng):
    a = h(rng, 100000, lo=0, hi=1)
    want = a.astype(np.float64).sum()
    got = tensor.sum(tensor.from_numpy(a)).to_numpy()
    assert got.dtype == F16 and abs(float(got) - want) <= np.spacing(F16(want))
    # the mean of 70000 ones: the sum (70000) is past float16's range, the mean is not
    assert tensor.average(tensor.from_numpy(np.ones(70000, F16))).to_numpy() == 1
    same_as_float32(lambda t: A.reduce_sum(t, [0], False), h(rng, 3000, 40, lo=0, hi=1))
    same_as_float32(lambda t: A.reduce_mean(t, [1], False), h(rng, 30, 2000, lo=0, hi=1))
    m = tensor.average(tensor.from_numpy(a)).to_numpy()
    assert abs(float(m) - a.astype(np.float64).mean()) <= np.spacing(F16(m))


def test_matmul_and_conv_with_large_k(rng):
    same_as_float32(A.matmul, h(rng, 4, 20000, lo=0, hi=1), h(rng, 20000, 3, lo=0, hi=1))
    x, w = h(rng, 2, 1024, 6, 6, lo=0, hi=1), h(rng, 3, 1024, 3, 3, lo=0, hi=1)
    ys = [_core.conv2d(tensor.from_numpy(x.astype(d)).data, tensor.from_numpy(w.astype(d)).data,
                       None, [1, 1], [1, 1, 1, 1], [1, 1], 1).to_numpy() for d in (F16, F32)]
    assert ys[0].dtype == F16
    close(ys[0].astype(np.float64), ys[1].astype(np.float64), 2e-3, "conv K=9216")


def test_softmax_family_at_large_logits(rng):
    big = h(rng, 4, 5, lo=-30000, hi=30000)
    lab = rng.integers(0, 5, 4).astype(I32)
    same_as_float32(lambda x: A.softmax(x, 1), big)
    same_as_float32(lambda x: A.log_softmax(x, 1), big)
    same_as_float32(lambda x: A.softmax_cross_entropy(x, const(lab)), h(rng, 4, 5, lo=-100,
                                                                       hi=100))
    oh = np.eye(5, dtype=F32)[lab]
    same_as_float32(lambda x: A.cross_entropy(A.softmax(x, 1), const(oh)), h(rng, 4, 5,
                                                                             lo=-3, hi=3))
    y = A.softmax_cross_entropy(tensor.from_numpy(big), const(lab)).to_numpy()
    assert np.isfinite(y)


def test_avg_pool_and_batchnorm_statistics_over_many_elements(rng):
    x = h(rng, 1, 2, 256, 256, lo=0, hi=1)
    got = A.pooling_2d(tensor.from_numpy(x), (256, 256), (256, 256), (0, 0, 0, 0), False,
                       True).to_numpy().ravel()
    want = x.astype(np.float64).mean(axis=(2, 3)).ravel()
    np.testing.assert_allclose(got.astype(np.float64), want, rtol=1e-3)
    x = (rng.standard_normal((64, 2, 16, 16)) * 0.1 + 100).astype(F16)
    bn = layer.BatchNorm2d(momentum=0.0)
    with autograd.train_mode():
        y = bn(tensor.from_numpy(x)).to_numpy().astype(np.float64)
    np.testing.assert_allclose(y.mean(axis=(0, 2, 3)), 0, atol=2e-3)
    np.testing.assert_allclose(y.std(axis=(0, 2, 3)), 1, atol=2e-3)


# ---------------------------------------------------------------- bugs (fail until fixed)

def test_mse_loss_float16_sum_does_not_overflow(rng):
    """mse_loss sums (x - t)^2 over every element in float16 before dividing by 2N: 100k
    elements of (x - t)^2 ~ 5 give inf, though the loss (~134) is well within range
    (cross_entropy and binary_cross_entropy compute in float32 for float16 inputs)."""
    x, t = h(rng, 1000, 100), h(rng, 1000, 100)
    same_as_float32(lambda a, b: A.mse_loss(a, b), x, t)


def test_cossim_float16_long_rows_small_values_and_zero_rows():
    """CosSim sums squares in float16: rows with |a|^2 > 65504 overflow (similarity 0), tiny
    rows lose the sum to subnormals (similarity inf), and the 1e-12 guard rounds to 0 in
    float16 (a zero row gives NaN instead of 0)."""
    rng = np.random.default_rng(0)
    cases = [
        (rng.uniform(5, 10, (2, 1000)), rng.uniform(5, 10, (2, 1000))),
        (np.full((1, 4), 1e-3), np.full((1, 4), 1e-3)),
        (np.array([[0, 0, 0, 0], [1, 1, 1, 1]]), np.ones((2, 4))),
    ]
    for a, b in cases:
        a, b = a.astype(F16), b.astype(F16)
        y16, got, g16 = run(lambda p, q: A.cossim(p, q), [a, b], F16)
        _, want, g32 = run(lambda p, q: A.cossim(p, q), [a, b], F32)
        close(got, want, 4e-3, f"cossim of rows {a.shape}")
        if a.any(axis=1).all():  # a zero row's gradient (~5e5 in float32) is past float16
            close(g16[0], g32[0], 4e-3, f"cossim gradient, rows {a.shape}")


def test_reduce_max_float16_gradient_with_more_than_65504_ties():
    """ReduceMax/ReduceMin backward counts the ties in x's dtype: past 65504 the float16
    count is inf and every tied element gets 0 instead of dy / count."""
    for fn in (A.reduce_max, A.reduce_min):
        x = leaf(np.zeros(70000, F32), F16)
        with autograd.train_mode():
            g = autograd.gradients(fn(x, None, False))[x].to_numpy()
        assert g.dtype == F16
        close(g, np.full(g.shape, 1 / 70000), 2e-3, fn.__name__)


def test_softmax_cross_entropy_float16_gradient_of_confident_rows():
    """softmax_cross_entropy keeps the softmax in float16 for backward: for a confident row
    (p ~ 0.996) p - 1 loses most of its digits (the true class's gradient is off by ~7% of the
    row's scale) and at p > 1 - 2^-12 it is exactly 0. The float32 computation rounded once
    (or log-softmax's backward, which stays exact here) gives every gradient to 3 digits."""
    rng = np.random.default_rng(0)
    x = h(rng, 64, 10, lo=-1, hi=1)
    lab = rng.integers(0, 10, 64).astype(I32)
    x[np.arange(64), lab] = 8.0
    x[0] = [12, 1, 0, 0, 0, 0, 0, 0, 0, 0]
    lab[0] = 0
    g = {}
    for dt in (F16, F32):
        t = leaf(x, dt)
        with autograd.train_mode():
            g[dt] = autograd.gradients(A.softmax_cross_entropy(t, const(lab)))[t].to_numpy()
    a, b = g[F16].astype(np.float64), g[F32].astype(np.float64)
    for r in range(64):  # within 0.4% of the row's scale (and one float16 ulp)
        close(a[r], b[r], 4e-3, f"row {r}")


def test_batchnorm_float16_running_statistics_do_not_stall_or_overflow():
    """BatchNorm2d keeps its running mean/var in float16 for float16 input: with momentum
    0.99 an update 0.01 * (batch - running) under half an ulp rounds away, so the running mean
    of a channel with mean 7 stalls at ~6.8 (3%); a channel with std 300 (values ~ +-310) has
    a running var past 65504: inf, and every evaluation output 0. The core takes float32
    running statistics beside float16 x (test_half.py), so they can stay float32."""
    base = np.array([-1.0, 1.0] * 16).reshape(32, 1, 1, 1)
    x = np.concatenate([base * 3 + 7, base * 300 + 10], 1).astype(F16)
    want_mean, want_var = np.array([7.0, 10.0]), np.array([9.0, 90000.0]) * 32 / 31
    bn = layer.BatchNorm2d(momentum=0.99)
    tx = tensor.from_numpy(x)
    with autograd.train_mode():
        for _ in range(1500):
            bn(tx)
    rm = bn.running_mean.to_numpy().astype(np.float64)
    rv = bn.running_var.to_numpy().astype(np.float64)
    np.testing.assert_allclose(rm, want_mean, rtol=2e-3)
    np.testing.assert_allclose(rv, want_var, rtol=2e-3)
    y = bn(tx).to_numpy().astype(np.float64)  # evaluation: the running statistics
    np.testing.assert_allclose(np.abs(y).mean(axis=(0, 2, 3)), np.sqrt(31 / 32), rtol=5e-3)


def test_float_only_unary_ops_on_int32_are_not_undefined():
    """Exp, Log, Sqrt, ... on int32 compute in double and static_cast the result to int32:
    NaN (log or sqrt of a negative) and out-of-range values (exp(30)) are undefined behaviour
    in C++ (INT32_MIN on x86), unlike as_type, which saturates (NaN -> 0). SINGA has no int
    kernels for these (LOG(FATAL) "Not Implemented"). Either refuse int32 (TypeError) or
    convert like as_type."""
    i = tensor.from_numpy(np.array([-5, 30, 4], I32))
    for fn, want in ((tensor.log, [0, 3, 1]), (tensor.sqrt, [0, 5, 2]),
                     (tensor.exp, [0, 2 ** 31 - 1, 54])):
        try:
            y = fn(i).to_numpy()
        except TypeError:
            continue
        np.testing.assert_array_equal(y, want, err_msg=fn.__name__)


def test_uniform_float16_stays_below_high():
    """uniform(low, high) promises [low, high): float16 rounds the float32 draw, so values
    within half an ulp of high become high (0.03% of draws for [0, 1), 0.4% for [10, 11))."""
    t = tensor.Tensor((300000,), dtype=tensor.float16)
    for low, high in ((0.0, 1.0), (10.0, 11.0)):
        a = t.uniform(low, high).to_numpy()
        assert a.min() >= low and a.max() < high, (low, high, int((a == high).sum()))


def test_linear_and_conv_on_int32_input_name_the_layer():
    """An int32 input to a fresh Linear/Conv2d fails in the weight initialiser: 'gaussian:
    input has dtype int32', which names neither the layer nor the input."""
    for lay, shape in ((layer.Linear(2), (2, 3)), (layer.Conv2d(2, 3), (1, 3, 4, 4))):
        with pytest.raises(TypeError, match=type(lay).__name__):
            lay(tensor.from_numpy(np.ones(shape, I32)))


def test_cross_entropy_mixed_dtypes_symmetric():
    """cross_entropy(float16 y, float32 t) works (t is cast), but cross_entropy(float32 y,
    float16 t) fails inside with 'Mul: dtypes differ'; the same holds for
    binary_cross_entropy. Either accept both orders or refuse both naming the loss."""
    y = np.full((2, 3), 1 / 3)
    t = np.eye(3)[[0, 2]]
    for loss in (A.cross_entropy, A.binary_cross_entropy):
        ok = loss(tensor.from_numpy(y.astype(F16)), tensor.from_numpy(t.astype(F32)))
        assert ok.dtype == tensor.float16
        try:
            r = loss(tensor.from_numpy(y.astype(F32)), tensor.from_numpy(t.astype(F16)))
        except TypeError as e:
            assert loss.__name__ in str(e), str(e)
        else:
            np.testing.assert_allclose(r.to_numpy(), ok.to_numpy().astype(F32), rtol=2e-3)


def test_rnn_state_dtype_mismatch_names_the_state():
    """An LSTM on float16 steps with float32 h0/c0 fails deep inside: 'Mul: dtypes differ'."""
    m = rnn.LSTM(5, 8)
    x = tensor.from_numpy(np.zeros((4, 3, 5), F16))
    h0 = tensor.from_numpy(np.zeros((3, 8), F32))
    with pytest.raises((TypeError, ValueError), match="h0|c0"):
        m(x, (h0, h0))


class Small(model.Model):
    def __init__(self):
        super().__init__()
        self.fc = layer.Linear(3)
        self.bn = layer.BatchNorm2d()

    def forward(self, x):
        return self.bn(self.fc(x))

    def train_one_batch(self, x, y):
        out = self.forward(x)
        loss = autograd.mse_loss(out, y)
        self.optimizer(loss)
        return out, loss


def small(dt):
    m = Small()
    m.set_optimizer(opt.Adam(0.01))
    x = tensor.from_numpy(np.random.default_rng(0).standard_normal((4, 5)).astype(dt))
    m.compile([x], is_train=True, use_graph=False)
    m(x, tensor.from_numpy(np.zeros((4, 3), dt)))
    return m


def test_load_float32_checkpoint_out_of_float16_range_is_refused(tmp_path):
    """load_states converts silently: a float32 checkpoint holding 1e5 loads into a float16
    model as inf (only numpy's RuntimeWarning), 1e-9 as 0."""
    m32 = small(F32)
    m32.fc.W.copy_from_numpy(np.full(m32.fc.W.shape, 1e5, F32))
    p = os.path.join(tmp_path, "big.npz")
    m32.save_states(p)
    m16 = small(F16)
    with pytest.raises(ValueError, match="fc.W"):
        m16.load_states(p)


# ---------------------------------------------------------------- layers, models, checkpoints

@pytest.mark.parametrize("cls", [rnn.RNN, rnn.LSTM, rnn.GRU], ids=lambda c: c.__name__)
def test_recurrent_layers_float16_vs_float32(cls, rng):
    x = h(rng, 12, 3, 5, lo=-1, hi=1)
    res = {}
    p0 = None
    for dt in (F32, F16):
        m = cls(5, 8, num_layers=2, bidirectional=True)
        tx = leaf(x, dt)
        with autograd.train_mode():
            m(tx)
            if p0 is None:
                p0 = {k: v.to_numpy().astype(F16) for k, v in m.get_params().items()}
            m.set_params(p0)
            y = m(tx)
            y = y[0] if isinstance(y, tuple) else y
            g = autograd.gradients(A.reduce_sum(A.mul(y, y), None, False))
        assert y.dtype == tx.dtype
        res[dt] = (y.to_numpy().astype(np.float64), g[tx].to_numpy().astype(np.float64),
                   {k: g[v].to_numpy().astype(np.float64) for k, v in m.get_params().items()})
    (y16, dx16, dp16), (y32, dx32, dp32) = res[F16], res[F32]
    close(y16, y32, 4e-3, "output")
    close(dx16, dx32, 5e-3, "dx")
    for k in dp32:
        close(dp16[k], dp32[k], 5e-3, k)


class Net(model.Model):
    def __init__(self):
        super().__init__()
        self.conv = layer.Conv2d(6, 3, padding=1)
        self.bn = layer.BatchNorm2d()
        self.pool = layer.MaxPool2d(2, 2)
        self.flat = layer.Flatten()
        self.fc = layer.Linear(4)

    def forward(self, x):
        return self.fc(self.flat(self.pool(autograd.relu(self.bn(self.conv(x))))))

    def train_one_batch(self, x, y):
        out = self.forward(x)
        loss = autograd.softmax_cross_entropy(out, y)
        self.optimizer(loss)
        return out, loss


@pytest.mark.parametrize("make_opt", [lambda: opt.SGD(0.05, momentum=0.9),
                                      lambda: opt.Adam(0.01), lambda: opt.RMSProp(0.01)],
                         ids=["sgd", "adam", "rmsprop"])
def test_cnn_float16_loss_curve_follows_float32(make_opt):
    r = np.random.default_rng(1)
    x = r.standard_normal((16, 3, 8, 8)).astype(F16)
    y = (x.astype(F32).mean(axis=(2, 3)) @ r.standard_normal((3, 4))).argmax(1).astype(I32)
    ty = tensor.from_numpy(y)
    init, curves = None, {}
    for dt in (F32, F16):
        tx = tensor.from_numpy(x.astype(dt))
        m = Net()
        m.set_optimizer(make_opt())
        m.compile([tx], is_train=True, use_graph=False, sequential=True)
        if init is None:
            init = {k: v.to_numpy().astype(F16) for k, v in m.get_states().items()}
        m.set_states(init)
        curves[dt] = np.array([float(m(tx, ty)[1].to_numpy().astype(F32).reshape(-1)[0])
                               for _ in range(50)])
        if dt == F16:
            assert all(v.dtype == tensor.float16 for v in m.get_params().values())
            assert all(v.dtype == tensor.float32 for k, v in m.optimizer.get_states().items())
    assert curves[F16][-1] < 0.1 * curves[F16][0]
    np.testing.assert_allclose(curves[F16], curves[F32], atol=2e-3 * curves[F32][0])


def test_float16_checkpoint_loads_into_float16_and_float32_models(tmp_path):
    m16 = small(F16)
    p = os.path.join(tmp_path, "h.npz")
    m16.save_states(p)
    saved = {k: v.to_numpy() for k, v in m16.get_states().items()}
    for dt, tdt in ((F16, tensor.float16), (F32, tensor.float32)):
        m = small(dt)
        before = {k: v.dtype for k, v in m.get_states().items()}
        m.load_states(p)
        for k, v in m.get_states().items():
            assert v.dtype == before[k], k  # converted to the model's dtypes, exactly
            np.testing.assert_array_equal(v.to_numpy().astype(F32), saved[k].astype(F32))
        assert all(v.dtype == tdt for v in m.get_params().values())
        assert all(v.dtype == tensor.float32 for v in m.optimizer.get_states().values())


def test_optimizer_state_float32_for_float16_params():
    for make in (lambda: opt.SGD(0.1, momentum=0.9), lambda: opt.Adam(0.1),
                 lambda: opt.AdaGrad(0.1), lambda: opt.RMSProp(0.1)):
        o = make()
        p = tensor.Tensor(data=np.ones(3, F16), requires_grad=True, stores_grad=True, name="p")
        o.update(p, tensor.from_numpy(np.full(3, 0.5, F16)))
        assert p.dtype == tensor.float16
        assert p.to_numpy()[0] < 1
        assert all(v.dtype == tensor.float32 for k, v in o.get_states().items()
                   if k != "step_counter")


# ---------------------------------------------------------------- casts, mixed operands, int32

def test_tensor_as_type_at_float16_limits():
    a = np.array([65504, 65519.99, 65520, -65520, 2.0 ** -24, 2.0 ** -25, 3 * 2.0 ** -25,
                  2.0 ** -14, np.nan, np.inf, -0.0], F32)
    t = tensor.from_numpy(a)
    got = t.as_type(tensor.float16).to_numpy()
    with np.errstate(over="ignore"):
        want = a.astype(F16)
    np.testing.assert_array_equal(got.view(np.uint16), want.view(np.uint16))
    t2 = tensor.from_numpy(a.copy()).to_type(tensor.float16)
    assert t2.dtype == tensor.float16
    np.testing.assert_array_equal(t2.to_numpy().view(np.uint16), want.view(np.uint16))
    back = tensor.from_numpy(want).as_type("float32").to_numpy()
    np.testing.assert_array_equal(back[:8], want[:8].astype(F32))


def test_mixed_float16_float32_operands():
    a16 = tensor.from_numpy(np.ones((2, 3), F16))
    a32 = tensor.from_numpy(np.full((2, 3), 2.0, F32))
    for fn in (A.add, A.mul, A.maximum, A.pow, lambda x, y: A.cat([x, y], 0)):
        with pytest.raises(TypeError, match="dtype"):
            fn(a16, a32)
    # GEMMs promote: a float16 result from the float32 GEMM, either order
    for x, y in ((a16, a32), (a32, a16)):
        r = A.matmul(x, A.transpose(y, [1, 0]))
        assert r.dtype == tensor.float16
        np.testing.assert_array_equal(r.to_numpy(), np.full((2, 2), 6, F16))


def test_int32_reaching_float_only_ops_is_refused():
    i2 = tensor.from_numpy(np.ones((2, 3), I32))
    i4 = tensor.from_numpy(np.ones((1, 1, 2, 2), I32))
    for fn in (lambda: tensor.softmax(i2), lambda: A.log_softmax(i2, 1),
               lambda: tensor.average(i2),
               lambda: A.softmax_cross_entropy(i2, tensor.from_numpy(np.zeros(2, I32))),
               lambda: layer.MaxPool2d(2)(i4), lambda: layer.BatchNorm2d()(i4),
               lambda: rnn.LSTM(3, 4)(tensor.from_numpy(np.ones((2, 2, 3), I32)))):
        with pytest.raises(TypeError, match="int32"):
            fn()
