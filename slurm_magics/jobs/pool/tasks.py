"""Pool tasks as ``Job`` futures: what the dispatcher reports becomes their states and ends."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from slurm_magics.core.errors import JobFailedError
from slurm_magics.core.outcomes import error_from_outcome
from slurm_magics.core.payload import load_outcome
from slurm_magics.core.sbatch import log_path
from slurm_magics.core.states import JobState
from slurm_magics.jobs.futures import wait_for_future
from slurm_magics.jobs.job import Job, JobHost, Run
from slurm_magics.jobs.pool.dispatcher import PoolTask, task_timing

__all__ = ["PoolHost", "PoolJob", "PoolTaskEvents", "fail_all", "fail_lost", "pool_failure"]


class PoolHost(JobHost, Protocol):
    """What a pool task needs from its pool (implemented by ``WorkerPool``)."""

    @property
    def job_id(self) -> str: ...

    @property
    def run_dir(self) -> str: ...


class PoolJob(Job):
    """The future of one call run by a worker pool: a ``Job`` like any other.

    ``job_id`` is "POOLID/N" (the pool's SLURM job id and the task's number); ``node`` is
    the worker that ran it; ``stdout()``/``stderr()`` are what the call printed (kept in
    memory, the last MiB of each).
    """

    def __init__(self, pool: PoolHost, run: Run, item: int, number: int) -> None:
        super().__init__(pool, run, item)
        self.number = number
        self.task: PoolTask | None = None  # while queued or running; dropped at the end
        self._pool = pool
        self._out = b""
        self._err = b""
        self.add_done_callback(_forget_task)

    @property
    def job_id(self) -> str:
        """The pool's SLURM id and this task's number, e.g. "1234/17"."""
        return f"{self._pool.job_id}/{self.number}"

    @property
    def worker(self) -> str:
        """The worker that ran (or runs) it: "SLURMID_INDEX@host:pid" ("" while queued)."""
        return self.node

    def log_paths(self) -> tuple[str, str]:
        """The SLURM logs of the worker that ran it (the task's own output: ``stdout()``)."""
        slurm_id = self.node.split("@", 1)[0] if "@" in self.node else self._pool.job_id
        return (
            log_path(self._pool.run_dir, slurm_id, stream="out"),
            log_path(self._pool.run_dir, slurm_id, stream="err"),
        )

    def stdout(self, max_bytes: int = 1 << 20) -> str:
        """What the call printed to stdout (the last ``max_bytes``)."""
        return self._out[-max_bytes:].decode(errors="replace")

    def stderr(self, max_bytes: int = 1 << 20) -> str:
        """What the call printed to stderr (the last ``max_bytes``)."""
        return self._err[-max_bytes:].decode(errors="replace")


def _forget_task(job: Any) -> None:
    job.task = None  # the pickled call is no longer needed


class PoolTaskEvents:
    """Turns the dispatcher's reports into Job states and results (engine loop).

    ``worker_job(name)`` finds a worker's SLURM task, whose end state (OUT_OF_MEMORY,
    TIMEOUT) says why a task was lost with it.
    """

    def __init__(self, worker_job: Callable[[str], Job | None] | None = None) -> None:
        self.worker_job = worker_job
        self._waiting: set[asyncio.Task[None]] = set()

    def running(self, task: PoolTask, worker: str) -> None:
        job = task.owner
        if isinstance(job, PoolJob) and job._set_live(JobState.RUNNING, node=worker):
            job.started_at = time.time()

    def finished(self, task: PoolTask, parts: list[bytes], worker: str) -> None:
        job = task.owner
        if not isinstance(job, PoolJob):
            return
        job.node, job._out, job._err = worker, parts[1], parts[2]
        timing = task_timing(parts)
        if timing is not None:
            job.started_at, job.ended_at = timing
        try:
            outcome = load_outcome(parts[0])
        except Exception as error:
            job._end_failed(
                JobState.FAILED,
                JobFailedError(
                    f"task {job.job_id} returned a value this Python cannot load ({error!r})",
                    state=JobState.FAILED,
                    job_id=job.job_id,
                    log_paths=job.log_paths(),
                ),
            )
            return
        if outcome[0] == "ok":
            job._end_ok(outcome[1])
            return
        tail = "\n".join(job.stderr().splitlines()[-30:])
        remote = error_from_outcome(
            outcome, job_id=job.job_id, stderr_tail=tail, log_paths=job.log_paths()
        )
        job._end_failed(JobState.FAILED, remote)

    def lost(self, task: PoolTask, worker: str, reason: str) -> None:
        job = task.owner
        if not isinstance(job, PoolJob):
            return
        job.node = worker
        slurm_task = self.worker_job(worker) if self.worker_job is not None else None
        if slurm_task is None:
            fail_lost(job, worker, reason, task.attempts, JobState.NODE_FAIL)
            return
        waiting = asyncio.get_running_loop().create_task(
            self._after_verdict(job, slurm_task, worker, reason, task.attempts)
        )
        self._waiting.add(waiting)
        waiting.add_done_callback(self._waiting.discard)

    async def _after_verdict(
        self, job: PoolJob, slurm_task: Job, worker: str, reason: str, attempts: int
    ) -> None:
        with contextlib.suppress(Exception):  # the worker's own error is not the task's
            await asyncio.wait_for(wait_for_future(slurm_task), VERDICT_WAIT)
        state = slurm_task.state if slurm_task.done() else JobState.NODE_FAIL
        if state not in (JobState.OUT_OF_MEMORY, JobState.TIMEOUT):
            state = JobState.NODE_FAIL
        fail_lost(job, worker, reason, attempts, state)


VERDICT_WAIT = 20.0  # seconds to wait for SLURM's word on a lost worker (OOM, TIMEOUT)
_WHY = {
    JobState.OUT_OF_MEMORY: "ran out of memory (a pool's memory= is per worker)",
    JobState.TIMEOUT: "hit the workers' time limit",
}


def fail_lost(job: PoolJob, worker: str, reason: str, attempts: int, state: JobState) -> None:
    """End a task whose worker was lost while running it (after its retries), in ``state``
    (OUT_OF_MEMORY or TIMEOUT when SLURM said so of the worker, else NODE_FAIL)."""
    runs = f"{attempts} time{'s' if attempts != 1 else ''}"
    why = _WHY.get(state, f"was lost with its worker {worker}: {reason}")
    job._end_failed(
        state,
        JobFailedError(
            f"task {job.job_id} {why} (worker {worker}; it ran {runs}; retries=N on the "
            "pool runs a task again that often)",
            state=state,
            job_id=job.job_id,
            log_paths=job.log_paths(),
        ),
    )


def fail_all(jobs: Sequence[PoolJob], error_for: Any) -> None:
    """End every unfinished job with ``error_for(job)`` (a JobFailedError)."""
    for job in jobs:
        if not job.done():
            error = error_for(job)
            job._end_failed(error.state, error)


def pool_failure(job: PoolJob, why: str, state: JobState) -> JobFailedError:
    """The error of a task that will not run because its pool broke (``why``)."""
    return JobFailedError(
        f"task {job.job_id} did not run: {why}",
        state=state,
        job_id=job.job_id,
        log_paths=job.log_paths(),
    )
