"""How jobs and arrays read as text and HTML (pure: no widgets, no I/O)."""

from __future__ import annotations

import collections
import html
import time
from collections.abc import Iterable, Mapping

from slurm_magics.core.parsing import unset
from slurm_magics.core.reasons import explain_reason
from slurm_magics.core.resources import format_duration
from slurm_magics.core.states import JobState
from slurm_magics.jobs.array import JobArray
from slurm_magics.jobs.job import Job

__all__ = [
    "COLOURS",
    "SweepCounts",
    "all_ended",
    "array_html",
    "array_text",
    "cache_text",
    "duration",
    "job_elapsed",
    "job_html",
    "job_text",
    "sweep_counts",
]

#: one colour per state, readable on light and dark themes
COLOURS = {
    JobState.PENDING: "#9e9e9e",
    JobState.RUNNING: "#1e88e5",
    JobState.COMPLETED: "#43a047",
    JobState.FAILED: "#e53935",
    JobState.CANCELLED: "#8d6e63",
    JobState.TIMEOUT: "#fb8c00",
    JobState.OUT_OF_MEMORY: "#d81b60",
    JobState.NODE_FAIL: "#8e24aa",
    JobState.DEPENDENCY_FAILED: "#6d4c41",
}
#: the buckets of a sweep's progress, in bar order
BUCKETS = ("done", "failed", "cancelled", "running", "pending")
_BUCKET_COLOURS = {
    "done": COLOURS[JobState.COMPLETED],
    "failed": COLOURS[JobState.FAILED],
    "cancelled": COLOURS[JobState.CANCELLED],
    "running": COLOURS[JobState.RUNNING],
    "pending": "#e0e0e0",
}


def duration(seconds: float | None) -> str:
    """ "0:07", "12:30", "3:02:05", "2d 04:00:00"; "-" when unknown."""
    return "-" if seconds is None else format_duration(seconds, day_separator="d ")


def job_elapsed(job: Job, now: float | None = None) -> float | None:
    """Running time once started, else time waited since submission."""
    if job.started_at is not None:
        return job.elapsed
    end = job.ended_at or (now if now is not None else time.time())
    return end - job.run.submitted_at


def _job_facts(job: Job, now: float | None) -> tuple[str, str]:
    state = job.state
    if state is JobState.PENDING:
        reason = "" if unset(job.reason) else f" ({explain_reason(job.reason)})"
        where = f"waiting{reason}"
    elif state is JobState.RUNNING:
        where = f"on {job.node}" if job.node else "running"
    else:
        where = "finished" if state is JobState.COMPLETED else "ended"
    return where, duration(job_elapsed(job, now))


def job_text(job: Job, now: float | None = None) -> str:
    """One line: "job 123 (name): RUNNING on node1, 0:12"."""
    where, elapsed = _job_facts(job, now)
    line = f"job {job.job_id or '?'} ({job.name}): {job.state.value} {where}, {elapsed}"
    return f"{line} · {cache_text(job)}" if job.cache is not None else line


def cache_text(item: Job | JobArray) -> str:
    """How a cached call was answered, with its key: "cached (key 3f2a...): the run of job
    123, nothing submitted" or "cache key 3f2a...: a new run"; "" when not cached."""
    hit = item.cache
    if hit is None:
        return ""
    if hit.reused:
        what = (
            f"array {','.join(item.job_ids)}"
            if isinstance(item, JobArray)
            else f"job {item.job_id}"
        )
        return f"cached (key {hit.key}): the run of {what}, nothing submitted"
    return f"cache key {hit.key}: a new run"


def _badge(state: JobState) -> str:
    return (
        f'<span style="background:{COLOURS[state]};color:white;border-radius:3px;'
        f'padding:0 6px;font-weight:600">{state.value}</span>'
    )


def job_html(job: Job, now: float | None = None) -> str:
    """The status line as HTML: a coloured state badge, id, name, node and elapsed time."""
    where, elapsed = _job_facts(job, now)
    return (
        f'<div style="font-family:var(--jp-code-font-family,monospace);line-height:1.8">'
        f"{_badge(job.state)} job <b>{html.escape(job.job_id or '?')}</b> "
        f"({html.escape(job.name)}) {html.escape(where)} &middot; {elapsed}"
        + (f" &middot; <small>{html.escape(cache_text(job))}</small>" if job.cache else "")
        + "</div>"
    )


SweepCounts = Mapping[str, int]


def sweep_counts(states: Iterable[JobState]) -> dict[str, int]:
    """Count states into the sweep buckets: done, failed, cancelled, running, pending."""
    raw = collections.Counter(states)
    failed = sum(n for state, n in raw.items() if state.finished) - raw[JobState.COMPLETED]
    return {
        "done": raw[JobState.COMPLETED],
        "failed": failed - raw[JobState.CANCELLED],
        "cancelled": raw[JobState.CANCELLED],
        "running": raw[JobState.RUNNING],
        "pending": raw[JobState.PENDING],
    }


def _array_id(array: JobArray) -> str:
    return ",".join(array.job_ids) or "?"


def all_ended(counts: SweepCounts) -> bool:
    """Whether no task of a sweep is running or pending any more."""
    return counts.get("running", 0) == 0 and counts.get("pending", 0) == 0


def array_text(array: JobArray, counts: SweepCounts, elapsed: float | None) -> str:
    """One line: "array 123 (name): 10000 tasks, done 10, failed 0, ... 0:12"."""
    parts = ", ".join(f"{bucket} {counts.get(bucket, 0)}" for bucket in BUCKETS)
    return (
        f"array {_array_id(array)} ({array.name}): {len(array)} tasks, {parts}, {duration(elapsed)}"
    )


def array_html(
    array: JobArray, counts: SweepCounts, elapsed: float | None, first_error: str = ""
) -> str:
    """The sweep display: a stacked bar and a count per bucket, in one HTML string."""
    total = max(len(array), 1)
    bar = "".join(
        f'<div title="{bucket} {n}" style="width:{100 * n / total:.3f}%;'
        f'background:{_BUCKET_COLOURS[bucket]}"></div>'
        for bucket, n in ((bucket, counts.get(bucket, 0)) for bucket in BUCKETS)
        if n
    )
    legend = " &nbsp; ".join(
        f'<span style="color:{_BUCKET_COLOURS[bucket] if bucket != "pending" else "#757575"}">'
        f"&#9632;</span> {bucket} <b>{counts.get(bucket, 0)}</b>"
        for bucket in BUCKETS
    )
    finished = len(array) - counts.get("running", 0) - counts.get("pending", 0)
    error = ""
    if first_error:
        colour = COLOURS[JobState.FAILED]
        error = f'<div style="color:{colour}">first failure: {html.escape(first_error)}</div>'

    return (
        f'<div style="font-family:var(--jp-code-font-family,monospace);line-height:1.6">'
        f"array <b>{html.escape(_array_id(array))}</b> ({html.escape(array.name)}): "
        f"{finished}/{len(array)} finished &middot; {duration(elapsed)}"
        f'<div style="display:flex;height:12px;width:100%;max-width:640px;background:#f5f5f5;'
        f'border-radius:3px;overflow:hidden;margin:2px 0">{bar}</div>{legend}{error}</div>'
    )
