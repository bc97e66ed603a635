"""singa.tensor (minisinga/tensor.py) against numpy: creation, random fills, operators with
tensors and Python/numpy scalars on both sides, broadcasting, in-place operators, views and
copies, reductions, shape functions, matrix products, einsum/tensordot, elementwise functions at
edge values, dtypes, 0-d and zero-size tensors, and the errors for bad input.

numpy is the oracle throughout (no torch needed). The tests named `test_bug_*` pin down bugs
that this comparison found (each failed before its fix).
"""

import operator

import numpy as np
import pytest
from gradcheck import check_op

from minisinga import device, tensor


def T(a, dev=None):
    return tensor.from_numpy(np.asarray(a), dev)


def close(got, want, rtol=1e-5, atol=1e-6):
    got = got.to_numpy() if isinstance(got, tensor.Tensor) else got
    want = np.asarray(want)
    assert got.shape == want.shape, (got.shape, want.shape)
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol, equal_nan=True)


# ---- creation -----------------------------------------------------------------------------

@pytest.mark.parametrize("dtype,npdt", [(tensor.float32, np.float32), (tensor.float16, np.float16),
                                        (tensor.int32, np.int32)])
def test_creation_functions_keep_dtype_shape_and_value(dtype, npdt):
    for shape in [(2, 3), (), (0, 4), 5]:
        want_shape = (shape,) if isinstance(shape, int) else shape
        for t, v in [(tensor.zeros(shape, dtype=dtype), 0), (tensor.ones(shape, dtype=dtype), 1),
                     (tensor.full(shape, 3, dtype=dtype), 3)]:
            a = t.to_numpy()
            assert a.dtype == npdt and a.shape == want_shape and t.dtype == dtype
            np.testing.assert_array_equal(a, np.full(want_shape, v, npdt))
    base = tensor.Tensor((3, 1), dtype=dtype)
    for t, v in [(tensor.zeros_like(base), 0), (tensor.ones_like(base), 1)]:
        assert t.dtype == dtype and t.shape == (3, 1) and t.device == base.device
        np.testing.assert_array_equal(t.to_numpy(), v)
    assert tensor.sizeof(dtype) == np.dtype(npdt).itemsize
    assert tensor.Tensor((3, 4), dtype=dtype).memsize() == 12 * np.dtype(npdt).itemsize


def test_full_int32_and_float16_values():
    np.testing.assert_array_equal(tensor.full((2,), 2 ** 30 + 1, dtype=tensor.int32).to_numpy(),
                                  2 ** 30 + 1)  # scalars are not squeezed through float32
    np.testing.assert_array_equal(tensor.full((2,), -2.7, dtype=tensor.int32).to_numpy(), -2)
    assert np.isinf(tensor.full((1,), 1e5, dtype=tensor.float16).to_numpy()).all()
    assert np.isnan(tensor.full((1,), float("nan")).to_numpy()).all()


def test_creation_errors_are_clear():
    with pytest.raises(TypeError, match="shape must be an int or a sequence of ints"):
        tensor.zeros(2.0)
    with pytest.raises(TypeError, match="shape must be an int or a sequence of ints"):
        tensor.zeros((True, 2))
    with pytest.raises(TypeError, match="unsupported dtype float64"):
        tensor.ones((2,), dtype=np.float64)
    with pytest.raises(TypeError, match="dtype complex128"):
        tensor.from_numpy(np.array([1j]))
    with pytest.raises(ValueError, match="do not fit in int32"):
        tensor.from_numpy(np.array([2 ** 31], np.uint32))
    with pytest.raises(ValueError, match="do not fit in int32"):
        tensor.from_numpy(np.array([-2 ** 31 - 1]))


# ---- numpy round trips --------------------------------------------------------------------

_A = np.arange(24, dtype=np.float32).reshape(4, 6)
VIEWS = {
    "transposed": _A.T,
    "strided": _A[::2, 1::2],
    "negative-strides": _A[::-1, ::-2],
    "fortran": np.asfortranarray(_A),
    "broadcast": np.broadcast_to(np.arange(3, dtype=np.float32), (4, 3)),
    "float64-transposed": _A.astype(np.float64).T,
    "int64-negative": np.arange(10)[::-3],
    "float16-transposed": _A.astype(np.float16).T,
    "big-endian": np.arange(4, dtype=">f4"),
    "big-endian-int": np.arange(4, dtype=">i4"),
    "uint8": np.arange(4, dtype=np.uint8),
    "read-only": np.frombuffer(np.arange(4, dtype=np.float32).tobytes(), np.float32),
    "0-d": np.array(2.5, np.float32),
    "zero-size": np.zeros((0, 3), np.float32),
}


@pytest.mark.parametrize("name", list(VIEWS))
def test_from_numpy_of_any_layout_round_trips(name):
    v = VIEWS[name]
    t = tensor.from_numpy(v)
    got = t.to_numpy()
    assert got.shape == v.shape and got.flags.c_contiguous and got.flags.writeable
    np.testing.assert_array_equal(got, v.astype(got.dtype))
    want = {"f": np.float16 if v.dtype == np.float16 else np.float32, "i": np.int32,
            "u": np.int32}[v.dtype.kind]
    assert got.dtype == want


@pytest.mark.parametrize("name", ["transposed", "negative-strides", "fortran"])
def test_copy_from_numpy_of_any_layout(name):
    v = VIEWS[name]
    t = tensor.zeros(v.shape)
    t.copy_from_numpy(v)
    np.testing.assert_array_equal(t.to_numpy(), v)
    flat = tensor.zeros((v.size,))
    flat.copy_from_numpy(v)  # same number of elements, row-major order
    np.testing.assert_array_equal(flat.to_numpy(), np.ascontiguousarray(v).ravel())


def test_numpy_copies_are_independent():
    src = _A.copy()
    t = tensor.from_numpy(src)
    src[0, 0] = 77
    out = t.to_numpy()
    out[0, 1] = 99
    np.testing.assert_array_equal(t.to_numpy(), _A)


# ---- random fills -------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [tensor.float32, tensor.float16])
def test_random_fill_statistics(dtype):
    dev = device.get_default_device()
    dev.SetRandSeed(3)
    n = 100_001  # odd on purpose
    g = tensor.Tensor((n,), dtype=dtype).gaussian(-2.0, 0.5).to_numpy().astype(np.float64)
    assert abs(g.mean() + 2.0) < 0.01 and abs(g.std() - 0.5) < 0.01
    assert abs(((g - g.mean()) ** 3).mean() / g.std() ** 3) < 0.05  # symmetric
    assert abs(((g - g.mean()) ** 4).mean() / g.std() ** 4 - 3.0) < 0.1  # normal tails
    u = tensor.Tensor((n,), dtype=dtype).uniform(2.0, 5.0).to_numpy().astype(np.float64)
    assert u.min() >= 2.0 and u.max() <= 5.0
    assert abs(u.mean() - 3.5) < 0.02 and abs(u.var() - 0.75) < 0.02
    hist = np.histogram(u, 6, (2, 5))[0]
    assert hist.min() > 0.95 * n / 6 and hist.max() < 1.05 * n / 6
    b = tensor.Tensor((n,), dtype=dtype).bernoulli(0.3).to_numpy()
    assert set(np.unique(b)) == {0, 1} and abs(b.mean() - 0.3) < 0.01
    assert tensor.Tensor((100,), dtype=dtype).bernoulli(0.0).to_numpy().sum() == 0
    assert tensor.Tensor((100,), dtype=dtype).bernoulli(1.0).to_numpy().sum() == 100
    np.testing.assert_array_equal(tensor.Tensor((4,)).gaussian(1.0, 0.0).to_numpy(), 1.0)
    dev.SetRandSeed(11)
    a = tensor.gaussian(0.0, 1.0, tensor.Tensor((7,), dtype=dtype)).to_numpy()
    dev.SetRandSeed(11)
    np.testing.assert_array_equal(tensor.Tensor((7,), dtype=dtype).gaussian(0, 1).to_numpy(), a)


def test_random_fill_of_a_view_fills_the_source_and_bad_parameters_are_refused():
    t = tensor.zeros((2, 3))
    t.reshape((6,)).uniform(1.0, 2.0)
    assert (t.to_numpy() >= 1).all()
    with pytest.raises(ValueError, match="std must be >= 0"):
        tensor.Tensor((4,)).gaussian(0.0, -1.0)
    with pytest.raises(ValueError, match="must not exceed high"):
        tensor.Tensor((4,)).uniform(3.0, 1.0)
    for p in (1.5, -0.1, float("nan")):
        with pytest.raises(ValueError, match=r"p must be in \[0, 1\]"):
            tensor.Tensor((4,)).bernoulli(p)
    with pytest.raises(TypeError, match="int32"):
        tensor.Tensor((4,), dtype=tensor.int32).gaussian(0.0, 1.0)
    with pytest.raises(TypeError, match="int32"):
        tensor.Tensor((4,), dtype=tensor.int32).uniform(0.0, 1.0)


# ---- operators and module functions ------------------------------------------------------

SHAPE_PAIRS = [((2, 3), (3,)), ((2, 3), (2, 1)), ((2, 1, 4), (3, 1)), ((), (2, 3)), ((2, 3), ()),
               ((5, 1, 1), (1, 4, 1)), ((1, 1, 1, 1), (2,)), ((3, 1), (1, 3)), ((0, 3), (1, 3)),
               ((1,), (0,)), ((2, 0, 3), (1, 1, 3))]
OPS = [operator.add, operator.sub, operator.mul, operator.truediv, operator.pow]


@pytest.mark.parametrize("sa,sb", SHAPE_PAIRS, ids=str)
@pytest.mark.parametrize("op", OPS, ids=lambda o: o.__name__)
def test_operators_broadcast_like_numpy(op, sa, sb, rng):
    a = rng.uniform(0.5, 2, sa).astype(np.float32)
    b = rng.uniform(0.5, 2, sb).astype(np.float32)
    close(op(T(a), T(b)), op(a, b))
    close(op(T(a), 1.5), op(a, np.float32(1.5)))  # tensor op scalar
    close(op(1.5, T(b)), op(np.float32(1.5), b))  # scalar op tensor: the reflected operators
    close(op(T(a), 2), op(a, np.float32(2)))


MODULE_BINARY = [(tensor.add, np.add), (tensor.sub, np.subtract),
                 (tensor.eltwise_mult, np.multiply), (tensor.div, np.divide),
                 (tensor.pow, np.power), (tensor.maximum, np.maximum),
                 (tensor.minimum, np.minimum)]


@pytest.mark.parametrize("sa,sb", SHAPE_PAIRS[:6], ids=str)
@pytest.mark.parametrize("fn,ref", MODULE_BINARY, ids=lambda f: getattr(f, "__name__", ""))
def test_module_binary_functions_like_numpy(fn, ref, sa, sb, rng):
    a = rng.uniform(0.5, 2, sa).astype(np.float32)
    b = rng.uniform(0.5, 2, sb).astype(np.float32)
    close(fn(T(a), T(b)), ref(a, b))
    close(fn(T(a), 1.25), ref(a, np.float32(1.25)))
    close(fn(1.25, T(b)), ref(np.float32(1.25), b))
    close(fn(T(a), np.float32(1.25)), ref(a, np.float32(1.25)))  # numpy scalars too


def test_reversed_operators_at_edge_values():
    x = np.array([1.0, -2.0, 0.0, 4.0, 0.5], np.float32)
    t = T(x)
    with np.errstate(divide="ignore", invalid="ignore"):
        close(2 - t, 2 - x)
        close(2 / t, np.float32(2) / x)
        close(2 ** t, np.float32(2) ** x)
        close((-2) ** t, np.float32(-2) ** x)
        close(0 ** t, np.float32(0) ** x)
        close(t ** 0.5, x ** np.float32(0.5))
        close(t ** -1, x ** np.float32(-1))
        close(t ** t, x ** x)
        close(t // 2, x // 2)
        close(7 // t, np.float32(7) // x)


def test_broadcast_errors_name_the_shapes():
    a = tensor.zeros((2, 3))
    for fn in (operator.add, operator.mul, operator.lt, tensor.maximum, tensor.sub):
        with pytest.raises(ValueError, match=r"shapes \(2, 3\) and \(2,\) are not broadcastable"):
            fn(a, tensor.zeros((2,)))
    with pytest.raises(ValueError, match="not broadcastable"):
        tensor.where(tensor.ones((1, 3)), a, tensor.zeros((4,)))


def test_mixed_dtypes_are_refused_by_name():
    f, i, h = T(np.ones(3, np.float32)), T(np.ones(3, np.int32)), T(np.ones(3, np.float16))
    for x, y in [(f, i), (i, f), (h, f)]:
        with pytest.raises(TypeError, match="dtypes differ"):
            _ = x + y
        with pytest.raises(TypeError, match="dtypes differ"):
            _ = x < y
    with pytest.raises(TypeError, match="dtypes differ"):
        f.clone().__iadd__(i)
    with pytest.raises(TypeError, match="concat"):
        tensor.concatenate([f, i])
    with pytest.raises(TypeError, match="int32"):
        tensor.mult(T(np.ones((2, 2), np.int32)), T(np.ones((2, 2), np.int32)))


def test_bad_operand_types_are_refused():
    a = tensor.zeros((2, 3))
    for bad in (None, "a", [1, 2, 3], np.ones(3)):
        with pytest.raises(TypeError, match="unsupported operand type"):
            _ = a + bad
        with pytest.raises(TypeError):
            a.clone().__iadd__(bad)
    with pytest.raises(TypeError, match="at least one operand must be a Tensor"):
        tensor.add(1, 2)
    assert (a == None) is False  # noqa: E711 - SINGA's Tensor.__eq__(None)


@pytest.mark.parametrize("dtype", [np.float32, np.float16, np.int32])
def test_operators_keep_the_tensor_dtype(dtype):
    x = np.array([1, 2, 3, -7], dtype)
    t = T(x)
    for r in (t + 1, 2 * t, t - t, -t, abs(t), t ** 2, t > 1, t == t):
        assert r.dtype == t.dtype
    np.testing.assert_array_equal((t * 2).to_numpy(), x * 2)
    np.testing.assert_array_equal(abs(t).to_numpy(), np.abs(x))
    np.testing.assert_array_equal((t > 1).to_numpy(), (x > 1).astype(dtype))


def test_int32_arithmetic_is_exact_past_float32_precision():
    big = T(np.array([16777217], np.int32))
    np.testing.assert_array_equal((big + T(np.array([2], np.int32))).to_numpy(), [16777219])
    np.testing.assert_array_equal((big * 3).to_numpy(), [16777217 * 3])
    np.testing.assert_array_equal((big - 1).to_numpy(), [16777216])
    np.testing.assert_array_equal((big > 16777216).to_numpy(), [1])
    np.testing.assert_array_equal(tensor.sum(T(np.array([16777217, 2], np.int32))).to_numpy(),
                                  16777219)
    np.testing.assert_array_equal((T(np.array([3], np.int32)) ** T(np.array([15], np.int32)))
                                  .to_numpy(), [3 ** 15])
    x = np.arange(-60, 61, dtype=np.int32)
    for k in (2, 3, 7):  # tensor / tensor truncates toward zero, as C and SINGA's int path
        got = (T(x) / T(np.full(1, k, np.int32))).to_numpy()
        np.testing.assert_array_equal(got, np.trunc(x / k).astype(np.int32))


def test_comparisons_with_nan_and_infinities():
    a = np.array([np.nan, 1.0, 2.0, np.inf, -np.inf], np.float32)
    b = np.array([np.nan, np.nan, 2.0, np.inf, 0.0], np.float32)
    for op in (operator.lt, operator.le, operator.gt, operator.ge, operator.eq, operator.ne):
        np.testing.assert_array_equal(op(T(a), T(b)).to_numpy(), op(a, b).astype(np.float32))
        np.testing.assert_array_equal(op(T(a), 1.0).to_numpy(), op(a, 1.0).astype(np.float32))
        np.testing.assert_array_equal(op(T(a), np.nan).to_numpy(),
                                      op(a, np.nan).astype(np.float32))
        np.testing.assert_array_equal(op(1.0, T(a)).to_numpy(), op(1.0, a).astype(np.float32))
    assert (T(np.arange(3.0)) < T(np.ones((2, 1)))).shape == (2, 3)
    np.testing.assert_array_equal(tensor.eq(T(a), 1.0).to_numpy(), (a == 1).astype(np.float32))


# ---- in-place operators, views and copies -------------------------------------------------

@pytest.mark.parametrize("iop,op", [(operator.iadd, np.add), (operator.isub, np.subtract),
                                    (operator.imul, np.multiply),
                                    (operator.itruediv, np.divide)],
                         ids=lambda o: getattr(o, "__name__", ""))
@pytest.mark.parametrize("rshape", [(2, 3), (3,), (2, 1), (1,), ()], ids=str)
def test_in_place_operators_update_the_same_storage(iop, op, rshape, rng):
    a = rng.uniform(1, 2, (2, 3)).astype(np.float32)
    b = rng.uniform(1, 2, rshape).astype(np.float32)
    t = T(a)
    view = t.reshape((6,))
    data = t.data
    r = iop(t, T(b))
    assert r is t and t.data is data and t.shape == (2, 3)
    close(t, op(a, b))
    close(view, op(a, b).ravel())  # the storage itself changed
    t = T(a)
    data = t.data
    r = iop(t, 1.5)
    assert r is t and t.data is data
    close(t, op(a, np.float32(1.5)), rtol=2e-7)
    t = T(a)
    iop(t, np.float32(2.0))
    close(t, op(a, np.float32(2.0)))


def test_in_place_operators_refuse_to_change_the_left_shape():
    for left, right in [((3,), (2, 3)), ((1, 3), (2, 3)), ((2, 3), (3, 2)), ((2, 3), (6,)),
                        ((), (3,))]:
        t = tensor.zeros(left)
        with pytest.raises(ValueError, match="shape"):
            t += tensor.ones(right)
        np.testing.assert_array_equal(t.to_numpy(), 0)  # untouched


def test_in_place_with_itself_and_its_own_view():
    t = T(np.arange(6, dtype=np.float32).reshape(2, 3))
    t += t
    np.testing.assert_array_equal(t.to_numpy(), 2 * np.arange(6).reshape(2, 3))
    t *= t.reshape((2, 3))
    np.testing.assert_array_equal(t.to_numpy(), (2 * np.arange(6).reshape(2, 3)) ** 2)


def test_views_and_copies():
    x = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    t = T(x)
    r = t.reshape((4, -1))
    r += 1  # reshape is a view
    np.testing.assert_array_equal(t.to_numpy(), x + 1)
    for copy in (t.transpose(), t.T(), t.clone(), t.deepcopy(), t.as_type(tensor.float32),
                 tensor.concatenate([t]), t[...], t.repeat(1, 0), tensor.einsum("ijk->ijk", t)):
        copy += 100
        np.testing.assert_array_equal(t.to_numpy(), x + 1)
    assert t.contiguous() is t and tensor.contiguous(t) is t
    t2 = T(x)
    r = t2.reshape((24,))
    assert r.to_type(tensor.int32) is r and r.dtype == tensor.int32
    assert t2.dtype == tensor.float32  # to_type swaps this tensor's data only
    np.testing.assert_array_equal(t2.to_numpy(), x)


# ---- reductions ---------------------------------------------------------------------------

AXES = [None, 0, 1, 2, -1, -3, (0, 2), (-1, 0), (), [1]]


@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("axis", AXES, ids=str)
@pytest.mark.parametrize("fn,ref", [(tensor.sum, np.sum), (tensor.mean, np.mean),
                                    (tensor.max, np.max), (tensor.min, np.min)],
                         ids=lambda f: getattr(f, "__name__", ""))
def test_reductions_like_numpy(fn, ref, axis, keepdims, rng):
    x = rng.standard_normal((2, 3, 4)).astype(np.float32)
    npaxis = tuple(axis) if isinstance(axis, list) else axis
    close(fn(T(x), axis, keepdims), ref(x, axis=npaxis, keepdims=keepdims))


def test_reductions_int32_float16_and_special_values(rng):
    xi = rng.integers(-100, 100, (3, 4)).astype(np.int32)
    for fn, ref in [(tensor.sum, np.sum), (tensor.max, np.max), (tensor.min, np.min)]:
        got = fn(T(xi), 1)
        assert got.dtype == tensor.int32
        np.testing.assert_array_equal(got.to_numpy(), ref(xi, 1))
    xh = rng.standard_normal((3, 40)).astype(np.float16)
    for fn, ref in [(tensor.sum, np.sum), (tensor.mean, np.mean), (tensor.max, np.max)]:
        close(fn(T(xh), 1), ref(xh.astype(np.float32), 1).astype(np.float16), rtol=2e-3,
              atol=2e-3)
    close(tensor.sum(T(np.ones(5000, np.float16))), np.float16(5000))  # accumulates wider
    s = np.array([[1, np.nan, 3], [np.inf, 2, -np.inf]], np.float32)
    for fn, ref in [(tensor.sum, np.sum), (tensor.mean, np.mean), (tensor.max, np.max),
                    (tensor.min, np.min)]:
        with np.errstate(invalid="ignore"):
            close(fn(T(s), 1), ref(s, 1))
    neg_inf = np.full((2, 3), -np.inf, np.float32)
    close(tensor.max(T(neg_inf), 1), [-np.inf, -np.inf])
    close(tensor.min(T(-neg_inf), 1), [np.inf, np.inf])


@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("axis", [0, 1, 2, -1, -2, -3])
def test_argmax_like_numpy(axis, keepdims, rng):
    x = rng.standard_normal((2, 3, 4)).astype(np.float32)
    got = tensor.argmax(T(x), axis, keepdims)
    assert got.dtype == tensor.int32
    np.testing.assert_array_equal(got.to_numpy(), np.argmax(x, axis=axis, keepdims=keepdims))


def test_argmax_ties_nan_and_defaults():
    ties = np.array([[1, 3, 3], [2, 2, 2]], np.float32)
    np.testing.assert_array_equal(tensor.argmax(T(ties), 1).to_numpy(), [1, 0])  # first wins
    nans = np.array([[1, np.nan, 3], [np.nan, 2, 2]], np.float32)
    np.testing.assert_array_equal(tensor.argmax(T(nans), 1).to_numpy(), np.argmax(nans, 1))
    x = np.array([[1, 5, 2], [7, 0, 1]], np.float32)
    np.testing.assert_array_equal(tensor.argmax(T(x)).to_numpy(), np.argmax(x, -1))
    np.testing.assert_array_equal(tensor.argmax(T(x.astype(np.int32)), 0).to_numpy(), [1, 0, 0])
    assert tensor.argmax(T(np.zeros((0, 3), np.float32)), 1).shape == (0,)


def test_reduction_errors_are_clear():
    t = T(np.zeros((2, 3, 4), np.float32))
    with pytest.raises(ValueError, match="axis 3 is out of range for a 3-d tensor"):
        tensor.sum(t, 3)
    with pytest.raises(ValueError, match="axis -4 is out of range"):
        tensor.max(t, -4)
    with pytest.raises(ValueError, match="duplicate axis"):
        tensor.sum(t, (1, -2))
    with pytest.raises(ValueError, match="argmax: axis 3 is out of range"):
        tensor.argmax(t, 3)
    z = T(np.zeros((0, 3), np.float32))
    np.testing.assert_array_equal(tensor.sum(z).to_numpy(), 0)
    np.testing.assert_array_equal(tensor.sum(z, 0, True).to_numpy(), np.zeros((1, 3)))
    for fn in (tensor.mean, tensor.max, tensor.min):
        with pytest.raises(ValueError, match="reduction over zero elements"):
            fn(z, 0)
    with pytest.raises(ValueError, match="has size 0; there is no index"):
        tensor.argmax(z, 0)
    with pytest.raises(TypeError, match="reduce_mean: input has dtype int32"):
        tensor.mean(T(np.ones((2, 2), np.int32)))


def test_reduction_out_arguments():
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    out = tensor.zeros((3,))
    assert tensor.sum(T(x), 0, out) is out  # SINGA's positional out
    np.testing.assert_array_equal(out.to_numpy(), x.sum(0))
    with pytest.raises(ValueError, match="shapes differ"):
        tensor.sum(T(x), 0, out=tensor.zeros((1, 3)))
    with pytest.raises(TypeError, match="dtypes differ"):
        tensor.sum(T(x), 0, out=tensor.zeros((3,), dtype=tensor.float16))
    t = T(x)
    assert tensor.softmax(t, out=t) is t  # in place
    e = np.exp(x - x.max(1, keepdims=True))
    close(t, e / e.sum(1, keepdims=True))
    t = T(x)
    assert tensor.pow(t, 2.0, t) is t
    close(t, x ** 2)


# ---- shape functions ----------------------------------------------------------------------

def test_reshape_like_numpy():
    x = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    for shape in [(4, -1), (-1,), -1, 24, (2, 3, 4, 1), (1, 24), [3, 8], np.array([6, 4])]:
        close(T(x).reshape(shape), x.reshape(shape))
        close(tensor.reshape(T(x), shape), x.reshape(shape))
    z = np.zeros((0, 3), np.float32)
    for shape in [(-1, 3), (3, -1), (-1,)]:
        assert T(z).reshape(shape).shape == z.reshape(shape).shape
    assert T(np.float32(5)).reshape(-1).shape == (1,)
    for bad, msg in [((0,), "cannot reshape"), ((-1, -1), "only one dimension may be -1"),
                     ((5, -1), "cannot reshape"), ((2, -2, 6), "invalid dimension"),
                     ((), "cannot reshape")]:
        with pytest.raises(ValueError, match=msg):
            T(x).reshape(bad)


def test_transpose_like_numpy():
    x = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    for axes in [None, (2, 0, 1), (0, 1, 2), (-1, 0, 1), [2, 1, 0]]:
        close(T(x).transpose(axes), np.transpose(x, axes))
        close(tensor.transpose(T(x), axes), np.transpose(x, axes))
    close(T(x).T(), x.T)
    assert T(np.float32(5)).transpose().shape == ()
    assert T(np.zeros((0, 3), np.float32)).transpose().shape == (3, 0)
    for axes, msg in [((1, 0), "has 2 entries"), ((0, 0, 1), "repeats axis 0"),
                      ((0, 1, 3), "axis 3 out of range")]:
        with pytest.raises(ValueError, match=msg):
            T(x).transpose(axes)


def test_concatenate_like_numpy():
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    b = np.arange(9, dtype=np.float32).reshape(3, 3)
    for args, axis in [((a, b), 0), ((a, a), 1), ((a, a), -1), ((a, a), -2), ((a,), 0),
                       ((a, np.zeros((0, 3), np.float32)), 0)]:
        close(tensor.concatenate([T(q) for q in args], axis), np.concatenate(args, axis))
    close(tensor.concatenate((T(q) for q in (a, a)), 1), np.concatenate([a, a], 1))
    with pytest.raises(ValueError, match="shapes must match except on axis 1"):
        tensor.concatenate([T(a), T(b)], 1)
    with pytest.raises(ValueError, match="axis 2 is out of range"):
        tensor.concatenate([T(a), T(a)], 2)
    with pytest.raises(ValueError, match="zero-dimensional"):
        tensor.concatenate([T(np.float32(1))] * 2)
    with pytest.raises(ValueError, match="at least one tensor"):
        tensor.concatenate([])
    with pytest.raises(TypeError, match="expected a minisinga Tensor, got ndarray"):
        tensor.concatenate([a, a])


@pytest.mark.parametrize("repeats,axis", [(2, None), (2, 0), (2, 1), (2, -1), ([1, 2, 0], 1),
                                          ([1, 2], 0), (0, 1), ([3, 0, 1, 1, 0, 2], None)])
def test_repeat_like_numpy(repeats, axis):
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    close(tensor.repeat(T(a), repeats, axis), np.repeat(a, repeats, axis))
    ai = a.astype(np.int32)
    np.testing.assert_array_equal(T(ai).repeat(repeats, axis).to_numpy(),
                                  np.repeat(ai, repeats, axis))


def test_repeat_errors():
    a = T(np.zeros((2, 3), np.float32))
    with pytest.raises(IndexError, match="axis 2 is out of range"):
        a.repeat(2, 2)
    with pytest.raises(TypeError, match="axis must be an int"):
        a.repeat(2, 0.0)
    with pytest.raises(ValueError):
        a.repeat([1, 2], 1)
    with pytest.raises(ValueError):
        a.repeat(-1, 0)


# ---- matrix products ----------------------------------------------------------------------

MATMUL_SHAPES = [((3, 4), (4, 5)), ((4,), (4, 5)), ((3, 4), (4,)), ((4,), (4,)),
                 ((2, 3, 4), (4, 5)), ((3, 4), (2, 4, 5)), ((2, 3, 4), (2, 4, 5)),
                 ((2, 1, 3, 4), (5, 4, 2)), ((1, 3, 4), (2, 4, 5)), ((1, 1), (1, 1)),
                 ((0, 4), (4, 5)), ((3, 0), (0, 5)), ((2, 3, 4), (4,)), ((4,), (2, 4, 5))]


@pytest.mark.parametrize("sa,sb", MATMUL_SHAPES, ids=str)
def test_mult_and_matmul_like_numpy(sa, sb, rng):
    a = rng.standard_normal(sa).astype(np.float32)
    b = rng.standard_normal(sb).astype(np.float32)
    close(tensor.mult(T(a), T(b)), a @ b, rtol=1e-5, atol=1e-5)
    close(tensor.matmul(T(a), T(b)), a @ b, rtol=1e-5, atol=1e-5)
    if len(sa) >= 2 and len(sb) >= 2:
        close(T(a) @ T(b), a @ b, rtol=1e-5, atol=1e-5)
    else:  # the operator is autograd's matmul, which wants matrices (SINGA's too)
        with pytest.raises(ValueError, match="at least 2 dims"):
            _ = T(a) @ T(b)


def test_mult_with_c_alpha_beta(rng):
    a = rng.standard_normal((3, 4)).astype(np.float32)
    b = rng.standard_normal((4, 5)).astype(np.float32)
    c0 = rng.standard_normal((3, 5)).astype(np.float32)
    c = T(c0)
    assert tensor.mult(T(a), T(b), c, alpha=2.0, beta=0.5) is c
    close(c, 2 * a @ b + 0.5 * c0, rtol=1e-5, atol=1e-5)
    close(tensor.mult(T(a), T(b), alpha=3.0), 3 * a @ b, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match=r"out has shape \(5,\), expected \(3, 5\)"):
        tensor.mult(T(a), T(b), T(c0[0]), 1.0, 1.0)
    sq = T(rng.standard_normal((3, 3)).astype(np.float32))
    with pytest.raises(ValueError, match="shares memory"):
        tensor.mult(sq, sq, sq, 1.0, 1.0)
    with pytest.raises(ValueError, match="inner dimensions differ"):
        tensor.mult(T(a), T(a))
    with pytest.raises(ValueError, match="batch dimensions do not broadcast"):
        tensor.mult(T(np.ones((2, 3, 4), np.float32)), T(np.ones((3, 4, 5), np.float32)))
    with pytest.raises(ValueError, match="at least 1 dimension"):
        tensor.mult(T(np.float32(2)), T(np.float32(2)))


EINSUM_OK = [("ij,jk->ik", [(3, 4), (4, 5)]), ("ij,jk", [(3, 4), (4, 5)]), ("ij->ji", [(3, 4)]),
             ("ij->", [(3, 4)]), ("ij->j", [(3, 4)]), ("i,i->", [(4,), (4,)]),
             ("i,j->ij", [(3,), (4,)]), ("bij,bjk->bik", [(2, 3, 4), (2, 4, 5)]),
             ("ij,ij->ij", [(3, 4), (3, 4)]), ("ij,kj->ik", [(3, 4), (5, 4)]),
             ("ijk,ikl->jl", [(2, 3, 4), (2, 4, 5)]), ("ba", [(3, 4)]),
             ("ij,j->i", [(3, 4), (4,)]), ("ab,cd->abcd", [(2, 3), (4, 5)]),
             ("bij,jk->bik", [(2, 3, 4), (4, 5)]), ("i,j", [(3,), (4,)]),
             ("ab,ba->", [(3, 4), (4, 3)]), ("abc,cba->b", [(2, 3, 4), (4, 3, 2)]),
             ("bij,bjk->bki", [(2, 3, 4), (2, 4, 5)]), (" ij , jk -> ik ", [(3, 4), (4, 5)])]


@pytest.mark.parametrize("spec,shapes", EINSUM_OK, ids=lambda v: str(v))
def test_einsum_like_numpy(spec, shapes, rng):
    ops = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    close(tensor.einsum(spec, *[T(o) for o in ops]), np.einsum(spec.replace(" ", ""), *ops),
          rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("axes,sa,sb", [(2, (2, 3, 4), (3, 4, 5)), (1, (2, 3), (3, 4)),
                                        (0, (2, 3), (4,)), (([1, 0], [0, 1]), (2, 3, 4), (3, 2, 5)),
                                        ((1, 0), (2, 3), (3, 4)), (([-1], [0]), (2, 3), (3, 4)),
                                        (([], []), (2,), (3,))], ids=str)
def test_tensordot_like_numpy(axes, sa, sb, rng):
    a = rng.standard_normal(sa).astype(np.float32)
    b = rng.standard_normal(sb).astype(np.float32)
    close(tensor.tensordot(T(a), T(b), axes), np.tensordot(a, b, axes), rtol=1e-5, atol=1e-5)


# ---- elementwise functions at edge values ------------------------------------------------

EDGE = np.array([0.0, -0.0, 1.0, -1.0, 0.5, -0.5, 2.0, -2.0, 15.0, 88.0, 89.0, -88.0, -104.0,
                 -110.0, 1e-40, -1e-40, 1e30, -1e30, 3.4e38, np.inf, -np.inf, np.nan, 20.0,
                 -20.0, 40.0, -40.0], np.float32)


def _softplus(x):
    return np.logaddexp(0.0, x)


def _erf(x):
    import math
    return np.vectorize(math.erf)(x)


UNARY = {"abs": np.abs, "exp": np.exp, "log": np.log, "sqrt": np.sqrt, "square": np.square,
         "sign": lambda v: np.sign(np.nan_to_num(v, nan=0.0)),  # NaN -> 0, as SINGA and torch
         "sigmoid": lambda v: 0.5 * (1 + np.tanh(v / 2)), "tanh": np.tanh,
         "softplus": _softplus, "erf": _erf, "ceil": np.ceil, "floor": np.floor,
         "relu": lambda v: np.where(v > 0, v, 0.0)}  # SINGA's relu: x > 0 ? x : 0 (NaN -> 0)


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
@pytest.mark.parametrize("name", list(UNARY))
def test_unary_functions_at_edge_values(name, dtype):
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        x = EDGE.astype(dtype)
        want = UNARY[name](x.astype(np.float64)).astype(dtype)
    got = getattr(tensor, name)(T(x))
    assert got.dtype == T(x).dtype
    tol = 5e-6 if dtype == np.float32 else 2e-3
    close(got, want, rtol=tol, atol=tol * 1e-3)


def test_clip_and_pow_functions():
    x = np.array([-2, -0.5, 0, 0.5, 2, np.inf, -np.inf], np.float32)
    close(tensor.clip(T(x), -1, 1), np.clip(x, -1, 1))
    close(tensor.clip(T(x), 0.3, 0.3), np.full_like(x, 0.3))
    np.testing.assert_array_equal(tensor.clip(T(np.array([-5, 0, 5], np.int32)), -1.5, 2.5)
                                  .to_numpy(), [-1, 0, 2])
    with pytest.raises(ValueError, match=r"low \(1\) is greater than high \(-1\)"):
        tensor.clip(T(x), 1, -1)
    bases = np.array([0.0, -0.0, -2.0, 2.0, np.inf, -np.inf, np.nan, 1.0, -1.0], np.float32)
    with np.errstate(divide="ignore", invalid="ignore"):
        for e in [0.0, 0.5, -0.5, 2.0, 3.0, -1.0, np.inf, -np.inf, np.nan]:
            want = np.power(bases.astype(np.float64), e).astype(np.float32)
            if e == 0.5:  # C's pow, not numpy's sqrt shortcut: pow(-inf, 0.5) = inf
                want[bases == -np.inf] = np.inf
            close(tensor.pow(T(bases), e), want)
            close(T(bases) ** T(np.full_like(bases, e)), want)


@pytest.mark.parametrize("axis", [0, 1, 2, -1, -2, -3])
def test_softmax_axes(axis, rng):
    x = (rng.standard_normal((2, 3, 4)) * 3).astype(np.float32)
    e = np.exp(x - x.max(axis, keepdims=True))
    close(tensor.softmax(T(x), axis), e / e.sum(axis, keepdims=True))


@pytest.mark.parametrize("row,want", [
    ([1000.0, 1001.0, 999.0], [0.24472848, 0.66524094, 0.09003057]),
    ([-np.inf, 0.0, 1.0], [0.0, 0.26894142, 0.73105858]),
    ([-np.inf, -np.inf, -np.inf], [np.nan] * 3),
    ([np.inf, 0.0, 1.0], [np.nan] * 3),  # inf - inf, as numpy and torch
    ([np.nan, 0.0, 1.0], [np.nan] * 3),
    ([-1e30, 0.0, 1e-30], [0.0, 0.5, 0.5]),
    ([5.0], [1.0]),
])
def test_softmax_edge_rows(row, want):
    close(tensor.softmax(T(np.array([row], np.float32))), [want])


def test_softmax_dtypes_and_errors(rng):
    h = (rng.standard_normal((3, 50)) * 5).astype(np.float16)
    got = tensor.softmax(T(h))
    assert got.dtype == tensor.float16
    x = h.astype(np.float64)
    e = np.exp(x - x.max(1, keepdims=True))
    close(got.to_numpy().astype(np.float64), e / e.sum(1, keepdims=True), atol=5e-4)
    assert tensor.softmax(T(np.zeros((0, 3), np.float32))).shape == (0, 3)
    with pytest.raises(TypeError, match="int32"):
        tensor.softmax(T(np.arange(3, dtype=np.int32)))
    with pytest.raises(ValueError, match="axis 3 is out of range"):
        tensor.softmax(T(np.zeros((2, 3, 4), np.float32)), 3)


# ---- other module functions ---------------------------------------------------------------

def test_where_axpy_rows_and_columns():
    c = T(np.array([[1, 0, 1]], np.float32))
    x, y = T(np.ones((2, 3), np.float32)), T(np.zeros((2, 1), np.float32))
    np.testing.assert_array_equal(tensor.where(c, x, y).to_numpy(), [[1, 0, 1], [1, 0, 1]])
    cond = np.array([np.nan, 0, -0.0, 2], np.float32)
    np.testing.assert_array_equal(
        tensor.where(T(cond), T(np.ones(4, np.float32)), T(np.zeros(4, np.float32))).to_numpy(),
        np.where(cond != 0, 1, 0))
    y = T(np.ones((2, 3), np.float32))
    assert tensor.axpy(2.0, T(np.arange(3, dtype=np.float32)), y) is y
    np.testing.assert_array_equal(y.to_numpy(), 1 + 2 * np.arange(3) * np.ones((2, 1)))
    y = T(np.ones(3, np.float32))
    tensor.axpy(2.0, y, y)
    np.testing.assert_array_equal(y.to_numpy(), 3)
    m = np.arange(6, dtype=np.float32).reshape(2, 3)
    close(tensor.sum_columns(T(m)), m.sum(1, keepdims=True))
    close(tensor.sum_rows(T(m)), m.sum(0, keepdims=True))
    close(tensor.add_column(2.0, T(np.array([1, 10], np.float32)), 1.0, T(m)),
          m + 2 * np.array([[1], [10]]))
    close(tensor.add_row(2.0, T(np.array([1, 10, 100], np.float32)), 0.5, T(m)),
          0.5 * m + 2 * np.array([1, 10, 100]))
    close(tensor.add_row(1.0, T(np.array([7], np.float32)), 1.0, T(np.zeros((3, 1), np.float32))),
          np.full((3, 1), 7))
    with pytest.raises(ValueError, match="v has 2 elements, the matrix of shape"):
        tensor.add_row(2.0, T(np.array([1, 10], np.float32)), 0.5, T(m))
    with pytest.raises(ValueError, match="expected a matrix"):
        tensor.sum_rows(T(np.zeros(3, np.float32)))


def test_small_helpers_and_properties():
    assert tensor.product(()) == 1 and tensor.product((2, 3)) == 6 and tensor.product(5) == 5
    t = T(np.arange(6, dtype=np.float32).reshape(2, 3))
    assert (t.ndim(), t.size(), t.memsize(), t.is_empty(), len(t)) == (2, 6, 24, False, 2)
    assert T(np.zeros((0, 3), np.float32)).is_empty()
    with pytest.raises(TypeError, match="len\\(\\) of a 0-d tensor"):
        len(T(np.float32(1)))
    assert [r.shape for r in t] == [(3,), (3,)]
    assert tensor.from_raw_tensor(t.data).data is t.data
    assert len(tensor.from_raw_tensors([t.data, t.data])) == 2
    np.testing.assert_array_equal(t.numpy(), tensor.to_numpy(t))
    assert repr(t) == "Tensor(shape=(2, 3), dtype=float32, device=cpu:0)"
    v = T(np.array([3, -4], np.float32))
    assert v.l1() == pytest.approx(3.5)  # SINGA's l1: mean of |x|


def test_as_type_conversions():
    x = np.array([-0.5, -1.5, 2.5, 1.7], np.float32)
    np.testing.assert_array_equal(T(x).as_type(tensor.int32).to_numpy(), np.trunc(x))
    np.testing.assert_array_equal(T(x).as_type("float16").to_numpy(), x.astype(np.float16))
    np.testing.assert_array_equal(T(x.astype(np.float16)).as_type(np.int32).to_numpy(),
                                  np.trunc(x))
    big = np.array([1e5, -1e5, 65504], np.float32)
    with np.errstate(over="ignore"):
        want = big.astype(np.float16)
    np.testing.assert_array_equal(T(big).as_type(tensor.float16).to_numpy(), want)
    with pytest.raises(TypeError, match="unsupported dtype float64"):
        T(x).as_type("float64")


def test_device_mismatch_errors_name_both_devices():
    other = device.create_cpu_device()
    a = T(np.ones((2, 3), np.float32))
    b = T(np.ones((2, 3), np.float32), other)
    for fn in (operator.add, operator.lt, operator.iadd):
        with pytest.raises(TypeError, match="different devices"):
            fn(a.clone(), b)
    with pytest.raises(TypeError, match="different devices"):
        tensor.mult(a, b.reshape((3, 2)))
    with pytest.raises(TypeError, match="different devices"):
        tensor.concatenate([a, b])
    with pytest.raises(TypeError, match="out is on"):
        tensor.add(a, a, b)
    a.copy_from(b)  # copies may cross devices
    for r in (tensor.zeros_like(b), b.clone(), b.as_type(tensor.float16), b.repeat(2), b[0]):
        assert r.device == other


def test_zero_size_and_0d_tensors():
    s = T(np.float32(2.0))
    v = T(np.arange(3, dtype=np.float32))
    for got, want in [(s + s, 4.0), (2 ** s, 4.0), (-s, -2.0), (tensor.exp(s), np.exp(2.0)),
                      (s > 1, 1.0), (s[()], 2.0), (s[None], [2.0])]:
        close(got, np.float32(want))
    close(s * v, 2 * np.arange(3))
    with pytest.raises(ValueError, match=r"out has shape \(\), expected \(3,\)"):
        s.clone().__iadd__(v)
    z = T(np.zeros((0, 3), np.float32))
    for r in (z + 1, z * z, z + v, tensor.exp(z), z > 0, z.clone(), tensor.softmax(z, 0),
              tensor.where(z, z, z), z.as_type(tensor.float16)):
        assert r.shape == (0, 3)
    assert (z @ T(np.ones((3, 2), np.float32))).shape == (0, 2)
    assert tensor.einsum("ij,jk->ik", z, T(np.ones((3, 2), np.float32))).shape == (0, 2)
    close(tensor.mult(T(np.ones((2, 0), np.float32)), T(np.ones((0, 2), np.float32)),
                      T(np.full((2, 2), 3, np.float32)), 1.0, 2.0), np.full((2, 2), 6.0))


REVERSED = [
    (lambda x: 2 - x, [(2, 3)]), (lambda x: 2 / x, [(2, 3)]), (lambda x: 2 ** x, [(2, 3)]),
    (lambda x: x ** 3, [(2, 3)]), (lambda x: x / 3, [(2, 3)]),
    (lambda x, y: y / x, [(2, 3), (3,)]), (lambda x, y: x ** y, [(2, 3), (3,)]),
    (lambda x: x / x + x * x, [(2, 3)]), (lambda s, x: s * x - x, [(), (2, 3)]),
]


@pytest.mark.parametrize("k", range(len(REVERSED)))
def test_operator_gradients_with_scalars_and_broadcasting(k, rng):
    fn, shapes = REVERSED[k]
    ins = [rng.uniform(0.5, 2, s).astype(np.float32) for s in shapes]
    check_op(fn, fn, ins)


# ---- bugs found by the comparison (each failed before its fix) ----------------------------

@pytest.mark.parametrize("spec,shapes", [
    ("ij,jk->ki", [(3, 4), (4, 5)]),     # raises "transpose: perm [1, 0] has 2 entries"
    ("j,i", [(3,), (4,)]),               # implicit output in alphabetical order
    ("ab,c->cba", [(2, 3), (4,)]),       # silently wrong values
    ("ab,c->bac", [(2, 3), (4,)]),       # silently wrong values
    ("abc,cd->dba", [(2, 3, 4), (4, 5)]),
    ("ab,cd->cdab", [(2, 3), (4, 5)]),
    ("xab,xc->xcab", [(2, 3, 4), (2, 5)]),
], ids=lambda v: str(v))
def test_bug_einsum_output_order_other_than_batch_left_right(spec, shapes, rng):
    ops = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    close(tensor.einsum(spec, *[T(o) for o in ops]), np.einsum(spec, *ops), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("shape,key", [
    ((2, 4), (0, slice(3, 1))),
    ((3, 0, 2), (0,)),
    ((3, 0, 2), (slice(7, 3, 2), None, slice(None), 1)),
    ((1, 4, 1), (0, slice(1, -1, -3), slice(0, 7))),
    ((3, 0, 2), (None, slice(None), slice(2, 0, -1), Ellipsis)),
], ids=repr)
def test_bug_getitem_with_an_empty_result(shape, key):
    x = np.arange(int(np.prod(shape)), dtype=np.float32).reshape(shape)
    got = T(x)[key]
    assert got.shape == x[key].shape


def test_bug_int32_division_by_a_python_scalar_is_exact():
    x = np.array([98, -196, 49, -147, 103, 107, 7, -7], np.int32)
    for k in (49, 98, 103, 107):
        want = np.trunc(x / k).astype(np.int32)  # what int32 / int32 tensors give
        np.testing.assert_array_equal((T(x) / k).to_numpy(), want)
        t = T(x)
        t /= k
        np.testing.assert_array_equal(t.to_numpy(), want)


def test_bug_int32_floor_division_rounds_down():
    x = np.array([-7, 7, -8, -1, 0], np.int32)
    np.testing.assert_array_equal((T(x) // 2).to_numpy(), x // 2)
    np.testing.assert_array_equal((T(x) // T(np.full(1, 2, np.int32))).to_numpy(), x // 2)
    np.testing.assert_array_equal((-7 // T(np.array([2], np.int32))).to_numpy(), [-4])


def test_bug_division_by_a_zero_scalar_gives_inf_like_a_zero_tensor():
    x = np.array([1.0, -2.0, 0.0], np.float32)
    with np.errstate(divide="ignore", invalid="ignore"):
        want = x / np.float32(0)
    close(T(x) / T(np.zeros(1, np.float32)), want)  # the tensor path already does
    close(T(x) / 0, want)
    close(tensor.div(T(x), 0.0), want)
    t = T(x)
    t /= 0.0
    close(t, want)


def test_bug_numpy_scalars_work_in_operators():
    x = np.array([1.0, -2.0, 4.0], np.float32)
    t = T(x)
    close(t + np.float32(2), x + 2)
    close(np.float32(2) * t, x * 2)
    close(t - np.int64(1), x - 1)
    close(np.int32(3) - t, 3 - x)
    close(t ** np.int64(2), x ** 2)
    close(t / np.float32(4), x / 4)


def test_bug_explicit_float32_dtype_is_honoured():
    for data in (np.arange(3), np.ones(3, np.float16), [1, 2, 3]):
        t = tensor.Tensor(data=data, dtype=tensor.float32)
        assert t.dtype == tensor.float32
        assert t.to_numpy().dtype == np.float32


def test_bug_from_numpy_refuses_none():
    with pytest.raises(TypeError):
        tensor.from_numpy(None)


def test_bug_maximum_minimum_and_clip_propagate_nan():
    a = np.array([np.nan, 1.0, np.nan], np.float32)
    b = np.array([0.0, np.nan, np.nan], np.float32)
    for fn, ref in ((tensor.maximum, np.maximum), (tensor.minimum, np.minimum)):
        close(fn(T(a), T(b)), ref(a, b))
        close(fn(T(b), T(a)), ref(b, a))  # the same either way round
        close(fn(T(a), 0.0), ref(a, np.float32(0)))
    close(tensor.clip(T(a), -1.0, 1.0), np.clip(a, -1, 1))


def test_bug_reshape_refuses_non_integer_dims():
    t = T(np.zeros(24, np.float32))
    with pytest.raises(TypeError):
        t.reshape((4.9, 6))  # silently became (4, 6)
    with pytest.raises(TypeError):
        tensor.product([2.5, 2])


def test_bug_axis_arguments_must_be_integers():
    t = T(np.arange(6, dtype=np.float32).reshape(2, 3))
    with pytest.raises(TypeError):
        tensor.argmax(t, 0.7)  # silently axis 0
    with pytest.raises(TypeError):
        tensor.softmax(t, 0.7)
    with pytest.raises(TypeError):
        tensor.concatenate([t, t], 0.9)


def test_bug_tensordot_takes_numpy_integer_axes():
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    b = np.arange(12, dtype=np.float32).reshape(3, 4)
    axes = (np.int64(1), np.int64(0))
    close(tensor.tensordot(T(a), T(b), axes), np.tensordot(a, b, axes))


def test_bug_add_column_and_add_row_on_matrices_with_a_zero_dim():
    m = tensor.add_column(1.0, T(np.zeros(0, np.float32)), 1.0, T(np.zeros((0, 3), np.float32)))
    assert m.shape == (0, 3)
    m = tensor.add_row(1.0, T(np.zeros(0, np.float32)), 1.0, T(np.zeros((3, 0), np.float32)))
    assert m.shape == (3, 0)


def test_bug_module_functions_name_a_non_tensor_operand():
    with pytest.raises(TypeError, match="Tensor"):
        tensor.axpy(2.0, np.ones(3), T(np.ones(3, np.float32)))
    with pytest.raises(TypeError, match="Tensor"):
        tensor.add(T(np.ones(3, np.float32)), np.ones(3))


def test_bug_l2_is_singas_nrm2_over_size():
    # SINGA's Tensor::l2() is Nrm2(x) / Size() (src/core/tensor/tensor.cc), as its l1() is
    # Asum(x) / Size(); minisinga returns sqrt(mean(x^2)) = Nrm2 / sqrt(Size).
    v = T(np.array([3, -4], np.float32))
    assert v.l2() == pytest.approx(5.0 / 2)
