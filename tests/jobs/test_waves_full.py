"""A map while the controller is at MaxJobCount: it waits, says why, and goes in later.

Filling the shared dev cluster's MaxJobCount would stop everyone else's work, so the test
starts its OWN slurmctld (own config with MaxJobCount=20 and MinJobAge=2, own ports and
state folder, no slurmd: its jobs never run) and fills it with held jobs of another user
(nobody), which the client cannot count: what it meets is sbatch's real refusal at
MaxJobCount. Its transport runs every command with SLURM_CONF pointing at that
controller; the dev cluster is never touched. The controller is stopped afterwards.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

import slurm_magics as sm
from slurm_magics.core.limits import SubmitLimitError
from slurm_magics.core.states import JobState
from slurm_magics.jobs.engine import engine
from slurm_magics.scheduler.slurm import Scheduler
from slurm_magics.transport import CommandResult, LocalTransport
from tests.helpers import require_cluster, wait_for

pytestmark = pytest.mark.cluster

CONFIG = """\
ClusterName=smwavesfull
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort=6917
SlurmdPort=6918
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
MaxJobCount=20
MinJobAge=2
NodeName={host} CPUs=4 RealMemory=4000 State=UNKNOWN
PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP DefMemPerCPU=100
"""


class PrivateController(LocalTransport):
    """This machine, with SLURM's commands pointed at the test's own controller."""

    description = "local (private test controller)"

    def __init__(self, conf: Path) -> None:
        self.conf = conf

    async def run(
        self, argv: Sequence[str], *, input: bytes | None = None, timeout: float | None = 120.0
    ) -> CommandResult:
        return await super().run(
            ["env", f"SLURM_CONF={self.conf}", *argv], input=input, timeout=timeout
        )


def as_nobody(conf: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["runuser", "-u", "nobody", "--", "env", f"SLURM_CONF={conf}", *argv],
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.fixture
def controller() -> Iterator[Path]:
    require_cluster()
    # readable by nobody (pytest's own temporary folders are private to root)
    folder = Path(tempfile.mkdtemp(prefix="slurm-magics-waves-"))
    folder.chmod(0o755)
    for sub in ("state", "spool"):
        (folder / sub).mkdir()
    host = subprocess.run(["hostname", "-s"], capture_output=True, text=True, check=True)
    conf = folder / "slurm.conf"
    conf.write_text(CONFIG.format(host=host.stdout.strip(), folder=folder))
    binary = shutil.which("slurmctld") or "/usr/sbin/slurmctld"
    subprocess.run([binary, "-c", "-i", "-f", str(conf)], check=True)
    pid_file = folder / "slurmctld.pid"
    try:
        wait_for(pid_file.exists, 20, "the test's slurmctld to start")
        env = {**os.environ, "SLURM_CONF": str(conf)}
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


def fill(conf: Path) -> list[str]:
    """Held jobs of user nobody until sbatch refuses (MaxJobCount reached)."""
    ids = []
    for _ in range(25):
        made = as_nobody(
            conf, "timeout", "5", "sbatch", "--parsable", "--hold", "--chdir=/tmp", "--wrap", "true"
        )
        if made.returncode != 0:
            assert "temporarily unable" in made.stderr, made.stderr
            break
        ids.append(made.stdout.strip())
    assert 10 <= len(ids) < 25
    return ids


def square(x: int) -> int:
    return x * x


def test_sbatch_at_max_job_count_is_stopped_at_once_and_named(controller: Path) -> None:
    filler = fill(controller)
    scheduler = Scheduler(PrivateController(controller))
    scheduler.watch_refusals = True
    script = "#!/bin/bash\n#SBATCH --hold\n#SBATCH --chdir=/tmp\ntrue\n"
    start = time.monotonic()
    with pytest.raises(SubmitLimitError) as refused:
        engine.call(scheduler.submit(script, tag="waves-test.0"))
    assert time.monotonic() - start < 3  # sbatch itself would retry for minutes
    assert refused.value.refusal.limit == "MaxJobCount"
    assert "temporarily unable to accept job" in refused.value.refusal.said
    assert as_nobody(controller, "scancel", *filler).returncode == 0


def test_a_map_at_max_job_count_waits_says_why_once_then_goes_in(
    controller: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    filler = fill(controller)
    cluster = sm.Cluster(
        PrivateController(controller), root=str(tmp_path / "root"), python=sys.executable
    )
    try:
        assert cluster.config.max_job_count == 20
        with caplog.at_level(logging.WARNING, logger="slurm_magics.jobs.waves"):
            array = cluster.submit_calls(
                square, [((x,), {}) for x in range(3)], name="full", resources=sm.Resources(),
                array=True,
            ).jobs  # fmt: skip
            time.sleep(3)
            assert all(job.job_id == "" and job.state is JobState.PENDING for job in array)
            assert array[0].reason == (
                "waiting for room: the cluster's MaxJobCount (or a busy controller) (MaxJobCount)"
            )
            assert as_nobody(controller, "scancel", *filler).returncode == 0
            # the records go after MinJobAge (2 s); the next try (after 2, 4, 8 s) goes in
            wait_for(lambda: all(job.job_id for job in array), 60, "the map to be submitted")
        said = [r.getMessage() for r in caplog.records if "waiting for room" in r.getMessage()]
        assert len(said) == 1 and "MaxJobCount" in said[0]
        assert not any(job.reason.startswith("waiting for room") for job in array)
        cluster.cancel_jobs(array)
    finally:
        cluster.close()
