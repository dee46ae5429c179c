"""Helpers shared by the tests (fixtures live in conftest.py)."""

from __future__ import annotations

import asyncio
import contextlib
import glob
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import pytest

import slurm_magics as sm
from slurm_magics.core.states import node_accepts_jobs
from slurm_magics.devcluster import SSHInfo, load_info
from slurm_magics.jobs.array import JobArray
from slurm_magics.jobs.engine import engine
from slurm_magics.jobs.job import Job, Run, Slice
from slurm_magics.scheduler.local import LocalScheduler
from slurm_magics.transport import CommandResult, LocalTransport, SSHTransport

T = TypeVar("T")


def require_cluster() -> None:
    if shutil.which("sinfo") is None:
        pytest.fail("no SLURM here: run `slurm-magics devcluster up` (as root) before the tests")

    def probe() -> subprocess.CompletedProcess[str]:
        return subprocess.run(["sinfo", "--noheader", "-o", "%t"], capture_output=True, text=True)

    def usable(answer: subprocess.CompletedProcess[str]) -> bool:
        return answer.returncode == 0 and any(map(node_accepts_jobs, answer.stdout.split()))

    # A node that is briefly in no state to start jobs (rebooting, powering up) gets 60 s.
    answer = probe()
    deadline = time.monotonic() + 60
    while not usable(answer) and time.monotonic() < deadline:
        time.sleep(1)
        answer = probe()
    if not usable(answer):
        pytest.fail(
            f"the dev cluster is not usable (sinfo: {answer.stdout.strip()} "
            f"{answer.stderr.strip()}); run `slurm-magics devcluster up`"
        )


def ssh_options() -> dict[str, Any]:
    """How to reach the dev cluster's own sshd: root@127.0.0.1:PORT, its key, its known_hosts."""
    ssh = load_info().ssh
    return {
        "host": ssh.host,
        "user": ssh.user,
        "port": ssh.port,
        "known_hosts": ssh.known_hosts_path,
        "client_keys": [ssh.key_path],
    }


def sibling(cluster: sm.Cluster, **options: Any) -> sm.Cluster:
    """Another Cluster object of the same kind (own poller and counters), not the default."""
    if isinstance(cluster.scheduler, LocalScheduler):
        options.setdefault("scheduler", LocalScheduler())
    options.setdefault("python", cluster.python)
    return sm.Cluster(cluster.transport, root=cluster.root, **options)


def squeue_ids() -> set[str]:
    """Job ids the controller still lists as pending or running."""
    out = subprocess.run(
        ["squeue", "--noheader", "-t", "PD,R,CG", "-o", "%i"], capture_output=True, text=True
    ).stdout
    return set(out.split())


def queued_ids(cluster: sm.Cluster) -> set[str]:
    """Ids ("123", "123_4") still pending, running or completing in the scheduler that runs
    ``cluster``'s jobs: the local backend's own queue for its jobs, else SLURM's squeue."""
    if not isinstance(cluster.scheduler, LocalScheduler):
        return squeue_ids()
    rows = engine.call(cluster.scheduler.queue())
    live = [row for row in rows if row.state in ("PENDING", "RUNNING")]
    return {row.array_job_id for row in live} | {
        f"{row.array_job_id}_{task}" for row in live for task in row.task_ids or ()
    }


def still_queued(cluster: sm.Cluster, ids: set[str], within: float = 30.0) -> set[str]:
    """Those of ``ids`` still pending, running or completing after ``within`` seconds, in
    the scheduler that runs ``cluster``'s jobs (see ``queued_ids``).

    A cancelled running task passes through COMPLETING while slurmd kills it; one whose
    launch raced the cancel lasts until SIGKILL after the dev cluster's KillWait (10 s).
    """
    deadline = time.monotonic() + within
    while True:
        left = ids & queued_ids(cluster)
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.5)


def connect_source(cluster: sm.Cluster, root: Path) -> str:
    """Python that connects a new process to the same cluster, the same way (SLURM here, over
    SSH, or the local backend)."""
    if isinstance(cluster.scheduler, LocalScheduler):
        return f"sm.connect(backend='local', root={str(root)!r})"
    if isinstance(cluster.transport, SSHTransport):
        options = ssh_options()
        host = options.pop("host")
        keywords = ", ".join(f"{key}={_plain(value)!r}" for key, value in options.items())
        return (
            f"sm.connect({host!r}, {keywords}, python={sys.executable!r}, "
            f"root={str(root)!r}, partition='debug')"
        )
    return f"sm.connect(root={str(root)!r}, partition='debug')"


def wait_for(check: Callable[[], Any], timeout: float = 60, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or check}")
        time.sleep(0.5)


def drop(transport: SSHTransport, ssh: SSHInfo) -> None:
    """Kill the server side of the connection, as a crash or a reboot would."""
    for pid in server_side_of(transport, ssh):
        os.kill(pid, signal.SIGKILL)


def transport_for(ssh: SSHInfo, **options: object) -> SSHTransport:
    settings: dict[str, object] = {
        "user": ssh.user,
        "port": ssh.port,
        "known_hosts": ssh.known_hosts_path,
        "client_keys": [ssh.key_path],
    }
    settings.update(options)
    return SSHTransport(ssh.host, **settings)  # type: ignore[arg-type]


def using(transport: SSHTransport, scenario: Callable[[SSHTransport], Awaitable[T]]) -> T:
    """Run a scenario in a fresh loop, closing the connection afterwards."""

    async def run() -> T:
        try:
            return await scenario(transport)
        finally:
            await transport.close()

    return asyncio.run(run())


class Host:
    """A JobHost whose log files live in a dict."""

    description = "stand-in host"
    running_jobs: int | None = None  # no squeue behind it

    def __init__(self) -> None:
        self.files: dict[str, str] = {}
        self.cancelled: list[Job] = []

    def cancel_jobs(self, jobs: Sequence[Job]) -> None:
        self.cancelled.extend(jobs)

    def read_text(self, path: str, max_bytes: int) -> str:
        return self.files.get(path, "")[-max_bytes:]


def make_array(host: Host, n: int, slurm_id: str = "100", dependency: str = "") -> JobArray:
    run = Run(f"run{slurm_id}", f"/runs/{slurm_id}", "sweep", n, 1, [Slice(slurm_id, 0, n)])
    run.jobs = [Job(host, run, i) for i in range(n)]
    run.dependency = dependency
    return JobArray(run.jobs, [run])


def make_job(host: Host, slurm_id: str = "200", name: str = "fit", dependency: str = "") -> Job:
    run = Run(f"run{slurm_id}", f"/runs/{slurm_id}", name, 1, 1, [Slice(slurm_id, 0, 0)])
    run.jobs = [Job(host, run, 0)]
    run.dependency = dependency
    return run.jobs[0]


def count_messages(widget: Any) -> list[int]:
    """Count the state messages every widget of a tree sends."""
    sent = [0]
    pending = [widget]
    while pending:
        current = pending.pop()
        pending.extend(getattr(current, "children", ()))
        original = current.comm.send

        def send(*args: Any, _original: Any = original, **kwargs: Any) -> Any:
            sent[0] += 1
            return _original(*args, **kwargs)

        current.comm.send = send
    return sent


def wait_until(condition: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def _plain(value: Any) -> Any:
    """Paths as strings, so that their repr is Python a new process can read."""
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return str(value) if isinstance(value, os.PathLike) else value


def _socket_inodes(ssh_port: int, client_port: int) -> set[str]:
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as stream:
            for line in stream.read().splitlines()[1:]:
                fields = line.split()
                local, remote = fields[1], fields[2]
                if int(local.rsplit(":", 1)[1], 16) == ssh_port and (
                    int(remote.rsplit(":", 1)[1], 16) == client_port
                ):
                    inodes.add(fields[9])
    return inodes


@contextlib.contextmanager
def other_user() -> Iterator[str]:
    """A throwaway Unix user who logs in to the dev cluster's sshd with its key: SLURM
    really refuses it anything on root's jobs (scancel, scontrol update). Removed after."""
    if os.geteuid() != 0:
        pytest.fail("this test makes a throwaway user: run the tests as root (CI does)")
    name = f"smother{secrets.token_hex(3)}"
    # Password "*": no password works, but the account is not locked ("!"), which sshd
    # without PAM would refuse even with a key.
    argv = ["useradd", "--create-home", "--shell", "/bin/sh", "--password", "*", name]
    subprocess.run(argv, check=True)
    try:
        home = Path("/home") / name
        (home / ".ssh").mkdir(mode=0o700)
        public_key = Path(f"{load_info().ssh.key_path}.pub").read_text()
        (home / ".ssh" / "authorized_keys").write_text(public_key)
        subprocess.run(["chown", "-R", f"{name}:{name}", str(home / ".ssh")], check=True)
        yield name
    finally:
        # Its sshd sessions, by pid: they are this test's own.
        out = subprocess.run(["ps", "-u", name, "-o", "pid="], capture_output=True, text=True)
        for pid in out.stdout.split():
            subprocess.run(["kill", "-9", pid], check=False)
        subprocess.run(["userdel", "--force", "--remove", name], check=False, capture_output=True)


def server_side_of(transport: SSHTransport, ssh: SSHInfo) -> set[int]:
    """The sshd processes serving this transport's connection (and only it)."""
    conn = transport.connection
    assert conn is not None, "not connected"
    client_port = conn.get_extra_info("sockname")[1]
    wanted = {f"socket:[{inode}]" for inode in _socket_inodes(ssh.port, client_port)}
    pids: set[int] = set()
    for fd in glob.glob("/proc/[0-9]*/fd/*"):
        with contextlib.suppress(OSError):
            if os.readlink(fd) in wanted:
                pids.add(int(fd.split("/")[2]))
    assert pids, "the server side of the connection was not found"
    return pids


PRIVATE_SLURM_CONF = """\
ClusterName={name}
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={port}
SlurmdPort={port_slurmd}
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
{extra}MinJobAge=2
NodeName={host} CPUs=4 RealMemory=4000 State=UNKNOWN
PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP DefMemPerCPU=100
"""


@contextlib.contextmanager
def private_slurmctld(name: str, port: int, extra: str = "") -> Iterator[Path]:
    """A test's own slurmctld (no slurmd, no accounting, MinJobAge=2) on ``port`` and
    ``port + 1``, beside the dev cluster's and sharing its munge; yields its slurm.conf
    (folder readable by every user) and stops it afterwards."""
    require_cluster()
    folder = Path(tempfile.mkdtemp(prefix=f"slurm-magics-{name}-"))
    folder.chmod(0o755)
    for sub in ("state", "spool"):
        (folder / sub).mkdir()
    host = subprocess.run(["hostname", "-s"], capture_output=True, text=True, check=True)
    conf = folder / "slurm.conf"
    conf.write_text(
        PRIVATE_SLURM_CONF.format(
            name=name,
            host=host.stdout.strip(),
            folder=folder,
            port=port,
            port_slurmd=port + 1,
            extra=extra,
        )
    )
    binary = shutil.which("slurmctld") or "/usr/sbin/slurmctld"
    subprocess.run([binary, "-c", "-i", "-f", str(conf)], check=True)
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


class PrivateController(LocalTransport):
    """This machine ("local", as the panel sees it), with SLURM's commands pointed at a
    test's own controller."""

    def __init__(self, conf: Path) -> None:
        self.conf = conf

    async def run(
        self, argv: Sequence[str], *, input: bytes | None = None, timeout: float | None = 120.0
    ) -> CommandResult:
        argv = ["env", f"SLURM_CONF={self.conf}", *argv]
        return await super().run(argv, input=input, timeout=timeout)
