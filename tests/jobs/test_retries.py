"""Retries on the real dev cluster: same future across attempts, dependents wait for it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import slurm_magics as sm

pytestmark = pytest.mark.cluster


def flaky(marker: str) -> str:
    if not os.path.exists(marker):
        Path(marker).touch()
        raise RuntimeError("the first attempt fails")
    return "second attempt"


def test_python_errors_are_not_retried_unless_asked(cluster: sm.Cluster, tmp_path: Path) -> None:
    job = sm.task(flaky, memory="100M", retries=2)(str(tmp_path / "once"))
    with pytest.raises(RuntimeError, match="first attempt"):
        job.result(timeout=120)
    assert cluster.registry.attempts_of(job.run.run_id) == []


def test_retry_keeps_one_future_and_its_dependents(cluster: sm.Cluster, tmp_path: Path) -> None:
    task = sm.task(flaky, memory="100M", retries=2, retry_on=["exception"])
    job = task(str(tmp_path / "marker"))
    first_id = job.job_id
    downstream = sm.task(lambda text: text + "!", memory="100M")(job)
    assert job.result(timeout=180) == "second attempt"
    assert downstream.result(timeout=120) == "second attempt!"
    assert job.job_id == first_id  # requeued under the same SLURM id
    attempts = cluster.registry.attempts_of(job.run.run_id)
    assert [(element, attempt) for element, attempt, _ in attempts] == [(0, 1)]
    assert "first attempt fails" in attempts[0][2]


def test_retries_of_array_elements(cluster: sm.Cluster, tmp_path: Path) -> None:
    markers = [str(tmp_path / f"m{i}") for i in range(3)]
    arr = sm.task(flaky, memory="100M").with_options(retries=1, retry_on="exception").map(markers)
    assert arr.result(timeout=180) == ["second attempt"] * 3


def test_bad_retry_options_raise_before_submitting(cluster: sm.Cluster) -> None:
    with pytest.raises(sm.ResourceError, match="retries=-1"):
        sm.task(flaky, retries=-1)
    with pytest.raises(sm.ResourceError, match="'SOMETIMES'"):
        sm.task(flaky, retry_on=["SOMETIMES"])
