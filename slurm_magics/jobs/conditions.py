"""A condition variable of ~100 bytes for futures, where ``threading.Condition`` costs
about 1.1 KB: a map of 100,000 tasks keeps one future, so one condition, per task.

A ``LightCondition`` is its own re-entrant lock (the C ``RLock``, ~60 bytes) and a list of
waiters made only when a thread waits; ``threading.Condition`` adds a Python object with
seven bound methods and a deque to every lock.
"""

from __future__ import annotations

import contextlib
import threading
from types import TracebackType
from typing import Any

__all__ = ["LightCondition"]


class LightCondition:
    """What ``concurrent.futures.Future`` uses of ``threading.Condition``: ``with``,
    ``acquire``/``release``, ``wait(timeout)``, ``notify``/``notify_all``."""

    __slots__ = ("_lock", "_waiters")

    def __init__(self) -> None:
        self._lock: Any = threading.RLock()  # C RLock: _release_save, _acquire_restore
        self._waiters: list[Any] | None = None  # made on the first wait

    def __enter__(self) -> bool:
        return bool(self._lock.acquire())

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._lock.release()

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        """Take the lock (re-entrant)."""
        return bool(self._lock.acquire(blocking, timeout))

    def release(self) -> None:
        """Release the lock once."""
        self._lock.release()

    def _is_owned(self) -> bool:
        return bool(self._lock._is_owned())

    def wait(self, timeout: float | None = None) -> bool:
        """Release the lock (however often it is held), sleep until notified or until
        ``timeout`` seconds passed, take it back; True when notified."""
        if not self._is_owned():
            raise RuntimeError("cannot wait on un-acquired lock")
        waiter = threading.Lock()
        waiter.acquire()
        if self._waiters is None:
            self._waiters = []
        self._waiters.append(waiter)
        saved = self._lock._release_save()
        notified = False
        try:
            if timeout is None:
                notified = waiter.acquire()
            elif timeout > 0:
                notified = waiter.acquire(True, timeout)
            else:
                notified = waiter.acquire(False)
            return notified
        finally:
            self._lock._acquire_restore(saved)
            if not notified and self._waiters is not None:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)

    def notify(self, n: int = 1) -> None:
        """Wake up to ``n`` threads waiting on this condition (the lock must be held)."""
        if not self._is_owned():
            raise RuntimeError("cannot notify on un-acquired lock")
        waiters = self._waiters or []
        for waiter in waiters[:n]:
            waiter.release()
        del waiters[:n]

    def notify_all(self) -> None:
        """Wake every thread waiting on this condition (the lock must be held)."""
        self.notify(len(self._waiters or ()))
