"""Final states, from sacct, of the items the job list would show as UNKNOWN.

An unfinished item of a run on this machine's SLURM is UNKNOWN once its job has left the
queue (SLURM forgets ended jobs after MinJobAge) and no process recorded its end: the
kernel that submitted it was killed first, say. Accounting still knows how it ended. One
sacct call asks for every such item of a listing; its answers are recorded in the registry
as a kernel records an end (so ``sm.jobs()`` and later listings agree, and sacct is not
asked again for them), and the listing shows them.

sacct runs at most once per ``interval`` seconds; an item it does not know, or not yet as
ended, stays UNKNOWN until a later call. A failing sacct is logged, and the listing shows
what it would have shown without it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence

from slurm_magics.core.outcomes import STDERR_TAIL, failure_without_result, last_lines
from slurm_magics.core.parsing import AccountingRow
from slurm_magics.core.sbatch import log_path
from slurm_magics.core.states import JobState, normalise_state
from slurm_magics.jobs.registry import JobRecord, Registry, RunRecord
from slurm_magics.scheduler.slurm import Scheduler
from slurm_magics.server import views
from slurm_magics.server.views import JSON, QueueKey

__all__ = [
    "SACCT_INTERVAL",
    "Settler",
    "Wanted",
    "accounting_answers",
    "read_tail",
    "sacct_ids",
    "unknown_elements",
]

#: at most one sacct call per this many seconds, however many panels ask
SACCT_INTERVAL = 30.0

Page = list[tuple[RunRecord, list[JobRecord]]]


@dataclasses.dataclass(frozen=True)
class Wanted:
    """One job or array task (an element of a run) whose items are UNKNOWN."""

    record: RunRecord
    element: int
    items: tuple[int, ...]


def unknown_elements(
    page: Sequence[tuple[RunRecord, Sequence[JobRecord]]],
    live: Mapping[QueueKey, str],
    fetched_at: float,
) -> dict[str, Wanted]:
    """The elements of a page of runs with items shown UNKNOWN, by SLURM id ("123_4")."""
    wanted: dict[str, list[int]] = {}
    owners: dict[str, tuple[RunRecord, int]] = {}
    for record, jobs in page:
        if not views.is_local(record):
            continue
        states = views.item_states(record, jobs, live, fetched_at=fetched_at)
        for item, state in enumerate(states):
            if state != views.UNKNOWN:
                continue
            element = item // max(record.chunk_size, 1)
            slurm_id = views.slurm_id_of(record, element)
            if slurm_id is not None:
                wanted.setdefault(slurm_id, []).append(item)
                owners[slurm_id] = (record, element)
    return {slurm_id: Wanted(*owners[slurm_id], tuple(items)) for slurm_id, items in wanted.items()}


def sacct_ids(slurm_ids: Iterable[str]) -> list[str]:
    """What to ask sacct for: "123_4" for one task of an array job, "123" for a job that is
    not an array or for several tasks of one (a short argument, whatever their number)."""
    by_job: dict[str, set[str]] = {}
    for slurm_id in slurm_ids:
        by_job.setdefault(slurm_id.partition("_")[0], set()).add(slurm_id)
    return sorted(job if len(ids) > 1 else next(iter(ids)) for job, ids in by_job.items())


def accounting_answers(rows: Iterable[AccountingRow]) -> dict[str, tuple[str, str]]:
    """(SLURM state, exit code) of each job and array task in sacct rows, by SLURM id; a
    row of a range of array tasks ("123_[5-9]", never started) answers for each of them."""
    answers: dict[str, tuple[str, str]] = {}
    for row in rows:
        if row.task_ids is None:
            answers[row.array_job_id] = (row.state, row.exit_code)
        else:
            for task in row.task_ids:
                answers[f"{row.array_job_id}_{task}"] = (row.state, row.exit_code)
    return answers


class Settler:
    """Asks sacct how UNKNOWN items ended, records the answers, at most once per interval.

    Listings that arrive while a call runs wait for that call (and show what it settled of
    their items); others within ``interval`` seconds of the last call show their items as
    they are.
    """

    def __init__(
        self,
        scheduler: Scheduler,
        registry: Callable[[], Registry],
        *,
        interval: float = SACCT_INTERVAL,
        log: logging.Logger | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._scheduler = scheduler
        self._registry = registry
        self._interval = interval
        self._log = log or logging.getLogger(__name__)
        self._clock = clock
        self._asked: float | None = None  # clock() of the last call
        self._asked_at: float | None = None  # and its wall-clock time, for the panel
        self._error: str | None = None
        self._accounting: bool | None = None  # unknown until SLURM's config is read
        self._running: asyncio.Task[dict[tuple[str, int], JobRecord]] | None = None

    def status(self) -> JSON:
        """How many sacct calls the server made, when the last one ran, how it failed."""
        return {
            "calls": self._scheduler.counters["sacct"],
            "asked_at": self._asked_at,
            "error": self._error,
        }

    async def settle(self, page: Page, live: Mapping[QueueKey, str], fetched_at: float) -> Page:
        """The page, with the items sacct says have ended in their final state."""
        wanted = await asyncio.to_thread(unknown_elements, page, live, fetched_at)
        if not wanted:
            return page
        if self._running is None:
            if self._asked is not None and self._clock() - self._asked < self._interval:
                return page
            self._asked, self._asked_at = self._clock(), time.time()
            self._running = asyncio.ensure_future(self._ask(wanted))
        # shield: a client that disconnects must not cancel the call others wait for
        settled = await asyncio.shield(self._running)
        if not settled:
            return page
        return [
            (record, [settled.get((record.run_id, job.item), job) for job in jobs])
            for record, jobs in page
        ]

    async def _ask(self, wanted: dict[str, Wanted]) -> dict[tuple[str, int], JobRecord]:
        try:
            rows = await self._accounting_rows(wanted)
            self._error = None
            return await asyncio.to_thread(self._record, wanted, accounting_answers(rows))
        except Exception as error:
            self._error = f"{type(error).__name__}: {error}"
            self._log.warning(
                "slurm_magics: cannot learn from sacct how %d job(s) that left the queue "
                "ended (%s); they stay UNKNOWN, asking again in %.0f s",
                len(wanted),
                self._error,
                self._interval,
            )
            return {}
        finally:
            self._running = None

    async def _accounting_rows(self, wanted: dict[str, Wanted]) -> list[AccountingRow]:
        """sacct's rows for the wanted elements (none when SLURM keeps no accounting)."""
        if self._accounting is None:
            self._accounting = (await self._scheduler.show_config()).accounting
            if not self._accounting:
                self._log.info(
                    "slurm_magics: SLURM keeps no accounting here: jobs that left the queue "
                    "with no recorded end stay UNKNOWN in the SLURM panel"
                )
        if not self._accounting:
            return []
        return await self._scheduler.accounting(sacct_ids(wanted))

    def _record(
        self, wanted: dict[str, Wanted], answers: Mapping[str, tuple[str, str]]
    ) -> dict[tuple[str, int], JobRecord]:
        """Record the final state of every wanted item sacct answered for as ended."""
        registry = self._registry()
        settled: dict[tuple[str, int], JobRecord] = {}
        for slurm_id, target in wanted.items():
            if slurm_id not in answers:
                continue  # not (yet) in accounting: stays UNKNOWN
            slurm_state, exit_code = answers[slurm_id]
            run_dir = target.record.run_dir
            err_path = log_path(run_dir, slurm_id, stream="err")
            tail = _stderr_tail(err_path) if slurm_state.startswith("FAILED") else ""
            try:
                state = normalise_state(slurm_state, stderr=tail)
            except ValueError:
                continue
            if not state.finished:
                continue
            # A process following the run may have recorded its end since the listing read it.
            current = {job.item: job for job in registry.jobs_of(target.record.run_id)}
            for item in target.items:
                known = current.get(item)
                if known is None or JobState(known.state).finished:
                    continue
                ended, error = _item_end(state, slurm_id, exit_code, tail, run_dir, item)
                registry.note_state(
                    target.record.run_id,
                    item,
                    ended.value,
                    known.started_at,
                    known.ended_at,
                    error,
                )
                settled[target.record.run_id, item] = JobRecord(
                    item, ended.value, known.started_at, known.ended_at, error
                )
        registry.flush()
        return settled


def _item_end(
    state: JobState, slurm_id: str, exit_code: str, tail: str, run_dir: str, item: int
) -> tuple[JobState, str | None]:
    """An item's final state and recorded error, as a kernel following it would record
    them: COMPLETED with its result written, else the failure its job's state stands for
    (a job that COMPLETED without writing the item's result FAILED)."""
    has_result = os.path.exists(f"{run_dir}/results/{item}.pkl")
    if state is JobState.COMPLETED and has_result:
        return state, None
    detail = ""
    if state is JobState.COMPLETED:
        detail = "ended but wrote no result"
    elif state is JobState.FAILED and has_result:
        detail = "failed; its result file holds what it returned or raised"
    error = failure_without_result(
        JobState.FAILED if state is JobState.COMPLETED else state,
        job_id=slurm_id,
        exit_code=exit_code or None,
        stderr_tail=tail,
        log_paths=(
            log_path(run_dir, slurm_id, stream="out"),
            log_path(run_dir, slurm_id, stream="err"),
        ),
        detail=detail,
    )
    return error.state, f"{type(error).__name__}: {error}"[:4000]


def _stderr_tail(path: str) -> str:
    """The last lines of a job's stderr ("" when there is none or it cannot be read)."""
    try:
        return last_lines(read_tail(path, STDERR_TAIL)[0])
    except OSError:
        return ""


def read_tail(path: str, max_bytes: int) -> tuple[bytes, int]:
    """The last ``max_bytes`` of a file and its size; (b"", 0) when it does not exist yet."""
    try:
        with open(path, "rb") as stream:
            size = stream.seek(0, os.SEEK_END)
            stream.seek(max(0, size - max_bytes))
            return stream.read(max_bytes), size
    except FileNotFoundError:
        return b"", 0
