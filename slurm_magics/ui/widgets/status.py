"""The live status line of one job: state, id, node, elapsed, Cancel, its log and output."""

from __future__ import annotations

import html
import threading
import time
from typing import Any

import ipywidgets as w

from slurm_magics.core.errors import RemoteTraceback
from slurm_magics.core.states import JobState
from slurm_magics.jobs.job import Job
from slurm_magics.ui.widgets.refresh import refresher
from slurm_magics.ui.widgets.text import job_html, job_text

__all__ = ["JobStatus", "finished_streams", "output_of", "strip_traceback"]

LOG_INTERVAL = 2.0  # seconds between reads of a running job's log (file I/O, maybe SFTP)
TAIL_BYTES = 8192
STREAM_BYTES = 1 << 16  # of a running job's stdout, every LOG_INTERVAL
OUTPUT_BYTES = 1 << 20  # of a finished job's stdout and stderr


def strip_traceback(stderr: str) -> str:
    """stderr without the traceback the runner printed last (the error output shows it)."""
    start = stderr.rfind("Traceback (most recent call last):")
    return stderr if start < 0 else stderr[:start]


def finished_streams(job: Job) -> tuple[str, str]:
    """A finished job's stdout and stderr as a user should see them: without the runner's
    traceback when the job raised (its error output shows that)."""
    stdout = job.stdout(OUTPUT_BYTES)
    stderr = job.stderr(OUTPUT_BYTES)
    if not job.cancelled() and job.exception() is not None:
        stderr = strip_traceback(stderr)
    return stdout, stderr


def output_of(job: Job) -> list[dict[str, Any]]:
    """The finished job's stdout, stderr and error, as notebook outputs."""
    outputs: list[dict[str, Any]] = []
    stdout, stderr = finished_streams(job)
    error = None if job.cancelled() else job.exception()
    if stdout:
        outputs.append({"output_type": "stream", "name": "stdout", "text": stdout})
    if stderr.strip():
        outputs.append({"output_type": "stream", "name": "stderr", "text": stderr})
    if error is not None:
        cause = error.__cause__
        lines = str(cause).strip().strip('"').strip().splitlines() if cause else []
        if not isinstance(cause, RemoteTraceback):
            lines = []
        outputs.append(
            {
                "output_type": "error",
                "ename": type(error).__name__,
                "evalue": str(error),
                "traceback": [*lines, f"{type(error).__name__}: {error}"],
            }
        )
    return outputs


class JobStatus:
    """A job's live status line; ``show_output`` also brings its output back, live."""

    def __init__(self, job: Job, *, show_output: bool = False) -> None:
        self.job = job
        self.show_output = show_output
        self.line = w.HTML(job_html(job))
        self.cancel_button = w.Button(
            description="Cancel",
            icon="stop",
            tooltip="scancel this job",
            disabled=job.done(),
            layout=w.Layout(width="auto"),
        )
        self.log_button = w.ToggleButton(
            description="Log",
            icon="file-text",
            tooltip="the tail of the job's stdout and stderr",
            layout=w.Layout(width="auto"),
        )
        self.log = w.HTML("")
        self.output = w.Output()
        row = w.HBox(
            [self.line, self.cancel_button, self.log_button],
            layout=w.Layout(align_items="center"),
        )
        self.widget = w.VBox([row, self.log, self.output])
        self.cancel_button.on_click(lambda _: self.job.cancel())
        self.log_button.observe(self._on_log_toggled, names="value")
        self._shown = self.line.value
        self._next_log = 0.0
        self._log_fresh = False  # the shown tail is the final one
        self._next_stream = 0.0
        self._streamed = ""
        self._output_final = not show_output
        self._lock = threading.Lock()  # the refresher and a test or a click may both refresh
        refresher.add(self)

    def __repr__(self) -> str:
        return f"<JobStatus {self.text()}>"

    def text(self) -> str:
        return job_text(self.job)

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        bundle: dict[str, Any] = self.widget._repr_mimebundle_()
        bundle["text/plain"] = self.text()
        return bundle

    def _on_log_toggled(self, change: dict[str, Any]) -> None:
        if change["new"]:
            self._next_log = 0.0
            self._log_fresh = False
            refresher.add(self)
        else:
            self.log.value = ""

    def _read_log(self, done: bool) -> None:
        stdout = self.job.stdout(TAIL_BYTES)
        stderr = self.job.stderr(TAIL_BYTES)
        paths = self.job.log_paths()
        parts = [f"<b>stdout</b> <small>{paths[0]}</small>", _pre(stdout or "(empty)")]
        if stderr:
            parts += [f"<b>stderr</b> <small>{paths[1]}</small>", _pre(stderr)]
        self.log.value = "".join(parts)
        self._next_log = time.monotonic() + LOG_INTERVAL
        self._log_fresh = done

    def refresh(self) -> bool:
        """Update what changed (the poller keeps the job's state; only logs are read)."""
        with self._lock:
            return self._refresh()

    def _refresh(self) -> bool:
        job = self.job
        done = job.done()
        line = job_html(job)
        if line != self._shown:
            self.line.value = self._shown = line
        if done and not self.cancel_button.disabled:
            self.cancel_button.disabled = True
        now = time.monotonic()
        if self.log_button.value and not self._log_fresh and (done or now >= self._next_log):
            self._read_log(done)
        if not self._output_final:
            if done:
                self.output.outputs = tuple(output_of(job))
                self._output_final = True
            elif job.state is JobState.RUNNING and now >= self._next_stream:
                stdout = job.stdout(STREAM_BYTES)
                if stdout != self._streamed:
                    self._streamed = stdout
                    self.output.outputs = (
                        {"output_type": "stream", "name": "stdout", "text": stdout},
                    )
                self._next_stream = now + LOG_INTERVAL
        return done and self._output_final and (self._log_fresh or not self.log_button.value)


def _pre(text: str) -> str:
    return (
        '<pre style="max-height:16em;overflow:auto;margin:2px 0;font-size:90%">'
        f"{html.escape(text)}</pre>"
    )
