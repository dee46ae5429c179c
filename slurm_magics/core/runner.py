"""The program that runs on the compute node: stdlib and cloudpickle only.

It is copied next to the jobs (the cluster needs no slurm_magics install) and started by
the job script as ``python runner.py RUN_DIR ELEMENT``. A run folder holds:

- ``meta.json``: versions, item count, chunk size, where to drop completion sentinels;
- ``function.pkl``: the function, pickled once;
- ``args.bin`` + ``args.idx``: one pickled ``(args, kwargs)`` per item and their offsets;
- ``results/<item>.pkl``: written atomically: the value or exception pickled on its own,
  beside its type name, message and traceback as plain text, so that a client that cannot
  rebuild the object (a module it lacks, a class it cannot construct, other versions)
  still learns what happened.

Arguments that stand for other jobs' results are pickled as persistent ids and loaded
here from those jobs' result files.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import struct
import sys
import time
import traceback
import types
from typing import Any

__all__ = [
    "DependencyFailedError",
    "UnloadableResultError",
    "check_versions",
    "decode_outcome",
    "encode_outcome",
    "error_outcome",
    "forget_loaded",
    "load_call",
    "load_file",
    "load_file_item",
    "load_result",
    "main",
    "read_item",
    "run_element",
    "write_result",
]

FORMAT_VERSION = 1
OFFSET = struct.Struct("<Q")
RESULT_REF = "result"  # persistent id ("result", run_dir, item): one job's value
PICKLED = "pickled"  # a result file: (PICKLED, kind, object pickle, traceback, type, message)
FILE_REF = "file"  # ("file", path, layout): data written once by FileValue / FileArray
FILE_ITEM_REF = "file-item"  # ("file-item", (folder, layout), index): one element of it
RESULTS_REF = "results"  # ("results", [(run_dir, count), ...], total): an array's values


class DependencyFailedError(Exception):
    """A job this one reads a value from has no successful result."""


class UnloadableResultError(Exception):
    """A task's value was written but cannot be rebuilt here (``type_name`` says what it was)."""

    def __init__(self, type_name: str, reason: BaseException) -> None:
        super().__init__(
            f"its value (of type {type_name}) cannot be loaded here "
            f"({type(reason).__name__}: {reason})"
        )
        self.type_name = type_name
        self.reason = reason


def _type_name(obj: Any) -> str:
    kind = type(obj)
    return (
        kind.__qualname__
        if kind.__module__ == "builtins"
        else f"{kind.__module__}.{kind.__qualname__}"
    )


def encode_outcome(outcome: tuple[Any, ...], dumps: Any) -> bytes:
    """A result file's bytes: the object pickled by ``dumps`` on its own, inside a plain
    pickle of text (kind, traceback, type name, message) that any Python can read.

    ``outcome`` is ("ok", value) or ("error", exception, traceback, type name, message).
    A value that cannot be pickled becomes an error ("PicklingError"); an exception that
    cannot be pickled keeps its text and loses only the object.
    """
    kind, obj = outcome[0], outcome[1]
    if kind == "ok":
        text, type_name, message = "", _type_name(obj), ""
    else:
        text, type_name, message = (str(part) for part in outcome[2:5])
    blob: bytes | None
    try:
        blob = dumps(obj)
    except Exception as error:  # the object itself cannot be pickled
        blob = None
        if kind == "ok":
            kind, text, type_name = "error", traceback.format_exc(), "PicklingError"
            message = f"the result of type {_type_name(obj)} could not be pickled: {error}"
    return pickle.dumps((PICKLED, kind, blob, text, type_name, message))


def decode_outcome(data: bytes, loads: Any = pickle.loads) -> tuple[Any, ...]:
    """A result file's outcome: ("ok", value) or ("error", exception or None, traceback,
    type name, message). An exception that cannot be rebuilt here comes back as None with
    its text (the message says why); a value that cannot raises ``UnloadableResultError``.
    Files of older runners (one pickle of the whole outcome) are read as they are.
    """
    outer = tuple(pickle.loads(data))
    if not outer or outer[0] != PICKLED:
        return outer
    _, kind, blob, text, type_name, message = outer
    try:
        obj = None if blob is None else loads(blob)
    except Exception as error:
        if kind == "ok":
            raise UnloadableResultError(type_name, error) from error
        why = f"{type(error).__name__}: {error}"
        return ("error", None, text, type_name, f"{message} [not rebuilt here: {why}]")
    return ("ok", obj) if kind == "ok" else ("error", obj, text, type_name, message)


def load_result(run_dir: str, item: int) -> tuple[Any, ...]:
    """Read a result file: ("ok", value) or ("error", exception, traceback, type, message)."""
    with open(os.path.join(run_dir, "results", f"{item}.pkl"), "rb") as stream:
        return decode_outcome(stream.read())


def _value_of(run_dir: str, item: int) -> Any:
    try:
        outcome = load_result(run_dir, item)
    except FileNotFoundError:
        raise DependencyFailedError(f"no result for item {item} of {run_dir}") from None
    except UnloadableResultError as error:
        raise DependencyFailedError(f"item {item} of {run_dir}: {error}") from None
    if outcome[0] != "ok":
        raise DependencyFailedError(f"item {item} of {run_dir} failed: {outcome[3]}: {outcome[4]}")
    return outcome[1]


class _ArgumentUnpickler(pickle.Unpickler):
    def persistent_load(self, pid: Any) -> Any:
        kind, run_dir, number = pid
        if kind == RESULT_REF:
            return _value_of(run_dir, number)
        if kind == RESULTS_REF:  # ("results", [(run_dir, count), ...], total)
            return [_value_of(folder, i) for folder, count in run_dir for i in range(count)]
        if kind == FILE_REF:  # ("file", path, layout): a FileValue or a whole FileArray
            return load_file(run_dir, number)
        if kind == FILE_ITEM_REF:  # ("file-item", (folder, layout), index): one element
            return load_file_item(run_dir[0], run_dir[1], number)
        raise pickle.UnpicklingError(f"unknown reference {pid!r}")


_FILE_CACHE: dict[tuple[str, str], Any] = {}


def load_file(path: str, layout: str) -> Any:
    """Load data written once (cached: the tasks of a chunk share it).

    Layouts: "pickle" (one object), "npy" (a numpy array, memory-mapped, read on demand),
    "table" (a list stored as one pickle per element; loaded whole here).
    """
    key = (path, layout)
    if key not in _FILE_CACHE:
        if layout == "npy":
            import numpy  # noqa: PLC0415  (only tasks given arrays need numpy)

            _FILE_CACHE[key] = numpy.load(os.path.join(path, "data.npy"), mmap_mode="r")
        elif layout == "table":
            count = os.path.getsize(os.path.join(path, "items.idx")) // OFFSET.size - 1
            _FILE_CACHE[key] = [load_file_item(path, layout, i) for i in range(count)]
        else:
            with open(path, "rb") as stream:
                _FILE_CACHE[key] = pickle.load(stream)
    return _FILE_CACHE[key]


def forget_loaded() -> None:
    """Drop loaded FileValue / FileArray data, except memory-mapped (read-only) arrays: a
    pool worker runs unrelated tasks one after another, which must not see each other's
    changes to it, nor keep all of it in memory."""
    for key in [key for key in _FILE_CACHE if key[1] != "npy"]:
        del _FILE_CACHE[key]


def load_file_item(folder: str, layout: str, index: int) -> Any:
    """Load one element of a FileArray: a memory-mapped row, or one pickled element."""
    if layout == "npy":
        return load_file(folder, layout)[index]
    with open(os.path.join(folder, "items.idx"), "rb") as stream:
        stream.seek(index * OFFSET.size)
        start, end = (OFFSET.unpack(stream.read(OFFSET.size))[0] for _ in range(2))
    with open(os.path.join(folder, "items.bin"), "rb") as stream:
        stream.seek(start)
        return pickle.loads(stream.read(end - start))


def read_item(run_dir: str, item: int) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Read one item's (args, kwargs) from the argument table."""
    with open(os.path.join(run_dir, "args.idx"), "rb") as index:
        index.seek(item * OFFSET.size)
        start, end = (OFFSET.unpack(index.read(OFFSET.size))[0] for _ in range(2))
    with open(os.path.join(run_dir, "args.bin"), "rb") as table:
        table.seek(start)
        data = table.read(end - start)
    return load_call(data)


def load_call(data: bytes) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """One call's (args, kwargs) from its pickle, its references (results of other jobs,
    FileValue / FileArray data on the cluster's file system) loaded."""
    args, kwargs = _ArgumentUnpickler(io.BytesIO(data)).load()
    return tuple(args), dict(kwargs)


def write_result(run_dir: str, item: int, outcome: tuple[Any, ...], dumps: Any) -> None:
    """Write a result file atomically (temporary file, then rename)."""
    final = os.path.join(run_dir, "results", f"{item}.pkl")
    temporary = f"{final}.tmp-{os.getpid()}"
    data = encode_outcome(outcome, dumps)
    with open(temporary, "wb") as stream:
        stream.write(data)
    os.replace(temporary, final)


def error_outcome(error: BaseException) -> tuple[Any, ...]:
    """("error", exception, traceback text, type name, message) of a raised exception."""
    text = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    try:
        message = str(error)
    except Exception as broken:  # a user __str__ that raises must not lose the rest
        message = f"<str() failed: {broken!r}>"
    return ("error", error, text, type(error).__name__, message)


def _touch(path: str) -> None:
    with open(path, "wb"):
        pass


def check_versions(meta: dict[str, Any]) -> str | None:
    """Why this Python cannot read the client's pickles (None when it can): ``meta`` holds
    the client's "python" (major, minor) and "cloudpickle" version."""
    wanted = tuple(meta["python"])
    if tuple(sys.version_info[:2]) != wanted:
        return (
            f"the client pickled with Python {wanted[0]}.{wanted[1]} but this runs on Python "
            f"{sys.version_info[0]}.{sys.version_info[1]} ({sys.executable}): use the same "
            "Python minor version on both sides (connect(..., python=...) chooses it)."
        )
    try:
        import cloudpickle  # noqa: PLC0415  (imported late to report its absence clearly)
    except ImportError:
        return (
            f"cloudpickle is not installed for {sys.executable} on {os.uname().nodename}: "
            f"run `{sys.executable} -m pip install cloudpickle=={meta['cloudpickle']}` there."
        )
    if cloudpickle.__version__.split(".")[0] != str(meta["cloudpickle"]).split(".")[0]:
        return (
            f"cloudpickle {cloudpickle.__version__} on the cluster cannot read payloads of "
            f"cloudpickle {meta['cloudpickle']}: install cloudpickle=={meta['cloudpickle']} for "
            f"{sys.executable}."
        )
    return None


def run_element(run_dir: str, element: int) -> int:
    """Run every item of one array element; return the process exit code."""
    with open(os.path.join(run_dir, "meta.json"), encoding="utf-8") as stream:
        meta = json.load(stream)
    first = element * meta["chunk_size"]
    items = range(first, min(first + meta["chunk_size"], meta["n_items"]))
    problem = check_versions(meta)
    if problem is not None:
        sys.stderr.write(f"slurm_magics: {problem}\n")
        for item in items:
            refusal = ("error", None, problem, "EnvironmentError", problem)
            write_result(run_dir, item, refusal, pickle.dumps)
            _touch(os.path.join(meta["sentinel_dir"], f"{meta['run_id']}.{item}"))
        return 2

    import cloudpickle  # noqa: PLC0415

    with open(os.path.join(run_dir, "function.pkl"), "rb") as stream:
        function = cloudpickle.load(stream)
    resources = meta.get("resources_variable")
    failed = False
    for item in items:
        started = time.time()
        try:
            args, kwargs = read_item(run_dir, item)
            if resources:
                kwargs[resources] = types.SimpleNamespace(**meta["resources"])
            outcome: tuple[Any, ...] = ("ok", function(*args, **kwargs))
        except BaseException as error:  # report everything, even SystemExit, as the result
            traceback.print_exc()
            outcome = error_outcome(error)
            failed = True
        sys.stdout.flush()
        sys.stderr.flush()
        write_result(run_dir, item, outcome, cloudpickle.dumps)
        # The sentinel's name carries the item's run time (ms), so the poller learns it
        # from the listing it makes anyway: "RUN_ID.ITEM@START-END".
        timing = f"@{int(started * 1000)}-{int(time.time() * 1000)}"
        _touch(os.path.join(meta["sentinel_dir"], f"{meta['run_id']}.{item}{timing}"))
    return 1 if failed else 0


def main(argv: list[str]) -> int:
    """Entry point: ``runner.py RUN_DIR ELEMENT``."""
    if len(argv) != 3:
        sys.stderr.write("usage: runner.py RUN_DIR ELEMENT\n")
        return 2
    # Line by line into the log files, so a notebook following a task sees each print
    # within a second instead of when a block buffer fills.
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(line_buffering=True)
    return run_element(argv[1], int(argv[2]))


if __name__ == "__main__":
    sys.exit(main(sys.argv))
