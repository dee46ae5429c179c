"""Cancelling runs so that no later wave of theirs goes in, whichever process cancels.

A map larger than the cluster's job limits goes in in waves, sbatch'd by the process that
submitted it. A process that cancels the whole run (that one, another kernel that attached
to it, the Lab panel's server) ends the tasks still waiting for room in the registry and
reads the run's slices in the same transaction (``Registry.end_unsubmitted``), then
scancels those slices. The submitting process records each later slice and reads what is
already ended in one transaction too (``Registry.record_slices``): a slice that went in
meanwhile has its cancelled tasks scancelled there. Whichever comes first, no task the user
cancelled runs, and every future says so.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Sequence

from slurm_magics.core.errors import ClusterError
from slurm_magics.core.parsing import element_slurm_id
from slurm_magics.core.states import JobState
from slurm_magics.jobs.job import Job, Run
from slurm_magics.jobs.recording import apply_known
from slurm_magics.jobs.registry import JobRecord, Registry
from slurm_magics.jobs.waves import Waves
from slurm_magics.scheduler.slurm import SchedulerBackend

__all__ = ["apply_cancels", "cancel_runs", "record_wave"]

log = logging.getLogger(__name__)
_background: set[asyncio.Task[None]] = set()


async def cancel_runs(
    waves: Waves, registry: Registry, scheduler: SchedulerBackend, by_run: Sequence[Sequence[Job]]
) -> None:
    """scancel jobs, grouped by run (each group non-empty), and cancel the futures of those
    that wait for room (nothing of them is in SLURM). A run whose every unfinished job is
    given is cancelled whole: its waves are dropped here, its tasks that wait for room end
    CANCELLED in the registry (the process that submits its waves submits none of them),
    and all its slices, as the registry has them, are scancelled at once. Tasks that wait
    for room, cancelled one by one, end CANCELLED in the registry too; a slice that took
    them in meanwhile has them scancelled.

    Raises:
        ClusterError: scancel failed; the jobs that waited for room are cancelled all the
            same, the submitted ones are left as they were.
    """
    whole, ids = [], set()
    for jobs in by_run:
        run, given = jobs[0].run, set(jobs)
        if all(job in given or job.done() for job in run.jobs):  # stops at the first other
            whole.append(run)
        else:
            ids |= {job.job_id for job in jobs}
    waiting = [job for jobs in by_run for job in jobs if not job.job_id]
    await waves.drop(whole, waiting)  # first: no wave takes them in here after this
    for jobs in by_run:
        run = jobs[0].run
        items = [job.item for job in jobs if not job.job_id]
        if run not in whole and not items:
            continue
        try:  # on the loop: a thread is not to be had at exit (cancel_on_exit)
            slices = _end_in_registry(registry, run, items, run in whole)
        except sqlite3.Error as error:  # the other processes learn it from the slices' ends
            log.warning("slurm_magics: could not record the cancel of %s: %s", run.name, error)
            slices = run.slice_tuples()
        if run in whole:
            ids |= {part[0] for part in slices} | {part.slurm_id for part in run.slices}
        else:  # went in meanwhile (a slice this process has not seen yet)
            ids |= {element_slurm_id(slices, item // run.chunk_size) or "" for item in items}
    await scheduler.cancel(ids - {""})  # "": a job that waits for room, in no slice


def _end_in_registry(
    registry: Registry, run: Run, items: list[int], whole: bool
) -> list[tuple[str, int, int]]:
    if whole:
        return registry.end_unsubmitted(
            run.run_id, JobState.CANCELLED.value, _no_error, time.time()
        )[1]
    return registry.cancel_items(run.run_id, items, time.time())


def record_wave(
    registry: Registry, cluster_key: str, scheduler: SchedulerBackend, run: Run
) -> None:
    """Record the latest slice of ``run`` (a later wave) and scancel, in it, the elements
    already ended: cancelled by another process meanwhile (their futures end here as the
    registry says) or by this one while they waited for room. Runs on the engine loop."""
    try:
        ended = registry.record_slices(run.run_id, cluster_key, run.slice_tuples(), run.dependency)
    except sqlite3.Error as error:  # the slice is in SLURM and followed here all the same
        log.warning("slurm_magics: could not record a wave of %s: %s", run.name, error)
        ended = []
    _end_cancelled(run, ended)
    latest = run.slices[-1]
    elements = range(latest.first_element, latest.first_element + max(latest.n_elements, 1))
    size = run.chunk_size
    done = [e for e in elements if all(j.done() for j in run.jobs[e * size : (e + 1) * size])]
    if not done:
        return
    ids = {latest.slurm_id} if len(done) == len(elements) else set(map(run.slurm_id_of, done))
    task = asyncio.get_running_loop().create_task(_cancel_ended(scheduler, ids, run.name))
    _background.add(task)  # held until it ends (the loop keeps only weak references)
    task.add_done_callback(_background.discard)


async def _cancel_ended(scheduler: SchedulerBackend, ids: set[str], name: str) -> None:
    try:
        await scheduler.cancel(ids)
    except ClusterError as error:  # their futures have ended; SLURM will run them for nothing
        log.warning("slurm_magics: could not scancel cancelled tasks of %s: %s", name, error)


def apply_cancels(registry: Registry, run: Run) -> None:
    """End the futures of ``run``'s tasks still waiting for room here that another process
    has cancelled (the registry holds them CANCELLED): no wave submits them. Engine loop;
    never raises (the pump must go on: it looks again before the next wave)."""
    try:
        _end_cancelled(run, registry.ended_items(run.run_id, run.submitted_end() * run.chunk_size))
    except Exception as error:  # logged; a look that failed is made again
        log.warning("slurm_magics: could not read the cancels of %s: %s", run.name, error)


def _end_cancelled(run: Run, ended: Sequence[JobRecord]) -> None:
    """End as the registry says the futures of items another process cancelled (only
    CANCELLED: a submitting process takes no other verdict on its tasks from others)."""
    apply_known(run, [known for known in ended if known.state == JobState.CANCELLED.value])


def _no_error(items: range) -> None:
    return None  # the registry's CANCELLED without an error: a plain cancel (CancelledError)
