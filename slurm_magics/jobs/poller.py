"""One poller per cluster: one squeue per tick for every tracked job, whatever their number.

Each tick lists the session's sentinel folder (the cheap fast path: a task drops a
sentinel right after writing its result) and, when due, runs ONE ``squeue -u USER
--states=all``. ``sacct`` runs only for tasks that left the queue with no known end. The
squeue interval is short after activity and backs off while nothing changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from slurm_magics.core.errors import ClusterError
from slurm_magics.core.outcomes import dependency_error
from slurm_magics.core.parsing import ClusterConfig, QueueRow
from slurm_magics.core.states import JobState, normalise_state
from slurm_magics.jobs.ending import Ending, Key, note_timing
from slurm_magics.jobs.job import Job, Run
from slurm_magics.jobs.retries import run_again
from slurm_magics.jobs.settling import Settling
from slurm_magics.scheduler.slurm import SchedulerBackend
from slurm_magics.transport import ConnectionLostError, Transport

__all__ = ["Poller"]

log = logging.getLogger(__name__)

FAST_LISTING = 0.1  # seconds between sentinel listings while tasks may finish
MIN_INTERVAL = 0.5  # seconds between squeue calls right after activity
MAX_INTERVAL = 10.0  # ... and at most, when nothing changes (also capped by MinJobAge)
BACKOFF = 1.5
NEVER_SATISFIED = "DependencyNeverSatisfied"
REQUEUE_SETTLE = 3.0  # seconds between seeing a failed attempt ended and requeuing it


# Pending reasons of tasks that will not start by themselves any moment.
_NOT_STARTING_SOON = ("Dependency", "Held", "BeginTime", "Limit")


class Poller:
    """Tracks runs and resolves their jobs' futures; lives on the engine loop."""

    def __init__(
        self,
        scheduler: SchedulerBackend,
        transport: Transport,
        *,
        sentinel_dir: str,
        config: ClusterConfig,
        result_grace: float = 5.0,
        vanish_grace: float = 30.0,
    ) -> None:
        self.scheduler = scheduler
        self.transport = transport
        self.sentinel_dir = sentinel_dir
        self.config = config
        self.max_interval = min(MAX_INTERVAL, max(MIN_INTERVAL, config.min_job_age / 4))
        self.interval = MIN_INTERVAL
        self.ticks = 0
        #: the user's running jobs at the last squeue (all of them, not only tracked ones)
        self.running_jobs: int | None = None
        self._runs: dict[str, Run] = {}
        self._slices: dict[str, Run] = {}
        self._unlisted: dict[str, str] = {}  # folders that cannot be listed, and why
        self._wakeup: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._next_queue = 0.0
        # True while some task runs or waits only for a slot (not for a dependency):
        # then results may land any moment and the sentinel listing runs fast.
        self._hot = False
        self.ending = Ending(transport)
        self._requeue = self.ending.requeue  # elements to run again, and why
        self._ended_seen: dict[Key, float] = {}  # when an element to requeue was seen ended
        self._rearmed: dict[str, float] = {}  # runs whose dependency was set again, until when
        self._seen_pending: set[Key] = set()  # elements pending at the last squeue
        self._taken_out: set[Key] = set()  # ... then gone without a row: cancelled while pending
        #: how jobs squeue reports ended, or no longer lists, get their end
        self.settling = Settling(
            scheduler,
            config,
            self.ending,
            self._runs,
            self._slices,
            self._taken_out,
            result_grace=result_grace,
            vanish_grace=vanish_grace,
        )
        #: called with each squeue's rows (the waves count the user's jobs in them)
        self.on_queue: Callable[[list[QueueRow]], None] | None = None
        #: called as on_retry(run, element, attempt, error) for each new attempt
        self.on_retry: Callable[[Run, int, int, BaseException], None] | None = None

    # -- tracking (engine loop only) ------------------------------------------------------
    def track(self, run: Run) -> None:
        """Start following a submitted run's jobs."""
        self._runs[run.run_id] = run
        for part in run.slices:
            self._slices[part.slurm_id] = run
        self.interval = MIN_INTERVAL
        self._hot = True
        self._next_queue = min(self._next_queue, time.monotonic() + MIN_INTERVAL)
        if self._task is None or self._task.done():
            self._wakeup = asyncio.Event()
            self._task = asyncio.get_running_loop().create_task(self._loop())
        assert self._wakeup is not None
        self._wakeup.set()

    def _forget_finished(self) -> None:
        for run in list(self._runs.values()):
            if all(job.done() for job in run.jobs):
                del self._runs[run.run_id]
                for part in run.slices:
                    self._slices.pop(part.slurm_id, None)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    # -- the loop -------------------------------------------------------------------------
    async def _loop(self) -> None:
        assert self._wakeup is not None
        while True:
            self._forget_finished()
            if not self._runs:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            now = time.monotonic()
            queue_due = now >= self._next_queue
            try:
                changed = await self.tick(queue_due=queue_due)
            except ClusterError as error:  # the cluster is unreachable for now
                log.warning("polling %s failed (%s); retrying", self.transport.description, error)
                changed = False
            except Exception:  # never let one bad tick stop the poller
                log.exception("slurm_magics poller tick failed; retrying")
                changed = False
            if changed:
                self.interval = MIN_INTERVAL
            elif queue_due:
                self.interval = min(self.interval * BACKOFF, self.max_interval)
            if queue_due or changed:
                self._next_queue = time.monotonic() + self.interval
            delay = self._next_queue - time.monotonic()
            if self._hot:
                delay = min(delay, FAST_LISTING)
            self._wakeup.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), max(delay, 0.01))

    async def tick(self, *, queue_due: bool = True) -> bool:
        """One poll: the sentinel listing, then (when due) one squeue. True if anything moved."""
        self.ticks += 1
        changed = await self._collect_results()
        if not queue_due:
            return changed
        try:
            rows = await self.scheduler.queue()
        except ClusterError as error:
            log.warning("squeue failed (%s); keeping every job as it is until the next tick", error)
            return changed
        self.running_jobs = sum(row.state == "RUNNING" for row in rows)
        if self.on_queue is not None:
            self.on_queue(rows)
        ended, absent, never, put_back = self._apply_queue(rows)
        changed |= await self.settling.requeued_by_slurm(put_back, self.on_retry)
        # An element to run again is requeued once SLURM has ended its attempt (a result
        # can land before the process exits); until then, and in this tick's rows, its
        # old end is not an end.
        now = time.monotonic()
        for key in self._requeue:
            if key in ended or key in absent:
                self._ended_seen.setdefault(key, now)
        # SLURM may still be cleaning up an attempt it already reports as ended; a requeue
        # then can kill the new attempt at launch. Give it a moment.
        ready = {k for k in self._requeue if now - self._ended_seen.get(k, now) >= REQUEUE_SETTLE}
        ended = {key: row for key, row in ended.items() if key not in self._requeue}
        absent = [key for key in absent if key not in self._requeue]
        if ended or absent:
            changed |= await self._collect_results()  # a result may have landed meanwhile
        changed |= await self.settling.settle_ended(ended)
        changed |= await self.settling.settle_absent(absent)
        changed |= await self._flush_requeues(ready)
        now = time.monotonic()
        # A run re-armed after its upstream was requeued still shows the old verdict in
        # this tick's squeue output; only a later one tells.
        # ... and runs waiting on an element about to run again are not lost either.
        retrying = {dep.run_id for key in self._requeue for dep in self._runs[key[0]].dependents}
        never = [k for k in never if self._rearmed.get(k[0], 0.0) < now and k[0] not in retrying]
        if never:
            await self._fail_never_satisfied(never)
            changed = True
        return changed

    async def _flush_requeues(self, ready: set[Key]) -> bool:
        """Run failed elements again (retries=...) and re-arm the runs waiting on them."""
        chosen = {key: self._requeue.pop(key) for key in ready}
        for key in chosen:
            self._ended_seen.pop(key, None)
        if not chosen:
            return False
        elements = {(self._runs[run_id], element): e for (run_id, element), e in chosen.items()}
        try:
            rearmed = await run_again(self.scheduler, self.transport, elements, self.on_retry)
        except ClusterError as problem:  # e.g. SLURM still finishing the attempt: next tick
            log.warning("requeue failed (%s); trying again", problem)
            self._requeue.update(chosen)
            return False
        for key in chosen:
            self.settling.missing_since.pop(key, None)
            for job in self.settling.jobs_of(key):  # not the old attempt's RUNNING any more
                job._set_live(JobState.PENDING, "Requeued")
        until = time.monotonic() + 3 * self.max_interval
        self._rearmed.update((run.run_id, until) for run in rearmed)
        self._hot = True
        return True

    # -- the fast path ----------------------------------------------------------------------
    async def _collect_results(self) -> bool:
        # Usually one folder: this session's. Jobs reattached from an ended session drop
        # their sentinels in that session's folder.
        folders = {self.sentinel_dir} | {
            r.sentinel_dir for r in self._runs.values() if r.sentinel_dir
        }
        consumed: list[str] = []
        for folder in sorted(folders):
            try:
                names = await self.transport.list_dir(folder)
            except ConnectionLostError:
                raise
            except (OSError, ClusterError) as error:  # its jobs end through squeue instead
                self._unlistable(folder, error)
                continue
            self._unlisted.pop(folder, None)
            for name in names:
                base, _, timing = name.partition("@")
                run_id, _, item_text = base.rpartition(".")
                run = self._runs.get(run_id)
                if run is None or not item_text.isdigit():
                    continue
                job = run.jobs[int(item_text)]
                if not job.done():
                    note_timing(job, timing)
                    await self.ending.from_file(job)
                consumed.append(f"{folder}/{name}")
        if consumed:
            try:
                await self.transport.remove_files(consumed)
            except ConnectionLostError:
                raise
            except (OSError, ClusterError) as error:  # seen again next time: read again
                log.warning("cannot remove sentinels (%s)", error)
        return bool(consumed)

    def _unlistable(self, folder: str, error: OSError | ClusterError) -> None:
        """Say once per folder (and once more when the error changes) that it cannot be
        listed: the jobs dropping sentinels there are still followed through squeue."""
        said = f"{type(error).__name__}: {error}"
        if self._unlisted.get(folder) != said:
            self._unlisted[folder] = said
            log.warning("cannot list %s (%s); following its jobs through squeue", folder, said)

    async def resolve_finished(self, run: Run) -> None:
        """Resolve the jobs of a run whose result files exist (one listing, then reads);
        a folder that cannot be listed leaves them to the poll."""
        folder = f"{run.run_dir}/results"
        try:
            present = set(await self.transport.list_dir(folder))
        except ConnectionLostError:
            raise
        except (OSError, ClusterError) as error:
            self._unlistable(folder, error)
            return
        for job in run.jobs:
            if not job.done() and f"{job.item}.pkl" in present:
                await self.ending.from_file(job)

    # -- squeue -------------------------------------------------------------------------------
    def _apply_queue(
        self, rows: list[QueueRow]
    ) -> tuple[dict[Key, QueueRow], list[Key], list[Key], list[Key]]:
        seen = {
            key: row
            for row in rows
            for key in self.settling.keys_of(row.array_job_id, row.task_ids)
        }
        ended: dict[Key, QueueRow] = {}
        absent: list[Key] = []
        never: list[Key] = []
        put_back: list[Key] = []  # running attempts SLURM requeued by itself
        pending: set[Key] = set()
        now = time.time()
        self._hot = False
        for run in self._runs.values():
            # waves: elements past the last submitted slice wait on the client, not in SLURM
            submitted = run.submitted_end()
            for job in run.jobs:
                if job.done():
                    continue
                key = (run.run_id, run.element_of(job.item))
                found = seen.get(key)
                if found is None:
                    if key[1] >= submitted:
                        continue
                    if key in self._seen_pending:
                        # Pending at the last squeue, gone now without a row of its own (a
                        # task that starts gets one, and keeps it for MinJobAge): scancel
                        # took it out of its array's pending range; sacct never lists it.
                        self._taken_out.add(key)
                    if now - run.submitted_at > 5.0:  # sbatch registers synchronously; be safe
                        absent.append(key)
                    self._hot = True
                    continue
                try:
                    state = normalise_state(found.state)
                except ValueError:
                    continue
                if state is JobState.PENDING:
                    # Only jobs with retries= may be requeued by SLURM (--requeue; the
                    # others are --no-requeue): a running attempt back in the queue.
                    if job.state is JobState.RUNNING and run.retries and key not in self._requeue:
                        put_back.append(key)
                        continue
                    job._set_live(JobState.PENDING, found.reason)
                    pending.add(key)
                    self._hot |= not any(w in found.reason for w in _NOT_STARTING_SOON)
                    if found.reason == NEVER_SATISFIED:
                        never.append(key)
                elif state is JobState.RUNNING:
                    self._hot = True
                    if key in self._requeue:  # the failed attempt still completing
                        continue
                    if job.state is not JobState.RUNNING and job._set_live(
                        JobState.RUNNING, "", found.nodes
                    ):
                        job.started_at = job.started_at or now
                else:
                    ended[key] = found
                    self._hot = True
        self._seen_pending = pending
        return ended, sorted(set(absent)), sorted(set(never)), sorted(set(put_back))

    async def _fail_never_satisfied(self, keys: list[Key]) -> None:
        note = await self.settling.cancel_never_starting(
            self._runs[k[0]].slurm_id_of(k[1]) for k in keys
        )
        for key in keys:
            run = self._runs[key[0]]
            for job in self.settling.jobs_of(key):
                upstream = run.dependency or "another job"
                error = dependency_error(job.job_id, upstream, "failed" + note)
                self.ending.fail(job, JobState.DEPENDENCY_FAILED, error)

    async def fail_dependents(self, run: Run, upstream: Job) -> None:
        """``upstream`` failed or was cancelled: ``run`` (afterok on it) can never start."""
        waiting = [job for job in run.jobs if not job.done()]
        if not waiting:
            return
        note = await self.settling.cancel_never_starting(part.slurm_id for part in run.slices)
        why = ("was cancelled" if upstream.cancelled() else "failed") + note
        for job in waiting:
            self.ending.fail(
                job, JobState.DEPENDENCY_FAILED, dependency_error(job.job_id, repr(upstream), why)
            )
