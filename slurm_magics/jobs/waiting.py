"""Why jobs wait and when SLURM expects them to start (asked on demand, never polled).

The reason comes with every poll (squeue's ``%r``); the expected start needs
``squeue --start``, which makes the controller plan the queue: it is asked only when a
user asks (``job.expected_start()``, ``%squeue --start``, a click in the lab panel).
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from slurm_magics.core.parsing import parse_job_id
from slurm_magics.core.reasons import StartEstimate, explain_reason
from slurm_magics.core.states import JobState

if TYPE_CHECKING:
    from slurm_magics.jobs.job import Job

__all__ = ["estimate_of", "expected_start", "pending_reason"]

Estimates = Callable[[Sequence[str]], list[StartEstimate]]


def pending_reason(jobs: Sequence[Job], running: int | None = None) -> str:
    """The first pending job's reason in words ("" when none waits); ``running``: how
    many of the user's jobs run now (states a per-user jobs limit)."""
    for job in jobs:
        if job.state is JobState.PENDING and not job.done():
            return explain_reason(job.reason, running=running)
    return ""


def estimate_of(job_id: str, estimates: Sequence[StartEstimate]) -> StartEstimate | None:
    """The estimate that covers ``job_id`` ("123" or "123_4"; a row "123_[2-9]" covers
    123_4)."""
    wanted = parse_job_id(job_id)
    if wanted is None:
        return None
    for estimate in estimates:
        row = parse_job_id(estimate.job_id)
        if row is None or row[0] != wanted[0]:
            continue
        if wanted[1] is None or row[1] is None or wanted[1][0] in row[1]:
            return estimate
    return None


def expected_start(jobs: Sequence[Job], estimates: Estimates) -> datetime.datetime | None:
    """SLURM's earliest expected start of the pending ``jobs`` (one ``squeue --start``
    for all of them); None when none is pending or SLURM has no estimate yet."""
    pending = [job for job in jobs if job.state is JobState.PENDING and not job.done()]
    if not pending:
        return None
    ids = {job.job_id.partition("_")[0] if len(pending) > 1 else job.job_id for job in pending}
    found = estimates(sorted(ids))
    starts = [
        estimate.start
        for job in pending
        for estimate in [estimate_of(job.job_id, found)]
        if estimate is not None and estimate.start is not None
    ]
    return min(starts, default=None)
