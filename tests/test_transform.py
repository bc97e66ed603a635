"""Transform ops vs numpy for float32, float16 and int32: transpose, concat, slice(+backward),
split, pad(+backward), broadcast_to, take(+backward vs np.add.at), one_hot; bad inputs raise."""

import itertools

import numpy as np
import pytest
from conftest import core_tensor

from minisinga import _core

DTYPES = [np.float32, np.float16, np.int32]


def rand(shape, dtype, rng):
    if np.dtype(dtype).kind == "i":
        return rng.integers(-1000, 1000, size=shape).astype(dtype)
    return rng.standard_normal(shape).astype(dtype)


def same(t, want):
    got = t.to_numpy()
    assert got.dtype == want.dtype
    assert got.shape == want.shape
    np.testing.assert_array_equal(got, want)


def ints(a):
    return core_tensor(np.asarray(a, np.int32))


# ---- transpose ----


@pytest.mark.parametrize("dtype", DTYPES)
def test_transpose(dtype, rng):
    for shape in [(5,), (1,), (5, 7), (1, 7), (7, 1), (67, 129), (3, 1, 4)]:
        x = rand(shape, dtype, rng)
        same(_core.transpose(core_tensor(x)), x.T)
    for shape in [(2, 3, 4), (3, 1, 40), (33, 2, 35)]:
        x = rand(shape, dtype, rng)
        for perm in itertools.permutations(range(3)):
            same(_core.transpose(core_tensor(x), list(perm)), np.transpose(x, perm))
    x = rand((2, 1, 3, 4, 5), dtype, rng)
    for _ in range(6):
        perm = [int(p) for p in rng.permutation(5)]
        same(_core.transpose(core_tensor(x), perm), np.transpose(x, perm))
    same(_core.transpose(core_tensor(x), [-1, 0, 1, -2, 2]), np.transpose(x, [4, 0, 1, 3, 2]))
    e = np.zeros((0, 3, 2), dtype)
    same(_core.transpose(core_tensor(e), [2, 0, 1]), np.transpose(e, [2, 0, 1]))


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_short_row_copies_across_work_items(dtype, rng):
    """Copies whose rows (the destination's last axis) are shorter than 4096 elements run a
    block of rows per work item, stepping each row's offsets from the last: blocks that
    start and end inside an outer axis, several axes carrying at once, large enough to
    run in parallel."""
    x = rand((6, 37, 11, 29), dtype, rng)
    for perm in [(0, 2, 1, 3), (2, 0, 3, 1), (3, 1, 0, 2), (1, 0, 2, 3)]:
        same(_core.transpose(core_tensor(x), list(perm)), np.transpose(x, perm))
    got = _core.slice(core_tensor(x), [1, 3, 2, 1], [6, 36, 10, 28], [0, 1, 2, 3], [1, 2, 3, 1])
    same(got, x[1:6, 3:36:2, 2:10:3, 1:28])
    b = rand((37, 1, 29), dtype, rng)
    same(_core.broadcast_to(core_tensor(b), [6, 37, 11, 29]), np.broadcast_to(b, x.shape).copy())


def test_transpose_errors():
    x = core_tensor(np.zeros((2, 3, 4), np.float32))
    with pytest.raises(ValueError, match=r"transpose: perm \[0, 1\] has 2 entries"):
        _core.transpose(x, [0, 1])
    with pytest.raises(ValueError, match=r"transpose: perm \[0, 1, 1\] repeats axis 1"):
        _core.transpose(x, [0, 1, 1])
    with pytest.raises(ValueError, match=r"transpose: perm \[0, 3, 1\] has axis 3 out of range"):
        _core.transpose(x, [0, 3, 1])


# ---- concat / split ----


@pytest.mark.parametrize("dtype", DTYPES)
def test_concat(dtype, rng):
    for axis in [0, 1, 2, -1, -3]:
        shapes = [[2, 3, 4] for _ in range(3)]
        for s, n in zip(shapes, [1, 0, 5]):
            s[axis] = n
        xs = [rand(s, dtype, rng) for s in shapes]
        same(_core.concat([core_tensor(x) for x in xs], axis), np.concatenate(xs, axis))
    x = rand((1, 5), dtype, rng)
    same(_core.concat([core_tensor(x)], 0), x)
    v = [rand((n,), dtype, rng) for n in (3, 1, 4)]
    same(_core.concat([core_tensor(a) for a in v], 0), np.concatenate(v))


def test_concat_errors():
    a = core_tensor(np.zeros((2, 3), np.float32))
    with pytest.raises(ValueError, match=r"concat: tensor 1 has shape \(2, 4\), tensor 0 has"):
        _core.concat([a, core_tensor(np.zeros((2, 4), np.float32))], 0)
    with pytest.raises(ValueError, match=r"concat: tensor 1 has shape \(2, 3, 1\)"):
        _core.concat([a, core_tensor(np.zeros((2, 3, 1), np.float32))], 1)
    with pytest.raises(TypeError, match="concat: tensor 1 has dtype int32, tensor 0 has float32"):
        _core.concat([a, core_tensor(np.zeros((2, 3), np.int32))], 0)
    other = _core.create_cpu_device()
    with pytest.raises(TypeError, match="concat: tensors are on different devices"):
        _core.concat([a, core_tensor(np.zeros((2, 3), np.float32), other)], 0)
    with pytest.raises(ValueError, match="concat: axis 2 is out of range"):
        _core.concat([a, a], 2)
    with pytest.raises(ValueError, match="concat: needs at least one tensor"):
        _core.concat([], 0)
    scalar = _core.Tensor([], _core.default_device())
    with pytest.raises(ValueError, match="concat: zero-dimensional"):
        _core.concat([scalar, scalar], 0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_split(dtype, rng):
    x = rand((4, 9, 3), dtype, rng)
    for axis, sizes in [(1, [2, 0, 7]), (-1, [1, 1, 1]), (0, [4]), (-3, [1, 3])]:
        got = _core.split(core_tensor(x), sizes, axis)
        want = np.split(x, np.cumsum(sizes)[:-1], axis)
        assert len(got) == len(want)
        for g, w in zip(got, want):
            same(g, w)


def test_split_errors():
    x = core_tensor(np.zeros((4, 6), np.float32))
    with pytest.raises(ValueError, match=r"split: sizes \[2, 3\] add up to 5, but axis 1"):
        _core.split(x, [2, 3], 1)
    with pytest.raises(ValueError, match=r"split: sizes \[5, -1\] contain a negative size"):
        _core.split(x, [5, -1], 0)
    with pytest.raises(ValueError, match="split: axis -3 is out of range"):
        _core.split(x, [4], -3)


# ---- slice ----


def np_slice(x, starts, stops, axes=None, steps=None):
    axes = list(range(len(starts))) if axes is None else axes
    steps = [1] * len(starts) if steps is None else steps
    idx = [slice(None)] * x.ndim
    for s, e, a, st in zip(starts, stops, axes, steps):
        idx[a] = slice(s, e, st)
    return x[tuple(idx)]


@pytest.mark.parametrize("dtype", DTYPES)
def test_slice(dtype, rng):
    x = rand((6, 1, 7, 5), dtype, rng)
    cases = [
        ([1], [4], None, None),
        ([0, 0], [6, 1], None, None),
        ([-3], [-1], [2], None),
        ([2, -100], [100, 3], [3, 0], [2, 1]),
        ([5, 0], [0, 7], [0, 2], None),  # empty
        ([0, 1], [6, 7], [-1, -2], [3, 4]),
        ([7], [9], [2], None),  # start past the end: empty
        ([-9], [2**40], [0], [5]),
        ([0, 0, 0, 0], [6, 1, 7, 5], None, [1, 1, 2, 3]),
    ]
    for starts, stops, axes, steps in cases:
        got = _core.slice(core_tensor(x), starts, stops, axes, steps)
        want = np_slice(x, starts, stops, [a % 4 for a in axes] if axes else None, steps)
        same(got, np.ascontiguousarray(want))
    for _ in range(10):
        a = int(rng.integers(0, 4))
        s, e = (int(v) for v in rng.integers(-9, 10, size=2))
        st = int(rng.integers(1, 4))
        same(_core.slice(core_tensor(x), [s], [e], [a], [st]), np_slice(x, [s], [e], [a], [st]))


@pytest.mark.parametrize("dtype", DTYPES)
def test_slice_backward(dtype, rng):
    shape = (6, 1, 7, 5)
    for starts, stops, axes, steps in [
        ([1, -4], [5, 100], [0, 2], [2, 3]),
        ([0], [0], [3], None),
        ([2], [3], None, None),
    ]:
        want_shape = np_slice(np.zeros(shape), starts, stops, axes, steps).shape
        dy = rand(want_shape, dtype, rng)
        want = np.zeros(shape, dtype)
        idx = [slice(None)] * 4
        for s, e, a, st in zip(starts, stops, axes or [0], steps or [1]):
            idx[a] = slice(s, e, st)
        want[tuple(idx)] = dy
        same(_core.slice_backward(core_tensor(dy), list(shape), starts, stops, axes, steps), want)


def test_slice_errors():
    x = core_tensor(np.zeros((4, 6), np.float32))
    with pytest.raises(ValueError, match="slice: step 0 on axis 1 is not positive"):
        _core.slice(x, [0], [2], [1], [0])
    with pytest.raises(ValueError, match="slice: step -1 on axis 0 is not positive"):
        _core.slice(x, [3], [0], [0], [-1])
    with pytest.raises(ValueError, match="slice: axis 2 is out of range"):
        _core.slice(x, [0], [1], [2])
    with pytest.raises(ValueError, match=r"slice: axis -1 is sliced twice"):
        _core.slice(x, [0, 0], [1, 1], [1, -1])
    with pytest.raises(ValueError, match=r"slice: starts \[0\] and stops \[1, 2\] differ"):
        _core.slice(x, [0], [1, 2])
    with pytest.raises(ValueError, match="slice: starts, stops, axes and steps must have one"):
        _core.slice(x, [0], [1], [0, 1])
    with pytest.raises(ValueError, match="slice: axis 2 is out of range"):
        _core.slice(x, [0, 0, 0], [1, 1, 1])
    dy = core_tensor(np.zeros((2, 6), np.float32))
    with pytest.raises(ValueError, match=r"slice_backward: dy has shape \(2, 6\), but the slice"):
        _core.slice_backward(dy, [4, 6], [0], [3])
    with pytest.raises(ValueError, match="slice_backward: x_shape .* negative"):
        _core.slice_backward(dy, [4, -6], [0], [2])


# ---- pad ----


@pytest.mark.parametrize("dtype", DTYPES)
def test_pad_and_backward(dtype, rng):
    for shape, pads in [
        ((3, 4), [(1, 2), (0, 3)]),
        ((2, 1, 3), [(0, 0), (2, 1), (1, 1)]),
        ((5,), [(0, 0)]),
        ((0, 2), [(1, 1), (2, 0)]),
    ]:
        x = rand(shape, dtype, rng)
        for value in (0.0, -3.0):
            same(_core.pad(core_tensor(x), pads, value), np.pad(x, pads, constant_values=value))
        dy = rand(np.pad(x, pads).shape, dtype, rng)
        interior = tuple(slice(b, n - a) for (b, a), n in zip(pads, dy.shape))
        same(_core.pad_backward(core_tensor(dy), pads), dy[interior])


def test_pad_errors():
    x = core_tensor(np.zeros((3, 4), np.float32))
    with pytest.raises(ValueError, match=r"pad: pads \(1, -1\) on axis 1 are negative"):
        _core.pad(x, [(0, 0), (1, -1)])
    with pytest.raises(ValueError, match=r"pad: got 1 \(before, after\) pairs .* \(3, 4\)"):
        _core.pad(x, [(1, 1)])
    with pytest.raises(ValueError, match=r"pad_backward: dy of shape \(3, 4\) is smaller"):
        _core.pad_backward(x, [(2, 2), (0, 0)])
    with pytest.raises(ValueError, match=r"pad_backward: pads \(-1, 0\) on axis 0"):
        _core.pad_backward(x, [(-1, 0), (0, 0)])


# ---- broadcast_to ----


@pytest.mark.parametrize("dtype", DTYPES)
def test_broadcast_to(dtype, rng):
    for shape, target in [
        ((3,), (4, 3)),
        ((1,), (5,)),
        ((2, 1, 3), (4, 2, 5, 3)),
        ((4, 1), (4, 6)),
        ((2, 3), (2, 3)),
        ((1, 1), (0, 7)),
        ((1,), (2, 1, 1)),
    ]:
        x = rand(shape, dtype, rng)
        same(_core.broadcast_to(core_tensor(x), list(target)), np.broadcast_to(x, target))


def test_broadcast_to_errors():
    x = core_tensor(np.zeros((2, 3), np.float32))
    for target in ([3, 3], [3], [2, 1], [4, 3, 2]):
        with pytest.raises(ValueError, match=r"broadcast_to: cannot broadcast shape \(2, 3\)"):
            _core.broadcast_to(x, target)
    with pytest.raises(ValueError, match="broadcast_to: shape .* negative"):
        _core.broadcast_to(x, [-1, 3])


# ---- take / take_backward / one_hot ----


@pytest.mark.parametrize("dtype", DTYPES)
def test_take(dtype, rng):
    x = rand((4, 5, 3), dtype, rng)
    for axis in [0, 1, 2, -1]:
        n = x.shape[axis]
        for idx in [np.array(1), np.array([0, n - 1, -1, -n, 1]), rng.integers(-n, n, (2, 3))]:
            idx = idx.astype(np.int32)
            same(
                _core.take(
                    core_tensor(x), core_tensor(idx) if idx.ndim else _scalar_index(idx), axis
                ),
                np.take(x, idx, axis),
            )
    same(_core.take(core_tensor(x), ints(np.zeros(0)), 1), np.take(x, np.zeros(0, int), 1))


def _scalar_index(idx):
    t = _core.Tensor([], _core.default_device(), _core.DType.int32)
    t.copy_from_numpy(np.asarray(idx, np.int32))
    return t


def test_take_errors():
    x = core_tensor(np.zeros((4, 5), np.float32))
    msg = r"take: an index is out of range for axis 1 of size 5 .* \[-5, 5\)"
    for bad in ([0, 5], [-6], [2**31 - 1]):
        with pytest.raises(ValueError, match=msg):
            _core.take(x, ints(bad), 1)
    with pytest.raises(ValueError, match="take: an index is out of range for axis 0 of size 0"):
        _core.take(core_tensor(np.zeros((0, 3), np.float32)), ints([0]), 0)
    with pytest.raises(TypeError, match="take: indices has dtype float32, expected int32"):
        _core.take(x, core_tensor(np.zeros(2, np.float32)), 0)
    with pytest.raises(ValueError, match="take: axis 2 is out of range"):
        _core.take(x, ints([0]), 2)
    other = _core.create_cpu_device()
    with pytest.raises(TypeError, match="take: tensors are on different devices"):
        _core.take(x, core_tensor(np.zeros(1, np.int32), other), 0)


def test_take_out_of_range_in_a_graph_replay(dev):
    """An index only a replay sees: a CPU replay stops with take's error; a GPU's take reads
    nothing for it (zeros) and the next read raises the error, once."""
    dev = dev if dev.is_cuda else _core.create_cpu_device()
    x = core_tensor(np.arange(6, dtype=np.float32).reshape(2, 3), dev)
    idx = core_tensor(np.array([2, 7, -1], np.int32), dev)
    dev.ResetGraph()
    dev.EnableGraph(True)
    try:
        y = _core.take(x, idx, 1)  # no error while recording: nothing can be read back yet
    finally:
        dev.EnableGraph(False)
    msg = r"take: an index is out of range for axis 1 of size 3 \(x shape \(2, 3\)\)"
    if not dev.is_cuda:
        with pytest.raises(ValueError, match=msg):
            dev.RunGraph(True)
    else:
        dev.RunGraph(True)
        with pytest.raises(ValueError, match=msg + ".*in the last graph replay"):
            y.to_numpy()
        np.testing.assert_array_equal(y.to_numpy(), [[2, 0, 2], [5, 0, 5]])
    dev.ResetGraph()


@pytest.mark.parametrize("dtype", DTYPES)
def test_take_backward_repeated_indices(dtype, rng):
    x_shape = (3, 6, 2)
    for axis in [0, 1, -1]:
        n = x_shape[axis]
        for idx in [
            np.array([1, 1, 1, 0, -1, n - 1]),
            rng.integers(-n, n, (4, 5)),
            np.zeros(0, int),
        ]:
            idx = idx.astype(np.int32)
            dy_shape = np.take(np.zeros(x_shape), idx, axis).shape
            dy = (
                rand(dy_shape, dtype, rng)
                if dtype != np.float16
                else rng.integers(-8, 8, dy_shape).astype(dtype)
            )  # exact sums in float16
            want = np.zeros(x_shape, dtype)
            moved = np.moveaxis(want, axis, 0)  # a view: np.add.at writes through it
            dmoved = np.moveaxis(
                dy, list(range(axis % 3, axis % 3 + idx.ndim)), list(range(idx.ndim))
            )
            np.add.at(moved, idx, dmoved)
            got = _core.take_backward(core_tensor(dy), ints(idx), axis, list(x_shape))
            same(got, want)


def test_take_backward_float16_accumulates_in_float32(rng):
    dy = np.full((2048, 1), 0.1, np.float16)
    got = _core.take_backward(core_tensor(dy), ints(np.zeros(2048)), 0, [1, 1]).to_numpy()
    np.testing.assert_allclose(got[0, 0], 2048 * np.float32(np.float16(0.1)), rtol=1e-3)


def test_take_backward_large_is_deterministic(rng):
    idx = rng.integers(0, 50, 20000).astype(np.int32)
    dy = rng.standard_normal((20000, 16)).astype(np.float32)
    first = _core.take_backward(core_tensor(dy), ints(idx), 0, [50, 16]).to_numpy()
    want = np.zeros((50, 16))
    np.add.at(want, idx, dy.astype(np.float64))
    np.testing.assert_allclose(first, want, rtol=1e-4, atol=1e-3)
    for _ in range(3):
        again = _core.take_backward(core_tensor(dy), ints(idx), 0, [50, 16]).to_numpy()
        np.testing.assert_array_equal(again, first)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("outer,inner", [(16, 1), (37, 1), (20, 3), (16, 15), (16, 16), (15, 1)])
def test_take_short_rows(dtype, outer, inner, rng):
    """Rows shorter than 16 under 16+ outer blocks take an element-by-element path (both
    directions); its results, repeated and negative indices included, match numpy's."""
    n = 7
    x = rand((outer, n, inner), dtype, rng)
    idx = np.array([0, 6, -1, 3, 3, -7, 2, 2, 2], np.int32)
    same(_core.take(core_tensor(x), ints(idx), 1), np.take(x, idx, 1))
    dy = (rand((outer, len(idx), inner), dtype, rng) if dtype != np.float16
          else rng.integers(-8, 8, (outer, len(idx), inner)).astype(dtype))
    want = np.zeros_like(x)
    np.add.at(np.moveaxis(want, 1, 0), idx, np.moveaxis(dy, 1, 0))
    same(_core.take_backward(core_tensor(dy), ints(idx), 1, list(x.shape)), want)
    for bad in ([0, 7], [-8, 1]):
        with pytest.raises(ValueError, match="an index is out of range for axis 1 of size 7"):
            _core.take(core_tensor(x), ints(bad), 1)
        with pytest.raises(ValueError, match="an index is out of range for axis 1 of size 7"):
            _core.take_backward(core_tensor(dy[:, :2]), ints(bad), 1, list(x.shape))


def test_take_backward_errors():
    dy = core_tensor(np.zeros((2, 3), np.float32))
    with pytest.raises(ValueError, match=r"take_backward: dy has shape \(2, 3\), expected"):
        _core.take_backward(dy, ints([0, 1]), 0, [4, 2])
    with pytest.raises(ValueError, match="take_backward: an index is out of range for axis 0"):
        _core.take_backward(dy, ints([0, 4]), 0, [4, 3])
    with pytest.raises(TypeError, match="take_backward: indices has dtype float16"):
        _core.take_backward(dy, core_tensor(np.zeros(2, np.float16)), 0, [4, 3])
    with pytest.raises(ValueError, match="take_backward: axis 2 is out of range"):
        _core.take_backward(dy, ints([0, 1]), 2, [4, 3])


@pytest.mark.parametrize("dtype", DTYPES)
def test_one_hot(dtype, rng):
    ddt = {
        np.float32: _core.DType.float32,
        np.float16: _core.DType.float16,
        np.int32: _core.DType.int32,
    }[dtype]
    for labels, depth in [
        (rng.integers(0, 10, 17), 10),
        (np.array([0]), 1),
        (np.zeros(0, int), 4),
        (rng.integers(0, 3, (2, 5)), 3),
    ]:
        got = _core.one_hot(ints(labels), depth, ddt)
        same(got, np.eye(depth, dtype=dtype)[labels])
    same(_core.one_hot(ints([2, 0]), 3), np.eye(3, dtype=np.float32)[[2, 0]])


def test_one_hot_errors():
    with pytest.raises(ValueError, match=r"one_hot: a label .* is outside \[0, 3\)"):
        _core.one_hot(ints([0, 3]), 3)
    with pytest.raises(ValueError, match=r"one_hot: a label .* is outside \[0, 3\)"):
        _core.one_hot(ints([-1]), 3)
    with pytest.raises(TypeError, match="one_hot: labels has dtype float32, expected int32"):
        _core.one_hot(core_tensor(np.zeros(3, np.float32)), 3)
    with pytest.raises(ValueError, match="one_hot: depth -1 is negative"):
        _core.one_hot(ints([0]), -1)


def test_large_tensors_use_parallel_paths(rng):
    # Above the OpenMP threshold, and rows longer than one parallel chunk.
    x = rand((300, 250), np.float32, rng)
    same(_core.transpose(core_tensor(x)), x.T)
    y = rand((4, 70, 3, 50), np.float16, rng)
    same(_core.transpose(core_tensor(y), [3, 1, 0, 2]), np.transpose(y, [3, 1, 0, 2]))
    a, b = rand((2, 20000), np.int32, rng), rand((2, 17000), np.int32, rng)
    same(_core.concat([core_tensor(a), core_tensor(b)], 1), np.concatenate([a, b], 1))
    same(_core.slice(core_tensor(x), [3, 1], [299, 250], None, [2, 3]), x[3:299:2, 1::3])
    same(_core.broadcast_to(core_tensor(x[:1]), [200, 250]), np.broadcast_to(x[:1], (200, 250)))
    same(
        _core.pad(core_tensor(x), [(2, 1), (0, 5)], 1.5),
        np.pad(x, [(2, 1), (0, 5)], constant_values=1.5),
    )
    idx = rng.integers(-300, 300, 500).astype(np.int32)
    same(_core.take(core_tensor(x), ints(idx), 0), np.take(x, idx, 0))
    same(_core.one_hot(ints(idx % 300), 300), np.eye(300, dtype=np.float32)[idx % 300])
