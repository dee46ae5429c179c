"""Binder's SLURM, run the way Binder runs it: by an unprivileged user, started by binder/start.

As root, the test makes a throwaway user, copies binder/ into its home and runs
``binder/start sbatch --wait ...`` as that user (with a clean environment and free ports, so
the root dev cluster on 6817-6819 is untouched): munged, slurmctld and slurmd must all run
as that user, and the job must complete. Then it stops the cluster and removes the user.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.cluster

BINDER = Path(__file__).resolve().parents[2] / "binder"
DAEMONS = ("munged", "slurmctld", "slurmd")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class UserCluster:
    """A throwaway user with a copy of binder/ in its home."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.home = Path(pwd.getpwnam(name).pw_dir)
        self.dir = self.home / ".slurm-user-cluster"
        self.ports = {"SLURM_USER_CTLD_PORT": _free_port(), "SLURM_USER_SLURMD_PORT": _free_port()}

    def run(self, *argv: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """Run argv as the user, from its home, with a clean login-like environment."""
        environment = {
            "HOME": str(self.home),
            "USER": self.name,
            "PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
            **{key: str(port) for key, port in self.ports.items()},
        }
        command = ["runuser", "-u", self.name, "--", "env", "-i"]
        command += [f"{key}={value}" for key, value in environment.items()]
        command += ["sh", "-c", 'cd "$HOME" && exec "$@"', "sh", *argv]
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout)

    def pid(self, daemon: str) -> int | None:
        try:
            return int((self.dir / "run" / f"{daemon}.pid").read_text().strip())
        except (OSError, ValueError):
            return None

    def logs(self) -> str:
        parts = []
        for log in sorted((self.dir / "log").glob("*.log")):
            lines = log.read_text(errors="replace").splitlines()[-15:]
            parts.append(f"--- {log.name}\n" + "\n".join(lines))
        return "\n".join(parts)


def _owner(pid: int) -> str:
    return pwd.getpwuid(os.stat(f"/proc/{pid}").st_uid).pw_name


def _user_pids(name: str) -> list[int]:
    out = subprocess.run(["ps", "-u", name, "-o", "pid="], capture_output=True, text=True)
    return [int(word) for word in out.stdout.split()]


@pytest.fixture
def user_cluster() -> Iterator[UserCluster]:
    if os.geteuid() != 0:
        pytest.fail("test_binder makes a throwaway user: run the tests as root (CI does)")
    for command in ("useradd", "userdel", "runuser", "munged", "slurmctld", "slurmd"):
        if shutil.which(command) is None:
            pytest.fail(f"{command} is missing: run `slurm-magics devcluster up` (as root) first")
    name = f"smbinder{secrets.token_hex(3)}"
    subprocess.run(["useradd", "--create-home", "--shell", "/bin/bash", name], check=True)
    cluster = UserCluster(name)
    try:
        shutil.copytree(BINDER, cluster.home / "binder")
        subprocess.run(["chown", "-R", f"{name}:{name}", str(cluster.home / "binder")], check=True)
        yield cluster
    finally:
        cluster.run(str(cluster.home / "binder" / "slurm_user_cluster.sh"), "stop", timeout=60)
        # Whatever is left (a stray slurmstepd) belongs to the throwaway user: end it by pid.
        for pid in _user_pids(name):
            subprocess.run(["kill", "-9", str(pid)], check=False)
        for _ in range(50):
            if not _user_pids(name):
                break
            time.sleep(0.1)
        subprocess.run(["userdel", "--force", "--remove", name], check=False, capture_output=True)


def test_start_hook_runs_slurm_as_the_notebook_user(user_cluster: UserCluster) -> None:
    start = str(user_cluster.home / "binder" / "start")
    # What Binder does: `start` then the notebook server; here the "server" is one job.
    job = "sbatch --parsable --wait --wrap 'id -un > who.txt' && echo SLURM_CONF=$SLURM_CONF"
    done = user_cluster.run(start, "sh", "-c", job)
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}\n{user_cluster.logs()}"
    conf = user_cluster.dir / "etc" / "slurm.conf"
    assert f"SLURM_CONF={conf}" in done.stdout
    assert (user_cluster.home / "who.txt").read_text().strip() == user_cluster.name

    # Every daemon is the user's own, and the config says so.
    for daemon in DAEMONS:
        pid = user_cluster.pid(daemon)
        assert pid is not None, f"{daemon} wrote no pid file\n{user_cluster.logs()}"
        assert _owner(pid) == user_cluster.name, f"{daemon} runs as {_owner(pid)}"
    text = conf.read_text()
    port = user_cluster.ports["SLURM_USER_CTLD_PORT"]
    for line in (
        f"SlurmUser={user_cluster.name}",
        f"SlurmctldPort={port}",
        "ProctrackType=proctrack/linuxproc",
        "AccountingStorageType=accounting_storage/none",
    ):
        assert line in text.splitlines()

    # `start` is idempotent: a second container start reuses the running daemons.
    script = str(user_cluster.home / "binder" / "slurm_user_cluster.sh")
    before = {daemon: user_cluster.pid(daemon) for daemon in DAEMONS}
    again = user_cluster.run(script, "start")
    assert again.returncode == 0, again.stderr
    assert {daemon: user_cluster.pid(daemon) for daemon in DAEMONS} == before
    status = user_cluster.run(script, "status")
    assert status.returncode == 0, status.stdout + status.stderr
    assert "idle" in status.stdout

    stopped = user_cluster.run(script, "stop")
    assert stopped.returncode == 0, stopped.stderr
    assert user_cluster.run(script, "status").returncode == 1
    assert _user_pids(user_cluster.name) == []
