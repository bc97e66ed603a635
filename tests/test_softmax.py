"""Softmax family: forward against float64 numpy, backward against central finite differences
of the float64 numpy forward, and the error cases."""

import numpy as np
import pytest
from conftest import core_tensor

from minisinga import _core

EPS = 1e-12  # the probability clamp of cross_entropy


def softmax64(x, axis):
    x = x.astype(np.float64)
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def log_softmax64(x, axis):
    x = x.astype(np.float64)
    z = x - x.max(axis=axis, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=axis, keepdims=True))


def sce64(x, target):
    """Per-sample softmax cross-entropy, target labels (N,) or soft (N, C)."""
    logp = log_softmax64(x, 1)
    if target.dtype == np.int32:
        return -logp[np.arange(len(x)), target]
    return -(target.astype(np.float64) * logp).sum(1)


def ce64(p, target):
    logp = np.log(np.maximum(p.astype(np.float64), EPS))
    if target.dtype == np.int32:
        return -logp[np.arange(len(p)), target]
    return -(target.astype(np.float64) * logp).sum(1)


def numeric_grad(f, x, h=1e-6):
    """Central differences of scalar f at float64 x."""
    x = x.astype(np.float64)
    g = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        old = x[i]
        x[i] = old + h
        fp = f(x)
        x[i] = old - h
        fm = f(x)
        x[i] = old
        g[i] = (fp - fm) / (2 * h)
    return g


SHAPES = [(2, 1, 3, 4), (1, 5, 1, 3), (3, 7)]


@pytest.mark.parametrize("log", [False, True])
@pytest.mark.parametrize("shape", SHAPES)
def test_forward_every_axis(log, shape, rng):
    fn, ref = (_core.log_softmax, log_softmax64) if log else (_core.softmax, softmax64)
    x = (rng.standard_normal(shape) * 3).astype(np.float32)
    t = core_tensor(x)
    for axis in range(-len(shape), len(shape)):
        got = fn(t, axis).to_numpy()
        assert got.dtype == np.float32 and got.shape == shape
        np.testing.assert_allclose(got, ref(x, axis), rtol=1e-5, atol=1e-6, err_msg=str(axis))
    np.testing.assert_allclose(fn(t).to_numpy(), ref(x, -1), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("log", [False, True])
def test_forward_float16(log, rng):
    fn, ref = (_core.log_softmax, log_softmax64) if log else (_core.softmax, softmax64)
    x = (rng.standard_normal((4, 6, 5)) * 2).astype(np.float16)
    for axis in (0, 1, 2):
        got = fn(core_tensor(x), axis).to_numpy()
        assert got.dtype == np.float16
        want = ref(x, axis)
        np.testing.assert_allclose(got, want, rtol=2e-3, atol=2e-3 if log else 1e-3)
        as32 = fn(core_tensor(x.astype(np.float32)), axis).to_numpy()
        np.testing.assert_allclose(got, as32, rtol=2e-3, atol=2e-3 if log else 1e-3)


def test_stable_for_large_logits(rng):
    x = (rng.standard_normal((3, 10)) * 3 + 1000).astype(np.float32)
    for fn, ref in ((_core.softmax, softmax64), (_core.log_softmax, log_softmax64)):
        got = fn(core_tensor(x), 1).to_numpy()
        assert np.isfinite(got).all()
        np.testing.assert_allclose(got, ref(x, 1), rtol=1e-4, atol=1e-4)
    h = np.array([[60000.0, 59990.0, -60000.0]], np.float16)
    np.testing.assert_allclose(_core.softmax(core_tensor(h)).to_numpy(), softmax64(h, 1),
                               atol=1e-3)


def test_large_rows_and_columns(rng):
    # Long rows (inner == 1) and long columns (the chunked path), past the threading threshold.
    x = rng.standard_normal((3, 40000)).astype(np.float32)
    for axis in (0, 1):
        np.testing.assert_allclose(_core.softmax(core_tensor(x), axis).to_numpy(),
                                   softmax64(x, axis), rtol=1e-4, atol=1e-9)
        np.testing.assert_allclose(_core.log_softmax(core_tensor(x), axis).to_numpy(),
                                   log_softmax64(x, axis), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
@pytest.mark.parametrize("d", [1, 15, 16, 17, 28, 255, 256])
def test_short_rows_every_length_class(d, dtype, rng):
    """Last-axis rows under 256 of a length not a multiple of 16 run padded, lane by lane
    (a -inf logit, a NaN row and a row of equal logits included), forward and backward."""
    x = (rng.standard_normal((300, d)) * 4).astype(dtype)
    x[1, 0] = -np.inf
    x[2, d // 2] = np.nan
    x[3] = 1.5
    dy = rng.standard_normal((300, d)).astype(dtype)
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=2e-3, atol=2e-3)
    for log in (False, True):
        fwd, bwd, ref = ((_core.log_softmax, _core.log_softmax_backward, log_softmax64) if log
                         else (_core.softmax, _core.softmax_backward, softmax64))
        with np.errstate(invalid="ignore"):
            want = ref(x, 1)
        y = fwd(core_tensor(x), 1)
        np.testing.assert_allclose(y.to_numpy(), want, **tol)
        assert np.isnan(y.to_numpy()[2]).all()
        y64 = y.to_numpy().astype(np.float64)
        g64 = dy.astype(np.float64)
        if log:  # dx = dy - softmax * sum(dy)
            dx = g64 - np.exp(y64) * g64.sum(1, keepdims=True)
        else:  # dx = y * (dy - sum(dy * y))
            dx = y64 * (g64 - (g64 * y64).sum(1, keepdims=True))
        got = bwd(y, core_tensor(dy), 1).to_numpy()
        np.testing.assert_allclose(got, dx, **(tol if dtype == np.float16 else
                                               dict(rtol=1e-5, atol=1e-5)))


@pytest.mark.parametrize("log", [False, True])
@pytest.mark.parametrize("shape", SHAPES)
def test_backward_vs_finite_differences(log, shape, rng):
    fwd, bwd, ref = ((_core.log_softmax, _core.log_softmax_backward, log_softmax64) if log
                     else (_core.softmax, _core.softmax_backward, softmax64))
    x = rng.standard_normal(shape).astype(np.float32)
    dy = rng.standard_normal(shape).astype(np.float32)
    for axis in range(-len(shape), len(shape)):
        y = fwd(core_tensor(x), axis)
        got = bwd(y, core_tensor(dy), axis).to_numpy()
        want = numeric_grad(lambda v, a=axis: (ref(v, a) * dy).sum(), x)
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5, err_msg=str(axis))


@pytest.mark.parametrize("log", [False, True])
def test_backward_float16(log, rng):
    fwd, bwd, ref = ((_core.log_softmax, _core.log_softmax_backward, log_softmax64) if log
                     else (_core.softmax, _core.softmax_backward, softmax64))
    x = rng.standard_normal((3, 4)).astype(np.float16)
    dy = rng.standard_normal((3, 4)).astype(np.float16)
    got = bwd(fwd(core_tensor(x), 0), core_tensor(dy), 0).to_numpy()
    assert got.dtype == np.float16
    want = numeric_grad(lambda v: (ref(v, 0) * dy).sum(), x)
    np.testing.assert_allclose(got, want, rtol=1e-2, atol=1e-2)


def random_targets(rng, n, c, kind, dtype=np.float32):
    if kind == "labels":
        return rng.integers(0, c, size=n).astype(np.int32)
    t = rng.random((n, c))
    return (t / t.sum(1, keepdims=True)).astype(dtype)


@pytest.mark.parametrize("kind", ["labels", "soft"])
@pytest.mark.parametrize("n,c", [(4, 5), (1, 3), (6, 1), (2, 50000)])
def test_softmax_cross_entropy_forward(kind, n, c, rng):
    x = (rng.standard_normal((n, c)) * 3).astype(np.float32)
    t = random_targets(rng, n, c, kind)
    loss, prob = _core.softmax_cross_entropy(core_tensor(x), core_tensor(t))
    assert loss.shape == (n,) and prob.shape == (n, c)
    np.testing.assert_allclose(loss.to_numpy(), sce64(x, t), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(prob.to_numpy(), softmax64(x, 1), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("kind", ["labels", "soft"])
def test_softmax_cross_entropy_float16(kind, rng):
    x = (rng.standard_normal((5, 7)) * 3).astype(np.float16)
    t = random_targets(rng, 5, 7, kind, np.float16)
    loss, prob = _core.softmax_cross_entropy(core_tensor(x), core_tensor(t))
    assert loss.to_numpy().dtype == np.float16 and prob.to_numpy().dtype == np.float16
    np.testing.assert_allclose(loss.to_numpy(), sce64(x, t), rtol=2e-3, atol=2e-3)
    np.testing.assert_allclose(prob.to_numpy(), softmax64(x, 1), rtol=2e-3, atol=1e-3)


@pytest.mark.parametrize("kind", ["labels", "soft"])
def test_softmax_cross_entropy_backward_vs_finite_differences(kind, rng):
    n, c = 4, 6
    x = (rng.standard_normal((n, c)) * 2).astype(np.float32)
    t = random_targets(rng, n, c, kind)
    dloss = rng.standard_normal(n).astype(np.float32)
    _, prob = _core.softmax_cross_entropy(core_tensor(x), core_tensor(t))
    got = _core.softmax_cross_entropy_backward(prob, core_tensor(t), core_tensor(dloss))
    want = numeric_grad(lambda v: (sce64(v, t) * dloss).sum(), x)
    np.testing.assert_allclose(got.to_numpy(), want, rtol=1e-4, atol=1e-5)


def test_batch_mean_gradient(rng):
    n, c = 8, 3
    x = rng.standard_normal((n, c)).astype(np.float32)
    t = random_targets(rng, n, c, "labels")
    _, prob = _core.softmax_cross_entropy(core_tensor(x), core_tensor(t))
    dloss = np.full(n, 1.0 / n, np.float32)
    got = _core.softmax_cross_entropy_backward(prob, core_tensor(t), core_tensor(dloss))
    want = numeric_grad(lambda v: sce64(v, t).mean(), x)
    np.testing.assert_allclose(got.to_numpy(), want, rtol=1e-4, atol=1e-6)
    h = got.to_numpy()
    gh = _core.softmax_cross_entropy_backward(
        core_tensor(prob.to_numpy().astype(np.float16)), core_tensor(t),
        core_tensor(dloss.astype(np.float16)))
    np.testing.assert_allclose(gh.to_numpy(), h, rtol=1e-2, atol=1e-3)


@pytest.mark.parametrize("kind", ["labels", "soft"])
@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_cross_entropy_forward(kind, dtype, rng):
    n, c = 5, 4
    p = softmax64(rng.standard_normal((n, c)), 1).astype(dtype)
    t = random_targets(rng, n, c, kind, dtype)
    loss = _core.cross_entropy(core_tensor(p), core_tensor(t)).to_numpy()
    assert loss.dtype == dtype and loss.shape == (n,)
    tol = 1e-5 if dtype == np.float32 else 3e-3
    np.testing.assert_allclose(loss, ce64(p, t), rtol=tol, atol=tol)


def test_cross_entropy_clamps_zero_probabilities():
    p = np.array([[0.0, 1.0], [0.5, 0.5]], np.float32)
    t = np.array([0, 1], np.int32)
    loss = _core.cross_entropy(core_tensor(p), core_tensor(t)).to_numpy()
    np.testing.assert_allclose(loss, [-np.log(EPS), -np.log(0.5)], rtol=1e-6)
    soft = np.array([[0.0, 1.0], [1.0, 0.0]], np.float32)
    loss = _core.cross_entropy(core_tensor(p), core_tensor(soft)).to_numpy()
    np.testing.assert_allclose(loss, [0.0, -np.log(0.5)], atol=1e-6)
    g = _core.cross_entropy_backward(core_tensor(p), core_tensor(t),
                                     core_tensor(np.ones(2, np.float32))).to_numpy()
    assert np.isfinite(g).all()


@pytest.mark.parametrize("kind", ["labels", "soft"])
def test_cross_entropy_backward_vs_finite_differences(kind, rng):
    n, c = 3, 5
    p = rng.uniform(0.05, 1.0, size=(n, c)).astype(np.float32)
    t = random_targets(rng, n, c, kind)
    dloss = rng.standard_normal(n).astype(np.float32)
    got = _core.cross_entropy_backward(core_tensor(p), core_tensor(t), core_tensor(dloss))
    want = numeric_grad(lambda v: (ce64(v, t) * dloss).sum(), p)
    np.testing.assert_allclose(got.to_numpy(), want, rtol=1e-4, atol=1e-5)


def test_out_of_range_labels_raise():
    x = core_tensor(np.zeros((3, 5), np.float32))
    dl = core_tensor(np.ones(3, np.float32))
    for bad in (5, -1, 1000):
        lab = core_tensor(np.array([0, bad, 2], np.int32))
        with pytest.raises(ValueError, match=rf"softmax_cross_entropy: label {bad} at index 1 "
                                             r"is out of range \[0, 5\)"):
            _core.softmax_cross_entropy(x, lab)
        with pytest.raises(ValueError, match=f"softmax_cross_entropy_backward: label {bad}"):
            _core.softmax_cross_entropy_backward(x, lab, dl)
        with pytest.raises(ValueError, match=f"cross_entropy: label {bad}"):
            _core.cross_entropy(x, lab)
        with pytest.raises(ValueError, match=f"cross_entropy_backward: label {bad}"):
            _core.cross_entropy_backward(x, lab, dl)


@pytest.mark.parametrize("op", ["softmax_cross_entropy", "cross_entropy"])
def test_out_of_range_label_in_a_graph_replay(dev, rng, op):
    """Labels refilled after recording are checked by a recorded kernel: a CPU replay stops
    with the op's error; a GPU replay computes on (loss NaN and a zero gradient on the bad
    rows) and the next read raises, once."""
    dev = dev if dev.is_cuda else _core.create_cpu_device()
    x = rng.standard_normal((3, 4)).astype(np.float32)
    xt = core_tensor(x, dev)
    lab = core_tensor(np.array([1, 2, 3], np.int32), dev)
    dl = core_tensor(np.ones(3, np.float32), dev)
    fwd, bwd = getattr(_core, op), getattr(_core, op + "_backward")
    dev.ResetGraph()
    dev.EnableGraph(True)
    # Recorded like a training step refilling its inputs: no value is known while recording.
    lab.copy_from_numpy(np.array([1, 7, -2], np.int32))
    out = fwd(xt, lab)
    loss, prob = out if op == "softmax_cross_entropy" else (out, xt)
    dx = bwd(prob, lab, dl)
    dev.EnableGraph(False)
    msg = rf"{op}: a label of the int32 labels of shape \(3,\) is out of range \[0, 4\)"
    if not dev.is_cuda:
        with pytest.raises(ValueError, match=msg):
            dev.RunGraph(True)
        dev.ResetGraph()
        return
    dev.RunGraph(True)
    with pytest.raises(ValueError, match=msg + ".*in the last graph replay"):
        loss.to_numpy()
    v = loss.to_numpy()
    assert np.isfinite(v[0]) and np.isnan(v[1:]).all()
    g = dx.to_numpy()
    assert np.isfinite(g[0]).all() and (g[0] != 0).any() and (g[1:] == 0).all()
    dev.ResetGraph()


def test_bad_label_rows_get_no_gradient(rng):
    """What a GPU replay computes for a bad label, on the CPU kernels: the backward ops (which
    trust the labels their forward checked) give the bad rows zero gradient."""
    dev = _core.create_cpu_device()
    p = rng.uniform(0.1, 1, (3, 4)).astype(np.float32)
    pt, dl = core_tensor(p, dev), core_tensor(np.ones(3, np.float32), dev)
    lab = core_tensor(np.array([1, 2, 3], np.int32), dev)
    dev.EnableGraph(True)
    lab.copy_from_numpy(np.array([1, 7, -2], np.int32))
    outs = [_core.softmax_cross_entropy_backward(pt, lab, dl),
            _core.cross_entropy_backward(pt, lab, dl)]
    dev.EnableGraph(False)
    dev.RunGraph(True)
    want0 = [p[0] - np.eye(4, dtype=np.float32)[1], -np.eye(4, dtype=np.float32)[1] / p[0]]
    for out, w in zip(outs, want0):
        g = out.to_numpy()
        np.testing.assert_allclose(g[0], w, rtol=1e-6)
        assert (g[1:] == 0).all()
    dev.ResetGraph()


def test_bad_shapes_and_dtypes():
    x = core_tensor(np.zeros((3, 5), np.float32))
    lab = core_tensor(np.zeros(3, np.int32))
    dl = core_tensor(np.ones(3, np.float32))
    sce, sceb = _core.softmax_cross_entropy, _core.softmax_cross_entropy_backward
    with pytest.raises(ValueError, match=r"softmax_cross_entropy: int32 labels have shape \(4,\)"):
        sce(x, core_tensor(np.zeros(4, np.int32)))
    with pytest.raises(ValueError, match="softmax_cross_entropy: int32 labels have shape"):
        sce(x, core_tensor(np.zeros((3, 1), np.int32)))
    with pytest.raises(TypeError, match="softmax_cross_entropy: target has dtype float16"):
        sce(x, core_tensor(np.zeros((3, 5), np.float16)))
    with pytest.raises(ValueError, match=r"softmax_cross_entropy: soft target has shape \(3, 4\)"):
        sce(x, core_tensor(np.zeros((3, 4), np.float32)))
    with pytest.raises(TypeError, match="softmax_cross_entropy: logits has dtype int32"):
        sce(core_tensor(np.zeros((3, 5), np.int32)), lab)
    with pytest.raises(ValueError, match="softmax_cross_entropy: logits must be 2-d"):
        sce(core_tensor(np.zeros((3, 5, 1), np.float32)), lab)
    with pytest.raises(ValueError, match="softmax_cross_entropy: logits .* has no classes"):
        sce(core_tensor(np.zeros((3, 0), np.float32)), lab)
    with pytest.raises(ValueError, match=r"entropy_backward: dloss has shape \(3, 1\)"):
        sceb(x, lab, core_tensor(np.ones((3, 1), np.float32)))
    with pytest.raises(TypeError, match="softmax_cross_entropy_backward: dloss has dtype float16"):
        sceb(x, lab, core_tensor(np.ones(3, np.float16)))
    with pytest.raises(ValueError, match=r"entropy_backward: int32 labels have shape \(2,\)"):
        sceb(x, core_tensor(np.zeros(2, np.int32)), dl)
    with pytest.raises(ValueError, match=r"cross_entropy: int32 labels have shape \(2,\)"):
        _core.cross_entropy(x, core_tensor(np.zeros(2, np.int32)))
    with pytest.raises(ValueError, match=r"cross_entropy_backward: dloss has shape \(5,\)"):
        _core.cross_entropy_backward(x, lab, core_tensor(np.ones(5, np.float32)))


def test_softmax_bad_inputs():
    x = core_tensor(np.zeros((2, 3), np.float32))
    for name in ("softmax", "log_softmax"):
        fn = getattr(_core, name)
        with pytest.raises(TypeError, match=f"{name}: input has dtype int32"):
            fn(core_tensor(np.zeros((2, 3), np.int32)))
        with pytest.raises(ValueError, match=f"{name}: axis 2 is out of range"):
            fn(x, 2)
        bwd = getattr(_core, name + "_backward")
        with pytest.raises(ValueError, match=rf"{name}_backward: dy has shape \(3, 2\)"):
            bwd(x, core_tensor(np.zeros((3, 2), np.float32)), -1)
        with pytest.raises(TypeError, match=f"{name}_backward: dy has dtype float16"):
            bwd(x, core_tensor(np.zeros((2, 3), np.float16)), -1)
        with pytest.raises(ValueError, match=f"{name}_backward: axis -3 is out of range"):
            bwd(x, x, -3)


def test_empty_batch():
    x = core_tensor(np.zeros((0, 4), np.float32))
    loss, prob = _core.softmax_cross_entropy(x, core_tensor(np.zeros(0, np.int32)))
    assert loss.shape == (0,) and prob.shape == (0, 4)
    assert _core.softmax(core_tensor(np.zeros((2, 0), np.float32)), 1).shape == (2, 0)
