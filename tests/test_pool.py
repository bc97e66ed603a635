"""pool2d / pool2d_backward against naive numpy loops."""

import numpy as np
import pytest
from conftest import core_tensor, recorded_nodes

from minisinga import _core


def pool_ref(x, kernel, stride, pad, is_max, count_include_pad=True):
    """Loops over windows in float64; returns y and (for max) first-argmax flat indices."""
    n, c, h, w = x.shape
    oh = (h + pad[0] + pad[1] - kernel[0]) // stride[0] + 1
    ow = (w + pad[2] + pad[3] - kernel[1]) // stride[1] + 1
    y = np.zeros((n, c, oh, ow))
    idx = np.full((n, c, oh, ow), -1, np.int32)
    for i in range(oh):
        for j in range(ow):
            r0, c0 = i * stride[0] - pad[0], j * stride[1] - pad[2]
            cells = [
                (r, q)
                for r in range(r0, r0 + kernel[0])
                for q in range(c0, c0 + kernel[1])
                if 0 <= r < h and 0 <= q < w
            ]
            if not cells:
                continue
            vals = np.stack([x[:, :, r, q].astype(np.float64) for r, q in cells], axis=-1)
            if is_max:
                best = vals.argmax(axis=-1)
                y[:, :, i, j] = vals.max(axis=-1)
                flat = np.array([r * w + q for r, q in cells])
                idx[:, :, i, j] = flat[best]
            else:
                div = kernel[0] * kernel[1] if count_include_pad else len(cells)
                y[:, :, i, j] = vals.sum(axis=-1) / div
    return y, idx


def rand(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


# (x shape, kernel, stride, padding)
CASES = [
    ((2, 2, 6, 6), (2, 2), (2, 2), (0, 0, 0, 0)),
    ((1, 2, 7, 9), (3, 3), (2, 2), (1, 1, 1, 1)),
    ((2, 2, 9, 10), (2, 3), (4, 5), (0, 0, 0, 0)),  # stride > kernel
    ((2, 1, 6, 7), (3, 2), (1, 2), (2, 0, 0, 1)),  # one-sided padding
    ((3, 2, 1, 11), (1, 3), (1, 2), (0, 0, 1, 1)),  # 1-D: H = 1
    ((2, 3, 5, 6), (5, 6), (1, 1), (0, 0, 0, 0)),  # global: kernel = H, W
    ((1, 1, 1, 1), (1, 1), (1, 1), (0, 0, 0, 0)),
    ((2, 2, 4, 4), (2, 2), (1, 1), (2, 2, 2, 2)),  # corner windows entirely in padding
    ((2, 3, 5, 7), (2, 2), (2, 2), (0, 1, 0, 1)),  # 2x2 stride 2, last windows in the padding
    ((1, 2, 4, 6), (2, 2), (2, 2), (0, 1, 0, 1)),  # 2x2 stride 2, the padding never reached
]


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("mode", ["max", "avg_incl", "avg_excl"])
def test_forward_and_backward(rng, case, mode):
    xs, kernel, stride, pad = case
    is_max, incl = mode == "max", mode != "avg_excl"
    x = rand(rng, *xs)
    y, idx = _core.pool2d(core_tensor(x), list(kernel), list(stride), list(pad), is_max, incl)
    y_ref, idx_ref = pool_ref(x, kernel, stride, pad, is_max, incl)
    np.testing.assert_allclose(y.to_numpy(), y_ref, rtol=1e-5, atol=1e-6)
    if is_max:
        assert idx.dtype == _core.DType.int32
        np.testing.assert_array_equal(idx.to_numpy(), idx_ref)
    else:
        assert idx is None
    dy = rand(rng, *y_ref.shape)
    dx = _core.pool2d_backward(
        core_tensor(dy), list(xs), idx, list(kernel), list(stride), list(pad), is_max, incl
    ).to_numpy()
    # Central differences of <pool_ref(x), dy> in float64 (x's entries are distinct, so
    # eps leaves every max in place).
    x64, eps = x.astype(np.float64), 1e-4
    num = np.zeros_like(x64)
    for i in np.ndindex(x64.shape):
        xp, xm = x64.copy(), x64.copy()
        xp[i] += eps
        xm[i] -= eps
        fp = (pool_ref(xp, kernel, stride, pad, is_max, incl)[0] * dy).sum()
        fm = (pool_ref(xm, kernel, stride, pad, is_max, incl)[0] * dy).sum()
        num[i] = (fp - fm) / (2 * eps)
    np.testing.assert_allclose(dx, num, rtol=1e-4, atol=1e-4)


def test_global_avg_pool_is_mean(rng):
    x = rand(rng, 4, 5, 7, 3)
    y, _ = _core.pool2d(core_tensor(x), [7, 3], [1, 1], [0, 0, 0, 0], False)
    np.testing.assert_allclose(y.to_numpy(), x.mean(axis=(2, 3), keepdims=True), rtol=1e-5)


def test_padding_never_wins_max(rng):
    x = -1 - np.abs(rand(rng, 1, 2, 3, 3))  # all negative: a zero pad cell would win
    y, idx = _core.pool2d(core_tensor(x), [2, 2], [2, 2], [1, 1, 1, 1], True)
    assert (y.to_numpy() < 0).all()
    assert (idx.to_numpy() >= 0).all()


def test_window_entirely_in_padding(rng):
    x = rand(rng, 1, 1, 2, 2)
    y, idx = _core.pool2d(core_tensor(x), [1, 1], [1, 1], [1, 0, 1, 0], True)
    assert y.to_numpy()[0, 0, 0, 0] == 0 and idx.to_numpy()[0, 0, 0, 0] == -1
    dy = np.ones((1, 1, 3, 3), np.float32)
    dx = _core.pool2d_backward(
        core_tensor(dy), [1, 1, 2, 2], idx, [1, 1], [1, 1], [1, 0, 1, 0], True
    )
    np.testing.assert_array_equal(dx.to_numpy(), np.ones((1, 1, 2, 2), np.float32))
    ya, _ = _core.pool2d(core_tensor(x), [1, 1], [1, 1], [1, 0, 1, 0], False, False)
    assert ya.to_numpy()[0, 0, 0, 0] == 0


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_bad_indices_are_skipped(dev, dtype):
    """Out-of-range indices (not made by pool2d) never write outside dx; indices outside
    their own window (0 and 3 here, not made by pool2d either) still name dx's cell."""
    dy = core_tensor(np.ones((1, 1, 2, 2), dtype), dev)
    idx = core_tensor(np.array([[[[-5, 0], [3, 1000]]]], np.int32), dev)
    dx = _core.pool2d_backward(dy, [1, 1, 2, 2], idx, [1, 1], [1, 1], [0, 0, 0, 0], True)
    assert dx.to_numpy().dtype == dtype
    np.testing.assert_array_equal(dx.to_numpy(), [[[[1, 0], [0, 1]]]])


def test_symmetric_padding_pair(rng):
    x = rand(rng, 2, 2, 5, 6)
    y, _ = _core.pool2d(core_tensor(x), [3, 3], [2, 2], [1, 0], False)
    y_ref, _ = pool_ref(x, (3, 3), (2, 2), (1, 1, 0, 0), False)
    np.testing.assert_allclose(y.to_numpy(), y_ref, rtol=1e-5, atol=1e-6)


def test_large_parallel_planes(rng):
    """Enough work for the OpenMP path."""
    x = rand(rng, 8, 16, 32, 32)
    y, idx = _core.pool2d(core_tensor(x), [3, 3], [2, 2], [1, 1, 1, 1], True)
    y_ref, idx_ref = pool_ref(x, (3, 3), (2, 2), (1, 1, 1, 1), True)
    np.testing.assert_allclose(y.to_numpy(), y_ref, rtol=1e-6)
    np.testing.assert_array_equal(idx.to_numpy(), idx_ref)
    dy = rand(rng, *y_ref.shape)
    dx = _core.pool2d_backward(
        core_tensor(dy), list(x.shape), idx, [3, 3], [2, 2], [1, 1, 1, 1], True
    ).to_numpy()
    dx_ref = np.zeros(x.shape[:2] + (32 * 32,))
    for n, c in np.ndindex(x.shape[:2]):
        np.add.at(dx_ref[n, c], idx_ref[n, c].ravel(), dy[n, c].ravel())
    np.testing.assert_allclose(dx, dx_ref.reshape(x.shape), rtol=1e-5, atol=1e-6)


# float16 cases (x shape, kernel, stride, padding)
HALF_CASES = [
    ((2, 3, 7, 6), (3, 3), (2, 2), (1, 1, 1, 1)),  # overlapping windows: dx cells sum dy
    ((2, 2, 9, 5), (3, 2), (2, 1), (1, 0, 0, 1)),  # H != W, different strides
    ((1, 2, 2, 3), (1, 1), (1, 1), (1, 0, 1, 0)),  # windows entirely in the padding
    ((4, 16, 32, 32), (3, 3), (2, 2), (1, 1, 1, 1)),  # enough work for the OpenMP path
]



@pytest.mark.parametrize("xs", [(2, 3, 7, 9), (1, 1, 2, 2), (4, 16, 32, 32)], ids=str)
def test_max_pool_2x2_stride_2_ties_nans_and_odd_sizes(rng, xs):
    """The 2x2 stride-2 path (the CPU's own loop): the first maximum in window order wins a
    tie, the first NaN wins over numbers, an odd last row or column is left out."""
    x = rng.choice(np.array([-np.inf, -1, 0, 1, 2], np.float32), xs)
    x.flat[::7] = np.nan
    y, idx = _core.pool2d(core_tensor(x), [2, 2], [2, 2], [0, 0], True)
    y_ref, idx_ref = pool_ref(x, (2, 2), (2, 2), (0, 0, 0, 0), True)
    np.testing.assert_array_equal(y.to_numpy(), y_ref.astype(np.float32))
    np.testing.assert_array_equal(idx.to_numpy(), idx_ref)

@pytest.mark.parametrize("case", HALF_CASES, ids=str)
@pytest.mark.parametrize("mode", ["max", "avg_incl", "avg_excl"])
def test_float16_pooling_runs_on_float16(dev, rng, case, mode):
    """float16 pooling reads and writes float16 (the graph records no casts) and equals the
    float32 op on the same values rounded once to float16, bit for bit; ties and NaNs pick
    the same winners."""
    xs, kernel, stride, pad = case
    is_max, incl = mode == "max", mode != "avg_excl"
    geo = (list(kernel), list(stride), list(pad))
    x = (np.round(rng.uniform(-2, 2, xs) * 2) / 2).astype(np.float16)  # many ties
    x[..., 1::4, 1::4] = 4  # max pooling: each wins all its windows, summing up to 4 dy
    x.flat[::11] = np.nan

    def run(dtype, dy=None):
        y, idx = _core.pool2d(core_tensor(x.astype(dtype), dev), *geo, is_max, incl)
        dy = rng.uniform(-2, 2, y.shape).astype(np.float16) if dy is None else dy
        dx = _core.pool2d_backward(core_tensor(dy.astype(dtype), dev), list(xs), idx, *geo,
                                   is_max, incl)
        return [y.to_numpy(), dx.to_numpy()], idx, dy

    (y16, dx16), idx16, dy = run(np.float16)
    (y32, dx32), idx32, _ = run(np.float32, dy)
    assert y16.dtype == dx16.dtype == np.float16
    np.testing.assert_array_equal(y16, y32.astype(np.float16))
    np.testing.assert_array_equal(dx16, dx32.astype(np.float16))
    if is_max:
        np.testing.assert_array_equal(idx16.to_numpy(), idx32.to_numpy())
    t, tdy = core_tensor(x, dev), core_tensor(dy, dev)

    def ops():
        _, idx = _core.pool2d(t, *geo, is_max, incl)
        _core.pool2d_backward(tdy, list(xs), idx, *geo, is_max, incl)

    names = recorded_nodes(t.device, ops)
    assert not any("AsType" in n or "CastInto" in n for n in names), names
    kind = "MaxPool2d" if is_max else "AvgPool2d"
    assert names == [kind, kind + "Backward"], names


def f32(*shape):
    return core_tensor(np.ones(shape, np.float32))


@pytest.mark.parametrize(
    "xs,kernel,stride,pad,match",
    [
        ((3, 5, 5), [2, 2], [2, 2], [0, 0, 0, 0], "pool2d: x must be 4-D"),
        ((1, 3, 5, 5), [0, 2], [2, 2], [0, 0, 0, 0], "pool2d: kernel must be 2 integers >= 1"),
        ((1, 3, 5, 5), [2], [2, 2], [0, 0, 0, 0], "pool2d: kernel must be 2"),
        ((1, 3, 5, 5), [2, 2], [0, 2], [0, 0, 0, 0], "pool2d: stride must be"),
        ((1, 3, 5, 5), [2, 2], [2, -1], [0, 0, 0, 0], "pool2d: stride must be"),
        ((1, 3, 5, 5), [2, 2], [2, 2], [0, 0, -1, 0], "pool2d: padding must be >= 0"),
        ((1, 3, 5, 5), [2, 2], [2, 2], [0, 0, 0], "pool2d: padding must be"),
        ((1, 3, 5, 5), [6, 2], [1, 1], [0, 0, 0, 0], "pool2d: the .*kernel 6x2 is larger"),
        ((1, 3, 1, 5), [2, 2], [1, 1], [0, 0, 0, 0], "larger than the padded input 1x5"),
    ],
)
def test_pool2d_bad_params(xs, kernel, stride, pad, match):
    with pytest.raises(ValueError, match=match):
        _core.pool2d(f32(*xs), kernel, stride, pad, True)


def test_pool2d_bad_dtype():
    with pytest.raises(TypeError, match="pool2d: x has dtype int32, expected float32"):
        _core.pool2d(
            core_tensor(np.ones((1, 1, 4, 4), np.int32)), [2, 2], [2, 2], [0, 0, 0, 0], False
        )


def test_pool2d_backward_bad_inputs():
    x = f32(1, 2, 4, 4)
    y, idx = _core.pool2d(x, [2, 2], [2, 2], [0, 0, 0, 0], True)
    args = ([2, 2], [2, 2], [0, 0, 0, 0], True)
    with pytest.raises(ValueError, match="pool2d_backward: max pooling needs the indices"):
        _core.pool2d_backward(y, [1, 2, 4, 4], None, *args)
    with pytest.raises(
        ValueError,
        match=r"pool2d_backward: dy has shape \(1, 2, 2, 2\), "
        r"expected \(1, 2, 3, 3\)",
    ):
        _core.pool2d_backward(y, [1, 2, 6, 6], idx, *args)
    with pytest.raises(ValueError, match=r"pool2d_backward: indices have shape"):
        _core.pool2d_backward(y, [1, 2, 4, 4], core_tensor(np.zeros((2, 2, 2), np.int32)), *args)
    with pytest.raises(TypeError, match="pool2d_backward: indices has dtype float32"):
        _core.pool2d_backward(y, [1, 2, 4, 4], y, *args)
    with pytest.raises(TypeError, match="pool2d_backward: dy has dtype int32"):
        _core.pool2d_backward(idx, [1, 2, 4, 4], idx, *args)
    with pytest.raises(ValueError, match="pool2d_backward: x must be 4-D"):
        _core.pool2d_backward(y, [2, 4, 4], idx, *args)
    other = _core.create_cpu_device()
    idx2 = core_tensor(idx.to_numpy(), other)
    with pytest.raises(TypeError, match="pool2d_backward: tensors are on different devices"):
        _core.pool2d_backward(y, [1, 2, 4, 4], idx2, *args)
