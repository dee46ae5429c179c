"""The public API is exactly what __all__ says."""

from __future__ import annotations

import slurm_magics as sm

EXPECTED = {
    "Cluster", "ClusterError", "DependencyError", "FileArray", "FileValue", "Job", "JobArray",
    "JobFailedError",
    "JobState", "RemoteTraceback", "ResourceError", "Resources", "SlurmExecutor",
    "SlurmMagicsError", "SubmissionError", "Task", "__version__", "as_completed", "cleanup",
    "connect", "gather", "jobs", "task",
}  # fmt: skip


def test_all_lists_the_public_names() -> None:
    assert set(sm.__all__) >= EXPECTED
    for name in sm.__all__:
        assert hasattr(sm, name), name
    public = {
        n for n in dir(sm) if not n.startswith("_") and not isinstance(getattr(sm, n), type(sm))
    }
    assert public <= set(sm.__all__) | {
        "annotations",
        "load_ipython_extension",
        "unload_ipython_extension",
    }
