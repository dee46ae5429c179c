"""``sm.SlurmExecutor``: a ``concurrent.futures.Executor`` whose workers are SLURM jobs.

It works under any client of that interface (``concurrent.futures.wait``,
``as_completed``, libraries that take an executor). Submits that arrive in a burst are
packed into one array job instead of one sbatch each.
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
from slurm_magics.core.resources import resources_from_options
from slurm_magics.jobs.cluster import Cluster
from slurm_magics.jobs.futures import AwaitableFuture
from slurm_magics.jobs.job import Call, Job

__all__ = ["ExecutorFuture", "SlurmExecutor"]

_CALL = operator.methodcaller("__call__")  # runs functools.partial(fn, *args, **kwargs)


class ExecutorFuture(AwaitableFuture[Any]):
    """The future ``SlurmExecutor.submit`` returns; ``.job`` is its SLURM job once sent."""

    job: Job | None = None


class SlurmExecutor(concurrent.futures.Executor):
    """Run callables as SLURM jobs: ``with sm.SlurmExecutor(cpus=2) as ex: ex.submit(f, 1)``.

    Resource keywords as for ``@sm.task``. Submits within ``batch_window`` seconds of each
    other (up to ``max_batch``) become one array job.

    Args:
        cluster: where jobs go (default: the default cluster when first used).
        batch_window: seconds to gather submits into one array job (>= 0).
        max_batch: at most this many submits per array job.
        name: SLURM's job name of the arrays.
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
        batch_window: float = 0.05,
        max_batch: int = 1000,
        name: str = "executor",
        **resources: Any,
    ) -> None:
        self._resources = resources_from_options(**resources)
        self._cluster = cluster
        self._window = batch_window
        self._max_batch = max_batch
        self._name = name
        self._lock = threading.Lock()
        self._waiting: list[tuple[ExecutorFuture, Callable[[], Any]]] = []
        self._timer: threading.Timer | None = None
        self._futures: list[concurrent.futures.Future[Any]] = []
        self._shutdown = False

    @property
    def cluster(self) -> Cluster:
        if self._cluster is None:
            self._cluster = default_cluster()
        return self._cluster

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> ExecutorFuture:
        """Schedule ``fn(*args, **kwargs)``; sent with the rest of its burst."""
        future = ExecutorFuture()
        with self._lock:
            if self._shutdown:
                raise RuntimeError("cannot schedule new futures after shutdown")
            self._waiting.append((future, functools.partial(fn, *args, **kwargs)))
            self._futures.append(future)
            full = len(self._waiting) >= self._max_batch
            if not full and self._timer is None:
                self._timer = threading.Timer(self._window, self._flush)
                self._timer.daemon = True
                self._timer.start()
        if full:
            self._flush()
        return future

    def _flush(self) -> None:
        with self._lock:
            batch, self._waiting = self._waiting, []
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
        batch = [(f, c) for f, c in batch if not f.cancelled() and f.set_running_or_notify_cancel()]
        if not batch:
            return
        calls: list[Call] = [((call,), {}) for _, call in batch]
        try:
            run = self.cluster.submit_calls(
                _CALL, calls, name=self._name, resources=self._resources, array=len(calls) > 1
            )
        except BaseException as error:  # the batch's futures carry the error; nothing hangs
            for future, _ in batch:
                future.set_exception(error)
            return
        for (future, _), job in zip(batch, run.jobs, strict=True):
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
            for waiting_future, _ in waiting:
                waiting_future.cancel()
            for future in self._futures:
                job = getattr(future, "job", future)
                if isinstance(job, Job) and job.state.value == "PENDING":
                    job.cancel()
        self._flush()
        if wait:
            concurrent.futures.wait(self._futures)


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
