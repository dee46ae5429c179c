"""Exceptions users catch (pure)."""

from __future__ import annotations

from collections.abc import Sequence

from slurm_magics.core.states import JobState

__all__ = [
    "ClusterError",
    "DependencyError",
    "JobFailedError",
    "RemoteTraceback",
    "SlurmMagicsError",
    "SubmissionError",
]


class SlurmMagicsError(Exception):
    """Base class of the errors slurm_magics raises itself."""


class ClusterError(SlurmMagicsError):
    """The cluster could not be reached or used (commands missing, SSH refused, ...)."""


class SubmissionError(SlurmMagicsError):
    """sbatch refused a job; the message holds what it said."""


class RemoteTraceback(Exception):
    """The traceback of an exception raised on the cluster; set as the local ``__cause__``."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text

    def __str__(self) -> str:
        return self.text


class JobFailedError(SlurmMagicsError):
    """A job ended without a Python result: killed, timed out, out of memory, cancelled, ..."""

    def __init__(
        self,
        message: str,
        *,
        state: JobState | str,
        job_id: str,
        exit_code: str | None = None,
        stderr_tail: str = "",
        log_paths: Sequence[str] = (),
    ) -> None:
        super().__init__(message)
        self.state = JobState(state)
        self.job_id = job_id
        self.exit_code = exit_code
        self.stderr_tail = stderr_tail
        self.log_paths = tuple(log_paths)

    def __str__(self) -> str:
        text = super().__str__()
        if self.stderr_tail:
            text += "\n--- stderr (last lines) ---\n" + self.stderr_tail.rstrip()
        return text

    def __reduce__(self) -> tuple[object, ...]:
        return (
            _rebuild_job_failed,
            (
                self.args[0],
                self.state.value,
                self.job_id,
                self.exit_code,
                self.stderr_tail,
                self.log_paths,
            ),
        )


def _rebuild_job_failed(
    message: str,
    state: str,
    job_id: str,
    exit_code: str | None,
    stderr_tail: str,
    log_paths: Sequence[str],
) -> JobFailedError:
    return JobFailedError(
        message,
        state=state,
        job_id=job_id,
        exit_code=exit_code,
        stderr_tail=stderr_tail,
        log_paths=log_paths,
    )


class DependencyError(SlurmMagicsError):
    """A job could not run because a job it depends on failed or was cancelled."""

    def __init__(self, message: str, *, job_id: str | None, dependency: str) -> None:
        super().__init__(message)
        self.job_id = job_id
        self.dependency = dependency

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild_dependency, (self.args[0], self.job_id, self.dependency))


def _rebuild_dependency(message: str, job_id: str | None, dependency: str) -> DependencyError:
    return DependencyError(message, job_id=job_id, dependency=dependency)
