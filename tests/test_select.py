"""Select family (the sparse all-reduce's top-k and threshold selection) against a numpy
reference with the same rules: ties at the k-th magnitude are taken in index order, fewer
than k nonzero entries send just those, NaN is never sent."""

import numpy as np
import pytest
from conftest import core_tensor

from minisinga import _core


def reference(v, spars, topk):
    mag = np.where(np.isnan(v), 0, np.abs(v)).reshape(-1)
    if not topk:
        return np.flatnonzero(mag >= spars)
    k = min(mag.size, max(1, int(np.ceil(spars * mag.size))))
    if np.count_nonzero(mag) <= k:
        return np.flatnonzero(mag)
    order = np.lexsort((np.arange(mag.size), -mag))  # by magnitude, then index
    return np.sort(order[:k])


def vectors(rng):
    yield rng.standard_normal(1000).astype(np.float32)
    # many ties, straddling the k-th magnitude, in several tiles of the CUDA kernel
    yield rng.integers(-4, 5, 20000).astype(np.float32)
    v = rng.standard_normal(9000).astype(np.float32)
    v[rng.random(9000) < 0.7] = 0.0  # mostly zeros
    v[[3, 77]] = np.nan
    yield v
    yield np.zeros(50, np.float32)
    yield rng.standard_normal((7, 13)).astype(np.float32)  # read flat


@pytest.mark.parametrize("spars", [0.001, 0.01, 0.3, 1.0])
def test_topk(dev, rng, spars):
    for v in vectors(rng):
        got = _core.select_sparse(core_tensor(v, dev), spars, True).to_numpy()
        assert got.dtype == np.int32
        np.testing.assert_array_equal(got, reference(v, spars, True))


@pytest.mark.parametrize("threshold", [0.0, 0.5, 2.0, 100.0])
def test_threshold(dev, rng, threshold):
    for v in vectors(rng):
        got = _core.select_sparse(core_tensor(v, dev), threshold, False).to_numpy()
        np.testing.assert_array_equal(got, reference(v, threshold, False))


def test_empty_and_bad_arguments(dev):
    assert _core.select_sparse(core_tensor(np.zeros(0, np.float32), dev), 0.5, True).shape == (0,)
    v = core_tensor(np.ones(4, np.float32), dev)
    with pytest.raises(ValueError, match=r"top-k fraction must be in \(0, 1\], got 0"):
        _core.select_sparse(v, 0.0, True)
    with pytest.raises(ValueError, match="threshold must be finite and >= 0, got -1"):
        _core.select_sparse(v, -1.0, False)
    with pytest.raises(TypeError, match="select_sparse: v has dtype int32"):
        _core.select_sparse(core_tensor(np.ones(4, np.int32), dev), 0.5, True)
    dev.EnableGraph(True)
    try:
        with pytest.raises(ValueError, match="outside graph recording"):
            _core.select_sparse(v, 0.5, True)
    finally:
        dev.EnableGraph(False)
        dev.ResetGraph()
