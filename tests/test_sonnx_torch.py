"""A model exported by PyTorch (tests/data/torch_encoder.onnx, made by make_torch_encoder.py:
convolutions, a ceil-mode pool, a transformer encoder layer, a dynamic batch) imported with
sonnx: outputs and gradients against PyTorch's, on every device."""

import os

import numpy as np
import pytest

pytest.importorskip("onnx")

from sonnx_helpers import Trainer  # noqa: E402

from minisinga import autograd, opt, sonnx, tensor  # noqa: E402

DATA = os.path.join(os.path.dirname(__file__), "data")


@pytest.fixture(scope="module")
def ref():
    return (sonnx.load(os.path.join(DATA, "torch_encoder.onnx")),
            dict(np.load(os.path.join(DATA, "torch_encoder.npz"))))


def test_outputs_match_pytorch_for_two_batch_sizes(ref, dev):
    m, d = ref
    rep = sonnx.prepare(m, dev)
    for n in (2, 3):  # the graph computes its reshapes from the input's shape
        np.testing.assert_allclose(rep.run([d[f"x{n}"]])[0], d[f"y{n}"], rtol=1e-4,
                                   atol=1e-5)


def test_gradients_match_pytorch(ref, dev):
    m, d = ref
    net = Trainer(m)
    x, y = tensor.from_numpy(d["x2"], dev), tensor.from_numpy(d["labels"], dev)
    net.compile([x], is_train=False)
    with autograd.train_mode():
        loss = autograd.softmax_cross_entropy(net.forward(x), y)
        grads = {net.onnx_names[p.name]: g.to_numpy() for p, g in autograd.backward(loss)}
    want = {k[5:]: v for k, v in d.items() if k.startswith("grad/")}
    assert len(want) == 15 and set(want) <= set(grads)
    for name, g in want.items():
        np.testing.assert_allclose(grads[name], g, rtol=1e-3, atol=2e-6, err_msg=name)


def test_fine_tuning_in_a_recorded_graph_equals_eager(ref, dev):
    m, d = ref
    losses = {}
    for use_graph in (False, True):
        net = Trainer(m)
        net.set_optimizer(opt.SGD(lr=0.1, momentum=0.9))
        x, y = tensor.from_numpy(d["x2"], dev), tensor.from_numpy(d["labels"], dev)
        net.compile([x], is_train=True, use_graph=use_graph)
        losses[use_graph] = [net(x, y)[1].item() for _ in range(4)]
    np.testing.assert_allclose(losses[True], losses[False], rtol=1e-5)
    assert losses[False][-1] < losses[False][0]
