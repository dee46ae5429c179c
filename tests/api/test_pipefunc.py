"""pipefunc pipelines through sm.SlurmExecutor on the real dev cluster (real pipefunc).

What each job was given is read back INSIDE the job from SLURM's environment
(SLURM_CPUS_PER_TASK, SLURM_MEM_PER_NODE, SLURM_ARRAY_JOB_ID, ...), never from our own
rendering; sbatch calls are counted by the cluster's scheduler counters. Warnings are
errors here, so pipefunc's "Automatic chunksize calculation failed" would fail any test.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import multiprocessing
import os
import time
from pathlib import Path
from typing import Any

import pytest
from pipefunc import Pipeline, pipefunc
from pipefunc.resources import Resources as PipefuncResources

import slurm_magics as sm

pytestmark = pytest.mark.cluster

_SEEN = (
    "SLURM_JOB_ID",
    "SLURM_CPUS_PER_TASK",
    "SLURM_MEM_PER_NODE",
    "SLURM_ARRAY_JOB_ID",
    "SLURM_ARRAY_TASK_ID",
)


def seen() -> dict[str, Any]:
    """What SLURM tells the running job about itself, and which process this is."""
    return {**{name: os.environ.get(name) for name in _SEEN}, "pid": os.getpid()}


def _sbatch(cluster: sm.Cluster) -> int:
    return cluster.counters.get("sbatch", 0)


# -- static resources, precedence, one array per map ----------------------------------------
@pipefunc(output_name="y", mapspec="x[i] -> y[i]", resources={"cpus": 2})
def two_cpus(x: int) -> dict[str, Any]:
    return {"x": x, **seen()}


@pipefunc(output_name="z", mapspec="x[i] -> z[i]", resources=PipefuncResources(memory="300MB"))
def more_memory(x: int) -> dict[str, Any]:
    return {"x": x, **seen()}


@pipefunc(output_name="summary")
def summary(y: Any, z: Any) -> dict[str, Any]:
    return {"n": len(y) + len(z), **seen()}


def test_static_resources_reach_slurm_over_the_executors(
    cluster: sm.Cluster, tmp_path: Path
) -> None:
    before = _sbatch(cluster)
    executor = sm.SlurmExecutor(cluster, memory="100M", cpus=1)
    results = Pipeline([two_cpus, more_memory, summary]).map(
        {"x": range(12)}, executor=executor, run_folder=tmp_path, parallel=True
    )
    ys, zs = list(results["y"].output), list(results["z"].output)
    assert [e["x"] for e in ys] == list(range(12))
    # the function's cpus over the executor's; the executor's memory where it says none
    assert {(e["SLURM_CPUS_PER_TASK"], e["SLURM_MEM_PER_NODE"]) for e in ys} == {("2", "100")}
    assert {(e["SLURM_CPUS_PER_TASK"], e["SLURM_MEM_PER_NODE"]) for e in zs} == {("1", "300")}
    # resources_scope="map" (pipefunc's default): each map is ONE array job
    assert len({e["SLURM_ARRAY_JOB_ID"] for e in ys}) == 1
    assert len({e["SLURM_ARRAY_JOB_ID"] for e in zs}) == 1
    assert {e["SLURM_ARRAY_JOB_ID"] for e in ys} != {e["SLURM_ARRAY_JOB_ID"] for e in zs}
    final = results["summary"].output
    assert final["n"] == 24 and final["SLURM_JOB_ID"] is not None
    assert (final["SLURM_CPUS_PER_TASK"], final["SLURM_MEM_PER_NODE"]) == ("1", "100")
    assert final["SLURM_ARRAY_JOB_ID"] is None  # one call: a plain job
    # 24 element submits: one sbatch per map, one for the summary
    assert _sbatch(cluster) - before == 3


# -- dynamic resources, both scopes, a map split into a fixed number of tasks ---------------
@pipefunc(
    output_name="per_element",
    mapspec="x[i] -> per_element[i]",
    resources=lambda kwargs: {"cpus": 1 + kwargs["x"] % 2},
    resources_scope="element",
)
def per_element(x: int) -> dict[str, Any]:
    return {"x": x, **seen()}


@pipefunc(
    output_name="per_map",
    mapspec="x[i] -> per_map[i]",
    resources=lambda kwargs: {"memory": f"{150 + len(kwargs['x'])}MB"},
    resources_scope="map",
)
def per_map(x: int) -> dict[str, Any]:
    return {"x": x, **seen()}


def test_dynamic_resources_per_element(cluster: sm.Cluster) -> None:
    before = _sbatch(cluster)
    executor = sm.SlurmExecutor(cluster, memory="100M")
    results = Pipeline([per_element]).map({"x": range(8)}, executor=executor, parallel=True)
    elements = list(results["per_element"].output)
    assert [e["SLURM_CPUS_PER_TASK"] for e in elements] == [str(1 + x % 2) for x in range(8)]
    # elements with equal resources share an array: two arrays, two sbatch calls
    arrays = {e["SLURM_CPUS_PER_TASK"]: set() for e in elements}
    for e in elements:
        arrays[e["SLURM_CPUS_PER_TASK"]].add(e["SLURM_ARRAY_JOB_ID"])
    assert all(len(ids) == 1 for ids in arrays.values()) and len(arrays) == 2
    assert _sbatch(cluster) - before == 2


def test_dynamic_map_resources_evaluated_once_and_split_by_chunk_size(
    cluster: sm.Cluster,
) -> None:
    before = _sbatch(cluster)
    executor = sm.SlurmExecutor(cluster, chunk_size=5)
    results = Pipeline([per_map]).map({"x": list(range(20))}, executor=executor, parallel=True)
    elements = list(results["per_map"].output)
    assert [e["x"] for e in elements] == list(range(20))
    assert {e["SLURM_MEM_PER_NODE"] for e in elements} == {"170"}  # 150 + 20 elements
    # one array of 20 / 5 = 4 tasks, 5 elements each
    assert len({e["SLURM_ARRAY_JOB_ID"] for e in elements}) == 1
    tasks = [e["SLURM_ARRAY_TASK_ID"] for e in elements]
    assert sorted(set(tasks)) == ["0", "1", "2", "3"]
    assert all(tasks.count(task) == 5 for task in set(tasks))
    assert _sbatch(cluster) - before == 1


# -- internal parallelism --------------------------------------------------------------------
@pipefunc(
    output_name="inner",
    resources={"cpus": 2, "memory": "400MB", "parallelization_mode": "internal"},
    resources_variable="resources",
)
def internally_parallel(n: int, resources: PipefuncResources) -> dict[str, Any]:
    fork = multiprocessing.get_context("fork")  # its own pool of resources.cpus processes
    workers = [fork.Process(target=time.sleep, args=(0.2 * n,)) for _ in range(resources.cpus)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    done = sum(worker.exitcode == 0 for worker in workers)
    return {"given": resources, "workers": done, **seen()}


def test_internal_parallelism_gets_the_jobs_resources(cluster: sm.Cluster) -> None:
    executor = sm.SlurmExecutor(cluster, memory="100M")
    results = Pipeline([internally_parallel]).map({"n": 2}, executor=executor, parallel=True)
    inner = results["inner"].output
    assert inner["given"] == PipefuncResources(
        cpus=2, memory="400MB", parallelization_mode="internal"
    )
    assert (inner["SLURM_CPUS_PER_TASK"], inner["SLURM_MEM_PER_NODE"]) == ("2", "400")
    assert inner["workers"] == 2  # it did run its own processes inside the job
    assert inner["pid"] != os.getpid()


@pytest.mark.slurm_only  # nodes and tasks per node exist only for SLURM
def test_nodes_with_cpus_per_node(cluster: sm.Cluster) -> None:
    @pipefunc(output_name="spread", resources={"nodes": 1, "cpus_per_node": 2})
    def spread(a: int) -> dict[str, Any]:
        keys = ("SLURM_JOB_NUM_NODES", "SLURM_NTASKS_PER_NODE")
        return {**seen(), **{key: os.environ.get(key) for key in keys}}

    executor = sm.SlurmExecutor(cluster, memory="100M")
    got = Pipeline([spread]).map({"a": 1}, executor=executor, parallel=True)["spread"].output
    assert (got["SLURM_JOB_NUM_NODES"], got["SLURM_NTASKS_PER_NODE"]) == ("1", "1")
    assert got["SLURM_CPUS_PER_TASK"] == "2"


# -- a dict of executors ----------------------------------------------------------------------
@pipefunc(output_name="remote", mapspec="x[i] -> remote[i]", resources={"cpus": 2})
def on_slurm(x: int) -> dict[str, Any]:
    return {"x": x, **seen()}


@pipefunc(output_name="local", mapspec="remote[i] -> local[i]")
def on_this_machine(remote: dict[str, Any]) -> dict[str, Any]:
    return {"from": remote["x"], **seen()}


def test_a_dict_of_executors_runs_some_outputs_on_slurm(cluster: sm.Cluster) -> None:
    before = _sbatch(cluster)
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as threads:
        results = Pipeline([on_slurm, on_this_machine]).map(
            {"x": range(4)},
            executor={"remote": sm.SlurmExecutor(cluster), "": threads},
            parallel=True,
        )
    remote, local = list(results["remote"].output), list(results["local"].output)
    assert {e["SLURM_CPUS_PER_TASK"] for e in remote} == {"2"}
    assert all(e["pid"] != os.getpid() and e["SLURM_JOB_ID"] for e in remote)
    assert [e["from"] for e in local] == [0, 1, 2, 3]
    assert {e["pid"] for e in local} == {os.getpid()}
    assert {e["SLURM_JOB_ID"] for e in local} == {os.environ.get("SLURM_JOB_ID")}
    assert _sbatch(cluster) - before == 1


# -- map_async, progress, and bursts -----------------------------------------------------------
@pipefunc(output_name="slow", mapspec="x[i] -> slow[i]")
def staggered(x: int) -> int:
    time.sleep(0.5 * x)
    return x


@pipefunc(output_name="slow_total")
def slow_total(slow: Any) -> int:
    return int(sum(slow))


def test_map_async_awaits_with_progress_as_tasks_end(cluster: sm.Cluster, tmp_path: Path) -> None:
    async def run() -> tuple[Any, list[int], int]:
        runner = Pipeline([staggered, slow_total]).map_async(
            {"x": range(6)},
            executor=sm.SlurmExecutor(cluster, memory="100M"),
            run_folder=tmp_path,
            show_progress="headless",
        )
        status = runner.progress.progress_dict["slow"]  # type: ignore[union-attr]
        counts = []
        while not runner.task.done():
            counts.append(status.n_completed)
            await asyncio.sleep(0.1)
        result = await runner.task
        return result, counts, status.n_total

    result, counts, total = asyncio.run(run())
    assert result["slow_total"].output == 15
    assert total == 6 and counts[-1] == 6
    assert any(0 < count < 6 for count in counts)  # progress moved as SLURM tasks ended


@pipefunc(output_name="many", mapspec="x[i] -> many[i]", resources_scope="element")
def tiny(x: int) -> int:
    return x * x


def test_a_burst_of_element_submits_is_few_sbatch_calls(cluster: sm.Cluster) -> None:
    before = _sbatch(cluster)
    executor = sm.SlurmExecutor(cluster, memory="100M")
    results = Pipeline([tiny]).map({"x": range(60)}, executor=executor, parallel=True)
    assert list(results["many"].output) == [x * x for x in range(60)]
    assert _sbatch(cluster) - before == 1  # 60 element submits, equal resources: one array


# -- failures ------------------------------------------------------------------------------------
@pipefunc(output_name="fragile", mapspec="x[i] -> fragile[i]")
def fragile(x: int) -> int:
    if x == 2:
        raise ValueError(f"element {x} is bad")
    return x


@pipefunc(output_name="hog", resources={"memory": "100MB"})
def hog(megabytes: int) -> int:
    block = bytearray(megabytes * 2**20)
    for i in range(0, len(block), 4096):
        block[i] = 1
    time.sleep(5)
    return len(block)


def test_a_remote_error_reaches_pipefunc_with_its_traceback(cluster: sm.Cluster) -> None:
    with pytest.raises(ValueError, match="element 2 is bad") as caught:
        Pipeline([fragile]).map(
            {"x": range(4)}, executor=sm.SlurmExecutor(cluster, memory="100M"), parallel=True
        )
    cause = caught.value.__cause__
    assert isinstance(cause, sm.RemoteTraceback)
    assert "Remote traceback (job " in str(cause) and ", in fragile\n" in str(cause)


def test_a_killed_job_is_our_job_failed_error(cluster: sm.Cluster) -> None:
    with pytest.raises(sm.JobFailedError) as caught:
        Pipeline([hog]).map({"megabytes": 400}, executor=sm.SlurmExecutor(cluster), parallel=True)
    assert caught.value.state is sm.JobState.OUT_OF_MEMORY
    assert caught.value.job_id


def test_resources_we_cannot_honour_fail_before_anything_is_sent(cluster: sm.Cluster) -> None:
    @pipefunc(output_name="bad", resources={"extra_args": {"executor_type": "loky"}})
    def bad(a: int) -> int:
        return a

    before = _sbatch(cluster)
    with pytest.raises(sm.ResourceError, match=r"bad: pipefunc resources extra_args"):
        Pipeline([bad]).map({"a": 1}, executor=sm.SlurmExecutor(cluster), parallel=True)
    assert _sbatch(cluster) == before
