"""A resources function with scope="map" (the default) runs once per .map(), with each
argument given as the list of its values, and the whole map is ONE array job with those
resources, seen inside the tasks (issue 12: an untested path)."""

from __future__ import annotations

import os
from typing import Any

import pytest

import slurm_magics as sm

pytestmark = pytest.mark.cluster

seen: list[tuple[list[Any], list[Any]]] = []


def by_largest(xs: list[int], labels: list[str]) -> sm.Resources:
    seen.append((xs, labels))
    return sm.Resources(cpus=2 if max(xs) > 2 else 1, memory=f"{100 + 10 * max(xs)}M")


def what_it_got(x: int, label: str) -> tuple[str, int, str | None, str | None]:
    return label, x, os.environ.get("SLURM_CPUS_PER_TASK"), os.environ.get("SLURM_MEM_PER_NODE")


def test_a_map_scoped_resources_function_sizes_the_whole_map_once(cluster: sm.Cluster) -> None:
    seen.clear()
    sbatches = cluster.counters.get("sbatch", 0)
    task = sm.task(what_it_got, resources=by_largest, scope="map").on(cluster)
    array = task.map([1, 2, 3], ["a", "b", "c"])
    assert seen == [([1, 2, 3], ["a", "b", "c"])]  # once, with each argument's values
    assert cluster.counters["sbatch"] - sbatches == 1  # one array job
    assert len(array.job_ids) == 1
    assert array.result(timeout=120) == [
        ("a", 1, "2", "130"),
        ("b", 2, "2", "130"),
        ("c", 3, "2", "130"),
    ]
    # ... and per element, items with equal resources share an array: two here.
    seen.clear()
    element = sm.task(
        what_it_got, resources=lambda x, label: by_largest([x], [label]), scope="element"
    ).on(cluster)
    split = element.map([1, 2, 3], ["a", "b", "c"])
    assert len(seen) == 3 and len(split.runs) == 3
    assert split.result(timeout=120) == [
        ("a", 1, "1", "110"),
        ("b", 2, "1", "120"),
        ("c", 3, "2", "130"),
    ]
