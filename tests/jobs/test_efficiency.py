"""Right-sizing reports and why jobs wait, on the real dev cluster (and the local backend)."""

from __future__ import annotations

import dataclasses
import datetime
import time

import pytest

import slurm_magics as sm
from slurm_magics.core.efficiency import AccountingOffError, TaskUsage
from slurm_magics.core.resources import parse_memory
from slurm_magics.jobs.efficiency import EfficiencyReport
from tests.helpers import sibling, wait_for

pytestmark = pytest.mark.cluster

MIB = 2**20
HOG_MB = 150
BURN_S = 3.0


@sm.task(memory="400M", time="00:10:00")
def hog(tag: int) -> int:
    """Hold ~150 MB resident and keep one CPU busy for 3 s of CPU time."""
    block = bytearray(HOG_MB * MIB)
    for index in range(0, len(block), 4096):
        block[index] = 1
    start = time.process_time()
    while time.process_time() - start < BURN_S:
        pass
    return tag + len(block) // MIB


def _complete(report: EfficiencyReport) -> bool:
    return report.missing == 0 and all(u and u.max_rss for _, u in report.tasks)


def test_sweep_report_matches_what_tasks_used(cluster: sm.Cluster) -> None:
    arr = hog.on(cluster).map(range(3))
    assert arr.result(timeout=300) == [150, 151, 152]
    # slurmdbd may lag a few seconds behind the queue: ask until every task is in
    before = cluster.counters.get("sacct", 0)
    reports: list[EfficiencyReport] = []

    def complete() -> bool:
        reports.append(arr.efficiency())
        return _complete(reports[-1])

    wait_for(complete, timeout=60, what="accounting of all three tasks")
    report = reports[-1]
    assert report.queries == 1
    assert cluster.counters.get("sacct", 0) - before == len(reports)  # ONE sacct per report
    for _, usage in report.tasks:
        assert isinstance(usage, TaskUsage)
        assert usage.state == "COMPLETED"
        assert BURN_S * 0.9 <= usage.cpu_time <= BURN_S * 1.6, usage
        assert usage.max_rss is not None
        assert HOG_MB * MIB <= usage.max_rss <= 400 * MIB, usage  # jobacct sums processes
        assert usage.requested_memory == 400 * MIB
        assert usage.time_limit == 600
        assert usage.elapsed >= usage.cpu_time - 1  # one CPU: elapsed bounds CPU time
        assert usage.cpu_efficiency == pytest.approx(usage.cpu_time / usage.elapsed)
    summary = report.summary
    assert summary.tasks == 3
    assert summary.max_rss is not None and summary.max_rss[1] >= HOG_MB * MIB
    suggestion = report.suggestion
    peak = summary.max_rss[1]
    assert suggestion.memory is not None and suggestion.time is not None
    suggested = parse_memory(suggestion.memory) * MIB
    # the peak plus a quarter, rounded up to the next size people write (steps <= x1.5 apart);
    # the peak is what the tasks used, which may sit near the request (SLURM's jobacct sums
    # the batch shell and Python), so the suggestion is bounded by the peak, not the request
    assert peak * 1.25 <= suggested <= peak * 1.25 * 1.5, (peak / MIB, suggestion)
    if peak * 1.25 <= 400 * MIB:
        assert suggested <= 400 * MIB, (peak / MIB, suggestion)
    assert suggestion.time == "00:01:00"  # a few seconds x 1.5, at least a minute
    assert suggestion.cpus == 1
    text = str(report)
    assert "CPU efficiency" in text and "peak memory" in text and "suggestion" in text
    frame = report.to_dataframe()
    assert list(frame["job_id"]) == [job.job_id for job in arr]
    assert (frame["max_rss_mb"] >= HOG_MB).all()
    # the suggestion fits: the same work under it completes
    again = hog.on(cluster).with_options(**suggestion.as_options())(7)
    assert again.result(timeout=300) == 157


@pytest.mark.slurm_only
def test_report_of_a_job_from_an_earlier_session(cluster: sm.Cluster) -> None:
    job = hog.on(cluster)(1)
    job.result(timeout=300)
    other = sibling(cluster)  # as a new kernel: its own Cluster, the job from the registry
    try:
        found = sm.Job.attach(job.job_id, cluster=other)
        assert found is not job and isinstance(found, sm.Job)
        report = wait_for(
            lambda: (r := found.efficiency()).missing == 0 and r.tasks[0][1].max_rss and r,
            timeout=60,
            what="accounting of the job",
        )
    finally:
        other.close()
    usage = report.tasks[0][1]
    assert usage is not None and usage.max_rss is not None
    assert usage.max_rss >= HOG_MB * MIB
    assert report.source == "sacct" and "(sacct)" in str(report)


@pytest.mark.slurm_only
def test_a_job_waiting_for_its_begin_time_says_why_and_until_when(cluster: sm.Cluster) -> None:
    begin = datetime.datetime.now() + datetime.timedelta(minutes=10)
    job = hog.on(cluster).with_options(extra={"begin": "now+600"})(0)
    try:
        wait_for(lambda: job.reason == "BeginTime", timeout=60, what="the BeginTime reason")
        assert job.pending_reason == "BeginTime: asked to start later (--begin)"
        squeues = cluster.counters.get("squeue", 0)
        start = job.expected_start()
        assert cluster.counters.get("squeue", 0) >= squeues + 1
        assert start is not None
        assert abs((start - begin).total_seconds()) < 60, start
    finally:
        job.cancel()
    assert job.expected_start() is None and job.pending_reason == ""


def test_a_held_job_says_it_is_held(cluster: sm.Cluster) -> None:
    arr = hog.on(cluster).with_options(extra={"hold": True}).map(range(2))
    try:
        wait_for(lambda: arr[0].reason == "JobHeldUser", timeout=60, what="the held reason")
        assert arr.pending_reason.startswith("JobHeldUser: held by you")
        assert arr[1].pending_reason.startswith("JobHeldUser")
        assert arr.expected_start() is None  # SLURM makes no estimate for a held job
    finally:
        arr.cancel()


@pytest.mark.slurm_only
def test_without_accounting_the_report_says_so_and_asks_nothing(cluster: sm.Cluster) -> None:
    job = hog.on(cluster)(2)
    job.result(timeout=300)
    other = sibling(cluster)  # a cluster whose configuration says: no accounting storage
    other.config = dataclasses.replace(other.config, accounting=False)
    try:
        found = sm.Job.attach(job.job_id, cluster=other)
        with pytest.raises(AccountingOffError, match=r"accounting is off .* ask the admin"):
            found.efficiency()
        assert other.counters.get("sacct", 0) == 0
    finally:
        other.close()
