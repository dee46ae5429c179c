"""The SLURM panel's final states from sacct, on real jobs of the dev cluster.

A process submits jobs through slurm_magics and dies at once (``os._exit``): nothing
records how they end. Once a job has left the queue, the job list would show its items
UNKNOWN; the server asks sacct (once for all of them, at most once per interval), shows
how they ended, and records it in the registry.

SLURM lists ended jobs (``squeue --states=all``) until MinJobAge, 300 s on the dev
cluster: too long for a test. So the service of the first tests reads the queue as
squeue does after that time, by default, without ended jobs (``--states=PD,R,S,CG,CF``);
the server of the last test reads it as the extension does, and a task of a pending array
range cancelled from outside leaves even ``squeue --states=all`` at once.
"""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

import slurm_magics as sm
from slurm_magics.core.parsing import (
    SACCT_FORMAT,
    SQUEUE_FORMAT,
    QueueRow,
    parse_sacct,
    parse_squeue,
)
from slurm_magics.core.states import normalise_state
from slurm_magics.jobs.registry import Registry
from slurm_magics.scheduler.slurm import Scheduler
from slurm_magics.server.service import SlurmService
from slurm_magics.server.settle import accounting_answers, sacct_ids
from slurm_magics.transport import CommandResult, LocalTransport
from tests.helpers import require_cluster, squeue_ids, wait_for
from tests.server.lab_server import JupyterProcess, jupyter

#: submits one job per argument ("returns", "raises", "hog", "killed", or "held": a held array of
#: four tasks), prints "SUBMITTED <run id> <SLURM id>" for each, and dies at once
SUBMITTER = textwrap.dedent(
    """
    import os, sys, time
    import slurm_magics as sm

    def returns():
        return 42

    def raises():
        raise ValueError("no good")

    def hog():
        block = bytearray(400 * 1024 * 1024)
        for i in range(0, len(block), 4096):
            block[i] = 1
        time.sleep(5)
        return len(block)

    def killed():  # SIGKILL far below its memory limit: no evidence of a memory kill
        time.sleep(1)
        os.kill(os.getpid(), 9)

    cluster = sm.connect(root=sys.argv[1], partition="debug")
    for kind in sys.argv[2:]:
        if kind == "held":
            task = sm.task(lambda x: x, memory="100M", name="held", extra={"hold": True})
            array = task.on(cluster).map(range(4))
            print("SUBMITTED", array.runs[0].run_id, array.job_ids[0], flush=True)
        else:
            job = sm.task(globals()[kind], memory="100M", name=kind).on(cluster)()
            print("SUBMITTED", job.run.run_id, job.job_id, flush=True)
    os._exit(0)  # before any job ends: no process records how they end
    """
)
#: a run younger than this may be missing from a queue snapshot: not UNKNOWN yet
QUEUE_GRACE = 15.0


def submit_and_die(root: Path, notebook: str, *kinds: str) -> list[tuple[str, str]]:
    """(run id, SLURM id) of the jobs a process submitted before it died."""
    env = {**os.environ, "SLURM_MAGICS_NOTEBOOK": notebook}
    env.pop("JPY_SESSION_NAME", None)
    done = subprocess.run(
        [sys.executable, "-c", SUBMITTER, str(root), *kinds],
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
        check=False,
    )
    submitted = [
        (fields[1], fields[2])
        for fields in (line.split() for line in done.stdout.splitlines())
        if len(fields) == 3 and fields[0] == "SUBMITTED"
    ]
    assert done.returncode == 0 and len(submitted) == len(kinds), done
    return submitted


def sacct_states(job_ids: Sequence[str]) -> dict[str, str]:
    """What accounting says of jobs, by id (the test's own look, not the server's)."""
    out = subprocess.run(
        ["sacct", "-X", "-n", "-P", f"--format={SACCT_FORMAT}", "-j", ",".join(job_ids)],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    answers = accounting_answers(parse_sacct(out))
    return {slurm_id: state for slurm_id, (state, _) in answers.items()}


def wait_until_ended(job_ids: Sequence[str], submitted_at: float) -> None:
    """Until the jobs are out of the live queue, accounting has their end, and the runs
    are older than the queue grace (so the job list would show them UNKNOWN)."""

    def ended() -> bool:
        states = sacct_states(job_ids)
        return not set(job_ids) & squeue_ids() and all(
            slurm_id in states and normalise_state(states[slurm_id]).finished
            for slurm_id in job_ids
        )

    wait_for(ended, 300, f"jobs {job_ids} to end and reach accounting")
    time.sleep(max(0.0, submitted_at + QUEUE_GRACE + 1 - time.time()))


def live_queue(transport: LocalTransport) -> Callable[[], Awaitable[list[QueueRow]]]:
    """The user's queue as squeue shows it by default: pending, running, completing jobs
    (what ``--states=all`` also shows once SLURM has forgotten ended ones)."""

    async def fetch() -> list[QueueRow]:
        user = (await transport.run(["id", "-un"])).check().stdout.strip()
        result = await transport.run(
            ["squeue", "--noheader", "--states=PD,R,S,CG,CF", "-u", user, "-o", SQUEUE_FORMAT]
        )
        return parse_squeue(result.check().stdout)

    return fetch


class SacctWithoutConfig(LocalTransport):
    """This machine, where sacct (really run) fails while ``broken``: it is given a SLURM
    configuration file it cannot use."""

    def __init__(self, config: Path) -> None:
        self.config = config
        self.broken = True

    async def run(
        self, argv: Sequence[str], *, input: bytes | None = None, timeout: float | None = 120.0
    ) -> CommandResult:
        if self.broken and argv[0] == "sacct":
            argv = ["env", f"SLURM_CONF={self.config}", *argv]
        return await super().run(argv, input=input, timeout=timeout)


@pytest.fixture
def notebook() -> str:
    """A notebook name of this test alone: its job list holds only the test's runs."""
    return f"sacct-{uuid.uuid4().hex[:12]}.ipynb"


@pytest.fixture
def registry() -> Iterator[Registry]:
    """The registry the tests, their submitting processes and the server share."""
    opened = Registry(os.environ["SLURM_MAGICS_REGISTRY"])
    yield opened
    opened.close()


def service_of(root: Path, scheduler: Scheduler, *, sacct_interval: float) -> SlurmService:
    assert isinstance(scheduler.transport, LocalTransport)
    return SlurmService(
        root_dir=str(root),
        registry=lambda: Registry(os.environ["SLURM_MAGICS_REGISTRY"]),
        scheduler=scheduler,
        fetch_queue=live_queue(scheduler.transport),
        sacct_interval=sacct_interval,
    )


async def listing(service: SlurmService, notebook: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The runs of a notebook's job list by run id, and the server's sacct status."""
    body = await service.jobs(offset=0, limit=500, notebook=notebook)
    runs = {run["run_id"]: run for group in body["notebooks"] for run in group["runs"]}
    return runs, body["accounting"]


# -- pure parts -----------------------------------------------------------------------------
def test_one_sacct_argument_per_job_or_task_and_answers_by_slurm_id() -> None:
    assert sacct_ids(["5_1", "5_2", "6_3", "7", "5_9"]) == ["5", "6_3", "7"]
    rows = parse_sacct(
        "5_1|COMPLETED|0:0|vm|00:00:01\n"
        "5_[2-3]|CANCELLED by 0|0:0|None assigned|00:00:00\n"
        "7|OUT_OF_MEMORY|0:125|vm|00:00:04\n"
    )
    assert accounting_answers(rows) == {
        "5_1": ("COMPLETED", "0:0"),
        "5_2": ("CANCELLED by 0", "0:0"),
        "5_3": ("CANCELLED by 0", "0:0"),
        "7": ("OUT_OF_MEMORY", "0:125"),
    }


# -- real jobs, whose submitting process died -------------------------------------------------
@pytest.mark.cluster
def test_jobs_of_a_dead_process_show_how_they_ended_from_one_sacct_call(
    cluster_root: Path, tmp_path: Path, notebook: str, registry: Registry
) -> None:
    require_cluster()
    kinds = ("returns", "raises", "hog", "killed")
    submitted = dict(zip(kinds, submit_and_die(cluster_root, notebook, *kinds), strict=True))
    runs = {kind: registry.run(run_id) for kind, (run_id, _) in submitted.items()}
    assert all(run is not None for run in runs.values())
    assert [j.state for r, _ in submitted.values() for j in registry.jobs_of(r)] == ["PENDING"] * 4
    wait_until_ended(
        [slurm_id for _, slurm_id in submitted.values()],
        max(run.submitted_at for run in runs.values() if run is not None),
    )

    scheduler = Scheduler(LocalTransport())
    service = service_of(tmp_path, scheduler, sacct_interval=1.0)

    async def scenario() -> None:
        shown, accounting = await listing(service, notebook)
        assert scheduler.counters["sacct"] == 1  # one call for the four jobs
        assert accounting["calls"] == 1 and accounting["error"] is None
        expected = {
            "returns": "COMPLETED",
            "raises": "FAILED",
            "hog": "OUT_OF_MEMORY",
            "killed": "FAILED",
        }
        for kind, (run_id, _) in submitted.items():
            assert shown[run_id]["counts"] == {expected[kind]: 1}, (kind, shown[run_id])
        # Recorded: a later listing shows the same without sacct, past the interval too.
        for pause in (0.0, 1.5):
            await asyncio.sleep(pause)
            again, _ = await listing(service, notebook)
            assert {r: again[r]["counts"] for r in again} == {r: shown[r]["counts"] for r in shown}
        assert scheduler.counters["sacct"] == 1

    try:
        asyncio.run(scenario())
    finally:
        service.registry.close()

    # The registry holds the ends, as a kernel following the jobs would have recorded them.
    ends = {kind: registry.jobs_of(run_id)[0] for kind, (run_id, _) in submitted.items()}
    assert ends["returns"].state == "COMPLETED" and ends["returns"].error is None
    assert ends["raises"].state == "FAILED"
    assert ends["raises"].error is not None
    assert ends["raises"].error.startswith(f"JobFailedError: job {submitted['raises'][1]} failed")
    assert ends["hog"].state == "OUT_OF_MEMORY"
    assert ends["hog"].error is not None and "ran out of memory" in ends["hog"].error
    assert ends["killed"].state == "FAILED"
    assert ends["killed"].error is not None and "killed by signal 9" in ends["killed"].error
    assert "memory" not in ends["killed"].error

    # sm.jobs() in a new process agrees: the value, the remote error, the memory kill.
    local = sm.Cluster(LocalTransport(), root=str(cluster_root))
    try:
        found = {
            entry.run.run_id: entry
            for entry in sm.jobs(notebook=notebook, cluster=local)
            if isinstance(entry, sm.Job)
        }
        assert found[submitted["returns"][0]].result(timeout=60) == 42
        with pytest.raises(ValueError, match="no good"):
            found[submitted["raises"][0]].result(timeout=60)
        hog = found[submitted["hog"][0]]
        with pytest.raises(sm.JobFailedError, match="ran out of memory"):
            hog.result(timeout=60)
        assert hog.state is sm.JobState.OUT_OF_MEMORY
        with pytest.raises(sm.JobFailedError, match="killed by signal 9") as caught:
            found[submitted["killed"][0]].result(timeout=60)
        assert caught.value.state is sm.JobState.FAILED
    finally:
        local.close()


@pytest.mark.cluster
def test_a_failing_sacct_leaves_the_listing_unknown_logs_and_is_asked_again_later(
    cluster_root: Path,
    tmp_path: Path,
    notebook: str,
    registry: Registry,
    caplog: pytest.LogCaptureFixture,
) -> None:
    require_cluster()
    ((run_id, slurm_id),) = submit_and_die(cluster_root, notebook, "returns")
    record = registry.run(run_id)
    assert record is not None
    wait_until_ended([slurm_id], record.submitted_at)

    (tmp_path / "slurm.conf").write_text("")
    transport = SacctWithoutConfig(tmp_path / "slurm.conf")
    scheduler = Scheduler(transport)
    service = service_of(tmp_path, scheduler, sacct_interval=3.0)

    async def scenario() -> None:
        with caplog.at_level(logging.WARNING, logger="slurm_magics.server.settle"):
            shown, accounting = await listing(service, notebook)
        assert shown[run_id]["counts"] == {"UNKNOWN": 1}
        assert scheduler.counters["sacct"] == 1
        assert "sacct" in accounting["error"] and "failed with exit code" in accounting["error"]
        assert any("cannot learn from sacct" in r.getMessage() for r in caplog.records)
        # Within the interval: not asked again, still UNKNOWN.
        shown, _ = await listing(service, notebook)
        assert shown[run_id]["counts"] == {"UNKNOWN": 1}
        assert scheduler.counters["sacct"] == 1
        # sacct works again: past the interval, the next listing learns the end.
        transport.broken = False
        await asyncio.sleep(3.1)
        shown, accounting = await listing(service, notebook)
        assert shown[run_id]["counts"] == {"COMPLETED": 1}
        assert scheduler.counters["sacct"] == 2 and accounting["error"] is None

    try:
        asyncio.run(scenario())
    finally:
        service.registry.close()
    assert [job.state for job in registry.jobs_of(run_id)] == ["COMPLETED"]


# -- the extension in a real `jupyter server` -------------------------------------------------
@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JupyterProcess]:
    root = tmp_path_factory.mktemp("server-root")
    with jupyter("server", root, tmp_path_factory.mktemp("server-logs")) as process:
        yield process


def api_listing(server: JupyterProcess, notebook: str) -> tuple[dict[str, Any], dict[str, Any]]:
    reply = server.api("GET", f"jobs?limit=500&notebook={notebook}")
    assert reply.status == 200, reply
    runs = {run["run_id"]: run for group in reply.body["notebooks"] for run in group["runs"]}
    return runs, reply.body["accounting"]


@pytest.mark.cluster
def test_the_panel_asks_sacct_once_per_interval_and_what_it_does_not_know_stays_unknown(
    server: JupyterProcess, cluster_root: Path, notebook: str, registry: Registry
) -> None:
    require_cluster()
    ((run_id, array_id),) = submit_and_die(cluster_root, notebook, "held")
    try:
        record = registry.run(run_id)
        assert record is not None
        shown, accounting = api_listing(server, notebook)
        assert shown[run_id]["counts"] == {"PENDING": 4}
        before = accounting["calls"]
        # Cancelled from outside, a task of a pending range leaves the queue at once, and
        # accounting never hears of it (only of the range it was split from).
        subprocess.run(["scancel", f"{array_id}_2"], check=True)
        out = subprocess.run(
            ["squeue", "--noheader", "--states=all", "-j", array_id, "-o", "%i"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert out.split() == [f"{array_id}_[0-1,3]"]
        time.sleep(max(0.0, record.submitted_at + QUEUE_GRACE + 1 - time.time()))

        shown, accounting = api_listing(server, notebook)
        assert shown[run_id]["counts"] == {"PENDING": 3, "UNKNOWN": 1}
        assert shown[run_id]["task_states"] == [["PENDING", 2], ["UNKNOWN", 1], ["PENDING", 1]]
        assert accounting["calls"] == before + 1 and accounting["error"] is None
        for _ in range(3):  # within the server's 30 s: no other sacct call
            shown, accounting = api_listing(server, notebook)
            assert shown[run_id]["counts"] == {"PENDING": 3, "UNKNOWN": 1}
            assert accounting["calls"] == before + 1
        assert [job.state for job in registry.jobs_of(run_id)] == ["PENDING"] * 4
    finally:
        subprocess.run(["scancel", array_id], check=False)
