"""Notebook front ends: the ``%%slurm`` magics, the widgets (text and tqdm outside
notebooks) and the session's job list."""

__all__: list[str] = []
