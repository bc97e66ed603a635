"""Elementwise kernels against numpy: every unary and binary op, broadcasting, dtypes."""

import math

import numpy as np
import pytest
from conftest import core_tensor

from minisinga import _core

U, B = _core.UnaryOp, _core.BinaryOp
erf = np.vectorize(math.erf)


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def gelu(x):
    return 0.5 * x * (1 + erf(x / np.sqrt(2)))


def gelu_tanh_u(x):  # the tanh approximation's argument and its derivative
    k = np.sqrt(2 / np.pi)
    return k * (x + 0.044715 * x ** 3), k * (1 + 3 * 0.044715 * x * x)


def gelu_tanh(x):
    return 0.5 * x * (1 + np.tanh(gelu_tanh_u(x)[0]))


def gelu_grad(x):  # Phi(x) + x phi(x)
    return 0.5 * (1 + erf(x / np.sqrt(2))) + x * np.exp(-0.5 * x * x) / np.sqrt(2 * np.pi)


def gelu_tanh_grad(x):
    u, du = gelu_tanh_u(x)
    t = np.tanh(u)
    return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * du


# op -> (numpy reference in float64, domain sampler, params a, b)
UNARY = {
    U.Neg: (lambda x, a, b: -x, "any"), U.Abs: (lambda x, a, b: np.abs(x), "any"),
    U.Sign: (lambda x, a, b: np.sign(x), "any"), U.Exp: (lambda x, a, b: np.exp(x), "any"),
    U.Log: (lambda x, a, b: np.log(x), "pos"), U.Sqrt: (lambda x, a, b: np.sqrt(x), "pos"),
    U.Square: (lambda x, a, b: x * x, "any"), U.Reciprocal: (lambda x, a, b: 1 / x, "pos"),
    U.Relu: (lambda x, a, b: np.maximum(x, 0), "any"),
    U.Sigmoid: (lambda x, a, b: sigmoid(x), "any"), U.Tanh: (lambda x, a, b: np.tanh(x), "any"),
    U.Softplus: (lambda x, a, b: np.logaddexp(0, x), "any"),
    U.Softsign: (lambda x, a, b: x / (1 + np.abs(x)), "any"),
    U.Erf: (lambda x, a, b: erf(x), "any"), U.Gelu: (lambda x, a, b: gelu(x), "any"),
    U.GeluTanh: (lambda x, a, b: gelu_tanh(x), "any"), U.Sin: (lambda x, a, b: np.sin(x), "any"),
    U.Cos: (lambda x, a, b: np.cos(x), "any"), U.Floor: (lambda x, a, b: np.floor(x), "any"),
    U.Ceil: (lambda x, a, b: np.ceil(x), "half"),
    U.Round: (lambda x, a, b: np.sign(x) * np.floor(np.abs(x) + 0.5), "half"),
    U.Rint: (lambda x, a, b: np.rint(x), "half"),
    U.Tan: (lambda x, a, b: np.tan(x), "small"), U.Atan: (lambda x, a, b: np.arctan(x), "any"),
    U.Asin: (lambda x, a, b: np.arcsin(x), "unit"), U.Acos: (lambda x, a, b: np.arccos(x), "unit"),
    U.Sinh: (lambda x, a, b: np.sinh(x), "any"), U.Cosh: (lambda x, a, b: np.cosh(x), "any"),
    U.Asinh: (lambda x, a, b: np.arcsinh(x), "any"),
    U.Acosh: (lambda x, a, b: np.arccosh(x), "ge1"),
    U.Atanh: (lambda x, a, b: np.arctanh(x), "unit"),
    U.AddScalar: (lambda x, a, b: x + a, "any"), U.MulScalar: (lambda x, a, b: x * a, "any"),
    U.RSubScalar: (lambda x, a, b: a - x, "any"), U.RDivScalar: (lambda x, a, b: a / x, "pos"),
    U.PowScalar: (lambda x, a, b: x ** a, "pos"), U.RPowScalar: (lambda x, a, b: a ** x, "any"),
    U.MaxScalar: (lambda x, a, b: np.maximum(x, a), "any"),
    U.MinScalar: (lambda x, a, b: np.minimum(x, a), "any"),
    U.Clip: (lambda x, a, b: np.clip(x, a, b), "any"),
    U.LeakyRelu: (lambda x, a, b: np.where(x > 0, x, a * x), "any"),
    U.Elu: (lambda x, a, b: np.where(x > 0, x, a * (np.exp(x) - 1)), "any"),
    U.Selu: (lambda x, a, b: b * np.where(x > 0, x, a * (np.exp(x) - 1)), "any"),
    U.HardSigmoid: (lambda x, a, b: np.clip(a * x + b, 0, 1), "any"),
    U.LtScalar: (lambda x, a, b: x < a, "any"), U.LeScalar: (lambda x, a, b: x <= a, "any"),
    U.GtScalar: (lambda x, a, b: x > a, "any"), U.GeScalar: (lambda x, a, b: x >= a, "any"),
    U.EqScalar: (lambda x, a, b: x == a, "int"), U.NeScalar: (lambda x, a, b: x != a, "int"),
    U.DivScalar: (lambda x, a, b: x / a, "any"),
    # quotients kept off whole numbers, where float32 and float64 floors could differ
    U.FloorDivScalar: (lambda x, a, b: np.floor(x / a), "half"),
    U.RFloorDivScalar: (lambda x, a, b: np.floor(a / x), "recip"),
}
PARAMS = {U.Clip: (-0.5, 0.7), U.Selu: (1.67, 1.05), U.HardSigmoid: (0.2, 0.5),
          U.PowScalar: (2.5, 0), U.RPowScalar: (1.7, 0), U.EqScalar: (1.0, 0),
          U.NeScalar: (1.0, 0), U.DivScalar: (-0.3, 0), U.FloorDivScalar: (0.5, 0),
          U.RFloorDivScalar: (1.0, 0)}

BINARY = {
    B.Add: np.add, B.Sub: np.subtract, B.Mul: np.multiply, B.Div: np.divide,
    B.Pow: np.power, B.Maximum: np.maximum, B.Minimum: np.minimum, B.Lt: np.less,
    B.Le: np.less_equal, B.Gt: np.greater, B.Ge: np.greater_equal, B.Eq: np.equal,
    B.Ne: np.not_equal,
    B.ReluBackward: lambda dy, x: np.where(x > 0, dy, 0.0),  # ReLU's gradient: dy where x > 0
    B.SigmoidBackward: lambda dy, y: dy * (y * (1 - y)),  # sigmoid's, from its output y
    B.TanhBackward: lambda dy, y: dy * (1 - y * y),  # tanh's, from its output y
    B.GeluBackward: lambda dy, x: dy * gelu_grad(x),  # GELU's, from its input x
    B.GeluTanhBackward: lambda dy, x: dy * gelu_tanh_grad(x),
    # the float32 quotient's floor (the operands are float32 values)
    B.FloorDiv: lambda x, y: np.floor(x.astype(np.float32) / y.astype(np.float32)),
}

SHAPE_PAIRS = [((3, 4), (3, 4)), ((1,), (5,)), ((2, 3, 4), (4,)), ((2, 1, 4), (3, 1)),
               ((1, 1), (1, 1)), ((5, 1, 1, 3), (1, 4, 2, 1)), ((3, 1), ()), ((), (2, 2)),
               ((0, 3), (1, 3)), ((70000,), (70000,)), ((300, 257), (257,)),
               ((2, 40000), (2, 1))]


def sample(rng, shape, kind):
    if kind == "pos":
        return rng.random(shape) + 0.2
    if kind == "int":
        return rng.integers(-2, 3, shape).astype(np.float64)
    if kind == "half":  # exact halves among the values: where rounding modes differ
        return rng.integers(-9, 10, shape) / 2 + (rng.random(shape) < 0.5) * 0.2
    if kind == "recip":  # |x| in (1.05, 4.05): 1 / x strictly between -1 and 1
        return (rng.random(shape) * 3 + 1.05) * rng.choice([-1, 1], shape)
    if kind == "small":
        return rng.uniform(-1.2, 1.2, shape)
    if kind == "unit":
        return rng.uniform(-0.95, 0.95, shape)
    if kind == "ge1":
        return rng.random(shape) * 3 + 1.05
    return rng.standard_normal(shape) * 2


def test_every_op_has_a_reference():
    assert set(U.__members__.values()) == set(UNARY)
    assert set(B.__members__.values()) == set(BINARY)


@pytest.mark.parametrize("op", list(UNARY), ids=lambda o: o.name)
@pytest.mark.parametrize("shape", [(7,), (3, 1, 5), (1,), (), (66000,)])
def test_unary_float32(op, shape, rng):
    ref, kind = UNARY[op]
    a, b = PARAMS.get(op, (0.3, 0.0))
    x = sample(rng, shape, kind).astype(np.float32)
    y = _core.unary(op, core_tensor(x), a, b).to_numpy()
    np.testing.assert_allclose(y, ref(x.astype(np.float64), a, b), rtol=2e-5, atol=1e-6)


@pytest.mark.parametrize("op", list(UNARY), ids=lambda o: o.name)
def test_unary_float16_computes_in_float32(op, rng):
    ref, kind = UNARY[op]
    a, b = PARAMS.get(op, (0.3, 0.0))
    x = sample(rng, (4, 9), kind).astype(np.float16)
    y = _core.unary(op, core_tensor(x), a, b).to_numpy()
    assert y.dtype == np.float16
    expected = ref(x.astype(np.float64), a, b).astype(np.float16)
    np.testing.assert_allclose(y.astype(np.float64), expected.astype(np.float64),
                               rtol=2e-3, atol=2e-3)


@pytest.mark.parametrize("op", [U.Neg, U.Abs, U.Sign, U.Square, U.AddScalar, U.MulScalar,
                                U.MaxScalar, U.Clip, U.GtScalar, U.EqScalar, U.DivScalar,
                                U.FloorDivScalar],
                         ids=lambda o: o.name)
def test_unary_int32_is_exact(op, rng):
    ref, _ = UNARY[op]
    a, b = PARAMS.get(op, (3.0, 0.0))
    x = rng.integers(-30000, 30000, (50,)).astype(np.int32)
    x[:3] = [2 ** 31 - 1, -2 ** 31 + 1, 0]
    y = _core.unary(op, core_tensor(x), a, b).to_numpy()
    assert y.dtype == np.int32
    expected = ref(x.astype(np.float64), a, b)
    if op == U.Square:
        x = x[3:]
        y, expected = y[3:], ref(x.astype(np.float64), a, b)
    if op in (U.AddScalar, U.MulScalar, U.DivScalar, U.FloorDivScalar):  # past int32
        y, expected = y[3:], expected[3:]
    np.testing.assert_array_equal(y, expected.astype(np.int64))


@pytest.mark.parametrize("op", list(BINARY), ids=lambda o: o.name)
@pytest.mark.parametrize("sa,sb", SHAPE_PAIRS)
def test_binary_broadcasting(op, sa, sb, rng):
    x = rng.standard_normal(sa).astype(np.float32)
    y = rng.standard_normal(sb).astype(np.float32)
    if op == B.Pow:
        x = np.abs(x) + 0.1
    if op in (B.Eq, B.Ne):
        x, y = np.round(x), np.round(y)
    out = _core.binary(op, core_tensor(x), core_tensor(y)).to_numpy()
    expected = BINARY[op](x.astype(np.float64), y.astype(np.float64))
    assert out.shape == expected.shape
    np.testing.assert_allclose(out, expected, rtol=2e-5, atol=1e-6)


@pytest.mark.parametrize("dtype", [np.float16, np.int32])
@pytest.mark.parametrize("op", [B.Add, B.Sub, B.Mul, B.Maximum, B.Lt, B.Eq],
                         ids=lambda o: o.name)
def test_binary_other_dtypes(op, dtype, rng):
    x = (rng.standard_normal((3, 1, 4)) * 10).astype(dtype)
    y = (rng.standard_normal((2, 1)) * 10).astype(dtype)
    out = _core.binary(op, core_tensor(x), core_tensor(y)).to_numpy()
    assert out.dtype == dtype
    expected = BINARY[op](x.astype(np.float64), y.astype(np.float64)).astype(dtype)
    tol = 1e-2 if dtype == np.float16 else 0
    np.testing.assert_allclose(out.astype(np.float64), expected.astype(np.float64),
                               rtol=tol, atol=tol)


def test_int32_division_truncates_like_c(rng):
    x = np.array([7, -7, 9, 1], np.int32)
    y = np.array([2, 2, 3, 4], np.int32)
    out = _core.binary(B.Div, core_tensor(x), core_tensor(y)).to_numpy()
    np.testing.assert_array_equal(out, [3, -3, 3, 0])


def test_int32_floor_division_rounds_down():
    x = np.array([7, -7, 9, -1, 2 ** 31 - 1, -2 ** 31 + 1], np.int32)
    y = np.array([2, 2, -3, 4, 2, -7], np.int32)
    out = _core.binary(B.FloorDiv, core_tensor(x), core_tensor(y)).to_numpy()
    np.testing.assert_array_equal(out, x // y)
    np.testing.assert_array_equal(_core.unary(U.FloorDivScalar, core_tensor(x), 2.0).to_numpy(),
                                  x // 2)
    np.testing.assert_array_equal(_core.unary(U.DivScalar, core_tensor(x), 7.0).to_numpy(),
                                  np.trunc(x / 7).astype(np.int32))


def test_binary_out_in_place_and_aliasing(rng):
    x = rng.standard_normal((4, 5)).astype(np.float32)
    b = rng.standard_normal((5,)).astype(np.float32)
    tx = core_tensor(x)
    r = _core.binary(B.Add, tx, core_tensor(b), out=tx)
    assert r.same_block(tx)
    np.testing.assert_allclose(tx.to_numpy(), x + b, rtol=1e-6)
    _core.unary(U.MulScalar, tx, 2.0, out=tx)
    np.testing.assert_allclose(tx.to_numpy(), 2 * (x + b), rtol=1e-6)


@pytest.mark.parametrize("sc,sx,sy", [((3, 1), (3, 4), (4,)), ((5,), (5,), (5,)),
                                      ((2, 1, 3), (1, 4, 1), ())])
def test_where(sc, sx, sy, rng):
    c = (rng.random(sc) > 0.5).astype(np.float32)
    x = rng.standard_normal(sx).astype(np.float32)
    y = rng.standard_normal(sy).astype(np.float32)
    out = _core.where(core_tensor(c), core_tensor(x), core_tensor(y)).to_numpy()
    np.testing.assert_array_equal(out, np.where(c != 0, x, y))
    ci = c.astype(np.int32)
    out = _core.where(core_tensor(ci), core_tensor(x), core_tensor(y)).to_numpy()
    np.testing.assert_array_equal(out, np.where(ci != 0, x, y))


@pytest.mark.parametrize("dtype", [np.float32, np.float16, np.int32])
def test_fill(dtype):
    t = core_tensor(np.zeros((3, 70000), dtype))
    _core.fill(t, 7.0)
    np.testing.assert_array_equal(t.to_numpy(), np.full((3, 70000), 7, dtype))


def test_bad_inputs_give_clear_errors(rng):
    a = core_tensor(np.zeros((3, 4), np.float32))
    with pytest.raises(ValueError, match=r"Add: shapes \(3, 4\) and \(5,\) are not broadcastable"):
        _core.binary(B.Add, a, core_tensor(np.zeros(5, np.float32)))
    with pytest.raises(TypeError, match="Mul: dtypes differ"):
        _core.binary(B.Mul, a, core_tensor(np.zeros(4, np.int32)))
    other = _core.create_cpu_device()
    b = _core.Tensor([3, 4], other)
    with pytest.raises(TypeError, match="different devices"):
        _core.binary(B.Sub, a, b)
    with pytest.raises(ValueError, match=r"out has shape \(2,\), expected \(3, 4\)"):
        _core.unary(U.Exp, a, out=core_tensor(np.zeros(2, np.float32)))
    with pytest.raises(TypeError, match="out has dtype int32"):
        _core.binary(B.Add, a, a, out=core_tensor(np.zeros((3, 4), np.int32)))
    with pytest.raises(ValueError, match="more than 8"):
        s1 = (2, 1) * 5
        s2 = (1, 2) * 5
        _core.binary(B.Add, core_tensor(np.zeros(s1, np.float32)),
                     core_tensor(np.zeros(s2, np.float32)))


@pytest.mark.parametrize("op,ref,max_ulp", [
    (U.Exp, np.exp, 1.5), (U.Tanh, np.tanh, 2.0), (U.Sigmoid, sigmoid, 3.0),
    (U.Log, np.log, 1.5), (U.Erf, erf, 3.0),
], ids=lambda v: getattr(v, "name", ""))
def test_exp_family_accuracy_over_the_whole_range(op, ref, max_ulp):
    """The CPU's own vectorised exp, log, tanh and erf (elementwise_ops.h): within a few ulp of the
    float64 result wherever that is a normal float, and the C library's special values."""
    x = np.concatenate([np.linspace(-100, 100, 1_000_001, dtype=np.float32),
                        np.float32([-1e-30, 1e-30, 0.6249999, 0.625, -0.625, 88.72283,
                                    -87.33654, 20.0, -20.0, 1e-45, 1e-40, 3e38]),
                        np.geomspace(1e-38, 1e38, 100_001, dtype=np.float32)])
    got = _core.unary(op, core_tensor(x), 1.0, 0.0).to_numpy().astype(np.float64)
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        want = ref(x.astype(np.float64))
        normal = np.isfinite(want.astype(np.float32)) & (np.abs(want) >= 1.2e-38)
    ulp = np.spacing(np.abs(want[normal]).astype(np.float32)).astype(np.float64)
    err = np.abs(got[normal] - want[normal]) / ulp
    assert err.max() <= max_ulp, (err.max(), x[normal][err.argmax()])
    specials = np.float32([np.nan, np.inf, -np.inf, 0.0, 89.0, -90.0, -1.0])
    got = _core.unary(op, core_tensor(specials), 1.0, 0.0).to_numpy()
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        want = ref(specials.astype(np.float64)).astype(np.float32)
    # NaN where NaN, infs equal, finite values within max_ulp
    np.testing.assert_allclose(got, want, rtol=max_ulp * 2.0**-23, atol=1.2e-38)
