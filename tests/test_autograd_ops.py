"""Every autograd operator: forward vs numpy, gradient vs finite differences (one line each)."""

import math

import numpy as np
import pytest
from gradcheck import check_op

from minisinga import autograd as ag
from minisinga import tensor

R = np.random.default_rng(42)


def rn(*shape):
    return R.standard_normal(shape).astype(np.float32)


def away(*shape, gap=0.1):
    """Random values at least `gap` away from 0 (no kinks for relu/abs/...)."""
    x = rn(*shape)
    return (np.sign(x) * (np.abs(x) + gap)).astype(np.float32)


def pos(*shape):
    return (R.random(shape) + 0.5).astype(np.float32)


erf = np.vectorize(math.erf)


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def softmax(x, axis):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


# (id, fn on Tensors, numpy reference, inputs)
POINTWISE = [
    ("neg", ag.neg, lambda x: -x, [rn(3, 4)]),
    ("exp", ag.exp, np.exp, [rn(3, 4)]),
    ("log", ag.log, np.log, [pos(3, 4)]),
    ("sqrt", ag.sqrt, np.sqrt, [pos(3, 4)]),
    ("abs", ag.abs, np.abs, [away(3, 4)]),
    ("relu", ag.relu, lambda x: np.maximum(x, 0), [away(2, 3, 4)]),
    ("leakyrelu", lambda x: ag.leakyrelu(x, 0.1), lambda x: np.where(x > 0, x, 0.1 * x),
     [away(5)]),
    ("elu", lambda x: ag.elu(x, 0.7), lambda x: np.where(x > 0, x, 0.7 * (np.exp(x) - 1)),
     [away(4, 3)]),
    ("selu", ag.selu, lambda x: 1.0507 * np.where(x > 0, x, 1.67326 * (np.exp(x) - 1)),
     [away(4, 3)]),
    ("sigmoid", ag.sigmoid, sigmoid, [rn(3, 4)]),
    ("hardsigmoid", ag.hardsigmoid, lambda x: np.clip(0.2 * x + 0.5, 0, 1),
     [np.array([-4, -1.0, 0.3, 2.0, 3.7], np.float32)]),
    ("tanh", ag.tanh, np.tanh, [rn(3, 4)]),
    ("softplus", ag.softplus, lambda x: np.log1p(np.exp(x)), [rn(3, 4)]),
    ("softsign", ag.softsign, lambda x: x / (1 + np.abs(x)), [away(3, 4)]),
    ("erf", ag.erf, erf, [rn(3, 4)]),
    ("gelu", ag.gelu, lambda x: 0.5 * x * (1 + erf(x / np.sqrt(2))), [rn(3, 4) * 2]),
    ("gelu_tanh", lambda x: ag.gelu(x, "tanh"),
     lambda x: 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3))),
     [rn(3, 4) * 2]),
    ("clip", lambda x: ag.clip(x, -0.5, 0.5), lambda x: np.clip(x, -0.5, 0.5),
     [np.array([-2, -0.7, -0.2, 0.1, 0.45, 0.9], np.float32)]),
    ("pow_scalar", lambda x: x ** 3, lambda x: x ** 3, [rn(3, 4)]),
    ("rpow_scalar", lambda x: 2.0 ** x, lambda x: 2.0 ** x, [rn(3, 4)]),
    ("add_scalar", lambda x: x + 2.5, lambda x: x + 2.5, [rn(3)]),
    ("rsub_scalar", lambda x: 1.0 - x, lambda x: 1.0 - x, [rn(3)]),
    ("mul_scalar", lambda x: x * -3.0, lambda x: x * -3.0, [rn(3)]),
    ("rdiv_scalar", lambda x: 2.0 / x, lambda x: 2.0 / x, [pos(3)]),
]

BINARY = [
    ("add", ag.add, np.add, [rn(3, 4), rn(3, 4)]),
    ("add_bcast", ag.add, np.add, [rn(2, 1, 3), rn(4, 1)]),
    ("sub_bcast", ag.sub, np.subtract, [rn(3, 4), rn(4)]),
    ("mul_bcast", ag.mul, np.multiply, [rn(1, 4), rn(3, 1)]),
    ("div_bcast", ag.div, np.divide, [rn(2, 3), pos(2, 1)]),
    ("pow", ag.pow, np.power, [pos(3, 2), rn(3, 2)]),
    ("maximum", ag.maximum, np.maximum, [rn(4, 3), rn(4, 3)]),
    ("operators", lambda a, b: a * b - a / (b * b + 1.0) + (-a) ** 2,
     lambda a, b: a * b - a / (b * b + 1.0) + a ** 2, [rn(3, 3), rn(3, 3)]),
    ("matmul", ag.matmul, np.matmul, [rn(3, 4), rn(4, 5)]),
    ("matmul_op", lambda a, b: a @ b, np.matmul, [rn(2, 3), rn(3, 2)]),
    ("matmul_batched_shared", ag.matmul, np.matmul, [rn(2, 3, 4), rn(4, 5)]),
    ("matmul_batched", ag.matmul, np.matmul, [rn(2, 3, 4), rn(2, 4, 5)]),
    ("matmul_batch_bcast", ag.matmul, np.matmul, [rn(1, 3, 4), rn(2, 4, 2)]),
    ("add_bias", ag.add_bias, lambda x, b: x + b, [rn(4, 3), rn(3)]),
]


@pytest.mark.parametrize("name,fn,ref,inputs", POINTWISE + BINARY, ids=lambda v: v
                         if isinstance(v, str) else "")
def test_math_op(dev, name, fn, ref, inputs):
    check_op(fn, ref, inputs, device=dev)


def test_math_op_ids_are_unique():
    names = [e[0] for e in POINTWISE + BINARY]
    assert len(names) == len(set(names))


def np_conv2d(x, w, b=None, stride=(1, 1), pads=(0, 0, 0, 0), dil=(1, 1), groups=1):
    """Direct convolution in numpy (float64), padding (top, bottom, left, right)."""
    x = np.pad(x, ((0, 0), (0, 0), (pads[0], pads[1]), (pads[2], pads[3])))
    n, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    oh = (h - dil[0] * (kh - 1) - 1) // stride[0] + 1
    ow = (wd - dil[1] * (kw - 1) - 1) // stride[1] + 1
    y = np.zeros((n, o, oh, ow))
    og = o // groups
    for g in range(groups):
        xs = x[:, g * cg:(g + 1) * cg]
        for i in range(oh):
            for j in range(ow):
                patch = xs[:, :, i * stride[0]:i * stride[0] + dil[0] * (kh - 1) + 1:dil[0],
                           j * stride[1]:j * stride[1] + dil[1] * (kw - 1) + 1:dil[1]]
                y[:, g * og:(g + 1) * og, i, j] = np.einsum("nckl,ockl->no", patch,
                                                            w[g * og:(g + 1) * og])
    if b is not None:
        y += b.reshape(1, -1, 1, 1)
    return y


def np_pool(x, k, s, pads, is_max, count_include_pad=True):
    n, c, h, w = x.shape
    fill = -np.inf if is_max else 0.0
    xp = np.pad(x, ((0, 0), (0, 0), (pads[0], pads[1]), (pads[2], pads[3])),
                constant_values=fill)
    ones = np.pad(np.ones((h, w)), ((pads[0], pads[1]), (pads[2], pads[3])))
    oh = (h + pads[0] + pads[1] - k[0]) // s[0] + 1
    ow = (w + pads[2] + pads[3] - k[1]) // s[1] + 1
    y = np.zeros((n, c, oh, ow))
    for i in range(oh):
        for j in range(ow):
            win = xp[:, :, i * s[0]:i * s[0] + k[0], j * s[1]:j * s[1] + k[1]]
            if is_max:
                y[:, :, i, j] = win.max(axis=(2, 3))
            else:
                cnt = k[0] * k[1] if count_include_pad else \
                    ones[i * s[0]:i * s[0] + k[0], j * s[1]:j * s[1] + k[1]].sum()
                y[:, :, i, j] = win.sum(axis=(2, 3)) / cnt
    return y


def np_bn(x, scale, bias, eps=1e-5):
    axes = (0, 2, 3) if x.ndim == 4 else (0,)
    shp = (1, -1, 1, 1) if x.ndim == 4 else (1, -1)
    m = x.mean(axis=axes, keepdims=True)
    v = x.var(axis=axes, keepdims=True)
    return (x - m) / np.sqrt(v + eps) * scale.reshape(shp) + bias.reshape(shp)


def distinct(*shape):
    """Values with no ties (max pooling and max reductions have unique winners)."""
    n = int(np.prod(shape))
    return (R.permutation(n).reshape(shape) / n * 4 - 2).astype(np.float32)


def onehot(labels, c):
    return np.eye(c, dtype=np.float32)[labels]


LABELS = np.array([0, 2, 1, 2], np.int32)


def on(a, like):
    """numpy array a as a Tensor on the device of Tensor `like`."""
    return tensor.from_numpy(np.asarray(a), like.device)


def bn(x, s, b, **kw):
    """Training-mode batch norm of 3 channels, running statistics on x's device."""
    return ag.batchnorm_2d(x, s, b, tensor.zeros((3,), x.device), tensor.ones((3,), x.device),
                           **kw)


SHAPE_OPS = [
    ("reshape", lambda x: ag.reshape(x, [4, -1]), lambda x: x.reshape(4, -1), [rn(2, 3, 4)]),
    ("flatten", lambda x: ag.flatten(x, 2), lambda x: x.reshape(6, -1), [rn(2, 3, 4)]),
    ("transpose", lambda x: ag.transpose(x, [1, 2, 0]), lambda x: x.transpose(1, 2, 0),
     [rn(2, 3, 4)]),
    ("transpose_default", ag.transpose, lambda x: x.T, [rn(2, 3)]),
    ("concat", lambda a, b: ag.concat([a, b], 1), lambda a, b: np.concatenate([a, b], 1),
     [rn(2, 3, 2), rn(2, 1, 2)]),
    ("split", lambda x: ag.concat([p * float(i + 1) for i, p in
                                   enumerate(ag.split(x, 1, [1, 3]))], 1),
     lambda x: np.concatenate([x[:, :1], 2 * x[:, 1:]], 1), [rn(2, 4)]),
    ("slice", lambda x: ag.slice(x, [1, 0], [3, 4], [0, 2], [1, 2]),
     lambda x: x[1:3, :, 0:4:2], [rn(4, 2, 5)]),
    ("squeeze", lambda x: ag.squeeze(x, 1), lambda x: x.squeeze(1), [rn(3, 1, 2)]),
    ("unsqueeze", lambda x: ag.unsqueeze(x, [0, 3]), lambda x: x[None, :, :, None],
     [rn(3, 2)]),
    ("reduce_sum", lambda x: ag.reduce_sum(x, [0, 2]), lambda x: x.sum((0, 2), keepdims=True),
     [rn(2, 3, 4)]),
    ("reduce_sum_all", lambda x: ag.reduce_sum(x, None, False), lambda x: x.sum(),
     [rn(2, 3)]),
    ("reduce_mean", lambda x: ag.reduce_mean(x, [-1], False), lambda x: x.mean(-1),
     [rn(2, 3, 4)]),
    ("reduce_max", lambda x: ag.reduce_max(x, 1, False), lambda x: x.max(1), [distinct(3, 4)]),
    ("reduce_min", lambda x: ag.reduce_min(x, [0, 1], False), lambda x: x.min((0, 1)),
     [distinct(3, 4, 2)]),
    ("gather", lambda x: ag.gather(x, 1, [[0, 2], [2, 2]]),
     lambda x: np.take(x, [[0, 2], [2, 2]], 1), [rn(2, 3)]),
    ("where", lambda a, b: ag.where(a, b, on(np.array([1, 0, 1], np.float32), a)),
     lambda a, b: np.where([1, 0, 1], a, b), [rn(2, 3), rn(3)]),
    # float16 rounding is piecewise constant; the gradient of a cast is the identity
    ("cast", lambda x: ag.cast(ag.cast(x, tensor.float16), tensor.float32), lambda x: x,
     [rn(3, 2)]),
]

def loss1(v):
    """A loss as SINGA gives it: shape (1,)."""
    return np.reshape(v, (1,))


NN_OPS = [
    ("conv2d", lambda x, w, b: ag.conv2d(x, w, b, 1, 1), lambda x, w, b: np_conv2d(
        x, w, b, pads=(1, 1, 1, 1)), [rn(2, 3, 5, 5), rn(4, 3, 3, 3), rn(4)]),
    ("conv2d_stride_gt_kernel", lambda x, w: ag.conv2d(x, w, None, 3),
     lambda x, w: np_conv2d(x, w, stride=(3, 3)), [rn(1, 2, 7, 8), rn(3, 2, 2, 2)]),
    ("conv2d_one_side_pad", lambda x, w: ag.conv2d(x, w, None, (2, 1), (0, 1, 2, 0)),
     lambda x, w: np_conv2d(x, w, stride=(2, 1), pads=(0, 1, 2, 0)),
     [rn(2, 2, 5, 4), rn(2, 2, 3, 2)]),
    ("conv2d_groups_dilation", lambda x, w: ag.conv2d(x, w, None, 1, 2, 2, 2),
     lambda x, w: np_conv2d(x, w, pads=(2, 2, 2, 2), dil=(2, 2), groups=2),
     [rn(1, 4, 5, 5), rn(6, 2, 3, 3)]),
    ("conv2d_depthwise", lambda x, w: ag.conv2d(x, w, None, 1, 1, 1, 3),
     lambda x, w: np_conv2d(x, w, pads=(1, 1, 1, 1), groups=3),
     [rn(2, 3, 4, 4), rn(3, 1, 3, 3)]),
    ("batchnorm", bn, np_bn, [rn(4, 3, 2, 2), rn(3), rn(3)]),
    ("batchnorm_2d_input", bn, np_bn, [rn(5, 3), rn(3), rn(3)]),
    ("batchnorm_relu", lambda x, s, b: bn(x, s, b, relu=True),
     lambda x, s, b: np.maximum(np_bn(x, s, b), 0), [rn(4, 3, 2, 2), rn(3), rn(3)]),
    ("batchnorm_add_relu", lambda x, s, b, r: bn(x, s, b, relu=True, residual=r),
     lambda x, s, b, r: np.maximum(np_bn(x, s, b) + r, 0),
     [rn(4, 3, 2, 2), rn(3), rn(3), rn(4, 3, 2, 2)]),
    ("maxpool", lambda x: ag.max_pool_2d(x, 2, 2), lambda x: np_pool(x, (2, 2), (2, 2),
                                                                     (0,) * 4, True),
     [distinct(2, 2, 4, 5)]),
    ("maxpool_pad_stride", lambda x: ag.max_pool_2d(x, 3, 2, 1),
     lambda x: np_pool(x, (3, 3), (2, 2), (1,) * 4, True), [distinct(1, 2, 5, 5)]),
    ("avgpool_pad", lambda x: ag.avg_pool_2d(x, 3, 1, 1),
     lambda x: np_pool(x, (3, 3), (1, 1), (1,) * 4, False), [rn(1, 2, 4, 4)]),
    ("avgpool_exclude_pad", lambda x: ag.avg_pool_2d(x, 3, 2, 1, False),
     lambda x: np_pool(x, (3, 3), (2, 2), (1,) * 4, False, False), [rn(1, 2, 5, 5)]),
    ("avgpool_stride_gt_kernel", lambda x: ag.avg_pool_2d(x, 2, 3),
     lambda x: np_pool(x, (2, 2), (3, 3), (0,) * 4, False), [rn(2, 1, 7, 7)]),
    ("maxpool1d", lambda x: ag.max_pool_1d(x, 2), lambda x: np_pool(
        x[:, :, None], (1, 2), (1, 2), (0,) * 4, True)[:, :, 0], [distinct(2, 3, 6)]),
    ("avgpool1d", lambda x: ag.avg_pool_1d(x, 3, 1, 1), lambda x: np_pool(
        x[:, :, None], (1, 3), (1, 1), (0, 0, 1, 1), False)[:, :, 0], [rn(2, 3, 5)]),
    ("globalavgpool", ag.globalaveragepool, lambda x: x.mean((2, 3), keepdims=True),
     [rn(2, 3, 4, 5)]),
    ("softmax", lambda x: ag.softmax(x, 1), lambda x: softmax(x, 1), [rn(3, 5)]),
    ("softmax_last", lambda x: ag.softmax(x, -1), lambda x: softmax(x, -1), [rn(2, 3, 4)]),
    ("log_softmax", lambda x: ag.log_softmax(x, 1), lambda x: np.log(softmax(x, 1)),
     [rn(3, 5)]),
    ("softmax_ce_labels", lambda x: ag.softmax_cross_entropy(x, on(LABELS, x)),
     lambda x: loss1(-np.log(softmax(x, 1)[np.arange(4), LABELS]).mean()), [rn(4, 3)]),
    ("softmax_ce_onehot", lambda x: ag.softmax_cross_entropy(x, on(onehot(LABELS, 3), x)),
     lambda x: loss1(-np.log(softmax(x, 1)[np.arange(4), LABELS]).mean()), [rn(4, 3)]),
    ("cross_entropy", lambda p: ag.cross_entropy(p, on(LABELS, p)),
     lambda p: loss1(-np.log(p[np.arange(4), LABELS]).mean()),
     [(R.random((4, 3)) * 0.8 + 0.1).astype(np.float32)]),
    ("binary_cross_entropy", lambda p, t: ag.binary_cross_entropy(p, t),
     lambda p, t: loss1(-(t * np.log(p) + (1 - t) * np.log(1 - p)).sum() / 3),  # / batch
     [(R.random((3, 2)) * 0.8 + 0.1).astype(np.float32),
      R.integers(0, 2, (3, 2)).astype(np.float32)]),
    ("mse_loss", ag.mse_loss, lambda x, t: loss1(((x - t) ** 2).sum() / (2 * 3)),  # SINGA's
     [rn(3, 4), rn(3, 4)]),
]


@pytest.mark.parametrize("name,fn,ref,inputs", SHAPE_OPS + NN_OPS,
                         ids=lambda v: v if isinstance(v, str) else "")
def test_op(dev, name, fn, ref, inputs):
    wrt = [0] if name == "binary_cross_entropy" else None
    rtol = 2e-3 if name == "cast" else 1e-3
    check_op(fn, ref, inputs, wrt=wrt, rtol=rtol, atol=2e-3 if name == "cast" else 1e-4,
             device=dev)


def test_dropout_scales_and_masks_freshly():
    x = tensor.ones((200, 100))
    x.requires_grad = True
    with ag.train_mode():
        a = ag.dropout(x, 0.3).to_numpy()
        b = ag.dropout(x, 0.3).to_numpy()
    assert set(np.unique(a)) <= {0.0, np.float32(1 / 0.7)}
    assert abs((a == 0).mean() - 0.3) < 0.02
    assert (a != b).any(), "a fresh mask each call"
    with ag.train_mode(False):
        np.testing.assert_array_equal(ag.dropout(x, 0.3).to_numpy(), 1.0)


def test_dropout_gradient_uses_the_mask():
    x = tensor.Tensor(data=rn(50, 40), stores_grad=True)
    with ag.train_mode():
        y = ag.dropout(x, 0.5)
    g = ag.gradients(y)[x].to_numpy()
    mask = y.to_numpy() != 0
    np.testing.assert_allclose(g, mask * 2.0)


def test_loss_and_bias_shape_errors_name_the_op():
    x = tensor.from_numpy(np.zeros((2, 3), np.float32))
    b = tensor.from_numpy(np.zeros(3, np.float32))
    with pytest.raises(ValueError, match="add_bias: axis must be 0 .* or 1 .*, got 2"):
        ag.add_bias(x, b, axis=2)
    p3 = tensor.from_numpy(np.full((2, 3, 4), 0.25, np.float32))
    with pytest.raises(ValueError, match=r"cross_entropy: expected probabilities \(N, C\)"):
        ag.cross_entropy(p3, tensor.from_numpy(np.zeros((2, 3), np.int32)))


def test_negative_step_slice_and_number_dy_errors():
    x = tensor.from_numpy(np.zeros(4, np.float32))
    with pytest.raises(ValueError, match=r"slice: starts, ends, axes and steps differ in length "
                                         r"\(2, 1, 1, 1\)"):
        ag.slice(x, [1, 0], [0], [0], [-1])
    with pytest.raises(ValueError, match="slice: axis 3 is out of range for a 1-d tensor"):
        ag.slice(x, [1], [0], [3], [-1])
    w = tensor.Tensor(data=np.ones(2, np.float32), stores_grad=True)
    with ag.train_mode():
        y = ag.reduce_sum(ag.mul(w, 2.0))
    with pytest.raises(TypeError, match="backward: dy must be a Tensor or a number, got str"):
        ag.gradients(y, "2")
    np.testing.assert_array_equal(ag.gradients(y, 3.0)[w].to_numpy(), [6.0, 6.0])
