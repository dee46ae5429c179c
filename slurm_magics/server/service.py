"""What the server extension does, apart from HTTP: read the registry, read the queue (one
squeue per refresh, shared by every open panel), settle from sacct the items that left the
queue with no recorded end (``settle.py``), read log tails, cancel jobs.

It runs in the Jupyter server's event loop: commands go through the scheduler layer's own
asyncio subprocesses (never a shell), and SQLite and file reads go to worker threads.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import time
from collections.abc import Awaitable, Callable, Mapping

from slurm_magics.core.parsing import QueueRow
from slurm_magics.core.sbatch import log_path
from slurm_magics.core.states import JobState
from slurm_magics.jobs.owner import settle_orphans
from slurm_magics.jobs.registry import JobRecord, Registry, RunRecord, default_registry
from slurm_magics.scheduler.slurm import Scheduler
from slurm_magics.server import views
from slurm_magics.server.settle import SACCT_INTERVAL, Settler, read_tail
from slurm_magics.server.views import JSON, QueueSnapshot
from slurm_magics.server.waiting import start_view
from slurm_magics.transport import LocalTransport

__all__ = ["CancelTarget", "LookupFailed", "QueueCache", "SlurmService"]

#: how long one squeue answer serves every request (all open panels share it)
QUEUE_TTL = 2.0
#: at most this many runs in a dependency graph
MAX_GRAPH_NODES = 200
#: runs scanned for downstream edges of a graph's run
MAX_DOWNSTREAM_SCAN = 5000
#: live states of an item that a cancel request leaves CANCELLED
_CANCELLABLE = frozenset(s.value for s in (JobState.PENDING, JobState.RUNNING, JobState.CANCELLED))


class LookupFailed(Exception):
    """A well-formed id that the registry does not know, or cannot be acted on here."""

    def __init__(self, message: str, *, status: int = 404) -> None:
        super().__init__(message)
        self.status = status


class QueueCache:
    """The user's squeue, read at most once per ``ttl`` seconds, one call at a time.

    Requests that arrive while a call runs wait for that call; failures are cached too,
    so a broken squeue is not hammered by every open panel.
    """

    def __init__(
        self,
        fetch: Callable[[], Awaitable[list[QueueRow]]],
        *,
        ttl: float = QUEUE_TTL,
        calls: Callable[[], int] = lambda: 0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fetch = fetch
        self._ttl = ttl
        self._calls = calls
        self._clock = clock
        self._snapshot: QueueSnapshot | None = None
        self._read_at = 0.0
        self._running: asyncio.Task[QueueSnapshot] | None = None

    def invalidate(self) -> None:
        """Make the next ``get()`` read the queue again (after a cancel)."""
        self._snapshot = None

    async def get(self) -> QueueSnapshot:
        if self._snapshot is not None and self._clock() - self._read_at < self._ttl:
            return self._snapshot
        if self._running is None:
            self._running = asyncio.ensure_future(self._read())
        running = self._running
        # shield: a client that disconnects must not cancel the call others wait for
        return await asyncio.shield(running)

    async def _read(self) -> QueueSnapshot:
        started, wall = self._clock(), time.time()
        try:
            rows = await self._fetch()
            snapshot = QueueSnapshot(tuple(rows), wall, None, self._calls())
        except Exception as error:
            snapshot = QueueSnapshot((), wall, f"{type(error).__name__}: {error}", self._calls())
        finally:
            self._running = None
        self._snapshot, self._read_at = snapshot, started
        return snapshot


@dataclasses.dataclass(frozen=True)
class CancelTarget:
    """What one cancel request stops: SLURM ids, and the run elements they cover."""

    run: RunRecord
    slurm_ids: tuple[str, ...]
    elements: frozenset[int] | None  # None: every element of the run


class SlurmService:
    """One per Jupyter server: the registry, the shared queue, and the actions."""

    def __init__(
        self,
        *,
        root_dir: str,
        registry: Callable[[], Registry] = default_registry,
        scheduler: Scheduler | None = None,
        fetch_queue: Callable[[], Awaitable[list[QueueRow]]] | None = None,
        sacct_interval: float = SACCT_INTERVAL,
        log: logging.Logger | None = None,
    ) -> None:
        """``fetch_queue`` reads the queue (default: the scheduler's squeue of every state,
        ended jobs included until SLURM forgets them); ``sacct_interval`` is the shortest
        time between two sacct calls."""
        self.root_dir = root_dir
        self._registry_factory = registry
        self._registry: Registry | None = None
        self.scheduler = scheduler or Scheduler(LocalTransport())
        self.queue = QueueCache(
            fetch_queue or self.scheduler.queue, calls=lambda: self.scheduler.counters["squeue"]
        )
        self.settler = Settler(
            self.scheduler, lambda: self.registry, interval=sacct_interval, log=log
        )

    @property
    def registry(self) -> Registry:
        # Opened on first use, in a worker thread: $SLURM_MAGICS_REGISTRY is read then.
        if self._registry is None:
            self._registry = self._registry_factory()
        return self._registry

    # -- reading ---------------------------------------------------------------------------
    async def jobs(self, *, offset: int, limit: int, notebook: str | None) -> JSON:
        snapshot = await self.queue.get()
        total, page = await asyncio.to_thread(self._page, offset, limit, notebook)
        live = None if snapshot.error else views.queue_states(snapshot.rows)
        if live is not None:  # UNKNOWN items: how they ended, from sacct
            page = await self.settler.settle(page, live, snapshot.fetched_at)
        paths = await asyncio.to_thread(self._notebook_paths, {r.notebook for r, _ in page})
        runs = [
            views.run_view(
                record,
                views.item_states(record, jobs, live, fetched_at=snapshot.fetched_at),
                notebook_path=paths.get(record.notebook),
            )
            for record, jobs in page
        ]
        return views.jobs_view(
            runs,
            total=total,
            offset=offset,
            limit=limit,
            queue=views.queue_summary(snapshot),
            accounting=self.settler.status(),
        )

    def _page(
        self, offset: int, limit: int, notebook: str | None
    ) -> tuple[int, list[tuple[RunRecord, list[JobRecord]]]]:
        records = self.registry.runs(notebook=notebook)
        page = records[offset : offset + limit]
        return len(records), [(record, self._jobs_of(record)) for record in page]

    def _jobs_of(self, record: RunRecord) -> list[JobRecord]:
        """A run's items as recorded; those its ended owner never submitted are FAILED."""
        settle_orphans(self.registry, record)
        return self.registry.jobs_of(record.run_id)

    def _notebook_paths(self, notebooks: set[str]) -> dict[str, str | None]:
        paths: dict[str, str | None] = {}
        for notebook in notebooks:
            path = views.notebook_path(notebook, self.root_dir)
            exists = path is not None and os.path.isfile(os.path.join(self.root_dir, path))
            paths[notebook] = path if exists else None
        return paths

    async def queue_view(self) -> JSON:
        snapshot = await self.queue.get()
        owners = await asyncio.to_thread(self._owners)
        return views.queue_view(snapshot, owners)

    def _owners(self) -> dict[str, RunRecord]:
        return {
            part[0]: record
            for record in self.registry.runs()
            if views.is_local(record)
            for part in record.slices
        }

    def _find_slice(self, array_id: str) -> tuple[RunRecord, tuple[str, int, int]]:
        for record in self.registry.runs(include_cleaned=True):
            for part in record.slices:
                if part[0] == array_id:
                    if not views.is_local(record):
                        raise LookupFailed(
                            f"job {array_id} ran on {record.cluster.split('|')[0]}, which this "
                            "Jupyter server does not reach: use sm.jobs() in a notebook there.",
                            status=409,
                        )
                    return record, part
        raise LookupFailed(
            f"job {array_id} is not in the slurm_magics registry ({self.registry.path}): "
            "the panel only shows and cancels jobs submitted through slurm_magics."
        )

    def _resolve(self, array_id: str, task: int | None) -> tuple[RunRecord, int | None]:
        """The run of a SLURM id, and the element it names (None: the whole array job)."""
        record, (_, first, n_elements) = self._find_slice(array_id)
        if n_elements == 0:
            if task is not None:
                raise LookupFailed(
                    f"job {array_id} is not an array: use {array_id!r}, without a task id."
                )
            return record, first
        if task is None:
            return record, None
        if task >= n_elements:
            raise LookupFailed(f"array job {array_id} has tasks 0-{n_elements - 1}, not {task}.")
        return record, first + task

    async def log_tail(self, array_id: str, task: int | None, stream: str, max_bytes: int) -> JSON:
        record, element = await asyncio.to_thread(self._resolve, array_id, task)
        if element is None:
            raise LookupFailed(
                f"job {array_id} is an array: ask for the log of one task, e.g. {array_id}_0.",
                status=400,
            )
        job_id = array_id if task is None else f"{array_id}_{task}"
        path = log_path(record.run_dir, job_id, stream=stream)
        data, size = await asyncio.to_thread(read_tail, path, max_bytes)
        return views.log_view(job_id, stream, data, size, max_bytes)

    async def start(self, array_id: str, task: int | None) -> JSON:
        """Why a job of the registry waits and when SLURM expects it to start: one
        ``squeue --start``, only when asked (it is costly for the controller)."""
        await asyncio.to_thread(self._resolve, array_id, task)  # only jobs of the registry
        job_id = array_id if task is None else f"{array_id}_{task}"
        return start_view(job_id, await self.scheduler.start_estimates([array_id]))

    async def graph(self, run_id: str) -> JSON:
        snapshot = await self.queue.get()
        live = None if snapshot.error else views.queue_states(snapshot.rows)
        return await asyncio.to_thread(self._graph, run_id, live, snapshot.fetched_at)

    def _graph(
        self, run_id: str, live: Mapping[views.QueueKey, str] | None, fetched_at: float
    ) -> JSON:
        records = {record.run_id: record for record in self.registry.runs(include_cleaned=True)}
        center = records.get(run_id)
        if center is None:
            raise LookupFailed(f"run {run_id!r} is not in the slurm_magics registry.")
        edges: list[tuple[str, str, int]] = []
        seen, frontier = {run_id}, [run_id]
        while frontier and len(seen) < MAX_GRAPH_NODES:  # upstream, transitively
            current = frontier.pop()
            for upstream, item in self.registry.edges_of(current):
                edges.append((current, upstream, item))
                if upstream not in seen and upstream in records:
                    seen.add(upstream)
                    frontier.append(upstream)
        later = [
            r
            for r in records.values()
            if r.cluster == center.cluster and r.submitted_at >= center.submitted_at
        ]
        later.sort(key=lambda r: r.submitted_at)
        reached = {run_id}
        for record in later[:MAX_DOWNSTREAM_SCAN]:  # downstream: submitted later, in order
            if len(seen) >= MAX_GRAPH_NODES or record.run_id == run_id:
                continue
            for upstream, item in self.registry.edges_of(record.run_id):
                if upstream in reached:
                    edges.append((record.run_id, upstream, item))
                    reached.add(record.run_id)
                    seen.add(record.run_id)
        states = {
            rid: views.item_states(
                records[rid], self._jobs_of(records[rid]), live, fetched_at=fetched_at
            )
            for rid in seen
            if rid in records
        }
        return views.graph_view(run_id, records, edges, states)

    # -- acting ----------------------------------------------------------------------------
    async def cancel(self, *, array_id: str | None, task: int | None, run_id: str | None) -> JSON:
        target = await asyncio.to_thread(self._cancel_target, array_id, task, run_id)
        await self.scheduler.cancel(target.slurm_ids)
        self.queue.invalidate()
        snapshot = await self.queue.get()  # the panels see the cancellation at once
        live = None if snapshot.error else views.queue_states(snapshot.rows)
        await asyncio.to_thread(self._note_cancelled, target, live)
        return {"run_id": target.run.run_id, "cancelled": list(target.slurm_ids)}

    def _cancel_target(
        self, array_id: str | None, task: int | None, run_id: str | None
    ) -> CancelTarget:
        if run_id is not None:
            record = next((r for r in self.registry.runs() if r.run_id == run_id), None)
            if record is None:
                raise LookupFailed(f"run {run_id!r} is not in the slurm_magics registry.")
            if not views.is_local(record):
                raise LookupFailed(
                    f"run {run_id!r} ran on {record.cluster.split('|')[0]}, which this Jupyter "
                    "server does not reach.",
                    status=409,
                )
            # The tasks still waiting for room end here, with the slices read in the same
            # transaction: the process that submits the waves sbatches none of them, and
            # cancels what it sbatched meanwhile (jobs.cancels)
            _, slices = self.registry.end_unsubmitted(
                run_id, JobState.CANCELLED.value, _cancelled_waiting, time.time()
            )
            record = self.registry.run(run_id) or record  # with the slices recorded since
            return CancelTarget(record, tuple(part[0] for part in slices), None)
        assert array_id is not None
        record, element = self._resolve(array_id, task)
        slurm_id = array_id if task is None else f"{array_id}_{task}"
        if element is None:  # a whole array job: every element of that slice
            _, first, n_elements = next(p for p in record.slices if p[0] == array_id)
            return CancelTarget(record, (slurm_id,), frozenset(range(first, first + n_elements)))
        return CancelTarget(record, (slurm_id,), frozenset({element}))

    def _note_cancelled(
        self, target: CancelTarget, live: Mapping[views.QueueKey, str] | None
    ) -> None:
        """Record the end of the cancelled items, for runs that no kernel follows any more
        (a kernel that still follows them records the same end itself): those unfinished
        in the registry that squeue does not show ending otherwise."""
        record = target.run
        jobs = {job.item: job for job in self.registry.jobs_of(record.run_id)}
        states = views.item_states(record, list(jobs.values()), live)
        now = time.time()
        for item in range(record.n_items):
            element = item // max(record.chunk_size, 1)
            if target.elements is not None and element not in target.elements:
                continue
            known = jobs.get(item)
            if known is not None and JobState(known.state).finished:
                continue
            if states[item] not in _CANCELLABLE:
                continue  # it ended otherwise before scancel reached it
            job_id = views.slurm_id_of(record, element) or "?"
            self.registry.note_state(
                record.run_id,
                item,
                JobState.CANCELLED.value,
                known.started_at if known else None,
                now,
                f"JobFailedError: job {job_id} was cancelled from the JupyterLab SLURM panel",
            )
        self.registry.flush()


def _cancelled_waiting(items: range) -> str:
    return (
        f"JobFailedError: {len(items)} task(s) waiting for room were cancelled from the "
        "JupyterLab SLURM panel before they were submitted"
    )
