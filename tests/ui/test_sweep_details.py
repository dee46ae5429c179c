"""The sweep display's details with real jobs on the dev cluster: live output of a chosen
task, the last line of each running task, why tasks wait and until when, and the
used-vs-asked bars when the array ends."""

from __future__ import annotations

import time

import pytest

import slurm_magics as sm
from slurm_magics.ui.widgets import SweepProgress, refresher
from slurm_magics.ui.widgets.sweep_details import follower_of
from tests.helpers import wait_until

pytestmark = pytest.mark.cluster


@sm.task(memory="200M", time=5)
def talker(task: int) -> int:
    """Prints a numbered line every 0.3 s, keeps ~60 MB and one CPU busy meanwhile."""
    block = bytearray(60 * 2**20)
    for index in range(0, len(block), 4096):
        block[index] = 1
    for line in range(10):
        print(f"task {task} line {line}")
        end = time.process_time() + 0.3
        while time.process_time() < end:
            pass
    return len(block) // 2**20 + task


def test_sweep_follows_output_and_shows_usage_at_the_end(cluster: sm.Cluster) -> None:
    arr = talker.on(cluster).map(range(2))  # both run at once, also on a 2-core backend
    sweep = SweepProgress(arr)
    details = sweep.details
    details.task.value = 1
    details.stream.value = "stdout"  # follow task 1's stdout
    details.last_lines.value = True
    wait_until(lambda: "task 1 line 3" in details.output.value, timeout=180)
    assert "task 1 line 3" in details.state()["output"]
    assert not arr.done()  # seen while it runs
    wait_until(lambda: "task 0: task 0 line" in details.lines.value, timeout=60)
    assert arr.result(timeout=180) == [60, 61]
    wait_until(lambda: "task 1 line 9" in details.output.value, timeout=10)
    # once ended: used vs asked, as bars, with a suggestion (one sacct per try)
    wait_until(lambda: "next time:" in details.usage.value, timeout=30)
    usage = details.usage.value
    assert 'data-figure="CPU"' in usage and 'data-figure="memory"' in usage
    assert "memory=" in usage and "time=" in usage
    wait_until(lambda: sweep not in refresher, timeout=10)
    follower = follower_of(arr[0])
    assert follower is not None
    paths = {path for job in arr for path in job.log_paths()}
    assert not paths & set(follower.followed)  # nothing followed any more


def test_sweep_says_why_tasks_wait_and_asks_until_when_on_a_click(cluster: sm.Cluster) -> None:
    arr = talker.on(cluster).with_options(extra={"hold": True}).map(range(2))
    try:
        sweep = SweepProgress(arr)
        wait_until(lambda: "JobHeldUser" in sweep.details.waiting.value, timeout=60)
        assert "held by you" in sweep.details.waiting.value
        assert sweep.details.start_button.layout.display != "none"
        squeues = cluster.counters.get("squeue", 0)
        sweep.details.start_button.click()
        assert sweep.details.start_text.value == "SLURM has no start estimate yet"
        assert cluster.counters.get("squeue", 0) >= squeues + (
            0 if cluster.usage_source != "sacct" else 1
        )
    finally:
        arr.cancel()
    wait_until(lambda: sweep not in refresher, timeout=10)
    assert sweep.details.waiting.value == ""
