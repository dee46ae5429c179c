"""SLURM commands and their parsing: submit, cancel, query (``slurm.Scheduler``),
lost-sbatch recovery, and the local backend that mimics SLURM with subprocesses (``local/``).

Imports only ``core`` and ``transport``."""

__all__: list[str] = []
