"""Hand tasks to connected workers as they free up, and take their results as they stream in.

Lives on the engine loop. Tasks wait in one FIFO queue; each worker holds a small window of
tasks it runs in order (the first is the running one). The window adapts to how long the
function's tasks take: quick ones go out many per message, slow ones one at a time so the
work stays balanced. A worker that disconnects or falls silent is lost: its running task
runs again elsewhere (up to ``retries`` times) or fails naming the worker; the tasks it had
not started go back to the front of the queue.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import logging
import math
import struct
import time
from collections.abc import Iterable
from typing import Any, Protocol

from ...core import pool_protocol as protocol
from ...core.pool_protocol import Kind
from .listener import WorkerConnection

__all__ = ["Dispatcher", "PoolTask", "TaskEvents", "WorkerInfo", "WorkerState", "task_timing"]

log = logging.getLogger(__name__)

PREFETCH = 64  # tasks a worker may hold at most
QUICK = 0.02  # seconds of work a worker may hold beyond its running task
_TIMING = struct.Struct("!dd")


@dataclasses.dataclass(eq=False, slots=True)
class PoolTask:
    """One call waiting for, or running on, a worker."""

    task_id: int
    function_id: int
    call: bytes  # pickled (args, kwargs)
    retries: int = 1  # runs again this often after its worker was lost
    attempts: int = 0  # runs that were lost with their worker
    cancelled: bool = False
    worker: str = ""
    owner: Any = None  # what the front end attached (its Job)


class TaskEvents(Protocol):
    """What the front end learns from the dispatcher (called on the engine loop)."""

    def running(self, task: PoolTask, worker: str) -> None: ...

    def finished(self, task: PoolTask, parts: list[bytes], worker: str) -> None: ...

    def lost(self, task: PoolTask, worker: str, reason: str) -> None: ...


def task_timing(parts: list[bytes]) -> tuple[float, float] | None:
    """(start, end) in seconds since the epoch from a result's parts, if it has them."""
    if len(parts) > 3 and len(parts[3]) == _TIMING.size:
        start, end = _TIMING.unpack(parts[3])
        return float(start), float(end)
    return None


@dataclasses.dataclass(frozen=True)
class WorkerInfo:
    """A connected worker: its name ("SLURMID_INDEX@host:pid"), since when, how busy."""

    name: str
    host: str
    connected_at: float
    tasks_done: int
    tasks_held: int


@dataclasses.dataclass(eq=False)
class WorkerState:
    """A connected worker and the tasks it holds, in the order it runs them."""

    conn: WorkerConnection
    inflight: dict[int, PoolTask] = dataclasses.field(default_factory=dict)
    functions: set[int] = dataclasses.field(default_factory=set)
    connected_at: float = dataclasses.field(default_factory=time.time)
    last_heard: float = dataclasses.field(default_factory=time.monotonic)
    running: int | None = None  # the task id last reported as running
    done: int = 0  # tasks finished
    leaving: bool = False  # it gave its tasks back: it is about to exit or restart

    @property
    def name(self) -> str:
        return self.conn.name

    def info(self) -> WorkerInfo:
        """What users see of it (``pool.workers``)."""
        host = str(self.conn.hello.get("host", ""))
        return WorkerInfo(self.name, host, self.connected_at, self.done, len(self.inflight))


class Dispatcher:
    """The task queue and the connected workers of one pool (engine loop only)."""

    def __init__(
        self,
        events: TaskEvents,
        *,
        heartbeat: float = 2.0,
        heartbeat_timeout: float = 15.0,
        prefetch: int = PREFETCH,
    ) -> None:
        self.events = events
        self.heartbeat = heartbeat
        self.heartbeat_timeout = heartbeat_timeout
        self.prefetch = prefetch
        self.functions: dict[int, bytes] = {}
        self.queue: collections.deque[PoolTask] = collections.deque()
        self.workers: dict[int, WorkerState] = {}
        self.lost_workers: list[tuple[str, str]] = []  # (name, why), most recent last
        self._durations: dict[int, float] = {}  # function id -> mean seconds per task
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._beating: asyncio.Task[None] | None = None
        self.last_activity = time.monotonic()

    # -- front end ----------------------------------------------------------------------
    def add_function(self, function_id: int, pickled: bytes) -> None:
        """Register a pickled function (sent to each worker once, before its first task)."""
        self.functions[function_id] = pickled

    def submit(self, tasks: Iterable[PoolTask]) -> None:
        """Queue tasks (in order) and hand out what idle workers can take."""
        self.queue.extend(tasks)
        self.last_activity = time.monotonic()
        self._dispatch()

    def cancel(self, task: PoolTask) -> None:
        """Drop a queued task, or interrupt it on its worker (which is then replaced)."""
        task.cancelled = True
        for state in self.workers.values():
            if task.task_id in state.inflight:
                state.conn.send(Kind.CANCEL, protocol.pack_records([(task.task_id, [])]))
                break

    def drain(self, prefix: str) -> None:
        """Tell the worker whose name starts with ``prefix`` to hand back what it has not
        started, finish its task and leave (it is about to reach its time limit)."""
        for state in self.workers.values():
            if state.name.startswith(prefix) and not state.leaving:
                state.leaving = True
                state.conn.send(Kind.SHUTDOWN)

    @property
    def pending(self) -> int:
        """Tasks queued or held by a worker (cancelled ones may still count until dropped)."""
        return len(self.queue) + sum(len(s.inflight) for s in self.workers.values())

    async def wait_workers(self, count: int) -> None:
        """Return once at least ``count`` workers are connected."""
        if len(self.workers) >= count:
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append((count, waiter))
        await waiter

    def start(self) -> None:
        """Start sending heartbeats and watching for silent workers."""
        if self._beating is None:
            self._beating = asyncio.get_running_loop().create_task(self._beat())

    async def shutdown(self) -> None:
        """Tell every worker to exit, close the connections and stop the heartbeats."""
        if self._beating is not None:
            self._beating.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._beating
            self._beating = None
        for state in list(self.workers.values()):
            state.conn.send(Kind.SHUTDOWN)
            with contextlib.suppress(OSError, ConnectionError):
                await asyncio.wait_for(state.conn.drain(), 2)
            state.conn.close()

    # -- workers ----------------------------------------------------------------------
    async def serve(self, conn: WorkerConnection) -> None:
        """Serve one authenticated worker until it goes away (the listener's callback)."""
        state = WorkerState(conn)
        self.workers[id(state)] = state
        self._notify_waiters()
        self._dispatch()
        reason = "its connection closed"
        try:
            while True:
                kind, body = await conn.receive()
                state.last_heard = time.monotonic()
                if kind == Kind.RESULTS:
                    self._on_results(state, body)
                elif kind == Kind.RELEASE:
                    self._on_release(state, body)
                elif kind != Kind.HEARTBEAT:
                    reason = f"it sent an unexpected message (kind {kind})"
                    break
        except (ConnectionError, OSError, protocol.ProtocolError) as error:
            if not isinstance(error, ConnectionError):
                reason = f"its connection failed ({error})"
        finally:
            self._lose(state, reason)
            conn.close()

    def _notify_waiters(self) -> None:
        count = len(self.workers)
        for wanted, waiter in list(self._waiters):
            if count >= wanted:
                self._waiters.remove((wanted, waiter))
                if not waiter.done():
                    waiter.set_result(None)

    def _on_results(self, state: WorkerState, body: bytes) -> None:
        for task_id, parts in protocol.unpack_records(body):
            task = state.inflight.pop(task_id, None)
            if task is None or task.cancelled or not parts:
                continue  # a cancelled task's late result, or its drop confirmed
            state.done += 1
            timing = task_timing(parts)
            if timing is not None:
                took = max(timing[1] - timing[0], 0.0)
                mean = self._durations.get(task.function_id)
                self._durations[task.function_id] = (
                    took if mean is None else 0.8 * mean + 0.2 * took
                )
            self.events.finished(task, parts, state.name)
        self.last_activity = time.monotonic()
        self._announce_running(state)
        self._dispatch()

    def _on_release(self, state: WorkerState, body: bytes) -> None:
        state.leaving = True  # a worker gives tasks back only when it exits or restarts
        back = [state.inflight.pop(task_id, None) for task_id, _ in protocol.unpack_records(body)]
        self.queue.extendleft(reversed([t for t in back if t is not None and not t.cancelled]))
        self._dispatch()

    def _lose(self, state: WorkerState, reason: str) -> None:
        if self.workers.pop(id(state), None) is None:
            return
        self.lost_workers.append((state.name, reason))
        del self.lost_workers[:-100]
        back: list[PoolTask] = []
        for position, task in enumerate(state.inflight.values()):
            if task.cancelled:
                continue
            if position == 0:  # the one it was running
                task.attempts += 1
                if task.attempts > task.retries:
                    self.events.lost(task, state.name, reason)
                    continue
                log.warning(
                    "slurm_magics pool: worker %s was lost while running task %d (%s); "
                    "running it again",
                    state.name,
                    task.task_id,
                    reason,
                )
            back.append(task)
        state.inflight.clear()
        self.queue.extendleft(reversed(back))
        self._dispatch()

    # -- dispatch ---------------------------------------------------------------------
    def _window(self, function_id: int) -> int:
        mean = self._durations.get(function_id)
        if mean is None:
            return 2  # learn the function's pace before sending many
        return max(1, min(self.prefetch, 1 + int(QUICK / max(mean, 1e-6))))

    def _dispatch(self) -> None:
        if not self.queue or not self.workers:
            return
        states = sorted(
            (s for s in self.workers.values() if not s.leaving), key=lambda s: len(s.inflight)
        )
        for state in states:
            while self.queue and self.queue[0].cancelled:
                self.queue.popleft()
            if not self.queue:
                break
            # A fair share of what waits, so the last tasks spread over every worker.
            share = math.ceil(len(self.queue) / len(self.workers))
            room = min(self._window(self.queue[0].function_id), share + 1) - len(state.inflight)
            if room <= 0:
                continue
            batch: list[PoolTask] = []
            while self.queue and len(batch) < room:
                task = self.queue.popleft()
                if not task.cancelled:
                    batch.append(task)
            self._send(state, batch)

    def _send(self, state: WorkerState, batch: list[PoolTask]) -> None:
        if not batch:
            return
        for function_id in {task.function_id for task in batch} - state.functions:
            state.conn.send(
                Kind.FUNCTION, protocol.pack_function(function_id, self.functions[function_id])
            )
            state.functions.add(function_id)
        records = []
        for task in batch:
            task.worker = state.name
            state.inflight[task.task_id] = task
            records.append((task.task_id, [protocol.pack_function(task.function_id, task.call)]))
        state.conn.send(Kind.TASKS, protocol.pack_records(records))
        self._announce_running(state)

    def _announce_running(self, state: WorkerState) -> None:
        head = next(iter(state.inflight.values()), None)
        if head is not None and head.task_id != state.running:
            state.running = head.task_id
            self.events.running(head, state.name)

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat)
            now = time.monotonic()
            for state in list(self.workers.values()):
                if now - state.last_heard > self.heartbeat_timeout:
                    silent = now - state.last_heard
                    state.conn.abort()
                    self._lose(state, f"it was silent for {silent:.0f} s (node failure?)")
                else:
                    state.conn.send(Kind.HEARTBEAT)
