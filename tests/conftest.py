import contextlib

import numpy as np
import pytest

from minisinga import _core, autograd, device

DTYPES = {
    np.dtype("float32"): _core.DType.float32,
    np.dtype("float16"): _core.DType.float16,
    np.dtype("int32"): _core.DType.int32,
}


@pytest.fixture(autouse=True)
def _not_training():
    """Every test starts with autograd's training switch off (Model.compile and train() set
    it for the thread, and a test must not depend on which test ran before it)."""
    autograd.set_training(False)
    yield


def core_tensor(a, device=None):
    """A _core.Tensor holding a copy of numpy array `a` (float32, float16 or int32)."""
    a = np.asarray(a, order="C")  # keeps 0-d arrays 0-d
    t = _core.Tensor(list(a.shape), device or _core.default_device(), DTYPES[a.dtype])
    t.copy_from_numpy(a)
    return t


def recorded_nodes(dev, fn):
    """The names of the graph nodes that fn() records on device `dev` (a fresh graph: another
    test's model may have left its graph there; tensors fn needs are best made before)."""
    dev.ResetGraph()
    dev.EnableGraph(True)
    try:
        fn()
        return dev.graph_node_names()
    finally:
        dev.EnableGraph(False)
        dev.ResetGraph()


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture(params=[
    "cpu",
    pytest.param("cuda", marks=pytest.mark.skipif(not device.cuda_available(),
                                                  reason="needs a CUDA build and a GPU")),
])
def dev(request):
    """Each device a test should run on: the CPU, and GPU 0 where there is one."""
    if request.param == "cpu":
        return device.get_default_device()
    return device.create_cuda_gpu_on(0)


@pytest.fixture
def autotune():
    """Convolution autotuning on, with nothing tuned yet; off again afterwards."""
    _core.clear_conv_autotune()
    old = device.set_conv_autotune(True)
    yield
    device.set_conv_autotune(old)
    _core.clear_conv_autotune()


@contextlib.contextmanager
def graph_shuffle(seed):
    """Graph replays in dependency order with ready nodes taken at random (seeded; 0 = in
    recorded order) for the duration of the block."""
    old = _core._set_graph_shuffle(seed)
    try:
        yield
    finally:
        _core._set_graph_shuffle(old)
