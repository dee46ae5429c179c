"""Parsers of squeue, sacct, sbatch and scontrol output (pure; tested on recorded output).

The commands are run with the formats below so that one line is one job, array task or
compact range of pending array tasks, with fields separated by "|".
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Iterator

__all__ = [
    "SACCT_FORMAT",
    "SLURM_ID",
    "SQUEUE_FORMAT",
    "AccountingRow",
    "ClusterConfig",
    "QueueRow",
    "element_slurm_id",
    "elements_submitted",
    "expand_task_ids",
    "jobs_with_comment",
    "parse_cluster_config",
    "parse_job_id",
    "parse_sacct",
    "parse_sbatch_parsable",
    "parse_squeue",
    "unset",
]

#: A SLURM job id, "123", or an array task's, "123_4" (use with ``fullmatch``).
SLURM_ID = re.compile(r"(\d{1,18})(?:_(\d{1,9}))?")


def unset(value: str | None) -> bool:
    """Whether SLURM printed "no value" for a field: "", "None" or "(null)"."""
    return value is None or value.strip() in ("", "None", "(null)")


def elements_submitted(slices: Iterable[tuple[str, int, int]]) -> int:
    """How many elements of a run its slices cover (they go in in order, from element 0):
    the first element not submitted yet. ``slices`` as for ``element_slurm_id``."""
    return max((first + max(n_elements, 1) for _, first, n_elements in slices), default=0)


def element_slurm_id(slices: Iterable[tuple[str, int, int]], element: int) -> str | None:
    """SLURM's id of one element of a run split into sbatch calls.

    Args:
        slices: (SLURM id, first element, number of elements; 0 for a plain job) per sbatch.
        element: the element's index in the whole run.

    Returns:
        "123" for a plain job, "123_4" for an array task, None when no slice holds it.
    """
    for slurm_id, first, n_elements in slices:
        if n_elements == 0 and element == first:
            return slurm_id
        if first <= element < first + n_elements:
            return f"{slurm_id}_{element - first}"
    return None


# The job name comes last: it is the one field that may itself contain "|".
SQUEUE_FORMAT = "%i|%A|%T|%r|%N|%P|%M|%j"
SACCT_FORMAT = "JobID,State,ExitCode,NodeList,Elapsed"

_JOB_ID_RE = re.compile(r"^(\d+)(?:_(\d+|\[[^\]]*\]))?$")


@dataclasses.dataclass(frozen=True)
class QueueRow:
    """One squeue line: a job, one array task, or a range of pending array tasks."""

    array_job_id: str
    task_ids: tuple[int, ...] | None  # None for a job that is not an array
    state: str
    reason: str
    nodes: str
    partition: str = ""
    elapsed: str = ""  # squeue's %M: "0:03", "1:02:03", "2-01:02:03"
    name: str = ""


@dataclasses.dataclass(frozen=True)
class AccountingRow:
    """One sacct line (allocation only, -X)."""

    array_job_id: str
    task_ids: tuple[int, ...] | None
    state: str
    exit_code: str
    nodes: str
    elapsed: str


@dataclasses.dataclass(frozen=True)
class ClusterConfig:
    """The parts of `scontrol show config` a client needs."""

    max_array_size: int = 1001
    max_job_count: int = 10000
    min_job_age: int = 300
    accounting: bool = False
    version: str = ""
    cluster_name: str = ""


def expand_task_ids(expression: str) -> tuple[int, ...]:
    """Expand "[1,3,5-7%2]" or "4" into task ids (a "%N" throttle suffix is ignored)."""
    text = expression.strip().strip("[]").split("%", 1)[0]
    ids: list[int] = []
    for part in filter(None, text.split(",")):
        if "-" in part:
            first, last = part.split("-", 1)
            step = 1
            if ":" in last:
                last, step_text = last.split(":", 1)
                step = int(step_text)
            ids.extend(range(int(first), int(last) + 1, step))
        else:
            ids.append(int(part))
    return tuple(ids)


def parse_job_id(text: str) -> tuple[str, tuple[int, ...] | None] | None:
    """Split "123", "123_4" or "123_[5-9]" into (array job id, task ids); None if foreign."""
    match = _JOB_ID_RE.match(text.strip())
    if match is None:
        return None
    job_id, tasks = match.groups()
    return job_id, (expand_task_ids(tasks) if tasks is not None else None)


def _job_lines(output: str) -> Iterator[tuple[str, tuple[int, ...] | None, list[str]]]:
    """(job id, task ids, the other fields) of each "|"-separated line of five fields."""
    for line in output.splitlines():
        fields = [field.strip() for field in line.strip().split("|")]
        parsed = parse_job_id(fields[0]) if len(fields) == 5 else None
        if parsed is not None:
            yield parsed[0], parsed[1], fields[1:]


def parse_squeue(output: str) -> list[QueueRow]:
    """Parse `squeue --noheader -o SQUEUE_FORMAT` output (also the older five-field one)."""
    # The array's id comes from %i ("129_1"): %A is each task's own job id ("138"),
    # except for the last task and a pending range, which keep the array's id.
    rows = []
    for line in output.splitlines():
        fields = line.strip().split("|", 7)
        if len(fields) not in (5, 8):
            continue
        parsed = parse_job_id(fields[0])
        if parsed is None:
            continue
        state, reason, nodes = (field.strip() for field in fields[2:5])
        extra = [field.strip() for field in fields[5:7]] + fields[7:]
        rows.append(QueueRow(parsed[0], parsed[1], state, reason, nodes, *extra))
    return rows


def parse_sacct(output: str) -> list[AccountingRow]:
    """Parse `sacct -X -n -P --format=SACCT_FORMAT` output."""
    return [AccountingRow(job_id, tasks, *rest) for job_id, tasks, rest in _job_lines(output)]


def jobs_with_comment(output: str, comment: str) -> list[str]:
    """The ids of the jobs whose comment is ``comment``, oldest first, from
    `squeue -o "%F|%k"` output (an array's tasks share its id)."""
    ids = set()
    for line in output.splitlines():
        job_id, _, found = line.strip().partition("|")
        if found == comment and job_id.isdigit():
            ids.add(job_id)
    return sorted(ids, key=int)


def parse_sbatch_parsable(output: str) -> str:
    """Return the job id from `sbatch --parsable` output ("123" or "123;cluster")."""
    for line in output.splitlines():
        text = line.strip()
        if text:
            job_id = text.split(";", 1)[0]
            if job_id.isdigit():
                return job_id
    raise ValueError(f"sbatch printed no job id: {output.strip()!r}")


def _seconds(text: str) -> int:
    match = re.match(r"^(\d+)", text.strip())
    return int(match.group(1)) if match else 0


def parse_cluster_config(output: str) -> ClusterConfig:
    """Read the limits a client must respect from `scontrol show config`."""
    values: dict[str, str] = {}
    for line in output.splitlines():
        if "=" in line:
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    defaults = ClusterConfig()
    version = values.get("SLURM_VERSION", "")
    return ClusterConfig(
        max_array_size=int(values.get("MaxArraySize", defaults.max_array_size)),
        max_job_count=int(values.get("MaxJobCount", defaults.max_job_count)),
        min_job_age=_seconds(values.get("MinJobAge", str(defaults.min_job_age))),
        accounting=values.get("AccountingStorageType", "accounting_storage/none")
        not in ("accounting_storage/none", "")
        and not unset(values.get("AccountingStorageType", "")),
        version=version,
        cluster_name=values.get("ClusterName", ""),
    )
