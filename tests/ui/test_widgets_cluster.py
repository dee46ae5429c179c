"""Widgets and text fallbacks with real jobs on the dev cluster."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import slurm_magics as sm
from slurm_magics.core.states import JobState
from slurm_magics.ui.widgets import SweepProgress, refresher
from tests.helpers import connect_source, count_messages, queued_ids, wait_until

pytestmark = pytest.mark.cluster


def noop(x: int) -> int:
    return x


def test_sweep_of_10000_held_tasks_stays_responsive(cluster: sm.Cluster) -> None:
    before = cluster.counters.get("sbatch", 0)
    array = sm.task(noop, memory="10M", extra={"hold": True}).map(range(10_000))
    try:
        assert cluster.counters["sbatch"] - before == 1  # ONE sbatch for 10,000 tasks
        sweep = SweepProgress(array)
        sent = count_messages(sweep.widget)
        started = time.perf_counter()
        sweep.refresh()
        one_refresh = time.perf_counter() - started
        assert one_refresh < refresher.interval, one_refresh  # a pass over 10,000 tasks
        stop = threading.Event()

        def storm() -> None:  # tasks flipping state as fast as Python can
            index = 0
            while not stop.is_set():
                job = array.jobs[index % len(array)]
                job.state = JobState.RUNNING if job.state is JobState.PENDING else JobState.PENDING
                index += 1

        thread = threading.Thread(target=storm)
        window = time.monotonic()
        thread.start()
        time.sleep(2.0)
        stop.set()
        thread.join()
        window = time.monotonic() - window
        assert 5 <= sent[0] <= window / refresher.interval + 2, sent[0]
    finally:
        array.cancel()
    assert array.cancelled() or array.done()
    wait_until(lambda: sweep not in refresher)
    assert "cancelled <b>10000</b>" in sweep.html.value
    assert sweep.cancel_button.disabled
    wait_until(lambda: array.job_id not in {i.split("_")[0] for i in queued_ids(cluster)}, 30)


# A .ipy script as a terminal user would type it (a cell magic in a script takes the rest of
# the file as its cell, so cells are run with run_cell_magic).
SCRIPT = """\
%load_ext slurm_magics
import slurm_magics as sm
{connect}
base = 5
get_ipython().run_cell_magic("slurm", "-o job --wait", "print('printed there')\\nbase * 2")
print(repr(get_ipython().display_formatter.format(job)[0]))
print(get_ipython().run_cell_magic("slurm", "--map x=range(3) --wait", "x + base"))
%slurm_jobs
"""


def test_terminal_ipython_shows_text_never_widget_reprs(
    cluster: sm.Cluster, cluster_root: Path, tmp_path: Path
) -> None:
    script = tmp_path / "session.ipy"
    script.write_text(SCRIPT.format(connect=connect_source(cluster, cluster_root)))
    result = subprocess.run(
        [sys.executable, "-m", "IPython", "--no-banner", "--colors=nocolor", str(script)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    out = result.stdout
    assert result.returncode == 0, result.stderr
    assert "printed there" in out
    assert re.search(r"\{'text/plain': 'job \d+ \(job\): COMPLETED finished, \d+:\d\d'\}", out)
    assert "[5, 6, 7]" in out
    assert re.search(r"array \d+ \(cell\): 3 tasks, done 0", out)  # the status when submitted
    assert re.search(r"^job\s+\d+\s+job\s", out, re.MULTILINE)  # the jobs panel, as a table
    assert "100%" in result.stderr  # tqdm while waiting for the array
    for widget_repr in ("VBox(", "HTML(value", "Button(", "model_id"):
        assert widget_repr not in out + result.stderr


def fit(lr: float, depth: int = 2, **options: object) -> float:
    if lr > 1:
        raise ValueError(f"lr {lr} is too large")
    return lr * depth


def test_a_sweep_as_a_table_with_its_arguments(cluster: sm.Cluster, tmp_path: Path) -> None:
    import pandas  # a test extra; the package itself imports it only on demand

    configs = [{"lr": 0.1, "depth": 3}, {"lr": 0.5, "seed": 7}, {"lr": 2.0}]
    sweep = sm.task(fit, memory="100M", time=5).map(configs)
    assert sweep.wait(timeout=180)
    frame = sweep.to_dataframe()
    assert list(frame.index) == [0, 1, 2]
    assert {"job_id", "lr", "depth", "seed", "state", "elapsed", "result", "error"} <= set(
        frame.columns
    )
    assert frame.loc[0, "result"] == pytest.approx(0.3)
    assert frame.loc[1, "seed"] == 7 and frame.loc[1, "result"] == pytest.approx(1.0)
    assert list(frame["state"]) == ["COMPLETED", "COMPLETED", "FAILED"]
    assert frame.loc[2, "error"] == "ValueError: lr 2.0 is too large"
    assert frame.loc[2, "job_id"] == sweep[2].job_id
    best = frame.loc[frame["result"].idxmax()]
    assert best["lr"] == 0.5
    path = tmp_path / "sweep.parquet"
    sweep.to_parquet(str(path))
    again = pandas.read_parquet(path)
    assert list(again["lr"]) == [0.1, 0.5, 2.0]
    assert list(again["state"]) == list(frame["state"])
