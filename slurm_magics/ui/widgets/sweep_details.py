"""What the sweep display shows besides its counts: why tasks wait (and, on a click,
until when), the live output of a chosen task or the last line of each running one, and
the used-vs-asked bars once the array has ended.

Refreshing reads only what the poller and the tail follower keep (no I/O): the output
comes from ``jobs.tails`` (one batched read per tick for all followed files), the
expected start from one ``squeue --start`` per click, the usage from one ``sacct`` when
the array ends.
"""

from __future__ import annotations

import html
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import ipywidgets as w

from slurm_magics.core.errors import ClusterError
from slurm_magics.core.states import JobState
from slurm_magics.jobs.array import JobArray
from slurm_magics.jobs.job import Job
from slurm_magics.jobs.tails import Tail, TailFollower, follower_for
from slurm_magics.transport import Transport
from slurm_magics.ui.widgets.usage import usage_bars

__all__ = ["MAX_LAST_LINES", "SweepDetails", "follower_of"]

log = logging.getLogger(__name__)

MAX_LAST_LINES = 50  # running tasks whose last line is shown
SHOWN_CHARS = 1 << 16  # of a followed task's output
SETTLE = 2.0  # seconds after the end: the followers' last reads are in
USAGE_TRIES = 4  # sacct may lag behind the queue: ask again, 3 s apart
_STREAMS = ("off", "stdout", "stderr")


def follower_of(job: Job) -> TailFollower | None:
    """The tail follower of the job's cluster (None for hosts without a transport)."""
    transport = getattr(job.cluster, "transport", None)
    return follower_for(transport) if isinstance(transport, Transport) else None


def _pre(text: str) -> str:
    return (
        '<pre style="max-height:16em;overflow:auto;margin:2px 0;font-size:90%">'
        f"{html.escape(text)}</pre>"
    )


class SweepDetails:
    """The waiting line, the output follower and the usage bars of one array."""

    def __init__(self, array: JobArray) -> None:
        self.array = array
        self.waiting = w.HTML("")
        self.start_button = w.Button(
            description="Expected start",
            icon="clock-o",
            tooltip="ask SLURM when the pending tasks should start (squeue --start)",
            layout=w.Layout(width="auto", display="none"),
        )
        self.start_text = w.HTML("")
        self.start_button.on_click(lambda _: self.ask_start())
        last = max(len(array) - 1, 0)
        self.task = w.BoundedIntText(value=0, min=0, max=last, description="task",
                                     layout=w.Layout(width="9em"))  # fmt: skip
        self.stream = w.ToggleButtons(options=_STREAMS, value="off", style={"button_width": "5em"})
        self.last_lines = w.ToggleButton(description="Last lines", icon="list",
                                         tooltip="the last line of each running task")  # fmt: skip
        self.output = w.HTML("")
        self.lines = w.HTML("")
        self.usage = w.HTML("")
        self.widget = w.VBox(
            [
                w.HBox([self.waiting, self.start_button, self.start_text]),
                w.HBox([self.task, self.stream, self.last_lines]),
                self.output,
                self.lines,
                self.usage,
            ]
        )
        self.task.observe(lambda _: self._choose(), names="value")
        self.stream.observe(lambda _: self._choose(), names="value")
        self._followed: Tail | None = None
        self._line_tails: dict[int, Tail] = {}
        self._usage_state = "not asked"  # then "asking", "shown"
        self._finished_at: float | None = None
        self._lock = threading.Lock()
        #: called when a click needs refreshing again (the sweep display re-arms itself)
        self.wake: Callable[[], None] | None = None

    # -- waiting --------------------------------------------------------------------------
    def ask_start(self) -> str:
        """Ask SLURM (one squeue --start) when the pending tasks start; shown and returned."""
        try:
            start = self.array.expected_start()
            text = (
                f"expected start {start:%Y-%m-%d %H:%M:%S}"
                if start
                else "SLURM has no start estimate yet"
            )
        except ClusterError as error:
            text = f"no estimate: {error}"
        self.start_text.value = html.escape(text)
        return text

    # -- output ---------------------------------------------------------------------------
    def _choose(self) -> None:
        """Follow the chosen task's chosen stream (and stop following the previous one)."""
        with self._lock:
            follower = follower_of(self.array.jobs[0]) if self.array.jobs else None
            if self._followed is not None and follower is not None:
                follower.unfollow([self._followed.path])
            self._followed = None
            if self.stream.value == "off" or follower is None:
                self.output.value = ""
                return
            job = self.array.jobs[self.task.value]
            path = job.log_paths()[_STREAMS.index(self.stream.value) - 1]
            self._followed = follower.follow(path, full=True)
            self._finished_at = None  # refresh until its last output is read
        if self.wake is not None:
            self.wake()

    def _follow_running(self) -> None:
        follower = follower_of(self.array.jobs[0]) if self.array.jobs else None
        if follower is None:
            return
        running = [(i, j) for i, j in enumerate(self.array.jobs) if j.state is JobState.RUNNING][
            :MAX_LAST_LINES
        ]
        wanted = {index for index, _ in running}
        gone = [i for i in self._line_tails if i not in wanted]
        follower.unfollow([self._line_tails.pop(i).path for i in gone])
        for index, job in running:
            if index not in self._line_tails:
                self._line_tails[index] = follower.follow(job.log_paths()[0], full=False)

    def _render_lines(self) -> str:
        if not self.last_lines.value:
            return ""
        rows = [
            f"task {index}: {tail.last_line}" for index, tail in sorted(self._line_tails.items())
        ]
        return _pre("\n".join(rows) or "(no task running)")

    # -- usage ----------------------------------------------------------------------------
    def _ask_usage(self) -> None:
        report = None
        ran = {job.job_id for job in self.array.jobs if job.started_at is not None}
        try:
            for attempt in range(USAGE_TRIES if ran else 0):
                report = self.array.efficiency()
                lacking = [
                    job for job, usage in report.tasks if usage is None and job.job_id in ran
                ]
                if not lacking or attempt == USAGE_TRIES - 1:
                    break
                time.sleep(3.0)
            text = usage_bars(report) if report is not None else ""
        except ClusterError as error:  # e.g. accounting off: say so, once
            text = f"<div>no usage figures: {html.escape(str(error))}</div>"
        except Exception:
            log.exception("slurm_magics: the usage report of %r failed", self.array)
            text = ""
        self.usage.value = text
        self._usage_state = "shown"

    # -- refresh --------------------------------------------------------------------------
    def refresh(self, finished: bool) -> bool:
        """Update from what is known; True once nothing shown here will change."""
        reason = self.array.pending_reason
        waiting = f"waiting: {html.escape(reason)}" if reason else ""
        if waiting != self.waiting.value:
            self.waiting.value = waiting
            self.start_button.layout.display = "" if reason else "none"
        if self.last_lines.value and not finished:
            self._follow_running()
        elif self._line_tails:
            follower = follower_of(self.array.jobs[0])
            if follower is not None and (finished or not self.last_lines.value):
                follower.unfollow([tail.path for tail in self._line_tails.values()])
                if not self.last_lines.value:
                    self._line_tails.clear()
        lines = self._render_lines()
        if lines != self.lines.value:
            self.lines.value = lines
        followed = self._followed
        if followed is not None:
            shown = _pre(followed.text[-SHOWN_CHARS:] or "(no output yet)")
            if shown != self.output.value:
                self.output.value = shown
        if finished and self._usage_state == "not asked":
            self._usage_state = "asking"
            threading.Thread(target=self._ask_usage, name="slurm_magics-usage", daemon=True).start()
        if not finished:
            return False
        self._finished_at = self._finished_at or time.monotonic()
        following = self._followed is not None or bool(self._line_tails)
        # what is followed is read a little longer, until its last output is in
        settled = not following or time.monotonic() - self._finished_at > SETTLE
        if settled:  # the usage thread shows its bars by itself when sacct answers
            self.close()
        return settled

    def close(self) -> None:
        """Stop following anything."""
        follower = follower_of(self.array.jobs[0]) if self.array.jobs else None
        if follower is not None:
            paths = [t.path for t in self._line_tails.values()]
            if self._followed is not None:
                paths.append(self._followed.path)
            follower.unfollow(paths)

    def state(self) -> dict[str, Any]:
        """What is shown, as plain values (for tests and text front ends)."""
        return {
            "waiting": self.array.pending_reason,
            "start": self.start_text.value,
            "output": self._followed.text if self._followed else "",
            "last_lines": {i: t.last_line for i, t in self._line_tails.items()},
            "usage": self.usage.value,
        }
