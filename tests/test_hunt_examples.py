"""Bug hunt over examples/cnn (train_cnn.py, benchmark.py, the autograd scripts, the data
loaders and the model definitions) against SPEC-cnn and Apache SINGA's examples/cnn.

What test_examples_cnn.py / test_examples_data.py / test_dist_examples.py already run is not
repeated here. Added: the command-line defaults and choices, CIFAR files written the way the
real ones were (Python 2 cPickle strings, which need encoding='latin1'), Fashion-MNIST pixels
against the raw IDX bytes, parameter counts against the standard architectures, channel
mismatch errors, seed reproducibility of run(), and how bad option values are refused.

Failing now (bugs, see /tmp/hunt/examples.md):
  test_train_cnn_bad_seed_is_a_usage_error
  test_train_cnn_empty_dataset_is_reported
  test_autograd_mnist_cnn_rejects_bad_sizes
  test_autograd_resnet_cifar10_rejects_bad_sizes
  test_benchmark_rejects_bad_num_classes
  test_resnet_dist_rejects_zero_iters
"""

from __future__ import annotations

import contextlib
import gzip
import io
import os
import pickle
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
MEAN = np.array([0.4914, 0.4822, 0.4465], dtype=np.float32)
STD = np.array([0.2023, 0.1994, 0.2010], dtype=np.float32)


# ---- fixtures and helpers ----
@pytest.fixture
def cnn(monkeypatch):
    """examples/cnn and examples/cnn/autograd on sys.path; autograd's training switch (which
    the autograd scripts set) restored afterwards."""
    monkeypatch.syspath_prepend(str(CNN_DIR / "autograd"))
    monkeypatch.syspath_prepend(str(CNN_DIR))
    monkeypatch.delenv("MINISINGA_DATA", raising=False)
    from minisinga import autograd

    was = autograd.is_training()
    yield CNN_DIR
    autograd.set_training(was)


@pytest.fixture(scope="module")
def mnist_dir(tmp_path_factory) -> Path:
    sys.path.insert(0, str(CNN_DIR))
    try:
        from data import synthetic
    finally:
        sys.path.remove(str(CNN_DIR))
    root = tmp_path_factory.mktemp("hunt_mnist")
    synthetic.write_mnist(root, n_train=64, n_test=32, seed=3)
    return root


class Py2Pickler(pickle._Pickler):
    """Writes str and bytes as Python 2 strings (SHORT_BINSTRING / BINSTRING), as cPickle did
    for the CIFAR archives: keys, label names and the numpy array's raw bytes. Such a file
    needs pickle.load(..., encoding='latin1'); the default ASCII decoding fails on it."""

    def save_py2str(self, obj):
        raw = obj.encode("latin1") if isinstance(obj, str) else obj
        if len(raw) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(raw)]) + raw)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(raw)) + raw)
        self.memoize(obj)

    dispatch = dict(pickle._Pickler.dispatch)
    dispatch[bytes] = save_py2str
    dispatch[str] = save_py2str


def write_py2_pickle(path: Path, obj) -> None:
    buf = io.BytesIO()
    Py2Pickler(buf, protocol=2).dump(obj)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buf.getvalue())


def cifar_files(root: Path, seed: int = 0):
    """CIFAR-10 (5 x 6 training images, 6 test) and CIFAR-100 (12 + 6) in the real layout;
    returns the uint8 rows and labels written."""
    rng = np.random.default_rng(seed)
    c10 = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, (6, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, 6)]
        c10[name] = (data, labels)
        write_py2_pickle(root / "cifar-10-batches-py" / name,
                         {"batch_label": f"batch {name}", "labels": labels, "data": data,
                          "filenames": [f"img_{i}.png" for i in range(6)]})
    c100 = {}
    for name, n in (("train", 12), ("test", 6)):
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        fine = [int(v) for v in rng.integers(0, 100, n)]
        c100[name] = (data, fine)
        write_py2_pickle(root / "cifar-100-python" / name,
                         {"filenames": [f"img_{i}.png" for i in range(n)], "batch_label": name,
                          "fine_labels": fine, "coarse_labels": [f // 5 for f in fine],
                          "data": data})
    return c10, c100


def normalised(rows: np.ndarray) -> np.ndarray:
    x = rows.reshape(-1, 3, 32, 32).astype(np.float64) / 255
    return (x - MEAN.reshape(1, 3, 1, 1)) / STD.reshape(1, 3, 1, 1)


def quiet(fn, *args, **kwargs):
    with contextlib.redirect_stdout(io.StringIO()):
        return fn(*args, **kwargs)


def n_params(m, shape) -> int:
    from minisinga import tensor

    x = tensor.Tensor(shape)
    x.gaussian(0.0, 1.0)
    m.compile([x], is_train=False, use_graph=False)
    return sum(int(np.prod(p.shape)) for p in m.get_params().values())


# ---- command lines ----
def test_train_cnn_parser_defaults_and_choices(cnn):
    import train_cnn

    p = train_cnn.build_parser()
    a = p.parse_args(["cnn", "mnist"])
    assert (a.precision, a.max_epoch, a.batch_size, a.lr, a.device_id, a.graph, a.verbosity) \
        == ("float32", 100, 64, 0.005, 0, True, 0)
    assert (a.device, a.data_dir, a.max_steps, a.seed) == ("auto", None, None, 0)
    a = p.parse_args(["resnet", "cifar100", "-p", "float16", "-m", "3", "-b", "8", "-l", "0.1",
                      "-i", "1", "-g", "-v", "2", "--device", "cpu", "--data-dir", "/x",
                      "--max-steps", "4", "--seed", "7"])
    assert (a.model, a.data, a.precision, a.max_epoch, a.batch_size, a.lr, a.device_id,
            a.graph, a.verbosity, a.device, a.data_dir, a.max_steps, a.seed) == \
        ("resnet", "cifar100", "float16", 3, 8, 0.1, 1, False, 2, "cpu", "/x", 4, 7)
    for m in ("mlp", "cnn", "alexnet", "resnet", "xceptionnet"):
        assert p.parse_args([m, "mnist"]).model == m
    with contextlib.redirect_stderr(io.StringIO()):
        for bad in (["vgg", "mnist"], ["cnn", "imagenet"], ["cnn", "mnist", "-p", "float64"],
                    ["cnn", "mnist", "--device", "tpu"], ["cnn", "mnist", "-b", "two"]):
            with pytest.raises(SystemExit) as e:
                p.parse_args(bad)
            assert e.value.code == 2, bad


def test_distributed_parsers_defaults_and_choices(cnn):
    import train_mpi

    p = train_mpi.build_parser("test")
    a = p.parse_args(["mlp", "mnist"])
    assert (a.dist_option, a.spars, a.max_epoch, a.batch_size, a.lr, a.graph) == \
        ("plain", 0.05, 100, 64, 0.005, True)
    for opt in ("plain", "half", "partialUpdate", "sparseTopK", "sparseThreshold"):
        assert p.parse_args(["cnn", "cifar10", "-d", opt, "-s", "0.2"]).dist_option == opt
    for m in ("mlp", "cnn", "resnet", "xceptionnet"):
        assert p.parse_args([m, "mnist"]).model == m
    with contextlib.redirect_stderr(io.StringIO()):
        for bad in (["alexnet", "mnist"], ["cnn", "mnist", "-d", "fp32"]):
            with pytest.raises(SystemExit):
                p.parse_args(bad)


def test_train_cnn_bad_seed_is_a_usage_error(cnn, mnist_dir, capsys):
    """BUG: --seed -1 dies in Device.SetRandSeed with a pybind11 TypeError traceback, and
    --seed 4294967296 in np.random.seed with a ValueError traceback; every other bad setting
    of train_cnn.py is one 'error: ...' line and exit status 2."""
    import train_cnn

    base = ["mlp", "mnist", "--data-dir", str(mnist_dir), "--device", "cpu", "-m", "1",
            "-b", "8", "--max-steps", "1"]
    for seed in ("-1", str(2 ** 32)):
        assert train_cnn.main(base + ["--seed", seed]) == 2, seed
        assert "seed" in capsys.readouterr().err


def test_train_cnn_empty_dataset_is_reported(cnn, tmp_path):
    """BUG: an MNIST directory whose files are valid but hold 0 images passes the loader and
    then stops train_cnn.py with numpy's 'zero-size array to reduction operation maximum'
    traceback (num_classes = max(train_y) + 1 is computed before the size checks)."""
    import train_cnn
    from data import synthetic

    synthetic.write_mnist(tmp_path, n_train=0, n_test=0)
    with contextlib.redirect_stderr(io.StringIO()):
        code = train_cnn.main(["mlp", "mnist", "--data-dir", str(tmp_path), "--device", "cpu"])
    assert code in (1, 2)


# ---- the autograd scripts and benchmark.py: bad values ----
def test_autograd_mnist_cnn_rejects_bad_sizes(cnn, mnist_dir):
    """BUG: autograd/mnist_cnn.py checks neither -b nor --max-steps: -b 0 and --max-steps 0
    raise ZeroDivisionError, --max-steps -1 trains nothing and prints accuracies of -0.000000
    with exit status 0 (train_cnn.py refuses all three with exit status 2)."""
    import mnist_cnn

    base = ["--data-dir", str(mnist_dir), "--device", "cpu", "-m", "1", "-b", "8"]
    for extra in (["-b", "0"], ["--max-steps", "0"], ["--max-steps", "-1"], ["-l", "-1"],
                  ["-l", "nan"], ["--seed", "-1"], ["-m", "-1"]):
        with contextlib.redirect_stderr(io.StringIO()):
            assert quiet(mnist_cnn.main, base + extra) == 2, extra


def test_autograd_resnet_cifar10_rejects_bad_sizes(cnn, tmp_path):
    """BUG: the same in autograd/resnet_cifar10.py (-b 0, --max-steps 0 -> ZeroDivisionError;
    --max-steps -1 -> silent 'accuracy -0.000000', exit 0)."""
    import resnet_cifar10

    cifar_files(tmp_path)
    base = ["--data-dir", str(tmp_path), "--device", "cpu", "-m", "1", "-b", "2", "--depth",
            "18", "--image-size", "32"]
    for extra in (["-b", "0"], ["--max-steps", "0"], ["--max-steps", "-1"]):
        with contextlib.redirect_stderr(io.StringIO()):
            assert quiet(resnet_cifar10.main, base + extra) == 2, extra


def test_benchmark_rejects_bad_num_classes(cnn, capsys):
    """BUG: benchmark.py --num-classes 0 dies in rng.integers(0, 0) ('high <= 0', traceback)
    before the model (whose Linear would refuse 0 outputs as a usage error) is built."""
    import benchmark

    args = ["--device", "cpu", "--model", "cnn", "--image-size", "28", "--batch-size", "2",
            "--iters", "1", "--skip", "0"]
    assert quiet(benchmark.main, args + ["--num-classes", "0"]) == 2
    assert "error" in capsys.readouterr().err


def test_benchmark_checks_its_sizes(cnn, capsys):
    import benchmark

    base = ["--device", "cpu", "--model", "cnn", "--image-size", "28", "--num-classes", "3"]
    for extra in (["--iters", "0"], ["--batch-size", "0"], ["--skip", "-1"],
                  ["--image-size", "8"]):
        assert quiet(benchmark.main, base + extra) == 2, extra
    assert quiet(benchmark.main, base + ["--batch-size", "2", "--iters", "1", "--skip",
                                         "0"]) == 0


def test_resnet_dist_rejects_zero_iters():
    """BUG: autograd/resnet_dist.py --iters 0 trains one step, then divides by zero
    (ZeroDivisionError traceback); nothing checks --iters or --batch-size."""
    env = dict(os.environ, PYTHONPATH=pythonpath(), OMP_NUM_THREADS="1")
    proc = subprocess.run(
        [sys.executable, str(CNN_DIR / "autograd" / "resnet_dist.py"), "--iters", "0",
         "--model", "resnet18", "--image-size", "32", "--batch-size", "2", "--device", "cpu"],
        capture_output=True, text=True, timeout=120, env=env, cwd=str(REPO))
    assert proc.returncode != 0, proc.stdout
    assert "Traceback" not in proc.stderr and "iters" in proc.stderr, proc.stderr


# ---- data loaders on the real formats ----
def test_cifar_loaders_read_python2_pickles(cnn, tmp_path):
    from data import cifar10, cifar100

    c10, c100 = cifar_files(tmp_path)
    raw = (tmp_path / "cifar-10-batches-py" / "test_batch").read_bytes()
    with pytest.raises(UnicodeDecodeError):  # the files really are Python 2 pickles
        pickle.loads(raw)
    tx, ty, vx, vy = cifar10.load(tmp_path)
    assert tx.shape == (30, 3, 32, 32) and vx.shape == (6, 3, 32, 32)
    assert tx.dtype == vx.dtype == np.float32 and ty.dtype == vy.dtype == np.int32
    train_rows = np.concatenate([c10[f"data_batch_{i}"][0] for i in range(1, 6)])
    assert ty.tolist() == sum((c10[f"data_batch_{i}"][1] for i in range(1, 6)), [])
    assert vy.tolist() == c10["test_batch"][1]
    np.testing.assert_allclose(tx, normalised(train_rows), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(vx, normalised(c10["test_batch"][0]), rtol=1e-5, atol=1e-5)
    # channel 2 too (SINGA's original skipped it): pixel 255 of channel c -> (1 - m_c) / s_c
    np.testing.assert_allclose(normalised(np.full((1, 3072), 255, np.uint8))[0, :, 0, 0],
                               (1 - MEAN) / STD, rtol=1e-6)

    tx, ty, vx, vy = cifar100.load(tmp_path)
    assert tx.shape == (12, 3, 32, 32) and vx.shape == (6, 3, 32, 32)
    assert ty.tolist() == c100["train"][1] and vy.tolist() == c100["test"][1]  # fine labels
    assert ty.dtype == np.int32 and 0 <= ty.min() and ty.max() < 100
    np.testing.assert_allclose(tx, normalised(c100["train"][0]), rtol=1e-5, atol=1e-5)


def test_train_cnn_runs_on_python2_cifar(cnn, tmp_path):
    import train_cnn

    cifar_files(tmp_path)
    res = quiet(train_cnn.run, 0, 1, 0, 1, 2, "cnn", "cifar10", _sgd(), False, 0,
                device="cpu", data_dir=str(tmp_path), max_steps=2)
    assert np.isfinite(res["train_loss"]) and 0 <= res["val_acc"] <= 1


def test_fashion_mnist_pixels_match_the_idx_bytes(cnn):
    from data import mnist

    tx, ty, vx, vy = mnist.load(FASHION_MNIST)
    for name, x, y in (("train", tx, ty), ("t10k", vx, vy)):
        img = gzip.decompress((FASHION_MNIST / f"{name}-images-idx3-ubyte.gz").read_bytes())
        lab = gzip.decompress((FASHION_MNIST / f"{name}-labels-idx1-ubyte.gz").read_bytes())
        magic, n, rows, cols = struct.unpack(">4I", img[:16])
        assert (magic, rows, cols) == (2051, 28, 28) and n == len(x) == len(y)
        for i in (0, 1, n // 2, n - 1):
            pixels = np.frombuffer(img, np.uint8, 784, 16 + 784 * i).reshape(28, 28)
            np.testing.assert_array_equal(np.rint(x[i, 0] * 255).astype(np.uint8), pixels)
            assert y[i] == lab[8 + i]


def test_mnist_data_dir_that_is_a_file_names_it(cnn, tmp_path):
    from data import cifar10, mnist
    from data.common import DatasetError

    f = tmp_path / "not_a_dir"
    f.write_bytes(b"")
    for loader, name in ((mnist, "train-images-idx3-ubyte.gz"), (cifar10, "data_batch_1")):
        with pytest.raises(DatasetError, match=name) as e:
            loader.load(f)
        assert str(f) in str(e.value)


# ---- models ----
def test_parameter_counts_match_the_standard_architectures(cnn):
    from model import alexnet, mlp, resnet, xceptionnet
    from model import cnn as lenet

    # torchvision resnet18/34/50/101 with 1000 classes; Cadene/timm Xception 22,855,952
    for fn, count in ((resnet.resnet18, 11_689_512), (resnet.resnet34, 21_797_672),
                      (resnet.resnet50, 25_557_032), (resnet.resnet101, 44_549_160)):
        m = fn(num_classes=1000, num_channels=3, input_size=32)
        assert n_params(m, (1, 3, 32, 32)) == count, fn.__name__
    x = xceptionnet.create_model(num_classes=1000, num_channels=3, input_size=71)
    assert n_params(x, (1, 3, 71, 71)) == 22_855_952
    # LeNet: 1*20*25+20 + 20*50*25+50 + 800*500+500 + 500*10+10
    assert n_params(lenet.create_model(num_channels=1, num_classes=10), (1, 1, 28, 28)) == \
        520 + 25_050 + 400_500 + 5_010
    assert n_params(mlp.create_model(data_size=784, num_classes=10), (1, 784)) == \
        784 * 100 + 100 + 100 * 10 + 10
    a = alexnet.create_model(num_channels=3, num_classes=10)
    assert n_params(a, (1, 3, 224, 224)) == 23_490_378
    assert tuple(a.linear1.W.shape) == (1024, 4096)  # SINGA's Linear(1024, 4096)


def test_models_refuse_a_wrong_channel_count(cnn):
    from model import alexnet, resnet, xceptionnet
    from model import cnn as lenet

    from minisinga import tensor

    for m in (resnet.resnet18(num_channels=3, input_size=32),
              lenet.create_model(num_channels=3),
              alexnet.create_model(num_channels=3, input_size=99),
              xceptionnet.create_model(num_channels=3, input_size=71)):
        x = tensor.Tensor((2, 1, m.input_size, m.input_size))
        x.gaussian(0.0, 1.0)
        with pytest.raises(ValueError, match="3 input channels"):
            m.compile([x], is_train=False, use_graph=False)


# ---- reproducibility ----
def _sgd():
    from minisinga import opt

    return opt.SGD(lr=0.05, momentum=0.9, weight_decay=1e-5)


@pytest.mark.parametrize("model,graph", [("mlp", True), ("cnn", True), ("cnn", False)])
def test_run_is_reproducible_for_a_seed(cnn, mnist_dir, model, graph):
    import train_cnn

    def go(seed):
        r = quiet(train_cnn.run, 0, 1, 0, 2, 8, model, "mnist", _sgd(), graph, 0,
                  device="cpu", data_dir=str(mnist_dir), max_steps=3, seed=seed)
        r.pop("epoch_time")
        return r

    first = go(0)
    assert go(0) == first
    assert go(1) != first
