"""Kernel throughput: minisinga `_core` against numpy (GEMM, elementwise) and PyTorch's CPU
conv2d (when torch is installed) on the same data in the same run.

Prints one table row per case: the work rate of each side (GFLOP/s, or GB/s moved for the
memory-bound elementwise ops) and their ratio (minisinga / reference: above 1 means minisinga
is faster). Each side is timed with
time.perf_counter over --repeats runs after --warmup runs; the table shows the best run
(--stat median for the median), which is the steadier figure on a shared machine. Not a test:
nothing here asserts a wall-clock time.

    python benchmarks/bench_kernels.py [--quick] [--repeats 10] [--only gemm]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

sys.path.append(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))  # uninstalled
from minisinga import _core  # noqa: E402


@dataclass
class Row:
    family: str
    case: str
    flops: float  # work of one call, in floating-point operations
    core_s: float  # seconds per call, minisinga
    numpy_s: float  # seconds per call, the reference
    ref: str = "numpy"
    unit: str = "GFLOP/s"  # "GB/s": `flops` then counts bytes read and written


def timed(fn: Callable[[], object], warmup: int, repeats: int, stat: str) -> float:
    """Seconds per call of fn (median or best of `repeats`, after `warmup` calls)."""
    # numpy and minisinga each run their own OpenBLAS thread pool, whose workers spin for a
    # while after a call: let the other side's workers go idle before timing this one.
    time.sleep(0.3)
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times) if stat == "best" else statistics.median(times)


def to_core(a: np.ndarray, dev) -> _core.Tensor:
    a = np.ascontiguousarray(a)
    t = _core.Tensor(list(a.shape), dev, _core.DType.float32)
    t.copy_from_numpy(a)
    return t


# ---- GEMM ----

GEMM_SQUARE = [256, 512, 1024, 2048]
# (name, batch, M, K, N, trans_a, trans_b): deep-learning shapes; op(a) is [batch x] M x K,
# op(b) [batch x] K x N (batch 0: plain 2-d).
GEMM_DL = [
    ("mlp fwd x @ W", 0, 64, 800, 500, False, False),
    ("mlp dW = x^T @ dy", 0, 800, 64, 500, True, False),
    ("conv im2col cols @ W", 0, 3136, 576, 64, False, False),
    ("linear x @ W^T", 0, 256, 1024, 1000, False, True),
    ("attention q @ k^T", 32, 128, 64, 128, False, True),
]


def gemm_rows(args, dev) -> list[Row]:
    rng = np.random.default_rng(0)
    cases = [
        (f"square {n}", 0, n, n, n, False, False)
        for n in GEMM_SQUARE
        if not (args.quick and n > 1024)
    ] + GEMM_DL
    rows = []
    for name, batch, m, k, n, trans_a, trans_b in cases:
        lead = (batch,) if batch else ()
        a = rng.standard_normal(lead + ((k, m) if trans_a else (m, k))).astype(np.float32)
        b = rng.standard_normal(lead + ((n, k) if trans_b else (k, n))).astype(np.float32)
        ta, tb = to_core(a, dev), to_core(b, dev)
        # numpy gets transposed views, which its matmul hands to BLAS as transposes too.
        na = np.swapaxes(a, -1, -2) if trans_a else a
        nb = np.swapaxes(b, -1, -2) if trans_b else b

        def core(ta=ta, tb=tb, trans_a=trans_a, trans_b=trans_b):
            _core.matmul(ta, tb, trans_a=trans_a, trans_b=trans_b)
            dev.Sync()

        def ref(na=na, nb=nb):
            np.matmul(na, nb)

        got = _core.matmul(ta, tb, trans_a=trans_a, trans_b=trans_b).to_numpy()
        np.testing.assert_allclose(got, na @ nb, rtol=1e-3, atol=1e-2)
        reps = max(3, args.repeats // 3) if m * n * k > 512**3 else args.repeats
        dims = (f"{batch}x" if batch else "") + f"{m}x{k}x{n}"
        rows.append(
            Row(
                "gemm",
                f"{name} ({dims})",
                2.0 * max(batch, 1) * m * n * k,
                timed(core, args.warmup, reps, args.stat),
                timed(ref, args.warmup, reps, args.stat),
            )
        )
    return rows


# ---- elementwise: memory-bound, so the rate is bytes moved per second ----

def elementwise_rows(args, dev) -> list[Row]:
    rng = np.random.default_rng(0)
    n = 1 << 22 if args.quick else 1 << 24
    a = rng.standard_normal(n).astype(np.float32)
    b = rng.standard_normal(n).astype(np.float32)
    bias = rng.standard_normal(1024).astype(np.float32)
    ta, tb, tbias = to_core(a, dev), to_core(b, dev), to_core(bias, dev)
    out = to_core(np.empty_like(a), dev)
    nout = np.empty_like(a)
    a2, ta2 = a.reshape(-1, 1024), ta.reshape([-1, 1024])
    out2 = out.reshape([-1, 1024])
    U, B = _core.UnaryOp, _core.BinaryOp
    cases = [
        ("relu", 8.0, lambda: _core.unary(U.Relu, ta, out=out),
         lambda: np.maximum(a, 0, out=nout)),
        ("exp", 8.0, lambda: _core.unary(U.Exp, ta, out=out), lambda: np.exp(a, out=nout)),
        ("add", 12.0, lambda: _core.binary(B.Add, ta, tb, out=out),
         lambda: np.add(a, b, out=nout)),
        ("mul (broadcast row)", 8.0, lambda: _core.binary(B.Mul, ta2, tbias, out=out2),
         lambda: np.multiply(a2, bias, out=nout.reshape(-1, 1024))),
    ]
    rows = []
    for name, bytes_per_elem, core, ref in cases:
        rows.append(Row("eltwise", f"{name} ({n} floats)", bytes_per_elem * n,
                        timed(core, args.warmup, args.repeats, args.stat),
                        timed(ref, args.warmup, args.repeats, args.stat), unit="GB/s"))
    return rows


# ---- conv2d forward (im2col + GEMM) against PyTorch's CPU convolution ----

CONV_CASES = [  # (name, N, C, H, W, O, k, stride, pad, groups)
    ("cnn conv1", 64, 1, 28, 28, 20, 5, 1, 0, 1),
    ("cnn conv2", 64, 20, 12, 12, 50, 5, 1, 0, 1),
    ("resnet 3x3", 8, 64, 56, 56, 64, 3, 1, 1, 1),
    ("resnet 1x1", 8, 256, 56, 56, 64, 1, 1, 0, 1),
    ("depthwise 3x3", 8, 128, 28, 28, 128, 3, 1, 1, 128),
]


def conv_rows(args, dev) -> list[Row]:
    try:
        import torch
    except ImportError:
        print("conv2d: PyTorch is not installed; no reference to compare with")
        return []
    torch.set_num_threads(os.cpu_count() or 1)
    rng = np.random.default_rng(0)
    rows = []
    for name, n, c, h, w, o, k, st, pad, g in CONV_CASES:
        x = rng.standard_normal((n, c, h, w)).astype(np.float32)
        wt = rng.standard_normal((o, c // g, k, k)).astype(np.float32)
        tx, tw = to_core(x, dev), to_core(wt, dev)
        px, pw = torch.from_numpy(x), torch.from_numpy(wt)
        def core(tx=tx, tw=tw, st=st, pad=pad, g=g):
            return _core.conv2d(tx, tw, None, [st, st], [pad] * 4, [1, 1], g)

        def ref(px=px, pw=pw, st=st, pad=pad, g=g):
            return torch.nn.functional.conv2d(px, pw, None, st, pad, 1, g)

        np.testing.assert_allclose(core().to_numpy(), ref().numpy(), rtol=1e-3, atol=1e-3)
        oh = (h + 2 * pad - k) // st + 1
        flops = 2.0 * n * o * oh * oh * (c // g) * k * k
        rows.append(Row("conv2d", f"{name} ({n}x{c}x{h}x{w} -> {o}, k{k})", flops,
                        timed(core, args.warmup, args.repeats, args.stat),
                        timed(ref, args.warmup, args.repeats, args.stat), ref="torch"))
    return rows


BENCHMARKS: dict[str, Callable] = {
    "gemm": gemm_rows,
    "elementwise": elementwise_rows,
    "conv": conv_rows,
}


def main() -> None:
    p = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--stat", choices=["median", "best"], default="best")
    p.add_argument("--quick", action="store_true", help="skip the largest sizes")
    p.add_argument("--only", choices=sorted(BENCHMARKS), nargs="*", help="families to run")
    args = p.parse_args()
    dev = _core.default_device()
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    print(
        f"device {dev.name}, {os.cpu_count()} CPUs (load average {load}), "
        f"numpy {np.__version__}, {args.stat} of {args.repeats} runs"
    )
    header = (
        f"{'family':<8} {'case':<48} {'minisinga':>10} {'reference':>10} {'unit':>8} "
        f"{'vs':>6} {'ratio':>6}"
    )
    print(header)
    print("-" * len(header))
    for fam, fn in BENCHMARKS.items():
        if args.only and fam not in args.only:
            continue
        for r in fn(args, dev):
            core, ref = r.flops / r.core_s / 1e9, r.flops / r.numpy_s / 1e9
            print(
                f"{r.family:<8} {r.case:<48} {core:>10.1f} {ref:>10.1f} {r.unit:>8} "
                f"{r.ref:>6} {core / ref:>6.2f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
