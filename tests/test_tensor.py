"""The Python Tensor API (SINGA's names) against numpy."""

import os
import subprocess
import sys

import numpy as np
import pytest

from minisinga import device, tensor


def T(a):
    return tensor.from_numpy(np.asarray(a))


def test_creation_and_properties():
    t = tensor.Tensor((2, 3))
    assert t.shape == (2, 3) and t.ndim() == 2 and t.size() == 6 and t.memsize() == 24
    assert t.dtype == tensor.float32 and t.device == device.get_default_device()
    np.testing.assert_array_equal(t.to_numpy(), 0)  # a never-written tensor reads as zeros
    np.testing.assert_array_equal(tensor.zeros((2, 2)).to_numpy(), 0)
    np.testing.assert_array_equal(tensor.ones((3,), dtype=tensor.int32).to_numpy(), 1)
    assert tensor.ones_like(t).shape == (2, 3) and tensor.zeros_like(t).dtype == t.dtype
    assert tensor.Tensor((4,), dtype="float16").dtype == tensor.float16
    assert tensor.Tensor((4,), dtype=np.int32).dtype == tensor.int32


def test_numpy_round_trips_and_dtype_conversion():
    a = np.arange(12, dtype=np.float64).reshape(3, 4)
    t = tensor.from_numpy(a)
    assert t.dtype == tensor.float32
    np.testing.assert_array_equal(t.to_numpy(), a)
    assert tensor.from_numpy(np.arange(3)).dtype == tensor.int32
    assert tensor.from_numpy(np.zeros(2, np.float16)).dtype == tensor.float16
    assert tensor.from_numpy(np.array([True, False])).dtype == tensor.float32  # masks
    t.copy_from_numpy(np.ones(12))  # any shape with the same number of elements
    np.testing.assert_array_equal(tensor.to_numpy(t), np.ones((3, 4)))
    f = np.asfortranarray(np.arange(6, dtype=np.float32).reshape(2, 3))
    np.testing.assert_array_equal(tensor.from_numpy(f).to_numpy(), f)


def test_copy_clone_astype_to_device():
    a = T(np.arange(6, dtype=np.float32).reshape(2, 3))
    c = a.clone()
    c += 1.0
    np.testing.assert_array_equal(a.to_numpy(), np.arange(6).reshape(2, 3))
    b = tensor.Tensor((2, 3))
    b.copy_from(a)
    np.testing.assert_array_equal(b.to_numpy(), a.to_numpy())
    h = a.as_type(tensor.float16)
    assert h.dtype == tensor.float16
    np.testing.assert_array_equal(h.to_numpy(), a.to_numpy().astype(np.float16))
    i = T([1.7, -1.7, 2.5]).as_type(tensor.int32)
    np.testing.assert_array_equal(i.to_numpy(), [1, -1, 2])
    other = device.create_cpu_device()
    moved = a.clone().to_device(other)
    assert moved.device == other
    np.testing.assert_array_equal(moved.to_numpy(), a.to_numpy())
    assert tensor.to_host(moved).device == device.get_default_device()


def test_reshape_is_a_view_transpose_materialises():
    a = T(np.arange(24, dtype=np.float32).reshape(2, 3, 4))
    r = a.reshape((4, -1))
    assert r.shape == (4, 6) and r.data.same_block(a.data)
    t = a.transpose((2, 0, 1))
    np.testing.assert_array_equal(t.to_numpy(), np.arange(24).reshape(2, 3, 4).transpose(2, 0, 1))
    assert not t.data.same_block(a.data)
    np.testing.assert_array_equal(a.reshape((6, 4)).T().to_numpy(),
                                  np.arange(24).reshape(6, 4).T)
    np.testing.assert_array_equal(T([[1, 2], [3, 4]]).repeat(2, 1).to_numpy(),
                                  [[1, 1, 2, 2], [3, 3, 4, 4]])


def test_in_place_initialisers():
    dev = device.get_default_device()
    dev.SetRandSeed(7)
    g = tensor.Tensor((20000,)).gaussian(1.0, 2.0).to_numpy()
    assert abs(g.mean() - 1.0) < 0.1 and abs(g.std() - 2.0) < 0.1
    u = tensor.Tensor((20000,)).uniform(-1, 3).to_numpy()
    assert u.min() >= -1 and u.max() < 3 and abs(u.mean() - 1) < 0.1
    b = tensor.Tensor((20000,)).bernoulli(0.25).to_numpy()
    assert set(np.unique(b)) <= {0, 1} and abs(b.mean() - 0.25) < 0.02
    np.testing.assert_array_equal(tensor.Tensor((3,)).set_value(2.5).to_numpy(), 2.5)
    dev.SetRandSeed(7)
    np.testing.assert_array_equal(tensor.Tensor((20000,)).gaussian(1.0, 2.0).to_numpy(), g)
    r = tensor.random((1000,)).to_numpy()
    assert 0 <= r.min() and r.max() < 1


def test_arithmetic_and_comparison_operators():
    x = np.array([[1.0, -2.0], [3.0, 0.5]], np.float32)
    y = np.array([2.0, 4.0], np.float32)
    a, b = T(x), T(y)
    np.testing.assert_allclose((a + b).to_numpy(), x + y)
    np.testing.assert_allclose((a - 1).to_numpy(), x - 1)
    np.testing.assert_allclose((1 - a).to_numpy(), 1 - x)
    np.testing.assert_allclose((a * b).to_numpy(), x * y)
    np.testing.assert_allclose((a / b).to_numpy(), x / y)
    np.testing.assert_allclose((2 / b).to_numpy(), 2 / y)
    np.testing.assert_allclose((b ** 2).to_numpy(), y ** 2)
    np.testing.assert_allclose((-a).to_numpy(), -x)
    np.testing.assert_allclose((a @ a).to_numpy(), x @ x, rtol=1e-6)
    np.testing.assert_array_equal((a > 0.7).to_numpy(), x > 0.7)
    np.testing.assert_array_equal((a <= b).to_numpy(), x <= y)
    np.testing.assert_array_equal((a == a).to_numpy(), 1)
    c = a.clone()
    c -= b
    c *= 2
    c /= 4
    np.testing.assert_allclose(c.to_numpy(), (x - y) * 2 / 4)


def test_module_functions():
    x = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
    a = T(x)
    for name, ref in [("abs", np.abs), ("exp", np.exp), ("sign", np.sign),
                      ("square", np.square), ("tanh", np.tanh),
                      ("relu", lambda v: np.maximum(v, 0)),
                      ("sigmoid", lambda v: 1 / (1 + np.exp(-v)))]:
        np.testing.assert_allclose(getattr(tensor, name)(a).to_numpy(), ref(x), rtol=1e-5,
                                   atol=1e-6)
    np.testing.assert_allclose(tensor.sqrt(tensor.abs(a)).to_numpy(), np.sqrt(np.abs(x)),
                               rtol=1e-6)
    np.testing.assert_allclose(tensor.log(tensor.exp(a)).to_numpy(), x, atol=1e-5)
    np.testing.assert_allclose(tensor.clip(a, -0.5, 0.5).to_numpy(), np.clip(x, -0.5, 0.5))
    np.testing.assert_allclose(tensor.pow(a, 2).to_numpy(), x ** 2, rtol=1e-6)
    np.testing.assert_allclose(tensor.sum(a).to_numpy(), x.sum(), rtol=1e-5)
    np.testing.assert_allclose(tensor.sum(a, 0).to_numpy(), x.sum(0), rtol=1e-5)
    np.testing.assert_allclose(tensor.average(a, 1).to_numpy(), x.mean(1), rtol=1e-5)
    np.testing.assert_allclose(tensor.max(a, 1).to_numpy(), x.max(1))
    np.testing.assert_array_equal(tensor.argmax(a, 1).to_numpy(), x.argmax(1))
    e = np.exp(x - x.max(1, keepdims=True))
    np.testing.assert_allclose(tensor.softmax(a).to_numpy(), e / e.sum(1, keepdims=True),
                               rtol=1e-5)
    w = T(x.T.copy())
    np.testing.assert_allclose(tensor.mult(a, w).to_numpy(), x @ x.T, rtol=1e-5)
    c = tensor.zeros((3, 3)).set_value(1.0)
    tensor.mult(a, w, c, alpha=2.0, beta=0.5)
    np.testing.assert_allclose(c.to_numpy(), 2 * x @ x.T + 0.5, rtol=1e-5)
    np.testing.assert_allclose(tensor.concatenate([a, a], 1).to_numpy(),
                               np.concatenate([x, x], 1))
    np.testing.assert_allclose(tensor.add(a, a).to_numpy(), 2 * x)
    np.testing.assert_allclose(tensor.eltwise_mult(a, 3.0).to_numpy(), 3 * x)
    np.testing.assert_allclose(tensor.div(1.0, tensor.exp(a)).to_numpy(), np.exp(-x),
                               rtol=1e-5)
    y = a.clone()
    tensor.axpy(2.0, a, y)
    np.testing.assert_allclose(y.to_numpy(), 3 * x, rtol=1e-6)
    np.testing.assert_array_equal(tensor.where(a > 0, a, tensor.zeros((1,))).to_numpy(),
                                  np.where(x > 0, x, 0))


def test_bad_input_errors():
    a = tensor.zeros((2, 3))
    with pytest.raises(ValueError, match="does not fit tensor of shape"):
        a.copy_from_numpy(np.zeros(5))
    with pytest.raises(TypeError, match="unsupported dtype"):
        tensor.Tensor((2,), dtype=np.complex64)
    with pytest.raises(TypeError, match="dtype"):
        tensor.from_numpy(np.array(["a", "b"]))
    with pytest.raises(ValueError, match="negative"):
        tensor.Tensor((2, -1))
    with pytest.raises(TypeError, match=r"shape must be an int or a sequence of ints, got "
                                        r"\(2.5, 3\)"):
        tensor.Tensor((2.5, 3))
    with pytest.raises(ValueError, match="reshape"):
        a.reshape((4, 2))
    with pytest.raises(ValueError, match="not broadcastable"):
        _ = a + tensor.zeros((4,))
    with pytest.raises(TypeError, match="different devices"):
        tensor.add(a, tensor.zeros((2, 3), device.create_cpu_device()))
    with pytest.raises(ValueError, match="int32"):
        tensor.from_numpy(np.array([2 ** 40]))
    with pytest.raises(RuntimeError, match="without CUDA|no GPU|CUDA"):
        if device.cuda_available():
            raise RuntimeError("CUDA is available; nothing to check")
        device.create_cuda_gpu_on(0)
    with pytest.raises(ValueError, match="device id"):
        device.create_cuda_gpu_on(-1)
    # Sizes past what 64 bits (or any device) hold are refused, not wrapped to a small block.
    with pytest.raises(ValueError, match="multiply beyond a 64-bit count"):
        tensor.zeros((2 ** 40, 2 ** 40))
    with pytest.raises(ValueError, match=r"needs more bytes than any device has"):
        tensor.zeros((2 ** 62,))
    with pytest.raises(ValueError, match=r"needs more bytes than any device has"):
        tensor.Tensor((2 ** 56,), dtype=tensor.float16)


@pytest.mark.parametrize("dtype", [np.float32, np.int32, np.float16])
def test_copy_data_to_from(dev, rng, dtype):
    """SINGA's CopyDataToFrom: flat ranges, the rest of dst untouched, across devices."""
    src_np = (rng.standard_normal(12) * 10).astype(dtype)
    src = tensor.from_numpy(src_np.reshape(3, 4), dev)
    cases = [(4, 2, 3), (1, 0, 0), (1, 5, 11), (6, 0, 6), (3, 3, 0), (0, 2, 2), (6, 0, 0)]
    for src_dev in (dev, device.get_default_device()):
        for size, dst_off, src_off in cases:
            dst_np = rng.standard_normal(6).astype(dtype)
            dst = tensor.from_numpy(dst_np.reshape(2, 3), dev)
            tensor.copy_data_to_from(dst, src.clone().to_device(src_dev), size, dst_off, src_off)
            want = dst_np.copy()
            want[dst_off:dst_off + size] = src_np[src_off:src_off + size]
            np.testing.assert_array_equal(dst.to_numpy(), want.reshape(2, 3))
            assert dst.shape == (2, 3) and dst.device == dev
    dst = tensor.zeros((2, 3), dev, dtype=dtype)
    with pytest.raises(ValueError, match="size must be an integer >= 0, got -1"):
        tensor.copy_data_to_from(dst, src, -1)
    with pytest.raises(ValueError, match="dst_offset must be an integer >= 0, got 1.5"):
        tensor.copy_data_to_from(dst, src, 1, 1.5)
    with pytest.raises(ValueError, match=r"dst_offset 4 \+ size 3 is past the end of dst"):
        tensor.copy_data_to_from(dst, src, 3, 4)
    with pytest.raises(ValueError, match=r"src_offset 10 \+ size 3 is past the end of src"):
        tensor.copy_data_to_from(dst, src, 3, 0, 10)
    other = np.float32 if dtype != np.float32 else np.int32
    with pytest.raises(TypeError, match="convert one with as_type"):
        tensor.copy_data_to_from(dst, tensor.zeros((12,), dev, dtype=other), 2)


@pytest.mark.parametrize("kind", [
    "cpu",
    pytest.param("cuda", marks=pytest.mark.skipif(not device.cuda_available(),
                                                  reason="needs a CUDA build and a GPU")),
])
def test_poisoned_memory(kind, tmp_path):
    # MINISINGA_POISON_MEMORY=1 (read when a device is made, so in a fresh process): every
    # block handed out is NaN-filled; a tensor read before any write still reads zeros, and
    # ops that write what they read give the same results.
    code = f"""
import math
import numpy as np
from minisinga import device, tensor
dev = device.create_cuda_gpu_on(0) if {kind!r} == "cuda" else device.get_default_device()
for n in (4, 1000, 4 << 20):  # fresh and cached blocks of several size classes
    b = dev._fresh_block(n)
    assert b == b"\\xff" * n, (n, b[:8])
    assert b == dev._fresh_block(n)
f = np.frombuffer(dev._fresh_block(8), np.float32)
assert all(math.isnan(v) for v in f), f
t = tensor.Tensor((3, 5), dev)
assert (tensor.to_numpy(t) == 0).all()
x = tensor.from_numpy(np.arange(12, dtype=np.float32).reshape(3, 4), dev)
y = tensor.to_numpy(tensor.relu(x - 5.0) @ tensor.transpose(x, (1, 0)))
a = np.arange(12).reshape(3, 4)
assert np.allclose(y, np.maximum(a - 5, 0) @ a.T)
print("ok")
"""
    pkg = os.path.dirname(os.path.dirname(os.path.abspath(tensor.__file__)))
    env = dict(os.environ, MINISINGA_POISON_MEMORY="1",
               PYTHONPATH=os.pathsep.join([pkg] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                       cwd=tmp_path, timeout=300)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stdout + r.stderr


def test_iteration_follows_numpy():
    t = tensor.from_numpy(np.arange(6, dtype=np.float32).reshape(3, 2))
    rows = [r.to_numpy() for r in t]
    np.testing.assert_array_equal(np.stack(rows), t.to_numpy())
    with pytest.raises(TypeError, match="0-d"):
        iter(tensor.from_numpy(np.float32(1.0)))


def test_item_takes_one_element():
    assert tensor.from_numpy(np.array([2.5], np.float32)).item() == 2.5
    assert tensor.from_numpy(np.array(7, np.int32)).item() == 7
    with pytest.raises(ValueError, match=r"item: the tensor has shape \(2,\), not one element"):
        tensor.from_numpy(np.zeros(2, np.float32)).item()
