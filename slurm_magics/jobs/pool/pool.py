"""``WorkerPool``: warm workers inside ONE SLURM submission, behind the usual Job futures.

The workers are the elements of one array job tracked by the cluster's single poller.
Each connects back to a listener on the engine loop (through an SSH relay on the login node
when the cluster is reached over SSH) and takes tasks over an authenticated socket, so a
task costs milliseconds instead of a scheduler round trip. A worker whose SLURM task ends
early is replaced (up to ``workers`` times); a pool whose job is cancelled from outside, or
whose workers all fail, fails its unfinished tasks with ``JobFailedError``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from slurm_magics.core import pool_protocol
from slurm_magics.core.errors import ClusterError, JobFailedError
from slurm_magics.core.payload import dump_function
from slurm_magics.core.pool_relay import listen_address
from slurm_magics.core.resources import Resources
from slurm_magics.core.states import JobState
from slurm_magics.jobs.array import JobArray
from slurm_magics.jobs.cluster import Cluster
from slurm_magics.jobs.engine import engine
from slurm_magics.jobs.futures import AwaitableFuture
from slurm_magics.jobs.job import Call, Job, Run
from slurm_magics.jobs.pool import launch
from slurm_magics.jobs.pool.dispatcher import Dispatcher, PoolTask, WorkerInfo
from slurm_magics.jobs.pool.host import ClusterSide
from slurm_magics.jobs.pool.listener import Listener
from slurm_magics.jobs.pool.payloads import check_upstream, pickle_call, submit_after, waits_on
from slurm_magics.jobs.pool.tasks import PoolJob, PoolTaskEvents, fail_all, pool_failure
from slurm_magics.jobs.pool.tunnel import SSHRelay
from slurm_magics.jobs.shipping import ship_local_modules
from slurm_magics.transport import SSHTransport

__all__ = ["WorkerInfo", "WorkerPool"]

SWEEP = 0.5  # seconds between checks of the pool's health and idleness
SHUTDOWN_GRACE = 5.0  # seconds workers get to exit before their SLURM tasks are cancelled


class WorkerPool(ClusterSide):
    """Warm workers in one SLURM array job; tasks dispatched over a socket in milliseconds.

    Args:
        cluster: where the workers' job is submitted.
        workers: how many worker processes (array elements).
        resources: what EACH worker asks for (cpus, memory, time, partition, ...).
        name: the SLURM job name of the workers.
        retries: how often a task whose worker was lost runs again elsewhere.
        heartbeat: seconds between heartbeats each way.
        heartbeat_timeout: seconds of silence after which a worker counts as lost, and after
            which workers exit when the client has gone.
        idle_timeout: seconds without any task after which the pool releases its workers
            (None: never).
        replace_before: seconds before a worker's time limit at which a fresh worker is
            submitted and the old one finishes its task and leaves (None: never; needs a
            ``time`` in the resources).

    Raises:
        ValueError: ``workers`` is not a positive integer.
        ClusterError: the listener or the SSH relay could not start, or sbatch refused.
    """

    def __init__(
        self,
        cluster: Cluster,
        *,
        workers: int = 16,
        resources: Resources | None = None,
        name: str = "pool",
        retries: int = 1,
        heartbeat: float = 2.0,
        heartbeat_timeout: float = 30.0,
        idle_timeout: float | None = None,
        replace_before: float | None = 300.0,
    ) -> None:
        if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
            raise ValueError(f"workers={workers!r}: give a positive number of worker processes")
        if not isinstance(retries, int) or retries < 0:
            raise ValueError(f"retries={retries!r}: give 0 or more")
        self.cluster = cluster
        self.size = workers
        self.resources = resources or Resources(cpus=1)
        self.name = name
        self.retries = retries
        self.idle_timeout = idle_timeout
        self.replace_before = replace_before
        self._renewed: set[Job] = set()  # workers told to leave before their time limit
        self.description = f"pool {name} on {cluster.description}"
        self.pool_id = f"{cluster.session_id}-pool-{secrets.token_hex(3)}"
        self._secret = pool_protocol.new_secret()
        self._dispatcher = Dispatcher(
            PoolTaskEvents(self._worker_job),
            heartbeat=heartbeat,
            heartbeat_timeout=heartbeat_timeout,
        )
        self._numbers = itertools.count(1)
        self._functions: dict[int, tuple[Callable[..., Any], int]] = {}
        self._unfinished: set[PoolJob] = set()
        self._lock = threading.Lock()
        self._relay: SSHRelay | None = None
        self._closed: str = ""  # why no more tasks are taken ("" while open)
        self._broken: Callable[[PoolJob], JobFailedError] | None = None
        self._replacements = 0
        self._worker_runs: list[Run] = []
        self._sweeper: asyncio.Task[None] | None = None
        pool_dir = f"{cluster.root}/pools/{self.pool_id}"
        self._code_dir, code = launch.code_files(cluster.root)
        ssh = isinstance(cluster.transport, SSHTransport)
        self._listener = Listener(
            self._secret,
            self._dispatcher.serve,
            host="127.0.0.1" if ssh else listen_address("auto"),
        )
        engine.call(self._start(pool_dir, code, heartbeat, heartbeat_timeout))
        self._pool_dir = pool_dir
        self._submit_workers(workers)

    # -- start, replace, stop --------------------------------------------------------
    async def _start(
        self, pool_dir: str, code: dict[str, bytes], heartbeat: float, timeout: float
    ) -> None:
        await self._listener.start()
        address = self._listener.address
        transport = self.cluster.transport
        await transport.make_dirs(pool_dir)
        await transport.make_dirs(self._code_dir)
        await transport.write_files(code)
        if isinstance(transport, SSHTransport):
            relay = f"{self._code_dir}/pool_relay.py"
            self._relay = SSHRelay(
                transport, python=self.cluster.python, relay_path=relay, local_port=address[1]
            )
            address = await self._relay.open()

        async def tell_workers(address: tuple[str, int]) -> None:  # where they connect
            files = launch.pool_files(
                pool_dir, address, self._secret, heartbeat=heartbeat, heartbeat_timeout=timeout
            )
            await transport.write_files(files, mode=0o600)

        await tell_workers(address)
        if self._relay is not None:  # after a dropped connection: a new relay, a new address
            self._relay.keep(tell_workers)
        self._dispatcher.start()
        self._sweeper = asyncio.get_running_loop().create_task(self._sweep())

    def _submit_workers(self, count: int) -> None:
        run = self.cluster.submit_calls(
            launch.worker_entry(),
            [((self._code_dir, self._pool_dir), {})] * count,
            name=self.name,
            resources=self.resources,
            array=True,
        )
        self._worker_runs.append(run)
        for job in run.jobs:
            job.add_done_callback(self._worker_ended)

    @property
    def job_id(self) -> str:
        """The SLURM id of the workers' array job (the first, if workers were replaced)."""
        ids = [part.slurm_id for run in self._worker_runs for part in run.slices]
        return ids[0] if ids else ""

    @property
    def run_dir(self) -> str:
        """The run folder of the workers' array job (where their SLURM logs are)."""
        return self._worker_runs[0].run_dir if self._worker_runs else self._pool_dir

    @property
    def worker_jobs(self) -> list[Job]:
        """The workers' SLURM tasks (as Jobs; replacements included)."""
        return [job for run in self._worker_runs for job in run.jobs]

    def _worker_job(self, worker: str) -> Job | None:
        slurm_id = worker.split("@", 1)[0]
        return next((job for job in self.worker_jobs if job.job_id == slurm_id), None)

    def _worker_ended(self, job: Any) -> None:
        if self._closed or job in self._renewed:
            return
        if job.cancelled() or job.state is JobState.CANCELLED:
            why = f"the pool's job {job.job_id} was cancelled"
            self._break(lambda task: pool_failure(task, why, JobState.CANCELLED))
        elif self._replacements < self.size:
            self._replacements += 1
            threading.Thread(target=self._replace, args=(job,), daemon=True).start()
        elif all(worker.done() for worker in self.worker_jobs):
            error = job.exception() if not job.cancelled() else None
            why = f"every worker of the pool ended (the last: {job.job_id}: {error})"
            self._break(lambda task: pool_failure(task, why, JobState.FAILED))

    def _renew(self) -> None:
        limit = self.resources.time_seconds
        if not limit or self.replace_before is None:
            return
        for job in self.worker_jobs:
            start = job.started_at
            due = start is not None and start + limit - self.replace_before < time.time()
            if due and not job.done() and job not in self._renewed:
                self._renewed.add(job)
                self._dispatcher.drain(f"{job.job_id}@")
                threading.Thread(target=self._replace, args=(job,), daemon=True).start()

    def _replace(self, ended: Job) -> None:
        try:
            self._submit_workers(1)
        except Exception as error:  # sbatch refused: the pool cannot heal itself
            why = f"worker {ended.job_id} ended and its replacement was refused: {error}"
            self._break(lambda task: pool_failure(task, why, JobState.FAILED))

    def _break(self, error_for: Callable[[PoolJob], JobFailedError]) -> None:
        self._broken = error_for
        with self._lock:
            self._closed = self._closed or "broken"

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(SWEEP)
            if self._broken is not None:
                queued = [task.owner for task in self._dispatcher.queue]
                self._dispatcher.queue.clear()
                if not self._dispatcher.workers:
                    queued += [j for j in list(self._unfinished) if j.task is not None]
                fail_all(queued, self._broken)
                continue
            self._renew()
            if (
                self.idle_timeout is not None
                and not self._unfinished
                and time.monotonic() - self._dispatcher.last_activity > self.idle_timeout
            ):
                with self._lock:
                    self._closed = f"released after {self.idle_timeout:g} s without tasks"
                threading.Thread(target=self._release, daemon=True).start()
                return

    def _release(self) -> None:
        engine.call(self._dispatcher.shutdown())
        deadline = time.monotonic() + SHUTDOWN_GRACE
        while time.monotonic() < deadline and not all(j.done() for j in self.worker_jobs):
            time.sleep(0.1)
        left = [job for job in self.worker_jobs if not job.done()]
        if left:
            self.cluster.cancel_jobs(left)
        engine.call(self._close_listener())

    async def _close_listener(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
        await self._listener.close()
        if self._relay is not None:
            await self._relay.close()

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop taking tasks, let the workers exit and release their allocation.

        Args:
            wait: block until every submitted task has ended first.
            cancel_futures: cancel the tasks not finished yet.
        """
        with self._lock:
            if self._closed in ("shut down",) or self._closed.startswith("released"):
                return
            self._closed = "shut down"
        if cancel_futures:
            for job in list(self._unfinished):
                job.cancel()
        if wait:
            for job in list(self._unfinished):
                with contextlib.suppress(BaseException):  # its error is the user's
                    job.exception()
        self._release()

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    async def __aenter__(self) -> WorkerPool:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.to_thread(self.shutdown)

    def __repr__(self) -> str:
        state = self._closed or f"{len(self._dispatcher.workers)}/{self.size} workers"
        return f"<WorkerPool {self.name} {self.job_id} {state}>"

    # -- what users look at --------------------------------------------------------------
    def ready(self, n: int = 1) -> AwaitableFuture[None]:
        """A future that resolves once ``n`` workers are connected (await it, or
        ``.result(timeout)``)."""
        done: AwaitableFuture[None] = AwaitableFuture()
        waiting = engine.spawn(self._dispatcher.wait_workers(min(n, self.size)))
        waiting.add_done_callback(lambda _: done._resolve(None))
        return done

    @property
    def workers(self) -> list[WorkerInfo]:
        """The connected workers."""
        return [state.info() for state in list(self._dispatcher.workers.values())]

    # -- JobHost (the rest is the cluster's, see host.py) --------------------------------
    def cancel_jobs(self, jobs: Sequence[Job]) -> None:
        """Cancel tasks: queued ones are dropped, running ones interrupted (the worker
        restarts in place)."""
        tasks = [job.task for job in jobs if isinstance(job, PoolJob) and job.task is not None]
        for task in tasks:
            engine.loop.call_soon_threadsafe(self._dispatcher.cancel, task)

    # -- submission -----------------------------------------------------------------------
    def submit(self, function: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Job:
        """Run ``function(*args, **kwargs)`` on a worker; its Job."""
        name = getattr(function, "__name__", "task")
        return self.submit_calls(function, [(args, kwargs)], name=name).jobs[0]

    def map(self, function: Callable[..., Any], iterable: Iterable[Any]) -> JobArray:
        """One task per item (a dict item becomes keyword arguments); a JobArray in order."""
        calls: list[Call] = [
            ((), dict(item)) if isinstance(item, Mapping) else ((item,), {}) for item in iterable
        ]
        run = self.submit_calls(function, calls, name=getattr(function, "__name__", "task"))
        return JobArray(run.jobs, [run])

    def submit_calls(
        self,
        function: Callable[..., Any],
        calls: Sequence[Call],
        *,
        name: str,
        after: Sequence[Job | JobArray] = (),
        retries: int | None = None,
    ) -> Run:
        """Queue calls of one function; a Run whose ``jobs`` are their PoolJobs, in order.

        Jobs among the arguments (or in ``after``) are waited for and passed by value.

        Raises:
            ClusterError: the pool is shut down, released or broken.
            DependencyError: a job among the arguments has already failed.
        """
        if self._closed:
            raise ClusterError(f"{self!r} takes no more tasks ({self._closed}); make a new pool")
        for dependency in after:
            check_upstream(dependency)
        function_id = self._function_id(function)
        run = Run(f"{self.pool_id}-{secrets.token_hex(3)}", self._pool_dir, name, len(calls), 1)
        jobs = [PoolJob(self, run, item, next(self._numbers)) for item in range(len(calls))]
        ready: list[PoolTask] = []
        for job, (args, kwargs) in zip(jobs, calls, strict=True):
            upstream = [*after, *waits_on(args, kwargs)]
            task = PoolTask(0, function_id, b"", retries=self._task_retries(retries), owner=job)
            task.task_id = job.number
            job.task = task
            self._unfinished.add(job)
            job.add_done_callback(self._unfinished.discard)
            if upstream:
                submit_after(job, task, upstream, args, kwargs, self._queue_one)
            else:
                task.call = pickle_call(args, kwargs)
                ready.append(task)
        if ready:
            engine.loop.call_soon_threadsafe(self._dispatcher.submit, ready)
        futures: list[Job] = list(jobs)
        run.jobs = futures
        return run

    def _queue_one(self, task: PoolTask) -> None:
        engine.loop.call_soon_threadsafe(self._dispatcher.submit, [task])

    def _task_retries(self, retries: int | None) -> int:
        return self.retries if retries is None else retries

    def _function_id(self, function: Callable[..., Any]) -> int:
        with self._lock:
            found = self._functions.get(id(function))
            if found is not None and found[0] is function:
                return found[1]
            ship_local_modules()
            function_id = len(self._functions) + 1
            self._functions[id(function)] = (function, function_id)
        pickled = dump_function(function)  # once per pool
        engine.loop.call_soon_threadsafe(self._dispatcher.add_function, function_id, pickled)
        return function_id
