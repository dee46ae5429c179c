"""The right-sizing report of a job or an array: one usage query per array (or 1,000 tasks).

``report(jobs)`` asks the jobs' cluster for their usage (``sacct`` on SLURM, its own
measurements on the local backend) with one call per array slice (slices together up to
1,000 tasks per call), never one per task; matches the rows to the jobs; and summarises
them with a suggestion for the next run (see ``core.efficiency``).
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from slurm_magics.core.efficiency import (
    Suggestion,
    Summary,
    TaskUsage,
    suggest,
    summarise,
)
from slurm_magics.core.resources import format_duration
from slurm_magics.core.states import normalise_state

if TYPE_CHECKING:
    from slurm_magics.jobs.job import Job

__all__ = ["BATCH_TASKS", "EfficiencyReport", "is_final", "report", "usage_batches"]

BATCH_TASKS = 1000  # tasks per usage query at most (one sacct call each)

Usage = Callable[[Sequence[str]], list[TaskUsage]]


def usage_batches(jobs: Sequence[Job]) -> list[list[str]]:
    """The SLURM ids to ask about, grouped so each query covers at most ``BATCH_TASKS``
    tasks: whole arrays by their array id, lone tasks by their own id."""
    wanted: dict[str, int] = {}  # id -> tasks it covers
    by_run: dict[str, list[Job]] = {}
    for job in jobs:
        by_run.setdefault(job.run.run_id, []).append(job)
    for run_jobs in by_run.values():
        run = run_jobs[0].run
        if len(run_jobs) == len(run.jobs):
            for part in run.slices:
                wanted[part.slurm_id] = max(part.n_elements, 1)
        else:
            for job in run_jobs:
                wanted[job.job_id] = 1
    batches: list[list[str]] = []
    size = BATCH_TASKS
    for slurm_id, tasks in wanted.items():
        if size + tasks > BATCH_TASKS:
            batches.append([])
            size = 0
        batches[-1].append(slurm_id)
        size += tasks
    return batches


@dataclasses.dataclass(frozen=True)
class EfficiencyReport:
    """Used against asked for, per task and summarised, with a suggestion.

    ``tasks`` pairs each job with its usage (None: not in accounting yet, or not run).
    ``str(report)`` is the text report; ``to_dataframe()`` the table.
    """

    name: str
    tasks: list[tuple[Job, TaskUsage | None]]
    summary: Summary
    suggestion: Suggestion
    source: str  # "sacct" or "local measurements"
    queries: int  # usage queries made

    @property
    def missing(self) -> int:
        """Tasks without final figures: not run, still running, or not yet ended in
        accounting (slurmdbd may lag a few seconds behind a task that has ended)."""
        return sum(not is_final(usage) for _, usage in self.tasks)

    def records(self) -> list[dict[str, Any]]:
        """One dict per task: job_id, state, elapsed_s, cpu_time_s, cpus, cpu_efficiency,
        max_rss_mb, requested_mb, memory_used, time_limit_s, time_used (None: unknown)."""
        rows = []
        for job, usage in self.tasks:
            row: dict[str, Any] = {"item": job.item, "job_id": job.job_id, "state": None}
            if usage is not None:
                row.update(
                    state=usage.state,
                    elapsed_s=usage.elapsed,
                    cpu_time_s=usage.cpu_time,
                    cpus=usage.cpus,
                    cpu_efficiency=usage.cpu_efficiency,
                    max_rss_mb=_mb(usage.max_rss),
                    requested_mb=_mb(usage.requested_memory),
                    memory_used=usage.memory_used,
                    time_limit_s=usage.time_limit,
                    time_used=usage.time_used,
                )
            rows.append(row)
        return rows

    def to_dataframe(self) -> Any:
        """A pandas DataFrame of ``records()``, one row per task (needs pandas)."""
        try:
            pandas = importlib.import_module("pandas")  # optional: only this method needs it
        except ImportError:
            raise ImportError(
                "report.to_dataframe() needs pandas, which is not installed: "
                "`pip install pandas` (or print the report as text)."
            ) from None
        return pandas.DataFrame.from_records(self.records())

    def lines(self) -> list[str]:
        """The report as lines of text (what ``str()`` joins)."""
        s = self.summary
        head = f"efficiency of {self.name}: {s.tasks} of {len(self.tasks)} tasks measured"
        lines = [head + f" ({self.source})"]
        if s.cpu_efficiency:
            lines.append(f"  CPU efficiency  median {_pct(s.cpu_efficiency[0])}, "
                         f"max {_pct(s.cpu_efficiency[1])}")  # fmt: skip
        if s.max_rss:
            asked = [u.requested_memory for _, u in self.tasks if u and u.requested_memory]
            of = f" of {_mb(max(asked)):.0f} MB asked" if asked else ""
            used = f" ({_pct(s.memory_used[1])} at most)" if s.memory_used else ""
            lines.append(f"  peak memory     median {_mb(s.max_rss[0]):.0f} MB, "
                         f"max {_mb(s.max_rss[1]):.0f} MB{of}{used}")  # fmt: skip
        if s.elapsed:
            limits = [u.time_limit for _, u in self.tasks if u and u.time_limit]
            of = f" of {format_duration(max(limits), hours=True)} limit" if limits else ""
            lines.append(f"  elapsed         median {format_duration(s.elapsed[0])}, "
                         f"max {format_duration(s.elapsed[1])}{of}")  # fmt: skip
        if self.missing:
            lines.append(
                f"  {self.missing} task(s) without final figures yet (not run, running, or "
                "accounting lags: ask again in a few seconds)"
            )
        lines.append(f"  suggestion      {self.suggestion}")
        return lines

    def __str__(self) -> str:
        return "\n".join(self.lines())

    def __repr__(self) -> str:
        return str(self)


def _mb(size: float | None) -> float | None:
    return None if size is None else size / 2**20


def _pct(fraction: float) -> str:
    return f"{100 * fraction:.0f}%"


def report(name: str, jobs: Sequence[Job], usage: Usage, *, source: str) -> EfficiencyReport:
    """The report of ``jobs``, asking ``usage(ids)`` once per batch (see ``usage_batches``)."""
    found: dict[str, TaskUsage] = {}
    batches = usage_batches(jobs)
    for batch in batches:
        found.update((u.job_id, u) for u in usage(batch))
    pairs = [(job, found.get(job.job_id)) for job in jobs]
    # a task still running (or not yet ended in accounting) has partial figures: they would
    # make the suggestion too small; only ended ones count
    known = list({id(u): u for _, u in pairs if u is not None and is_final(u)}.values())
    return EfficiencyReport(
        name=name,
        tasks=pairs,
        summary=summarise(known),
        suggestion=suggest(known),
        source=source,
        queries=len(batches),
    )


def is_final(usage: TaskUsage | None) -> bool:
    """Whether ``usage`` holds a task's final figures: it ran, and accounting says it ended
    (a state SLURM does not have counts as ended: its figures are all there are)."""
    if usage is None or usage.elapsed <= 0:
        return False
    try:
        return normalise_state(usage.state).finished
    except ValueError:
        return True
