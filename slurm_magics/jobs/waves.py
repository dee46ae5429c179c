"""Waves: a map larger than the room (the smallest gap between MaxJobCount, the QOS's and
the association's submit limits and what the user has queued) goes in in slices that fit; the
rest waits on the client (PENDING, "waiting for room: ...") until tasks leave the queue. A
limit's refusal becomes a wait, said once; where waiting cannot help, a ``SubmissionError``.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable, Sequence

from slurm_magics.core.errors import ClusterError, SubmissionError
from slurm_magics.core.limits import (
    ACTIVE_STATES,
    Limit,
    QueueCounts,
    Refusal,
    SubmitLimitError,
    SubmitLimits,
    count_queue,
    room_for,
)
from slurm_magics.core.parsing import ClusterConfig, QueueRow
from slurm_magics.core.resources import ResourceError
from slurm_magics.core.sbatch import ScriptSpec, render_script
from slurm_magics.core.states import JobState
from slurm_magics.jobs.array import JobArray
from slurm_magics.jobs.dependencies import dependency_expression, upstream_not_in
from slurm_magics.jobs.job import Job, Run, Slice
from slurm_magics.scheduler.slurm import Scheduler, SchedulerBackend

__all__ = ["Pending", "Waves"]

log = logging.getLogger(__name__)

UNSEEN_FOR = 60.0  # seconds a submitted slice missing from squeue still counts as queued
RECOUNT_AFTER = 2.0  # seconds: a map that would wait counts the queue again if older
RETRY_AFTER_REFUSAL = (2.0, 60.0)  # seconds before submitting again after a refusal: first, most


@dataclasses.dataclass(eq=False)
class Pending:
    """The part of a run not submitted yet: elements ``next`` up to ``end``."""

    run: Run
    template: ScriptSpec  # n_elements > 0: an array job; 0: one plain job
    next: int
    end: int
    upstream: Sequence[Job | JobArray]
    condition: str
    qos: str | None
    account: str | None
    first_error: asyncio.Future[None] | None = None  # the first sbatch's outcome, for the caller
    cap: int = 1 << 62  # largest slice, halved when a slice alone is refused


class Waves:
    """The client-side queue of one cluster's submissions; lives on the engine loop."""

    def __init__(
        self,
        scheduler: SchedulerBackend,
        config: ClusterConfig,
        max_array_size: int,
        on_submitted: Callable[[Run], None],
    ) -> None:
        self.scheduler = scheduler
        self.transport = scheduler.transport
        self.config = config
        self.max_array_size = max_array_size
        self.on_submitted = on_submitted
        self.before_wave: Callable[[Run], None] = lambda run: None  # ends others' cancels
        self.limits: SubmitLimits | None = None
        self.counts = QueueCounts()
        self.in_qos: collections.Counter[str] = collections.Counter()
        self.queue: collections.deque[Pending] = collections.deque()
        #: SLURM ids of slices submitted here: their QOS, elements and when
        self._slices: dict[str, tuple[str, int, float, list[Job]]] = {}
        self._unseen: set[str] = set()  # ... not in any squeue output yet
        self._said: set[str] = set()  # limits already announced
        self._refused_until = 0.0
        self._queue_seen = False  # squeue counted the user's jobs at least once
        self._counted_at = -RECOUNT_AFTER  # when (time.monotonic())
        self._refusals = 0
        self._pumping: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()  # one pump at a time: never the same slice twice
        self.stats: collections.Counter[str] = collections.Counter()  # sbatch, most_queued
        if isinstance(scheduler, Scheduler):
            scheduler.watch_refusals = True

    # -- what the controller holds ---------------------------------------------------------
    async def load_limits(self) -> SubmitLimits:
        """Read the submit limits once (sacctmgr, where accounting is on)."""
        if self.limits is None:
            limits = SubmitLimits(self.config.max_job_count)
            if self.config.accounting and isinstance(self.scheduler, Scheduler):
                limits = await self.scheduler.submit_limits(
                    self.config.max_job_count, self.config.cluster_name
                )
            self.limits = limits
        return self.limits

    def on_queue(self, rows: list[QueueRow]) -> None:
        """The poller's squeue rows (the user's jobs): count them, then submit what fits."""
        counts = count_queue(rows)
        self._queue_seen, self._counted_at = True, time.monotonic()
        in_qos: collections.Counter[str] = collections.Counter()
        seen = set()
        for row in rows:
            known = self._slices.get(row.array_job_id)
            if known is None:
                continue
            seen.add(row.array_job_id)
            if row.state.split(" ", 1)[0].upper() in ACTIVE_STATES:
                in_qos[known[0]] += len(row.task_ids) if row.task_ids else 1
        now = time.monotonic()
        self._unseen -= seen
        for slurm_id in list(self._unseen):  # submitted after this squeue began
            qos, n, when, jobs = self._slices[slurm_id]
            # ended before any squeue saw it (fast tasks): no longer queued, no longer counted
            if now - when > UNSEEN_FOR or all(job.done() for job in jobs):
                self._unseen.discard(slurm_id)
                continue
            counts = QueueCounts(counts.records + n, counts.active + n)
            in_qos[qos] += n
        for slurm_id in [s for s in self._slices if s not in seen and s not in self._unseen]:
            del self._slices[slurm_id]  # left the queue: no longer counted
        self.counts, self.in_qos = counts, in_qos
        self.kick()

    def kick(self) -> None:
        """Submit what fits now, in the background (one pump at a time)."""
        if self.queue and (self._pumping is None or self._pumping.done()):
            self._pumping = asyncio.get_running_loop().create_task(self.pump())

    # -- submitting ------------------------------------------------------------------------
    async def add(self, pending: Pending) -> None:
        """Queue a run's elements and submit what fits; raise the first sbatch's error.

        Raises:
            SubmissionError: sbatch refused the run's first slice for a reason other than
                room, or ClusterError: the cluster was unreachable (nothing of it queued).
        """
        await self.load_limits()
        stale = time.monotonic() - self._counted_at > RECOUNT_AFTER  # an idle poller's count
        if stale and self._room(pending)[0] < pending.end - pending.next:
            with contextlib.suppress(ClusterError):  # what has left the queue makes room
                self.on_queue(await self.scheduler.queue())
        pending.first_error = asyncio.get_running_loop().create_future()
        self.queue.append(pending)
        await self.pump()
        if pending.first_error.done():
            pending.first_error.result()

    async def waiting(self) -> list[tuple[str, int, str]]:
        """What waits on the client: (run name, jobs not submitted, reason) per run."""
        found = []
        for pending in self.queue:
            run = pending.run
            jobs = run.jobs[pending.next * run.chunk_size : pending.end * run.chunk_size]
            reason = next((job.reason for job in jobs if not job.done()), "")
            found.append((run.name, pending.end - pending.next, reason or "waiting for room"))
        return found

    async def drop(self, runs: Sequence[Run], waiting: Sequence[Job] = ()) -> None:
        """Forget the unsubmitted elements of ``runs`` and cancel the futures of
        ``waiting`` (jobs being cancelled before they went in); once this returns, no
        slice submits them (a slice already holding one is cancelled on record)."""
        async with self._lock:
            for job in waiting:
                job._mark_cancelled()
            for pending in [p for p in self.queue if p.run in runs]:
                self.queue.remove(pending)
                _settle(pending)

    async def abandon(self, why: str) -> None:
        """Fail every job still waiting on the client (its cluster is closed): a future
        is never left PENDING for ever."""
        async with self._lock:
            while self.queue:
                pending = self.queue.popleft()
                run, left = pending.run, pending.end - pending.next
                error = SubmissionError(f"{left} task(s) of {run.name} were never submitted: {why}")
                for job in run.jobs[pending.next * run.chunk_size : pending.end * run.chunk_size]:
                    job._end_failed(JobState.FAILED, error)
                _settle(pending)

    async def pump(self) -> None:
        """Submit waiting slices in order while there is room; stop at the first that waits."""
        async with self._lock:
            await self._pump()

    async def _pump(self) -> None:
        for waiting in list(self.queue):  # what others cancelled ends here, for all runs
            self.before_wave(waiting.run)
        while self.queue:
            pending = self.queue[0]
            while pending.next < pending.end and _all_done(pending, pending.next):
                pending.next += 1
            if pending.next >= pending.end:
                self.queue.popleft()
                _settle(pending)
                continue
            room, limit = self._room(pending)
            if room == 0 and limit is not None and limit.value == 0:
                self._failed(pending, _no_room_ever(pending.run.name, limit))
                continue
            reason = self._blocked(pending)
            if reason:
                self._wait(reason)
                return
            if not await self._submit_one(pending):
                return
            if pending.next >= pending.end:
                self.queue.popleft()
                _settle(pending)

    def _blocked(self, pending: Pending) -> str:
        """Why ``pending`` cannot be submitted now ("" when it can)."""
        waiting_on = upstream_not_in(pending.upstream, pending.condition)
        if waiting_on:
            return f"waiting for room: its upstream {waiting_on} is not all submitted"
        if time.monotonic() < self._refused_until:
            return ""  # keeps the reason a refusal set
        room, limit = self._room(pending)
        if room > 0:
            return ""
        assert limit is not None
        return f"waiting for room: {limit.name} {limit.value} ({limit.scope})"

    def _limits(self, pending: Pending) -> list[Limit]:
        assert self.limits is not None
        return self.limits.for_job(self._qos(pending), pending.account)

    def _qos(self, pending: Pending) -> str:
        return pending.qos or (self.limits.default_qos(pending.account) if self.limits else "")

    def _room(self, pending: Pending) -> tuple[int, Limit | None]:
        return room_for(self._limits(pending), self.counts, self.in_qos[self._qos(pending)])

    def _wait(self, reason: str) -> None:
        key = reason.split("(", 1)[0].strip()
        if key not in self._said and "upstream" not in reason:
            self._said.add(key)
            left = sum(p.end - p.next for p in self.queue)
            log.warning("slurm_magics: %s; %d job(s) wait on the client", reason, left)
        for pending in self.queue:
            _mark_waiting(pending, reason)

    async def _submit_one(self, pending: Pending) -> bool:
        """sbatch the next slice of ``pending``; False when it has to wait."""
        if time.monotonic() < self._refused_until:
            return False
        room, _ = self._room(pending)
        run = pending.run
        array = pending.template.n_elements > 0
        n = min(room, pending.end - pending.next, self.max_array_size, pending.cap)
        n = n if array else 1
        first = pending.next
        spec = dataclasses.replace(
            pending.template,
            n_elements=n if array else 0,
            element_offset=first,
            tag=f"{run.run_id}.{first}",
            dependency=dependency_expression(pending.upstream, pending.condition) or None,
        )
        try:
            script = render_script(spec)
        except ResourceError as error:  # e.g. past SLURM's script size: never submittable
            self._failed(pending, error)
            return True
        self.stats["sbatch"] += 1
        try:
            await self.transport.write_files({f"{run.run_dir}/slice{first}.sh": script.encode()})
            slurm_id = await self.scheduler.submit(script, tag=spec.sent_tag)
        except SubmitLimitError as refused:
            return self._refused(pending, refused.refusal, n)
        except SubmissionError as error:
            self._failed(pending, error)
            return True
        except ClusterError as error:  # unreachable for now: the caller hears it, or later
            if pending.first_error is not None and not pending.first_error.done():
                self._failed(pending, error)  # nothing of the run is in SLURM
                return True
            log.warning("slurm_magics: a wave of %s failed (%s); trying again", run.name, error)
            self._back_off()
            return False
        self._refusals = 0
        pending.cap = min(pending.cap * 2, 1 << 62)  # after a refusal: grow back
        run.slices.append(Slice(slurm_id, first, spec.n_elements))
        run.dependency = spec.dependency or run.dependency
        pending.next = first + max(n, 1)
        qos = self._qos(pending)
        jobs = run.jobs[first * run.chunk_size : (first + max(n, 1)) * run.chunk_size]
        self._slices[slurm_id] = (qos, max(n, 1), time.monotonic(), jobs)
        self._unseen.add(slurm_id)
        self.counts = QueueCounts(self.counts.records + max(n, 1), self.counts.active + max(n, 1))
        self.in_qos[qos] += max(n, 1)
        self.stats["most_queued"] = max(self.stats["most_queued"], self.in_qos[qos])
        run.submitted_at = time.time()
        for job in jobs:
            if job.reason.startswith("waiting for room"):
                job._set_live(JobState.PENDING, "")
        if pending.first_error is not None and not pending.first_error.done():
            pending.first_error.set_result(None)
        self.on_submitted(run)
        return True

    def _refused(self, pending: Pending, refusal: Refusal, n: int) -> bool:
        """A limit refused the slice: wait (later, or with a smaller slice), or fail."""
        if n > 1:
            pending.cap = max(1, n // 2)  # the room may be smaller than this slice: try less
            return True
        # Waiting cannot help when one job is refused by a per-user limit while squeue
        # (seen since) shows none of the user's jobs queued: the limit is 0.
        per_user = refusal.limit in ("QOSMaxSubmitJobPerUserLimit", "AssocMaxSubmitJobLimit")
        nothing_queued = self._queue_seen and self.counts.active == 0 and not self._unseen
        if per_user and nothing_queued:
            name = "MaxSubmitJobsPerUser" if refusal.limit.startswith("QOS") else "MaxSubmitJobs"
            value = next((lim.value for lim in self._limits(pending) if lim.name == name), None)
            self._failed(
                pending,
                SubmissionError(
                    f"sbatch refused even one job of {pending.run.name}: {refusal.description}"
                    f"{f' is {value}' if value is not None else ''} and none of your jobs is "
                    f"queued, so waiting cannot help (sbatch said: {refusal.said}). Ask the "
                    "administrators to raise the limit, or submit with another qos=/account= "
                    "(`sacctmgr show qos` and `sacctmgr show assoc` list them)."
                ),
            )
            return True
        self._back_off()
        self._wait(f"waiting for room: {refusal.description} ({refusal.limit})")
        if pending.first_error is not None and not pending.first_error.done():
            pending.first_error.set_result(None)  # the caller gets its futures; they wait
        return False

    def _back_off(self) -> None:
        """Submit nothing for a while (2 s, doubling up to 60 s), then try again."""
        self._refusals += 1
        pause = min(RETRY_AFTER_REFUSAL[0] * 2 ** (self._refusals - 1), RETRY_AFTER_REFUSAL[1])
        self._refused_until = time.monotonic() + pause
        asyncio.get_running_loop().call_later(pause + 0.01, self.kick)

    def _failed(
        self, pending: Pending, error: SubmissionError | ClusterError | ResourceError
    ) -> None:
        """sbatch refused a slice for good: its caller hears it, or its jobs fail."""
        if self.queue and self.queue[0] is pending:
            self.queue.popleft()
        if pending.first_error is not None and not pending.first_error.done():
            pending.first_error.set_exception(error)
            return
        run = pending.run
        for job in run.jobs[pending.next * run.chunk_size : pending.end * run.chunk_size]:
            job._end_failed(JobState.FAILED, error)
        _settle(pending)


def _no_room_ever(name: str, limit: Limit) -> SubmissionError:
    return SubmissionError(
        f"{limit} allows no queued job at all, so {name} can never be submitted and waiting "
        "cannot help: ask the administrators to raise it, or submit with another qos=/account= "
        "(`sacctmgr show qos` and `sacctmgr show assoc` list them)."
    )


def _all_done(pending: Pending, element: int) -> bool:
    run = pending.run
    return all(
        j.done() for j in run.jobs[element * run.chunk_size : (element + 1) * run.chunk_size]
    )


def _mark_waiting(pending: Pending, reason: str) -> None:
    run = pending.run
    for job in run.jobs[pending.next * run.chunk_size : pending.end * run.chunk_size]:
        if job.reason != reason and not job.done():
            job._set_live(JobState.PENDING, reason)


def _settle(pending: Pending) -> None:
    if pending.first_error is not None and not pending.first_error.done():
        pending.first_error.set_result(None)
