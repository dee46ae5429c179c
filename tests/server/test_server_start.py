"""GET jobs/<id>/start: why a job of the registry waits and when SLURM expects it to start
(one squeue --start per request), in a real `jupyter server` on the dev cluster."""

from __future__ import annotations

import datetime
import json
import subprocess
from collections.abc import Iterator

import pytest

import slurm_magics as sm
from tests.helpers import wait_for
from tests.server.lab_server import JupyterProcess, jupyter

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JupyterProcess]:
    root = tmp_path_factory.mktemp("server-root")
    (root / "demo.ipynb").write_text(json.dumps({"cells": [], "metadata": {}, "nbformat": 4,
                                                 "nbformat_minor": 5}))  # fmt: skip
    with jupyter("server", root, tmp_path_factory.mktemp("server-logs")) as process:
        yield process


def test_start_of_a_waiting_array_and_refusals(server: JupyterProcess, local: sm.Cluster) -> None:
    begin = datetime.datetime.now() + datetime.timedelta(minutes=10)
    arr = sm.task(lambda x: x, memory="50M", extra={"begin": "now+600"}).on(local).map([1, 2])
    try:
        wait_for(lambda: arr[0].reason == "BeginTime", timeout=60, what="the BeginTime reason")
        for job_id in (arr.job_id, arr[1].job_id):
            reply = server.api("GET", f"jobs/{job_id}/start")
            assert reply.status == 200, reply.body
            body = reply.body
            assert body["job_id"] == job_id and body["pending"] is True
            assert body["reason"] == "BeginTime"
            assert body["explanation"] == "BeginTime: asked to start later (--begin)"
            start = datetime.datetime.fromisoformat(body["start"])
            assert abs((start - begin).total_seconds()) < 60
            assert body["text"].startswith("BeginTime: asked to start later (--begin) · expected")
        # a job that is not in the registry, or not a SLURM id: refused, saying why
        assert server.api("GET", "jobs/999999/start").status == 404
        bad = server.api("GET", "jobs/12;rm/start")
        assert bad.status == 400 and "job id" in bad.body["message"]
    finally:
        arr.cancel()
    wait_for(lambda: not server.api("GET", f"jobs/{arr.job_id}/start").body["pending"], 60,
             "the cancelled array to leave the pending state")  # fmt: skip
    subprocess.run(["scancel", arr.job_id], check=False)
