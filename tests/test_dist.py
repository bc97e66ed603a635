"""DistOpt and the communicators: in-process checks (arguments, one-rank groups, eager ==
graph) and two real processes spawned on this host (shared-memory communicator)."""

import os

import numpy as np
import pytest
from dist_helpers import need_data, ok, params, ranks, reference, run_worker

from minisinga import _core, layer, model, opt, tensor
from minisinga.dist import DistError, NcclIdHolder, ShmCommunicator, timeout_seconds

# ---- arguments ----


def test_bad_arguments_give_clear_errors():
    sgd = opt.SGD(0.1)
    h = NcclIdHolder()
    with pytest.raises(TypeError, match="Optimizer"):
        opt.DistOpt(object(), nccl_id=h, local_rank=0, world_size=1)
    with pytest.raises(TypeError, match="NcclIdHolder"):
        opt.DistOpt(sgd, nccl_id="abc", local_rank=0, world_size=1)
    with pytest.raises(ValueError, match="local_rank and world_size"):
        opt.DistOpt(sgd, nccl_id=h, world_size=2)
    with pytest.raises(ValueError, match="world_size must be >= 1"):
        opt.DistOpt(sgd, nccl_id=h, local_rank=0, world_size=0)
    with pytest.raises(ValueError, match=r"local_rank must be in \[0, 2\), got 2"):
        opt.DistOpt(sgd, nccl_id=h, local_rank=2, world_size=2)
    with pytest.raises(ValueError, match="local_rank"):
        opt.DistOpt(sgd, nccl_id=h, local_rank=-1, world_size=2)
    with pytest.raises(TypeError, match="world_size must be an int"):
        opt.DistOpt(sgd, nccl_id=h, local_rank=0, world_size=2.0)
    with pytest.raises(ValueError, match="buffSize"):
        opt.DistOpt(sgd, nccl_id=h, local_rank=0, world_size=1, buffSize=0)
    with pytest.raises(ValueError, match="rank must be"):
        ShmCommunicator(h.token, 3, 2)


def test_timeout_from_environment(monkeypatch):
    monkeypatch.setenv("MINISINGA_DIST_TIMEOUT", "7.5")
    assert timeout_seconds() == 7.5
    monkeypatch.setenv("MINISINGA_DIST_TIMEOUT", "soon")
    with pytest.raises(ValueError, match="MINISINGA_DIST_TIMEOUT"):
        timeout_seconds()
    monkeypatch.setenv("MINISINGA_DIST_TIMEOUT", "-1")
    with pytest.raises(ValueError, match="positive"):
        timeout_seconds()


def test_missing_peers_time_out_with_names():
    h = NcclIdHolder()
    with pytest.raises(DistError, match=r"found no group .* rank 0 did not start"):
        ShmCommunicator(h.token, 1, 2, timeout=0.5)
    with pytest.raises(DistError, match=r"joining the group waiting for rank\(s\) \[1\]"):
        ShmCommunicator(h.token, 0, 2, timeout=0.5)
    assert not os.path.exists(f"/dev/shm/minisinga_{h.token}")  # nothing left behind


def test_nccl_id_holder_pickles_and_needs_no_gpu():
    import pickle

    h = pickle.loads(pickle.dumps(NcclIdHolder()))
    assert len(h.token) == 32
    if not _core.cuda_device_count():
        assert h.id is None


def test_host_sparse_all_reduce_selects_with_the_select_kernels():
    # One rank: what is sent is what the select kernels pick (ties at the k-th magnitude in
    # index order, NaN never sent), the residual keeps the rest; float16 tensors take part.
    c = ShmCommunicator(NcclIdHolder().token, 0, 1)
    v = np.random.default_rng(0).integers(-3, 4, 400).astype(np.float32)
    v[[5, 9]] = np.nan
    cases = [(True, 0.1), (True, 1.0), (False, 2.0)]
    for topk, spars in cases:
        a = tensor.Tensor((300,), data=v[:300])
        b = tensor.Tensor((100,), dtype=tensor.float16, data=v[300:].astype(np.float16))
        res = tensor.zeros((400,))
        c.start_sparse_all_reduce([a.data, b.data], res.data, spars, topk).wait()
        want = _core.select_sparse(_core_tensor(v), spars, topk).to_numpy()
        mag = np.where(np.isnan(v), 0, np.abs(v))
        if topk:
            k = int(np.ceil(spars * v.size))
            order = np.lexsort((np.arange(v.size), -mag))
            assert want.tolist() == sorted(order[:min(k, np.count_nonzero(mag))].tolist())
        sent = np.zeros_like(v)
        sent[want] = v[want]
        got = np.concatenate([a.to_numpy(), b.to_numpy().astype(np.float32)])
        np.testing.assert_array_equal(got, sent)
        kept = np.where(sent != 0, 0, v)
        np.testing.assert_array_equal(res.to_numpy(), kept)
    c.close()


def _core_tensor(a):
    t = _core.Tensor(list(a.shape), _core.default_device(), _core.DType.float32)
    t.copy_from_numpy(a)
    return t


def test_modes_reject_bad_options():
    d = opt.DistOpt(opt.SGD(0.1), nccl_id=NcclIdHolder(), local_rank=0, world_size=1)
    x = tensor.Tensor((2, 3), data=np.ones((2, 3), np.float32))
    with pytest.raises(ValueError, match="spars"):
        d.backward_and_sparse_update(x, topK=True, spars=0.0)
    with pytest.raises(ValueError, match="threshold"):
        d.backward_and_update_half(x, threshold=0)
    with pytest.raises(ValueError, match="clip_Value"):
        d.backward_and_update_half(x, clipping=True, clip_Value=-1)
    with pytest.raises(TypeError, match="spars must be a number"):
        d.sparsification(x, None, "a lot", True)
    d.close()


# ---- one rank, in process: the pipeline itself ----


def _one_rank_run(mode, graph, steps=4, buff=3000):
    import dist_worker

    a = dist_worker.parse(["spawn", "unused", "--mode", mode, "--steps", str(steps),
                           "--batch", "32"] + (["--graph"] if graph else []))
    d = opt.DistOpt(dist_worker.sgd_factory(a)(), nccl_id=NcclIdHolder(), local_rank=0,
                    world_size=1, buffSize=buff)
    p, losses = dist_worker.train(0, 1, None, a, d)
    names = a.graph_node_names
    d.close()
    return p, losses, names


@pytest.mark.parametrize("mode", ["plain", "half", "partialUpdate", "sparseTopK"])
def test_one_rank_eager_equals_graph(mode):
    need_data()
    pe, le, _ = _one_rank_run(mode, False)
    pg, lg, names = _one_rank_run(mode, True)
    np.testing.assert_allclose(le, lg, rtol=1e-6)
    for k in pe:
        np.testing.assert_allclose(pe[k], pg[k], rtol=1e-5, atol=1e-7)
    comm_nodes = [n for n in names if n.startswith("dist:")]
    assert comm_nodes, "graph mode must record the communication as nodes"


def test_one_rank_plain_equals_plain_sgd():
    need_data()
    p, losses, _ = _one_rank_run("plain", False)
    ref, ref_losses = reference("--steps", "4", "--batch", "32")
    np.testing.assert_allclose(losses, ref_losses, rtol=1e-6)
    for k in p:
        np.testing.assert_allclose(p[k], ref[k], rtol=1e-6, atol=1e-8)


class _Linear(model.Model):
    def __init__(self):
        super().__init__()
        self.fc = layer.Linear(3)
        self.loss = layer.SoftMaxCrossEntropy()

    def forward(self, x):
        return self.fc(x)

    def train_one_batch(self, x, y):
        loss = self.loss(self.forward(x), y)
        self.optimizer(loss)
        return loss


@pytest.mark.parametrize("graph", [False, True], ids=["eager", "graph"])
def test_one_rank_scheduled_settings_equal_the_optimizer_alone(graph):
    """DistOpt around an SGD whose momentum and weight decay are schedules trains as that SGD
    alone (one rank: the all-reduce is the identity), eager and replayed."""
    r = np.random.default_rng(0)
    xs = [r.standard_normal((8, 5)).astype(np.float32) for _ in range(4)]
    ys = [r.integers(0, 3, 8).astype(np.int32) for _ in range(4)]

    def train(wrap):
        tensor.get_default_device().SetRandSeed(1)
        sgd = opt.SGD(0.1, momentum=opt.ExponentialDecay(0.9, 1, 0.8),
                      weight_decay=opt.ExponentialDecay(0.01, 1, 0.5))
        o = opt.DistOpt(sgd, nccl_id=NcclIdHolder(), local_rank=0, world_size=1) if wrap \
            else sgd
        m = _Linear()
        m.set_optimizer(o)
        tx, ty = tensor.from_numpy(xs[0]), tensor.from_numpy(ys[0])
        m.compile([tx], is_train=True, use_graph=graph)
        for x, y in zip(xs, ys):
            tx.copy_from_numpy(x)
            ty.copy_from_numpy(y)
            m(tx, ty)
        if wrap:
            o.close()
        return m.fc.W.to_numpy(), sgd.hyper_value.to_numpy()

    (w, h), (w_ref, h_ref) = train(True), train(False)
    np.testing.assert_allclose(h, [0.9 * 0.8 ** 4, 0, 0.01 * 0.5 ** 4], rtol=1e-6)
    np.testing.assert_array_equal(h, h_ref)
    np.testing.assert_allclose(w, w_ref, rtol=1e-6, atol=1e-7)


# ---- two spawned ranks ----


def test_spawn_communicator_operations(tmp_path):
    # Tiny slots make every operation go through the shared memory in many chunks.
    ok(run_worker("spawn", tmp_path, "--what", "comm", MINISINGA_SHM_SLOT_BYTES=4096))
    check_comm_results(ranks(tmp_path, 2, "comm"), 2)


def check_comm_results(res, world):
    import dist_worker

    xs = [dist_worker.comm_inputs(r) for r in range(world)]
    for r, out in enumerate(res):
        np.testing.assert_allclose(out["sum_a"], sum(x["a"] for x in xs), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(out["sum_b"], sum(x["b"] for x in xs), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(out["sum_c"], sum(x["c"] for x in xs), rtol=1e-5, atol=1e-6)
        half = 0.5 * sum(np.clip(x["a"], -1, 1).astype(np.float16).astype(np.float32)
                         for x in xs)
        np.testing.assert_allclose(out["half_a"], half, rtol=1e-6, atol=1e-7)
        for topk, spars in ((True, 0.1), (False, 1.5)):
            sent = []
            for x in xs:
                s = x["s"]
                keep = np.zeros_like(s)
                idx = (np.argsort(-np.abs(s))[:int(np.ceil(spars * s.size))] if topk
                       else np.flatnonzero(np.abs(s) >= spars))
                keep[idx] = s[idx]
                sent.append(keep)
            np.testing.assert_allclose(out[f"sparse_{topk}"], sum(sent), rtol=1e-6, atol=1e-7)
            np.testing.assert_array_equal(out[f"res_{topk}"], xs[r]["s"] - sent[r])
        np.testing.assert_array_equal(out["bcast"], xs[world - 1]["b"])
        np.testing.assert_array_equal(out["gather"], np.stack([x["c"] for x in xs]))
    for k in res[0]:  # the same bits on every rank (residuals are each rank's own)
        for out in res[1:] if not k.startswith("res_") else []:
            np.testing.assert_array_equal(out[k], res[0][k])


@pytest.mark.parametrize("graph", [False, True], ids=["eager", "graph"])
def test_spawn_plain_matches_single_process(tmp_path, graph):
    need_data()
    ok(run_worker("spawn", tmp_path, "--steps", "8", *(["--graph"] if graph else [])))
    r0, r1 = ranks(tmp_path)
    ref, ref_losses = reference("--steps", "8")
    for k, v in params(r0).items():
        np.testing.assert_array_equal(v, params(r1)[k])  # identical on both ranks
        np.testing.assert_allclose(v, ref[k], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose((r0["losses"] + r1["losses"]) / 2, ref_losses, rtol=1e-5)
    np.testing.assert_array_equal(r0["metric"], [3, 30])  # 1 + 2, 10 + 20
    np.testing.assert_array_equal(r1["metric"], [3, 30])


@pytest.mark.parametrize("graph", [False, True], ids=["eager", "graph"])
def test_spawn_ranks_start_from_rank0_parameters(tmp_path, graph):
    need_data()
    ok(run_worker("spawn", tmp_path, "--steps", "3", "--rank-seeds",
                  *(["--graph"] if graph else [])))
    r0, r1 = ranks(tmp_path)
    for k, v in params(r0).items():
        np.testing.assert_array_equal(v, params(r1)[k])


def test_spawn_half_within_fp16_tolerance(tmp_path):
    need_data()
    ok(run_worker("spawn", tmp_path, "--steps", "8", "--mode", "half"))
    r0, r1 = ranks(tmp_path)
    ref, _ = reference("--steps", "8")
    for k, v in params(r0).items():
        np.testing.assert_array_equal(v, params(r1)[k])
        np.testing.assert_allclose(v, ref[k], rtol=0, atol=2e-3 * np.abs(ref[k]).max())


@pytest.mark.parametrize("mode,graph", [("partialUpdate", False), ("partialUpdate", True),
                                        ("sparseTopK", False), ("sparseThreshold", True)])
def test_spawn_compressed_modes_reduce_the_loss(tmp_path, mode, graph):
    need_data()
    ok(run_worker("spawn", tmp_path, "--steps", "30", "--mode", mode,
                  *(["--graph"] if graph else [])))
    r0, r1 = ranks(tmp_path)
    loss = (r0["losses"] + r1["losses"]) / 2
    assert loss[-5:].mean() < 0.75 * loss[:5].mean(), loss
    p0, p1 = params(r0), params(r1)
    if mode.startswith("sparse"):  # every rank applies the same sparse sum
        for k in p0:
            np.testing.assert_array_equal(p0[k], p1[k])
    else:  # only one partition is averaged per step: the ranks differ elsewhere
        assert any(not np.array_equal(p0[k], p1[k]) for k in p0)


def test_communication_starts_before_backward_ends(monkeypatch):
    """Buckets are handed to the communicator as soon as they fill, while backward still
    yields later gradients (eager), and recorded that way in graph mode."""
    need_data()
    from minisinga.dist import distopt

    events = []
    real_backward = distopt.autograd.backward

    def logged_backward(loss, **kw):
        for p, g in real_backward(loss, **kw):
            events.append("grad")
            yield p, g

    real_start = ShmCommunicator.start_all_reduce

    def logged_start(self, *a, **k):
        events.append("start")
        return real_start(self, *a, **k)

    monkeypatch.setattr(distopt.autograd, "backward", logged_backward)
    monkeypatch.setattr(ShmCommunicator, "start_all_reduce", logged_start)
    # buffSize 300: fc2.W (320 elements) goes alone as soon as it is final, before fc1's
    # gradients exist (the MLP yields 4 gradients per step).
    _one_rank_run("plain", False, steps=1, buff=300)
    assert events.count("grad") == 4
    assert events.index("start") < len(events) - 1 - events[::-1].index("grad"), events
    _, _, names = _one_rank_run("plain", True, steps=2, buff=300)
    start, wait = names.index("dist:plain"), names.index("dist:wait")
    assert any(not n.startswith("dist:") for n in names[start:wait]), names


def test_distopt_learning_rate_is_the_wrapped_optimizers():
    sgd = opt.SGD(0.1)
    d = opt.DistOpt(sgd, nccl_id=NcclIdHolder(), local_rank=0, world_size=1)
    try:
        d.lr = 0.25  # sets the wrapped optimizer's schedule (and its current rate)
        assert d.lr is sgd.lr and sgd.lr.init_value == 0.25
        np.testing.assert_allclose(sgd.lr_value.to_numpy(), [0.25])
    finally:
        d.close()


# ---- the watchdog that bounds NCCL's stream work (driven here by stand-in events) ----


def test_watchdog_aborts_a_stuck_operation_once_and_raises_after():
    import threading
    import time

    from minisinga.dist.base import Watchdog

    aborted = []
    w = Watchdog(0.2, lambda: aborted.append(threading.current_thread().name), "comm rank 1")
    w.track(lambda: True, "all_reduce of 4 elements")  # done: dropped
    w.track(lambda: False, "broadcast")  # never done: a dead peer
    deadline = time.monotonic() + 10
    while not aborted and time.monotonic() < deadline:
        time.sleep(0.01)
    assert aborted == ["comm rank 1-watchdog"]
    with pytest.raises(DistError, match=r"comm rank 1: broadcast did not complete within 0.2 s"):
        w.check()
    with pytest.raises(DistError, match="aborted"):
        w.track(lambda: True, "all_reduce")
    w.close()
    assert aborted == ["comm rank 1-watchdog"]  # once


def test_watchdog_lets_slow_but_finishing_work_be():
    import time

    from minisinga.dist.base import Watchdog

    aborted = []
    w = Watchdog(0.5, lambda: aborted.append(1), "comm")
    t_done = time.monotonic() + 0.2
    for _ in range(50):
        w.track(lambda: time.monotonic() > t_done, "all_reduce")
    time.sleep(1.0)
    w.check()
    assert not aborted and not w._pending
    w.close()
