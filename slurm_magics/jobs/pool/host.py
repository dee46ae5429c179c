"""What a pool answers for its tasks from its cluster: files, usage, start estimates."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from slurm_magics.jobs.cluster import Cluster

__all__ = ["ClusterSide"]


class ClusterSide:
    """The cluster-facing half of a pool's ``JobHost``: asked of the workers' job."""

    cluster: Cluster
    #: a SLURM job given one of the pool's tasks waits for its value (see cluster.py)
    passes_values = True

    @property
    def job_id(self) -> str:
        raise NotImplementedError

    @property
    def identity(self) -> tuple[str, str]:
        """Its cluster's: jobs there may take this pool's tasks as arguments."""
        return self.cluster.identity

    def read_text(self, path: str, max_bytes: int) -> str:
        """A file of the cluster (a worker's SLURM log)."""
        return self.cluster.read_text(path, max_bytes)

    def usage(self, slurm_ids: Sequence[str]) -> Any:
        """What the workers' job used (sacct)."""
        return self.cluster.usage([self.job_id])

    def start_estimates(self, slurm_ids: Sequence[str]) -> Any:
        """SLURM's start estimate of the workers' job."""
        return self.cluster.start_estimates([self.job_id])

    @property
    def usage_source(self) -> str:
        return self.cluster.usage_source

    @property
    def running_jobs(self) -> int | None:
        return self.cluster.running_jobs
