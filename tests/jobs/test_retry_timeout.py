"""retry_on=["TIMEOUT"] for real (issue 12): the README's retry example runs a task that
hits its time limit once, and its second attempt's value comes back under the same future."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

import slurm_magics as sm

pytestmark = [pytest.mark.cluster, pytest.mark.slow]


def slow_first_time(marker: str) -> int:
    """Count this run in ``marker``; the first run outlives its one-minute limit."""
    with open(marker, "a+", encoding="utf-8") as stream:
        stream.seek(0)
        runs = len(stream.read().splitlines()) + 1
        stream.write(f"run {runs}\n")
    if runs == 1:
        time.sleep(600)
    return runs


def test_a_timeout_is_retried_when_asked(cluster: sm.Cluster, tmp_path: Path) -> None:
    marker = tmp_path / "runs"
    task = sm.task(
        slow_first_time,
        time=1,
        memory="100M",
        retries=1,
        retry_on=["NODE_FAIL", "PREEMPTED", "TIMEOUT"],  # the README's example
    )
    job = task.on(cluster)(str(marker))
    start = time.monotonic()
    assert job.result(timeout=400) == 2
    assert job.state is sm.JobState.COMPLETED
    assert marker.read_text().splitlines() == ["run 1", "run 2"]
    assert job.run.attempts == {0: 1}
    assert time.monotonic() - start > 60  # the first attempt did run into its limit
