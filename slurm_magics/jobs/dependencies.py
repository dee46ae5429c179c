"""A run's sbatch ``--dependency`` on its upstream jobs, and whether the upstream lets it
go in yet (a downstream goes in once every upstream task is in SLURM or has ended)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from slurm_magics.jobs.array import JobArray
from slurm_magics.jobs.job import Job, Run

__all__ = ["dependency_expression", "upstream_not_in"]


def dependency_expression(upstream: Sequence[Job | JobArray], condition: str) -> str:
    """The sbatch dependency (``"afterok:12:13"``, ``""`` for none) on ``upstream``'s
    slices not over yet: for ``afterok`` a slice that succeeded is left out, for
    ``afterany`` one that ended (SLURM forgets ended jobs after MinJobAge and refuses a
    dependency on them). A task that never went in (cancelled while it waited for room)
    is in no slice."""
    over = _succeeded if condition == "afterok" else _ended
    ids: list[str] = []
    for item in upstream:
        if isinstance(item, Job):
            ids += [] if over([item]) or not item.job_id else [item.job_id]
            continue
        for run in item.runs:
            for part in run.slices:
                first = part.first_element * run.chunk_size
                count = max(part.n_elements, 1) * run.chunk_size
                if not over(run.jobs[first : first + count]):
                    ids.append(part.slurm_id)
    return f"{condition}:{':'.join(dict.fromkeys(ids))}" if ids else ""


def upstream_not_in(upstream: Sequence[Job | JobArray], condition: str) -> str:
    """The name of an upstream run with tasks still waiting for room ("" when none): the
    downstream waits on the client until they are in SLURM. Tasks that ended before they
    went in (cancelled) hold it for ``afterany`` no longer; for ``afterok`` they fail it
    (the upstream's done-callback does) and it keeps waiting until then."""
    for item in upstream:
        for run in [item.run] if isinstance(item, Job) else item.runs:
            if not _let_through(run, _succeeded if condition == "afterok" else _ended):
                return run.name
    return ""


def _let_through(run: Run, over: Callable[[Sequence[Job]], bool]) -> bool:
    return over(run.jobs[run.submitted_end() * run.chunk_size :])


def _succeeded(jobs: Sequence[Job]) -> bool:
    return all(j.done() and not j.cancelled() and j.exception() is None for j in jobs)


def _ended(jobs: Sequence[Job]) -> bool:
    return all(j.done() for j in jobs)
