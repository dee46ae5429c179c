"""``sm.connect()``: choose the cluster every task call goes to."""

from __future__ import annotations

import os
import shutil
import sys
import threading
import warnings
from collections.abc import Sequence
from typing import Any, Literal

from .backends import LocalScheduler
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
    if backend not in (None, "slurm", "local"):
        raise ClusterError(f'backend={backend!r} must be "slurm" or "local".')
    scheduler: LocalScheduler | None = None
    if backend == "local":
        scheduler = LocalScheduler()
    elif shutil.which("sbatch") is None:
        if backend == "slurm":
            raise ClusterError(
                "backend='slurm' but there is no `sbatch` on PATH: this machine is not a "
                "SLURM login node. Connect to one (sm.connect(HOST)), start the dev cluster "
                "(`slurm-magics devcluster up`), or use backend='local'."
            )
        warnings.warn(
            "no `sbatch` on PATH: using the local backend (subprocesses on this machine, no "
            "SLURM). Pass backend='local' to silence this, or sm.connect(HOST) for a cluster.",
            stacklevel=2,
        )
        scheduler = LocalScheduler()
    cluster = Cluster(
        LocalTransport(),
        scheduler=scheduler,
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
