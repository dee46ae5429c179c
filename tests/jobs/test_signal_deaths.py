"""A task killed by a signal is FAILED "killed by signal N", never OUT_OF_MEMORY without
evidence that memory was the cause (issue 12, failure 5)."""

from __future__ import annotations

import os
import signal
import time

import pytest

import slurm_magics as sm

pytestmark = pytest.mark.cluster


def kill_myself() -> int:
    """Die by SIGKILL with a few MB in use, far below the task's memory limit."""
    time.sleep(1)
    os.kill(os.getpid(), signal.SIGKILL)
    return 0


def test_a_sigkill_far_below_the_memory_limit_is_not_out_of_memory(
    cluster: sm.Cluster,
) -> None:
    job = sm.task(kill_myself, memory="2G").on(cluster)()
    with pytest.raises(sm.JobFailedError) as caught:
        job.result(timeout=90)
    error = caught.value
    assert error.state is sm.JobState.FAILED, str(error)
    assert job.state is sm.JobState.FAILED
    assert "killed by signal 9" in str(error)
    assert "memory" not in str(error)
