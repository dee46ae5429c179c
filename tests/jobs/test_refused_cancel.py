"""A cancel SLURM refuses is an error with SLURM's message, and the jobs stay as they were.

The refusal is SLURM's own: the jobs belong to root, and the cluster that cancels them
runs SLURM's commands over the dev cluster's sshd as a throwaway user.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

import slurm_magics as sm
from slurm_magics.jobs.engine import engine
from slurm_magics.scheduler.slurm import Scheduler
from slurm_magics.transport import CommandError, LocalTransport, SSHTransport
from tests.helpers import other_user, ssh_options

pytestmark = pytest.mark.cluster

REFUSED = "Access/permission denied"


def sleep_then(seconds: float, value: object) -> object:
    time.sleep(seconds)
    return value


@pytest.fixture(scope="module")
def refused(local: sm.Cluster) -> Iterator[sm.Cluster]:
    """``local``'s cluster, registry and run folder, with SLURM's commands run by another
    user over the real sshd (it reads root's queue; SLURM refuses it every change)."""
    with other_user() as name:
        options = ssh_options()
        options["user"] = name
        ssh = SSHTransport(options.pop("host"), **options)
        root_user = engine.call(local.scheduler.whoami())
        other = sm.Cluster(
            LocalTransport(),
            root=local.root,
            python=local.python,
            scheduler=Scheduler(ssh, user=root_user),
        )
        assert other.key == local.key  # so it attaches local's jobs
        try:
            yield other
        finally:
            other.close()
            engine.call(ssh.close())


def test_refused_scancel_raises_with_slurms_message(local: sm.Cluster, refused: sm.Cluster) -> None:
    job = local.submit(sleep_then, 20, "slept")
    try:
        with pytest.raises(CommandError, match=REFUSED):
            engine.call(refused.scheduler.cancel([job.job_id]))
        with pytest.raises(CommandError, match="scontrol update"):
            engine.call(refused.scheduler.set_dependency([job.job_id], "afterok:1"))
    finally:
        job.cancel()


def test_refused_cancel_leaves_jobs_arrays_and_tracking_unchanged(
    local: sm.Cluster, refused: sm.Cluster
) -> None:
    job = local.submit(sleep_then, 8, "slept")
    arr = sm.task(sleep_then, memory="100M").on(local).map([8, 8, 8], ["a", "b", "c"])
    theirs = sm.Job.attach(job.job_id, cluster=refused)
    their_array = sm.Job.attach(arr.job_id, cluster=refused)
    assert isinstance(theirs, sm.Job) and isinstance(their_array, sm.JobArray)

    with pytest.raises(sm.ClusterError, match=REFUSED):
        theirs.cancel()
    with pytest.raises(sm.ClusterError, match=REFUSED):
        their_array.cancel()
    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "slurm_magics")
    shell.user_ns["theirs"] = theirs
    with pytest.raises(UsageError, match=f"(?s)not cancelled .*{REFUSED}"):
        shell.run_line_magic("scancel", "theirs")

    # Nothing was marked: the futures run on and SLURM runs the jobs to their end.
    for future in (theirs, their_array, *their_array):
        assert not future.done() and not future.cancelled()
        assert future.state in (sm.JobState.PENDING, sm.JobState.RUNNING)
    assert theirs.result(timeout=120) == "slept"
    assert their_array.result(timeout=120) == ["a", "b", "c"]
    assert job.result(timeout=60) == "slept"
    assert theirs.state is sm.JobState.COMPLETED
