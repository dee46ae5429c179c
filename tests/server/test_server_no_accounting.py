"""The panel on a SLURM that keeps no accounting (issue 12: an untested path): jobs that left
the queue with no recorded end stay UNKNOWN, sacct is never called, and the server says why
once. The shared dev cluster keeps accounting, so the test starts its OWN slurmctld (own
config without accounting, MinJobAge=2, own ports and folder, no slurmd: its jobs never run);
the dev cluster is not touched. The controller is stopped afterwards."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

import slurm_magics as sm
from slurm_magics.core.parsing import SQUEUE_FORMAT, QueueRow, parse_squeue
from slurm_magics.jobs.registry import Registry
from slurm_magics.scheduler.slurm import Scheduler
from slurm_magics.server.service import SlurmService
from tests.helpers import PrivateController, private_slurmctld, wait_for

pytestmark = pytest.mark.cluster

QUEUE_GRACE = 15.0  # seconds; as the job list counts it (see test_server_sacct.py)


@pytest.fixture
def controller() -> Iterator[Path]:
    with private_slurmctld("smnoacct", 6927) as conf:
        yield conf


def test_without_accounting_items_stay_unknown_and_sacct_is_never_called(
    controller: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    transport = PrivateController(controller)
    notebook = f"noacct-{uuid.uuid4().hex[:12]}.ipynb"
    with monkeypatch.context() as patch:  # the runs of this notebook: this test's alone
        patch.setenv("SLURM_MAGICS_NOTEBOOK", notebook)
        cluster = sm.Cluster(transport, root=str(tmp_path / "root"), python=sys.executable)
        try:
            assert not cluster.config.accounting
            job = cluster.submit(pow, 2, 10)  # pending for ever: this controller has no slurmd
            run_id, job_id, submitted_at = job.run.run_id, job.job_id, job.run.submitted_at
        finally:
            cluster.close()  # nobody follows the job any more
    env = {**os.environ, "SLURM_CONF": str(controller)}
    subprocess.run(["scancel", job_id], env=env, check=True)
    wait_for(
        lambda: (
            job_id
            not in subprocess.run(
                ["squeue", "-h", "-t", "all", "-o", "%i"], env=env, capture_output=True, text=True
            ).stdout.split()
        ),
        30,
        "the cancelled job to leave the queue (MinJobAge 2 s)",
    )

    # a run younger than this may be missing from a queue snapshot: shown PENDING, not UNKNOWN
    time.sleep(max(0.0, submitted_at + QUEUE_GRACE + 1 - time.time()))

    async def queue() -> list[QueueRow]:
        listed = await transport.run(["squeue", "-h", "-t", "all", "-o", SQUEUE_FORMAT])
        return parse_squeue(listed.check().stdout)

    scheduler = Scheduler(transport)
    service = SlurmService(
        root_dir=str(tmp_path),
        registry=lambda: Registry(os.environ["SLURM_MAGICS_REGISTRY"]),
        scheduler=scheduler,
        fetch_queue=queue,
        sacct_interval=0.0,
    )

    async def listings() -> list[dict[str, int]]:
        shown = []
        for _ in range(2):
            body = await service.jobs(offset=0, limit=500, notebook=notebook)
            runs = {r["run_id"]: r for g in body["notebooks"] for r in g["runs"]}
            shown.append(runs[run_id]["counts"])
            assert body["accounting"]["calls"] == 0
        return shown

    try:
        with caplog.at_level(logging.INFO, logger="slurm_magics.server.settle"):
            shown = asyncio.run(listings())
    finally:
        service.registry.close()
    assert shown == [{"UNKNOWN": 1}, {"UNKNOWN": 1}]
    assert scheduler.counters["sacct"] == 0
    said = [r.getMessage() for r in caplog.records if "keeps no accounting" in r.getMessage()]
    assert len(said) == 1, said
