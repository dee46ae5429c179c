"""Live progress of a job array: a count per state and a bar, in ONE HTML widget.

Whatever the number of tasks, a refresh counts states in one pass over the jobs and
sends at most one widget-state message (the HTML's value), and only when it changed.
No widget per task.
"""

from __future__ import annotations

import html
import threading
import time
from typing import Any

import ipywidgets as w

from slurm_magics.jobs.array import JobArray
from slurm_magics.ui.widgets.refresh import refresher, widget_bundle
from slurm_magics.ui.widgets.sweep_details import SweepDetails
from slurm_magics.ui.widgets.text import all_ended, array_html, array_text, sweep_counts

__all__ = ["SweepProgress", "array_elapsed", "first_failure", "waiting_note"]


def array_elapsed(array: JobArray, finished: bool, now: float | None = None) -> float | None:
    """Seconds from submission to the last task's end (or to now while tasks remain)."""
    if not array.runs:
        return None
    start = min(run.submitted_at for run in array.runs)
    end = now if now is not None else time.time()
    if finished:
        ends = [job.ended_at for job in array.jobs if job.ended_at is not None]
        end = max(ends, default=end)
    return end - start


def first_failure(array: JobArray) -> str:
    """ "task 3 (job 123_3): ValueError: boom" for the first failed task, else ""."""
    for index, job in enumerate(array.jobs):
        if job.done() and not job.cancelled():
            error = job.exception()
            if error is not None:
                message = str(error).splitlines()[0] if str(error) else ""
                return f"task {index} (job {job.job_id}): {type(error).__name__}: {message}"
    return ""


def waiting_note(array: JobArray) -> str:
    """ "700 tasks waiting for room: MaxSubmitJobsPerUser 300 (QOS normal)" while tasks wait
    on the client under the cluster's job limits (not in SLURM yet), else ""."""
    waiting = [job for job in array.jobs if job.reason.startswith("waiting for room")]
    if not waiting:
        return ""
    return f"{len(waiting)} tasks {waiting[0].reason}"


class SweepProgress:
    """Counts pending/running/done/failed/cancelled tasks of an array, with Cancel."""

    def __init__(self, array: JobArray) -> None:
        self.array = array
        self.html = w.HTML(self._render())
        self.cancel_button = w.Button(
            description="Cancel all",
            icon="stop",
            tooltip="scancel every unfinished task",
            disabled=array.done() and self._finished(),
        )
        self.cancel_button.on_click(lambda _: self.array.cancel())
        self.details = SweepDetails(array)
        self.details.wake = lambda: refresher.add(self)
        self.widget = w.VBox([self.html, w.HBox([self.cancel_button]), self.details.widget])
        self._shown = self.html.value
        self._lock = threading.Lock()
        refresher.add(self)

    def _finished(self) -> bool:
        return all(job.done() for job in self.array.jobs)

    def counts(self) -> dict[str, int]:
        return sweep_counts(job.state for job in self.array.jobs)

    def _render(self) -> str:
        counts = self.counts()
        finished = all_ended(counts)
        error = first_failure(self.array) if counts["failed"] else ""
        shown = array_html(self.array, counts, array_elapsed(self.array, finished), error)
        note = waiting_note(self.array) if counts["pending"] else ""
        return shown + (f'<div style="color:#757575">{html.escape(note)}</div>' if note else "")

    def text(self) -> str:
        counts = self.counts()
        finished = all_ended(counts)
        note = waiting_note(self.array) if counts["pending"] else ""
        line = array_text(self.array, counts, array_elapsed(self.array, finished))
        return f"{line}; {note}" if note else line

    def __repr__(self) -> str:
        return f"<SweepProgress {self.text()}>"

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        return widget_bundle(self.widget, self.text())

    def refresh(self) -> bool:
        """One pass over the tasks; one message when the display changed."""
        with self._lock:
            finished = self._finished()  # before rendering: what is shown is then final
            value = self._render()
            if value != self._shown:
                self.html.value = self._shown = value
            if finished and not self.cancel_button.disabled:
                self.cancel_button.disabled = True
            return self.details.refresh(finished)
