"""The dev cluster against the real thing: SLURM, slurmdbd, MariaDB, munge and sshd.

These tests start the cluster themselves (as root) and FAIL if it cannot be brought up; they
leave it running because other test modules need it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from slurm_magics import devcluster
from slurm_magics.core.states import node_accepts_jobs
from slurm_magics.devcluster.procs import process_matches, stop_pid
from slurm_magics.devcluster.services import EXECUTABLES

SACCT_DEADLINE = 120.0  # slurmdbd lags behind squeue under bursts


def _run(*argv: str, timeout: float = 60) -> str:
    return subprocess.run(
        argv, capture_output=True, text=True, check=True, timeout=timeout
    ).stdout.strip()


def _poll(what: str, check: Callable[[], str | None], deadline: float) -> None:
    """Call `check` until it returns None (done); fail with its last message at the deadline."""
    end = time.monotonic() + deadline
    message = check()
    while message is not None:
        if time.monotonic() > end:
            pytest.fail(f"{what} not done after {deadline:.0f} s: {message}")
        time.sleep(0.5)
        message = check()


def _sacct_states(job_id: str) -> dict[str, str]:
    out = _run("sacct", "-X", "-n", "-P", "--format=JobID,State", "-j", job_id)
    return dict(line.split("|", 1) for line in out.splitlines() if line)


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "slurm_magics.devcluster", *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.fixture(scope="module")
def devcluster_info() -> devcluster.ClusterInfo:
    # No skip: a broken dev cluster must fail the run loudly.
    return devcluster.up()


@pytest.mark.cluster
def test_up_is_idempotent(devcluster_info: devcluster.ClusterInfo) -> None:
    again = devcluster.up()
    assert again.pids == devcluster_info.pids
    # munged is missing from pids only when another munged already served SLURM.
    assert set(again.pids) >= {"mariadb", "slurmdbd", "slurmctld", "slurmd", "sshd"}
    assert all(devcluster.status().values())
    assert devcluster.load_info() == again
    saved = json.loads((devcluster_info.state_dir / "cluster.json").read_text())
    assert saved["ssh"]["host"] == "127.0.0.1"
    assert saved["partitions"][0] == "debug"


@pytest.mark.cluster
def test_cli_up_again_and_status(devcluster_info: devcluster.ClusterInfo) -> None:
    up = _cli("up")
    assert up.returncode == 0, up.stderr
    assert "already running" in up.stderr
    assert "is up" in up.stdout
    status = _cli("status")
    assert status.returncode == 0, status.stdout + status.stderr
    assert f"slurmctld  running  pid {devcluster_info.pids['slurmctld']}" in status.stdout


@pytest.mark.cluster
def test_node_is_usable(devcluster_info: devcluster.ClusterInfo) -> None:
    lines = _run("sinfo", "--noheader", "-o", "%P|%a|%N|%t").splitlines()
    by_partition = {line.split("|")[0]: line.split("|")[1:] for line in lines}
    assert set(by_partition) == {"debug*", "batch"}
    for availability, node, state in by_partition.values():
        assert availability == "up"
        assert node == devcluster_info.hostname
        assert node_accepts_jobs(state), lines
    config = _run("scontrol", "show", "config")
    assert "MaxArraySize            = 100001" in config
    assert "AccountingStorageType   = accounting_storage/slurmdbd" in config


@pytest.mark.cluster
def test_batch_job_completes_and_is_accounted(
    devcluster_info: devcluster.ClusterInfo, tmp_path: Path
) -> None:
    out = tmp_path / "job.out"
    job_id = _run("sbatch", "--parsable", f"--output={out}", "--wrap", "echo hello-$SLURM_JOB_ID")
    assert job_id.isdigit(), job_id

    def completed() -> str | None:
        states = _sacct_states(job_id)
        return None if states.get(job_id) == "COMPLETED" else f"sacct says {states}"

    _poll(f"job {job_id}", completed, SACCT_DEADLINE)
    assert out.read_text().strip() == f"hello-{job_id}"


@pytest.mark.cluster
def test_array_of_50_tasks_completes(
    devcluster_info: devcluster.ClusterInfo, tmp_path: Path
) -> None:
    started = time.monotonic()
    job_id = _run(
        "sbatch", "--parsable", "--array=0-49", f"--output={tmp_path}/%A_%a.out", "--wrap", "true"
    )
    expected = {f"{job_id}_{index}" for index in range(50)}

    def all_completed() -> str | None:
        states = _sacct_states(job_id)
        done = {task for task, state in states.items() if state == "COMPLETED"}
        return None if done == expected else f"{len(done)}/50 COMPLETED: {states}"

    _poll(f"array {job_id}", all_completed, SACCT_DEADLINE)
    print(f"50-task array done (per sacct) in {time.monotonic() - started:.1f} s")


@pytest.mark.cluster
def test_sshd_accepts_generated_key(devcluster_info: devcluster.ClusterInfo) -> None:
    ssh = devcluster_info.ssh
    out = _run(
        "ssh",
        "-o", "BatchMode=yes",
        "-o", f"UserKnownHostsFile={ssh.known_hosts_path}",
        "-o", "StrictHostKeyChecking=yes",
        "-i", str(ssh.key_path),
        "-p", str(ssh.port),
        f"{ssh.user}@{ssh.host}",
        "echo", "ssh-ok", "$(id -un)",
    )  # fmt: skip
    assert out == "ssh-ok root"
    assert ssh.known_hosts_path.read_text().startswith(f"[127.0.0.1]:{ssh.port} ssh-ed25519 ")
    authorized = (Path("/root/.ssh/authorized_keys")).read_text().splitlines()
    assert sum(line.endswith(" slurm-magics-devcluster") for line in authorized) == 1


def test_stop_pid_spares_a_process_that_is_not_the_expected_daemon() -> None:
    # down() stops pids from its state file only if they still run the daemon's executable.
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        assert not stop_pid(sleeper.pid, EXECUTABLES["slurmctld"], timeout=1)
        assert sleeper.poll() is None
        assert process_matches(sleeper.pid, "/usr/bin/sleep")
    finally:
        sleeper.kill()
        sleeper.wait()


@pytest.mark.cluster
def test_down_stops_what_it_started_then_up_restores(
    devcluster_info: devcluster.ClusterInfo,
) -> None:
    # Keep this last in the module: it must leave the cluster up for other test modules.
    before = devcluster.up()
    try:
        devcluster.down()
        for name, pid in before.pids.items():
            assert not process_matches(pid, EXECUTABLES[name]), f"{name} (pid {pid}) survived"
        assert not any(
            running for name, running in devcluster.status().items() if name in before.pids
        )
        status = _cli("status")
        assert status.returncode == 3, status.stdout
        with pytest.raises(devcluster.DevClusterError, match="slurm-magics devcluster up"):
            devcluster.load_info()
        state = json.loads((before.state_dir / "state.json").read_text())
        assert state["pids"] == {}
    finally:
        after = devcluster.up()
    assert all(devcluster.status().values())
    assert set(after.pids) == set(before.pids)
    assert after.pids != before.pids
    assert after.ssh.port == before.ssh.port
    job_id = _run("sbatch", "--parsable", "--output=/dev/null", "--wrap", "true")

    def completed() -> str | None:
        state = _sacct_states(job_id).get(job_id)
        return None if state == "COMPLETED" else f"state {state}"

    _poll(f"job {job_id} after restart", completed, SACCT_DEADLINE)
