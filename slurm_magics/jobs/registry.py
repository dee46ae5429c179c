"""The registry: every run, array task and dependency edge, in SQLite (WAL).

It lives on the machine of the notebook (``~/.slurm_magics/registry.db``, or
``$SLURM_MAGICS_REGISTRY``), so that jobs outlive the kernel: a new process finds them and
awaits them again. Several kernels and the Jupyter server may read and write at once.
State changes are batched: at most one write transaction per half second.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from slurm_magics.core.parsing import elements_submitted
from slurm_magics.jobs.registry_schema import (
    RUN_COLUMNS,
    SCHEMA,
    STORED_COLUMNS,
    JobRecord,
    RunRecord,
)

__all__ = [
    "JobRecord",
    "Registry",
    "RunRecord",
    "default_registry",
    "unsubmitted_items",
]


class Registry:
    """A small SQLite store shared by every process of this user on this machine."""

    def __init__(self, path: str) -> None:
        self.path = path
        os.makedirs(os.path.dirname(path) or ".", mode=0o700, exist_ok=True)
        self._db = sqlite3.connect(path, timeout=30, check_same_thread=False, isolation_level=None)
        self._lock = threading.RLock()
        self._pending: list[tuple[Any, ...]] = []
        self._timer: threading.Timer | None = None
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(SCHEMA)
        os.chmod(path, 0o600)

    def _write(self, statements: Iterable[tuple[str, Sequence[Any] | list[Sequence[Any]]]]) -> None:
        with self._transaction():
            for sql, rows in statements:
                if isinstance(rows, list):
                    self._db.executemany(sql, rows)
                else:
                    self._db.execute(sql, rows)

    def record_run(self, run: RunRecord, upstream: Sequence[tuple[str, int]]) -> None:
        """Store a submitted run, its items (PENDING) and its dependency edges."""
        self._write(
            [
                (
                    f"INSERT OR REPLACE INTO runs ({STORED_COLUMNS}) "  # noqa: S608 (fixed names)
                    "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    (
                        run.run_id,
                        run.cluster,
                        run.run_dir,
                        run.sentinel_dir,
                        run.name,
                        run.n_items,
                        run.chunk_size,
                        int(run.is_array),
                        json.dumps(run.slices),
                        run.dependency,
                        run.notebook,
                        run.session,
                        run.submitted_at,
                    ),
                ),
                ("INSERT OR REPLACE INTO owners VALUES (?,?)", (run.run_id, run.owner)),
                (
                    "INSERT OR REPLACE INTO slices VALUES (?,?,?)",
                    [(slurm_id, run.cluster, run.run_id) for slurm_id, _, _ in run.slices],
                ),
                (
                    "INSERT OR IGNORE INTO jobs VALUES (?,?,'PENDING',NULL,NULL,NULL)",
                    [(run.run_id, item) for item in range(run.n_items)],
                ),
                (
                    "INSERT INTO edges VALUES (?,?,?)",
                    [(run.run_id, up_run, up_item) for up_run, up_item in upstream],
                ),
            ]
        )

    def record_slices(
        self, run_id: str, cluster: str, slices: Sequence[tuple[str, int, int]], dependency: str
    ) -> list[JobRecord]:
        """Store the slices of a run submitted in waves: (SLURM id, first element, elements)
        each, all of them so far, and the dependency of its latest sbatch.

        Returns:
            The items from the latest slice's first on that the registry holds as ended, read
            in the same transaction: with those the submitting process has not ended itself,
            another one (the Lab panel, another kernel) has cancelled them meanwhile
            (``end_unsubmitted``, ``cancel_items``), and they are to be scancelled here.
        """
        first = max((part[1] for part in slices), default=0)
        with self._transaction():
            row = self._db.execute(
                "SELECT chunk_size FROM runs WHERE run_id = ?", (run_id,)
            ).fetchone()
            self._db.execute(
                "UPDATE runs SET slices = ?, dependency = ? WHERE run_id = ?",
                (json.dumps(list(slices)), dependency, run_id),
            )
            self._db.executemany(
                "INSERT OR REPLACE INTO slices VALUES (?,?,?)",
                [(slurm_id, cluster, run_id) for slurm_id, _, _ in slices],
            )
            return self._ended_from(run_id, first * (row[0] if row else 1))

    def ended_items(self, run_id: str, first: int) -> list[JobRecord]:
        """The items of a run from ``first`` on that the registry holds as ended (written;
        this process's own ends may still be queued)."""
        with self._lock:
            return self._ended_from(run_id, first)

    def _ended_from(self, run_id: str, first: int) -> list[JobRecord]:
        rows = self._db.execute(
            "SELECT item, state, started_at, ended_at, error FROM jobs WHERE run_id = ? "
            "AND item >= ? AND state NOT IN ('PENDING', 'RUNNING') ORDER BY item",
            (run_id, first),
        ).fetchall()
        return [JobRecord(*row) for row in rows]

    def note_state(
        self,
        run_id: str,
        item: int,
        state: str,
        started_at: float | None,
        ended_at: float | None,
        error: str | None,
    ) -> None:
        """Queue a job's new state; written with others in one transaction shortly."""
        with self._lock:
            self._pending.append((state, started_at, ended_at, error, run_id, item))
            if self._timer is None:
                self._timer = threading.Timer(0.5, self.flush)
                self._timer.daemon = True
                self._timer.start()

    def flush(self) -> None:
        """Write the queued state changes now."""
        with self._lock:
            rows, self._pending, self._timer = self._pending, [], None
            if rows:
                self._write(
                    [
                        (
                            "UPDATE jobs SET state=?, started_at=?, ended_at=?, error=? "
                            "WHERE run_id=? AND item=?",
                            rows,
                        )
                    ]
                )

    def end_unsubmitted(
        self, run_id: str, state: str, error: Callable[[range], str | None], at: float
    ) -> tuple[int, list[tuple[str, int, int]]]:
        """End as ``state`` the items past a run's last slice still PENDING (their owner has
        ended: FAILED; they are cancelled: CANCELLED), with ``error(items)``; the slices are
        read in the same transaction, so a wave recorded later sees these ends
        (``record_slices``).

        Returns:
            (how many items were ended, the run's slices as read: SLURM id, first element,
            elements each); (0, []) for a run the registry does not hold.
        """
        self.flush()
        with self._lock:
            items, slices = self._unsubmitted_pending(run_id)
            if not items:  # most calls: write nothing
                return 0, slices
            with self._transaction():
                (items, slices), done = self._unsubmitted_pending(run_id), 0
                if items:
                    why = error(items)
                    done = self._db.execute(
                        "UPDATE jobs SET state=?, ended_at=?, error=? WHERE run_id=? "
                        "AND item>=? AND state='PENDING'",
                        (state, at, why[:4000] if why else None, run_id, items.start),
                    ).rowcount
        return done, slices

    def cancel_items(
        self, run_id: str, items: Sequence[int], at: float
    ) -> list[tuple[str, int, int]]:
        """End CANCELLED those of ``items`` still PENDING (a cancel of single tasks that wait
        for room, as the canceller sees them); the slices are read in the same transaction,
        for the canceller to scancel those that went in meanwhile. Returns the slices."""
        self.flush()
        with self._transaction():
            self._db.executemany(
                "UPDATE jobs SET state='CANCELLED', ended_at=?, error=NULL WHERE run_id=? "
                "AND item=? AND state='PENDING'",
                [(at, run_id, item) for item in items],
            )
            return self._unsubmitted_pending(run_id)[1]

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        """One write transaction (BEGIN IMMEDIATE), rolled back on any error."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _unsubmitted_pending(self, run_id: str) -> tuple[range, list[tuple[str, int, int]]]:
        row = self._db.execute(
            "SELECT slices, n_items, chunk_size FROM runs WHERE run_id = ?", (run_id,)
        ).fetchone()
        if row is None:
            return range(0), []
        slices = [(str(part[0]), int(part[1]), int(part[2])) for part in json.loads(row[0])]
        items = unsubmitted_items(slices, row[1], row[2])
        pending = self._db.execute(
            "SELECT 1 FROM jobs WHERE run_id=? AND item>=? AND state='PENDING' LIMIT 1",
            (run_id, items.start),
        ).fetchone()
        return (items if items and pending else range(0)), slices

    # -- reading -----------------------------------------------------------------------
    def runs(
        self,
        *,
        cluster: str | None = None,
        name: str | None = None,
        session: str | None = None,
        notebook: str | None = None,
        include_cleaned: bool = False,
    ) -> list[RunRecord]:
        """Runs, newest first, filtered by cluster, name, session or notebook."""
        self.flush()
        clauses, values = [], []
        for column, value in (
            ("cluster", cluster),
            ("name", name),
            ("session", session),
            ("notebook", notebook),
        ):
            if value is not None:
                clauses.append(f"{column} = ?")
                values.append(value)
        if not include_cleaned:
            clauses.append("cleaned = 0")
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        with self._lock:
            query = f"SELECT {RUN_COLUMNS} FROM runs {where} ORDER BY submitted_at DESC"  # noqa: S608
            rows = self._db.execute(query, values).fetchall()  # fixed column names, values bound
        return [_run_record(row) for row in rows]

    def run_of(self, cluster: str, slurm_id: str) -> RunRecord | None:
        """The run that a SLURM id ("123") belongs to on ``cluster``."""
        with self._lock:
            row = self._db.execute(
                "SELECT run_id FROM slices WHERE cluster = ? AND slurm_id = ?", (cluster, slurm_id)
            ).fetchone()
        return None if row is None else self.run(row[0])

    def run(self, run_id: str) -> RunRecord | None:
        """One run by its id."""
        self.flush()
        with self._lock:
            query = f"SELECT {RUN_COLUMNS} FROM runs WHERE run_id = ?"  # noqa: S608
            row = self._db.execute(query, (run_id,)).fetchone()  # fixed columns, value bound
        return None if row is None else _run_record(row)

    def jobs_of(self, run_id: str) -> list[JobRecord]:
        """The items of a run, in order."""
        self.flush()
        with self._lock:
            rows = self._db.execute(
                "SELECT item, state, started_at, ended_at, error FROM jobs WHERE run_id = ? "
                "ORDER BY item",
                (run_id,),
            ).fetchall()
        return [JobRecord(*row) for row in rows]

    def edges_of(self, run_id: str) -> list[tuple[str, int]]:
        """(upstream run id, upstream item or -1) pairs of a run."""
        with self._lock:
            rows = self._db.execute(
                "SELECT upstream_run_id, upstream_item FROM edges WHERE run_id = ?", (run_id,)
            ).fetchall()
        return [(row[0], row[1]) for row in rows]

    def record_attempt(self, run_id: str, element: int, attempt: int, reason: str) -> None:
        """Record that an element runs again (``attempt`` 1 is the first retry), and why."""
        self._write(
            [
                (
                    "INSERT INTO attempts VALUES (?,?,?,?,?)",
                    (run_id, element, attempt, reason[:4000], time.time()),
                )
            ]
        )

    def attempts_of(self, run_id: str) -> list[tuple[int, int, str]]:
        """(element, attempt, reason) of every retry of a run."""
        with self._lock:
            rows = self._db.execute(
                "SELECT element, attempt, reason FROM attempts WHERE run_id = ? ORDER BY at",
                (run_id,),
            ).fetchall()
        return [(row[0], row[1], row[2]) for row in rows]

    def mark_cleaned(self, run_ids: Sequence[str]) -> None:
        """Record that these runs' folders were removed."""
        if run_ids:
            self._write([("UPDATE runs SET cleaned = 1 WHERE run_id = ?", [(r,) for r in run_ids])])

    def close(self) -> None:
        self.flush()
        with self._lock:
            self._db.close()


def unsubmitted_items(slices: Sequence[Sequence[Any]], n_items: int, chunk_size: int) -> range:
    """The items of a run past its last submitted slice ((SLURM id, first element,
    elements) each; they go in in order): those that wait on the client for room."""
    end = elements_submitted((str(i), int(first), int(n)) for i, first, n in slices)
    return range(min(end * chunk_size, n_items), n_items)


def _run_record(row: Sequence[Any]) -> RunRecord:
    values = list(row)
    values[7] = bool(values[7])
    values[8] = [tuple(part) for part in json.loads(values[8])]
    return RunRecord(*values)


_default: Registry | None = None
_default_lock = threading.Lock()


def default_registry() -> Registry:
    """The registry of this user on this machine, opened on first use."""
    global _default  # noqa: PLW0603  (one registry per process)
    with _default_lock:
        if _default is None:
            path = os.environ.get("SLURM_MAGICS_REGISTRY") or os.path.expanduser(
                "~/.slurm_magics/registry.db"
            )
            _default = Registry(path)
            atexit.register(_default.flush)
        return _default
