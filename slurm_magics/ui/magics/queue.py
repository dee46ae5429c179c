"""``%squeue``: the user's queue as a table, array tasks grouped (pure rendering)."""

from __future__ import annotations

import dataclasses
import html
from collections.abc import Iterable, Mapping, Sequence

from slurm_magics.core.parsing import QueueRow, unset
from slurm_magics.core.reasons import StartEstimate, explain_reason
from slurm_magics.core.states import normalise_state
from slurm_magics.ui.widgets.text import COLOURS

__all__ = [
    "QueueLine",
    "QueueTable",
    "compress_ids",
    "elapsed_seconds",
    "group_queue",
    "waiting_lines",
    "with_starts",
]

_RUNNING_WORDS = ("RUNNING", "COMPLETING", "CONFIGURING", "SUSPENDED", "STOPPED")


def compress_ids(ids: Iterable[int]) -> str:
    """``[0, 1, 2, 5, 7, 8]`` -> ``"0-2,5,7-8"``."""
    ordered = sorted(set(ids))
    parts: list[str] = []
    start = previous = None
    for number in [*ordered, None]:
        if number is not None and previous is not None and number == previous + 1:
            previous = number
            continue
        if start is not None:
            parts.append(str(start) if start == previous else f"{start}-{previous}")
        start = previous = number
    return ",".join(parts)


def _shorten(ranges: str, limit: int = 24) -> str:
    """Keep the first ranges of a long list: "0-3,7,9-12,…"."""
    if len(ranges) <= limit:
        return ranges
    cut = ranges.rfind(",", 0, limit)
    return (ranges[:cut] if cut > 0 else ranges[:limit]) + ",…"


@dataclasses.dataclass(frozen=True)
class QueueLine:
    """One line of the table: a job, or the tasks of an array in one state."""

    job_id: str  # "123", or "124_[0-99]"
    name: str
    state: str
    tasks: int
    where: str  # nodes when running, else the reason
    partition: str = ""
    elapsed: str = ""  # the longest of the line's tasks, as squeue writes it


def elapsed_seconds(text: str) -> int:
    """squeue's "M:SS", "H:MM:SS" or "D-HH:MM:SS" in seconds (0 when unreadable)."""
    days, _, clock = text.rpartition("-")
    total = 0
    for part in clock.split(":"):
        if not part.isdigit():
            return 0
        total = total * 60 + int(part)
    return total + (int(days) * 86400 if days.isdigit() else 0)


def _where(row: QueueRow) -> str:
    word = row.state.split(" ", 1)[0].upper()
    if word in _RUNNING_WORDS:
        return row.nodes
    return "" if unset(row.reason) else row.reason


def group_queue(rows: Sequence[QueueRow], names: Mapping[str, str]) -> list[QueueLine]:
    """Group array tasks by (array, state, where); ``names`` maps SLURM ids to labels
    (this session's variable names), SLURM's job name otherwise."""
    groups: dict[tuple[str, str, str], list[QueueRow]] = {}
    lines: list[QueueLine] = []
    for row in rows:
        name = names.get(row.array_job_id) or row.name
        if row.task_ids is None:
            lines.append(
                QueueLine(
                    row.array_job_id,
                    name,
                    row.state,
                    1,
                    _where(row),
                    row.partition,
                    row.elapsed,
                )
            )
        else:
            groups.setdefault((row.array_job_id, row.state, _where(row)), []).append(row)
    for (array_id, state, where), members in groups.items():
        tasks = [task for row in members for task in row.task_ids or ()]
        longest = max(members, key=lambda row: elapsed_seconds(row.elapsed))
        lines.append(
            QueueLine(
                f"{array_id}_[{_shorten(compress_ids(tasks))}]"
                if len(tasks) > 1
                else f"{array_id}_{tasks[0]}",
                names.get(array_id) or members[0].name,
                state,
                len(set(tasks)),
                where,
                members[0].partition,
                longest.elapsed,
            )
        )

    def order(line: QueueLine) -> tuple[int, str]:
        head = line.job_id.split("_", 1)[0]
        return (int(head) if head.isdigit() else 0, line.job_id)

    return sorted(lines, key=order)


def waiting_lines(waiting: Iterable[tuple[str, int, str]]) -> list[QueueLine]:
    """Lines for jobs that wait on the client for room under the cluster's job limits
    (not in SLURM yet): (name, jobs, reason) each, e.g. ("sweep", 700, "waiting for room:
    MaxSubmitJobsPerUser 300 (QOS normal)")."""
    return [
        QueueLine("(not submitted)", name, "PENDING", tasks, reason)
        for name, tasks, reason in waiting
    ]


def with_starts(lines: Sequence[QueueLine], estimates: Sequence[StartEstimate]) -> list[QueueLine]:
    """``%squeue --start``: pending lines say why they wait in words and when SLURM
    expects them to start (the earliest of the array's tasks), from one squeue --start."""
    earliest: dict[str, str] = {}
    for estimate in estimates:
        if estimate.start is not None:
            head = estimate.job_id.split("_", 1)[0]
            stamp = f"{estimate.start:%Y-%m-%d %H:%M:%S}"
            earliest[head] = min(earliest.get(head, stamp), stamp)
    changed = []
    for line in lines:
        head = line.job_id.split("_", 1)[0]
        if line.state == "PENDING" and head.isdigit():
            why = explain_reason(line.where) or "waiting"
            start = earliest.get(head)
            said = f"expected start {start}" if start else "no start estimate yet"
            changed.append(dataclasses.replace(line, where=f"{why}; {said}"))
        else:
            changed.append(line)
    return changed


class QueueTable:
    """The result of ``%squeue``: an HTML table in notebooks, aligned text elsewhere."""

    def __init__(self, lines: Sequence[QueueLine], user: str = "") -> None:
        self.lines = list(lines)
        self.user = user

    def __len__(self) -> int:
        return len(self.lines)

    def __repr__(self) -> str:
        if not self.lines:
            return f"no jobs in the queue{f' for {self.user}' if self.user else ''}"
        header = (
            f"{'JOBID':<22} {'NAME':<16} {'PARTITION':<9} {'TASKS':>5}  {'STATE':<12} "
            f"{'TIME':>10}  NODES/REASON"
        )
        rows = [
            f"{line.job_id:<22} {line.name[:16]:<16} {line.partition[:9]:<9} {line.tasks:>5}  "
            f"{line.state:<12} {line.elapsed:>10}  {line.where}"
            for line in self.lines
        ]
        return "\n".join([header, *rows])

    def _repr_html_(self) -> str:
        if not self.lines:
            return f"<i>{html.escape(repr(self))}</i>"
        cells = []
        for line in self.lines:
            try:
                colour = COLOURS[normalise_state(line.state)]
            except ValueError:
                colour = "#9e9e9e"
            cells.append(
                f"<tr><td>{html.escape(line.job_id)}</td><td>{html.escape(line.name)}</td>"
                f"<td>{html.escape(line.partition)}</td>"
                f'<td style="text-align:right">{line.tasks}</td>'
                f'<td><span style="color:{colour}">&#9679;</span> {html.escape(line.state)}</td>'
                f'<td style="text-align:right">{html.escape(line.elapsed)}</td>'
                f"<td>{html.escape(line.where)}</td></tr>"
            )
        caption = f"<caption>squeue -u {html.escape(self.user)}</caption>" if self.user else ""
        return (
            f'<table style="font-size:90%">{caption}<thead><tr><th>job id</th><th>name</th>'
            "<th>partition</th><th>tasks</th><th>state</th><th>time</th>"
            "<th>nodes / reason</th></tr></thead>"
            f"<tbody>{''.join(cells)}</tbody></table>"
        )
