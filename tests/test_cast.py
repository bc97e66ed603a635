"""Cast family: as_type between float32, float16 and int32 against numpy's astype."""

import numpy as np
import pytest
from conftest import core_tensor

from minisinga import _core

F32, F16, I32 = _core.DType.float32, _core.DType.float16, _core.DType.int32
IMAX, IMIN = np.iinfo(np.int32).max, np.iinfo(np.int32).min


def cast(a, dtype):
    t = core_tensor(a)
    out = _core.as_type(t, dtype)
    assert out.shape == t.shape and out.dtype == dtype and not out.same_block(t)
    return out.to_numpy()


def bits(a):
    return a.view(np.uint16 if a.dtype == np.float16 else np.uint32)


@pytest.mark.parametrize("shape", [(1,), (0, 3), (2, 1, 3), (5, 7)])
@pytest.mark.parametrize("src", [np.float32, np.float16, np.int32])
@pytest.mark.parametrize("dst", [F32, F16, I32])
def test_shapes_and_small_values(shape, src, dst, rng):
    a = (rng.standard_normal(shape) * 50).astype(src)
    expected = a.astype({F32: np.float32, F16: np.float16, I32: np.int32}[dst])
    got = cast(a, dst)
    assert got.shape == shape
    np.testing.assert_array_equal(got, expected)


def test_zero_dim_tensor():
    t = _core.Tensor([], _core.default_device())
    t.copy_from_numpy(np.array(-2.7, np.float32))
    out = _core.as_type(t, I32)
    assert out.shape == () and out.to_numpy() == -2


def test_float32_to_float16_bitwise_random_patterns(rng):
    # Every float32 bit pattern class: normals, subnormals, overflow, both signs.
    a = rng.integers(0, 2**32, size=200_000, dtype=np.uint64).astype(np.uint32).view(np.float32)
    a = a[~np.isnan(a)]
    # And values near half's range limits and rounding ties.
    ties = np.array(
        [
            1 + 2**-11,
            1 + 3 * 2**-11,
            2**-25,
            3 * 2**-25,
            2**-24,
            2**-14 - 2**-25,
            65504,
            65519.99,
            65520,
            1e-8,
            5.960464477539063e-08,
            6e-8,
            2048 + 1,
            2048 + 3,
            -0.0,
            0.0,
            np.inf,
            -np.inf,
        ],
        np.float32,
    )
    a = np.concatenate([a, ties, -ties])
    wide = rng.standard_normal(100_000) * np.exp2(rng.integers(-30, 20, 100_000))
    a = np.concatenate([a, wide.astype(np.float32)])
    with np.errstate(over="ignore"):
        expected = a.astype(np.float16)
    np.testing.assert_array_equal(bits(cast(a, F16)), bits(expected))


def test_float16_to_float32_all_patterns():
    a = np.arange(2**16, dtype=np.uint32).astype(np.uint16).view(np.float16)
    got = cast(a, F32)
    finite = ~np.isnan(a)
    np.testing.assert_array_equal(bits(got[finite]), bits(a[finite].astype(np.float32)))
    assert np.all(np.isnan(got[~finite]))


def test_float16_to_int32_all_finite():
    a = np.arange(2**16, dtype=np.uint32).astype(np.uint16).view(np.float16)
    a = a[np.isfinite(a)]
    np.testing.assert_array_equal(cast(a, I32), a.astype(np.int32))
    special = np.array([np.inf, -np.inf, np.nan], np.float16)
    np.testing.assert_array_equal(cast(special, I32), [IMAX, IMIN, 0])


def test_float32_to_int32_truncates_and_clamps(rng):
    a = np.concatenate(
        [
            rng.uniform(-2e9, 2e9, 10000),
            rng.uniform(-3, 3, 1000),
            [-2.7, -0.5, -0.0, 0.5, 2.7, 2147483520.0, -2147483648.0, 16777217.0],
        ]
    ).astype(np.float32)
    np.testing.assert_array_equal(cast(a, I32), a.astype(np.int32))
    special = np.array(
        [np.nan, np.inf, -np.inf, 3e9, -3e9, 2147483648.0, -2147483904.0, -np.nan], np.float32
    )
    np.testing.assert_array_equal(cast(special, I32), [0, IMAX, IMIN, IMAX, IMIN, IMAX, IMIN, 0])


def test_int32_to_float32_rounds_to_nearest_even(rng):
    a = np.concatenate(
        [
            rng.integers(IMIN, IMAX, 100_000, endpoint=True),
            [IMIN, IMAX, 2**24 + 1, 2**24 + 3, -(2**24) - 1, 0, -1],
        ]
    ).astype(np.int32)
    np.testing.assert_array_equal(bits(cast(a, F32)), bits(a.astype(np.float32)))


def test_int32_to_float16(rng):
    a = np.concatenate(
        [
            rng.integers(-70000, 70000, 100_000),
            np.arange(-4100, 4100),
            [IMIN, IMAX, 65504, 65519, 65520, -65520, 2049, 2051],
        ]
    ).astype(np.int32)
    with np.errstate(over="ignore"):
        expected = a.astype(np.float16)
    np.testing.assert_array_equal(bits(cast(a, F16)), bits(expected))


def test_nan_survives_float_casts():
    a = np.array([np.nan, -np.nan, 1.0], np.float32)
    h = cast(a, F16)
    assert np.isnan(h[:2]).all() and h[2] == 1
    assert np.isnan(cast(h, F32)[:2]).all()


def test_bad_dtype_argument():
    t = core_tensor(np.zeros(3, np.float32))
    with pytest.raises(TypeError, match="as_type"):
        _core.as_type(t, "float64")
