"""Show jobs: a live widget in a Jupyter front end, meaningful text everywhere else."""

from __future__ import annotations

import logging
from typing import Any

from IPython import get_ipython
from IPython.display import display

from slurm_magics.jobs.array import JobArray
from slurm_magics.jobs.job import Job
from slurm_magics.ui.session import session_jobs
from slurm_magics.ui.widgets.status import JobStatus
from slurm_magics.ui.widgets.sweep import SweepProgress, array_elapsed
from slurm_magics.ui.widgets.text import all_ended, array_text, job_text, sweep_counts

__all__ = ["mimebundle", "show", "text_of", "view_of", "widgets_available"]

log = logging.getLogger(__name__)


def widgets_available() -> bool:
    """True inside a Jupyter kernel, where a front end can render widgets.

    In a terminal IPython or plain Python, displays are text (and tqdm when waiting).
    """
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def text_of(item: Job | JobArray) -> str:
    if isinstance(item, JobArray):
        counts = sweep_counts(job.state for job in item.jobs)
        finished = all_ended(counts)
        return array_text(item, counts, array_elapsed(item, finished))
    return job_text(item)


def view_of(item: Job | JobArray, *, show_output: bool = False) -> Any:
    """The live widget view of a job (status line) or an array (sweep progress)."""
    if isinstance(item, JobArray):
        return SweepProgress(item)
    return JobStatus(item, show_output=show_output)


def mimebundle(item: Job | JobArray, include: Any = None, exclude: Any = None) -> dict[str, Any]:
    """The rich display of a Job or JobArray (its ``_repr_mimebundle_``)."""
    session_jobs.add(item, source="display")
    if not widgets_available():
        return {"text/plain": text_of(item)}
    try:
        bundle: dict[str, Any] = view_of(item)._repr_mimebundle_(include, exclude)
    except Exception:  # a display must never break the cell
        log.exception("slurm_magics: cannot build the widget of %r", item)
        return {"text/plain": text_of(item)}
    return bundle


def show(item: Job | JobArray, *, show_output: bool = False) -> Any:
    """Display ``item`` live (a widget) or as text; returns the view, if any."""
    if not widgets_available():
        print(text_of(item))
        return None
    view = view_of(item, show_output=show_output)
    display(view)  # type: ignore[no-untyped-call]
    return view
