"""Runnable examples: ``python -m slurm_magics.examples.quickstart``."""
