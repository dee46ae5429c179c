"""Maps past a submit limit, on the real dev cluster: waves, never a refusal.

Each test makes its own QOS (only its own jobs use it, through qos=) with a
MaxSubmitJobsPerUser, allows it for root's association, and removes both afterwards, so
other jobs on the shared cluster are not affected. The dev cluster does not enforce
accounting limits (AccountingStorageEnforce=none), so what keeps the queue under the
limit here is the client alone: it reads the limit with sacctmgr and counts its jobs.
"""

from __future__ import annotations

import logging
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import slurm_magics as sm
from slurm_magics.core.states import JobState
from slurm_magics.jobs.engine import engine
from slurm_magics.ui.magics.queue import waiting_lines
from slurm_magics.ui.widgets.sweep import SweepProgress
from tests.helpers import require_cluster

pytestmark = pytest.mark.cluster

ACTIVE = "PD,R,CG,S,CF"


def sacctmgr(*args: str) -> None:
    subprocess.run(["sacctmgr", "-i", *args], check=True, capture_output=True, text=True)


def queued_in(qos: str) -> int:
    """This QOS's jobs in SLURM's queue now, one per array task (squeue -r)."""
    out = subprocess.run(
        ["squeue", "-h", "-r", "-q", qos, "-t", ACTIVE, "-o", "%i"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return len(out.split())


def sacct_state(slurm_id: str) -> str:
    """What accounting says of one job or array task ("" before it knows it)."""
    out = subprocess.run(
        ["sacct", "-n", "-X", "-P", "-o", "State", "-j", slurm_id],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.split()
    return out[0].split(" ")[0] if out else ""


def qos_limit(name: str, limit: int) -> Iterator[str]:
    require_cluster()
    sacctmgr("add", "qos", name, f"MaxSubmitJobsPerUser={limit}")
    sacctmgr("modify", "user", "root", "set", f"qos+={name}")
    try:
        yield name
    finally:
        subprocess.run(["scancel", "-q", name], check=False)
        sacctmgr("modify", "user", "root", "set", f"qos-={name}")
        sacctmgr("delete", "qos", name)


@pytest.fixture
def qos300() -> Iterator[str]:
    yield from qos_limit("smwaves", 300)


@pytest.fixture
def qos3() -> Iterator[str]:
    yield from qos_limit("smwavesfull", 3)


@pytest.fixture
def qos0() -> Iterator[str]:
    yield from qos_limit("smwaveszero", 0)


@pytest.fixture
def waves_cluster(tmp_path: Path) -> Iterator[sm.Cluster]:
    cluster = sm.connect(root=str(tmp_path / "root"), partition="debug")
    yield cluster
    cluster.close()


def square(x: int) -> int:
    return x * x


def add_all(values: list[int]) -> int:
    return sum(values)


@pytest.mark.slow
def test_a_map_of_1000_past_a_limit_of_300_completes_in_waves(
    waves_cluster: sm.Cluster, qos300: str, caplog: pytest.LogCaptureFixture
) -> None:
    task = sm.task(square, memory="50M", time="00:05:00", qos=qos300)
    most = 0
    watching = True

    def watch() -> None:
        nonlocal most
        while watching:
            most = max(most, queued_in(qos300))
            time.sleep(0.2)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        with caplog.at_level(logging.WARNING, logger="slurm_magics.jobs.waves"):
            array = task.map(range(1000))
            last = array[999]
            assert last.state is JobState.PENDING and last.job_id == ""
            assert last.reason == f"waiting for room: MaxSubmitJobsPerUser 300 (QOS {qos300})"
            total = sm.task(add_all, memory="50M", time="00:05:00", qos=qos300)(array)
            assert total.job_id == ""  # held on the client until every wave is in SLURM
            assert array.result(timeout=1200) == [x * x for x in range(1000)]
            assert total.result(timeout=300) == sum(x * x for x in range(1000))
    finally:
        watching = False
        watcher.join()
    assert 0 < most <= 300
    assert len(array.job_ids) > 3  # several waves
    said = [r.getMessage() for r in caplog.records if "waiting for room" in r.getMessage()]
    assert len(said) == 1 and "MaxSubmitJobsPerUser 300" in said[0]  # said once
    # the fan-in's afterok named every wave that had not already succeeded
    assert all(
        slurm_id.isdigit() for slurm_id in total.run.dependency[len("afterok:") :].split(":")
    )


def test_a_map_with_no_room_waits_then_runs_when_room_appears(
    waves_cluster: sm.Cluster, qos3: str
) -> None:
    held = sm.task(square, memory="50M", time="00:05:00", qos=qos3, extra={"hold": True})
    blockers = held.map(range(3))
    assert queued_in(qos3) == 3
    array = sm.task(square, memory="50M", time="00:05:00", qos=qos3).map(range(4))
    time.sleep(3)  # a few poll ticks: still nothing of it may be queued
    assert queued_in(qos3) == 3
    assert array.job_ids == []
    reason = f"waiting for room: MaxSubmitJobsPerUser 3 (QOS {qos3})"
    assert {job.reason for job in array} == {reason}
    assert array.state is JobState.PENDING
    # what the sweep widget and %squeue show
    assert f"4 tasks {reason}" in SweepProgress(array).text()
    (line,) = waiting_lines(engine.call(waves_cluster.waves.waiting()))
    assert (line.name, line.state, line.tasks, line.where) == ("square", "PENDING", 4, reason)
    blockers.cancel()
    assert array.result(timeout=300) == [0, 1, 4, 9]
    assert len(array.job_ids) >= 2  # three fit first, the fourth in a later wave


def test_a_limit_of_zero_is_a_clear_error_before_anything_is_submitted(
    waves_cluster: sm.Cluster, qos0: str
) -> None:
    task = sm.task(square, memory="50M", time="00:05:00", qos=qos0)
    with pytest.raises(sm.SubmissionError) as refused:
        task.map(range(5))
    message = str(refused.value)
    assert f"MaxSubmitJobsPerUser 0 (QOS {qos0})" in message
    assert "waiting cannot help" in message and "sacctmgr show qos" in message
    assert queued_in(qos0) == 0


def test_closing_the_cluster_fails_what_still_waits_never_leaves_it_pending(
    waves_cluster: sm.Cluster, qos3: str
) -> None:
    held = sm.task(square, memory="50M", time="00:05:00", qos=qos3, extra={"hold": True})
    held.map(range(3))
    array = sm.task(square, memory="50M", time="00:05:00", qos=qos3).map(range(2))
    assert array.job_ids == []
    waves_cluster.close()
    with pytest.raises(sm.SubmissionError, match="never submitted: the cluster was closed"):
        array.result(timeout=10)
    assert all(job.state is JobState.FAILED for job in array)


def test_an_afterany_on_a_map_cancelled_while_it_waited_for_room_still_runs(
    waves_cluster: sm.Cluster, qos3: str
) -> None:
    """The downstream waits until its upstream is all in SLURM; a cancel means the rest
    of the upstream never goes in: the downstream must not wait for it for ever."""
    held = sm.task(square, memory="50M", time="00:05:00", qos=qos3, extra={"hold": True})
    blockers = held.map(range(2))
    upstream = held.map(range(4))  # one goes in, three wait here
    assert len(upstream.job_ids) == 1
    report = sm.task(square, memory="50M", time="00:05:00", qos=qos3)
    downstream = report.after(upstream, condition="afterany")(7)
    assert downstream.job_id == ""
    assert downstream.reason.startswith("waiting for room")
    upstream.cancel()
    try:
        assert downstream.result(timeout=120) == 49  # after the upstream, however it ended
        assert downstream.run.dependency == f"afterany:{upstream.job_ids[0]}"
    finally:
        blockers.cancel()


def test_a_task_cancelled_while_it_waited_for_room_never_runs_in_a_later_wave(
    waves_cluster: sm.Cluster, qos3: str
) -> None:
    held = sm.task(square, memory="50M", time="00:05:00", qos=qos3, extra={"hold": True})
    blockers = held.map(range(2))
    array = sm.task(square, memory="50M", time="00:05:00", qos=qos3).map(range(4))
    assert len(array.job_ids) == 1  # element 0 in; 1, 2 and 3 wait here
    assert array[2].job_id == ""
    assert array[2].cancel()  # nothing of it in SLURM: its future ends at once
    assert array[2].cancelled() and array[2].state is JobState.CANCELLED
    blockers.cancel()  # room: 1-3 go in together, 2 is scancelled as its slice is recorded
    assert [array[i].result(timeout=300) for i in (0, 1, 3)] == [0, 1, 9]
    late = array[2].job_id  # "" when the room came one task at a time and 2 was skipped
    if late:  # scancelled while pending: SLURM drops the task (no record) or says CANCELLED
        assert sacct_state(late) in ("", "CANCELLED")
        queued = subprocess.run(["squeue", "-h", "-j", late], capture_output=True, text=True)
        assert queued.stdout.strip() == ""
    assert array[2].cancelled()
