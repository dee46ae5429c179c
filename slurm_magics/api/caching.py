"""``sm.cache_clear``: forget cached calls so that they run again."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from slurm_magics.api.connect import default_cluster
from slurm_magics.jobs.cache import store_of
from slurm_magics.jobs.cluster import Cluster

__all__ = ["cache_clear"]


def cache_clear(
    function: Callable[..., Any] | None = None,
    *,
    key: str | None = None,
    cluster: Cluster | None = None,
) -> int:
    """Forget cached calls: every one of ``cluster``, only those of ``function`` (a task or
    a plain function), or the one with ``key`` (``job.cache.key``).

    Args:
        function: an ``sm.task`` or the function it wraps; None: all functions.
        key: one cache key as shown by ``job.cache.key``; None: all keys.
        cluster: the cluster whose cache to clear (default: the default cluster).

    Returns:
        How many cached calls were forgotten (their jobs and results stay as they are).
    """
    cluster = cluster or default_cluster()
    label = None
    if function is not None:
        target = getattr(function, "function", function)  # an sm.Task wraps its function
        label = str(getattr(target, "__qualname__", target))
    return store_of(cluster.registry).clear(cluster.key, label=label, key=key)
