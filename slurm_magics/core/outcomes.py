"""Turn what a task left behind (result file, SLURM state, stderr) into a value or an error."""

from __future__ import annotations

import signal
from typing import Any

from slurm_magics.core.errors import DependencyError, JobFailedError, RemoteTraceback
from slurm_magics.core.states import JobState, signal_of

__all__ = [
    "STDERR_TAIL",
    "dependency_error",
    "error_from_outcome",
    "failure_without_result",
    "last_lines",
]

STDERR_TAIL = 4096  # bytes of a task's stderr read for an error message


def last_lines(data: bytes, count: int = 30) -> str:
    """The last ``count`` lines of a log's tail, as text."""
    return "\n".join(data.decode(errors="replace").splitlines()[-count:])


_STATE_MESSAGES = {
    JobState.TIMEOUT: "hit its time limit; ask for more time (time=...)",
    JobState.OUT_OF_MEMORY: "ran out of memory; ask for more (memory=...)",
    JobState.CANCELLED: "was cancelled outside this session (scancel, an admin, preemption)",
    JobState.NODE_FAIL: "was lost when its node failed; resubmit it",
    JobState.FAILED: "ended without writing a result; see its stderr",
}


def error_from_outcome(
    outcome: tuple[Any, ...], *, job_id: str, stderr_tail: str, log_paths: tuple[str, ...]
) -> BaseException:
    """The exception to raise for an ("error", exc, traceback, type, message) result."""
    _, error, text, type_name, message = outcome
    # The runner also prints the traceback to stderr; show the rest of stderr only once.
    stderr_tail = stderr_tail.replace(text.strip(), "").strip()
    tail = (
        f"\n--- stderr of job {job_id} (last lines) ---\n{stderr_tail.rstrip()}"
        if stderr_tail
        else ""
    )
    cause = RemoteTraceback(f'\n"""\nRemote traceback (job {job_id}):\n{text.rstrip()}{tail}\n"""')
    if not isinstance(error, BaseException):
        error = JobFailedError(
            f"job {job_id} failed: {type_name}: {message}",
            state=JobState.FAILED,
            job_id=job_id,
            exit_code=None,
            stderr_tail=stderr_tail,
            log_paths=log_paths,
        )
    error.__cause__ = cause
    return error  # type: ignore[no-any-return]


def failure_without_result(
    state: JobState,
    *,
    job_id: str,
    exit_code: str | None,
    stderr_tail: str,
    log_paths: tuple[str, ...],
    detail: str = "",
) -> JobFailedError:
    """A JobFailedError for a task that ended (or vanished) without a result."""
    reason = detail or _STATE_MESSAGES.get(state, "ended without a result")
    number = signal_of(exit_code) if state is JobState.FAILED else None
    if number is not None:  # SIGKILL alone is no memory kill (see states.normalise_state)
        reason = f"was killed by signal {number} ({_signal_name(number)}); {reason}"
    code = f" (exit code {exit_code})" if exit_code else ""
    return JobFailedError(
        f"job {job_id} {reason}{code}; state {state.value}; logs: {', '.join(log_paths)}",
        state=state,
        job_id=job_id,
        exit_code=exit_code,
        stderr_tail=stderr_tail,
        log_paths=log_paths,
    )


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return "unknown signal"


def dependency_error(job_id: str | None, upstream: str, why: str) -> DependencyError:
    """The error of a job that cannot run because an upstream job failed."""
    return DependencyError(
        f"job {job_id or '(not submitted)'} cannot run: it depends on {upstream}, which {why}. "
        "Fix the upstream job and resubmit both.",
        job_id=job_id,
        dependency=upstream,
    )
