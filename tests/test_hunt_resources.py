"""Resources over long and interrupted runs on the CPU: device memory, host memory, file
descriptors, threads and reference cycles after many steps and after churning models, graphs
and devices; exceptions and interrupts in the middle of a step (eager and while recording);
checkpoints killed mid-write, corrupted, or holding odd aux states. The tests named in the hunt
report (corrupt zip errors, aux states that cannot be loaded back, aux names that are savez
arguments, unclear save errors, dropped graph models and devices keeping memory, an interrupt
while recording starts, a learning rate set twice between graph steps, optimizer state of dead
parameters) fail until those bugs are fixed."""

import ctypes
import gc
import io
import os
import random
import struct
import subprocess
import sys
import textwrap
import threading
import time
import zipfile

import numpy as np
import pytest
from conftest import graph_shuffle

from minisinga import autograd, device, layer, model, opt, rnn, tensor

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Boom(Exception):
    pass


class CNN(model.Model):
    def __init__(self):
        super().__init__()
        self.conv = layer.Conv2d(4, 3, padding=1)
        self.bn = layer.BatchNorm2d()
        self.relu = layer.ReLU()
        self.flat = layer.Flatten()
        self.fc = layer.Linear(3)
        self.loss = layer.SoftMaxCrossEntropy()

    def forward(self, x):
        return self.fc(self.flat(self.relu(self.bn(self.conv(x)))))

    def train_one_batch(self, x, y):
        out = self.forward(x)
        loss = self.loss(out, y)
        self.optimizer(loss)
        return out, loss


class LSTMNet(model.Model):
    def __init__(self):
        super().__init__()
        self.lstm = rnn.LSTM(4, 5)
        self.fc = layer.Linear(3)
        self.loss = layer.SoftMaxCrossEntropy()

    def forward(self, xs):
        _, h, _ = self.lstm(xs)
        return self.fc(h)

    def train_one_batch(self, xs, y):
        out = self.forward(xs)
        loss = self.loss(out, y)
        self.optimizer(loss)
        return out, loss


class Failing(model.Model):
    """An MLP whose step raises where `fail` says: in forward, after the loss, as a
    KeyboardInterrupt, or between two of backward's yields (after two updates)."""

    def __init__(self):
        super().__init__()
        self.fc1 = layer.Linear(16)
        self.relu = layer.ReLU()
        self.fc2 = layer.Linear(3)
        self.loss = layer.SoftMaxCrossEntropy()
        self.fail = None

    def forward(self, x):
        h = self.relu(self.fc1(x))
        if self.fail == "forward":
            raise Boom("forward")
        return self.fc2(h)

    def train_one_batch(self, x, y):
        out = self.forward(x)
        loss = self.loss(out, y)
        if self.fail == "loss":
            raise Boom("loss")
        if self.fail == "interrupt":
            raise KeyboardInterrupt
        if self.fail == "backward":
            o = self.optimizer
            o._begin(loss.device)
            for n, (p, g) in enumerate(autograd.backward(loss, retain_graph=False)):
                o.apply(o._name(p), p, g)
                if n == 1:
                    raise Boom("between backward yields")
        self.optimizer(loss)
        return out, loss


def data(shape, classes=3, seed=0):
    r = np.random.default_rng(seed)
    return (r.standard_normal(shape).astype(np.float32),
            r.integers(0, classes, shape[1] if len(shape) == 3 else shape[0]).astype(np.int32))


def build(cls, dev, graph, optimizer=None, shape=(8, 5)):
    dev.SetRandSeed(0)
    xn, yn = data(shape)
    x, y = tensor.from_numpy(xn, dev), tensor.from_numpy(yn, dev)
    m = cls()
    m.set_optimizer(optimizer or opt.SGD(0.1, momentum=0.9))
    m.compile([x], is_train=True, use_graph=graph)
    return m, x, y


def host_counts():
    return len(os.listdir("/proc/self/fd")), threading.active_count(), \
        len(os.listdir("/proc/self/task"))


def rss_after_trim() -> int:
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


# ---- (1) leaks ----

@pytest.mark.parametrize("graph", [False, True], ids=["eager", "graph"])
@pytest.mark.parametrize("cls,shape", [(CNN, (4, 2, 5, 5)), (LSTMNet, (3, 4, 4))],
                         ids=["cnn", "lstm"])
@pytest.mark.parametrize("optname", ["sgd", "adam"])
def test_training_memory_fds_and_threads_stay_flat(cls, shape, graph, optname):
    dev = device.create_cpu_device()
    o = opt.SGD(0.05, momentum=0.9) if optname == "sgd" else opt.Adam(0.01)
    m, x, y = build(cls, dev, graph, o, shape)
    for _ in range(10):  # the pool's cache settles (with the last results held, as below)
        res = m(x, y)
    gc.collect()
    before, counts = dev.memory_stats(), host_counts()
    gc.disable()
    try:
        for _ in range(60):
            res = m(x, y)
        after = dev.memory_stats()
        del res
    finally:
        gc.enable()
        m.eval()
    assert after["current"] == before["current"]
    assert after["reserved"] == before["reserved"]
    assert host_counts() == counts


def _churn(dev, xn, yn, graph):
    x, y = tensor.from_numpy(xn, dev), tensor.from_numpy(yn, dev)
    m = CNN()
    m.set_optimizer(opt.Adam(0.01))
    m.compile([x], is_train=True, use_graph=graph)
    m(x, y)
    m.set_optimizer(opt.SGD(0.1, momentum=0.9))
    m(x, y)
    m.graph(not graph)
    m(x, y)
    dev.ResetGraph()
    m.compile([x], is_train=True, use_graph=True)  # compiled again
    m(x, y)
    m(x, y)
    m.eval()
    m(x)
    m.graph(False)
    m.train()
    m(x, y)
    m.eval()


def test_churning_models_optimizers_and_graphs_leaves_no_memory_and_no_cycles():
    """Models made, re-compiled, given new optimizers, switched between eager and graph mode
    and dropped: the device's memory returns to where it was (once the last recording is
    gone) and nothing of minisinga's ends up in a reference cycle."""
    dev = device.create_cpu_device()
    xn, yn = data((4, 2, 5, 5))
    _churn(dev, xn, yn, True)
    dev.ResetGraph()
    gc.collect()
    base, counts = dev.memory_stats()["current"], host_counts()
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        for i in range(4):
            _churn(dev, xn, yn, bool(i % 2))
        gc.collect()
        mine = [o for o in gc.garbage
                if type(o).__module__.startswith("minisinga")
                or (isinstance(o, dict) and any(isinstance(v, (tensor.Tensor, layer.Layer))
                                                for v in o.values()))]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
    assert mine == []
    dev.ResetGraph()
    assert dev.memory_stats()["current"] == base
    assert host_counts() == counts


@pytest.mark.parametrize("graph", [False, True], ids=["eager", "graph"])
@pytest.mark.parametrize("where", ["forward", "loss", "interrupt", "backward"])
def test_an_exception_in_a_step_releases_the_half_built_graph(graph, where):
    """Raised in forward, after the loss, as a KeyboardInterrupt or between backward's yields
    (in graph mode: while the first call records): with the cyclic GC off throughout, the
    device records nothing, the training switch is unchanged, and after three good steps the
    device holds what a run never interrupted holds. Graph mode, where nothing ran, then gives
    the numbers of that run too."""
    def run(fail, steps=3):
        dev = device.create_cpu_device()
        m, x, y = build(Failing, dev, graph, opt.Adam(0.01))
        gc.collect()
        gc.disable()
        try:
            if fail:
                m.fail = fail
                for _ in range(3):
                    with pytest.raises((Boom, KeyboardInterrupt)):
                        m(x, y)
                m.fail = None
                assert not dev.graph_enabled() and dev.graph_size == 0
                assert autograd.is_training()
            losses = [m(x, y)[1].to_numpy().item() for _ in range(steps)]
            mem = dev.memory_stats()["current"]
        finally:
            gc.enable()
        states = {k: t.to_numpy() for k, t in m.get_states().items()}
        states.update({"opt/" + k: t.to_numpy() for k, t in m.optimizer.get_states().items()})
        m.eval()
        return losses, states, mem

    got, got_states, got_mem = run(where)
    want, want_states, want_mem = run(None)
    assert got_mem == want_mem
    assert set(got_states) == set(want_states)
    if graph or where != "backward":  # eager mode applied two updates before the exception
        np.testing.assert_allclose(got, want, rtol=1e-6)
        for k in want_states:
            np.testing.assert_allclose(got_states[k], want_states[k], rtol=1e-6, err_msg=k)


@pytest.mark.parametrize("exc", [RuntimeError("hook"), KeyboardInterrupt(), SystemExit(3)],
                         ids=["error", "interrupt", "exit"])
def test_an_exception_in_the_first_replay_keeps_the_recording_usable(exc):
    """A Python node raising in the very first run of a recording: the exception comes through
    as it is, the device is not left recording, and the next calls replay the recording,
    matching a run that never failed (the failed run stopped before any update)."""
    state = {"fail": None}

    class Hooked(Failing):
        def train_one_batch(self, x, y):
            out = self.forward(x)
            loss = self.loss(out, y)

            def hook():
                if state["fail"] is not None:
                    raise state["fail"]

            x.device.exec_python(hook, [loss.data], [], "hook")
            self.optimizer(loss)
            return out, loss

    def run(fail):
        dev = device.create_cpu_device()
        m, x, y = build(Hooked, dev, True, opt.Adam(0.01))
        if fail is not None:
            state["fail"] = fail
            with pytest.raises(type(fail)):
                m(x, y)
            state["fail"] = None
            assert not dev.graph_enabled()
        losses = [m(x, y)[1].to_numpy().item() for _ in range(3)]
        step = m.optimizer.step_counter.to_numpy().copy()
        m.eval()
        return losses, step, dev.rng_state

    with graph_shuffle(0):  # recorded order: the hook runs before any update (CI shuffles)
        want = run(None)
        got = run(exc)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])
    assert got[2] == want[2]


def test_dropped_graph_model_releases_its_recorded_graph():
    """Dropping a model trained in graph mode frees the memory its recording holds (its
    parameters, the optimizer's buffers, the step's intermediates), as an eager model's."""
    for graph in (False, True):
        dev = device.create_cpu_device()
        m, x, y = build(Failing, dev, graph)
        m(x, y)
        m(x, y)
        m.eval()
        del m, x, y
        gc.collect()
        assert dev.memory_stats()["current"] == 0, "graph" if graph else "eager"


def test_dropped_device_returns_its_cached_memory():
    """A CPU device made, used and dropped (nothing of it left) keeps no memory: its pool's
    cached blocks go back. 32 devices, 1 MiB each."""
    def use_one():
        d = device.create_cpu_device()
        t = tensor.Tensor((256, 1024), d)
        t.set_value(1.0)

    use_one()
    gc.collect()
    before = rss_after_trim()
    for _ in range(32):
        use_one()
    gc.collect()
    grown = rss_after_trim() - before
    assert grown < (8 << 20), f"{grown >> 20} MiB kept by 32 dropped devices"


# ---- (2) interrupts and graph state ----

def test_interrupt_while_recording_starts_leaves_the_device_eager(monkeypatch):
    """A KeyboardInterrupt that lands between EnableGraph(True) and the try block of
    Model._graph_step (here raised by set_graph_phase) must not leave the device recording:
    every later op on it would be buffered and never run."""
    dev = device.create_cpu_device()
    m, x, y = build(Failing, dev, True)
    orig = device.Device.set_graph_phase

    def interrupted(self, phase):
        if phase == "forward":
            raise KeyboardInterrupt
        return orig(self, phase)

    monkeypatch.setattr(device.Device, "set_graph_phase", interrupted)
    with pytest.raises(KeyboardInterrupt):
        m(x, y)
    monkeypatch.setattr(device.Device, "set_graph_phase", orig)
    try:
        assert not dev.graph_enabled()
    finally:
        dev.EnableGraph(False)
        dev.ResetGraph()
        m.eval()


def test_learning_rate_set_twice_between_graph_steps_applies():
    """`optimizer.lr` set twice between two graph steps: the second value is used from then
    on. (Model keys the recording on id(optimizer.lr): the second Constant takes the freed
    address of the recorded one, so the old recording, with its old schedule, replays.)"""
    for graph in (False, True):
        dev = device.create_cpu_device()
        m, x, y = build(Failing, dev, graph)
        m.set_optimizer(opt.SGD(0.1))
        m(x, y)
        got, want = [], []
        for i in range(20):
            m.optimizer.lr = 0.01 * (i % 7 + 1)
            want.append(0.001 * (i % 5 + 1))
            m.optimizer.lr = want[-1]
            m(x, y)
            got.append(float(m.optimizer.lr_value.to_numpy()[0]))
        m.eval()
        np.testing.assert_allclose(got, want, rtol=1e-6, err_msg="graph" if graph else "eager")


def test_a_fresh_parameter_does_not_inherit_the_optimizer_state_of_a_dead_one():
    """Unnamed parameters are keyed by 'param<id>': a parameter made after another was freed
    gets its id, so its name, and picks up its momentum. Each fresh zero parameter updated
    twice with gradient 1 (lr 0.1, momentum 0.9) must end at -0.29, and the optimizer must not
    keep buffers of parameters that are gone."""
    g = tensor.from_numpy(np.ones(3, np.float32))
    sgd = opt.SGD(0.1, momentum=0.9)
    got = []
    for _ in range(5):
        p = tensor.from_numpy(np.zeros(3, np.float32))
        p.stores_grad = p.requires_grad = True
        sgd.update(p, g)
        sgd.update(p, g)
        got.append(p.to_numpy().copy())
        del p
        gc.collect()
    np.testing.assert_allclose(np.array(got), np.full((5, 3), -0.29), rtol=1e-6)
    assert len(sgd._states) <= 1


def test_device_flags_are_clean_after_an_exception_in_eager_context():
    """device.eager restores recording after an exception inside it; train_mode restores the
    training switch."""
    dev = device.create_cpu_device()
    dev.EnableGraph(True)
    try:
        with pytest.raises(Boom), device.eager(dev):
            assert not dev.graph_enabled()
            raise Boom
        assert dev.graph_enabled()
    finally:
        dev.EnableGraph(False)
        dev.ResetGraph()
    autograd.set_training(True)
    with pytest.raises(Boom), autograd.train_mode(False):
        raise Boom
    assert autograd.is_training()
    autograd.set_training(False)


# ---- (3) checkpoints ----

class Small(model.Model):
    def __init__(self, width=4):
        super().__init__()
        self.fc = layer.Linear(width)
        self.bn = layer.BatchNorm2d()

    def forward(self, x):
        return self.bn(self.fc(x))


def small(width=4):
    m = Small(width)
    m.set_optimizer(opt.SGD(0.1, momentum=0.9))
    m.compile([tensor.from_numpy(np.ones((2, 3), np.float32))], is_train=False)
    return m


def snapshot(m):
    return {k: t.to_numpy().copy() for k, t in m.get_states().items()}


def assert_unchanged(m, before):
    for k, t in m.get_states().items():
        np.testing.assert_array_equal(t.to_numpy(), before[k], err_msg=k)


WRITER = textwrap.dedent("""
    import sys
    import numpy as np
    from minisinga import layer, model, tensor

    class Big(model.Model):
        def __init__(self):
            super().__init__()
            self.fc = layer.Linear(256)

        def forward(self, x):
            return self.fc(x)

    m = Big()
    m.compile([tensor.from_numpy(np.ones((2, 256), np.float32))], is_train=False)
    print("ready", flush=True)
    i = 0
    while True:
        i += 1
        for t in m.get_states().values():
            t.set_value(float(i))
        m.save_states(sys.argv[1], aux_states={"i": np.array(i)}, format=sys.argv[2])
""")


@pytest.mark.parametrize("fmt", ["minisinga", "singa"])
def test_checkpoint_writer_killed_at_random_moments_leaves_a_complete_file(tmp_path, fmt):
    """SIGKILL of a process saving checkpoints in a loop: the file on disk is always one
    complete checkpoint (all states hold the same step number as the aux state); only the
    killed write's temporary file is left beside it."""
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    path = str(tmp_path / "ckpt.zip")
    env = dict(os.environ, OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join([ROOT] + [p for p in os.environ.get(
                   "PYTHONPATH", "").split(os.pathsep) if p]))

    class Big(model.Model):
        def __init__(self):
            super().__init__()
            self.fc = layer.Linear(256)

        def forward(self, x):
            return self.fc(x)

    m = Big()
    m.compile([tensor.from_numpy(np.ones((2, 256), np.float32))], is_train=False)
    rnd = random.Random(0)
    seen = set()
    for _ in range(4):
        p = subprocess.Popen([sys.executable, str(script), path, fmt], env=env,
                             stdout=subprocess.PIPE)
        try:
            assert p.stdout.readline().strip() == b"ready"
            time.sleep(rnd.uniform(0.0, 0.15))
        finally:
            p.kill()
            p.wait()
            p.stdout.close()
        if not os.path.exists(path):
            continue
        i = int(m.load_states(path)["i"].to_numpy())
        seen.add(i)
        for k, t in m.get_states().items():
            np.testing.assert_array_equal(t.to_numpy(), float(i), err_msg=k)
    assert seen
    assert all(f == "ckpt.zip" or (f.startswith("ckpt.zip.") and f.endswith(".tmp"))
               or f == "writer.py" for f in os.listdir(tmp_path))


def _corrupt_deflate(data: bytes) -> bytes:
    """The first compressed byte of the zip's first member set to a reserved block type."""
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        info = zf.infolist()[0]
    b = bytearray(data)
    n, e = struct.unpack("<HH", bytes(b[info.header_offset + 26:info.header_offset + 30]))
    b[info.header_offset + 30 + n + e] = 0x07
    return bytes(b)


def _central_field(data: bytes, offset: int, value: int) -> bytes:
    b = bytearray(data)
    j = b.find(b"PK\x01\x02")
    b[j + offset:j + offset + 2] = struct.pack("<H", value)
    return bytes(b)


@pytest.mark.parametrize("fmt", ["minisinga", "singa"])
@pytest.mark.parametrize("damage", ["deflate", "method", "encrypted"])
def test_corrupt_checkpoint_gives_a_clear_error_and_changes_nothing(tmp_path, fmt, damage):
    """A damaged compressed stream (zlib.error), an unknown compression method
    (NotImplementedError) or an encryption flag (RuntimeError) must give load_states' own
    ValueError ('not a readable checkpoint'), as truncation does."""
    src = small()
    for t in src.get_states().values():
        t.set_value(2.5)
    path = str(tmp_path / "ckpt")
    src.save_states(path, format=fmt)
    data = open(path, "rb").read()
    if damage == "deflate":
        if fmt == "minisinga":  # its npz is stored, not deflated: make a deflated one
            with zipfile.ZipFile(path) as zf:
                members = {n: zf.read(n) for n in zf.namelist()}
            buf = io.BytesIO()
            with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
                for n, v in members.items():
                    zf.writestr(n, v)
            data = buf.getvalue()
        bad = _corrupt_deflate(data)
    elif damage == "method":
        bad = _central_field(data, 10, 99)
    else:
        bad = _central_field(data, 8, 1)
    open(path, "wb").write(bad)
    dst = small()
    before = snapshot(dst)
    with pytest.raises(ValueError, match="not a readable checkpoint"):
        dst.load_states(path)
    assert_unchanged(dst, before)


@pytest.mark.parametrize("fmt", ["minisinga", "singa"])
def test_random_damage_never_loads_wrong_values(tmp_path, fmt):
    """Truncations and random byte flips: the load either gives the saved values exactly
    (a flip in bytes no one reads) or raises, and raising changes nothing."""
    src = small()
    for t in src.get_states().values():
        t.set_value(2.5)
    path = str(tmp_path / "ckpt")
    src.save_states(path, aux_states={"epoch": 3}, format=fmt)
    data = open(path, "rb").read()
    rnd = random.Random(1)
    cases = [data[:n] for n in range(0, len(data), max(1, len(data) // 40))]
    for _ in range(80):
        b = bytearray(data)
        b[rnd.randrange(len(b))] ^= 1 << rnd.randrange(8)
        cases.append(bytes(b))
    dst = small()
    before = snapshot(dst)
    bad = str(tmp_path / "bad")
    for c in cases:
        open(bad, "wb").write(c)
        try:
            dst.load_states(bad)
        except Exception:  # noqa: BLE001 - the kind of error is the other test's
            assert_unchanged(dst, before)
            continue
        for k, t in dst.get_states().items():
            np.testing.assert_array_equal(t.to_numpy(), 2.5, err_msg=k)
        for k, t in dst.get_states().items():
            t.copy_from_numpy(before[k])


@pytest.mark.parametrize("fmt", ["minisinga", "singa"])
def test_aux_states_round_trip(tmp_path, fmt):
    aux = {"epoch": 7, "lr": 0.25, "arr": np.arange(6, dtype=np.float32).reshape(2, 3),
           "ids": np.array([3, 1, 2], np.int32), "empty": np.zeros((0, 3), np.float32),
           "half": tensor.from_numpy(np.array([1.5, -2.0], np.float16)),
           "t": tensor.from_numpy(np.array([[1.0, 2.0]], np.float32))}
    path = str(tmp_path / "ckpt")
    small().save_states(path, aux_states=aux, format=fmt)
    got = small().load_states(path)
    assert set(got) == set(aux)
    for k, v in aux.items():
        want = v.to_numpy() if isinstance(v, tensor.Tensor) else np.asarray(v)
        assert tuple(got[k].shape) == want.shape, k
        np.testing.assert_array_equal(got[k].to_numpy(), want.astype(got[k].to_numpy().dtype),
                                      err_msg=k)
    assert got["half"].dtype == tensor.float16 and got["ids"].dtype == tensor.int32


@pytest.mark.parametrize("fmt", ["minisinga", "singa"])
@pytest.mark.parametrize("value", ["resnet", 2 ** 40, None, {"a": 1}],
                         ids=["str", "bigint", "none", "dict"])
def test_aux_state_save_states_cannot_load_back_is_refused(tmp_path, fmt, value):
    """save_states accepts any aux value numpy can store; load_states can only make Tensors of
    numbers. A value it cannot load back must be refused when saving (nothing written), or be
    loaded back; and a failing load must not have changed the model."""
    src = small()
    path = str(tmp_path / "ckpt")
    try:
        src.save_states(path, aux_states={"a": value}, format=fmt)
    except (TypeError, ValueError) as e:
        assert "aux" in str(e)
        assert os.listdir(tmp_path) == []
        return
    dst = small()
    before = snapshot(dst)
    try:
        got = dst.load_states(path)
    except Exception:
        assert_unchanged(dst, before)
        raise
    assert set(got) == {"a"}


def test_load_states_changes_nothing_when_an_aux_state_cannot_be_made(tmp_path):
    """An aux state load_states cannot turn into a Tensor (here a string, from another tool)
    is found before any model state is overwritten."""
    src = small()
    for t in src.get_states().values():
        t.set_value(2.5)
    path = str(tmp_path / "ckpt.npz")
    src.save_states(path)
    with np.load(path) as z:
        arrays = dict(z)
    arrays["aux/name"] = np.array("resnet")
    np.savez(path, **arrays)
    dst = small()
    before = snapshot(dst)
    with pytest.raises((TypeError, ValueError)):
        dst.load_states(path)
    assert_unchanged(dst, before)


@pytest.mark.parametrize("name", ["file", "allow_pickle", "args", "kwds"])
def test_singa_format_aux_names_that_are_savez_arguments(tmp_path, name):
    """format='singa' passes the states to np.savez as keywords: an aux state named 'file'
    raised 'savez() got multiple values for argument' and one named 'allow_pickle' was
    silently dropped from the checkpoint."""
    path = str(tmp_path / "ckpt.zip")
    small().save_states(path, aux_states={name: 5}, format="singa")
    got = small().load_states(path)
    assert set(got) == {name}
    assert got[name].to_numpy() == 5


def test_save_errors_and_leftovers(tmp_path, monkeypatch):
    """An interrupt while writing keeps the old checkpoint and leaves no temporary file; a
    directory, a missing directory, an empty path or one ending in '/' get save_states' own
    error naming the path given, and no file is made anywhere."""
    m = small()
    path = str(tmp_path / "ckpt.npz")
    m.save_states(path)
    before = open(path, "rb").read()

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    with monkeypatch.context() as mp:
        mp.setattr(np.lib.format, "write_array", interrupted)  # mid-file
        with pytest.raises(KeyboardInterrupt):
            m.save_states(path)
    assert open(path, "rb").read() == before
    assert os.listdir(tmp_path) == ["ckpt.npz"]
    sub = tmp_path / "sub"
    sub.mkdir()
    monkeypatch.chdir(sub)
    for bad in ("", str(tmp_path / "newdir") + os.sep):
        with pytest.raises((ValueError, OSError), match="save_states"):
            m.save_states(bad)
    assert sorted(os.listdir(tmp_path)) == ["ckpt.npz", "sub"] and os.listdir(sub) == []
