"""`up`, `down` and `status` of the dev cluster: the order of things and the state file."""

from __future__ import annotations

import contextlib
import json
import logging
import secrets
import socket
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from slurm_magics.core.states import node_accepts_jobs

from .config import (
    DAEMONS,
    DEFAULT_CLUSTER_NAME,
    PARTITIONS,
    SLURM_CONF_PATH,
    ClusterParams,
    Layout,
    real_memory_mb,
)
from .containers import ensure_base_image, write_containers_conf
from .errors import DevClusterError
from .info import ClusterInfo, ContainersInfo, SSHInfo, load_info, state_dir
from .packages import check_debian, check_root, ensure_packages
from .procs import free_port, log_tail, port_is_free, run, slurm_env, stop_pid, wait_until
from .services import (
    START,
    Daemon,
    munge_works,
    node_state,
    prepare_ssh,
    provision_database,
    register_cluster,
    sacct_answers,
    slurm_version,
    ssh_login_works,
    write_configs,
)

__all__ = ["daemon_pids", "down", "status", "up"]

_log = logging.getLogger("slurm_magics.devcluster")
_FIXED_PORTS = {"slurmctld": 6817, "slurmd": 6818, "slurmdbd": 6819}


def _load_state(layout: Layout) -> dict[str, Any]:
    try:
        data = json.loads(layout.state_file.read_text())
    except (OSError, ValueError):
        return {"pids": {}}
    if not isinstance(data, dict):
        return {"pids": {}}
    data.setdefault("pids", {})
    return data


def _save_json(path: Path, data: dict[str, Any], mode: int) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.chmod(mode)
    tmp.replace(path)


def _save_state(layout: Layout, state: dict[str, Any]) -> None:
    # Holds the database password: root only.
    _save_json(layout.state_file, state, 0o600)


def _stable_port(state: dict[str, Any], key: str, owner: Daemon) -> int:
    """The port remembered in the state file, unless another program took it meanwhile."""
    port = state.get(key)
    if isinstance(port, int) and (owner.pid() is not None or port_is_free(port)):
        return port
    new_port = free_port()
    if isinstance(port, int):
        _log.info("%s: port %d is taken by another program; using %d", owner.name, port, new_port)
    return new_port


def _check_fixed_ports(layout: Layout) -> None:
    for name, port in _FIXED_PORTS.items():
        if Daemon(name, layout).pid() is None and not port_is_free(port):
            raise DevClusterError(
                f"port {port}, which the dev cluster's {name} needs, is in use by another "
                f"program (another SLURM?). Stop it first (e.g. `scontrol shutdown`, or find "
                f"it with `ss -ltnp | grep {port}`), then run `slurm-magics devcluster up` again."
            )


def _params(layout: Layout, state: dict[str, Any]) -> ClusterParams:
    return ClusterParams(
        layout=layout,
        # `hostname -s`
        hostname=socket.gethostname().split(".")[0],
        real_memory_mb=real_memory_mb(Path("/proc/meminfo").read_text()),
        db_port=int(state["db_port"]),
        db_password=str(state["db_password"]),
        ssh_port=int(state["ssh_port"]),
        registry_port=int(state["registry_port"]),
        cluster_name=DEFAULT_CLUSTER_NAME,
    )


def _wait_node_usable(hostname: str, log: Path) -> None:
    resumed = False

    def usable() -> bool:
        nonlocal resumed
        state = node_state(hostname)
        if node_accepts_jobs(state):
            return True
        # A node left DOWN/DRAINED by an earlier crash of ours comes back with RESUME.
        if not resumed and state.rstrip("*~#!%$@^-") in ("down", "drain", "drng", "fail"):
            run(["scontrol", "update", f"nodename={hostname}", "state=resume"],
                env=slurm_env(), check=False)  # fmt: skip
            resumed = True
        return False

    if not wait_until(usable, 90, 0.5):
        raise DevClusterError(
            f"node {hostname} is not usable after 90 s (sinfo state: "
            f"{node_state(hostname) or 'unknown'!r}); see {log}\n{log_tail(log)}"
        )


def _stop_started(layout: Layout, state: dict[str, Any], started: list[str]) -> None:
    for name in reversed(started):
        pid = state["pids"].pop(name, None)
        if isinstance(pid, int):
            _log.info("%s: stopping (pid %d) after the failure", name, pid)
            stop_pid(pid, Daemon(name, layout).executable)
    _save_state(layout, state)


def up() -> ClusterInfo:
    """Install what is missing and start every daemon that is not running; idempotent."""
    check_root("up")
    check_debian()
    installed = ensure_packages()
    if installed:
        _log.info("installed %s", ", ".join(installed))
    layout = Layout(state_dir())
    layout.state_dir.mkdir(mode=0o755, parents=True, exist_ok=True)
    state = _load_state(layout)
    state["ssh_port"] = _stable_port(state, "ssh_port", Daemon("sshd", layout))
    state["db_port"] = _stable_port(state, "db_port", Daemon("mariadb", layout))
    state["registry_port"] = _stable_port(state, "registry_port", Daemon("registry", layout))
    state.setdefault("db_password", secrets.token_urlsafe(24))
    params = _params(layout, state)
    _save_state(layout, state)
    _check_fixed_ports(layout)
    changed = write_configs(params)
    prepare_ssh(params)
    write_containers_conf()

    started: list[str] = []
    try:
        for name in DAEMONS:
            daemon = Daemon(name, layout)
            pid = daemon.pid()
            if pid is not None and name in changed:
                _log.info("%s: configuration changed, restarting (pid %d)", name, pid)
                stop_pid(pid, daemon.executable)
                pid = None
            if pid is None:
                _log.info("%s: starting ...", name)
                pid = START[name](params)
                if pid is not None:
                    started.append(name)
                    state["pids"][name] = pid
                    _save_state(layout, state)
                    _log.info("%s: started (pid %d), log %s", name, pid, daemon.log)
            else:
                state["pids"][name] = pid
                _log.info("%s: already running (pid %d)", name, pid)
            if name == "mariadb":
                provision_database(params)
            elif name == "slurmdbd":
                register_cluster(params)
        _wait_node_usable(params.hostname, layout.log("slurmd"))
        if not wait_until(sacct_answers, 60, 0.5):
            raise DevClusterError(
                f"sacct does not answer (or says accounting storage is disabled) after 60 s; "
                f"see {layout.log('slurmdbd')}\n{log_tail(layout.log('slurmdbd'))}"
            )
        ok, error = ssh_login_works(params)
        if not ok:
            raise DevClusterError(
                f"ssh key login to root@127.0.0.1:{params.ssh_port} failed: {error}\n"
                f"{log_tail(layout.log('sshd'))}"
            )
        try:
            base_image = ensure_base_image(layout)
        except DevClusterError as error:  # SLURM stays usable; the container tests say why
            _log.error("base image: %s\n(run `slurm-magics devcluster up` again)", error)
            base_image = ""
    except BaseException:
        _stop_started(layout, state, started)
        raise
    _save_state(layout, state)

    started_at = datetime.now(timezone.utc)
    if not started:
        _log.info("everything was already running")
        with contextlib.suppress(DevClusterError):
            started_at = load_info().started_at
    info = ClusterInfo(
        cluster_name=params.cluster_name,
        hostname=params.hostname,
        partitions=PARTITIONS,
        slurm_conf=SLURM_CONF_PATH,
        pids={name: int(pid) for name, pid in state["pids"].items()},
        logs={name: layout.log(name) for name in DAEMONS},
        ssh=SSHInfo(
            host="127.0.0.1",
            port=params.ssh_port,
            user="root",
            key_path=layout.client_key,
            known_hosts_path=layout.known_hosts,
        ),
        slurm_version=slurm_version(),
        started_at=started_at,
        state_dir=layout.state_dir,
        containers=ContainersInfo("127.0.0.1", params.registry_port, base_image),
    )
    _save_json(layout.cluster_file, info.to_json(), 0o644)
    return info


def down() -> None:
    """Stop exactly the daemons `up` started (pids from the state file), last started first."""
    check_root("down")
    layout = Layout(state_dir())
    state = _load_state(layout)
    for name in reversed(DAEMONS):
        pid = state["pids"].pop(name, None)
        if not isinstance(pid, int):
            continue
        executable = Daemon(name, layout).executable
        # mariadbd flushes InnoDB on SIGTERM, which can take a while.
        if stop_pid(pid, executable, timeout=60 if name == "mariadb" else 20):
            _log.info("%s: stopped (pid %d)", name, pid)
        else:
            _log.info("%s: was not running (pid %d gone)", name, pid)
        if layout.state_file.exists():
            _save_state(layout, state)
    layout.cluster_file.unlink(missing_ok=True)


def status() -> dict[str, bool]:
    """Whether each daemon runs (munged also counts when another munged serves SLURM)."""
    result = {name: pid is not None for name, pid in daemon_pids().items()}
    if not result["munged"]:
        result["munged"] = munge_works()
    return result


def daemon_pids() -> dict[str, int | None]:
    """The pid of each of our daemons that runs (from the pid files), None for the others."""
    layout = Layout(state_dir())
    return {name: Daemon(name, layout).pid() for name in DAEMONS}
