"""Optimizers against their textbook formulas, computed in numpy step by step."""

import numpy as np
import pytest

from minisinga import autograd as ag
from minisinga import opt, tensor

STEPS = 5


def run(optimizer, p0, grads):
    """Applies `grads` (one array per step) through optimizer.update + step."""
    p = tensor.Tensor(data=p0.copy(), stores_grad=True, name="p")
    out = []
    for g in grads:
        optimizer.update(p, tensor.from_numpy(g))
        optimizer.step()
        out.append(p.to_numpy().astype(np.float64))
    return out


@pytest.fixture
def data():
    r = np.random.default_rng(3)
    return r.standard_normal(6).astype(np.float32), \
        [r.standard_normal(6).astype(np.float32) for _ in range(STEPS)]


@pytest.mark.parametrize("momentum,dampening,wd,nesterov", [
    (0.0, 0.0, 0.0, False), (0.9, 0.0, 0.0, False), (0.9, 0.1, 1e-2, False),
    (0.8, 0.0, 1e-3, True)])
def test_sgd(data, momentum, dampening, wd, nesterov):
    p0, grads = data
    got = run(opt.SGD(0.1, momentum, dampening, wd, nesterov), p0, grads)
    p, buf = p0.astype(np.float64), np.zeros(6)
    for step, g in enumerate(grads):
        g = g + wd * p
        buf = momentum * buf + (1 - dampening) * g
        d = g + momentum * buf if nesterov else (buf if momentum else g)
        p = p - 0.1 * d
        np.testing.assert_allclose(got[step], p, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("wd", [0.0, 0.01])
def test_adam(data, wd):
    p0, grads = data
    b1, b2, eps, lr = 0.9, 0.999, 1e-8, 0.01
    got = run(opt.Adam(lr, b1, b2, eps, wd), p0, grads)
    p, m, v = p0.astype(np.float64), np.zeros(6), np.zeros(6)
    for t, g in enumerate(grads, start=1):
        g = g + wd * p
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        mh, vh = m / (1 - b1 ** t), v / (1 - b2 ** t)
        p = p - lr * mh / (np.sqrt(vh) + eps)
        np.testing.assert_allclose(got[t - 1], p, rtol=1e-5, atol=1e-6)


def test_adagrad(data):
    p0, grads = data
    got = run(opt.AdaGrad(0.1, 1e-10, 0.01), p0, grads)
    p, s = p0.astype(np.float64), np.zeros(6)
    for step, g in enumerate(grads):
        g = g + 0.01 * p
        s = s + g * g
        p = p - 0.1 * g / (np.sqrt(s) + 1e-10)
        np.testing.assert_allclose(got[step], p, rtol=1e-5, atol=1e-6)


def test_rmsprop(data):
    p0, grads = data
    got = run(opt.RMSProp(0.01, 0.9, 1e-8, 0.0), p0, grads)
    p, s = p0.astype(np.float64), np.zeros(6)
    for step, g in enumerate(grads):
        s = 0.9 * s + 0.1 * g * g
        p = p - 0.01 * g / (np.sqrt(s) + 1e-8)
        np.testing.assert_allclose(got[step], p, rtol=1e-5, atol=1e-6)


def test_exponential_decay_schedule_lives_on_the_device(data):
    p0, grads = data
    sched = opt.ExponentialDecay(0.1, decay_steps=2, decay_rate=0.5, staircase=True)
    got = run(opt.SGD(sched), p0, grads)
    p = p0.astype(np.float64)
    for step, g in enumerate(grads):
        p = p - 0.1 * 0.5 ** (step // 2) * g
        np.testing.assert_allclose(got[step], p, rtol=1e-5, atol=1e-6)


def test_call_runs_backward_and_updates_every_param():
    w = tensor.Tensor(data=np.array([[1.0, 2.0]], np.float32), stores_grad=True, name="w")
    b = tensor.Tensor(data=np.array([0.5], np.float32), stores_grad=True, name="b")
    x = tensor.from_numpy(np.array([[3.0], [4.0]], np.float32))
    sgd = opt.SGD(0.1)
    with ag.train_mode():
        loss = ag.add(ag.reduce_sum(ag.matmul(x, w), None, False),
                      ag.reduce_sum(b, None, False))
    sgd(loss)
    np.testing.assert_allclose(w.to_numpy(), [[1.0 - 0.7, 2.0 - 0.7]], rtol=1e-6)
    np.testing.assert_allclose(b.to_numpy(), [0.4], rtol=1e-6)
    assert sgd.get_states()["step_counter"].to_numpy()[0] == 1


def test_states_round_trip(data):
    p0, grads = data
    a = opt.Adam(0.01)
    run(a, p0, grads[:2])
    states = {k: v.to_numpy() for k, v in a.get_states().items()}
    b = opt.Adam(0.01)
    b.set_states(states)
    assert set(b.get_states()) == set(states)
    for k, v in b.get_states().items():
        np.testing.assert_array_equal(v.to_numpy(), states[k])


def test_bad_arguments():
    with pytest.raises(ValueError, match="momentum"):
        opt.SGD(0.1, momentum=-1)
    with pytest.raises(ValueError, match="nesterov"):
        opt.SGD(0.1, nesterov=True)
    with pytest.raises(ValueError, match="beta_1"):
        opt.Adam(beta_1=1.5)
    for bad in (-0.1, float("nan"), float("inf"), "0.1", None, True):
        with pytest.raises(ValueError, match=r"SGD: lr must be a finite number >= 0 or a "
                                             r"DecayScheduler, got "):
            opt.SGD(bad)
    with pytest.raises(ValueError, match="Adam: lr must be"):
        opt.Adam(-1e-3)
    assert opt.SGD(np.float32(0.5)).lr.init_value == 0.5 and opt.SGD(0).lr.init_value == 0.0
    p = tensor.Tensor(data=np.zeros(3, np.float32), stores_grad=True, name="p")
    with pytest.raises(ValueError, match="gradient shape"):
        opt.SGD(0.1).update(p, tensor.zeros((4,)))


def test_lr_value_exists_before_the_first_step():
    """As in SINGA, lr_value (and the step counter) exist once the optimizer is made: the rate
    at step 0, and it follows the schedule."""
    sgd = opt.SGD(lr=opt.ExponentialDecay(0.5, 2, 0.1))
    assert sgd.lr_value is not None and float(sgd.lr_value.to_numpy()[0]) == 0.5
    assert float(sgd.step_counter.to_numpy()[0]) == 0.0
    sgd.step()
    sgd.step()
    np.testing.assert_allclose(sgd.lr_value.to_numpy(), [0.05], rtol=1e-6)
    assert float(opt.Adam(lr=0.01).lr_value.to_numpy()[0]) == pytest.approx(0.01)


def exp_decay(init, steps, rate):
    """ExponentialDecay's value at each step counter value (0, 1, ...) in float64."""
    return lambda s: init * rate ** (s / steps)


class Ramp(opt.DecayScheduler):
    """A schedule written as in SINGA: call(step) with Tensor arithmetic (0.5, 0.6, ... 0.9)."""

    def call(self, step):
        return ag.clip(step * 0.1 + self.init_value, max=0.9)


def test_sgd_settings_follow_their_schedules(data):
    """SINGA's SGD takes a DecayScheduler for momentum, dampening and weight decay too: each
    update uses their values at the step counter, computed on the device."""
    p0, grads = data
    damp, wd = exp_decay(0.2, 2, 0.5), exp_decay(0.01, 1, 0.5)
    sgd = opt.SGD(0.1, momentum=Ramp(0.5), dampening=opt.ExponentialDecay(0.2, 2, 0.5),
                  weight_decay=opt.ExponentialDecay(0.01, 1, 0.5))
    got = run(sgd, p0, grads)
    p, buf = p0.astype(np.float64), np.zeros(6)
    for s, g in enumerate(grads):
        m = min(0.5 + 0.1 * s, 0.9)
        g = g + wd(s) * p
        buf = m * buf + (1 - damp(s)) * g
        p = p - 0.1 * buf
        np.testing.assert_allclose(got[s], p, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(sgd.hyper_value.to_numpy(), [0.9, damp(5), wd(5)], rtol=1e-6)


def test_adam_adagrad_rmsprop_settings_follow_their_schedules(data):
    p0, grads = data
    b1, eps, wd = exp_decay(0.9, 1, 0.99), exp_decay(1e-3, 1, 0.5), exp_decay(0.01, 1, 0.9)
    ED = opt.ExponentialDecay
    got = run(opt.Adam(0.01, ED(0.9, 1, 0.99), 0.999, ED(1e-3, 1, 0.5), ED(0.01, 1, 0.9)), p0,
              grads)
    p, m, v = p0.astype(np.float64), np.zeros(6), np.zeros(6)
    for s, g in enumerate(grads):
        g = g + wd(s) * p
        m = b1(s) * m + (1 - b1(s)) * g
        v = 0.999 * v + 0.001 * g * g
        t = s + 1
        p = p - 0.01 * (m / (1 - b1(s) ** t)) / (np.sqrt(v / (1 - 0.999 ** t)) + eps(s))
        np.testing.assert_allclose(got[s], p, rtol=1e-5, atol=1e-6)

    got = run(opt.AdaGrad(0.1, ED(1e-3, 1, 0.5), ED(0.01, 1, 0.9)), p0, grads)
    p, acc = p0.astype(np.float64), np.zeros(6)
    for s, g in enumerate(grads):
        g = g + wd(s) * p
        acc = acc + g * g
        p = p - 0.1 * g / (np.sqrt(acc) + eps(s))
        np.testing.assert_allclose(got[s], p, rtol=1e-5, atol=1e-6)

    rho = exp_decay(0.9, 1, 0.95)
    got = run(opt.RMSProp(0.01, ED(0.9, 1, 0.95), 1e-8, ED(0.01, 1, 0.9)), p0, grads)
    p, sq = p0.astype(np.float64), np.zeros(6)
    for s, g in enumerate(grads):
        g = g + wd(s) * p
        sq = rho(s) * sq + (1 - rho(s)) * g * g
        p = p - 0.01 * g / (np.sqrt(sq) + 1e-8)
        np.testing.assert_allclose(got[s], p, rtol=1e-5, atol=1e-6)


def test_scheduled_settings_after_set_states_and_numbers_unchanged(data):
    """Restoring the step counter recomputes the scheduled settings; numbers-only optimizers
    keep no settings tensor (their updates take the numbers)."""
    p0, grads = data
    a = opt.SGD(0.1, momentum=opt.ExponentialDecay(0.9, 1, 0.5))
    run(a, p0, grads[:3])
    b = opt.SGD(0.1, momentum=opt.ExponentialDecay(0.9, 1, 0.5))
    run(b, p0, grads[:1])
    b.set_states({k: v.to_numpy() for k, v in a.get_states().items()})
    np.testing.assert_allclose(b.hyper_value.to_numpy(), [0.9 * 0.5 ** 3, 0, 0], rtol=1e-6)
    plain = opt.SGD(0.1, momentum=0.9)
    run(plain, p0, grads[:2])
    assert plain.hyper_value is None
    # A schedule is a setting: a Model records its step again when one is replaced.
    assert ("momentum", a.momentum) in a.settings()
    assert a.settings() != b.settings()


def test_bad_schedules(data):
    p0, grads = data
    with pytest.raises(ValueError, match=r"SGD: dampening's init_value must be a finite "
                                         r"number in \[0, 1\], got 1.5"):
        opt.SGD(0.1, dampening=opt.ExponentialDecay(1.5, 1, 0.5))
    with pytest.raises(ValueError, match=r"Adam: beta_1's init_value must be"):
        opt.Adam(beta_1=opt.ExponentialDecay(1.0, 1, 0.5))
    with pytest.raises(ValueError, match="nesterov needs momentum > 0"):
        opt.SGD(0.1, momentum=opt.ExponentialDecay(0.0, 1, 0.5), nesterov=True)
    with pytest.raises(ValueError, match="SGD: momentum must be a finite number >= 0 or a "
                                         "DecayScheduler, got 'x'"):
        opt.SGD(0.1, momentum="x")

    class Two(opt.DecayScheduler):
        def call(self, step):
            return ag.cat([step, step], 0)

    with pytest.raises(ValueError, match="the schedule of weight_decay must give one value "
                                         r"per step, got shape \(2,\)"):
        run(opt.SGD(0.1, weight_decay=Two(0.1)), p0, grads[:1])
