"""The example scripts (the README's main command) as a user runs them, on the dev cluster."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.cluster

PATTERNS = "slurm_magics.examples.parallelization_patterns"


def run_module(module: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=cwd,
        env={**os.environ, "HOME": str(cwd)},  # run folders of its own
    )


def summary(stdout: str) -> dict[str, tuple[int, int]]:
    """pattern -> (jobs, array tasks) from the summary table."""
    rows = re.findall(r"^(fanout|pipeline|sweep|dynamic-deps)\s+(\d+)\s+(\d+)\s", stdout, re.M)
    return {name: (int(jobs), int(tasks)) for name, jobs, tasks in rows}


@pytest.mark.parametrize("where", [["--partition", "debug"], ["--backend", "local"]])
def test_the_four_patterns_run_and_summarise(where: list[str], tmp_path: Path) -> None:
    done = run_module(PATTERNS, "--size", "12", *where, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    table = summary(done.stdout)
    assert set(table) == {"fanout", "pipeline", "sweep", "dynamic-deps"}, done.stdout
    assert table["fanout"] == (2, 12)  # one array of 12 tasks + one aggregating job
    assert table["pipeline"] == (4, 0)  # preprocess -> transform -> validate -> export
    assert table["sweep"][0] == 1 and table["sweep"][1] > 1  # ONE array job
    assert table["dynamic-deps"][0] >= 2
    assert "[sweep] done" in done.stdout and "best lr=" in done.stdout


def test_one_pattern_and_bad_values(tmp_path: Path) -> None:
    done = run_module(PATTERNS, "--pattern", "pipeline", "--partition", "debug", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert set(summary(done.stdout)) == {"pipeline"}
    small = run_module(PATTERNS, "--size", "0", cwd=tmp_path)
    assert small.returncode == 2
    assert "argument --size: 0 is too small: give 1 or more" in small.stderr
    nowhere = run_module(PATTERNS, "--pattern", "fanout", "--partition", "nosuch", cwd=tmp_path)
    assert nowhere.returncode == 1
    assert nowhere.stderr.startswith("error: SubmissionError: sbatch refused the job")
    assert "invalid partition" in nowhere.stderr and "Traceback" not in nowhere.stderr


def test_quickstart(tmp_path: Path) -> None:
    done = run_module(
        "slurm_magics.examples.quickstart", "--partition", "debug", "--tasks", "10", cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "submitted array" in done.stdout and "of 10 tasks (one sbatch call)" in done.stdout
    assert "sum 285" in done.stdout  # 0² + ... + 9²
