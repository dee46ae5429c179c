"""How a job's future ends: from its result file, or with the error SLURM's verdict calls for.

The poller decides WHEN a job has ended (a sentinel, squeue, sacct); this module decides
HOW its future ends: the function's value, its remote exception, a ``JobFailedError`` —
or, for an element that may be retried, back to PENDING and queued for a requeue.
"""

from __future__ import annotations

import asyncio
import logging
import time

from slurm_magics.core.errors import ClusterError, JobFailedError
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
from slurm_magics.transport import ConnectionLostError, Transport

__all__ = ["READ_PATIENCE", "Ending", "Key", "note_timing"]

log = logging.getLogger(__name__)

Key = tuple[str, int]  # (run id, element)
#: seconds a result file may fail to read (permissions, SFTP errors) before its job fails
READ_PATIENCE = 10.0


class Ending:
    """Ends jobs' futures; collects the elements to run again (``retries=``)."""

    def __init__(self, transport: Transport, *, read_patience: float = READ_PATIENCE) -> None:
        self.transport = transport
        self.requeue: dict[Key, BaseException] = {}  # elements to run again, and why
        self.read_patience = read_patience
        self._unreadable: dict[tuple[str, int], float] = {}  # (run, item): first failed read

    async def from_file(self, job: Job) -> bool:
        """Resolve a job from its result file; False when there is none (yet).

        A result that cannot be read (permissions, a vanished folder, an SFTP error) is
        read again on later calls (True meanwhile: it is not "no result"); after
        ``read_patience`` seconds of failures the job fails naming the path and the error.
        Only a lost connection is raised (the whole poll waits for the cluster).
        """
        path = f"{job.run.run_dir}/results/{job.item}.pkl"
        try:
            data = await self.transport.read_file(path)
        except FileNotFoundError:
            return False
        except ConnectionLostError:
            raise
        except (OSError, ClusterError) as error:
            self._unreadable_result(job, path, error)
            return True
        self._unreadable.pop((job.run.run_id, job.item), None)
        job.ended_at = job.ended_at or time.time()
        try:
            # Unpickling runs the user's code (__setstate__, __reduce__'s callables): off
            # the engine thread, like their callbacks.
            outcome = await asyncio.to_thread(load_outcome, data)
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

    def _unreadable_result(self, job: Job, path: str, error: OSError | ClusterError) -> None:
        key = (job.run.run_id, job.item)
        now = time.monotonic()
        first = self._unreadable.setdefault(key, now)
        if first == now:
            log.warning("cannot read %s (%s); trying again", path, error)
        if now - first < self.read_patience:
            return
        del self._unreadable[key]
        failure = JobFailedError(
            f"job {job.job_id}: its result {path} cannot be read from here "
            f"({type(error).__name__}: {error}), still after {self.read_patience:.0f} s of "
            "retries. The job itself may have succeeded: make its run folder readable to "
            "this user (or connect as its owner), then attach it again (sm.jobs()).",
            state=JobState.FAILED,
            job_id=job.job_id,
            exit_code=None,
            stderr_tail="",
            log_paths=job.log_paths(),
        )
        failure.__cause__ = error
        job._end_failed(JobState.FAILED, failure)  # never retried: the run may be fine

    async def stderr_tail(self, job: Job) -> str:
        """The last lines of the job's stderr ("" when there is none; a note naming the
        path and the error when it cannot be read)."""
        path = job.log_paths()[1]
        try:
            return last_lines(await self.transport.read_tail(path, STDERR_TAIL))
        except ConnectionLostError:
            raise
        except (OSError, ClusterError) as error:
            return f"(cannot read {path}: {type(error).__name__}: {error})"

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
