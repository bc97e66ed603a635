"""Kernel throughput: minisinga `_core` against numpy on the same data in the same run.

Prints one table row per case: the work rate of each side (GFLOP/s) and their ratio
(minisinga / numpy: above 1 means minisinga is faster). Each side is timed with
time.perf_counter over --repeats runs after --warmup runs; the table shows the best run
(--stat median for the median), which is the steadier figure on a shared machine. Not a test:
nothing here asserts a wall-clock time.

    python benchmarks/bench_kernels.py [--quick] [--repeats 10] [--only gemm]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from minisinga import _core


@dataclass
class Row:
    family: str
    case: str
    flops: float  # work of one call, in floating-point operations
    core_s: float  # seconds per call, minisinga
    numpy_s: float  # seconds per call, numpy


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


# ---- Other families: add `def <family>_rows(args, dev) -> list[Row]` above and list it here.
# (conv2d vs a numpy im2col reference and elementwise rows go here.)
BENCHMARKS: dict[str, Callable] = {
    "gemm": gemm_rows,
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
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
        f"{'family':<8} {'case':<44} {'minisinga GFLOP/s':>18} {'numpy GFLOP/s':>14} {'ratio':>6}"
    )
    print(header)
    print("-" * len(header))
    for fam, fn in BENCHMARKS.items():
        if args.only and fam not in args.only:
            continue
        for r in fn(args, dev):
            core, ref = r.flops / r.core_s / 1e9, r.flops / r.numpy_s / 1e9
            print(
                f"{r.family:<8} {r.case:<44} {core:>18.1f} {ref:>14.1f} {core / ref:>6.2f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
