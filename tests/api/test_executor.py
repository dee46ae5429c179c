"""sm.SlurmExecutor under the standard library's helpers (real dev cluster)."""

from __future__ import annotations

import concurrent.futures
import time

import pytest

import slurm_magics as sm

pytestmark = pytest.mark.cluster


def triple(x: int) -> int:
    return 3 * x


def test_submit_and_stdlib_helpers(cluster: sm.Cluster) -> None:
    with sm.SlurmExecutor(memory="100M") as executor:
        futures = [executor.submit(triple, i) for i in range(5)]
        _, not_done = concurrent.futures.wait(futures, timeout=180)
        assert not not_done
        assert sorted(f.result() for f in concurrent.futures.as_completed(futures)) == [
            0, 3, 6, 9, 12,
        ]  # fmt: skip
        assert all(isinstance(f, concurrent.futures.Future) for f in futures)


def test_a_burst_of_500_submits_is_a_handful_of_sbatch_calls(cluster: sm.Cluster) -> None:
    before = cluster.counters["sbatch"]
    executor = sm.SlurmExecutor(cluster, memory="100M")
    futures = [executor.submit(triple, i) for i in range(500)]
    executor.shutdown(wait=False)
    assert cluster.counters["sbatch"] - before <= 5
    assert futures[0].job is not None and futures[0].job.job_id
    for future in futures:
        future.job.cancel()  # type: ignore[union-attr]


def test_map_with_chunksize_and_timeout(cluster: sm.Cluster) -> None:
    before = cluster.counters["sbatch"]
    with sm.SlurmExecutor(memory="100M") as executor:
        assert list(executor.map(triple, range(40), chunksize=10, timeout=180)) == [
            3 * i for i in range(40)
        ]
        assert cluster.counters["sbatch"] - before == 1
        slow = executor.map(time.sleep, [30, 30], timeout=1)
        with pytest.raises(TimeoutError):
            list(slow)


def test_errors_and_shutdown_semantics(cluster: sm.Cluster) -> None:
    executor = sm.SlurmExecutor(memory="100M")
    failing = executor.submit(int, "not a number")
    with pytest.raises(ValueError, match="invalid literal"):
        failing.result(timeout=120)
    held = executor.submit(time.sleep, 60)
    executor.shutdown(wait=True, cancel_futures=True)
    with pytest.raises(concurrent.futures.CancelledError):
        held.result(timeout=10)
    with pytest.raises(RuntimeError, match="after shutdown"):
        executor.submit(triple, 1)
