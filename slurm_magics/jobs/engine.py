"""The background thread and event loop on which every cluster's I/O and poller run.

Keeping all scheduler I/O on one thread of our own means a blocking ``job.result()`` in
a cell never deadlocks the kernel, and the kernel's own loop is never blocked by us.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import concurrent.futures.thread  # its exit hook must be registered before ours
import contextlib
import logging
import threading
import weakref
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

__all__ = ["Engine", "engine"]

T = TypeVar("T")
log = logging.getLogger(__name__)


class Engine:
    """One daemon thread running one asyncio loop."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._before_stop: list[weakref.WeakMethod[Callable[[], None]]] = []

    def before_stop(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` (a bound method, held weakly) when the engine stops at exit,
        while its loop still runs: the last moment to end futures and record them."""
        self._before_stop.append(weakref.WeakMethod(callback))

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The engine's loop, started on first use."""
        with self._lock:
            if self._loop is None or self._thread is None or not self._thread.is_alive():
                loop = asyncio.new_event_loop()
                ready = threading.Event()

                def run() -> None:
                    asyncio.set_event_loop(loop)
                    loop.call_soon(ready.set)
                    loop.run_forever()

                self._thread = threading.Thread(target=run, name="slurm_magics-engine", daemon=True)
                self._thread.start()
                ready.wait()
                self._loop = loop
            return self._loop

    def in_engine_thread(self) -> bool:
        return self._thread is not None and threading.current_thread() is self._thread

    def call(self, coroutine: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run a coroutine on the engine loop and wait for its result from another thread."""
        if self.in_engine_thread():
            coroutine.close()
            raise RuntimeError("Engine.call() from the engine thread would deadlock")
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def call_in_loop(self, function: Callable[..., T], *args: Any) -> T:
        """Run a plain function on the engine loop (in turn with all that runs there)."""

        async def run() -> T:
            return function(*args)

        return self.call(run())

    def spawn(self, coroutine: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Start a coroutine on the engine loop without waiting (thread-safe)."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop)

    def stop(self) -> None:
        """Cancel what runs on the loop (pollers), then stop it; jobs keep running."""
        hooks, self._before_stop = self._before_stop, []
        for ref in hooks:
            callback = ref()
            if callback is not None:
                try:
                    callback()
                except Exception:  # one failing hook must not keep the others from running
                    log.exception("slurm_magics: an exit hook failed")
        with self._lock:
            if self._loop is not None and self._thread is not None and self._thread.is_alive():
                done = asyncio.run_coroutine_threadsafe(_cancel_tasks(), self._loop)
                with contextlib.suppress(Exception):
                    done.result(timeout=5)
                self._loop.call_soon_threadsafe(self._loop.stop)
                self._thread.join(timeout=5)
            self._loop = None
            self._thread = None


async def _cancel_tasks() -> None:
    tasks = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


engine = Engine()
# Stop before the interpreter shuts down the default thread pool (which threading's own
# exit hooks do, before atexit's): the poller uses it for file I/O until it stops.
_register = getattr(threading, "_register_atexit", atexit.register)
_register(engine.stop)
