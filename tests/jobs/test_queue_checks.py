"""The tests' "nothing is left in the queue" checks ask the scheduler that ran the jobs
(issue 12): the local backend's own queue for its jobs, SLURM's squeue for SLURM's."""

from __future__ import annotations

import pytest

import slurm_magics as sm
from tests.helpers import queued_ids, still_queued

pytestmark = pytest.mark.cluster


def test_a_held_job_is_seen_queued_until_cancelled(cluster: sm.Cluster) -> None:
    held = sm.task(lambda: 1, memory="100M", extra={"hold": True}).on(cluster)()
    try:
        assert held.job_id in queued_ids(cluster)
        assert still_queued(cluster, {held.job_id}, within=1.0) == {held.job_id}
    finally:
        held.cancel()
    assert not still_queued(cluster, {held.job_id})
