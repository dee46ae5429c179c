"""What the magics read from the notebook's variables: a cell's values, --map items, jobs."""

from __future__ import annotations

import pickle
import re
from typing import Any

import cloudpickle
from IPython.core.error import UsageError

from slurm_magics.jobs.array import JobArray
from slurm_magics.jobs.job import Job
from slurm_magics.jobs.pool.pool import WorkerPool
from slurm_magics.ui.magics.cell import CellAnalysis

__all__ = ["job_named", "job_variable", "map_items", "pool_variable", "shipped", "type_name"]

_INDEXED = re.compile(r"^([A-Za-z_]\w*)\[(-?\d+)\]$")


class _Discard:
    """A file that forgets what is written: pickling only to check that it works."""

    def write(self, data: Any) -> int:
        return len(memoryview(data))


class _ProbePickler(cloudpickle.Pickler):  # type: ignore[misc]
    """cloudpickle, with jobs standing for references (they become dependencies)."""

    def __init__(self) -> None:
        super().__init__(_Discard(), protocol=pickle.HIGHEST_PROTOCOL)
        self.holds_jobs = False

    def persistent_id(self, obj: Any) -> Any:
        if isinstance(obj, Job | JobArray):
            self.holds_jobs = True
            return "job"
        return None


def type_name(value: Any) -> str:
    kind = type(value)
    module = kind.__module__
    return kind.__qualname__ if module == "builtins" else f"{module}.{kind.__qualname__}"


def job_variable(namespace: dict[str, Any], option: str, name: str) -> Job | JobArray:
    if name not in namespace:
        raise UsageError(f"%%slurm: {option} {name}: the notebook has no variable {name!r}.")
    value = namespace[name]
    if not isinstance(value, Job | JobArray):
        raise UsageError(
            f"%%slurm: {option} {name}: {name!r} holds a {type_name(value)}, not a job; "
            "give variables bound to jobs (e.g. by %%slurm -o VAR)."
        )
    return value


def pool_variable(namespace: dict[str, Any], name: str) -> WorkerPool:
    """The WorkerPool a ``--pool VAR`` names (UsageError when VAR holds something else)."""
    value = namespace.get(name)
    if not isinstance(value, WorkerPool):
        raise UsageError(
            f"%%slurm: --pool {name}: {name!r} holds a {type_name(value)}, not a WorkerPool; "
            "make one first: pool = sm.WorkerPool(workers=4, cpus=1, memory='1G')."
        )
    return value


def shipped(
    namespace: dict[str, Any], analysis: CellAnalysis
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(values, jobs): the notebook's names the cell reads; jobs become dependencies."""
    missing = [name for name in analysis.required if name not in namespace]
    if missing:
        names = ", ".join(missing)
        raise UsageError(
            f"%%slurm: the cell reads {names}, which the notebook does not define; "
            "define it in a cell above (and run that cell) or inside this cell."
        )
    values: dict[str, Any] = {}
    jobs: dict[str, Any] = {}
    for name in analysis.names:
        if name not in namespace:
            continue
        value = namespace[name]
        probe = _ProbePickler()
        try:
            probe.dump(value)
        except Exception as error:
            raise UsageError(
                f"%%slurm: cannot send the variable {name!r} ({type_name(value)}) to the "
                f"cluster: {type(error).__name__}: {error}. Create it inside the cell "
                "instead, or send what it is made from (a path, parameters)."
            ) from None
        (jobs if probe.holds_jobs else values)[name] = value
    return values, jobs


def map_items(namespace: dict[str, Any], name: str, expression: str) -> list[Any]:
    try:
        value = eval(expression, namespace)  # noqa: S307  (the user's expression)
    except Exception as error:
        raise UsageError(
            f"%%slurm: --map {name}={expression}: evaluating {expression!r} raised "
            f"{type(error).__name__}: {error}"
        ) from None
    try:
        items = list(value)
    except TypeError:
        raise UsageError(
            f"%%slurm: --map {name}={expression}: {expression!r} is a {type_name(value)}, "
            "which cannot be iterated; give a list, a range or another iterable."
        ) from None
    if not items:
        raise UsageError(f"%%slurm: --map {name}={expression}: {expression!r} is empty.")
    return items


def job_named(
    namespace: dict[str, Any], magic: str, target: str, *, allow_array: bool
) -> Job | JobArray:
    indexed = _INDEXED.match(target)
    name = indexed.group(1) if indexed else target
    if not name.isidentifier():
        raise UsageError(
            f"{magic}: {target!r} is neither a variable (job, arr[3]) nor a SLURM job id."
        )
    if name not in namespace:
        raise UsageError(f"{magic}: the notebook has no variable {name!r}.")
    value = namespace[name]
    if indexed:
        if not isinstance(value, JobArray):
            raise UsageError(f"{magic}: {name!r} holds a {type_name(value)}, not a job array.")
        index = int(indexed.group(2))
        if not -len(value) <= index < len(value):
            raise UsageError(f"{magic}: {target}: {name!r} has {len(value)} tasks.")
        return value[index]
    if not isinstance(value, Job | JobArray):
        raise UsageError(f"{magic}: {name!r} holds a {type_name(value)}, not a job.")
    if isinstance(value, JobArray) and not allow_array:
        raise UsageError(
            f"{magic}: {name!r} is an array of {len(value)} tasks: pick one, e.g. {name}[0]."
        )
    return value
