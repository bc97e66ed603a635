"""Faults in real multi-process runs: a rank that dies, hangs or was started with another
world size gives the other ranks a clear error within the timeout, never a hang."""

import time

import pytest
from dist_helpers import need_data, run_worker

TIMEOUT = 4  # MINISINGA_DIST_TIMEOUT for these runs


def run_fault(launch, tmp_path, *args):
    need_data()
    t0 = time.monotonic()
    proc = run_worker(launch, tmp_path, *args, timeout=120, MINISINGA_DIST_TIMEOUT=TIMEOUT)
    return proc, time.monotonic() - t0


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
    assert proc.returncode != 0
    assert f"rank 0 timed out after {TIMEOUT} s" in out, out[-3000:]
    assert took < 60


def test_mpi_killed_rank_stops_the_job(tmp_path):
    proc, took = run_fault("mpi", tmp_path, "--fault", "die", "--fault-at", "2")
    out = proc.stdout
    assert proc.returncode != 0
    # mpiexec notices the death first and ends the other ranks with its own report.
    assert "BAD TERMINATION" in out or "timed out" in out, out[-3000:]
    assert took < 60
