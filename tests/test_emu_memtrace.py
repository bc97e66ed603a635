"""The emulator's memory statistics (tests/cuda_emu: MSEMU_MEMTRACE=1 build, MSEMU_MEMSTATS
file, mem_table.py): warp requests and 32-byte sectors counted for kernels whose access
pattern is known. Runs in the emulator build that counts (`MSEMU_MEMTRACE=1 bash
tests/cuda_emu/run.sh tests/test_emu_memtrace.py`, a stage of .ci/run); elsewhere there is
nothing to count and it is skipped."""

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "cuda_emu"))
import mem_table  # noqa: E402

pytestmark = pytest.mark.skipif(
    os.environ.get("MSEMU_MEMTRACE") != "1",
    reason="needs the counting emulator build (MSEMU_MEMTRACE=1 bash tests/cuda_emu/run.sh)")

N = 1 << 20
PROGRAM = f"""
import sys
import numpy as np
from minisinga import _core, device
d = device.create_cuda_gpu_on(0)
def t(a):
    r = _core.Tensor(list(a.shape), d, _core.DType.float32)
    r.copy_from_numpy(a)
    return r
x, y = t(np.ones({N}, np.float32)), t(np.ones({N}, np.float32))
for _ in range(int(sys.argv[1])):
    _core.binary(_core.BinaryOp.Add, x, y)
_core.slice(x, [0], [{N}], [0], [8])  # every 8th float: one sector per thread
d.Sync()
"""


def run(tmp_path, adds):
    path = tmp_path / f"run{adds}.mem"
    env = dict(os.environ, MSEMU_MEMSTATS=str(path))
    r = subprocess.run([sys.executable, "-P", "-c", PROGRAM, str(adds)], env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    return path


def launches(path):
    out = []
    for line in path.read_text().splitlines():
        name, *nums = line.split("\t")
        blocks, sampled, requests, sectors, nbytes, unique = (int(v) for v in nums)
        scale = blocks / sampled
        out.append((name, requests * scale, sectors * scale, nbytes * scale, unique * scale))
    return out


def test_requests_and_sectors_of_known_patterns(tmp_path):
    (add, sl) = [v for v in launches(run(tmp_path, 1)) if not v[0].startswith("Fill")]
    name, requests, sectors, nbytes, unique = add
    assert name.startswith("BinaryKernel")
    # two 4-byte loads and a store per element; a warp's 32 neighbours fill 4 sectors
    assert requests == pytest.approx(3 * N / 32, rel=1e-3)
    assert sectors == pytest.approx(4 * requests, rel=1e-3)
    assert nbytes == pytest.approx(12 * N, rel=1e-3)
    assert unique == pytest.approx(12 * N / 32, rel=1e-3)
    name, requests, sectors, nbytes, unique = sl
    # N / 8 outputs: a strided load (32 sectors a request) and a contiguous store (4)
    assert requests == pytest.approx(2 * N / 8 / 32, rel=1e-3)
    assert sectors == pytest.approx(18 * requests, rel=1e-3)
    assert unique * 32 == pytest.approx(N / 8 * 32 + N / 8 * 4, rel=1e-3)


def test_table_of_the_extra_step(tmp_path, capsys):
    short, long = run(tmp_path, 1), run(tmp_path, 3)
    mem_table.main([str(short), str(long)])
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("BinaryKernel"))
    launches_, requests, per = row.split()[-6:-3]
    assert int(launches_) == 2 and float(per) == 4.0, row
    assert float(requests) == pytest.approx(2 * 3 * N / 32, rel=5e-3), row  # 3 digits shown
    assert "CopyKernel" not in out and "kernels: 2 launches" in out
    with pytest.raises(SystemExit):
        mem_table.main([str(short), str(long), "--trace", str(short)])
