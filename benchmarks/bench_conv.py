"""conv2d forward (and, with --backward, data/weight gradient) time and GFLOP/s:
minisinga vs PyTorch CPU in the same run, on the same number of threads.

    python benchmarks/bench_conv.py [--backward] [--repeat 5] [--min-time 0.3]

The ratio column is PyTorch time / minisinga time (> 1: minisinga is faster); times are the
best of --repeat samples. PyTorch is optional; without it only minisinga is timed.
"""

import argparse
import os
import time

import numpy as np

from minisinga import _core

# name, x shape, w shape, stride, padding (top, bottom, left, right), groups
LAYERS = [
    ("cnn conv1 5x5 1->20", (64, 1, 28, 28), (20, 1, 5, 5), (1, 1), (0, 0, 0, 0), 1),
    ("cnn conv2 5x5 20->50", (64, 20, 12, 12), (50, 20, 5, 5), (1, 1), (0, 0, 0, 0), 1),
    ("resnet 3x3 64->64", (8, 64, 56, 56), (64, 64, 3, 3), (1, 1), (1, 1, 1, 1), 1),
    ("1x1 256->64", (8, 256, 56, 56), (64, 256, 1, 1), (1, 1), (0, 0, 0, 0), 1),
    ("3x3 s2 128->256", (8, 128, 28, 28), (256, 128, 3, 3), (2, 2), (1, 1, 1, 1), 1),
    ("depthwise 3x3 128", (8, 128, 56, 56), (128, 1, 3, 3), (1, 1), (1, 1, 1, 1), 128),
]


def bench(fn, repeat, min_time):
    """Best of `repeat` samples, each the mean time of fn() over about min_time seconds
    (the minimum is the least disturbed by other processes on a shared machine)."""
    fn()
    n = 1
    while True:
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        dt = time.perf_counter() - t0
        if dt >= min_time / 4 or n >= 1 << 12:
            break
        n *= 2
    n = max(1, int(n * min_time / 4 / max(dt, 1e-9)))
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        samples.append((time.perf_counter() - t0) / n)
    return min(samples)


def core_tensor(a):
    dt = {np.dtype("float32"): _core.DType.float32}[a.dtype]
    t = _core.Tensor(list(a.shape), _core.default_device(), dt)
    t.copy_from_numpy(np.ascontiguousarray(a))
    return t


def minisinga_fns(x, w, b, dy, stride, pad, groups):
    xt, wt, bt, dyt = (core_tensor(a) for a in (x, w, b, dy))
    kw = {"stride": list(stride), "padding": list(pad), "dilation": [1, 1], "groups": groups}
    return {
        "fwd": lambda: _core.conv2d(xt, wt, bt, **kw),
        "bwd data": lambda: _core.conv2d_backward_data(dyt, wt, list(x.shape), **kw),
        "bwd weight": lambda: _core.conv2d_backward_weight(dyt, xt, list(w.shape), **kw),
    }


def torch_fns(torch, x, w, b, dy, stride, pad, groups):
    import torch.nn.functional as F

    xt, wt, bt, dyt = (torch.from_numpy(a) for a in (x, w, b, dy))
    top, bottom, left, right = pad
    if top == bottom and left == right:
        pre, padding = (lambda t: t), (top, left)
    else:
        pre, padding = (lambda t: F.pad(t, (left, right, top, bottom))), (0, 0)

    def bwd(mask):
        return lambda: torch.ops.aten.convolution_backward(
            dyt, pre(xt), wt, None, list(stride), list(padding), [1, 1], False, [0, 0], groups, mask
        )

    return {
        "fwd": lambda: F.conv2d(pre(xt), wt, bt, stride, padding, 1, groups),
        "bwd data": bwd([True, False, False]),
        "bwd weight": bwd([False, True, False]),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--backward", action="store_true", help="also time the gradients")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--min-time", type=float, default=0.3, help="seconds per sample")
    args = ap.parse_args()
    threads = int(os.environ.get("OMP_NUM_THREADS", os.cpu_count() or 1))
    try:
        import torch

        torch.set_num_threads(threads)
    except ImportError:
        torch = None
    print(f"threads: {threads}; PyTorch: {torch.__version__ if torch else 'not installed'}")
    head = f"{'layer':24} {'pass':10} {'minisinga ms':>12} {'GFLOP/s':>8}"
    if torch:
        head += f" {'torch ms':>9} {'GFLOP/s':>8} {'ratio':>6}"
    print(head)
    rng = np.random.default_rng(0)
    passes = ["fwd", "bwd data", "bwd weight"] if args.backward else ["fwd"]
    for name, xs, ws, stride, pad, groups in LAYERS:
        x = rng.standard_normal(xs, dtype=np.float32)
        w = rng.standard_normal(ws, dtype=np.float32)
        b = rng.standard_normal(ws[0], dtype=np.float32)
        oh = (xs[2] + pad[0] + pad[1] - ws[2]) // stride[0] + 1
        ow = (xs[3] + pad[2] + pad[3] - ws[3]) // stride[1] + 1
        dy = rng.standard_normal((xs[0], ws[0], oh, ow), dtype=np.float32)
        flops = 2.0 * xs[0] * ws[0] * oh * ow * ws[1] * ws[2] * ws[3]
        ours = minisinga_fns(x, w, b, dy, stride, pad, groups)
        theirs = torch_fns(torch, x, w, b, dy, stride, pad, groups) if torch else None
        for p in passes:
            t = bench(ours[p], args.repeat, args.min_time)
            line = f"{name:24} {p:10} {t * 1e3:12.3f} {flops / t / 1e9:8.1f}"
            if theirs:
                with torch.no_grad():
                    tt = bench(theirs[p], args.repeat, args.min_time)
                line += f" {tt * 1e3:9.3f} {flops / tt / 1e9:8.1f} {tt / t:6.2f}"
            print(line, flush=True)


if __name__ == "__main__":
    main()
