"""A GPU-less estimate of where a run's GPU time goes: the memory traffic of every kernel,
counted in the emulator, and the GEMMs' work, from a trace.

    MSEMU_MEMTRACE=1 bash tests/cuda_emu/run.sh ...   (builds the counting emulator; or by hand:
                                                       MSEMU_MEMTRACE=1 MINISINGA_CUDA=emu
                                                       python setup.py build_ext ...)
    MSEMU_MEMSTATS=run.mem MSEMU_TRACE=run.trace python ...   (with that build's _core)
    python tests/cuda_emu/mem_table.py run.mem [--trace run.trace] [--gpu h100|h200]
    python tests/cuda_emu/mem_table.py short.mem long.mem --trace short.trace long.trace

The second form isolates one training step, as trace_table.py does: runs of k and k + 1
steps, and only what the longer one adds is counted.

Per kernel (all launches): requests (warp-wide accesses), the 32-byte sectors they touch per
request (4 is a warp reading 4-byte words side by side; 32 is every thread in its own
sector), the bytes the threads asked for, the distinct bytes (what DRAM must deliver at
least), and an estimated time: per launch the longer of the distinct bytes at the DRAM's
bandwidth and the sectors at L2's, plus a fixed cost per launch. GEMMs (from the trace's G
lines): the longer of their flops at cuBLAS's FP32 rate, scaled down when the 128 x 128
output tiles (split along K where K is long and they are few, as cuBLAS does) leave
multiprocessors idle in the last wave, and their operands' bytes at DRAM bandwidth. Counts
come from a sample of each launch's blocks, scaled to all of them.

A model, not a measurement: it ignores caches beyond "each sector once", overlap between
kernels, occupancy, instruction costs and cuBLAS's efficiency on a given shape; it is for
finding the kernels that move the most bytes or waste sectors, and for comparing plans, on a
machine without a GPU. One calibration point: session 2's plan (commit 0fd6568), measured at
59 ms per ResNet-50 batch-32 step on an H200, is estimated at 34 ms.
"""

import argparse
import collections
import sys

# Bandwidths and rates reached in practice (bytes/s, flop/s), launch cost (s), multiprocessors.
GPUS = {
    "h200": {"dram": 4.0e12, "l2": 8.0e12, "sgemm": 50e12, "launch": 2e-6, "sms": 132},
    "h100": {"dram": 2.8e12, "l2": 7.0e12, "sgemm": 50e12, "launch": 2e-6, "sms": 132},
}


def kernel_rows(lines, gpu):
    """Per kernel name: launches, requests, sectors, bytes, unique bytes, seconds."""
    rows = collections.OrderedDict()
    for line in lines:
        f = line.rstrip("\n").split("\t")
        if len(f) != 7:
            raise ValueError(f"not a memstats line: {line!r}")
        name = f[0]
        blocks, sampled, requests, sectors, nbytes, unique = (int(v) for v in f[1:])
        scale = blocks / sampled if sampled else 0.0
        r = rows.setdefault(name, [0, 0.0, 0.0, 0.0, 0.0, 0.0])
        r[0] += 1
        r[1] += requests * scale
        r[2] += sectors * scale
        r[3] += nbytes * scale
        r[4] += unique * 32 * scale
        r[5] += max(unique * 32 * scale / gpu["dram"], sectors * 32 * scale / gpu["l2"]) + \
            gpu["launch"]
    return rows


def gemm_rows(lines, gpu):
    """Per GEMM shape (ops, m, n, k, batch): calls, GFLOP, seconds."""
    rows = collections.Counter()
    for line in lines:
        f = line.rstrip("\n").split("\t")
        if f[0] != "G":
            continue
        m, n, k, batch = (int(v) for v in f[2].split())
        rows[(f[1], m, n, k, batch)] += 1
    out = []
    for (ops, m, n, k, batch), calls in rows.items():
        flop = 2.0 * m * n * k * batch
        tiles = -(-m // 128) * -(-n // 128) * batch
        # cuBLAS splits a long K itself when the tiles are too few (old session-2 plans with
        # one tile and K = 50176 ran far faster than one multiprocessor could)
        tiles *= min(max(1, gpu["sms"] // tiles), max(1, k // 512))
        waves = -(-tiles // gpu["sms"])
        fill = tiles / (waves * gpu["sms"])
        size = 2 if "h" in ops.split()[1] else 4
        nbytes = size * (m * k + k * n + m * n) * batch
        sec = max(flop / (gpu["sgemm"] * fill), nbytes / gpu["dram"]) + gpu["launch"]
        out.append(((ops, m, n, k, batch), calls, flop * calls / 1e9, sec * calls))
    return out


def table(mem_lines, trace_lines, gpu, out=None, top=15):
    out = out or sys.stdout
    rows = kernel_rows(mem_lines, gpu)
    total_k = sum(r[5] for r in rows.values())
    print(f"{'kernel':40s} {'launch':>6s} {'requests':>10s} {'sect/req':>8s} "
          f"{'MB asked':>9s} {'MB DRAM':>9s} {'est ms':>7s}", file=out)
    for name, r in sorted(rows.items(), key=lambda kv: -kv[1][5]):
        per = r[2] / r[1] if r[1] else 0.0
        print(f"{name[:40]:40s} {r[0]:6d} {r[1]:10.3g} {per:8.2f} {r[3] / 1e6:9.1f} "
              f"{r[4] / 1e6:9.1f} {r[5] * 1e3:7.3f}", file=out)
    print(f"kernels: {sum(r[0] for r in rows.values())} launches, "
          f"{sum(r[4] for r in rows.values()) / 1e9:.2f} GB from DRAM, est {total_k * 1e3:.2f} ms",
          file=out)
    if trace_lines is None:
        return
    gemms = gemm_rows(trace_lines, gpu)
    total_g = sum(g[3] for g in gemms)
    print(f"GEMMs: {sum(g[1] for g in gemms)} calls, {sum(g[2] for g in gemms):.1f} GFLOP, "
          f"est {total_g * 1e3:.2f} ms; the {top} longest (ops types, m n k batch):", file=out)
    for shape, calls, gflop, sec in sorted(gemms, key=lambda g: -g[3])[:top]:
        ops, m, n, k, batch = shape
        print(f"  {calls:4d} x {ops} {m} {n} {k} {batch}  {gflop:7.1f} GFLOP  "
              f"{sec * 1e3:7.3f} ms", file=out)
    print(f"estimated total: {(total_k + total_g) * 1e3:.2f} ms", file=out)


def last_step(short, long, key):
    """The lines `long` adds to `short`: both agree (by `key`) up to the end of the shorter
    run's steps; the lines after that in the shorter one end the longer one too."""
    common = 0
    while common < min(len(short), len(long)) and key(short[common]) == key(long[common]):
        common += 1
    return long[common:len(long) - (len(short) - common)]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("memstats", nargs="+", help="one run, or a shorter and a longer one")
    ap.add_argument("--trace", nargs="+", default=[], help="the same runs' MSEMU_TRACE files")
    ap.add_argument("--gpu", choices=sorted(GPUS), default="h200")
    ap.add_argument("--top", type=int, default=15, help="GEMM shapes listed")
    a = ap.parse_args(argv)
    if len(a.memstats) > 2 or (a.trace and len(a.trace) != len(a.memstats)):
        ap.error("give one run's files, or a shorter and a longer run's (as many traces)")

    def read(path):
        with open(path) as f:
            return f.readlines()

    mem = [read(p) for p in a.memstats]
    trace = [read(p) for p in a.trace] or None
    if len(mem) == 2:  # the launch's name and blocks identify it in both runs
        mem = last_step(*mem, key=lambda line: line.split("\t")[:2])
        trace = trace and last_step(*trace, key=lambda line: line)
    else:
        mem, trace = mem[0], trace and trace[0]
    table(mem, trace, GPUS[a.gpu], top=a.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
