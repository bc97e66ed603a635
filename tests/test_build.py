"""How the extension was linked."""

import shutil
import subprocess
import sys

import pytest

from minisinga import _core


@pytest.mark.skipif(not sys.platform.startswith("linux") or not shutil.which("ldd"),
                    reason="ldd exists on glibc Linux only")
def test_core_names_libstdcxx():
    # Linked with `gcc -shared`, _core once left libstdc++ out and bound the C++ runtime to
    # symbols exported by another library: exceptions crashed the interpreter on a GPU machine.
    out = subprocess.run(["ldd", _core.__file__], capture_output=True, text=True).stdout
    assert "libstdc++" in out, out
