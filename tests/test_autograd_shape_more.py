"""SINGA's shape / ONNX-style operators (autograd/layout.py and autograd/indexing.py): forward
vs numpy, gradients vs finite differences, the no-gradient ops, bad arguments, and graph mode ==
eager mode."""

import numpy as np
import pytest
from conftest import recorded_nodes
from gradcheck import check_op

from minisinga import autograd as ag
from minisinga import device, layer, model, opt, tensor

R = np.random.default_rng(7)


def rn(*shape):
    return R.standard_normal(shape).astype(np.float32)


def ints(a):
    return np.asarray(a, dtype=np.int32)


# ---- numpy references written from the ONNX definitions, element by element ----

def np_depth_to_space(x, b, mode):
    n, c, h, w = x.shape
    c2 = c // (b * b)
    y = np.zeros((n, c2, h * b, w * b), x.dtype)
    for k in range(c2):
        for i in range(b):
            for j in range(b):
                ch = (i * b + j) * c2 + k if mode == "DCR" else k * b * b + i * b + j
                y[:, k, i::b, j::b] = x[:, ch]
    return y


def np_space_to_depth(x, b, mode):
    n, c, h, w = x.shape
    y = np.zeros((n, c * b * b, h // b, w // b), x.dtype)
    for k in range(c):
        for i in range(b):
            for j in range(b):
                ch = (i * b + j) * c + k if mode == "DCR" else k * b * b + i * b + j
                y[:, ch] = x[:, k, i::b, j::b]
    return y


def np_scatter(x, idx, upd, axis):
    out = x.copy()
    for p in np.ndindex(*idx.shape):
        q = list(p)
        q[axis] = idx[p]
        out[tuple(q)] = upd[p]
    return out


def np_onehot(idx, depth, values, axis):
    i = np.trunc(np.asarray(idx, np.float64)).astype(np.int64)
    i = np.where(i < 0, i + depth, i)
    y = np.where(i[..., None] == np.arange(depth), values[1], values[0]).astype(np.float32)
    return np.moveaxis(y, -1, axis)


def np_pad(x, mode, pads, constant=0.0):
    nd = x.ndim
    pairs = [(pads[d], pads[d + nd]) for d in range(nd)]
    if mode == "constant":
        return np.pad(x, pairs, mode="constant", constant_values=constant)
    return np.pad(x, pairs, mode=mode)


def np_upsample(x, scales):
    for axis, s in enumerate(scales):
        x = np.repeat(x, s, axis)
    return x


IDX_ROWS = ints([[2, 0, 1, 2], [-3, 1, 0, 1]])  # axis 0 of a (3, 4): no position twice
IDX_COLS = ints([[3, -2], [0, 2], [1, -4]])  # axis 1 (and -1) of a (3, 4)

# (id, fn on Tensors, numpy reference, inputs): every differentiable op
DIFF_OPS = [
    ("tile", lambda x: ag.tile(x, [2, 1, 3]), lambda x: np.tile(x, [2, 1, 3]), [rn(2, 3)]),
    ("tile_int", lambda x: ag.tile(x, 2), lambda x: np.tile(x, 2), [rn(2, 3)]),
    ("tile_ones", lambda x: ag.tile(x, [1, 1]), lambda x: np.tile(x, [1, 1]), [rn(3, 2)]),
    ("tile_short_repeats", lambda x: ag.tile(x, [3]), lambda x: np.tile(x, [3]),
     [rn(2, 2, 2)]),
    ("expand_rank_growth", lambda x: ag.expand(x, [2, 1, 3]),
     lambda x: x * np.ones([2, 1, 3]), [rn(4, 1)]),
    ("expand_bidirectional", lambda x: ag.expand(x, [1, 4]), lambda x: x * np.ones([1, 4]),
     [rn(3, 1)]),
    ("expand_same", lambda x: ag.expand(x, [2, 3]), lambda x: x.copy(), [rn(2, 3)]),
    ("pad_constant", lambda x: ag.pad(x, "constant", [1, 0, 2, 2], 1.5),
     lambda x: np_pad(x, "constant", [1, 0, 2, 2], 1.5), [rn(3, 4)]),
    ("pad_constant_default", lambda x: ag.pad(x, "constant", [0, 1, 1, 0, 0, 2]),
     lambda x: np_pad(x, "constant", [0, 1, 1, 0, 0, 2]), [rn(2, 2, 3)]),
    ("pad_reflect", lambda x: ag.pad(x, "reflect", [1, 2, 0, 1]),
     lambda x: np_pad(x, "reflect", [1, 2, 0, 1]), [rn(3, 4)]),
    # the largest pads reflect allows (size - 1), on both ends
    ("pad_reflect_edges", lambda x: ag.pad(x, "reflect", [0, 0, 2, 3, 0, 0, 2, 3]),
     lambda x: np_pad(x, "reflect", [0, 0, 2, 3, 0, 0, 2, 3]), [rn(1, 2, 3, 4)]),
    ("pad_edge", lambda x: ag.pad(x, "edge", [2, 0, 1, 3]),
     lambda x: np_pad(x, "edge", [2, 0, 1, 3]), [rn(3, 2)]),
    ("pad_edge_size_one", lambda x: ag.pad(x, "edge", [0, 2, 0, 2]),
     lambda x: np_pad(x, "edge", [0, 2, 0, 2]), [rn(3, 1)]),
    ("upsample", lambda x: ag.upsample(x, "nearest", [1, 1, 2, 3]),
     lambda x: np_upsample(x, [1, 1, 2, 3]), [rn(1, 2, 2, 3)]),
    ("upsample_float_scales", lambda x: ag.upsample(x, "nearest", [3.0, 1.0]),
     lambda x: np_upsample(x, [3, 1]), [rn(2, 3)]),
    ("depth_to_space_dcr", lambda x: ag.depth_to_space(x, 2),
     lambda x: np_depth_to_space(x, 2, "DCR"), [rn(2, 8, 2, 3)]),
    ("depth_to_space_crd", lambda x: ag.depth_to_space(x, 2, "CRD"),
     lambda x: np_depth_to_space(x, 2, "CRD"), [rn(2, 8, 2, 3)]),
    ("depth_to_space_b3", lambda x: ag.depth_to_space(x, 3, "CRD"),
     lambda x: np_depth_to_space(x, 3, "CRD"), [rn(1, 18, 2, 1)]),
    ("space_to_depth_dcr", lambda x: ag.space_to_depth(x, 2),
     lambda x: np_space_to_depth(x, 2, "DCR"), [rn(2, 3, 4, 2)]),
    ("space_to_depth_crd", lambda x: ag.space_to_depth(x, 3, "CRD"),
     lambda x: np_space_to_depth(x, 3, "CRD"), [rn(1, 2, 3, 6)]),
    ("scatter_list_indices", lambda x, u: ag.scatter_elements(x, IDX_ROWS, u),
     lambda x, u: np_scatter(x, IDX_ROWS, u, 0), [rn(3, 4), rn(2, 4)]),
    ("scatter_tensor_indices", lambda x, i, u: ag.scatter_elements(x, i, u, 1),
     lambda x, i, u: np_scatter(x, i, u, 1), [rn(3, 4), IDX_COLS, rn(3, 2)]),
    ("scatter_axis_neg", lambda x, u: ag.scatter_elements(x, IDX_COLS[:2], u, -1),
     lambda x, u: np_scatter(x, IDX_COLS[:2], u, 1), [rn(3, 4), rn(2, 2)]),
    ("scatter_3d", lambda x, i, u: ag.scatter_elements(x, i, u, 1),
     lambda x, i, u: np_scatter(x, i, u, 1),
     [rn(2, 3, 2), ints([[[2, 0]], [[1, -1]]]), rn(2, 1, 2)]),
    ("embedding", ag.embedding, lambda i, w: w[i], [ints([[0, 2], [2, 1], [3, 0]]), rn(4, 3)]),
    ("where", lambda x, y: ag.where(x, y, tensor.from_numpy(
        np.array([[[1, 0, 1]], [[0, 0, 1]]], np.float32), x.device)),
     lambda x, y: np.where(np.array([[[1, 0, 1]], [[0, 0, 1]]]) != 0, x, y),
     [rn(3), rn(2, 1, 1)]),
    ("split_num_output", lambda x: ag.concat(
        [p * float(i + 1) for i, p in enumerate(ag.split(x, 1, None, 3))], 1),
     lambda x: x * np.repeat([1.0, 2.0, 3.0], 2), [rn(2, 6)]),
    ("unsqueeze_default", ag.unsqueeze, lambda x: x[..., None], [rn(2, 3)]),
    ("gap_channels_last", lambda x: ag.globalaveragepool(x, "channels_last"),
     lambda x: x.mean((1, 2), keepdims=True), [rn(2, 3, 4, 5)]),
    ("gap_channels_first_1d", lambda x: ag.globalaveragepool(x, data_format="channels_first"),
     lambda x: x.mean(2, keepdims=True), [rn(2, 3, 4)]),
]


@pytest.mark.parametrize("name,fn,ref,inputs", DIFF_OPS,
                         ids=lambda v: v if isinstance(v, str) else "")
def test_op_forward_and_gradient(dev, name, fn, ref, inputs):
    check_op(fn, ref, inputs, device=dev)


def test_op_ids_are_unique():
    names = [e[0] for e in DIFF_OPS]
    assert len(names) == len(set(names))


@pytest.mark.parametrize("mode", ["DCR", "CRD"])
def test_depth_to_space_and_space_to_depth_invert_each_other(dev, mode):
    x = tensor.from_numpy(rn(2, 12, 3, 2), dev)
    y = ag.depth_to_space(x, 2, mode)
    assert y.shape == (2, 3, 6, 4)
    np.testing.assert_array_equal(ag.space_to_depth(y, 2, mode).to_numpy(), x.to_numpy())
    z = tensor.from_numpy(rn(1, 2, 6, 3), dev)
    np.testing.assert_array_equal(
        ag.depth_to_space(ag.space_to_depth(z, 3, mode), 3, mode).to_numpy(), z.to_numpy())


def test_depth_to_space_modes_differ():
    x = tensor.from_numpy(np.arange(8, dtype=np.float32).reshape(1, 8, 1, 1))
    dcr = ag.depth_to_space(x, 2, "DCR").to_numpy()
    crd = ag.depth_to_space(x, 2, "CRD").to_numpy()
    # DCR: channel (i * 2 + j) * 2 + k; CRD: channel k * 4 + i * 2 + j
    np.testing.assert_array_equal(dcr[0, 0], [[0, 2], [4, 6]])
    np.testing.assert_array_equal(crd[0, 0], [[0, 1], [2, 3]])


def test_scatter_elements_constant_updates_and_gradients(dev):
    x = tensor.Tensor(data=rn(3, 4), device=dev, stores_grad=True)
    upd = [[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0]]
    with ag.train_mode():
        y = ag.scatter_elements(x, IDX_ROWS, upd, axis=0)
    expected = np_scatter(x.to_numpy(), IDX_ROWS, np.array(upd, np.float32), 0)
    np.testing.assert_array_equal(y.to_numpy(), expected)
    g = ag.gradients(y)[x].to_numpy()
    written = np_scatter(np.zeros((3, 4)), IDX_ROWS, np.ones((2, 4)), 0)
    np.testing.assert_array_equal(g, 1.0 - written)  # zero where scattered


# ---- no-gradient ops: forward vs numpy, and no gradient reaches the input ----

def no_grad_reaches(fn, x_np, dev):
    x = tensor.Tensor(data=x_np, device=dev, stores_grad=True)
    with ag.train_mode():
        y = fn(x)
    return x not in ag.gradients(y)


def test_shape(dev):
    x = rn(2, 3, 4)
    got = ag.shape(tensor.from_numpy(x, dev))
    assert got.dtype == tensor.float32 and got.device == dev
    np.testing.assert_array_equal(got.to_numpy(), [2, 3, 4])
    np.testing.assert_array_equal(ag.Shape()(tensor.from_numpy(rn(5), dev)).to_numpy(), [5])
    assert no_grad_reaches(ag.shape, x, dev)


@pytest.mark.parametrize("axis", [-1, 0, 1, -2])
def test_onehot(dev, axis):
    idx = ints([[0, 2, -1], [5, -3, -4]])  # -1 -> 2, -3 -> 0; 5 and -4 are out: all off
    got = ag.onehot(axis, tensor.from_numpy(idx, dev), 3, [-0.5, 2.0])
    np.testing.assert_array_equal(got.to_numpy(), np_onehot(idx, 3, [-0.5, 2.0], axis))


def test_onehot_float_indices_and_class(dev):
    idx = np.array([0.0, 3.0, 1.9, -1.0], np.float32)
    got = ag.OneHot(-1, 4, np.array([0, 1]))(tensor.from_numpy(idx, dev))
    np.testing.assert_array_equal(got.to_numpy(), np_onehot(idx, 4, [0, 1], -1))
    assert no_grad_reaches(lambda t: ag.onehot(-1, t, 4, [0, 1]), idx, dev)


def test_constant_of_shape(dev):
    sizes = tensor.from_numpy(np.array([2, 0, 3], np.float32), dev)
    got = ag.constant_of_shape(sizes, 1.5)
    assert got.shape == (2, 0, 3) and got.device == dev
    got = ag.constant_of_shape(ag.shape(tensor.from_numpy(rn(4, 2), dev)), value=-2)
    np.testing.assert_array_equal(got.to_numpy(), np.full((4, 2), -2.0, np.float32))
    np.testing.assert_array_equal(ag.constant_of_shape([3, 1]).to_numpy(), np.zeros((3, 1)))
    np.testing.assert_array_equal(ag.ConstantOfShape(np.array([7.0]))(
        tensor.from_numpy(ints([2]), dev)).to_numpy(), [7.0, 7.0])
    assert no_grad_reaches(ag.constant_of_shape, np.array([2.0, 2.0], np.float32), dev)


@pytest.mark.parametrize("a", [
    np.array([[0, 1.5], [-2, 0], [3, 4]], np.float32),
    np.zeros((2, 3), np.float32),
    (R.random((2, 3, 4)) > 0.6).astype(np.float32),
    ints([0, 3, 0, -1]),
])
def test_nonzero(dev, a):
    got = ag.nonzero(tensor.from_numpy(a, dev))
    assert got.dtype == tensor.int32 and got.device == dev
    np.testing.assert_array_equal(got.to_numpy(), np.array(np.nonzero(a)).reshape(a.ndim, -1))
    assert no_grad_reaches(ag.nonzero, np.array([0.0, 2.0, 0.5], np.float32), dev)


def test_embedding_class_and_float_indices(dev):
    w = tensor.Tensor(data=rn(5, 2), device=dev, stores_grad=True)
    idx = tensor.from_numpy(np.array([4.0, 1.0, 4.0], np.float32), dev)
    with ag.train_mode():
        y = ag.Embedding()(idx, w)
    np.testing.assert_array_equal(y.to_numpy(), w.to_numpy()[[4, 1, 4]])
    grads = ag.gradients(y)
    np.testing.assert_array_equal(grads[w].to_numpy()[:, 0], [0, 1, 0, 0, 2])
    assert idx not in grads


def test_layer_embedding_still_works():
    emb = layer.Embedding(6, 3)
    y = emb(tensor.from_numpy(ints([[1, 5], [0, 1]])))
    np.testing.assert_array_equal(y.to_numpy(), emb.W.to_numpy()[[[1, 5], [0, 1]]])


def test_split_unsqueeze_and_pool_signatures():
    x = tensor.from_numpy(rn(2, 6))
    assert [p.shape for p in ag.split(x, 1, None, num_output=2)] == [(2, 3), (2, 3)]
    assert [p.shape for p in ag.split(x, 1, [1, 5])] == [(2, 1), (2, 5)]
    assert [p.shape for p in ag.split(x, -1, 3)] == [(2, 2)] * 3
    assert ag.unsqueeze(x).shape == (2, 6, 1)
    assert ag.unsqueeze(x, 0).shape == (1, 2, 6)
    nhwc = tensor.from_numpy(rn(2, 4, 5, 3))
    assert ag.globalaveragepool(nhwc, "channels_last").shape == (2, 1, 1, 3)
    assert ag.globalaveragepool(nhwc).shape == (2, 4, 1, 1)


def test_where_takes_singa_argument_order():
    x, y = tensor.from_numpy(rn(4)), tensor.from_numpy(rn(4))
    cond = np.array([1, 0, 0, 1], np.float32)
    got = ag.where(x, y, tensor.from_numpy(cond)).to_numpy()
    np.testing.assert_array_equal(got, np.where(cond != 0, x.to_numpy(), y.to_numpy()))
    np.testing.assert_array_equal(ag.Where([True, False, False, True])(x, y).to_numpy(), got)


# ---- bad arguments ----

def bad(fn, exc, match):
    with pytest.raises(exc, match=match):
        fn()


X4 = tensor.from_numpy(rn(1, 4, 2, 3))


@pytest.mark.parametrize("fn,exc,match", [
    (lambda: ag.pad(X4, "wrap", [0] * 8), ValueError, "pad: mode 'wrap' is not supported"),
    (lambda: ag.pad(X4, "constant", [1, 1, 1, 1]), ValueError,
     r"pad: 4 pads .* shape \(1, 4, 2, 3\); expected 8"),
    (lambda: ag.pad(X4, "edge", [0, 0, 0, -1, 0, 0, 0, 0]), ValueError, "negative"),
    (lambda: ag.pad(X4, "reflect", [0, 0, 2, 0, 0, 0, 0, 0]), ValueError,
     "reflect mode pads axis 2 of size 2 by \\(2, 0\\)"),
    (lambda: ag.pad(tensor.from_numpy(np.zeros((0, 2), np.float32)), "edge", [1, 0, 0, 0]),
     ValueError, "edge mode cannot pad axis 0 of size 0"),
    (lambda: ag.depth_to_space(X4, 3), ValueError, "4 channels .* not divisible by "
     "blocksize\\^2 = 9"),
    (lambda: ag.depth_to_space(X4, 2, "XYZ"), ValueError, "depth_to_space: mode 'XYZ'"),
    (lambda: ag.depth_to_space(X4, 0), ValueError, "blocksize must be an int >= 1"),
    (lambda: ag.depth_to_space(tensor.from_numpy(rn(4, 2, 2)), 2), ValueError,
     "expected an NCHW input"),
    (lambda: ag.space_to_depth(X4, 2), ValueError, "divisible by blocksize 2"),
    (lambda: ag.space_to_depth(X4, 1, "abc"), ValueError, "space_to_depth: mode 'abc'"),
    (lambda: ag.upsample(X4, "linear", [1, 1, 2, 2]), ValueError, "upsample: mode 'linear'"),
    (lambda: ag.upsample(X4, "nearest", [2, 2]), ValueError, "give one scale per axis"),
    (lambda: ag.upsample(X4, "nearest", [1, 1, 1.5, 2]), ValueError, "upsample: scales"),
    (lambda: ag.tile(X4, [1, -1]), ValueError, "tile: repeats must be integers >= 0"),
    (lambda: ag.expand(X4, [3, 1, 1]), ValueError, r"expand: x of shape \(1, 4, 2, 3\) cannot"),
    (lambda: ag.onehot(3, tensor.from_numpy(ints([1, 2])), 3, [0, 1]), ValueError,
     "onehot: axis 3 out of range"),
    (lambda: ag.onehot(-1, tensor.from_numpy(ints([1])), 3, [0, 1, 2]), ValueError,
     r"values must be \[off_value, on_value\]"),
    (lambda: ag.onehot(-1, tensor.from_numpy(ints([1])), 0, [0, 1]), ValueError,
     "depth must be one integer >= 1"),
    (lambda: ag.scatter_elements(tensor.from_numpy(rn(3, 4)), IDX_ROWS, rn(2, 3)), ValueError,
     "indices .* and updates .* must have one shape"),
    (lambda: ag.scatter_elements(tensor.from_numpy(rn(2, 4)), IDX_ROWS, rn(2, 4)), ValueError,
     r"out of range for axis 0 of size 2 .* \[-2, 2\)"),
    (lambda: ag.scatter_elements(tensor.from_numpy(rn(3, 4)), [[0], [0]], rn(2, 1)), ValueError,
     "more than once"),
    (lambda: ag.scatter_elements(tensor.from_numpy(rn(3, 4)), tensor.from_numpy(ints([[5]])),
                                 tensor.from_numpy(rn(1, 1))), ValueError, "out of range"),
    (lambda: ag.scatter_elements(tensor.from_numpy(rn(3, 4)), [[0.5]], [[1.0]]), TypeError,
     "indices must be integers"),
    (lambda: ag.scatter_elements(tensor.from_numpy(rn(3)), [0], [1.0], axis=1), ValueError,
     "axis 1 out of range"),
    (lambda: ag.constant_of_shape(tensor.from_numpy(np.array([2.5], np.float32))), ValueError,
     "constant_of_shape: x must be a 1-d list of integers"),
    (lambda: ag.constant_of_shape([2, -1]), ValueError, "negative size"),
    (lambda: ag.nonzero(tensor.from_numpy(np.array(1.0, np.float32))), ValueError,
     "nonzero: x is 0-d"),
    (lambda: ag.split(X4, 1, None), ValueError, "give parts"),
    (lambda: ag.split(X4, 1, 3), ValueError, "cannot split axis 1 of size 4"),
    (lambda: ag.split(X4, 1, [2, 2], 3), ValueError, "num_output is 3"),
    (lambda: ag.globalaveragepool(X4, "NHWC"), ValueError, "data_format 'NHWC'"),
    (lambda: ag.embedding(tensor.from_numpy(ints([0])), X4), ValueError, "w must be 2-d"),
], ids=lambda v: "" if callable(v) or isinstance(v, type) else v[:40])
def test_bad_arguments(fn, exc, match):
    bad(fn, exc, match)


def recording(dev, fn):
    """Runs fn() while a fresh graph records on dev; the graph is dropped after."""
    dev.ResetGraph()
    dev.EnableGraph(True)
    try:
        return fn()
    finally:
        dev.EnableGraph(False)
        dev.ResetGraph()


def fresh(dev):
    """A device of its own for graph tests on the CPU (the GPU's device is shared)."""
    return dev if dev.is_cuda else device.create_cpu_device()


def test_value_dependent_ops_refuse_to_record(dev):
    dev = fresh(dev)
    x = tensor.from_numpy(np.array([0.0, 1.0], np.float32), dev)
    with pytest.raises(RuntimeError, match="nonzero: its output shape .* depends on the "
                       "values of x.*records a graph"):
        recording(dev, lambda: ag.nonzero(x))
    with pytest.raises(RuntimeError, match="constant_of_shape: x is a Tensor .* records a "
                       "graph; pass a list"):
        recording(dev, lambda: ag.constant_of_shape(x))
    with pytest.raises(RuntimeError, match="expand: shape is a Tensor"):
        recording(dev, lambda: ag.Expand(x))
    # a list of sizes needs no value: it records, and the graph fills it
    dev.ResetGraph()
    dev.EnableGraph(True)
    y = ag.constant_of_shape([2, 2], 3.0)
    z = ag.expand(tensor.from_numpy(np.ones(2, np.float32), dev), [3, 1])
    dev.EnableGraph(False)
    dev.RunGraph(True)
    dev.ResetGraph()
    np.testing.assert_array_equal(y.to_numpy(), 3.0)
    np.testing.assert_array_equal(z.to_numpy(), np.ones((3, 2)))


# ---- graph mode == eager mode ----

def forward_backward(fn, ts, dy):
    with ag.train_mode():
        y = fn(*ts)
    grads = ag.gradients(y, dy)
    return y, [grads.get(t) for t in ts]


@pytest.mark.parametrize("name,fn,ref,inputs", DIFF_OPS,
                         ids=lambda v: v if isinstance(v, str) else "")
def test_op_records_and_replays_like_eager(dev, name, fn, ref, inputs):
    """Each op's forward and backward, recorded once, replayed twice: on the recorded inputs
    and on new values, each time equal to eager mode on the same values."""
    dev = fresh(dev)
    ts = [tensor.Tensor(data=a, device=dev, stores_grad=a.dtype.kind == "f") for a in inputs]
    with ag.train_mode():
        out_shape = fn(*ts).shape
    dy = tensor.from_numpy(rn(*out_shape), dev)
    dev.ResetGraph()
    dev.EnableGraph(True)
    try:
        y, grads = forward_backward(fn, ts, dy)
    finally:
        dev.EnableGraph(False)
    try:
        for step in range(2):
            if step:
                for t, a in zip(ts, inputs):
                    if a.dtype.kind == "f":
                        t.copy_from_numpy(rn(*a.shape))
                dy.copy_from_numpy(rn(*out_shape))
            dev.RunGraph(True)
            got = [y.to_numpy()] + [g.to_numpy() for g in grads if g is not None]
            ey, egrads = forward_backward(fn, ts, dy)
            want = [ey.to_numpy()] + [g.to_numpy() for g in egrads if g is not None]
            assert len(got) == len(want) == 1 + sum(a.dtype.kind == "f" for a in inputs)
            for g, w in zip(got, want):
                np.testing.assert_allclose(g, w, rtol=1e-6, atol=1e-6, err_msg=f"step {step}")
    finally:
        dev.ResetGraph()


class Lookup(layer.Layer):
    """A learned table read with autograd.embedding."""

    def initialize(self, ids):
        self.W = tensor.Tensor((5, 4), ids.device, requires_grad=True, stores_grad=True)
        self.W.gaussian(0.0, 0.5)

    def forward(self, ids):
        return ag.embedding(ids, self.W)


class LayoutNet(model.Model):
    """Linear -> depth_to_space (CRD) -> reflect pad -> space_to_depth -> upsample -> tile ->
    global average pool; an embedding, edge-padded, scattered into it; one-hot targets."""

    def __init__(self, batch):
        super().__init__()
        self.fc1 = layer.Linear(16)
        self.lookup = Lookup()
        self.fc2 = layer.Linear(3)
        self.loss = layer.SoftMaxCrossEntropy()
        self.cols = np.tile([0, 2, 4, 6, 8], (batch, 1))

    def forward(self, x, ids):
        h = ag.reshape(self.fc1(x), [-1, 4, 2, 2])
        h = ag.depth_to_space(h, 2, "CRD")  # (N, 1, 4, 4)
        h = ag.pad(h, "reflect", [0, 0, 1, 1, 0, 0, 1, 1])  # (N, 1, 6, 6)
        h = ag.space_to_depth(h, 3)  # (N, 9, 2, 2)
        h = ag.tile(ag.upsample(h, "nearest", [1, 1, 2, 1]), [1, 1, 1, 2])  # (N, 9, 4, 4)
        h = ag.flatten(ag.globalaveragepool(ag.relu(h)))  # (N, 9)
        e = ag.pad(self.lookup(ids), "edge", [0, 0, 0, 1])  # (N, 5)
        return self.fc2(ag.scatter_elements(h, self.cols, e, axis=1))

    def train_one_batch(self, x, ids, y):
        out = self.forward(x, ids)
        loss = self.loss(out, ag.onehot(-1, y, 3, [0.0, 1.0]))
        self.optimizer(loss)
        return out, loss


def train_layout_net(dev, graph, steps=3, batch=4):
    dev.SetRandSeed(0)
    r = np.random.default_rng(3)
    data = [(r.standard_normal((batch, 6)).astype(np.float32),
             r.integers(0, 5, batch).astype(np.int32),
             r.integers(0, 3, batch).astype(np.int32)) for _ in range(steps)]
    tx = tensor.Tensor((batch, 6), dev)
    tids = tensor.Tensor((batch,), dev, dtype=tensor.int32)
    ty = tensor.Tensor((batch,), dev, dtype=tensor.int32)
    tids.copy_from_numpy(data[0][1])
    m = LayoutNet(batch)
    m.set_optimizer(opt.SGD(0.1, momentum=0.9))
    m.compile([tx, tids], is_train=True, use_graph=graph, sequential=True)
    trace = []
    for x, ids, y in data:
        tx.copy_from_numpy(x)
        tids.copy_from_numpy(ids)
        ty.copy_from_numpy(y)
        out, loss = m(tx, tids, ty)
        trace.append((out.to_numpy(), loss.to_numpy()))
    states = {k: v.to_numpy() for k, v in m.get_states().items()}
    m.eval()
    return trace, states


def test_model_with_new_ops_trains_the_same_in_graph_mode(dev):
    ref_trace, ref_states = train_layout_net(fresh(dev), graph=False)
    trace, states = train_layout_net(fresh(dev), graph=True)
    assert set(states) == set(ref_states) and "lookup.W" in states
    for step, ((o1, l1), (o2, l2)) in enumerate(zip(ref_trace, trace)):
        np.testing.assert_allclose(o2, o1, rtol=1e-5, atol=1e-6, err_msg=f"out {step}")
        np.testing.assert_allclose(l2, l1, rtol=1e-5, atol=1e-6, err_msg=f"loss {step}")
    for k in ref_states:
        np.testing.assert_allclose(states[k], ref_states[k], rtol=1e-5, atol=1e-6, err_msg=k)
    assert not np.allclose(ref_trace[0][1], ref_trace[-1][1])  # it did train


def test_index_constants_are_not_host_copies_in_a_recorded_step(dev):
    """Indices and values the ops build from shapes or Python lists are made once, when the
    step is recorded: no replay copies them from the host (which would also keep a GPU's step
    from being captured as a CUDA graph)."""
    x = tensor.Tensor(data=np.arange(24, dtype=np.float32).reshape(2, 3, 4), device=dev)

    def step():
        ys = [x[:, ::-1], x.repeat(2, 1), ag.pad(x, "reflect", [0, 0, 1, 0, 0, 2]),
              ag.gather(x, 2, [3, 0]), ag.where(x, x, [1.0, 0.0, 1.0, 0.0]), ag.shape(x),
              ag.tile(x, [1, 2, 1]), ag.scatter_elements(x, [[[0]]], [[[5.0]]], 0)]
        return ys

    names = recorded_nodes(dev, step)
    assert names and "CopyFromHost" not in names, names
    expected = [a.to_numpy() for a in step()]  # eagerly, as a check of the values
    dev.ResetGraph()
    dev.EnableGraph(True)
    ys = step()
    dev.EnableGraph(False)
    dev.RunGraph(True)
    for y, e in zip(ys, expected):
        np.testing.assert_array_equal(y.to_numpy(), e)
    dev.ResetGraph()


def test_zero_dim_index_and_condition_constants_keep_their_rank():
    """A 0-d index drops the gathered axis (numpy.take), and a 0-d condition broadcasts
    without adding an axis: the constants made from them stay 0-d."""
    x = rn(3, 4)
    t = tensor.from_numpy(x)
    for axis, idx in ((1, np.array(3)), (0, 2), (-1, np.int64(-1))):
        np.testing.assert_array_equal(ag.gather(t, axis, idx).to_numpy(), np.take(x, idx, axis))
    np.testing.assert_array_equal(ag.where(t, ag.mul(t, -1.0), np.array(0.0)).to_numpy(), -x)
