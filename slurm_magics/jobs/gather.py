"""``sm.gather`` and ``sm.as_completed`` over jobs and job arrays."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import AsyncIterator, Iterable, Iterator
from typing import Any

from slurm_magics.jobs.futures import AwaitableFuture

__all__ = ["as_completed", "gather"]


def _outcome(future: concurrent.futures.Future[Any]) -> Any:
    if future.cancelled():
        return concurrent.futures.CancelledError(f"{future!r} was cancelled")
    error = future.exception()
    return error if error is not None else future.result()


def gather(
    *items: concurrent.futures.Future[Any], return_exceptions: bool = False
) -> AwaitableFuture[list[Any]]:
    """A future of the list of results, one entry per item (a JobArray gives its list).

    Raises the first error as soon as it is known, unless ``return_exceptions=True``:
    then errors take their item's place (for a JobArray, inside its list).
    """
    combined: AwaitableFuture[list[Any]] = AwaitableFuture()
    # With return_exceptions a JobArray is waited for task by task: the array's own
    # future ends at its first error, while its other tasks still run.
    parts = [list(getattr(item, "jobs", [item])) if return_exceptions else [item] for item in items]
    remaining = [sum(len(p) for p in parts)]
    lock = threading.Lock()

    def entry(item: concurrent.futures.Future[Any]) -> Any:
        jobs = getattr(item, "jobs", None)
        if return_exceptions and jobs is not None:
            return [_outcome(job) for job in jobs]
        return _outcome(item)

    def on_done(future: concurrent.futures.Future[Any]) -> None:
        if not return_exceptions and (future.cancelled() or future.exception() is not None):
            combined._fail(_outcome(future))
            return
        with lock:
            remaining[0] -= 1
            last = remaining[0] == 0
        if last:
            combined._resolve([entry(i) for i in items])

    for futures in parts:
        for future in futures:
            future.add_done_callback(on_done)
    if remaining[0] == 0:
        combined._resolve([entry(i) for i in items])
    return combined


class as_completed:  # noqa: N801  (reads like the standard library's function)
    """Iterate jobs as they end, with ``for`` (blocking) or ``async for``."""

    def __init__(
        self, jobs: Iterable[concurrent.futures.Future[Any]], timeout: float | None = None
    ):
        self._jobs = list(jobs)
        self._timeout = timeout

    def __iter__(self) -> Iterator[concurrent.futures.Future[Any]]:
        return concurrent.futures.as_completed(self._jobs, timeout=self._timeout)

    async def __aiter__(self) -> AsyncIterator[concurrent.futures.Future[Any]]:
        pending = set(self._jobs)
        queue: asyncio.Queue[concurrent.futures.Future[Any]] = asyncio.Queue()
        loop = asyncio.get_running_loop()
        for job in pending:
            job.add_done_callback(lambda j: loop.call_soon_threadsafe(queue.put_nowait, j))
        async with asyncio.timeout(self._timeout):
            for _ in range(len(pending)):
                yield await queue.get()
