"""Reduce family: reduce_sum/mean/max/min, argmax/argmin, sum_to_shape against numpy."""

import itertools

import numpy as np
import pytest
from conftest import core_tensor

from minisinga import _core

REDUCE = {
    "sum": (_core.reduce_sum, np.sum),
    "mean": (_core.reduce_mean, np.mean),
    "max": (_core.reduce_max, np.max),
    "min": (_core.reduce_min, np.min),
}
SHAPES_4D = [(2, 1, 3, 4), (1, 5, 1, 3), (3, 2, 4, 1)]


def ref(npfn, x, axes, keepdims):
    """float64 numpy reference; axes None means all."""
    ax = None if axes is None else tuple(axes)
    return npfn(x.astype(np.float64), axis=ax, keepdims=keepdims)


def all_axis_sets(nd):
    """Every subset of range(nd), plus None."""
    sets = [None]
    for k in range(nd + 1):
        sets += [list(c) for c in itertools.combinations(range(nd), k)]
    return sets


@pytest.mark.parametrize("name", list(REDUCE))
@pytest.mark.parametrize("shape", SHAPES_4D)
def test_every_axis_combination_float32(name, shape, rng):
    fn, npfn = REDUCE[name]
    x = rng.standard_normal(shape).astype(np.float32)
    t = core_tensor(x)
    for axes in all_axis_sets(4):
        for keepdims in (False, True):
            # Spell some axes negatively: same result.
            given = None if axes is None else [a - 4 if a % 2 else a for a in axes]
            got = fn(t, given, keepdims).to_numpy()
            want = ref(npfn, x, axes, keepdims)
            assert got.dtype == np.float32
            assert got.shape == want.shape, (axes, keepdims)
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6, err_msg=str(axes))


@pytest.mark.parametrize("name", list(REDUCE))
def test_random_shapes_float32(name, rng):
    fn, npfn = REDUCE[name]
    for _ in range(12):
        nd = int(rng.integers(1, 6))
        shape = tuple(int(d) for d in rng.choice([1, 2, 3, 7, 40], size=nd))
        x = rng.standard_normal(shape).astype(np.float32)
        k = int(rng.integers(0, nd + 1))
        axes = sorted(int(a) for a in rng.choice(nd, size=k, replace=False))
        got = fn(core_tensor(x), axes, False).to_numpy()
        np.testing.assert_allclose(got, ref(npfn, x, axes, False), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", list(REDUCE))
def test_float16(name, rng):
    fn, npfn = REDUCE[name]
    x = rng.standard_normal((3, 50, 4, 6)).astype(np.float16)
    x32 = x.astype(np.float32)
    for axes in ([1], [0, 2], [1, 3], None, [3]):
        got = fn(core_tensor(x), axes, True).to_numpy()
        assert got.dtype == np.float16
        want = ref(npfn, x, axes, True)
        # Accumulated in float32 (intermediates too): only the final rounding to half remains.
        np.testing.assert_allclose(got.astype(np.float64), want, rtol=1e-3, atol=1e-3)
        as32 = fn(core_tensor(x32), axes, True).to_numpy()
        np.testing.assert_allclose(got, as32, rtol=1e-3, atol=1e-3)


def test_float16_sum_exceeding_float16_steps():
    # 60000 ones: a float16 accumulator would stall at 2048.
    x = np.ones((3, 20000), np.float16)
    assert float(_core.reduce_sum(core_tensor(x)).to_numpy()) == 60000.0
    assert float(_core.reduce_mean(core_tensor(x)).to_numpy()) == 1.0


@pytest.mark.parametrize("name", ["sum", "max", "min"])
def test_int32(name, rng):
    fn, npfn = REDUCE[name]
    x = rng.integers(-1000, 1000, size=(4, 1, 5, 3)).astype(np.int32)
    for axes in all_axis_sets(4):
        got = fn(core_tensor(x), axes, False).to_numpy()
        assert got.dtype == np.int32
        np.testing.assert_array_equal(got, npfn(x, axis=None if axes is None else tuple(axes)))


def test_int32_extremes():
    x = np.array([[np.iinfo(np.int32).min] * 3, [np.iinfo(np.int32).max] * 3], np.int32)
    np.testing.assert_array_equal(_core.reduce_max(core_tensor(x), [1]).to_numpy(), x[:, 0])
    np.testing.assert_array_equal(_core.reduce_min(core_tensor(x), [1]).to_numpy(), x[:, 0])
    np.testing.assert_array_equal(_core.argmax(core_tensor(x), 1).to_numpy(), [0, 0])


def test_large_sums_are_accurate(rng):
    ones = np.ones(10**7, np.float32)
    assert float(_core.reduce_sum(core_tensor(ones)).to_numpy()) == 1e7
    # Long reduced axis with a small output: the split-and-combine path.
    for shape, axes in (((5 * 10**6, 2), [0]), ((2, 5 * 10**6), [1])):
        got = _core.reduce_sum(core_tensor(ones.reshape(shape)), axes).to_numpy()
        np.testing.assert_array_equal(got, [5e6, 5e6])
    # A constant addend makes float32 accumulators drift systematically (~1e-3 relative).
    tenth = np.full((10**6, 2), 0.1, np.float32)
    exact = 10**6 * np.float64(np.float32(0.1))
    for axes in ([0], None):
        got = _core.reduce_sum(core_tensor(tenth), axes).to_numpy().astype(np.float64)
        np.testing.assert_allclose(got, exact * (1 if axes else 2), rtol=1e-7)
    x = rng.random(10**6, dtype=np.float32)
    got = float(_core.reduce_sum(core_tensor(x)).to_numpy())
    assert abs(got - x.astype(np.float64).sum()) <= 1e-6 * x.sum()  # float-loop error ~1e-4
    got = float(_core.reduce_mean(core_tensor(x)).to_numpy())
    assert abs(got - x.astype(np.float64).mean()) <= 1e-6


def test_split_reduction_max_min_mean(rng):
    x = rng.standard_normal((1, 200001)).astype(np.float32)
    x[0, 150000] = 9.0
    x[0, 3] = -9.0
    t = core_tensor(x)
    assert float(_core.reduce_max(t, [1]).to_numpy()[0]) == 9.0
    assert float(_core.reduce_min(t, [1]).to_numpy()[0]) == -9.0
    np.testing.assert_allclose(_core.reduce_mean(t, [1]).to_numpy(), x.mean(1), atol=1e-6)
    y = rng.standard_normal((100000, 3)).astype(np.float32)
    np.testing.assert_allclose(_core.reduce_max(core_tensor(y), [0]).to_numpy(), y.max(0))


def test_nan_propagates():
    x = np.array([[1.0, np.nan, 3.0], [4.0, 5.0, 6.0]], np.float32)
    t = core_tensor(x)
    for fn in (_core.reduce_sum, _core.reduce_max, _core.reduce_min, _core.reduce_mean):
        got = fn(t, [1]).to_numpy()
        assert np.isnan(got[0]) and not np.isnan(got[1]), fn.__name__
        got = fn(t, [0]).to_numpy()
        assert np.isnan(got[1]) and not np.isnan(got[0]), fn.__name__
    big = np.zeros(100000, np.float32)
    big[70000] = np.nan
    assert np.isnan(_core.reduce_max(core_tensor(big)).to_numpy())
    assert _core.argmax(core_tensor(x), 1).to_numpy()[0] == 1
    assert _core.argmin(core_tensor(x), 1).to_numpy()[0] == 1
    assert int(_core.argmax(core_tensor(big), 0).to_numpy()) == 70000


def test_infinities():
    x = np.full((2, 5), -np.inf, np.float32)
    np.testing.assert_array_equal(_core.reduce_max(core_tensor(x), [1]).to_numpy(), [-np.inf] * 2)
    np.testing.assert_array_equal(_core.argmax(core_tensor(x), 1).to_numpy(), [0, 0])
    np.testing.assert_array_equal(_core.argmin(core_tensor(-x), 1).to_numpy(), [0, 0])


@pytest.mark.parametrize("dtype", [np.float32, np.float16, np.int32])
def test_argmax_argmin_every_axis(dtype, rng):
    x = rng.integers(-5, 5, size=(3, 1, 4, 5)).astype(dtype)  # many ties: first index wins
    t = core_tensor(x)
    for axis in range(-4, 4):
        for keepdims in (False, True):
            for fn, npfn in ((_core.argmax, np.argmax), (_core.argmin, np.argmin)):
                got = fn(t, axis, keepdims).to_numpy()
                assert got.dtype == np.int32
                np.testing.assert_array_equal(got, npfn(x, axis=axis, keepdims=keepdims))


def test_argmax_long_rows_and_ties(rng):
    x = rng.standard_normal((2, 300000)).astype(np.float32)
    x[0, [1000, 200000, 299999]] = 50.0  # ties in different blocks and parts
    x[1, 299999] = 50.0
    x[1, 123456] = -50.0
    np.testing.assert_array_equal(_core.argmax(core_tensor(x), 1).to_numpy(), [1000, 299999])
    np.testing.assert_array_equal(_core.argmin(core_tensor(x), -1).to_numpy(), x.argmin(1))
    y = np.ascontiguousarray(x.T)
    np.testing.assert_array_equal(_core.argmax(core_tensor(y), 0).to_numpy(), [1000, 299999])
    h = rng.standard_normal(100000).astype(np.float16)
    assert int(_core.argmax(core_tensor(h), 0).to_numpy()) == int(np.argmax(h))


def test_empty_axes_list_is_a_copy(rng):
    x = rng.standard_normal((2, 3)).astype(np.float32)
    t = core_tensor(x)
    for fn, _ in REDUCE.values():
        y = fn(t, [], False)
        assert not y.same_block(t)
        np.testing.assert_array_equal(y.to_numpy(), x)


def test_size_one_axes_only_and_scalars():
    x = np.arange(6, dtype=np.float32).reshape(1, 6, 1)
    for fn, _ in REDUCE.values():
        np.testing.assert_array_equal(fn(core_tensor(x), [0, 2], False).to_numpy(), x[0, :, 0])
    s = _core.Tensor([], _core.default_device())  # 0-d (core_tensor makes arrays >= 1-d)
    s.copy_from_numpy(np.array(3.5, np.float32))
    for fn, _ in REDUCE.values():
        for axes in (None, []):
            y = fn(s, axes, False)
            assert y.shape == () and float(y.to_numpy()) == 3.5
    with pytest.raises(ValueError, match="argmax: axis 0 is out of range for a 0-d tensor"):
        _core.argmax(s, 0)


def test_zero_size():
    x = np.zeros((0, 3), np.float32)
    t = core_tensor(x)
    np.testing.assert_array_equal(_core.reduce_sum(t, [0]).to_numpy(), np.zeros(3))
    assert float(_core.reduce_sum(t).to_numpy()) == 0.0
    assert _core.reduce_max(t, [1]).shape == (0,)  # empty output: nothing to reduce
    assert _core.argmax(t, 1).shape == (0,)
    for name in ("mean", "max", "min"):
        with pytest.raises(ValueError, match=f"reduce_{name}.*zero elements"):
            REDUCE[name][0](t, [0])
        with pytest.raises(ValueError, match=f"reduce_{name}"):
            REDUCE[name][0](t)
    for fn in (_core.argmax, _core.argmin):
        with pytest.raises(ValueError, match=f"{fn.__name__}.*size 0"):
            fn(t, 0)


def test_bad_axes():
    t = core_tensor(np.zeros((2, 3, 4, 5), np.float32))
    for name, (fn, _) in REDUCE.items():
        with pytest.raises(ValueError, match=f"reduce_{name}: axis 4 is out of range"):
            fn(t, [0, 4])
        with pytest.raises(ValueError, match=f"reduce_{name}: axis -5 is out of range"):
            fn(t, [-5])
        with pytest.raises(ValueError, match=f"reduce_{name}: duplicate axis -3"):
            fn(t, [1, -3])
    for fn in (_core.argmax, _core.argmin):
        with pytest.raises(ValueError, match=f"{fn.__name__}: axis 4 is out of range"):
            fn(t, 4)


def test_mean_of_int32_is_a_type_error():
    with pytest.raises(TypeError, match="reduce_mean: input has dtype int32"):
        _core.reduce_mean(core_tensor(np.ones((2, 2), np.int32)))


def sum_to_shape_ref(x, shape):
    """numpy reference: sum leading extra axes, then every axis where `shape` has 1."""
    x = x.astype(np.float64)
    lead = x.ndim - len(shape)
    x = x.sum(axis=tuple(range(lead)))
    for d, n in enumerate(shape):
        if n == 1:
            x = x.sum(axis=d, keepdims=True)
    return x


@pytest.mark.parametrize("dtype", [np.float32, np.float16, np.int32])
def test_sum_to_shape(dtype, rng):
    cases = [
        ((2, 3, 4), (3, 4)), ((2, 3, 4), (1, 4)), ((2, 3, 4), (4,)), ((2, 3, 4), (2, 1, 1)),
        ((2, 3, 4), ()), ((2, 3, 4), (2, 3, 4)), ((5, 1, 3), (1, 3)), ((4, 1), (1,)),
        ((3, 1, 2, 5), (3, 1, 1, 5)),
    ]
    for xs, target in cases:
        x = (rng.standard_normal(xs) * 4).astype(dtype)
        got = _core.sum_to_shape(core_tensor(x), list(target))
        assert got.shape == target and got.to_numpy().dtype == dtype
        tol = 1e-2 if dtype == np.float16 else 1e-5
        np.testing.assert_allclose(got.to_numpy(), sum_to_shape_ref(x, target), rtol=tol, atol=tol)
        # The result broadcasts back to x.shape, as autograd needs.
        np.broadcast_to(got.to_numpy(), xs)


def test_sum_to_shape_bad_shapes():
    t = core_tensor(np.zeros((2, 3, 4), np.float32))
    for bad in ([3], [2, 4], [1, 2, 3, 4], [2, 3, 5], [3, 4, 4]):
        msg = r"sum_to_shape: shape .* does not broadcast to \(2, 3, 4\)"
        with pytest.raises(ValueError, match=msg):
            _core.sum_to_shape(t, bad)


def test_graph_mode_matches_eager(rng):
    dev = _core.create_cpu_device()
    x = rng.standard_normal((3, 4, 5, 6)).astype(np.float16)
    t = core_tensor(x, dev)
    eager = _core.reduce_mean(t, [0, 2], False).to_numpy()
    dev.EnableGraph(True)
    y = _core.reduce_mean(t, [0, 2], False)
    a = _core.argmax(t, 3)
    dev.EnableGraph(False)
    dev.RunGraph(True)
    np.testing.assert_array_equal(y.to_numpy(), eager)
    np.testing.assert_array_equal(a.to_numpy(), np.argmax(x, 3))
    dev.ResetGraph()
