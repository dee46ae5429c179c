"""The panel on a SLURM that keeps no accounting (issue 12: an untested path): jobs that left
the queue with no recorded end stay UNKNOWN, sacct is never called, and the server says why
once. The shared dev cluster keeps accounting, so the test starts its OWN slurmctld (own
config without accounting, MinJobAge=2, own ports and folder, no slurmd: its jobs never run);
the dev cluster is not touched. The controller is stopped afterwards."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

import slurm_magics as sm
from slurm_magics.core.parsing import SQUEUE_FORMAT, QueueRow, parse_squeue
from slurm_magics.jobs.registry import Registry
from slurm_magics.scheduler.slurm import Scheduler
from slurm_magics.server.service import SlurmService
from slurm_magics.transport import CommandResult, LocalTransport
from tests.helpers import require_cluster, wait_for

pytestmark = pytest.mark.cluster

QUEUE_GRACE = 15.0  # seconds; as the job list counts it (see test_server_sacct.py)

CONFIG = """\
ClusterName=smnoacct
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort=6927
SlurmdPort=6928
SlurmUser=root
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation={folder}/state
SlurmdSpoolDir={folder}/spool
SlurmctldPidFile={folder}/slurmctld.pid
SlurmdPidFile={folder}/slurmd.pid
SlurmctldLogFile={folder}/slurmctld.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MinJobAge=2
NodeName={host} CPUs=4 RealMemory=4000 State=UNKNOWN
PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP DefMemPerCPU=100
"""


class OwnController(LocalTransport):
    """This machine ("local", as the panel sees it), SLURM's commands sent to the test's
    own controller."""

    def __init__(self, conf: Path) -> None:
        self.conf = conf

    async def run(
        self, argv: Sequence[str], *, input: bytes | None = None, timeout: float | None = 120.0
    ) -> CommandResult:
        argv = ["env", f"SLURM_CONF={self.conf}", *argv]
        return await super().run(argv, input=input, timeout=timeout)


@pytest.fixture
def controller() -> Iterator[Path]:
    require_cluster()
    folder = Path(tempfile.mkdtemp(prefix="slurm-magics-noacct-"))
    for sub in ("state", "spool"):
        (folder / sub).mkdir()
    host = subprocess.run(["hostname", "-s"], capture_output=True, text=True, check=True)
    conf = folder / "slurm.conf"
    conf.write_text(CONFIG.format(host=host.stdout.strip(), folder=folder))
    subprocess.run([shutil.which("slurmctld") or "/usr/sbin/slurmctld", "-c", "-i", "-f",
                    str(conf)], check=True)  # fmt: skip
    pid_file = folder / "slurmctld.pid"
    env = {**os.environ, "SLURM_CONF": str(conf)}
    try:
        wait_for(pid_file.exists, 20, "the test's slurmctld to start")
        wait_for(
            lambda: subprocess.run(["squeue"], env=env, capture_output=True).returncode == 0,
            20,
            "the test's slurmctld to answer",
        )
        yield conf
    finally:
        if pid_file.exists():
            pid = int(pid_file.read_text().split()[0])
            os.kill(pid, signal.SIGTERM)
            wait_for(lambda: not Path(f"/proc/{pid}").exists(), 30, "the test's slurmctld to stop")
        shutil.rmtree(folder, ignore_errors=True)


def test_without_accounting_items_stay_unknown_and_sacct_is_never_called(
    controller: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    transport = OwnController(controller)
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
