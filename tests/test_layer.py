"""Layers: lazy parameters, registration by attribute, states, SINGA signatures."""

import math
from collections import OrderedDict

import numpy as np
import pytest

from minisinga import autograd as ag
from minisinga import device, layer, tensor


def x_of(*shape):
    return tensor.from_numpy(np.random.default_rng(0).standard_normal(shape).astype(np.float32))


class Block(layer.Layer):
    def __init__(self):
        super().__init__()
        self.conv = layer.Conv2d(4, 3, padding=1, activation="RELU")
        self.bn = layer.BatchNorm2d()
        self.pool = layer.MaxPool2d(2, 2)

    def forward(self, x):
        return self.pool(self.bn(self.conv(x)))


class Net(layer.Layer):
    def __init__(self):
        super().__init__()
        self.block = Block()
        self.flat = layer.Flatten()
        self.fc = layer.Linear(5)

    def forward(self, x):
        return self.fc(self.flat(self.block(x)))


def test_lazy_init_and_dotted_names():
    net = Net()
    assert net.get_params() == {}
    y = net(x_of(2, 3, 8, 8))
    assert y.shape == (2, 5)
    params = net.get_params()
    assert list(params) == ["block.conv.W", "block.conv.b", "block.bn.scale", "block.bn.bias",
                            "fc.W", "fc.b"]
    assert params["block.conv.W"].shape == (4, 3, 3, 3)
    assert params["fc.W"].shape == (4 * 4 * 4, 5)
    states = net.get_states()
    assert "block.bn.running_mean" in states and "block.bn.running_var" in states
    assert "block.bn.running_mean" not in params


def test_set_params_and_states_round_trip():
    a, b = Net(), Net()
    x = x_of(2, 3, 8, 8)
    a(x)
    b(x)
    b.set_states({k: v.to_numpy() for k, v in a.get_states().items()})
    np.testing.assert_array_equal(a(x).to_numpy(), b(x).to_numpy())
    with pytest.raises(KeyError, match="no tensor named"):
        b.set_params({"nope": np.zeros(1)})
    with pytest.raises(ValueError, match="has shape"):
        b.set_params({"fc.b": np.zeros(7)})


def test_initialisation_follows_singa():
    fc = layer.Linear(300)
    fc(x_of(64, 500))
    w = fc.W.to_numpy()
    assert abs(w.std() - np.sqrt(2.0 / 800)) < 0.1 * np.sqrt(2.0 / 800)
    np.testing.assert_array_equal(fc.b.to_numpy(), 0)
    bn = layer.BatchNorm2d()
    bn(x_of(2, 3, 4, 4))
    np.testing.assert_array_equal(bn.scale.to_numpy(), 1)
    np.testing.assert_array_equal(bn.bias.to_numpy(), 0)


def test_both_signatures_and_their_errors():
    assert layer.Linear(6, 3)(x_of(2, 6)).shape == (2, 3)
    with pytest.raises(ValueError, match="built for 6 input features"):
        layer.Linear(6, 3)(x_of(2, 5))
    c = layer.Conv2d(3, 8, 3, stride=2, pad_mode="SAME_UPPER")
    assert c(x_of(1, 3, 9, 9)).shape == (1, 8, 5, 5)
    with pytest.raises(ValueError, match="built for 3 input channels"):
        layer.Conv2d(3, 8, 3)(x_of(1, 2, 9, 9))
    with pytest.raises(ValueError, match="pad_mode"):
        layer.Conv2d(3, 3, pad_mode="BAD")
    with pytest.raises(ValueError, match="activation"):
        layer.Conv2d(2, 1, activation="GELU")(x_of(1, 1, 3, 3))
    for make, msg in [
        (lambda: layer.Linear(-4), r"Linear: out_features must be an integer >= 1, got -4"),
        (lambda: layer.Linear(0, 3), r"Linear: in_features must be an integer >= 1, got 0"),
        (lambda: layer.Linear(2.5), r"Linear: out_features must be an integer >= 1, got 2.5"),
        (lambda: layer.Conv2d(4.5, 3), r"Conv2d: nb_kernels must be an integer >= 1, got 4.5"),
        (lambda: layer.Conv2d(4, -3), r"Conv2d: kernel_size must be an integer >= 1, got -3"),
        (lambda: layer.Conv2d(4, (3, 0)), r"Conv2d: kernel_size must be an integer >= 1, got 0"),
        (lambda: layer.Conv2d(0, 4, 3), r"Conv2d: in_channels must be an integer >= 1, got 0"),
    ]:
        with pytest.raises(ValueError, match=msg):
            make()
    with pytest.raises(TypeError, match="Linear: inputs must be Tensors, got a numpy array"):
        layer.Linear(3)(np.zeros((2, 4), np.float32))
    with pytest.raises(ValueError, match="concat: axis 5 is out of range for a 2-d tensor"):
        layer.Cat(5)([x_of(2, 2), x_of(2, 2)])


def test_separable_and_grouped_convolution():
    sep = layer.SeparableConv2d(6, 3, padding=1)
    y = sep(x_of(2, 4, 5, 5))
    assert y.shape == (2, 6, 5, 5)
    assert sep.get_params()["depthwise_conv.W"].shape == (4, 1, 3, 3)
    assert sep.get_params()["point_conv.W"].shape == (6, 4, 1, 1)
    assert layer.Conv2d(4, 3, group=2)(x_of(1, 2, 5, 5)).shape == (1, 4, 3, 3)


def test_batchnorm_running_statistics_singa_momentum():
    bn = layer.BatchNorm2d(momentum=0.9)
    x = x_of(8, 2, 3, 3)
    with ag.train_mode():
        bn(x)
    xn = x.to_numpy().astype(np.float64)
    mean = xn.mean((0, 2, 3))
    var = xn.var((0, 2, 3), ddof=1)
    np.testing.assert_allclose(bn.running_mean.to_numpy(), 0.1 * mean, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(bn.running_var.to_numpy(), 0.9 + 0.1 * var, rtol=1e-4)
    with ag.train_mode(False):  # inference uses the running statistics
        y = bn(x).to_numpy()
    rm, rv = bn.running_mean.to_numpy(), bn.running_var.to_numpy()
    ref = (xn - rm.reshape(1, -1, 1, 1)) / np.sqrt(rv.reshape(1, -1, 1, 1) + 1e-5)
    np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-5)


def test_small_layers():
    x = x_of(2, 3, 4, 4)
    assert layer.AvgPool2d(2)(x).shape == (2, 3, 2, 2)
    assert layer.MaxPool1d(2)(x_of(2, 3, 6)).shape == (2, 3, 3)
    assert layer.AvgPool1d(3, 1, 1)(x_of(2, 3, 6)).shape == (2, 3, 6)
    assert layer.GlobalAvgPool2d()(x).shape == (2, 3, 1, 1)
    assert layer.Reshape((2, -1))(x).shape == (2, 48)
    assert layer.Cat(1)([x, x]).shape == (2, 6, 4, 4)
    np.testing.assert_allclose(layer.Add()(x, x).to_numpy(), 2 * x.to_numpy())
    s = layer.SoftMax()(x_of(3, 4)).to_numpy()
    np.testing.assert_allclose(s.sum(1), 1, rtol=1e-6)
    assert layer.Gemm(5)(x_of(3, 4)).shape == (3, 5)
    emb = layer.Embedding(10, 4)
    out = emb(tensor.from_numpy(np.array([[1, 2], [9, 1]], np.int32)))
    assert out.shape == (2, 2, 4)
    np.testing.assert_array_equal(out.to_numpy()[0, 0], emb.W.to_numpy()[1])
    with pytest.raises(ValueError, match="ratio"):
        layer.Dropout(1.0)


def test_gelu_layer():
    x = x_of(3, 4)
    v = x.to_numpy().astype(np.float64)
    exact = 0.5 * v * (1 + np.vectorize(math.erf)(v / math.sqrt(2)))
    np.testing.assert_allclose(layer.GELU()(x).to_numpy(), exact, rtol=1e-5, atol=1e-6)
    tanh = 0.5 * v * (1 + np.tanh(math.sqrt(2 / math.pi) * (v + 0.044715 * v ** 3)))
    np.testing.assert_allclose(layer.GELU("tanh")(x).to_numpy(), tanh, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="gelu: approximate='erf' is not supported; expected "
                                         "'none' or 'tanh'"):
        layer.GELU("erf")


def test_loss_layers():
    x = x_of(4, 3)
    t = tensor.from_numpy(np.array([0, 1, 2, 1], np.int32))
    assert layer.SoftMaxCrossEntropy()(x, t).size() == 1
    p = layer.SoftMax()(x)
    assert layer.CrossEntropy()(p, t).size() == 1
    assert layer.MeanSquareError()(x, x).to_numpy() == 0
    y = tensor.from_numpy(np.full((4, 3), 0.5, np.float32))
    # SINGA's BinaryCrossEntropy: summed over each row's 3 elements, averaged over the batch
    np.testing.assert_allclose(layer.BinaryCrossEntropy()(y, y).to_numpy(), 3 * np.log(2),
                               rtol=1e-5)


def test_params_follow_the_input_device_and_dtype():
    other = device.create_cpu_device()
    fc = layer.Linear(3)
    fc(x_of(2, 4))
    x = tensor.Tensor((2, 4), other).set_value(1.0)
    y = fc(x)
    assert y.device == other and fc.W.device == other
    h = x_of(2, 4).as_type(tensor.float16)
    fc2 = layer.Linear(3)
    fc2(x_of(2, 4))
    assert fc2.W.dtype == tensor.float32
    fc2._match_inputs((h,))
    assert fc2.W.dtype == tensor.float16


def test_singa_positional_forms():
    c = layer.Conv2d(3, 8, 3, 2, 1)  # in, out, kernel, stride, padding
    assert c(x_of(1, 3, 9, 9)).shape == (1, 8, 5, 5)
    s = layer.SeparableConv2d(4, 6, 3, 2, 1)
    assert s(x_of(1, 4, 9, 9)).shape == (1, 6, 5, 5)
    with pytest.raises(TypeError, match="unexpected"):
        layer.Conv2d(8, 3, strides=2)
    t = tensor.Tensor((3,), device.get_default_device(), tensor.int32)  # SINGA: dtype third
    assert t.dtype == tensor.int32


def test_register_layers():
    class Seq(layer.Layer):
        def __init__(self, *layers):
            super().__init__()
            self.layers = layers
            self.register_layers(*layers)

        def forward(self, x):
            for la in self.layers:
                x = la(x)
            return x

    class Named(layer.Layer):
        def __init__(self):
            super().__init__()
            self.register_layers(OrderedDict([("first", layer.Linear(3)),
                                              ("act", layer.ReLU())]))

        def forward(self, x):
            return self.act(self.first(x))

    seq = Seq(layer.Linear(4), layer.ReLU(), layer.Linear(2))
    assert seq(x_of(5, 6)).shape == (5, 2)
    assert list(seq.get_params()) == ["Linear_0.W", "Linear_0.b", "Linear_2.W", "Linear_2.b"]
    named = Named()
    assert named(x_of(2, 6)).shape == (2, 3) and list(named.get_params()) == ["first.W",
                                                                            "first.b"]
    with pytest.raises(TypeError, match="'int_0' is a int, not a Layer"):
        Seq(3)


def test_autograd_names_the_layers_as_singa_does():
    # SINGA's examples build layers through autograd (autograd.Conv2d(1, 20, 5, padding=0))
    for name in ("Linear", "Conv2d", "SeparableConv2d", "BatchNorm2d", "Pooling2d", "MaxPool2d",
                 "AvgPool2d", "MaxPool1d", "AvgPool1d", "RNN_Base", "RNN", "LSTM"):
        assert getattr(ag, name) is getattr(layer, name)
    conv, pool, fc = ag.Conv2d(1, 4, 3, padding=0), ag.MaxPool2d(2, 2, padding=0), ag.Linear(3)
    y = fc(layer.Flatten()(pool(conv(x_of(2, 1, 6, 6)))))
    assert y.shape == (2, 3) and set(conv.get_params()) == {"W", "b"}
    with pytest.raises(AttributeError, match="has no attribute 'Conv3d'"):
        _ = ag.Conv3d


@pytest.mark.parametrize("init", ["gaussian", "uniform"])
def test_embedding_initializers(init):
    device.get_default_device().SetRandSeed(5)
    emb = layer.Embedding(400, 64, initializer=init)
    idx = tensor.from_numpy(np.array([[0, 3], [399, 3]], np.int32))
    y = emb(idx).to_numpy()
    w = emb.W.to_numpy()
    np.testing.assert_array_equal(y, w[[[0, 3], [399, 3]]])
    assert abs(w.std() - 1 / 8) < 0.005 and abs(w.mean()) < 0.005
    assert (np.abs(w).max() <= np.sqrt(3) / 8 + 1e-6) == (init == "uniform")
    with pytest.raises(ValueError, match="initializer must be 'gaussian' or 'uniform'"):
        layer.Embedding(4, 2, initializer="xavier")


@pytest.mark.parametrize("freeze", [True, False])
def test_embedding_from_pretrained(freeze):
    table = np.arange(12, dtype=np.float32).reshape(4, 3)
    emb = layer.Embedding(4, 3).from_pretrained(tensor.from_numpy(table), freeze=freeze)
    idx = tensor.from_numpy(np.array([2, 0, 2], np.int32))
    with ag.train_mode():
        y = emb(idx)
        loss = ag.reduce_sum(y)
    np.testing.assert_array_equal(y.to_numpy(), table[[2, 0, 2]])
    assert ("W" in emb.get_params()) == (not freeze) and "W" in emb.get_states()
    if freeze:  # nothing to train: the lookup records no operator
        assert y.creator is None
    else:
        grads = ag.gradients(loss)
        np.testing.assert_array_equal(grads[emb.W].to_numpy(), [[1] * 3, [0] * 3, [2] * 3,
                                                                [0] * 3])
    with pytest.raises(ValueError, match=r"W has shape \(3, 4\), expected \(4, 3\)"):
        layer.Embedding(4, 3).from_pretrained(table.T)
