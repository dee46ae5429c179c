"""How a job's future ends: from its result file, or with the error SLURM's verdict calls for.

The poller decides WHEN a job has ended (a sentinel, squeue, sacct); this module decides
HOW its future ends: the function's value, its remote exception, a ``JobFailedError`` —
or, for an element that may be retried, back to PENDING and queued for a requeue.
"""

from __future__ import annotations

import time

from slurm_magics.core.errors import JobFailedError
from slurm_magics.core.outcomes import (
    STDERR_TAIL,
    error_from_outcome,
    failure_without_result,
    last_lines,
)
from slurm_magics.core.payload import load_outcome
from slurm_magics.core.runner import UnloadableResultError
from slurm_magics.core.states import JobState
from slurm_magics.jobs.job import Job
from slurm_magics.jobs.retries import wants_retry
from slurm_magics.transport import Transport

__all__ = ["Ending", "Key", "note_timing"]

Key = tuple[str, int]  # (run id, element)


class Ending:
    """Ends jobs' futures; collects the elements to run again (``retries=``)."""

    def __init__(self, transport: Transport) -> None:
        self.transport = transport
        self.requeue: dict[Key, BaseException] = {}  # elements to run again, and why

    async def from_file(self, job: Job) -> bool:
        """Resolve a job from its result file; False when there is none (yet)."""
        path = f"{job.run.run_dir}/results/{job.item}.pkl"
        try:
            data = await self.transport.read_file(path)
        except FileNotFoundError:
            return False
        job.ended_at = job.ended_at or time.time()
        try:
            outcome = load_outcome(data)
        except Exception as error:  # the value (or a file of an older runner) cannot load
            detail = (
                f"returned a value this Python cannot load: {error}; import the same modules "
                "(same versions) here as on the cluster"
                if isinstance(error, UnloadableResultError)
                else f"wrote a result this Python cannot load ({error!r})"
            )
            failure = failure_without_result(
                JobState.FAILED,
                job_id=job.job_id,
                exit_code=None,
                stderr_tail=await self.stderr_tail(job),
                log_paths=job.log_paths(),
                detail=detail,
            )
            failure.__cause__ = error
            self.fail(job, JobState.FAILED, failure)
            return True
        if outcome[0] == "ok":
            job._end_ok(outcome[1])
        else:
            tail = await self.stderr_tail(job)
            remote = error_from_outcome(
                outcome, job_id=job.job_id, stderr_tail=tail, log_paths=job.log_paths()
            )
            self.fail(job, JobState.FAILED, remote)
        return True

    def fail(self, job: Job, state: JobState, error: BaseException) -> None:
        """End ``job`` in ``state`` raising ``error`` — or queue it to run again."""
        element = job.run.element_of(job.item)
        if wants_retry(job.run, element, error):
            self.requeue.setdefault((job.run.run_id, element), error)
            job._set_live(JobState.PENDING, "Requeued")
            return
        job._end_failed(state, error)

    async def stderr_tail(self, job: Job) -> str:
        """The last lines of the job's stderr ("" when there is none)."""
        return last_lines(await self.transport.read_tail(job.log_paths()[1], STDERR_TAIL))

    async def without_result(
        self,
        jobs: list[Job],
        state: JobState,
        exit_code: str | None,
        tail: str,
        detail: str = "",
    ) -> None:
        """SLURM says these jobs ended in ``state``: their result, if one landed after
        all, else the failure that state stands for (COMPLETED with no result fails)."""
        for job in jobs:
            if await self.from_file(job):  # the sentinel may have been lost
                continue
            error = failure_without_result(
                state if state is not JobState.COMPLETED else JobState.FAILED,
                job_id=job.job_id,
                exit_code=exit_code,
                stderr_tail=tail,
                log_paths=job.log_paths(),
                detail=detail
                or ("ended but wrote no result" if state is JobState.COMPLETED else ""),
            )
            assert isinstance(error, JobFailedError)
            self.fail(job, error.state, error)


def note_timing(job: Job, timing: str) -> None:
    """Take the task's own start and end (ms since the epoch) from its sentinel's name."""
    start, _, end = timing.partition("-")
    if start.isdigit() and end.isdigit():
        job.started_at, job.ended_at = int(start) / 1000, int(end) / 1000
