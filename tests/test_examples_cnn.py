"""Smoke and learning tests of examples/cnn: train_cnn.py over run.sh's model x dataset grid
(and xceptionnet) on small synthetic files, benchmark.py, the autograd scripts, the
missing-data error, and one real epoch on a Fashion-MNIST subset.

The scripts run as subprocesses with PYTHONPATH set to the repository root, on the CPU. The
large-input models (alexnet 224, resnet 224, xceptionnet 299) run at their real input size
with batch 2 and one step, and once more with a smaller `--image-size`.
"""

from __future__ import annotations

import gzip
import os
import re
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from dist_helpers import pythonpath

REPO = Path(__file__).resolve().parents[1]
CNN_DIR = REPO / "examples" / "cnn"
FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")

FLOAT = r"-?\d+\.\d{6}"
START_RE = re.compile(r"^Starting Epoch (\d+):$", re.M)
TRAIN_RE = re.compile(rf"^Training loss = ({FLOAT}), training accuracy = ({FLOAT})$", re.M)
EVAL_RE = re.compile(rf"^Evaluation accuracy = ({FLOAT}), Elapsed Time = ({FLOAT})s$", re.M)


# ---- helpers ----
def run_script(script: str, *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PYTHONPATH"] = pythonpath()
    env.pop("MINISINGA_DATA", None)
    # One OpenMP thread unless told otherwise: on a shared two-core machine, spinning OpenMP
    # threads slowed a CNN step 50-fold (23 ms -> 1.4 s) when other processes held the cores.
    env.setdefault("OMP_NUM_THREADS", "1")
    return subprocess.run([sys.executable, str(CNN_DIR / script), *args], capture_output=True,
                          text=True, timeout=timeout, env=env, cwd=str(REPO))


def epochs(proc: subprocess.CompletedProcess, n: int = 1):
    """Checks the per-epoch lines; returns [(loss, train_acc, val_acc)] per epoch."""
    out = proc.stdout
    assert proc.returncode == 0, f"exit {proc.returncode}\nstdout:\n{out}\nstderr:\n{proc.stderr}"
    assert [int(e) for e in START_RE.findall(out)] == list(range(n)), out
    train, ev = TRAIN_RE.findall(out), EVAL_RE.findall(out)
    assert len(train) == n and len(ev) == n, out
    result = []
    for (loss, tacc), (vacc, secs) in zip(train, ev):
        loss, tacc, vacc = float(loss), float(tacc), float(vacc)
        assert np.isfinite(loss) and loss > 0, out
        assert 0.0 <= tacc <= 1.0 and 0.0 <= vacc <= 1.0 and float(secs) > 0, out
        result.append((loss, tacc, vacc))
    # The lines come in order: Starting, Training, Evaluation, for each epoch.
    kinds = "".join(k for line in out.splitlines()
                    for k, r in (("S", START_RE), ("T", TRAIN_RE), ("E", EVAL_RE))
                    if r.match(line))
    assert kinds == "STE" * n, out
    return result


def write_idx(path: Path, array: np.ndarray) -> None:
    header = struct.pack(f">I{array.ndim}I", 0x0800 | array.ndim, *array.shape)
    path.write_bytes(gzip.compress(header + array.astype(np.uint8).tobytes(), mtime=0))


def read_idx(path: Path) -> np.ndarray:
    raw = gzip.decompress(path.read_bytes())
    ndim = raw[3]
    shape = struct.unpack(f">{ndim}I", raw[4:4 + 4 * ndim])
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(shape)


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory) -> Path:
    """MNIST, CIFAR-10 and CIFAR-100 in their real formats, small, in one data directory."""
    sys.path.insert(0, str(CNN_DIR))
    try:
        from data import synthetic as writers
    finally:
        sys.path.remove(str(CNN_DIR))
    root = tmp_path_factory.mktemp("cnn_data")
    writers.write_mnist(root, n_train=200, n_test=40)
    writers.write_cifar10(root, n_train_per_batch=40, n_test=40)
    writers.write_cifar100(root, n_train=200, n_test=40)  # every one of the 100 classes
    return root


@pytest.fixture
def cnn_modules(monkeypatch):
    """train_cnn and the model package, imported in-process from examples/cnn."""
    monkeypatch.syspath_prepend(str(CNN_DIR))
    import importlib

    train_cnn = importlib.import_module("train_cnn")
    models = importlib.import_module("model")
    return train_cnn, models


# ---- train_cnn.py over run.sh's grid ----
SMALL = ["-m", "1", "-b", "2", "--max-steps", "2", "--device", "cpu"]
GRID = [
    ("mlp", "mnist", []), ("mlp", "cifar10", []), ("mlp", "cifar100", ["-g"]),
    ("cnn", "mnist", []), ("cnn", "cifar10", ["-g"]), ("cnn", "cifar100", []),
    # full-size inputs (28/32 resized to 224/299), one step of batch 2
    ("alexnet", "mnist", ["--max-steps", "1"]),
    ("alexnet", "cifar10", ["--max-steps", "1", "-g"]),
    ("alexnet", "cifar100", ["--max-steps", "1"]),
    ("resnet", "mnist", ["--max-steps", "1"]),
    ("resnet", "cifar10", ["--max-steps", "1", "-g"]),
    ("resnet", "cifar100", ["--max-steps", "1"]),
    ("xceptionnet", "cifar10", ["--max-steps", "1"]),
    # --image-size: the head pooling adapts to a smaller input
    ("alexnet", "cifar10", ["--max-steps", "1", "--image-size", "112"]),
    ("resnet", "mnist", ["--max-steps", "1", "--image-size", "32", "-g"]),
    ("xceptionnet", "mnist", ["--max-steps", "1", "--image-size", "71"]),
]


@pytest.mark.parametrize("model,data,extra", GRID, ids=[f"{m}-{d}{'-'.join([''] + e)}"
                                                        for m, d, e in GRID])
def test_train_cnn_grid(synthetic, model, data, extra):
    proc = run_script("train_cnn.py", model, data, "--data-dir", str(synthetic), *SMALL, *extra)
    epochs(proc)


def test_train_cnn_graph_and_eager_print_the_same(synthetic):
    """The recorded-graph replay and eager execution give the same losses and accuracies."""
    runs = [run_script("train_cnn.py", "cnn", "cifar10", "--data-dir", str(synthetic), "-m",
                       "2", "-b", "4", "--max-steps", "5", "--device", "cpu", *g)
            for g in ([], ["-g"])]
    graph, eager = (epochs(p, 2) for p in runs)
    assert graph == eager, (runs[0].stdout, runs[1].stdout)


def test_run_signature_matches_spec(cnn_modules):
    import inspect

    train_cnn, _ = cnn_modules
    params = list(inspect.signature(train_cnn.run).parameters.values())
    names = [p.name for p in params[:13]]
    assert names == ["global_rank", "world_size", "local_rank", "max_epoch", "batch_size",
                     "model", "data", "sgd", "graph", "verbosity", "dist_option", "spars",
                     "precision"]
    assert [p.default for p in params[10:13]] == ["plain", None, "float32"]
    assert all(p.default is not inspect.Parameter.empty for p in params[10:])


def test_train_cnn_two_epochs_learn_synthetic(synthetic):
    """The CNN learns the synthetic MNIST patterns: loss falls from epoch 0 to epoch 2."""
    proc = run_script("train_cnn.py", "cnn", "mnist", "--data-dir", str(synthetic), "-m", "3",
                      "-b", "20", "-l", "0.05", "--device", "cpu")
    (l0, _, _), _, (l2, _, v2) = epochs(proc, 3)
    assert l2 < l0, proc.stdout
    assert v2 >= 0.5, proc.stdout


def test_train_cnn_float16_learns(synthetic):
    """-p float16: float16 inputs, parameters and activations; learns like float32."""
    proc = run_script("train_cnn.py", "cnn", "mnist", "-p", "float16", "--data-dir",
                      str(synthetic), "-m", "3", "-b", "20", "-l", "0.05", "--device", "cpu")
    (l0, _, _), _, (l2, _, v2) = epochs(proc, 3)
    assert l2 < l0, proc.stdout
    assert v2 >= 0.5, proc.stdout


def test_train_cnn_missing_data_exits_nonzero(tmp_path):
    proc = run_script("train_cnn.py", "cnn", "mnist", "--data-dir", str(tmp_path / "none"),
                      "--device", "cpu")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    assert "train-images-idx3-ubyte.gz" in proc.stderr
    assert "download_mnist.py --data-dir" in proc.stderr
    proc = run_script("train_cnn.py", "resnet", "cifar10", "--data-dir", str(tmp_path),
                      "--device", "cpu")
    assert proc.returncode == 1 and "download_cifar10.py --data-dir" in proc.stderr


def test_train_cnn_usage_errors(synthetic):
    proc = run_script("train_cnn.py", "cnn", "mnist", "--data-dir", str(synthetic),
                      "--device", "cpu", "-b", "100000")
    assert proc.returncode == 2 and "batch size" in proc.stderr and "Traceback" not in \
        proc.stderr, proc.stderr
    proc = run_script("train_cnn.py", "alexnet", "mnist", "--data-dir", str(synthetic),
                      "--device", "cpu", "-b", "2", "--image-size", "64")
    assert proc.returncode == 2 and "input_size must be at least 99" in proc.stderr, proc.stderr
    for lr in ("-0.1", "inf"):
        proc = run_script("train_cnn.py", "cnn", "mnist", "--data-dir", str(synthetic), "-l", lr)
        assert proc.returncode == 2 and (f"argument -l/--learning-rate: must be a finite number "
                                         f">= 0, got {lr}") in proc.stderr, proc.stderr


def test_train_cnn_learns_real_fashion_mnist(tmp_path):
    """One epoch (graph mode, SPEC defaults: lr 0.005, batch 64, augmentation) on 2000 real
    Fashion-MNIST training images, evaluated on 512 test images. Measured: 0.498 (seed 0),
    0.516, 0.463, 0.508 (seeds 1-3); chance is 0.1, so the floor is 0.40."""
    if not (FASHION_MNIST / "train-images-idx3-ubyte.gz").exists():
        pytest.fail(f"{FASHION_MNIST} is missing: install the Debian package "
                    "dataset-fashion-mnist")
    for split, n in (("train", 2000), ("t10k", 512)):
        for kind in ("images-idx3", "labels-idx1"):
            name = f"{split}-{kind}-ubyte.gz"
            write_idx(tmp_path / name, read_idx(FASHION_MNIST / name)[:n])
    proc = run_script("train_cnn.py", "cnn", "mnist", "--data-dir", str(tmp_path), "-m", "1",
                      "--device", "cpu")
    [(_, _, val_acc)] = epochs(proc)
    assert val_acc >= 0.40, proc.stdout


# ---- benchmark.py ----
@pytest.mark.parametrize("extra", [[], ["--no-graph", "--image-size", "32"]],
                         ids=["graph-224", "eager-32"])
def test_benchmark_prints_throughput(extra):
    """ResNet-50 (the default model), two timed training steps of batch 2."""
    proc = run_script("benchmark.py", "--device", "cpu", "--batch-size", "2", "--iters", "2",
                      "--skip", "1", "--num-classes", "10", *extra)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    m = re.search(rf"^Throughput = ({FLOAT}) per second$", proc.stdout, re.M)
    assert m and float(m.group(1)) > 0, proc.stdout
    assert re.search(rf"^TotalTime={FLOAT}$", proc.stdout, re.M), proc.stdout
    assert re.search(rf"^Total={FLOAT}$", proc.stdout, re.M), proc.stdout


# ---- autograd/ ----
def test_autograd_mnist_cnn(synthetic):
    proc = run_script("autograd/mnist_cnn.py", "--data-dir", str(synthetic), "-m", "1", "-b",
                      "8", "--max-steps", "3", "--device", "cpu")
    epochs(proc)


def test_autograd_resnet_cifar10(synthetic):
    proc = run_script("autograd/resnet_cifar10.py", "--data-dir", str(synthetic), "-m", "1",
                      "-b", "2", "--max-steps", "2", "--depth", "18", "--image-size", "32",
                      "--device", "cpu")
    epochs(proc)


def test_autograd_xceptionnet():
    proc = run_script("autograd/xceptionnet.py", "--niters", "2", "-b", "2", "--image-size",
                      "35", "--num-classes", "10", "--device", "cpu")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert re.search(rf"^Loss = {FLOAT}, Throughput = {FLOAT} per second$", proc.stdout,
                     re.M), proc.stdout


# ---- in-process: data augmentation, resize, update dispatch, ResNet states ----
def _resize_reference(img: np.ndarray, size: int) -> np.ndarray:
    """Per-pixel bilinear resize with half-pixel centres and clamped edges (2-d image)."""
    h, w = img.shape
    out = np.zeros((size, size))
    for i in range(size):
        for j in range(size):
            y = min(max((i + 0.5) * h / size - 0.5, 0), h - 1)
            x = min(max((j + 0.5) * w / size - 0.5, 0), w - 1)
            y0, x0 = int(np.floor(y)), int(np.floor(x))
            y1, x1 = min(y0 + 1, h - 1), min(x0 + 1, w - 1)
            dy, dx = y - y0, x - x0
            out[i, j] = ((1 - dy) * ((1 - dx) * img[y0, x0] + dx * img[y0, x1])
                         + dy * ((1 - dx) * img[y1, x0] + dx * img[y1, x1]))
    return out


def test_resize_bilinear_matches_reference(cnn_modules):
    train_cnn, _ = cnn_modules
    rng = np.random.default_rng(0)
    x = rng.random((2, 3, 7, 7), dtype=np.float32)
    for size in (7, 10, 16):
        y = train_cnn.resize_bilinear(x, size)
        assert y.shape == (2, 3, size, size) and y.dtype == np.float32
        for n in range(2):
            for c in range(3):
                np.testing.assert_allclose(y[n, c], _resize_reference(x[n, c], size),
                                           rtol=1e-5, atol=1e-6)
    const = np.full((1, 1, 5, 5), 0.25, np.float32)
    np.testing.assert_allclose(train_cnn.resize_bilinear(const, 12), 0.25, rtol=1e-6)


def test_augmentation_crops_and_flips(cnn_modules):
    train_cnn, _ = cnn_modules
    rng = np.random.default_rng(1)
    x = rng.random((64, 2, 8, 8), dtype=np.float32)
    np.random.seed(0)
    y = train_cnn.augmentation(x.copy(), 64)
    assert y.shape == x.shape
    pad = np.pad(x, [(0, 0), (0, 0), (4, 4), (4, 4)], mode="symmetric")
    flips = 0
    for n in range(64):
        found = False
        for dy in range(9):
            for dx in range(9):
                crop = pad[n, :, dy:dy + 8, dx:dx + 8]
                if np.array_equal(y[n], crop):
                    found = True
                elif np.array_equal(y[n], crop[..., ::-1]):
                    found, flips = True, flips + 1
        assert found, f"image {n} is not a (flipped) crop of its padded original"
    assert 10 < flips < 54  # about half flipped
    assert not np.array_equal(y, x)


class _FakeOpt:
    def __init__(self):
        self.calls = []

    def __call__(self, loss):
        self.calls.append(("plain", loss, {}))

    def backward_and_update_half(self, loss):
        self.calls.append(("half", loss, {}))

    def backward_and_partial_update(self, loss):
        self.calls.append(("partial", loss, {}))

    def backward_and_sparse_update(self, loss, **kwargs):
        self.calls.append(("sparse", loss, kwargs))


def test_update_dispatches_dist_options(cnn_modules):
    _, models = cnn_modules
    o = _FakeOpt()
    for option in models.DIST_OPTIONS:
        models.update(o, "L", option, 0.05)
    assert o.calls == [("plain", "L", {}), ("half", "L", {}), ("partial", "L", {}),
                       ("sparse", "L", {"topK": True, "spars": 0.05}),
                       ("sparse", "L", {"topK": False, "spars": 0.05})]
    with pytest.raises(ValueError, match="unknown dist_option 'fp32'"):
        models.update(o, "L", "fp32")
    from minisinga import opt

    with pytest.raises(TypeError, match="backward_and_update_half.*DistOpt"):
        models.update(opt.SGD(0.1), "L", "half")


def test_models_have_the_spec_attributes(cnn_modules):
    _, _ = cnn_modules
    from model import alexnet, cnn, mlp, resnet, xceptionnet

    expected = [(mlp.create_model(data_size=784, num_classes=10), 784, 2),
                (cnn.create_model(num_channels=1, num_classes=10), 28, 4),
                (alexnet.create_model(num_channels=3, num_classes=10), 224, 4),
                (resnet.resnet50(num_channels=3, num_classes=10), 224, 4),
                (xceptionnet.create_model(num_channels=3, num_classes=10), 299, 4)]
    for m, size, dim in expected:
        assert (m.input_size, m.dimension, m.num_classes) == (size, dim, 10)
        assert callable(m.set_optimizer) and callable(m.train_one_batch)
    r50 = expected[3][0]
    assert r50.avgpool.kernel_size == (7, 7)
    assert expected[4][0].globalpooling.kernel_size == (10, 10)
    for fn, blocks in ((resnet.resnet18, 8), (resnet.resnet34, 16), (resnet.resnet50, 16),
                       (resnet.resnet101, 33), (resnet.resnet152, 50)):
        m = fn(num_classes=10)
        assert sum(len(getattr(m, f"layer{i}")) for i in range(1, 5)) == blocks


def test_resnet_downsample_is_in_states_and_checkpoints(cnn_modules, tmp_path):
    _, _ = cnn_modules
    from model import resnet

    from minisinga import opt, tensor

    dev = tensor.get_default_device()
    dev.SetRandSeed(0)
    m = resnet.resnet18(num_channels=3, num_classes=5, input_size=32)
    m.set_optimizer(opt.SGD(0.01, momentum=0.9))
    tx = tensor.Tensor((2, 3, 32, 32), dev)
    tx.copy_from_numpy(np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(
        np.float32))
    m.compile([tx], is_train=False, use_graph=False)
    states = m.get_states()
    for stage in (2, 3, 4):
        for key in ("downsample.conv.W", "downsample.bn.scale", "downsample.bn.running_mean",
                    "downsample.bn.running_var"):
            assert f"layer{stage}.0.{key}" in states, sorted(states)
    assert "layer1.0.downsample.conv.W" not in states  # same shape: identity shortcut
    w = states["layer3.0.downsample.conv.W"]
    assert tuple(w.shape) == (256, 128, 1, 1)
    ckpt = tmp_path / "r18.npz"
    m.save_states(str(ckpt))
    before = w.to_numpy().copy()
    w.set_value(0.0)
    m.load_states(str(ckpt))
    np.testing.assert_array_equal(states["layer3.0.downsample.conv.W"].to_numpy(), before)
    m.eval()
    assert m(tx).shape == (2, 5)


@pytest.mark.parametrize("depth", [18, 50])
def test_resnet_fused_residual_is_the_same_model(cnn_modules, depth):
    """fused_residual=True (each block ends in one relu(bn(x) + residual) op) trains bit for
    bit as the SPEC's layer.Add joins, with the same state names, in eager and graph mode."""
    _, _ = cnn_modules
    from model import resnet

    from minisinga import opt, tensor

    def run(fused, graph):
        dev = tensor.get_default_device()
        dev.SetRandSeed(0)
        r = np.random.default_rng(1)
        m = resnet.create_model(depth, num_channels=3, num_classes=5, input_size=32,
                                fused_residual=fused)
        m.set_optimizer(opt.SGD(0.05, momentum=0.9, weight_decay=1e-4))
        tx, ty = tensor.Tensor((4, 3, 32, 32), dev), tensor.Tensor((4,), dev,
                                                                    dtype=tensor.int32)
        tx.copy_from_numpy(r.standard_normal((4, 3, 32, 32)).astype(np.float32))
        m.compile([tx], is_train=True, use_graph=graph)
        losses = []
        for _ in range(3):
            tx.copy_from_numpy(r.standard_normal((4, 3, 32, 32)).astype(np.float32))
            ty.copy_from_numpy(r.integers(0, 5, 4).astype(np.int32))
            losses.append(m(tx, ty)[1].to_numpy())
        states = {k: v.to_numpy() for k, v in m.get_states().items()}
        m.graph(False)
        return losses, states

    ref_losses, ref_states = run(False, False)
    for graph in (False, True):
        losses, states = run(True, graph)
        np.testing.assert_array_equal(losses, ref_losses)
        assert sorted(states) == sorted(ref_states)
        for k in ref_states:
            np.testing.assert_array_equal(states[k], ref_states[k], err_msg=k)
