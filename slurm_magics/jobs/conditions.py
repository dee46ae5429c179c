"""A condition variable of a few dozen bytes for futures, where ``threading.Condition`` costs
about 1.1 KB: a map of 100,000 tasks keeps one future, so one condition, per task.

Every ``SharedLockCondition`` guards its state with ONE process-wide re-entrant lock (a
future's state changes are a few assignments long) and keeps its own waiters, so
``notify_all`` wakes only the threads waiting on that future (``Future.result`` takes any
wake-up for the end of the future: it must never wake for another one).
"""

from __future__ import annotations

import contextlib
import threading
from types import TracebackType
from typing import Any

__all__ = ["SharedLockCondition"]

_LOCK: Any = threading.RLock()  # the C RLock: _release_save/_acquire_restore/_is_owned


class SharedLockCondition:
    """What ``concurrent.futures.Future`` uses of ``threading.Condition``: ``with``,
    ``acquire``/``release``, ``wait(timeout)``, ``notify``/``notify_all``."""

    __slots__ = ("_waiters",)

    def __init__(self) -> None:
        self._waiters: list[Any] | None = None  # made on the first wait

    def __enter__(self) -> bool:
        return bool(_LOCK.acquire())

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        _LOCK.release()

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        """Take the shared lock (re-entrant)."""
        return bool(_LOCK.acquire(blocking, timeout))

    def release(self) -> None:
        """Release the shared lock once."""
        _LOCK.release()

    def _is_owned(self) -> bool:
        return bool(_LOCK._is_owned())

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
        saved = _LOCK._release_save()
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
            _LOCK._acquire_restore(saved)
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
