"""A one-node SLURM cluster (with accounting and an sshd) on this machine, for development;
also podman, a loopback registry and a base image for the container packaging tests.

`up()` installs and starts it (root, Debian/Ubuntu), `down()` stops what `up()` started,
`status()` says what runs, `load_info()` reads how to reach it. The CLI twin is
`slurm-magics devcluster up|down|status`.
"""

from __future__ import annotations

from .cluster import down, status, up
from .errors import DevClusterError
from .info import ClusterInfo, ContainersInfo, SSHInfo, load_info, state_dir

__all__ = [
    "ClusterInfo",
    "ContainersInfo",
    "DevClusterError",
    "SSHInfo",
    "down",
    "load_info",
    "state_dir",
    "status",
    "up",
]
