"""``sm.connect()``: choose the cluster every task call goes to."""

from __future__ import annotations

import os
import shutil
import sys
import threading
from collections.abc import Sequence
from typing import Any, Literal

from .cluster import Cluster
from .errors import ClusterError
from .resources import resources_from_options
from .transport import LocalTransport

__all__ = ["connect", "default_cluster"]

Backend = Literal["slurm", "local"]

_default: Cluster | None = None
_lock = threading.Lock()


def connect(
    host: str | None = None,
    *,
    user: str | None = None,
    port: int | None = None,
    backend: Backend | None = None,
    root: str | None = None,
    python: str | None = None,
    setup: Sequence[str] = (),
    max_array_size: int | None = None,
    **resources: Any,
) -> Cluster:
    """Connect to a cluster and make it the default for every task call.

    ``connect()`` uses this machine's SLURM (a login node); ``connect("login.hpc.org",
    user="me")`` reaches one over SSH; resource keywords (``partition="debug"``,
    ``account=...``, ...) become the cluster's defaults. ``root`` is the folder for run
    files (default ``~/.slurm_magics``), ``python`` the interpreter jobs run with, and
    ``setup`` shell lines run before it (``module load ...``, activating an env).
    """
    defaults = resources_from_options(**resources)
    if host is not None or user is not None or port is not None:
        raise ClusterError(
            f"connecting to {host!r} over SSH is not available in this version yet; run the "
            "notebook on the cluster's login node and call sm.connect() there."
        )
    if backend == "local":
        raise ClusterError(
            "the local backend (no SLURM) is not available in this version yet; use a "
            "machine with SLURM (`slurm-magics devcluster up` starts one on Debian as root)."
        )
    if backend not in (None, "slurm"):
        raise ClusterError(f'backend={backend!r} must be "slurm" or "local".')
    if shutil.which("sbatch") is None:
        raise ClusterError(
            "no `sbatch` on PATH: this machine is not a SLURM login node. Connect to one "
            "(sm.connect(HOST)), or start the dev cluster (`slurm-magics devcluster up`)."
        )
    cluster = Cluster(
        LocalTransport(),
        defaults=defaults,
        root=root or os.environ.get("SLURM_MAGICS_ROOT"),
        python=python,
        setup=setup,
        max_array_size=max_array_size,
    )
    set_default(cluster)
    return cluster


def set_default(cluster: Cluster) -> None:
    """Make ``cluster`` the default for task calls (``connect()`` does this)."""
    global _default  # noqa: PLW0603  (the process-wide default is the point)
    with _lock:
        _default = cluster


def default_cluster() -> Cluster:
    """The default cluster, connecting to the configured one on first use (and saying so)."""
    with _lock:
        cluster = _default
    if cluster is not None:
        return cluster
    partition = os.environ.get("SLURM_MAGICS_PARTITION")
    options: dict[str, Any] = {"partition": partition} if partition else {}
    cluster = connect(**options)
    print(
        f"slurm_magics: connected to {cluster!r} (call sm.connect(...) to choose another)",
        file=sys.stderr,
    )
    return cluster
