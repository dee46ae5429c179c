"""The local backend: SLURM's semantics with subprocesses on this machine, no SLURM needed.

It stands in for ``Scheduler`` (same methods, same rows), so the cluster, the poller and
the futures above it behave exactly as on SLURM: arrays with throttles, afterok/afterany
dependencies (a failed afterok dependency leaves the job pending with
``DependencyNeverSatisfied``, as SLURM does), time limits (TIMEOUT), cancellation, per-task
stdout/stderr files and SLURM's environment variables. Tasks share this machine's CPUs:
each takes the CPUs it asked for, and waits while they are busy. Memory is enforced as
SLURM's OverMemoryKill does it (see ``memory``): a task whose processes' resident memory
exceeds ``--mem`` is killed and ends OUT_OF_MEMORY, with slurmstepd's line in its stderr.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import datetime
import functools
import getpass
import os
import shutil
import signal
import tempfile
import time
import weakref
from collections.abc import Iterable
from typing import BinaryIO

from slurm_magics.core.efficiency import TaskUsage
from slurm_magics.core.errors import SubmissionError
from slurm_magics.core.parsing import AccountingRow, ClusterConfig, QueueRow
from slurm_magics.core.reasons import StartEstimate
from slurm_magics.core.resources import format_duration
from slurm_magics.scheduler.local.directives import Directives, expand_log_pattern, parse_directives
from slurm_magics.scheduler.local.memory import MemoryWatcher, kill_tree
from slurm_magics.scheduler.local.usage import MeasuredProcess
from slurm_magics.transport import LocalTransport, Transport

__all__ = ["LocalScheduler"]

_ENDED = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY"}


@dataclasses.dataclass(eq=False)
class _Task:
    job_id: int  # the task's own id
    array_id: int  # the array's id (= job_id when not an array)
    task_id: int | None
    script: str
    options: Directives
    state: str = "PENDING"
    reason: str = "None"
    exit_code: str = "0:0"
    started: float | None = None
    ended: float | None = None
    process: MeasuredProcess | None = None
    over_memory: bool = False  # killed by the memory sampler


def _elapsed(task: _Task) -> str:
    """squeue's %M for a task: "M:SS", "H:MM:SS" or "D-HH:MM:SS"."""
    if task.started is None:
        return "0:00"
    return format_duration((task.ended or time.time()) - task.started)


class LocalScheduler:
    """An in-process scheduler with the ``Scheduler`` interface."""

    description = "local backend (no SLURM)"

    def __init__(self, *, slots: int | None = None) -> None:
        self.transport: Transport = LocalTransport()
        self.slots = slots or os.cpu_count() or 1
        self.counters: collections.Counter[str] = collections.Counter()
        self._tasks: dict[int, list[_Task]] = {}  # by array id
        self._next_id = 1
        self._used = 0
        self._memory = MemoryWatcher()
        self._spool = tempfile.mkdtemp(prefix="slurm-magics-local-")  # private (0700)
        weakref.finalize(self, shutil.rmtree, self._spool, ignore_errors=True)

    async def show_config(self) -> ClusterConfig:
        self.counters["scontrol"] += 1
        return ClusterConfig(
            max_array_size=100001,
            max_job_count=1_000_000,
            min_job_age=24 * 3600,
            accounting=True,
            version="local",
            cluster_name="local",
        )

    async def whoami(self) -> str:
        return getpass.getuser()

    async def submit(self, script: str, *, tag: str = "") -> str:
        self.counters["sbatch"] += 1
        options = parse_directives(script)
        if options.cpus > self.slots:
            raise SubmissionError(
                f"sbatch refused the job: it asks for {options.cpus} CPUs per task but this "
                f"machine has {self.slots}; ask for at most {self.slots} (cpus=...)."
            )
        array_id = self._next_id
        if options.array is None:
            tasks = [_Task(array_id, array_id, None, script, options)]
            self._next_id += 1
        else:
            tasks = [
                _Task(array_id + i, array_id, task, script, options)
                for i, task in enumerate(options.array)
            ]
            self._next_id += len(tasks)
        if options.hold:
            for task in tasks:
                task.reason = "JobHeldUser"
        self._tasks[array_id] = tasks
        self._schedule()
        return str(array_id)

    async def cancel(self, slurm_ids: Iterable[str]) -> None:
        self.counters["scancel"] += 1
        for task in self._select(slurm_ids):
            self._end(task, "CANCELLED", "0:15")
        self._schedule()

    async def requeue(self, slurm_ids: Iterable[str]) -> None:
        self.counters["scontrol"] += 1
        for task in self._select(slurm_ids):
            if task.state in _ENDED:
                task.state, task.reason, task.started, task.ended = "PENDING", "None", None, None
        self._schedule()

    async def set_dependency(self, slurm_ids: Iterable[str], dependency: str) -> None:
        self.counters["scontrol"] += 1
        for task in self._select(slurm_ids):
            task.options = dataclasses.replace(task.options, dependency=dependency)
        self._schedule()

    def _select(self, slurm_ids: Iterable[str]) -> list[_Task]:
        chosen = []
        for slurm_id in set(slurm_ids):
            array_text, _, task_text = slurm_id.partition("_")
            chosen += [
                t
                for t in self._tasks.get(int(array_text), [])
                if not task_text or str(t.task_id) == task_text
            ]
        return chosen

    async def queue(self) -> list[QueueRow]:
        self.counters["squeue"] += 1
        return [
            QueueRow(
                str(task.array_id),
                None if task.task_id is None else (task.task_id,),
                "RUNNING" if task.state == "RUNNING" else task.state,
                task.reason if task.state == "PENDING" else "None",
                "localhost" if task.started is not None else "",
                "local",
                _elapsed(task),
                task.options.name,
            )
            for tasks in self._tasks.values()
            for task in tasks
        ]

    async def accounting(self, slurm_ids: Iterable[str]) -> list[AccountingRow]:
        self.counters["sacct"] += 1
        wanted = {int(s.partition("_")[0]) for s in slurm_ids}
        return [
            AccountingRow(
                str(task.array_id),
                None if task.task_id is None else (task.task_id,),
                task.state,
                task.exit_code,
                "localhost",
                "",
            )
            for array_id in wanted
            for task in self._tasks.get(array_id, [])
        ]

    async def usage(self, slurm_ids: Iterable[str]) -> list[TaskUsage]:
        """What tasks used, from this backend's own measurements (wait4 at their end)."""
        self.counters["sacct"] += 1
        return [
            TaskUsage(
                job_id=_slurm_id(task),
                state=task.state,
                elapsed=(task.ended or time.time()) - task.started,
                cpu_time=task.process.cpu_time if task.process else 0.0,
                cpus=task.options.cpus,
                max_rss=task.process.max_rss if task.process else None,
                requested_memory=None if m is None else m * 2**20,
                time_limit=task.options.time_seconds,
            )
            for task in self._select(slurm_ids)
            if task.started is not None
            for m in [task.options.memory_mb]
        ]

    async def start_estimates(self, slurm_ids: Iterable[str]) -> list[StartEstimate]:
        """Pending tasks and why they wait; the local backend makes no start estimates."""
        return [
            StartEstimate(_slurm_id(task), None, task.reason)
            for task in self._select(slurm_ids)
            if task.state == "PENDING"
        ]

    # -- scheduling ---------------------------------------------------------------------
    def _dependency_state(self, expression: str) -> str:
        """ "ok" when satisfied, "wait" while not yet, "never" when it cannot be."""
        if not expression:
            return "ok"
        condition, _, ids = expression.partition(":")
        verdict = "ok"
        for slurm_id in filter(None, ids.split(":")):
            array_text, _, task_text = slurm_id.partition("_")
            tasks = [
                t
                for t in self._tasks.get(int(array_text), [])
                if not task_text or str(t.task_id) == task_text
            ]
            for task in tasks:
                if task.state not in _ENDED:
                    verdict = "wait"
                elif condition == "afterok" and task.state != "COMPLETED":
                    return "never"
        return verdict

    def _schedule(self) -> None:
        for tasks in self._tasks.values():
            if all(task.state != "PENDING" for task in tasks):
                continue
            throttle = tasks[0].options.max_concurrent
            running = sum(task.state == "RUNNING" for task in tasks) if throttle else 0
            for task in tasks:
                if task.state != "PENDING" or task.reason == "JobHeldUser":
                    continue
                dependency = self._dependency_state(task.options.dependency)
                if dependency != "ok":
                    never = dependency == "never"
                    task.reason = "DependencyNeverSatisfied" if never else "Dependency"
                    continue
                if throttle and running >= throttle:
                    task.reason = "JobArrayTaskLimit"
                    break
                if self._used + task.options.cpus > self.slots:
                    task.reason = "Resources"
                    return  # first come, first served: later tasks wait too
                self._start(task)
                running += 1

    def _start(self, task: _Task) -> None:
        task.state, task.reason, task.started = "RUNNING", "None", time.time()
        self._used += task.options.cpus
        asyncio.get_running_loop().create_task(self._run(task))

    async def _run(self, task: _Task) -> None:
        options = task.options
        log = functools.partial(
            expand_log_pattern,
            job_id=task.job_id,
            array_id=task.array_id,
            task_id=task.task_id,
            name=options.name,
        )
        out_path, err_path = log(options.output), log(options.error or options.output)
        env = {
            **os.environ,
            "SLURM_JOB_ID": str(task.job_id),
            "SLURM_JOB_NAME": options.name,
            "SLURM_CPUS_PER_TASK": str(options.cpus),
            "SLURM_NODELIST": "localhost",
        }
        if options.memory_mb is not None:
            env["SLURM_MEM_PER_NODE"] = str(options.memory_mb)
        if task.task_id is not None:
            env["SLURM_ARRAY_JOB_ID"] = str(task.array_id)
            env["SLURM_ARRAY_TASK_ID"] = str(task.task_id)
        state, code = "FAILED", "1:0"
        task.over_memory = False
        try:
            # as slurmd does: the script from a private file (an argument holds <= 128 KiB)
            script_path = os.path.join(self._spool, f"slurm_script.{task.job_id}")
            _write_private(script_path, task.script)
            with _open_append(out_path) as out, _open_append(err_path) as err:
                task.process = MeasuredProcess(
                    ["bash", script_path], stdout=out, stderr=err, env=env
                )
            if options.memory_mb is not None:
                self._memory.watch(
                    task.process.pid,
                    options.memory_mb * 2**20,
                    functools.partial(self._over_memory, task, err_path),
                )
            try:
                returncode = await asyncio.wait_for(task.process.wait(), options.time_seconds)
                state = "COMPLETED" if returncode == 0 else "FAILED"
                code = f"{max(returncode, 0)}:{max(-returncode, 0)}"
                if task.over_memory:
                    # sacct says FAILED 0:9 for OverMemoryKill; squeue's OUT_OF_MEMORY
                    # (what cgroup enforcement reports) needs no stderr to be recognised.
                    state, code = "OUT_OF_MEMORY", "0:9"
            except TimeoutError:
                self._kill(task)
                now = datetime.datetime.now().isoformat(timespec="seconds")
                _append_line(
                    err_path,
                    f"slurmstepd: error: *** JOB {task.job_id} ON localhost CANCELLED AT "
                    f"{now} DUE TO TIME LIMIT ***",
                )
                state, code = "TIMEOUT", "0:15"
        except OSError as error:
            with contextlib.suppress(OSError):
                _append_line(err_path, f"slurm_magics local backend: cannot start the job: {error}")
        finally:
            if task.process is not None:
                self._memory.unwatch(task.process.pid)
            with contextlib.suppress(OSError):
                os.remove(os.path.join(self._spool, f"slurm_script.{task.job_id}"))
            self._end(task, state, code)
            self._schedule()

    def _over_memory(self, task: _Task, err_path: str, used: int) -> None:
        """The sampler found the task's processes over --mem: kill them as slurmstepd does."""
        task.over_memory = True
        if task.process is not None and task.process.returncode is None:
            kill_tree(task.process.pid)
        limit = (task.options.memory_mb or 0) * 2**20
        with contextlib.suppress(OSError):
            _append_line(
                err_path,
                f"slurmstepd: error: StepId={task.job_id}.batch exceeded memory limit "
                f"({used} > {limit}), being killed\n"
                "slurmstepd: error: Exceeded job memory limit",
            )

    def _kill(self, task: _Task) -> None:
        if task.process is not None and task.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(task.process.pid, signal.SIGKILL)

    def _end(self, task: _Task, state: str, code: str) -> None:
        if task.state in _ENDED:
            return
        if task.state == "RUNNING":
            self._used -= task.options.cpus
            if state == "CANCELLED":
                self._kill(task)
        task.state, task.exit_code, task.ended = state, code, time.time()


def _slurm_id(task: _Task) -> str:
    return str(task.array_id) if task.task_id is None else f"{task.array_id}_{task.task_id}"


def _write_private(path: str, text: str) -> None:
    with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as stream:
        stream.write(text)


def _open_append(path: str) -> BinaryIO:
    """Open a log file for appending (as SLURM does with --open-mode=append)."""
    return open(path, "ab")


def _append_line(path: str, line: str) -> None:
    with open(path, "a", encoding="utf-8") as stream:
        stream.write(line + "\n")
