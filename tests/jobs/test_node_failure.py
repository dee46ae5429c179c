"""A node failure runs a function as often as the user asked (issue 12, failure 6).

A fault test on the dev cluster: slurmd is killed by pid (its job steps live on) and the
controller, after SlurmdTimeout (30 s on the dev cluster), declares the node DOWN and its
jobs NODE_FAIL; slurmd is then started again exactly as it ran. This disrupts every job
running on the node at that moment, so both cases share one short window.

- retries=0 (the default): submitted --no-requeue, so SLURM does not run it again by
  itself; the future fails with JobFailedError(state=NODE_FAIL) within 30 s of SLURM
  declaring it, and the function ran once.
- retries=1, retry_on=["NODE_FAIL"]: the second attempt's value comes back.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import slurm_magics as sm
from tests.helpers import require_cluster, squeue_ids, wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.slow]


def attempt(marker: str) -> int:
    """Count this run in ``marker``; the first run waits for the node to fail."""
    with open(marker, "a+", encoding="utf-8") as stream:
        stream.seek(0)
        runs = len(stream.read().splitlines()) + 1
        stream.write(f"run {runs} in job {os.environ.get('SLURM_JOB_ID')}\n")
    if runs == 1:
        time.sleep(600)
    return runs


def runs_in(marker: Path) -> int:
    return len(marker.read_text().splitlines()) if marker.exists() else 0


def slurm_state(job_id: str) -> str:
    out = subprocess.run(
        ["squeue", "--noheader", "--states=all", "-j", job_id, "-o", "%T"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    return out.strip()


def running_ids() -> set[str]:
    out = subprocess.run(
        ["squeue", "--noheader", "-t", "R,CG", "-o", "%i"], capture_output=True, text=True
    ).stdout
    return set(out.split())


def scontrol_job(job_id: str) -> str:
    return subprocess.run(
        ["scontrol", "show", "job", job_id], capture_output=True, text=True, check=True
    ).stdout


def node_state(node: str) -> str:
    out = subprocess.run(
        ["sinfo", "--noheader", "--Node", "--nodes", node, "-o", "%t"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    return out.split()[0] if out.split() else ""


@contextlib.contextmanager
def slurmd_killed(node: str) -> Iterator[None]:
    """Kill slurmd by pid; on leaving, start it again with the same command line and
    environment and make sure the node is not left DOWN."""
    found = subprocess.run(["pgrep", "-x", "slurmd"], capture_output=True, text=True)
    pids = [int(pid) for pid in found.stdout.split()]
    assert len(pids) == 1, f"expected one slurmd, found {pids}"
    pid = pids[0]
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().rstrip(b"\0").split(b"\0")
    env_lines = Path(f"/proc/{pid}/environ").read_bytes().rstrip(b"\0").split(b"\0")
    env = dict(line.split(b"=", 1) for line in env_lines if b"=" in line)
    os.kill(pid, signal.SIGKILL)
    try:
        yield
    finally:
        subprocess.run(argv, env=env, check=True, timeout=60)  # slurmd daemonises itself
        if not _wait(lambda: not node_state(node).startswith("down"), 20):
            subprocess.run(["scontrol", "update", f"nodename={node}", "state=resume"], check=False)
        wait_for(lambda: not node_state(node).startswith("down"), 60, f"node {node} back up")


def _wait(check: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.5)
    return False


def test_node_failure_fails_a_task_without_retries_and_reruns_one_with_them(
    local: sm.Cluster, tmp_path: Path
) -> None:
    require_cluster()
    once_marker, retried_marker = tmp_path / "once", tmp_path / "retried"
    once = sm.task(attempt, memory="100M", name="node-fail-once").on(local)(str(once_marker))
    retried = sm.task(
        attempt, memory="100M", name="node-fail-retried", retries=1, retry_on=["NODE_FAIL"]
    ).on(local)(str(retried_marker))
    try:
        check_node_failure(once, retried, once_marker, retried_marker)
    finally:  # never leave a task of this test sleeping on the node
        subprocess.run(["scancel", once.job_id, retried.job_id], check=False)


def check_node_failure(
    once: sm.Job, retried: sm.Job, once_marker: Path, retried_marker: Path
) -> None:
    resolved: dict[str, float] = {}
    once.add_done_callback(lambda _: resolved.setdefault("once", time.monotonic()))
    wait_for(
        lambda: runs_in(once_marker) == 1 and runs_in(retried_marker) == 1,
        120,
        "both tasks to start",
    )
    assert "Requeue=0" in scontrol_job(once.job_id)  # --no-requeue
    assert "Requeue=1" in scontrol_job(retried.job_id)  # retries= needs scontrol requeue
    node = subprocess.run(
        ["squeue", "--noheader", "-j", once.job_id, "-o", "%N"], capture_output=True, text=True
    ).stdout.strip()
    assert node, "the task runs on no node"

    # Others' jobs on the node would fail with ours: wait a little for a quiet moment.
    ours = {once.job_id, retried.job_id}
    _wait(lambda: not running_ids() - ours, 90)
    killed = time.monotonic()
    with slurmd_killed(node):
        wait_for(lambda: slurm_state(once.job_id) == "NODE_FAIL", 180, "SLURM to declare NODE_FAIL")
        declared = time.monotonic()
    restored = time.monotonic()
    # slurmd is back; the future of the task without retries must be resolved by now or soon
    with pytest.raises(sm.JobFailedError) as caught:
        once.result(timeout=60)
    assert caught.value.state is sm.JobState.NODE_FAIL, str(caught.value)
    assert once.state is sm.JobState.NODE_FAIL
    # (done-callbacks run on their own threads: this one may come a moment after result())
    wait_for(lambda: "once" in resolved, 10, "the done-callback")
    assert resolved["once"] - declared < 30, resolved["once"] - declared

    # The task with retries=1 runs again (SLURM's own requeue counted as its retry) ...
    assert retried.result(timeout=600) == 2
    assert retried.state is sm.JobState.COMPLETED
    assert runs_in(retried_marker) == 2
    # ... and the one without retries ran once: SLURM did not requeue it behind our back.
    assert slurm_state(once.job_id) == "NODE_FAIL"
    assert once.job_id not in squeue_ids()
    assert runs_in(once_marker) == 1
    print(
        f"slurmd down {restored - killed:.0f} s; NODE_FAIL declared {declared - killed:.0f} s "
        f"after the kill; future failed {resolved['once'] - declared:.1f} s after that; "
        f"the retry's value came back {time.monotonic() - restored:.0f} s after slurmd returned"
    )
