"""Pure rendering of the dev cluster's configuration files (no I/O here).

Everything the dev cluster owns lives under one state folder (`Layout`); the only system
path written is `/etc/slurm/slurm.conf`, because user commands (`sbatch`, `squeue`, ...)
must find the cluster without any extra environment.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "AUTHORIZED_KEY_MARKER",
    "CONFIG_HEADER",
    "DAEMONS",
    "DEFAULT_CLUSTER_NAME",
    "DEFAULT_STATE_DIR",
    "PARTITIONS",
    "SLURM_CONF_PATH",
    "STATE_DIR_ENV",
    "ClusterParams",
    "Layout",
    "authorized_keys_line",
    "known_hosts_line",
    "real_memory_mb",
    "render_db_setup_sql",
    "render_my_cnf",
    "render_slurm_conf",
    "render_slurmdbd_conf",
    "render_sshd_config",
    "update_authorized_keys",
]

DEFAULT_STATE_DIR = Path("/var/lib/slurm-magics-devcluster")
STATE_DIR_ENV = "SLURM_MAGICS_DEVCLUSTER_DIR"
SLURM_CONF_PATH = Path("/etc/slurm/slurm.conf")
DEFAULT_CLUSTER_NAME = "devcluster"
# The default partition comes first.
PARTITIONS = ("debug", "batch")
# Start order; `down` stops them in reverse.
DAEMONS = ("munged", "mariadb", "slurmdbd", "slurmctld", "slurmd", "sshd", "registry")
# First line of every file we render; lets `up` recognise its own slurm.conf.
CONFIG_HEADER = "# Written by `slurm-magics devcluster up`; edits are overwritten."
AUTHORIZED_KEY_MARKER = "slurm-magics-devcluster"


@dataclass(frozen=True)
class Layout:
    """Where each file of the dev cluster lives, all under `state_dir`."""

    state_dir: Path

    @property
    def etc_dir(self) -> Path:
        return self.state_dir / "etc"

    @property
    def log_dir(self) -> Path:
        return self.state_dir / "log"

    @property
    def run_dir(self) -> Path:
        return self.state_dir / "run"

    @property
    def slurmctld_spool(self) -> Path:
        return self.state_dir / "spool" / "slurmctld"

    @property
    def slurmd_spool(self) -> Path:
        return self.state_dir / "spool" / "slurmd"

    @property
    def mariadb_datadir(self) -> Path:
        return self.state_dir / "mariadb"

    @property
    def mariadb_socket(self) -> Path:
        return self.run_dir / "mariadbd.sock"

    @property
    def my_cnf(self) -> Path:
        return self.etc_dir / "my.cnf"

    @property
    def slurmdbd_conf(self) -> Path:
        return self.etc_dir / "slurmdbd.conf"

    @property
    def slurmdbd_slurm_conf(self) -> Path:
        # slurmdbd looks for slurmdbd.conf next to $SLURM_CONF, so it is started with
        # SLURM_CONF pointing here (a copy of slurm.conf) to keep slurmdbd.conf in our folder.
        return self.etc_dir / "slurm.conf"

    @property
    def sshd_config(self) -> Path:
        return self.etc_dir / "sshd_config"

    @property
    def ssh_host_key(self) -> Path:
        return self.state_dir / "ssh" / "ssh_host_ed25519_key"

    @property
    def client_key(self) -> Path:
        return self.state_dir / "id_ed25519"

    @property
    def known_hosts(self) -> Path:
        return self.state_dir / "known_hosts"

    @property
    def state_file(self) -> Path:
        return self.state_dir / "state.json"

    @property
    def cluster_file(self) -> Path:
        return self.state_dir / "cluster.json"

    def log(self, daemon: str) -> Path:
        return self.log_dir / f"{daemon}.log"

    def pid_file(self, daemon: str) -> Path:
        return self.run_dir / f"{daemon}.pid"


@dataclass(frozen=True)
class ClusterParams:
    """Everything the rendered files depend on."""

    layout: Layout
    hostname: str
    real_memory_mb: int
    db_port: int
    db_password: str
    ssh_port: int
    cluster_name: str = DEFAULT_CLUSTER_NAME
    cpus: int = 16
    def_mem_per_cpu_mb: int = 500
    db_name: str = "slurm_acct_db"
    db_user: str = "slurm"
    slurmctld_port: int = 6817
    slurmd_port: int = 6818
    slurmdbd_port: int = 6819
    registry_port: int = 5000


def real_memory_mb(meminfo: str) -> int:
    """RealMemory to declare: a bit below MemTotal from /proc/meminfo's text.

    Declaring more than slurmd finds would drain the node; keep 5% (at least 256 MB) spare.
    """
    match = re.search(r"^MemTotal:\s+(\d+)\s*kB", meminfo, re.MULTILINE)
    if match is None:
        raise ValueError(f"no MemTotal line in /proc/meminfo text: {meminfo[:200]!r}")
    total_mb = int(match.group(1)) // 1024
    return max(256, total_mb - max(256, total_mb // 20))


def render_slurm_conf(p: ClusterParams) -> str:
    lay = p.layout
    lines = [
        CONFIG_HEADER,
        "# A one-node sandbox cluster for slurm_magics development and tests.",
        f"ClusterName={p.cluster_name}",
        # NodeAddr/controller address pinned to loopback: `hostname -s` need not resolve.
        f"SlurmctldHost={p.hostname}(127.0.0.1)",
        # Running the daemons as root is acceptable for a throwaway sandbox; it also avoids
        # ownership trouble when the state folder is somewhere only root can reach.
        "SlurmUser=root",
        "SlurmdUser=root",
        f"SlurmctldPort={p.slurmctld_port}",
        f"SlurmdPort={p.slurmd_port}",
        "AuthType=auth/munge",
        f"StateSaveLocation={lay.slurmctld_spool}",
        f"SlurmdSpoolDir={lay.slurmd_spool}",
        f"SlurmctldPidFile={lay.pid_file('slurmctld')}",
        f"SlurmdPidFile={lay.pid_file('slurmd')}",
        f"SlurmctldLogFile={lay.log('slurmctld')}",
        f"SlurmdLogFile={lay.log('slurmd')}",
        "SlurmctldDebug=info",
        "SlurmdDebug=info",
        "MailProg=/bin/true",
        "MpiDefault=none",
        # No cgroups in containers: track processes by parentage, no task binding.
        "ProctrackType=proctrack/linuxproc",
        "TaskPlugin=task/none",
        "SelectType=select/cons_tres",
        "SelectTypeParameters=CR_Core_Memory",
        # Declare more CPUs than the machine has so many small jobs run side by side.
        "SlurmdParameters=config_overrides",
        "ReturnToService=2",
        "SlurmdTimeout=30",
        # A task launched while its cancel was in flight misses the SIGTERM (linuxproc finds
        # it only later) and dies by the SIGKILL that follows KillWait: 10 s, not 30.
        "KillWait=10",
        "InactiveLimit=0",
        "MinJobAge=300",
        "MaxArraySize=100001",
        "MaxJobCount=200000",
        # Snappy scheduling for tests: schedule at submit time without the default 3 s
        # batching delay.
        "SchedulerParameters=batch_sched_delay=0",
        "JobAcctGatherType=jobacct_gather/linux",
        # Without cgroups this is how jobs over their --mem get killed (state FAILED, 0:9).
        "JobAcctGatherParams=OverMemoryKill",
        "JobAcctGatherFrequency=1",
        "AccountingStorageType=accounting_storage/slurmdbd",
        "AccountingStorageHost=127.0.0.1",
        f"AccountingStoragePort={p.slurmdbd_port}",
        "JobCompType=jobcomp/none",
        (
            f"NodeName={p.hostname} NodeAddr=127.0.0.1 CPUs={p.cpus} "
            f"RealMemory={p.real_memory_mb} State=UNKNOWN"
        ),
    ]
    for index, name in enumerate(PARTITIONS):
        default = "YES" if index == 0 else "NO"
        lines.append(
            f"PartitionName={name} Nodes=ALL Default={default} MaxTime=INFINITE State=UP "
            f"DefMemPerCPU={p.def_mem_per_cpu_mb}"
        )
    return "\n".join(lines) + "\n"


def render_slurmdbd_conf(p: ClusterParams) -> str:
    lay = p.layout
    lines = [
        CONFIG_HEADER,
        "# Holds the database password: keep mode 600, owned by SlurmUser (root).",
        "AuthType=auth/munge",
        f"DbdHost={p.hostname}",
        "DbdAddr=127.0.0.1",
        f"DbdPort={p.slurmdbd_port}",
        "SlurmUser=root",
        f"LogFile={lay.log('slurmdbd')}",
        f"PidFile={lay.pid_file('slurmdbd')}",
        "DebugLevel=info",
        "StorageType=accounting_storage/mysql",
        "StorageHost=127.0.0.1",
        f"StoragePort={p.db_port}",
        f"StorageUser={p.db_user}",
        f"StoragePass={p.db_password}",
        f"StorageLoc={p.db_name}",
    ]
    return "\n".join(lines) + "\n"


def render_my_cnf(p: ClusterParams) -> str:
    """A private MariaDB instance: own datadir, socket and loopback port."""
    lay = p.layout
    lines = [
        CONFIG_HEADER,
        "[client-server]",
        f"socket={lay.mariadb_socket}",
        f"port={p.db_port}",
        "",
        "[mariadbd]",
        # root: see SlurmUser in slurm.conf; lets the state folder live anywhere.
        "user=root",
        f"datadir={lay.mariadb_datadir}",
        f"pid-file={lay.pid_file('mariadb')}",
        f"log-error={lay.log('mariadb')}",
        "bind-address=127.0.0.1",
        "skip-name-resolve",
        # At least half of what slurmdbd recommends (it logs an error otherwise).
        "innodb_buffer_pool_size=512M",
        "innodb_log_file_size=64M",
        "innodb_lock_wait_timeout=900",
        "max_allowed_packet=16M",
    ]
    return "\n".join(lines) + "\n"


def render_db_setup_sql(p: ClusterParams) -> str:
    """Idempotent SQL creating the accounting database and slurmdbd's user."""
    password = p.db_password.replace("\\", "\\\\").replace("'", "\\'")
    statements = [f"CREATE DATABASE IF NOT EXISTS `{p.db_name}`;"]
    for host in ("127.0.0.1", "localhost"):
        user = f"'{p.db_user}'@'{host}'"
        statements += [
            f"CREATE USER IF NOT EXISTS {user} IDENTIFIED BY '{password}';",
            f"ALTER USER {user} IDENTIFIED BY '{password}';",
            f"GRANT ALL PRIVILEGES ON `{p.db_name}`.* TO {user};",
        ]
    statements.append("FLUSH PRIVILEGES;")
    return "\n".join(statements) + "\n"


def render_sshd_config(p: ClusterParams) -> str:
    """A second sshd on a loopback port, separate from any system sshd."""
    lay = p.layout
    lines = [
        CONFIG_HEADER,
        f"Port {p.ssh_port}",
        "ListenAddress 127.0.0.1",
        f"HostKey {lay.ssh_host_key}",
        f"PidFile {lay.pid_file('sshd')}",
        "PermitRootLogin prohibit-password",
        "PubkeyAuthentication yes",
        "AuthorizedKeysFile .ssh/authorized_keys",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        # PAM's session modules (pam_loginuid) often fail in containers; keys suffice.
        "UsePAM no",
        "X11Forwarding no",
        "PrintMotd no",
        "AcceptEnv LANG LC_*",
        # sshd's default MaxSessions (10) is kept on purpose: clients must cope with it.
        "Subsystem sftp internal-sftp",
        "LogLevel INFO",
    ]
    return "\n".join(lines) + "\n"


def known_hosts_line(port: int, host_public_key: str) -> str:
    """`[127.0.0.1]:PORT <type> <key>` from the text of an OpenSSH `.pub` host key."""
    key_type, key_data = host_public_key.split()[:2]
    return f"[127.0.0.1]:{port} {key_type} {key_data}\n"


def authorized_keys_line(client_public_key: str) -> str:
    """The dev-cluster key, usable from loopback only, marked for idempotent updates."""
    key_type, key_data = client_public_key.split()[:2]
    return f'from="127.0.0.1,::1" {key_type} {key_data} {AUTHORIZED_KEY_MARKER}\n'


def update_authorized_keys(existing: str, line: str) -> str:
    """`existing` authorized_keys text with exactly one (current) dev-cluster line."""
    kept = [
        old
        for old in existing.splitlines()
        if not old.rstrip().endswith(" " + AUTHORIZED_KEY_MARKER)
    ]
    return "".join(f"{old}\n" for old in kept) + line
