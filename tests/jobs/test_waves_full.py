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
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import slurm_magics as sm
from slurm_magics.core.limits import SubmitLimitError
from slurm_magics.core.states import JobState
from slurm_magics.jobs.engine import engine
from slurm_magics.scheduler.slurm import Scheduler
from tests.helpers import PrivateController, private_slurmctld, wait_for

pytestmark = pytest.mark.cluster


def as_nobody(conf: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["runuser", "-u", "nobody", "--", "env", f"SLURM_CONF={conf}", *argv],
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.fixture
def controller() -> Iterator[Path]:
    with private_slurmctld("smwavesfull", 6917, extra="MaxJobCount=20\n") as conf:
        yield conf


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
