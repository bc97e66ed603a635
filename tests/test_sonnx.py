"""ONNX round trips: a minisinga model exported (sonnx.export / to_onnx) and imported back
(sonnx.prepare, SONNXModel) computes and trains as the original, on every device."""

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from sonnx_helpers import Trainer, example_module  # noqa: E402

from minisinga import layer, model, opt, sonnx, tensor  # noqa: E402


def _batch(dev, n=4, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 1, 28, 28)).astype(np.float32)
    y = rng.integers(0, 10, n).astype(np.int32)
    return tensor.from_numpy(x, dev), tensor.from_numpy(y, dev)


class _Cnn(model.Model):
    """Conv, fused batch norm + ReLU, pooling, dropout, linear: the ops a CNN exports."""

    def __init__(self):
        super().__init__()
        self.conv = layer.Conv2d(6, 3, padding=1)
        self.bn = layer.BatchNorm2d(relu=True)
        self.pool = layer.MaxPool2d(2, 2)
        self.flat = layer.Flatten()
        self.fc = layer.Linear(10)
        self.loss = layer.SoftMaxCrossEntropy()

    def forward(self, x):
        return self.fc(self.flat(self.pool(self.bn(self.conv(x)))))

    def train_one_batch(self, x, y):
        out = self.forward(x)
        loss = self.loss(out, y)
        self.optimizer(loss)
        return out, loss


def _trained_native(dev):
    m = _Cnn()
    x, y = _batch(dev)
    m.set_optimizer(opt.SGD(lr=0.05, momentum=0.9))
    m.compile([x], is_train=True, use_graph=False)
    m(x, y)  # one step: the running statistics move off 0 / 1
    return m, x, y


def test_prepare_run_equals_the_model(dev):
    m, x, _ = _trained_native(dev)
    m.eval()
    want = m.forward(x).to_numpy()
    om = sonnx.export(m, [x])
    rep = sonnx.prepare(om, dev)
    got = rep.run([x.to_numpy()])
    assert isinstance(got[0], np.ndarray)
    np.testing.assert_allclose(got[0], want, rtol=1e-5, atol=1e-5)
    got_t = rep.run([x])  # Tensors in, Tensors out, on the device
    assert isinstance(got_t[0], tensor.Tensor) and got_t[0].device == dev
    np.testing.assert_allclose(got_t[0].to_numpy(), want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("use_graph", [False, True])
def test_imported_model_trains_as_the_original(dev, use_graph):
    """Three SGD steps of the re-imported model equal three of the original: same losses,
    same parameters, same running statistics (eager, and replaying a recorded graph)."""
    m, x, y = _trained_native(dev)
    om = sonnx.export(m, [x])
    states = {n: t.to_numpy() for n, t in m.get_states().items()}
    imp = Trainer(om)
    imp.set_optimizer(opt.SGD(lr=0.05))
    imp.compile([x], is_train=True, use_graph=use_graph)
    m.set_optimizer(opt.SGD(lr=0.05))
    m.compile([x], is_train=True, use_graph=use_graph)
    assert set(imp.get_params()) == set(m.get_params())
    for name, v in states.items():  # the import starts from the exported values
        np.testing.assert_array_equal(imp.get_states()[name].to_numpy(), v)
    for step in range(3):
        xb, yb = _batch(dev, seed=step + 1)
        x.copy_from(xb)
        y.copy_from(yb)
        _, l1 = m(x, y)
        _, l2 = imp(x, y)
        np.testing.assert_allclose(l2.to_numpy(), l1.to_numpy(), rtol=1e-5, atol=1e-6)
    for name, t in m.get_states().items():
        np.testing.assert_allclose(imp.get_states()[name].to_numpy(), t.to_numpy(),
                                   rtol=1e-4, atol=1e-5, err_msg=name)


def test_resnet_round_trip_and_checkpoint(tmp_path):
    m = example_module("resnet").resnet18(num_channels=3, num_classes=10, input_size=32)
    x = tensor.from_numpy(np.random.default_rng(1).standard_normal((2, 3, 32, 32))
                          .astype(np.float32))
    m.compile([x], is_train=False, use_graph=False)
    m.eval()
    want = m.forward(x).to_numpy()
    path = str(tmp_path / "resnet18.onnx")
    sonnx.export(m, [x], path=path)
    imp = Trainer(sonnx.load(path))
    imp.compile([x], is_train=False, use_graph=False)
    imp.eval()
    np.testing.assert_allclose(imp.forward(x).to_numpy(), want, rtol=1e-4, atol=1e-4)
    ckpt = str(tmp_path / "imp.zip")
    imp.save_states(ckpt)
    again = Trainer(sonnx.load(path))
    again.compile([x], is_train=False, use_graph=False)
    for t in again.get_states().values():
        t.set_value(0.0)
    again.load_states(ckpt)
    again.eval()
    np.testing.assert_allclose(again.forward(x).to_numpy(), want, rtol=1e-4, atol=1e-4)


def _export_cases():
    from test_sonnx_frontend import CASES

    return [c for c in CASES if c[1] is not None]


@pytest.mark.parametrize("case", _export_cases(), ids=lambda c: c[0].__name__)
def test_every_exported_operator_imports_back(case):
    """Whatever export writes, import reads: each exported operator, run back through
    sonnx.prepare, gives minisinga's own result."""
    _, fn, arrays, _ = case
    xs = [tensor.from_numpy(a) for a in arrays]
    want = fn(*xs).to_numpy()
    got = sonnx.prepare(sonnx.export(fn, xs)).run(arrays)[0]
    assert got.shape == want.shape
    np.testing.assert_allclose(got.astype(want.dtype), want, rtol=2e-5, atol=2e-6)
