"""Fused optimizer updates against textbook numpy implementations (float64) over 5 steps,
graph replay reading lr/step tensors, bad inputs, and float16 updates with float16 or float32
states (run on the tensors as they are, no casts; bit for bit the float32 update rounded
once)."""

import numpy as np
import pytest
from conftest import core_tensor, recorded_nodes

from minisinga import _core

STEPS = 5
LRS = [0.1, 0.05, 0.2, 0.01, 0.1]  # changed between steps: the kernels read the lr tensor


def scalar(v, dev=None):
    return core_tensor(np.array([v], np.float32), dev)


def setv(t, v):
    t.copy_from_numpy(np.array([v], np.float32))


def run_steps(rng, shape, update, reference, nstate):
    """Runs `update(param, grad, states, lr, step)` and `reference(p, g, states, lr, t)` (numpy
    float64, returns new p) for STEPS steps with fresh gradients; compares param and state."""
    p0 = rng.standard_normal(shape).astype(np.float32)
    param = core_tensor(p0)
    states = [core_tensor(np.zeros(shape, np.float32)) for _ in range(nstate)]
    ref_p, ref_states = p0.astype(np.float64), [np.zeros(shape) for _ in range(nstate)]
    lr, step = scalar(0.0), scalar(0.0)
    for t in range(1, STEPS + 1):
        g = rng.standard_normal(shape).astype(np.float32)
        setv(lr, LRS[t - 1])
        setv(step, t)
        update(param, core_tensor(g), states, lr, step)
        ref_p = reference(ref_p, g.astype(np.float64), ref_states, LRS[t - 1], t)
        np.testing.assert_allclose(param.to_numpy(), ref_p, rtol=2e-5, atol=2e-6)
        for s, rs in zip(states, ref_states):
            np.testing.assert_allclose(s.to_numpy(), rs, rtol=2e-5, atol=2e-6)


SGD_CASES = [  # momentum, dampening, weight_decay, nesterov, pass step
    (0.0, 0.0, 0.0, False, False),
    (0.0, 0.0, 0.01, False, False),
    (0.9, 0.0, 0.0, False, False),
    (0.9, 0.1, 0.0, False, True),
    (0.8, 0.0, 0.05, True, True),
    (0.5, 0.0, 0.0, True, False),
]


@pytest.mark.parametrize("momentum,dampening,wd,nesterov,use_step", SGD_CASES)
@pytest.mark.parametrize("shape", [(7,), (3, 1, 4)])
def test_sgd(momentum, dampening, wd, nesterov, use_step, shape, rng):
    def update(param, grad, states, lr, step):
        buf = states[0] if momentum else None
        _core.sgd_update(
            param, grad, lr, buf, momentum, dampening, wd, nesterov, step if use_step else None
        )

    def reference(p, g, states, lr, t):  # torch.optim.SGD, written out
        d = g + wd * p
        if momentum:
            if t == 1:
                states[0][...] = d
            else:
                states[0][...] = momentum * states[0] + (1 - dampening) * d
            d = d + momentum * states[0] if nesterov else states[0]
        return p - lr * d

    run_steps(rng, shape, update, reference, 1 if momentum else 0)


@pytest.mark.parametrize("wd", [0.0, 0.02])
@pytest.mark.parametrize("shape", [(1,), (5, 3)])
def test_adam(wd, shape, rng):
    b1, b2, eps = 0.9, 0.999, 1e-8

    def update(param, grad, states, lr, step):
        _core.adam_update(param, grad, states[0], states[1], lr, step, b1, b2, eps, wd)

    def reference(p, g, states, lr, t):
        m, v = states
        g = g + wd * p
        m[...] = b1 * m + (1 - b1) * g
        v[...] = b2 * v + (1 - b2) * g * g
        mhat, vhat = m / (1 - b1**t), v / (1 - b2**t)
        return p - lr * mhat / (np.sqrt(vhat) + eps)

    run_steps(rng, shape, update, reference, 2)


@pytest.mark.parametrize("wd", [0.0, 0.1])
def test_adagrad(wd, rng):
    eps = 1e-10

    def update(param, grad, states, lr, step):
        _core.adagrad_update(param, grad, states[0], lr, eps, wd)

    def reference(p, g, states, lr, t):
        g = g + wd * p
        states[0][...] += g * g
        return p - lr * g / (np.sqrt(states[0]) + eps)

    run_steps(rng, (4, 6), update, reference, 1)


@pytest.mark.parametrize("wd", [0.0, 0.1])
def test_rmsprop(wd, rng):
    rho, eps = 0.9, 1e-8

    def update(param, grad, states, lr, step):
        _core.rmsprop_update(param, grad, states[0], lr, rho, eps, wd)

    def reference(p, g, states, lr, t):
        g = g + wd * p
        states[0][...] = rho * states[0] + (1 - rho) * g * g
        return p - lr * g / (np.sqrt(states[0]) + eps)

    run_steps(rng, (9,), update, reference, 1)


def test_large_parameter_runs_in_parallel(rng):
    # Above the OpenMP threshold: same result as the numpy formula.
    n = 100_000
    p0 = rng.standard_normal(n).astype(np.float32)
    g = rng.standard_normal(n).astype(np.float32)
    param, lr = core_tensor(p0), scalar(0.01)
    _core.sgd_update(param, core_tensor(g), lr, None, 0.0, 0.0, 0.1, False)
    expected = p0.astype(np.float64) - 0.01 * (g + 0.1 * p0.astype(np.float64))
    np.testing.assert_allclose(param.to_numpy(), expected, rtol=1e-5, atol=1e-7)


def test_graph_replay_reads_lr_and_step(rng):
    dev = _core.create_cpu_device()
    p0 = rng.standard_normal(6).astype(np.float32)
    g = rng.standard_normal(6).astype(np.float32)
    param, grad = core_tensor(p0, dev), core_tensor(g, dev)
    m, v = _core.Tensor([6], dev), _core.Tensor([6], dev)
    lr, step = scalar(0.0, dev), scalar(0.0, dev)
    dev.EnableGraph(True)
    _core.adam_update(param, grad, m, v, lr, step, 0.9, 0.99, 1e-8, 0.0)
    dev.EnableGraph(False)
    p, mr, vr = p0.astype(np.float64), np.zeros(6), np.zeros(6)
    for t in range(1, 4):
        setv(lr, 0.1 * t)
        setv(step, t)
        dev.RunGraph()
        mr = 0.9 * mr + 0.1 * g
        vr = 0.99 * vr + 0.01 * g.astype(np.float64) ** 2
        p = p - 0.1 * t * (mr / (1 - 0.9**t)) / (np.sqrt(vr / (1 - 0.99**t)) + 1e-8)
        np.testing.assert_allclose(param.to_numpy(), p, rtol=2e-5, atol=2e-6)
    dev.ResetGraph()


def test_bad_inputs():
    def t(shape, dtype=np.float32, dev=None):
        return core_tensor(np.zeros(shape, dtype), dev)

    p, g, lr, step = t((3, 2)), t((3, 2)), scalar(0.1), scalar(1.0)
    with pytest.raises(ValueError, match=r"sgd_update: grad has shape \(6,\), expected"):
        _core.sgd_update(p, t((6,)), lr)
    with pytest.raises(TypeError,
                       match="sgd_update: param has dtype int32, expected float32 or float16"):
        _core.sgd_update(t((3, 2), np.int32), g, lr)
    with pytest.raises(TypeError, match="sgd_update: grad has dtype int32"):
        _core.sgd_update(p, t((3, 2), np.int32), lr)
    with pytest.raises(ValueError, match="sgd_update: lr must be a 1-element tensor"):
        _core.sgd_update(p, g, t((2,)))
    with pytest.raises(TypeError, match="sgd_update: lr has dtype int32"):
        _core.sgd_update(p, g, t((1,), np.int32))
    other = _core.create_cpu_device()
    with pytest.raises(TypeError, match="sgd_update: tensors are on different devices"):
        _core.sgd_update(p, g, scalar(0.1, other))
    with pytest.raises(ValueError, match="sgd_update: momentum 0.9 needs a momentum_buf"):
        _core.sgd_update(p, g, lr, None, 0.9)
    with pytest.raises(ValueError, match="sgd_update: momentum_buf has shape"):
        _core.sgd_update(p, g, lr, t((2, 3)), 0.9)
    with pytest.raises(ValueError, match="sgd_update: nesterov needs momentum > 0"):
        _core.sgd_update(p, g, lr, t((3, 2)), 0.9, 0.1, 0.0, True)
    with pytest.raises(ValueError, match="sgd_update: nesterov needs momentum > 0"):
        _core.sgd_update(p, g, lr, None, 0.0, 0.0, 0.0, True)
    with pytest.raises(ValueError, match="sgd_update: momentum must be"):
        _core.sgd_update(p, g, lr, t((3, 2)), -0.5)
    with pytest.raises(ValueError, match=r"sgd_update: dampening must be in \[0, 1\]"):
        _core.sgd_update(p, g, lr, t((3, 2)), 0.9, 2.0)
    with pytest.raises(ValueError, match="sgd_update: weight_decay"):
        _core.sgd_update(p, g, lr, None, 0.0, 0.0, -1.0)
    with pytest.raises(ValueError, match="sgd_update: step must be a 1-element tensor"):
        _core.sgd_update(p, g, lr, t((3, 2)), 0.9, 0.0, 0.0, False, t((2,)))
    m, v = t((3, 2)), t((3, 2))
    with pytest.raises(ValueError, match=r"adam_update: v has shape \(3, 3\)"):
        _core.adam_update(p, g, m, t((3, 3)), lr, step)
    with pytest.raises(TypeError, match="adam_update: step has dtype int32"):
        _core.adam_update(p, g, m, v, lr, t((1,), np.int32))
    with pytest.raises(ValueError, match="adam_update: step must be a 1-element"):
        _core.adam_update(p, g, m, v, lr, t((1, 2)))
    with pytest.raises(ValueError, match=r"adam_update: beta1 must be in \[0, 1\)"):
        _core.adam_update(p, g, m, v, lr, step, 1.0)
    with pytest.raises(ValueError, match="adam_update: beta2"):
        _core.adam_update(p, g, m, v, lr, step, 0.9, -0.1)
    with pytest.raises(ValueError, match="adam_update: eps"):
        _core.adam_update(p, g, m, v, lr, step, 0.9, 0.999, -1e-8)
    with pytest.raises(TypeError, match="adam_update: tensors are on different devices"):
        _core.adam_update(p, g, m, t((3, 2), dev=other), lr, step)
    with pytest.raises(ValueError, match="adagrad_update: sum_sq has shape"):
        _core.adagrad_update(p, g, t((6,)), lr)
    with pytest.raises(ValueError, match="adagrad_update: eps"):
        _core.adagrad_update(p, g, t((3, 2)), lr, float("inf"))
    with pytest.raises(ValueError, match=r"rmsprop_update: rho must be in \[0, 1\]"):
        _core.rmsprop_update(p, g, t((3, 2)), lr, 1.5)
    with pytest.raises(ValueError, match="rmsprop_update: lr must be a 1-element"):
        _core.rmsprop_update(p, g, t((3, 2)), t((0,)))
    # Failed checks leave the parameter untouched.
    np.testing.assert_array_equal(p.to_numpy(), np.zeros((3, 2), np.float32))


# float16: (name, number of state tensors, update(param, grad, states, lr, step)), weight
# decay on; the SGD cases with momentum pass the step tensor (first step: buf = g).
HALF_CASES = [
    ("sgd", 0, lambda p, g, s, lr, st: _core.sgd_update(p, g, lr, None, 0.0, 0.0, 0.01, False)),
    (
        "sgd_momentum",
        1,
        lambda p, g, s, lr, st: _core.sgd_update(p, g, lr, s[0], 0.9, 0.1, 0.01, False, st),
    ),
    (
        "sgd_nesterov",
        1,
        lambda p, g, s, lr, st: _core.sgd_update(p, g, lr, s[0], 0.8, 0.0, 0.01, True, st),
    ),
    (
        "adam",
        2,
        lambda p, g, s, lr, st: _core.adam_update(p, g, s[0], s[1], lr, st, 0.9, 0.999, 1e-8, 0.01),
    ),
    ("adagrad", 1, lambda p, g, s, lr, st: _core.adagrad_update(p, g, s[0], lr, 1e-10, 0.01)),
    ("rmsprop", 1, lambda p, g, s, lr, st: _core.rmsprop_update(p, g, s[0], lr, 0.9, 1e-8, 0.01)),
]


@pytest.mark.parametrize("state", [np.float16, np.float32], ids=["float16-state", "float32-state"])
def test_float16_updates_run_on_float16(dev, rng, state):
    """float16 updates read and write float16 parameters (and float16 or float32 states, the
    latter what minisinga.opt keeps for float16 parameters) directly: the graph records the
    updates and no float32 copies (AsType) or casts back (CastInto)."""

    def t(dtype=np.float16):
        return core_tensor(rng.uniform(0, 1, (5, 7)).astype(dtype), dev)

    lr, step = scalar(0.1, dev), scalar(2.0, dev)
    args = [(fn, t(), t(), [t(state) for _ in range(ns)]) for _, ns, fn in HALF_CASES]

    def ops():
        for fn, p, g, states in args:
            fn(p, g, states, lr, step)

    names = recorded_nodes(args[0][1].device, ops)
    assert not any("AsType" in n or "CastInto" in n for n in names), names
    assert names == ["SgdUpdate"] * 3 + ["AdamUpdate", "AdagradUpdate", "RmspropUpdate"], names


@pytest.mark.parametrize("state", [np.float16, np.float32], ids=["float16-state", "float32-state"])
@pytest.mark.parametrize("name,nstate,update", HALF_CASES, ids=[c[0] for c in HALF_CASES])
def test_float16_updates_equal_float32(dev, rng, name, nstate, update, state):
    """Each float16 step equals the float32 update on the same (float16) values, every updated
    float16 tensor rounded once to float16, bit for bit (float32 states: equal): 4 steps, so
    the states carry over; an odd size above the CPU's OpenMP threshold."""
    n = 40_003
    p = rng.uniform(-2, 2, n).astype(np.float16)
    states = [rng.uniform(-1, 1, n).astype(state) for _ in range(nstate)]
    if name in ("adam", "adagrad", "rmsprop"):
        states[-1] = np.abs(states[-1])  # v, sum_sq, sq_avg >= 0
    p16, s16 = core_tensor(p, dev), [core_tensor(s, dev) for s in states]
    lr, step = scalar(0.0, dev), scalar(0.0, dev)
    for t in range(1, 5):
        g = rng.uniform(-2, 2, n).astype(np.float16)
        setv(lr, LRS[t - 1])
        setv(step, t)
        p32 = core_tensor(p16.to_numpy().astype(np.float32), dev)
        s32 = [core_tensor(s.to_numpy().astype(np.float32), dev) for s in s16]
        update(p32, core_tensor(g.astype(np.float32), dev), s32, lr, step)
        update(p16, core_tensor(g, dev), s16, lr, step)
        for what, got, want in [("param", p16, p32)] + [
            (f"state {i}", a, b) for i, (a, b) in enumerate(zip(s16, s32))
        ]:
            dt = np.float16 if what == "param" else state
            assert got.to_numpy().dtype == dt, what
            np.testing.assert_array_equal(
                got.to_numpy(), want.to_numpy().astype(dt), err_msg=f"step {t}, {what}"
            )


# Mixes the kernels have no overload for: (param, grad, states) dtypes.
COPY_MIXES = [
    (np.float32, np.float16, np.float32),  # float16 gradient of a float32 parameter
    (np.float32, np.float32, np.float16),  # float16 state of a float32 parameter
    (np.float16, np.float32, np.float32),  # float32 gradient of a float16 parameter
]


@pytest.mark.parametrize("mix", COPY_MIXES, ids=lambda m: "-".join(np.dtype(d).name for d in m))
@pytest.mark.parametrize("name,nstate,update", HALF_CASES[1:], ids=[c[0] for c in HALF_CASES[1:]])
def test_mixed_dtype_updates_run_on_float32_copies(dev, rng, name, nstate, update, mix):
    """Other mixes of float16 and float32 run the float32 update on float32 copies and cast
    every updated tensor back to its own dtype, rounded once; the graph records the copies."""
    pdt, gdt, sdt = mix
    n = 1001
    p = rng.uniform(-2, 2, n).astype(np.float16)  # float16 values: exact in every dtype
    g = rng.uniform(-2, 2, n).astype(np.float16)
    states = [np.abs(rng.uniform(-1, 1, n)).astype(np.float16) for _ in range(nstate)]
    lr, step = scalar(0.1, dev), scalar(2.0, dev)
    got_p, got_s = core_tensor(p.astype(pdt), dev), [core_tensor(s.astype(sdt), dev)
                                                     for s in states]
    got_g = core_tensor(g.astype(gdt), dev)
    want_p = core_tensor(p.astype(np.float32), dev)
    want_s = [core_tensor(s.astype(np.float32), dev) for s in states]
    update(want_p, core_tensor(g.astype(np.float32), dev), want_s, lr, step)
    update(got_p, got_g, got_s, lr, step)
    copies = [core_tensor(a.to_numpy(), dev) for a in [got_p, got_g] + got_s]
    names = recorded_nodes(got_p.device, lambda: update(*copies[:2], copies[2:], lr, step))
    assert "AsType" in names, names
    for what, got, want, dt in [("param", got_p, want_p, pdt)] + [
        (f"state {i}", a, b, sdt) for i, (a, b) in enumerate(zip(got_s, want_s))
    ]:
        assert got.to_numpy().dtype == dt, what
        np.testing.assert_array_equal(got.to_numpy(), want.to_numpy().astype(dt), err_msg=what)


# name, states, update(p, g, states, lr, step, numbers, hyper), the numbers, and stand-ins
# with the same structure (momentum != 0, nesterov's dampening 0) that hyper must override.
HYPER_CASES = [
    ("sgd", 1,
     lambda p, g, s, lr, st, v, h: _core.sgd_update(p, g, lr, s[0], *v, False, st, hyper=h),
     (0.9, 0.1, 0.01), (0.5, 0.3, 0.0)),
    ("sgd_no_momentum", 0,
     lambda p, g, s, lr, st, v, h: _core.sgd_update(p, g, lr, None, *v, False, st, hyper=h),
     (0.0, 0.0, 0.01), (0.0, 0.3, 0.0)),
    ("sgd_nesterov", 1,
     lambda p, g, s, lr, st, v, h: _core.sgd_update(p, g, lr, s[0], *v, True, st, hyper=h),
     (0.8, 0.0, 0.01), (0.5, 0.0, 0.0)),
    ("adam", 2,
     lambda p, g, s, lr, st, v, h: _core.adam_update(p, g, s[0], s[1], lr, st, *v, hyper=h),
     (0.9, 0.999, 1e-8, 0.01), (0.5, 0.5, 1e-3, 0.0)),
    ("adagrad", 1,
     lambda p, g, s, lr, st, v, h: _core.adagrad_update(p, g, s[0], lr, *v, hyper=h),
     (1e-10, 0.01), (1e-3, 0.0)),
    ("rmsprop", 1,
     lambda p, g, s, lr, st, v, h: _core.rmsprop_update(p, g, s[0], lr, *v, hyper=h),
     (0.9, 1e-8, 0.01), (0.5, 1e-3, 0.0)),
]
F16, F32 = np.float16, np.float32


@pytest.mark.parametrize("dtypes", [(F32, F32, F32), (F16, F16, F16), (F16, F16, F32),
                                    (F32, F16, F32)],
                         ids=["float32", "float16", "float16-float32-state", "copies"])
@pytest.mark.parametrize("name,nstate,update,values,stand_ins", HYPER_CASES,
                         ids=[c[0] for c in HYPER_CASES])
def test_hyper_tensor_replaces_the_numbers(dev, rng, name, nstate, update, values, stand_ins,
                                           dtypes):
    """An update given stand-in numbers and `hyper` (a device tensor of the settings, what
    opt's schedules write) equals the update given the settings as numbers, bit for bit, on
    every kernel (float32, float16, float16 with float32 states) and on the float32-copies
    path; recorded once, a graph replay reads hyper's values at each run."""
    pdt, gdt, sdt = dtypes
    n = 2001
    p0 = rng.uniform(-2, 2, n).astype(F16)
    s0 = [np.abs(rng.uniform(-1, 1, n)).astype(F16) for _ in range(nstate)]

    def tensors():
        return core_tensor(p0.astype(pdt), dev), [core_tensor(s.astype(sdt), dev) for s in s0]

    (pa, sa), (pb, sb) = tensors(), tensors()
    lr, step = scalar(0.1, dev), scalar(0.0, dev)
    hyper = core_tensor(np.zeros(len(values), F32), dev)
    d = pb.device
    grads = [core_tensor(rng.uniform(-2, 2, n).astype(F16).astype(gdt), dev) for _ in range(3)]
    g_rec = core_tensor(np.zeros(n, gdt), dev)
    d.ResetGraph()
    d.EnableGraph(True)
    update(pb, g_rec, sb, lr, step, stand_ins, hyper)
    d.EnableGraph(False)
    for t, g in enumerate(grads, start=1):
        vals = tuple(v * (1 - 0.1 * (t - 1)) for v in values)  # changes at every step
        setv(step, t)
        hyper.copy_from_numpy(np.array(vals, F32))
        _core.copy(g_rec, g)
        update(pa, g, sa, lr, step, vals, None)
        d.RunGraph()
        for what, a, b in [("param", pa, pb)] + [(f"state {i}", x, y)
                                                 for i, (x, y) in enumerate(zip(sa, sb))]:
            np.testing.assert_array_equal(b.to_numpy(), a.to_numpy(),
                                          err_msg=f"step {t}, {what}")
    d.ResetGraph()
    assert not np.array_equal(pa.to_numpy(), p0.astype(pdt))


def test_hyper_bad_inputs(rng):
    p, g, s = (core_tensor(np.zeros(4, F32)) for _ in range(3))
    lr = scalar(0.1)
    with pytest.raises(ValueError, match=r"sgd_update: hyper must hold 3 values \(momentum, "
                                         r"dampening, weight_decay\), got shape \(2,\)"):
        _core.sgd_update(p, g, lr, s, 0.9, hyper=core_tensor(np.zeros(2, F32)))
    with pytest.raises(ValueError, match=r"adam_update: hyper must hold 4 values"):
        _core.adam_update(p, g, s, s, lr, scalar(1.0), hyper=core_tensor(np.zeros(3, F32)))
    with pytest.raises(Exception, match="hyper"):
        _core.rmsprop_update(p, g, s, lr, hyper=core_tensor(np.zeros(3, np.int32)))
