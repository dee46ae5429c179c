"""The jobs of this kernel session, in memory (the persistent registry can take its place).

Jobs enter by ``%%slurm``, by being displayed, or by being found in the notebook's
namespace after a cell ran. Anything with the ``JobRegistry`` methods can stand in.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable
from typing import Protocol

from slurm_magics.jobs.array import JobArray, jobs_of, slurm_ids_of
from slurm_magics.jobs.job import Job

__all__ = ["JobRegistry", "SessionEntry", "SessionJobs", "session_jobs"]

Tracked = Job | JobArray


@dataclasses.dataclass(eq=False)
class SessionEntry:
    """One job or job array of the session, with the name the user knows it by."""

    item: Tracked
    label: str
    source: str  # "%%slurm", "namespace", "display"
    added_at: float = dataclasses.field(default_factory=time.time)

    @property
    def slurm_ids(self) -> list[str]:
        return slurm_ids_of(self.item)


class JobRegistry(Protocol):
    """What the magics and the jobs panel need from a registry of jobs."""

    def add(self, item: Tracked, *, label: str = "", source: str = "") -> SessionEntry: ...

    def entries(self) -> list[SessionEntry]: ...

    def find(self, key: str) -> SessionEntry | None: ...

    def find_task(self, slurm_id: str) -> Job | None: ...

    def subscribe(self, callback: Callable[[], None]) -> Callable[[], None]: ...


class SessionJobs:
    """The jobs of this kernel session, in the order they were first seen."""

    def __init__(self) -> None:
        self._entries: dict[int, SessionEntry] = {}
        self._runs: set[str] = set()  # run ids of arrays already tracked
        self._listeners: list[Callable[[], None]] = []
        self._lock = threading.Lock()

    def add(self, item: Tracked, *, label: str = "", source: str = "") -> SessionEntry:
        """Track ``item`` (idempotent); a task of an array already tracked is not added."""
        with self._lock:
            entry = self._entries.get(id(item))
            if entry is not None:
                if label and entry.source != "%%slurm":
                    entry.label = label
                return entry
            if isinstance(item, Job) and item.run.run_id in self._runs:
                return SessionEntry(item, label or item.name, source)  # part of an array
            entry = SessionEntry(item, label or item.name, source)
            self._entries[id(item)] = entry
            if isinstance(item, JobArray):
                self._runs.update(run.run_id for run in item.runs)
            listeners = list(self._listeners)
        for listener in listeners:
            listener()
        return entry

    def entries(self) -> list[SessionEntry]:
        with self._lock:
            return list(self._entries.values())

    def find(self, key: str) -> SessionEntry | None:
        """The latest entry labelled ``key``, or whose SLURM id is ``key``."""
        for entry in reversed(self.entries()):
            if key == entry.label or key in entry.slurm_ids:
                return entry
        return None

    def find_task(self, slurm_id: str) -> Job | None:
        """The array task or job of this session with SLURM id ``slurm_id`` ("123_4")."""
        for entry in reversed(self.entries()):
            for job in jobs_of(entry.item):
                if job.job_id == slurm_id:
                    return job
        return None

    def subscribe(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call ``callback`` after each new entry; returns the function that unsubscribes."""
        with self._lock:
            self._listeners.append(callback)

        def unsubscribe() -> None:
            with self._lock:
                if callback in self._listeners:
                    self._listeners.remove(callback)

        return unsubscribe

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._runs.clear()


session_jobs = SessionJobs()
