"""The NCCL communicator and DistOpt on CUDA tensors (needs a GPU and cupy: skipped without).

One GPU: a one-rank NCCL group exercises every operation (fusion, fp16 wire, sparse,
broadcast, all_gather) through cupy on our pointers and stream. Two GPUs: two spawned ranks
train over NCCL and must match single-process training."""

import numpy as np
import pytest
from dist_helpers import ok, params, ranks, reference, run_worker

from minisinga import device, opt, tensor
from minisinga.dist import NcclIdHolder

try:
    import cupy  # noqa: F401

    HAVE_CUPY = True
except ImportError:
    HAVE_CUPY = False

pytestmark = pytest.mark.skipif(not (device.cuda_available() and HAVE_CUPY),
                                reason="needs a GPU and cupy (pip install 'minisinga[cuda]')")


def _t(a, dev):
    t = tensor.Tensor(a.shape, dev)
    t.copy_from_numpy(a)
    return t


def test_nccl_one_rank_operations():
    from minisinga.dist import NcclCommunicator

    dev = device.create_cuda_gpu_on(0)
    h = NcclIdHolder()
    assert h.id is not None, h.nccl_error
    c = NcclCommunicator(h.id, 0, 1, dev)
    r = np.random.default_rng(0)
    a = r.standard_normal(1000).astype(np.float32)
    b = r.standard_normal((3, 4)).astype(np.float32)
    ta, tb = _t(a, dev), _t(b, dev)
    c.all_reduce(ta.data)
    c.fused_all_reduce([ta.data, tb.data])
    c.synchronize()
    np.testing.assert_allclose(ta.to_numpy(), a, rtol=1e-6)
    np.testing.assert_allclose(tb.to_numpy(), b, rtol=1e-6)
    c.start_all_reduce([ta.data], scale=0.5, wire="float16", clip=1.0)
    c.synchronize()
    np.testing.assert_allclose(ta.to_numpy(),
                               0.5 * np.clip(a, -1, 1).astype(np.float16).astype(np.float32),
                               rtol=1e-3)
    s, res = _t(a, dev), _t(np.zeros_like(a), dev)
    c.start_sparse_all_reduce([s.data], res.data, 0.1, True)
    c.synchronize()
    sent = np.zeros_like(a)
    idx = np.argsort(-np.abs(a))[:100]
    sent[idx] = a[idx]
    np.testing.assert_allclose(s.to_numpy(), sent, rtol=1e-6)
    np.testing.assert_allclose(res.to_numpy(), a - sent, rtol=1e-6)
    c.broadcast(tb.data, 0)
    out = tensor.Tensor((1, 3, 4), dev)
    c.all_gather(tb.data, out.data)
    np.testing.assert_allclose(out.to_numpy()[0], tb.to_numpy())
    c.close()


@pytest.mark.parametrize("graph", [False, True], ids=["eager", "graph"])
def test_distopt_on_cuda_one_rank_matches_sgd(graph):
    import dist_worker

    dev = device.create_cuda_gpu_on(0)
    x, y = dist_worker.load(64 * 4)

    def train(sgd):
        dev.SetRandSeed(0)
        tx, ty = tensor.Tensor((64, 784), dev), tensor.Tensor((64,), dev, dtype=tensor.int32)
        m = dist_worker.make_model(32)
        m.set_optimizer(sgd)
        m.compile([tx], is_train=True, use_graph=graph, sequential=True)
        for i in range(4):
            tx.copy_from_numpy(x[64 * i:64 * (i + 1)])
            ty.copy_from_numpy(y[64 * i:64 * (i + 1)])
            m(tx, ty, "plain", None)
        return {k: v.to_numpy() for k, v in m.get_params().items()}

    ref = train(opt.SGD(0.05, momentum=0.9, weight_decay=1e-5))
    d = opt.DistOpt(opt.SGD(0.05, momentum=0.9, weight_decay=1e-5), nccl_id=NcclIdHolder(),
                    local_rank=0, world_size=1)
    got = train(d)
    d.close()
    for k in ref:
        np.testing.assert_allclose(got[k], ref[k], rtol=1e-5, atol=1e-6)


@pytest.mark.skipif(device.get_num_gpus() < 2, reason="needs two GPUs")
@pytest.mark.parametrize("graph", [False, True], ids=["eager", "graph"])
def test_two_gpus_plain_matches_single_process(tmp_path, graph):
    ok(run_worker("spawn", tmp_path, "--device", "cuda", "--steps", "8",
                  *(["--graph"] if graph else [])))
    r0, r1 = ranks(tmp_path)
    ref, _ = reference("--steps", "8")
    for k, v in params(r0).items():
        np.testing.assert_array_equal(v, params(r1)[k])
        np.testing.assert_allclose(v, ref[k], rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(r0["metric"], [3, 30])
