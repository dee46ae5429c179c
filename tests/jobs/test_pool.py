"""Worker pools on the dev cluster (locally, over SSH, on the local backend): the futures'
contract on a pool and on plain SLURM jobs side by side, cancels, dependencies both ways,
lost workers and a pool job cancelled from outside."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

import slurm_magics as sm
from slurm_magics.core import pool_protocol
from slurm_magics.core.pool_protocol import Kind
from slurm_magics.scheduler.local import LocalScheduler
from tests.helpers import squeue_ids

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def pool(cluster: sm.Cluster) -> Iterator[sm.WorkerPool]:
    # The local backend has two slots (one per core): one worker leaves one for plain jobs.
    size = 1 if isinstance(cluster.scheduler, LocalScheduler) else 2
    with sm.WorkerPool(size, memory="300M", time="00:30:00", cluster=cluster, name="pooltest") as p:
        p.ready(size).result(timeout=300)
        yield p


@sm.task(memory="100M", time="00:05:00")
def work(x: Any) -> Any:
    print(f"working on {x}")
    if x == "boom":
        raise KeyError("no such key")
    if isinstance(x, float):
        time.sleep(x)
    return x if isinstance(x, str | float) else x * 2


@pytest.mark.parametrize("via", ["slurm", "pool"])
def test_results_order_errors_and_output_are_the_same_on_a_pool(
    via: str, cluster: sm.Cluster, pool: sm.WorkerPool
) -> None:
    runner = work.on(pool) if via == "pool" else work.on(cluster)
    arr = runner.map(range(30))
    assert arr.result(timeout=300) == [2 * i for i in range(30)]
    assert asyncio.run(_await(arr[3])) == 6
    failing = runner("boom")
    with pytest.raises(KeyError, match="no such key") as caught:
        failing.result(timeout=300)
    assert isinstance(caught.value.__cause__, sm.RemoteTraceback)
    assert "KeyError" in str(caught.value.__cause__)
    assert failing.state is sm.JobState.FAILED
    printed = runner("hello")
    assert printed.result(timeout=300) == "hello"
    assert "working on hello" in printed.stdout()
    if via == "pool":
        assert printed.job_id.startswith(f"{pool.job_id}/")
        assert printed.node in {worker.name for worker in pool.workers}


async def _await(job: sm.Job) -> Any:
    return await job


def test_pool_submit_and_tasks_per_worker(pool: sm.WorkerPool) -> None:
    jobs = [pool.submit(pow, 2, i) for i in range(200)]
    assert [job.result(timeout=60) for job in jobs] == [2**i for i in range(200)]
    assert len({job.node for job in jobs}) == pool.size  # spread over the workers
    assert sum(worker.tasks_done for worker in pool.workers) >= 200


def test_slurm_executor_on_a_pool(pool: sm.WorkerPool) -> None:
    with sm.SlurmExecutor(pool=pool) as executor:
        assert list(executor.map(pow, [2] * 20, range(20))) == [2**i for i in range(20)]
        future = executor.submit(pow, 3, 3)
        assert future.result(timeout=60) == 27
        assert asyncio.run(_await(future)) == 27  # type: ignore[arg-type]


def test_cancel_interrupts_a_running_task_and_the_worker_comes_back(pool: sm.WorkerPool) -> None:
    slow = work.on(pool)(120.0)
    _until(lambda: slow.state is sm.JobState.RUNNING)
    time.sleep(0.5)
    assert slow.cancel()
    assert slow.cancelled() and slow.state is sm.JobState.CANCELLED
    pool.ready(pool.size).result(timeout=60)  # the interrupted worker restarted in place
    _until(lambda: any(w.name.endswith("#1") for w in pool.workers))
    assert work.on(pool)(5).result(timeout=60) == 10


def test_dependencies_both_ways(cluster: sm.Cluster, pool: sm.WorkerPool) -> None:
    upstream = work(20)  # a SLURM job
    pooled = work.on(pool)(upstream)  # waits for it, gets its value
    assert pooled.result(timeout=300) == 80
    downstream = work(work.on(pool)(3))  # a SLURM job given a pool task's future
    assert downstream.result(timeout=300) == 12
    later = work.after(work.on(pool)(1))(4)  # .after() a pool task, no value passed
    assert later.result(timeout=300) == 8
    failed = work.on(pool)("boom")
    with pytest.raises(KeyError):
        failed.result(timeout=60)
    with pytest.raises(sm.DependencyError):
        work.on(pool)(failed)
    waits = work.on(pool)(work.on(pool)("boom"))
    with pytest.raises(sm.DependencyError):
        waits.result(timeout=60)
    assert waits.state is sm.JobState.DEPENDENCY_FAILED


def double(x: int) -> int:
    return x * 2


def test_a_raw_submission_after_pool_tasks(cluster: sm.Cluster, pool: sm.WorkerPool) -> None:
    done = work.on(pool)(1)
    run = cluster.submit_calls(
        double, [((5,), {})], name="after-pool", resources=sm.Resources(), after=[done]
    )
    assert run.jobs[0].result(timeout=300) == 10 and done.result() == 2
    failed = work.on(pool)("boom")
    with pytest.raises(sm.DependencyError, match="KeyError"):
        cluster.submit_calls(
            double, [((5,), {})], name="after-failed", resources=sm.Resources(), after=[failed]
        )
    anyway = cluster.submit_calls(
        double,
        [((6,), {})],
        name="after-any",
        resources=sm.Resources(),
        after=[work.on(pool)("boom")],
        condition="afterany",
    )
    assert anyway.jobs[0].result(timeout=300) == 12


def scaled_length(record: dict[str, str], table: dict[str, int]) -> int:
    return len(record["payload"]) * table["scale"]


def test_file_values_and_file_arrays_are_read_by_the_workers(
    cluster: sm.Cluster, pool: sm.WorkerPool
) -> None:
    records = [{"payload": "x" * i} for i in range(6)]
    array = sm.FileArray.from_data(records, cluster=cluster)
    table = sm.FileValue.from_data({"scale": 3}, cluster=cluster)
    # each task gets one element and the shared value by reference, read on the node
    mapped = pool.map(scaled_length, [{"record": row, "table": table} for row in array])
    assert mapped.result(timeout=120) == [3 * i for i in range(6)]
    assert sm.task(len).on(pool)(array).result(timeout=60) == 6  # the whole array
    gone = sm.FileValue(f"{cluster.root}/no-such-value.pkl")
    with pytest.raises(FileNotFoundError):  # the worker's error, and the worker lives on
        sm.task(len).on(pool)(gone).result(timeout=60)
    assert work.on(pool)(2).result(timeout=60) == 4
    # a task that changes what it was given leaves the next task on its worker a fresh copy
    counter = sm.FileValue.from_data({"n": 0}, cluster=cluster)
    seen = [sm.task(bump).on(pool)(counter).result(timeout=60) for _ in range(6)]
    assert seen == [1] * 6, seen


def bump(table: dict[str, int]) -> int:
    table["n"] += 1
    return table["n"]


def test_a_forged_connection_is_refused(pool: sm.WorkerPool) -> None:
    host, port = pool._listener.address
    refused = pool._listener.refused
    with socket.create_connection((host, port), timeout=10) as sock:
        reader = pool_protocol.FrameReader()
        kind, _ = reader.feed(sock.recv(1024))[0]
        assert kind == Kind.CHALLENGE
        sock.sendall(pool_protocol.encode(Kind.ANSWER, b"\x80\x04not the secret"))
        kind, _ = reader.feed(sock.recv(1024))[0]
        assert kind == Kind.FAILURE
        assert sock.recv(1024) == b""
    _until(lambda: pool._listener.refused == refused + 1)


def _worker_pid(name: str) -> int:
    return int(name.rsplit(":", 1)[1].split("#", maxsplit=1)[0])


@pytest.mark.slow
@pytest.mark.slurm_only  # a second pool has no free slot on the two-slot local backend
def test_a_worker_killed_mid_task_is_replaced_and_its_task_runs_again(
    cluster: sm.Cluster,
) -> None:
    with sm.WorkerPool(2, memory="300M", time="00:10:00", cluster=cluster, name="poolkill") as p:
        p.ready(2).result(timeout=300)
        slow = work.on(p)(3.0)
        _until(lambda: slow.state is sm.JobState.RUNNING)
        first = slow.node
        killed = time.monotonic()
        os.kill(_worker_pid(first), signal.SIGKILL)
        assert slow.result(timeout=60) == 3.0
        assert slow.node != first
        assert time.monotonic() - killed < 20
        p.ready(2).result(timeout=300)  # a replacement worker joined
        assert len(p.worker_jobs) == 3


@pytest.mark.slow
@pytest.mark.slurm_only
def test_scancel_of_the_pool_job_mid_map_resolves_every_future(cluster: sm.Cluster) -> None:
    with sm.WorkerPool(2, memory="300M", time="00:10:00", cluster=cluster, name="poolcut") as p:
        p.ready(2).result(timeout=300)
        arr = work.on(p).map([0.2] * 200)
        _until(lambda: sum(job.done() for job in arr) >= 5)
        subprocess.run(["scancel", p.job_id], check=True)
        cut = time.monotonic()
        assert arr.wait(timeout=30)
        assert time.monotonic() - cut < 30
        failures = [job.exception() for job in arr if job.exception() is not None]
        assert failures, "the map should not have finished before the scancel"
        assert all(isinstance(error, sm.JobFailedError) for error in failures)
        assert p.job_id in str(failures[-1])


@pytest.mark.slow
@pytest.mark.slurm_only  # a second pool has no free slot on the two-slot local backend
def test_a_worker_near_its_time_limit_is_replaced_without_losing_a_task(
    cluster: sm.Cluster,
) -> None:
    # time limit 120 s, replaced 105 s before it: the first worker leaves ~15 s after its start
    with sm.WorkerPool(
        1, memory="200M", time="00:02:00", replace_before=105, cluster=cluster, name="poolrenew"
    ) as p:
        p.ready(1).result(timeout=300)
        first = p.worker_jobs[0]
        results = []
        deadline = time.monotonic() + 200
        while len(p.worker_jobs) < 2 or not first.done():
            results.append(work.on(p)(0.5).result(timeout=120))
            assert time.monotonic() < deadline, "the worker was not replaced in time"
        assert first.state is sm.JobState.COMPLETED  # it left by itself, not killed
        assert work.on(p)(21).result(timeout=120) == 42  # the replacement takes tasks
        assert p.workers[0].name.startswith(p.worker_jobs[1].job_id)
        assert results and all(r == 0.5 for r in results)


def hog(megabytes: int) -> int:
    block = bytearray(megabytes * 1024 * 1024)
    for _ in range(600):  # held long enough for the memory sampler to see it
        block[::4096] = b"x" * len(block[::4096])
        time.sleep(0.05)
    return len(block)


@pytest.mark.slow
@pytest.mark.slurm_only  # OverMemoryKill of the dev cluster; a second pool needs slots
def test_a_task_bigger_than_its_worker_ends_out_of_memory(cluster: sm.Cluster) -> None:
    with sm.WorkerPool(
        2, memory="200M", time="00:10:00", retries=0, cluster=cluster, name="pooloom"
    ) as p:
        p.ready(2).result(timeout=300)
        big, small = p.submit(hog, 1500), p.submit(pow, 2, 10)
        with pytest.raises(sm.JobFailedError, match="ran out of memory") as caught:
            big.result(timeout=120)
        assert caught.value.state is sm.JobState.OUT_OF_MEMORY
        assert big.state is sm.JobState.OUT_OF_MEMORY
        assert small.result(timeout=120) == 1024  # the other tasks are not touched
        assert p.submit(pow, 3, 3).result(timeout=300) == 27


CLIENT = """
import os, sys
import slurm_magics as sm
cluster = sm.connect(root=sys.argv[1], partition="debug")
pool = sm.WorkerPool(2, memory="200M", time="00:10:00", cluster=cluster, heartbeat_timeout=5)
pool.ready(2).result(timeout=300)
print(pool.job_id, flush=True)
os._exit(9)  # the client dies without a word
"""


@pytest.mark.slow
def test_workers_exit_soon_after_their_client_dies(local: sm.Cluster) -> None:
    client = subprocess.run(
        [sys.executable, "-c", CLIENT, local.root], capture_output=True, text=True, timeout=400
    )
    job_id = client.stdout.split()[-1]
    assert client.returncode == 9, client.stderr
    died = time.monotonic()
    _until(lambda: not squeue_ids() & {f"{job_id}_0", f"{job_id}_1"}, timeout=60)
    print(f"workers gone {time.monotonic() - died:.1f} s after their client died")


def _until(condition: Any, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail("condition not met in time")
        time.sleep(0.05)
