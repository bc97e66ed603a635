"""Eager vs recorded-graph execution on CPU, in one run: training throughput (MLP and CNN at
small batches, where Python overhead shows) and peak memory (CNN, ResNet-18 at a small input).
--resnet50-gpu-memory adds the eager peak of a ResNet-50 training step at batch 32 with the
GPU's convolution plan, in float32 and in float16 (float16 inputs and parameters, as
train_cnn.py -p float16): the pool and the plan are the code a GPU runs, so it is the GPU's
eager peak (bench_gpu.py's) without a GPU.

    python benchmarks/bench_graph.py [--steps 50] [--resnet50-gpu-memory [--resnet50-batch 32]]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.append(os.path.join(HERE, ".."))  # a checkout without an installed minisinga
sys.path.insert(0, os.path.join(HERE, "..", "examples", "cnn"))

from bench_train import CNN, MLP  # noqa: E402

from minisinga import _core, device, opt, tensor  # noqa: E402


def make(name):
    if name == "mlp":
        return MLP(), (784,)
    if name == "cnn":
        return CNN(), (1, 28, 28)
    if name == "resnet18":
        from model import resnet  # examples/cnn/model/resnet.py

        return resnet.resnet18(num_classes=10, input_size=128), (3, 128, 128)
    if name == "resnet50":
        from model import resnet

        return resnet.resnet50(num_classes=1000, input_size=224), (3, 224, 224)
    raise ValueError(name)


def run(name, batch, steps, graph, half=False):
    """Returns (images/s, peak bytes) for a fresh model on a fresh device; `half`: float16
    inputs and parameters (train_cnn.py -p float16)."""
    dev = device.create_cpu_device()
    dev.SetRandSeed(0)
    m, shape = make(name)
    r = np.random.default_rng(0)
    x = r.random((batch,) + shape, dtype=np.float32).astype(np.float16 if half else np.float32)
    y = r.integers(0, 10, batch).astype(np.int32)  # classes 0..9 exist in every model
    tx, ty = tensor.from_numpy(x, dev), tensor.from_numpy(y, dev)
    dtype = tensor.float16 if half else tensor.float32
    m.set_optimizer(opt.SGD(0.01, momentum=0.9, dtype=dtype))
    m.compile([tx], is_train=True, use_graph=graph, sequential=True)
    for _ in range(2):
        m(tx, ty)
    dev.reset_peak()
    t0 = time.perf_counter()
    for _ in range(steps):
        tx.copy_from_numpy(x)
        out, loss = m(tx, ty)
    loss.to_numpy()
    dt = time.perf_counter() - t0
    peak = dev.memory_stats()["peak"]
    m.eval()
    return batch * steps / dt, peak


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--resnet50-gpu-memory", action="store_true")
    ap.add_argument("--resnet50-batch", type=int, default=32)
    args = ap.parse_args()
    print(f"eager vs graph on CPU ({os.cpu_count()} cores)")
    print(f"{'model':9} {'batch':>5} {'eager img/s':>12} {'graph img/s':>12} {'speedup':>8} "
          f"{'eager peak MB':>14} {'graph peak MB':>14} {'memory':>8}")
    for name, batch, steps in [("mlp", 64, args.steps), ("mlp", 16, args.steps),
                               ("cnn", 16, max(5, args.steps // 5)),
                               ("resnet18", 8, max(2, args.steps // 25))]:
        try:
            e_tp, e_peak = run(name, batch, steps, False)
            g_tp, g_peak = run(name, batch, steps, True)
        except ImportError as e:
            print(f"{name:9} skipped: {e}")
            continue
        print(f"{name:9} {batch:5d} {e_tp:12.1f} {g_tp:12.1f} {g_tp / e_tp:7.2f}x "
              f"{e_peak / 2**20:14.2f} {g_peak / 2**20:14.2f} {g_peak / e_peak - 1:+7.0%}",
              flush=True)
    if args.resnet50_gpu_memory:
        previous = _core._set_conv_gpu_plan_on_cpu(True)
        try:
            peaks = [run("resnet50", args.resnet50_batch, 1, False, half)[1]
                     for half in (False, True)]
        finally:
            _core._set_conv_gpu_plan_on_cpu(previous)
        print(f"resnet50 batch {args.resnet50_batch}, eager, the GPU's conv plan: peak "
              f"{peaks[0] / 2**20:.0f} MB (float32), {peaks[1] / 2**20:.0f} MB (float16)")


if __name__ == "__main__":
    main()
