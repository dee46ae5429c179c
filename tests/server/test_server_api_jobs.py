"""The server extension's REST API on real jobs, in a real `jupyter server`, against the
dev cluster: jobs listed by notebook, the queue, log tails, run graphs, and cancelling.

The server reads the registry this process records its jobs in (SLURM_MAGICS_REGISTRY),
and this machine's SLURM; jobs are submitted here and looked at, or cancelled, there.
"""

from __future__ import annotations

import concurrent.futures
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest

import slurm_magics as sm
from slurm_magics.core.parsing import SQUEUE_FORMAT, parse_squeue
from slurm_magics.jobs.registry import Registry, RunRecord
from tests.helpers import wait_for
from tests.server.lab_server import JupyterProcess, jupyter

NOTEBOOK = {"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JupyterProcess]:
    root = tmp_path_factory.mktemp("server-root")
    (root / "demo.ipynb").write_text(__import__("json").dumps(NOTEBOOK))
    with jupyter("server", root, tmp_path_factory.mktemp("server-logs")) as process:
        yield process


@pytest.fixture
def notebook(server: JupyterProcess, monkeypatch: pytest.MonkeyPatch) -> str:
    """Jobs submitted by the test are recorded as submitted by demo.ipynb of the server."""
    path = str(server.root_dir / "demo.ipynb")
    monkeypatch.delenv("JPY_SESSION_NAME", raising=False)
    monkeypatch.setenv("SLURM_MAGICS_NOTEBOOK", path)
    return path


@pytest.fixture
def held(local: sm.Cluster, notebook: str) -> Iterator[sm.Task[Any, Any]]:
    """A task whose jobs stay PENDING (held) until cancelled; all are cancelled afterwards."""
    task = sm.task(lambda x: x, memory="100M", name="held_task", extra={"hold": True}).on(local)
    yield task
    ids = [job.job_id for run in local.live_runs.values() for job in run.jobs if not job.done()]
    if ids:
        subprocess.run(["scancel", *ids], check=False)


def squeue_states(job_id: str) -> dict[int | None, str]:
    """What squeue says of a job, or of each task of an array job, by task id."""
    out = subprocess.run(
        ["squeue", "--noheader", "--states=all", "-j", job_id, "-o", SQUEUE_FORMAT],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    states: dict[int | None, str] = {}
    for row in parse_squeue(out):
        for task in row.task_ids or [None]:
            states[task] = row.state
    return states


def run_of(server: JupyterProcess, run_id: str, **query: str) -> dict[str, Any]:
    params = "&".join(f"{k}={v}" for k, v in {"limit": "500", **query}.items())
    reply = server.api("GET", f"jobs?{params}")
    assert reply.status == 200, reply.body
    for group in reply.body["notebooks"]:
        for run in group["runs"]:
            if run["run_id"] == run_id:
                return {**run, "group": group}
    raise AssertionError(f"run {run_id} not in the job list: {reply.body}")


# -- jobs of other clusters ---------------------------------------------------------------
def test_jobs_of_other_clusters_are_listed_but_never_cancelled_here(
    server: JupyterProcess,
) -> None:
    # An SSH cluster's job 4242 and the local backend's job 4243 are not this SLURM's.
    registry = Registry(__import__("os").environ["SLURM_MAGICS_REGISTRY"])
    try:
        for n, cluster in enumerate(
            ["ssh://me@login:22|big|/home/me/.slurm_magics", "local backend (no SLURM)||/tmp/x"]
        ):
            run_id = f"foreign-{n}-{time.time_ns()}"
            registry.record_run(
                RunRecord(
                    run_id,
                    cluster,
                    "/nowhere",
                    "/nowhere",
                    "far",
                    1,
                    1,
                    False,
                    [(str(4242 + n), 0, 0)],
                    "",
                    "elsewhere.ipynb",
                    "s",
                    time.time(),
                ),
                [],
            )
            listed = run_of(server, run_id)
            assert listed["local"] is False
            assert listed["counts"] == {"PENDING": 1}
            for body in ({"job_id": str(4242 + n)}, {"run_id": run_id}):
                reply = server.api("POST", "cancel", body=body)
                assert reply.status == 409, reply
                assert "does not reach" in reply.body["message"]
            reply = server.api("GET", f"jobs/{4242 + n}/log")
            assert reply.status == 409, reply
    finally:
        registry.close()


# -- reading ----------------------------------------------------------------------------------
@pytest.mark.cluster
def test_jobs_are_grouped_by_notebook_with_live_counts_and_paging(
    server: JupyterProcess, held: sm.Task[Any, Any], notebook: str
) -> None:
    single = held(1)
    array = held.map(range(5))
    listed = run_of(server, array.runs[0].run_id)
    assert listed["is_array"] is True
    assert listed["job_id"] == array.job_ids[0]
    assert listed["name"] == "held_task"
    assert listed["counts"] == {"PENDING": 5}
    assert listed["task_states"] == [["PENDING", 5]]
    assert listed["notebook"] == notebook
    assert listed["notebook_path"] == "demo.ipynb"  # relative to the server's root: openable
    assert listed["local"] is True
    group = listed["group"]
    assert group["notebook_path"] == "demo.ipynb"
    ids = [run["run_id"] for run in group["runs"]]
    assert ids.index(array.runs[0].run_id) < ids.index(single.run.run_id)  # newest first

    first = server.api("GET", f"jobs?limit=1&notebook={notebook}").body
    assert first["total"] >= 2 and first["limit"] == 1
    assert [r["run_id"] for g in first["notebooks"] for r in g["runs"]] == [array.runs[0].run_id]
    second = server.api("GET", f"jobs?limit=1&offset=1&notebook={notebook}").body
    assert [r["run_id"] for g in second["notebooks"] for r in g["runs"]] == [single.run.run_id]
    wait_for(  # the status bar's numbers: the user's whole queue, read at most every 2 s
        lambda: server.api("GET", "jobs?limit=1").body["queue"]["pending"] >= 6,
        what="the queue summary to count the held jobs",
    )


@pytest.mark.cluster
def test_the_queue_is_one_squeue_per_refresh_shared_by_all_requests(
    server: JupyterProcess, held: sm.Task[Any, Any]
) -> None:
    job = held(7)
    time.sleep(2.1)  # past the cache of earlier requests: the next read sees the job
    before = server.api("GET", "queue").body["calls"]
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        replies = list(pool.map(lambda p: server.api("GET", p), ["queue", "jobs"] * 16))
    assert all(reply.status == 200 for reply in replies)
    calls = {
        reply.body["calls"] if "calls" in reply.body else reply.body["queue"]["calls"]
        for reply in replies
    }
    assert max(calls) - before <= 1, calls  # 32 requests within the 2 s cache: one call
    queue = replies[0].body
    mine = next(entry for entry in queue["jobs"] if entry["job_id"] == job.job_id)
    assert mine["run_id"] == job.run.run_id and mine["name"] == "held_task"
    assert mine["rows"][0]["state"] == "PENDING"
    assert mine["rows"][0]["reason"] == "JobHeldUser"
    time.sleep(2.2)
    assert server.api("GET", "queue").body["calls"] == max(calls) + 1


def noisy(n: int) -> int:
    import sys as _sys

    print("".join(f"line {i:06d}\n" for i in range(n)), end="")
    print("to stderr", file=_sys.stderr)
    return n


@pytest.mark.cluster
def test_log_tails_are_bounded_and_found_through_the_registry(
    server: JupyterProcess, local: sm.Cluster, notebook: str
) -> None:
    array = sm.task(noisy, memory="100M").on(local).map([10_000, 3])
    assert array.result(timeout=180) == [10_000, 3]
    big = server.api("GET", f"jobs/{array[0].job_id}/log?bytes=1000").body
    assert big["job_id"] == array[0].job_id and big["stream"] == "out"
    assert len(big["text"]) == 1000 and big["truncated"] is True
    assert big["text"].endswith("line 009999\n")
    assert big["size"] == 10_000 * 12
    small = server.api("GET", f"jobs/{array[1].job_id}/log").body
    assert small["text"] == "line 000000\nline 000001\nline 000002\n"
    assert small["truncated"] is False
    err = server.api("GET", f"jobs/{array[1].job_id}/log?stream=err").body
    assert "to stderr" in err["text"]
    assert server.api("GET", f"jobs/{array.job_ids[0]}_7/log").status == 404  # no task 7
    whole = server.api("GET", f"jobs/{array.job_ids[0]}/log")
    assert whole.status == 400 and "ask for the log of one task" in whole.body["message"]
    wait_for(
        lambda: run_of(server, array.runs[0].run_id)["counts"] == {"COMPLETED": 2},
        what="both tasks listed COMPLETED",
    )


@pytest.mark.cluster
def test_the_graph_of_a_run_has_its_upstream_and_downstream_runs(
    server: JupyterProcess, held: sm.Task[Any, Any]
) -> None:
    first = held.map(range(3))
    middle = held(first)  # afterok on the whole array
    last = held(middle)
    graph = server.api("GET", f"runs/{middle.run.run_id}/graph").body
    nodes = {node["run_id"]: node for node in graph["nodes"]}
    assert set(nodes) == {first.runs[0].run_id, middle.run.run_id, last.run.run_id}
    assert nodes[first.runs[0].run_id]["counts"] == {"PENDING": 3}
    assert nodes[middle.run.run_id]["job_id"] == middle.job_id
    edges = {(edge["source"], edge["target"]) for edge in graph["edges"]}
    assert edges == {
        (first.runs[0].run_id, middle.run.run_id),
        (middle.run.run_id, last.run.run_id),
    }


# -- cancelling -----------------------------------------------------------------------------
@pytest.mark.cluster
def test_cancel_really_cancels_a_held_job(
    server: JupyterProcess, held: sm.Task[Any, Any], local: sm.Cluster
) -> None:
    job = held(1)
    assert squeue_states(job.job_id) == {None: "PENDING"}
    reply = server.api("POST", "cancel", body={"job_id": job.job_id})
    assert reply.status == 200, reply
    assert reply.body == {"run_id": job.run.run_id, "cancelled": [job.job_id]}
    assert squeue_states(job.job_id) == {None: "CANCELLED"}
    assert run_of(server, job.run.run_id)["counts"] == {"CANCELLED": 1}
    with pytest.raises(sm.JobFailedError) as failed:  # cancelled from outside this process
        job.result(timeout=60)
    assert failed.value.state is sm.JobState.CANCELLED
    wait_for(
        lambda: [j.state for j in local.registry.jobs_of(job.run.run_id)] == ["CANCELLED"],
        what="the registry to record the cancellation",
    )


@pytest.mark.cluster
def test_cancel_one_array_task_then_the_whole_run(
    server: JupyterProcess, held: sm.Task[Any, Any]
) -> None:
    array = held.map(range(4))
    array_id = array.job_ids[0]
    assert squeue_states(array_id) == dict.fromkeys(range(4), "PENDING")
    reply = server.api("POST", "cancel", body={"job_id": f"{array_id}_2"})
    assert reply.body["cancelled"] == [f"{array_id}_2"]
    # SLURM drops a cancelled task of a pending range from squeue at once
    assert squeue_states(array_id) == dict.fromkeys([0, 1, 3], "PENDING")
    listed = run_of(server, array.runs[0].run_id)
    assert listed["counts"] == {"PENDING": 3, "CANCELLED": 1}
    assert listed["task_states"] == [["PENDING", 2], ["CANCELLED", 1], ["PENDING", 1]]
    assert server.api("POST", "cancel", body={"job_id": f"{array_id}_9"}).status == 404
    reply = server.api("POST", "cancel", body={"run_id": array.runs[0].run_id})
    assert reply.body["cancelled"] == [array_id]
    listed = run_of(server, array.runs[0].run_id)
    assert listed["counts"] == {"CANCELLED": 4}
    assert squeue_states(array_id) == dict.fromkeys([0, 1, 3], "CANCELLED")
    with pytest.raises(sm.JobFailedError):
        array.result(timeout=60)
