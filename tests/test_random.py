"""Random family: Philox4x32-10 known answers, the counter numbering, moments, thread
independence, graph replay and bad parameters."""

import hashlib
import os
import subprocess
import sys

import numpy as np
import pytest
from dist_helpers import pythonpath

from minisinga import _core

M0, M1 = 0xD2511F53, 0xCD9E8D57
W0, W1 = 0x9E3779B9, 0xBB67AE85
MASK = np.uint64(0xFFFFFFFF)

# Random123's published known-answer vectors for philox4x32_R(10, ctr, key).
KAT = [
    ([0, 0, 0, 0], [0, 0], [0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8]),
    ([0xFFFFFFFF] * 4, [0xFFFFFFFF] * 2, [0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD]),
    (
        [0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344],
        [0xA4093822, 0x299F31D0],
        [0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1],
    ),
]


def philox_np(ctr, key):
    """Vectorised Philox4x32-10 in numpy (uint64 holding 32-bit words)."""
    c0, c1, c2, c3 = (np.asarray(c, np.uint64) for c in ctr)
    k0, k1 = np.uint64(key[0]), np.uint64(key[1])
    for _ in range(10):
        p0 = np.uint64(M0) * c0
        p1 = np.uint64(M1) * c2
        c0, c1, c2, c3 = (
            (p1 >> np.uint64(32)) ^ c1 ^ k0,
            p1 & MASK,
            (p0 >> np.uint64(32)) ^ c3 ^ k1,
            p0 & MASK,
        )
        k0 = (k0 + np.uint64(W0)) & MASK
        k1 = (k1 + np.uint64(W1)) & MASK
    return np.stack([c0, c1, c2, c3])


def draws(seed, offset, n):
    """The 32-bit outputs for counter values offset .. offset + n - 1 (block j // 4, lane j % 4)."""
    j = np.uint64(offset) + np.arange(n, dtype=np.uint64)
    block = j >> np.uint64(2)
    lane = (j & np.uint64(3)).astype(np.int64)
    zero = np.zeros(n, np.uint64)
    out = philox_np(
        (block & MASK, block >> np.uint64(32), zero, zero), (seed & 0xFFFFFFFF, seed >> 32)
    )
    return out, lane


def unit(r):
    return (r >> np.uint64(8)).astype(np.float64) * 2.0**-24


@pytest.fixture
def dev():
    d = _core.create_cpu_device()
    d.SetRandSeed(0)
    return d


def filled(fn, dev, shape, dtype=_core.DType.float32, *args):
    t = _core.Tensor(list(shape), dev, dtype)
    fn(t, *args)
    return t.to_numpy()


@pytest.mark.parametrize("ctr,key,expected", KAT)
def test_philox_known_answers(ctr, key, expected):
    assert list(_core.philox4x32_10(ctr, key)) == expected
    got = philox_np([[c] for c in ctr], key)[:, 0]
    assert [int(v) for v in got] == expected  # the numpy reference below is right too


def test_uniform_matches_counter_numbering(dev):
    seed = 0x123456789ABCDEF
    dev.SetRandSeed(seed)
    a = filled(_core.uniform, dev, (7, 1, 3), _core.DType.float32, 0.0, 1.0)  # 21 values
    assert dev.rng_state == (seed, 24)  # rounded up to whole Philox blocks
    b = filled(_core.uniform, dev, (10,), _core.DType.float32, 0.0, 1.0)
    assert dev.rng_state == (seed, 36)
    r, lane = draws(seed, 0, 21)
    np.testing.assert_array_equal(a.ravel(), unit(r[lane, np.arange(21)]).astype(np.float32))
    r, lane = draws(seed, 24, 10)
    np.testing.assert_array_equal(b, unit(r[lane, np.arange(10)]).astype(np.float32))


def test_uniform_range_and_float16(dev):
    dev.SetRandSeed(5)
    a = filled(_core.uniform, dev, (1000,), _core.DType.float32, -2.5, 4.0)
    r, lane = draws(5, 0, 1000)
    expected = -2.5 + 6.5 * unit(r[lane, np.arange(1000)])
    np.testing.assert_allclose(a, expected, rtol=0, atol=5e-7)
    assert a.min() >= -2.5 and a.max() < 4.0
    # float16 output: the float32 value rounded to half, but never high (the largest half
    # below it instead: [low, high) holds after rounding).
    dev.SetRandSeed(5)
    h = filled(_core.uniform, dev, (1000,), _core.DType.float16, -2.5, 4.0)
    assert h.dtype == np.float16
    below = np.nextafter(np.float16(4.0), np.float16(-np.inf))
    assert (a.astype(np.float16) == 4.0).any()  # this seed draws one: the case is tested
    np.testing.assert_array_equal(h, np.minimum(a.astype(np.float16), below))
    # low == high is allowed and constant.
    c = filled(_core.uniform, dev, (9,), _core.DType.float32, 3.0, 3.0)
    np.testing.assert_array_equal(c, np.full(9, 3.0, np.float32))


def test_gaussian_matches_box_muller(dev):
    dev.SetRandSeed(77)
    n = 1003
    g = filled(_core.gaussian, dev, (n,), _core.DType.float32, 0.5, 2.0)
    r, lane = draws(77, 0, n)
    idx = np.arange(n)
    u1 = (r[lane & ~1, idx] >> np.uint64(8)).astype(np.float64) + 1.0
    u1 *= 2.0**-24
    u2 = unit(r[lane | 1, idx])
    rad = np.sqrt(-2.0 * np.log(u1))
    z = np.where(lane % 2 == 0, rad * np.cos(2 * np.pi * u2), rad * np.sin(2 * np.pi * u2))
    np.testing.assert_allclose(g, 0.5 + 2.0 * z, rtol=1e-5, atol=2e-5)


def test_bernoulli_matches_threshold(dev):
    dev.SetRandSeed(3)
    for p in (0.0, 0.3, 1.0, 1e-9):
        off = dev.rng_state[1]
        b = filled(_core.bernoulli, dev, (4, 129), _core.DType.int32, p)
        r, lane = draws(3, off, b.size)
        thr = min(int(np.floor(p * 2.0**32 + 0.5)), 2**32)
        expected = (r[lane, np.arange(b.size)] < thr).astype(np.int32)
        np.testing.assert_array_equal(b.ravel(), expected)
    assert filled(_core.bernoulli, dev, (100,), _core.DType.float32, 1.0).min() == 1.0
    assert filled(_core.bernoulli, dev, (100,), _core.DType.float16, 0.0).max() == 0.0


def test_same_seed_same_numbers_different_offsets_differ(dev):
    for fn, args, dt in [
        (_core.uniform, (0.0, 1.0), _core.DType.float32),
        (_core.gaussian, (0.0, 1.0), _core.DType.float16),
        (_core.bernoulli, (0.5,), _core.DType.int32),
    ]:
        dev.SetRandSeed(42)
        a = filled(fn, dev, (3, 5), dt, *args)
        b = filled(fn, dev, (3, 5), dt, *args)
        dev.SetRandSeed(42)
        c = filled(fn, dev, (3, 5), dt, *args)
        np.testing.assert_array_equal(a, c)
        assert not np.array_equal(a, b)
        dev.SetRandSeed(43)
        assert not np.array_equal(a, filled(fn, dev, (3, 5), dt, *args))


def test_empty_and_size_one(dev):
    dev.SetRandSeed(1)
    assert filled(_core.gaussian, dev, (0, 4)).shape == (0, 4)
    assert dev.rng_state == (1, 0)
    one = filled(_core.uniform, dev, (1, 1), _core.DType.float32, 0.0, 1.0)
    assert one.shape == (1, 1) and dev.rng_state == (1, 4)


def test_moments(dev):
    n = 10**6
    dev.SetRandSeed(2024)
    g = filled(_core.gaussian, dev, (n,), _core.DType.float32, 1.5, 2.0).astype(np.float64)
    assert abs(g.mean() - 1.5) < 5 * 2.0 / np.sqrt(n)
    assert abs(g.std() - 2.0) < 5 * 2.0 / np.sqrt(2 * n)
    z = (g - 1.5) / 2.0
    assert abs(np.mean(z**3)) < 5 * np.sqrt(15 / n)  # skewness, SE sqrt(15/n) for z^3
    assert abs(np.mean(z**4) - 3) < 5 * np.sqrt(96 / n)  # kurtosis, var(z^4) = 96
    u = filled(_core.uniform, dev, (n,), _core.DType.float32, -1.0, 3.0).astype(np.float64)
    assert abs(u.mean() - 1.0) < 5 * 4.0 / np.sqrt(12 * n)
    assert abs(u.var() - 16 / 12) < 5 * 16 * np.sqrt(1 / 180 / n)  # var((U-m)^2) = 16^2/180
    counts = np.histogram(u, bins=16, range=(-1, 3))[0]
    se = np.sqrt(n / 16 * (1 - 1 / 16))
    assert np.all(np.abs(counts - n / 16) < 5 * se)
    for p in (0.3, 0.01):
        b = filled(_core.bernoulli, dev, (n,), _core.DType.float32, p)
        assert abs(b.mean() - p) < 5 * np.sqrt(p * (1 - p) / n)


def stream_digest():
    """sha256 of a few large fills (above the OpenMP threshold) on a fresh seeded device."""
    d = _core.create_cpu_device()
    d.SetRandSeed(99)
    h = hashlib.sha256()
    for fn, args, dt in [
        (_core.uniform, (-1.0, 2.0), _core.DType.float32),
        (_core.gaussian, (0.0, 3.0), _core.DType.float32),
        (_core.gaussian, (1.0, 1.0), _core.DType.float16),
        (_core.bernoulli, (0.25,), _core.DType.int32),
    ]:
        t = _core.Tensor([200003], d, dt)
        fn(t, *args)
        h.update(t.to_numpy().tobytes())
    return h.hexdigest()


def test_independent_of_thread_count():
    tests = os.path.dirname(os.path.abspath(__file__))
    path = pythonpath(tests)
    digests = []
    for threads in ("1", "2", "3"):
        env = dict(os.environ, OMP_NUM_THREADS=threads, PYTHONPATH=path)
        out = subprocess.run(
            [sys.executable, "-c", "from test_random import stream_digest; print(stream_digest())"],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        digests.append(out.stdout.strip())
    assert len(digests[0]) == 64 and digests[0] == digests[1] == digests[2]
    assert stream_digest() == digests[0]  # and the same as in this process


def test_graph_replay_draws_fresh_numbers(dev):
    t = _core.Tensor([6, 5], dev)
    dev.SetRandSeed(11)
    _core.gaussian(t, 0.0, 1.0)
    first = t.to_numpy()
    second = filled(_core.gaussian, dev, (6, 5))
    dev.SetRandSeed(11)
    dev.EnableGraph(True)
    _core.gaussian(t, 0.0, 1.0)
    dev.EnableGraph(False)
    assert dev.rng_state == (11, 0)  # nothing drawn while recording
    dev.RunGraph()
    np.testing.assert_array_equal(t.to_numpy(), first)
    dev.RunGraph()
    np.testing.assert_array_equal(t.to_numpy(), second)
    assert dev.rng_state == (11, 64)
    dev.ResetGraph()


def test_bad_parameters(dev):
    t = _core.Tensor([4], dev)
    with pytest.raises(ValueError, match="gaussian: std must be >= 0"):
        _core.gaussian(t, 0.0, -1.0)
    with pytest.raises(ValueError, match="gaussian"):
        _core.gaussian(t, float("nan"), 1.0)
    with pytest.raises(ValueError, match="gaussian"):
        _core.gaussian(t, 0.0, float("inf"))
    with pytest.raises(ValueError, match=r"bernoulli: p must be in \[0, 1\]"):
        _core.bernoulli(t, 1.5)
    with pytest.raises(ValueError, match="bernoulli"):
        _core.bernoulli(t, -0.1)
    with pytest.raises(ValueError, match="bernoulli"):
        _core.bernoulli(t, float("nan"))
    with pytest.raises(ValueError, match="uniform: low .* must not exceed high"):
        _core.uniform(t, 2.0, 1.0)
    with pytest.raises(ValueError, match="uniform"):
        _core.uniform(t, -1e39, 1e39)
    ti = _core.Tensor([4], dev, _core.DType.int32)
    with pytest.raises(TypeError, match="uniform: input has dtype int32"):
        _core.uniform(ti, 0.0, 1.0)
    with pytest.raises(TypeError, match="gaussian: input has dtype int32"):
        _core.gaussian(ti, 0.0, 1.0)
    assert dev.rng_state == (0, 0)  # failed calls draw nothing
