"""Faults in real multi-process runs: a rank that dies, hangs or was started with another
world size gives the other ranks a clear error within the timeout, never a hang."""

import contextlib
import os
import time

import pytest
from dist_helpers import need_data, run_worker

TIMEOUT = 4  # MINISINGA_DIST_TIMEOUT for these runs


def _mpich_segments():
    try:
        return {f for f in os.listdir("/dev/shm") if f.startswith("mpich_shm_")}
    except OSError:
        return set()


def _mapped(name):
    for pid in os.listdir("/proc"):
        try:
            with open(f"/proc/{pid}/maps") as f:
                if name in f.read():
                    return True
        except OSError:
            continue
    return False


def run_fault(launch, tmp_path, *args):
    need_data()
    before = _mpich_segments()
    t0 = time.monotonic()
    proc = run_worker(launch, tmp_path, *args, timeout=120, MINISINGA_DIST_TIMEOUT=TIMEOUT)
    took = time.monotonic() - t0
    # MPICH leaves its shared-memory segment behind when a job is killed or aborted.
    # Its processes may still be exiting: wait a little for nobody to map it.
    left = _mpich_segments() - before
    deadline = time.monotonic() + 5
    while left and time.monotonic() < deadline:
        for name in [n for n in left if not _mapped(n)]:
            with contextlib.suppress(OSError):
                os.unlink(os.path.join("/dev/shm", name))
            left.discard(name)
        time.sleep(0.2)
    return proc, took


@pytest.mark.parametrize("graph", [False, True], ids=["eager", "graph"])
def test_spawn_killed_rank_fails_the_others(tmp_path, graph):
    proc, took = run_fault("spawn", tmp_path, "--fault", "die", "--fault-at", "3",
                           *(["--graph"] if graph else []))
    out = proc.stdout
    assert proc.returncode != 0
    assert "rank 0 exited with code 1" in out, out[-3000:]
    assert "rank 1 exited with code -9" in out
    assert "DistError" in out and "rank 1 (pid" in out and "died while rank 0 waits" in out
    assert took < 60


def test_spawn_hung_rank_times_out(tmp_path):
    proc, took = run_fault("spawn", tmp_path, "--fault", "hang", "--fault-at", "2")
    out = proc.stdout
    assert proc.returncode != 0
    assert "rank 0 exited with code 1" in out, out[-3000:]
    assert f"timed out after {TIMEOUT} s" in out and "waiting for rank(s) [1]" in out
    assert took < 60


def test_spawn_mismatched_world_size(tmp_path):
    proc, _ = run_fault("spawn", tmp_path, "--claim-world", "3")
    out = proc.stdout
    assert "rank 0 exited with code 1" in out and "rank 1 exited with code 1" in out, out[-3000:]
    assert "rank 1 was started with world_size 3 but rank 0 created the group with " \
           "world_size 2" in out


def test_mpi_mismatched_world_size(tmp_path):
    proc, _ = run_fault("mpi", tmp_path, "--claim-world", "3")
    assert proc.returncode != 0
    assert "DistOpt: world_size=3 but mpiexec started 2 processes" in proc.stdout


def test_mpi_hung_rank_times_out(tmp_path):
    proc, took = run_fault("mpi", tmp_path, "--fault", "hang", "--fault-at", "2", "--graph")
    out = proc.stdout
    assert proc.returncode != 0, out[-3000:]
    assert f"rank 0 timed out after {TIMEOUT} s" in out, out[-3000:]
    assert took < 60, (took, out[-3000:])


def test_mpi_killed_rank_stops_the_job(tmp_path):
    proc, took = run_fault("mpi", tmp_path, "--fault", "die", "--fault-at", "2")
    out = proc.stdout
    assert proc.returncode != 0
    # mpiexec notices the death first and ends the other ranks with its own report (MPICH:
    # "BAD TERMINATION"; Open MPI: "exited on signal 9"), or the survivors time out.
    reports = ("BAD TERMINATION", "exited on signal 9", "timed out")
    assert any(r in out for r in reports), out[-3000:]
    assert took < 60


def _spawned_children(ppid):
    """pids of the multiprocessing-spawned children of `ppid` (not its resource tracker)."""
    import os

    kids = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                parent = int(f.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read()
        except (OSError, IndexError, ValueError):
            continue
        if parent == ppid and b"spawn_main" in cmd:
            kids.append(int(pid))
    return sorted(kids)


def test_train_multiprocess_killed_rank_ends_the_run():
    """SIGKILL one rank of train_multiprocess.py mid-epoch: the other rank reports it and
    fails, and the script exits non-zero, within the timeout."""
    import os
    import signal
    import subprocess
    import sys

    from dist_helpers import ROOT, env

    need_data()
    cmd = [sys.executable, os.path.join(ROOT, "examples", "cnn", "train_multiprocess.py"),
           "mlp", "mnist", "-w", "2", "--device", "cpu", "--data-dir",
           "/usr/share/datasets/fashion-mnist", "-m", "5", "-b", "16"]
    p = subprocess.Popen(cmd, env=env(MINISINGA_DIST_TIMEOUT=TIMEOUT), cwd=ROOT,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    import threading

    watchdog = threading.Timer(120, p.kill)  # bounds the blocking readline below
    watchdog.start()
    try:
        line = p.stdout.readline()  # rank 0 prints this once training has started
        assert line.startswith("Starting Epoch 0"), line + p.stderr.read()
        kids = _spawned_children(p.pid)
        assert len(kids) == 2, kids
        t0 = time.monotonic()
        os.kill(kids[-1], signal.SIGKILL)
        _, err = p.communicate(timeout=60)
        took = time.monotonic() - t0
    finally:
        watchdog.cancel()
        if p.poll() is None:
            p.kill()
            for k in _spawned_children(p.pid):
                os.kill(k, signal.SIGKILL)
    assert p.returncode != 0
    assert "died while rank" in err, err[-3000:]
    assert "exited with code -9" in err and "exited with code 1" in err, err[-3000:]
    assert took < TIMEOUT + 30
