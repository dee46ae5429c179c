"""``Job`` and ``JobArray``: futures of SLURM jobs, awaitable in any event loop."""

from __future__ import annotations

import dataclasses
import datetime
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from slurm_magics.core.efficiency import TaskUsage
from slurm_magics.core.parsing import element_slurm_id, elements_submitted
from slurm_magics.core.reasons import StartEstimate
from slurm_magics.core.sbatch import log_path
from slurm_magics.core.states import JobState
from slurm_magics.jobs import efficiency, waiting
from slurm_magics.jobs.futures import AwaitableFuture

if TYPE_CHECKING:  # array.py builds on this module
    from slurm_magics.jobs.array import JobArray

__all__ = ["Call", "FrontEnds", "Job", "JobHost", "Run", "Slice", "front_ends", "mimebundle"]

Call = tuple[tuple[Any, ...], Mapping[str, Any]]  # (args, kwargs) of one call


@dataclasses.dataclass
class FrontEnds:
    """What the job model hands to higher layers, filled in by the package root at import.

    The model never imports its presentations or the API: ``display`` renders a job or an
    array for Jupyter (the ui layer's widgets), ``attach`` finds a job by its SLURM id on a
    cluster, the default one when None (the api layer's history).
    """

    display: Callable[[Job | JobArray, Any, Any], dict[str, Any]] | None = None
    attach: Callable[[str, Any], Job | JobArray] | None = None


#: The hooks in force (see ``FrontEnds``).
front_ends = FrontEnds()


def mimebundle(future: Job | JobArray, include: Any, exclude: Any) -> dict[str, Any]:
    if front_ends.display is None:
        return {"text/plain": repr(future)}
    return front_ends.display(future, include, exclude)


class JobHost(Protocol):
    """What a job needs from its cluster (implemented by ``Cluster``)."""

    description: str

    def cancel_jobs(self, jobs: Sequence[Job]) -> None: ...

    def read_text(self, path: str, max_bytes: int) -> str: ...

    def usage(self, slurm_ids: Sequence[str]) -> list[TaskUsage]: ...

    def start_estimates(self, slurm_ids: Sequence[str]) -> list[StartEstimate]: ...

    @property
    def usage_source(self) -> str: ...

    @property
    def running_jobs(self) -> int | None: ...


@dataclasses.dataclass(frozen=True)
class Slice:
    """One sbatch call of a run: an array of ``n_elements`` (0: not an array)."""

    slurm_id: str
    first_element: int
    n_elements: int


@dataclasses.dataclass(eq=False)
class Run:
    """One run folder: a call or a ``.map()``, split into slices past MaxArraySize."""

    run_id: str
    run_dir: str
    name: str
    n_items: int
    chunk_size: int
    slices: list[Slice] = dataclasses.field(default_factory=list)
    jobs: list[Job] = dataclasses.field(default_factory=list)
    #: the sbatch dependency expression, e.g. "afterok:123_4:125" (for messages)
    dependency: str = ""
    #: where its tasks drop completion sentinels ("": the tracking session's folder)
    sentinel_dir: str = ""
    #: how often an element may run again, and after which failures (see retries.py)
    retries: int = 0
    retry_on: frozenset[str] = frozenset()
    #: attempts made again so far, by element
    attempts: dict[int, int] = dataclasses.field(default_factory=dict)
    #: runs of this session that wait on this one (re-armed when an element is retried)
    dependents: list[Run] = dataclasses.field(default_factory=list)
    submitted_at: float = dataclasses.field(default_factory=time.time)

    def element_of(self, item: int) -> int:
        return item // self.chunk_size

    def slice_of(self, element: int) -> Slice:
        for part in self.slices:
            if part.first_element <= element < part.first_element + max(part.n_elements, 1):
                return part
        raise LookupError(f"element {element} is in no slice of run {self.run_id}")

    def slice_tuples(self) -> list[tuple[str, int, int]]:
        """The slices as (SLURM id, first element, elements), as the registry stores them."""
        return [(s.slurm_id, s.first_element, s.n_elements) for s in self.slices]

    def submitted_end(self) -> int:
        """The first element not submitted yet (the slices go in in order)."""
        return elements_submitted(self.slice_tuples())

    def slurm_id_of(self, element: int) -> str:
        """SLURM's id of one element: "123" (not an array) or "123_4"."""
        found = element_slurm_id(self.slice_tuples(), element)
        if found is None:
            raise LookupError(f"element {element} is in no slice of run {self.run_id}")
        return found


class Job(AwaitableFuture[Any]):
    """The future of one SLURM job (or one item of a ``.map()``).

    ``await job`` / ``job.result()`` give the function's return value, or raise the
    exception it raised on the cluster (its remote traceback as ``__cause__``), or
    ``JobFailedError`` / ``DependencyError``. Awaiting never cancels; ``cancel()`` does,
    in every state.

    Attributes:
        job_id (str): SLURM's id, "123" or "123_4" for an array task.
        state (JobState): PENDING, RUNNING, COMPLETED, FAILED, CANCELLED, TIMEOUT,
            OUT_OF_MEMORY, NODE_FAIL or DEPENDENCY_FAILED (normalised), updated by the
            poller; COMPLETED as soon as the result is available.
        reason (str): SLURM's pending reason, "" when none.
        started_at, ended_at (float | None): Unix times seen by the poller.

    ``result(timeout=None)`` (seconds) blocks and returns the value or raises as above,
    ``concurrent.futures.TimeoutError`` when the timeout passes (the job goes on);
    ``stdout()`` / ``stderr()`` return the job's log text (str, at most ``max_bytes`` of
    the end); ``cancel()`` returns True unless the job had already ended.
    """

    def __init__(self, host: JobHost, run: Run, item: int) -> None:
        super().__init__()
        self._host = host
        self.run = run
        self.item = item
        self.state = JobState.PENDING
        self.reason = ""
        self.node = ""
        self.started_at: float | None = None
        self.ended_at: float | None = None
        self._ending = False  # an end state was claimed: live updates no longer apply
        #: the cache key of a cached call, and whether an earlier run answered it
        self.cache: Any = None

    # -- identity ---------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.run.name

    @property
    def job_id(self) -> str:
        """SLURM's id: "123", or "123_4" for an array task ("" while it waits on the
        client for room under the cluster's job limits)."""
        try:
            return self.run.slurm_id_of(self.run.element_of(self.item))
        except LookupError:
            return ""

    @property
    def cluster(self) -> JobHost:
        return self._host

    def __repr__(self) -> str:
        return f"<Job {self.name} {self.job_id} {self.state.value}>"

    def __hash__(self) -> int:
        return id(self)

    def __eq__(self, other: object) -> bool:
        return self is other

    @classmethod
    def attach(cls, job_id: str, cluster: Any = None) -> Job | JobArray:
        """The future of a job by its SLURM id, also one submitted by an ended process.

        Args:
            job_id: SLURM's id, "123" for a job or a whole array, "123_4" for one task.
            cluster: the ``Cluster`` it was submitted to (default: the default cluster).

        Returns:
            A ``Job``, or a ``JobArray`` for the id of a whole array.

        Raises:
            LookupError: the id is not in the registry of that cluster.
        """
        if front_ends.attach is None:
            raise RuntimeError("Job.attach needs the slurm_magics package: import slurm_magics")
        return front_ends.attach(job_id, cluster)

    # -- control ----------------------------------------------------------------------
    def cancel(self) -> bool:
        """scancel the job (pending or running); its future then raises CancelledError.

        Returns:
            True when it was cancelled, False when it had already ended.

        Raises:
            ClusterError: SLURM refused (its message says why); the job is left as it was,
                still tracked.
        """
        if self.done():
            return False
        self._host.cancel_jobs([self])
        return self._mark_cancelled() or self.cancelled()  # one waiting for room: already

    def _mark_cancelled(self) -> bool:
        # The state first: done-callbacks (registry, widgets) must see the final state.
        return self._claim_end(JobState.CANCELLED) and AwaitableFuture.cancel(self)

    # -- state transitions (the poller's thread and the user's threads race here) -----
    def _set_live(self, state: JobState, reason: str = "", node: str | None = None) -> bool:
        """A not-final state from the scheduler; ignored once an end was claimed."""
        with self._condition:
            if self._ending:
                return False
            self.state, self.reason = state, reason
            if node is not None:
                self.node = node
            return True

    def _claim_end(self, state: JobState) -> bool:
        """Take THE transition to an end state, atomically with the check; False if the
        job already ended or another thread is ending it (a cancel against a result)."""
        with self._condition:
            if self._ending or self.done():
                return False
            self._ending = True
            self.state, self.ended_at = state, self.ended_at or time.time()
            return True

    def _end_ok(self, value: Any) -> bool:
        """COMPLETED with ``value``, unless the job already ended otherwise."""
        return self._claim_end(JobState.COMPLETED) and self._resolve(value)

    def _end_failed(self, state: JobState, error: BaseException) -> bool:
        """Ended in ``state`` raising ``error``, unless the job already ended otherwise."""
        return self._claim_end(state) and self._fail(error)

    # -- logs -------------------------------------------------------------------------
    def log_paths(self) -> tuple[str, str]:
        """Paths of the job's stdout and stderr files on the cluster."""
        slurm_id = self.job_id
        return (
            log_path(self.run.run_dir, slurm_id, stream="out"),
            log_path(self.run.run_dir, slurm_id, stream="err"),
        )

    def stdout(self, max_bytes: int = 1 << 20) -> str:
        """The job's standard output so far (the last ``max_bytes``)."""
        return self._host.read_text(self.log_paths()[0], max_bytes)

    def stderr(self, max_bytes: int = 1 << 20) -> str:
        """The job's standard error so far (the last ``max_bytes``)."""
        return self._host.read_text(self.log_paths()[1], max_bytes)

    @property
    def elapsed(self) -> float | None:
        """Seconds since the job started running (until it ended), if it has started."""
        if self.started_at is None:
            return None
        return (self.ended_at or time.time()) - self.started_at

    # -- right-sizing and waiting (see efficiency.py, waiting.py) ---------------------
    def efficiency(self) -> efficiency.EfficiencyReport:
        """Used vs asked (CPU, peak memory, time) and a suggestion; one sacct call.

        Raises:
            AccountingOffError: the cluster keeps no accounting.
        """
        usage, source = self._host.usage, self._host.usage_source
        return efficiency.report(f"job {self.job_id}", [self], usage, source=source)

    @property
    def pending_reason(self) -> str:
        """Why the job waits, in words ("Priority: other jobs come first"); "" unless
        PENDING."""
        return waiting.pending_reason([self], self._host.running_jobs)

    def expected_start(self) -> datetime.datetime | None:
        """SLURM's expected start (local time) while PENDING: one ``squeue --start`` now,
        never in the poll loop; None when not pending or SLURM has no estimate yet."""
        return waiting.expected_start([self], self._host.start_estimates)

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        """A live status line in Jupyter, a status text elsewhere."""
        return mimebundle(self, include, exclude)
