"""Live output of array tasks, followed on the real dev cluster (and over SSH, and on the
local backend): incremental reads, one batched read per tick, lines arriving within ~1 s."""

from __future__ import annotations

import time

import pytest

import slurm_magics as sm
from slurm_magics.jobs.engine import engine
from slurm_magics.jobs.tails import TailFollower, read_batch
from tests.helpers import wait_for

pytestmark = pytest.mark.cluster

LINES = 30
PAUSE = 0.3


@sm.task(memory="100M", time=5)
def chatty(task: int) -> int:
    """Prints a numbered, time-stamped line every PAUSE seconds (no explicit flush)."""
    for line in range(LINES):
        print(f"task {task} line {line} at {time.time():.3f}")
        time.sleep(PAUSE)
    return task


def test_following_array_tasks_live(cluster: sm.Cluster) -> None:
    arr = chatty.on(cluster).map(range(2))  # both run at once, also on a 2-core backend
    follower = TailFollower(cluster.transport)
    wait_for(lambda: all(job.started_at for job in arr) or arr.done(), 120, "tasks to start")
    followed_at = time.time()  # lines printed before this were not followed live
    chosen = follower.follow(arr[1].log_paths()[0], full=True)
    others = [follower.follow(arr[0].log_paths()[0], full=False)]
    reads_before = follower.reads
    started = time.monotonic()
    arrivals: dict[int, float] = {}  # line number -> when it was first seen here
    trace: list[tuple[float, int, int]] = []  # (time, reads, offset), for a failure's message
    last = f"task 0 line {LINES - 1} "

    def other_complete() -> bool:  # the other file's last line, read after task 0 wrote it
        return others[0].last_line.startswith(last)

    while not arr.done() or len(arrivals) < LINES or not other_complete():
        for text in chosen.text.splitlines():
            number = int(text.split()[3])
            arrivals.setdefault(number, time.time())
        if time.monotonic() - started > 120:
            break
        trace.append((round(time.time() % 100, 2), follower.reads, chosen.offset))
        time.sleep(0.02)
    elapsed = time.monotonic() - started
    follower.unfollow(follower.followed)
    assert arr.result(timeout=60) == [0, 1]
    lines = chosen.text.splitlines()
    assert [int(line.split()[3]) for line in lines] == list(range(LINES))  # each line once
    # lines arrive within ~1 s of their print: the median, and all but a few (a slow squeue
    # on the busy shared controller can hold the one SSH shell the reads share for seconds)
    live = [line for line in lines if float(line.split()[5]) >= followed_at]
    assert len(live) >= LINES // 2, (followed_at, lines)  # most lines came while followed
    latencies = sorted(arrivals[int(line.split()[3])] - float(line.split()[5]) for line in live)
    late = [value for value in latencies if value > 1.5]
    median = latencies[len(latencies) // 2]
    assert median <= 1.0 and len(late) <= len(live) // 5, (latencies, trace[-40:])
    # one batched read per tick for both files: never one per file
    assert follower.reads - reads_before <= elapsed / follower.interval + 2
    assert all(tail.last_line.startswith("task ") for tail in others)
    assert others[0].last_line.split()[:4] == ["task", "0", "line", str(LINES - 1)]
    assert others[0].text == ""  # last-line tails keep no text


def test_reads_are_incremental(cluster: sm.Cluster, tmp_path: object) -> None:
    path = f"{cluster.root}/tail-test-{time.time_ns()}.txt"
    engine.call(cluster.transport.write_files({path: b"one\ntwo\n"}))
    first = engine.call(read_batch(cluster.transport, [(path, 0, 1 << 16), (path + "x", 0, 10)]))
    assert first == [(8, b"one\ntwo\n"), (-1, b"")]
    engine.call(cluster.transport.write_files({path: b"one\ntwo\nthree\xc3\xa9\n"}))
    second = engine.call(read_batch(cluster.transport, [(path, 8, 1 << 16), (path, 8, 3)]))
    assert second == [(16, b"three\xc3\xa9\n"), (16, b"\xc3\xa9\n")]  # the newest 3 bytes
    engine.call(cluster.transport.remove_files([path]))
