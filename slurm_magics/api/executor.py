"""``sm.SlurmExecutor``: a ``concurrent.futures.Executor`` whose workers are SLURM jobs.

It works under any client of that interface (``concurrent.futures.wait``,
``as_completed``, libraries that take an executor). Submits that arrive in a burst are
packed into one array job instead of one sbatch each. pipefunc's work items carry their
function's resources and scope (``api/pipefunc.py``), which decide the jobs they go in.
"""

from __future__ import annotations

import concurrent.futures
import functools
import operator
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from slurm_magics.api.connect import default_cluster
from slurm_magics.api.pipefunc import Placement, placement, teach_core_count
from slurm_magics.core.resources import ResourceError, resources_from_options
from slurm_magics.jobs.cluster import Cluster
from slurm_magics.jobs.futures import AwaitableFuture
from slurm_magics.jobs.job import Call, Job
from slurm_magics.jobs.pool.pool import WorkerPool

__all__ = ["ExecutorFuture", "SlurmExecutor"]

_CALL = operator.methodcaller("__call__")  # runs functools.partial(fn, *args, **kwargs)
_MAX_GATHER = 2.0  # seconds: a steady stream of submits is still sent at least this often
_Waiting = tuple["ExecutorFuture", Placement, Call]


class ExecutorFuture(AwaitableFuture[Any]):
    """The future ``SlurmExecutor.submit`` returns; ``.job`` is its SLURM job once sent."""

    job: Job | None = None


class SlurmExecutor(concurrent.futures.Executor):
    """Run callables as SLURM jobs: ``with sm.SlurmExecutor(cpus=2) as ex: ex.submit(f, 1)``.

    Resource keywords as for ``@sm.task``. Submits that follow each other by less than
    ``batch_window`` seconds (up to ``max_batch``) are sent together: one array job per
    function resources (a pipefunc map: ONE array, see ``api/pipefunc.py``).

    Args:
        cluster: where jobs go (default: the default cluster when first used).
        pool: an ``sm.WorkerPool`` whose workers run the calls instead (no batching needed).
        batch_window: seconds without a new submit after which a burst is sent (>= 0).
        max_batch: at most this many submits per burst.
        chunk_size: calls per array task (>= 1); pipefunc maps with
            ``resources_scope="map"`` are split into tasks of this many elements.
        name: SLURM's job name of the arrays (pipefunc work is named after its output).
        **resources: as for ``sm.task`` (cpus, memory in MB or "4G", time in minutes or
            "HH:MM:SS", partition, ...).

    ``submit(fn, *args, **kwargs)`` returns a ``concurrent.futures.Future`` (also
    awaitable) of the call's result; ``map`` yields results in order; ``shutdown(wait=True)``
    waits for every submitted job, ``cancel_futures=True`` scancels those not finished.

    Raises:
        ResourceError: an invalid resource keyword, at construction.
        RuntimeError: ``submit`` after ``shutdown``.
    """

    def __init__(
        self,
        cluster: Cluster | None = None,
        *,
        pool: WorkerPool | None = None,
        batch_window: float = 0.05,
        max_batch: int = 10_000,
        chunk_size: int = 1,
        name: str = "executor",
        **resources: Any,
    ) -> None:
        self._resources = resources_from_options(**resources)
        if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
            raise ResourceError(f"chunk_size={chunk_size!r} must be a whole number of at least 1.")
        self._chunk_size = chunk_size
        self._cluster = cluster
        self._pool = pool
        self._window = batch_window
        self._max_batch = max_batch
        self._name = name
        self._lock = threading.Lock()
        self._waiting: list[_Waiting] = []
        self._timer: threading.Timer | None = None
        self._first_submit = self._last_submit = 0.0
        self._taught = teach_core_count(SlurmExecutor, _max_workers)
        self._futures: list[concurrent.futures.Future[Any]] = []
        self._shutdown = False

    @property
    def cluster(self) -> Cluster:
        if self._cluster is None:
            self._cluster = default_cluster()
        return self._cluster

    @property
    def max_workers(self) -> int:
        """How many calls one array job of this executor holds (SLURM's MaxArraySize, or
        ``max_batch``): the core count pipefunc's automatic chunk size divides a map by."""
        return min(self.cluster.max_array_size, self._max_batch)

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> ExecutorFuture:
        """Schedule ``fn(*args, **kwargs)``; sent with the rest of its burst.

        Raises:
            ResourceError: a pipefunc function's resources cannot be honoured (nothing sent).
            RuntimeError: after ``shutdown``.
        """
        if self._pool is not None:  # its workers take calls one by one, in milliseconds
            future = ExecutorFuture()
            with self._lock:
                if self._shutdown:
                    raise RuntimeError("cannot schedule new futures after shutdown")
                self._futures.append(future)
            self._pool.submit(fn, *args, **kwargs).add_done_callback(
                functools.partial(_copy_outcome, future)
            )
            return future
        if not self._taught:  # pipefunc imported after this executor was made
            self._taught = teach_core_count(SlurmExecutor, _max_workers)
        where = placement(
            fn, args, kwargs, defaults=self._resources, chunk_size=self._chunk_size, name=self._name
        )
        call: Call = (
            (args, kwargs) if where.shared else ((functools.partial(fn, *args, **kwargs),), {})
        )
        future = ExecutorFuture()
        with self._lock:
            if self._shutdown:
                raise RuntimeError("cannot schedule new futures after shutdown")
            self._waiting.append((future, where, call))
            self._futures.append(future)
            self._last_submit = time.monotonic()
            full = len(self._waiting) >= self._max_batch
            if not full and self._timer is None:
                self._first_submit = self._last_submit
                self._arm(self._window)
        if full:
            self._flush()
        return future

    def _arm(self, delay: float) -> None:  # called with self._lock held
        self._timer = threading.Timer(delay, self._on_timer)
        self._timer.daemon = True
        self._timer.start()

    def _on_timer(self) -> None:
        with self._lock:  # a burst still arriving (a pipefunc map being submitted) waits
            quiet = time.monotonic() - self._last_submit
            if quiet < self._window and self._last_submit - self._first_submit < _MAX_GATHER:
                self._arm(self._window - quiet)
                return
        self._flush()

    def _flush(self) -> None:
        with self._lock:
            batch, self._waiting = self._waiting, []
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
        groups: dict[tuple[object, ...], list[_Waiting]] = {}
        for entry in batch:
            if not entry[0].cancelled() and entry[0].set_running_or_notify_cancel():
                groups.setdefault(entry[1].key, []).append(entry)
        for group in groups.values():
            self._send(group)

    def _send(self, group: list[_Waiting]) -> None:
        where = group[0][1]
        calls = [call for _, _, call in group]
        try:
            run = self.cluster.submit_calls(
                where.shared or _CALL,
                calls,
                name=where.name,
                resources=where.resources,
                array=len(calls) > 1,
                chunk_size=where.chunk_size,
            )
        except BaseException as error:  # the group's futures carry the error; nothing hangs
            for future, _, _ in group:
                future.set_exception(error)
            return
        for (future, _, _), job in zip(group, run.jobs, strict=True):
            future.job = job
            job.add_done_callback(functools.partial(_copy_outcome, future))

    def map(
        self,
        fn: Callable[..., Any],
        *iterables: Iterable[Any],
        timeout: float | None = None,
        chunksize: int = 1,
    ) -> Iterator[Any]:
        """Like ``Executor.map``: ONE array job (``chunksize`` items per task), results in order."""
        deadline = None if timeout is None else time.monotonic() + timeout
        calls: list[Call] = [(args, {}) for args in zip(*iterables, strict=False)]
        with self._lock:
            if self._shutdown:
                raise RuntimeError("cannot schedule new futures after shutdown")
        if not calls:
            return iter([])
        if self._pool is not None:
            pooled = self._pool.submit_calls(fn, calls, name=getattr(fn, "__name__", self._name))
            self._futures.extend(pooled.jobs)
            return _results(pooled.jobs, deadline)
        run = self.cluster.submit_calls(
            fn,
            calls,
            name=getattr(fn, "__name__", self._name),
            resources=self._resources,
            array=True,
            chunk_size=chunksize,
        )
        self._futures.extend(run.jobs)
        return _results(run.jobs, deadline)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Send what waits (or cancel it with ``cancel_futures``); optionally wait for all."""
        with self._lock:
            self._shutdown = True
        if cancel_futures:
            with self._lock:
                waiting, self._waiting = self._waiting, []
            for waiting_future, _, _ in waiting:
                waiting_future.cancel()
            for future in self._futures:
                job = getattr(future, "job", future)
                if isinstance(job, Job) and job.state.value == "PENDING":
                    job.cancel()
        self._flush()
        if wait:
            concurrent.futures.wait(self._futures)


def _max_workers(executor: SlurmExecutor) -> int:
    return executor.max_workers


def _copy_outcome(target: ExecutorFuture, job: concurrent.futures.Future[Any]) -> None:
    if job.cancelled():
        target._fail(concurrent.futures.CancelledError(f"{job!r} was cancelled"))
    elif job.exception() is not None:
        target._fail(job.exception())  # type: ignore[arg-type]
    else:
        target._resolve(job.result())


def _results(jobs: list[Job], deadline: float | None) -> Iterator[Any]:
    try:
        for job in jobs:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            yield job.result(left)
    finally:
        pending = [job for job in jobs if not job.done()]
        if pending:  # as the standard library does: an abandoned map cancels the rest
            pending[0].cluster.cancel_jobs(pending)
            for job in pending:
                job._mark_cancelled()
