"""matmul: forward vs numpy (float64 reference) over transposes, vectors, batch broadcasting,
alpha/beta accumulation, empty sizes and graph mode; every bad input raises."""

import itertools

import numpy as np
import pytest
from conftest import core_tensor

from minisinga import _core

TRANS = list(itertools.product([False, True], repeat=2))


def stored(shape, trans, rng):
    """A float32 array whose op() (last two axes swapped when trans) has `shape`."""
    s = list(shape)
    if trans:
        s[-2], s[-1] = s[-1], s[-2]
    return rng.standard_normal(s).astype(np.float32)


def reference(a, b, ta=False, tb=False, alpha=1.0, beta=0.0, out=None):
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    if ta:
        a64 = np.swapaxes(a64, -1, -2)
    if tb:
        b64 = np.swapaxes(b64, -1, -2)
    r = alpha * np.matmul(a64, b64)
    if beta != 0.0:
        r = r + beta * out.astype(np.float64)
    return r


def check(a, b, ta=False, tb=False, **kw):
    got = _core.matmul(core_tensor(a), core_tensor(b), trans_a=ta, trans_b=tb, **kw).to_numpy()
    want = reference(a, b, ta, tb)
    assert got.shape == want.shape
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("ta,tb", TRANS)
def test_2d_every_transpose(ta, tb, rng):
    for m, k, n in [(1, 1, 1), (1, 5, 1), (4, 1, 6), (7, 3, 1), (1, 9, 8), (13, 17, 11)]:
        check(stored((m, k), ta, rng), stored((k, n), tb, rng), ta, tb)
    for _ in range(5):
        m, k, n = rng.integers(1, 40, size=3)
        check(stored((m, k), ta, rng), stored((k, n), tb, rng), ta, tb)


def test_vectors(rng):
    v = rng.standard_normal(5).astype(np.float32)
    w = rng.standard_normal(5).astype(np.float32)
    check(v, w)  # 0-d result
    check(v, rng.standard_normal((5, 3)).astype(np.float32))
    check(rng.standard_normal((4, 5)).astype(np.float32), w)
    check(v, rng.standard_normal((2, 3, 5, 4)).astype(np.float32))
    check(rng.standard_normal((2, 3, 4, 5)).astype(np.float32), w)
    check(rng.standard_normal((1, 5)).astype(np.float32), w)
    check(v, stored((5, 3), True, rng), tb=True)
    check(stored((4, 5), True, rng), w, ta=True)


@pytest.mark.parametrize("ta,tb", TRANS)
def test_batched_broadcast(ta, tb, rng):
    m, k, n = 3, 4, 5
    cases = [
        ((6,), ()),  # folds into one GEMM with 6*m rows when a is not transposed
        ((2, 3), ()),
        ((2, 3), (1,)),
        ((), (6,)),
        ((6,), (6,)),
        ((2, 3), (2, 3)),
        ((2, 1), (1, 3)),
        ((4, 1, 3), (2, 1)),
        ((1, 3), (2, 3)),
        ((2, 1, 1), (1, 3, 2)),
        ((1,), (1,)),
    ]
    for ba, bb in cases:
        a = stored(ba + (m, k), ta, rng)
        b = stored(bb + (k, n), tb, rng)
        check(a, b, ta, tb)


def test_batched_random(rng):
    for _ in range(10):
        nd = int(rng.integers(0, 4))
        batch = rng.integers(1, 4, size=nd)
        ba = tuple(int(d) if rng.random() < 0.6 else 1 for d in batch)
        bb = tuple(int(d) if rng.random() < 0.6 else 1 for d in batch)
        bb = bb[int(rng.integers(0, nd + 1)) :]
        m, k, n = (int(v) for v in rng.integers(1, 9, size=3))
        ta, tb = bool(rng.integers(2)), bool(rng.integers(2))
        check(stored(ba + (m, k), ta, rng), stored(bb + (k, n), tb, rng), ta, tb)


@pytest.mark.parametrize("ta,tb", TRANS)
def test_alpha_beta_accumulate(ta, tb, rng):
    for ba, bb in [((), ()), ((3,), ()), ((3,), (3,)), ((2, 1), (1, 3))]:
        a = stored(ba + (4, 6), ta, rng)
        b = stored(bb + (6, 5), tb, rng)
        out0 = rng.standard_normal(np.broadcast_shapes(ba, bb) + (4, 5)).astype(np.float32)
        out = core_tensor(out0)
        r = _core.matmul(core_tensor(a), core_tensor(b), ta, tb, alpha=0.5, beta=2.0, out=out)
        assert r.same_block(out)
        want = reference(a, b, ta, tb, alpha=0.5, beta=2.0, out=out0)
        np.testing.assert_allclose(out.to_numpy(), want, rtol=1e-5, atol=1e-4)
        # A second call keeps accumulating (gradient accumulation).
        _core.matmul(core_tensor(a), core_tensor(b), ta, tb, beta=1.0, out=out)
        np.testing.assert_allclose(
            out.to_numpy(), want + reference(a, b, ta, tb), rtol=1e-5, atol=1e-4
        )


def test_beta_zero_ignores_out_contents(rng):
    a = rng.standard_normal((3, 4, 6)).astype(np.float32)
    for b in [rng.standard_normal((6, 5)), rng.standard_normal((3, 6, 5))]:
        b = b.astype(np.float32)
        out = core_tensor(np.full((3, 4, 5), np.nan, np.float32))
        _core.matmul(core_tensor(a), core_tensor(b), out=out)
        np.testing.assert_allclose(out.to_numpy(), reference(a, b), rtol=1e-5, atol=1e-4)


def test_empty_sizes(rng):
    z = np.zeros
    r = _core.matmul(core_tensor(z((3, 0), np.float32)), core_tensor(z((0, 4), np.float32)))
    np.testing.assert_array_equal(r.to_numpy(), np.zeros((3, 4), np.float32))
    out0 = rng.standard_normal((2, 3, 4)).astype(np.float32)
    out = core_tensor(out0)
    _core.matmul(
        core_tensor(z((2, 3, 0), np.float32)),
        core_tensor(z((2, 0, 4), np.float32)),
        beta=0.5,
        out=out,
    )
    np.testing.assert_allclose(out.to_numpy(), 0.5 * out0, rtol=1e-6)
    for a, b, shape in [
        ((0, 5), (5, 3), (0, 3)),
        ((4, 5), (5, 0), (4, 0)),
        ((0, 2, 5), (5, 3), (0, 2, 3)),
        ((2, 5), (3, 0, 5, 1), (3, 0, 2, 1)),
    ]:
        r = _core.matmul(core_tensor(z(a, np.float32)), core_tensor(z(b, np.float32)))
        assert r.shape == shape


def test_large_fold_matches_batched(rng):
    # Same product by the folded single GEMM (b shared) and by strided batches (b repeated).
    a = rng.standard_normal((8, 33, 70)).astype(np.float32)
    b = rng.standard_normal((70, 45)).astype(np.float32)
    one = _core.matmul(core_tensor(a), core_tensor(b)).to_numpy()
    many = _core.matmul(core_tensor(a), core_tensor(np.broadcast_to(b, (8, 70, 45)))).to_numpy()
    np.testing.assert_allclose(one, reference(a, b), rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(many, reference(a, b), rtol=1e-5, atol=1e-4)


def test_graph_mode_matches_eager(rng):
    dev = _core.create_cpu_device()
    a = rng.standard_normal((2, 3, 4)).astype(np.float32)
    b = rng.standard_normal((2, 5, 4)).astype(np.float32)
    ta, tb = core_tensor(a, dev), core_tensor(b, dev)
    out = core_tensor(np.ones((2, 3, 5), np.float32), dev)
    dev.EnableGraph(True)
    try:
        _core.matmul(ta, tb, trans_b=True, beta=1.0, out=out)
    finally:
        dev.EnableGraph(False)
    dev.RunGraph(True)
    dev.RunGraph(True)
    want = 1.0 + 2.0 * reference(a, b, tb=True)
    np.testing.assert_allclose(out.to_numpy(), want, rtol=1e-5, atol=1e-4)
    dev.ResetGraph()


@pytest.mark.parametrize("dtype", [np.int32])
def test_non_float_raises_type_error(dtype):  # float16: tests/test_half.py
    f = core_tensor(np.ones((2, 3), np.float32))
    x = core_tensor(np.ones((2, 3), dtype))
    y = core_tensor(np.ones((3, 2), dtype))
    name = np.dtype(dtype).name
    with pytest.raises(TypeError, match=f"matmul: a has dtype {name}.*float32 and float16"):
        _core.matmul(x, y)
    with pytest.raises(TypeError, match=f"matmul: b has dtype {name}.*float32 and float16"):
        _core.matmul(f, y)
    with pytest.raises(TypeError, match=f"matmul: out has dtype {name}"):
        _core.matmul(
            f, core_tensor(np.ones((3, 2), np.float32)), out=core_tensor(np.ones((2, 2), dtype))
        )


def test_shape_errors():
    def t(*shape):
        return core_tensor(np.ones(shape, np.float32))

    msg = r"matmul: inner dimensions differ for a \(2, 3\) and b \(4, 5\)"
    with pytest.raises(ValueError, match=msg):
        _core.matmul(t(2, 3), t(4, 5))
    msg = r"a \(3, 2\) \(transposed\) and b \(4, 5\): op\(a\) is 2x3"
    with pytest.raises(ValueError, match=msg):
        _core.matmul(t(3, 2), t(4, 5), trans_a=True)
    with pytest.raises(ValueError, match=r"b \(5, 2\) \(transposed\)"):
        _core.matmul(t(3, 4), t(5, 2), trans_b=True)
    with pytest.raises(ValueError, match=r"matmul: batch dimensions do not broadcast"):
        _core.matmul(t(2, 3, 4), t(3, 4, 5))
    with pytest.raises(ValueError, match="matmul: operands need at least 1 dimension"):
        _core.matmul(_core.Tensor([], _core.default_device()), t(3))
    with pytest.raises(ValueError, match="matmul: trans_a needs a matrix"):
        _core.matmul(t(3), t(3, 2), trans_a=True)
    with pytest.raises(ValueError, match="matmul: trans_b needs a matrix"):
        _core.matmul(t(2, 3), t(3), trans_b=True)
    with pytest.raises(ValueError, match="matmul: beta = 1 accumulates into out"):
        _core.matmul(t(2, 3), t(3, 4), beta=1.0)
    with pytest.raises(ValueError, match=r"matmul: out has shape \(4, 2\), expected \(2, 4\)"):
        _core.matmul(t(2, 3), t(3, 4), out=t(4, 2))
    a = t(4, 4)
    with pytest.raises(ValueError, match="matmul: out shares memory"):
        _core.matmul(a, t(4, 4), out=a)
    big = t(8, 4)
    with pytest.raises(ValueError, match="matmul: out shares memory"):
        _core.matmul(big.slice_rows(0, 4), t(4, 4), out=big.slice_rows(2, 6))
    # Disjoint views of one block are fine.
    _core.matmul(big.slice_rows(0, 4), t(4, 4), out=big.slice_rows(4, 8))
    np.testing.assert_allclose(big.to_numpy()[4:], np.full((4, 4), 4.0))


def test_device_mismatch_raises_type_error():
    other = _core.create_cpu_device()
    a = core_tensor(np.ones((2, 3), np.float32))
    b = core_tensor(np.ones((3, 2), np.float32), other)
    with pytest.raises(TypeError, match="matmul: tensors are on different devices"):
        _core.matmul(a, b)
    with pytest.raises(TypeError, match="matmul: out is on"):
        _core.matmul(
            a,
            core_tensor(np.ones((3, 2), np.float32)),
            out=core_tensor(np.ones((2, 2), np.float32), other),
        )
