"""How tracked jobs that squeue reports ended, or no longer lists, get their end.

The poller applies each squeue to its runs; the elements it finds ended (a row in an end
state), absent (no row: gone after MinJobAge, or cancelled while pending) or put back in
the queue by SLURM itself are settled here: their result if one landed after all, else
the failure SLURM's verdict (or sacct's, or the stderr's) stands for.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable

from slurm_magics.core.errors import ClusterError
from slurm_magics.core.outcomes import failure_without_result
from slurm_magics.core.parsing import ClusterConfig, QueueRow
from slurm_magics.core.states import JobState, normalise_state, state_from_stderr
from slurm_magics.jobs.ending import Ending, Key
from slurm_magics.jobs.job import Job, Run
from slurm_magics.jobs.retries import count_slurm_requeue
from slurm_magics.scheduler.slurm import SchedulerBackend

__all__ = ["Settling"]

log = logging.getLogger(__name__)

#: why an element that left the queue while pending (no row, no accounting) ended
_TAKEN_OUT = "was cancelled while pending, outside this session (scancel of the task, the panel)"


class Settling:
    """Ends the jobs of elements SLURM says have ended, left the queue or were requeued."""

    def __init__(
        self,
        scheduler: SchedulerBackend,
        config: ClusterConfig,
        ending: Ending,
        runs: dict[str, Run],
        slices: dict[str, Run],
        taken_out: set[Key],
        *,
        result_grace: float,
        vanish_grace: float,
    ) -> None:
        # runs, slices and taken_out are the poller's own (shared, not copied)
        self.scheduler, self.config, self.ending = scheduler, config, ending
        self.runs, self.slices, self.taken_out = runs, slices, taken_out
        self.result_grace = result_grace
        self.vanish_grace = vanish_grace
        self.missing_since: dict[Key, float] = {}  # since when an ended element has no result

    def keys_of(self, slurm_id: str, task_ids: tuple[int, ...] | None) -> list[Key]:
        """The (run, element) keys a scheduler row stands for ([] for jobs not tracked)."""
        run = self.slices.get(slurm_id)
        if run is None:
            return []
        part = next(p for p in run.slices if p.slurm_id == slurm_id)
        return [(run.run_id, part.first_element + task) for task in task_ids or (0,)]

    async def requeued_by_slurm(
        self, keys: list[Key], on_retry: Callable[[Run, int, int, BaseException], None] | None
    ) -> bool:
        """SLURM put running attempts back in the queue (their node failed): a retry when
        retry_on has NODE_FAIL and retries are left, else cancelled and failed NODE_FAIL."""
        for key in keys:
            run, jobs = self.runs[key[0]], self.jobs_of(key)
            if not jobs:
                continue
            tail = await self.ending.stderr_tail(jobs[0])
            detail = "was put back in the queue by SLURM (its node failed, say)"
            error = failure_without_result(
                JobState.NODE_FAIL,
                job_id=jobs[0].job_id,
                exit_code=None,
                stderr_tail=tail,
                log_paths=jobs[0].log_paths(),
                detail=detail,
            )
            if count_slurm_requeue(run, key[1], error, on_retry):
                for job in jobs:
                    job._set_live(JobState.PENDING, "Requeued")
                continue
            note = await self.cancel_never_starting([run.slurm_id_of(key[1])])
            for job in jobs:
                job._end_failed(
                    JobState.NODE_FAIL,
                    failure_without_result(
                        JobState.NODE_FAIL,
                        job_id=job.job_id,
                        exit_code=None,
                        stderr_tail=tail,
                        log_paths=job.log_paths(),
                        detail=detail + note,
                    ),
                )
        return bool(keys)

    def jobs_of(self, key: Key) -> list[Job]:
        run = self.runs[key[0]]
        first = key[1] * run.chunk_size
        return [j for j in run.jobs[first : first + run.chunk_size] if not j.done()]

    async def cancel_never_starting(self, slurm_ids: Iterable[str]) -> str:
        """scancel jobs that can never start; a refusal (they stay PENDING in SLURM, never to
        run) is logged and returned as a note for their errors, never swallowed."""
        try:
            await self.scheduler.cancel(slurm_ids)
        except ClusterError as refused:
            log.warning("could not cancel jobs that can never start: %s", refused)
            return f" (and scancel was refused, so SLURM still lists it: {refused})"
        return ""

    async def _end_without_sentinel(
        self,
        key: Key,
        jobs: list[Job],
        state: JobState,
        exit_code: str | None,
        tail: str,
        detail: str = "",
    ) -> bool:
        self.missing_since.pop(key, None)
        await self.ending.without_result(jobs, state, exit_code, tail, detail)
        return True

    async def settle_ended(self, ended: dict[Key, QueueRow]) -> bool:
        changed = False
        now = time.monotonic()
        due: list[tuple[Key, QueueRow, JobState, str]] = []
        for key, row in ended.items():
            jobs = self.jobs_of(key)
            if not jobs:
                continue
            tail = await self.ending.stderr_tail(jobs[0])
            state = normalise_state(row.state, stderr=tail)
            if state in (JobState.COMPLETED, JobState.FAILED):
                # The runner writes a result for each item before exiting: wait a little
                # for it (shared file systems show new files late) before calling it lost.
                first = self.missing_since.setdefault(key, now)
                if now - first < self.result_grace:
                    continue
            due.append((key, row, state, tail))
        codes = await self._exit_codes(
            [key for key, _, state, _ in due if state is JobState.FAILED]
        )
        for key, row, state, tail in due:
            detail = "was preempted" if row.state.startswith("PREEMPTED") else ""
            changed |= await self._end_without_sentinel(
                key, self.jobs_of(key), state, codes.get(key), tail, detail
            )
        return changed

    async def _exit_codes(self, keys: list[Key]) -> dict[Key, str]:
        """sacct's exit codes ("0:9": killed by signal 9) of ended elements, in one call;
        none without accounting or when sacct fails (squeue prints no exit codes)."""
        if not keys or not self.config.accounting:
            return {}
        slurm_ids = {self.runs[k[0]].slurm_id_of(k[1]) for k in keys}
        try:
            rows = await self.scheduler.accounting(slurm_ids)
        except ClusterError as error:
            log.warning("sacct failed (%s); ending the jobs without their exit codes", error)
            return {}
        wanted = set(keys)
        return {
            key: row.exit_code
            for row in rows
            if normalise_state(row.state).finished
            for key in self.keys_of(row.array_job_id, row.task_ids)
            if key in wanted
        }

    async def settle_absent(self, keys: list[Key]) -> bool:
        if not keys:
            return False
        rows: dict[Key, tuple[str, str]] = {}
        if self.config.accounting:
            slurm_ids = {part.slurm_id for k in keys for part in self.runs[k[0]].slices}
            try:
                for row in await self.scheduler.accounting(slurm_ids):
                    for key in self.keys_of(row.array_job_id, row.task_ids):
                        rows[key] = (row.state, row.exit_code)
            except ClusterError as error:
                log.warning("sacct failed (%s); trying again later", error)
                return False
        changed = False
        now = time.monotonic()
        for key in keys:
            jobs = self.jobs_of(key)
            if not jobs:
                continue
            first = self.missing_since.setdefault(key, now)
            tail = await self.ending.stderr_tail(jobs[0])
            if key in self.taken_out and (
                key not in rows or not normalise_state(rows[key][0]).finished
            ):
                self.taken_out.discard(key)
                changed |= await self._end_without_sentinel(
                    key, jobs, JobState.CANCELLED, None, tail, _TAKEN_OUT
                )
                continue
            if key in rows:
                state = normalise_state(rows[key][0], stderr=tail)
                if state.finished and (
                    state not in (JobState.COMPLETED, JobState.FAILED)
                    or now - first >= self.result_grace
                ):
                    changed |= await self._end_without_sentinel(
                        key, jobs, state, rows[key][1], tail
                    )
                continue
            if now - first < (
                self.result_grace if not self.config.accounting else self.vanish_grace
            ):
                continue
            state = state_from_stderr(tail) or JobState.FAILED
            detail = "" if state is not JobState.FAILED else "left the queue without a result"
            changed |= await self._end_without_sentinel(key, jobs, state, None, tail, detail)
        return changed
