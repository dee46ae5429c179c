"""What the SLURM sidebar is sent: registry rows and squeue rows as JSON-able dicts (pure).

A run's items are shown in their registry state once that state is final; before that,
in the state squeue gives their element (the registry only learns how a job ended), or
UNKNOWN when a run of this machine has left the queue and no process recorded its end (the
service then asks sacct how it ended, and records that: see ``settle.py``).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from slurm_magics.core.parsing import QueueRow, element_slurm_id
from slurm_magics.core.states import JobState, normalise_state
from slurm_magics.jobs.owner import describe_owner
from slurm_magics.jobs.registry import JobRecord, RunRecord, unsubmitted_items

__all__ = [
    "STATE_ORDER",
    "UNKNOWN",
    "QueueSnapshot",
    "graph_view",
    "is_local",
    "item_states",
    "jobs_view",
    "log_view",
    "notebook_path",
    "queue_states",
    "queue_summary",
    "queue_view",
    "run_view",
    "slurm_id_of",
]

JSON = dict[str, Any]
QueueKey = tuple[str, int | None]  # (array job id or job id, array task id or None)

#: shown for an unfinished item that left the queue without a recorded end
UNKNOWN = "UNKNOWN"
STATE_ORDER: tuple[str, ...] = (*(state.value for state in JobState), UNKNOWN)
_FINISHED = frozenset(state.value for state in JobState if state.finished)
#: the description of this machine's SLURM in registry cluster keys ("local|name|root")
LOCAL_DESCRIPTION = "local"
#: a run younger than this may not be in a queue snapshot yet
_QUEUE_GRACE = 15.0
#: longest run-length encoding of an array's task states sent with the job list
MAX_STATE_RUNS = 200


@dataclasses.dataclass(frozen=True)
class QueueSnapshot:
    """One squeue call's rows, when it ran (wall clock), and what went wrong if it failed."""

    rows: tuple[QueueRow, ...]
    fetched_at: float
    error: str | None = None
    #: how many squeue calls the server has made so far (the load it puts on SLURM)
    calls: int = 0


def is_local(record: RunRecord) -> bool:
    """True for runs on this machine's SLURM (not over SSH, not the local backend)."""
    return record.cluster.split("|", 1)[0] == LOCAL_DESCRIPTION


def _cluster_label(record: RunRecord) -> str:
    description, _, rest = record.cluster.partition("|")
    name = rest.partition("|")[0]
    return f"{description} ({name})" if name else description


def _normalised(slurm_state: str) -> str | None:
    try:
        return normalise_state(slurm_state).value
    except ValueError:
        return None


def queue_states(rows: Iterable[QueueRow]) -> dict[QueueKey, str]:
    """The normalised state of every job and array task in squeue rows."""
    states: dict[QueueKey, str] = {}
    for row in rows:
        state = _normalised(row.state)
        if state is None:
            continue
        if row.task_ids is None:
            states[row.array_job_id, None] = state
        else:
            for task in row.task_ids:
                states[row.array_job_id, task] = state
    return states


def _queue_key(record: RunRecord, element: int) -> QueueKey | None:
    for slurm_id, first, n_elements in record.slices:
        if n_elements == 0 and element == first:
            return slurm_id, None
        if first <= element < first + n_elements:
            return slurm_id, element - first
    return None


def slurm_id_of(record: RunRecord, element: int) -> str | None:
    """SLURM's id of one element of a run: "123" or "123_4" (None: no such element)."""
    return element_slurm_id(record.slices, element)


def item_states(
    record: RunRecord,
    jobs: Sequence[JobRecord],
    queue: Mapping[QueueKey, str] | None,
    *,
    fetched_at: float | None = None,
) -> list[str]:
    """The state of each item of a run: final from the registry, else live from squeue."""
    known = {job.item: job.state for job in jobs}
    live = queue is not None and is_local(record)
    states: list[str] = []
    for item in range(record.n_items):
        state = known.get(item, JobState.PENDING.value)
        if state not in _FINISHED and live:
            assert queue is not None
            key = _queue_key(record, item // max(record.chunk_size, 1))
            if key is None:
                pass  # in no slice yet: waits on the client for room (waves), PENDING
            elif key in queue:
                state = queue[key]
            elif fetched_at is not None and fetched_at - record.submitted_at > _QUEUE_GRACE:
                state = UNKNOWN
        states.append(state)
    return states


def _counts(states: Iterable[str]) -> dict[str, int]:
    found: dict[str, int] = {}
    for state in states:
        found[state] = found.get(state, 0) + 1
    return {state: found[state] for state in STATE_ORDER if state in found}


def _run_lengths(states: Sequence[str]) -> list[list[Any]]:
    runs: list[list[Any]] = []
    for state in states:
        if runs and runs[-1][0] == state:
            runs[-1][1] += 1
        else:
            runs.append([state, 1])
    return runs


def notebook_path(notebook: str, root_dir: str) -> str | None:
    """The notebook's path relative to the server's root (what docmanager opens), if any."""
    if not notebook.endswith(".ipynb"):
        return None
    root = os.path.normpath(root_dir)
    path = os.path.normpath(os.path.join(root, notebook))
    if os.path.commonpath([root, path]) != root or path == root:
        return None
    return os.path.relpath(path, root).replace(os.sep, "/")


def run_view(record: RunRecord, states: Sequence[str], *, notebook_path: str | None) -> JSON:
    """One run (a call or a map) with its state counts."""
    view: JSON = {
        "run_id": record.run_id,
        "name": record.name,
        "job_id": record.slices[0][0] if record.slices else "",
        "slurm_ids": [part[0] for part in record.slices],
        "slices": [list(part) for part in record.slices],
        "is_array": record.is_array,
        "n_items": record.n_items,
        "chunk_size": record.chunk_size,
        "cluster": _cluster_label(record),
        "local": is_local(record),
        "notebook": record.notebook,
        "notebook_path": notebook_path,
        "submitted_at": record.submitted_at,
        "dependency": record.dependency,
        "counts": _counts(states),
        "waiting_on_client": _waiting_on_client(record, states),
    }
    if record.is_array:
        lengths = _run_lengths(states)
        view["task_states"] = lengths[:MAX_STATE_RUNS]
        view["task_states_truncated"] = len(lengths) > MAX_STATE_RUNS
    return view


def _waiting_on_client(record: RunRecord, states: Sequence[str]) -> JSON | None:
    """The items not submitted yet that wait for room in the submitting process (waves):
    ``{"tasks": n, "where": "pid 1234 on login1"}``, or None. Those of a process that has
    ended are FAILED by then (``jobs.owner.settle_orphans``), never waiting."""
    items = unsubmitted_items(record.slices, record.n_items, record.chunk_size)
    tasks = sum(states[item] == JobState.PENDING.value for item in items if item < len(states))
    return {"tasks": tasks, "where": describe_owner(record.owner)} if tasks else None


def jobs_view(
    runs: Sequence[JSON],
    *,
    total: int,
    offset: int,
    limit: int,
    queue: JSON,
    accounting: JSON | None = None,
) -> JSON:
    """A page of runs (newest first) grouped by the notebook that submitted them, with the
    queue's summary and the server's sacct calls (``accounting``: calls, asked_at, error)."""
    groups: dict[str, JSON] = {}
    for run in runs:
        group = groups.setdefault(
            run["notebook"],
            {"notebook": run["notebook"], "notebook_path": run["notebook_path"], "runs": []},
        )
        group["runs"].append(run)
    for group in groups.values():
        totals: dict[str, int] = {}
        for run in group["runs"]:
            for state, count in run["counts"].items():
                totals[state] = totals.get(state, 0) + count
        group["counts"] = {state: totals[state] for state in STATE_ORDER if state in totals}
    return {
        "total": total,
        "offset": offset,
        "limit": limit,
        "notebooks": list(groups.values()),
        "queue": queue,
        "accounting": accounting or {},
    }


def _task_count(row: QueueRow) -> int:
    return 1 if row.task_ids is None else len(row.task_ids)


def queue_summary(snapshot: QueueSnapshot) -> JSON:
    """The user's whole queue in numbers (for the status bar), and when it was read."""
    totals: dict[str, int] = {}
    for row in snapshot.rows:
        state = _normalised(row.state) or row.state
        totals[state] = totals.get(state, 0) + _task_count(row)
    return {
        "fetched_at": snapshot.fetched_at,
        "error": snapshot.error,
        "calls": snapshot.calls,
        "running": totals.get(JobState.RUNNING.value, 0),
        "pending": totals.get(JobState.PENDING.value, 0),
        "counts": {state: totals[state] for state in sorted(totals)},
    }


def queue_view(snapshot: QueueSnapshot, owners: Mapping[str, RunRecord]) -> JSON:
    """The user's squeue, one entry per job or array (tasks grouped), with the run it
    belongs to when the registry knows it (``owners`` maps SLURM ids to runs)."""
    entries: dict[str, JSON] = {}
    for row in snapshot.rows:
        entry = entries.get(row.array_job_id)
        if entry is None:
            owner = owners.get(row.array_job_id)
            entry = entries[row.array_job_id] = {
                "job_id": row.array_job_id,
                "is_array": row.task_ids is not None,
                "run_id": owner.run_id if owner else None,
                "name": owner.name if owner else None,
                "notebook": owner.notebook if owner else None,
                "counts": {},
                "rows": [],
            }
        state = _normalised(row.state) or row.state
        entry["counts"][state] = entry["counts"].get(state, 0) + _task_count(row)
        entry["rows"].append(
            {
                "job_id": _row_id(row),
                "state": state,
                "slurm_state": row.state,
                "reason": row.reason,
                "nodes": row.nodes,
                "n_tasks": _task_count(row),
            }
        )
    return {**queue_summary(snapshot), "jobs": list(entries.values())}


def _row_id(row: QueueRow) -> str:
    if row.task_ids is None:
        return row.array_job_id
    if len(row.task_ids) == 1:
        return f"{row.array_job_id}_{row.task_ids[0]}"
    return f"{row.array_job_id}_[{row.task_ids[0]}-{row.task_ids[-1]}]"


def graph_view(
    center: str,
    records: Mapping[str, RunRecord],
    edges: Iterable[tuple[str, str, int]],
    states: Mapping[str, Sequence[str]],
) -> JSON:
    """The dependency graph around one run: nodes (runs) and edges (upstream → downstream).

    ``edges`` are (run id, upstream run id, upstream item or -1 for the whole run);
    upstream runs missing from ``records`` appear as nodes with ``missing`` set.
    """
    nodes: dict[str, JSON] = {}

    def node(run_id: str) -> None:
        if run_id in nodes:
            return
        record = records.get(run_id)
        if record is None:
            nodes[run_id] = {"run_id": run_id, "name": run_id, "job_id": "", "missing": True}
            return
        nodes[run_id] = {
            "run_id": run_id,
            "name": record.name,
            "job_id": record.slices[0][0] if record.slices else "",
            "is_array": record.is_array,
            "n_items": record.n_items,
            "counts": _counts(states.get(run_id, ())),
            "missing": False,
        }

    node(center)
    links: dict[tuple[str, str], JSON] = {}
    for run_id, upstream, item in edges:
        node(run_id)
        node(upstream)
        link = links.setdefault(
            (upstream, run_id), {"source": upstream, "target": run_id, "items": []}
        )
        if item >= 0 and item not in link["items"]:
            link["items"].append(item)
    return {"run_id": center, "nodes": list(nodes.values()), "edges": list(links.values())}


def log_view(job_id: str, stream: str, data: bytes, size: int, max_bytes: int) -> JSON:
    """The tail of one job's stdout or stderr."""
    return {
        "job_id": job_id,
        "stream": stream,
        "text": data.decode(errors="replace"),
        "size": size,
        "bytes": max_bytes,
        "truncated": size > len(data),
    }
