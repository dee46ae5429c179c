"""Re-runs that do not resubmit: calls keyed by code, arguments and resources.

A cached call (``@sm.task(cache=True)``, ``%%slurm --cache``) is hashed into a key: the
function's code (its source, or its pickled form when it has none, plus the values of the
plain globals it reads), its pickled arguments (jobs among them by SLURM id), its
effective resources and the cluster. The key maps, in a table of the registry's SQLite
database, to the run that computed it. A call whose key is there returns that run's job:
its result when it succeeded (no sbatch), the job itself while it is in flight (in this
process or another one: one job in SLURM); a failed or cancelled one is forgotten and the
call submits again. Arguments that pickle to more than ``MAX_HASHED_BYTES`` are not hashed:
the call runs uncached and a ``CacheWarning`` says so.
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import pickle
import sqlite3
import threading
import time
import types
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import cloudpickle

from slurm_magics.core.states import JobState
from slurm_magics.jobs.array import JobArray
from slurm_magics.jobs.cluster import Cluster
from slurm_magics.jobs.job import Call, Job
from slurm_magics.jobs.reattach import live_entry
from slurm_magics.jobs.registry import Registry

__all__ = [
    "CACHE_IDENTITY",
    "MAX_HASHED_BYTES",
    "CacheHit",
    "CacheStore",
    "CacheWarning",
    "cache_key",
    "cached",
    "store_of",
]

MAX_HASHED_BYTES = 64 * 2**20  # pickled arguments beyond this are not hashed (too slow)
#: a function attribute that, when set, stands for the function's code in its cache key
#: (a %%slurm cell: its text and values, not the name it is bound to)
CACHE_IDENTITY = "__slurm_magics_cache_identity__"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS cache (
    cluster TEXT NOT NULL,
    key TEXT NOT NULL,
    run_id TEXT NOT NULL,
    label TEXT NOT NULL,
    created_at REAL NOT NULL,
    PRIMARY KEY (cluster, key)
);
"""


class CacheWarning(UserWarning):
    """A call asked to be cached runs without the cache (the message says why)."""


class _TooBig(Exception):
    pass


class _HashingWriter:
    """A file for the pickler that hashes what it gets and gives up past a size."""

    def __init__(self, limit: int) -> None:
        self.digest = hashlib.sha256()
        self.size = 0
        self.limit = limit

    def write(self, data: bytes) -> int:
        self.size += len(data)
        if self.size > self.limit:
            raise _TooBig
        self.digest.update(data)
        return len(data)


class _KeyPickler(cloudpickle.Pickler):  # type: ignore[misc]
    """Pickles arguments for hashing: a job or array stands for its SLURM id."""

    def persistent_id(self, obj: Any) -> Any:
        if isinstance(obj, Job | JobArray):
            return ("job", obj.job_id, getattr(obj, "item", -1))
        return None


def _code_text(function: Callable[..., Any], depth: int = 0) -> bytes:
    """What identifies a function's code: its source and the plain values of the globals
    it reads (functions among them by their own source), or its pickled form without
    source (a %%slurm cell carries its text and values inside)."""
    target = inspect.unwrap(function)
    identity = getattr(target, CACHE_IDENTITY, None)
    if identity is not None:  # what the function's maker says identifies it
        pickled_identity: bytes = cloudpickle.dumps(identity, protocol=pickle.HIGHEST_PROTOCOL)
        return pickled_identity
    try:
        source = inspect.getsource(target).encode()
    except (OSError, TypeError):
        pickled: bytes = cloudpickle.dumps(target, protocol=pickle.HIGHEST_PROTOCOL)
        return pickled
    parts = [f"{getattr(target, '__module__', '')}.{target.__qualname__}".encode(), source]
    code = getattr(target, "__code__", None)
    scope = getattr(target, "__globals__", {})
    for name in sorted(set(code.co_names) if code is not None else ()):
        value = scope.get(name)
        if value is None or isinstance(value, types.ModuleType | type):
            continue
        if callable(value):
            if depth < 2 and isinstance(value, types.FunctionType):
                parts.append(name.encode() + _code_text(value, depth + 1))
            continue
        try:
            parts.append(name.encode() + cloudpickle.dumps(value))
        except Exception:  # an unpicklable global: its repr is the best we have
            parts.append(name.encode() + repr(value).encode())
    return b"\0".join(parts)


def cache_key(
    function: Callable[..., Any],
    calls: Sequence[Call],
    resources: str,
    cluster_key: str,
    *,
    limit: int = MAX_HASHED_BYTES,
) -> str | None:
    """The key of a call (or a map's calls): 24 hex digits, or None when the arguments
    pickle to more than ``limit`` bytes (too big to hash cheaply)."""
    writer = _HashingWriter(limit)
    writer.digest.update(cluster_key.encode() + b"\0" + resources.encode() + b"\0")
    writer.digest.update(hashlib.sha256(_code_text(function)).digest())
    try:
        _KeyPickler(writer, protocol=pickle.HIGHEST_PROTOCOL).dump(list(calls))
    except _TooBig:
        return None
    return writer.digest.hexdigest()[:24]


class CacheStore:
    """The cache table in the registry's database (shared by this user's processes)."""

    def __init__(self, path: str) -> None:
        self._db = sqlite3.connect(path, timeout=30, check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        with self._lock:
            self._db.executescript(_SCHEMA)

    def get(self, cluster: str, key: str) -> str | None:
        """The run id stored for ``key``, or None."""
        with self._lock:
            row = self._db.execute(
                "SELECT run_id FROM cache WHERE cluster = ? AND key = ?", (cluster, key)
            ).fetchone()
        return None if row is None else str(row[0])

    def put(self, cluster: str, key: str, run_id: str, label: str) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO cache VALUES (?,?,?,?,?)",
                (cluster, key, run_id, label, time.time()),
            )

    def clear(self, cluster: str, *, label: str | None = None, key: str | None = None) -> int:
        """Forget entries of ``cluster`` (only those of function ``label``, or one ``key``);
        returns how many were forgotten."""
        sql, args = "DELETE FROM cache WHERE cluster = ?", [cluster]
        if label is not None:
            sql, args = sql + " AND label = ?", [*args, label]
        if key is not None:
            sql, args = sql + " AND key = ?", [*args, key]
        with self._lock:
            return self._db.execute(sql, args).rowcount


_stores: dict[str, CacheStore] = {}
_stores_lock = threading.Lock()


def store_of(registry: Registry) -> CacheStore:
    """The cache table next to ``registry`` (one connection per database per process)."""
    with _stores_lock:
        if registry.path not in _stores:
            _stores[registry.path] = CacheStore(registry.path)
        return _stores[registry.path]


def _succeeded_or_running(entry: Job | JobArray) -> bool:
    jobs = entry.jobs if isinstance(entry, JobArray) else [entry]
    for job in jobs:
        if job.done() and (job.cancelled() or job.exception() is not None):
            return False
        if job.state.finished and job.state is not JobState.COMPLETED:
            return False
    return True


def _found(cluster: Cluster, run_id: str, is_array: bool) -> Job | JobArray | None:
    """The live future of a cached run, from this process or rebuilt from the registry."""
    run = cluster.live_runs.get(run_id)
    if run is not None and not is_array:
        return run.jobs[0]
    if run is not None and run_id in cluster.live_arrays:
        return cluster.live_arrays[run_id]
    record = cluster.registry.run(run_id)
    if record is None or bool(record.is_array) != is_array:
        return None
    return live_entry(cluster, record)


@dataclasses.dataclass(frozen=True)
class CacheHit:
    """How a cached call was answered (``job.cache`` / ``arr.cache``)."""

    key: str
    reused: bool  # True: an earlier run's job, nothing submitted


def cached(
    cluster: Cluster,
    function: Callable[..., Any],
    calls: Sequence[Call],
    resources: str,
    submit: Callable[[], Job | JobArray],
    *,
    is_array: bool,
) -> Job | JobArray:
    """Answer a cached call: an earlier run with the same key, or ``submit()`` recorded
    under the key. The answer's ``cache`` attribute holds the key (``CacheHit``)."""
    label = str(getattr(function, "__qualname__", "call"))
    key = cache_key(function, calls, resources, cluster.key, limit=MAX_HASHED_BYTES)
    if key is None:
        warnings.warn(
            f"{label}: not cached, its arguments pickle to more than "
            f"{MAX_HASHED_BYTES // 2**20} MB, too big to hash cheaply; pass a smaller "
            "argument (a path, an sm.FileValue) to cache it.",
            CacheWarning,
            stacklevel=3,
        )
        return submit()
    store = store_of(cluster.registry)
    run_id = store.get(cluster.key, key)
    if run_id is not None:
        entry = _found(cluster, run_id, is_array)
        if entry is not None and _succeeded_or_running(entry):
            entry.cache = CacheHit(key, reused=True)
            return entry
        store.clear(cluster.key, key=key)  # failed, cancelled or cleaned: run again
    entry = submit()
    runs = [entry.run] if isinstance(entry, Job) else entry.runs
    if len(runs) == 1:
        store.put(cluster.key, key, runs[0].run_id, label)
        entry.cache = CacheHit(key, reused=False)
    return entry
