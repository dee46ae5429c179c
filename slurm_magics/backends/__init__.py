"""Scheduler backends other than SLURM itself."""

from .local import LocalScheduler

__all__ = ["LocalScheduler"]
