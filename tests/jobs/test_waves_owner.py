"""Waves outlive no process: what a submitting process still held when it ended is never
left PENDING for ever in another one (real dev cluster, real processes).

The submitting process fills a QOS of MaxSubmitJobsPerUser=3 with two held jobs, then maps
four calls: one goes in, three wait on its client. Another process attaches to the map.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

import slurm_magics as sm
from slurm_magics.core.states import JobState
from slurm_magics.jobs.array import JobArray
from slurm_magics.jobs.owner import OwnerState, owner_state
from tests.helpers import wait_for
from tests.jobs.test_waves import qos_limit

pytestmark = pytest.mark.cluster

SUBMIT = """
import json, os, sys
import slurm_magics as sm

def square(x):
    return x * x

cluster = sm.connect(root=ROOT, partition="debug")
held = sm.task(square, memory="50M", time="00:05:00", qos=QOS, extra={"hold": True})
blockers = held.map(range(2))
array = sm.task(square, memory="50M", time="00:05:00", qos=QOS).map(range(4))
assert len(array.job_ids) == 1, array.job_ids  # one fits, three wait on this client
print(json.dumps({"array": array.job_ids[0], "held": blockers.job_ids, "pid": os.getpid()}))
sys.stdout.flush()
if MODE == "killed":
    os._exit(0)  # like a killed kernel: no exit hook runs
if MODE == "exits-later":
    sys.stdin.readline()  # the test has attached: now end, normally (the exit hook runs)
    sys.exit(0)
if MODE == "cancelled-elsewhere":
    sys.stdin.readline()  # the test has cancelled the map: make room, see what goes in
    blockers.cancel()
    outcomes = []
    for job in array.jobs[1:]:
        try:
            outcomes.append(repr(job.result(timeout=60)))
        except BaseException as error:
            outcomes.append(type(error).__name__)
    print(json.dumps({"outcomes": outcomes, "sbatch": cluster.waves.stats["sbatch"]}))
if MODE == "alive":
    sys.stdin.readline()  # the test has attached: make room, and let the waves go in
    blockers.cancel()
    print(json.dumps({"results": array.result(timeout=300)}))
"""


@pytest.fixture
def qos3own() -> Iterator[str]:
    yield from qos_limit("smwavesowner", 3)


def start(mode: str, root: Path, qos: str) -> tuple[subprocess.Popen[str], dict[str, object]]:
    code = SUBMIT.replace("ROOT", repr(str(root))).replace("QOS", repr(qos))
    process = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code).replace("MODE", repr(mode))],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line:
        _, err = process.communicate(timeout=60)
        pytest.fail(f"the submitting process printed nothing: {err}")
    return process, json.loads(line)


@contextlib.contextmanager
def owner(
    mode: str, root: Path, qos: str
) -> Iterator[tuple[subprocess.Popen[str], dict[str, object]]]:
    """A submitting process in ``mode``; killed if still running at the end, its jobs
    cancelled."""
    process, ids = start(mode, root, qos)
    try:
        yield process, ids
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=30)
        held = ids["held"]
        assert isinstance(held, list)
        subprocess.run(["scancel", *map(str, held), str(ids["array"])], check=False)


def attach_map(first_id: object, cluster: sm.Cluster) -> JobArray:
    array = sm.Job.attach(str(first_id), cluster)
    assert isinstance(array, JobArray) and len(array) == 4
    return array


def said_then_go(array: JobArray, reason: str, process: subprocess.Popen[str]) -> None:
    """Wait until the unsubmitted tasks say where they wait, then let the owner go on."""
    wait_for(
        lambda: all(job.reason.startswith(reason) for job in array.jobs[1:]),
        timeout=30,
        what="the unsubmitted tasks to say where they wait",
    )
    assert process.stdin is not None
    process.stdin.write("go\n")
    process.stdin.flush()


@pytest.mark.parametrize(
    ("mode", "why"),
    [
        ("killed", r"process that held them until there was room \(pid \d+ on .+\) ended first"),
        ("exits", "never submitted: the process that submitted them ended first"),
    ],
)
def test_what_an_ended_process_never_submitted_fails_in_the_next_one(
    local: sm.Cluster, cluster_root: Path, qos3own: str, mode: str, why: str
) -> None:
    process, ids = start(mode, cluster_root, qos3own)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    record = local.registry.run_of(local.key, str(ids["array"]))
    assert record is not None and owner_state(record.owner) is OwnerState.ENDED
    held = ids["held"]
    assert isinstance(held, list)
    subprocess.run(["scancel", *map(str, held)], check=True)
    array = attach_map(ids["array"], local)
    assert array.jobs[0].result(timeout=120) == 0  # the submitted element still runs
    for job in array.jobs[1:]:
        with pytest.raises(sm.SubmissionError, match=why):
            job.result(timeout=30)
        assert job.state is JobState.FAILED
    with pytest.raises(sm.SubmissionError, match="3 task"):
        array.result(timeout=5)
    # recorded: a listing (sm.jobs, the Lab panel) says the same, never PENDING
    states = [job.state for job in local.registry.jobs_of(array.jobs[0].run.run_id)]
    wait_for(
        lambda: (
            [j.state for j in local.registry.jobs_of(array.jobs[0].run.run_id)]
            == ["COMPLETED", "FAILED", "FAILED", "FAILED"]
        ),
        timeout=10,
        what=f"the registry to record the ends (had {states})",
    )
    record = local.registry.run(array.jobs[0].run.run_id)
    assert record is not None and len(record.slices) == 1  # nothing was submitted late


def test_a_running_owner_keeps_its_waves_and_the_next_process_follows_them(
    local: sm.Cluster, cluster_root: Path, qos3own: str
) -> None:
    with owner("alive", cluster_root, qos3own) as (process, ids):
        array = attach_map(ids["array"], local)
        reason = f"waiting for room in the process that submitted it (pid {ids['pid']} on "
        said_then_go(array, reason, process)
        assert all(job.state is JobState.PENDING for job in array.jobs[1:])
        assert array.result(timeout=300) == [0, 1, 4, 9]  # the later waves, followed here
        assert len(array.runs[0].slices) >= 2
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, err
        assert json.loads(out.strip().splitlines()[-1]) == {"results": [0, 1, 4, 9]}


def test_an_owner_that_exits_after_another_process_attached_ends_its_futures(
    local: sm.Cluster, cluster_root: Path, qos3own: str
) -> None:
    with owner("exits-later", cluster_root, qos3own) as (process, ids):
        array = attach_map(ids["array"], local)
        said_then_go(array, "waiting for room in", process)
        _, err = process.communicate(timeout=60)
        assert process.returncode == 0, err
        # its exit hook recorded them FAILED: this process's futures end too (not PENDING)
        for job in array.jobs[1:]:
            with pytest.raises(sm.SubmissionError, match="submitted them ended first"):
                job.result(timeout=30)


def test_a_map_cancelled_in_another_process_sends_no_later_wave(
    local: sm.Cluster, cluster_root: Path, qos3own: str
) -> None:
    with owner("cancelled-elsewhere", cluster_root, qos3own) as (process, ids):
        array = attach_map(ids["array"], local)
        assert array.cancel()  # here: scancels the slice, ends what waits there
        assert process.stdin is not None
        process.stdin.write("go\n")  # the owner makes room, and would send its waves
        process.stdin.flush()
        out, err = process.communicate(timeout=180)
        assert process.returncode == 0, err
        seen = json.loads(out.strip().splitlines()[-1])
        # its three waiting tasks end cancelled there too; sbatch ran twice: the blockers,
        # the map's first slice, and never again
        assert seen == {"outcomes": ["CancelledError"] * 3, "sbatch": 2}
        record = local.registry.run(array.jobs[0].run.run_id)
        assert record is not None and len(record.slices) == 1
        assert [j.state for j in local.registry.jobs_of(record.run_id)][1:] == ["CANCELLED"] * 3
