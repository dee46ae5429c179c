"""Record submitted runs in the registry, follow their jobs' ends into it, and end futures
as it says."""

from __future__ import annotations

import concurrent.futures
import os
from collections.abc import Sequence
from typing import Any

from slurm_magics.core.errors import DependencyError, JobFailedError, SubmissionError
from slurm_magics.core.states import JobState
from slurm_magics.jobs.array import JobArray
from slurm_magics.jobs.job import Job, Run
from slurm_magics.jobs.owner import this_process
from slurm_magics.jobs.registry import JobRecord, Registry, RunRecord

__all__ = ["apply_known", "follow", "record_submission", "submitting_notebook"]


def record_submission(
    registry: Registry,
    run: Run,
    upstream: Sequence[Job | JobArray],
    *,
    cluster_key: str,
    sentinel_dir: str,
    session_id: str,
    is_array: bool,
) -> None:
    """Store a submitted run (its slices, dependencies and submitting notebook) in
    ``registry`` and follow its jobs' ends into it.

    Args:
        registry: where runs are recorded (SQLite, shared by the user's processes).
        run: the run just submitted (its slices carry the SLURM ids).
        upstream: the jobs and arrays it depends on (recorded as graph edges).
        cluster_key: the cluster's identity ("user@host:root").
        sentinel_dir: where its tasks drop completion sentinels.
        session_id: the submitting session's id.
        is_array: whether the run was a ``.map()`` (a JobArray) rather than one call.
    """
    edges = [
        (u.run.run_id, u.item) if isinstance(u, Job) else (r.run_id, -1)
        for u in upstream
        for r in ([u.run] if isinstance(u, Job) else u.runs)
    ]
    record = RunRecord(
        run_id=run.run_id,
        cluster=cluster_key,
        run_dir=run.run_dir,
        sentinel_dir=sentinel_dir,
        name=run.name,
        n_items=run.n_items,
        chunk_size=run.chunk_size,
        is_array=is_array,
        slices=run.slice_tuples(),
        dependency=run.dependency,
        notebook=submitting_notebook(),
        session=session_id,
        submitted_at=run.submitted_at,
        owner=this_process(),
    )
    registry.record_run(record, edges)
    follow(registry, run)


def follow(registry: Registry, run: Run) -> None:
    """Write each job's final state, times and error to ``registry`` when it ends."""

    def on_done(future: concurrent.futures.Future[Any]) -> None:
        assert isinstance(future, Job)
        error = None
        if not future.cancelled() and future.exception() is not None:
            error = f"{type(future.exception()).__name__}: {future.exception()}"[:4000]
        registry.note_state(
            run.run_id, future.item, future.state.value, future.started_at, future.ended_at, error
        )

    for job in run.jobs:
        job.add_done_callback(on_done)


def submitting_notebook() -> str:
    """The notebook (or script) that submits: what a user recognises in a job list."""
    for variable in ("JPY_SESSION_NAME", "SLURM_MAGICS_NOTEBOOK"):
        if os.environ.get(variable):
            return os.environ[variable]
    import __main__  # noqa: PLC0415

    session = getattr(__main__, "__session__", None) or getattr(__main__, "__file__", None)
    return str(session) if session else "<interactive>"


def apply_known(run: Run, known_jobs: Sequence[JobRecord]) -> None:
    """End the jobs of ``run`` that the registry knows ended (and this process did not):
    ended by another process (its exit, the Lab panel's cancel), or before a restart.

    Args:
        run: the run whose futures to end.
        known_jobs: the registry's records of some or all of its items (``Registry.jobs_of``).
    """
    for known in known_jobs:
        if not 0 <= known.item < len(run.jobs):
            continue
        job = run.jobs[known.item]
        job.started_at = job.started_at or known.started_at
        job.ended_at = job.ended_at or known.ended_at
        if job.done() or not JobState(known.state).finished:
            continue
        state = JobState(known.state)
        job.state = state
        message = known.error or f"job {job.job_id} ended {state.value} without a result"
        if state is JobState.CANCELLED and known.error is None:
            job._mark_cancelled()
        elif state is JobState.DEPENDENCY_FAILED:
            job._end_failed(
                state, DependencyError(message, job_id=job.job_id, dependency=run.dependency)
            )
        elif message.startswith(_NEVER_SUBMITTED):  # refused, or left waiting by its owner
            job._end_failed(state, SubmissionError(message[len(_NEVER_SUBMITTED) :]))
        elif state is not JobState.COMPLETED:
            failed = JobFailedError(
                message, state=state, job_id=job.job_id, log_paths=job.log_paths()
            )
            job._end_failed(state, failed)


_NEVER_SUBMITTED = "SubmissionError: "  # how recording.follow writes a SubmissionError
