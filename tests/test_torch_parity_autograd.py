"""The autograd operators against PyTorch on non-default attributes and odd inputs: forward
values and input gradients (with a random, non-ones upstream gradient) from
tests/data/torch_autograd.npz (made by tests/data/make_torch_autograd.py; no torch needed
here), in float32 and, for a subset, float16; then numpy-checked edge cases: NaN, zero bases,
numpy scalars, mixed dtypes, out-of-range axes, a reused operator instance, negative slice
steps.

The cases cover what test_autograd_ops.py / test_autograd_fuzz.py do not: broadcasting with
size-1 dims in the middle and rank differences, one tensor used twice, a node with two
consumers, values exactly at kinks, ties in max reductions and max pooling, softmax on every
axis and with large logits, broadcast batched matmul, rectangular / dilated / grouped conv."""

import os

import numpy as np
import pytest

from minisinga import autograd as ag
from minisinga import tensor

DATA = np.load(os.path.join(os.path.dirname(__file__), "data", "torch_autograd.npz"))
COND = np.array([[1, 0], [0, 1], [1, 1], [0, 0]], np.float32)
SOFT = np.array([[0.25, 0.25, 0.5], [1.0, 0.0, 0.0]], np.float32)


def c(a, like):
    """A constant (no gradient) of Tensor `like`'s float dtype, on its device."""
    dtype = np.float16 if like.dtype == tensor.float16 else np.float32
    return tensor.from_numpy(np.asarray(a, dtype), like.device)


def labels(v, like):
    return tensor.from_numpy(np.asarray(v, np.int32), like.device)


def weighted_split(x, axis, parts):
    return ag.concat([ag.mul(p, float(i + 2)) for i, p in enumerate(ag.split(x, axis, parts))],
                     axis)


def chain(x, w):
    h1 = ag.mul(x, w)
    return ag.add(ag.mul(ag.tanh(ag.add(h1, w)), w), ag.mul(h1, h1))


def fanout(x):
    t = ag.tanh(x)
    return ag.add(ag.mul(t, t), ag.sigmoid(t))


def sce(x, t):
    return ag.softmax_cross_entropy(x, t)


# minisinga's side of each case in the fixture (PyTorch's side is make_torch_autograd.CASES)
CASES = {
    "add_mid1": ag.add,
    "sub_rank": ag.sub,
    "mul_rank": ag.mul,
    "div_both1": ag.div,
    "add_0d": ag.add,
    "maximum_bcast": ag.maximum,
    "minimum_bcast": ag.minimum,
    "pow_bcast": ag.pow,
    "x_times_x": lambda x: x * x,
    "add_x_x": lambda x: ag.add(x, x),
    "div_x_x": lambda x: x / x,
    "matmul_x_xT": lambda x: ag.matmul(x, ag.transpose(x)),
    "pow_x_x": lambda x: x ** x,
    "fanout": fanout,
    "weight_at_depths": chain,
    "relu_kink": ag.relu,
    "abs_kink": ag.abs,
    "leakyrelu_kink": lambda x: ag.leakyrelu(x, 0.3),
    "leakyrelu_neg_slope": lambda x: ag.leakyrelu(x, -0.3),
    "elu_kink": lambda x: ag.elu(x, 0.7),
    "selu_custom": lambda x: ag.selu(x, 2.0, 0.5),
    "clip_bounds": lambda x: ag.clip(x, -0.5, 1.0),
    "clip_point": lambda x: ag.clip(x, 0.5, 0.5),
    "softsign_kink": ag.softsign,
    "softplus_big": ag.softplus,
    "sigmoid_big": ag.sigmoid,
    "reduce_sum_neg": lambda x: ag.reduce_sum(x, [-1, 0], False),
    "reduce_mean_mixed": lambda x: ag.reduce_mean(x, [1, -3], True),
    "reduce_max_ties": lambda x: ag.reduce_max(x, -1, False),
    "reduce_min_ties": lambda x: ag.reduce_min(x, [-2], True),
    "softmax_axis0": lambda x: ag.softmax(x, 0),
    "softmax_mid": lambda x: ag.softmax(x, 1),
    "softmax_first": lambda x: ag.softmax(x, -3),
    "log_softmax_mid": lambda x: ag.log_softmax(x, -2),
    "softmax_big": lambda x: ag.softmax(x, 1),
    "log_softmax_big": lambda x: ag.log_softmax(x, -1),
    "sce_soft": lambda x: sce(x, c(SOFT, x)),
    "sce_batch1": lambda x: sce(x, labels([2], x)),
    "sce_big": lambda x: sce(x, labels([0, 1], x)),
    "mm_a2_bB": ag.matmul,
    "mm_bcast_mid": ag.matmul,
    "mm_rank_diff": ag.matmul,
    "mm_shared_4d": ag.matmul,
    "gemm_tAtB_c11": lambda a, b, cc: ag.gemm(a, b, cc, -0.5, 0.25, 1, 1),
    "conv_rect": lambda x, w, b: ag.conv2d(x, w, b, (2, 1), (1, 2)),
    "conv_dil_asym": lambda x, w: ag.conv2d(x, w, None, 1, (2, 1), (2, 1)),
    "conv_groups3": lambda x, w: ag.conv2d(x, w, None, 2, 1, 1, 3),
    "conv_x_twice": lambda x: ag.conv2d(x, x, None, 1, 1),
    "maxpool_rect": lambda x: ag.max_pool_2d(x, (2, 3), (1, 2), (1, 1)),
    "avgpool_rect": lambda x: ag.avg_pool_2d(x, (3, 2), (2, 1), (1, 0)),
    "avgpool_excl": lambda x: ag.avg_pool_2d(x, (3, 2), (2, 1), (1, 1), False),
    "maxpool_ties": lambda x: ag.max_pool_2d(x, 2, 1),
    "maxpool_ties_flat": lambda x: ag.max_pool_2d(x, 3, 1),
    "maxpool_pad_negative": lambda x: ag.max_pool_2d(x, 3, 2, 1),
    "maxpool1d": lambda x: ag.max_pool_1d(x, 3, 2, 1),
    "avgpool1d": lambda x: ag.avg_pool_1d(x, 2, 3),
    # ONNX pads: all begins, then all ends
    "pad_constant": lambda x: ag.pad(x, "constant", [0, 0, 1, 2, 0, 0, 2, 1], -1.5),
    "pad_reflect": lambda x: ag.pad(x, "reflect", [0, 0, 1, 2, 0, 0, 2, 1]),
    "pad_edge": lambda x: ag.pad(x, "edge", [0, 0, 1, 2, 0, 0, 2, 1]),
    "gather_rep_neg": lambda x: ag.gather(x, 1, [1, -3, -1, 3, 1]),
    "gather_2d_idx": lambda x: ag.gather(x, -1, [[0, 1], [1, -1], [-2, 0]]),
    "concat_neg": lambda a, b: ag.concat([a, b], -2),
    "concat_same": lambda a: ag.concat([a, a, a], 0),
    "split_neg": lambda x: weighted_split(x, -2, [1, 3]),
    "split_one_used": lambda x: ag.mul(ag.split(x, 1, [1, 3])[1], 2.0),
    "transpose_negperm": lambda x: ag.transpose(x, [-1, 0, -2]),
    "expand_rank": lambda x: ag.expand(x, [2, 3, 1, 5]),
    "tile": lambda x: ag.tile(x, [2, 1, 3]),
    "upsample": lambda x: ag.upsample(x, "nearest", [1, 2, 3]),
    "where_big_cond": lambda a, b: ag.where(a, b, c(COND, a)),
    "scatter": lambda x, u: ag.scatter_elements(x, labels([[1, 0], [-1, 0]], x), u, 1),
    "depth_to_space_crd": lambda x: ag.depth_to_space(x, 2, "CRD"),
    "space_to_depth_crd": lambda x: ag.space_to_depth(x, 2, "CRD"),
    "gelu": ag.gelu,
    "gelu_tanh": lambda x: ag.gelu(x, "tanh"),
}

F16 = ["add_mid1", "mul_rank", "div_both1", "x_times_x", "fanout", "relu_kink", "leakyrelu_kink",
       "clip_bounds", "reduce_sum_neg", "reduce_max_ties", "softmax_mid", "log_softmax_mid",
       "sce_soft", "mm_a2_bB", "mm_shared_4d", "conv_rect", "maxpool_rect", "avgpool_excl",
       "pad_reflect", "gather_rep_neg", "split_neg", "tile", "where_big_cond", "gelu", "gelu_tanh"]


def case(name):
    n = sum(k.startswith(f"{name}/x") for k in DATA.files)
    return ([DATA[f"{name}/x{i}"] for i in range(n)], DATA[f"{name}/dy"], DATA[f"{name}/y"],
            [DATA[f"{name}/g{i}"] for i in range(n)])


def forward_backward(fn, xs, dy, dtype, dev=None):
    ts = [tensor.Tensor(data=a.astype(dtype), device=dev, stores_grad=True) for a in xs]
    with ag.train_mode():
        y = fn(*ts)
    if dy.shape == () and y.shape == (1,):  # a loss: torch's is 0-d, SINGA's shape (1,)
        dy = dy.reshape(1)
    grads = ag.gradients(y, tensor.Tensor(data=dy.astype(dtype), device=y.device))
    return y, [grads.get(t) for t in ts]


def _loss_shape(shape):
    return (1,) if shape == () else shape  # SINGA's losses have shape (1,), torch's ()


def test_cases_match_the_fixture():
    names = {k.split("/")[0] for k in DATA.files} - {"bn"}
    assert names == set(CASES)
    assert set(F16) <= set(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_float32_against_torch(dev, name):
    xs, dy, want_y, want_g = case(name)
    y, grads = forward_backward(CASES[name], xs, dy, np.float32, dev)
    assert _loss_shape(want_y.shape) == y.shape and y.dtype == tensor.float32
    np.testing.assert_allclose(y.to_numpy(), want_y, rtol=1e-4, atol=1e-5, err_msg="forward")
    for i, (g, w) in enumerate(zip(grads, want_g)):
        got = np.zeros_like(w) if g is None else g.to_numpy()
        assert got.shape == w.shape, f"gradient {i}: shape {got.shape} != {w.shape}"
        np.testing.assert_allclose(got, w, rtol=1e-4, atol=1e-4, err_msg=f"gradient {i}")


@pytest.mark.parametrize("name", F16)
def test_float16_against_torch(name):
    xs, dy, want_y, want_g = case(name)
    y, grads = forward_backward(CASES[name], xs, dy, np.float16)
    assert y.dtype == tensor.float16
    scale = max(1.0, float(np.abs(want_y).max()))
    np.testing.assert_allclose(y.to_numpy().astype(np.float32), want_y, rtol=1e-2,
                               atol=1e-2 * scale, err_msg="forward")
    for i, (g, w) in enumerate(zip(grads, want_g)):
        assert g is not None and g.dtype == tensor.float16, f"gradient {i}"
        scale = max(1.0, float(np.abs(w).max()))
        np.testing.assert_allclose(g.to_numpy().astype(np.float32), w, rtol=1e-2,
                                   atol=2e-2 * scale, err_msg=f"gradient {i}")


def test_batchnorm_training_step_against_torch(dev):
    x, s, b, dy = (DATA[f"bn/{k}"] for k in ("x0", "x1", "x2", "dy"))
    rm = tensor.from_numpy(DATA["bn/rm"].copy(), dev)
    rv = tensor.from_numpy(DATA["bn/rv"].copy(), dev)
    y, grads = forward_backward(
        lambda *t: ag.batchnorm_2d(*t, rm, rv, momentum=0.3, eps=1e-3), [x, s, b], dy,
        np.float32, dev)
    np.testing.assert_allclose(y.to_numpy(), DATA["bn/y"], rtol=1e-4, atol=1e-5)
    for i, g in enumerate(grads):
        np.testing.assert_allclose(g.to_numpy(), DATA[f"bn/g{i}"], rtol=1e-4, atol=1e-4)
    # momentum weighs the batch statistic (PyTorch's convention); the variance is unbiased
    np.testing.assert_allclose(rm.to_numpy(), DATA["bn/rm_after"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(rv.to_numpy(), DATA["bn/rv_after"], rtol=1e-5, atol=1e-6)


# ---- SINGA's semantics where PyTorch differs (these pass) ----

def test_empty_axes_list_reduces_nothing_as_in_singa():
    """SINGA's ReduceSum/ReduceMean loop over the listed axes: [] is a no-op (PyTorch's
    sum(dim=[]) would reduce everything)."""
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    for fn in (ag.reduce_sum, ag.reduce_mean, ag.reduce_max, ag.reduce_min):
        np.testing.assert_array_equal(fn(tensor.from_numpy(x), [], True).to_numpy(), x)


def test_maximum_ties_send_the_gradient_to_the_first_input():
    """PyTorch splits a tie half and half; minisinga (as its Max) gives it to the first."""
    a = tensor.Tensor(data=np.array([1.0, 2.0, 3.0], np.float32), stores_grad=True)
    b = tensor.Tensor(data=np.array([1.0, 0.0, 3.0], np.float32), stores_grad=True)
    with ag.train_mode():
        y = ag.maximum(a, b)
    g = ag.gradients(y, tensor.from_numpy(np.array([2.0, 4.0, 8.0], np.float32)))
    np.testing.assert_array_equal(g[a].to_numpy(), [2.0, 4.0, 8.0])
    np.testing.assert_array_equal(g[b].to_numpy(), [0.0, 0.0, 0.0])


def test_bad_indices_and_axes_are_refused_clearly():
    x = tensor.from_numpy(np.zeros((2, 3, 4), np.float32))
    for idx in ([3], [-4], tensor.from_numpy(np.array([5], np.int32))):
        with pytest.raises(ValueError, match=r"out of range for axis 1 of size 3"):
            ag.gather(x, 1, idx)
    with pytest.raises(ValueError, match="axis -4 is out of range"):
        ag.gather(x, -4, [0])
    with pytest.raises(ValueError, match="axis -4 is out of range"):
        ag.softmax(x, -4)
    with pytest.raises(ValueError, match="axis -4 is out of range"):
        ag.concat([x, x], -4)
    with pytest.raises(ValueError, match="label 3 at index 1 is out of range"):
        ag.softmax_cross_entropy(tensor.from_numpy(np.zeros((2, 3), np.float32)),
                                 tensor.from_numpy(np.array([0, 3], np.int32)))
    with pytest.raises(ValueError, match="outside"):
        ag.cross_entropy(tensor.from_numpy(np.full((2, 3), 0.3, np.float32)),
                         tensor.from_numpy(np.array([0, -1], np.int32)))


# ---- bugs found by comparing with PyTorch (each failed before its fix) ----

@pytest.mark.parametrize("fn", [ag.reduce_sum, ag.reduce_mean, ag.reduce_max, ag.reduce_min])
@pytest.mark.parametrize("axes", [[-4], -4, [0, -5]])
def test_reductions_refuse_out_of_range_negative_axes(fn, axes):
    """_norm_axes adds ndim once, and the core wraps the result again: axis -4 of a 3-d tensor
    silently reduces axis 2 (as -1 would). [3] is refused, so [-4] must be too."""
    x = tensor.from_numpy(np.zeros((2, 3, 4), np.float32))
    with pytest.raises(ValueError, match="out of range"):
        fn(x, axes, True)


def test_reduction_axes_are_integers_named_once():
    x = tensor.from_numpy(np.zeros((2, 3, 4), np.float32))
    with pytest.raises(ValueError, match=r"reduce_sum: axes \[1, -2\] name an axis twice"):
        ag.reduce_sum(x, [1, -2])
    with pytest.raises(TypeError, match="reduce_mean: axes must be integers, got 1.0"):
        ag.reduce_mean(x, [1.0])
    assert ag.reduce_max(x, np.int64(-1), False).shape == (2, 3)


def test_maximum_and_minimum_propagate_nan_from_either_side():
    """numpy, PyTorch and the reductions here propagate NaN; the element-wise Max(x, y) =
    x > y ? x : y drops a NaN in the first operand only, so maximum(a, b) != maximum(b, a)."""
    a = tensor.from_numpy(np.array([np.nan, 1.0], np.float32))
    z = tensor.from_numpy(np.zeros(2, np.float32))
    for fn in (ag.maximum, ag.minimum):
        for args in ((a, z), (z, a)):
            got = fn(*args).to_numpy()
            assert np.isnan(got[0]), f"{fn.__name__}: {got}"


def test_clip_keeps_nan():
    """clip(NaN) is NaN in numpy, PyTorch and SINGA (its Clip masks with 0 * NaN); here it
    becomes the lower bound, or -inf when only max is given."""
    a = tensor.from_numpy(np.array([np.nan, 0.25], np.float32))
    for kw in ({"min": -1.0, "max": 0.5}, {"max": 0.5}, {"min": -1.0}):
        got = ag.clip(a, **kw).to_numpy()
        assert np.isnan(got[0]), f"clip({kw}): {got}"
        assert got[1] == 0.25


def test_pow_gradients_at_a_zero_base():
    """d(a^b)/db = a^b ln a is 0 where a = 0 and b > 0 (a^b is 0 all around), and
    d(x^0)/dx = 0 everywhere; both give NaN here (0 * -inf, 0 * x^-1). PyTorch gives 0."""
    a = tensor.Tensor(data=np.array([0.0, 2.0], np.float32), stores_grad=True)
    b = tensor.Tensor(data=np.array([2.0, 3.0], np.float32), stores_grad=True)
    with ag.train_mode():
        y = ag.pow(a, b)
    gb = ag.gradients(y)[b].to_numpy()
    np.testing.assert_allclose(gb, [0.0, 8.0 * np.log(2.0)], rtol=1e-5)
    x = tensor.Tensor(data=np.array([0.0, 1.5], np.float32), stores_grad=True)
    with ag.train_mode():
        y = x ** 0.0
    np.testing.assert_array_equal(ag.gradients(y)[x].to_numpy(), [0.0, 0.0])


def test_scalar_power_with_a_nonpositive_base_has_a_backward():
    """c ** x runs forward for c <= 0, then backward calls math.log(c) and raises 'math domain
    error'. PyTorch: 0 for c = 0 (x > 0), NaN for c < 0."""
    x = tensor.Tensor(data=np.array([1.0, 2.0, 3.0], np.float32), stores_grad=True)
    with ag.train_mode():
        y = 0.0 ** x
    np.testing.assert_array_equal(ag.gradients(y)[x].to_numpy(), [0.0, 0.0, 0.0])
    with ag.train_mode():
        y = (-2.0) ** x
    np.testing.assert_array_equal(y.to_numpy(), [-2.0, 4.0, -8.0])
    assert np.isnan(ag.gradients(y)[x].to_numpy()).all()


def test_division_by_a_zero_scalar_gives_inf():
    """x / 0.0 computes 1.0 / 0.0 in Python and raises ZeroDivisionError; numpy, PyTorch and
    x / zeros-tensor give inf (nan for 0 / 0)."""
    x = tensor.from_numpy(np.array([1.0, -2.0, 0.0], np.float32))
    want = np.array([np.inf, -np.inf, np.nan], np.float32)
    np.testing.assert_array_equal((x / tensor.from_numpy(np.zeros(3, np.float32))).to_numpy(),
                                  want)
    np.testing.assert_array_equal((x / 0.0).to_numpy(), want)
    np.testing.assert_array_equal(ag.div(x, 0).to_numpy(), want)


def test_numpy_scalars_are_numbers():
    """x * np.float32(2) raises 'unsupported operand types Tensor and float32' (_is_num takes
    int and float only; np.float64 passes as a float subclass, np.float32 / np.int64 do not)."""
    x = tensor.Tensor(data=np.array([1.0, 2.0], np.float32), stores_grad=True)
    for s in (np.float32(2.0), np.int64(2), np.float16(2.0), np.int32(2)):
        np.testing.assert_array_equal((x * s).to_numpy(), [2.0, 4.0])
        np.testing.assert_array_equal((s * x).to_numpy(), [2.0, 4.0])
        np.testing.assert_array_equal((x + s).to_numpy(), [3.0, 4.0])
        np.testing.assert_array_equal(ag.sub(x, s).to_numpy(), [-1.0, 0.0])
        with ag.train_mode():
            y = x / s
        np.testing.assert_array_equal(ag.gradients(y)[x].to_numpy(), [0.5, 0.5])


@pytest.mark.parametrize("op", ["matmul", "gemm", "conv2d"])
def test_mixed_float_dtypes_are_refused_or_keep_each_gradient_dtype(op):
    """add refuses float16 + float32; matmul, gemm and conv2d run, give a float16 result and
    hand the float32 parameter a float16 gradient (an optimizer then mixes dtypes)."""
    r = np.random.default_rng(0)
    if op == "conv2d":
        a, b = r.standard_normal((1, 2, 4, 4)), r.standard_normal((3, 2, 3, 3))
        fn = ag.conv2d
    else:
        a, b = r.standard_normal((2, 3)), r.standard_normal((3, 4))
        fn = ag.matmul if op == "matmul" else ag.gemm
    x = tensor.Tensor(data=a.astype(np.float16), stores_grad=True)
    w = tensor.Tensor(data=b.astype(np.float32), stores_grad=True)
    try:
        with ag.train_mode():
            y = fn(x, w)
    except TypeError:
        return  # refused, as add does: fine
    g = ag.gradients(y)
    assert g[x].dtype == tensor.float16
    assert g[w].dtype == tensor.float32, f"{op}: float32 weight got a {g[w].dtype} gradient"


def test_cast_to_int32_sends_no_gradient():
    """A float -> int32 cast is piecewise constant (as floor, whose gradient is 0 here);
    SINGA's Cast has no backward and PyTorch gives an int result no gradient. minisinga passes
    dy straight through to x."""
    x = tensor.Tensor(data=np.array([0.4, 1.7, -2.6], np.float32), stores_grad=True)
    with ag.train_mode():
        y = ag.mul(ag.cast(ag.cast(x, tensor.int32), tensor.float32), 3.0)
    np.testing.assert_array_equal(y.to_numpy(), [0.0, 3.0, -6.0])
    g = ag.gradients(y)
    assert x not in g or not g[x].to_numpy().any(), g[x].to_numpy()


def test_a_reused_operator_instance_does_not_corrupt_gradients():
    """An Operator keeps one call's saved tensors and inputs (`src`): calling one instance
    twice while recording silently drops the first call's input from the graph (its gradient is
    missing) and runs backward once with the second call's tensors. Either refuse the second
    call (RuntimeError) or record each call."""
    a0, b0 = np.array([0.5, -1.0, 2.0], np.float32), np.array([1.5, 0.0, -0.5], np.float32)
    a = tensor.Tensor(data=a0, stores_grad=True)
    b = tensor.Tensor(data=b0, stores_grad=True)
    op = ag.Sigmoid()
    try:
        with ag.train_mode():
            y = ag.add(op(a), ag.mul(op(b), 2.0))
    except RuntimeError:
        return

    def dsig(v):
        s = 1 / (1 + np.exp(-v.astype(np.float64)))
        return s * (1 - s)

    g = ag.gradients(y)
    assert a in g, "the first call's input got no gradient"
    np.testing.assert_allclose(g[a].to_numpy(), dsig(a0), rtol=1e-5)
    np.testing.assert_allclose(g[b].to_numpy(), 2 * dsig(b0), rtol=1e-5)


def test_slice_takes_negative_steps_as_singa_does():
    """SINGA's autograd.slice documents 'Negative value means slicing backward' (it walks
    range(size)[start:end:step]); ONNX Slice allows them too. minisinga raises 'only positive
    steps are supported' (Tensor.__getitem__ and the sonnx backend work around it with a
    gather)."""
    x = np.arange(24, dtype=np.float32).reshape(4, 6)
    xt = tensor.Tensor(data=x, stores_grad=True)
    with ag.train_mode():
        y = ag.slice(xt, [3, -1], [0, -100], [0, 1], [-1, -2])
    want = x[3:0:-1, -1:-100:-2]
    np.testing.assert_array_equal(y.to_numpy(), want)
    dy = np.arange(want.size, dtype=np.float32).reshape(want.shape) + 1
    g = ag.gradients(y, tensor.from_numpy(dy))[xt].to_numpy()
    expect = np.zeros_like(x)
    expect[3:0:-1, -1:-100:-2] = dy
    np.testing.assert_array_equal(g, expect)
