"""Memory limits on the local backend: /proc reading on real processes, and OUT_OF_MEMORY."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import slurm_magics as sm
from slurm_magics.core.states import JobState, state_from_stderr
from slurm_magics.scheduler.local import memory

MB = 2**20

# A child that allocates (and touches) N MB, optionally starts a grandchild doing the same
# (in a session of its own when asked), prints the pids of its tree, then sleeps until killed.
HOG = """
import os, subprocess, sys, time
size, depth, detach, source = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "1", sys.argv[4]
block = bytearray(size * 2**20)
for i in range(0, len(block), 4096):
    block[i] = 1
pids = [str(os.getpid())]
if depth:
    child = subprocess.Popen(
        [sys.executable, "-c", source, str(size), str(depth - 1), "0", source],
        stdout=subprocess.PIPE, text=True, start_new_session=detach,
    )
    pids += child.stdout.readline().split()
print(" ".join(pids), flush=True)
time.sleep(600)
"""


Hog = Callable[..., tuple[subprocess.Popen[str], list[int]]]


@pytest.fixture
def start_hog() -> Iterator[Hog]:
    """Start a hog: its process and the pids of its tree (once all have allocated).

    Whatever the test leaves running is SIGKILLed (and reaped) afterwards.
    """
    started: list[tuple[subprocess.Popen[str], list[int]]] = []

    def start(size_mb: int, depth: int = 0, detach: bool = False) -> tuple[Any, list[int]]:
        process = subprocess.Popen(
            [sys.executable, "-c", HOG, str(size_mb), str(depth), "1" if detach else "0", HOG],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert process.stdout is not None
        pids = [int(p) for p in process.stdout.readline().split()]
        started.append((process, pids))
        assert len(pids) == depth + 1, pids
        return process, pids

    yield start
    for process, pids in started:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        process.wait()
        assert process.stdout is not None
        process.stdout.close()


def test_rss_of_a_process_tree_counts_the_grandchild(start_hog: Hog) -> None:
    process, pids = start_hog(300, depth=1)
    child, grandchild = pids
    assert memory.rss_bytes(child) > 250 * MB
    assert memory.rss_bytes(grandchild) > 250 * MB
    assert set(memory.process_tree(child)) == {child, grandchild}
    assert memory.tree_rss(child) > 500 * MB
    # The same through one scan of /proc, whichever way the kernel offers children.
    table = memory.children_table()
    assert set(memory.process_tree(child, lambda pid: table.get(pid, []))) == {child, grandchild}
    assert memory.tree_rss(os.getpid()) > memory.tree_rss(child)  # this test's tree holds it
    process.kill()
    process.wait()
    assert memory.rss_bytes(child) == 0  # reaped: gone


def test_children_files_agree_with_the_scan(start_hog: Hog) -> None:
    _, pids = start_hog(10, depth=2)
    assert memory.process_tree(pids[0]) == pids  # whichever way this kernel allows
    if memory._children_files():  # /proc/<pid>/task/<tid>/children (CONFIG_PROC_CHILDREN)
        assert memory.process_tree(pids[0], memory.children_from_files) == pids


def test_rss_of_gone_and_zombie_processes_is_zero() -> None:
    zombie = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 10
    while memory.rss_bytes(zombie.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert memory.rss_bytes(zombie.pid) == 0  # exited, not yet reaped
    assert memory.tree_rss(zombie.pid) == 0
    zombie.wait()
    assert memory.rss_bytes(zombie.pid) == 0
    assert memory.process_tree(zombie.pid) == [zombie.pid]


def test_kill_tree_kills_descendants_that_left_the_group(start_hog: Hog) -> None:
    process, pids = start_hog(5, depth=2, detach=True)
    memory.kill_tree(process.pid)
    assert process.wait(timeout=10) == -9
    deadline = time.monotonic() + 10
    while any(memory.rss_bytes(p) for p in pids[1:]) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(memory.rss_bytes(p) for p in pids)


def test_watcher_reports_once_and_samples_only_while_watching(start_hog: Hog) -> None:
    small, _ = start_hog(5)
    big, _ = start_hog(200)
    reports: list[tuple[int, int]] = []

    async def scenario() -> None:
        watcher = memory.MemoryWatcher(interval=0.1)
        watcher.watch(small.pid, 100 * MB, lambda used: reports.append((small.pid, used)))
        watcher.watch(big.pid, 100 * MB, lambda used: reports.append((big.pid, used)))
        sampler = watcher._sampler
        assert sampler is not None
        await asyncio.sleep(0.5)
        assert [pid for pid, _ in reports] == [big.pid]  # once, though sampled 5 times
        assert reports[0][1] > 190 * MB
        watcher.unwatch(small.pid)
        await asyncio.wait_for(sampler, 1)  # nothing watched: the sampler stops

    asyncio.run(scenario())
    assert small.poll() is None and big.poll() is None  # reporting is all it does


# -- the local backend -------------------------------------------------------------------


def hog(megabytes: int) -> int:
    block = bytearray(megabytes * 2**20)
    for i in range(0, len(block), 4096):
        block[i] = 1
    time.sleep(3)
    return len(block) // 2**20


@pytest.fixture
def local(tmp_path: Path) -> Iterator[sm.Cluster]:
    connecting = sys.modules["slurm_magics.api.connect"]
    previous = connecting._default
    cluster = sm.connect(backend="local", root=str(tmp_path))
    yield cluster
    cluster.close()
    connecting._default = previous  # the session's cluster stays the default for later tests


def test_a_task_over_its_memory_ends_out_of_memory(local: sm.Cluster) -> None:
    job = sm.task(hog, memory="100M", cluster=local)(400)
    start = time.monotonic()
    with pytest.raises(sm.JobFailedError) as caught:
        job.result(timeout=30)
    took = time.monotonic() - start
    error = caught.value
    assert error.state is sm.JobState.OUT_OF_MEMORY
    assert job.state is sm.JobState.OUT_OF_MEMORY
    assert "memory" in str(error) and error.job_id == job.job_id
    assert took < 10, took  # ~1 s sampling + the poller; sleeping 3 s would have passed
    stderr = Path(error.log_paths[-1]).read_text()
    assert f"StepId={job.job_id}.batch exceeded memory limit (" in stderr
    assert f" > {100 * MB}), being killed" in stderr
    assert state_from_stderr(stderr) is JobState.OUT_OF_MEMORY
    assert "exceeded memory limit" in error.stderr_tail


def test_tasks_within_their_memory_or_without_a_limit_are_unaffected(local: sm.Cluster) -> None:
    within = sm.task(hog, memory="300M", cluster=local)(50)
    unlimited = sm.task(hog, cluster=local)(400)
    assert within.result(timeout=60) == 50
    assert unlimited.result(timeout=60) == 400
    assert local.scheduler._memory._watched == {}  # nothing left to sample


def test_an_array_loses_only_its_hungry_task_and_afterok_never_runs(local: sm.Cluster) -> None:
    jobs = sm.task(hog, memory="150M", cluster=local).map([20, 400, 20])
    after = sm.task(lambda sizes: sizes, memory="100M", cluster=local)(list(jobs))
    assert jobs[0].result(timeout=60) == 20 and jobs[2].result(timeout=60) == 20
    with pytest.raises(sm.JobFailedError) as caught:
        jobs[1].result(timeout=60)
    assert caught.value.state is sm.JobState.OUT_OF_MEMORY
    with pytest.raises(sm.DependencyError):
        after.result(timeout=60)
