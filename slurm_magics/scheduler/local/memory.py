"""Memory limits for the local backend: a process tree's resident memory, read from /proc.

SLURM with ``JobAcctGatherParams=OverMemoryKill`` samples the resident memory (RSS) of each
job's processes and kills the job once their sum exceeds ``--mem``. ``MemoryWatcher`` does
the same for the local backend: one sampler for all running tasks, about once a second,
started only while some task has a memory limit. Linux only (it reads /proc); elsewhere it
logs once that memory is not enforced.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import os
import signal
import sys
from collections.abc import Callable

__all__ = [
    "MemoryWatcher",
    "children_from_files",
    "children_reader",
    "children_table",
    "kill_tree",
    "process_tree",
    "rss_bytes",
    "supported",
    "tree_rss",
]

log = logging.getLogger(__name__)

ChildrenOf = Callable[[int], list[int]]


@functools.cache
def supported() -> bool:
    """True where process trees can be read from /proc (Linux)."""
    return sys.platform.startswith("linux") and os.path.isdir(f"/proc/{os.getpid()}")


@functools.cache
def _children_files() -> bool:
    """Whether the kernel has /proc/<pid>/task/<tid>/children (CONFIG_PROC_CHILDREN)."""
    return os.path.exists(f"/proc/{os.getpid()}/task/{os.getpid()}/children")


def rss_bytes(pid: int) -> int:
    """The resident memory of one process (VmRSS); 0 once it is gone or a zombie."""
    try:
        with open(f"/proc/{pid}/status", "rb") as stream:
            for line in stream:
                if line.startswith(b"VmRSS:"):
                    return int(line.split()[1]) * 1024  # "VmRSS:   1234 kB"
    except (OSError, ValueError, IndexError):
        pass
    return 0


def children_from_files(pid: int) -> list[int]:
    """The children of ``pid`` from each of its threads' ``children`` file."""
    found: list[int] = []
    try:
        threads = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for tid in threads:
        with (
            contextlib.suppress(OSError, ValueError),
            open(f"/proc/{pid}/task/{tid}/children", "rb") as stream,
        ):
            found += [int(child) for child in stream.read().split()]
    return found


def children_table() -> dict[int, list[int]]:
    """Every process's children, from one scan of /proc/*/stat (the PPid field)."""
    table: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as stream:
                data = stream.read()
            # "pid (comm) state ppid ...": comm may hold spaces and parentheses.
            parent = int(data[data.rindex(b")") + 2 :].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        table.setdefault(parent, []).append(int(entry.name))
    return table


def children_reader() -> ChildrenOf:
    """How to find children now: the kernel's children files, else one scan of /proc."""
    if _children_files():
        return children_from_files
    table = children_table()
    return lambda pid: table.get(pid, [])


def process_tree(pid: int, children: ChildrenOf | None = None) -> list[int]:
    """``pid`` and all its descendants (those still alive)."""
    children = children or children_reader()
    tree, todo, seen = [], [pid], {pid}
    while todo:
        current = todo.pop()
        tree.append(current)
        for child in children(current):
            if child not in seen:
                seen.add(child)
                todo.append(child)
    return tree


def tree_rss(pid: int, children: ChildrenOf | None = None) -> int:
    """The summed resident memory of ``pid`` and its descendants, in bytes."""
    return sum(rss_bytes(p) for p in process_tree(pid, children))


def kill_tree(pid: int) -> None:
    """SIGKILL ``pid``'s process group and every descendant (also those that left it)."""
    tree = process_tree(pid)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    for member in tree:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(member, signal.SIGKILL)


@dataclasses.dataclass
class _Watched:
    limit: int
    on_exceeded: Callable[[int], None]


class MemoryWatcher:
    """Samples the process trees of the watched tasks and reports those over their limit.

    ``on_exceeded(used_bytes)`` is called once, from the event loop, for a tree whose RSS
    went over its limit; the tree is no longer watched then (the caller kills it).
    """

    def __init__(self, interval: float = 1.0) -> None:
        self.interval = interval
        self._watched: dict[int, _Watched] = {}
        self._sampler: asyncio.Task[None] | None = None
        self._warned = False

    def watch(self, pid: int, limit_bytes: int, on_exceeded: Callable[[int], None]) -> None:
        """Watch ``pid``'s tree from now on (call from the event loop)."""
        if not supported():
            if not self._warned:
                self._warned = True
                log.warning(
                    "the local backend cannot enforce memory limits on %s (no /proc): "
                    "tasks may use more memory than they asked for",
                    sys.platform,
                )
            return
        self._watched[pid] = _Watched(limit_bytes, on_exceeded)
        if self._sampler is None or self._sampler.done():
            self._sampler = asyncio.get_running_loop().create_task(self._run())

    def unwatch(self, pid: int) -> None:
        self._watched.pop(pid, None)

    def sample(self) -> None:
        """Read every watched tree once; report (and stop watching) those over their limit."""
        if not self._watched:
            return
        children = children_reader()
        for pid, watched in list(self._watched.items()):
            used = tree_rss(pid, children)
            if used > watched.limit and self._watched.pop(pid, None) is not None:
                watched.on_exceeded(used)

    async def _run(self) -> None:
        while self._watched:
            await asyncio.sleep(self.interval)
            try:
                self.sample()
            except Exception:  # never let one bad read end the sampler
                log.exception("sampling memory of the local backend's tasks failed")
