"""What the local backend's tasks used, measured as SLURM's accounting does it.

A task's process is reaped with ``wait4``, which returns its CPU time (user + system,
its reaped descendants included) and its peak resident memory: the local stand-ins for
sacct's TotalCPU and MaxRSS. One waiting thread per running task (never the shared
default executor, whose few threads the file I/O needs).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from typing import IO

__all__ = ["MeasuredProcess"]


class MeasuredProcess:
    """A child process (``subprocess.Popen``) whose end and usage an event loop awaits.

    Offers what the local scheduler used from ``asyncio.subprocess.Process``: ``pid``,
    ``returncode`` and ``await wait()``; plus ``cpu_time`` (seconds) and ``max_rss``
    (bytes), known once it ended.
    """

    def __init__(
        self,
        argv: Sequence[str],
        *,
        stdout: IO[bytes],
        stderr: IO[bytes],
        env: Mapping[str, str],
    ) -> None:
        self._popen = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            env=dict(env),
            start_new_session=True,
        )
        self.pid = self._popen.pid
        self.returncode: int | None = None
        self.cpu_time = 0.0
        self.max_rss: int | None = None
        loop = asyncio.get_running_loop()
        self._ended: asyncio.Future[int] = loop.create_future()
        threading.Thread(
            target=self._reap, args=(loop,), name=f"slurm_magics-wait-{self.pid}", daemon=True
        ).start()

    def _reap(self, loop: asyncio.AbstractEventLoop) -> None:
        _, status, usage = os.wait4(self.pid, 0)
        code = os.waitstatus_to_exitcode(status)
        self._popen.returncode = code  # reaped here: Popen must not wait for it again
        self.cpu_time = usage.ru_utime + usage.ru_stime
        # ru_maxrss is in kilobytes on Linux, in bytes on macOS
        self.max_rss = usage.ru_maxrss * (1 if sys.platform == "darwin" else 1024)
        if not loop.is_closed():
            loop.call_soon_threadsafe(self._set_ended, code)

    def _set_ended(self, code: int) -> None:
        self.returncode = code
        if not self._ended.done():
            self._ended.set_result(code)

    async def wait(self) -> int:
        """The exit code once the process ended (negative: killed by that signal);
        cancelling the wait leaves the process reaped in the background."""
        return await asyncio.shield(self._ended)
