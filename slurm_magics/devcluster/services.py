"""Start and check each daemon of the dev cluster (I/O; the files come from `config`)."""

from __future__ import annotations

import logging
import os
import pwd
import shutil
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .config import (
    CONFIG_HEADER,
    SLURM_CONF_PATH,
    ClusterParams,
    Layout,
    authorized_keys_line,
    known_hosts_line,
    render_db_setup_sql,
    render_my_cnf,
    render_slurm_conf,
    render_slurmdbd_conf,
    render_sshd_config,
    update_authorized_keys,
)
from .containers import start_registry
from .errors import DevClusterError
from .procs import log_tail, run, running_pid, slurm_env, spawn, wait_until

__all__ = [
    "EXECUTABLES",
    "START",
    "Daemon",
    "munge_works",
    "node_state",
    "prepare_ssh",
    "provision_database",
    "register_cluster",
    "sacct_answers",
    "slurm_version",
    "ssh_login_works",
    "write_configs",
]

_log = logging.getLogger(__name__)
_SBIN = "/usr/sbin:/usr/bin:/sbin:/bin"
SLURM_CONF_BACKUP = SLURM_CONF_PATH.with_name("slurm.conf.before-slurm-magics")


def _executable(name: str) -> str:
    return shutil.which(name, path=_SBIN) or f"/usr/sbin/{name}"


EXECUTABLES = {
    "munged": _executable("munged"),
    "mariadb": _executable("mariadbd"),
    "slurmdbd": _executable("slurmdbd"),
    "slurmctld": _executable("slurmctld"),
    "slurmd": _executable("slurmd"),
    "sshd": _executable("sshd"),
    "registry": _executable("docker-registry"),
}


@dataclass(frozen=True)
class Daemon:
    """One daemon of the dev cluster, found through its pid file in the state folder."""

    name: str
    layout: Layout

    @property
    def executable(self) -> str:
        return EXECUTABLES[self.name]

    @property
    def pid_file(self) -> Path:
        return self.layout.pid_file(self.name)

    @property
    def log(self) -> Path:
        return self.layout.log(self.name)

    def pid(self) -> int | None:
        return running_pid(self.pid_file, self.executable)

    def wait_started(self, ready: Callable[[], bool], timeout: float) -> int:
        """Wait for the pid file and `ready()`; raise with the log tail if that never happens."""
        if not wait_until(lambda: self.pid() is not None and ready(), timeout):
            raise DevClusterError(
                f"{self.name} did not start within {timeout:.0f} s; see {self.log}\n"
                f"{log_tail(self.log)}"
            )
        pid = self.pid()
        assert pid is not None
        return pid


def _write(path: Path, text: str, mode: int = 0o644) -> bool:
    """Write `text` to `path` (mode, owner root) unless identical; True if it changed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        unchanged = path.read_text() == text
    except OSError:
        unchanged = False
    if not unchanged:
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text)
        tmp.chmod(mode)
        tmp.replace(path)
    path.chmod(mode)
    return not unchanged


def write_configs(params: ClusterParams) -> set[str]:
    """Write every config file; return the names of daemons whose config changed."""
    lay = params.layout
    for folder in (lay.etc_dir, lay.log_dir, lay.run_dir, lay.slurmctld_spool, lay.slurmd_spool):
        folder.mkdir(parents=True, exist_ok=True)
    changed: set[str] = set()
    slurm_conf = render_slurm_conf(params)
    if SLURM_CONF_PATH.exists() and not SLURM_CONF_BACKUP.exists():
        first_line = SLURM_CONF_PATH.read_text(errors="replace").partition("\n")[0]
        if first_line != CONFIG_HEADER:
            shutil.copy2(SLURM_CONF_PATH, SLURM_CONF_BACKUP)
            _log.info("backed up the existing %s to %s", SLURM_CONF_PATH, SLURM_CONF_BACKUP)
    if _write(SLURM_CONF_PATH, slurm_conf):
        changed |= {"slurmctld", "slurmd"}
    # Holds the database password: root only (SlurmUser=root).
    if _write(lay.slurmdbd_conf, render_slurmdbd_conf(params), 0o600):
        changed.add("slurmdbd")
    if _write(lay.my_cnf, render_my_cnf(params), 0o600):
        changed.add("mariadb")
    if _write(lay.sshd_config, render_sshd_config(params)):
        changed.add("sshd")
    return changed


# --- munged ---------------------------------------------------------------------------------


def munge_works() -> bool:
    try:
        cred = run(["munge", "-n"], timeout=10, check=False)
        if cred.returncode != 0:
            return False
        return run(["unmunge"], input_text=cred.stdout, timeout=10, check=False).returncode == 0
    except DevClusterError:
        return False


def _start_munged(params: ClusterParams) -> int | None:
    daemon = Daemon("munged", params.layout)
    if munge_works():
        # Someone else's munged (e.g. started by the package's init script) serves the
        # default socket: use it, and leave it alone on `down`.
        _log.info("munged: using the munged already serving /run/munge (not ours)")
        return None
    key = Path("/etc/munge/munge.key")
    if not key.exists():
        run(["mungekey", "--create", f"--keyfile={key}"])
        shutil.chown(key, "munge", "munge")
    run_dir = Path("/run/munge")
    run_dir.mkdir(mode=0o755, exist_ok=True)
    shutil.chown(run_dir, "munge", "munge")
    # Started as root, munged needs --force (it only warns about file ownership then).
    spawn(
        [
            daemon.executable,
            "--force",
            f"--pid-file={daemon.pid_file}",
            f"--log-file={daemon.log}",
        ],
        daemon.log,
    )
    return daemon.wait_started(munge_works, 20)


# --- MariaDB --------------------------------------------------------------------------------


def _mariadb(params: ClusterParams, sql: str) -> bool:
    # As OS root over the private socket: unix_socket authentication, no password needed.
    proc = run(
        ["mariadb", f"--defaults-file={params.layout.my_cnf}", "-u", "root", "--batch"],
        input_text=sql,
        timeout=30,
        check=False,
    )
    return proc.returncode == 0


def _start_mariadb(params: ClusterParams) -> int:
    lay = params.layout
    daemon = Daemon("mariadb", lay)
    if not (lay.mariadb_datadir / "mysql").is_dir():
        _log.info("mariadb: creating the database folder %s", lay.mariadb_datadir)
        lay.mariadb_datadir.mkdir(parents=True, exist_ok=True)
        run(
            [
                "mariadb-install-db",
                f"--defaults-file={lay.my_cnf}",
                "--auth-root-authentication-method=socket",
                "--skip-test-db",
                "--user=root",
            ],
            timeout=300,
        )
    # mariadbd stays in the foreground: detach it from us.
    spawn([daemon.executable, f"--defaults-file={lay.my_cnf}"], daemon.log, detach=True)
    pid = daemon.wait_started(lambda: _mariadb(params, "SELECT 1;"), 60)
    # mariadbd writes its pid file 0660; `status` should work for other users too.
    daemon.pid_file.chmod(0o644)
    return pid


def provision_database(params: ClusterParams) -> None:
    if not _mariadb(params, render_db_setup_sql(params)):
        proc = run(
            ["mariadb", f"--defaults-file={params.layout.my_cnf}", "-u", "root", "--batch"],
            input_text=render_db_setup_sql(params),
            check=False,
        )
        raise DevClusterError(f"creating the accounting database failed: {proc.stderr.strip()}")


# --- SLURM ----------------------------------------------------------------------------------


def _sacctmgr_answers() -> bool:
    proc = run(
        ["sacctmgr", "-n", "-P", "list", "cluster", "format=cluster"],
        env=slurm_env(),
        timeout=30,
        check=False,
    )
    return proc.returncode == 0


def _start_slurmdbd(params: ClusterParams) -> int:
    daemon = Daemon("slurmdbd", params.layout)
    # slurmdbd reads slurmdbd.conf from the folder of $SLURM_CONF: point it at our folder.
    env = dict(os.environ, SLURM_CONF=str(params.layout.etc_dir / "slurm.conf"))
    spawn([daemon.executable], daemon.log, env=env)
    # The first start creates the tables, which takes a few seconds.
    return daemon.wait_started(_sacctmgr_answers, 120)


def register_cluster(params: ClusterParams) -> None:
    """`sacctmgr -i add cluster NAME` unless the cluster is already registered."""
    listed = run(
        ["sacctmgr", "-n", "-P", "list", "cluster", "format=cluster"], env=slurm_env()
    ).stdout.split()
    if params.cluster_name not in listed:
        run(["sacctmgr", "-i", "add", "cluster", params.cluster_name], env=slurm_env())
        _log.info("slurmdbd: registered cluster %s", params.cluster_name)


def _start_slurmctld(params: ClusterParams) -> int:
    daemon = Daemon("slurmctld", params.layout)
    spawn([daemon.executable, "-f", str(SLURM_CONF_PATH)], daemon.log, env=slurm_env())

    def answers() -> bool:
        return run(["scontrol", "ping"], env=slurm_env(), check=False).returncode == 0

    return daemon.wait_started(answers, 60)


def _start_slurmd(params: ClusterParams) -> int:
    daemon = Daemon("slurmd", params.layout)
    spawn([daemon.executable, "-f", str(SLURM_CONF_PATH)], daemon.log, env=slurm_env())
    return daemon.wait_started(lambda: True, 30)


def node_state(hostname: str) -> str:
    """The node's state as `sinfo` prints it (`idle`, `mix`, `down*`, ...), '' if unknown."""
    proc = run(
        ["sinfo", "--noheader", "--Node", "--nodes", hostname, "--format=%t"],
        env=slurm_env(),
        check=False,
    )
    lines = proc.stdout.split()
    return lines[0] if proc.returncode == 0 and lines else ""


def sacct_answers() -> bool:
    proc = run(["sacct", "-n", "-X", "--starttime=now-1minutes"], env=slurm_env(), check=False)
    text = proc.stdout + proc.stderr
    return proc.returncode == 0 and "accounting storage is disabled" not in text


def slurm_version() -> str:
    """e.g. `22.05.8`, from `slurmctld -V` (`slurm-wlm 22.05.8`)."""
    return run([EXECUTABLES["slurmctld"], "-V"]).stdout.split()[-1]


# --- sshd -----------------------------------------------------------------------------------


def _keygen(path: Path, comment: str) -> None:
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)])
    path.chmod(0o600)


def prepare_ssh(params: ClusterParams) -> None:
    """Host key, client key pair, root's authorized_keys line and our known_hosts file."""
    lay = params.layout
    _keygen(lay.ssh_host_key, "slurm-magics-devcluster-host")
    _keygen(lay.client_key, "slurm-magics-devcluster")
    host_pub = lay.ssh_host_key.with_name(lay.ssh_host_key.name + ".pub").read_text()
    _write(lay.known_hosts, known_hosts_line(params.ssh_port, host_pub))
    client_pub = lay.client_key.with_name(lay.client_key.name + ".pub").read_text()
    # root's home from the password database: under sudo $HOME may still be the caller's.
    ssh_dir = Path(pwd.getpwnam("root").pw_dir) / ".ssh"
    ssh_dir.mkdir(mode=0o700, exist_ok=True)
    authorized = ssh_dir / "authorized_keys"
    old = authorized.read_text() if authorized.exists() else ""
    new = update_authorized_keys(old, authorized_keys_line(client_pub))
    if new != old:
        _write(authorized, new, 0o600)
    # sshd refuses to start without its privilege-separation folder.
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def _start_sshd(params: ClusterParams) -> int:
    daemon = Daemon("sshd", params.layout)
    config = str(params.layout.sshd_config)
    check = run([daemon.executable, "-t", "-f", config], check=False)
    if check.returncode != 0:
        raise DevClusterError(f"sshd rejects {config}: {check.stderr.strip()}")
    spawn([daemon.executable, "-f", config, "-E", str(daemon.log)], daemon.log)
    return daemon.wait_started(lambda: _port_open(params.ssh_port), 20)


def ssh_login_works(params: ClusterParams) -> tuple[bool, str]:
    lay = params.layout
    proc = run(
        [
            "ssh",
            "-o", "BatchMode=yes",
            "-o", f"UserKnownHostsFile={lay.known_hosts}",
            "-o", "StrictHostKeyChecking=yes",
            "-o", "ConnectTimeout=10",
            "-i", str(lay.client_key),
            "-p", str(params.ssh_port),
            "root@127.0.0.1",
            "true",
        ],
        timeout=30,
        check=False,
    )  # fmt: skip
    return proc.returncode == 0, proc.stderr.strip()


START: dict[str, Callable[[ClusterParams], int | None]] = {
    "munged": _start_munged,
    "mariadb": _start_mariadb,
    "slurmdbd": _start_slurmdbd,
    "slurmctld": _start_slurmctld,
    "slurmd": _start_slurmd,
    "sshd": _start_sshd,
    "registry": lambda params: start_registry(params, EXECUTABLES["registry"]),
}
