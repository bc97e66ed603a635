"""SINGA's other element-wise operators: trigonometric and hyperbolic, reciprocal, prelu, the
zero-gradient rounding ops, comparisons and logic, variadic sum/mean/max/min, gemm, cossim,
ranking_loss; forward vs numpy, gradient vs finite differences, eager == graph."""

import numpy as np
import pytest
from conftest import graph_shuffle
from gradcheck import check_op

from minisinga import autograd as ag
from minisinga import device, layer, model, opt, tensor

R = np.random.default_rng(7)


def rn(*shape):
    return R.standard_normal(shape).astype(np.float32)


def uni(lo, hi, *shape):
    return R.uniform(lo, hi, shape).astype(np.float32)


def away(*shape, gap=0.1):
    """Random values at least `gap` away from 0."""
    x = rn(*shape)
    return (np.sign(x) * (np.abs(x) + gap)).astype(np.float32)


def distinct(*shapes):
    """Arrays of the given shapes whose values are all different (0.1 apart at least), so that
    max/min have one winner everywhere, also under finite-difference steps."""
    sizes = [int(np.prod(s)) for s in shapes]
    vals = R.permutation(np.sum(sizes)) * 0.1 - 1.0
    out, i = [], 0
    for s, n in zip(shapes, sizes):
        out.append(vals[i:i + n].reshape(s).astype(np.float32))
        i += n
    return out


def t(a, dev=None, grad=True):
    return tensor.Tensor(data=np.asarray(a, np.float32), device=dev, requires_grad=grad,
                         stores_grad=grad)


def np_prelu(x, s):
    return np.where(x > 0, x, s * x)


def np_cossim(a, b):
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def np_gemm(a, b, c=None, alpha=1.0, beta=1.0, ta=0, tb=0):
    y = alpha * ((a.T if ta else a) @ (b.T if tb else b))
    return y if c is None else y + beta * c


# (id, fn on Tensors, numpy reference, inputs)
POINTWISE = [
    ("sin", ag.sin, np.sin, [rn(3, 4)]),
    ("cos", ag.cos, np.cos, [rn(3, 4)]),
    ("tan", ag.tan, np.tan, [uni(-1.2, 1.2, 3, 4)]),
    ("asin", ag.asin, np.arcsin, [uni(-0.9, 0.9, 3, 4)]),
    ("acos", ag.acos, np.arccos, [uni(-0.9, 0.9, 3, 4)]),
    ("atan", ag.atan, np.arctan, [rn(3, 4) * 2]),
    ("sinh", ag.sinh, np.sinh, [rn(3, 4)]),
    ("cosh", ag.cosh, np.cosh, [rn(3, 4)]),
    ("asinh", ag.asinh, np.arcsinh, [rn(3, 4) * 2]),
    ("acosh", ag.acosh, np.arccosh, [uni(1.2, 4.0, 3, 4)]),
    ("atanh", ag.atanh, np.arctanh, [uni(-0.9, 0.9, 3, 4)]),
    ("reciprocal", ag.reciprocal, lambda x: 1 / x, [away(3, 4, gap=0.3)]),
    ("negative", ag.negative, np.negative, [rn(5)]),
    ("LeakyRelu_alias", lambda x: ag.LeakyRelu(0.2)(x), lambda x: np.where(x > 0, x, 0.2 * x),
     [away(6)]),
    ("SeLU_alias", lambda x: ag.SeLU(1.67326, 1.0507)(x),
     lambda x: 1.0507 * np.where(x > 0, x, 1.67326 * (np.exp(x) - 1)), [away(6)]),
    ("clip_keywords", lambda x: ag.clip(x, min=-0.5, max=0.5), lambda x: np.clip(x, -0.5, 0.5),
     [np.array([-2, -0.7, -0.2, 0.1, 0.45, 0.9], np.float32)]),
    ("clip_min_only", lambda x: ag.clip(x, min=-0.5), lambda x: np.maximum(x, -0.5),
     [np.array([-2, -0.7, -0.2, 0.1, 0.45, 0.9], np.float32)]),
    ("clip_max_only", lambda x: ag.clip(x, max=0.3), lambda x: np.minimum(x, 0.3),
     [np.array([-2, -0.7, -0.2, 0.1, 0.45, 0.9], np.float32)]),
    ("clip_positional", lambda x: ag.clip(x, -0.5, 0.5), lambda x: np.clip(x, -0.5, 0.5),
     [np.array([-2, -0.7, -0.2, 0.1, 0.45, 0.9], np.float32)]),
]

D3 = distinct((3, 4), (3, 4), (3, 4))
DB = distinct((2, 3, 4), (3, 1), (4,))

MULTI = [
    ("prelu_vector_slope", ag.prelu, np_prelu, [away(3, 4), rn(4)]),
    ("prelu_scalar_slope", ag.prelu, np_prelu, [away(3, 4), rn(1)]),
    ("prelu_column_slope", ag.prelu, np_prelu, [away(2, 3, 4), rn(3, 1)]),
    ("prelu_same_shape", ag.prelu, np_prelu, [away(2, 3), rn(2, 3)]),
    ("sum_one", ag.sum, lambda a: a, [rn(3, 2)]),
    ("sum_three", ag.sum, lambda a, b, c: a + b + c, [rn(3, 4), rn(3, 4), rn(3, 4)]),
    ("sum_bcast", ag.sum, lambda a, b, c: a + b + c, [rn(2, 3, 4), rn(3, 1), rn(4)]),
    ("mean_two", ag.mean, lambda a, b: (a + b) / 2, [rn(3, 4), rn(3, 4)]),
    ("mean_bcast", ag.mean, lambda a, b, c: (a + b + c) / 3, [rn(2, 1, 4), rn(3, 1), rn(1)]),
    ("max_one", ag.max, lambda a: a, [rn(4)]),
    ("max_three", ag.max, lambda a, b, c: np.maximum(np.maximum(a, b), c), D3),
    ("max_bcast", ag.max, lambda a, b, c: np.maximum(np.maximum(a, b), c), DB),
    ("min_three", ag.min, lambda a, b, c: np.minimum(np.minimum(a, b), c), D3),
    ("min_bcast", ag.min, lambda a, b, c: np.minimum(np.minimum(a, b), c), DB),
    ("add_all", ag.add_all, lambda a, b, c, d: a + b + c + d,
     [rn(2, 3), rn(3), rn(2, 1), rn(2, 3)]),
    ("add_all_number", lambda a, b: ag.add_all(a, 2.5, b), lambda a, b: a + 2.5 + b,
     [rn(2, 3), rn(2, 3)]),
    ("gemm", ag.gemm, np_gemm, [rn(3, 4), rn(4, 5)]),
    ("gemm_c_full", lambda a, b, c: ag.gemm(a, b, c, 0.5, 2.0),
     lambda a, b, c: np_gemm(a, b, c, 0.5, 2.0), [rn(3, 4), rn(4, 5), rn(3, 5)]),
    ("gemm_c_row", lambda a, b, c: ag.gemm(a, b, c, 1.5, -0.7),
     lambda a, b, c: np_gemm(a, b, c, 1.5, -0.7), [rn(3, 4), rn(4, 5), rn(5)]),
    ("gemm_c_column", lambda a, b, c: ag.gemm(a, b, c, beta=3.0),
     lambda a, b, c: np_gemm(a, b, c, beta=3.0), [rn(3, 4), rn(4, 5), rn(3, 1)]),
    ("gemm_c_scalar", lambda a, b, c: ag.gemm(a, b, c, beta=0.5),
     lambda a, b, c: np_gemm(a, b, c, beta=0.5), [rn(3, 4), rn(4, 5), rn(1, 1)]),
    ("gemm_transA", lambda a, b, c: ag.gemm(a, b, c, 0.5, 1.0, transA=1),
     lambda a, b, c: np_gemm(a, b, c, 0.5, 1.0, ta=1), [rn(4, 3), rn(4, 5), rn(5)]),
    ("gemm_transB", lambda a, b, c: ag.gemm(a, b, c, 2.0, 1.0, transB=1),
     lambda a, b, c: np_gemm(a, b, c, 2.0, 1.0, tb=1), [rn(3, 4), rn(5, 4), rn(3, 5)]),
    ("gemm_transAB", lambda a, b: ag.gemm(a, b, None, -1.0, 1.0, 1, 1),
     lambda a, b: np_gemm(a, b, None, -1.0, 1.0, 1, 1), [rn(4, 3), rn(5, 4)]),
    ("cossim", ag.cossim, np_cossim, [rn(4, 5), rn(4, 5)]),
    ("ranking_loss", ag.ranking_loss, lambda p, n: np.maximum(0, 0.2 - p + n).mean(),
     # p - n kept away from the margin 0.2 (the kink)
     [np.array([0.9, 0.1, 0.5, -0.3, 0.05], np.float32),
      np.array([0.1, 0.3, 0.6, -0.9, 0.0], np.float32)]),
    ("ranking_loss_bcast", lambda p, n: ag.ranking_loss(p, n, M=0.5),
     lambda p, n: np.maximum(0, 0.5 - p + n).mean(),
     [np.array([[0.9], [0.1], [-0.4]], np.float32),
      np.array([0.0, 0.75, -0.3, 0.2], np.float32)]),
]


@pytest.mark.parametrize("name,fn,ref,inputs", POINTWISE + MULTI,
                         ids=lambda v: v if isinstance(v, str) else "")
def test_op(dev, name, fn, ref, inputs):
    check_op(fn, ref, inputs, device=dev)


def test_op_ids_are_unique():
    names = [e[0] for e in POINTWISE + MULTI]
    assert len(names) == len(set(names))


# ---- zero gradient ----

HALVES = np.array([-2.5, -1.5, -0.5, -0.0, 0.0, 0.5, 1.5, 2.5, -1.2, 0.7, 3.49], np.float32)

FLAT = [
    ("sign", ag.sign, np.sign),
    ("ceil", ag.ceil, np.ceil),
    ("floor", ag.floor, np.floor),
    ("round", ag.round, lambda x: np.sign(x) * np.floor(np.abs(x) + 0.5)),  # halves away
    ("rounde", ag.rounde, np.rint),  # halves to even
]


@pytest.mark.parametrize("name,fn,ref", FLAT, ids=lambda v: v if isinstance(v, str) else "")
def test_zero_gradient_ops(dev, name, fn, ref):
    # the ties: round(2.5) = 3, rounde(2.5) = 2, sign(0) = 0 ...
    got = fn(t(HALVES, dev, grad=False)).to_numpy()
    np.testing.assert_array_equal(got, ref(HALVES))
    if name == "rounde":
        np.testing.assert_array_equal(got[[0, 2, 6, 7]], [-2, -0.0, 2, 2])
    if name == "round":
        np.testing.assert_array_equal(got[[0, 2, 5, 7]], [-3, -1, 1, 3])
    # away from the jumps the derivative is 0; check_op compares with finite differences
    x = (np.arange(12, dtype=np.float32) * 0.37 - 2.1).reshape(3, 4)
    check_op(fn, ref, [x], device=dev)
    # and the gradient is exactly zero, jumps included
    xt = t(HALVES, dev)
    with ag.train_mode():
        y = fn(xt)
    g = ag.gradients(y, t(rn(HALVES.size), dev, grad=False))[xt].to_numpy()
    np.testing.assert_array_equal(g, np.zeros_like(HALVES))


# ---- comparisons and logic ----

A = np.array([[0.0, 1.0, -2.0, 3.0], [2.0, 0.0, 0.5, -1.0], [np.nan, 1.0, 0.0, 2.0]],
             np.float32)
BV = np.array([0.0, 1.0, 0.5, np.nan], np.float32)  # broadcast as a row

CMP = [
    ("less", ag.less, np.less),
    ("greater", ag.greater, np.greater),
    ("equal", ag.equal, np.equal),
    ("and", ag._and, np.logical_and),
    ("or", ag._or, np.logical_or),
    ("xor", ag._xor, np.logical_xor),
]


@pytest.mark.parametrize("name,fn,ref", CMP, ids=lambda v: v if isinstance(v, str) else "")
def test_comparisons_and_logic(dev, name, fn, ref):
    for a, b in ((A, BV), (BV, A), (A, A[::-1].copy())):
        got = fn(t(a, dev, grad=False), t(b, dev, grad=False))
        assert got.dtype == tensor.float32
        np.testing.assert_array_equal(got.to_numpy(), ref(a, b).astype(np.float32),
                                      err_msg=f"{name}({a.shape}, {b.shape})")


def test_not(dev):
    np.testing.assert_array_equal(ag._not(t(A, dev, grad=False)).to_numpy(),
                                  np.logical_not(A).astype(np.float32))


@pytest.mark.parametrize("name,fn,ref", CMP, ids=lambda v: v if isinstance(v, str) else "")
def test_comparisons_send_no_gradient(dev, name, fn, ref):
    x, z = t(rn(3, 4), dev), t(rn(4), dev)
    with ag.train_mode():
        y = fn(x, z)
    assert ag.gradients(y) == {}  # neither input gets a gradient through a comparison
    # used as a mask: only the other factor's path carries gradient
    xs = (np.arange(12, dtype=np.float32).reshape(3, 4) - 5.5) * 0.3
    zs = np.array([0.1, -0.5, 0.95, 2.0], np.float32)  # no element of xs is within 0.04
    check_op(lambda a, b: ag.mul(fn(a, b), a), lambda a, b: ref(a, b) * a, [xs, zs], wrt=[0],
             device=dev)


def test_not_sends_no_gradient():
    x = t(rn(3))
    with ag.train_mode():
        y = ag._not(x)
    assert ag.gradients(y) == {}


# ---- max / min: ties and misuse ----

def test_max_min_ties_go_to_the_first_input(dev):
    a = np.array([1.0, 2.0, 3.0, 0.0], np.float32)
    b = np.array([1.0, 5.0, 3.0, 0.0], np.float32)
    c = np.array([0.0, 5.0, 3.0, 0.0], np.float32)
    dy = np.array([1.0, 2.0, 3.0, 4.0], np.float32)
    for fn, expect in ((ag.max, ([1, 0, 3, 4], [0, 2, 0, 0], [0, 0, 0, 0])),
                       (ag.min, ([0, 2, 3, 4], [0, 0, 0, 0], [1, 0, 0, 0]))):
        ts = [t(v, dev) for v in (a, b, c)]
        with ag.train_mode():
            y = fn(*ts)
        g = ag.gradients(y, t(dy, dev, grad=False))
        for i, e in enumerate(expect):
            got = g[ts[i]].to_numpy() if ts[i] in g else np.zeros(4, np.float32)
            np.testing.assert_array_equal(got, e, err_msg=f"{fn.__name__} input {i}")


def test_max_ties_with_broadcast_and_repeated_input(dev):
    s = t([2.0], dev)  # one element, broadcast: it wins every tie it is part of
    x = t([2.0, 1.0, 2.0, 3.0], dev)
    with ag.train_mode():
        y = ag.max(s, x)
    g = ag.gradients(y, t([1.0, 2.0, 4.0, 8.0], dev, grad=False))
    np.testing.assert_array_equal(y.to_numpy(), [2, 2, 2, 3])
    np.testing.assert_array_equal(g[s].to_numpy(), [7.0])
    np.testing.assert_array_equal(g[x].to_numpy(), [0, 0, 0, 8])
    with ag.train_mode():
        y = ag.min(x, x)  # the same tensor twice: its gradient is dy once
    np.testing.assert_array_equal(ag.gradients(y, t([1.0, 2.0, 3.0, 4.0], dev, grad=False))[x]
                                  .to_numpy(), [1, 2, 3, 4])


@pytest.mark.parametrize("fn,reduction", [(ag.max, "reduce_max"), (ag.min, "reduce_min")])
def test_max_min_refuse_non_tensors(fn, reduction):
    x = t(rn(3, 4))
    for args in ((x, 1), (x, [0, 1]), (x, None), (np.ones(3),)):
        with pytest.raises(TypeError, match=reduction):
            fn(*args)
    with pytest.raises(TypeError, match="no arguments"):
        fn()


def test_reductions_are_reduce_max_and_reduce_min():
    x = distinct((3, 4))[0]
    np.testing.assert_array_equal(ag.reduce_max(t(x)).to_numpy(), x.max(keepdims=True))
    np.testing.assert_array_equal(ag.reduce_min(t(x), [1]).to_numpy(), x.min(1, keepdims=True))
    np.testing.assert_array_equal(ag.reduce_max(t(x), 0, keepdims=False).to_numpy(), x.max(0))


def test_variadic_errors():
    with pytest.raises(TypeError, match="sum: argument 1 is a float"):
        ag.sum(t(rn(2)), 1.0)
    with pytest.raises(ValueError, match=r"mean: input shapes \[\(2, 3\), \(4,\)\]"):
        ag.mean(t(rn(2, 3)), t(rn(4)))
    with pytest.raises(ValueError, match="max: input shapes"):
        ag.max(t(rn(2, 3)), t(rn(3)), t(rn(2)))
    with pytest.raises(TypeError, match="add_all: expected one or more Tensors"):
        ag.add_all()
    with pytest.raises(TypeError, match="add_all"):
        ag.add_all(1.0, 2.0)


# ---- bad input elsewhere ----

def test_bad_input_messages():
    with pytest.raises(ValueError, match=r"prelu: slope of shape \(3,\) does not broadcast to "
                                         r"x's shape \(2, 4\)"):
        ag.prelu(t(rn(2, 4)), t(rn(3)))
    with pytest.raises(ValueError, match=r"prelu: slope of shape \(2, 4\) .* \(4,\)"):
        ag.prelu(t(rn(4)), t(rn(2, 4)))  # the slope may not grow x
    with pytest.raises(ValueError, match="gemm: A' is \\(3, 4\\) and B' is \\(5, 4\\)"):
        ag.gemm(t(rn(3, 4)), t(rn(5, 4)))
    with pytest.raises(ValueError, match="gemm: A and B must be 2-d"):
        ag.gemm(t(rn(3, 4, 1)), t(rn(4, 5)))
    with pytest.raises(ValueError, match=r"gemm: C of shape \(4, 5\) does not broadcast to "
                                         r"Y's shape \(3, 5\)"):
        ag.gemm(t(rn(3, 4)), t(rn(4, 5)), t(rn(4, 5)))
    with pytest.raises(ValueError, match=r"gemm: C of shape \(2, 3, 5\)"):
        ag.gemm(t(rn(3, 4)), t(rn(4, 5)), t(rn(2, 3, 5)))
    with pytest.raises(ValueError, match="cossim: expected two 2-d tensors of the same shape"):
        ag.cossim(t(rn(3, 4)), t(rn(3, 5)))
    with pytest.raises(ValueError, match="cossim"):
        ag.cossim(t(rn(4)), t(rn(4)))
    with pytest.raises(ValueError, match=r"ranking_loss: pos \(3,\) and neg \(4,\)"):
        ag.ranking_loss(t(rn(3)), t(rn(4)))
    with pytest.raises(ValueError, match=r"less: shapes \(3,\) and \(2,\)"):
        ag.less(t(rn(3)), t(rn(2)))
    with pytest.raises(ValueError, match="_xor: shapes"):
        ag._xor(t(rn(3)), t(rn(2)))
    with pytest.raises(TypeError, match="Greater: inputs must be Tensors"):
        ag.greater(t(rn(3)), 0.5)
    with pytest.raises(ValueError, match=r"clip: min \(1.0\) is greater than max \(0.0\)"):
        ag.clip(t(rn(3)), min=1, max=0)


def test_singa_names():
    assert ag.Operation is ag.Operator
    assert ag.LeakyRelu is ag.LeakyReLU and ag.SeLU is ag.Selu
    assert issubclass(ag.Negative, ag.Neg) and ag.Negative().name == "Negative"
    x = t(rn(2, 2), grad=False)
    np.testing.assert_allclose(ag.Cos()(x).to_numpy(), np.cos(x.to_numpy()), rtol=1e-6)


def test_cossim_of_a_zero_row_is_finite():
    a, b = t([[0.0, 0.0], [1.0, 2.0]]), t([[1.0, 1.0], [2.0, 4.0]])
    with ag.train_mode():
        y = ag.cossim(a, b)
    np.testing.assert_allclose(y.to_numpy(), [0.0, 1.0], atol=1e-6)
    assert all(np.isfinite(g.to_numpy()).all() for g in ag.gradients(y).values())


# ---- eager == graph ----

class Head(layer.Layer):
    """prelu with a learned slope, element-wise max/mean, a comparison mask, then gemm."""

    def initialize(self, x):
        n = x.shape[1]
        self.slope = tensor.Tensor((n,), x.device, stores_grad=True).set_value(0.2)
        self.W = tensor.Tensor((3, n), x.device, stores_grad=True).gaussian(0.0, 0.5)
        self.c = tensor.Tensor((3,), x.device, stores_grad=True).set_value(0.1)

    def forward(self, x):
        p = ag.prelu(x, self.slope)
        m = ag.max(ag.sin(p), ag.cos(p), ag.atan(p))
        keep = ag._or(ag.greater(p, ag.min(p, ag.tanh(p))), ag.less(p, ag.reciprocal(ag.add(
            ag.cosh(p), 1.0))))
        s = ag.mean(m, ag.mul(keep, ag.asinh(p)), ag.mul(ag.floor(p), 0.1))
        return ag.gemm(s, self.W, self.c, alpha=0.5, beta=2.0, transB=1)


class Net(model.Model):
    def __init__(self):
        super().__init__()
        self.fc = layer.Linear(5)
        self.head = Head()
        self.loss = layer.SoftMaxCrossEntropy()

    def forward(self, x):
        return self.head(self.fc(x))

    def train_one_batch(self, x, y):
        out = self.forward(x)
        rank = ag.ranking_loss(ag.cossim(out, ag.sinh(out)), ag.cossim(out, ag.sign(out)), 0.5)
        flat = ag.reduce_mean(ag.rounde(out), None, False)  # no gradient
        loss = ag.add_all(self.loss(out, y), rank, ag.sum(flat))
        self.optimizer(loss)
        return out, loss


def train(dev, graph, sequential=True, steps=3):
    dev.SetRandSeed(0)
    r = np.random.default_rng(3)
    data = [(r.standard_normal((6, 4)).astype(np.float32), r.integers(0, 3, 6).astype(np.int32))
            for _ in range(steps)]
    tx = tensor.Tensor((6, 4), dev)
    ty = tensor.Tensor((6,), dev, dtype=tensor.int32)
    m = Net()
    m.set_optimizer(opt.SGD(0.1, momentum=0.9))
    m.compile([tx], is_train=True, use_graph=graph, sequential=sequential)
    losses = []
    for x, y in data:
        tx.copy_from_numpy(x)
        ty.copy_from_numpy(y)
        _, loss = m(tx, ty)
        losses.append(loss.item())
    states = {k: v.to_numpy() for k, v in m.get_states().items()}
    m.eval()
    return losses, states


def test_eager_and_graph_agree(dev):
    ref_losses, ref_states = train(dev, graph=False)
    assert set(ref_states) == {"fc.W", "fc.b", "head.slope", "head.W", "head.c"}
    # training moved every parameter, the slope included
    fresh = tensor.Tensor((5,), device.get_default_device()).set_value(0.2).to_numpy()
    assert not np.allclose(ref_states["head.slope"], fresh)
    for sequential, shuffle in ((True, 0), (False, 11)):
        with graph_shuffle(shuffle):
            losses, states = train(dev, graph=True, sequential=sequential)
        np.testing.assert_allclose(losses, ref_losses, rtol=1e-5, atol=1e-6)
        for k in ref_states:
            np.testing.assert_allclose(states[k], ref_states[k], rtol=1e-5, atol=1e-6,
                                       err_msg=k)
