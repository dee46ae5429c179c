"""Failures on the real dev cluster: every one resolves its future, none hangs."""

from __future__ import annotations

import asyncio
import concurrent.futures
import subprocess
import sys
import time

import pytest

import slurm_magics as sm
from tests.helpers import sibling, still_queued

pytestmark = pytest.mark.cluster


class CustomError(Exception):
    pass


def fail_with(kind: str, delay: float = 0.0) -> None:
    time.sleep(delay)
    if kind == "value":
        raise ValueError("bad value 7")
    raise CustomError("custom failure")


def sleep_then(seconds: float, value: object = None) -> object:
    time.sleep(seconds)
    return value


def test_remote_exception_keeps_its_type_and_traceback(cluster: sm.Cluster) -> None:
    job = cluster.submit(fail_with, "value")
    with pytest.raises(ValueError, match="bad value 7") as caught:
        job.result(timeout=120)
    cause = caught.value.__cause__
    assert isinstance(cause, sm.RemoteTraceback)
    assert "fail_with" in str(cause) and f"job {job.job_id}" in str(cause)
    assert job.state is sm.JobState.FAILED
    with pytest.raises(CustomError):
        cluster.submit(fail_with, "custom").result(timeout=120)


def test_downstream_of_a_failure_gets_dependency_error_and_nothing_stays_pending(
    cluster: sm.Cluster,
) -> None:
    upstream = cluster.submit(fail_with, "value", 3)
    middle = sm.task(lambda x: x, memory="100M")(upstream)
    last = sm.task(lambda x: x, memory="100M")({"nested": [middle]})
    assert "afterok:" + upstream.job_id in middle.run.dependency
    start = time.monotonic()
    for job in (middle, last):
        with pytest.raises(sm.DependencyError):
            job.result(timeout=60)
    assert time.monotonic() - start < 30
    assert middle.state is sm.JobState.DEPENDENCY_FAILED
    assert not still_queued(cluster, {middle.job_id, last.job_id})


def test_slurm_dependency_never_satisfied_is_noticed(
    cluster: sm.Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Without the client-side propagation, SLURM's own DependencyNeverSatisfied reason
    # (what a reattached session sees) must still end the downstream job.
    monkeypatch.setattr(sm.Cluster, "_upstream_done", lambda *args: None)
    upstream = cluster.submit(fail_with, "value", 2)
    downstream = sm.task(lambda: "never", memory="100M").after(upstream)()
    with pytest.raises(sm.DependencyError):
        downstream.result(timeout=60)
    assert not still_queued(cluster, {downstream.job_id})


def test_already_failed_dependency_raises_at_once_and_submits_nothing(
    cluster: sm.Cluster,
) -> None:
    failed = cluster.submit(fail_with, "value")
    with pytest.raises(ValueError, match="bad value"):
        failed.result(timeout=120)
    before = cluster.counters["sbatch"]
    with pytest.raises(sm.DependencyError, match="depends on"):
        sm.task(lambda x: x)([failed])
    with pytest.raises(sm.DependencyError):
        sm.task(lambda: 1).after(failed)()
    assert cluster.counters["sbatch"] == before


def test_out_of_memory(cluster: sm.Cluster) -> None:
    def hog() -> int:
        block = bytearray(400 * 1024 * 1024)
        for i in range(0, len(block), 4096):
            block[i] = 1
        time.sleep(5)
        return len(block)

    job = sm.task(hog, memory="100M")()
    with pytest.raises(sm.JobFailedError) as caught:
        job.result(timeout=90)
    assert caught.value.state is sm.JobState.OUT_OF_MEMORY
    assert caught.value.job_id == job.job_id
    assert caught.value.log_paths


@pytest.mark.slow
def test_timeout(cluster: sm.Cluster) -> None:
    job = sm.task(sleep_then, time=1, memory="100M")(600)
    with pytest.raises(sm.JobFailedError) as caught:
        job.result(timeout=200)
    assert caught.value.state is sm.JobState.TIMEOUT
    assert "time limit" in str(caught.value)


@pytest.mark.slurm_only  # scancel by hand exists only for SLURM's jobs
def test_scancel_from_outside_is_a_cancelled_failure(cluster: sm.Cluster) -> None:
    job = cluster.submit(sleep_then, 300)
    deadline = time.monotonic() + 60
    while job.state is not sm.JobState.RUNNING and time.monotonic() < deadline:
        time.sleep(0.2)
    subprocess.run(["scancel", job.job_id], check=True)
    with pytest.raises(sm.JobFailedError) as caught:
        job.result(timeout=60)
    assert caught.value.state is sm.JobState.CANCELLED


def test_cancel_a_running_job_and_a_whole_array(cluster: sm.Cluster) -> None:
    job = cluster.submit(sleep_then, 300)
    deadline = time.monotonic() + 60
    while job.state is not sm.JobState.RUNNING and time.monotonic() < deadline:
        time.sleep(0.2)
    assert job.state is sm.JobState.RUNNING
    assert job.cancel()
    with pytest.raises(concurrent.futures.CancelledError):
        job.result(timeout=5)
    arr = sm.task(sleep_then, memory="100M").map([300] * 30)
    assert arr.cancel()
    assert all(j.cancelled() for j in arr)
    assert not still_queued(cluster, {job.job_id, arr.job_id} | {j.job_id for j in arr})


def test_awaiting_never_cancels(cluster: sm.Cluster) -> None:
    job = cluster.submit(sleep_then, 3, "done")

    async def impatient() -> None:
        await asyncio.wait_for(job, 0.2)

    with pytest.raises(TimeoutError):
        asyncio.run(impatient())
    assert not job.cancelled()
    assert job.result(timeout=120) == "done"


def test_array_raises_first_error_while_others_run(cluster: sm.Cluster) -> None:
    def maybe(x: int) -> int:
        if x == 0:
            raise KeyError("zero")
        time.sleep(8)
        return x

    arr = sm.task(maybe, memory="100M").map(range(4))
    with pytest.raises(KeyError):
        arr.result(timeout=60)
    assert not all(j.done() for j in arr[1:])  # the others are still running
    results = sm.gather(arr, return_exceptions=True).result(timeout=120)
    assert isinstance(results[0][0], KeyError) and results[0][1:] == [1, 2, 3]


def test_missing_cloudpickle_on_the_cluster_is_a_clear_error(
    cluster: sm.Cluster, tmp_path: object
) -> None:
    bare = f"{tmp_path}/bare"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", bare], check=True)
    before = cluster.counters.get("sbatch", 0)
    # Checked when connecting: a clear error saying what to install where, nothing submitted.
    with pytest.raises(sm.ClusterError, match="cloudpickle is not importable") as caught:
        sibling(cluster, python=f"{bare}/bin/python")
    assert "pip install cloudpickle==" in str(caught.value)
    assert cluster.counters.get("sbatch", 0) == before
