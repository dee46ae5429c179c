"""Read the #SBATCH lines of a batch script (pure), for the local backend."""

from __future__ import annotations

import dataclasses
import re
import shlex

from slurm_magics.core.parsing import expand_task_ids
from slurm_magics.core.resources import parse_memory, parse_time

__all__ = ["Directives", "expand_log_pattern", "parse_directives"]

_LINE = re.compile(r"^#SBATCH\s+--([a-z-]+)(?:=(.*))?$")


@dataclasses.dataclass(frozen=True)
class Directives:
    """What the local backend needs from a script's #SBATCH lines."""

    name: str = "job"
    array: tuple[int, ...] | None = None
    max_concurrent: int | None = None
    output: str = "slurm-%j.out"
    error: str | None = None
    dependency: str = ""
    cpus: int = 1
    memory_mb: int | None = None
    time_seconds: int | None = None
    hold: bool = False


def parse_directives(script: str) -> Directives:
    """Collect the options of the #SBATCH lines before the first command."""
    options: dict[str, str] = {}
    for line in script.splitlines()[1:]:
        if not line.strip():
            continue
        if not line.startswith("#SBATCH"):
            break
        match = _LINE.match(line.strip())
        if match:
            raw = match.group(2)
            options[match.group(1)] = " ".join(shlex.split(raw)) if raw else ""
    array, throttle = None, None
    if "array" in options:
        spec, _, limit = options["array"].partition("%")
        array = expand_task_ids(spec)
        throttle = int(limit) if limit else None
    return Directives(
        name=options.get("job-name", "job"),
        array=array,
        max_concurrent=throttle,
        output=options.get("output", "slurm-%j.out"),
        error=options.get("error"),
        dependency=options.get("dependency", ""),
        cpus=int(options.get("cpus-per-task", "1")),
        memory_mb=parse_memory(options["mem"]) if "mem" in options else None,
        time_seconds=parse_time(options["time"]) if "time" in options else None,
        hold="hold" in options,
    )


def expand_log_pattern(
    pattern: str, *, job_id: int, array_id: int, task_id: int | None, name: str
) -> str:
    """Fill sbatch's filename pattern: %j, %A, %a, %x (and %% for a literal %)."""
    values = {
        "j": str(job_id),
        "A": str(array_id),
        "a": str(task_id) if task_id is not None else "4294967294",
        "x": name,
        "%": "%",
    }
    return re.sub(r"%([jAax%])", lambda m: values[m.group(1)], pattern)
