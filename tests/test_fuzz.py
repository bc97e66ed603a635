"""Hundreds of random, mostly bad calls into the core, on each device: each must either work
or raise ValueError/TypeError with the op's name; nothing may crash the interpreter (nor, on a
GPU, launch a kernel that faults or is refused)."""

import numpy as np
import pytest

from minisinga import _core

OTHER = _core.create_cpu_device()  # a second device: mixing it in must be refused
DTYPES = [_core.DType.float32, _core.DType.float16, _core.DType.int32]


class Gen:
    def __init__(self, seed, dev):
        self.r = np.random.default_rng(seed)
        self.dev = dev

    def shape(self):
        return [int(d) for d in self.r.integers(0, 4, self.r.integers(0, 5))]

    def tensor(self, shape=None, dtype=None):
        shape = self.shape() if shape is None else shape
        dtype = DTYPES[self.r.integers(0, 3)] if dtype is None else dtype
        dev = OTHER if self.r.random() < 0.1 else self.dev
        t = _core.Tensor(shape, dev, dtype)
        _core.fill(t, float(self.r.integers(-2, 3)))
        return t

    def f32(self, shape=None):
        return self.tensor(shape, _core.DType.float32 if self.r.random() < 0.8 else None)

    def small(self, lo=-2, hi=5):
        return int(self.r.integers(lo, hi))

    def ints(self, n=None):
        n = self.r.integers(0, 5) if n is None else n
        return [self.small() for _ in range(n)]


def calls(g):
    """(op name, thunk) pairs covering every family."""
    t, f = g.tensor, g.f32
    return [
        ("Exp", lambda: _core.unary(_core.UnaryOp.Exp, t(), 0, 0, out=t() if g.r.random() < .3
                                    else None)),
        ("Add", lambda: _core.binary(_core.BinaryOp.Add, t(), t())),
        ("where", lambda: _core.where(t(), t(), t())),
        ("reduce_sum", lambda: _core.reduce_sum(t(), g.ints(), bool(g.r.integers(2)))),
        ("reduce_mean", lambda: _core.reduce_mean(t(), g.ints(), False)),
        ("reduce_max", lambda: _core.reduce_max(t(), None, False)),
        ("argmax", lambda: _core.argmax(t(), g.small(), False)),
        ("sum_to_shape", lambda: _core.sum_to_shape(t(), g.shape())),
        ("matmul", lambda: _core.matmul(f(), f(), bool(g.r.integers(2)),
                                        bool(g.r.integers(2)), 1.0, 0.0, None)),
        ("transpose", lambda: _core.transpose(t(), g.ints())),
        ("concat", lambda: _core.concat([t(), t()], g.small())),
        ("slice", lambda: _core.slice(t(), g.ints(2), g.ints(2), g.ints(2), g.ints(2))),
        ("split", lambda: _core.split(t(), g.ints(2), g.small())),
        ("pad", lambda: _core.pad(t(), [(g.small(), g.small()) for _ in range(g.small(0, 4))],
                                  0.0)),
        ("broadcast_to", lambda: _core.broadcast_to(t(), g.shape())),
        ("take", lambda: _core.take(t(), g.tensor(None, _core.DType.int32), g.small())),
        ("one_hot", lambda: _core.one_hot(g.tensor(None, _core.DType.int32), g.small(), DTYPES[0])),
        ("softmax", lambda: _core.softmax(t(), g.small())),
        ("softmax_cross_entropy", lambda: _core.softmax_cross_entropy(f(), t())),
        ("conv2d", lambda: _core.conv2d(f([g.small(0, 3), 2, g.small(0, 5), g.small(0, 5)]),
                                        f([g.small(0, 3), g.small(0, 3), g.small(0, 3),
                                           g.small(0, 3)]), None, g.ints(2), g.ints(4),
                                        g.ints(2), g.small(0, 3))),
        ("pool2d", lambda: _core.pool2d(f(), g.ints(2), g.ints(2), g.ints(4),
                                        bool(g.r.integers(2)), True)),
        ("batchnorm", lambda: _core.batchnorm_forward_training(f(), f(), f(), f(), f(), 0.1,
                                                               1e-5)),
        ("as_type", lambda: _core.as_type(t(), DTYPES[g.r.integers(0, 3)])),
        ("uniform", lambda: _core.uniform(t(), float(g.small()), float(g.small()))),
        ("bernoulli", lambda: _core.bernoulli(t(), float(g.r.normal()))),
        ("sgd_update", lambda: _core.sgd_update(f(), f(), f(), None, 0.0, 0.0, 0.0, False)),
        ("reshape", lambda: t().reshape(g.shape())),
        ("copy_from_numpy", lambda: t().copy_from_numpy(
            np.zeros(g.shape(), np.float32))),
        ("copy", lambda: _core.copy(t(), t())),
    ]


@pytest.mark.parametrize("seed", range(12))
def test_random_calls_never_crash(dev, seed):
    g = Gen(seed, dev)
    outcomes = {"ok": 0, "error": 0}
    for _ in range(3):
        for name, thunk in calls(g):
            try:
                thunk()
                outcomes["ok"] += 1
            except (ValueError, TypeError) as e:
                assert str(e), f"{name}: empty error message"
                outcomes["error"] += 1
    assert outcomes["error"] > 0 and outcomes["ok"] > 0
