"""Fixtures: the real dev cluster (never mocked, never silently skipped)."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

import slurm_magics as sm
from slurm_magics.transport import LocalTransport


def _require_cluster() -> None:
    if shutil.which("sinfo") is None:
        pytest.fail("no SLURM here: run `slurm-magics devcluster up` (as root) before the tests")
    probe = subprocess.run(["sinfo", "--noheader", "-o", "%t"], capture_output=True, text=True)
    states = probe.stdout.split()
    if probe.returncode != 0 or not any(s.startswith(("idle", "mix", "alloc")) for s in states):
        pytest.fail(
            f"the dev cluster is not usable (sinfo: {probe.stdout.strip()} {probe.stderr.strip()});"
            " run `slurm-magics devcluster up`"
        )


@pytest.fixture(scope="session")
def cluster_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("slurm_magics_root")


@pytest.fixture(scope="session")
def cluster(cluster_root: Path) -> Iterator[sm.Cluster]:
    """The dev cluster, connected once for the session and made the default."""
    _require_cluster()
    connected = sm.connect(root=str(cluster_root), partition="debug")
    yield connected
    connected.close()


@pytest.fixture
def fresh_cluster(cluster_root: Path, cluster: sm.Cluster) -> Iterator[sm.Cluster]:
    """A separate Cluster object (own poller, own counters), not the default."""
    other = sm.Cluster(LocalTransport(), root=str(cluster_root))
    yield other
    other.close()


def squeue_ids() -> set[str]:
    """Job ids the controller still lists as pending or running."""
    out = subprocess.run(
        ["squeue", "--noheader", "-t", "PD,R,CG", "-o", "%i"], capture_output=True, text=True
    ).stdout
    return set(out.split())
