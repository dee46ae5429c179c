"""The public API is exactly what __all__ says."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from types import ModuleType

import pytest

import slurm_magics as sm

EXPECTED = {
    "Cluster", "ClusterError", "DependencyError", "FileArray", "FileValue", "Job", "JobArray",
    "JobFailedError",
    "JobState", "Packaging", "RemoteTraceback", "ResourceError", "Resources", "SlurmExecutor",
    "SlurmMagicsError", "SubmissionError", "Task", "WorkerPool", "__version__", "as_completed",
    "cache_clear",
    "cleanup",
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


def _modules() -> list[ModuleType]:
    found = [sm]
    for info in pkgutil.walk_packages(sm.__path__, prefix="slurm_magics."):
        if info.name.endswith("__main__"):
            continue
        found.append(importlib.import_module(info.name))
    return found


@pytest.mark.parametrize("module", _modules(), ids=lambda m: m.__name__)
def test_every_module_declares_exactly_what_it_defines(module: ModuleType) -> None:
    """Each module's ``__all__`` names only what exists, and every public function or
    class it defines itself (not imported) is in it."""
    declared = getattr(module, "__all__", None)
    assert declared is not None, f"{module.__name__} has no __all__"
    assert len(declared) == len(set(declared)), f"{module.__name__}: duplicates in __all__"
    missing = [name for name in declared if not hasattr(module, name)]
    assert not missing, f"{module.__name__}.__all__ names what it lacks: {missing}"
    defined = {
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and (inspect.isfunction(value) or inspect.isclass(value))
        and value.__module__ == module.__name__
    }
    undeclared = sorted(defined - set(declared))
    assert not undeclared, f"{module.__name__} defines public {undeclared} not in __all__"
