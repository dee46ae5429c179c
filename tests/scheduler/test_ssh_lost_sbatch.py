"""An sbatch whose SSH connection drops: never a job without its future, never two jobs.

Each submission carries a tag in its --comment; after a drop the scheduler looks the tag
up in the queue. The reply-lost case is made for real: slurmctld is stopped (SIGSTOP) so
sbatch waits for its answer, the server side of the SSH connection is killed, then the
controller resumes and registers the job that nobody heard about.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from slurm_magics.core.sbatch import submission_comment
from slurm_magics.devcluster import SSHInfo, load_info
from slurm_magics.devcluster.cluster import daemon_pids
from slurm_magics.scheduler.lost_sbatch import LOOKS, keep_one
from slurm_magics.scheduler.slurm import Scheduler
from slurm_magics.transport import CommandResult, ConnectionLostError, LocalTransport, SSHTransport
from tests.helpers import drop, transport_for, using

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def ssh() -> SSHInfo:
    return load_info().ssh


def held_script(folder: Path, tag: str) -> str:
    return (
        "#!/bin/bash\n"
        "#SBATCH --hold\n"
        f"#SBATCH --output={folder}/%j.out\n"
        f"#SBATCH --comment={submission_comment(tag)}\n"
        "true\n"
    )


def jobs_tagged(tag: str) -> list[str]:
    """The ids of the jobs the controller knows with this tag (asked here, not over SSH)."""
    out = subprocess.run(
        ["squeue", "--noheader", "--states=all", "-o", "%F|%k"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    comment = submission_comment(tag)
    return sorted({line.split("|")[0] for line in out.splitlines() if line.endswith(comment)})


def fresh_tag() -> str:
    return f"test-{os.getpid()}-{time.time_ns()}.0"


def test_a_reply_lost_with_the_connection_finds_the_submitted_job(
    ssh: SSHInfo, tmp_path: Path
) -> None:
    tag = fresh_tag()
    controller = daemon_pids()["slurmctld"]
    assert controller is not None

    async def scenario(t: SSHTransport) -> str:
        scheduler = Scheduler(t)
        await scheduler.whoami()
        os.kill(controller, signal.SIGSTOP)
        try:
            submitting = asyncio.ensure_future(
                scheduler.submit(held_script(tmp_path, tag), tag=tag)
            )
            await asyncio.sleep(1.5)
            assert not submitting.done()  # sbatch waits for the stopped controller
            drop(t, ssh)
            await asyncio.sleep(1.0)
        finally:
            os.kill(controller, signal.SIGCONT)
        job_id = await asyncio.wait_for(submitting, 120)
        assert scheduler.counters["sbatch"] == 1  # found, not submitted again
        assert t.stats["reconnects"] >= 1
        return job_id

    job_id = using(transport_for(ssh), scenario)
    try:
        assert jobs_tagged(tag) == [job_id]
    finally:
        subprocess.run(["scancel", job_id], check=False)


def test_an_sbatch_lost_before_it_ran_is_submitted_once_more(ssh: SSHInfo, tmp_path: Path) -> None:
    tag = fresh_tag()
    transport = transport_for(ssh)
    real_run = transport.run
    lost = []

    async def lossy_run(argv: Sequence[str], **options: Any) -> CommandResult:
        if argv[0] == "sbatch" and not lost:  # the connection died before sbatch started
            lost.append(argv)
            raise ConnectionLostError("the SSH connection was lost during `sbatch --parsable`")
        return await real_run(argv, **options)

    transport.run = lossy_run  # type: ignore[method-assign]

    async def scenario(t: SSHTransport) -> str:
        scheduler = Scheduler(t)
        job_id = await scheduler.submit(held_script(tmp_path, tag), tag=tag)
        assert scheduler.counters["sbatch"] == 2  # looked for it, then submitted again
        assert scheduler.counters["squeue"] == len(LOOKS) + 1  # ... and checked for a copy
        return job_id

    job_id = using(transport, scenario)
    try:
        assert lost and jobs_tagged(tag) == [job_id]
    finally:
        subprocess.run(["scancel", job_id], check=False)


def test_without_a_tag_the_loss_is_reported_as_it_is(ssh: SSHInfo, tmp_path: Path) -> None:
    transport = transport_for(ssh)

    async def lossy_run(argv: Sequence[str], **options: Any) -> CommandResult:
        raise ConnectionLostError("the SSH connection was lost; it may or may not have run there")

    transport.run = lossy_run  # type: ignore[method-assign]

    async def scenario(t: SSHTransport) -> None:
        with pytest.raises(ConnectionLostError, match="may or may not have run"):
            await Scheduler(t, user="root").submit(held_script(tmp_path, fresh_tag()))

    using(transport, scenario)


def test_when_the_lost_job_turns_up_after_all_the_copy_is_cancelled(tmp_path: Path) -> None:
    tag = fresh_tag()

    async def scenario() -> tuple[str, str, str]:
        scheduler = Scheduler(LocalTransport())
        lost = await scheduler.submit(held_script(tmp_path, tag), tag=tag)
        again = await scheduler.submit(held_script(tmp_path, tag), tag=tag)
        kept = await keep_one(scheduler._run, await scheduler.whoami(), tag, again)
        return lost, again, kept

    lost, again, kept = asyncio.run(scenario())
    try:
        assert kept == lost != again
        state = subprocess.run(
            ["squeue", "--noheader", "--states=all", "-j", again, "-o", "%T"],
            capture_output=True,
            text=True,
        ).stdout.strip()
        assert state == "CANCELLED"
        assert jobs_tagged(tag) == sorted([lost, again], key=int)  # the copy, cancelled
    finally:
        subprocess.run(["scancel", lost, again], check=False)
