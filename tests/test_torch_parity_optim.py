"""Optimizers against torch.optim over 20 steps of a tiny MLP (trajectories in
tests/data/torch_optim.npz, made by tests/data/make_torch_optim.py), SINGA's own conventions
where they differ from torch, and Model training: eager vs graph mode, train/eval switching,
two optimizers, a smaller last batch, float16, and checkpoints resumed mid-training."""

import os
import tempfile

import numpy as np
import pytest

from minisinga import autograd as ag
from minisinga import layer, model, opt, tensor

HERE = os.path.dirname(os.path.abspath(__file__))
REF = np.load(os.path.join(HERE, "data", "torch_optim.npz"))
STEPS = 20
NAMES = ["W1", "b1", "W2", "b2"]


# ---------------------------------------------------------------- optimizers vs torch.optim

def run_mlp(optimizer, skip=()):
    """Trains the fixture's MLP with `optimizer` (opt(loss) per step); b2 is left out of the
    loss at the steps in `skip`. Returns the parameters after every step, per parameter."""
    ps = [tensor.Tensor(data=REF[f"init/p{i}"].copy(), stores_grad=True, requires_grad=True,
                        name=n) for i, n in enumerate(NAMES)]
    x, y = tensor.from_numpy(REF["x"]), tensor.from_numpy(REF["y"])
    hist = [[] for _ in ps]
    with ag.train_mode():
        for s in range(STEPS):
            h = ag.relu(ag.add_bias(ag.matmul(x, ps[0]), ps[1], axis=0))
            out = ag.matmul(h, ps[2])
            if s not in skip:
                out = ag.add_bias(out, ps[3], axis=0)
            optimizer(ag.mse_loss(out, y))
            for lst, p in zip(hist, ps):
                lst.append(p.to_numpy())
    return [np.stack(h) for h in hist]


def check_against(case, got):
    for i, g in enumerate(got):
        want = REF[f"{case}/p{i}"]
        for s in range(STEPS):
            np.testing.assert_allclose(g[s], want[s], rtol=5e-4, atol=5e-5,
                                       err_msg=f"{case}: {NAMES[i]} after step {s + 1}")


SKIP = tuple(int(s) for s in REF["skip_steps"])

TORCH_CASES = {
    "sgd": lambda: opt.SGD(0.1),
    "sgd_momentum": lambda: opt.SGD(0.1, 0.9),
    "sgd_momentum_wd": lambda: opt.SGD(0.1, 0.9, 0.0, 0.05),
    "sgd_nesterov_wd": lambda: opt.SGD(0.05, 0.8, 0.0, 0.01, nesterov=True),
    "sgd_wd": lambda: opt.SGD(0.1, weight_decay=0.1),
    "adam": lambda: opt.Adam(0.01),
    "adam_all": lambda: opt.Adam(0.02, 0.8, 0.95, 1e-3, 0.05),
    "adam_beta1_0": lambda: opt.Adam(0.02, 0.0, 0.9),
    # AdaGrad and RMSProp follow torch: eps outside the square root (SINGA adds it inside:
    # g / sqrt(acc + eps)); see the report.
    "adagrad": lambda: opt.AdaGrad(0.1, 1e-10),
    "adagrad_wd_eps": lambda: opt.AdaGrad(0.1, 1e-3, 0.05),
    "rmsprop": lambda: opt.RMSProp(0.01, 0.9, 1e-8),
    "rmsprop_wd_eps": lambda: opt.RMSProp(0.01, 0.7, 1e-2, 0.05),
    # ExponentialDecay against LambdaLR(0.7 ** (s / 3)), StepLR(3, 0.7), ExponentialLR(0.9).
    "decay": lambda: opt.SGD(opt.ExponentialDecay(0.1, 3, 0.7)),
    "decay_staircase_momentum": lambda: opt.SGD(opt.ExponentialDecay(0.1, 3, 0.7, True), 0.9),
    "decay_adam": lambda: opt.Adam(opt.ExponentialDecay(0.01, 1, 0.9)),
}


@pytest.mark.parametrize("case", list(TORCH_CASES))
def test_optimizer_matches_torch(case):
    check_against(case, run_mlp(TORCH_CASES[case]()))


@pytest.mark.parametrize("case,make", [
    ("skip_sgd_momentum_wd", lambda: opt.SGD(0.1, 0.9, 0.0, 0.05)),
    ("skip_adagrad", lambda: opt.AdaGrad(0.1, 1e-10)),
    ("skip_rmsprop", lambda: opt.RMSProp(0.01, 0.9, 1e-8)),
])
def test_parameter_without_gradient_is_left_alone(case, make):
    """A parameter with no gradient in a step is not touched: no weight decay, no momentum
    step, its state untouched (torch skips params whose .grad is None)."""
    check_against(case, run_mlp(make(), skip=SKIP))


def test_sgd_dampening_is_singas():
    """SINGA's SGD: the momentum buffer starts at zero and is dampened at the first step too
    (buf = (1 - d) g); torch sets buf = g at the first step."""
    check_against("singa_sgd_dampening", run_mlp(opt.SGD(0.1, 0.9, 0.3)))


def test_adam_bias_correction_uses_the_global_step():
    """SINGA's Adam corrects the bias with the optimizer's step counter, also for a parameter
    that had no gradient at some steps (torch counts steps per parameter)."""
    check_against("singa_skip_adam", run_mlp(opt.Adam(0.01), skip=SKIP))


def test_set_states_takes_singas_scalar_step_counter():
    a = opt.Adam(opt.ExponentialDecay(0.1, 1, 0.5))
    a.set_states({"step_counter": 3.0})  # SINGA's get_states holds a Python float
    assert a.step_counter.to_numpy().tolist() == [3.0]
    np.testing.assert_allclose(a.lr_value.to_numpy(), [0.0125], rtol=1e-6)


# ------------------------------------------------------------------- bad optimizer settings

@pytest.mark.parametrize("make", [
    lambda: opt.ExponentialDecay(0.1, 2, -0.5),           # lr nan at odd steps
    lambda: opt.ExponentialDecay(0.1, 2, float("nan")),
    lambda: opt.ExponentialDecay(-1.0, 2, 0.5),            # a negative lr: gradient ascent
    lambda: opt.ExponentialDecay(float("inf"), 2, 0.5),
], ids=["negative-rate", "nan-rate", "negative-init", "inf-init"])
def test_exponential_decay_refuses_bad_values(make):
    """opt.SGD(-0.1) is refused, but a schedule giving a negative or nan rate was taken and
    turned every parameter into nan (or trained uphill) without a word."""
    with pytest.raises(ValueError, match="ExponentialDecay"):
        make()


@pytest.mark.parametrize("make", [
    lambda: opt.SGD(0.1, 0.9, dampening=2.0),
    lambda: opt.SGD(0.1, momentum=float("nan")),
    lambda: opt.Adam(0.1, epsilon=-1.0),
    lambda: opt.Adam(0.1, weight_decay=-0.1),
    lambda: opt.AdaGrad(0.1, epsilon=float("inf")),
    lambda: opt.RMSProp(0.1, weight_decay=-1.0),
], ids=["sgd-dampening", "sgd-nan-momentum", "adam-eps", "adam-wd", "adagrad-eps",
        "rmsprop-wd"])
def test_optimizer_settings_are_checked_when_made(make):
    """As SGD's momentum and Adam's betas are: a bad setting is refused by the constructor,
    not at the first update (inside a recorded graph or many lines later)."""
    with pytest.raises(ValueError):
        make()


# ---------------------------------------------------------------------------- Model training

class Net(model.Model):
    def __init__(self, drop=0.3):
        super().__init__()
        self.fc1 = layer.Linear(6)
        self.bn = layer.BatchNorm2d()
        self.relu = layer.ReLU()
        self.drop = layer.Dropout(drop)
        self.fc2 = layer.Linear(3)
        self.loss = layer.SoftMaxCrossEntropy()

    def forward(self, x):
        return self.fc2(self.drop(self.relu(self.bn(self.fc1(x)))))

    def train_one_batch(self, x, y):
        out = self.forward(x)
        loss = self.loss(out, y)
        self.optimizer(loss)
        return out, loss


_r = np.random.default_rng(0)
XS = [_r.standard_normal((8, 5)).astype(np.float32) for _ in range(6)]
YS = [_r.integers(0, 3, 8).astype(np.int32) for _ in range(6)]
T3 = [_r.standard_normal((8, 3)).astype(np.float32) for _ in range(6)]

OPTS = {
    "sgd": lambda: opt.SGD(0.1, 0.9),
    "adam": lambda: opt.Adam(0.01),
    "sgd-decay": lambda: opt.SGD(opt.ExponentialDecay(0.1, 2, 0.5), 0.9, weight_decay=0.01),
}


@pytest.fixture(autouse=True)
def _training_off_after():
    yield
    ag.set_training(False)


def build(make_opt, use_graph=False, sequential=False, drop=0.3, seed=0, dtype=np.float32,
          compile=True):  # noqa: A002
    tensor.get_default_device().SetRandSeed(seed)
    m = Net(drop)
    m.set_optimizer(make_opt())
    x, y = tensor.from_numpy(XS[0].astype(dtype)), tensor.from_numpy(YS[0])
    if compile:
        m.compile([x], is_train=True, use_graph=use_graph, sequential=sequential)
    else:
        m.train()
    return m, x, y


def train(m, x, y, steps, start=0):
    losses = []
    for s in range(start, start + steps):
        x.copy_from_numpy(XS[s % 6].astype(x.to_numpy().dtype))
        y.copy_from_numpy(YS[s % 6])
        losses.append(m(x, y)[1].item())
    return losses


def states(m):
    return {k: v.to_numpy().copy() for k, v in m.get_states().items()}


def assert_same_states(a, b, **kw):
    assert set(a) == set(b)
    for k in a:
        np.testing.assert_allclose(a[k], b[k], err_msg=k, **kw)


@pytest.mark.parametrize("opt_name", ["sgd", "adam"])
@pytest.mark.parametrize("sequential", [False, True])
def test_graph_equals_eager_with_dropout_and_batchnorm(opt_name, sequential):
    """Dropout masks (drawn at every replay from the same seeded stream) and BN running
    statistics: graph replay equals eager training, step for step."""
    ref, x, y = build(OPTS[opt_name])
    want = train(ref, x, y, 6)
    g, x, y = build(OPTS[opt_name], use_graph=True, sequential=sequential)
    got = train(g, x, y, 6)
    np.testing.assert_array_equal(got, want)
    assert_same_states(states(g), states(ref), rtol=0, atol=0)
    assert not np.allclose(g.bn.running_mean.to_numpy(), 0)


def test_dropout_draws_a_new_mask_at_every_replay():
    m, x, y = build(lambda: opt.SGD(0.0), use_graph=True, drop=0.5)
    losses = [m(x, y)[1].item() for _ in range(4)]
    assert len(set(losses)) == 4, losses


def test_switching_train_and_eval_between_graph_steps():
    def run(use_graph):
        m, x, y = build(OPTS["sgd"], use_graph=use_graph)
        outs = []
        for s in range(4):
            x.copy_from_numpy(XS[s])
            y.copy_from_numpy(YS[s])
            m.train()
            m(x, y)
            m.eval()
            outs.append(m(x).to_numpy())
        return outs, states(m)

    (eo, es), (go, gs) = run(False), run(True)
    for a, b in zip(go, eo):
        np.testing.assert_array_equal(a, b)
    assert_same_states(gs, es, rtol=0, atol=0)


class Two(model.Model):
    """Two heads with their own optimizers (SGD with momentum and Adam)."""

    def __init__(self):
        super().__init__()
        self.a = layer.Linear(3)
        self.b = layer.Linear(3)
        self.mse = layer.MeanSquareError()
        self.opt_a = opt.SGD(0.1, 0.9)
        self.opt_b = opt.Adam(0.01)

    def forward(self, x):
        return self.a(x), self.b(x)

    def train_one_batch(self, x, t):
        oa, ob = self.forward(x)
        la, lb = self.mse(oa, t), self.mse(ob, t)
        self.opt_a(la)
        self.opt_b(lb)
        return la, lb


@pytest.mark.parametrize("sequential", [False, True])
def test_two_optimizers_graph_equals_eager(sequential):
    def run(use_graph):
        tensor.get_default_device().SetRandSeed(0)
        m = Two()
        x, t = tensor.from_numpy(XS[0]), tensor.from_numpy(T3[0])
        m.compile([x], is_train=True, use_graph=use_graph, sequential=sequential)
        out = []
        for s in range(6):
            x.copy_from_numpy(XS[s])
            t.copy_from_numpy(T3[s])
            out.append([v.item() for v in m(x, t)])
        return np.array(out), states(m)

    (el, es), (gl, gs) = run(False), run(True)
    np.testing.assert_array_equal(gl, el)
    assert_same_states(gs, es, rtol=0, atol=0)


def test_smaller_last_batch_in_graph_mode():
    """A smaller batch is refused with a clear error; re-recording (graph()) for it, and
    again for the full batch, equals eager training (optimizer state carried through)."""
    g, x, y = build(OPTS["adam"], use_graph=True, drop=0.0)
    train(g, x, y, 3)
    small_x, small_y = tensor.from_numpy(XS[3][:5]), tensor.from_numpy(YS[3][:5])
    with pytest.raises(ValueError, match=r"shape \(5, 5\).*recorded with shape \(8, 5\)"):
        g(small_x, small_y)

    def run(m, x, y, regraph):
        losses = train(m, x, y, 3)
        regraph(m)
        losses.append(m(small_x, small_y)[1].item())
        regraph(m)
        return losses + train(m, x, y, 2, start=4)

    g, x, y = build(OPTS["adam"], use_graph=True, drop=0.0)
    got = run(g, x, y, lambda m: m.graph(True))
    e, x, y = build(OPTS["adam"], drop=0.0)
    want = run(e, x, y, lambda m: None)
    np.testing.assert_array_equal(got, want)
    assert_same_states(states(g), states(e), rtol=0, atol=0)


@pytest.mark.parametrize("opt_name", ["sgd", "adam"])
def test_float16_model_trains_with_float32_optimizer_state(opt_name):
    """float16 parameters stay float16, their optimizer state is float32; graph == eager; a
    checkpoint resumes exactly; the losses follow the float32 model's closely."""
    a, x, y = build(OPTS[opt_name], drop=0.0, dtype=np.float16)
    la = train(a, x, y, 4)
    assert a.fc1.W.dtype == tensor.float16
    assert {t.dtype for t in a.optimizer.get_states().values()} == {tensor.float32}
    g, xg, yg = build(OPTS[opt_name], use_graph=True, drop=0.0, dtype=np.float16)
    np.testing.assert_array_equal(train(g, xg, yg, 4), la)
    f, xf, yf = build(OPTS[opt_name], drop=0.0)
    np.testing.assert_allclose(train(f, xf, yf, 4), la, atol=5e-3)
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "half.npz")
        a.save_states(path)
        b, _, _ = build(OPTS[opt_name], drop=0.0, dtype=np.float16, seed=9)
        b.load_states(path)
    assert b.fc1.W.dtype == tensor.float16
    np.testing.assert_array_equal(train(b, x, y, 2, start=4), train(a, x, y, 2, start=4))


# ------------------------------------------------------------------------------ checkpoints

def resume_check(make_opt, use_graph, warm_up, compile=True):  # noqa: A002
    """Trains 8 steps straight; and 4 steps, save, load into another model (which first
    trains `warm_up` steps of its own), 4 more. Returns both (losses, states)."""
    a, x, y = build(make_opt, use_graph, drop=0.0, compile=compile)
    want = train(a, x, y, 8)
    b, xb, yb = build(make_opt, use_graph, drop=0.0, compile=compile)
    train(b, xb, yb, 4)
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "ckpt.npz")
        b.save_states(path)
        c, xc, yc = build(make_opt, use_graph, drop=0.0, seed=5)
        train(c, xc, yc, warm_up)
        c.load_states(path)
    got = train(c, xc, yc, 4, start=4)
    return (got, states(c)), (want[4:], states(a))


@pytest.mark.parametrize("opt_name", list(OPTS))
@pytest.mark.parametrize("use_graph", [False, True], ids=["eager", "graph"])
def test_resume_in_a_fresh_model_equals_uninterrupted(opt_name, use_graph):
    (got, gs), (want, ws) = resume_check(OPTS[opt_name], use_graph, warm_up=0)
    np.testing.assert_array_equal(got, want)
    assert_same_states(gs, ws, rtol=0, atol=0)


@pytest.mark.parametrize("opt_name", list(OPTS))
@pytest.mark.parametrize("use_graph", [False, True], ids=["eager", "graph"])
def test_resume_into_a_model_that_already_trained(opt_name, use_graph):
    """load_states into a model whose step is already recorded: the replayed graph must
    use the loaded optimizer state (momentum, Adam's m and v), not the buffers it had."""
    (got, gs), (want, ws) = resume_check(OPTS[opt_name], use_graph, warm_up=2)
    np.testing.assert_allclose(got, want, rtol=1e-6)
    assert_same_states(gs, ws, rtol=1e-5, atol=1e-6)


def test_resume_of_a_model_trained_without_compile():
    """Eager training needs no compile(); its checkpoint must still carry the momentum (the
    optimizer keyed it by `param<id>` names that no other model has)."""
    (got, gs), (want, ws) = resume_check(OPTS["sgd"], False, warm_up=0, compile=False)
    np.testing.assert_allclose(got, want, rtol=1e-6)


def test_set_optimizer_mid_run_takes_effect_in_graph_mode():
    """set_optimizer between graph steps: the next step uses the new optimizer, as in eager
    mode (the recorded graph held the old one's updates)."""
    def run(use_graph):
        m, x, y = build(OPTS["sgd"], use_graph=use_graph, drop=0.0)
        train(m, x, y, 2)
        m.set_optimizer(opt.SGD(0.0))
        before = states(m)
        train(m, x, y, 2, start=2)
        return before, states(m)

    before, after = run(True)
    for k in ("fc1.W", "fc2.W", "bn.scale"):
        np.testing.assert_array_equal(after[k], before[k], err_msg=k)


def test_wrong_shape_checkpoint_is_refused_and_leaves_the_model_alone():
    m, x, y = build(OPTS["sgd"], drop=0.0)
    train(m, x, y, 2)
    tensor.get_default_device().SetRandSeed(0)
    wide = Net(0.0)
    wide.set_optimizer(opt.SGD(0.1, 0.9))
    wide.compile([tensor.from_numpy(np.zeros((8, 7), np.float32))])
    before = states(wide)
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "ckpt.npz")
        m.save_states(path)
        with pytest.raises(ValueError, match=r"'fc1.W' has shape \(7, 6\) in the model but "
                                             r"\(5, 6\)"):
            wide.load_states(path)
    assert_same_states(states(wide), before, rtol=0, atol=0)
    assert set(wide.optimizer.get_states()) == {"step_counter"}


def test_checkpoint_file_gets_the_usual_permissions():
    """save_states writes through a temporary file: the checkpoint must end up with the mode
    any new file gets (0o666 less the umask, as np.savez gives), not mkstemp's 0o600."""
    m, x, y = build(OPTS["sgd"], drop=0.0)
    old = os.umask(0o022)
    try:
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "ckpt.npz")
            m.save_states(path)
            np.savez(os.path.join(d, "plain.npz"), a=np.zeros(1))
            want = os.stat(os.path.join(d, "plain.npz")).st_mode & 0o777
            assert os.stat(path).st_mode & 0o777 == want == 0o644
            assert sorted(os.listdir(d)) == ["ckpt.npz", "plain.npz"]
    finally:
        os.umask(old)
