"""Tables of what a run launches on the (emulated) GPU, from a trace the emulator writes:

    MSEMU_TRACE=run.trace [MSEMU_DRYRUN=1] python ...    (with the emulator's _core, run.sh)
    python tests/cuda_emu/trace_table.py run.trace
    python tests/cuda_emu/trace_table.py short.trace long.trace  (only what long.trace adds)

With MSEMU_DRYRUN=1 kernels and GEMMs are checked and traced but not run, so a ResNet-50
step at batch 32 traces in a second (MSEMU_MEMORY_BYTES raises the emulated memory; device
memory is never touched then). The second form isolates one training step: trace a run of k
steps and one of k + 1, and the longer trace's extra lines are the last step.

Trace lines (tab-separated), one per submitted operation (a captured one once):
    K  kernel  grid  block  shared-bytes  arguments (integers as numbers, null pointers as
                                           null, plans as n<numel>/<ndim>, functors by
                                           mangled type, else _)
    G  <op(A)><op(B)> <A><B><C types>  m n k batch   (cuBLAS's column-major sizes)
    C  kind  bytes                                      (cudaMemcpyAsync)
    M  bytes                                            (cudaMemsetAsync)
The table lists each kernel's launches and blocks, the GEMMs' GFLOP, and the GEMMs whose C has
fewer 128 x 128 tiles than an H100 has multiprocessors (132), which leave most of it idle
unless split along K.
"""

import collections
import sys

SMS = 132


def parse(lines):
    kernels = collections.OrderedDict()
    gemms, copies, memsets = [], [0, 0], [0, 0]
    for line in lines:
        f = line.rstrip("\n").split("\t")
        if f[0] == "K":
            grid = [int(v) for v in f[2].split()]
            k = kernels.setdefault(f[1], [0, 0])
            k[0] += 1
            k[1] += grid[0] * grid[1] * grid[2]
        elif f[0] == "G":
            m, n, kk, batch = (int(v) for v in f[2].split())
            gemms.append((f[1], m, n, kk, batch))
        elif f[0] == "C":
            copies[0] += 1
            copies[1] += int(f[2])
        elif f[0] == "M":
            memsets[0] += 1
            memsets[1] += int(f[1])
        else:
            raise ValueError(f"not a trace line: {line!r}")
    return kernels, gemms, copies, memsets


def tiles(m, n, batch):
    return -(-m // 128) * -(-n // 128) * batch


def table(lines, out=sys.stdout):
    kernels, gemms, copies, memsets = parse(lines)
    print(f"{'kernel':48s} {'launches':>8s} {'blocks':>10s}", file=out)
    for name, (n, blocks) in sorted(kernels.items(), key=lambda kv: -kv[1][0]):
        print(f"{name:48s} {n:8d} {blocks:10d}", file=out)
    flop = sum(2 * m * n * k * b for _, m, n, k, b in gemms)
    print(f"GEMMs: {len(gemms)} calls, {flop / 1e9:.1f} GFLOP; copies: {copies[0]} "
          f"({copies[1] / 1e6:.1f} MB); memsets: {memsets[0]} ({memsets[1] / 1e6:.1f} MB)",
          file=out)
    few = collections.Counter(g for g in gemms if tiles(g[1], g[2], g[4]) < SMS)
    if few:
        print(f"GEMMs with fewer than {SMS} tiles of 128 x 128 (calls, ops types, m n k batch, "
              "tiles):", file=out)
        for (ops, m, n, k, b), c in sorted(few.items(), key=lambda kv: -kv[0][3]):
            print(f"  {c:4d}  {ops}  {m} {n} {k} {b}  {tiles(m, n, b)}", file=out)


def main(argv):
    if len(argv) not in (2, 3):
        print(__doc__, file=sys.stderr)
        return 2
    with open(argv[-1]) as f:
        lines = f.readlines()
    if len(argv) == 3:
        with open(argv[1]) as f:
            short = f.readlines()
        # The runs agree up to the end of the shorter one's steps; the lines after that in
        # the shorter one (e.g. fetching the loss) end the longer one too.
        common = 0
        while common < min(len(short), len(lines)) and short[common] == lines[common]:
            common += 1
        lines = lines[common:len(lines) - (len(short) - common)]
    table(lines)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
