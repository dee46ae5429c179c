"""Submit limits, queue counts and sbatch refusals (pure; recorded real outputs).

Recorded on the dev cluster for these tests (tests/data):
- sacctmgr_qos.txt: `sacctmgr show qos format=Name,MaxSubmitJobsPerUser,GrpSubmitJobs -P -n`
  after `sacctmgr -i add qos smwaves MaxSubmitJobsPerUser=300`
- sacctmgr_assoc.txt: `sacctmgr show assoc where users=root cluster=devcluster
  format=Cluster,Account,Partition,DefaultQOS,MaxSubmitJobs,GrpSubmitJobs -P -n`
The refusal texts are sbatch's own words as printed by SLURM 22.05 (the first quoted from
issue 17's run at MaxJobCount; the QOS/association ones as sbatch prints a submit limit).
"""

from __future__ import annotations

from pathlib import Path

from slurm_magics.core.limits import (
    Limit,
    QueueCounts,
    SubmitLimits,
    classify_refusal,
    count_queue,
    parse_assoc_limits,
    parse_qos_limits,
    room_for,
)
from slurm_magics.core.parsing import parse_squeue

DATA = Path(__file__).resolve().parent.parent / "data"

AT_MAX_JOB_COUNT = "sbatch: error: Slurm temporarily unable to accept job, sleeping and retrying"
QOS_REFUSAL = (
    "sbatch: error: QOSMaxSubmitJobPerUserLimit\n"
    "sbatch: error: Batch job submission failed: Job violates accounting/QOS policy "
    "(job submit limit, user's size and/or time limits)"
)
ASSOC_REFUSAL = (
    "sbatch: error: AssocMaxSubmitJobLimit\n"
    "sbatch: error: Batch job submission failed: Job violates accounting/QOS policy "
    "(job submit limit, user's size and/or time limits)"
)


def recorded_limits() -> SubmitLimits:
    return SubmitLimits(
        200000,
        parse_qos_limits((DATA / "sacctmgr_qos.txt").read_text()),
        parse_assoc_limits((DATA / "sacctmgr_assoc.txt").read_text(), "devcluster"),
    )


def test_qos_and_association_limits_are_read_from_sacctmgr() -> None:
    limits = recorded_limits()
    assert limits.qos == {"normal": (None, None), "smwaves": (300, None)}
    assert limits.associations == (("root", "", "", None, None),)
    assert limits.default_qos(None) == "normal"
    assert limits.for_job("smwaves", None) == [
        Limit("MaxJobCount", "cluster", 200000),
        Limit("MaxSubmitJobsPerUser", "QOS smwaves", 300),
    ]
    assert str(limits.for_job("smwaves", None)[1]) == "MaxSubmitJobsPerUser 300 (QOS smwaves)"
    assert limits.for_job(None, None) == [Limit("MaxJobCount", "cluster", 200000)]


def test_association_rows_of_other_clusters_are_ignored() -> None:
    rows = parse_assoc_limits(
        "other|lab||normal|5|\ndevcluster|lab|debug|fast|40|900\n", "devcluster"
    )
    assert rows == (("lab", "debug", "fast", 40, 900),)
    limits = SubmitLimits(1000, {"fast": (None, 100)}, rows)
    assert limits.default_qos("lab") == "fast"
    assert [str(limit) for limit in limits.for_job(None, "lab")] == [
        "MaxJobCount 1000 (cluster)",
        "GrpSubmitJobs 100 (QOS fast)",
        "MaxSubmitJobs 40 (association lab)",
        "GrpSubmitJobs 900 (association lab)",
    ]


def test_records_count_every_array_task_and_only_active_ones_count_for_submit_limits() -> None:
    rows = parse_squeue((DATA / "squeue_states_all.txt").read_text())
    counts = count_queue(rows)
    assert counts.records == sum(len(r.task_ids) if r.task_ids else 1 for r in rows)
    assert counts.records > 20000  # two cancelled 10,000-task arrays among them
    active = [r for r in rows if r.state in ("PENDING", "RUNNING")]
    assert counts.active == sum(len(r.task_ids) if r.task_ids else 1 for r in active)
    assert 0 < counts.active < counts.records


def test_room_is_the_smallest_gap_and_names_the_limit_that_binds() -> None:
    limits = recorded_limits().for_job("smwaves", None)
    assert room_for(limits, QueueCounts(records=5000, active=40), in_qos=0) == (300, limits[1])
    assert room_for(limits, QueueCounts(records=5000, active=400), in_qos=290) == (10, limits[1])
    assert room_for(limits, QueueCounts(records=5000, active=400), in_qos=301) == (0, limits[1])
    assert room_for(limits, QueueCounts(records=199990, active=10), in_qos=0) == (10, limits[0])


def test_refusals_by_a_limit_are_told_apart_from_other_refusals() -> None:
    full = classify_refusal(AT_MAX_JOB_COUNT)
    assert full is not None and full.limit == "MaxJobCount"
    assert "MaxJobCount" in full.description
    qos = classify_refusal(QOS_REFUSAL)
    assert qos is not None and qos.limit == "QOSMaxSubmitJobPerUserLimit"
    assert qos.description == "the QOS's MaxSubmitJobsPerUser"
    assoc = classify_refusal(ASSOC_REFUSAL)
    assert assoc is not None and assoc.description == "the association's MaxSubmitJobs"
    again = classify_refusal(
        "sbatch: error: Batch job submission failed: Resource temporarily unavailable"
    )
    assert again is not None and again.limit == "MaxJobCount"
    invalid = (DATA / "sbatch_invalid_partition_stderr.txt").read_text()
    assert classify_refusal(invalid) is None
