"""Finding an sbatch whose reply was lost with the connection, by the tag in its --comment.

When the connection drops while sbatch runs, the job may or may not exist. The controller
is asked (a few times: a dead sbatch's request can still wait in its queue) for the job
with the submission's tag; found, that is the job. Not found, the caller submits again,
and if the lost one turns up after all, one of the two is cancelled: never two jobs for
one submission, never a job without its future.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence

from slurm_magics.core.errors import ClusterError, SubmissionError
from slurm_magics.core.parsing import jobs_with_comment
from slurm_magics.core.sbatch import submission_comment
from slurm_magics.transport import CommandResult

__all__ = ["LOOKS", "find_lost", "keep_one", "tagged_jobs"]

log = logging.getLogger(__name__)

#: pauses (seconds) before each look for a lost submission
LOOKS = (0.0, 1.0, 2.0, 4.0)

Runner = Callable[[Sequence[str]], Awaitable[CommandResult]]


async def tagged_jobs(run: Runner, user: str, tag: str) -> list[str]:
    """The ids of the jobs submitted with ``tag``, oldest first."""
    comment = submission_comment(tag)
    advice = f"look for jobs with comment {comment} (squeue -o '%F %k') before submitting again"
    try:
        result = await run(["squeue", "--noheader", "--states=all", "-u", user, "-o", "%F|%k"])
    except ClusterError as error:
        raise SubmissionError(
            f"sbatch's connection was lost and so was squeue's ({error}): {advice}"
        ) from error
    if result.returncode != 0:
        raise SubmissionError(
            f"sbatch's connection was lost and squeue failed ({result.stderr.strip()}): {advice}"
        )
    return jobs_with_comment(result.stdout, comment)


async def find_lost(
    run: Runner, user: str, tag: str, lost: BaseException, looks: Sequence[float] = LOOKS
) -> str | None:
    """The job of a submission whose sbatch was lost, or None if it never came to be."""
    for pause in looks:
        await asyncio.sleep(pause)
        found = await tagged_jobs(run, user, tag)
        if found:
            log.warning("sbatch's reply was lost (%s); the job is %s", lost, found[0])
            return found[0]
    log.warning("sbatch was lost (%s) and no job came of it; submitting again", lost)
    return None


async def keep_one(run: Runner, user: str, tag: str, submitted: str) -> str:
    """After submitting again: if the lost job exists too, cancel the newer; the one kept."""
    found = await tagged_jobs(run, user, tag)
    if len(found) <= 1:
        return submitted
    kept, extra = found[0], found[1:]
    log.warning("the lost sbatch made job %s after all; cancelling the copy %s", kept, extra)
    cancelled = await run(["scancel", *extra])
    if cancelled.returncode != 0:  # kept is tracked all the same; say that a copy runs too
        log.error(
            "SLURM refused to cancel the copy %s (%s): it runs beside job %s; scancel it by hand",
            extra,
            (cancelled.stderr or cancelled.stdout).strip(),
            kept,
        )
    return kept
