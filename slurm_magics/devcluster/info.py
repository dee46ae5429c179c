"""`ClusterInfo`: what `up` wrote to `<state>/cluster.json`, and how to read it back."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from .config import DEFAULT_STATE_DIR, STATE_DIR_ENV, Layout
from .errors import DevClusterError

__all__ = ["ClusterInfo", "ContainersInfo", "SSHInfo", "load_info", "state_dir"]


def state_dir() -> Path:
    """The dev cluster's state folder: `$SLURM_MAGICS_DEVCLUSTER_DIR` or the default."""
    override = os.environ.get(STATE_DIR_ENV, "").strip()
    return Path(override).resolve() if override else DEFAULT_STATE_DIR


@dataclass(frozen=True)
class SSHInfo:
    """How to reach the dev cluster's own sshd (key login as root on loopback)."""

    host: str
    port: int
    user: str
    key_path: Path
    known_hosts_path: Path

    def to_json(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "port": self.port,
            "user": self.user,
            "key_path": str(self.key_path),
            "known_hosts_path": str(self.known_hosts_path),
        }


@dataclass(frozen=True)
class ContainersInfo:
    """The dev cluster's loopback registry (plain HTTP, no auth) and its local base image."""

    registry_host: str
    registry_port: int
    base_image: str  # in podman's local storage: Debian's python3 + cloudpickle; "" if it failed

    @property
    def registry(self) -> str:
        """`HOST:PORT`, the prefix of image names pushed there (push with tls_verify=False)."""
        return f"{self.registry_host}:{self.registry_port}"

    def to_json(self) -> dict[str, Any]:
        return {
            "registry_host": self.registry_host,
            "registry_port": self.registry_port,
            "base_image": self.base_image,
        }


@dataclass(frozen=True)
class ClusterInfo:
    """A running dev cluster: names, daemons, logs and SSH access."""

    cluster_name: str
    hostname: str
    partitions: tuple[str, ...]  # the default partition first
    slurm_conf: Path
    pids: dict[str, int] = field(hash=False)
    logs: dict[str, Path] = field(hash=False)
    ssh: SSHInfo
    slurm_version: str
    started_at: datetime
    state_dir: Path
    containers: ContainersInfo | None = None

    @property
    def default_partition(self) -> str:
        return self.partitions[0]

    def to_json(self) -> dict[str, Any]:
        return {
            "cluster_name": self.cluster_name,
            "hostname": self.hostname,
            "partitions": list(self.partitions),
            "slurm_conf": str(self.slurm_conf),
            "pids": dict(self.pids),
            "logs": {name: str(path) for name, path in self.logs.items()},
            "ssh": self.ssh.to_json(),
            "slurm_version": self.slurm_version,
            "started_at": self.started_at.isoformat(),
            "state_dir": str(self.state_dir),
            "containers": None if self.containers is None else self.containers.to_json(),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ClusterInfo:
        ssh = data["ssh"]
        containers = data.get("containers")
        return cls(
            cluster_name=str(data["cluster_name"]),
            hostname=str(data["hostname"]),
            partitions=tuple(str(name) for name in data["partitions"]),
            slurm_conf=Path(data["slurm_conf"]),
            pids={str(name): int(pid) for name, pid in data["pids"].items()},
            logs={str(name): Path(path) for name, path in data["logs"].items()},
            ssh=SSHInfo(
                host=str(ssh["host"]),
                port=int(ssh["port"]),
                user=str(ssh["user"]),
                key_path=Path(ssh["key_path"]),
                known_hosts_path=Path(ssh["known_hosts_path"]),
            ),
            slurm_version=str(data["slurm_version"]),
            started_at=datetime.fromisoformat(data["started_at"]),
            state_dir=Path(data["state_dir"]),
            containers=None
            if containers is None
            else ContainersInfo(
                registry_host=str(containers["registry_host"]),
                registry_port=int(containers["registry_port"]),
                base_image=str(containers["base_image"]),
            ),
        )


def load_info() -> ClusterInfo:
    """Read `<state>/cluster.json`, written by `slurm-magics devcluster up`."""
    path = Layout(state_dir()).cluster_file
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise DevClusterError(
            f"no dev cluster is up ({path} does not exist); "
            "run `slurm-magics devcluster up` (as root) first"
        ) from None
    except (OSError, ValueError) as exc:
        raise DevClusterError(
            f"cannot read {path} ({exc}); run `slurm-magics devcluster up` to rewrite it"
        ) from exc
    try:
        return ClusterInfo.from_json(data)
    except (KeyError, TypeError, ValueError) as exc:
        raise DevClusterError(
            f"{path} is incomplete ({exc!r}); run `slurm-magics devcluster up` to rewrite it"
        ) from exc
