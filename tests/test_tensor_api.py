"""SINGA's tensor API beyond the basics: indexing, floor division, in-place dtype change,
einsum/tensordot, row/column helpers, SINGA's positional `out` arguments."""

import numpy as np
import pytest
from gradcheck import check_op

from minisinga import autograd, device, layer, model, opt, tensor

R = np.random.default_rng(7)
X = R.standard_normal((3, 4, 5)).astype(np.float32)

KEYS = [0, -1, 2, (1, 2), (1, -1, 4), (slice(None), 1), (Ellipsis, slice(None, None, -1)),
        (None, 0, slice(1, 3)), slice(None), (Ellipsis,), (slice(5, 1),),
        (0, slice(None, None, -2), None),
        (slice(1, None, 2), Ellipsis, slice(0, 5, 3)), (slice(-2, None), None, slice(None, 1)),
        (np.int64(1), slice(-100, 100)), (Ellipsis, 3), (slice(None, None, -1), 2, slice(3, 0, -2))]


@pytest.mark.parametrize("key", KEYS, ids=repr)
def test_getitem_matches_numpy(dev, key):
    t = tensor.Tensor(data=X, device=dev)
    got = t[key]
    assert got.device == dev
    np.testing.assert_array_equal(got.to_numpy(), X[key])


@pytest.mark.parametrize("key", [(1, slice(None, 3)), (Ellipsis, slice(None, None, -2)),
                                 (slice(None, None, -1), None, 3)], ids=repr)
def test_getitem_gradient(key):
    check_op(lambda x: x[key], lambda x: x[key], [X])


def test_getitem_returns_a_copy():
    t = tensor.from_numpy(X)
    for y in (t[...], t[:], t[0]):
        y += 1.0
    np.testing.assert_array_equal(t.to_numpy(), X)


@pytest.mark.parametrize("key,err,msg", [
    (3, IndexError, "index 3 is out of range for axis 0 of size 3"),
    ((0, 0, 0, 0), IndexError, "too many indices"),
    ((Ellipsis, Ellipsis), IndexError, "single ellipsis"),
    ("a", IndexError, "got str"),
    ((0, [1, 2]), IndexError, "got list"),
    (True, IndexError, "got bool"),
])
def test_getitem_errors(key, err, msg):
    with pytest.raises(err, match=msg):
        tensor.from_numpy(X)[key]


def test_getitem_in_a_recorded_graph_equals_eager():
    class Net(model.Model):
        def __init__(self):
            super().__init__()
            self.fc = layer.Linear(6)
            self.loss = layer.MeanSquareError()

        def forward(self, x):
            y = self.fc(x)
            return y[:, ::-1][:, 1:5] * y[:, 2:]  # reversed, sliced and strided views

        def train_one_batch(self, x, t):
            out = self.forward(x)
            loss = self.loss(out, t)
            self.optimizer(loss)
            return out, loss

    x = R.standard_normal((8, 5)).astype(np.float32)
    t = R.standard_normal((8, 4)).astype(np.float32)
    results = []
    for graph in (False, True):
        dev = device.create_cpu_device()
        dev.SetRandSeed(3)
        m = Net()
        m.set_optimizer(opt.SGD(0.1, momentum=0.9))
        tx, tt = tensor.Tensor(data=x, device=dev), tensor.Tensor(data=t, device=dev)
        m.compile([tx], is_train=True, use_graph=graph)
        losses = [m(tx, tt)[1].item() for _ in range(4)]
        results.append((losses, m.fc.W.to_numpy()))
    np.testing.assert_allclose(results[1][0], results[0][0], rtol=1e-5)
    np.testing.assert_allclose(results[1][1], results[0][1], rtol=1e-5, atol=1e-6)
    assert results[0][0][-1] < results[0][0][0]


def test_floordiv():
    a = np.array([-7.5, -3, 0, 2.5, 7], np.float32)
    t = tensor.from_numpy(a)
    np.testing.assert_array_equal((t // 2).to_numpy(), a // 2)
    np.testing.assert_array_equal((7 // tensor.from_numpy(np.float32([2, -2, 3]))).to_numpy(),
                                  np.float32([3, -4, 2]))
    np.testing.assert_array_equal((t // t[1:2]).to_numpy(), a // a[1])
    assert not (t // 2).requires_grad


def test_to_type_in_place_and_copy_from_numpy():
    t = tensor.from_numpy(np.float32([1.5, -2.25]))
    assert t.to_type(tensor.float16) is t and t.dtype == tensor.float16
    np.testing.assert_array_equal(t.to_numpy(), np.float16([1.5, -2.25]))
    t.copy_from(np.array([[3, 4]]))  # numpy, SINGA style: converted, reshaped
    np.testing.assert_array_equal(t.to_numpy(), np.float16([3, 4]))
    with pytest.raises(ValueError, match="does not fit"):
        t.copy_from(np.zeros(3))


@pytest.mark.parametrize("repeats,axis", [(2, None), (2, 1), (2, -1), ([1, 0, 2], 0)])
def test_repeat(repeats, axis):
    got = tensor.repeat(tensor.from_numpy(X), repeats, axis).to_numpy()
    np.testing.assert_array_equal(got, np.repeat(X, repeats, axis))
    with pytest.raises(IndexError, match="axis 3 is out of range"):
        tensor.from_numpy(X).repeat(2, 3)


A = R.standard_normal((2, 3, 4)).astype(np.float32)
B = R.standard_normal((4, 5)).astype(np.float32)
C = R.standard_normal((2, 4, 5)).astype(np.float32)


@pytest.mark.parametrize("spec,args", [
    ("ijk,kl->ijl", (A, B)), ("bij,bjk->bik", (A, C)), ("bij,bjk->kib", (A, C)),
    ("ijk->kji", (A,)), ("ijk->j", (A,)), ("ijk->", (A,)), ("ijk,kl", (A, B)),
    ("ijk,ml->ikm", (A, B)), ("ijk,bkl->", (A, C)), ("ij,kl->ijkl", (B, B)),
    ("kl,kl->l", (B, B)), ("ijk", (A,)),
])
def test_einsum_matches_numpy(spec, args):
    got = tensor.einsum(spec, *[tensor.from_numpy(a) for a in args]).to_numpy()
    np.testing.assert_allclose(got, np.einsum(spec, *args), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("spec", ["ijk,kl->ijl", "bij,bjk->kib", "ijk->j"])
def test_einsum_float16(spec):
    """float16 operands give a float16 result, within float16 rounding of numpy's."""
    args = {"ijk,kl->ijl": (A, B), "bij,bjk->kib": (A, C), "ijk->j": (A,)}[spec]
    halves = [a.astype(np.float16) for a in args]
    got = tensor.einsum(spec, *[tensor.from_numpy(h) for h in halves])
    assert got.dtype == tensor.float16
    want = np.einsum(spec, *[h.astype(np.float64) for h in halves])
    np.testing.assert_allclose(got.to_numpy().astype(np.float64), want, rtol=5e-3, atol=5e-3)


@pytest.mark.parametrize("spec,args,msg", [
    ("ii->i", (B,), "one distinct letter"), ("ij->i", (A,), "do not fit"),
    ("ijk,kl->ijl", (A,), "1 were given"), ("ijk,jl->ijl", (A, B), "sizes 3 and 4"),
    ("ijk->ix", (A,), "output subscripts"), ("...k->k", (A,), "no '...'"),
])
def test_einsum_errors(spec, args, msg):
    with pytest.raises(ValueError, match=msg):
        tensor.einsum(spec, *[tensor.from_numpy(a) for a in args])


@pytest.mark.parametrize("axes", [2, 1, 0, ([0, 2], [0, 1]), (1, 0), ([2], [1])])
def test_tensordot_matches_numpy(axes):
    b = C if isinstance(axes, tuple) and axes != (1, 0) else C.transpose(1, 2, 0)
    if axes == (1, 0):
        b = R.standard_normal((3, 6)).astype(np.float32)
    if axes == 2:
        b = R.standard_normal((3, 4, 2)).astype(np.float32)
    got = tensor.tensordot(tensor.from_numpy(A), tensor.from_numpy(b), axes).to_numpy()
    np.testing.assert_allclose(got, np.tensordot(A, b, axes), rtol=1e-4, atol=1e-4)


def test_rows_and_columns():
    m = R.standard_normal((3, 4)).astype(np.float32)
    M = tensor.from_numpy(m)
    np.testing.assert_allclose(tensor.sum_columns(M).to_numpy(), m.sum(1, keepdims=True),
                               rtol=1e-6)
    np.testing.assert_allclose(tensor.sum_rows(M).to_numpy(), m.sum(0, keepdims=True),
                               rtol=1e-6)
    col, row = np.float32([1, 2, 3]), np.float32([1, 2, 3, 4])
    assert tensor.add_column(2.0, tensor.from_numpy(col), 0.5, M) is M
    np.testing.assert_allclose(M.to_numpy(), 2 * col[:, None] + 0.5 * m, rtol=1e-6)
    tensor.add_row(-1.0, tensor.from_numpy(row), 1.0, M)
    np.testing.assert_allclose(M.to_numpy(), 2 * col[:, None] + 0.5 * m - row, rtol=1e-6)
    with pytest.raises(ValueError, match="v has 4 elements"):
        tensor.add_column(1.0, tensor.from_numpy(row), 1.0, M)
    with pytest.raises(ValueError, match="expected a matrix"):
        tensor.sum_rows(tensor.from_numpy(X))


def test_singa_positional_out_arguments():
    x = tensor.from_numpy(X)
    out = tensor.zeros((3, 4, 5))
    assert tensor.softmax(x, out) is out  # SINGA: softmax(t, out)
    e = np.exp(X - X.max(-1, keepdims=True))
    np.testing.assert_allclose(out.to_numpy(), e / e.sum(-1, keepdims=True), rtol=1e-5)
    s = tensor.zeros((4, 5))
    assert tensor.sum(x, 0, s) is s  # SINGA: sum(t, axis, out)
    np.testing.assert_allclose(s.to_numpy(), X.sum(0), rtol=1e-5)
    p = tensor.zeros((3, 4, 5))
    assert tensor.pow(tensor.from_numpy(np.abs(X)), 2.0, p) is p
    np.testing.assert_allclose(p.to_numpy(), X ** 2, rtol=1e-5)


def test_small_helpers():
    assert tensor.product((3, 4, 5)) == 60 and tensor.product(()) == 1
    assert [tensor.sizeof(d) for d in (tensor.float32, tensor.float16, tensor.int32)] == [4, 2, 4]
    a = np.float32([-1.5, -0.5, 0.5, 2.0])
    np.testing.assert_array_equal(tensor.ceil(tensor.from_numpy(a)).to_numpy(), np.ceil(a))
    np.testing.assert_array_equal(tensor.floor(tensor.from_numpy(a)).to_numpy(), np.floor(a))
    raw = tensor.from_numpy(a).data
    t = tensor.from_raw_tensor(raw)
    assert t.data is raw and tensor.PlaceHolder is tensor.Tensor
    assert [u.shape for u in tensor.from_raw_tensors([raw, raw])] == [(4,), (4,)]
    with autograd.no_grad():
        assert tensor.contiguous(t) is t


def test_device_methods_as_in_singa(dev):
    # SINGA code calls these as methods and tests id() == -1 for a CPU
    assert dev.id() == (0 if dev.is_cuda else -1)
    assert device.create_cpu_device().id() == -1
    assert dev.graph_enabled() is False
    dev.EnableGraph(True)
    try:
        assert dev.graph_enabled() is True
    finally:
        dev.EnableGraph(False)
        dev.ResetGraph()
    assert device.get_gpu_ids() == list(range(device.get_num_gpus()))
    assert [d.id() for d in device.create_cuda_gpus_on(device.get_gpu_ids())] == \
        device.get_gpu_ids()


def test_gpu_queries_without_cuda_say_so():
    if device.cuda_available():
        with pytest.raises(RuntimeError, match=r"device_query\(7\): there are \d+ CUDA GPU"):
            device.device_query(7)
    else:
        with pytest.raises(RuntimeError, match=r"device_query\(0\): (minisinga was built "
                                               "without CUDA|no CUDA GPU is visible)"):
            device.get_gpu_mem_size(0)
    with pytest.raises(ValueError, match="non-negative int"):
        device.device_query(-1)


@pytest.mark.skipif(not device.cuda_available(), reason="needs a CUDA build and a GPU")
def test_cuda_gpu_mem_size_and_device_query(capsys):
    free, total = device.get_gpu_mem_size(0)
    assert 0 < total and 0 <= free <= total
    dev = device.create_cuda_gpu_on(0)
    t = tensor.Tensor((1 << 22,), dev).set_value(1.0)  # 16 MiB more in use
    dev.Sync()
    assert device.get_gpu_mem_size(0)[0] <= free
    del t
    text = device.device_query(0, verbose=True)
    assert text.startswith("GPU 0: ") and "compute capability" in text and "GiB memory" in text
    assert capsys.readouterr().out.strip() == text
