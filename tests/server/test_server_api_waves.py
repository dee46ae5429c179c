"""The Lab panel's job list says what of a map waits on the client for room, and where
(a real `jupyter server`, the dev cluster, a QOS with MaxSubmitJobsPerUser=3)."""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Iterator

import pytest

import slurm_magics as sm
from tests.helpers import wait_for
from tests.jobs.test_waves import qos_limit
from tests.server.lab_server import JupyterProcess
from tests.server.test_server_api_jobs import notebook, run_of, server

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
