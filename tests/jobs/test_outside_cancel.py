"""A pending array task cancelled from outside (scancel 123_2, the panel's per-task cancel)
ends CANCELLED at once, though squeue drops it and sacct never lists it."""

from __future__ import annotations

import subprocess
import time

import pytest

import slurm_magics as sm

pytestmark = pytest.mark.cluster


def sleep_then(seconds: float, value: object) -> object:
    time.sleep(seconds)
    return value


@pytest.mark.slurm_only  # scancel by hand exists only for SLURM's jobs
def test_pending_array_task_cancelled_from_outside_is_cancelled_promptly(
    cluster: sm.Cluster,
) -> None:
    held = sm.task(sleep_then, memory="100M", extra={"hold": True}).on(cluster)
    arr = held.map([0, 0, 0, 0], ["a", "b", "c", "d"])
    try:
        deadline = time.monotonic() + 60
        while "Held" not in arr[2].reason and time.monotonic() < deadline:
            time.sleep(0.2)  # the poller has seen the task pending in the array's range
        assert "Held" in arr[2].reason, arr[2].reason
        subprocess.run(["scancel", f"{arr.job_id}_2"], check=True)
        cancelled_at = time.monotonic()
        with pytest.raises(sm.JobFailedError) as caught:
            arr[2].result(timeout=60)
        assert time.monotonic() - cancelled_at < 15
        assert caught.value.state is sm.JobState.CANCELLED
        assert arr[2].state is sm.JobState.CANCELLED
        assert "cancelled while pending" in str(caught.value)
        # The rest of the array is untouched and runs once released.
        assert not any(job.done() for job in (arr[0], arr[1], arr[3]))
        subprocess.run(["scontrol", "release", arr.job_id], check=True)
        assert [arr[i].result(timeout=120) for i in (0, 1, 3)] == ["a", "b", "d"]
    finally:
        subprocess.run(["scancel", *arr.job_ids], check=False)
