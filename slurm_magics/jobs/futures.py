"""Futures that any event loop can await, without awaiting ever cancelling them."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import logging
from collections.abc import Callable, Generator
from typing import Any, TypeVar

from slurm_magics.jobs.callbacks import run_callbacks
from slurm_magics.jobs.conditions import LightCondition

__all__ = ["AwaitableFuture", "wait_for_future"]

T = TypeVar("T")
_ENDED = ("CANCELLED", "CANCELLED_AND_NOTIFIED", "FINISHED")
log = logging.getLogger("concurrent.futures")  # where the standard library logs them too


def _call_back(fn: Callable[[Any], object], future: concurrent.futures.Future[Any]) -> None:
    try:
        fn(future)
    except Exception:
        log.exception("exception calling callback for %r", future)


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


async def wait_for_future(future: concurrent.futures.Future[T]) -> T:
    """Await a concurrent future from the running loop.

    Unlike ``asyncio.wrap_future``, cancelling the awaiting task (a cell interrupted,
    ``asyncio.wait_for`` timing out) cancels only the wait, never the future itself.
    """
    if not future.done():
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()

        def on_done(_: concurrent.futures.Future[T]) -> None:
            # RuntimeError: the awaiting loop is closed, nobody waits any more
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_wake, waiter)

        future.add_done_callback(on_done)
        await waiter
    return future.result()


class AwaitableFuture(concurrent.futures.Future[T]):
    """A ``concurrent.futures.Future`` that is also awaitable in any asyncio loop."""

    def __init__(self) -> None:
        # Future.__init__'s fields, with a condition of ~0.1 KB instead of ~1.1 KB: a
        # map keeps one future per task (100,000 of them for a 100,000-item map).
        self._condition = LightCondition()  # type: ignore[assignment]
        self._state = "PENDING"
        self._result: T | None = None
        self._exception: BaseException | None = None
        self._waiters: list[Any] = []
        self._done_callbacks: list[Any] = []

    def __await__(self) -> Generator[Any, None, T]:
        return wait_for_future(self).__await__()

    def add_done_callback(self, fn: Callable[[concurrent.futures.Future[T]], object]) -> None:
        """Call ``fn(future)`` when the future ends (at once if it has), never on the
        engine thread: ``fn`` may submit jobs or wait for results."""
        with self._condition:
            if self._state not in _ENDED:
                self._done_callbacks.append(fn)
                return
        run_callbacks(functools.partial(_call_back, fn, self))

    def _invoke_callbacks(self) -> None:
        # The engine resolves most futures: their callbacks go to the callback threads.
        run_callbacks(super()._invoke_callbacks)  # type: ignore[misc]  # not in typeshed

    def cancel(self) -> bool:
        """Cancel the future (not started or still pending) and wake every waiter."""
        if not super().cancel():
            return False
        # Nobody else runs this future, so tell waiters here: concurrent.futures.wait()
        # and as_completed() only see a cancellation once it is "notified".
        if self._state == "CANCELLED":
            self.set_running_or_notify_cancel()
        return True

    def get_result(self, timeout: float | None = None) -> T:
        """Alias of ``result()``, for submitit users."""
        return self.result(timeout)

    def _resolve(self, value: T) -> bool:
        """Set the result unless already done (cancelled); True when it took effect."""
        if self.done():  # cheap check first: the error below formats repr(self)
            return False
        try:
            self.set_result(value)
        except concurrent.futures.InvalidStateError:
            return False
        return True

    def _fail(self, error: BaseException) -> bool:
        """Set the exception unless already done; True when it took effect."""
        if self.done():
            return False
        try:
            self.set_exception(error)
        except concurrent.futures.InvalidStateError:
            return False
        return True
