"""``%squeue --start`` and ``%%slurm --cache`` in an IPython shell, with real jobs."""

from __future__ import annotations

import datetime
import time

import pytest
from IPython.core.interactiveshell import InteractiveShell

import slurm_magics as sm
from slurm_magics.api.connect import default_cluster
from tests.helpers import wait_for

pytestmark = pytest.mark.cluster


def nap(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


@pytest.fixture
def shell(cluster: sm.Cluster) -> InteractiveShell:
    assert default_cluster() is cluster  # the magics use the default cluster
    ipython = InteractiveShell.instance()
    ipython.run_line_magic("load_ext", "slurm_magics")
    return ipython


@pytest.mark.slurm_only
def test_squeue_start_says_why_and_until_when(shell: InteractiveShell, cluster: sm.Cluster) -> None:
    begin = datetime.datetime.now() + datetime.timedelta(minutes=10)
    job = sm.task(nap, memory="50M", extra={"begin": "now+600"}).on(cluster)(1)
    try:
        wait_for(lambda: job.reason == "BeginTime", timeout=60, what="the BeginTime reason")
        plain = shell.run_line_magic("squeue", "")
        table = shell.run_line_magic("squeue", "--start")
        line = next(line for line in table.lines if line.job_id == job.job_id)
        before = next(line for line in plain.lines if line.job_id == job.job_id)
        assert before.where == "BeginTime"  # without --start: SLURM's code, no estimate
        why, _, when = line.where.partition("; expected start ")
        assert why == "BeginTime: asked to start later (--begin)"
        start = datetime.datetime.strptime(when, "%Y-%m-%d %H:%M:%S")
        assert abs((start - begin).total_seconds()) < 60
        assert "expected start" in repr(table) and "expected start" in table._repr_html_()
    finally:
        job.cancel()


def test_cached_cell_reruns_without_sbatch(
    shell: InteractiveShell, cluster: sm.Cluster, capsys: pytest.CaptureFixture[str]
) -> None:
    sm.cache_clear(cluster=cluster)
    cell = f"x = 6\nx * 7 + {time.time_ns()} * 0"  # a cell of its own for this test run
    assert shell.run_cell_magic("slurm", "-o first --cache --wait", cell) == 42
    said = capsys.readouterr().out
    assert "a new run" in said
    key = said.split("cache key ", 1)[1].split(":", 1)[0]
    before = cluster.counters.get("sbatch", 0)
    started = time.perf_counter()
    assert shell.run_cell_magic("slurm", "-o second --cache --wait", cell) == 42
    took = time.perf_counter() - started
    assert cluster.counters.get("sbatch", 0) == before  # nothing submitted
    said = capsys.readouterr().out
    first, second = shell.user_ns["first"], shell.user_ns["second"]
    assert f"cached (key {key}): the run of job {first.job_id}, nothing submitted" in said
    assert second.job_id == first.job_id and second.cache.key == key
    print(f"cached re-run of a %%slurm cell: {took * 1000:.0f} ms")  # shown with -s
