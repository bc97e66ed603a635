"""conv2d forward (and, with --backward, data/weight gradient) time and GFLOP/s:
minisinga vs PyTorch in the same run, on the CPU (same number of threads) or on a GPU
(`--device cuda`: cuBLAS-based convolutions against cuDNN, TF32 off on both sides).

    python benchmarks/bench_conv.py [--backward] [--repeat 5] [--min-time 0.3]
        [--device cpu|cuda] [--resnet50 [--batch 32]] [--autotune]

`--resnet50`: the 23 distinct convolution shapes of ResNet-50 at batch 32 (or --batch) instead
of the small set, each with how often it occurs in the network, and per pass the step's total
(time x count).
The ratio column is PyTorch time / minisinga time (> 1: minisinga is faster); times are the
best of --repeat samples. PyTorch is optional; without it only minisinga is timed.
`--autotune`: minisinga's convolution autotuning on (as cuDNN's benchmark mode, which the
PyTorch side always uses): the path column is the plan it chose, and every plan's time for
each tuned shape is listed after the table.
"""

import argparse
import os
import sys
import time

import numpy as np

sys.path.append(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))  # uninstalled
from minisinga import _core, device  # noqa: E402

# name, x shape, w shape, stride, padding (top, bottom, left, right), groups
LAYERS = [
    ("cnn conv1 5x5 1->20", (64, 1, 28, 28), (20, 1, 5, 5), (1, 1), (0, 0, 0, 0), 1),
    ("cnn conv2 5x5 20->50", (64, 20, 12, 12), (50, 20, 5, 5), (1, 1), (0, 0, 0, 0), 1),
    ("resnet 3x3 64->64", (8, 64, 56, 56), (64, 64, 3, 3), (1, 1), (1, 1, 1, 1), 1),
    ("1x1 256->64", (8, 256, 56, 56), (64, 256, 1, 1), (1, 1), (0, 0, 0, 0), 1),
    ("3x3 s2 128->256", (8, 128, 28, 28), (256, 128, 3, 3), (2, 2), (1, 1, 1, 1), 1),
    ("depthwise 3x3 128", (8, 128, 56, 56), (128, 1, 3, 3), (1, 1), (1, 1, 1, 1), 128),
]


# ResNet-50 at batch 32 (torchvision layout, stride on the 3x3): name, x shape, w shape,
# stride, padding, groups, occurrences in the network.
def _r50(cin, cout, k, s, h, count):
    p = k // 2
    return (f"r50 {k}x{k} s{s} {cin}->{cout} @{h}", (32, cin, h, h), (cout, cin, k, k),
            (s, s), (p, p, p, p), 1, count)


RESNET50 = [
    _r50(3, 64, 7, 2, 224, 1),
    _r50(64, 64, 1, 1, 56, 1), _r50(256, 64, 1, 1, 56, 2), _r50(64, 64, 3, 1, 56, 3),
    _r50(64, 256, 1, 1, 56, 4),
    _r50(256, 128, 1, 1, 56, 1), _r50(512, 128, 1, 1, 28, 3), _r50(128, 128, 3, 2, 56, 1),
    _r50(128, 128, 3, 1, 28, 3), _r50(128, 512, 1, 1, 28, 4), _r50(256, 512, 1, 2, 56, 1),
    _r50(512, 256, 1, 1, 28, 1), _r50(1024, 256, 1, 1, 14, 5), _r50(256, 256, 3, 2, 28, 1),
    _r50(256, 256, 3, 1, 14, 5), _r50(256, 1024, 1, 1, 14, 6), _r50(512, 1024, 1, 2, 28, 1),
    _r50(1024, 512, 1, 1, 14, 1), _r50(2048, 512, 1, 1, 7, 2), _r50(512, 512, 3, 2, 14, 1),
    _r50(512, 512, 3, 1, 7, 2), _r50(512, 2048, 1, 1, 7, 3), _r50(1024, 2048, 1, 2, 14, 1),
]


def bench(fn, repeat, min_time):
    """Best of `repeat` samples, each the mean time of fn() over about min_time seconds
    (the minimum is the least disturbed by other processes on a shared machine). fn must
    wait for its own work (the GPU versions synchronise)."""
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


def core_tensor(a, dev):
    dt = {np.dtype("float32"): _core.DType.float32}[a.dtype]
    t = _core.Tensor(list(a.shape), dev, dt)
    t.copy_from_numpy(np.ascontiguousarray(a))
    return t


def minisinga_fns(dev, x, w, b, dy, stride, pad, groups):
    xt, wt, bt, dyt = (core_tensor(a, dev) for a in (x, w, b, dy))
    kw = {"stride": list(stride), "padding": list(pad), "dilation": [1, 1], "groups": groups}

    def synced(f):
        def run():
            f()
            dev.Sync()

        return run

    return {
        "fwd": synced(lambda: _core.conv2d(xt, wt, bt, **kw)),
        "bwd data": synced(lambda: _core.conv2d_backward_data(dyt, wt, list(x.shape), **kw)),
        "bwd weight": synced(lambda: _core.conv2d_backward_weight(dyt, xt, list(w.shape), **kw)),
    }


def torch_fns(torch, x, w, b, dy, stride, pad, groups, cuda=False):
    import torch.nn.functional as F

    xt, wt, bt, dyt = (torch.from_numpy(a) for a in (x, w, b, dy))
    if cuda:
        xt, wt, bt, dyt = (t.cuda() for t in (xt, wt, bt, dyt))
    top, bottom, left, right = pad
    if top == bottom and left == right:
        pre, padding = (lambda t: t), (top, left)
    else:
        pre, padding = (lambda t: F.pad(t, (left, right, top, bottom))), (0, 0)

    def bwd(mask):
        return lambda: torch.ops.aten.convolution_backward(
            dyt, pre(xt), wt, None, list(stride), list(padding), [1, 1], False, [0, 0], groups, mask
        )

    def synced(f):
        def run():
            f()
            if cuda:
                torch.cuda.synchronize()

        return run

    return {
        "fwd": synced(lambda: F.conv2d(pre(xt), wt, bt, stride, padding, 1, groups)),
        "bwd data": synced(bwd([True, False, False])),
        "bwd weight": synced(bwd([False, True, False])),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--backward", action="store_true", help="also time the gradients")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--min-time", type=float, default=0.3, help="seconds per sample")
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--resnet50", action="store_true",
                    help="ResNet-50's convolution shapes at batch 32, with step totals")
    ap.add_argument("--batch", type=int, default=32, help="--resnet50's batch size")
    ap.add_argument("--autotune", action="store_true",
                    help="minisinga times its plans per shape and keeps the fastest")
    args = ap.parse_args()
    device.set_conv_autotune(args.autotune)
    cuda = args.device == "cuda"
    threads = int(os.environ.get("OMP_NUM_THREADS", os.cpu_count() or 1))
    try:
        import torch

        torch.set_num_threads(threads)
        if cuda:
            torch.backends.cudnn.benchmark = True
            torch.backends.cudnn.allow_tf32 = False
            torch.backends.cuda.matmul.allow_tf32 = False
    except ImportError:
        torch = None
    if torch is not None and cuda and not torch.cuda.is_available():
        print("bench_conv: this PyTorch has no CUDA; its columns are left out", file=sys.stderr)
        torch = None
    if cuda:
        if not device.cuda_available():
            raise SystemExit("bench_conv: no GPU visible (or minisinga built without CUDA)")
        dev = device.create_cuda_gpu_on(0)
        dev.set_allow_tf32(False)
    else:
        dev = _core.default_device()
    print(f"device: {args.device}; threads: {threads}; "
          f"PyTorch: {torch.__version__ if torch else 'not installed'}")
    # path: how minisinga runs the pass on this device (ops/conv.cc's plan, csrc/README.md)
    head = f"{'layer':30} {'pass':10} {'path':18} {'minisinga ms':>12} {'GFLOP/s':>8}"
    if torch:
        head += f" {'torch ms':>9} {'GFLOP/s':>8} {'ratio':>6}"
    print(head)
    rng = np.random.default_rng(0)
    passes = ["fwd", "bwd data", "bwd weight"] if args.backward else ["fwd"]
    if args.batch < 1:
        ap.error(f"--batch is {args.batch}; expected at least 1")
    if args.resnet50:
        layers = [(n, (args.batch,) + xs[1:], *rest) for n, xs, *rest in RESNET50]
    else:
        layers = [layer + (1,) for layer in LAYERS]
    totals = {p: [0.0, 0.0] for p in passes}  # per pass: sum of count x time, ours and theirs
    for name, xs, ws, stride, pad, groups, count in layers:
        x = rng.standard_normal(xs, dtype=np.float32)
        w = rng.standard_normal(ws, dtype=np.float32)
        b = rng.standard_normal(ws[0], dtype=np.float32)
        oh = (xs[2] + pad[0] + pad[1] - ws[2]) // stride[0] + 1
        ow = (xs[3] + pad[2] + pad[3] - ws[3]) // stride[1] + 1
        dy = rng.standard_normal((xs[0], ws[0], oh, ow), dtype=np.float32)
        flops = 2.0 * xs[0] * ws[0] * oh * ow * ws[1] * ws[2] * ws[3]
        ours = minisinga_fns(dev, x, w, b, dy, stride, pad, groups)
        if args.autotune:
            for f in ours.values():
                f()  # tunes each pass first
        theirs = torch_fns(torch, x, w, b, dy, stride, pad, groups, cuda) if torch else None
        for p in passes:
            t = bench(ours[p], args.repeat, args.min_time)
            totals[p][0] += count * t
            path = _core._conv2d_path(dev, list(xs), list(ws), list(stride), list(pad),
                                      [1, 1], groups, weight_grad=p == "bwd weight")
            if args.autotune:
                path = tuned_plan(dev, OPS[p], xs, ws, stride, pad) or path
            line = f"{name:30} {p:10} {path:18} {t * 1e3:12.3f} {flops / t / 1e9:8.1f}"
            if theirs:
                with torch.no_grad():
                    tt = bench(theirs[p], args.repeat, args.min_time)
                totals[p][1] += count * tt
                line += f" {tt * 1e3:9.3f} {flops / tt / 1e9:8.1f} {tt / t:6.2f}"
            print(line, flush=True)
    if args.resnet50:
        for p in passes:
            ours_ms, theirs_ms = totals[p][0] * 1e3, totals[p][1] * 1e3
            line = f"{'ResNet-50 step total':30} {p:10} {'':18} {ours_ms:12.3f} {'':8}"
            if torch:
                line += f" {theirs_ms:9.3f} {'':8} {theirs_ms / ours_ms:6.2f}"
            print(line, flush=True)
    if args.autotune:
        print("autotuned plans (ms per call, first-call timing):")
        for r in device.conv_autotune_results(dev):
            times = ", ".join(f"{n} {s * 1e3:.3f}" for n, s in r["candidates"])
            print(f"  {r['key']}: {r['chosen']} ({times})")


OPS = {"fwd": "conv2d", "bwd data": "conv2d_backward_data",
       "bwd weight": "conv2d_backward_weight"}


def tuned_plan(dev, op, xs, ws, stride, pad):
    """The plan the autotuner chose on dev for that pass and shape (None: not tuned)."""
    prefix = f"{op} x{tuple(xs)} w{tuple(ws)} stride{tuple(stride)} pad{tuple(pad)} "
    return next((r["chosen"] for r in device.conv_autotune_results(dev)
                 if r["key"].startswith(prefix)), None)


if __name__ == "__main__":
    main()
