"""The CUDA op families on random shapes against the same ops on the CPU: broadcasting,
reductions over random axes, the softmax family, layout ops, pooling and batch norm (with
its fused ReLU and residual), on sizes that cross block, grid-stride and partial-sum
boundaries that the fixed cases of test_cuda.py may miss. Skipped without a GPU."""

import numpy as np
import pytest
from test_cuda import F16, F32, I32, check, rand

from minisinga import _core, device

pytestmark = pytest.mark.skipif(
    not device.cuda_available(), reason="needs a CUDA build of minisinga and a visible GPU"
)

U, B = _core.UnaryOp, _core.BinaryOp


@pytest.fixture(scope="module")
def gpu():
    return device.create_cuda_gpu_on(0)


@pytest.fixture(scope="module")
def cpu():
    return device.create_cpu_device()


CASES = 25  # random cases per test


def shape(r, ndim=None, big=300):
    """A random shape of 1-4 dims; one dim may be up to `big`."""
    ndim = int(r.integers(1, 5)) if ndim is None else ndim
    s = [int(v) for v in r.integers(1, 9, ndim)]
    if r.random() < 0.5:
        s[int(r.integers(ndim))] = int(r.integers(1, big))
    return s


@pytest.mark.parametrize("seed", range(CASES))
def test_broadcast_binary(gpu, cpu, seed):
    r = np.random.default_rng(seed)
    out = shape(r)
    a = [d if r.random() < 0.7 else 1 for d in out]
    b = [d if r.random() < 0.7 else 1 for d in out][int(r.integers(len(out))):]
    dtype = F16 if seed % 3 == 2 else F32
    for op in (B.Add, B.Mul, B.Sub, B.Maximum, B.ReluBackward):
        check(gpu, cpu, lambda x, y, op=op: _core.binary(op, x, y), rand(r, a, dtype),
              rand(r, b, dtype))


@pytest.mark.parametrize("seed", range(CASES))
def test_reductions_over_random_axes(gpu, cpu, seed):
    r = np.random.default_rng(100 + seed)
    s = shape(r, big=3000)
    axes = [i for i in range(len(s)) if r.random() < 0.5] or None
    keep = bool(r.integers(2))
    dtype = F16 if seed % 3 == 2 else F32
    x = rand(r, s, dtype)
    k = {"rtol": 1e-4, "atol": 1e-4} if dtype == F32 else {}
    for fn in (_core.reduce_sum, _core.reduce_mean):
        check(gpu, cpu, lambda t, fn=fn: fn(t, axes, keep), x, **k)
    for fn in (_core.reduce_max, _core.reduce_min):
        check(gpu, cpu, lambda t, fn=fn: fn(t, axes, keep), x)
    axis = int(r.integers(len(s)))
    x[(0,) * len(s)] = x.max()  # a tie with a later maximum
    check(gpu, cpu, lambda t: _core.argmax(t, axis, keep), x)
    check(gpu, cpu, lambda t: _core.argmin(t, axis, keep), x)


@pytest.mark.parametrize("seed", range(CASES))
def test_softmax_family_random_axis(gpu, cpu, seed):
    r = np.random.default_rng(200 + seed)
    s = shape(r, big=2000)
    axis = int(r.integers(-len(s), len(s)))
    dtype = F16 if seed % 3 == 2 else F32
    x, dy = rand(r, s, dtype, -6, 6), rand(r, s, dtype)

    def fn(x_, dy_):
        y, ly = _core.softmax(x_, axis), _core.log_softmax(x_, axis)
        return [y, ly, _core.softmax_backward(y, dy_, axis),
                _core.log_softmax_backward(ly, dy_, axis)]

    check(gpu, cpu, fn, x, dy, **({"rtol": 1e-4, "atol": 1e-5} if dtype == F32 else {}))


@pytest.mark.parametrize("seed", range(CASES))
def test_layout_ops(gpu, cpu, seed):
    r = np.random.default_rng(300 + seed)
    s = shape(r, big=500)
    n = len(s)
    dtype = (F32, F16, I32)[seed % 3]
    x = rand(r, s, dtype)
    perm = [int(v) for v in r.permutation(n)]
    check(gpu, cpu, lambda t: _core.transpose(t, perm), x)
    axis = int(r.integers(n))
    others = [rand(r, [d if i != axis else int(r.integers(1, 6)) for i, d in enumerate(s)],
                   dtype) for _ in range(2)]
    check(gpu, cpu, lambda a, b, c: _core.concat([a, b, c], axis), x, *others)
    starts, stops, steps = [], [], []
    for d in s:  # positive steps (the only ones slice takes), bounds past either end too
        lo, hi = sorted(int(v) for v in r.integers(-d - 2, d + 3, 2))
        starts.append(lo)
        stops.append(hi)
        steps.append(int(r.choice([1, 1, 2, 3])))
    axes = list(range(n))
    y_ref = x[tuple(slice(a, b, c) for a, b, c in zip(starts, stops, steps))]
    if y_ref.size:
        check(gpu, cpu, lambda t: _core.slice(t, starts, stops, axes, steps), x)
        check(gpu, cpu, lambda dy: _core.slice_backward(dy, s, starts, stops, axes, steps),
              rand(r, y_ref.shape, dtype))
    pads = [(int(a), int(b)) for a, b in r.integers(0, 4, (n, 2))]
    check(gpu, cpu, lambda t: _core.pad(t, pads, 1.5), x)
    padded = [d + a + b for d, (a, b) in zip(s, pads)]
    check(gpu, cpu, lambda t: _core.pad_backward(t, pads), rand(r, padded, dtype))


@pytest.mark.parametrize("seed", range(CASES))
def test_pooling(gpu, cpu, seed):
    r = np.random.default_rng(400 + seed)
    kern = [int(v) for v in r.integers(1, 5, 2)]
    st = [int(v) for v in r.integers(1, 4, 2)]
    pad = [int(r.integers(0, (kern[i // 2] + 1) // 2 + 1)) for i in range(4)]
    pad = [min(p, kern[i // 2] - 1) for i, p in enumerate(pad)]
    hw = [int(v) for v in r.integers(max(kern), 30, 2)]
    xs = [int(r.integers(1, 4)), int(r.integers(1, 6))] + hw
    x = rand(r, xs, F16 if seed % 3 == 2 else F32)
    for is_max, cip in ((True, True), (False, True), (False, False)):
        def fn(x_, is_max=is_max, cip=cip):
            y, idx = _core.pool2d(x_, kern, st, pad, is_max, cip)
            dx = _core.pool2d_backward(_core.unary(U.MulScalar, y, 1.5), xs,
                                       idx if is_max else None, kern, st, pad, is_max, cip)
            return [y, dx] + ([idx] if is_max else [])

        check(gpu, cpu, fn, x, **({"rtol": 1e-5, "atol": 1e-6} if x.dtype == F32 else {}))


@pytest.mark.parametrize("seed", range(CASES))
def test_batchnorm_fused(gpu, cpu, seed):
    r = np.random.default_rng(500 + seed)
    c = int(r.integers(1, 40))
    # N * H * W from a few values to > 3 partial sums of 8192 per channel
    n, h, w = int(r.integers(1, 9)), int(r.integers(1, 60)), int(r.integers(1, 60))
    shape4 = (n, c, h, w)
    relu, residual = bool(r.integers(2)), bool(r.integers(2))
    dtype = F16 if seed % 3 == 2 else F32
    x, dy = rand(r, shape4, dtype, -3, 5), rand(r, shape4, dtype)
    res = rand(r, shape4, dtype)
    scale, bias = rand(r, (c,), F32, 0.5, 1.5), rand(r, (c,))
    rm, rv = rand(r, (c,)), rand(r, (c,), F32, 0.5, 2)

    def train(x_, s_, b_, m_, v_, dy_, res_):
        y, mean, inv = _core.batchnorm_forward_training(x_, s_, b_, m_, v_, 0.1, 1e-5, relu,
                                                        res_ if residual else None)
        grads = _core.batchnorm_backward(dy_, x_, s_, mean, inv, y if relu else None,
                                         residual)
        return [y, mean, inv, m_, v_] + list(grads)

    k = {"rtol": 1e-4, "atol": 1e-4} if dtype == F32 else {"rtol": 4e-3, "atol": 4e-3}
    if n * h * w > 1:
        check(gpu, cpu, train, x, scale, bias, rm, rv, dy, res, **k)
    check(gpu, cpu, lambda x_, s_, b_, m_, v_, res_: _core.batchnorm_forward_inference(
        x_, s_, b_, m_, v_, 1e-5, relu, res_ if residual else None),
        x, scale, bias, rm, rv, res, **k)
