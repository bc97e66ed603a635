"""The benchmark scripts still run: each one, at its smallest size, prints its table (the
figures themselves are reported in the READMEs, never asserted)."""

import os
import re
import subprocess
import sys

from dist_helpers import ROOT, need_data, pythonpath

from minisinga import device


def run(script, *args, timeout=300):
    env = dict(os.environ, PYTHONPATH=pythonpath())
    return subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", script), *args],
                          capture_output=True, text=True, env=env, timeout=timeout, cwd=ROOT)


def rows(out, first_words):
    """The output lines starting with each of `first_words` (one each, in order)."""
    lines = out.splitlines()
    found = [next((ln for ln in lines if ln.split()[:1] == [w]), None) for w in first_words]
    assert all(found), (first_words, out[-2000:])
    return found


def test_bench_conv():
    r = run("bench_conv.py", "--repeat", "1", "--min-time", "0.001", "--backward")
    assert r.returncode == 0, r.stderr[-2000:]
    table = [ln for ln in r.stdout.splitlines() if " fwd " in ln or " bwd " in ln]
    assert len(table) == 6 * 3, r.stdout
    # Autotuned: each shape's chosen plan is one of its timed candidates, listed after the table
    r = run("bench_conv.py", "--repeat", "1", "--min-time", "0.001", "--backward", "--autotune")
    assert r.returncode == 0, r.stderr[-2000:]
    tuned = [ln for ln in r.stdout.splitlines() if ln.startswith("  conv2d")]
    assert len(tuned) >= 6, r.stdout  # the forwards at least (the CNN's, the ResNet shapes')
    for ln in tuned:
        chosen, times = re.match(r".*: ([a-z0-9 -]+) \((.*)\)$", ln).groups()
        assert chosen in [t.rsplit(" ", 1)[0] for t in times.split(", ")], ln
    # ResNet-50's 23 shapes at batch 1, with the step totals
    r = run("bench_conv.py", "--repeat", "1", "--min-time", "0.001", "--resnet50", "--batch", "1")
    assert r.returncode == 0, r.stderr[-2000:]
    table = [ln for ln in r.stdout.splitlines() if ln.startswith("r50 ")]
    assert len(table) == 23 and all(" fwd " in ln for ln in table), r.stdout
    assert "ResNet-50 step total" in r.stdout, r.stdout
    r = run("bench_conv.py", "--resnet50", "--batch", "0")
    assert r.returncode == 2 and "--batch is 0; expected at least 1" in r.stderr, r.stderr


def test_bench_graph_train_kernels():
    r = run("bench_graph.py", "--steps", "2", "--resnet50-gpu-memory", "--resnet50-batch", "2")
    assert r.returncode == 0, r.stderr[-2000:]
    rows(r.stdout, ["mlp", "cnn", "resnet18"])
    # The peak holds at least ResNet-50's 25.6M parameters, their gradients and momenta
    # (float16: 2 + 2 + 4 bytes each, the momenta float32); float16 activations take less.
    m = re.search(r"resnet50 batch 2, eager, the GPU's conv plan: peak (\d+) MB \(float32\), "
                  r"(\d+) MB \(float16\)", r.stdout)
    assert m, r.stdout
    f32, f16 = int(m.group(1)), int(m.group(2))
    assert f32 > 25.5e6 * 12 / 2**20 and 25.5e6 * 8 / 2**20 < f16 < f32, r.stdout
    r = run("bench_train.py", "--steps", "2", "--batch", "4", "--models", "mlp,cnn,resnet50",
            "--resnet-batch", "2", "--resnet-steps", "1")
    assert r.returncode == 0, r.stderr[-2000:]
    rows(r.stdout, ["mlp", "cnn", "resnet50"])
    r = run("bench_train.py", "--models", "mlp,vgg")
    assert r.returncode == 2 and "unknown model 'vgg'; expected some of mlp, cnn, resnet50" \
        in r.stderr, r.stderr[-2000:]
    r = run("bench_kernels.py", "--quick", "--repeats", "1", "--warmup", "0", "--only",
            "elementwise")
    assert r.returncode == 0, r.stderr[-2000:]
    assert "relu" in r.stdout and "GB/s" in r.stdout, r.stdout


def test_bench_epoch():
    need_data()
    r = run("bench_epoch.py", "--steps", "3")
    assert r.returncode == 0, r.stderr[-2000:]
    rows(r.stdout, ["mlp", "cnn"])


def test_bench_dist():
    r = run("bench_dist.py", "--steps", "2", "--reps", "1", "--skip-mpi", "--model", "mlp")
    assert r.returncode == 0, r.stderr[-2000:]
    assert "sparseTopK" in r.stdout and "resnet18" in r.stdout, r.stdout


def test_bench_gpu():
    if device.cuda_available():
        # PyTorch's column where it has CUDA; left out, with a note, where it has not
        r = run("bench_gpu.py", "--models", "mlp", "--iters", "2", "--skip", "1",
                "--small-iters", "2", "--repeat", "2")
        assert r.returncode == 0, r.stderr[-2000:]
        rows(r.stdout, ["mlp"])
        r = run("bench_conv.py", "--device", "cuda", "--repeat", "1", "--min-time", "0.001",
                "--backward")
        assert r.returncode == 0, r.stderr[-2000:]
        table = [ln for ln in r.stdout.splitlines() if " fwd " in ln or " bwd " in ln]
        assert len(table) == 6 * 3, r.stdout
    else:  # a clear refusal, not a traceback
        r = run("bench_gpu.py", "--models", "mlp")
        assert r.returncode == 2 and "no GPU visible" in r.stderr, r.stderr[-2000:]
    r = run("bench_gpu.py", "--repeat", "0")
    assert r.returncode == 2 and "--repeat must be >= 1" in r.stderr, r.stderr[-2000:]


def test_bench_onnx():
    r = run("bench_onnx.py", "--models", "mlp,cnn", "--iters", "1")
    assert r.returncode == 0, r.stderr[-2000:]
    for model in ("mlp", "cnn"):
        block = r.stdout.split(f"{model} (batch")[1].split("(batch")[0]
        names = re.findall(r"^  (\S.*?)\s{2,}[\d.]+\s+[\d.]+x$", block, re.M)
        assert names[:2] == ["native", "imported"] and "train imported graph" in names, block
    r = run("bench_onnx.py", "--models", "vgg")
    assert r.returncode == 2 and "unknown model(s) ['vgg']" in r.stderr, r.stderr


def test_bench_ops():
    """Without PyTorch it says it needs it and exits 2; with it, the asked-for rows of three
    groups, each with both sides' times and no error."""
    only = ["activation gelu (64, 1000)", "layout pad reflect", "rnn GRU"]
    r = run("bench_ops.py", "--groups", "elementwise", "layout", "rnn", "--reps", "1",
            "--only", *only)
    try:
        import torch  # noqa: F401
    except ImportError:
        assert r.returncode == 2 and "compares against PyTorch" in r.stdout, r.stdout
        return
    assert r.returncode == 0, r.stderr[-2000:]
    table = [ln for ln in r.stdout.splitlines() if not ln.startswith("#")]
    assert len(table) == 3 and not any(" ERR " in ln for ln in table), r.stdout
    assert all(re.search(r" F +[\d.]+ +[\d.]+ +[\d.]+x FB +[\d.]+ +[\d.]+ +[\d.]+x$", ln)
               for ln in table), r.stdout
