"""Job states as users see them, normalised from what squeue and sacct print, and whether a
node (as sinfo prints it) can start jobs (pure)."""

from __future__ import annotations

import enum

__all__ = ["JobState", "node_accepts_jobs", "normalise_state", "signal_of", "state_from_stderr"]


class JobState(str, enum.Enum):
    """The state of one job or array task."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    TIMEOUT = "TIMEOUT"
    OUT_OF_MEMORY = "OUT_OF_MEMORY"
    NODE_FAIL = "NODE_FAIL"
    DEPENDENCY_FAILED = "DEPENDENCY_FAILED"

    def __str__(self) -> str:
        return self.value

    @property
    def finished(self) -> bool:
        """True once the state can no longer change."""
        return self not in (JobState.PENDING, JobState.RUNNING)


# SLURM's own names (squeue --states=all and sacct) mapped to ours.
_SLURM_STATES = {
    "PENDING": JobState.PENDING,
    "REQUEUED": JobState.PENDING,
    "REQUEUE_FED": JobState.PENDING,
    "REQUEUE_HOLD": JobState.PENDING,
    "RESV_DEL_HOLD": JobState.PENDING,
    "SUSPENDED": JobState.RUNNING,
    "STOPPED": JobState.RUNNING,
    "RUNNING": JobState.RUNNING,
    "CONFIGURING": JobState.RUNNING,
    "COMPLETING": JobState.RUNNING,
    "RESIZING": JobState.RUNNING,
    "SIGNALING": JobState.RUNNING,
    "STAGE_OUT": JobState.RUNNING,
    "COMPLETED": JobState.COMPLETED,
    "FAILED": JobState.FAILED,
    "BOOT_FAIL": JobState.NODE_FAIL,
    "NODE_FAIL": JobState.NODE_FAIL,
    "CANCELLED": JobState.CANCELLED,
    "DEADLINE": JobState.TIMEOUT,
    "TIMEOUT": JobState.TIMEOUT,
    "OUT_OF_MEMORY": JobState.OUT_OF_MEMORY,
    "PREEMPTED": JobState.CANCELLED,
    "REVOKED": JobState.CANCELLED,
    "SPECIAL_EXIT": JobState.FAILED,
}

# jobacct_gather's OverMemoryKill ends a job as FAILED with signal 9 (exit code "0:9") and
# slurmstepd's "exceeded memory limit" line in its stderr, where cgroup enforcement says
# OUT_OF_MEMORY; both mean the same thing to a user. Signal 9 alone is no evidence: a
# `kill -9`, a watchdog or the kernel's OOM killer of the whole machine all send it.


def normalise_state(slurm_state: str, *, stderr: str | None = None) -> JobState:
    """Map a SLURM state (e.g. "CANCELLED by 0", "OUT_OF_MEMORY", "FAILED") to a JobState.

    ``stderr`` is the job's stderr text when known: FAILED is OUT_OF_MEMORY only when it
    holds slurmstepd's memory-limit line (OverMemoryKill) — sacct's exit code "0:9" alone
    is no evidence (see ``signal_of`` for the message). Raises ``ValueError`` for a state
    SLURM does not have.
    """
    word = slurm_state.strip().split(" ", 1)[0].rstrip("+").upper()
    state = _SLURM_STATES.get(word)
    if state is None:
        raise ValueError(f"unknown SLURM job state {slurm_state!r}")
    if state is JobState.FAILED and _mentions_memory_kill(stderr):
        return JobState.OUT_OF_MEMORY
    return state


def signal_of(exit_code: str | None) -> int | None:
    """The signal that ended a job, from sacct's "code:signal" ("0:9" -> 9); None if none."""
    if not exit_code or ":" not in exit_code:
        return None
    try:
        number = int(exit_code.split(":", 1)[1])
    except ValueError:
        return None
    return number or None


def _mentions_memory_kill(stderr: str | None) -> bool:
    if not stderr:
        return False
    text = stderr.lower()
    return "exceeded memory limit" in text or "exceeded job memory limit" in text


def state_from_stderr(stderr: str) -> JobState | None:
    """Guess how a job ended from the lines slurmstepd writes to its stderr (no accounting)."""
    if _mentions_memory_kill(stderr):
        return JobState.OUT_OF_MEMORY
    if "DUE TO TIME LIMIT" in stderr:
        return JobState.TIMEOUT
    if "DUE TO NODE FAILURE" in stderr:
        return JobState.NODE_FAIL
    if "CANCELLED AT" in stderr:
        return JobState.CANCELLED
    return None


# sinfo's short node states (``%t``) in which a job can start now: IDLE, MIXED, ALLOCATED,
# COMPLETING and PLANNED (SLURM >= 22.05: idle, but the backfill scheduler has it in its
# plan for a pending job). DOWN, DRAIN, DRNG, FAIL, FUTR, MAINT, RESV, INVAL, UNK... cannot.
_NODE_STATES_STARTING_JOBS = frozenset({"idle", "mix", "alloc", "comp", "plnd"})
# sinfo's flags after the state: "*" not responding, "~" powered off, "#" powering up,
# "%" powering down, "^" reboot issued, "$" in a maintenance reservation: none starts
# our jobs now. "!" (power down pending), "@" (reboot pending) and "-" (planned) still do.
_NODE_FLAGS = "*~#!%$@^-"
_NODE_FLAGS_STOPPING_JOBS = frozenset("*~#%^$")


def node_accepts_jobs(state: str) -> bool:
    """Whether a node in ``state`` (sinfo's ``%t``: "idle", "mix-", "plnd", "down*") can
    start a job now: its base state is idle/mix/alloc/comp/plnd and no flag says it is
    unreachable, powered off, rebooting or under maintenance. Unknown words are False."""
    word = state.strip().lower()
    base = word.rstrip(_NODE_FLAGS)
    flags = set(word[len(base) :])
    return base in _NODE_STATES_STARTING_JOBS and not flags & _NODE_FLAGS_STOPPING_JOBS
