"""Jobs that outlive the kernel: record runs in the registry, find them again, clean up.

``sm.jobs()`` lists the runs of a cluster as live futures (the same objects within one
process; rebuilt from the registry and the run folders after a restart), and
``sm.Job.attach(job_id)`` rebinds one job by its SLURM id.
"""

from __future__ import annotations

import concurrent.futures
import time
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from .engine import engine
from .errors import DependencyError, JobFailedError
from .job import Job, JobArray, Run, Slice
from .registry import RunRecord, submitting_notebook
from .resources import parse_time
from .states import JobState

if TYPE_CHECKING:
    from .cluster import Cluster

__all__ = ["attach", "cleanup", "jobs", "record_submission"]


def record_submission(
    cluster: Cluster, run: Run, upstream: Sequence[Job | JobArray], *, is_array: bool
) -> None:
    """Store a submitted run and follow its jobs' ends into the registry."""
    edges = [
        (u.run.run_id, u.item) if isinstance(u, Job) else (r.run_id, -1)
        for u in upstream
        for r in ([u.run] if isinstance(u, Job) else u.runs)
    ]
    record = RunRecord(
        run_id=run.run_id,
        cluster=cluster.key,
        run_dir=run.run_dir,
        sentinel_dir=cluster.sentinel_dir,
        name=run.name,
        n_items=run.n_items,
        chunk_size=run.chunk_size,
        is_array=is_array,
        slices=[(s.slurm_id, s.first_element, s.n_elements) for s in run.slices],
        dependency=run.dependency,
        notebook=submitting_notebook(),
        session=cluster.session_id,
        submitted_at=run.submitted_at,
    )
    cluster.registry.record_run(record, edges)
    _follow(cluster, run)


def _follow(cluster: Cluster, run: Run) -> None:
    def on_done(future: concurrent.futures.Future[Any]) -> None:
        assert isinstance(future, Job)
        error = None
        if not future.cancelled() and future.exception() is not None:
            error = f"{type(future.exception()).__name__}: {future.exception()}"[:4000]
        cluster.registry.note_state(
            run.run_id, future.item, future.state.value, future.started_at, future.ended_at, error
        )

    for job in run.jobs:
        job.add_done_callback(on_done)


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
    _follow(cluster, run)
    if not all(job.done() for job in run.jobs):
        engine.call(_track(cluster, run))
    return run


async def _track(cluster: Cluster, run: Run) -> None:
    cluster.poller.track(run)


def _live(cluster: Cluster, record: RunRecord) -> Job | JobArray:
    run = cluster.live_runs.get(record.run_id)
    if run is None:
        run = _rebuild(cluster, record)
        cluster.live_runs[record.run_id] = run
    if not record.is_array:
        return run.jobs[0]
    if run.run_id not in cluster.live_arrays:
        cluster.live_arrays[run.run_id] = JobArray(run.jobs, [run])
    return cluster.live_arrays[run.run_id]


def jobs(
    *,
    state: JobState | str | None = None,
    name: str | None = None,
    session: str | None = None,
    notebook: str | None = None,
    cluster: Cluster | None = None,
) -> list[Job | JobArray]:
    """Every run submitted to ``cluster`` (default: the default cluster), newest first.

    Each entry is a live future: a ``Job`` for a single call, a ``JobArray`` for a map,
    also for runs submitted by a process that has ended since.
    """
    from .connect import default_cluster  # noqa: PLC0415  (connect imports this module)

    cluster = cluster or default_cluster()
    records = cluster.registry.runs(
        cluster=cluster.key, name=name, session=session, notebook=notebook
    )
    found = [_live(cluster, record) for record in records]
    if state is not None:
        wanted = JobState(state)
        found = [entry for entry in found if entry.state is wanted]
    return found


def attach(job_id: str, cluster: Cluster | None = None) -> Job | JobArray:
    """The future of a job by its SLURM id ("123", "123_4"), from this or an ended session."""
    from .connect import default_cluster  # noqa: PLC0415

    cluster = cluster or default_cluster()
    array_id, _, task = str(job_id).partition("_")
    record = cluster.registry.run_of(cluster.key, array_id)
    if record is None:
        raise LookupError(
            f"job {job_id!r} is not in the registry of {cluster!r} "
            f"({cluster.registry.path}); sm.jobs() lists the jobs it knows."
        )
    entry = _live(cluster, record)
    if not task:
        return entry
    part = next(p for p in record.slices if p[0] == array_id)
    element = part[1] + int(task)
    items = [j for j in _jobs_of(entry) if j.run.element_of(j.item) == element]
    if not items:
        raise LookupError(f"job {job_id!r}: task {task} is not part of array {array_id}.")
    return items[0]


def _jobs_of(entry: Job | JobArray) -> list[Job]:
    return list(entry.jobs) if isinstance(entry, JobArray) else [entry]


def cleanup(
    older_than: timedelta | str | int = "7-00:00:00", *, cluster: Cluster | None = None
) -> list[str]:
    """Remove the run folders of finished runs older than ``older_than`` (a SLURM time,
    minutes, or a timedelta); never those of runs with a job still pending or running.
    Returns the removed folders."""
    from .connect import default_cluster  # noqa: PLC0415

    cluster = cluster or default_cluster()
    cutoff = time.time() - parse_time(older_than, name="older_than")
    removed: list[tuple[str, str]] = []
    for record in cluster.registry.runs(cluster=cluster.key):
        if record.submitted_at > cutoff:
            continue
        entry = _live(cluster, record)
        if not all(job.done() for job in _jobs_of(entry)):
            continue
        result = engine.call(cluster.transport.run(["rm", "-rf", "--", record.run_dir]))
        if result.returncode == 0:
            removed.append((record.run_id, record.run_dir))
        cluster.live_runs.pop(record.run_id, None)
    cluster.registry.mark_cleaned([run_id for run_id, _ in removed])
    return [run_dir for _, run_dir in removed]
