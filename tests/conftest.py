import numpy as np
import pytest

from minisinga import _core

DTYPES = {
    np.dtype("float32"): _core.DType.float32,
    np.dtype("float16"): _core.DType.float16,
    np.dtype("int32"): _core.DType.int32,
}


def core_tensor(a, device=None):
    """A _core.Tensor holding a copy of numpy array `a` (float32, float16 or int32)."""
    a = np.asarray(a, order="C")  # keeps 0-d arrays 0-d
    t = _core.Tensor(list(a.shape), device or _core.default_device(), DTYPES[a.dtype])
    t.copy_from_numpy(a)
    return t


@pytest.fixture
def rng():
    return np.random.default_rng(0)
