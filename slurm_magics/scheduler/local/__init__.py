"""Scheduler backends other than SLURM itself."""

from slurm_magics.scheduler.local.scheduler import LocalScheduler

__all__ = ["LocalScheduler"]
