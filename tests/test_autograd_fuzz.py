"""Gradients of random compositions: a random program of smooth ops (values used by several
later ops, one value used twice by the same op, a value unused, broadcasting, matmul with a
weight input, concat / slice / transpose / reshape, reductions, softmax) runs through
autograd and, as a float64 numpy reference, through finite differences; each operator is
checked alone in test_autograd_ops.py, this checks how the engine sums gradients between
them."""

import numpy as np
import pytest
from gradcheck import check_op

from minisinga import autograd as ag

B, W = 3, 4
OPS = ["add", "sub", "mul", "square", "tanh", "sigmoid", "softplus", "matmul", "softmax",
       "center", "swap_halves", "transpose2", "reshape_sum", "row_scale"]


def softplus64(a):
    return np.logaddexp(0.0, a)


def program(seed, n=8):
    r = np.random.default_rng(seed)
    prog = []
    for i in range(n):
        op = str(r.choice(OPS))
        a = int(max(0, i - r.integers(0, 3)) if r.random() < 0.7 else r.integers(i + 1))
        b = int(r.integers(i + 1))
        prog.append((op, a, b))
    sinks = [int(s) for s in r.choice(n + 1, size=2, replace=False)]
    return prog, sinks


def run(prog, sinks, x, w, lib):
    """The program on minisinga tensors (lib "ag") or float64 arrays (lib "np")."""
    if lib == "ag":
        f = {"add": ag.add, "sub": ag.sub, "mul": ag.mul, "tanh": ag.tanh,
             "sigmoid": ag.sigmoid, "softplus": ag.softplus, "matmul": ag.matmul,
             "softmax": lambda v: ag.softmax(v, 1),
             "mean": lambda v: ag.reduce_mean(v, [1], True),
             "sum0": lambda v: ag.reduce_sum(v, [0], True),
             "concat": lambda u, v: ag.concat([u, v], 1),
             "half": lambda v, lo, hi: ag.slice(v, [lo], [hi], [1]),
             "T": lambda v: ag.transpose(v, [1, 0]),
             "reshape": ag.reshape}
    else:
        def softmax(v):
            e = np.exp(v - v.max(axis=1, keepdims=True))
            return e / e.sum(axis=1, keepdims=True)

        f = {"add": np.add, "sub": np.subtract, "mul": np.multiply, "tanh": np.tanh,
             "sigmoid": lambda v: 1 / (1 + np.exp(-v)), "softplus": softplus64,
             "matmul": np.matmul, "softmax": softmax,
             "mean": lambda v: v.mean(axis=1, keepdims=True),
             "sum0": lambda v: v.sum(axis=0, keepdims=True),
             "concat": lambda u, v: np.concatenate([u, v], 1),
             "half": lambda v, lo, hi: v[:, lo:hi], "T": lambda v: v.T,
             "reshape": np.reshape}
    vals = [x]
    for op, a, b in prog:
        va, vb = vals[a], vals[b]
        if op in ("add", "sub"):
            v = f[op](va, vb)
        elif op == "mul":
            v = f["mul"](va, f["tanh"](vb))
        elif op == "square":  # one value, both operands of one op
            v = f["mul"](va, va)
        elif op in ("tanh", "sigmoid", "softplus", "softmax"):
            v = f[op](va)
        elif op == "matmul":
            v = f["matmul"](va, w)
        elif op == "center":  # broadcasting: a (B, 1) mean from every row
            v = f["sub"](va, f["mean"](va))
        elif op == "row_scale":  # broadcasting the other way: a (1, W) row times all rows
            v = f["mul"](va, f["tanh"](f["sum0"](vb)))
        elif op == "swap_halves":
            v = f["concat"](f["half"](va, W // 2, W), f["half"](va, 0, W // 2))
        elif op == "transpose2":
            v = f["T"](f["mul"](f["T"](va), f["T"](vb)))
        else:  # reshape_sum: through (W, B) and back
            v = f["add"](f["reshape"](f["reshape"](va, (W, B)), (B, W)), vb)
        vals.append(v)
    return f["add"](f["tanh"](vals[sinks[0]]), f["matmul"](vals[sinks[1]], w))


@pytest.mark.parametrize("seed", range(16))
def test_random_compositions_against_finite_differences(dev, seed):
    prog, sinks = program(seed)
    r = np.random.default_rng(100 + seed)
    x = (0.5 * r.standard_normal((B, W))).astype(np.float32)
    w = (0.5 * r.standard_normal((W, W))).astype(np.float32)
    check_op(lambda xt, wt: run(prog, sinks, xt, wt, "ag"),
             lambda xa, wa: run(prog, sinks, xa, wa, "np"), [x, w], device=dev,
             grad_rtol=2e-2, grad_atol=2e-3)
