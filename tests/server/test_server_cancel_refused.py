"""The panel's cancel endpoint when SLURM refuses: an error reply with SLURM's message (the
panel shows it), the job still in SLURM and nothing recorded as cancelled.

The Jupyter server here runs SLURM's own scancel as a throwaway user, so SLURM really
refuses it root's jobs (Access/permission denied).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import slurm_magics as sm
from tests.helpers import other_user
from tests.server.lab_server import JupyterProcess, jupyter
from tests.server.test_server_api_jobs import squeue_states

pytestmark = pytest.mark.cluster

NOTEBOOK = {"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}


@pytest.fixture(scope="module")
def refusing_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JupyterProcess]:
    scancel = shutil.which("scancel")
    assert scancel is not None, "no scancel: run `slurm-magics devcluster up`"
    root = tmp_path_factory.mktemp("refusing-server-root")
    (root / "demo.ipynb").write_text(json.dumps(NOTEBOOK))
    with other_user() as name:
        shim = tmp_path_factory.mktemp("scancel-as-other-user")
        # SLURM's own scancel, run as a user SLURM does not let cancel root's jobs.
        (shim / "scancel").write_text(f'#!/bin/sh\nexec runuser -u {name} -- {scancel} "$@"\n')
        (shim / "scancel").chmod(0o755)
        before = os.environ["PATH"]
        os.environ["PATH"] = f"{shim}{os.pathsep}{before}"
        try:
            with jupyter("server", root, tmp_path_factory.mktemp("logs")) as process:
                os.environ["PATH"] = before
                yield process
        finally:
            os.environ["PATH"] = before


@pytest.fixture
def held(local: sm.Cluster, refusing_server: JupyterProcess) -> Iterator[sm.Task[Any, Any]]:
    os.environ["SLURM_MAGICS_NOTEBOOK"] = str(Path(refusing_server.root_dir) / "demo.ipynb")
    task = sm.task(lambda x: x, memory="100M", name="held_task", extra={"hold": True}).on(local)
    try:
        yield task
    finally:
        del os.environ["SLURM_MAGICS_NOTEBOOK"]
        ids = [j.job_id for run in local.live_runs.values() for j in run.jobs if not j.done()]
        if ids:
            subprocess.run(["scancel", *ids], check=False)


def test_refused_cancel_is_an_error_and_changes_nothing(
    refusing_server: JupyterProcess, held: sm.Task[Any, Any], local: sm.Cluster
) -> None:
    job = held(1)
    array = held.map(range(3))
    for target in ({"job_id": job.job_id}, {"job_id": f"{array.job_id}_1"}):
        reply = refusing_server.api("POST", "cancel", body=target)
        assert reply.status == 502, reply
        assert "Access/permission denied" in reply.body["message"], reply.body
    reply = refusing_server.api("POST", "cancel", body={"run_id": array.runs[0].run_id})
    assert reply.status == 502 and "Access/permission denied" in reply.body["message"]

    assert squeue_states(job.job_id) == {None: "PENDING"}
    assert squeue_states(array.job_id) == dict.fromkeys(range(3), "PENDING")
    for run in (job.run, *array.runs):
        assert all(j.state != "CANCELLED" for j in local.registry.jobs_of(run.run_id))
    assert not job.done() and not any(j.done() for j in array)
