"""ONNX export (minisinga.sonnx.frontend): every exported operator against onnxruntime, the
examples' models, SINGA's to_onnx path, names, errors, the atomic write."""

import os

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from sonnx_helpers import example_module  # noqa: E402

from minisinga import autograd, layer, model, sonnx, tensor  # noqa: E402
from minisinga.autograd import indexing as ix  # noqa: E402
from minisinga.sonnx import frontend  # noqa: E402


def ort_run(m, arrays):
    s = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    return s.run(None, {i.name: a for i, a in zip(s.get_inputs(), arrays)})


def rand(*shape, lo=-2.0, hi=2.0, seed=0):
    return np.random.default_rng(seed + len(shape)).uniform(lo, hi, shape).astype(np.float32)


A = rand(3, 4)
B = rand(3, 4, seed=1)
POS = rand(3, 4, lo=0.2, hi=3.0)
UNIT = rand(3, 4, lo=-0.9, hi=0.9)
IMG = rand(2, 4, 6, 6)
I32 = np.array([[0, 2, 1], [3, 0, 2]], np.int32)

# (operator class, function of tensors, input arrays, an ONNX op type it must produce)
CASES = [
    (autograd.Neg, autograd.neg, [A], "Neg"),
    (autograd.Exp, autograd.exp, [A], "Exp"),
    (autograd.Log, autograd.log, [POS], "Log"),
    (autograd.Sqrt, autograd.sqrt, [POS], "Sqrt"),
    (autograd.Abs, autograd.abs, [A], "Abs"),
    (autograd.ReLU, autograd.relu, [A], "Relu"),
    (autograd.LeakyReLU, lambda x: autograd.leakyrelu(x, 0.3), [A], "LeakyRelu"),
    (autograd.Elu, lambda x: autograd.elu(x, 0.7), [A], "Elu"),
    (autograd.Selu, lambda x: autograd.selu(x, 1.5, 1.1), [A], "Selu"),
    (autograd.Sigmoid, autograd.sigmoid, [A], "Sigmoid"),
    (autograd.HardSigmoid, lambda x: autograd.hardsigmoid(x, 0.3, 0.4), [A], "HardSigmoid"),
    (autograd.Tanh, autograd.tanh, [A], "Tanh"),
    (autograd.SoftPlus, autograd.softplus, [A], "Softplus"),
    (autograd.SoftSign, autograd.softsign, [A], "Softsign"),
    (autograd.Erf, autograd.erf, [A], "Erf"),
    (autograd.Gelu, autograd.gelu, [A], "Erf"),  # opset 13 has no Gelu: composed
    (autograd.Gelu, lambda x: autograd.gelu(x, "tanh"), [A], "Tanh"),
    (autograd.Sin, autograd.sin, [A], "Sin"),
    (autograd.Cos, autograd.cos, [A], "Cos"),
    (autograd.Tan, autograd.tan, [UNIT], "Tan"),
    (autograd.Asin, autograd.asin, [UNIT], "Asin"),
    (autograd.Acos, autograd.acos, [UNIT], "Acos"),
    (autograd.Atan, autograd.atan, [A], "Atan"),
    (autograd.Sinh, autograd.sinh, [A], "Sinh"),
    (autograd.Cosh, autograd.cosh, [A], "Cosh"),
    (autograd.Asinh, autograd.asinh, [A], "Asinh"),
    (autograd.Acosh, autograd.acosh, [POS + 1], "Acosh"),
    (autograd.Atanh, autograd.atanh, [UNIT], "Atanh"),
    (autograd.Reciprocal, autograd.reciprocal, [POS], "Reciprocal"),
    (autograd.Sign, autograd.sign, [A], "Sign"),
    (autograd.Ceil, autograd.ceil, [A], "Ceil"),
    (autograd.Floor, autograd.floor, [A], "Floor"),
    (autograd.Round, autograd.round, [np.array([[-2.5, -0.5, 0.5, 1.5, 2.4, -1.6]],
                                               np.float32)], "Floor"),
    (autograd.Rounde, autograd.rounde, [np.array([[-2.5, -0.5, 0.5, 1.5, 2.4, -1.6]],
                                                 np.float32)], "Round"),
    (autograd.Clip, lambda x: autograd.clip(x, -0.5, 1.0), [A], "Clip"),
    (autograd.math.AddScalar, lambda x: autograd.add(x, 1.5), [A], "Add"),
    (autograd.math.MulScalar, lambda x: autograd.mul(x, -2.0), [A], "Mul"),
    (autograd.math.DivScalar, lambda x: autograd.div(x, -3.0), [A], "Div"),
    (autograd.math.PowScalar, lambda x: autograd.pow(x, 1.7), [POS], "Pow"),
    (autograd.math.RSubScalar, lambda x: autograd.sub(3.0, x), [A], "Sub"),
    (autograd.math.RDivScalar, lambda x: autograd.div(3.0, x), [POS], "Div"),
    (autograd.math.RPowScalar, lambda x: autograd.pow(2.0, x), [A], "Pow"),
    (autograd.Add, autograd.add, [A, B[:1]], "Add"),
    (autograd.Sub, autograd.sub, [A, B], "Sub"),
    (autograd.Mul, autograd.mul, [A, B], "Mul"),
    (autograd.Div, autograd.div, [A, POS], "Div"),
    (autograd.Pow, autograd.pow, [POS, B], "Pow"),
    (autograd.math.Maximum, autograd.maximum, [A, B], "Max"),
    (autograd.math.Minimum, autograd.minimum, [A, B], "Min"),
    (autograd.PRelu, autograd.prelu, [A, rand(4, seed=3)], "PRelu"),
    (autograd.Less, autograd.less, [A, B], "Less"),
    (autograd.Greater, autograd.greater, [A, B], "Greater"),
    (autograd.Equal, lambda a, b: autograd.equal(a, autograd.mul(b, 0.0)),
     [np.array([[0.0, 1.0, 0.0]], np.float32), np.zeros((1, 3), np.float32)], "Equal"),
    (autograd.And, autograd._and, [np.array([[0, 1, 1, 0]], np.float32),
                                   np.array([[0, 0, 1, 1]], np.float32)], "And"),
    (autograd.Or, autograd._or, [np.array([[0, 1, 1, 0]], np.float32),
                                 np.array([[0, 0, 1, 1]], np.float32)], "Or"),
    (autograd.Xor, autograd._xor, [np.array([[0, 1, 1, 0]], np.float32),
                                   np.array([[0, 0, 1, 1]], np.float32)], "Xor"),
    (autograd.Not, autograd._not, [np.array([[0, 1, 2, 0]], np.float32)], "Not"),
    (autograd.Sum, lambda a, b, c: autograd.sum(a, b, c), [A, B, A[:1]], "Sum"),
    (autograd.Mean, lambda a, b: autograd.mean(a, b), [A, B], "Mean"),
    (autograd.Max, lambda a, b: autograd.max(a, b), [A, B], "Max"),
    (autograd.Min, lambda a, b: autograd.min(a, b), [A, B], "Min"),
    (autograd.Matmul, autograd.matmul, [A, rand(4, 5, seed=4)], "MatMul"),
    (autograd.Gemm, lambda a, b, c: autograd.gemm(a, b, c, 0.5, 2.0, 1, 1),
     [rand(4, 3), rand(5, 4, seed=5), rand(5, seed=6)], "Gemm"),
    (autograd.AddBias, lambda x, b: autograd.add_bias(x, b, 0), [A, rand(4, seed=7)], "Add"),
    (autograd.ReduceSum, lambda x: autograd.reduce_sum(x, [1], False), [A], "ReduceSum"),
    (autograd.ReduceMean, lambda x: autograd.reduce_mean(x, [0]), [A], "ReduceMean"),
    (autograd.ReduceMax, lambda x: autograd.reduce_max(x, None, False), [A], "ReduceMax"),
    (autograd.ReduceMin, lambda x: autograd.reduce_min(x, [-1]), [A], "ReduceMin"),
    (autograd._Conv2d, lambda x, w, b: autograd.conv2d(x, w, b, (2, 1), (1, 0, 2, 1)),
     [IMG, rand(3, 4, 3, 3, seed=8), rand(3, seed=9)], "Conv"),
    (autograd._BatchNorm2d, None, [IMG], "BatchNormalization"),  # see test_batchnorm_fusions
    (autograd._Pooling2d, lambda x: autograd.max_pool_2d(x, 3, 2, 1), [IMG], "MaxPool"),
    (autograd.Dropout, lambda x: autograd.dropout(x, 0.3), [A], "Dropout"),
    # the fused LSTM step, both outputs checked: h + c, with and without a previous c
    (autograd.LSTMCell, lambda z, c: autograd.add(*autograd.lstm_cell(z, c)),
     [rand(3, 8, seed=11), rand(3, 2, seed=12)], "Sigmoid"),
    (autograd.LSTMCell, lambda z: autograd.mul(*autograd.lstm_cell(z)), [rand(3, 8, seed=13)],
     "Tanh"),
    (autograd.GRUCell, autograd.gru_cell,
     [rand(3, 6, seed=14), rand(3, 6, seed=15), rand(3, 2, seed=16)], "Sigmoid"),
    (autograd.SoftMax, lambda x: autograd.softmax(x, 0), [A], "Softmax"),
    (autograd.LogSoftMax, lambda x: autograd.log_softmax(x, 1), [A], "LogSoftmax"),
    (autograd.Reshape, lambda x: autograd.reshape(x, [2, -1]), [A], "Reshape"),
    (autograd.Flatten, lambda x: autograd.flatten(x, 2), [IMG], "Flatten"),
    (autograd.Transpose, lambda x: autograd.transpose(x, [0, 2, -1, 1]), [IMG], "Transpose"),
    (autograd.Concat, lambda a, b: autograd.cat([a, b], 1), [A, B], "Concat"),
    (autograd.Split, lambda x: autograd.split(x, 1, [1, 3])[1], [A], "Split"),
    (autograd.Slice, lambda x: autograd.slice(x, [1, -3], [100, 4], [0, -1], [1, 2]), [A],
     "Slice"),
    (autograd.Squeeze, lambda x: autograd.squeeze(x), [rand(3, 1, 4)], "Squeeze"),
    (autograd.Unsqueeze, lambda x: autograd.unsqueeze(x, [0, -1]), [A], "Unsqueeze"),
    (autograd.Cast, lambda x: autograd.cast(autograd.cast(x, tensor.int32), tensor.float32),
     [A], "Cast"),
    (autograd.Identity, autograd.identity, [A], "Identity"),
    (autograd.Tile, lambda x: autograd.tile(x, [2, 1, 3]), [A], "Tile"),
    (autograd.Expand, lambda x: autograd.expand(x, [2, 3, 4]), [A[:, :1]], "Expand"),
    (autograd.UpSample, lambda x: autograd.upsample(x, "nearest", [1, 1, 2, 3]), [IMG],
     "Resize"),
    (autograd.Pad, lambda x: autograd.pad(x, "reflect", [1, 2, 0, 1]), [A], "Pad"),
    (autograd.DepthToSpace, lambda x: autograd.depth_to_space(x, 2, "CRD"), [IMG],
     "DepthToSpace"),
    (autograd.SpaceToDepth, lambda x: autograd.space_to_depth(x, 2), [IMG], "SpaceToDepth"),
    (autograd.Gather, lambda x: autograd.gather(x, 1, [[3, 0], [1, 1]]), [A], "Gather"),
    (ix.Embedding, autograd.embedding, [I32, rand(4, 5, seed=10)], "Gather"),
    (autograd.Where, lambda a, b: autograd.where(a, b, [[1, 0, 0, 1]]), [A, B], "Where"),
    (autograd.OneHot, lambda i: autograd.onehot(-1, i, 4, [0.5, 2.0]), [I32], "OneHot"),
    (autograd.ScatterElements,
     lambda x, u: autograd.scatter_elements(x, [[1, 0], [2, 1]], u, 0), [A, B[:2, :2]],
     "ScatterElements"),
    (autograd.NonZero, lambda x: autograd.nonzero(autograd.relu(x)), [A], "NonZero"),
]


def _ids(cases):
    return [f"{c[0].__name__}-{i}" for i, c in enumerate(cases)]


def test_every_emitter_has_a_case():
    tested = {c[0] for c in CASES}
    missing = sorted(c.__name__ for c in frontend._EMIT if c not in tested)
    assert not missing, f"operators exported without a test case: {missing}"


@pytest.mark.parametrize("case", [c for c in CASES if c[1] is not None], ids=_ids(
    [c for c in CASES if c[1] is not None]))
def test_op_matches_onnxruntime(case):
    cls, fn, arrays, op_type = case
    xs = [tensor.from_numpy(a) for a in arrays]
    with autograd.train_mode(False), autograd.tracing() as trace:
        ref = fn(*xs)
    assert any(type(op) is cls for op, _, _ in trace), f"the case does not call {cls.__name__}"
    m = sonnx.export(fn, xs)
    assert op_type in {n.op_type for n in m.graph.node}
    got = ort_run(m, arrays)[0]
    want = ref.to_numpy()
    assert got.shape == want.shape
    np.testing.assert_allclose(got.astype(want.dtype), want, rtol=2e-5, atol=2e-6)


@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("residual", [False, True])
@pytest.mark.parametrize("shape", [(2, 4, 6, 6), (5, 4)])
def test_batchnorm_fusions(relu, residual, shape):
    """Inference batch norm with its running statistics, then the fused residual and ReLU."""
    bn = layer.BatchNorm2d(relu=relu)
    x = tensor.from_numpy(rand(*shape))
    r = tensor.from_numpy(rand(*shape, seed=5))
    args = [x, r] if residual else [x]
    with autograd.train_mode():  # moves the running statistics off 0 / 1
        bn(*args)
    bn.scale.copy_from_numpy(rand(shape[1], seed=2))
    want = bn(*args).to_numpy()
    m = sonnx.export(bn, args)
    ops = [n.op_type for n in m.graph.node]
    assert "BatchNormalization" in ops and ("Relu" in ops) == relu and ("Add" in ops) == residual
    np.testing.assert_allclose(ort_run(m, [a.to_numpy() for a in args])[0], want, rtol=1e-5,
                               atol=1e-5)


def test_average_pool_count_include_pad():
    x = tensor.from_numpy(IMG)
    for include in (True, False):
        def fn(t, include=include):
            return autograd.avg_pool_2d(t, 3, 2, 1, count_include_pad=include)

        np.testing.assert_allclose(ort_run(sonnx.export(fn, [x]), [IMG])[0],
                                   fn(x).to_numpy(), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name,make,shape", [
    ("mlp", lambda m: m.create_model(data_size=20, num_classes=10), (4, 20)),
    ("cnn", lambda m: m.create_model(num_channels=1, num_classes=10), (2, 1, 28, 28)),
    ("resnet", lambda m: m.resnet18(num_channels=3, num_classes=10, input_size=32),
     (2, 3, 32, 32)),
    ("xceptionnet", lambda m: m.create_model(num_channels=3, num_classes=10), (1, 3, 299, 299)),
])
def test_example_models_match_onnxruntime(name, make, shape):
    m = make(example_module(name))
    x = tensor.from_numpy(rand(*shape))
    m.compile([x], is_train=False, use_graph=False)
    with autograd.train_mode():  # one training forward: running statistics off 0 / 1
        m.forward(x)
    m.eval()
    want = m.forward(x).to_numpy()
    om = sonnx.export(m, [x], input_names=["image"], output_names=["logits"])
    assert [i.name for i in om.graph.input] == ["image"]
    assert [o.name for o in om.graph.output] == ["logits"]
    # Initializers carry the model's state names; every parameter and state is among them.
    inits = {i.name for i in om.graph.initializer}
    assert set(m.get_states()) <= inits
    np.testing.assert_allclose(ort_run(om, [x.to_numpy()])[0], want, rtol=1e-4, atol=1e-4)


def test_to_onnx_singa_style_after_a_training_forward():
    """SINGA's to_onnx(inputs, [y]) on the creators a training forward recorded; the result
    is the inference graph (the running statistics as they are after that forward)."""
    m = example_module("resnet").resnet18(num_channels=3, num_classes=10, input_size=32,
                                    fused_residual=True)
    x = tensor.from_numpy(rand(2, 3, 32, 32))
    autograd.training = True
    try:
        x.requires_grad = True
        y = m.forward(x)
    finally:
        autograd.training = False
    om = sonnx.to_onnx([x], [y])
    m.eval()
    want = m.forward(x).to_numpy()
    np.testing.assert_allclose(ort_run(om, [x.to_numpy()])[0], want, rtol=1e-4, atol=1e-4)
    # The backward still works after export (the leaves kept in src are not parameters).
    with autograd.train_mode():
        loss = autograd.reduce_sum(y)
    grads = autograd.gradients(loss)
    assert grads and all(p.stores_grad for p in grads) and not any(p is x for p in grads)


def test_to_onnx_keeps_parameter_names_and_leaf_constants():
    w = tensor.from_numpy(rand(4, 2))
    w.requires_grad, w.stores_grad, w.name = True, True, "fc.W"
    c = tensor.from_numpy(rand(3, 2, seed=4))
    x = tensor.from_numpy(A)
    with autograd.train_mode():
        y = autograd.add(autograd.matmul(x, w), c)
    om = sonnx.to_onnx([x], y)
    assert "fc.W" in {i.name for i in om.graph.initializer}
    np.testing.assert_allclose(ort_run(om, [A])[0], A @ w.to_numpy() + c.to_numpy(),
                               rtol=1e-5, atol=1e-5)


def test_errors_name_the_problem():
    x = tensor.from_numpy(A)
    with pytest.raises(NotImplementedError, match="SoftMaxCrossEntropy"):
        sonnx.export(lambda t: autograd.softmax_cross_entropy(
            t, tensor.from_numpy(np.zeros(3, np.int32))), [x])
    unused = tensor.from_numpy(B)
    with pytest.raises(ValueError, match="input 1 .* does not reach"):
        sonnx.export(lambda a, b: autograd.relu(a), [x, unused])
    with pytest.raises(TypeError, match="inputs must be a Tensor or a list of Tensors"):
        sonnx.export(autograd.relu, [A])
    # to_onnx on an output with no creator: the input does not reach it.
    with pytest.raises(ValueError, match="does not reach"):
        sonnx.to_onnx([x], autograd.relu(x))


def test_export_writes_the_file_atomically(tmp_path, monkeypatch):
    x = tensor.from_numpy(A)
    path = tmp_path / "m.onnx"
    sonnx.export(autograd.relu, [x], path=str(path))
    assert onnx.load(str(path)).graph.node[0].op_type == "Relu"
    before = path.read_bytes()

    def broken_save(m, f):
        with open(f, "wb") as fh:
            fh.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(frontend.onnx, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        sonnx.export(autograd.tanh, [x], path=str(path))
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["m.onnx"]


def test_constants_fold_and_inputs_stay_live():
    """A value computed only from constants becomes one initializer; the input's ops stay."""
    x = tensor.from_numpy(A)

    def fn(t):
        c = autograd.exp(tensor.from_numpy(np.ones((1, 4), np.float32)))  # a constant
        return autograd.mul(t, c)

    m = sonnx.export(fn, [x])
    assert [n.op_type for n in m.graph.node] == ["Mul", "Identity"]
    np.testing.assert_allclose(ort_run(m, [A])[0], A * np.e, rtol=1e-6)


def test_model_forward_is_traced_not_train_one_batch():
    class Net(model.Model):
        def __init__(self):
            super().__init__()
            self.fc = layer.Linear(3)
            self.drop = layer.Dropout(0.5)

        def forward(self, x):
            return self.drop(self.fc(x))

        def train_one_batch(self, x, y):
            raise AssertionError("export must not train")

    net = Net()
    x = tensor.from_numpy(A)
    net.compile([x], is_train=True, use_graph=False)
    before = autograd.training
    m = sonnx.export(net, [x])
    assert autograd.training == before
    net.eval()
    np.testing.assert_allclose(ort_run(m, [A])[0], net.forward(x).to_numpy(), rtol=1e-6)


@pytest.mark.parametrize("name,make,shape", [
    ("mlp", lambda m: m.create_model(data_size=20, num_classes=10), (4, 20)),
    ("cnn", lambda m: m.create_model(num_channels=1, num_classes=10), (2, 1, 28, 28)),
    ("resnet", lambda m: m.resnet18(num_channels=3, num_classes=10, input_size=32),
     (2, 3, 32, 32)),
])
def test_dynamic_batch(name, make, shape):
    """dynamic_batch: one file for every batch size, each equal to minisinga's forward."""
    m = make(example_module(name))
    x = tensor.from_numpy(rand(*shape))
    m.compile([x], is_train=False, use_graph=False)
    m.eval()
    om = sonnx.export(m, [x], dynamic_batch=True)
    assert om.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    assert om.graph.output[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    for n in (1, 3, 7):
        a = rand(n, *shape[1:], seed=n)
        np.testing.assert_allclose(ort_run(om, [a])[0], m.forward(tensor.from_numpy(a))
                                   .to_numpy(), rtol=1e-4, atol=1e-4)


def test_dynamic_batch_reshapes_and_expands():
    """A reshape keeping the batch (0), one folding it (-1), and an expand along it."""
    def fn(x):
        h = autograd.reshape(x, [x.shape[0], 2, -1])             # (N, 2, 6)
        flat = autograd.reshape(h, [-1])                          # (N * 12,)
        e = autograd.expand(autograd.reduce_sum(x, [1]), [x.shape[0], 3])  # (N, 1) -> (N, 3)
        return autograd.add(autograd.reduce_sum(flat, [0]), autograd.reduce_sum(e))

    x = tensor.from_numpy(rand(4, 12))
    om = sonnx.export(fn, [x], dynamic_batch=True)
    for n in (1, 5):
        a = rand(n, 12, seed=n)
        np.testing.assert_allclose(ort_run(om, [a])[0], fn(tensor.from_numpy(a)).to_numpy(),
                                   rtol=1e-5, atol=1e-5)


def test_dynamic_batch_refuses_what_depends_on_the_batch():
    x = tensor.from_numpy(rand(4, 3))

    def batch_constant(t):  # zeros of the batch's shape, made in the forward: a constant
        return autograd.add(t, tensor.from_numpy(np.ones(t.shape, np.float32)))

    with pytest.raises(ValueError, match=r"the constant \w+ of node Add_\d+ \(Add\) .* "
                                         "changes with the batch size"):
        sonnx.export(batch_constant, [x], dynamic_batch=True)

    def batch_split(t):
        return autograd.split(t, 0, [1, t.shape[0] - 1])[1]

    with pytest.raises(ValueError, match="split along the batch axis"):
        sonnx.export(batch_split, [x], dynamic_batch=True)

    def batch_slice(t):  # the slice's end is the batch size: an attribute that changes
        return autograd.slice(t, [0], [t.shape[0] - 1], [0])

    with pytest.raises(ValueError, match=r"of node Slice_\d+ \(Slice\) .* changes with"):
        sonnx.export(batch_slice, [x], dynamic_batch=True)
    def batch_alpha(t):  # an attribute computed from the batch size
        return autograd.leakyrelu(t, 0.1 * t.shape[0])

    with pytest.raises(ValueError, match=r"node LeakyRelu_\d+ \(LeakyRelu\) differs"):
        sonnx.export(batch_alpha, [x], dynamic_batch=True)
    with pytest.raises(ValueError, match="its rank depends on the batch"):  # (1, 3) -> (3,)
        sonnx.export(autograd.squeeze, [tensor.from_numpy(rand(1, 3))], dynamic_batch=True)
    # Without dynamic_batch, the same functions export with their fixed shapes.
    for fn in (batch_constant, batch_split, batch_slice, batch_alpha):
        np.testing.assert_allclose(ort_run(sonnx.export(fn, [x]), [x.to_numpy()])[0],
                                   fn(x).to_numpy(), rtol=1e-6)


def test_dynamic_batch_recurrent_model():
    """Embedding, a 2-layer bidirectional LSTM and a GRU (zero initial states, which the
    steps skip rather than make as batch-sized constants) export for any batch size."""
    class Net(model.Model):
        def __init__(self):
            super().__init__()
            self.emb = layer.Embedding(20, 8)
            self.lstm = layer.LSTM(8, 6, num_layers=2, batch_first=True, bidirectional=True)
            self.gru = layer.GRU(12, 5, batch_first=True)
            self.fc = layer.Linear(3)

        def forward(self, x):
            h, _, _ = self.lstm(self.emb(x))
            h, _ = self.gru(h)
            return self.fc(autograd.reshape(h, [h.shape[0], -1]))

    net = Net()
    ids = np.random.default_rng(0).integers(0, 20, (3, 4)).astype(np.int32)
    x = tensor.from_numpy(ids)
    net.compile([x], is_train=False, use_graph=False)
    om = sonnx.export(net, [x], dynamic_batch=True)
    for n in (1, 5):
        a = np.random.default_rng(n).integers(0, 20, (n, 4)).astype(np.int32)
        np.testing.assert_allclose(ort_run(om, [a])[0], net.forward(tensor.from_numpy(a))
                                   .to_numpy(), rtol=1e-5, atol=1e-6)


def test_float16_model_exports_as_float16():
    """float16 parameters, inputs and scalar constants stay FLOAT16 in the file; onnxruntime
    and the import agree with minisinga."""
    fc = layer.Linear(3)
    x = tensor.from_numpy(rand(4, 5).astype(np.float16))

    def fn(t):
        return autograd.relu(autograd.add(fc(t), 0.5))

    want = fn(x).to_numpy()
    m = sonnx.export(fn, [x])
    assert {i.data_type for i in m.graph.initializer} == {onnx.TensorProto.FLOAT16}
    assert m.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT16
    got = ort_run(m, [x.to_numpy()])[0]
    assert got.dtype == np.float16
    np.testing.assert_allclose(got.astype(np.float32), want.astype(np.float32), atol=2e-3)
    back = sonnx.prepare(m).run([x.to_numpy()])[0]
    np.testing.assert_array_equal(back, want)
