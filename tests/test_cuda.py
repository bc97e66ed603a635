"""CUDA backend: every op family on the GPU against the same op on the CPU (float32 and, where
the family supports it, float16), eager == graph on the GPU, CUDA-graph capture of replays,
mixed float16 training. Skipped as a whole without a CUDA build and a GPU."""

import os
import sys

import numpy as np
import pytest
from conftest import core_tensor
from test_graph import CNN

from minisinga import _core, device, layer, model, opt, tensor
from minisinga import autograd as ag

pytestmark = pytest.mark.skipif(
    not device.cuda_available(), reason="needs a CUDA build of minisinga and a visible GPU"
)

F32, F16, I32 = np.float32, np.float16, np.int32
U = _core.UnaryOp
B = _core.BinaryOp


@pytest.fixture(scope="module")
def gpu():
    return device.create_cuda_gpu_on(0)


@pytest.fixture(autouse=True)
def _sticky_error_ends_worker(gpu):
    """A kernel fault leaves the CUDA context unusable, so every later test in this process
    would fail too. Under pytest-xdist the worker exits instead and a fresh one (with a fresh
    context) takes the remaining tests; the test that faulted is reported as crashed."""
    yield
    try:
        gpu.Sync()
    except RuntimeError as e:
        if os.environ.get("PYTEST_XDIST_WORKER"):
            print(f"CUDA context lost: {e}", file=sys.stderr, flush=True)
            os._exit(3)
        raise


@pytest.fixture(scope="module")
def cpu():
    return device.create_cpu_device()


def host(t):
    return t.to_numpy()


def both(gpu, cpu, fn, *arrays):
    """Runs fn on copies of `arrays` on each device; returns (gpu outputs, cpu outputs) as
    lists of numpy arrays."""
    outs = []
    for dev in (gpu, cpu):
        r = fn(*[core_tensor(a, dev) for a in arrays])
        r = r if isinstance(r, (tuple, list)) else [r]
        outs.append([host(t) for t in r])
    return outs


def tol(dtype):
    if np.dtype(dtype) == np.float16:
        return {"rtol": 2e-3, "atol": 2e-3}
    if np.dtype(dtype) == np.int32:
        return {"rtol": 0, "atol": 0}
    return {"rtol": 2e-5, "atol": 1e-6}


def check(gpu, cpu, fn, *arrays, norm_atol=0.0, **kw):
    """GPU outputs == CPU outputs within `kw` (default: by dtype). `norm_atol` adds
    norm_atol * max|cpu output| to atol: long float32 sums (conv weight gradients over big
    images) cancel to small entries whose rounding error follows the summands, not them."""
    g, c = both(gpu, cpu, fn, *arrays)
    assert len(g) == len(c)
    for i, (a, b) in enumerate(zip(g, c)):
        assert a.dtype == b.dtype and a.shape == b.shape, (i, a.dtype, b.dtype, a.shape, b.shape)
        k = dict(kw or tol(a.dtype))
        if norm_atol and b.size:
            k["atol"] = k.get("atol", 0.0) + norm_atol * float(np.abs(b.astype(np.float64)).max())
        np.testing.assert_allclose(
            a.astype(np.float64), b.astype(np.float64), equal_nan=True, err_msg=f"output {i}", **k
        )


def rand(rng, shape, dtype=F32, low=-2.0, high=2.0):
    if np.dtype(dtype) == np.int32:
        return rng.integers(int(low), int(high) + 1, shape).astype(I32)
    return rng.uniform(low, high, shape).astype(dtype)


# ---- devices ----


def test_device_basics(gpu):
    assert gpu.is_cuda and gpu.name == "cuda:0"
    assert device.create_cuda_gpu_on(0) is gpu  # one device per GPU, created once
    n = device.get_num_gpus()
    with pytest.raises(RuntimeError, match=str(n)):
        device.create_cuda_gpu_on(n)
    assert not gpu.allow_tf32 and gpu.cuda_graph_enabled


@pytest.mark.parametrize("dtype", [F32, F16, I32])
def test_copies_round_trip(gpu, cpu, rng, dtype):
    a = rand(rng, (3, 1000), dtype)
    t = core_tensor(a, gpu)
    np.testing.assert_array_equal(host(t), a)
    np.testing.assert_array_equal(host(_core.clone(t)), a)
    back = _core.to_device(t, cpu)
    np.testing.assert_array_equal(host(back), a)
    np.testing.assert_array_equal(host(_core.to_device(back, gpu)), a)
    view = t.slice_rows(1, 3)
    np.testing.assert_array_equal(host(_core.clone(view)), a[1:3])


def test_memory_stats_and_empty_cache(gpu):
    before = gpu.memory_stats()["current"]
    t = _core.Tensor([1 << 20], gpu)
    _core.fill(t, 1.0)
    assert gpu.memory_stats()["current"] >= before + (4 << 20)
    del t
    assert gpu.memory_stats()["current"] == before
    gpu.empty_cache()


# ---- elementwise ----

POSITIVE = {"Log", "Sqrt", "PowScalar", "Reciprocal", "RDivScalar"}
PARAMS = {
    "PowScalar": (1.7, 0),
    "RPowScalar": (1.3, 0),
    "Clip": (-0.5, 0.7),
    "LeakyRelu": (0.1, 0),
    "Elu": (1.0, 0),
    "Selu": (1.67, 1.05),
    "HardSigmoid": (0.2, 0.5),
    "AddScalar": (1.5, 0),
    "MulScalar": (-2.5, 0),
    "RSubScalar": (3.0, 0),
    "RDivScalar": (2.0, 0),
    "MaxScalar": (0.3, 0),
    "MinScalar": (0.3, 0),
    "LtScalar": (0.0, 0),
    "LeScalar": (0.5, 0),
    "GtScalar": (0.0, 0),
    "GeScalar": (0.5, 0),
    "EqScalar": (1.0, 0),
    "NeScalar": (1.0, 0),
}
INT_EXACT = [
    "Neg",
    "Abs",
    "Sign",
    "Square",
    "Relu",
    "AddScalar",
    "MulScalar",
    "RSubScalar",
    "MaxScalar",
    "MinScalar",
    "Clip",
    "LtScalar",
    "GeScalar",
    "EqScalar",
]


@pytest.mark.parametrize("name", list(U.__members__))
@pytest.mark.parametrize("dtype", [F32, F16])
def test_unary(gpu, cpu, rng, name, dtype):
    low = 0.1 if name in POSITIVE else -2.0
    a = rand(rng, (7, 1031), dtype, low, 2.0)
    a[0, :4] = [0.5, 1.0, -0.0, 2.0] if low < 0 else [0.5, 1.0, 1.5, 2.0]
    pa, pb = PARAMS.get(name, (0.0, 0.0))
    check(gpu, cpu, lambda x: _core.unary(getattr(U, name), x, pa, pb), a)


@pytest.mark.parametrize("name", INT_EXACT)
def test_unary_int32(gpu, cpu, rng, name):
    a = rand(rng, (5, 333), I32, -5, 5)
    pa, pb = PARAMS.get(name, (0.0, 0.0))
    check(gpu, cpu, lambda x: _core.unary(getattr(U, name), x, pa, pb), a)


SHAPES = [
    ((4, 5), (4, 5)),
    ((4, 1, 5), (3, 1)),
    ((2, 3, 4, 5), (5,)),
    ((1,), (3, 4)),
    ((6, 1, 1, 7), (1, 5, 2, 1)),
    ((3, 70000), (3, 1)),
    ((9,), (1,)),  # 1-D plans with a broadcast (stride 0) operand: the kernel's 1-D path
    ((1,), (9,)),
]


@pytest.mark.parametrize("name", list(B.__members__))
@pytest.mark.parametrize("dtype", [F32, F16])
@pytest.mark.parametrize("shapes", SHAPES, ids=str)
def test_binary_broadcast(gpu, cpu, rng, name, dtype, shapes):
    positive = name in ("Div", "Pow")
    a = rand(rng, shapes[0], dtype, 0.2 if positive else -2.0, 2.0)
    b = rand(rng, shapes[1], dtype, 0.2 if positive else -2.0, 2.0)
    check(gpu, cpu, lambda x, y: _core.binary(getattr(B, name), x, y), a, b)


@pytest.mark.parametrize("name", ["Add", "Sub", "Mul", "Maximum", "Minimum", "Lt", "Eq"])
def test_binary_int32(gpu, cpu, rng, name):
    a, b = rand(rng, (4, 1, 50), I32, -9, 9), rand(rng, (3, 50), I32, -9, 9)
    check(gpu, cpu, lambda x, y: _core.binary(getattr(B, name), x, y), a, b)


@pytest.mark.parametrize("cdtype", [I32, F32, F16])
@pytest.mark.parametrize("dtype", [F32, F16, I32])
def test_where(gpu, cpu, rng, cdtype, dtype):
    c = (rng.uniform(size=(4, 1, 6)) > 0.5).astype(cdtype)
    a, b = rand(rng, (3, 6), dtype), rand(rng, (4, 3, 1), dtype)
    check(gpu, cpu, lambda c_, x, y: _core.where(c_, x, y), c, a, b)


@pytest.mark.parametrize("cdtype", [I32, F32, F16])
def test_where_any_nonzero_condition(gpu, cpu, rng, cdtype):
    """Every nonzero condition selects x: negative values, -inf and NaN too (-0.0 is zero)."""
    vals = [-3, -1, 0, 1, 2] if cdtype == I32 else [-2.5, -0.5, -0.0, 0.0, 0.5, np.nan, -np.inf]
    c = np.resize(np.array(vals, cdtype), (6, 7))
    check(gpu, cpu, lambda c_, x, y: _core.where(c_, x, y), c, rand(rng, (6, 7)), rand(rng, (7,)))


@pytest.mark.parametrize("dtype", [F32, F16, I32])
def test_fill(gpu, cpu, dtype):
    def fn(x):
        _core.fill(x, 2.7)
        return x

    check(gpu, cpu, fn, np.zeros((5, 777), dtype))


# ---- reduce ----

REDUCE_CASES = [
    ((3, 100000), [1]),
    ((100000, 3), [0]),
    ((4, 70, 5), [1]),
    ((1000, 64), [1]),
    ((2, 3, 4, 5), [0, 2]),
    ((2, 3, 4, 5), None),
    ((5, 7), [0, 1]),
    ((9, 0, 3), [2]),
]


# (fn, dtype, case) without the combinations the ops reject (int mean, max of nothing).
REDUCE_PARAMS = [
    (fn, dt, case)
    for fn in ("reduce_sum", "reduce_mean", "reduce_max", "reduce_min")
    for dt in (F32, F16, I32)
    for case in REDUCE_CASES
    if not (fn == "reduce_mean" and dt == I32)
    and not (fn in ("reduce_max", "reduce_min") and 0 in case[0])
]


@pytest.mark.parametrize("fn,dtype,case", REDUCE_PARAMS, ids=str)
def test_reduce(gpu, cpu, rng, fn, dtype, case):
    shape, axes = case
    a = rand(rng, shape, dtype, -9, 9)
    k = {"rtol": 1e-2, "atol": 1e-2} if dtype == F16 else {}
    for keep in (False, True):
        check(gpu, cpu, lambda x, keep=keep: getattr(_core, fn)(x, axes, keep), a, **k)


@pytest.mark.parametrize("dtype", [F32, F16])
@pytest.mark.parametrize(
    "shape,axes", [((3, 5000), [1]), ((300, 7), [0]), ((4, 90, 3), [1]), ((5, 7), None)], ids=str
)
def test_reduce_nan_and_infinities(gpu, cpu, rng, dtype, shape, axes):
    """A NaN makes max / min / sum NaN, +-inf win max / min (rows, columns, split paths)."""
    a = rand(rng, shape, dtype, -9, 9)
    flat = a.reshape(-1)
    pos = rng.permutation(flat.size)
    flat[pos[:2]] = np.nan
    flat[pos[2:4]] = np.inf
    flat[pos[4:6]] = -np.inf
    k = {"rtol": 1e-2, "atol": 1e-2} if dtype == F16 else {}
    for fn in ("reduce_max", "reduce_min", "reduce_sum", "reduce_mean"):
        check(gpu, cpu, lambda x, f=fn: getattr(_core, f)(x, axes, False), a, **k)


def test_more_rows_and_planes_than_a_grid_dimension(gpu, cpu, rng):
    """Grids are capped at 65535 blocks along y and z (and along x for the rows reduction):
    the kernels loop over the rest (65537 rows, 65537 transposed planes)."""
    check(gpu, cpu, lambda x: _core.reduce_sum(x, [1], False), rand(rng, (65537, 64)),
          rtol=1e-4, atol=1e-4)
    check(gpu, cpu, lambda x: _core.transpose(x, [0, 2, 1]), rand(rng, (65537, 4, 5)))


@pytest.mark.parametrize("dtype", [F32, F16, I32])
def test_argmax_argmin_ties_and_nan(gpu, cpu, rng, dtype):
    a = rand(rng, (6, 300, 4), dtype, -3, 3)  # many ties: the first index must win
    if dtype != I32:
        a[1, 17, 2] = np.nan
        a[1, 200, 2] = np.nan
    for axis in (0, 1, 2):
        check(gpu, cpu, lambda x, ax=axis: [_core.argmax(x, ax), _core.argmin(x, ax)], a)
    b = rand(rng, (3, 5000), dtype, -3, 3)
    check(gpu, cpu, lambda x: [_core.argmax(x, 1), _core.argmin(x, 1)], b)


def test_reductions_are_deterministic(gpu, rng):
    t = core_tensor(rand(rng, (7, 300001)), gpu)
    r1, r2 = host(_core.reduce_sum(t, [1])), host(_core.reduce_sum(t, [1]))
    np.testing.assert_array_equal(r1, r2)


# ---- softmax ----


@pytest.mark.parametrize("dtype", [F32, F16])
@pytest.mark.parametrize(
    "shape,axis", [((64, 10), -1), ((8, 3000), 1), ((4, 7, 9), 1), ((3, 2, 5), 0)], ids=str
)
def test_softmax_family(gpu, cpu, rng, dtype, shape, axis):
    a, g = rand(rng, shape, dtype, -4, 4), rand(rng, shape, dtype)
    for fwd, bwd in (
        (_core.softmax, _core.softmax_backward),
        (_core.log_softmax, _core.log_softmax_backward),
    ):
        check(gpu, cpu, lambda x, dy, f=fwd, b=bwd: [f(x, axis), b(f(x, axis), dy, axis)], a, g)


@pytest.mark.parametrize("dtype", [F32, F16])
@pytest.mark.parametrize("shape,axis", [((6, 10), -1), ((3, 2000), 1), ((3, 7, 4), 1)], ids=str)
def test_softmax_family_very_negative_logits(gpu, cpu, rng, dtype, shape, axis):
    """Logits near -200: exp(x) underflows unless the row max is subtracted (warp rows, block
    rows, columns; softmax_cross_entropy on rows)."""
    a = (rng.uniform(-4, 4, shape) - 200).astype(dtype)
    for f in (_core.softmax, _core.log_softmax):
        check(gpu, cpu, lambda x, f=f: f(x, axis), a)
    if axis == -1:
        labels = rng.integers(0, shape[1], shape[0]).astype(I32)
        check(gpu, cpu, lambda x, t: list(_core.softmax_cross_entropy(x, t)), a, labels)


@pytest.mark.parametrize("dtype", [F32, F16])
def test_cross_entropy_zero_probabilities(gpu, cpu, rng, dtype):
    """Zero probabilities are clamped (finite loss), for labels and soft targets."""
    p = rng.dirichlet(np.ones(6), 5).astype(dtype)
    p[:, ::2] = 0
    labels = np.array([0, 2, 4, 1, 0], I32)  # mostly at zero probabilities
    soft = rng.dirichlet(np.ones(6), 5).astype(dtype)
    dloss = rand(rng, (5,), dtype, 0.1, 1.0)
    for target in (labels, soft):
        check(
            gpu,
            cpu,
            lambda p_, t, d: [_core.cross_entropy(p_, t), _core.cross_entropy_backward(p_, t, d)],
            p,
            target,
            dloss,
        )


def test_out_of_range_labels_in_graph_mode(gpu, cpu, rng):
    """Labels refilled after recording: the backward kernels (which trust their forward's
    check) give the bad rows zero gradient on both devices; on the GPU the forward's recorded
    check makes the next read raise, once, and the bad rows' losses are NaN."""
    x = rand(rng, (3, 4))
    p = rng.uniform(0.1, 1, (3, 4)).astype(F32)
    outs = []
    for dev in (gpu, cpu):
        pt, lab = core_tensor(p, dev), core_tensor(np.array([1, 2, 3], I32), dev)
        dl = core_tensor(np.ones(3, F32), dev)
        dev.ResetGraph()
        dev.EnableGraph(True)
        try:
            lab.copy_from_numpy(np.array([1, 7, -2], I32))
            dx = _core.softmax_cross_entropy_backward(pt, lab, dl)
            dce = _core.cross_entropy_backward(pt, lab, dl)
        finally:
            dev.EnableGraph(False)
        try:
            dev.RunGraph(True)
            outs.append([host(t) for t in (dx, dce)])
        finally:
            dev.ResetGraph()
    for i, (a, b) in enumerate(zip(*outs)):
        assert (b[1:] == 0).all() and np.isfinite(b[0]).all() and (b[0] != 0).any(), i
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6, err_msg=str(i))
    xt, lab = core_tensor(x, gpu), core_tensor(np.array([1, 2, 3], I32), gpu)
    gpu.ResetGraph()
    gpu.EnableGraph(True)
    try:
        lab.copy_from_numpy(np.array([1, 7, -2], I32))
        loss, prob = _core.softmax_cross_entropy(xt, lab)
        ce = _core.cross_entropy(prob, lab)
    finally:
        gpu.EnableGraph(False)
    try:
        gpu.RunGraph(True)
        with pytest.raises(ValueError, match=r"softmax_cross_entropy: a label .* out of range "
                                             r"\[0, 4\) \(in the last graph replay on cuda"):
            host(loss)
        for t in (loss, ce):
            v = host(t)
            assert np.isnan(v[1:]).all() and np.isfinite(v[0])
    finally:
        gpu.ResetGraph()


@pytest.mark.parametrize("dtype", [F32, F16])
@pytest.mark.parametrize("c", [10, 1500])
def test_cross_entropies(gpu, cpu, rng, dtype, c):
    n = 33
    logits, dloss = rand(rng, (n, c), dtype, -5, 5), rand(rng, (n,), dtype, 0.1, 1.0)
    labels = rng.integers(0, c, n).astype(I32)
    soft = rng.dirichlet(np.ones(c), n).astype(dtype)
    for target in (labels, soft):

        def fn(x, t, d):
            loss, prob = _core.softmax_cross_entropy(x, t)
            return [
                loss,
                prob,
                _core.softmax_cross_entropy_backward(prob, t, d),
                _core.cross_entropy(prob, t),
                _core.cross_entropy_backward(prob, t, d),
            ]

        check(gpu, cpu, fn, logits, target, dloss)


# ---- blas ----


@pytest.mark.parametrize("ta", [False, True])
@pytest.mark.parametrize("tb", [False, True])
def test_matmul(gpu, cpu, rng, ta, tb):
    a = rand(rng, (130, 70) if not ta else (70, 130))
    b = rand(rng, (70, 50) if not tb else (50, 70))
    k = {"rtol": 1e-4, "atol": 1e-4}
    check(gpu, cpu, lambda x, y: _core.matmul(x, y, ta, tb, 0.5), a, b, **k)


def test_matmul_batched_and_accumulate(gpu, cpu, rng):
    k = {"rtol": 1e-4, "atol": 1e-4}
    a, b = rand(rng, (3, 1, 20, 30)), rand(rng, (4, 30, 10))
    check(gpu, cpu, lambda x, y: _core.matmul(x, y), a, b, **k)
    c = rand(rng, (20, 10))

    def acc(x, y, out):
        _core.matmul(x, y, alpha=2.0, beta=0.5, out=out)
        return out

    check(gpu, cpu, acc, rand(rng, (20, 30)), rand(rng, (30, 10)), c, **k)
    check(
        gpu, cpu, lambda x, y: _core.matmul(x, y), np.zeros((5, 0), F32), np.zeros((0, 4), F32)
    )  # K == 0 gives zeros


@pytest.mark.parametrize("ta,tb", [(False, False), (True, False), (False, True), (True, True)])
@pytest.mark.parametrize("dtype", [F32, F16])
def test_matmul_split_k(gpu, cpu, rng, ta, tb, dtype):
    """A GEMM with few output tiles and a long K (a conv weight gradient's shape) is cut along
    K into slices, summed in a second kernel. K = 5203 = 11 * 11 * 43 has no divisor near
    K // 512 = 10 (slices are at least 512 long): nine slices of 521, a last one of 514."""
    M, N, K = 40, 24, 5203
    assert _core._gemm_split_k(gpu, M, N, K) == 10
    assert _core._gemm_split_k(gpu, M, N, 5201) == 7  # 7 divides 5201: no shorter last slice
    assert _core._gemm_split_k(gpu, 2048, 2048, K) == 1  # enough tiles already
    assert _core._gemm_split_k(gpu, M, N, 1023) == 1  # too short to split
    a = rand(rng, (K, M) if ta else (M, K), dtype, -1, 1)
    b = rand(rng, (N, K) if tb else (K, N), dtype, -1, 1)
    c = rand(rng, (M, N), dtype)

    def acc(x, y, out):  # out = 0.5 x y + 0.25 out: alpha in the slices, beta in the sum
        _core.matmul(x, y, ta, tb, alpha=0.5, beta=0.25, out=out)
        return out

    # the CPU's float16 GEMM rounds once too: within a float16 ulp or two of |C| ~ 30
    k = {"rtol": 1e-4, "atol": 2e-3} if dtype == F32 else {"rtol": 2e-3, "atol": 0.04}
    check(gpu, cpu, acc, a, b, c, **k)
    expect = 0.5 * (a.T if ta else a).astype(np.float64) @ (b.T if tb else b).astype(np.float64)
    expect += 0.25 * c.astype(np.float64)
    out = core_tensor(c, gpu)
    acc(core_tensor(a, gpu), core_tensor(b, gpu), out)
    np.testing.assert_allclose(host(out).astype(np.float64), expect, **k)


def test_matmul_split_k_names_a_cpu_device(cpu):
    with pytest.raises(TypeError, match="is not a CUDA device"):
        _core._gemm_split_k(cpu, 40, 24, 5203)


def test_matmul_both_batched_and_empty_k_with_beta(gpu, cpu, rng):
    k = {"rtol": 1e-4, "atol": 1e-4}
    # every operand batched: strided-batched GEMMs with both batch strides nonzero
    check(
        gpu,
        cpu,
        lambda x, y: _core.matmul(x, y),
        rand(rng, (3, 20, 30)),
        rand(rng, (3, 30, 10)),
        **k,
    )
    check(
        gpu,
        cpu,
        lambda x, y: _core.matmul(x, y, True, True),
        rand(rng, (2, 3, 30, 20)),
        rand(rng, (2, 3, 10, 30)),
        **k,
    )

    def acc(x, y, out):
        _core.matmul(x, y, beta=0.5, out=out)
        return out

    # K == 0 with beta: out = beta * out, one matrix and a batch of them
    check(gpu, cpu, acc, np.zeros((5, 0), F32), np.zeros((0, 4), F32), rand(rng, (5, 4)))
    check(gpu, cpu, acc, np.zeros((3, 5, 0), F32), np.zeros((3, 0, 4), F32), rand(rng, (3, 5, 4)))


def test_tf32_switch(gpu, rng):
    a, b = rand(rng, (256, 256)), rand(rng, (256, 256))
    ref = a.astype(np.float64) @ b
    gpu.set_allow_tf32(True)
    try:
        assert gpu.allow_tf32
        got = host(_core.matmul(core_tensor(a, gpu), core_tensor(b, gpu)))
        np.testing.assert_allclose(got, ref, rtol=2e-2, atol=2e-2)
    finally:
        gpu.set_allow_tf32(False)
    got = host(_core.matmul(core_tensor(a, gpu), core_tensor(b, gpu)))
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4)
    with pytest.raises(TypeError, match="not a CUDA device"):
        device.get_default_device().set_allow_tf32(True)


# ---- transform ----


@pytest.mark.parametrize("dtype", [F32, F16, I32])
def test_transform_ops(gpu, cpu, rng, dtype):
    a = rand(rng, (4, 5, 6, 7), dtype)
    check(gpu, cpu, lambda x: _core.transpose(x, [0, 3, 1, 2]), a)
    check(gpu, cpu, lambda x: _core.transpose(x, [3, 2, 1, 0]), a)
    check(gpu, cpu, lambda x: _core.transpose(x), rand(rng, (300, 257), dtype))
    check(gpu, cpu, lambda x: _core.slice(x, [1, 0], [4, 7], [0, 3], [2, 3]), a)
    check(gpu, cpu, lambda x, y: _core.concat([x, y], 1), a, rand(rng, (4, 2, 6, 7), dtype))
    check(gpu, cpu, lambda x: list(_core.split(x, [2, 1, 3], 2)), a)
    check(gpu, cpu, lambda x: _core.pad(x, [(0, 0), (1, 2), (0, 1), (3, 0)], 1.5), a)
    check(gpu, cpu, lambda x: _core.broadcast_to(x, [3, 4, 5, 6, 7]), a)
    check(gpu, cpu, lambda x: _core.broadcast_to(x, [4, 5, 6, 7]), rand(rng, (5, 1, 7), dtype))


@pytest.mark.parametrize("dtype", [F32, F16, I32])
def test_take_and_backward(gpu, cpu, rng, dtype):
    x = rand(rng, (3, 50, 4), dtype)
    idx = rng.integers(-50, 50, 400).astype(I32)  # many duplicates, negative indices
    check(gpu, cpu, lambda t, i: _core.take(t, i, 1), x, idx)
    dy = rand(rng, (3, 400, 4), dtype)
    # Summed in increasing index order on both devices: identical results.
    check(
        gpu,
        cpu,
        lambda d, i: _core.take_backward(d, i, 1, [3, 50, 4]),
        dy,
        idx,
        **tol(I32 if dtype != F16 else F16),
    )
    bad = np.array([0, 50], I32)
    with pytest.raises(ValueError, match="out of range"):
        _core.take(core_tensor(x, gpu), core_tensor(bad, gpu), 1)
    with pytest.raises(ValueError, match="out of range"):  # -51 + 50 is still negative
        _core.take(core_tensor(x, gpu), core_tensor(np.array([0, -51], I32), gpu), 1)
    with pytest.raises(ValueError, match="out of range"):
        _core.take_backward(
            core_tensor(rand(rng, (3, 2, 4), dtype), gpu), core_tensor(bad, gpu), 1, [3, 50, 4]
        )


@pytest.mark.parametrize("dtype", [F32, F16, I32])
def test_one_hot(gpu, cpu, rng, dtype):
    labels = rng.integers(0, 7, (5, 3)).astype(I32)
    check(
        gpu,
        cpu,
        lambda t: _core.one_hot(t, 7, _core.DType.__members__[np.dtype(dtype).name]),
        labels,
    )
    with pytest.raises(ValueError, match="outside"):
        _core.one_hot(core_tensor(np.array([7], I32), gpu), 7)


# ---- conv and pool ----

CONVS = [  # x shape, w shape, stride, padding, dilation, groups
    ((2, 3, 9, 9), (4, 3, 3, 3), [1, 1], [1, 1, 1, 1], [1, 1], 1),
    ((3, 4, 11, 10), (6, 4, 3, 3), [2, 2], [1, 0, 2, 1], [1, 1], 1),
    ((2, 4, 12, 12), (4, 2, 3, 3), [1, 1], [2, 2, 2, 2], [2, 2], 2),
    ((2, 8, 7, 7), (16, 8, 1, 1), [1, 1], [0, 0, 0, 0], [1, 1], 1),
    ((2, 6, 9, 8), (12, 1, 3, 3), [2, 1], [1, 1, 1, 1], [1, 1], 6),
    ((40, 16, 6, 6), (8, 16, 3, 3), [1, 1], [0, 0, 0, 0], [1, 1], 1),
    ((1, 2, 300, 300), (3, 2, 5, 5), [1, 1], [2, 2, 2, 2], [1, 1], 1),
    # every size different along H and W (a swapped index fails)
    ((2, 3, 10, 11), (5, 3, 3, 2), [2, 3], [1, 2, 0, 1], [2, 1], 1),
    # >= 1024 output pixels per image: strided-batched GEMMs straight into / out of NCHW
    ((3, 4, 33, 32), (6, 4, 3, 3), [1, 1], [1, 1, 1, 1], [1, 1], 1),
    ((3, 8, 32, 33), (6, 4, 1, 1), [1, 1], [0, 0, 0, 0], [1, 1], 2),
    ((2, 3, 70, 40), (4, 3, 3, 2), [2, 1], [1, 1, 0, 1], [1, 2], 1),
    # depthwise (multiplier 2) with dilation and every size different along H and W
    ((2, 3, 10, 11), (6, 1, 3, 2), [2, 1], [1, 2, 0, 1], [2, 1], 3),
]


@pytest.mark.parametrize("case", CONVS, ids=str)
def test_conv2d(gpu, cpu, rng, case):
    xs, ws, st, pad, dil, grp = case
    x, w, b = rand(rng, xs), rand(rng, ws), rand(rng, (ws[0],))
    k = {"rtol": 1e-4, "atol": 1e-4}

    def fwd(x_, w_, b_):
        return _core.conv2d(x_, w_, b_, st, pad, dil, grp)

    check(gpu, cpu, fwd, x, w, b, **k)
    dy = host(fwd(core_tensor(x, cpu), core_tensor(w, cpu), core_tensor(b, cpu)))
    dy = rand(rng, dy.shape)

    def bwd(dy_, x_, w_):
        return [
            _core.conv2d_backward_data(dy_, w_, list(xs), st, pad, dil, grp),
            _core.conv2d_backward_weight(dy_, x_, list(ws), st, pad, dil, grp),
            _core.conv2d_backward_bias(dy_),
        ]

    check(gpu, cpu, bwd, dy, x, w, norm_atol=2e-6, **k)


@pytest.mark.parametrize("case", CONVS, ids=str)
def test_conv2d_float16(gpu, cpu, rng, case):
    """float16 convolutions: float16 im2col and layout passes, cuBLAS float16 GEMMs on tensor
    cores (float32 sums), float32 col matrices and weight-gradient sums."""
    xs, ws, st, pad, dil, grp = case
    x, w, b = rand(rng, xs, F16), rand(rng, ws, F16), rand(rng, (ws[0],), F16)

    def fwd(x_, w_, b_):
        return _core.conv2d(x_, w_, b_, st, pad, dil, grp)

    # 1 ulp of the largest output more: GEMMs sum in another order, and a bias can be added
    # to a rounded sum on one device and not on the other (see test_half.py).
    check(gpu, cpu, fwd, x, w, b, norm_atol=1e-3, **tol(F16))
    dy = rand(rng, host(fwd(*(core_tensor(a, cpu) for a in (x, w, b)))).shape, F16)

    def bwd(dy_, x_, w_):
        return [
            _core.conv2d_backward_data(dy_, w_, list(xs), st, pad, dil, grp),
            _core.conv2d_backward_weight(dy_, x_, list(ws), st, pad, dil, grp),
        ]

    check(gpu, cpu, bwd, dy, x, w, norm_atol=1e-3, **tol(F16))


WINOGRAD_CONVS = [  # (x, w, padding): >= 16 channels, 3x3, stride 1, pads <= 2
    ((2, 16, 9, 10), (16, 16, 3, 3), [1, 1, 1, 1]),
    ((3, 16, 8, 7), (20, 16, 3, 3), [0, 0, 0, 0]),
    ((2, 17, 6, 6), (16, 17, 3, 3), [2, 0, 1, 2]),
    ((33, 16, 64, 64), (16, 16, 3, 3), [1, 1, 1, 1]),  # 2 chunks of images
    ((65, 16, 2, 16), (16, 16, 3, 3), [1, 1, 1, 1]),  # dw's slices cut rows of tiles
]


@pytest.mark.parametrize("tile", ["winograd", "winograd 4x4"])
@pytest.mark.parametrize("case", WINOGRAD_CONVS, ids=str)
def test_conv2d_winograd(gpu, cpu, rng, case, tile, autotune):
    """float32 3x3 stride-1 convolutions go through Winograd on the GPU (forward, data and
    weight gradients; the CPU's plan uses im2col at these sizes): F(4x4, 3x3) (the default)
    and F(2x2, 3x3), each forced here on both devices, give the same results within float32
    noise."""
    xs, ws, pad = case
    for weight_grad in (False, True):
        assert _core._conv2d_path(gpu, list(xs), list(ws), [1, 1], pad,
                                  weight_grad=weight_grad).startswith("winograd")
    x, w, b = rand(rng, xs), rand(rng, ws), rand(rng, (ws[0],))
    # F(4x4)'s transforms round more than F(2x2)'s (tests/test_conv.py): relative to the scale
    k = {"rtol": 1e-4, "atol": 1e-4} if tile == "winograd" else {"rtol": 1e-4, "norm_atol": 2e-5}
    _core._force_conv_plan(tile)
    try:
        check(gpu, cpu, lambda x_, w_, b_: _core.conv2d(x_, w_, b_, [1, 1], pad), x, w, b, **k)
        oh, ow = xs[2] + pad[0] + pad[1] - 2, xs[3] + pad[2] + pad[3] - 2
        dy = rand(rng, (xs[0], ws[0], oh, ow))
        check(gpu, cpu,
              lambda dy_, w_: _core.conv2d_backward_data(dy_, w_, list(xs), [1, 1], pad), dy, w,
              **k)
        check(gpu, cpu,
              lambda dy_, x_: _core.conv2d_backward_weight(dy_, x_, list(ws), [1, 1], pad), dy, x,
              **dict(k, norm_atol=1e-5 if tile == "winograd" else 2e-5))
        for res in device.conv_autotune_results(gpu):
            assert tile in [n for n, _ in res["candidates"]], res
    finally:
        _core._force_conv_plan("")


def test_conv2d_in_row_bands(gpu, cpu, rng):
    """One image whose col matrix exceeds the 64 MiB scratch bound: bands of output rows."""
    xs, ws, st, pad = (1, 128, 130, 130), (2, 128, 3, 3), [1, 1], [1, 1, 1, 1]
    x, w, b = rand(rng, xs), rand(rng, ws), rand(rng, (2,))
    k = {"rtol": 1e-4, "atol": 1e-4}
    check(gpu, cpu, lambda x_, w_, b_: _core.conv2d(x_, w_, b_, st, pad), x, w, b, **k)
    dy = rand(rng, (1, 2, 130, 130))
    check(gpu, cpu, lambda dy_, w_: _core.conv2d_backward_data(dy_, w_, list(xs), st, pad),
          dy, w, **k)


POOLS = [
    ((2, 3, 9, 9), [3, 3], [2, 2], [1, 1, 1, 1]),
    ((2, 2, 8, 7), [2, 2], [2, 2], [0, 0, 0, 0]),
    ((1, 4, 10, 10), [3, 2], [1, 1], [1, 0, 1, 1]),
    ((3, 2, 5, 5), [5, 5], [1, 1], [0, 0, 0, 0]),
    ((2, 2, 7, 9), [3, 2], [1, 2], [2, 0, 0, 1]),  # every size different along H and W
]


@pytest.mark.parametrize("case", POOLS, ids=str)
@pytest.mark.parametrize("mode", ["max", "avg_pad", "avg_nopad"])
def test_pool2d(gpu, cpu, rng, case, mode):
    xs, kern, st, pad = case
    x = rand(rng, xs)
    x[0, 0, 0, :3] = 1.0  # ties
    is_max, cip = mode == "max", mode == "avg_pad"

    def fn(x_):
        y, idx = _core.pool2d(x_, kern, st, pad, is_max, cip)
        dy = _core.unary(U.MulScalar, y, 1.5)
        dx = _core.pool2d_backward(
            dy, list(xs), idx if is_max else None, kern, st, pad, is_max, cip
        )
        return [y, dx] + ([idx] if is_max else [])

    check(gpu, cpu, fn, x, rtol=1e-5, atol=1e-6)


def test_max_pool_nan(gpu, cpu, rng):
    """The first NaN of a window wins over numbers and over later NaNs."""
    x = rand(rng, (2, 2, 6, 7))
    x[0, 0, 1, 1] = x[0, 0, 2, 2] = x[1, 1, 4, 5] = np.nan

    def fn(x_):
        y, idx = _core.pool2d(x_, [3, 3], [1, 1], [1, 1, 1, 1], True)
        return [
            y,
            idx,
            _core.pool2d_backward(y, [2, 2, 6, 7], idx, [3, 3], [1, 1], [1, 1, 1, 1], True),
        ]

    check(gpu, cpu, fn, x)


def test_max_pool_backward_any_indices(gpu, cpu, rng):
    """Indices not made by pool2d: in the window, elsewhere in the plane (added too), outside
    the plane (skipped)."""
    xs, kern, st, pad = [2, 3, 6, 5], [2, 2], [2, 2], [0, 0, 0, 0]
    idx = rng.integers(-3, 6 * 5 + 3, (2, 3, 3, 2)).astype(I32)
    check(
        gpu,
        cpu,
        lambda d, i: _core.pool2d_backward(d, xs, i, kern, st, pad, True),
        rand(rng, (2, 3, 3, 2)),
        idx,
        rtol=1e-5,
        atol=1e-6,
    )


# ---- batchnorm ----


# (4, 2, 48, 48): N * H * W > 8192 values per channel, statistics in two parts per channel
@pytest.mark.parametrize("shape", [(16, 5), (4, 3, 7, 7), (2, 64, 40, 40), (4, 2, 48, 48)], ids=str)
def test_batchnorm(gpu, cpu, rng, shape):
    c = shape[1]
    x, dy = rand(rng, shape, low=-3, high=5), rand(rng, shape)
    scale, bias = rand(rng, (c,), low=0.5, high=1.5), rand(rng, (c,))
    rm, rv = rand(rng, (c,)), rand(rng, (c,), low=0.5, high=2)
    k = {"rtol": 1e-4, "atol": 1e-5}

    def train(x_, s_, b_, m_, v_, dy_):
        y, mean, inv = _core.batchnorm_forward_training(x_, s_, b_, m_, v_, 0.1, 1e-5)
        dx, ds, db = _core.batchnorm_backward(dy_, x_, s_, mean, inv)
        return [y, mean, inv, m_, v_, dx, ds, db]

    check(gpu, cpu, train, x, scale, bias, rm, rv, dy, **k)
    # The GPU sums x and x^2 in one pass (in double), the CPU makes two (mean, then squared
    # deviations): the same statistics even where the mean dwarfs the spread.
    far = (300 + rand(rng, shape, low=-0.1, high=0.1)).astype(F32)
    check(gpu, cpu, train, far, scale, bias, rm, rv, dy, **k)
    check(
        gpu,
        cpu,
        lambda x_, s_, b_, m_, v_: _core.batchnorm_forward_inference(x_, s_, b_, m_, v_, 1e-5),
        x,
        scale,
        bias,
        rm,
        rv,
        **k,
    )


# ---- random, cast, optim ----


@pytest.mark.parametrize("dtype", [F32, F16])
def test_random_matches_cpu(gpu, cpu, dtype):
    shape = (1000, 37)
    outs = []
    for dev in (gpu, cpu):
        dev.SetRandSeed(1234)
        u, g = (
            _core.Tensor(list(shape), dev, _core.DType.__members__[np.dtype(dtype).name]),
            _core.Tensor([999], dev),
        )
        bern = _core.Tensor([5, 41], dev, _core.DType.int32)
        _core.uniform(g, -1.0, 1.0)  # offsets a later call
        _core.uniform(u, -2.0, 3.0)
        _core.bernoulli(bern, 0.3)
        gau = _core.Tensor([4096], dev)
        _core.gaussian(gau, 1.0, 2.0)
        outs.append([host(u), host(bern), host(gau)])
    (gu, gb, gg), (cu, cb, cg) = outs
    np.testing.assert_array_equal(gu, cu)  # bit-identical (philox.h)
    np.testing.assert_array_equal(gb, cb)
    np.testing.assert_allclose(gg, cg, rtol=1e-4, atol=1e-4)  # libm vs CUDA log/cos/sin


@pytest.mark.parametrize("src", [F32, F16, I32])
@pytest.mark.parametrize("dst", [F32, F16, I32])
def test_cast(gpu, cpu, rng, src, dst):
    if np.dtype(src) == np.int32:
        a = rng.integers(-(2**31), 2**31 - 1, 500, dtype=np.int64).astype(I32)
    else:
        a = np.clip(rng.standard_normal(500) * 3e4, -6e4, 6e4).astype(src)
        a[:6] = [np.nan, np.inf, -np.inf, 0.5, -2.5, 65519.0]
        if np.dtype(src) == np.float32:
            a[6:9] = [3e9, -3e9, 1e-8]
    name = {F32: "float32", F16: "float16", I32: "int32"}[dst]
    check(gpu, cpu, lambda x: _core.as_type(x, getattr(_core.DType, name)), a, rtol=0, atol=0)


def test_cast_single_element(gpu, cpu):
    for src in (F32, F16, I32):
        for dst in ("float32", "float16", "int32"):
            for a in (np.array(-7, src), np.array([3], src)):
                check(gpu, cpu, lambda x, d=dst: _core.as_type(x, getattr(_core.DType, d)), a)


def optim_steps(kind, n, weight_decay, dampening=0.0):
    """fn(p, g) for `check`: three fused `kind` updates of p (lr 0.05), then p and the state."""

    def fn(p_, g_):
        dev = p_.device
        lr = core_tensor(np.array([0.05], F32), dev)
        s1, s2 = _core.Tensor([n], dev), _core.Tensor([n], dev)
        _core.fill(s1, 0.0)
        _core.fill(s2, 0.0)
        step = core_tensor(np.array([1.0], F32), dev)
        for _ in range(3):
            if kind.startswith("sgd"):
                _core.sgd_update(p_, g_, lr, s1, 0.9, dampening, weight_decay,
                                 kind == "sgd_nesterov", step)
            elif kind == "adam":
                _core.adam_update(p_, g_, s1, s2, lr, step, 0.9, 0.999, 1e-8, weight_decay)
            elif kind == "adagrad":
                _core.adagrad_update(p_, g_, s1, lr, 1e-10, weight_decay)
            else:
                _core.rmsprop_update(p_, g_, s1, lr, 0.9, 1e-8, weight_decay)
            _core.unary(U.AddScalar, step, 1.0, out=step)
        return [p_, s1, s2]

    return fn


@pytest.mark.parametrize("kind", ["sgd", "sgd_nesterov", "adam", "adagrad", "rmsprop"])
def test_optim(gpu, cpu, rng, kind):
    n = 10007
    p, g = rand(rng, (n,)), rand(rng, (n,))
    check(gpu, cpu, optim_steps(kind, n, 1e-4), p, g, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind", ["sgd", "sgd_dampening", "adam", "adagrad", "rmsprop"])
def test_optim_edge_values(gpu, cpu, rng, kind):
    """weight_decay == 0 skips the decay term (an infinite parameter stays infinite, no NaN),
    zero gradients (eps keeps 0 / 0 away), SGD's first step with dampening."""
    n = 1000
    p, g = rand(rng, (n,)), rand(rng, (n,))
    g[::7] = 0
    p[3], p[4] = np.inf, -np.inf
    fn = optim_steps(kind, n, 0.0, 0.5 if kind == "sgd_dampening" else 0.0)
    check(gpu, cpu, fn, p, g, rtol=1e-5, atol=1e-6)


# ---- models: eager == graph, CUDA-graph capture, float16 training ----


# The small CNN (BN, pooling, dropout) of the graph tests.


def batches(n=6, bs=8, seed=0):
    r = np.random.default_rng(seed)
    return [
        (r.standard_normal((bs, 3, 8, 8)).astype(F32), r.integers(0, 4, bs).astype(I32))
        for _ in range(n)
    ]


def train(
    dev,
    graph,
    optimizer=lambda: opt.SGD(0.05, momentum=0.9, weight_decay=1e-4),
    steps=6,
    cls=CNN,
    xdtype=F32,
    seed=0,
):
    """Trains a fresh model on `dev`; returns per-step (out, loss), final states, model."""
    dev.SetRandSeed(0)
    data = batches(steps, seed=seed)
    tx = tensor.Tensor(data[0][0].shape, dev, dtype=tensor.to_dtype(xdtype))
    ty = tensor.Tensor((data[0][1].shape[0],), dev, dtype=tensor.int32)
    m = cls()
    m.set_optimizer(optimizer())
    m.compile([tx], is_train=True, use_graph=graph, sequential=False)
    trace = []
    for x, y in data:
        tx.copy_from_numpy(x.astype(xdtype))
        ty.copy_from_numpy(y)
        out, loss = m(tx, ty)
        trace.append((out.to_numpy().astype(F32), loss.to_numpy().astype(F32)))
    if graph and dev.is_cuda and steps >= 3:  # captured at the third run, never given up
        assert dev.cuda_graph_captured and dev.cuda_graph_failure == "", dev.cuda_graph_failure
    states = {k: v.to_numpy() for k, v in m.get_states().items()}
    m.eval()
    return trace, states, m


@pytest.mark.parametrize("optname", ["sgd", "adam"])
def test_eager_and_graph_agree_on_gpu(gpu, optname):
    mk = {
        "sgd": lambda: opt.SGD(0.05, momentum=0.9, weight_decay=1e-4),
        "adam": lambda: opt.Adam(0.01),
    }[optname]
    ref, ref_states, _ = train(gpu, False, mk)
    launches = gpu.cuda_graph_launches
    got, states, _ = train(gpu, True, mk)
    # runs 1, 2 plain, run 3 captured and launched, runs 4.. launched: dropout masks included
    assert gpu.cuda_graph_launches - launches == len(got) - 2, gpu.cuda_graph_failure
    for step, ((o1, l1), (o2, l2)) in enumerate(zip(ref, got)):
        np.testing.assert_allclose(o2, o1, rtol=1e-5, atol=1e-6, err_msg=f"out {step}")
        np.testing.assert_allclose(l2, l1, rtol=1e-5, atol=1e-6, err_msg=f"loss {step}")
    for k in ref_states:
        np.testing.assert_allclose(states[k], ref_states[k], rtol=1e-5, atol=1e-6, err_msg=k)
    assert not np.allclose(ref[0][1], ref[-1][1])


def test_gpu_training_matches_cpu(gpu, cpu):
    g, gs, _ = train(gpu, True)
    c, cs, _ = train(cpu, False)
    for (o1, l1), (o2, l2) in zip(c, g):  # same dropout masks (philox.h), other roundings
        np.testing.assert_allclose(o2, o1, rtol=2e-3, atol=2e-4)
        np.testing.assert_allclose(l2, l1, rtol=2e-3, atol=2e-4)
    for k in cs:
        np.testing.assert_allclose(gs[k], cs[k], rtol=2e-3, atol=2e-4, err_msg=k)


class ResidualNet(model.Model):
    """A residual block as the ResNet example builds it: 16-channel 3x3 convolutions (Winograd
    on the GPU, im2col on the CPU), batch norm with a fused ReLU, and a fused residual add."""

    def __init__(self):
        super().__init__()
        self.stem = layer.Conv2d(3, 16, 3, padding=1, bias=False)
        self.bn0 = layer.BatchNorm2d(16, relu=True)
        self.conv1 = layer.Conv2d(16, 16, 3, padding=1, bias=False)
        self.bn1 = layer.BatchNorm2d(16, relu=True)
        self.conv2 = layer.Conv2d(16, 16, 3, padding=1, bias=False)
        self.bn2 = layer.BatchNorm2d(16, relu=True)
        self.pool = layer.AvgPool2d(8, stride=1)
        self.flatten = layer.Flatten()
        self.fc = layer.Linear(4)
        self.loss = layer.SoftMaxCrossEntropy()

    def forward(self, x):
        h = self.bn0(self.stem(x))
        out = self.bn2(self.conv2(self.bn1(self.conv1(h))), h)
        return self.fc(self.flatten(self.pool(out)))

    def train_one_batch(self, x, y):
        out = self.forward(x)
        loss = self.loss(out, y)
        self.optimizer(loss)
        return out, loss


def test_residual_net_on_gpu_matches_cpu(gpu, cpu):
    assert _core._conv2d_path(gpu, [8, 16, 8, 8], [16, 16, 3, 3], [1, 1],
                              [1, 1, 1, 1]).startswith("winograd")
    g, gs, _ = train(gpu, True, cls=ResidualNet)
    c, cs, _ = train(cpu, False, cls=ResidualNet)
    for (o1, l1), (o2, l2) in zip(c, g):
        np.testing.assert_allclose(o2, o1, rtol=2e-3, atol=2e-4)
        np.testing.assert_allclose(l2, l1, rtol=2e-3, atol=2e-4)
    for k in cs:
        np.testing.assert_allclose(gs[k], cs[k], rtol=2e-3, atol=2e-4, err_msg=k)
    assert not np.allclose(c[0][1], c[-1][1])  # it trained


def test_cuda_graph_replays_are_launches_and_keep_memory_flat(gpu):
    _, _, m = train(gpu, True, steps=3)  # runs 1, 2 warm up, run 3 is captured
    assert gpu.cuda_graph_captured and gpu.cuda_graph_failure == ""
    m.train()
    tx, ty = m._graph_inputs[0]
    for _ in range(5):
        m(tx, ty)
    before, launches = gpu.memory_stats(), gpu.cuda_graph_launches
    for _ in range(50):
        m(tx, ty)
    after = gpu.memory_stats()
    assert gpu.cuda_graph_launches == launches + 50
    assert after["current"] == before["current"] and after["reserved"] == before["reserved"]
    m.eval()


def test_cuda_graph_switch_and_fallbacks(gpu):
    x = tensor.Tensor((4, 4), gpu).set_value(1.0)
    # A Python node: never captured, still replayed.
    calls = []
    gpu.ResetGraph()
    gpu.EnableGraph(True)
    y = x + 1.0
    gpu.exec_python(lambda: calls.append(1), [y.data], [], "py")
    gpu.EnableGraph(False)
    for _ in range(3):
        gpu.RunGraph(False)
    assert len(calls) == 3 and not gpu.cuda_graph_captured
    np.testing.assert_array_equal(y.to_numpy(), 2.0)
    # A host-to-device copy recorded in the graph: the capture fails, plain replays go on.
    gpu.ResetGraph()
    gpu.EnableGraph(True)
    x.copy_from_numpy(np.full((4, 4), 3.0, F32))
    z = x * 2.0
    gpu.EnableGraph(False)
    for _ in range(3):
        gpu.RunGraph(False)
    assert not gpu.cuda_graph_captured and "captured CUDA graph" in gpu.cuda_graph_failure
    np.testing.assert_array_equal(z.to_numpy(), 6.0)
    # Switched off: plain replays only.
    gpu.ResetGraph()
    gpu.set_cuda_graph(False)
    try:
        gpu.EnableGraph(True)
        w = x + x
        gpu.EnableGraph(False)
        for _ in range(3):
            gpu.RunGraph(True)
        assert not gpu.cuda_graph_captured
        np.testing.assert_array_equal(w.to_numpy(), 6.0)
    finally:
        gpu.set_cuda_graph(True)
        gpu.ResetGraph()


def test_captured_graph_sees_new_inputs_and_seeds(gpu):
    gpu.ResetGraph()
    x = tensor.Tensor((1000,), gpu).set_value(1.0)
    gpu.EnableGraph(True)
    mask = tensor.Tensor((1000,), gpu)
    _core.bernoulli(mask.data, 0.5)
    y = x * mask
    gpu.EnableGraph(False)
    seen = []
    for i in range(5):
        x.copy_from_numpy(np.full(1000, float(i + 1), F32))
        gpu.RunGraph(False)
        seen.append(y.to_numpy() / (i + 1))
    assert gpu.cuda_graph_captured
    assert all(not np.array_equal(seen[i], seen[i + 1]) for i in range(4))  # fresh masks
    gpu.SetRandSeed(7)
    gpu.RunGraph(False)
    a = y.to_numpy()
    gpu.SetRandSeed(7)
    gpu.RunGraph(False)
    np.testing.assert_array_equal(y.to_numpy(), a)  # the seed reaches the captured graph
    gpu.ResetGraph()


class HalfCNN(model.Model):
    """Mixed precision: float16 input, activations and loss; convolution, pooling and the
    linear layer run in float32 on casts of their inputs, parameters stay float32."""

    def __init__(self):
        super().__init__()
        self.conv1 = layer.Conv2d(8, 3, padding=1)
        self.conv2 = layer.Conv2d(8, 3, padding=1)
        self.pool = layer.MaxPool2d(2, 2)
        self.flat = layer.Flatten()
        self.fc = layer.Linear(4)

    def forward(self, x):
        h = ag.relu(ag.cast(self.conv1(ag.cast(x, tensor.float32)), tensor.float16))
        h = ag.relu(ag.cast(self.conv2(ag.cast(h, tensor.float32)), tensor.float16))
        h = self.flat(self.pool(ag.cast(h, tensor.float32)))
        return ag.cast(self.fc(h), tensor.float16)

    def train_one_batch(self, x, y):
        out = self.forward(x)
        loss = ag.softmax_cross_entropy(out, y)
        self.optimizer(loss)
        return out, loss


def test_float16_cnn_example_is_captured(gpu):
    """train_cnn.py's CNN at batch 32 in float16 (-p float16 -g): its first run allocates the
    optimizer state in blocks its intermediates freed, so a capture right after one warm-up
    run needed a cudaMalloc (and was abandoned); with two warm-up runs it is captured."""
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "examples", "cnn"))
    from model import cnn

    gpu.SetRandSeed(0)
    r = np.random.default_rng(0)
    tx = tensor.from_numpy(r.standard_normal((32, 1, 28, 28)).astype(F16), gpu)
    ty = tensor.from_numpy(r.integers(0, 10, 32).astype(I32), gpu)
    m = cnn.create_model(num_classes=10, num_channels=1, input_size=28)
    m.set_optimizer(opt.SGD(lr=0.05, momentum=0.9, weight_decay=1e-5, dtype=tensor.float16))
    m.compile([tx], is_train=True, use_graph=True)
    launches = gpu.cuda_graph_launches
    for _ in range(4):
        m(tx, ty)
    m.eval()
    assert gpu.cuda_graph_failure == "", gpu.cuda_graph_failure
    assert gpu.cuda_graph_launches - launches == 2


@pytest.mark.parametrize("graph", [False, True])
def test_float16_training_reduces_loss(gpu, graph):
    dev = gpu
    dev.SetRandSeed(0)
    r = np.random.default_rng(1)
    x = r.standard_normal((32, 3, 8, 8)).astype(F16)
    y = (x.astype(F32).mean(axis=(2, 3)) @ r.standard_normal((3, 4))).argmax(1).astype(I32)
    tx, ty = tensor.from_numpy(x, dev), tensor.from_numpy(y, dev)
    m = HalfCNN()
    m.set_optimizer(opt.SGD(0.1, momentum=0.9))
    m.compile([tx], is_train=True, use_graph=graph)
    launches = dev.cuda_graph_launches
    losses = []
    for _ in range(40):
        out, loss = m(tx, ty)
        assert out.dtype == tensor.float16 and loss.dtype == tensor.float16
        losses.append(loss.item())
    if graph:  # replays from the third on are CUDA-graph launches
        assert dev.cuda_graph_failure == "", dev.cuda_graph_failure
        assert dev.cuda_graph_launches - launches == 40 - 2
    m.eval()
    assert np.all(np.isfinite(losses))
    assert losses[-1] < 0.5 * losses[0], losses
