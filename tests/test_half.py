"""float16 through the ops that compute in float32 (GEMM, convolution, pooling, batch-norm,
the fused optimizers), on float16 kernels or on float32 copies: each must equal the float32
op on the same (float16-representable) values, rounded once to float16 -- bit for bit on one
device, except float16 GEMMs on CUDA (cuBLAS on tensor cores sums in its own order: within
one float16 ulp, plus that order's float32 rounding where a sum cancels to near zero) -- and
float16 models must train, eagerly and as a recorded graph, on every device."""

import numpy as np
import pytest
from conftest import core_tensor, recorded_nodes

from minisinga import _core, autograd, layer, model, opt, tensor

F16, F32, I32 = np.float16, np.float32, np.int32

def h(rng, *shape):
    """Random float16 values (so the float32 reference sees exactly the same inputs)."""
    return rng.uniform(-2, 2, shape).astype(F16)


def same_as_float32(dev, fn, *arrays, maxulp=0):
    """fn on float16 tensors == fn on their float32 copies, cast to float16, bit for bit (or
    within `maxulp` float16 ulps, plus 2**-16 of the largest output: two float32 sums of the
    same terms in different orders differ by a few float32 roundings of the terms, which is
    many float16 ulps of an output that cancels to near zero -- measured on an H200: 6 ulps,
    ~1e-6 of the largest output). Integer arrays (indices, labels) pass through unchanged."""

    def run(dtype):
        ts = [core_tensor(a.astype(dtype) if a.dtype == F16 else a, dev) for a in arrays]
        out = fn(*ts)
        out = out if isinstance(out, (tuple, list)) else [out]
        return [o.to_numpy() for o in out if o is not None]

    got, ref = run(F16), run(F32)
    for i, (g, r) in enumerate(zip(got, ref)):
        want = r.astype(F16) if r.dtype == F32 and g.dtype == F16 else r
        assert g.dtype == want.dtype, (i, g.dtype, want.dtype)
        if maxulp:
            w32 = want.astype(F32)
            tol = maxulp * np.spacing(np.abs(want)).astype(F32) + 2.0**-16 * np.abs(w32).max()
            err = np.abs(g.astype(F32) - w32)
            assert np.all(err <= tol), (i, float((err / tol).max()), float(err.max()))
        else:
            np.testing.assert_array_equal(g, want, err_msg=f"output {i}")
    return got


def gemm_ulp(dev):
    return 1 if dev.is_cuda else 0


def test_matmul(dev, rng):
    u = gemm_ulp(dev)
    a, b = h(rng, 5, 7), h(rng, 7, 3)
    (c,) = same_as_float32(dev, lambda x, y: _core.matmul(x, y), a, b, maxulp=u)
    assert c.dtype == F16
    np.testing.assert_allclose(c, a.astype(F32) @ b.astype(F32), rtol=2e-3, atol=2e-3)
    same_as_float32(dev, lambda x, y: _core.matmul(x, y, True, True), h(rng, 4, 2, 6),
                    h(rng, 3, 2), maxulp=u)
    same_as_float32(dev, lambda x, y: _core.matmul(x, y), h(rng, 3, 4, 5), h(rng, 3, 5, 2),
                    maxulp=u)
    # broadcast batch (a strided-batched GEMM with a shared operand), transposed a
    same_as_float32(dev, lambda x, y: _core.matmul(x, y, True, False), h(rng, 2, 1, 6, 4),
                    h(rng, 3, 6, 5), maxulp=u)
    # K == 0: zeros
    (z,) = same_as_float32(dev, lambda x, y: _core.matmul(x, y), h(rng, 3, 0), h(rng, 0, 2))
    assert z.dtype == F16 and not z.any()


def test_matmul_out_and_beta(dev, rng):
    a, b, c0 = h(rng, 4, 6), h(rng, 6, 3), h(rng, 4, 3)

    def fn(x, y, out):
        r = _core.matmul(x, y, False, False, 0.5, 2.0, out)
        assert r.dtype == out.dtype
        return out

    same_as_float32(dev, fn, a, b, c0, maxulp=gemm_ulp(dev))
    # mixed float16 and float32 operands: the float32 GEMM, a float16 result
    (m,) = same_as_float32(dev, lambda x, y: _core.matmul(x, y), a, b.astype(F32))
    assert m.dtype == F16


def test_conv2d_and_backward(dev, rng):
    x, w, b = h(rng, 2, 3, 9, 8), h(rng, 4, 3, 3, 3), h(rng, 4)
    args = ([2, 1], [1, 1, 0, 1], [1, 1], 1)
    (y,) = same_as_float32(dev, lambda x_, w_, b_: _core.conv2d(x_, w_, b_, *args), x, w, b)
    dy = h(rng, *y.shape)
    same_as_float32(
        dev,
        lambda dy_, x_, w_: [
            _core.conv2d_backward_data(dy_, w_, list(x.shape), *args),
            _core.conv2d_backward_weight(dy_, x_, list(w.shape), *args),
            _core.conv2d_backward_bias(dy_),
        ],
        dy, x, w,
    )
    # depthwise (its own kernels)
    wd = h(rng, 3, 1, 3, 3)
    same_as_float32(dev, lambda x_, w_: _core.conv2d(x_, w_, None, [1, 1], [1, 1, 1, 1],
                                                     [1, 1], 3), x, wd)


# Every path of the convolution plan (ops/conv.cc) with float16 operands: x, w shapes,
# stride, padding, groups.
HALF_CONVS = [
    ((3, 3, 9, 8), (4, 3, 3, 3), [2, 1], [1, 1, 0, 1], 1),  # several images per GEMM
    ((2, 4, 34, 33), (6, 2, 3, 3), [1, 1], [1, 1, 1, 1], 2),  # GPU plan: batched GEMMs, groups
    ((2, 8, 33, 32), (4, 8, 1, 1), [1, 1], [0, 0, 0, 0], 1),  # 1x1: x is the col matrix
    ((2, 4, 66, 65), (3, 4, 3, 2), [1, 1], [1, 1, 0, 1], 1),  # CPU plan: a GEMM per image
]


@pytest.fixture(params=["cpu-plan", "gpu-plan"])
def plan(request):
    """The CPU's convolution plan and the GPU's (which the CPU then runs too)."""
    old = _core._set_conv_gpu_plan_on_cpu(request.param == "gpu-plan")
    yield request.param
    _core._set_conv_gpu_plan_on_cpu(old)


@pytest.mark.parametrize("case", HALF_CONVS, ids=str)
def test_conv2d_float16_runs_on_float16_gemms(dev, rng, plan, case):
    """float16 convolutions in the GPU's plan run im2col, the layout passes and the GEMMs on
    float16 operands (tensor cores on CUDA), not on float32 copies; every result is a float32
    sum rounded once to float16, as from the float32 convolution on the same values. The one
    exception: a bias added to a result the GEMM already rounded (one image per GEMM, or
    batched GEMMs), as PyTorch adds it too, within half an ulp of the unbiased sum more. The
    bias gradient runs on float16 kernels in every plan."""
    xs, ws, st, pad, grp = case
    x, w, b = h(rng, *xs), h(rng, *ws), h(rng, ws[0])
    args = (st, pad, [1, 1], grp)
    u = gemm_ulp(dev)
    (y,) = same_as_float32(dev, lambda x_, w_: _core.conv2d(x_, w_, None, *args), x, w,
                           maxulp=u)
    dy = h(rng, *y.shape)
    got = same_as_float32(
        dev,
        lambda dy_, x_, w_: [
            _core.conv2d_backward_data(dy_, w_, list(xs), *args),
            _core.conv2d_backward_weight(dy_, x_, list(ws), *args),
            _core.conv2d_backward_bias(dy_),
        ],
        dy, x, w, maxulp=u,
    )
    assert [g.shape for g in got] == [xs, ws, (ws[0],)]
    t = [core_tensor(a, dev) for a in (x, w, b)]
    yb = _core.conv2d(*t, *args).to_numpy().astype(F32)
    t32 = [core_tensor(a.astype(F32), dev) for a in (x, w, b)]
    want = _core.conv2d(*t32, *args).to_numpy()
    slack = np.spacing(np.abs(want).astype(F16)).astype(F32) + np.spacing(
        np.abs(y.astype(F32)).astype(F16)).astype(F32) / 2
    assert np.all(np.abs(yb - want) <= slack * (1 + u)), np.abs(yb - want).max()
    # No float32 copies: the graph records the convolutions and nothing else.
    tdy = core_tensor(dy, dev)

    def ops():
        _core.conv2d(*t, *args)
        _core.conv2d_backward_data(tdy, t[1], list(xs), *args)
        _core.conv2d_backward_weight(tdy, t[0], list(ws), *args)
        _core.conv2d_backward_bias(tdy)  # float16 kernels on every plan

    names = recorded_nodes(t[0].device, ops)
    if dev.is_cuda or plan == "gpu-plan":
        assert names == ["Conv2d", "Conv2dBackwardData", "Conv2dBackwardWeight",
                         "Conv2dBackwardBias"], names
    else:  # the CPU's plan widens x and w (and dy) to float32 first: fewer conversions
        assert "AsType" in names and names[-1] == "Conv2dBackwardBias", names


@pytest.mark.parametrize("is_max", [True, False])
def test_pool2d_and_backward(dev, rng, is_max):
    x = h(rng, 2, 3, 7, 6)
    geo = ([3, 3], [2, 2], [1, 1, 1, 1])
    y, *idx = same_as_float32(dev, lambda x_: _core.pool2d(x_, *geo, is_max, True), x)
    dy = h(rng, *y.shape)
    ind = core_tensor(idx[0], dev) if is_max else None
    same_as_float32(dev, lambda dy_: _core.pool2d_backward(dy_, list(x.shape), ind, *geo, is_max,
                                                           True), dy)


def test_batchnorm_training_inference_backward(dev, rng):
    x, scale, bias = h(rng, 4, 3, 2, 5), h(rng, 3), h(rng, 3)
    rm, rv = h(rng, 3), np.abs(h(rng, 3)) + F16(0.5)

    def train(x_, s_, b_, rm_, rv_):
        y, mean, inv_std = _core.batchnorm_forward_training(x_, s_, b_, rm_, rv_, 0.1, 1e-5)
        assert mean.dtype == _core.DType.float32  # saved statistics stay float32
        return [y, rm_, rv_]  # the running statistics are updated in place

    same_as_float32(dev, train, x, scale, bias, rm, rv)
    same_as_float32(dev, lambda *t: _core.batchnorm_forward_inference(*t, 1e-5),
                    x, scale, bias, rm, rv)
    mean = x.astype(F32).mean(axis=(0, 2, 3))
    inv_std = 1 / np.sqrt(x.astype(F32).var(axis=(0, 2, 3)) + 1e-5)
    dy = h(rng, *x.shape)
    same_as_float32(dev, lambda dy_, x_, s_: _core.batchnorm_backward(
        dy_, x_, s_, core_tensor(mean, dev), core_tensor(inv_std, dev)), dy, x, scale)


def test_mixed_float16_and_float32_operands(dev, rng):
    # One float16 operand is enough for a float16 result (batch-norm: x's dtype), equal to
    # the float32 op on the same values rounded once; float32 running statistics stay float32.
    def t(a):
        return core_tensor(a, dev)

    def f32(rng_, *shape):
        return rng_.uniform(-2, 2, shape).astype(F32)

    a, b = h(rng, 5, 7), f32(rng, 7, 3)
    for x, y in ((a, b), (b.T.copy(), a.T.copy())):
        got = _core.matmul(t(x), t(y))
        want = _core.matmul(t(x.astype(F32)), t(y.astype(F32))).to_numpy().astype(F16)
        assert got.dtype == _core.DType.float16
        np.testing.assert_array_equal(got.to_numpy(), want)
    x, w, bias = h(rng, 2, 3, 6, 6), f32(rng, 4, 3, 3, 3), f32(rng, 4)
    got = _core.conv2d(t(x), t(w), t(bias), [1, 1], [1, 1, 1, 1], [1, 1], 1)
    want = _core.conv2d(t(x.astype(F32)), t(w), t(bias), [1, 1], [1, 1, 1, 1], [1, 1], 1)
    assert got.dtype == _core.DType.float16
    np.testing.assert_array_equal(got.to_numpy(), want.to_numpy().astype(F16))
    x = h(rng, 4, 3, 2, 5)
    scale, bias, rm, rv = f32(rng, 3), f32(rng, 3), f32(rng, 3), np.abs(f32(rng, 3)) + 0.5
    rm_h, rv_h, rm_f, rv_f = t(rm), t(rv), t(rm), t(rv)
    y, _, _ = _core.batchnorm_forward_training(t(x), t(scale), t(bias), rm_h, rv_h, 0.1, 1e-5)
    yf, _, _ = _core.batchnorm_forward_training(t(x.astype(F32)), t(scale), t(bias), rm_f, rv_f,
                                                0.1, 1e-5)
    assert y.dtype == _core.DType.float16 and rm_h.dtype == _core.DType.float32
    np.testing.assert_array_equal(y.to_numpy(), yf.to_numpy().astype(F16))
    np.testing.assert_array_equal(rm_h.to_numpy(), rm_f.to_numpy())
    np.testing.assert_array_equal(rv_h.to_numpy(), rv_f.to_numpy())


def test_optimizer_updates(dev, rng):
    p, g = h(rng, 6, 5), h(rng, 6, 5)
    buf = rng.uniform(-1, 1, (6, 5)).astype(F32)  # float32 state beside a float16 param
    lr = np.array([0.1], F32)
    step = np.array([3.0], F32)

    def sgd(p_, g_, buf_, lr_):
        _core.sgd_update(p_, g_, lr_, buf_, 0.9, 0.0, 1e-2, True)
        return [p_, buf_]

    same_as_float32(dev, sgd, p, g, buf, lr)

    def adam(p_, g_, m_, v_, lr_, step_):
        _core.adam_update(p_, g_, m_, v_, lr_, step_, 0.9, 0.999, 1e-8, 0.0)
        return [p_, m_, v_]

    same_as_float32(dev, adam, p, g, h(rng, 6, 5), np.abs(h(rng, 6, 5)), lr, step)

    def adagrad(p_, g_, s_, lr_):
        _core.adagrad_update(p_, g_, s_, lr_, 1e-10, 0.0)
        return [p_, s_]

    same_as_float32(dev, adagrad, p, g, np.abs(buf), lr)

    def rmsprop(p_, g_, s_, lr_):
        _core.rmsprop_update(p_, g_, s_, lr_, 0.9, 1e-8, 0.0)
        return [p_, s_]

    same_as_float32(dev, rmsprop, p, g, np.abs(buf), lr)


def test_integer_operands_still_rejected():
    i = core_tensor(np.ones((2, 3), I32))
    with pytest.raises(TypeError, match="matmul: a has dtype int32"):
        _core.matmul(i, core_tensor(np.ones((3, 2), F16)))
    with pytest.raises(TypeError, match="conv2d: x has dtype int32"):
        _core.conv2d(core_tensor(np.ones((1, 1, 3, 3), I32)),
                     core_tensor(np.ones((1, 1, 1, 1), F16)))


class Net(model.Model):
    """Convolution, batch-norm, pooling, linear and dropout: every float32-kernel family."""

    def __init__(self):
        super().__init__()
        self.conv = layer.Conv2d(6, 3, padding=1)
        self.bn = layer.BatchNorm2d()
        self.pool = layer.MaxPool2d(2, 2)
        self.flat = layer.Flatten()
        self.drop = layer.Dropout(0.1)
        self.fc = layer.Linear(4)

    def forward(self, x):
        y = self.pool(autograd.relu(self.bn(self.conv(x))))
        return self.fc(self.drop(self.flat(y)))

    def train_one_batch(self, x, y):
        out = self.forward(x)
        loss = autograd.softmax_cross_entropy(out, y)
        self.optimizer(loss)
        return out, loss


def train_half(dev, graph, steps=30, make_opt=lambda: opt.SGD(0.05, momentum=0.9)):
    dev.SetRandSeed(0)
    r = np.random.default_rng(1)
    x = r.standard_normal((16, 3, 8, 8)).astype(F16)
    y = (x.astype(F32).mean(axis=(2, 3)) @ r.standard_normal((3, 4))).argmax(1).astype(I32)
    tx, ty = tensor.from_numpy(x, dev), tensor.from_numpy(y, dev)
    m = Net()
    m.set_optimizer(make_opt())
    m.compile([tx], is_train=True, use_graph=graph, sequential=True)
    losses = []
    for _ in range(steps):
        out, loss = m(tx, ty)
        losses.append(loss.to_numpy().astype(F32).reshape(-1)[0])
    params = {k: v.to_numpy() for k, v in m.get_params().items()}
    return out, losses, params


@pytest.mark.parametrize("make_opt", [lambda: opt.SGD(0.05, momentum=0.9),
                                      lambda: opt.Adam(0.01)], ids=["sgd", "adam"])
def test_float16_model_trains_and_graph_equals_eager(dev, make_opt):
    out, eager, p_eager = train_half(dev, False, make_opt=make_opt)
    assert out.dtype == tensor.float16
    assert all(v.dtype == F16 for v in p_eager.values()), {k: v.dtype for k, v in p_eager.items()}
    assert np.all(np.isfinite(eager)) and eager[-1] < 0.5 * eager[0], eager
    _, graph, p_graph = train_half(dev, True, make_opt=make_opt)
    np.testing.assert_array_equal(graph, eager)
    for k in p_eager:
        np.testing.assert_array_equal(p_graph[k], p_eager[k], err_msg=k)
