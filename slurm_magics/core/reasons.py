"""Why a job waits, in words, and SLURM's estimate of when it starts (pure).

``explain_reason`` turns squeue's reason codes (``%r``) into a sentence a notebook user
can act on; ``parse_start`` reads ``squeue --start -o START_FORMAT`` output.
"""

from __future__ import annotations

import dataclasses
import datetime

from slurm_magics.core.parsing import parse_job_id

__all__ = ["START_FORMAT", "StartEstimate", "explain_reason", "parse_start"]

#: squeue's fields for start estimates: id, expected start, reason
START_FORMAT = "%i|%S|%r"

_EXPLANATIONS = {
    "Priority": "other jobs come first (higher priority)",
    "Resources": "waiting for free nodes (CPUs, memory or GPUs to become free)",
    "Dependency": "waiting for the jobs it depends on to finish",
    "DependencyNeverSatisfied": "a job it depends on failed: it will never start",
    "BeginTime": "asked to start later (--begin)",
    "JobHeldUser": "held by you (scontrol release to let it run)",
    "JobHeldAdmin": "held by an administrator",
    "ReqNodeNotAvail": "a node it needs is down, drained or reserved",
    "PartitionNodeLimit": "it asks for more nodes than the partition allows",
    "PartitionTimeLimit": "its time limit is longer than the partition allows",
    "PartitionDown": "the partition is down",
    "PartitionInactive": "the partition is inactive",
    "JobArrayTaskLimit": "the array's own limit of tasks at once (%N) is reached",
    "Reservation": "waiting for its reservation to start",
    "Licenses": "waiting for licenses",
    "NodeDown": "a node it needs is down",
    "BadConstraints": "no node has the features it asks for",
    "InvalidQOS": "its QOS is not valid for you",
    "InvalidAccount": "its account is not valid for you",
    "Cleaning": "SLURM is still cleaning up an earlier run of it",
    "Prolog": "the node runs its prolog",
    "None": "about to be scheduled",
}
# Limits of an association or QOS: "QOSMaxJobsPerUserLimit", "AssocGrpCpuLimit", ...
_LIMIT_WORDS = {
    "MaxJobsPerUser": "running jobs per user",
    "MaxJobsPerAccount": "running jobs per account",
    "MaxSubmitJobsPerUser": "queued jobs per user",
    "MaxCpuPerUser": "CPUs per user",
    "MaxCpusPerUser": "CPUs per user",
    "MaxNodePerUser": "nodes per user",
    "MaxMemPerUser": "memory per user",
    "MaxWallDurationPerJob": "time per job",
    "GrpCpu": "CPUs of the group",
    "GrpMem": "memory of the group",
    "GrpJobs": "running jobs of the group",
    "GrpNode": "nodes of the group",
    "GrpTRES": "resources of the group",
    "MaxTRESPerUser": "resources per user",
    "MaxTRESPerJob": "resources per job",
}


def explain_reason(reason: str, *, running: int | None = None) -> str:
    """SLURM's pending reason in words, led by the code: "Priority: other jobs come first".

    Args:
        reason: squeue's reason code (``%r``), e.g. "Resources", "QOSMaxJobsPerUserLimit".
        running: how many of the user's jobs run now, to state the limit a per-user
            jobs limit stands at ("you are at your QOS limit of 4 running jobs").

    Returns:
        "" for no reason ("", "None", "(null)"); the code itself when unknown.
    """
    code = reason.strip()
    if code in ("", "(null)"):
        return ""
    if code in _EXPLANATIONS:
        return f"{code}: {_EXPLANATIONS[code]}"
    for prefix, whose in (("QOS", "QOS"), ("Assoc", "association")):
        if code.startswith(prefix) and code.endswith("Limit"):
            core = code[len(prefix) : -len("Limit")]
            words = next((w for k, w in _LIMIT_WORDS.items() if core.startswith(k)), None)
            what = words or core
            if running is not None and "jobs per user" in what:
                what = f"{running} {what}"
            return f"{code}: you are at your {whose} limit of {what}"
    return code


@dataclasses.dataclass(frozen=True)
class StartEstimate:
    """SLURM's estimate for a pending job: when it should start (None: none yet), and why
    it waits."""

    job_id: str  # "123", "123_4", or "123_[5-9]" for pending tasks of an array
    start: datetime.datetime | None
    reason: str

    def __str__(self) -> str:
        when = self.start.strftime("%Y-%m-%d %H:%M:%S") if self.start else "not estimated yet"
        why = explain_reason(self.reason)
        return f"{self.job_id}: expected start {when}" + (f" ({why})" if why else "")


def parse_start(output: str) -> list[StartEstimate]:
    """Parse ``squeue --start --noheader -o START_FORMAT``: one estimate per line.

    SLURM prints the start as local time without a zone ("2026-11-30T04:28:52") or "N/A".
    """
    found = []
    for line in output.splitlines():
        fields = [field.strip() for field in line.strip().split("|")]
        if len(fields) != 3 or parse_job_id(fields[0]) is None:
            continue
        job_id, start_text, reason = fields
        try:
            start = datetime.datetime.fromisoformat(start_text)
        except ValueError:  # "N/A", "Unknown"
            start = None
        found.append(StartEstimate(job_id, start, reason))
    return found
