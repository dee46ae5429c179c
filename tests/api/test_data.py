"""Large inputs written once and read by reference on the real dev cluster."""

from __future__ import annotations

import numpy as np
import pytest

import slurm_magics as sm

pytestmark = pytest.mark.cluster


def row_sum(row: object) -> float:
    return float(np.asarray(row).sum())


def kind_and_sum(row: object) -> tuple[str, float]:
    return type(row).__name__, float(np.asarray(row).sum())


def test_file_array_of_numpy_rows_is_memory_mapped(cluster: sm.Cluster) -> None:
    data = np.arange(40, dtype=np.float64).reshape(10, 4)
    array = sm.FileArray.from_data(data, cluster=cluster)
    assert len(array) == 10
    results = sm.task(row_sum, memory="200M").map(array).result(timeout=180)
    assert results == [float(r.sum()) for r in data]
    kind, total = sm.task(kind_and_sum, memory="200M")(array).result(timeout=120)
    assert kind == "memmap"
    assert total == float(data.sum())


def test_file_array_of_python_objects_and_file_value(cluster: sm.Cluster) -> None:
    records = [{"id": i, "payload": "x" * i} for i in range(5)]
    array = sm.FileArray.from_data(records, cluster=cluster)
    lengths = sm.task(lambda r: len(r["payload"]), memory="100M").map(array)
    assert lengths.result(timeout=120) == [0, 1, 2, 3, 4]
    table = sm.FileValue.from_data({"scale": 3}, cluster=cluster)
    scaled = sm.task(lambda x, t: x * t["scale"], memory="100M").map(range(3), [table] * 3)
    assert scaled.result(timeout=120) == [0, 3, 6]
    assert sm.task(len, memory="100M")(array).result(timeout=120) == 5


def test_passing_a_large_object_directly_warns(cluster: sm.Cluster) -> None:
    big = b"x" * (17 * 1024 * 1024)
    with pytest.warns(UserWarning, match="FileValue.from_data"):
        job = sm.task(len, memory="300M")(big)
    assert job.result(timeout=120) == len(big)
