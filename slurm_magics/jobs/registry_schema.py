"""The registry's tables (SQLite) and the records read from them."""

from __future__ import annotations

import dataclasses

__all__ = ["RUN_COLUMNS", "SCHEMA", "STORED_COLUMNS", "JobRecord", "RunRecord"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    cluster TEXT NOT NULL,
    run_dir TEXT NOT NULL,
    sentinel_dir TEXT NOT NULL,
    name TEXT NOT NULL,
    n_items INTEGER NOT NULL,
    chunk_size INTEGER NOT NULL,
    is_array INTEGER NOT NULL,
    slices TEXT NOT NULL,
    dependency TEXT NOT NULL,
    notebook TEXT NOT NULL,
    session TEXT NOT NULL,
    submitted_at REAL NOT NULL,
    cleaned INTEGER NOT NULL DEFAULT 0
);
-- Beside runs, not a column of it: older versions insert into runs by position.
CREATE TABLE IF NOT EXISTS owners (
    run_id TEXT PRIMARY KEY,
    owner TEXT NOT NULL  -- "host pid start" of the process that submits the run's waves
);
CREATE TABLE IF NOT EXISTS slices (
    slurm_id TEXT NOT NULL,
    cluster TEXT NOT NULL,
    run_id TEXT NOT NULL,
    PRIMARY KEY (cluster, slurm_id)
);
CREATE TABLE IF NOT EXISTS jobs (
    run_id TEXT NOT NULL,
    item INTEGER NOT NULL,
    state TEXT NOT NULL,
    started_at REAL,
    ended_at REAL,
    error TEXT,
    PRIMARY KEY (run_id, item)
);
CREATE TABLE IF NOT EXISTS edges (
    run_id TEXT NOT NULL,
    upstream_run_id TEXT NOT NULL,
    upstream_item INTEGER NOT NULL  -- -1: the whole upstream run
);
CREATE TABLE IF NOT EXISTS attempts (
    run_id TEXT NOT NULL,
    element INTEGER NOT NULL,
    attempt INTEGER NOT NULL,  -- 1: the first retry
    reason TEXT NOT NULL,
    at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS runs_by_cluster ON runs (cluster, submitted_at);
CREATE INDEX IF NOT EXISTS edges_by_run ON edges (run_id);
"""


STORED_COLUMNS = (
    "run_id, cluster, run_dir, sentinel_dir, name, n_items, chunk_size, is_array, slices, "
    "dependency, notebook, session, submitted_at"
)
_OWNER_OF = "COALESCE((SELECT owner FROM owners WHERE owners.run_id = runs.run_id), '')"
RUN_COLUMNS = STORED_COLUMNS + ", " + _OWNER_OF  # a RunRecord's fields, in order, as read


@dataclasses.dataclass(frozen=True)
class RunRecord:
    """One run as the registry knows it."""

    run_id: str
    cluster: str
    run_dir: str
    sentinel_dir: str
    name: str
    n_items: int
    chunk_size: int
    is_array: bool
    slices: list[tuple[str, int, int]]  # (slurm id, first element, n elements)
    dependency: str
    notebook: str
    session: str
    submitted_at: float
    owner: str = ""  # "host pid start-time" of the process that submits its waves


@dataclasses.dataclass(frozen=True)
class JobRecord:
    """The last known state of one item of a run."""

    item: int
    state: str
    started_at: float | None
    ended_at: float | None
    error: str | None
