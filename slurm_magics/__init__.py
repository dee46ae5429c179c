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

from ._version import __version__
from .cluster import Cluster
from .connect import connect
from .data import FileArray, FileValue
from .errors import (
    ClusterError,
    DependencyError,
    JobFailedError,
    RemoteTraceback,
    SlurmMagicsError,
    SubmissionError,
)
from .executor import SlurmExecutor
from .gather import as_completed, gather
from .job import Job, JobArray
from .persistence import cleanup, jobs
from .resources import ResourceError, Resources
from .states import JobState
from .task import Task, task

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
    "RemoteTraceback",
    "ResourceError",
    "Resources",
    "SlurmExecutor",
    "SlurmMagicsError",
    "SubmissionError",
    "Task",
    "__version__",
    "as_completed",
    "cleanup",
    "connect",
    "gather",
    "jobs",
    "task",
]


def load_ipython_extension(ipython: _Any) -> None:
    """``%load_ext slurm_magics``: the ``%%slurm`` magics (imported only now)."""
    from .magics import load_ipython_extension as load  # noqa: PLC0415

    load(ipython)


def unload_ipython_extension(ipython: _Any) -> None:
    """``%unload_ext slurm_magics``."""
    from .magics import unload_ipython_extension as unload  # noqa: PLC0415

    unload(ipython)
