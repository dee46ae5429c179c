"""Fixtures: the real dev cluster (never mocked, never silently skipped)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import slurm_magics as sm
from slurm_magics.backends import LocalScheduler
from slurm_magics.devcluster import load_info
from slurm_magics.transport import LocalTransport, SSHTransport, Transport


def pytest_configure(config: pytest.Config) -> None:
    # One registry per test run, shared with the processes the tests start.
    folder = tempfile.mkdtemp(prefix="slurm-magics-registry-")
    os.environ.setdefault("SLURM_MAGICS_REGISTRY", f"{folder}/registry.db")


def _require_cluster() -> None:
    if shutil.which("sinfo") is None:
        pytest.fail("no SLURM here: run `slurm-magics devcluster up` (as root) before the tests")
    probe = subprocess.run(["sinfo", "--noheader", "-o", "%t"], capture_output=True, text=True)
    states = probe.stdout.split()
    if probe.returncode != 0 or not any(
        s.startswith(("idle", "mix", "alloc", "comp")) for s in states
    ):
        pytest.fail(
            f"the dev cluster is not usable (sinfo: {probe.stdout.strip()} {probe.stderr.strip()});"
            " run `slurm-magics devcluster up`"
        )


@pytest.fixture(scope="session")
def cluster_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("slurm_magics_root")


def _ssh_options() -> dict[str, Any]:
    """How to reach the dev cluster's own sshd: root@127.0.0.1:PORT, its key, its known_hosts."""
    ssh = load_info().ssh
    return {
        "host": ssh.host,
        "user": ssh.user,
        "port": ssh.port,
        "known_hosts": ssh.known_hosts_path,
        "client_keys": [ssh.key_path],
    }


def _transports() -> list[str]:
    # Every test of the `cluster` fixture runs on SLURM locally ("local"), on SLURM over SSH
    # ("ssh") and on the local backend without SLURM ("backend"), so the three cannot
    # drift; a subset can be chosen with SLURM_MAGICS_TEST_TRANSPORTS=local,ssh (say).
    chosen = os.environ.get("SLURM_MAGICS_TEST_TRANSPORTS", "local,ssh,backend")
    return [name.strip() for name in chosen.split(",") if name.strip()]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Tests of what only SLURM itself does (its own scancel, say) do not
    # exist for the local backend: deselected (and counted as such), never skipped.
    dropped = [
        item
        for item in items
        if item.get_closest_marker("slurm_only")
        and getattr(item, "callspec", None) is not None
        and item.callspec.params.get("cluster") == "backend"
    ]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = [item for item in items if item not in dropped]


def sibling(cluster: sm.Cluster, **options: Any) -> sm.Cluster:
    """Another Cluster object of the same kind (own poller and counters), not the default."""
    if isinstance(cluster.scheduler, LocalScheduler):
        options.setdefault("scheduler", LocalScheduler())
    options.setdefault("python", cluster.python)
    return sm.Cluster(cluster.transport, root=cluster.root, **options)


@pytest.fixture(scope="session", params=_transports())
def cluster(request: pytest.FixtureRequest, cluster_root: Path) -> Iterator[sm.Cluster]:
    """The dev cluster, connected once per transport for the session and made the default.

    "local" runs SLURM's commands here; "ssh" reaches the same cluster through the dev
    cluster's sshd on loopback (same files, so tests may look at them directly).
    """
    _require_cluster()
    if request.param == "ssh":
        options = _ssh_options()
        connected = sm.connect(
            options.pop("host"),
            **options,
            python=sys.executable,
            root=str(cluster_root),
            partition="debug",
        )
    elif request.param == "backend":
        connected = sm.connect(backend="local", root=str(cluster_root))
    else:
        connected = sm.connect(root=str(cluster_root), partition="debug")
    yield connected
    connected.close()


@pytest.fixture(scope="module")
def local(cluster_root: Path) -> Iterator[sm.Cluster]:
    """This machine's SLURM as other processes (a Jupyter server, a second kernel) reach
    it: the same registry and cluster key, its own poller."""
    _require_cluster()
    cluster = sm.Cluster(LocalTransport(), root=str(cluster_root))
    yield cluster
    cluster.close()


@pytest.fixture
def fresh_cluster(cluster_root: Path, cluster: sm.Cluster) -> Iterator[sm.Cluster]:
    """A separate Cluster object (own poller, own counters, own connection), not the default."""
    transport: Transport = LocalTransport()
    if isinstance(cluster.transport, SSHTransport):
        options = _ssh_options()
        transport = SSHTransport(options.pop("host"), **options)
    other = sm.Cluster(transport, root=str(cluster_root), python=cluster.python)
    yield other
    other.close()


def squeue_ids() -> set[str]:
    """Job ids the controller still lists as pending or running."""
    out = subprocess.run(
        ["squeue", "--noheader", "-t", "PD,R,CG", "-o", "%i"], capture_output=True, text=True
    ).stdout
    return set(out.split())


def still_queued(ids: set[str], within: float = 30.0) -> set[str]:
    """Those of ``ids`` still pending, running or completing after ``within`` seconds.

    A cancelled running task passes through COMPLETING while slurmd kills it; one whose
    launch raced the cancel lasts until SIGKILL after the dev cluster's KillWait (10 s).
    """
    deadline = time.monotonic() + within
    while True:
        left = ids & squeue_ids()
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.5)
