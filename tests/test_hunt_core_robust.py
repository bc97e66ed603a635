"""Robustness of the C++ core as reached from Python: bad input must raise a clear Python
exception naming what was wrong; nothing may crash the interpreter, read or write out of
bounds, or silently give a wrong result. Calls that could crash run in a subprocess, so a
segfault shows as a negative return code instead of killing the test run."""

import os
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from minisinga import _core, autograd, layer, tensor

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIG = 2**63 - 1  # the largest int64: sums and products of it wrap


def run_isolated(code, timeout=60):
    """Runs `code` in a fresh interpreter (memory poisoned, one thread); returns the result."""
    prelude = ("import numpy as np\n"
               "from minisinga import _core, autograd, layer, tensor\n")
    env = dict(os.environ, OMP_NUM_THREADS="1", MINISINGA_POISON_MEMORY="1")
    return subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(code)],
                          capture_output=True, text=True, timeout=timeout, cwd=ROOT, env=env)


def assert_clean_error(code, exc, match):
    """`code` must end in a Python exception `exc` whose message contains `match` (exit 1),
    never a crash (negative return code) nor success."""
    r = run_isolated(code)
    assert r.returncode >= 0, f"interpreter crashed (signal {-r.returncode}):\n{r.stderr[-2000:]}"
    assert r.returncode == 1, f"no error raised (rc {r.returncode}); stdout:\n{r.stdout[-2000:]}"
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith(exc + ":") and match in last, last


def f32(shape, value=1.0):
    t = _core.Tensor(list(shape), _core.default_device(), _core.DType.float32)
    _core.fill(t, value)
    return t


def i32(values):
    a = np.asarray(values, np.int32)
    t = _core.Tensor(list(a.shape), _core.default_device(), _core.DType.int32)
    t.copy_from_numpy(a)
    return t


# ---- bugs: crashes / out-of-bounds accesses from unchecked int64 arithmetic ----

@pytest.mark.parametrize("call", [
    # (KH - 1) * dilation wraps to 0: the dilated kernel "fits" a 1x1 input, Im2Col segfaults
    "autograd.conv2d(tensor.ones((1, 1, 1, 1)), tensor.ones((1, 1, 5, 5)), "
    "dilation=(2**62, 2**62))",
    "layer.Conv2d(1, 5, dilation=2**62)(tensor.ones((1, 1, 1, 1)))",
    "_core.conv2d_backward_data(_core.Tensor([1, 1, 1, 1], _core.default_device()), "
    "_core.Tensor([1, 1, 5, 5], _core.default_device()), [1, 1, 1, 1], [1, 1], [0, 0, 0, 0], "
    "[2**62, 2**62], 1)",
    "_core.conv2d_backward_weight(_core.Tensor([1, 1, 1, 1], _core.default_device()), "
    "_core.Tensor([1, 1, 1, 1], _core.default_device()), [1, 1, 5, 5], [1, 1], [0, 0, 0, 0], "
    "[2**62, 2**62], 1)",
], ids=["autograd.conv2d", "layer.Conv2d", "backward_data", "backward_weight"])
def test_conv_dilation_overflow_is_refused_not_a_segfault(call):
    assert_clean_error(call, "ValueError", "dilat")


def test_constant_pad_overflow_is_refused_not_an_out_of_bounds_write():
    # 4 + (2^63-1) + (2^63-1) wraps to 2: a 2-element output that the copy writes 4 elements
    # into, starting one before it (heap corruption; a bigger tensor segfaults).
    assert_clean_error("""
        x = tensor.from_numpy(np.ones((1000, 1000), np.float32))
        y = autograd.pad(x, "constant", [2**63 - 1, 0, 2**63 - 1, 0])
        print(y.shape)
        del x, y
        x = tensor.from_numpy(np.ones((1000, 1000), np.float32))
        print((x + x).shape)
    """, "ValueError", "pad")


def test_pad_backward_overflow_is_refused_not_an_out_of_bounds_read():
    # dy.shape - before - after wraps to a positive size: the slice reads far past dy.
    assert_clean_error("""
        dy = _core.Tensor([4], _core.default_device())
        _core.fill(dy, 1.0)
        print(_core.pad_backward(dy, [(2**63 - 1, 2**63 - 1 - 2**24)]).shape)
    """, "ValueError", "pad_backward")


def test_tensor_repeat_with_a_huge_count_is_refused_not_a_segfault():
    # numpy's own np.repeat overflows and crashes on this count; repeat must check first.
    assert_clean_error("""
        t = tensor.from_numpy(np.arange(4, dtype=np.float32))
        print(t.repeat(2**62).shape)
    """, "ValueError", "repeat")


# ---- bugs: bad input silently accepted ----

@pytest.mark.parametrize("padding", [
    [BIG, BIG, 0, 0],  # H + top + bottom wraps back to H - 2
    [0, 0, BIG, BIG],
], ids=["top_bottom", "left_right"])
@pytest.mark.parametrize("op", ["conv2d", "pool2d"])
def test_window_padding_overflow_is_refused(op, padding):
    x = f32([1, 1, 3, 8])
    with pytest.raises(ValueError, match=op):
        if op == "conv2d":
            y = _core.conv2d(x, f32([1, 1, 1, 2]), None, [1, 1], padding, [1, 1], 1)
        else:
            y, _ = _core.pool2d(x, [1, 2], [1, 1], padding, True)
        print(y.shape)  # today: (1, 1, 1, 7) / (1, 1, 3, 5) of zeros


def test_max_pool_layer_with_overflowing_padding_is_refused():
    with pytest.raises(ValueError, match="pool2d"):
        layer.MaxPool2d(1, stride=1, padding=BIG)(tensor.ones((1, 1, 3, 3)))


def test_split_sizes_that_overflow_are_refused():
    x = _core.Tensor([2, 0], _core.default_device())
    with pytest.raises(ValueError, match="split"):
        # the sizes add up to 2 only modulo 2^64; today: pieces of shape (2^63-1, 0)
        _core.split(x, [BIG, BIG, 4], 0)
    with pytest.raises(ValueError, match="split"):
        autograd.split(tensor.Tensor((2, 0)), 0, [BIG, BIG, 4])


@pytest.mark.parametrize("target", [
    np.array([[0.0], [2.0]], np.float32),  # class indices as a float column
    np.array([0.0, 0.0, 1.0], np.float32),  # one one-hot row for the whole batch
    np.array([0.0, 2.0], np.float32),  # class indices as floats (today: "Mul: shapes ...")
], ids=["column", "row", "indices"])
def test_cross_entropy_float_target_of_the_wrong_shape_is_refused(target):
    # softmax_cross_entropy refuses these ("soft target has shape ..."); cross_entropy
    # broadcast the first two into a wrong loss.
    p = tensor.from_numpy(np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]], np.float32))
    with pytest.raises(ValueError, match="cross_entropy"):
        autograd.cross_entropy(p, tensor.from_numpy(target))


def test_zero_size_shape_whose_other_dims_overflow_is_refused_or_readable():
    # numpy refuses such a shape ("array is too big"); the core made it, and to_numpy failed.
    try:
        t = tensor.Tensor((0, 2**62, 2**62))
    except ValueError:
        return
    assert t.to_numpy().shape == (0, 2**62, 2**62)


# ---- bugs: unclear errors ----

@pytest.mark.parametrize("key", [np.array([0, 2]), np.array([True, False, True, False])],
                         ids=["int", "bool"])
def test_getitem_with_a_numpy_array_names_the_index_type(key):
    # today: numpy's "The truth value of an array ... is ambiguous" (from `Ellipsis in keys`)
    t = tensor.from_numpy(np.arange(4, dtype=np.float32))
    with pytest.raises(IndexError, match="ndarray"):
        t[key]


def test_shape_beyond_int64_names_the_shape():
    # today: pybind11's "__init__(): incompatible constructor arguments ..."
    with pytest.raises(ValueError, match="shape"):
        tensor.Tensor((2**63,))


def test_big_endian_float16_array_stays_float16():
    a = np.arange(4, dtype=">f2")
    t = tensor.from_numpy(a)
    assert t.dtype == tensor.float16  # native float16 does; today big-endian became float32
    np.testing.assert_array_equal(t.to_numpy(), a)


# ---- regressions: what was checked and is fine ----

BAD_CALLS = [
    # (thunk, exception, message fragment)
    (lambda: _core.Tensor([2**40, 2**40], _core.default_device()), ValueError, "64-bit"),
    (lambda: _core.Tensor([-1, 2], _core.default_device()), ValueError, "negative"),
    (lambda: _core.binary(_core.BinaryOp.Add, f32([2, 1] * 10), f32([1, 2] * 10)), ValueError,
     "distinct axes"),
    (lambda: _core.transpose(f32([2, 3] * 9)), ValueError, "distinct axes"),
    (lambda: _core.conv2d(f32([1, 1, 1, 1]), f32([1, 1, 2, 2]), None, [1, 1], [0] * 4,
                          [2**62, 2**62]), ValueError, "larger than the padded input"),
    (lambda: _core.conv2d(f32([1, 1, 3, 3]), f32([1, 1, 4, 4])), ValueError, "larger"),
    (lambda: _core.conv2d(f32([1, 1, 3, 3]), f32([1, 1, 2, 2]), stride=[0, 1]), ValueError,
     "stride"),
    (lambda: _core.conv2d(f32([1, 1, 3, 3]), f32([1, 1, 2, 2]), padding=[-1, 0, 0, 0]),
     ValueError, "padding"),
    (lambda: _core.conv2d(f32([1, 1, 3, 3]), f32([1, 1, 2, 2]), dilation=[0, 1]), ValueError,
     "dilation"),
    (lambda: _core.conv2d(f32([1, 3, 3, 3]), f32([2, 1, 2, 2]), groups=2), ValueError,
     "groups"),
    (lambda: _core.conv2d(f32([1, 4, 3, 3]), f32([4, 1, 1, 1]), groups=2**62), ValueError,
     "groups"),
    (lambda: _core._conv2d_path(_core.default_device(), [1, 1, 2**31, 2**31], [1, 1, 1, 1]),
     ValueError, "32-bit"),
    (lambda: _core.pool2d(f32([1, 1, 3, 3]), [4, 4], [1, 1], [0] * 4, True), ValueError,
     "larger"),
    (lambda: _core.pool2d(f32([1, 1, 3, 3]), [2, 2], [0, 1], [0] * 4, True), ValueError,
     "stride"),
    (lambda: _core.pool2d(f32([1, 1, 3, 3]), [BIG, 1], [1, 1], [2, 2, 0, 0], False),
     ValueError, "larger"),
    (lambda: _core.pool2d_backward(f32([1, 1, 2, 2]), [1, 1, 3, 3], None, [2, 2], [1, 1],
                                   [0] * 4, True), ValueError, "indices"),
    (lambda: _core.take(f32([3]), i32([5]), 0), ValueError, "out of range"),
    (lambda: _core.take(f32([3]), i32([-4]), 0), ValueError, "out of range"),
    (lambda: _core.take(f32([0, 3]), i32([0]), 0), ValueError, "out of range"),
    (lambda: _core.take_backward(f32([1]), i32([5]), 0, [3]), ValueError, "out of range"),
    (lambda: _core.one_hot(i32([3]), 3), ValueError, "outside [0, 3)"),
    (lambda: _core.one_hot(i32([0]), -1), ValueError, "negative"),
    (lambda: _core.softmax_cross_entropy(f32([2, 3]), i32([3, 0])), ValueError, "label 3"),
    (lambda: _core.softmax_cross_entropy(f32([2, 3]), i32([-1, 0])), ValueError, "label -1"),
    (lambda: _core.softmax_cross_entropy(f32([2, 3]), f32([2])), ValueError, "soft target"),
    (lambda: _core.softmax_cross_entropy(f32([2, 0]), i32([0, 0])), ValueError, "no classes"),
    (lambda: _core.cross_entropy_backward(f32([2, 3]), i32([7, 0]), f32([2])), ValueError,
     "label 7"),
    (lambda: _core.reduce_max(f32([0, 3]), [0]), ValueError, "zero elements"),
    (lambda: _core.reduce_mean(f32([0, 3]), [0]), ValueError, "zero elements"),
    (lambda: _core.argmax(f32([3, 0]), 1), ValueError, "size 0"),
    (lambda: _core.batchnorm_forward_training(f32([0, 3, 2, 2]), f32([3]), f32([3]),
                                              f32([3]), f32([3])), ValueError, "one value"),
    (lambda: _core.matmul(f32([3, 3]), f32([3, 3]), out=None, beta=1.0), ValueError, "beta"),
    (lambda: _core.pad_backward(f32([4]), [(2**62, 2**62)]), ValueError, "smaller"),
    (lambda: _core.slice_backward(f32([1]), [-2], [0], [1]), ValueError, "negative"),
    (lambda: _core.select_sparse(f32([4]), float("nan"), True), ValueError, "fraction"),
    (lambda: _core.uniform(f32([2]), -3e38, 3e38), ValueError, "finite"),
    (lambda: _core.adam_update(f32([3]), f32([3]), f32([3]), f32([3]), f32([1]), f32([1]),
                               beta1=1.5), ValueError, "beta1"),
    (lambda: f32([2]).copy_from_numpy(np.zeros(3, np.float32)), ValueError, "bytes"),
    (lambda: f32([2]).copy_from_numpy(np.zeros(4, np.float32)[::2]), ValueError,
     "C-contiguous"),
    (lambda: f32([2]).copy_from_numpy(np.array([1, 2], ">f4")), TypeError, ">f4"),
    (lambda: _core.default_device()._fresh_block(2**62), RuntimeError, "out of memory"),
    (lambda: tensor.from_numpy(np.array([1 + 2j])), TypeError, "complex128"),
    (lambda: tensor.from_numpy(np.array([1, "a"], dtype=object)), TypeError, "object"),
    (lambda: tensor.from_numpy(np.array([2**40])), ValueError, "int32"),
    (lambda: tensor.zeros((2, 3)).reshape((4, 2)), ValueError, "cannot reshape"),
    (lambda: tensor.zeros((2, 3)).transpose((0, 0)), ValueError, "repeats axis"),
    (lambda: tensor.zeros((2, 3)).copy_from(tensor.zeros((3, 2))), ValueError, "shapes differ"),
    (lambda: tensor.zeros((2, 3)).copy_from(tensor.zeros((2, 3)), offset=10), ValueError,
     "offset"),
    (lambda: tensor.zeros((2, 3)).copy_data(tensor.zeros((2, 3), dtype=tensor.int32)),
     TypeError, "dtypes differ"),
    (lambda: layer.Embedding(5, 3)(tensor.from_numpy(np.array([[7]], np.int32))), ValueError,
     "out of range"),
]


@pytest.mark.parametrize("i", range(len(BAD_CALLS)))
def test_bad_call_raises_a_named_error(i):
    thunk, exc, match = BAD_CALLS[i]
    with pytest.raises(exc, match=re.escape(match)):
        thunk()


def test_cross_device_operands_are_refused():
    other = _core.create_cpu_device()
    x = _core.Tensor([2, 3], other)
    _core.fill(x, 1.0)
    for thunk in [lambda: _core.binary(_core.BinaryOp.Add, f32([2, 3]), x),
                  lambda: _core.concat([f32([2, 3]), x], 0),
                  lambda: _core.where(i32([1, 0]), f32([2]), _core.Tensor([2], other)),
                  lambda: _core.conv2d(f32([1, 1, 3, 3]), f32([2, 1, 2, 2]),
                                       _core.Tensor([2], other)),
                  lambda: _core.sgd_update(f32([3]), f32([3]), _core.Tensor([1], other))]:
        with pytest.raises(TypeError, match="different devices"):
            thunk()
    y = f32([2, 3], 0.0)
    _core.copy(y, x)  # an explicit copy across devices is allowed
    np.testing.assert_array_equal(y.to_numpy(), 1.0)


def test_empty_tensors_through_ops_that_allow_them():
    assert _core.conv2d(f32([0, 1, 3, 3]), f32([1, 1, 2, 2])).shape == (0, 1, 2, 2)
    assert _core.pool2d(f32([0, 1, 3, 3]), [2, 2], [1, 1], [0] * 4, True)[0].shape == (0, 1, 2, 2)
    np.testing.assert_array_equal(_core.matmul(f32([2, 0]), f32([0, 3])).to_numpy(), 0)
    np.testing.assert_array_equal(_core.reduce_sum(f32([0, 3]), [0]).to_numpy(), 0)
    assert _core.softmax(f32([3, 0]), -1).shape == (3, 0)
    assert _core.argmax(f32([0, 3]), 1).shape == (0,)
    np.testing.assert_array_equal(_core.conv2d_backward_bias(f32([0, 2, 3, 3])).to_numpy(), 0)
    assert _core.split(f32([0]), [], 0) == []
    assert _core.select_sparse(f32([0]), 0.5, True).shape == (0,)


def test_integer_division_by_zero_saturates_instead_of_trapping():
    zero, five = i32([0, 0]), i32([5, -5])
    np.testing.assert_array_equal(
        _core.binary(_core.BinaryOp.Div, five, zero).to_numpy(), [2**31 - 1, -2**31])
    np.testing.assert_array_equal(
        _core.binary(_core.BinaryOp.Div, i32([-2**31]), i32([-1])).to_numpy(), [2**31 - 1])


def test_max_pool_backward_ignores_indices_outside_the_plane():
    idx = i32(np.full((1, 1, 2, 2), 99))
    dx = _core.pool2d_backward(f32([1, 1, 2, 2]), [1, 1, 3, 3], idx, [2, 2], [1, 1], [0] * 4,
                               True)
    np.testing.assert_array_equal(dx.to_numpy(), 0)


def test_from_numpy_layouts_and_byte_orders():
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    for arr in (a[:, ::2], a.T, a.astype(">f4"), np.arange(4, dtype=">i4")):
        t = tensor.from_numpy(arr)
        np.testing.assert_array_equal(t.to_numpy(), arr)
    ro = np.arange(4, dtype=np.float32)
    ro.flags.writeable = False
    np.testing.assert_array_equal(tensor.from_numpy(ro).to_numpy(), ro)


def test_graph_misuse_raises_and_leaves_the_device_usable():
    dev = _core.create_cpu_device()
    x = _core.Tensor([2], dev)
    _core.fill(x, 0.0)
    dev.RunGraph()  # nothing recorded: a no-op
    dev.EnableGraph(True)
    try:
        y = _core.unary(_core.UnaryOp.Exp, x)
        with pytest.raises(ValueError, match="still recording"):
            dev.RunGraph()
        with pytest.raises(ValueError, match="recording a graph"):
            y.to_numpy()
        with pytest.raises(ValueError, match="not broadcastable"):
            _core.binary(_core.BinaryOp.Add, x, _core.Tensor([3], dev))
        with pytest.raises(ValueError, match="between devices"):
            _core.copy(f32([2]), x)
    finally:
        dev.EnableGraph(False)
    dev.RunGraph()
    np.testing.assert_array_equal(y.to_numpy(), 1.0)
    dev.ResetGraph()


def test_python_node_raising_in_a_replay_and_bad_labels_in_a_replay():
    dev = _core.create_cpu_device()
    x = _core.Tensor([2], dev)
    calls = []

    def boom():
        calls.append(1)
        raise KeyError("boom")

    dev.EnableGraph(True)
    dev.exec_python(boom, [x], [x], "boom")
    dev.EnableGraph(False)
    for _ in range(2):
        with pytest.raises(KeyError, match="boom"):
            dev.RunGraph()
    assert len(calls) == 2
    dev.ResetGraph()
    labels = _core.Tensor([2], dev, _core.DType.int32)
    labels.copy_from_numpy(np.array([7, 0], np.int32))
    logits = _core.Tensor([2, 3], dev)
    _core.fill(logits, 0.0)
    dev.EnableGraph(True)
    _core.softmax_cross_entropy(logits, labels)
    dev.EnableGraph(False)
    with pytest.raises(ValueError, match="out of range"):
        dev.RunGraph()
    dev.ResetGraph()


def test_memory_statistics_calls():
    dev = _core.create_cpu_device()
    t = _core.Tensor([1000], dev)
    _core.fill(t, 1.0)
    s = dev.memory_stats()
    assert s["current"] >= 4000 and s["peak"] >= s["current"] and s["allocations"] >= 1
    del t
    dev.empty_cache()
    dev.reset_peak()
    s = dev.memory_stats()
    assert s["current"] == 0 and s["reserved"] == 0 and s["peak"] == 0


def test_repeat_and_cross_entropy_refuse_bad_arguments():
    t = tensor.from_numpy(np.arange(3, dtype=np.float32))
    for bad in (-1, [1, -2, 1], 1.5):
        with pytest.raises(ValueError, match="repeat: repeats must be integers >= 0"):
            t.repeat(bad)
    np.testing.assert_array_equal(t.repeat([0, 2, 1]).to_numpy(), [1, 1, 2])
    p = tensor.from_numpy(np.full((2, 3), 1 / 3, np.float32))
    labels = tensor.from_numpy(np.array([0, 1, 2], np.int32))
    with pytest.raises(ValueError, match=r"int32 labels have shape \(3,\), expected one per"):
        autograd.cross_entropy(p, labels)
