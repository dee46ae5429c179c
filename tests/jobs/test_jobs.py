"""Functions on the real dev cluster: single jobs, maps, results, logs, resources."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

import slurm_magics as sm
from tests.helpers import sibling

pytestmark = pytest.mark.cluster


@sm.task(memory="100M", time=5)
def double(x: int) -> int:
    return 2 * x


@sm.task(memory="100M", time=5)
def describe(**kwargs: object) -> dict[str, object]:
    return dict(kwargs)


def test_single_job_result_state_and_id(cluster: sm.Cluster) -> None:
    job = double(21)
    assert job.job_id.isdigit()
    assert job.result(timeout=120) == 42
    assert job.get_result() == 42
    assert job.state is sm.JobState.COMPLETED
    assert job.done() and job.exception() is None


def test_job_is_awaitable_in_any_loop(cluster: sm.Cluster) -> None:
    async def main() -> list[int]:
        first = await double(1)
        return [first, *await sm.gather(double(2), double(3))]

    assert asyncio.run(main()) == [2, 4, 6]


def test_map_of_1000_items_is_one_sbatch_and_in_order(cluster: sm.Cluster) -> None:
    before = cluster.counters.get("sbatch", 0)
    arr = double.with_options(chunk_size=25).map(range(1000))
    assert cluster.counters["sbatch"] - before == 1
    assert len(arr.job_ids) == 1
    assert arr.result(timeout=300) == [2 * i for i in range(1000)]
    assert arr[999].result() == 1998
    assert arr.counts() == {"COMPLETED": 1000}


def test_map_elements_are_array_tasks(cluster: sm.Cluster) -> None:
    arr = double.map(range(20))
    assert arr.result(timeout=180) == [2 * i for i in range(20)]
    assert arr[7].job_id == f"{arr.job_id}_7"


def test_map_zips_and_dict_items_are_keywords(cluster: sm.Cluster) -> None:
    add = sm.task(lambda a, b: a + b, memory="100M")
    assert add.map([1, 2, 3], [10, 20]).result(timeout=120) == [11, 22]
    configs = [{"lr": 0.1, "depth": 2}, {"lr": 0.01}]
    assert describe.map(configs).result(timeout=120) == configs
    tuples = sm.task(lambda t: t[::-1], memory="100M").map([(1, 2), (3, 4)])
    assert tuples.result(timeout=120) == [(2, 1), (4, 3)]


def test_split_past_max_array_size(cluster_root: object, cluster: sm.Cluster) -> None:
    small = sibling(cluster, max_array_size=10)
    try:
        arr = double.on(small).map(range(25))
        assert len(arr.job_ids) == 3
        assert small.counters["sbatch"] == 3
        assert arr.result(timeout=180) == [2 * i for i in range(25)]
    finally:
        small.close()


def test_stdout_and_stderr_come_back(cluster: sm.Cluster) -> None:
    def chatty() -> str:
        import sys

        print("hello from the node")
        print("a warning", file=sys.stderr)
        return "ok"

    job = cluster.submit(chatty)
    assert job.result(timeout=120) == "ok"
    assert "hello from the node" in job.stdout()
    assert "a warning" in job.stderr()


def test_resources_reach_slurm(cluster: sm.Cluster) -> None:
    def slurm_env() -> tuple[str | None, str | None]:
        return os.environ.get("SLURM_CPUS_PER_TASK"), os.environ.get("SLURM_MEM_PER_NODE")

    task = sm.task(slurm_env, cpus=2, memory="300M", time="00:05:00")
    assert task().result(timeout=120) == ("2", "300")
    assert task.with_options(cpus=1, memory="200M")().result(timeout=120) == ("1", "200")


def test_dynamic_resources_per_element(cluster: sm.Cluster) -> None:
    def memory_of(x: int) -> str | None:
        return os.environ.get("SLURM_MEM_PER_NODE")

    task = sm.task(
        memory_of,
        resources=lambda x: sm.Resources(memory=f"{100 * (1 + x % 2)}M"),
        scope="element",
    )
    arr = task.map(range(4))
    assert arr.result(timeout=180) == ["100", "200", "100", "200"]
    assert len(arr.job_ids) == 2  # one array per distinct resource request


def test_function_receives_its_resources(cluster: sm.Cluster) -> None:
    def own(resources: object = None) -> tuple[int, int]:
        return resources.cpus, resources.memory  # type: ignore[attr-defined]

    task = sm.task(own, cpus=2, memory="200M", resources_variable="resources")
    assert task().result(timeout=120) == (2, 200)


def test_max_concurrent_throttles_the_array(cluster: sm.Cluster) -> None:
    arr = double.with_options(max_concurrent=2).map(range(6))
    script = Path(arr.runs[0].run_dir, "slice0.sh").read_text()
    assert "#SBATCH --array=0-5%2" in script
    assert arr.result(timeout=180) == [0, 2, 4, 6, 8, 10]


def test_closures_and_classes_from_the_test_module_travel_by_value(cluster: sm.Cluster) -> None:
    class Point:
        def __init__(self, x: int) -> None:
            self.x = x

    offset = 5
    task = sm.task(lambda p: Point(p.x + offset), memory="100M")
    result = task(Point(1)).result(timeout=120)
    assert isinstance(result, Point) and result.x == 6


def test_run_folders_are_private(cluster: sm.Cluster) -> None:
    job = double(1)
    job.result(timeout=120)
    assert os.stat(job.run.run_dir).st_mode & 0o777 == 0o700
    assert os.stat(cluster.root).st_mode & 0o077 == 0
