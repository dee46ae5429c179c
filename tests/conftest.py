"""Fixtures: the real dev cluster (never mocked, never silently skipped)."""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

import slurm_magics as sm
from slurm_magics.transport import LocalTransport, SSHTransport, Transport
from tests.helpers import require_cluster, ssh_options


def pytest_configure(config: pytest.Config) -> None:
    # One registry per test run, shared with the processes the tests start.
    folder = tempfile.mkdtemp(prefix="slurm-magics-registry-")
    os.environ.setdefault("SLURM_MAGICS_REGISTRY", f"{folder}/registry.db")


@pytest.fixture(scope="session")
def cluster_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("slurm_magics_root")


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


@pytest.fixture(scope="session", params=_transports())
def cluster(request: pytest.FixtureRequest, cluster_root: Path) -> Iterator[sm.Cluster]:
    """The dev cluster, connected once per transport for the session and made the default.

    "local" runs SLURM's commands here; "ssh" reaches the same cluster through the dev
    cluster's sshd on loopback (same files, so tests may look at them directly).
    """
    require_cluster()
    if request.param == "ssh":
        options = ssh_options()
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
    require_cluster()
    cluster = sm.Cluster(LocalTransport(), root=str(cluster_root))
    yield cluster
    cluster.close()


@pytest.fixture
def fresh_cluster(cluster_root: Path, cluster: sm.Cluster) -> Iterator[sm.Cluster]:
    """A separate Cluster object (own poller, own counters, own connection), not the default."""
    transport: Transport = LocalTransport()
    if isinstance(cluster.transport, SSHTransport):
        options = ssh_options()
        transport = SSHTransport(options.pop("host"), **options)
    other = sm.Cluster(transport, root=str(cluster_root), python=cluster.python)
    yield other
    other.close()
