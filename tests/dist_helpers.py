"""Helpers of the distributed tests: run tests/dist_worker.py in real processes (spawned or
under the pip mpich's mpiexec), bounded by timeouts, and read what the ranks wrote."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
WORKER = os.path.join(HERE, "dist_worker.py")
DATA = "/usr/share/datasets/fashion-mnist"


def pythonpath(*extra: str) -> str:
    """PYTHONPATH for a subprocess: the caller's entries first (so a minisinga found there,
    e.g. tests/cuda_emu/run.sh's build, stays the one imported), then the checkout, `extra`."""
    have = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    return os.pathsep.join(have + [ROOT, *extra])


def env(**extra) -> dict:
    e = dict(os.environ)
    e["PYTHONPATH"] = pythonpath()
    e["OMP_NUM_THREADS"] = "1"  # two ranks share the cores
    e.setdefault("MINISINGA_DIST_TIMEOUT", "30")
    e.update({k: str(v) for k, v in extra.items()})
    return e


def mpiexec() -> str:
    """The mpiexec of the pip `mpich` wheel (next to this Python), else the one on PATH."""
    local = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    found = local if os.path.exists(local) else shutil.which("mpiexec")
    if not found:
        pytest.fail("mpiexec not found: `pip install mpi4py mpich` (project dependencies)")
    return found


def need_data() -> None:
    if not os.path.exists(os.path.join(DATA, "train-images-idx3-ubyte.gz")):
        pytest.fail(f"{DATA} is missing: install the Debian package dataset-fashion-mnist")


def run_worker(launch: str, out, *args, timeout: float = 180, n: int = 2, **env_extra):
    """Runs the worker; returns the CompletedProcess (stdout and stderr merged)."""
    cmd = [sys.executable, WORKER, launch, str(out), *map(str, args)]
    if launch == "mpi":
        cmd = [mpiexec(), "-n", str(n)] + cmd
    else:
        cmd += ["--world", str(n)]
    try:
        return subprocess.run(cmd, check=False, env=env(**env_extra), stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, timeout=timeout, cwd=ROOT)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"{' '.join(cmd)} did not finish in {timeout} s:\n{e.output}")


def ok(proc) -> None:
    assert proc.returncode == 0, f"exit code {proc.returncode}:\n{proc.stdout[-6000:]}"


def ranks(out, n: int = 2, prefix: str = "rank"):
    return [dict(np.load(os.path.join(out, f"{prefix}{r}.npz"))) for r in range(n)]


def params(res: dict) -> dict:
    return {k[2:]: v for k, v in res.items() if k.startswith("p:")}


def reference(*args):
    """Single-process training on the same global batches (what plain DistOpt must match)."""
    import dist_worker

    a = dist_worker.parse(["spawn", "unused", *map(str, args)])
    a.graph = False
    p, losses = dist_worker.train(0, 1, dist_worker.sgd_factory(a), a)
    return p, losses
