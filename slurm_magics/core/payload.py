"""Build a run folder's payload: the function pickled once, the arguments in one table.

Jobs found anywhere inside the arguments (lists, tuples, dict values, attributes of user
objects) are pickled as references that the runner replaces with their results; the
``reference`` callback decides, per job, whether it is a reference, a value, or an error.
"""

from __future__ import annotations

import io
import json
import operator
import pickle
import sys
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import cloudpickle

from slurm_magics.core import runner as _runner
from slurm_magics.core.errors import SlurmMagicsError

__all__ = [
    "ArgumentTable",
    "FileReference",
    "Reference",
    "dump_function",
    "dump_meta",
    "load_outcome",
]

#: Arguments bigger than this (pickled, per item) get a warning that points to FileValue.
LARGE_ARGUMENT = 16 * 1024 * 1024

#: What the reference callback returns for an object: None for "not a job", or
#: ("ref", persistent id) for a job that has not finished, or ("value", v) for a done one.
Reference = tuple[str, Any] | None


class FileReference(ABC):
    """Data already on the cluster that a task receives as the loaded object.

    Subclasses (``FileValue``, ``FileArray`` and its items) say how the runner finds it;
    the submitting side pickles only this persistent id, never the data.
    """

    @abstractmethod
    def reference(self) -> tuple[str, Any, Any]:
        """The runner's persistent id: (kind, location, layout or index)."""


class _ArgumentPickler(cloudpickle.Pickler):  # type: ignore[misc]
    def __init__(self, file: io.BytesIO, reference: Callable[[Any], Reference]) -> None:
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        self._reference = reference

    def persistent_id(self, obj: Any) -> Any:
        found = self._reference(obj)
        if found is not None and found[0] == "ref":
            return found[1]
        return None

    def reducer_override(self, obj: Any) -> Any:
        found = self._reference(obj)
        if found is not None and found[0] == "value":
            # Rebuilt on the cluster as itemgetter(0)([value]): the value itself, no job.
            return operator.itemgetter(0), ([found[1]],)
        return super().reducer_override(obj)


class ArgumentTable:
    """Pickles (args, kwargs) items one by one into one blob plus an offset index."""

    def __init__(self, reference: Callable[[Any], Reference]) -> None:
        self._blob = io.BytesIO()
        self._pickler = _ArgumentPickler(self._blob, reference)
        self._offsets = [0]
        self._warned = False

    def add(self, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
        """Append one item; raises what pickling raised (with the offending value named)."""
        self._pickler.clear_memo()  # each item must load on its own
        try:
            self._pickler.dump((args, dict(kwargs)))
        except BaseException as error:
            # A failed dump may have flushed part of the item already: drop it.
            self._blob.truncate(self._offsets[-1])
            self._blob.seek(self._offsets[-1])
            if isinstance(error, SlurmMagicsError) or not isinstance(error, Exception):
                raise  # a failed dependency (said clearly by whoever raised it), or Ctrl-C
            raise TypeError(
                f"the arguments of item {len(self._offsets) - 1} cannot be pickled "
                f"({type(error).__name__}: {error}); pass values that pickle, or a path to data."
            ) from error
        size = self._blob.tell() - self._offsets[-1]
        self._offsets.append(self._blob.tell())
        if size > LARGE_ARGUMENT and not self._warned:
            self._warned = True
            warnings.warn(
                f"the arguments of item {len(self._offsets) - 2} take {size / 1e6:.0f} MB pickled, "
                "and every task gets its own copy: write big data once with "
                "sm.FileValue.from_data(obj) or sm.FileArray.from_data(array) and pass that.",
                stacklevel=5,
            )

    def extend(self, items: Iterable[tuple[tuple[Any, ...], Mapping[str, Any]]]) -> None:
        """Append several items."""
        for args, kwargs in items:
            self.add(args, kwargs)

    def __len__(self) -> int:
        return len(self._offsets) - 1

    def files(self) -> tuple[bytes, bytes]:
        """The table (args.bin) and its index (args.idx)."""
        index = b"".join(_runner.OFFSET.pack(offset) for offset in self._offsets)
        return self._blob.getvalue(), index


def dump_function(function: Callable[..., Any]) -> bytes:
    """Pickle the function once (by value when defined in __main__ or a notebook)."""
    try:
        data: bytes = cloudpickle.dumps(function, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as error:
        name = getattr(function, "__qualname__", repr(function))
        raise TypeError(
            f"the function {name} cannot be pickled ({type(error).__name__}: {error}); "
            "it may close over an open file, a lock or a connection: create those inside it."
        ) from error
    return data


def dump_meta(
    *,
    run_id: str,
    n_items: int,
    chunk_size: int,
    sentinel_dir: str,
    resources: Mapping[str, Any],
    resources_variable: str | None,
) -> bytes:
    """The run's meta.json: versions and layout the runner checks before unpickling."""
    meta = {
        "format": _runner.FORMAT_VERSION,
        "run_id": run_id,
        "n_items": n_items,
        "chunk_size": chunk_size,
        "sentinel_dir": sentinel_dir,
        "python": list(sys.version_info[:2]),
        "cloudpickle": cloudpickle.__version__,
        "resources": dict(resources),
        "resources_variable": resources_variable,
    }
    return json.dumps(meta, indent=1).encode()


def load_outcome(data: bytes) -> tuple[Any, ...]:
    """Unpickle a result file written by the runner.

    Returns ("ok", value) or ("error", exception or None, traceback text, type name,
    message): an exception this Python cannot rebuild comes back as None beside its text.

    Raises:
        UnloadableResultError: the value cannot be rebuilt here (its type name and why).
        pickle.UnpicklingError, and what unpickling raises: the file is not a result.
    """
    return _runner.decode_outcome(data, pickle.loads)
