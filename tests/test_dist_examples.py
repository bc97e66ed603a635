"""The distributed example scripts run end to end on the CPU with two real ranks:
train_multiprocess.py (shared memory), train_mpi.py (mpiexec) and the autograd scripts, on
Fashion-MNIST (real images) or small synthetic CIFAR-10 files. Every run is bounded by a
subprocess timeout."""

import os
import re
import subprocess
import sys

import pytest
from dist_helpers import DATA, ROOT, env, mpiexec, need_data

CNN = os.path.join(ROOT, "examples", "cnn")
TRAIN_RE = re.compile(r"^Training loss = (-?\d+\.\d{6}), training accuracy = (\d\.\d{6})$",
                      re.MULTILINE)
EVAL_RE = re.compile(r"^Evaluation accuracy = (\d\.\d{6}), Elapsed Time = (\d+\.\d{6})s$",
                     re.MULTILINE)


def script(path, *args, mpi=False, timeout=300):
    cmd = [sys.executable, os.path.join(CNN, path), *map(str, args)]
    if mpi:
        cmd = [mpiexec(), "-n", "2"] + cmd
    try:
        return subprocess.run(cmd, env=env(), capture_output=True, text=True, timeout=timeout,
                              cwd=ROOT, check=False)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"{' '.join(cmd)} did not finish in {timeout} s:\n{e.stdout}\n{e.stderr}")


def epochs(proc, n):
    """The (loss, train acc, val acc) of each epoch, printed once (by rank 0 only)."""
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    train, ev = TRAIN_RE.findall(proc.stdout), EVAL_RE.findall(proc.stdout)
    assert len(train) == n and len(ev) == n, proc.stdout
    assert proc.stdout.count("Starting Epoch 0:") == 1, proc.stdout
    return [(float(a), float(b), float(c)) for (a, b), (c, _) in zip(train, ev)]


SMALL = ["--device", "cpu", "--data-dir", DATA, "-b", "32", "--max-steps", "15"]


@pytest.mark.parametrize("model,option,graph", [
    ("cnn", "plain", True), ("mlp", "half", False), ("mlp", "partialUpdate", True),
    ("mlp", "sparseTopK", True), ("cnn", "sparseThreshold", False)])
def test_train_multiprocess(model, option, graph):
    need_data()
    proc = script("train_multiprocess.py", model, "mnist", "-w", "2", "-m", "2", "-d", option,
                  *SMALL, *([] if graph else ["-g"]))
    (l0, _, _), (l1, _, acc) = epochs(proc, 2)
    assert l1 < l0, proc.stdout  # summed over both ranks: it falls
    assert acc > 0.3, proc.stdout


@pytest.mark.parametrize("option", ["plain", "sparseTopK"])
def test_train_mpi(option):
    need_data()
    proc = script("train_mpi.py", "mlp", "mnist", "-m", "2", "-d", option, "-s", "0.1",
                  *SMALL, mpi=True)
    (l0, _, _), (l1, _, acc) = epochs(proc, 2)
    assert l1 < l0 and acc > 0.3, proc.stdout


def test_train_multiprocess_bad_arguments():
    proc = script("train_multiprocess.py", "mlp", "mnist", "-w", "0", "--device", "cpu")
    assert proc.returncode != 0 and "--world-size must be >= 1" in proc.stderr
    if not _gpus():
        proc = script("train_multiprocess.py", "mlp", "mnist", "-w", "2", "--device", "cuda")
        assert proc.returncode != 0
        assert "need 2 GPUs, but 0 are visible" in proc.stderr, proc.stderr
    proc = script("train_multiprocess.py", "mlp", "mnist", "-d", "sometimes")
    assert proc.returncode == 2 and "invalid choice" in proc.stderr


def test_train_multiprocess_missing_data_fails_every_rank(tmp_path):
    proc = script("train_multiprocess.py", "mlp", "mnist", "-w", "2", "--device", "cpu",
                  "--data-dir", tmp_path, "-m", "1")
    assert proc.returncode != 0
    assert "rank 0 exited with code 1" in proc.stderr and "rank 1 exited with code 1" in \
        proc.stderr, proc.stderr


def _gpus():
    from minisinga import device

    return device.get_num_gpus()


@pytest.mark.parametrize("name,args", [
    ("mnist_multiprocess.py", ["2"]),
    ("sparsification_mnist.py", ["2", "--topK", "--spars", "0.1"]),
])
def test_autograd_multiprocess_scripts(name, args):
    need_data()
    proc = script(os.path.join("autograd", name), *args, "-m", "1", *SMALL)
    epochs(proc, 1)


def test_autograd_mnist_dist():
    need_data()
    proc = script(os.path.join("autograd", "mnist_dist.py"), "-m", "1", *SMALL, mpi=True)
    epochs(proc, 1)


def test_autograd_cifar10_multiprocess_partial_update(tmp_path):
    sys.path.insert(0, CNN)
    try:
        from data import synthetic
    finally:
        sys.path.remove(CNN)
    synthetic.write_cifar10(tmp_path, n_train_per_batch=20, n_test=20)
    proc = script(os.path.join("autograd", "cifar10_multiprocess.py"), "2", "--depth", "18",
                  "--image-size", "32", "-b", "4", "-m", "1", "--max-steps", "2",
                  "--device", "cpu", "--data-dir", tmp_path)
    epochs(proc, 1)


def test_autograd_resnet_dist_throughput():
    proc = script(os.path.join("autograd", "resnet_dist.py"), "--model", "resnet18",
                  "--batch-size", "2", "--image-size", "32", "--iters", "2", "--device", "cpu",
                  mpi=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert re.search(r"^Throughput = \d+\.\d+ per second$", proc.stdout, re.MULTILINE), proc.stdout
    assert proc.stdout.count("Throughput") == 1
