"""``sm.WorkerPool``: warm workers in one SLURM submission, on the default cluster or another."""

from __future__ import annotations

from datetime import timedelta

from slurm_magics.api.connect import default_cluster
from slurm_magics.core.resources import MemoryLike, Resources, resources_from_options
from slurm_magics.jobs.cluster import Cluster
from slurm_magics.jobs.pool.pool import WorkerInfo
from slurm_magics.jobs.pool.pool import WorkerPool as _Pool

__all__ = ["WorkerInfo", "WorkerPool"]


class WorkerPool(_Pool):
    """Warm workers in ONE SLURM array job; tasks go to them over a socket in milliseconds.

    ``task.on(pool)(...)``, ``task.on(pool).map(...)``, ``pool.submit(fn, ...)`` and
    ``sm.SlurmExecutor(pool=pool)`` give the usual ``Job``/``JobArray`` futures. Use it as
    a context manager (``with``/``async with``) or call ``shutdown()`` to release the
    allocation; ``await pool.ready(n)`` waits for ``n`` connected workers.

    Args:
        workers: how many worker processes (one array element each).
        cpus, memory, time, gpus, partition, account, qos, constraint, extra: what EACH
            worker asks SLURM for, as for tasks (memory: int MB or "4G"; time: minutes,
            "HH:MM:SS" or a timedelta).
        cluster: where to submit (default: the default cluster).
        name: the workers' SLURM job name.
        retries: how often a task whose worker was lost runs again (default 1).
        heartbeat, heartbeat_timeout: seconds between heartbeats, and of silence after which
            a worker counts as lost (and workers exit when the client is gone).
        idle_timeout: seconds without tasks after which the workers are released (None:
            never).
        replace_before: seconds before a worker's time limit at which a fresh worker is
            submitted and the old one finishes its task and leaves (None: never).

    Raises:
        ResourceError: a resource value is invalid (nothing submitted).
        ValueError: ``workers`` or ``retries`` is not a valid count.
        ClusterError: the listener or relay could not start, or sbatch refused.
    """

    def __init__(
        self,
        workers: int = 16,
        *,
        cpus: int | None = 1,
        memory: MemoryLike | None = None,
        time: int | str | timedelta | None = None,
        cluster: Cluster | None = None,
        name: str = "pool",
        retries: int = 1,
        heartbeat: float = 2.0,
        heartbeat_timeout: float = 30.0,
        idle_timeout: float | None = None,
        replace_before: float | None = 300.0,
        **resources: object,
    ) -> None:
        asked: Resources = resources_from_options(cpus=cpus, memory=memory, time=time, **resources)
        super().__init__(
            cluster or default_cluster(),
            workers=workers,
            resources=asked,
            name=name,
            retries=retries,
            heartbeat=heartbeat,
            heartbeat_timeout=heartbeat_timeout,
            idle_timeout=idle_timeout,
            replace_before=replace_before,
        )
