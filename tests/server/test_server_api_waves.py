"""The Lab panel's job list says what of a map waits on the client for room, and where;
its cancel stops those waves too (a real `jupyter server`, the dev cluster, a QOS with
MaxSubmitJobsPerUser=3; this test process is the one that holds the waves)."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator

import pytest

import slurm_magics as sm
from tests.helpers import wait_for
from tests.jobs.test_waves import qos_limit
from tests.server.lab_server import JupyterProcess
from tests.server.test_server_api_jobs import notebook, run_of, server, squeue_states

pytestmark = pytest.mark.cluster
__all__ = ["notebook", "server"]  # fixtures of the server's job-list tests, used here


@pytest.fixture
def qos3panel() -> Iterator[str]:
    yield from qos_limit("smwavespanel", 3)


def square(x: int) -> int:
    return x * x


def test_tasks_waiting_on_the_client_are_counted_with_their_process(
    server: JupyterProcess, notebook: str, local: sm.Cluster, qos3panel: str
) -> None:
    held = sm.task(square, memory="50M", qos=qos3panel, extra={"hold": True}).on(local)
    blockers = held.map(range(2))
    array = sm.task(square, memory="50M", qos=qos3panel).on(local).map(range(4))
    assert len(array.job_ids) == 1  # one fits; three wait here
    run_id = array.runs[0].run_id
    where = f"pid {os.getpid()} on {socket.gethostname()}"
    run = run_of(server, run_id)
    assert run["waiting_on_client"] == {"tasks": 3, "where": where}
    assert run["counts"]["PENDING"] >= 3
    blockers.cancel()  # room: the waves go in, nothing waits on the client any more
    assert array.result(timeout=300) == [0, 1, 4, 9]
    wait_for(
        lambda: run_of(server, run_id)["waiting_on_client"] is None,
        timeout=30,
        what="the panel to see nothing waiting on the client",
    )
    assert len(run_of(server, run_id)["slurm_ids"]) >= 2
    subprocess.run(["scancel", *blockers.job_ids], check=False)


def waiting_map(local: sm.Cluster, qos: str) -> tuple[sm.JobArray, sm.JobArray]:
    """Two held blockers fill the QOS's 3; a held map of 4: one goes in, three wait here."""
    held = sm.task(square, memory="50M", qos=qos, extra={"hold": True}).on(local)
    blockers, array = held.map(range(2)), held.map(range(4))
    assert len(array.job_ids) == 1
    wait_for(
        lambda: all(j.reason.startswith("waiting for room") for j in array.jobs[1:]),
        what="three tasks to wait here for room",
    )
    return blockers, array


def test_a_cancel_from_the_panel_ends_the_waves_their_process_still_holds(
    server: JupyterProcess, notebook: str, local: sm.Cluster, qos3panel: str
) -> None:
    blockers, array = waiting_map(local, qos3panel)
    run_id = array.runs[0].run_id
    try:
        reply = server.api("POST", "cancel", body={"run_id": run_id})
        assert reply.status == 200, reply
        assert reply.body["cancelled"] == array.job_ids
        # this process learns it at its next look at the queue, before any room appears
        for job in array.jobs[1:]:
            with pytest.raises(sm.JobFailedError, match="JupyterLab SLURM panel") as failed:
                job.result(timeout=60)
            assert failed.value.state is sm.JobState.CANCELLED
        with pytest.raises(sm.JobFailedError, match="cancelled outside this session") as failed:
            array.jobs[0].result(timeout=60)  # scancelled: as this process's poller sees it
        assert failed.value.state is sm.JobState.CANCELLED
        sbatch = local.waves.stats["sbatch"]
        blockers.cancel()  # room: still no wave of the cancelled map goes in
        wait_for(lambda: not local.waves.queue, timeout=30, what="nothing to wait here")
        time.sleep(10)  # a few polls of the queue, each a chance to submit
        assert local.waves.stats["sbatch"] == sbatch
        assert [part.slurm_id for part in array.runs[0].slices] == array.job_ids
        assert [j.state for j in local.registry.jobs_of(run_id)] == ["CANCELLED"] * 4
        assert run_of(server, run_id)["waiting_on_client"] is None
    finally:
        subprocess.run(["scancel", *blockers.job_ids, *array.job_ids], check=False)


def test_a_wave_that_went_in_as_its_map_was_cancelled_is_cancelled_at_once(
    local: sm.Cluster, qos3panel: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cancel lands between the process's last look at the registry and its sbatch
    (the look is switched off to open that window): the slice is cancelled on record."""
    monkeypatch.setattr(local.waves, "before_wave", lambda run: None)
    blockers, array = waiting_map(local, qos3panel)
    run_id = array.runs[0].run_id
    try:
        ended, _ = local.registry.end_unsubmitted(
            run_id, "CANCELLED", lambda items: "JobFailedError: cancelled elsewhere", time.time()
        )
        assert ended == 3
        blockers.cancel()  # room: the next wave goes in, is recorded, and is cancelled
        for job in array.jobs[1:]:
            with pytest.raises(sm.JobFailedError, match="cancelled elsewhere"):
                job.result(timeout=120)
        wait_for(lambda: len(array.runs[0].slices) == 2, timeout=30, what="the second slice")
        late = array.runs[0].slices[1].slurm_id
        wait_for(
            lambda: set(squeue_states(late).values()) == {"CANCELLED"},
            timeout=30,
            what=f"slice {late} to be cancelled",
        )
    finally:
        subprocess.run(["scancel", *blockers.job_ids, *array.job_ids], check=False)


def test_a_cancelled_map_behind_another_that_waits_ends_at_once(
    server: JupyterProcess, notebook: str, local: sm.Cluster, qos3panel: str
) -> None:
    """This process holds two maps that wait for room; the panel cancels the second one,
    which has nothing in SLURM yet: its futures end without waiting for the first's waves."""
    blockers, ahead = waiting_map(local, qos3panel)
    held = sm.task(square, memory="50M", qos=qos3panel, extra={"hold": True}).on(local)
    behind = held.map(range(2))
    assert behind.job_ids == []
    try:
        reply = server.api("POST", "cancel", body={"run_id": behind.runs[0].run_id})
        assert reply.status == 200 and reply.body["cancelled"] == [], reply
        for job in behind.jobs:
            with pytest.raises(sm.JobFailedError, match="before they were submitted"):
                job.result(timeout=60)
        assert not any(job.done() for job in ahead.jobs)  # the first map still waits
    finally:
        subprocess.run(["scancel", *blockers.job_ids, *ahead.job_ids], check=False)
        ahead.cancel()
