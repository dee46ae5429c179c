"""The jobs panel: every job of this kernel, its state, elapsed time, Cancel, log tail, and
the dependency graph; one HTML widget for the table and graph, refreshed while any runs."""

from __future__ import annotations

import html
import threading
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import ipywidgets as w

from slurm_magics.core.parsing import unset
from slurm_magics.core.states import JobState
from slurm_magics.jobs.array import JobArray, runs_of
from slurm_magics.jobs.job import Job
from slurm_magics.ui.widgets.graph import build_graph, render_svg
from slurm_magics.ui.widgets.refresh import refresher, widget_bundle
from slurm_magics.ui.widgets.sweep import array_elapsed
from slurm_magics.ui.widgets.text import COLOURS, all_ended, duration, job_elapsed, sweep_counts

__all__ = ["JobsPanel", "panel_html", "panel_text"]

TAIL_BYTES = 4096
_CELL = ' style="text-align:left;padding:1px 14px 1px 0"'


class _Entry(Protocol):
    item: Job | JobArray
    label: str


class _Registry(Protocol):
    def entries(self) -> Sequence[_Entry]: ...

    def subscribe(self, callback: Callable[[], None]) -> Callable[[], None]: ...


def _row(entry: _Entry) -> tuple[str, str, str, JobState, str, str]:
    """(label, SLURM id, kind, state, state text, elapsed) of one entry."""
    item = entry.item
    if isinstance(item, JobArray):
        counts = sweep_counts(job.state for job in item.jobs)
        finished = all_ended(counts)
        summary = ", ".join(f"{k} {n}" for k, n in counts.items() if n)
        state = item.state if item.jobs else JobState.COMPLETED
        elapsed = duration(array_elapsed(item, finished))
        return entry.label, ",".join(item.job_ids), f"{len(item)} tasks", state, summary, elapsed
    state_text = item.state.value
    if item.state is JobState.PENDING and not unset(item.reason):
        state_text += f" ({item.reason})"
    elif item.state is JobState.RUNNING and item.node:
        state_text += f" on {item.node}"
    elapsed = duration(job_elapsed(item))
    return entry.label, item.job_id, "job", item.state, state_text, elapsed


def _after(entry: _Entry) -> str:
    item = entry.item
    runs = runs_of(item)
    return " ".join(run.dependency for run in runs if run.dependency)


def panel_text(entries: Sequence[_Entry]) -> str:
    """The panel as a plain-text table."""
    if not entries:
        return "no slurm_magics jobs in this kernel yet"
    lines = [f"{'NAME':<16} {'JOBID':<12} {'KIND':<12} {'ELAPSED':>8}  STATE"]
    for entry in entries:
        label, slurm_id, kind, _, state_text, elapsed = _row(entry)
        lines.append(f"{label[:16]:<16} {slurm_id:<12} {kind:<12} {elapsed:>8}  {state_text}")
    return "\n".join(lines)


def panel_html(entries: Sequence[_Entry]) -> str:
    """The panel's table and dependency graph, as one HTML string."""
    if not entries:
        return "<i>No slurm_magics jobs in this kernel yet.</i>"
    cells = []
    for entry in entries:
        label, slurm_id, kind, state, state_text, elapsed = _row(entry)
        dot = f'<span style="color:{COLOURS[state]}">&#9679;</span>'
        values = [
            f"<b>{html.escape(label)}</b>",
            html.escape(slurm_id),
            kind,
            f"{dot} {html.escape(state_text)}",
            elapsed,
            html.escape(_after(entry)),
        ]
        cells.append("<tr>" + "".join(f"<td{_CELL}>{value}</td>" for value in values) + "</tr>")
    heads = ("name", "job id", "kind", "state", "elapsed", "after")
    table = (
        '<table style="border-collapse:collapse;font-size:90%"><thead><tr>'
        + "".join(f"<th{_CELL}>{head}</th>" for head in heads)
        + f"</tr></thead><tbody>{''.join(cells)}</tbody></table>"
    )
    nodes, edges = build_graph([(entry.label, entry.item) for entry in entries])
    graph = render_svg(nodes, edges)
    return f"<div>{table}<div style='overflow:auto;margin-top:6px'>{graph}</div></div>"


class JobsPanel:
    """All the jobs of a registry, updated live; pick one to cancel it or see its log."""

    def __init__(self, registry: _Registry) -> None:
        self.registry = registry
        self.html = w.HTML(panel_html(registry.entries()))
        self.select = w.Dropdown(description="job", options=self._options())
        self.cancel_button = w.Button(description="Cancel", icon="stop", tooltip="scancel it")
        self.log_button = w.Button(description="Log tail", icon="file-text")
        self.log = w.HTML("")
        self.cancel_button.on_click(self._on_cancel)
        self.log_button.on_click(self._on_log)
        controls = w.HBox([self.select, self.cancel_button, self.log_button])
        self.widget = w.VBox([self.html, controls, self.log])
        self._shown = self.html.value
        self._lock = threading.Lock()
        self._unsubscribe = registry.subscribe(lambda: refresher.add(self))
        refresher.add(self)

    def _options(self) -> list[tuple[str, int]]:
        entries = self.registry.entries()
        return [(f"{e.label} ({_row(e)[1]})", i) for i, e in enumerate(entries)]

    def _selected(self) -> _Entry | None:
        entries = self.registry.entries()
        index = self.select.value
        return entries[index] if isinstance(index, int) and index < len(entries) else None

    def _on_cancel(self, _: Any) -> None:
        entry = self._selected()
        if entry is not None:
            entry.item.cancel()
            self.log.value = f"<i>cancelled {html.escape(entry.label)}</i>"

    def _on_log(self, _: Any) -> None:
        entry = self._selected()
        if entry is None:
            return
        item = entry.item
        job = item if isinstance(item, Job) else _interesting_task(item)
        if job is None:
            self.log.value = "<i>the array has no tasks</i>"
            return
        text = job.stdout(TAIL_BYTES) + job.stderr(TAIL_BYTES)
        self.log.value = (
            f"<b>job {html.escape(job.job_id)}</b> <small>{html.escape(job.log_paths()[0])}</small>"
            f"<pre style='max-height:16em;overflow:auto'>{html.escape(text or '(empty)')}</pre>"
        )

    def text(self) -> str:
        return panel_text(self.registry.entries())

    def __repr__(self) -> str:
        return f"<JobsPanel\n{self.text()}>"

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        return widget_bundle(self.widget, self.text())

    def refresh(self) -> bool:
        with self._lock:
            entries = self.registry.entries()
            finished = all(entry.item.done() for entry in entries)  # before rendering
            value = panel_html(entries)
            if value != self._shown:
                self.html.value = self._shown = value
            if len(self.select.options) != len(entries):
                self.select.options = self._options()
            return finished

    def close(self) -> None:
        self._unsubscribe()
        self.widget.close()


def _interesting_task(array: JobArray) -> Job | None:
    """The task whose log says most: the first failed, else running, else the first."""
    for wanted in (JobState.FAILED, JobState.RUNNING):
        for job in array.jobs:
            if job.state is wanted:
                return job
    return array.jobs[0] if array.jobs else None
