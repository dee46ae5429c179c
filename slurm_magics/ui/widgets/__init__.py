"""Live displays of jobs (ipywidgets), with text fallbacks outside widget front ends.

- ``JobStatus``: one job's state, id, node, elapsed time, Cancel, log tail, output;
- ``SweepProgress``: an array's counts per state and a bar, one message per refresh;
- ``JobsPanel``: every job of the kernel with the dependency graph.

All are refreshed by one throttled background thread (``refresh.refresher``), at most
~10 times a second each, and stop when what they show has finished.
"""

from __future__ import annotations

from slurm_magics.jobs.table import remember_arguments, task_records, to_dataframe, to_parquet
from slurm_magics.ui.widgets.display import mimebundle, show, text_of, view_of, widgets_available
from slurm_magics.ui.widgets.panel import JobsPanel
from slurm_magics.ui.widgets.refresh import refresher
from slurm_magics.ui.widgets.status import JobStatus
from slurm_magics.ui.widgets.sweep import SweepProgress

__all__ = [
    "JobStatus",
    "JobsPanel",
    "SweepProgress",
    "mimebundle",
    "refresher",
    "remember_arguments",
    "show",
    "task_records",
    "text_of",
    "to_dataframe",
    "to_parquet",
    "view_of",
    "widgets_available",
]
