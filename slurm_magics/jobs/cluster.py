"""A cluster: where jobs are submitted, tracked by one poller, and cancelled."""

from __future__ import annotations

import atexit
import concurrent.futures
import functools
import hashlib
import os
import secrets
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Literal

from slurm_magics.core import runner as _runner
from slurm_magics.core.efficiency import AccountingOffError, TaskUsage
from slurm_magics.core.errors import ClusterError
from slurm_magics.core.outcomes import dependency_error
from slurm_magics.core.parsing import ClusterConfig
from slurm_magics.core.payload import (
    ArgumentTable,
    FileReference,
    Reference,
    dump_function,
    dump_meta,
)
from slurm_magics.core.reasons import StartEstimate
from slurm_magics.core.resources import Resources
from slurm_magics.core.sbatch import ScriptSpec, check_path
from slurm_magics.jobs.array import JobArray, jobs_of
from slurm_magics.jobs.cancels import apply_cancels, cancel_runs, record_wave
from slurm_magics.jobs.collector import collector_paused
from slurm_magics.jobs.dependencies import dependency_expression
from slurm_magics.jobs.engine import engine
from slurm_magics.jobs.environment import check_environment
from slurm_magics.jobs.job import Call, Job, Run
from slurm_magics.jobs.packaging import Launches, Packaging
from slurm_magics.jobs.poller import Poller
from slurm_magics.jobs.recording import record_submission
from slurm_magics.jobs.registry import Registry, default_registry
from slurm_magics.jobs.retries import DEFAULT_RETRY_ON
from slurm_magics.jobs.waves import Pending, Waves
from slurm_magics.scheduler.slurm import Scheduler, SchedulerBackend
from slurm_magics.transport import Transport

__all__ = ["Cluster", "Condition"]

# How many open Cluster objects use each transport (by id): the last one closes it.
_transport_users: dict[int, int] = {}
_users_lock = threading.Lock()

Condition = Literal["afterok", "afterany"]
_PLAIN = frozenset({int, float, complex, str, bytes, bool, type(None), tuple, list, dict, set})


class Cluster:
    """One SLURM cluster reached through a transport, with its own poller.

    Made by ``sm.connect()``; ``cluster.submit(fn, *args)`` runs one call there.

    Args:
        transport: how commands and files reach the cluster (local or SSH).
        defaults: resources every job gets unless a task or call overrides them.
        root: the run-file folder on the cluster (default ``~/.slurm_magics``).
        python: the interpreter jobs run with (default: this one).
        setup: shell lines run before it in every job script.
        max_array_size: split arrays below this (default: the cluster's MaxArraySize).
        result_grace: seconds a result file may lag SLURM's end (shared file systems).
        scheduler: SLURM's commands (default) or the local backend.
        registry: where runs are recorded (default: the user's SQLite registry).
        cancel_on_exit: scancel this object's unfinished jobs when the process exits.
        packaging: "none", "wheel" or ``sm.Packaging.container(...)``, prepared now.

    Raises:
        ClusterError: the cluster cannot be used (no SLURM, wrong Python...), and what to do.
    """

    def __init__(
        self,
        transport: Transport,
        *,
        defaults: Resources | None = None,
        root: str | None = None,
        python: str | None = None,
        setup: Sequence[str] = (),
        max_array_size: int | None = None,
        result_grace: float = 5.0,
        scheduler: SchedulerBackend | None = None,
        registry: Registry | None = None,
        cancel_on_exit: bool = False,
        packaging: Packaging | str | None = None,
    ) -> None:
        self.transport = transport
        self.scheduler: SchedulerBackend = scheduler or Scheduler(transport)
        self.description = getattr(self.scheduler, "description", transport.description)
        self.defaults = defaults or Resources()
        self.python = python or _default_python()
        self.setup = tuple(setup)
        self.session_id = f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"
        self.registry = registry or default_registry()
        #: this process's runs and arrays by run id (what sm.jobs() hands out again)
        self.live_runs: dict[str, Run] = {}
        self.live_arrays: dict[str, JobArray] = {}
        self._closed = False
        self._packaging = packaging  # prepared in _prepare, with the rest
        self.config, self.root, self.runner_path = engine.call(self._prepare(root))
        limit = self.config.max_array_size
        self.max_array_size = min(limit, max_array_size) if max_array_size else limit
        self.sentinel_dir = f"{self.root}/sentinels/{self.session_id}"
        self.poller = Poller(
            self.scheduler,
            transport,
            sentinel_dir=self.sentinel_dir,
            config=self.config,
            result_grace=result_grace,
        )
        engine.call(transport.make_dirs(self.sentinel_dir))
        self.poller.on_retry = self._record_retry
        # the client-side queue of what does not fit under the cluster's job limits
        self.waves = Waves(self.scheduler, self.config, self.max_array_size, self._wave_submitted)
        self.poller.on_queue = self.waves.on_queue
        self.waves.before_wave = functools.partial(apply_cancels, self.registry)
        with _users_lock:
            _transport_users[id(transport)] = _transport_users.get(id(transport), 0) + 1
        engine.before_stop(self._abandon_waiting)  # what waits for room ends with us
        if cancel_on_exit:  # opt-in: by default jobs outlive the kernel
            atexit.register(self._cancel_unfinished)

    async def _prepare(self, root: str | None) -> tuple[ClusterConfig, str, str]:
        config = await self.scheduler.show_config()
        await check_environment(self.transport, self.python, self.setup)
        root = root or f"{await self.transport.home()}/.slurm_magics"
        check_path(root, what="root folder")
        for folder in (root, f"{root}/runs", f"{root}/sentinels"):
            await self.transport.make_dirs(folder)
        code = _runner_source()
        runner_path = f"{root}/runner-{hashlib.sha256(code).hexdigest()[:12]}.py"
        await self.transport.write_files({runner_path: code})
        self.launches = Launches(self._packaging, self.transport, root, self.python, self.setup)
        await self.launches.get()  # a failed build, push or image check raises here
        return config, root, runner_path

    def __repr__(self) -> str:
        return f"<Cluster {self.description} {self.config.cluster_name or ''}>".replace(" >", ">")

    @property
    def identity(self) -> tuple[str, str]:
        """Which scheduler this is: Cluster objects with the same identity share jobs."""
        return (self.description, self.config.cluster_name)

    @property
    def key(self) -> str:
        """What identifies this cluster in the registry: where it is and its run folder."""
        return f"{self.description}|{self.config.cluster_name}|{self.root}"

    @property
    def counters(self) -> dict[str, int]:
        """How many times each scheduler command ran (squeue, sacct, sbatch, ...)."""
        return dict(self.scheduler.counters)

    # -- submission ------------------------------------------------------------------------
    def submit(self, function: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Job:
        """Run ``function(*args, **kwargs)`` as one job with the cluster's default resources."""
        run = self.submit_calls(
            function,
            [(args, kwargs)],
            name=getattr(function, "__name__", "job"),
            resources=Resources(),
        )
        return run.jobs[0]

    @collector_paused()  # one future per item: 100,000 of them without GC passes
    def submit_calls(
        self,
        function: Callable[..., Any],
        calls: Sequence[Call],
        *,
        name: str,
        resources: Resources,
        array: bool = False,
        chunk_size: int = 1,
        max_concurrent: int | None = None,
        resources_variable: str | None = None,
        after: Sequence[Job | JobArray] = (),
        condition: Condition = "afterok",
        retries: int = 0,
        retry_on: frozenset[str] = DEFAULT_RETRY_ON,
        packaging: Packaging | str | None = None,
    ) -> Run:
        """Submit calls of one function as one job (``array=False``) or one array job."""
        if self._closed:
            raise ClusterError(f"{self!r} is closed; connect again with sm.connect().")
        upstream: list[Job | JobArray] = []
        for dependency in after:
            self._check_dependency(dependency, condition)
            if not dependency.done():
                upstream.append(dependency)
        launch = self.launches.ship(packaging)  # None: the cluster's own
        table = ArgumentTable(functools.partial(self._reference, upstream))
        table.extend(calls)
        effective = self.defaults.merged(resources)
        run_id = f"{self.session_id}-{secrets.token_hex(4)}"
        run = Run(run_id, f"{self.root}/runs/{run_id}", name, len(calls), chunk_size)
        run.jobs = [Job(self, run, item) for item in range(len(calls))]
        run.dependency = dependency_expression(upstream, condition)
        run.retries, run.retry_on = retries, retry_on
        blob, index = table.files()
        files = {
            f"{run.run_dir}/meta.json": dump_meta(
                run_id=run_id,
                n_items=len(calls),
                chunk_size=chunk_size,
                sentinel_dir=self.sentinel_dir,
                resources=effective.as_dict(),
                resources_variable=resources_variable,
            ),
            f"{run.run_dir}/function.pkl": dump_function(function),
            f"{run.run_dir}/args.bin": blob,
            f"{run.run_dir}/args.idx": index,
        }
        template = ScriptSpec(
            name=name,
            resources=effective,
            run_dir=run.run_dir,
            runner_path=self.runner_path,
            python=launch.python,
            n_elements=1 if array else 0,  # each wave sets its own size and offset
            max_concurrent=max_concurrent,
            setup=(*self.setup, *launch.setup),
            launcher=launch.launcher,
            requeue=retries > 0,  # scontrol requeue (retries) needs it; else --no-requeue
        )
        n_elements = -(-len(calls) // chunk_size) if array else 1
        pending = Pending(
            run, template, 0, n_elements, upstream, condition, effective.qos, effective.account
        )
        engine.call(self._submit(run, files, pending))
        for dependency in upstream:
            for upstream_run in (
                [dependency.run] if isinstance(dependency, Job) else dependency.runs
            ):
                upstream_run.dependents.append(run)
        # recorded on the engine loop, where waves go in: a later one finds the run recorded
        engine.call_in_loop(self._record, run, upstream, array)
        if condition == "afterok":
            for dependency in upstream:
                dependency.add_done_callback(functools.partial(self._upstream_done, run))
        return run

    def _record(self, run: Run, upstream: list[Job | JobArray], array: bool) -> None:
        self.live_runs[run.run_id] = run
        key, sentinels, session = self.key, self.sentinel_dir, self.session_id
        record_submission(
            self.registry, run, upstream, cluster_key=key, sentinel_dir=sentinels,
            session_id=session, is_array=array,
        )  # fmt: skip

    def _record_retry(self, run: Run, element: int, attempt: int, error: BaseException) -> None:
        why = f"{type(error).__name__}: {error}"
        self.registry.record_attempt(run.run_id, element, attempt, why)

    def _check_dependency(self, dependency: Job | JobArray, condition: Condition) -> None:
        if any(getattr(job.cluster, "passes_values", False) for job in jobs_of(dependency)):
            concurrent.futures.wait(jobs_of(dependency))  # a pool task: milliseconds away
        for job in jobs_of(dependency):
            if job.cluster is not self and getattr(job.cluster, "identity", None) != self.identity:
                raise ClusterError(
                    f"{job!r} runs on {job.cluster.description}, not on {self.description}: "
                    "a job can only depend on jobs of the same cluster."
                )
        if (
            condition == "afterok"
            and dependency.done()
            and (dependency.cancelled() or dependency.exception() is not None)
        ):
            error = dependency.exception() if not dependency.cancelled() else None
            why = f"failed ({error!r})" if error is not None else "was cancelled"
            raise dependency_error(None, repr(dependency), why)

    def _reference(self, upstream: list[Job | JobArray], obj: Any) -> Reference:
        if type(obj) in _PLAIN:  # most of what is pickled: no isinstance walk per object
            return None
        if isinstance(obj, FileReference):
            return ("ref", obj.reference())
        if not isinstance(obj, Job | JobArray):
            return None
        self._check_dependency(obj, "afterok")
        if obj.done():
            return ("value", obj.result())
        if obj not in upstream:
            upstream.append(obj)
        if isinstance(obj, Job):
            return ("ref", (_runner.RESULT_REF, obj.run.run_dir, obj.item))
        parts = [(run.run_dir, run.n_items) for run in obj.runs]
        return ("ref", (_runner.RESULTS_REF, parts, len(obj)))

    async def _submit(self, run: Run, files: dict[str, bytes], pending: Pending) -> None:
        await self.transport.make_dirs(run.run_dir)
        for folder in ("results", "logs"):
            await self.transport.make_dirs(f"{run.run_dir}/{folder}")
        await self.transport.write_files(files)
        # What fits is submitted now, the rest in waves; a refusal of the first slice
        # raises here with nothing of the run left in SLURM.
        await self.waves.add(pending)
        self.poller.track(run)

    def _wave_submitted(self, run: Run) -> None:
        self.poller.track(run)
        if run.run_id in self.live_runs:  # a later wave: recorded, checked for cancels
            record_wave(self.registry, self.key, self.scheduler, run)

    def _upstream_done(self, run: Run, upstream: concurrent.futures.Future[Any]) -> None:
        if upstream.cancelled() or upstream.exception() is not None:
            failed = upstream
            if isinstance(upstream, JobArray):  # name the task that failed, not the array
                failed = next(
                    (j for j in upstream.jobs if j.done() and (j.cancelled() or j.exception())),
                    upstream.jobs[0],
                )
            assert isinstance(failed, Job)
            engine.spawn(self.poller.fail_dependents(run, failed))

    # -- control ---------------------------------------------------------------------------
    def cancel_jobs(self, jobs: Sequence[Job]) -> None:
        """scancel jobs (whole arrays when every task of a slice is given)."""
        by_run: dict[str, list[Job]] = {}
        for job in jobs:
            by_run.setdefault(job.run.run_id, []).append(job)
        engine.call(self._cancel(list(by_run.values())))

    async def _cancel(self, by_run: list[list[Job]]) -> None:
        await cancel_runs(self.waves, self.registry, self.scheduler, by_run)

    def _abandon_waiting(self) -> None:
        if not self._closed:
            why = "the process that submitted them ended first"
            engine.call(self.waves.abandon(why), timeout=10)  # not behind a hung sbatch
            self.registry.flush()

    def _cancel_unfinished(self) -> None:
        unfinished = [job for run in self.live_runs.values() for job in run.jobs if not job.done()]
        if unfinished and not self._closed:
            self.cancel_jobs(unfinished)

    def read_text(self, path: str, max_bytes: int) -> str:
        """The last ``max_bytes`` of a text file on the cluster ("" when missing)."""
        return engine.call(self.transport.read_tail(path, max_bytes)).decode(errors="replace")

    # -- usage and waiting (on demand, never in the poll loop) ---------------------------
    def usage(self, slurm_ids: Sequence[str]) -> list[TaskUsage]:
        """What jobs or whole arrays used: ONE sacct call (the local backend: its own
        measurements). Raises AccountingOffError when the cluster keeps no accounting."""
        if not self.config.accounting:
            raise AccountingOffError(
                f"SLURM accounting is off on {self.description} (AccountingStorageType is "
                "none): sacct has no CPU or memory figures; ask the administrators to enable "
                "slurmdbd."
            )
        return engine.call(self.scheduler.usage(slurm_ids))

    @property
    def usage_source(self) -> str:
        """Where usage figures come from: "sacct", or the local backend's measurements."""
        return "sacct" if isinstance(self.scheduler, Scheduler) else "measured locally"

    def start_estimates(self, slurm_ids: Sequence[str]) -> list[StartEstimate]:
        """SLURM's expected starts of pending jobs (one ``squeue --start``)."""
        return engine.call(self.scheduler.start_estimates(slurm_ids))

    @property
    def running_jobs(self) -> int | None:
        """How many of the user's jobs ran at the last poll (None before one)."""
        return self.poller.running_jobs

    def close(self) -> None:
        """Stop polling and release the transport (closed by the last Cluster sharing it);
        jobs keep running on the cluster, what still waits for room fails."""
        if not self._closed:
            self._closed = True
            engine.call(self.waves.abandon("the cluster was closed before there was room"))
            engine.call(self.poller.stop())
            with _users_lock:
                _transport_users[id(self.transport)] -= 1
                last = _transport_users[id(self.transport)] == 0
            if last:
                engine.call(self.transport.close())


@functools.cache
def _runner_source() -> bytes:
    with open(_runner.__file__, "rb") as stream:
        return stream.read()


def _default_python() -> str:
    return os.environ.get("SLURM_MAGICS_PYTHON") or sys.executable
