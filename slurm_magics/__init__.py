"""slurm_magics: run notebook functions and cells on SLURM as awaitable futures.

>>> import slurm_magics as sm
>>> sm.connect()
>>> @sm.task(cpus=2, memory="4G", time="00:10:00")
... def double(x):
...     return 2 * x
>>> await double(21)
42
"""

from ._version import __version__
from .cluster import Cluster
from .connect import connect
from .errors import (
    ClusterError,
    DependencyError,
    JobFailedError,
    RemoteTraceback,
    SlurmMagicsError,
    SubmissionError,
)
from .gather import as_completed, gather
from .job import Job, JobArray
from .resources import ResourceError, Resources
from .states import JobState
from .task import Task, task

__all__ = [
    "Cluster",
    "ClusterError",
    "DependencyError",
    "Job",
    "JobArray",
    "JobFailedError",
    "JobState",
    "RemoteTraceback",
    "ResourceError",
    "Resources",
    "SlurmMagicsError",
    "SubmissionError",
    "Task",
    "__version__",
    "as_completed",
    "connect",
    "gather",
    "task",
]
