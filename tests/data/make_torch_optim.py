"""Makes torch_optim.npz, the reference trajectories that tests/test_torch_parity_optim.py
compares minisinga's optimizers with (run once where torch is installed; the output is
committed, so the test needs no torch):

    python tests/data/make_torch_optim.py

The problem: a tiny MLP, out = relu(X W1 + b1) W2 + b2, with SINGA's MeanSquareError loss
sum((out - Y)^2) / (2 N) (minisinga's autograd.mse_loss; N the batch size), trained
from fixed float32 starting values for STEPS steps in float64. Every case stores `<case>/p<i>`
(STEPS, *shape of parameter i), the four parameters after each step, as float32.

Most cases are torch.optim (SGD, Adam, Adagrad, RMSprop, and lr_scheduler LambdaLR / StepLR /
ExponentialLR for minisinga's ExponentialDecay). `skip_*` cases drop b2 from the loss at the
steps in `skip_steps` (b2 then has no gradient there). Two cases are SINGA's conventions,
written out here with torch's gradients, where SINGA differs from torch on purpose:

* `singa_sgd_dampening`: SINGA's SGD (python/singa/opt.py) starts the momentum buffer at zero
  and applies the dampening at every step, the first included (buf = (1 - d) g at step 1;
  torch sets buf = g at step 1).
* `singa_skip_adam`: SINGA's Adam corrects the bias with the optimizer's global step counter
  (step_counter + 1), not a per-parameter count as torch does, so a parameter that had no
  gradient at some steps is corrected with the global step.
"""

import os

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
STEPS = 20
SKIP = (2, 3, 7)


def data():
    r = np.random.default_rng(0)
    x = r.standard_normal((7, 5)).astype(np.float32)
    y = r.standard_normal((7, 3)).astype(np.float32)
    params = [(r.standard_normal((5, 4)) * 0.5).astype(np.float32),
              (r.standard_normal(4) * 0.1).astype(np.float32),
              (r.standard_normal((4, 3)) * 0.5).astype(np.float32),
              (r.standard_normal(3) * 0.1).astype(np.float32)]
    return x, y, params


X, Y, P0 = data()


def loss_of(ps, step, skip):
    x, y = torch.tensor(X, dtype=torch.float64), torch.tensor(Y, dtype=torch.float64)
    h = torch.relu(x @ ps[0] + ps[1])
    out = h @ ps[2] if step in skip else h @ ps[2] + ps[3]
    return ((out - y) ** 2).sum() / (2 * out.shape[0])  # SINGA's MeanSquareError


def fresh():
    return [torch.tensor(a.astype(np.float64), requires_grad=True) for a in P0]


def run_torch(make_opt, make_sched=None, skip=()):
    ps = fresh()
    o = make_opt(ps)
    sched = make_sched(o) if make_sched else None
    hist = [[] for _ in ps]
    for s in range(STEPS):
        o.zero_grad(set_to_none=True)
        loss_of(ps, s, skip).backward()
        o.step()
        if sched:
            sched.step()
        for h, p in zip(hist, ps):
            h.append(p.detach().numpy().copy())
    return hist


def run_manual(update, skip=()):
    """update(i, p, g, state, step) -> new p (float64 tensors), for parameters with a grad."""
    ps = fresh()
    states = [{} for _ in ps]
    hist = [[] for _ in ps]
    for s in range(STEPS):
        for p in ps:
            p.grad = None
        loss_of(ps, s, skip).backward()
        with torch.no_grad():
            for i, p in enumerate(ps):
                if p.grad is not None:
                    p.copy_(update(p, p.grad.clone(), states[i], s))
        for h, p in zip(hist, ps):
            h.append(p.detach().numpy().copy())
    return hist


def singa_sgd(lr, momentum, dampening):
    def update(p, g, st, step):
        buf = st.get("buf", torch.zeros_like(p))
        buf = momentum * buf + (1 - dampening) * g
        st["buf"] = buf
        return p - lr * buf
    return update


def singa_adam(lr, b1, b2, eps):
    def update(p, g, st, step):
        t = step + 1  # the global step counter + 1
        m = b1 * st.get("m", torch.zeros_like(p)) + (1 - b1) * g
        v = b2 * st.get("v", torch.zeros_like(p)) + (1 - b2) * g * g
        st["m"], st["v"] = m, v
        return p - lr * (m / (1 - b1 ** t)) / (torch.sqrt(v / (1 - b2 ** t)) + eps)
    return update


T = torch.optim
CASES = {
    "sgd": lambda: run_torch(lambda p: T.SGD(p, 0.1)),
    "sgd_momentum": lambda: run_torch(lambda p: T.SGD(p, 0.1, 0.9)),
    "sgd_momentum_wd": lambda: run_torch(lambda p: T.SGD(p, 0.1, 0.9, 0, 0.05)),
    "sgd_nesterov_wd": lambda: run_torch(lambda p: T.SGD(p, 0.05, 0.8, 0, 0.01, True)),
    "sgd_wd": lambda: run_torch(lambda p: T.SGD(p, 0.1, 0, 0, 0.1)),
    "adam": lambda: run_torch(lambda p: T.Adam(p, 0.01)),
    "adam_all": lambda: run_torch(lambda p: T.Adam(p, 0.02, (0.8, 0.95), 1e-3, 0.05)),
    "adam_beta1_0": lambda: run_torch(lambda p: T.Adam(p, 0.02, (0.0, 0.9))),
    "adagrad": lambda: run_torch(lambda p: T.Adagrad(p, 0.1, eps=1e-10)),
    "adagrad_wd_eps": lambda: run_torch(lambda p: T.Adagrad(p, 0.1, weight_decay=0.05,
                                                            eps=1e-3)),
    "rmsprop": lambda: run_torch(lambda p: T.RMSprop(p, 0.01, alpha=0.9, eps=1e-8)),
    "rmsprop_wd_eps": lambda: run_torch(lambda p: T.RMSprop(p, 0.01, alpha=0.7, eps=1e-2,
                                                            weight_decay=0.05)),
    "decay": lambda: run_torch(lambda p: T.SGD(p, 0.1), lambda o: T.lr_scheduler.LambdaLR(
        o, lambda s: 0.7 ** (s / 3))),
    "decay_staircase_momentum": lambda: run_torch(lambda p: T.SGD(p, 0.1, 0.9),
                                                  lambda o: T.lr_scheduler.StepLR(o, 3, 0.7)),
    "decay_adam": lambda: run_torch(lambda p: T.Adam(p, 0.01),
                                    lambda o: T.lr_scheduler.ExponentialLR(o, 0.9)),
    "skip_sgd_momentum_wd": lambda: run_torch(lambda p: T.SGD(p, 0.1, 0.9, 0, 0.05), skip=SKIP),
    "skip_adagrad": lambda: run_torch(lambda p: T.Adagrad(p, 0.1, eps=1e-10), skip=SKIP),
    "skip_rmsprop": lambda: run_torch(lambda p: T.RMSprop(p, 0.01, alpha=0.9, eps=1e-8),
                                      skip=SKIP),
    "singa_sgd_dampening": lambda: run_manual(singa_sgd(0.1, 0.9, 0.3)),
    "singa_skip_adam": lambda: run_manual(singa_adam(0.01, 0.9, 0.999, 1e-8), skip=SKIP),
}


def main():
    torch.manual_seed(0)
    out = {"x": X, "y": Y, "skip_steps": np.array(SKIP, np.int32)}
    for i, p in enumerate(P0):
        out[f"init/p{i}"] = p
    for name, fn in CASES.items():
        for i, h in enumerate(fn()):
            out[f"{name}/p{i}"] = np.stack(h).astype(np.float32)
    np.savez_compressed(os.path.join(HERE, "torch_optim.npz"), **out)


if __name__ == "__main__":
    main()
