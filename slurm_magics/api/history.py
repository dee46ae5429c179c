"""Jobs that outlive the kernel: record runs in the registry, find them again, clean up.

``sm.jobs()`` lists the runs of a cluster as live futures (the same objects within one
process; rebuilt from the registry and the run folders after a restart), and
``sm.Job.attach(job_id)`` rebinds one job by its SLURM id.
"""

from __future__ import annotations

import time
from datetime import timedelta

from slurm_magics.api.connect import default_cluster
from slurm_magics.core.resources import parse_time
from slurm_magics.core.states import JobState
from slurm_magics.jobs.array import JobArray, jobs_of
from slurm_magics.jobs.cluster import Cluster
from slurm_magics.jobs.engine import engine
from slurm_magics.jobs.job import Job
from slurm_magics.jobs.reattach import live_entry

__all__ = ["attach", "cleanup", "jobs"]


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
    cluster = cluster or default_cluster()
    records = cluster.registry.runs(
        cluster=cluster.key, name=name, session=session, notebook=notebook
    )
    found = [live_entry(cluster, record) for record in records]
    if state is not None:
        wanted = JobState(state)
        found = [entry for entry in found if entry.state is wanted]
    return found


def attach(job_id: str, cluster: Cluster | None = None) -> Job | JobArray:
    """The future of a job by its SLURM id ("123", "123_4"), from this or an ended session."""
    cluster = cluster or default_cluster()
    array_id, _, task = str(job_id).partition("_")
    record = cluster.registry.run_of(cluster.key, array_id)
    if record is None:
        raise LookupError(
            f"job {job_id!r} is not in the registry of {cluster!r} "
            f"({cluster.registry.path}); sm.jobs() lists the jobs it knows."
        )
    entry = live_entry(cluster, record)
    if not task:
        return entry
    part = next(p for p in record.slices if p[0] == array_id)
    element = part[1] + int(task)
    items = [j for j in jobs_of(entry) if j.run.element_of(j.item) == element]
    if not items:
        raise LookupError(f"job {job_id!r}: task {task} is not part of array {array_id}.")
    return items[0]


def cleanup(
    older_than: timedelta | str | int = "7-00:00:00", *, cluster: Cluster | None = None
) -> list[str]:
    """Remove the run folders of finished runs older than ``older_than`` (a SLURM time,
    minutes, or a timedelta); never those of runs with a job still pending or running.
    Returns the removed folders."""
    cluster = cluster or default_cluster()
    cutoff = time.time() - parse_time(older_than, name="older_than")
    removed: list[tuple[str, str]] = []
    for record in cluster.registry.runs(cluster=cluster.key):
        if record.submitted_at > cutoff:
            continue
        entry = live_entry(cluster, record)
        if not all(job.done() for job in jobs_of(entry)):
            continue
        result = engine.call(cluster.transport.run(["rm", "-rf", "--", record.run_dir]))
        if result.returncode == 0:
            removed.append((record.run_id, record.run_dir))
        cluster.live_runs.pop(record.run_id, None)
    cluster.registry.mark_cleaned([run_id for run_id, _ in removed])
    return [run_dir for _, run_dir in removed]
