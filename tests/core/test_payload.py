"""The argument table and the result files: real pickles read back by the runner's code."""

from __future__ import annotations

import os
import pickle
import threading
from pathlib import Path
from typing import Any

import pytest

from slurm_magics.core import runner as _runner
from slurm_magics.core.errors import DependencyError
from slurm_magics.core.payload import ArgumentTable, Reference, load_outcome


class Upstream:
    """Stands for a job whose result another job reads (what the reference callback sees)."""

    def __init__(self, run_dir: Path, item: int, *, done: bool = False, value: Any = None) -> None:
        self.run_dir, self.item, self.done, self.value = run_dir, item, done, value


class Point:
    def __init__(self, x: Any) -> None:
        self.x = x


def reference(obj: Any) -> Reference:
    if not isinstance(obj, Upstream):
        return None
    if obj.done:
        return ("value", obj.value)
    return ("ref", (_runner.RESULT_REF, str(obj.run_dir), obj.item))


def write_table(run_dir: Path, table: ArgumentTable) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    blob, index = table.files()
    (run_dir / "args.bin").write_bytes(blob)
    (run_dir / "args.idx").write_bytes(index)


def make_result_dir(run_dir: Path) -> Path:
    (run_dir / "results").mkdir(parents=True, exist_ok=True)
    return run_dir


ITEMS: list[tuple[tuple[Any, ...], dict[str, Any]]] = [
    ((1,), {}),
    (((1, 2), [3, {"a": 4}]), {"k": "v"}),
    ((), {"lr": 0.1, "name": "é"}),
    ((b"x" * 100_000, None), {}),
]


def test_round_trip_through_the_runner(tmp_path: Path) -> None:
    table = ArgumentTable(reference)
    table.extend(ITEMS)
    assert len(table) == len(ITEMS)
    write_table(tmp_path, table)
    for item, expected in enumerate(ITEMS):
        assert _runner.read_item(str(tmp_path), item) == expected


def test_offsets_index_each_item_on_its_own(tmp_path: Path) -> None:
    table = ArgumentTable(reference)
    table.extend(ITEMS)
    blob, index = table.files()
    offsets = [_runner.OFFSET.unpack_from(index, i * 8)[0] for i in range(len(ITEMS) + 1)]
    assert len(index) == 8 * (len(ITEMS) + 1)
    assert offsets[0] == 0
    assert offsets[-1] == len(blob)
    assert offsets == sorted(set(offsets))
    # Each item loads from its own bytes: garbling the others does not matter.
    garbled = bytearray(b"\xff" * len(blob))
    garbled[offsets[2] : offsets[3]] = blob[offsets[2] : offsets[3]]
    write_table(tmp_path, table)
    (tmp_path / "args.bin").write_bytes(bytes(garbled))
    assert _runner.read_item(str(tmp_path), 2) == ITEMS[2]
    with pytest.raises(pickle.UnpicklingError):
        _runner.read_item(str(tmp_path), 1)


def test_unpicklable_argument_names_the_item_and_leaves_the_table_usable(tmp_path: Path) -> None:
    table = ArgumentTable(reference)
    table.add(("first",), {})
    with pytest.raises(TypeError, match=r"arguments of item 1 cannot be pickled") as raised:
        # Big enough that the pickler flushes a frame before it meets the lock.
        table.add(([b"y" * 300_000], threading.Lock()), {})
    assert "lock" in str(raised.value)
    assert len(table) == 1
    table.add(("third",), {"n": 3})
    clean = ArgumentTable(reference)
    clean.extend([(("first",), {}), (("third",), {"n": 3})])
    assert table.files() == clean.files()  # nothing of the failed item is left
    write_table(tmp_path, table)
    assert _runner.read_item(str(tmp_path), 0) == (("first",), {})
    assert _runner.read_item(str(tmp_path), 1) == (("third",), {"n": 3})


def test_error_from_the_reference_callback_leaves_the_table_usable(tmp_path: Path) -> None:
    def refuse(obj: Any) -> Reference:
        if isinstance(obj, Upstream):
            raise DependencyError("upstream failed", job_id=None, dependency="1")
        return None

    table = ArgumentTable(refuse)
    with pytest.raises(DependencyError, match="upstream failed"):
        table.add(([b"z" * 300_000], Upstream(tmp_path, 0)), {})
    table.add((5,), {})
    clean = ArgumentTable(refuse)
    clean.add((5,), {})
    assert table.files() == clean.files()  # nothing of the failed item is left
    write_table(tmp_path, table)
    assert _runner.read_item(str(tmp_path), 0) == ((5,), {})


def test_references_resolve_from_result_files(tmp_path: Path) -> None:
    upstream = make_result_dir(tmp_path / "up")
    _runner.write_result(str(upstream), 0, ("ok", 42), pickle.dumps)
    _runner.write_result(str(upstream), 1, ("ok", {"loss": 0.5}), pickle.dumps)
    a, b = Upstream(upstream, 0), Upstream(upstream, 1)
    done = Upstream(upstream, 9, done=True, value="by value")
    table = ArgumentTable(reference)
    table.add((a, [a, (b,)], {"k": b}, Point(b), done), {"kw": a})
    write_table(tmp_path / "down", table)
    args, kwargs = _runner.read_item(str(tmp_path / "down"), 0)
    assert args[:3] == (42, [42, ({"loss": 0.5},)], {"k": {"loss": 0.5}})
    assert isinstance(args[3], Point)
    assert args[3].x == {"loss": 0.5}
    assert args[4] == "by value"
    assert kwargs == {"kw": 42}


def test_array_reference_reads_every_part_in_order(tmp_path: Path) -> None:
    first, second = make_result_dir(tmp_path / "p1"), make_result_dir(tmp_path / "p2")
    for item in range(3):
        _runner.write_result(str(first), item, ("ok", item), pickle.dumps)
    _runner.write_result(str(second), 0, ("ok", "last"), pickle.dumps)

    def array_reference(obj: Any) -> Reference:
        if obj == "ARRAY":
            return ("ref", (_runner.RESULTS_REF, [(str(first), 3), (str(second), 1)], 4))
        return None

    table = ArgumentTable(array_reference)
    table.add(("ARRAY",), {})
    write_table(tmp_path / "down", table)
    assert _runner.read_item(str(tmp_path / "down"), 0) == (([0, 1, 2, "last"],), {})


def test_missing_or_failed_upstream_result_is_a_dependency_failure(tmp_path: Path) -> None:
    upstream = make_result_dir(tmp_path / "up")
    error = ValueError("boom")
    _runner.write_result(
        str(upstream), 1, ("error", error, "tb", "ValueError", "boom"), pickle.dumps
    )
    for item, message in [
        (0, "no result for item 0"),
        (1, "item 1 of .* failed: ValueError: boom"),
    ]:
        table = ArgumentTable(reference)
        table.add((Upstream(upstream, item),), {})
        write_table(tmp_path / "down", table)
        with pytest.raises(_runner.DependencyFailedError, match=message):
            _runner.read_item(str(tmp_path / "down"), 0)


def test_write_result_replaces_the_file_instead_of_writing_into_it(tmp_path: Path) -> None:
    make_result_dir(tmp_path)
    final = tmp_path / "results" / "0.pkl"
    _runner.write_result(str(tmp_path), 0, ("ok", "old"), pickle.dumps)
    os.link(final, tmp_path / "old-link")  # a reader holding the old file
    _runner.write_result(str(tmp_path), 0, ("ok", "new"), pickle.dumps)
    assert load_outcome(final.read_bytes()) == ("ok", "new")
    assert load_outcome((tmp_path / "old-link").read_bytes()) == ("ok", "old")
    assert sorted(p.name for p in (tmp_path / "results").iterdir()) == ["0.pkl"]


def test_unpicklable_result_becomes_an_error_outcome(tmp_path: Path) -> None:
    make_result_dir(tmp_path)
    _runner.write_result(str(tmp_path), 0, ("ok", threading.Lock()), pickle.dumps)
    outcome = _runner.load_result(str(tmp_path), 0)
    assert outcome[0] == "error"
    assert outcome[3] == "PicklingError"
    assert "lock" in outcome[4]


def test_unpicklable_exception_keeps_its_traceback(tmp_path: Path) -> None:
    make_result_dir(tmp_path)
    error = RuntimeError("disk full")
    error.lock = threading.Lock()  # type: ignore[attr-defined]
    outcome = (
        "error",
        error,
        "Traceback: ... RuntimeError: disk full",
        "RuntimeError",
        "disk full",
    )
    _runner.write_result(str(tmp_path), 0, outcome, pickle.dumps)
    assert _runner.load_result(str(tmp_path), 0) == ("error", None, *outcome[2:])


class TwoArguments(Exception):
    def __init__(self, user: str, used_gb: int) -> None:
        super().__init__(f"{user} used {used_gb} GB")


def test_exception_that_cannot_be_rebuilt_keeps_its_text(tmp_path: Path) -> None:
    make_result_dir(tmp_path)
    error = TwoArguments("ana", 12)
    outcome = (
        "error",
        error,
        "Traceback: ... TwoArguments: ana used 12 GB",
        "TwoArguments",
        str(error),
    )
    _runner.write_result(str(tmp_path), 0, outcome, pickle.dumps)
    loaded = load_outcome((tmp_path / "results" / "0.pkl").read_bytes())
    assert loaded[:4] == ("error", None, outcome[2], "TwoArguments")
    assert loaded[4].startswith("ana used 12 GB [not rebuilt here: TypeError")


def _missing_here() -> None:
    raise ModuleNotFoundError("No module named 'cluster_only'")


class Fragile:
    """Pickles fine; loading it needs a module this side lacks."""

    def __reduce__(self) -> tuple[Any, ...]:
        return (_missing_here, ())


def test_value_that_cannot_be_rebuilt_names_its_type(tmp_path: Path) -> None:
    make_result_dir(tmp_path)
    _runner.write_result(str(tmp_path), 0, ("ok", Fragile()), pickle.dumps)
    data = (tmp_path / "results" / "0.pkl").read_bytes()
    with pytest.raises(
        _runner.UnloadableResultError, match=r"type tests\.core\.test_payload\.Fragile"
    ):
        load_outcome(data)
    # A job that reads it as an argument fails as a dependency, with the same words.
    with pytest.raises(_runner.DependencyFailedError, match="No module named 'cluster_only'"):
        _runner._value_of(str(tmp_path), 0)


def test_result_files_of_older_runners_still_load(tmp_path: Path) -> None:
    assert load_outcome(pickle.dumps(("ok", 42))) == ("ok", 42)
    old = ("error", ValueError("x"), "Traceback", "ValueError", "x")
    assert load_outcome(pickle.dumps(old))[2:] == old[2:]
