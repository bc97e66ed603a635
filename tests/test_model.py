"""Model: compile, train/eval dispatch, atomic checkpoints with clear errors."""

import gc
import io
import json
import os
import zipfile

import numpy as np
import pytest

from minisinga import autograd as ag
from minisinga import device, layer, model, opt, tensor


class MLP(model.Model):
    def __init__(self, classes=3):
        super().__init__()
        self.fc1 = layer.Linear(8)
        self.relu = layer.ReLU()
        self.fc2 = layer.Linear(classes)
        self.bn = layer.BatchNorm2d()
        self.loss = layer.SoftMaxCrossEntropy()

    def forward(self, x):
        return self.fc2(self.bn(self.relu(self.fc1(x))))

    def train_one_batch(self, x, y):
        out = self.forward(x)
        loss = self.loss(out, y)
        self.optimizer(loss)
        return out, loss


class Other(MLP):
    pass


def batch(seed=0):
    r = np.random.default_rng(seed)
    x = tensor.from_numpy(r.standard_normal((6, 5)).astype(np.float32))
    y = tensor.from_numpy(r.integers(0, 3, 6).astype(np.int32))
    return x, y


def make(cls=MLP, seed=0):
    tensor.get_default_device().SetRandSeed(seed)
    m = cls()
    m.set_optimizer(opt.SGD(0.1, momentum=0.9))
    x, y = batch()
    m.compile([x], is_train=True, use_graph=False)
    return m, x, y


def test_compile_creates_params_without_side_effects():
    m, x, y = make()
    assert set(m.get_params()) == {"fc1.W", "fc1.b", "fc2.W", "fc2.b", "bn.scale", "bn.bias"}
    np.testing.assert_array_equal(m.bn.running_mean.to_numpy(), 0)  # compile did not train
    assert m.fc1.W.name == "fc1.W"


def test_train_and_eval_dispatch():
    m, x, y = make()
    out, loss = m(x, y)
    assert out.shape == (6, 3) and loss.size() == 1
    m.eval()
    assert not ag.training
    assert m(x).shape == (6, 3)
    m.train()
    assert ag.training
    m.eval()


def test_training_reduces_the_loss():
    m, x, y = make()
    first = m(x, y)[1].item()
    for _ in range(30):
        last = m(x, y)[1].item()
    assert last < 0.5 * first
    m.eval()


def test_checkpoint_round_trip(tmp_path):
    m, x, y = make()
    for _ in range(3):
        m(x, y)
    m.eval()
    path = str(tmp_path / "ckpt.npz")
    m.save_states(path, aux_states={"epoch": np.array(3)})
    assert os.listdir(tmp_path) == ["ckpt.npz"]  # no temporary left behind
    fresh, _, _ = make(seed=99)
    fresh.eval()
    aux = fresh.load_states(path)
    assert isinstance(aux["epoch"], tensor.Tensor) and int(aux["epoch"].to_numpy()) == 3
    np.testing.assert_array_equal(fresh(x).to_numpy(), m(x).to_numpy())
    a, b = m.optimizer.get_states(), fresh.optimizer.get_states()
    assert set(a) == set(b)
    for k in a:
        np.testing.assert_array_equal(a[k].to_numpy(), b[k].to_numpy())


def test_singa_checkpoint_format(tmp_path):
    """save_states(format="singa") writes SINGA's zip (tensor_dict.npz + states_attr.json, as
    SINGA's Model.save_states lays it out) and load_states reads it back."""
    m, x, y = make()
    for _ in range(2):
        m(x, y)
    m.eval()
    path = str(tmp_path / "singa.zip")
    m.save_states(path, aux_states={"epoch": tensor.from_numpy(np.float32([4])), "lr": 0.5},
                  format="singa")
    assert os.listdir(tmp_path) == ["singa.zip"]
    with zipfile.ZipFile(path) as zf:
        assert sorted(zf.namelist()) == ["states_attr.json", "tensor_dict.npz"]
        attrs = json.loads(zf.read("states_attr.json"))
        with np.load(io.BytesIO(zf.read("tensor_dict.npz"))) as z:
            saved = {k: z[k] for k in z.files}
    states = m.get_states()
    assert set(attrs) == set(saved) == set(states) | {"epoch", "lr"}
    for k, t in states.items():
        assert attrs[k] == {"state_type": 0, "shape": list(t.shape), "dtype": 0}
        np.testing.assert_array_equal(saved[k], t.to_numpy())
    assert attrs["epoch"]["state_type"] == attrs["lr"]["state_type"] == 1
    fresh, _, _ = make(seed=99)
    fresh.eval()
    aux = fresh.load_states(path)
    assert set(aux) == {"epoch", "lr"} and isinstance(aux["epoch"], tensor.Tensor)
    assert aux["epoch"].to_numpy().tolist() == [4.0] and float(aux["lr"].to_numpy()) == 0.5
    np.testing.assert_array_equal(fresh(x).to_numpy(), m(x).to_numpy())


def test_singa_checkpoint_errors(tmp_path):
    m, x, y = make()
    with pytest.raises(ValueError, match="format must be 'minisinga' or 'singa'"):
        m.save_states(str(tmp_path / "a.zip"), format="onnx")
    with pytest.raises(ValueError, match="are model states too"):
        m.save_states(str(tmp_path / "a.zip"), aux_states={"fc1.W": 1}, format="singa")
    path = str(tmp_path / "b.zip")
    m.save_states(path, format="singa")
    with zipfile.ZipFile(path) as zf:
        files = {n: zf.read(n) for n in zf.namelist()}
    attrs = json.loads(files["states_attr.json"])
    attrs["fc1.W"]["state_type"] = 7
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("tensor_dict.npz", files["tensor_dict.npz"])
        zf.writestr("states_attr.json", json.dumps(attrs))
    with pytest.raises(ValueError, match="'fc1.W' has no valid state_type"):
        m.load_states(path)
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("tensor_dict.npz", files["tensor_dict.npz"][:100])
        zf.writestr("states_attr.json", files["states_attr.json"])
    with pytest.raises(ValueError, match="truncated or corrupt"):
        m.load_states(path)
    np.savez(str(tmp_path / "plain.npz"), w=np.zeros(3))
    with pytest.raises(ValueError, match="is not a minisinga or SINGA checkpoint"):
        m.load_states(str(tmp_path / "plain.npz"))
    m.eval()


def test_checkpoint_errors(tmp_path):
    m, x, y = make()
    path = str(tmp_path / "ckpt.npz")
    m.save_states(path)
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        m.load_states(str(tmp_path / "missing.npz"))
    data = open(path, "rb").read()
    bad = tmp_path / "truncated.npz"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="truncated or corrupt"):
        m.load_states(str(bad))
    other, _, _ = make(Other)
    with pytest.raises(ValueError, match="holds a MLP model"):
        other.load_states(path)
    wide = MLP(classes=4)
    wide.set_optimizer(opt.SGD(0.1))
    wide.compile([x])
    with pytest.raises(ValueError, match="has shape"):
        wide.load_states(path)
    with pytest.raises(FileNotFoundError, match=r"save_states: the directory .*nowhere' of "
                                                r".* does not exist"):
        m.save_states(str(tmp_path / "nowhere" / "ckpt.npz"))
    with pytest.raises(IsADirectoryError, match="save_states: .* is a directory"):
        m.save_states(str(tmp_path))
    assert sorted(os.listdir(tmp_path)) == ["ckpt.npz", "truncated.npz"]
    m.eval()


def test_training_without_an_optimizer_says_so():
    m = MLP()
    x, y = batch()
    m.compile([x], is_train=True, use_graph=False)
    assert not m.optimizer
    with pytest.raises(RuntimeError, match=r"no optimizer: call model.set_optimizer"):
        m(x, y)
    m.eval()


def test_save_is_atomic_when_writing_fails(tmp_path, monkeypatch):
    m, x, y = make()
    path = str(tmp_path / "ckpt.npz")
    m.save_states(path)
    before = open(path, "rb").read()

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(np.lib.format, "write_array", boom)
    with pytest.raises(OSError, match="disk full"):
        m.save_states(path)
    assert open(path, "rb").read() == before
    assert os.listdir(tmp_path) == ["ckpt.npz"]
    m.eval()


def test_save_refuses_what_is_no_file_path(tmp_path):
    m, x, y = make()
    for bad in (3, None, ""):
        with pytest.raises(ValueError, match="is not a file path"):
            m.save_states(bad)
    m.eval()


def test_save_over_a_symbolic_link_writes_the_file_it_names(tmp_path):
    m, x, y = make()
    target = tmp_path / "real.npz"
    target.write_bytes(b"old")
    link = tmp_path / "latest.npz"
    link.symlink_to(target)
    m.save_states(str(link))
    assert link.is_symlink() and os.readlink(link) == str(target)
    m.load_states(str(target))  # the checkpoint went to the link's target
    assert sorted(os.listdir(tmp_path)) == ["latest.npz", "real.npz"]
    m.eval()


def test_two_graph_models_on_one_device_interleave():
    """A device holds one recorded graph: a model whose recording another model replaced
    records again (it must not replay the other's step). Interleaved steps equal each model
    trained alone in eager mode."""
    def losses(use_graph, interleave):
        a, xa, ya = make(MLP, seed=1)
        b, xb, yb = make(Other, seed=2)
        a.graph(use_graph)
        b.graph(use_graph)
        out = {"a": [], "b": []}
        order = ["a", "b"] * 3 if interleave else ["a"] * 3 + ["b"] * 3
        for name in order:
            m, x, y = (a, xa, ya) if name == "a" else (b, xb, yb)
            out[name].append(m(x, y)[1].item())
        return out

    want = losses(False, False)
    for interleave in (False, True):
        got = losses(True, interleave)
        for name in "ab":
            np.testing.assert_allclose(got[name], want[name], rtol=1e-5, err_msg=name)
    # graph() on a model whose recording was replaced leaves the other's recording alone.
    a, xa, ya = make(MLP, seed=1)
    b, xb, yb = make(Other, seed=2)
    a.graph(True)
    b.graph(True)
    a(xa, ya)
    b(xb, yb)
    names = xa.device.graph_node_names()
    a.graph(True)
    assert xa.device.graph_node_names() == names


def test_singa_checkpoint_float16(tmp_path):
    """float16 states keep their dtype through SINGA's format: code 1 (SINGA's kFloat16) in
    states_attr.json, float16 arrays in the npz, the same values loaded back (BN's running
    statistics are float32 beside float16 inputs: code 0)."""
    m = MLP()
    x = tensor.from_numpy(batch()[0].to_numpy().astype(np.float16))
    m.compile([x], is_train=False, use_graph=False)
    f32 = {"bn.running_mean", "bn.running_var"}
    assert all((t.dtype == tensor.float32) == (k in f32) for k, t in m.get_states().items())
    assert all(t.dtype == tensor.float16 for t in m.get_params().values())
    path = str(tmp_path / "half.zip")
    m.save_states(path, format="singa")
    with zipfile.ZipFile(path) as zf:
        attrs = json.loads(zf.read("states_attr.json"))
        with np.load(io.BytesIO(zf.read("tensor_dict.npz"))) as z:
            assert {k: z[k].dtype for k in z.files} == {
                k: np.dtype(np.float32 if k in f32 else np.float16) for k in z.files}
    assert {k: a["dtype"] for k, a in attrs.items()} == {k: 0 if k in f32 else 1
                                                          for k in attrs}
    fresh = MLP()
    fresh.compile([x], is_train=False, use_graph=False)
    fresh.load_states(path)
    for k, t in m.get_states().items():
        got = fresh.get_states()[k]
        assert got.dtype == t.dtype
        np.testing.assert_array_equal(got.to_numpy(), t.to_numpy())


def test_optimizer_states_from_another_optimizer_or_model_are_refused(tmp_path):
    """A checkpoint whose optimizer states this optimizer does not keep (SGD's momentum loaded
    by Adam) or that name parameters the model lacks is refused before anything changes."""
    m, x, y = make()
    m(x, y)
    path = str(tmp_path / "ckpt.npz")
    m.save_states(path)
    other, _, _ = make(seed=5)
    other.set_optimizer(opt.Adam(0.01))
    before = {k: t.to_numpy().copy() for k, t in other.get_states().items()}
    with pytest.raises(ValueError,
                       match=r"Adam keeps no 'momentum' state \(got '\w+\.\w+:momentum'"):
        other.load_states(path)
    with np.load(path) as z:
        arrays = dict(z)
    arrays["opt/head.W:momentum"] = np.zeros((8, 3), np.float32)
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match=r"parameters this model does not have: "
                                         r"\['head\.W:momentum'\]"):
        make(seed=5)[0].load_states(path)
    for k, t in other.get_states().items():
        np.testing.assert_array_equal(t.to_numpy(), before[k], err_msg=k)


def test_checkpoint_keeps_the_mode_of_the_file_it_replaces(tmp_path):
    m, x, y = make()
    path = str(tmp_path / "ckpt.npz")
    m.save_states(path)
    os.chmod(path, 0o640)
    m.save_states(path)
    assert os.stat(path).st_mode & 0o777 == 0o640


@pytest.mark.parametrize("use_graph", [False, True], ids=["eager", "graph"])
def test_a_new_learning_rate_applies_from_the_next_step(use_graph):
    """optimizer.lr set between steps (a number or a schedule) is used by the very next
    update, eager and replayed (the recorded step computed the old schedule)."""
    m, x, y = make()
    m.graph(use_graph)
    for _ in range(2):
        m(x, y)
    m.optimizer.lr = 0.0
    assert float(m.optimizer.lr_value.to_numpy()[0]) == 0.0
    w = m.fc1.W.to_numpy().copy()
    m(x, y)
    # momentum 0.9 still moves it: lr 0 multiplies the whole step
    np.testing.assert_array_equal(m.fc1.W.to_numpy(), w)
    m.optimizer.lr = opt.ExponentialDecay(0.2, 1, 0.5)  # 0.2 * 0.5 ** 3 at step 3
    np.testing.assert_allclose(m.optimizer.lr_value.to_numpy(), [0.025])
    m(x, y)
    assert not np.array_equal(m.fc1.W.to_numpy(), w)
    np.testing.assert_allclose(m.optimizer.lr_value.to_numpy(), [0.0125])
    with pytest.raises(ValueError, match="lr must be a finite number"):
        m.optimizer.lr = -1.0


def test_scheduled_optimizer_settings_graph_equals_eager():
    """SGD with scheduled momentum and weight decay: the recorded step replays the schedules
    (values change at every step), equal to eager training; a replaced schedule applies from
    the next step in both modes."""
    def train(use_graph):
        m, x, y = make()
        m.set_optimizer(opt.SGD(0.1, momentum=opt.ExponentialDecay(0.9, 1, 0.8),
                                weight_decay=opt.ExponentialDecay(0.01, 2, 0.5)))
        m.graph(use_graph)
        for _ in range(3):
            m(x, y)
        m.optimizer.momentum = opt.ExponentialDecay(0.5, 1, 0.5)
        for _ in range(2):
            m(x, y)
        return m

    eager, graph = train(False), train(True)
    np.testing.assert_allclose(graph.optimizer.hyper_value.to_numpy(),
                               [0.5 * 0.5 ** 5, 0, 0.01 * 0.5 ** 2.5], rtol=1e-6)
    for k, v in eager.get_params().items():
        np.testing.assert_array_equal(graph.get_params()[k].to_numpy(), v.to_numpy(), err_msg=k)


def test_graph_steps_keep_no_input_tensor_alive():
    """Each call's input tensors are freed when the caller drops them (no reference cycle
    holds them until the cyclic GC runs): device memory stays flat with the GC off."""
    dev = device.create_cpu_device()
    dev.SetRandSeed(0)
    m = MLP()
    m.set_optimizer(opt.SGD(0.1, momentum=0.9))
    x, y = batch()

    def fresh():
        return (tensor.from_numpy(x.to_numpy(), dev), tensor.from_numpy(y.to_numpy(), dev))

    m.compile([fresh()[0]], use_graph=True)
    gc.collect()
    gc.disable()
    try:
        for _ in range(3):
            m(*fresh())
        before = dev.memory_stats()["current"]
        for _ in range(20):
            m(*fresh())
        assert dev.memory_stats()["current"] == before
    finally:
        gc.enable()
        m.eval()


class TwoHeads(model.Model):
    """One optimizer per head, kept as attributes (no model.optimizer)."""

    def __init__(self):
        super().__init__()
        self.a, self.b = layer.Linear(3), layer.Linear(3)
        self.loss = layer.SoftMaxCrossEntropy()
        self.opt_a, self.opt_b = opt.SGD(0.1, momentum=0.9), opt.Adam(0.01)

    def forward(self, x):
        return self.a(x), self.b(x)

    def train_one_batch(self, x, y):
        ya, yb = self.forward(x)
        self.opt_a(self.loss(ya, y))
        self.opt_b(self.loss(yb, y))


def test_optimizers_kept_as_attributes_are_checkpointed(tmp_path):
    """Resume == uninterrupted for a model whose optimizers are attributes (their momentum
    and Adam moments were not saved, and resumed from zero without a word)."""
    def run(resume_at):
        tensor.get_default_device().SetRandSeed(0)
        m = TwoHeads()
        x, y = batch()
        m.compile([x], is_train=True)
        for i in range(4):
            if i == resume_at:
                path = str(tmp_path / "two.npz")
                m.save_states(path)
                tensor.get_default_device().SetRandSeed(7)
                m = TwoHeads()
                m.compile([x], is_train=True)
                m.load_states(path)
            m(x, y)
        m.eval()
        return {k: t.to_numpy() for k, t in m.get_params().items()}

    want, got = run(-1), run(2)
    for k in want:
        np.testing.assert_array_equal(got[k], want[k], err_msg=k)
