"""``JobArray``: the future of a ``.map()``, one ``Job`` per item, results in order."""

from __future__ import annotations

import collections
import concurrent.futures
import datetime
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, overload

from tqdm.auto import tqdm

from slurm_magics.core.states import JobState
from slurm_magics.jobs import efficiency, table, waiting
from slurm_magics.jobs.futures import AwaitableFuture
from slurm_magics.jobs.job import Call, Job, Run, mimebundle

__all__ = ["JobArray", "jobs_of", "progress_bar", "runs_of", "slurm_ids_of"]


class JobArray(AwaitableFuture[list[Any]]):
    """The future of a ``.map()``: one ``Job`` per item, results in order.

    ``await arr`` / ``arr.result()`` give the list of results, or raise the first error as
    soon as it is known (the other tasks keep running). ``arr[i]`` is the i-th ``Job``.

    Attributes:
        jobs (list[Job]): one per item, in order.
        job_ids (list[str]): SLURM's array ids (several when split past MaxArraySize).
        state (JobState): RUNNING while any task runs, else PENDING while any waits, else
            the worst end (FAILED over CANCELLED over COMPLETED).

    ``counts()`` returns {state name: number of tasks}; ``cancel()`` scancels every
    unfinished task (True if any was cancelled); ``wait(timeout)`` blocks without raising
    and returns whether all ended; ``to_dataframe()`` returns one row per task (pandas).
    """

    def __init__(self, jobs: Sequence[Job], runs: Sequence[Run]) -> None:
        super().__init__()
        self.jobs = list(jobs)
        self.runs = list(runs)
        #: the function and the (args, kwargs) of each task, when this process made the
        #: array (``to_dataframe()`` shows them as columns); None for an attached array
        self.calls: tuple[Callable[..., Any], Sequence[Call]] | None = None
        #: the cache key of a cached map, and whether an earlier run answered it
        self.cache: Any = None
        self._remaining = len(self.jobs)
        self._lock = threading.Lock()
        for job in self.jobs:
            job.add_done_callback(self._on_job_done)
        if not self.jobs:
            self._resolve([])

    def _on_job_done(self, job: concurrent.futures.Future[Any]) -> None:
        with self._lock:
            self._remaining -= 1
            remaining = self._remaining
        if self.done():  # the array already ended (first error, or cancelled)
            return
        if job.cancelled():
            self._fail(concurrent.futures.CancelledError(f"{job!r} was cancelled"))
        elif job.exception() is not None:
            self._fail(job.exception())  # type: ignore[arg-type]
        elif remaining == 0:
            self._resolve([j.result() for j in self.jobs])

    # -- sequence ---------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.jobs)

    @overload
    def __getitem__(self, index: int) -> Job: ...
    @overload
    def __getitem__(self, index: slice) -> list[Job]: ...
    def __getitem__(self, index: int | slice) -> Job | list[Job]:
        return self.jobs[index]

    def __iter__(self) -> Iterator[Job]:
        return iter(self.jobs)

    def __hash__(self) -> int:
        return id(self)

    def __eq__(self, other: object) -> bool:
        return self is other

    def __repr__(self) -> str:
        counts = ", ".join(f"{state.lower()}={n}" for state, n in self.counts().items())
        return f"<JobArray {self.name} {','.join(self.job_ids)} [{counts}]>"

    @property
    def name(self) -> str:
        return self.runs[0].name if self.runs else "empty"

    @property
    def job_ids(self) -> list[str]:
        """SLURM's array job ids (several when the map was split past MaxArraySize)."""
        return [part.slurm_id for run in self.runs for part in run.slices]

    @property
    def job_id(self) -> str:
        """The first (usually the only) SLURM array job id."""
        ids = self.job_ids
        return ids[0] if ids else ""

    # -- state ------------------------------------------------------------------------
    def counts(self) -> dict[str, int]:
        """How many tasks are in each state."""
        return dict(collections.Counter(job.state.value for job in self.jobs))

    @property
    def state(self) -> JobState:
        """RUNNING while any task runs, else PENDING while any waits, else the worst end."""
        states = {job.state for job in self.jobs}
        for state in (JobState.RUNNING, JobState.PENDING):
            if state in states:
                return state
        for state in JobState:
            if state.finished and state is not JobState.COMPLETED and state in states:
                return state
        return JobState.COMPLETED

    def cancel(self) -> bool:
        """scancel every task of the array; every unfinished task's future is cancelled.

        Raises:
            ClusterError: SLURM refused (its message says why); every task is left as it
                was, still tracked.
        """
        pending = [job for job in self.jobs if not job.done()]
        if pending:
            pending[0].cluster.cancel_jobs(pending)
        cancelled = super().cancel()  # first, so the array reads as cancelled, not failed
        for job in pending:
            job._mark_cancelled()
        return cancelled or bool(pending)

    def efficiency(self) -> efficiency.EfficiencyReport:
        """Per task and summarised: CPU efficiency, peak memory vs request, elapsed vs limit,
        and a suggested memory=/time=/cpus=; one sacct call per array (per 1,000 tasks).

        Raises:
            AccountingOffError: the cluster keeps no accounting.
        """
        host = self.jobs[0].cluster
        name = f"array {','.join(self.job_ids)} ({self.name})"
        return efficiency.report(name, self.jobs, host.usage, source=host.usage_source)

    @property
    def pending_reason(self) -> str:
        """Why its first pending task waits, in words; "" when none waits."""
        host = self.jobs[0].cluster if self.jobs else None
        return waiting.pending_reason(self.jobs, host.running_jobs if host else None)

    def expected_start(self) -> datetime.datetime | None:
        """SLURM's earliest expected start of its pending tasks (one ``squeue --start``)."""
        if not self.jobs:
            return None
        return waiting.expected_start(self.jobs, self.jobs[0].cluster.start_estimates)

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        """Live sweep progress in Jupyter, counts per state elsewhere."""
        return mimebundle(self, include, exclude)

    def to_dataframe(self) -> Any:
        """A pandas DataFrame, one row per task: its arguments by parameter name (known to
        the process that made the array), job_id, state, elapsed, result, error. Needs
        pandas."""
        return table.to_dataframe(self)

    def to_parquet(self, path: str, **options: Any) -> None:
        """Write ``to_dataframe()`` to a Parquet file (needs pandas and pyarrow)."""
        table.to_parquet(self, path, **options)

    def wait(self, timeout: float | None = None, *, progress: bool = False) -> bool:
        """Block until every task has ended (errors are not raised); True if all ended.

        ``progress=True`` shows a tqdm bar of finished tasks.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        bar = progress_bar(self) if progress else None
        try:
            while True:
                done = sum(job.done() for job in self.jobs)
                if bar is not None:
                    bar.update(done - bar.n)
                    bar.set_postfix_str(_summary(self.counts()), refresh=False)
                if done == len(self.jobs):
                    return True
                if deadline is not None and time.monotonic() >= deadline:
                    return False
                concurrent.futures.wait(
                    [job for job in self.jobs if not job.done()][:1],
                    timeout=0.1 if bar is not None else 0.5,
                )
        finally:
            if bar is not None:
                bar.close()


def jobs_of(item: Job | JobArray) -> list[Job]:
    """The jobs of a future: an array's tasks in order, or the job itself."""
    return list(item.jobs) if isinstance(item, JobArray) else [item]


def runs_of(item: Job | JobArray) -> list[Run]:
    """The runs (run folders) behind a job or an array."""
    return list(item.runs) if isinstance(item, JobArray) else [item.run]


def slurm_ids_of(item: Job | JobArray) -> list[str]:
    """SLURM's ids: an array's ids (one per sbatch), or the job's "123"/"123_4"."""
    return item.job_ids if isinstance(item, JobArray) else [item.job_id]


def _summary(counts: dict[str, int]) -> str:
    return " ".join(f"{state.lower()}={n}" for state, n in sorted(counts.items()))


def progress_bar(array: JobArray) -> Any:
    """A tqdm bar of an array's finished tasks (``tqdm.auto``: a widget in notebooks)."""
    return tqdm(total=len(array), desc=array.name, unit="task", mininterval=0.5)
