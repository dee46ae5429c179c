"""Dropped SSH connections and a restarted sshd, on the real dev cluster; poll tick costs."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import slurm_magics as sm
from slurm_magics import devcluster
from slurm_magics.devcluster import SSHInfo, load_info
from slurm_magics.devcluster.cluster import daemon_pids
from slurm_magics.transport import ConnectionLostError, SSHTransport
from tests.helpers import drop, transport_for, using

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def ssh() -> SSHInfo:
    return load_info().ssh


async def until_dropped(transport: SSHTransport) -> None:
    for _ in range(200):
        if transport.connection is None:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the client did not notice the dropped connection")


@pytest.fixture
def sshd_back() -> Iterator[None]:
    """Whatever a test does to sshd, it runs again afterwards."""
    yield
    if daemon_pids()["sshd"] is None:
        devcluster.up()


def test_a_call_after_a_drop_reconnects(ssh: SSHInfo, tmp_path: Path) -> None:
    async def scenario(t: SSHTransport) -> None:
        await t.write_files({f"{tmp_path}/f": b"data"})
        drop(t, ssh)
        await until_dropped(t)
        # Nothing was sent on the dead connection: even a command that is not repeatable runs.
        assert (await t.run(["sh", "-c", "echo once"])).stdout == "once\n"
        assert t.stats["reconnects"] == 1
        drop(t, ssh)  # and at once, without waiting for the client to notice
        assert await t.read_file(f"{tmp_path}/f") == b"data"
        assert await t.list_dir(str(tmp_path)) == ["f"]
        assert (await t.run(["id", "-un"])).stdout.strip() == ssh.user
        assert t.stats["reconnects"] == 2

    using(transport_for(ssh), scenario)


def test_a_drop_during_a_command_that_cannot_repeat_is_a_cluster_error(ssh: SSHInfo) -> None:
    async def scenario(t: SSHTransport) -> None:
        await t.run(["true"])
        running = asyncio.ensure_future(t.run(["sh", "-c", "sleep 5; echo late"]))
        await asyncio.sleep(1.0)
        drop(t, ssh)
        with pytest.raises(ConnectionLostError, match="may or may not have run"):
            await running
        assert (await t.run(["echo", "next"])).stdout == "next\n"  # reconnects

    using(transport_for(ssh), scenario)


def test_an_unreachable_server_gives_up_with_a_clear_error(ssh: SSHInfo, tmp_path: Path) -> None:
    closed = transport_for(ssh, port=1)  # nothing listens on port 1

    async def scenario(t: SSHTransport) -> None:
        with pytest.raises(ConnectionLostError, match=r"cannot reach .* gave up after 2 attempts"):
            await t.list_dir(str(tmp_path))

    using(closed, scenario)


def slow_square(x: int) -> int:
    time.sleep(3)
    return x * x


def test_sshd_killed_and_restarted_mid_sweep(ssh: SSHInfo, tmp_path: Path, sshd_back: None) -> None:
    transport = transport_for(ssh)
    cluster = sm.Cluster(transport, root=str(tmp_path), python=sys.executable)
    try:
        arr = sm.task(slow_square, memory="100M", time=5).on(cluster).map(range(16))
        deadline = time.monotonic() + 60
        while not any(job.state is sm.JobState.RUNNING for job in arr.jobs):
            assert time.monotonic() < deadline, "no task started within 60 s"
            time.sleep(0.2)
        listener = daemon_pids()["sshd"]
        assert listener is not None
        os.kill(listener, signal.SIGTERM)  # no new connections ...
        drop(transport, ssh)  # ... and ours is gone
        time.sleep(6)  # the poller's reconnections are refused meanwhile
        assert transport.connection is None
        devcluster.up()  # starts sshd again, as `slurm-magics devcluster up` does
        assert arr.result(timeout=300) == [x * x for x in range(16)]
        assert all(job.state is sm.JobState.COMPLETED for job in arr.jobs)
        assert transport.stats["reconnects"] >= 1
    finally:
        cluster.close()


def test_an_idle_poll_tick_costs_at_most_two_remote_commands(ssh: SSHInfo, tmp_path: Path) -> None:
    transport = transport_for(ssh)
    cluster = sm.Cluster(transport, root=str(tmp_path), python=sys.executable)
    held = sm.task(abs, memory="100M", extra={"hold": True}).on(cluster)(-1)
    try:
        time.sleep(3)  # submitted and polled
        before = (dict(transport.counters), cluster.poller.ticks, dict(transport.stats))
        time.sleep(25)  # a held job: the poller backs off to its idle interval
        after = (dict(transport.counters), cluster.poller.ticks, dict(transport.stats))
        ticks = after[1] - before[1]
        calls = {op: n - before[0].get(op, 0) for op, n in after[0].items()}
        calls = {op: n for op, n in calls.items() if n}
        assert ticks >= 2
        assert set(calls) <= {"list_dir", "run"}  # the sentinel listing and squeue, nothing else
        assert abs(calls["list_dir"] - ticks) <= 1  # one listing per tick
        assert calls.get("run", 0) <= calls["list_dir"]  # at most one squeue per tick
        assert after[2]["channels_opened"] == before[2]["channels_opened"]  # no new channels
    finally:
        held.cancel()
        cluster.close()
