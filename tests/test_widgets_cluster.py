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
from slurm_magics.states import JobState
from slurm_magics.widgets import SweepProgress, refresher

from .conftest import squeue_ids
from .test_magics_kernel import connect_source
from .test_widgets import count_messages, wait_until

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
    wait_until(lambda: array.job_id not in {i.split("_")[0] for i in squeue_ids()}, 30)


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
