"""Retries: a task that failed for a cluster reason runs again, under the same future.

A failed array element is requeued in SLURM (``scontrol requeue``, then released at once),
so its id, log files and the jobs waiting on it stay the same; those waiting jobs, which
SLURM marked ``DependencyNeverSatisfied`` when the attempt failed, get their dependency set
again so that they wait for the new attempt.
"""

from __future__ import annotations

from collections.abc import Iterable

from .errors import DependencyError, JobFailedError
from .job import Run
from .resources import ResourceError
from .states import JobState

__all__ = ["DEFAULT_RETRY_ON", "RETRY_KINDS", "check_retry_on", "failure_kind", "wants_retry"]

#: what may be retried: ended states without a result, or "exception" (a Python error)
RETRY_KINDS = frozenset(
    {"NODE_FAIL", "PREEMPTED", "TIMEOUT", "OUT_OF_MEMORY", "FAILED", "CANCELLED", "exception"}
)
DEFAULT_RETRY_ON = frozenset({"NODE_FAIL", "PREEMPTED"})


def check_retry_on(values: Iterable[str] | str) -> frozenset[str]:
    """Validate ``retry_on`` (before anything is submitted)."""
    chosen = frozenset([values] if isinstance(values, str) else values)
    unknown = sorted(chosen - RETRY_KINDS)
    if unknown:
        raise ResourceError(
            f"retry_on has {', '.join(map(repr, unknown))}: choose from "
            f"{', '.join(sorted(RETRY_KINDS))} ('exception' retries Python errors too)."
        )
    return chosen


def failure_kind(error: BaseException) -> str | None:
    """How a failure counts for retry_on; None for failures that are never retried."""
    if isinstance(error, DependencyError):
        return None
    if isinstance(error, JobFailedError):
        if error.state is JobState.CANCELLED and "preempted" in str(error):
            return "PREEMPTED"
        return error.state.value
    return "exception"


def wants_retry(run: Run, element: int, error: BaseException) -> bool:
    """True when this failure of ``element`` should run again (and counts the attempt)."""
    kind = failure_kind(error)
    if kind is None or kind not in run.retry_on:
        return False
    return run.attempts.get(element, 0) < run.retries
