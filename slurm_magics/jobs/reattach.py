"""Futures for runs found in the registry: those of this process, or rebuilt after a restart."""

from __future__ import annotations

import asyncio

from slurm_magics.core.states import JobState
from slurm_magics.jobs.array import JobArray
from slurm_magics.jobs.cluster import Cluster
from slurm_magics.jobs.engine import engine
from slurm_magics.jobs.job import Job, Run, Slice
from slurm_magics.jobs.owner import describe_owner, settle_orphans
from slurm_magics.jobs.recording import apply_known, follow
from slurm_magics.jobs.registry import RunRecord, unsubmitted_items

__all__ = ["live_entry"]


WAVES_FOLLOW_INTERVAL = 5.0  # seconds between looks at the registry for an owner's new waves


def _rebuild(cluster: Cluster, record: RunRecord) -> Run:
    """A run of an ended session, with its jobs resolved as far as the registry knows."""
    settle_orphans(cluster.registry, record)  # waves its ended owner can never submit
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
    apply_known(run, cluster.registry.jobs_of(run.run_id))
    follow(cluster.registry, run)
    if not all(job.done() for job in run.jobs):
        engine.call(_track(cluster, run, record))
    return run


async def _track(cluster: Cluster, run: Run, record: RunRecord) -> None:
    cluster.poller.track(run)
    if unsubmitted_items(record.slices, record.n_items, record.chunk_size):
        asyncio.get_running_loop().create_task(_follow_waves(cluster, run, record.owner))


async def _follow_waves(cluster: Cluster, run: Run, owner: str) -> None:
    """Follow the waves another process still submits for ``run``: track each new slice,
    and end what it never submits once it has ended (never PENDING for ever)."""
    reason = f"waiting for room in the process that submitted it ({describe_owner(owner)})"
    while True:
        record = await asyncio.to_thread(cluster.registry.run, run.run_id)
        if record is None:
            return
        known = {part.slurm_id for part in run.slices}
        new = [Slice(*part) for part in record.slices if part[0] not in known]
        if new:
            run.slices.extend(new)
            run.dependency = record.dependency
            cluster.poller.track(run)
        waiting = unsubmitted_items(record.slices, record.n_items, record.chunk_size)
        await asyncio.to_thread(settle_orphans, cluster.registry, record)
        # what the registry says of them: FAILED by settle_orphans, or ended by their owner
        # itself (its exit hook, cluster.close(), a cancel)
        apply_known(run, await asyncio.to_thread(cluster.registry.jobs_of, run.run_id))
        for item in waiting:
            job = run.jobs[item]
            if not job.done() and job.reason != reason:
                job._set_live(JobState.PENDING, reason)
        if not any(not run.jobs[item].done() for item in waiting):
            return
        await asyncio.sleep(WAVES_FOLLOW_INTERVAL)


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
