"""A pool on loopback for tests: the real listener and dispatcher, real worker processes."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pickle
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cloudpickle

from slurm_magics.core import pool_protocol, pool_worker, runner
from slurm_magics.jobs.pool import Dispatcher, Listener, PoolTask


class Recorder:
    """The dispatcher's events, as futures by task id."""

    def __init__(self) -> None:
        self.futures: dict[int, asyncio.Future[tuple[Any, ...]]] = {}
        self.running: dict[int, str] = {}

    def expect(self, task_id: int) -> asyncio.Future[tuple[Any, ...]]:
        future = asyncio.get_running_loop().create_future()
        self.futures[task_id] = future
        return future

    def running_(self, task: PoolTask, worker: str) -> None:
        self.running[task.task_id] = worker

    def finished(self, task: PoolTask, parts: list[bytes], worker: str) -> None:
        outcome = runner.decode_outcome(parts[0])
        self.futures[task.task_id].set_result((*outcome[:2], parts[1], parts[2], worker))

    def lost(self, task: PoolTask, worker: str, reason: str) -> None:
        self.futures[task.task_id].set_result(("lost", worker, reason))


class Events:
    """Adapts Recorder to the TaskEvents protocol (``running`` is a method there)."""

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder

    def running(self, task: PoolTask, worker: str) -> None:
        self.recorder.running_(task, worker)

    def finished(self, task: PoolTask, parts: list[bytes], worker: str) -> None:
        self.recorder.finished(task, parts, worker)

    def lost(self, task: PoolTask, worker: str, reason: str) -> None:
        self.recorder.lost(task, worker, reason)


def pool_folder(tmp_path: Path, address: tuple[str, int], secret: bytes, **settings: Any) -> Path:
    """A pool folder as the client writes it: worker + protocol copied, pool.json, secret."""
    folder = tmp_path / f"pool-{address[1]}"
    folder.mkdir(exist_ok=True)
    shutil.copy(pool_worker.__file__, folder / "pool_worker.py")
    shutil.copy(pool_protocol.__file__, folder / "pool_protocol.py")
    shutil.copy(runner.__file__, folder / "runner.py")
    data = {
        "address": list(address),
        "python": list(sys.version_info[:2]),
        "cloudpickle": cloudpickle.__version__,
        "heartbeat": 0.2,
        "heartbeat_timeout": 5,
        "connect_timeout": 2,
        **settings,
    }
    (folder / "pool.json").write_text(json.dumps(data))
    (folder / "secret").write_bytes(secret)
    os.chmod(folder / "secret", 0o600)
    return folder


def start_worker(folder: Path) -> subprocess.Popen[bytes]:
    """A worker process as SLURM would start it (no slurm_magics on its path)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM")}
    env["PYTHONPATH"] = ""
    return subprocess.Popen(
        [sys.executable, str(folder / "pool_worker.py"), str(folder)],
        env=env,
        cwd=folder,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


@dataclass
class LoopbackPool:
    dispatcher: Dispatcher
    listener: Listener
    recorder: Recorder
    folder: Path
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    _next: int = 0

    def function(self, function: Callable[..., Any]) -> int:
        function_id = len(self.dispatcher.functions) + 1
        # test modules are not installed on "the cluster": their functions go by value
        cloudpickle.register_pickle_by_value(sys.modules[function.__module__])
        self.dispatcher.add_function(function_id, cloudpickle.dumps(function))
        return function_id

    def submit(
        self, function_id: int, calls: list[tuple[Any, ...]], retries: int = 1
    ) -> list[asyncio.Future[tuple[Any, ...]]]:
        tasks = []
        for args in calls:
            self._next += 1
            tasks.append(PoolTask(self._next, function_id, pickle.dumps((args, {})), retries))
        futures = [self.recorder.expect(task.task_id) for task in tasks]
        self.dispatcher.submit(tasks)
        return futures

    def add_workers(self, count: int) -> None:
        self.processes += [start_worker(self.folder) for _ in range(count)]


@contextlib.asynccontextmanager
async def loopback_pool(
    tmp_path: Path, workers: int, *, heartbeat: float = 0.2, **settings: Any
) -> AsyncIterator[LoopbackPool]:
    """Listener + dispatcher on this loop and ``workers`` real worker processes."""
    secret = pool_protocol.new_secret()
    recorder = Recorder()
    dispatcher = Dispatcher(Events(recorder), heartbeat=heartbeat, heartbeat_timeout=3)
    listener = Listener(secret, dispatcher.serve)
    await listener.start()
    dispatcher.start()
    folder = pool_folder(tmp_path, listener.address, secret, **settings)
    pool = LoopbackPool(dispatcher, listener, recorder, folder)
    pool.add_workers(workers)
    try:
        await asyncio.wait_for(dispatcher.wait_workers(workers), 30)
        yield pool
    finally:
        await dispatcher.shutdown()
        for process in pool.processes:
            try:
                await asyncio.to_thread(process.wait, 10)
            except subprocess.TimeoutExpired:
                process.kill()
                await asyncio.to_thread(process.wait)
            for stream in (process.stdout, process.stderr):
                if stream is not None:
                    stream.close()
        await listener.close()
        await asyncio.sleep(0.1)  # let the closed connections' transports finish closing
