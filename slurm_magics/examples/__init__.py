"""Runnable examples: ``python -m slurm_magics.examples.quickstart``."""

__all__: list[str] = []
