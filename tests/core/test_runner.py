"""The runner as a program: run in a subprocess over a real run folder, as SLURM starts it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from slurm_magics.core import runner as _runner
from slurm_magics.core.payload import ArgumentTable, dump_function, dump_meta, load_outcome


def make_run(tmp_path: Path, items: list[Any], *, chunk_size: int = 1, **meta: Any) -> Path:
    """A run folder as the client writes it, with the runner copied beside it."""

    def work(x: Any, scale: int = 1, res: Any = None) -> Any:
        if x == "raise":
            raise ValueError(f"bad item {x!r}")
        if x == "exit":
            raise SystemExit(3)
        if x == "res":
            return (res.cpus, res.memory)
        print(f"working on {x}")
        return x * scale

    run_dir = tmp_path / "run"
    (run_dir / "results").mkdir(parents=True)
    (tmp_path / "sentinels").mkdir()
    table = ArgumentTable(lambda _obj: None)
    table.extend(((x,), {}) for x in items)
    blob, index = table.files()
    (run_dir / "args.bin").write_bytes(blob)
    (run_dir / "args.idx").write_bytes(index)
    (run_dir / "function.pkl").write_bytes(dump_function(work))
    data = json.loads(
        dump_meta(
            run_id="s1-abcd",
            n_items=len(items),
            chunk_size=chunk_size,
            sentinel_dir=str(tmp_path / "sentinels"),
            resources={"cpus": 2, "memory": 1024},
            resources_variable=meta.pop("resources_variable", None),
        )
    )
    data.update(meta)
    (run_dir / "meta.json").write_text(json.dumps(data))
    shutil.copy(_runner.__file__, tmp_path / "runner.py")
    return run_dir


def run_runner(run_dir: Path, element: int) -> subprocess.CompletedProcess[str]:
    runner = run_dir.parent / "runner.py"
    command = [sys.executable, str(runner), str(run_dir), str(element)]
    env = {**os.environ, "PYTHONPATH": ""}  # the runner needs no slurm_magics install
    return subprocess.run(command, capture_output=True, text=True, timeout=60, env=env, check=False)


def outcomes(run_dir: Path) -> dict[int, tuple[Any, ...]]:
    return {
        int(path.stem): load_outcome(path.read_bytes()) for path in (run_dir / "results").iterdir()
    }


def sentinels(run_dir: Path) -> list[str]:
    """Sentinel names without their "@START-END" run time (when a task ran: ms, in order)."""
    names = sorted(path.name for path in (run_dir.parent / "sentinels").iterdir())
    bare = []
    for name in names:
        base, at, timing = name.partition("@")
        start, _, end = timing.partition("-")
        if at:
            assert start.isdigit() and end.isdigit() and int(start) <= int(end), name
        bare.append(base)
    return bare


def test_runner_runs_one_chunk_and_drops_sentinels(tmp_path: Path) -> None:
    run_dir = make_run(tmp_path, [1, 2, 3, 4, 5], chunk_size=2)
    done = run_runner(run_dir, 1)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "working on 3\nworking on 4\n"
    assert outcomes(run_dir) == {2: ("ok", 3), 3: ("ok", 4)}
    assert sentinels(run_dir) == ["s1-abcd.2", "s1-abcd.3"]
    last = run_runner(run_dir, 2)  # the last chunk holds one item
    assert last.returncode == 0, last.stderr
    assert outcomes(run_dir)[4] == ("ok", 5)
    assert not [p for p in (run_dir / "results").iterdir() if ".tmp" in p.name]


def test_runner_reports_exceptions_as_results(tmp_path: Path) -> None:
    run_dir = make_run(tmp_path, [10, "raise", "exit"], chunk_size=3)
    done = run_runner(run_dir, 0)
    assert done.returncode == 1
    results = outcomes(run_dir)
    assert results[0] == ("ok", 10)
    kind, error, text, type_name, message = results[1]
    assert (kind, type_name, message) == ("error", "ValueError", "bad item 'raise'")
    assert isinstance(error, ValueError)
    assert "Traceback" in text
    assert "in work" in text
    assert "ValueError: bad item 'raise'" in done.stderr
    assert results[2][0] == "error"
    assert results[2][3] == "SystemExit"
    assert sentinels(run_dir) == ["s1-abcd.0", "s1-abcd.1", "s1-abcd.2"]


def test_runner_passes_resources_when_asked(tmp_path: Path) -> None:
    run_dir = make_run(tmp_path, ["res"], resources_variable="res")
    done = run_runner(run_dir, 0)
    assert done.returncode == 0, done.stderr
    assert outcomes(run_dir) == {0: ("ok", (2, 1024))}


@pytest.mark.parametrize(
    ("meta", "says"),
    [
        ({"python": [2, 7]}, "pickled with Python 2.7 but this runs on Python"),
        ({"cloudpickle": "0.8.1"}, "cannot read payloads of cloudpickle 0.8.1"),
    ],
)
def test_runner_reports_a_version_mismatch(tmp_path: Path, meta: dict[str, Any], says: str) -> None:
    run_dir = make_run(tmp_path, [1, 2, 3], chunk_size=2, **meta)
    done = run_runner(run_dir, 0)
    assert done.returncode == 2
    assert says in done.stderr
    results = outcomes(run_dir)
    assert sorted(results) == [0, 1]
    for kind, error, text, type_name, message in results.values():
        assert (kind, error, type_name) == ("error", None, "EnvironmentError")
        assert says in message
        assert text == message
    assert sentinels(run_dir) == ["s1-abcd.0", "s1-abcd.1"]
    assert "working on" not in done.stdout


def test_runner_usage(tmp_path: Path) -> None:
    runner = shutil.copy(_runner.__file__, tmp_path / "runner.py")
    done = subprocess.run(
        [sys.executable, str(runner)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 2
    assert "usage: runner.py RUN_DIR ELEMENT" in done.stderr
