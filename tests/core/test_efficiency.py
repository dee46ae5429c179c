"""Right-sizing figures, suggestions and pending reasons, on outputs recorded on the dev
cluster (tests/data/README.md says how)."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest

from slurm_magics.core.efficiency import (
    TaskUsage,
    parse_cpu_time,
    parse_rss,
    parse_usage,
    round_memory,
    round_time,
    suggest,
    summarise,
)
from slurm_magics.core.reasons import explain_reason, parse_start

DATA = Path(__file__).parents[1] / "data"
MIB = 2**20


def test_usage_from_recorded_sacct() -> None:
    usages = parse_usage((DATA / "sacct_usage.txt").read_text())
    by_id = {u.job_id: u for u in usages}
    assert list(by_id) == ["289", "288_0", "288_1"]
    task = by_id["288_0"]
    assert task.state == "COMPLETED"
    assert task.elapsed == 12
    assert task.cpu_time == pytest.approx(3.46)
    assert task.cpus == 1
    assert task.max_rss == 170096 * 1024  # from the .batch step line
    assert task.requested_memory == 400 * MIB
    assert task.time_limit == 600
    assert task.cpu_efficiency == pytest.approx(3.46 / 12)
    assert task.memory_used == pytest.approx(170096 / 1024 / 400)
    assert task.time_used == pytest.approx(12 / 600)
    cancelled = by_id["289"]
    assert cancelled.state == "CANCELLED"  # "CANCELLED by 0"
    assert cancelled.time_limit is None  # "Partition_Limit"
    assert cancelled.max_rss is None


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("00:03.460", 3.46), ("1:02:03", 3723), ("2-01:00:00", 2 * 86400 + 3600), ("", 0)],
)
def test_cpu_time(text: str, seconds: float) -> None:
    assert parse_cpu_time(text) == pytest.approx(seconds)


def test_sizes() -> None:
    assert parse_rss("170096K") == 170096 * 1024
    assert parse_rss("1.5G") == int(1.5 * 2**30)
    assert parse_rss("") is None


@pytest.mark.parametrize(
    ("size", "written"),
    [(150 * MIB, "200M"), (190 * MIB, "200M"), (201 * MIB, "250M"), (1100 * MIB, "1.5G"),
     (1536 * MIB, "1.5G"), (5 * 2**30, "6G"), (100 * 2**30, "128G")],
)  # fmt: skip
def test_memory_rounded_as_people_write_it(size: int, written: str) -> None:
    assert round_memory(size) == written


@pytest.mark.parametrize(
    ("seconds", "written"),
    [(5, "00:01:00"), (61, "00:02:00"), (1000, "00:20:00"), (3 * 3600 + 1, "04:00:00"),
     (30 * 3600, "2-00:00:00")],
)  # fmt: skip
def test_time_rounded_as_people_write_it(seconds: float, written: str) -> None:
    assert round_time(seconds) == written


def _usage(elapsed: float, cpu: float, cpus: int, rss_mb: int) -> TaskUsage:
    return TaskUsage("1_0", "COMPLETED", elapsed, cpu, cpus, rss_mb * MIB, 4096 * MIB, 3600)


def test_summary_and_suggestion() -> None:
    usages = [_usage(100, 95, 4, 900), _usage(200, 190, 4, 1000), _usage(0, 0, 4, 0)]
    summary = summarise(usages)
    assert summary.tasks == 2  # the one that never ran is left out
    assert summary.cpu_efficiency == pytest.approx((0.2375, 0.2375))
    assert summary.max_rss == (950 * MIB, 1000 * MIB)
    assert summary.elapsed == (150, 200)
    suggestion = suggest(usages)
    # 1000 MB x 1.25 -> 1.5G; 200 s x 1.5 -> 5 min; 0.95 cores busy of 4 -> 1 CPU
    assert suggestion.as_options() == {"memory": "1.5G", "time": "00:05:00", "cpus": 1}
    assert str(suggestion) == "memory='1.5G', time='00:05:00', cpus=1"
    busy = suggest([_usage(100, 390, 4, 10)])
    assert busy.cpus == 4
    assert suggest([]).as_options() == {}


def test_start_estimates_from_recorded_squeue() -> None:
    estimates = parse_start((DATA / "squeue_start.txt").read_text())
    assert [e.job_id for e in estimates] == ["207_[0-1,3,5]", "289", "288_[0-1]", "28_[437-499]"]
    assert estimates[1].start == datetime.datetime(2026, 11, 30, 4, 28, 52)
    assert estimates[1].reason == "BeginTime"
    assert estimates[2].start is None
    assert "expected start 2026-11-30 04:28:52" in str(estimates[1])
    assert "not estimated yet" in str(estimates[2])


@pytest.mark.parametrize(
    ("reason", "words"),
    [("Priority", "Priority: other jobs come first"),
     ("Resources", "Resources: waiting for free nodes"),
     ("ReqNodeNotAvail", "a node it needs is down"),
     ("Dependency", "waiting for the jobs it depends on"),
     ("None", "about to be scheduled"), ("", ""), ("SomethingNew", "SomethingNew")],
)  # fmt: skip
def test_reasons_in_words(reason: str, words: str) -> None:
    assert explain_reason(reason).startswith(words) or words in explain_reason(reason)


def test_limit_reasons_state_the_limit() -> None:
    said = explain_reason("QOSMaxJobsPerUserLimit", running=4)
    assert said == "QOSMaxJobsPerUserLimit: you are at your QOS limit of 4 running jobs per user"
    assert "association limit of CPUs of the group" in explain_reason("AssocGrpCpuLimit")
