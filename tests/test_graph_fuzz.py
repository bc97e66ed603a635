"""Recorded graphs of random shape: models whose forward is a random program (values used by
several later ops, by none, twice by one op; linear layers, batch norm, dropout, softmax,
concatenation, slicing, mean-centring, transposes, indexing, padding, variadic max/mean,
where) train the same eager and in graph mode, replayed in order, by dependencies, and by
dependencies with ready nodes taken in a random order (`_core._set_graph_shuffle`; on a GPU,
captured as a CUDA graph): the graph's
scheduling and its reuse of memory between blocks must not change a number, and every op
must declare every block it reads and writes (else some order runs it too early)."""

import numpy as np
import pytest
from conftest import graph_shuffle

from minisinga import autograd, layer, model, opt, tensor

W = 6  # every value of the program is (batch, W)
UNARY = ["relu", "tanh", "sigmoid", "center", "softmax", "dropout", "bn", "linear",
         "transpose2", "atan", "flip", "pad_edge"]
BINARY = ["add", "sub", "mul", "concat_linear", "slice_add", "max2", "mean3", "where_gt"]


class RandomNet(model.Model):
    def __init__(self, seed, ops=14):
        super().__init__()
        r = np.random.default_rng(seed)
        self.inp = layer.Linear(W)
        self.prog = []
        for i in range(ops):
            op = str(r.choice(UNARY + BINARY))
            # operands: mostly recent values, sometimes any older one (long-lived blocks)
            pick = [int(max(0, i - r.integers(0, 3)) if r.random() < 0.7 else r.integers(i + 1))
                    for _ in range(2)]
            if op in ("linear", "concat_linear"):
                setattr(self, f"fc{i}", layer.Linear(W))
            elif op == "bn":
                setattr(self, f"bn{i}", layer.BatchNorm2d())
            self.prog.append((op, pick))
        sinks = r.choice(ops + 1, size=3, replace=False)
        self.sinks = [int(s) for s in sinks]  # summed into the head: several live values
        self.head = layer.Linear(4)
        self.loss = layer.SoftMaxCrossEntropy()

    def forward(self, x):
        vals = [self.inp(x)]
        for i, (op, (a, b)) in enumerate(self.prog):
            va, vb = vals[a], vals[b]
            if op == "relu":
                v = autograd.relu(va)
            elif op == "tanh":
                v = autograd.tanh(va)
            elif op == "sigmoid":
                v = autograd.sigmoid(va)
            elif op == "center":
                v = autograd.sub(va, autograd.reduce_mean(va, [1], True))
            elif op == "softmax":
                v = autograd.softmax(va, 1)
            elif op == "dropout":
                v = autograd.dropout(va, 0.25)
            elif op == "bn":
                v = getattr(self, f"bn{i}")(va)
            elif op == "linear":
                v = getattr(self, f"fc{i}")(va)
            elif op == "transpose2":
                v = autograd.transpose(autograd.mul(autograd.transpose(va, [1, 0]),
                                                    autograd.transpose(va, [1, 0])), [1, 0])
            elif op == "add":
                v = autograd.add(va, vb)
            elif op == "sub":
                v = autograd.sub(va, vb)
            elif op == "mul":
                v = autograd.mul(va, autograd.tanh(vb))
            elif op == "atan":
                v = autograd.atan(va)
            elif op == "flip":  # indexing with a negative step: a gather of the columns
                v = va[:, ::-1]
            elif op == "pad_edge":  # edge padding by 2, then the middle, shifted by one
                v = autograd.pad(va, "edge", [0, 2, 0, 2])[:, 1:W + 1]
            elif op == "max2":
                v = autograd.max(va, vb)
            elif op == "mean3":
                v = autograd.mean(va, vb, va)
            elif op == "where_gt":
                v = autograd.where(autograd.tanh(va), vb, autograd.greater(va, vb))
            elif op == "concat_linear":
                v = getattr(self, f"fc{i}")(autograd.concat([va, vb], 1))
            else:  # slice_add: the two halves of one value, swapped, plus another
                lo = autograd.slice(va, [0], [W // 2], [1])
                hi = autograd.slice(va, [W // 2], [W], [1])
                v = autograd.add(autograd.concat([hi, lo], 1), vb)
            vals.append(v)
        h = vals[self.sinks[0]]
        for s in self.sinks[1:]:
            h = autograd.add(h, vals[s])
        return self.head(h)

    def train_one_batch(self, x, y):
        out = self.forward(x)
        loss = self.loss(out, y)
        self.optimizer(loss)
        return out, loss


def train(dev, seed, graph, sequential, steps=3):
    dev.SetRandSeed(seed)
    r = np.random.default_rng(1000 + seed)
    tx = tensor.Tensor((8, 5), dev)
    ty = tensor.Tensor((8,), dev, dtype=tensor.int32)
    m = RandomNet(seed)
    m.set_optimizer(opt.SGD(0.1, momentum=0.9, weight_decay=1e-4) if seed % 2
                    else opt.Adam(0.02))
    tx.copy_from_numpy(r.standard_normal((8, 5)).astype(np.float32))
    m.compile([tx], is_train=True, use_graph=graph, sequential=sequential)
    trace = []
    for _ in range(steps):
        tx.copy_from_numpy(r.standard_normal((8, 5)).astype(np.float32))
        ty.copy_from_numpy(r.integers(0, 4, 8).astype(np.int32))
        out, loss = m(tx, ty)
        trace.append(out.to_numpy())
        trace.append(loss.to_numpy())
    trace += [v.to_numpy() for v in m.get_states().values()]
    if graph and dev.is_cuda:  # the replays after the first ran as one captured CUDA graph
        assert dev.cuda_graph_captured, dev.cuda_graph_failure
    m.graph(False)
    return trace


@pytest.mark.parametrize("seed", range(12))
def test_random_programs_train_the_same_eager_and_in_graph_mode(dev, seed):
    ref = train(dev, seed, graph=False, sequential=True)
    assert all(np.isfinite(a).all() for a in ref), "the program itself overflowed"
    for sequential, shuffle in ((True, 0), (False, 0), (False, 7919 + seed)):
        with graph_shuffle(shuffle):
            got = train(dev, seed, graph=True, sequential=sequential)
        assert len(got) == len(ref)
        for i, (a, b) in enumerate(zip(got, ref)):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6,
                                       err_msg=f"seed {seed} sequential {sequential} "
                                               f"shuffle {shuffle} item {i}")


def test_shuffle_seed_from_environment():
    from test_conv import _run_with_env

    code = "from minisinga import _core\nprint(_core._set_graph_shuffle(0))\n"
    r = _run_with_env(code, MINISINGA_GRAPH_SHUFFLE="12")
    assert r.returncode == 0 and r.stdout.split() == ["12"], r.stderr
    for bad in ("-3", "x1"):
        r = _run_with_env(code, MINISINGA_GRAPH_SHUFFLE=bad)
        assert r.returncode != 0
        assert f"MINISINGA_GRAPH_SHUFFLE must be a non-negative integer seed, got '{bad}'" \
            in r.stderr, r.stderr[-2000:]
