"""Futures for runs found in the registry: those of this process, or rebuilt after a restart."""

from __future__ import annotations

from slurm_magics.core.errors import DependencyError, JobFailedError
from slurm_magics.core.states import JobState
from slurm_magics.jobs.array import JobArray
from slurm_magics.jobs.cluster import Cluster
from slurm_magics.jobs.engine import engine
from slurm_magics.jobs.job import Job, Run, Slice
from slurm_magics.jobs.recording import follow
from slurm_magics.jobs.registry import RunRecord

__all__ = ["live_entry"]


def _rebuild(cluster: Cluster, record: RunRecord) -> Run:
    """A run of an ended session, with its jobs resolved as far as the registry knows."""
    run = Run(
        record.run_id,
        record.run_dir,
        record.name,
        record.n_items,
        record.chunk_size,
        slices=[Slice(*part) for part in record.slices],
        dependency=record.dependency,
        sentinel_dir=record.sentinel_dir,
        submitted_at=record.submitted_at,
    )
    run.jobs = [Job(cluster, run, item) for item in range(record.n_items)]
    engine.call(cluster.poller.resolve_finished(run))
    for job, known in zip(run.jobs, cluster.registry.jobs_of(run.run_id), strict=False):
        job.started_at, job.ended_at = known.started_at, known.ended_at
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
        elif state is not JobState.COMPLETED:
            failed = JobFailedError(
                message, state=state, job_id=job.job_id, log_paths=job.log_paths()
            )
            job._end_failed(state, failed)
    follow(cluster.registry, run)
    if not all(job.done() for job in run.jobs):
        engine.call(_track(cluster, run))
    return run


async def _track(cluster: Cluster, run: Run) -> None:
    cluster.poller.track(run)


def live_entry(cluster: Cluster, record: RunRecord) -> Job | JobArray:
    """The one future of a recorded run in this process: a ``Job`` for a single call,
    a ``JobArray`` for a map; rebuilt from the registry and run folder when needed."""
    run = cluster.live_runs.get(record.run_id)
    if run is None:
        run = _rebuild(cluster, record)
        cluster.live_runs[record.run_id] = run
    if not record.is_array:
        return run.jobs[0]
    if run.run_id not in cluster.live_arrays:
        cluster.live_arrays[run.run_id] = JobArray(run.jobs, [run])
    return cluster.live_arrays[run.run_id]
