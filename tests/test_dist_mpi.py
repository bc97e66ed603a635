"""DistOpt over MPI: two real ranks under the pip mpich's `mpiexec -n 2`."""

import numpy as np
import pytest
from dist_helpers import need_data, ok, params, ranks, reference, run_worker
from test_dist import check_comm_results


def test_mpi_communicator_operations(tmp_path):
    ok(run_worker("mpi", tmp_path, "--what", "comm"))
    check_comm_results(ranks(tmp_path, 2, "comm"), 2)


@pytest.mark.parametrize("graph", [False, True], ids=["eager", "graph"])
def test_mpi_plain_matches_single_process(tmp_path, graph):
    need_data()
    ok(run_worker("mpi", tmp_path, "--steps", "8", *(["--graph"] if graph else [])))
    r0, r1 = ranks(tmp_path)
    ref, ref_losses = reference("--steps", "8")
    for k, v in params(r0).items():
        np.testing.assert_array_equal(v, params(r1)[k])
        np.testing.assert_allclose(v, ref[k], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose((r0["losses"] + r1["losses"]) / 2, ref_losses, rtol=1e-5)
    np.testing.assert_array_equal(r0["metric"], [3, 30])
    assert int(r0["world"]) == 2


def test_mpi_ranks_start_from_rank0_parameters(tmp_path):
    need_data()
    ok(run_worker("mpi", tmp_path, "--steps", "3", "--rank-seeds", "--graph"))
    r0, r1 = ranks(tmp_path)
    for k, v in params(r0).items():
        np.testing.assert_array_equal(v, params(r1)[k])


def test_mpi_half_within_fp16_tolerance(tmp_path):
    need_data()
    ok(run_worker("mpi", tmp_path, "--steps", "8", "--mode", "half", "--graph"))
    r0, r1 = ranks(tmp_path)
    ref, _ = reference("--steps", "8")
    for k, v in params(r0).items():
        np.testing.assert_array_equal(v, params(r1)[k])
        np.testing.assert_allclose(v, ref[k], rtol=0, atol=2e-3 * np.abs(ref[k]).max())


@pytest.mark.parametrize("mode,graph", [("sparseThreshold", False), ("sparseTopK", True),
                                        ("partialUpdate", True)])
def test_mpi_compressed_modes_reduce_the_loss(tmp_path, mode, graph):
    need_data()
    ok(run_worker("mpi", tmp_path, "--steps", "30", "--mode", mode,
                  *(["--graph"] if graph else [])))
    r0, r1 = ranks(tmp_path)
    loss = (r0["losses"] + r1["losses"]) / 2
    assert loss[-5:].mean() < 0.75 * loss[:5].mean(), loss
