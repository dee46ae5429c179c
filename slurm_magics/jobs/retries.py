"""Retries: a task that failed for a cluster reason runs again, under the same future.

A failed array element is requeued in SLURM (``scontrol requeue``, then released at once),
so its id, log files and the jobs waiting on it stay the same; those waiting jobs, which
SLURM marked ``DependencyNeverSatisfied`` when the attempt failed, get their dependency set
again so that they wait for the new attempt.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping

from slurm_magics.core.errors import ClusterError, DependencyError, JobFailedError
from slurm_magics.core.resources import ResourceError
from slurm_magics.core.states import JobState
from slurm_magics.jobs.job import Run
from slurm_magics.scheduler.slurm import SchedulerBackend
from slurm_magics.transport import Transport

__all__ = [
    "DEFAULT_RETRY_ON",
    "RETRY_KINDS",
    "check_retry_on",
    "count_slurm_requeue",
    "failure_kind",
    "run_again",
    "wants_retry",
]

log = logging.getLogger(__name__)

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


def count_slurm_requeue(
    run: Run,
    element: int,
    error: BaseException,
    on_retry: Callable[[Run, int, int, BaseException], None] | None = None,
) -> bool:
    """SLURM requeued a running ``element`` by itself (jobs with retries= are submitted
    with --requeue, so that ``scontrol requeue`` works, and SLURM requeues them when their
    node fails): True when that is one of the retries asked for (the attempt is counted),
    False when it is not (the caller cancels it and fails its jobs with ``error``)."""
    if not wants_retry(run, element, error):
        return False
    attempt = run.attempts[element] = run.attempts.get(element, 0) + 1
    log.warning(
        "%s was requeued by SLURM (%s); it runs again (retry %d of %d)",
        run.slurm_id_of(element), type(error).__name__, attempt, run.retries,
    )  # fmt: skip
    if on_retry is not None:
        on_retry(run, element, attempt, error)
    return True


async def run_again(
    scheduler: SchedulerBackend,
    transport: Transport,
    elements: Mapping[tuple[Run, int], BaseException],
    on_retry: Callable[[Run, int, int, BaseException], None] | None = None,
) -> list[Run]:
    """Requeue failed elements (raises ClusterError if SLURM refuses); return re-armed runs."""
    for run, element in elements:
        first = element * run.chunk_size
        last = min(first + run.chunk_size, run.n_items)
        # The failed attempt's outcome must not be taken for the new one's.
        await transport.remove_files([f"{run.run_dir}/results/{i}.pkl" for i in range(first, last)])
    await scheduler.requeue(run.slurm_id_of(element) for run, element in elements)
    for (run, element), error in elements.items():
        attempt = run.attempts[element] = run.attempts.get(element, 0) + 1
        log.warning(
            "%s failed (%s); running it again (retry %d of %d)",
            run.slurm_id_of(element), type(error).__name__, attempt, run.retries,
        )  # fmt: skip
        if on_retry is not None:
            on_retry(run, element, attempt, error)
    rearmed: list[Run] = []
    for run in {run for run, _ in elements}:
        for waiting in run.dependents:
            if waiting.dependency and not all(job.done() for job in waiting.jobs):
                ids = [part.slurm_id for part in waiting.slices]
                try:
                    await scheduler.set_dependency(ids, waiting.dependency)
                except ClusterError as refused:
                    # Not re-armed, it stays DependencyNeverSatisfied: the poller then
                    # ends it with a DependencyError instead of letting it wait forever.
                    log.warning("could not wait on the retry again: %s", refused)
                    continue
                rearmed.append(waiting)
    return rearmed
