"""Where the futures' done-callbacks run: never on the engine thread.

A callback is the user's code: it may submit another job (which waits for the engine), wait
for a result, or take its time. On the engine thread any of these would stall or deadlock
every cluster's I/O and poller, so callbacks of futures that the engine resolves run on
threads of their own, as ``concurrent.futures`` executors run theirs on their workers.
Callbacks of futures resolved elsewhere (``cancel()`` in a cell) run at once, there.
"""

from __future__ import annotations

import concurrent.futures
import threading
from collections.abc import Callable

from slurm_magics.jobs.engine import engine

__all__ = ["CALLBACK_THREADS", "run_callbacks"]

#: at most this many callbacks run (or wait) at the same time; more queue up
CALLBACK_THREADS = 32

_lock = threading.Lock()
_pool: concurrent.futures.ThreadPoolExecutor | None = None


def _callback_pool() -> concurrent.futures.ThreadPoolExecutor:
    global _pool  # noqa: PLW0603  (one pool per process, made on first use)
    with _lock:
        if _pool is None:
            _pool = concurrent.futures.ThreadPoolExecutor(
                CALLBACK_THREADS, thread_name_prefix="slurm_magics-callbacks"
            )
        return _pool


def run_callbacks(invoke: Callable[[], None]) -> None:
    """Run ``invoke`` (one future's callbacks, in their order) now, or on a callback thread
    when called on the engine thread. ``invoke`` must report its own errors (as
    ``Future._invoke_callbacks`` does: logged, never raised)."""
    if engine.in_engine_thread():
        try:
            _callback_pool().submit(invoke)
            return
        except RuntimeError:  # the interpreter is shutting down: no new threads
            pass
    invoke()
