"""``sm.connect()``: choose the cluster every task call goes to."""

from __future__ import annotations

import os
import shutil
import sys
import threading
import warnings
from collections.abc import Sequence
from typing import Any, Literal

from slurm_magics.core.errors import ClusterError
from slurm_magics.core.packaging import Packaging, coerce_packaging
from slurm_magics.core.resources import resources_from_options
from slurm_magics.jobs.cluster import Cluster
from slurm_magics.jobs.engine import engine
from slurm_magics.scheduler.local import LocalScheduler
from slurm_magics.transport import LocalTransport, SSHTransport
from slurm_magics.transport.ssh_connect import PathLike

__all__ = ["connect", "default_cluster", "set_default"]

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
    known_hosts: PathLike | Sequence[PathLike] | None = None,
    client_keys: Sequence[PathLike] | None = None,
    ssh_config: PathLike | Sequence[PathLike] | None = None,
    cancel_on_exit: bool = False,
    packaging: Packaging | str | None = None,
    **resources: Any,
) -> Cluster:
    """Connect to a cluster and make it the default for every task call.

    ``connect()`` uses this machine's SLURM (a login node; without ``sbatch``, the local
    backend, with a warning; ``backend="local"`` asks for it). ``connect("login.hpc.org",
    user="me")`` reaches one over one SSH connection (asyncssh): ``host`` may be an alias of
    ``~/.ssh/config`` (or of ``ssh_config=``), whose HostName, Port, User, IdentityFile,
    ProxyJump and UserKnownHostsFile apply; keys come from ssh-agent, the usual files or
    ``client_keys``; the host key must be in known_hosts (or ``known_hosts=``), else nothing
    runs and the error shows its fingerprint and how to accept it. Resource keywords
    (``partition="debug"``, ``account=...``, ...) become the cluster's defaults. ``root`` is
    the folder for run files on the cluster (default ``~/.slurm_magics`` there), ``python``
    the interpreter jobs run with (default: this one locally, ``python3`` over SSH), and
    ``setup`` shell lines run before it (``module load ...``, activating an env). Connecting
    checks that this Python, after the setup lines, has this notebook's major.minor and
    cloudpickle, and says what to install where if not. Jobs outlive this process unless
    ``cancel_on_exit=True``.

    Args:
        host: a login node's name or ``~/.ssh/config`` alias; None for this machine.
        user, port: SSH login and port (default: ssh config, then the current user, 22).
        backend: "slurm" or "local" (subprocesses with SLURM's semantics); None chooses.
        root: the run-file folder on the cluster ("~/..." is the cluster's home).
        python: the interpreter jobs run with there.
        setup: shell lines run before it in every job script.
        max_array_size: split arrays below this (default: the cluster's MaxArraySize).
        known_hosts, client_keys, ssh_config: SSH files (paths) instead of the defaults.
        cancel_on_exit: scancel this process's unfinished jobs when it exits.
        packaging: how jobs get the user's code: "none" (default), "wheel" (the project
            at or above the working directory, installed into a cached venv there) or
            ``sm.Packaging.container(...)`` (jobs run inside an image pinned by digest);
            prepared now, so a failed build, push or image check raises here.
        **resources: default resources of every job (as for ``sm.task``: cpus, memory in
            MB or "4G", time in minutes or "HH:MM:SS", partition, ...).

    Returns:
        The ``sm.Cluster``, now also the default cluster of this process.

    Raises:
        ClusterError: the cluster cannot be reached or used (SSH login, unknown host key,
            no SLURM, wrong Python or no cloudpickle there), with what to do;
            ``PackagingError`` (a ClusterError) when packaging fails.
        ResourceError: a default resource is invalid.
    """
    defaults = resources_from_options(**resources)
    packaging = coerce_packaging(packaging)
    if host is not None:
        if backend == "local":
            raise ClusterError(
                f"backend='local' runs jobs on this machine, not on {host!r}: drop backend= "
                "to use the cluster's SLURM over SSH, or drop the host."
            )
        transport = SSHTransport(
            host,
            user=user,
            port=port,
            known_hosts=known_hosts,
            client_keys=client_keys,
            ssh_config=ssh_config,
        )
        if root is not None and (root == "~" or root.startswith("~/")):
            root = engine.call(transport.home()) + root[1:]  # "~" means the cluster's home
        cluster = Cluster(
            transport,
            defaults=defaults,
            root=root,
            python=python or "python3",
            setup=setup,
            max_array_size=max_array_size,
            cancel_on_exit=cancel_on_exit,
            packaging=packaging,
        )
        set_default(cluster)
        return cluster
    ssh_only = (user, port, known_hosts, client_keys, ssh_config)
    if any(option is not None for option in ssh_only):
        raise ClusterError(
            "user=, port=, known_hosts=, client_keys= and ssh_config= are for SSH: pass the "
            "host too, e.g. sm.connect('login.hpc.org', user='me')."
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
        root=os.path.expanduser(root) if root else os.environ.get("SLURM_MAGICS_ROOT"),
        python=python,
        setup=setup,
        max_array_size=max_array_size,
        cancel_on_exit=cancel_on_exit,
        packaging=packaging,
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
