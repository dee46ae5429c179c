"""How many more jobs the controller takes from this user: limits, counts, refusals (pure).

Every array task is one job record. The controller refuses an sbatch that would pass
MaxJobCount (all users' records, finished ones included until MinJobAge) or a submit limit of
the job's QOS (MaxSubmitJobsPerUser, GrpSubmitJobs) or of the user's association
(MaxSubmitJobs, GrpSubmitJobs). The limits come from `scontrol show config` and
`sacctmgr show qos/assoc -P -n`; the counts from the user's squeue.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping

from slurm_magics.core.errors import SubmissionError
from slurm_magics.core.parsing import QueueRow

__all__ = [
    "ACTIVE_STATES",
    "ASSOC_FORMAT",
    "QOS_FORMAT",
    "Limit",
    "QueueCounts",
    "Refusal",
    "SubmitLimitError",
    "SubmitLimits",
    "classify_refusal",
    "count_queue",
    "parse_assoc_limits",
    "parse_qos_limits",
    "room_for",
]

#: `sacctmgr show qos format=... -P -n`
QOS_FORMAT = "Name,MaxSubmitJobsPerUser,GrpSubmitJobs"
#: `sacctmgr show assoc where user=U format=... -P -n`
ASSOC_FORMAT = "Cluster,Account,Partition,DefaultQOS,MaxSubmitJobs,GrpSubmitJobs"

#: squeue states of jobs that count towards submit limits (finished ones do not)
ACTIVE_STATES = frozenset(
    {"PENDING", "RUNNING", "SUSPENDED", "CONFIGURING", "COMPLETING", "REQUEUED", "RESIZING"}
)


@dataclasses.dataclass(frozen=True)
class Limit:
    """One cap on queued jobs: its SLURM name, where it is set, and its value.

    ``str(limit)`` reads like "MaxSubmitJobsPerUser 300 (QOS smwaves)".
    """

    name: str  # "MaxJobCount", "MaxSubmitJobsPerUser", "MaxSubmitJobs", "GrpSubmitJobs"
    scope: str  # "cluster", "QOS smwaves", "association root"
    value: int

    def __str__(self) -> str:
        return f"{self.name} {self.value} ({self.scope})"


@dataclasses.dataclass(frozen=True)
class SubmitLimits:
    """The submit limits known for one user on one cluster (read once per connect).

    ``qos`` maps a QOS name to (MaxSubmitJobsPerUser, GrpSubmitJobs), None where unset;
    ``associations`` holds (account, partition, default QOS, MaxSubmitJobs, GrpSubmitJobs)
    of each of the user's associations on the cluster.
    """

    max_job_count: int
    qos: Mapping[str, tuple[int | None, int | None]] = dataclasses.field(default_factory=dict)
    associations: tuple[tuple[str, str, str, int | None, int | None], ...] = ()

    def default_qos(self, account: str | None) -> str:
        """The QOS a job without --qos gets: its association's default, else "normal"."""
        for _, _, default, _, _ in self._associations_of(account):
            if default:
                return default
        return "normal"

    def _associations_of(
        self, account: str | None
    ) -> list[tuple[str, str, str, int | None, int | None]]:
        chosen = [a for a in self.associations if account is None or a[0] == account]
        return chosen or list(self.associations)

    def for_job(self, qos: str | None, account: str | None) -> list[Limit]:
        """The limits a job with this --qos/--account (None: not given) is held to.

        Without --account every association of the user is taken (the strictest wins).
        """
        limits = [Limit("MaxJobCount", "cluster", self.max_job_count)]
        qos_name = qos or self.default_qos(account)
        per_user, group = self.qos.get(qos_name, (None, None))
        if per_user is not None:
            limits.append(Limit("MaxSubmitJobsPerUser", f"QOS {qos_name}", per_user))
        if group is not None:
            limits.append(Limit("GrpSubmitJobs", f"QOS {qos_name}", group))
        for assoc_account, _, _, max_submit, grp_submit in self._associations_of(account):
            if max_submit is not None:
                limits.append(Limit("MaxSubmitJobs", f"association {assoc_account}", max_submit))
            if grp_submit is not None:
                limits.append(Limit("GrpSubmitJobs", f"association {assoc_account}", grp_submit))
        return limits


@dataclasses.dataclass(frozen=True)
class QueueCounts:
    """What the user's squeue says, counted: records (all states) and active jobs."""

    records: int = 0  # every job record of the user, finished ones too (MaxJobCount)
    active: int = 0  # pending or running jobs of the user (association limits)


def count_queue(rows: Iterable[QueueRow]) -> QueueCounts:
    """Count the user's job records (an array task is one) in ``squeue --states=all`` rows."""
    records = active = 0
    for row in rows:
        n = len(row.task_ids) if row.task_ids else 1
        records += n
        if row.state.split(" ", 1)[0].upper() in ACTIVE_STATES:
            active += n
    return QueueCounts(records, active)


def room_for(limits: Iterable[Limit], counts: QueueCounts, in_qos: int) -> tuple[int, Limit | None]:
    """How many more jobs fit, and the limit that binds (None: nothing binds).

    Args:
        limits: the job's limits (``SubmitLimits.for_job``).
        counts: the user's records and active jobs from squeue.
        in_qos: the user's active jobs in the job's QOS (as far as the caller knows).

    Returns:
        (room, binding limit): room >= 0 jobs; the binding limit is the one leaving least.
    """
    best: tuple[int, Limit | None] = (1 << 62, None)
    for limit in limits:
        if limit.name == "MaxJobCount":
            used = counts.records
        elif limit.scope.startswith("QOS"):
            used = in_qos
        else:
            used = counts.active
        left = max(0, limit.value - used)
        if left < best[0]:
            best = (left, limit)
    return best


def _number(text: str) -> int | None:
    text = text.strip()
    return int(text) if text.isdigit() else None


def parse_qos_limits(output: str) -> dict[str, tuple[int | None, int | None]]:
    """Parse `sacctmgr show qos format=QOS_FORMAT -P -n`: {name: (per user, group)}."""
    found: dict[str, tuple[int | None, int | None]] = {}
    for line in output.splitlines():
        fields = line.strip().split("|")
        if len(fields) >= 3 and fields[0]:
            found[fields[0]] = (_number(fields[1]), _number(fields[2]))
    return found


def parse_assoc_limits(
    output: str, cluster: str = ""
) -> tuple[tuple[str, str, str, int | None, int | None], ...]:
    """Parse `sacctmgr show assoc format=ASSOC_FORMAT -P -n` (rows of ``cluster``, when
    given): (account, partition, default QOS, MaxSubmitJobs, GrpSubmitJobs) per row."""
    rows = []
    for line in output.splitlines():
        fields = line.strip().split("|")
        if len(fields) < 6 or not fields[1] or (cluster and fields[0] and fields[0] != cluster):
            continue
        rows.append((fields[1], fields[2], fields[3], _number(fields[4]), _number(fields[5])))
    return tuple(rows)


@dataclasses.dataclass(frozen=True)
class Refusal:
    """sbatch refused because of a limit on queued jobs (waiting for room helps)."""

    limit: str  # SLURM's name of it, e.g. "QOSMaxSubmitJobPerUserLimit", "MaxJobCount"
    said: str  # what sbatch printed

    @property
    def description(self) -> str:
        """The limit in words, e.g. "the QOS's MaxSubmitJobsPerUser"."""
        return _DESCRIPTIONS.get(self.limit, self.limit)


class SubmitLimitError(SubmissionError):
    """sbatch was refused by a limit on queued jobs (``refusal`` says which); the caller
    may wait for room and submit again."""

    def __init__(self, refusal: Refusal) -> None:
        super().__init__(f"sbatch refused the job: {refusal.said}")
        self.refusal = refusal


_DESCRIPTIONS = {
    "QOSMaxSubmitJobPerUserLimit": "the QOS's MaxSubmitJobsPerUser",
    "QOSMaxSubmitJobPerAccountLimit": "the QOS's MaxSubmitJobsPerAccount",
    "QOSGrpSubmitJobsLimit": "the QOS's GrpSubmitJobs",
    "AssocMaxSubmitJobLimit": "the association's MaxSubmitJobs",
    "AssocGrpSubmitJobsLimit": "the association's GrpSubmitJobs",
    "MaxJobCount": "the cluster's MaxJobCount (or a busy controller)",
}
_LIMIT_WORD = re.compile(r"\b((?:QOS|Assoc)\w*Submit\w*Limit)\b")
# sbatch's own words while it retries a refusal that passes (MaxJobCount reached, EAGAIN)
_FULL = (
    "temporarily unable to accept job",
    "Resource temporarily unavailable",
    "job queue full",
    "MaxJobCount",
)


def classify_refusal(said: str) -> Refusal | None:
    """The queued-jobs limit behind an sbatch refusal, or None for any other refusal."""
    match = _LIMIT_WORD.search(said)
    if match:
        return Refusal(match.group(1), said.strip())
    if any(sign in said for sign in _FULL):
        return Refusal("MaxJobCount", said.strip())
    return None
