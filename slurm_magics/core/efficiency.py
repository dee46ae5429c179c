"""Right-sizing: what tasks used against what they asked for, and what to ask next time.

Pure: parses ``sacct`` usage output (allocation and step lines), computes per-task
figures (CPU efficiency = TotalCPU / (Elapsed x AllocCPUS), peak memory = the largest
MaxRSS of the task's steps against ReqMem, elapsed time against the time limit),
summarises them (median, max) and suggests ``memory=`` / ``time=`` / ``cpus=`` rounded the
way people write them ("1.5G", "00:20:00").
"""

from __future__ import annotations

import dataclasses
import math
import re
import statistics
from collections.abc import Sequence

from slurm_magics.core.errors import ClusterError
from slurm_magics.core.parsing import parse_job_id
from slurm_magics.core.resources import format_time

__all__ = [
    "USAGE_FORMAT",
    "AccountingOffError",
    "Suggestion",
    "Summary",
    "TaskUsage",
    "parse_cpu_time",
    "parse_rss",
    "parse_usage",
    "round_memory",
    "round_time",
    "suggest",
    "summarise",
]

#: sacct's fields for usage (run without -X: MaxRSS is on the step lines)
USAGE_FORMAT = "JobID,State,ElapsedRaw,TotalCPU,AllocCPUS,MaxRSS,ReqMem,TimelimitRaw"

MEMORY_HEADROOM = 1.25  # peak x this, then rounded up
TIME_HEADROOM = 1.5  # longest elapsed x this, then rounded up
MIN_TIME = 60  # seconds: SLURM's time limits are in minutes
_MIB = 2**20
# Sizes as people write them, in MiB (SLURM's M): the suggestion is the first that fits.
_MEMORY_LADDER = (
    [100, 200, 250, 300, 400, 500, 750]
    + [int(g * 1024) for g in (1, 1.5, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128)]
    + [g * 1024 for g in (192, 256, 384, 512, 768, 1024)]
)
# Time limits as people write them, in minutes.
_TIME_LADDER = [1, 2, 5, 10, 15, 20, 30, 45, 60, 90, 120, 180, 240, 360, 480, 720, 1440]
_UNITS = {"K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}


class AccountingOffError(ClusterError):
    """The cluster keeps no accounting (``sacct`` has no usage figures)."""


@dataclasses.dataclass(frozen=True)
class TaskUsage:
    """What one job or array task used (None: not known)."""

    job_id: str  # "123" or "123_4"
    state: str
    elapsed: float  # seconds
    cpu_time: float  # seconds of CPU (user + system), all steps
    cpus: int  # allocated
    max_rss: int | None  # bytes, the largest step's peak
    requested_memory: int | None  # bytes for the whole job
    time_limit: int | None  # seconds; None when unlimited

    @property
    def cpu_efficiency(self) -> float | None:
        """TotalCPU / (Elapsed x AllocCPUS), 0..1 (None before the task ran a second)."""
        if self.elapsed <= 0 or self.cpus <= 0:
            return None
        return self.cpu_time / (self.elapsed * self.cpus)

    @property
    def memory_used(self) -> float | None:
        """Peak memory / requested memory (None when either is unknown)."""
        if self.max_rss is None or not self.requested_memory:
            return None
        return self.max_rss / self.requested_memory

    @property
    def time_used(self) -> float | None:
        """Elapsed / time limit (None when unlimited)."""
        if not self.time_limit:
            return None
        return self.elapsed / self.time_limit

    @property
    def cores_used(self) -> float | None:
        """The average number of cores busy while the task ran."""
        return None if self.elapsed <= 0 else self.cpu_time / self.elapsed


def parse_cpu_time(text: str) -> float:
    """Seconds of sacct's TotalCPU: "00:03.460", "1:02:03", "2-01:02:03", "03.5"."""
    text = text.strip()
    if not text:
        return 0.0
    days = 0
    if "-" in text:
        day_text, text = text.split("-", 1)
        days = int(day_text)
    seconds = 0.0
    for part in text.split(":"):
        seconds = seconds * 60 + float(part)
    return days * 86400 + seconds


def parse_rss(text: str) -> int | None:
    """Bytes of a sacct size ("170096K", "1.5G", "0"); None when empty."""
    text = text.strip()
    if not text:
        return None
    match = re.fullmatch(r"([0-9.]+)([KMGT]?)", text)
    if match is None:
        return None
    number, unit = match.groups()
    return int(float(number) * _UNITS.get(unit, 1))


def _requested_memory(text: str, cpus: int, nodes: int = 1) -> int | None:
    """ReqMem in bytes for the job: "400M" (per node), "500Mc"/"500Mn" (older SLURM)."""
    text = text.strip()
    per_cpu = text.endswith("c")
    size = parse_rss(text.rstrip("cn"))
    if size is None or size == 0:
        return None
    return size * (cpus if per_cpu else nodes)


def _time_limit(text: str) -> int | None:
    text = text.strip()
    return int(text) * 60 if text.isdigit() else None  # "UNLIMITED", "Partition_Limit"


def parse_usage(output: str) -> list[TaskUsage]:
    """Parse ``sacct -n -P --format=USAGE_FORMAT`` (allocation and step lines).

    Returns one ``TaskUsage`` per job or array task, in sacct's order; steps only add
    their peak memory to their task's.
    """
    found: dict[str, TaskUsage] = {}
    peaks: dict[str, int] = {}
    for line in output.splitlines():
        fields = line.strip().split("|")
        if len(fields) != 8:
            continue
        job_text, state, elapsed, total_cpu, cpus, rss, req_mem, limit = fields
        task_text, _, step = job_text.partition(".")
        parsed = parse_job_id(task_text)
        if parsed is None or (parsed[1] is not None and len(parsed[1]) != 1):
            continue  # a pending range "123_[4-9]" has used nothing yet
        if step:
            peak = parse_rss(rss)
            if peak is not None:
                peaks[task_text] = max(peaks.get(task_text, 0), peak)
            continue
        allocated = int(cpus) if cpus.strip().isdigit() else 1
        found[task_text] = TaskUsage(
            job_id=task_text,
            state=state.split(" ", 1)[0],
            elapsed=float(elapsed) if elapsed.strip().isdigit() else 0.0,
            cpu_time=parse_cpu_time(total_cpu),
            cpus=allocated,
            max_rss=parse_rss(rss),
            requested_memory=_requested_memory(req_mem, allocated),
            time_limit=_time_limit(limit),
        )
    return [
        dataclasses.replace(usage, max_rss=max(peaks[key], usage.max_rss or 0))
        if key in peaks
        else usage
        for key, usage in found.items()
    ]


def round_memory(size: float) -> str:
    """The smallest size people write that holds ``size`` bytes: "200M", "1.5G", "12G"."""
    mib = size / _MIB
    for step in _MEMORY_LADDER:
        if step >= mib:
            if step < 1024:
                return f"{step}M"
            gib = step / 1024
            return f"{gib:g}G"
    return f"{math.ceil(mib / 1024 / 1024)}T"


def round_time(seconds: float) -> str:
    """The shortest time limit people write that holds ``seconds``: "00:05:00", "1-00:00:00"."""
    minutes = max(seconds, MIN_TIME) / 60
    for step in _TIME_LADDER:
        if step >= minutes:
            return format_time(step * 60)
    return format_time(math.ceil(minutes / 1440) * 86400)


@dataclasses.dataclass(frozen=True)
class Summary:
    """Median and max of each figure over the tasks that ran (None: no task had it)."""

    tasks: int  # tasks with figures
    cpu_efficiency: tuple[float, float] | None
    max_rss: tuple[float, float] | None  # bytes
    memory_used: tuple[float, float] | None  # fraction of the request
    elapsed: tuple[float, float] | None  # seconds
    time_used: tuple[float, float] | None  # fraction of the limit


def _median_max(values: Sequence[float | None]) -> tuple[float, float] | None:
    known = [v for v in values if v is not None]
    if not known:
        return None
    return statistics.median(known), max(known)


def summarise(usages: Sequence[TaskUsage]) -> Summary:
    """Median and max over the tasks that ran (elapsed > 0)."""
    ran = [u for u in usages if u.elapsed > 0]
    return Summary(
        tasks=len(ran),
        cpu_efficiency=_median_max([u.cpu_efficiency for u in ran]),
        max_rss=_median_max([u.max_rss for u in ran]),
        memory_used=_median_max([u.memory_used for u in ran]),
        elapsed=_median_max([u.elapsed for u in ran]),
        time_used=_median_max([u.time_used for u in ran]),
    )


@dataclasses.dataclass(frozen=True)
class Suggestion:
    """What to ask for next time (None: no figure to base it on)."""

    memory: str | None  # e.g. "1.5G"
    time: str | None  # e.g. "00:20:00"
    cpus: int | None

    def as_options(self) -> dict[str, str | int]:
        """The keywords for ``task.with_options(...)``, e.g. {"memory": "1.5G", "cpus": 1}."""
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}

    def __str__(self) -> str:
        options = self.as_options()
        return ", ".join(f"{k}={v!r}" for k, v in options.items()) or "(no figures yet)"


def suggest(usages: Sequence[TaskUsage]) -> Suggestion:
    """Memory: the largest peak x 1.25; time: the longest run x 1.5 (at least a minute);
    cpus: the most cores any task kept busy, rounded up (at most what was allocated).
    Each rounded up to what people write. Only tasks that ran count."""
    ran = [u for u in usages if u.elapsed > 0]
    peaks = [u.max_rss for u in ran if u.max_rss is not None]
    memory = round_memory(max(peaks) * MEMORY_HEADROOM) if peaks else None
    time = round_time(max(u.elapsed for u in ran) * TIME_HEADROOM) if ran else None
    cpus = None
    busy = [(u.cores_used, u.cpus) for u in ran if u.cores_used is not None]
    if busy:
        cores, allocated = max(busy)
        # a task busy 95 % of one core needs that core; 1.2 cores' worth needs two
        cpus = max(1, min(allocated, math.ceil(cores - 0.1)))
    return Suggestion(memory=memory, time=time, cpus=cpus)
