"""A pool task's call on the wire: its arguments pickled once, jobs among them by value."""

from __future__ import annotations

import concurrent.futures
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from slurm_magics.core.outcomes import dependency_error
from slurm_magics.core.payload import ArgumentTable, FileReference, Reference
from slurm_magics.core.states import JobState
from slurm_magics.jobs.array import JobArray, jobs_of
from slurm_magics.jobs.job import Job
from slurm_magics.jobs.pool.dispatcher import PoolTask
from slurm_magics.jobs.pool.tasks import PoolJob

__all__ = ["check_upstream", "pickle_call", "settle_pool_tasks", "submit_after", "waits_on"]


def waits_on(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> list[Job | JobArray]:
    """The unfinished jobs among a call's arguments (lists, tuples, dict values, ...).

    Raises:
        DependencyError: one of them has already failed or been cancelled.
    """
    found: list[Job | JobArray] = []

    def look(obj: Any) -> Reference:
        if not isinstance(obj, Job | JobArray):
            return None
        if obj.done():
            if obj.cancelled() or obj.exception() is not None:
                why = "was cancelled" if obj.cancelled() else f"failed ({obj.exception()!r})"
                raise dependency_error(None, repr(obj), why)
            return ("value", None)
        if obj not in found:
            found.append(obj)
        return ("value", None)

    ArgumentTable(look).add(args, kwargs)
    return found


def pickle_call(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> bytes:
    """(args, kwargs) pickled with every (finished) job replaced by its result, and each
    FileValue / FileArray (element) as the reference the worker reads it by."""

    def value(obj: Any) -> Reference:
        if isinstance(obj, FileReference):  # read by the worker, from the shared file system
            return ("ref", obj.reference())
        if isinstance(obj, Job | JobArray):
            return ("value", obj.result())
        return None

    table = ArgumentTable(value)
    table.add(args, kwargs)
    blob, _ = table.files()
    return blob


def check_upstream(dependency: Job | JobArray) -> None:
    """Raise DependencyError when ``dependency`` has already failed or been cancelled."""
    for job in jobs_of(dependency):
        if job.done() and (job.cancelled() or job.exception() is not None):
            why = "was cancelled" if job.cancelled() else f"failed ({job.exception()!r})"
            raise dependency_error(None, repr(job), why)


def submit_after(
    job: PoolJob,
    task: PoolTask,
    upstream: list[Job | JobArray],
    args: tuple[Any, ...],
    kwargs: Mapping[str, Any],
    queue: Callable[[PoolTask], None],
) -> None:
    """Queue ``task`` once every upstream job has ended well (its values pickled in), or
    end ``job`` with DependencyError when one failed."""
    remaining = [len(upstream)]
    lock = threading.Lock()

    def one_done(_: Any) -> None:
        with lock:
            remaining[0] -= 1
            if remaining[0]:
                return
        if job.done():
            return
        failed = [u for u in upstream if u.cancelled() or u.exception() is not None]
        if failed:
            first = failed[0]
            why = "was cancelled" if first.cancelled() else f"failed ({first.exception()!r})"
            error = dependency_error(job.job_id, repr(first), why)
            job._end_failed(JobState.DEPENDENCY_FAILED, error)
            return
        task.call = pickle_call(args, kwargs)
        queue(task)

    for dependency in upstream:
        dependency.add_done_callback(one_done)


def settle_pool_tasks(after: Sequence[Job | JobArray]) -> tuple[Job | JobArray, ...]:
    """``after`` for a SLURM submission: pool tasks in it are waited for here (they end in
    milliseconds and SLURM knows no id of theirs) and dropped; the rest is kept.

    Raises:
        DependencyError: a pool task among them failed or was cancelled.
    """
    kept: list[Job | JobArray] = []
    for dependency in after:
        if any(isinstance(job, PoolJob) for job in jobs_of(dependency)):
            concurrent.futures.wait(jobs_of(dependency))
            check_upstream(dependency)
        else:
            kept.append(dependency)
    return tuple(kept)
