"""A job array as a table: one row per task (``arr.to_dataframe()``, ``arr.to_parquet()``)."""

from __future__ import annotations

import importlib
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from slurm_magics.core.arguments import RESERVED, call_columns, signature_of
from slurm_magics.core.states import JobState


class _Task(Protocol):
    """What a row needs of a task (a ``Job``; job.py builds on this module)."""

    @property
    def job_id(self) -> str: ...
    @property
    def elapsed(self) -> float | None: ...

    state: JobState

    def cancelled(self) -> bool: ...
    def done(self) -> bool: ...
    def exception(self, timeout: float | None = None) -> BaseException | None: ...
    def result(self, timeout: float | None = None) -> Any: ...


class TaskArray(Protocol):
    """What a table needs of an array (a ``JobArray``)."""

    @property
    def jobs(self) -> Sequence[_Task]: ...
    @property
    def calls(self) -> tuple[Callable[..., Any], Sequence[Any]] | None: ...

    def __hash__(self) -> int: ...


__all__ = ["TaskArray", "remember_arguments", "task_records", "to_dataframe", "to_parquet"]

# The arguments of arrays made here (``%%slurm --map``): the submitted table is pickled on
# the cluster, so only the front end that built the items knows them.
_arguments: weakref.WeakKeyDictionary[TaskArray, tuple[str, Sequence[Any]]] = (
    weakref.WeakKeyDictionary()
)


def remember_arguments(array: TaskArray, name: str, items: Sequence[Any]) -> None:
    """Record the item each task got (``name``: the variable it was bound to)."""
    _arguments[array] = (name, items)


def _argument_columns(name: str, item: Any) -> dict[str, Any]:
    if isinstance(item, Mapping) and all(isinstance(key, str) for key in item):
        return {(f"{name}.{key}" if key in RESERVED else key): value for key, value in item.items()}
    return {name: item}


def _call_columns(array: TaskArray) -> Callable[[int], dict[str, Any]] | None:
    """Task index -> its argument columns, when this process knows the arguments."""
    known = _arguments.get(array)
    if known is not None:
        name, items = known
        return lambda index: _argument_columns(name, items[index])
    if array.calls is not None:
        function, calls = array.calls
        signature = signature_of(function)
        return lambda index: call_columns(signature, *calls[index])
    return None


def task_records(array: TaskArray) -> list[dict[str, Any]]:
    """One dict per task: task, job_id, its arguments when known, state, elapsed, result, error."""
    columns = _call_columns(array)
    records = []
    for index, job in enumerate(array.jobs):
        record: dict[str, Any] = {"task": index, "job_id": job.job_id}
        if columns is not None:
            record.update(columns(index))
        result = error = None
        if job.cancelled():
            error = "cancelled"
        elif job.done():
            exception = job.exception()
            if exception is None:
                result = job.result()
            else:
                error = f"{type(exception).__name__}: {exception}"
        record.update(state=job.state.value, elapsed=job.elapsed, result=result, error=error)
        records.append(record)
    return records


def to_dataframe(array: TaskArray) -> Any:
    """A pandas DataFrame of the tasks, indexed by task number."""
    try:
        pandas = importlib.import_module("pandas")  # optional: only this method needs it
    except ImportError as error:
        raise ImportError(
            "arr.to_dataframe() needs pandas, which is not installed: `pip install pandas` "
            "(or use slurm_magics.ui.widgets.task_records(arr) for plain dicts)."
        ) from error
    return pandas.DataFrame.from_records(task_records(array), index="task")


def to_parquet(array: TaskArray, path: str, **options: Any) -> None:
    """Write the tasks' table to a Parquet file (needs pandas and pyarrow)."""
    frame = to_dataframe(array)
    try:
        importlib.import_module("pyarrow")
    except ImportError as error:
        raise ImportError(
            "arr.to_parquet() needs pyarrow, which is not installed: `pip install pyarrow`."
        ) from error
    frame.to_parquet(path, engine="pyarrow", **options)
