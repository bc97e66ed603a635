"""How the extension was linked: its C++ runtime must not leak into the process."""

import os
import shutil
import subprocess
import sys

import pytest

from minisinga import _core

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.skipif(not shutil.which("nm"), reason="needs binutils' nm")
def test_core_exports_no_libstdcxx_symbols():
    # A toolchain that links libstdc++ statically (a GPU machine's g++ did) must not export
    # it from _core: a second copy interposed with the process's own libstdc++.
    out = subprocess.run(["nm", "-D", "--defined-only", _core.__file__], capture_output=True,
                         text=True, check=True).stdout
    leaked = [ln.split()[-1] for ln in out.splitlines() if " _ZNSt6locale" in ln]
    assert not leaked, leaked[:5]


def test_errors_keep_their_numbers_after_torch_loaded():
    # torch loads its own C++ runtime first; _core's messages and exceptions must still work.
    pytest.importorskip("torch")
    code = (
        "import torch\n"
        "from minisinga import _core\n"
        "t = _core.Tensor([2, 3], _core.default_device(), _core.DType.float32)\n"
        "try:\n"
        "    _core.reduce_sum(t, [5])\n"
        "except ValueError as e:\n"
        "    print(e)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                       timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "axis 5 is out of range for a 2-d tensor" in r.stdout, r.stdout


def test_sanitizer_build_refuses_real_cuda():
    # AddressSanitizer instruments host code only; with nvcc's device code it would report
    # nothing useful, so setup.py refuses (the emulated CUDA build is the sanitized one).
    env = dict(os.environ, MINISINGA_CUDA="1", MINISINGA_SANITIZE="address")
    r = subprocess.run([sys.executable, "setup.py", "--name"], capture_output=True, text=True,
                       cwd=ROOT, env=env, timeout=120)
    assert r.returncode == 1, (r.stdout, r.stderr[-2000:])
    assert "MINISINGA_SANITIZE needs MINISINGA_CUDA=0 (CPU) or MINISINGA_CUDA=emu" in r.stderr
