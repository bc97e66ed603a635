"""Recorded-graph execution: eager == graph step by step, memory, guard rails, profiling."""

import numpy as np
import pytest
from conftest import core_tensor, graph_shuffle

from minisinga import _core, device, layer, model, opt, tensor


class MLP(model.Model):
    def __init__(self):
        super().__init__()
        self.fc1 = layer.Linear(16)
        self.bn = layer.BatchNorm2d()
        self.relu = layer.ReLU()
        self.drop = layer.Dropout(0.3)
        self.fc2 = layer.Linear(4)
        self.loss = layer.SoftMaxCrossEntropy()

    def forward(self, x):
        return self.fc2(self.drop(self.relu(self.bn(self.fc1(x)))))

    def train_one_batch(self, x, y):
        out = self.forward(x)
        loss = self.loss(out, y)
        self.optimizer(loss)
        return out, loss


class CNN(model.Model):
    def __init__(self):
        super().__init__()
        self.conv1 = layer.Conv2d(6, 3, padding=1)
        self.bn1 = layer.BatchNorm2d()
        self.relu = layer.ReLU()
        self.pool = layer.MaxPool2d(2, 2)
        self.conv2 = layer.Conv2d(8, 3, padding=1, activation="RELU")
        self.gap = layer.AvgPool2d(4, 1)
        self.flat = layer.Flatten()
        self.drop = layer.Dropout(0.2)
        self.fc = layer.Linear(4)
        self.loss = layer.SoftMaxCrossEntropy()

    def forward(self, x):
        y = self.pool(self.relu(self.bn1(self.conv1(x))))
        y = self.flat(self.gap(self.conv2(y)))
        return self.fc(self.drop(y))

    def train_one_batch(self, x, y):
        out = self.forward(x)
        loss = self.loss(out, y)
        self.optimizer(loss)
        return out, loss


class Residual(model.Model):
    """Batch norm with the ReLU and a residual add fused in (layer.BatchNorm2d(relu=True),
    forward(x, residual)), between 3x3 convolutions."""

    def __init__(self):
        super().__init__()
        self.conv1 = layer.Conv2d(6, 3, padding=1)
        self.bn1 = layer.BatchNorm2d(relu=True)
        self.conv2 = layer.Conv2d(6, 3, padding=1)
        self.bn2 = layer.BatchNorm2d(relu=True)
        self.gap = layer.AvgPool2d(8, 1)
        self.flat = layer.Flatten()
        self.fc = layer.Linear(4)
        self.loss = layer.SoftMaxCrossEntropy()

    def forward(self, x):
        h = self.bn1(self.conv1(x))
        return self.fc(self.flat(self.gap(self.bn2(self.conv2(h), h))))

    def train_one_batch(self, x, y):
        out = self.forward(x)
        loss = self.loss(out, y)
        self.optimizer(loss)
        return out, loss


class Wide(model.Model):
    """A 128-channel 3x3 convolution at 32 x 32, batch 2: the CPU's own plan runs it (y, dx
    and dw) as Winograd F(4x4)."""

    def __init__(self):
        super().__init__()
        self.conv1 = layer.Conv2d(128, 3, padding=1, activation="RELU")
        self.conv2 = layer.Conv2d(128, 3, padding=1)
        self.gap = layer.AvgPool2d(32, 1)
        self.flat = layer.Flatten()
        self.fc = layer.Linear(4)
        self.loss = layer.SoftMaxCrossEntropy()

    def forward(self, x):
        return self.fc(self.flat(self.gap(self.conv2(self.conv1(x)))))

    def train_one_batch(self, x, y):
        out = self.forward(x)
        loss = self.loss(out, y)
        self.optimizer(loss)
        return out, loss


def batches(kind, n=4, bs=8, seed=0):
    r = np.random.default_rng(seed)
    bs = 2 if kind == "wide" else bs
    shape = {"mlp": (bs, 10), "wide": (bs, 3, 32, 32)}.get(kind, (bs, 3, 8, 8))
    return [(r.standard_normal(shape).astype(np.float32),
             r.integers(0, 4, bs).astype(np.int32)) for _ in range(n)]


def train(kind, optimizer, graph, sequential=True, dev=None, steps=4):
    """Trains a fresh model; returns per-step (out, loss) and the final states."""
    dev = dev or device.create_cpu_device()
    dev.SetRandSeed(0)
    data = batches(kind, steps)
    tx = tensor.Tensor(data[0][0].shape, dev)
    ty = tensor.Tensor((data[0][1].shape[0],), dev, dtype=tensor.int32)
    m = {"mlp": MLP, "cnn": CNN, "residual": Residual, "wide": Wide}[kind]()
    m.set_optimizer(optimizer())
    m.compile([tx], is_train=True, use_graph=graph, sequential=sequential)
    trace = []
    for x, y in data:
        tx.copy_from_numpy(x)
        ty.copy_from_numpy(y)
        out, loss = m(tx, ty)
        trace.append((out.to_numpy(), loss.to_numpy()))
    states = {k: v.to_numpy() for k, v in m.get_states().items()}
    m.eval()
    return trace, states, m, dev


OPTIMIZERS = {"sgd": lambda: opt.SGD(0.05, momentum=0.9, weight_decay=1e-4),
              "adam": lambda: opt.Adam(0.01)}


@pytest.mark.parametrize("kind", ["mlp", "cnn", "residual", "wide"])
@pytest.mark.parametrize("optname", ["sgd", "adam"])
def test_eager_and_graph_agree_step_by_step(kind, optname):
    if kind == "wide":  # the model covers the CPU's Winograd plan in graph mode
        paths = {_core._conv2d_path(device.create_cpu_device(), [2, 128, 32, 32],
                                    [128, 128, 3, 3], [1, 1], [1, 1, 1, 1], weight_grad=wg)
                 for wg in (False, True)}
        assert paths == {"winograd 4x4"}, paths
    ref_trace, ref_states, _, _ = train(kind, OPTIMIZERS[optname], graph=False)
    # dependency order: first-recorded-first, and any ready node first (seeded shuffle)
    for sequential, shuffle in ((True, 0), (False, 0), (False, 17)):
        with graph_shuffle(shuffle):
            trace, states, _, _ = train(kind, OPTIMIZERS[optname], graph=True,
                                        sequential=sequential)
        for step, ((o1, l1), (o2, l2)) in enumerate(zip(ref_trace, trace)):
            np.testing.assert_allclose(o2, o1, rtol=1e-5, atol=1e-6, err_msg=f"out {step}")
            np.testing.assert_allclose(l2, l1, rtol=1e-5, atol=1e-6, err_msg=f"loss {step}")
        for k in ref_states:
            np.testing.assert_allclose(states[k], ref_states[k], rtol=1e-5, atol=1e-6,
                                       err_msg=k)
    assert len(ref_trace) == 4 and not np.allclose(ref_trace[0][1], ref_trace[-1][1])


def test_nothing_is_computed_while_recording():
    dev = device.create_cpu_device()
    x = tensor.Tensor((2, 2), dev).set_value(1.0)
    dev.EnableGraph(True)
    y = x + 1.0
    with pytest.raises(ValueError, match="recording a graph"):
        y.to_numpy()
    dev.EnableGraph(False)
    assert dev.graph_size == 1 and not y.data.allocated
    dev.RunGraph(True)
    np.testing.assert_array_equal(y.to_numpy(), 2.0)
    dev.RunGraph(True)  # a replay recomputes from the current inputs
    x.set_value(5.0)
    dev.RunGraph(False)
    np.testing.assert_array_equal(y.to_numpy(), 6.0)
    dev.ResetGraph()
    assert dev.graph_size == 0


def test_replays_do_not_grow_memory():
    _, _, m, dev = train("mlp", OPTIMIZERS["adam"], graph=True, steps=2)
    m.train()
    tx, ty = m._graph_inputs[0]
    for _ in range(20):
        m(tx, ty)
    before = dev.memory_stats()
    for _ in range(1000):
        m(tx, ty)
    after = dev.memory_stats()
    assert after["current"] == before["current"]
    assert after["reserved"] == before["reserved"]
    m.eval()


def test_rerecording_after_reset_works():
    trace, _, m, dev = train("mlp", OPTIMIZERS["sgd"], graph=True, steps=2)
    m.train()
    tx, ty = m._graph_inputs[0]
    m.graph(True, sequential=True)  # drops the recorded graph
    assert dev.graph_size == 0
    w0 = m.fc1.W.to_numpy()
    out1, loss1 = m(tx, ty)  # records again and runs
    assert dev.graph_size > 0 and dev.graph_runs == 1
    w1 = m.fc1.W.to_numpy()
    out2, loss2 = m(tx, ty)
    assert out2 is out1 and dev.graph_runs == 2
    w2 = m.fc1.W.to_numpy()
    assert not np.allclose(w0, w1) and not np.allclose(w1, w2)  # each run updates
    m.eval()


def test_graph_peak_memory_below_eager():
    _, _, _, eager_dev = train("cnn", OPTIMIZERS["sgd"], graph=False)
    _, _, _, graph_dev = train("cnn", OPTIMIZERS["sgd"], graph=True)
    eager_peak = eager_dev.memory_stats()["peak"]
    graph_peak = graph_dev.memory_stats()["peak"]
    # Eager mode also frees each op's saved tensors as its backward runs (retain_graph=False
    # in the optimizers), so the graph's planning wins less than it did (about 9% here).
    assert graph_peak < eager_peak, (graph_peak, eager_peak)


class Peeking(MLP):
    def train_one_batch(self, x, y):
        out, loss = super().train_one_batch(x, y)
        loss.to_numpy()  # reading a value inside a recorded step is not allowed
        return out, loss


class CrossDevice(MLP):
    def train_one_batch(self, x, y):
        out, loss = super().train_one_batch(x, y)
        tensor.to_host(loss)
        return out, loss


@pytest.mark.parametrize("cls,match", [(Peeking, "recording a graph"),
                                       (CrossDevice, "cannot be recorded")])
def test_guard_rails_while_recording(cls, match):
    dev = device.create_cpu_device()
    tx = tensor.Tensor((8, 10), dev)
    ty = tensor.Tensor((8,), dev, dtype=tensor.int32)
    m = cls()
    m.set_optimizer(opt.SGD(0.1))
    m.compile([tx], use_graph=True)
    with pytest.raises(ValueError, match=match):
        m(tx, ty)
    assert not dev.graph_enabled() and dev.graph_size == 0  # a failed recording is dropped
    m.eval()


def test_guard_rail_input_of_another_shape_or_dtype():
    _, _, m, dev = train("mlp", OPTIMIZERS["sgd"], graph=True, steps=1)
    m.train()
    tx, ty = m._graph_inputs[0]
    with pytest.raises(ValueError, match="recorded with shape"):
        m(tensor.Tensor((4, 10), dev), ty)
    with pytest.raises(ValueError, match="dtype"):
        m(tx, tensor.Tensor((8,), dev))
    # a different tensor of the same shape is copied into the recorded input
    x2 = tensor.Tensor((8, 10), dev).set_value(0.5)
    m(x2, ty)
    np.testing.assert_array_equal(tx.to_numpy(), 0.5)
    m.eval()


def test_profiling(capsys):
    _, _, m, dev = train("mlp", OPTIMIZERS["sgd"], graph=True, steps=1)
    m.train()
    tx, ty = m._graph_inputs[0]
    dev.SetVerbosity(1)
    dev.SetSkipIteration(2)
    for _ in range(5):
        m(tx, ty)
    dev.PrintTimeProfiling()
    report = capsys.readouterr().out
    for phase in ("forward", "backward", "update"):
        assert phase in report
    assert "after skipping 2 iterations" in report
    dev.reset_profiling()
    dev.SetVerbosity(2)
    m(tx, ty)
    dev.PrintTimeProfiling()
    report = capsys.readouterr().out
    assert "Matmul" in report or "Gemm" in report
    assert "SoftmaxCrossEntropy" in report or "softmax" in report.lower()
    dev.SetVerbosity(0)
    m.eval()


# ---- the example models of SPEC-cnn.md at small sizes ----

def example_models():
    import os
    import sys

    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "examples", "cnn"))
    from model import alexnet, cnn, mlp, resnet, xceptionnet

    return {
        "mlp": (lambda: mlp.create_model(data_size=12, num_classes=4), (12,)),
        "cnn": (lambda: cnn.create_model(num_classes=4, num_channels=1, input_size=16),
                (1, 16, 16)),
        "alexnet": (lambda: alexnet.create_model(num_classes=4, num_channels=1, input_size=99),
                    (1, 99, 99)),
        "resnet18": (lambda: resnet.resnet18(num_classes=4, input_size=32), (3, 32, 32)),
        "resnet50": (lambda: resnet.resnet50(num_classes=4, input_size=32), (3, 32, 32)),
        "xceptionnet": (lambda: xceptionnet.create_model(num_classes=4, num_channels=3,
                                                         input_size=71), (3, 71, 71)),
    }


def train_example(name, graph, sequential, steps=3, on_gpu=False):
    dev = device.create_cuda_gpu_on(0) if on_gpu else device.create_cpu_device()
    dev.SetRandSeed(1)
    ctor, shape = example_models()[name]
    r = np.random.default_rng(1)
    bs = 2
    tx = tensor.Tensor((bs,) + shape, dev)
    ty = tensor.Tensor((bs,), dev, dtype=tensor.int32)
    m = ctor()
    m.set_optimizer(opt.SGD(0.01, momentum=0.9, weight_decay=1e-5))
    m.compile([tx], is_train=True, use_graph=graph, sequential=sequential)
    trace = []
    for _ in range(steps):
        tx.copy_from_numpy(r.standard_normal((bs,) + shape).astype(np.float32))
        ty.copy_from_numpy(r.integers(0, 4, bs).astype(np.int32))
        out, loss = m(tx, ty, "plain", None)
        trace.append((out.to_numpy(), loss.to_numpy()))
    states = {k: v.to_numpy() for k, v in m.get_states().items()}
    m.eval()
    return trace, states


# Half a minute or more each in the CUDA emulator: tests/cuda_emu/run.sh leaves them to the
# CPU and real GPUs.
EMU_SLOW = pytest.mark.slow_emulated


@pytest.mark.parametrize("name", ["mlp", "cnn", "alexnet",
                                  pytest.param("resnet18", marks=EMU_SLOW),
                                  pytest.param("resnet50", marks=EMU_SLOW),
                                  pytest.param("xceptionnet", marks=EMU_SLOW)])
def test_example_models_eager_equals_graph(dev, name):
    # On a GPU the graph's replays are captured CUDA graphs (after the first).
    on_gpu = dev.is_cuda
    ref_trace, ref_states = train_example(name, graph=False, sequential=True, on_gpu=on_gpu)
    for sequential, shuffle in ((True, 0), (False, 0), (False, 23)):  # as in the test above
        with graph_shuffle(shuffle):
            trace, states = train_example(name, graph=True, sequential=sequential,
                                          on_gpu=on_gpu)
        for step, ((o1, l1), (o2, l2)) in enumerate(zip(ref_trace, trace)):
            np.testing.assert_allclose(o2, o1, rtol=1e-4, atol=1e-5, err_msg=f"out {step}")
            np.testing.assert_allclose(l2, l1, rtol=1e-4, atol=1e-5, err_msg=f"loss {step}")
        for k in ref_states:
            np.testing.assert_allclose(states[k], ref_states[k], rtol=1e-4, atol=1e-5,
                                       err_msg=k)


class Classifier(model.Model):
    """Linear layers over dense inputs, or over an embedding of int32 token ids (embed=True):
    no batch norm or dropout, so a step that stops early leaves nothing behind."""

    def __init__(self, embed=False):
        super().__init__()
        self.embed = layer.Embedding(12, 6) if embed else None
        self.flat = layer.Flatten()
        self.fc1 = layer.Linear(8)
        self.relu = layer.ReLU()
        self.fc2 = layer.Linear(5)
        self.loss = layer.SoftMaxCrossEntropy()

    def forward(self, x):
        if self.embed is not None:
            x = self.flat(self.embed(x))
        return self.fc2(self.relu(self.fc1(x)))

    def train_one_batch(self, x, y):
        out = self.forward(x)
        loss = self.loss(out, y)
        self.optimizer(loss)
        return out, loss


def _params(m):
    """Parameters and per-parameter optimizer buffers (not the step counter: in a shuffled
    replay order, its increment may run before the check that stops the step)."""
    out = {k: v.to_numpy().copy() for k, v in m.get_states().items()}
    out.update({k: v.to_numpy().copy() for k, v in m.optimizer.get_states().items()
                if k != "step_counter"})
    return out


@pytest.mark.parametrize("where", ["label", "token"])
@pytest.mark.parametrize("order", ["sequential", "dependency", "shuffled"])
def test_bad_labels_and_indices_in_a_graph_replay(dev, where, order):
    """Labels and indices that only the device sees in a replay: on a CPU the replay stops
    with the op's error before any parameter is updated (training then goes on as if that batch
    had not been given); on a GPU the next read of a value raises it, once."""
    r = np.random.default_rng(3)
    embed = where == "token"
    xs = [r.integers(0, 12, (6, 3)).astype(np.int32) if embed
          else r.standard_normal((6, 7)).astype(np.float32) for _ in range(4)]
    ys = [r.integers(0, 5, 6).astype(np.int32) for _ in range(4)]
    bad_x, bad_y = xs[2].copy(), ys[2].copy()
    if embed:
        bad_x[4, 1] = 12
        msg = r"take: an index is out of range for axis 0 of size 12"
    else:
        bad_y[3] = 5
        msg = (r"softmax_cross_entropy: a label of the int32 labels of shape \(6,\) is out of "
               r"range \[0, 5\)")

    def run(with_bad):
        dev.SetRandSeed(0)
        tx = tensor.Tensor(xs[0].shape, dev, dtype=tensor.int32 if embed else tensor.float32)
        ty = tensor.Tensor((6,), dev, dtype=tensor.int32)
        m = Classifier(embed)
        m.set_optimizer(opt.SGD(0.1, momentum=0.9))
        m.compile([tx], is_train=True, use_graph=True, sequential=order == "sequential")
        losses = []
        for i in range(4):
            if with_bad and i == 2:
                tx.copy_from_numpy(bad_x)
                ty.copy_from_numpy(bad_y)
                before = _params(m)
                if not dev.is_cuda:
                    with pytest.raises(ValueError, match=msg):
                        m(tx, ty)
                    after = _params(m)
                    for k in before:
                        np.testing.assert_array_equal(after[k], before[k], err_msg=k)
                else:
                    out, loss = m(tx, ty)  # queued on the GPU: nothing raised yet
                    with pytest.raises(ValueError, match=msg + r".*in the last graph replay"):
                        loss.to_numpy()
                    loss.to_numpy()  # reported once
            tx.copy_from_numpy(xs[i])
            ty.copy_from_numpy(ys[i])
            losses.append(m(tx, ty)[1].to_numpy())
        return losses, _params(m)

    with graph_shuffle(11 if order == "shuffled" else 0):
        clean_losses, clean = run(False)
        losses, states = run(True)
    assert all(np.isfinite(v).all() for v in losses)
    if not dev.is_cuda:  # the stopped step left no trace
        np.testing.assert_array_equal(np.array(losses), np.array(clean_losses))
        for k in clean:
            np.testing.assert_array_equal(states[k], clean[k], err_msg=k)


@pytest.mark.parametrize("op", ["softmax_cross_entropy", "cross_entropy"])
def test_label_check_runs_before_its_op_in_any_order(op):
    """The recorded label check is a dependency of the loss op (the op reads its flag), so
    every replay order, shuffled ones too, checks before computing with the labels."""
    dev = device.create_cpu_device()
    x = core_tensor(np.full((3, 4), 0.25, np.float32), dev)
    y = core_tensor(np.array([0, 3, 1], np.int32), dev)
    dev.ResetGraph()
    dev.EnableGraph(True)
    try:
        getattr(_core, op)(x, y)
    finally:
        dev.EnableGraph(False)
    names = dev.graph_node_names()
    assert names[0] == "CheckLabels" and len(names) == 2, names
    for seed in range(1, 17):
        with graph_shuffle(seed):
            assert [names[i] for i in dev.graph_plan(False)["order"]][0] == "CheckLabels"
    dev.ResetGraph()


@pytest.mark.parametrize("sequential", [True, False], ids=["sequential", "dependency"])
def test_stopped_replay_leaves_no_trace(sequential):
    """The label check runs before the rest of the step (Graph::AddCheck), so a CPU replay
    stopped by a bad label has changed nothing, batch-norm statistics, dropout's random
    numbers and the step counter included: training then matches a run never given it."""
    data = batches("mlp", 4)
    bad = (data[2][0], np.array([0, 1, 2, 3, 9, 0, 1, 2], np.int32))

    def run(with_bad):
        dev = device.create_cpu_device()
        dev.SetRandSeed(0)
        tx = tensor.Tensor(data[0][0].shape, dev)
        ty = tensor.Tensor((8,), dev, dtype=tensor.int32)
        m = MLP()
        m.set_optimizer(opt.SGD(0.05, momentum=0.9))
        m.compile([tx], is_train=True, use_graph=True, sequential=sequential)
        losses = []
        for i, (x, y) in enumerate(data):
            if with_bad and i == 2:
                before = {k: v.to_numpy().copy() for k, v in m.get_states().items()}
                rng = dev.rng_state
                tx.copy_from_numpy(bad[0])
                ty.copy_from_numpy(bad[1])
                with pytest.raises(ValueError, match="label .* out of range"):
                    m(tx, ty)
                assert dev.rng_state == rng
                for k, v in m.get_states().items():
                    np.testing.assert_array_equal(v.to_numpy(), before[k], err_msg=k)
            tx.copy_from_numpy(x)
            ty.copy_from_numpy(y)
            losses.append(m(tx, ty)[1].to_numpy())
        states = {k: v.to_numpy() for k, v in m.get_states().items()}
        states.update({k: v.to_numpy() for k, v in m.optimizer.get_states().items()})
        return losses, states

    with graph_shuffle(0):  # the orders a replay really takes (a suite may shuffle them)
        clean_losses, clean = run(False)
        losses, states = run(True)
    np.testing.assert_array_equal(np.array(losses), np.array(clean_losses))
    for k in clean:
        np.testing.assert_array_equal(states[k], clean[k], err_msg=k)


def test_label_check_of_labels_the_step_computes_stays_after_them():
    """A check goes first only when its labels are an input of the step; labels the step
    computes (here a cast) are checked after they are written, and still stop the replay."""
    dev = device.create_cpu_device()
    x = core_tensor(np.zeros((3, 4), np.float32), dev)
    lf = core_tensor(np.array([0, 1, 2], np.float32), dev)
    dev.ResetGraph()
    dev.EnableGraph(True)
    try:
        loss, _ = _core.softmax_cross_entropy(x, _core.as_type(lf, _core.DType.int32))
    finally:
        dev.EnableGraph(False)
    assert dev.graph_node_names() == ["AsType", "CheckLabels", "SoftmaxCrossEntropy"]
    dev.RunGraph(True)
    np.testing.assert_allclose(loss.to_numpy(), np.log(4), rtol=1e-6)
    lf.copy_from_numpy(np.array([0, 1, 7], np.float32))
    with pytest.raises(ValueError, match=r"out of range \[0, 4\)"):
        dev.RunGraph(True)
    dev.ResetGraph()
