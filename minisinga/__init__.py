"""minisinga: a small, complete deep-learning framework in the shape of Apache SINGA."""

import ctypes as _ctypes
import os as _os

import scipy_openblas32 as _openblas

# OpenMP threads that spin while idle steal the cores from each other and from other processes:
# on a busy 2-core machine a tiny GEMM took milliseconds instead of microseconds. Sleeping idle
# threads cost ~10 us per parallel region. Read by libgomp when _core loads; the user's setting
# wins.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# Load OpenBLAS globally first so _core finds it whether installed or editable.
_ctypes.CDLL(
    _os.path.join(_openblas.get_lib_dir(), "libscipy_openblas.so"), mode=_ctypes.RTLD_GLOBAL
)

from . import _core  # noqa: E402

__version__ = "0.1.0"
__all__ = ["_core", "device", "tensor"]
