"""Batch norm: training/inference forward against numpy, running statistics, backward
against central finite differences of a float64 numpy forward, bad inputs; float16
activations and per-channel operands against the float32 op, bit for bit, with no casts."""

import numpy as np
import pytest
from conftest import core_tensor, recorded_nodes

from minisinga import _core

SHAPES = [(4, 3), (5, 1), (2, 3, 4, 5), (1, 4, 3, 3), (3, 2, 1, 1), (6, 1, 2, 1)]


def axes(x):
    return (0,) + tuple(range(2, x.ndim))


def per_channel(v, x):
    return v.reshape((1, -1) + (1,) * (x.ndim - 2))


def ref_train(x, scale, bias, eps):
    """float64 numpy batch norm with batch statistics; returns y, mean, biased var."""
    x = x.astype(np.float64)
    mean = x.mean(axis=axes(x))
    var = x.var(axis=axes(x))
    y = (x - per_channel(mean, x)) / np.sqrt(per_channel(var, x) + eps)
    return y * per_channel(scale, x) + per_channel(bias, x), mean, var


def numeric(arr, f, h=1e-5):
    """Central finite differences of the scalar f at arr, in float64."""
    g = np.zeros(arr.shape)
    for i in np.ndindex(arr.shape):
        plus, minus = arr.astype(np.float64), arr.astype(np.float64)
        plus[i] += h
        minus[i] -= h
        g[i] = (f(plus) - f(minus)) / (2 * h)
    return g


def assert_three_kernels_no_casts(dev, fn):
    """fn records the three batch-norm kernels and nothing else: no casts."""
    names = recorded_nodes(dev, fn)
    assert not {"AsType", "CastInto"} & set(names), names
    assert names == [
        "BatchNormForwardTraining",
        "BatchNormForwardInference",
        "BatchNormBackward",
    ], names


def params(rng, c):
    scale = rng.uniform(0.5, 2.0, c).astype(np.float32)
    bias = rng.standard_normal(c).astype(np.float32)
    rm = rng.standard_normal(c).astype(np.float32)
    rv = rng.uniform(0.5, 2.0, c).astype(np.float32)
    return scale, bias, rm, rv


@pytest.mark.parametrize("shape", SHAPES)
def test_forward_training_and_running_stats(shape, rng):
    c = shape[1]
    scale, bias, rm, rv = params(rng, c)
    trm, trv = core_tensor(rm), core_tensor(rv)
    exp_rm, exp_rv = rm.astype(np.float64), rv.astype(np.float64)
    momentum, eps = 0.1, 1e-5
    for _ in range(2):  # two calls: running stats accumulate
        x = (rng.standard_normal(shape) * 3 + 2).astype(np.float32)
        y, mean, inv_std = _core.batchnorm_forward_training(
            core_tensor(x), core_tensor(scale), core_tensor(bias), trm, trv, momentum, eps
        )
        ey, emean, evar = ref_train(x, scale, bias, eps)
        np.testing.assert_allclose(y.to_numpy(), ey, rtol=1e-5, atol=2e-5)
        np.testing.assert_allclose(mean.to_numpy(), emean, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(inv_std.to_numpy(), 1 / np.sqrt(evar + eps), rtol=1e-5)
        m = x.size // c
        exp_rm = (1 - momentum) * exp_rm + momentum * emean
        exp_rv = (1 - momentum) * exp_rv + momentum * evar * m / (m - 1)  # unbiased
        np.testing.assert_allclose(trm.to_numpy(), exp_rm, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(trv.to_numpy(), exp_rv, rtol=1e-5, atol=1e-6)


def test_statistics_of_a_channel_whose_mean_dwarfs_its_spread(dev, rng):
    """mean 1e4, std 1: each device sums deviations from the channel's first value (E[x^2] -
    mean^2 would lose the variance's digits to the mean's); the CPU's float lanes then
    overstate the variance by at most (ulp(mean) / std)^2 / 4 = 2.4e-7 relative."""
    x = (1e4 + rng.standard_normal((16, 2, 32, 32))).astype(np.float32)
    c = x.shape[1]
    scale, bias, rm, rv = params(rng, c)
    trm, trv = core_tensor(rm, dev), core_tensor(rv, dev)
    _, mean, inv_std = _core.batchnorm_forward_training(
        core_tensor(x, dev), core_tensor(scale, dev), core_tensor(bias, dev), trm, trv, 1.0,
        1e-5)
    _, emean, evar = ref_train(x, scale, bias, 1e-5)
    m = x.size // c
    np.testing.assert_allclose(mean.to_numpy(), emean, rtol=1e-7)
    np.testing.assert_allclose(inv_std.to_numpy(), 1 / np.sqrt(evar + 1e-5), rtol=1e-6)
    np.testing.assert_allclose(trv.to_numpy(), evar * m / (m - 1), rtol=1e-6)


def test_running_stats_start_from_fresh_tensors(rng):
    # Never-written running tensors read as zeros (lazy blocks).
    x = rng.standard_normal((8, 3)).astype(np.float32)
    dev = _core.default_device()
    trm, trv = _core.Tensor([3], dev), _core.Tensor([3], dev)
    _core.batchnorm_forward_training(
        core_tensor(x),
        core_tensor(np.ones(3, np.float32)),
        core_tensor(np.zeros(3, np.float32)),
        trm,
        trv,
        0.25,
        1e-5,
    )
    np.testing.assert_allclose(trm.to_numpy(), 0.25 * x.mean(0), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(trv.to_numpy(), 0.25 * x.var(0, ddof=1), rtol=1e-5)


def test_large_offset_keeps_accuracy(rng):
    x = (1000 + rng.standard_normal((64, 2, 4, 4))).astype(np.float32)
    one, zero = np.ones(2, np.float32), np.zeros(2, np.float32)
    y, _, _ = _core.batchnorm_forward_training(
        core_tensor(x),
        core_tensor(one),
        core_tensor(zero),
        core_tensor(zero),
        core_tensor(one),
        0.1,
        1e-5,
    )
    np.testing.assert_allclose(y.to_numpy(), ref_train(x, one, zero, 1e-5)[0], atol=2e-4)


@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("shape,offset,spread", [((3, 64, 37, 41), 300.0, 0.01),
                                                 ((2, 3, 1, 2500), 0.0, 0.5),
                                                 ((70, 2), 50.0, 0.5)])
def test_long_channels_sums_match_float64(shape, offset, spread, relu, rng):
    # Rows longer than the kernels' chunks and lanes, with tails, and means far from 0 (up to
    # 30000 standard deviations): the statistics and both gradient sums against float64, to
    # float32's own accuracy.
    c, eps = shape[1], 1e-5
    x = (offset + rng.standard_normal(shape) * spread).astype(np.float32)
    dy = rng.standard_normal(shape).astype(np.float32)
    scale, bias, _, _ = params(rng, c)
    dev = _core.default_device()
    y, mean, inv_std = _core.batchnorm_forward_training(
        core_tensor(x), core_tensor(scale), core_tensor(bias), _core.Tensor([c], dev),
        _core.Tensor([c], dev), 0.1, eps, relu=relu)
    _, emean, evar = ref_train(x, scale, bias, eps)
    # The mean rounded to float32 from an accurate sum: within half a float32 spacing, so that
    # y = (x - mean) * a, on the scale of x / std, matches the GPU's (double sums) too.
    half_ulp = 0.5 * np.spacing(np.abs(emean).astype(np.float32)).astype(np.float64)
    err = np.abs(mean.to_numpy() - emean)
    assert (err <= half_ulp * 1.001 + 1e-7 * spread).all(), (err, half_ulp)
    np.testing.assert_allclose(inv_std.to_numpy(), 1 / np.sqrt(evar + eps), rtol=2e-6)
    # The rest against float64 given the kernel's float32 statistics (y and dx subtract the
    # float32 mean, so it is their reference too).
    xhat = (x - per_channel(mean.to_numpy(), x)) * per_channel(inv_std.to_numpy(), x)
    ey = xhat * per_channel(scale, x) + per_channel(bias, x)
    np.testing.assert_allclose(y.to_numpy(), np.maximum(ey, 0) if relu else ey,
                               rtol=1e-5, atol=1e-5)
    dx, dscale, dbias = _core.batchnorm_backward(
        core_tensor(dy), core_tensor(x), core_tensor(scale), mean, inv_std,
        y=y if relu else None)
    g = dy.astype(np.float64) * (ey > 0) if relu else dy.astype(np.float64)
    eb, es = g.sum(axis=axes(x)), (g * xhat).sum(axis=axes(x))
    m = x.size // c
    edx = per_channel(scale * inv_std.to_numpy() / m, x) * (
        m * g - per_channel(eb, x) - xhat * per_channel(es, x))
    scale_of = np.sqrt((g ** 2).sum(axis=axes(x)))  # the sums' own rounding scale
    np.testing.assert_allclose(dbias.to_numpy(), eb, atol=1e-6 * scale_of.max())
    np.testing.assert_allclose(dscale.to_numpy(), es, atol=1e-6 * scale_of.max())
    np.testing.assert_allclose(dx.to_numpy(), edx, rtol=1e-5, atol=1e-5 * np.abs(edx).max())


@pytest.mark.parametrize("shape", SHAPES)
def test_forward_inference(shape, rng):
    c = shape[1]
    scale, bias, rm, rv = params(rng, c)
    x = rng.standard_normal(shape).astype(np.float32)
    eps = 1e-3
    y = _core.batchnorm_forward_inference(
        core_tensor(x), core_tensor(scale), core_tensor(bias), core_tensor(rm), core_tensor(rv), eps
    )
    x64 = x.astype(np.float64)
    expected = (x64 - per_channel(rm, x)) / np.sqrt(per_channel(rv.astype(np.float64), x) + eps)
    expected = expected * per_channel(scale, x) + per_channel(bias, x)
    np.testing.assert_allclose(y.to_numpy(), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("shape", [(4, 3), (2, 3, 2, 2), (1, 2, 3, 1), (3, 1)])
def test_backward_against_finite_differences(shape, rng):
    c = shape[1]
    eps = 1e-3
    x = rng.standard_normal(shape).astype(np.float32)
    scale, bias, _, _ = params(rng, c)
    w = rng.standard_normal(shape)  # loss = sum(w * y), so dy = w

    def loss(x_, s_, b_):
        return np.sum(w * ref_train(x_, s_, b_, eps)[0])

    gx = numeric(x, lambda v: loss(v, scale, bias))
    gs = numeric(scale, lambda v: loss(x, v, bias))
    gb = numeric(bias, lambda v: loss(x, scale, v))

    dev = _core.default_device()
    _, mean, inv_std = _core.batchnorm_forward_training(
        core_tensor(x),
        core_tensor(scale),
        core_tensor(bias),
        _core.Tensor([c], dev),
        _core.Tensor([c], dev),
        0.1,
        eps,
    )
    dx, dscale, dbias = _core.batchnorm_backward(
        core_tensor(w.astype(np.float32)), core_tensor(x), core_tensor(scale), mean, inv_std
    )
    np.testing.assert_allclose(dx.to_numpy(), gx, rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(dscale.to_numpy(), gs, rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(dbias.to_numpy(), gb, rtol=1e-3, atol=1e-4)


def test_graph_replay_updates_running_stats_each_time(rng):
    dev = _core.create_cpu_device()
    x = rng.standard_normal((5, 2)).astype(np.float32)
    tx = core_tensor(x, dev)
    ts, tb = core_tensor(np.ones(2, np.float32), dev), core_tensor(np.zeros(2, np.float32), dev)
    trm, trv = core_tensor(np.zeros(2, np.float32), dev), core_tensor(np.ones(2, np.float32), dev)
    dev.EnableGraph(True)
    _core.batchnorm_forward_training(tx, ts, tb, trm, trv, 0.5, 1e-5)
    dev.EnableGraph(False)
    dev.RunGraph()
    dev.RunGraph()
    np.testing.assert_allclose(trm.to_numpy(), 0.75 * x.mean(0), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(trv.to_numpy(), 0.25 + 0.75 * x.var(0, ddof=1), rtol=1e-5)
    dev.ResetGraph()


def test_bad_inputs(rng):
    def t(shape, dtype=np.float32):
        return core_tensor(np.ones(shape, dtype))

    x, c3 = t((4, 3, 2, 2)), t((3,))
    train = _core.batchnorm_forward_training
    with pytest.raises(ValueError, match=r"batchnorm_forward_training: x must have shape"):
        train(t((3,)), c3, c3, t((3,)), t((3,)), 0.1, 1e-5)
    with pytest.raises(TypeError, match="batchnorm_forward_training: x has dtype int32"):
        train(t((4, 3), np.int32), c3, c3, t((3,)), t((3,)), 0.1, 1e-5)
    with pytest.raises(ValueError, match=r"batchnorm_forward_training: scale has shape \(4,\)"):
        train(x, t((4,)), c3, t((3,)), t((3,)), 0.1, 1e-5)
    with pytest.raises(ValueError, match="running_var has shape"):
        train(x, c3, c3, t((3,)), t((1, 3)), 0.1, 1e-5)
    with pytest.raises(TypeError, match="batchnorm_forward_training: bias has dtype int32"):
        train(x, c3, t((3,), np.int32), t((3,)), t((3,)), 0.1, 1e-5)
    with pytest.raises(ValueError, match="more than one value per channel"):
        train(t((1, 3)), c3, c3, t((3,)), t((3,)), 0.1, 1e-5)
    with pytest.raises(ValueError, match="momentum must be in"):
        train(x, c3, c3, t((3,)), t((3,)), 1.5, 1e-5)
    with pytest.raises(ValueError, match="batchnorm_forward_training: eps"):
        train(x, c3, c3, t((3,)), t((3,)), 0.1, -1.0)
    other = _core.create_cpu_device()
    with pytest.raises(TypeError, match="different devices"):
        train(x, core_tensor(np.ones(3, np.float32), other), c3, t((3,)), t((3,)), 0.1, 1e-5)
    with pytest.raises(ValueError, match="batchnorm_forward_inference: running_mean has shape"):
        _core.batchnorm_forward_inference(x, c3, c3, t((2,)), c3, 1e-5)
    with pytest.raises(ValueError, match="batchnorm_forward_inference: eps"):
        _core.batchnorm_forward_inference(x, c3, c3, c3, c3, float("nan"))
    with pytest.raises(ValueError, match=r"batchnorm_backward: dy has shape \(4, 3\)"):
        _core.batchnorm_backward(t((4, 3)), x, c3, c3, c3)
    with pytest.raises(TypeError, match="batchnorm_backward: dy has dtype int32"):
        _core.batchnorm_backward(t((4, 3, 2, 2), np.int32), x, c3, c3, c3)
    with pytest.raises(ValueError, match="batchnorm_backward: saved_inv_std has shape"):
        _core.batchnorm_backward(x, x, c3, c3, t((2,)))


def test_float16_activations_without_casts(dev, rng):
    """float16 x and dy with float32 per-channel operands: the kernels read and write float16
    directly (the graph records no cast), and every result is the float32 op's on the same
    values, rounded once to float16, bit for bit. N * S = 20480 per channel: several CUDA
    reduction parts."""
    f16, f32 = np.float16, np.float32
    x = (rng.standard_normal((16, 3, 32, 40)) * 3 + 2).astype(f16)
    dy = rng.standard_normal(x.shape).astype(f16)
    scale, bias, rm, rv = params(rng, 3)

    def t(a):
        return core_tensor(a, dev)

    ts, tb = t(scale), t(bias)

    def run(tx, tdy, trm, trv):
        y, mean, inv_std = _core.batchnorm_forward_training(tx, ts, tb, trm, trv, 0.1, 1e-5)
        yi = _core.batchnorm_forward_inference(tx, ts, tb, trm, trv, 1e-5)
        dx, dscale, dbias = _core.batchnorm_backward(tdy, tx, ts, mean, inv_std)
        return [y, mean, inv_std, trm, trv, yi, dx, dscale, dbias]

    got = run(t(x), t(dy), t(rm), t(rv))
    want = run(t(x.astype(f32)), t(dy.astype(f32)), t(rm), t(rv))
    for i, (g, w) in enumerate(zip(got, want)):
        g, w = g.to_numpy(), w.to_numpy()
        assert g.dtype == (f16 if i in (0, 5, 6) else f32), (i, g.dtype)  # y, yi, dx
        np.testing.assert_array_equal(g, w.astype(g.dtype), err_msg=f"output {i}")
    # float32 dy beside float16 x: the same float16 dx.
    dx, _, _ = _core.batchnorm_backward(t(dy.astype(f32)), t(x), ts, want[1], want[2])
    np.testing.assert_array_equal(dx.to_numpy(), got[6].to_numpy())

    tensors = t(x), t(dy), t(rm), t(rv)  # made before recording: the graph holds only the ops
    assert_three_kernels_no_casts(ts.device, lambda: run(*tensors))


@pytest.mark.parametrize("shape", [(16, 3, 32, 40), (12000, 2)])
def test_float16_per_channel_operands_without_casts(dev, rng, shape):
    """float16 x and dy with float16 scale, bias and running statistics (a float16 model's
    parameters): the kernels read the per-channel operands in float16 and write the running
    statistics (in place), dscale and dbias in float16, so the graph records no cast, only the
    three batch-norm nodes. Every result is the float32 op's on the same values, rounded once
    to float16, bit for bit; the saved statistics stay float32. N * S > 8192 per channel:
    several CUDA reduction parts."""
    f16, f32 = np.float16, np.float32
    c = shape[1]
    x = (rng.standard_normal(shape) * 3 + 2).astype(f16)
    dy = rng.standard_normal(shape).astype(f16)
    scale, bias, rm, rv = (a.astype(f16) for a in params(rng, c))

    def t(a):
        return core_tensor(a, dev)

    def run(tx, tdy, ts, tb, trm, trv, irm, irv):
        y, mean, inv_std = _core.batchnorm_forward_training(tx, ts, tb, trm, trv, 0.1, 1e-5)
        yi = _core.batchnorm_forward_inference(tx, ts, tb, irm, irv, 1e-5)
        dx, dscale, dbias = _core.batchnorm_backward(tdy, tx, ts, mean, inv_std)
        return [y, mean, inv_std, trm, trv, yi, dx, dscale, dbias]

    def operands(dtype):
        return [t(a.astype(dtype)) for a in (x, dy, scale, bias, rm, rv, rm, rv)]

    got = run(*operands(f16))
    want = run(*operands(f32))
    for i, (g, w) in enumerate(zip(got, want)):
        g, w = g.to_numpy(), w.to_numpy()
        assert g.dtype == (f32 if i in (1, 2) else f16), (i, g.dtype)  # saved mean, inv_std
        np.testing.assert_array_equal(g, w.astype(g.dtype), err_msg=f"output {i}")

    # float16 scale and bias beside float32 running statistics: the same results, the
    # running statistics left float32.
    tx, tdy, ts, tb = operands(f16)[:4]
    mixed = run(tx, tdy, ts, tb, t(rm.astype(f32)), t(rv.astype(f32)), t(rm.astype(f32)),
                t(rv.astype(f32)))
    for i, (g, w) in enumerate(zip(mixed, want)):
        g, w = g.to_numpy(), w.to_numpy()
        assert g.dtype == (f32 if i in (1, 2, 3, 4) else f16), (i, g.dtype)
        np.testing.assert_array_equal(g, w.astype(g.dtype), err_msg=f"mixed output {i}")

    tensors = operands(f16)  # made before recording: the graph holds only the ops
    assert_three_kernels_no_casts(tensors[0].device, lambda: run(*tensors))


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
@pytest.mark.parametrize("shape", [(16, 3, 32, 40), (6, 4)])
def test_fused_relu_equals_batchnorm_then_relu(dev, rng, dtype, shape):
    """relu=True: the forward equals batch norm then ReLU, and the backward (given the fused
    output y) the ReLU's gradient then batch norm's, bit for bit: the same arithmetic, with
    one pass over the activations fewer each way. A third of the outputs are clipped."""
    x = (rng.standard_normal(shape) * 2 + 0.5).astype(dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    scale, bias, rm, rv = params(rng, shape[1])

    def t(a):
        return core_tensor(a, dev)

    tx, tdy, ts, tb = t(x), t(dy), t(scale), t(bias)
    rm1, rv1, rm2, rv2 = t(rm), t(rv), t(rm), t(rv)
    y, mean, inv = _core.batchnorm_forward_training(tx, ts, tb, rm1, rv1, 0.1, 1e-5, relu=True)
    dx, ds, db = _core.batchnorm_backward(tdy, tx, ts, mean, inv, y=y)
    yi = _core.batchnorm_forward_inference(tx, ts, tb, rm1, rv1, 1e-5, relu=True)

    z, mean2, inv2 = _core.batchnorm_forward_training(tx, ts, tb, rm2, rv2, 0.1, 1e-5)
    y2 = _core.unary(_core.UnaryOp.Relu, z)
    g = _core.binary(_core.BinaryOp.ReluBackward, tdy, y2)
    dx2, ds2, db2 = _core.batchnorm_backward(g, tx, ts, mean2, inv2)
    yi2 = _core.unary(_core.UnaryOp.Relu,
                      _core.batchnorm_forward_inference(tx, ts, tb, rm2, rv2, 1e-5))
    clipped = (y2.to_numpy() == 0).mean()
    assert 0.1 < clipped < 0.6, clipped
    for i, (a, b) in enumerate(zip([y, mean, inv, rm1, rv1, dx, ds, db, yi],
                                   [y2, mean2, inv2, rm2, rv2, dx2, ds2, db2, yi2])):
        np.testing.assert_array_equal(a.to_numpy(), b.to_numpy(), err_msg=f"output {i}")


def test_fused_relu_against_finite_differences(rng):
    """d/dx, d/dscale, d/dbias of sum(w * relu(batchnorm(x))) through the fused backward."""
    shape, eps = (3, 2, 2, 3), 1e-3
    x = rng.standard_normal(shape).astype(np.float32)
    scale, bias, _, _ = params(rng, 2)
    w = rng.standard_normal(shape)

    def loss(x_, s_, b_):
        return np.sum(w * np.maximum(ref_train(x_, s_, b_, eps)[0], 0))

    dev = _core.default_device()
    y, mean, inv_std = _core.batchnorm_forward_training(
        core_tensor(x), core_tensor(scale), core_tensor(bias), _core.Tensor([2], dev),
        _core.Tensor([2], dev), 0.1, eps, relu=True)
    assert 0 < (y.to_numpy() == 0).sum() < y.to_numpy().size  # some outputs clipped
    dx, dscale, dbias = _core.batchnorm_backward(
        core_tensor(w.astype(np.float32)), core_tensor(x), core_tensor(scale), mean, inv_std,
        y=y)
    np.testing.assert_allclose(dx.to_numpy(), numeric(x, lambda v: loss(v, scale, bias)),
                               rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(dscale.to_numpy(), numeric(scale, lambda v: loss(x, v, bias)),
                               rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(dbias.to_numpy(), numeric(bias, lambda v: loss(x, scale, v)),
                               rtol=1e-3, atol=1e-4)
    with pytest.raises(TypeError, match="batchnorm_backward: y has dtype int32"):
        _core.batchnorm_backward(dx, core_tensor(x), core_tensor(scale), mean, inv_std,
                                 y=core_tensor(np.zeros(shape, np.int32)))
    with pytest.raises(ValueError, match=r"batchnorm_backward: y has shape \(3, 2\), expected"):
        _core.batchnorm_backward(dx, core_tensor(x), core_tensor(scale), mean, inv_std,
                                 y=core_tensor(np.zeros((3, 2), np.float32)))


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
@pytest.mark.parametrize("relu", [True, False])
def test_fused_residual_equals_batchnorm_add_relu(dev, rng, dtype, relu):
    """residual=r: relu(batchnorm(x) + r) (or without the ReLU) equals batch norm, add and
    ReLU in turn, forward (training and inference) and backward (dx, dscale, dbias and r's
    gradient), bit for bit."""
    shape = (8, 3, 20, 24)
    x = (rng.standard_normal(shape) * 2 + 0.5).astype(dtype)
    r = rng.standard_normal(shape).astype(dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    scale, bias, rm, rv = params(rng, shape[1])

    def t(a):
        return core_tensor(a, dev)

    tx, tr, tdy, ts, tb = t(x), t(r), t(dy), t(scale), t(bias)
    rm1, rv1, rm2, rv2 = t(rm), t(rv), t(rm), t(rv)
    U, B = _core.UnaryOp, _core.BinaryOp
    y, mean, inv = _core.batchnorm_forward_training(tx, ts, tb, rm1, rv1, 0.1, 1e-5, relu=relu,
                                                    residual=tr)
    grads = _core.batchnorm_backward(tdy, tx, ts, mean, inv, y=y if relu else None,
                                     residual=True)
    assert len(grads) == 4
    yi = _core.batchnorm_forward_inference(tx, ts, tb, rm1, rv1, 1e-5, relu=relu, residual=tr)

    z, mean2, inv2 = _core.batchnorm_forward_training(tx, ts, tb, rm2, rv2, 0.1, 1e-5)
    s = _core.binary(B.Add, z, tr)
    y2 = _core.unary(U.Relu, s) if relu else s
    g = _core.binary(B.ReluBackward, tdy, y2) if relu else tdy
    grads2 = list(_core.batchnorm_backward(g, tx, ts, mean2, inv2)) + [g]
    si = _core.binary(B.Add, _core.batchnorm_forward_inference(tx, ts, tb, rm2, rv2, 1e-5), tr)
    yi2 = _core.unary(U.Relu, si) if relu else si
    for i, (a, b) in enumerate(zip([y, mean, inv, rm1, rv1, yi, *grads],
                                   [y2, mean2, inv2, rm2, rv2, yi2, *grads2])):
        assert a.dtype == b.dtype, (i, a.dtype, b.dtype)
        np.testing.assert_array_equal(a.to_numpy(), b.to_numpy(), err_msg=f"output {i}")


def test_fused_residual_bad_inputs(rng):
    x = core_tensor(rng.standard_normal((4, 3, 2, 2)).astype(np.float32))
    c3 = core_tensor(np.ones(3, np.float32))
    with pytest.raises(ValueError, match=r"batchnorm_forward_training: residual has shape "
                                         r"\(4, 3\), expected x's shape \(4, 3, 2, 2\)"):
        _core.batchnorm_forward_training(x, c3, c3, c3, c3, residual=core_tensor(
            np.zeros((4, 3), np.float32)))
    with pytest.raises(TypeError, match="batchnorm_forward_inference: residual has dtype "
                                        "float16, expected x's dtype float32"):
        _core.batchnorm_forward_inference(x, c3, c3, c3, c3, residual=core_tensor(
            np.zeros((4, 3, 2, 2), np.float16)))
