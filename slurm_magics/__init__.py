"""slurm_magics: run notebook functions and cells on SLURM as awaitable futures.

>>> import slurm_magics as sm
>>> sm.connect()
>>> @sm.task(cpus=2, memory="4G", time="00:10:00")
... def double(x):
...     return 2 * x
>>> await double(21)
42
"""

from typing import Any as _Any

from slurm_magics._version import __version__
from slurm_magics.api.caching import cache_clear
from slurm_magics.api.connect import connect
from slurm_magics.api.data import FileArray, FileValue
from slurm_magics.api.executor import SlurmExecutor
from slurm_magics.api.history import attach as _attach
from slurm_magics.api.history import cleanup, jobs
from slurm_magics.api.pool import WorkerPool
from slurm_magics.api.task import Task, task
from slurm_magics.core.errors import (
    ClusterError,
    DependencyError,
    JobFailedError,
    RemoteTraceback,
    SlurmMagicsError,
    SubmissionError,
)
from slurm_magics.core.packaging import Packaging
from slurm_magics.core.resources import ResourceError, Resources
from slurm_magics.core.states import JobState
from slurm_magics.jobs.array import JobArray
from slurm_magics.jobs.cluster import Cluster
from slurm_magics.jobs.gather import as_completed, gather
from slurm_magics.jobs.job import Job
from slurm_magics.jobs.job import front_ends as _front_ends

__all__ = [
    "Cluster",
    "ClusterError",
    "DependencyError",
    "FileArray",
    "FileValue",
    "Job",
    "JobArray",
    "JobFailedError",
    "JobState",
    "Packaging",
    "RemoteTraceback",
    "ResourceError",
    "Resources",
    "SlurmExecutor",
    "SlurmMagicsError",
    "SubmissionError",
    "Task",
    "WorkerPool",
    "__version__",
    "as_completed",
    "cache_clear",
    "cleanup",
    "connect",
    "gather",
    "jobs",
    "load_ipython_extension",
    "task",
    "unload_ipython_extension",
]


def _display(item: Job | JobArray, include: _Any, exclude: _Any) -> dict[str, _Any]:
    # The widgets (and ipywidgets) are imported the first time a job is shown.
    from slurm_magics.ui.widgets.display import mimebundle  # noqa: PLC0415

    return mimebundle(item, include, exclude)


# The job model's front ends live in higher layers; only the package root wires them.
_front_ends.display = _display
_front_ends.attach = _attach


def load_ipython_extension(ipython: _Any) -> None:
    """``%load_ext slurm_magics``: the ``%%slurm`` magics (imported only now)."""
    from slurm_magics.ui.magics import load_ipython_extension as load  # noqa: PLC0415

    load(ipython)


def unload_ipython_extension(ipython: _Any) -> None:
    """``%unload_ext slurm_magics``."""
    from slurm_magics.ui.magics import unload_ipython_extension as unload  # noqa: PLC0415

    unload(ipython)
