"""Jobs that outlive the process that submitted them (real dev cluster, real processes)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from datetime import timedelta
from pathlib import Path

import pytest

import slurm_magics as sm
from slurm_magics.jobs.registry import Registry
from tests.helpers import squeue_ids

pytestmark = pytest.mark.cluster


def run_python(code: str, root: Path) -> dict[str, str]:
    """Run a separate Python process that submits jobs and exits; return what it printed."""
    script = textwrap.dedent(code).replace("ROOT", repr(str(root)))
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


SUBMIT = """
import json, os, time
import slurm_magics as sm

def slow(x):
    time.sleep(4)
    return x * 10

def broken():
    time.sleep(2)
    raise ZeroDivisionError("on the node")

sm.connect(root=ROOT, partition="debug")
single = sm.task(slow, memory="100M")(7)
failing = sm.task(broken, memory="100M")()
sweep = sm.task(slow, memory="100M").map(range(3))
print(json.dumps({"single": single.job_id, "failing": failing.job_id, "sweep": sweep.job_id}))
os._exit(0)  # like a killed kernel: no clean shutdown, nothing cancelled
"""


def test_a_new_process_awaits_jobs_of_an_ended_one(local: sm.Cluster, cluster_root: Path) -> None:
    ids = run_python(SUBMIT, cluster_root)
    single = sm.Job.attach(ids["single"], local)
    assert isinstance(single, sm.Job)
    assert single.result(timeout=120) == 70
    failing = sm.Job.attach(ids["failing"], local)
    with pytest.raises(ZeroDivisionError, match="on the node"):
        failing.result(timeout=120)
    sweep = sm.Job.attach(ids["sweep"], local)
    assert isinstance(sweep, sm.JobArray)
    assert sweep.result(timeout=120) == [0, 10, 20]
    assert sm.Job.attach(f"{ids['sweep']}_2", local).result(timeout=10) == 20
    listed = {entry.job_id for entry in sm.jobs(cluster=local)}
    assert {ids["single"], ids["failing"], ids["sweep"]} <= listed
    assert sm.Job.attach(ids["single"], local) is single  # the same live future within a process


def test_unknown_job_id_is_a_clear_error(local: sm.Cluster) -> None:
    with pytest.raises(LookupError, match="not in the registry"):
        sm.Job.attach("999999999", local)


def test_two_processes_writing_at_once_lose_nothing(local: sm.Cluster, cluster_root: Path) -> None:
    code = """
    import json, os
    import slurm_magics as sm
    sm.connect(root=ROOT, partition="debug")
    held = sm.task(lambda x: x, memory="100M", extra={"hold": True})
    jobs = [held(i) for i in range(15)] + [held.map(range(40))]
    print(json.dumps({"ids": [j.job_id for j in jobs], "session": sm.jobs()[0].run.run_id}))
    for job in jobs:
        job.cancel()
    """
    code = textwrap.dedent(code).replace("sm.jobs()[0].run.run_id", "jobs[0].run.run_id")
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", code.replace("ROOT", repr(str(cluster_root)))],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=120) for p in processes]
    assert all(p.returncode == 0 for p in processes), [err for _, err in outputs]
    ids = [json.loads(out.strip().splitlines()[-1])["ids"] for out, _ in outputs]
    registry = Registry(local.registry.path)
    try:
        runs = {r.slices[0][0]: r for r in registry.runs(cluster=local.key)}
        for job_ids in ids:
            assert set(job_ids) <= set(runs)
            for job_id in job_ids:
                states = {j.state for j in registry.jobs_of(runs[job_id].run_id)}
                assert states == {"CANCELLED"}
        assert sum(runs[i].n_items for job_ids in ids for i in job_ids) == 2 * (15 + 40)
    finally:
        registry.close()


def test_cleanup_removes_finished_run_folders_only(local: sm.Cluster) -> None:
    done = sm.task(lambda: 1, memory="100M").on(local)()
    assert done.result(timeout=120) == 1
    held = sm.task(lambda: 2, memory="100M", extra={"hold": True}).on(local)()
    try:
        time.sleep(1.5)
        removed = sm.cleanup(timedelta(seconds=1), cluster=local)
        assert done.run.run_dir in removed
        assert not Path(done.run.run_dir).exists()
        assert Path(held.run.run_dir).exists()
        assert held.run.run_dir not in removed
    finally:
        held.cancel()


HOLD_AND_EXIT = """
import json
import slurm_magics as sm
sm.connect(root=ROOT, partition="debug", cancel_on_exit=CANCEL)
held = sm.task(lambda: 1, memory="100M", extra={"hold": True})()
print(json.dumps({"id": held.job_id}))
"""


def test_exiting_cancels_jobs_only_when_asked(local: sm.Cluster, cluster_root: Path) -> None:
    kept = run_python(HOLD_AND_EXIT.replace("CANCEL", "False"), cluster_root)["id"]
    cancelled = run_python(HOLD_AND_EXIT.replace("CANCEL", "True"), cluster_root)["id"]
    try:
        time.sleep(1)
        queued = squeue_ids()
        assert kept in queued  # a normal exit leaves jobs running (and pending)
        assert cancelled not in queued
    finally:
        subprocess.run(["scancel", kept], check=False)
