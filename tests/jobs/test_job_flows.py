"""The four patterns on the real dev cluster, and the poller's constant load."""

from __future__ import annotations

import asyncio
import time

import pytest

import slurm_magics as sm
from tests.helpers import sibling

pytestmark = pytest.mark.cluster


@sm.task(memory="100M", time=5)
def square(x: int) -> int:
    return x * x


@sm.task(memory="100M", time=5)
def total(values: list[int]) -> int:
    return sum(values)


def test_fan_out_fan_in(cluster: sm.Cluster) -> None:
    squares = square.map(range(10))
    summed = total(squares)  # afterok on the array; its values injected on the node
    assert summed.run.dependency == f"afterok:{squares.job_id}"
    assert summed.result(timeout=180) == sum(i * i for i in range(10))


def test_jobs_inside_containers_become_dependencies(cluster: sm.Cluster) -> None:
    a, b = square(2), square(3)
    combine = sm.task(lambda d: d["first"] + d["rest"][0] + sum(d["rest"][1]), memory="100M")
    job = combine({"first": a, "rest": [b, square.map([1, 1])]})
    assert job.result(timeout=180) == 4 + 9 + 2


def test_pipeline_passes_jobs_stage_to_stage(cluster: sm.Cluster) -> None:
    def preprocess(n: int) -> list[int]:
        return list(range(n))

    def transform(xs: list[int]) -> list[int]:
        return [x * 10 for x in xs]

    def validate(xs: list[int]) -> list[int]:
        assert all(x % 10 == 0 for x in xs)
        return xs

    def export(xs: list[int]) -> str:
        return ",".join(map(str, xs))

    stages = [sm.task(f, memory="100M") for f in (preprocess, transform, validate, export)]
    job = stages[0](4)
    for stage in stages[1:]:
        job = stage(job)
    assert job.result(timeout=180) == "0,10,20,30"


def test_dynamic_dependencies_await_then_decide(cluster: sm.Cluster) -> None:
    async def main() -> int:
        first = await square(3)
        branch = square if first > 5 else total
        return await branch(first)

    assert asyncio.run(main()) == 81


def test_done_jobs_pass_by_value(cluster: sm.Cluster) -> None:
    done = square(4)
    assert done.result(timeout=120) == 16
    follow = square(done)
    assert follow.run.dependency == ""  # no afterok on a job SLURM may have purged
    assert follow.result(timeout=120) == 256


def test_after_without_values_and_afterany(cluster: sm.Cluster) -> None:
    def boom() -> None:
        raise RuntimeError("upstream failed")

    first = cluster.submit(boom)
    report = sm.task(lambda: "ran anyway", memory="100M").after(first, condition="afterany")()
    assert report.run.dependency == f"afterany:{first.job_id}"
    assert report.result(timeout=120) == "ran anyway"


def test_as_completed_sync_and_async(cluster: sm.Cluster) -> None:
    jobs = [square(i) for i in range(3)]
    assert sorted(j.result() for j in sm.as_completed(jobs, timeout=120)) == [0, 1, 4]

    async def collect() -> list[int]:
        return sorted([j.result() async for j in sm.as_completed([square(5), square(6)])])

    assert asyncio.run(collect()) == [25, 36]


def test_progress_bar_outside_notebooks(
    cluster: sm.Cluster, capsys: pytest.CaptureFixture[str]
) -> None:
    arr = square.map(range(5))
    assert arr.wait(timeout=180, progress=True)
    assert "5/5" in capsys.readouterr().err


def test_idle_scheduler_calls_do_not_grow_with_tracked_jobs(cluster: sm.Cluster) -> None:
    one, many = sibling(cluster), sibling(cluster)
    held = sm.task(lambda x: x, memory="100M", extra={"hold": True})
    try:
        single = held.on(one)(0)
        thousand = held.on(many).map(range(1000))
        time.sleep(25)  # let both pollers back off to their idle interval
        start = (one.counters.get("squeue", 0), many.counters.get("squeue", 0))
        time.sleep(30)
        calls_one = one.counters["squeue"] - start[0]
        calls_many = many.counters["squeue"] - start[1]
        assert abs(calls_one - calls_many) <= 1
        assert calls_one / 30 < 0.2 and calls_many / 30 < 0.2
        assert one.counters.get("sacct", 0) == many.counters.get("sacct", 0) == 0
    finally:
        single.cancel()
        thousand.cancel()
        one.close()
        many.close()
