"""A worker pool reached over SSH outlives a dropped connection (real sshd, real SLURM).

The workers reach the laptop through a relay on the login node that lives on the client's
SSH connection. When that connection drops (sshd's side killed, as a crash or a network
cut would), the pool starts another relay over the reconnected transport and rewrites the
address its workers read when they reconnect: the same workers take tasks again.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import slurm_magics as sm
from slurm_magics.devcluster import load_info
from slurm_magics.jobs.engine import engine
from slurm_magics.transport import SSHTransport
from tests.helpers import drop, transport_for, wait_for

pytestmark = pytest.mark.cluster


def square(x: int) -> int:
    return x * x


@pytest.fixture
def ssh_cluster(cluster_root: Path) -> Iterator[sm.Cluster]:
    """Its own SSH connection (dropping it leaves the session's cluster alone)."""
    cluster = sm.Cluster(
        transport_for(load_info().ssh),
        python=sys.executable,
        root=str(cluster_root),
        defaults=sm.Resources(partition="debug"),
    )
    yield cluster
    cluster.close()


def test_a_pool_over_ssh_takes_tasks_again_after_the_connection_drops(
    ssh_cluster: sm.Cluster,
) -> None:
    transport = ssh_cluster.transport
    assert isinstance(transport, SSHTransport)
    with sm.WorkerPool(
        2, memory="200M", time="00:10:00", cluster=ssh_cluster, name="droppool"
    ) as pool:
        pool.ready(2).result(timeout=300)
        assert pool.map(square, range(10)).result(timeout=120) == [x * x for x in range(10)]
        workers = {worker.name for worker in pool.workers}
        relay = pool._relay
        assert relay is not None and relay.address is not None
        before = relay.address
        drop(transport, load_info().ssh)
        # tasks given after the drop run, on the same workers (each re-executes itself on a
        # lost connection, same job and pid with "#1" added, and reads the new address)
        assert pool.map(square, range(10, 20)).result(timeout=120) == [x * x for x in range(10, 20)]
        wait_for(lambda: len(pool.workers) == 2, timeout=60, what="both workers back")
        names = {worker.name.split("#")[0] for worker in pool.workers}
        assert names == workers, (workers, pool.workers)
        assert not any(job.done() for job in pool.worker_jobs)  # none was replaced
        assert relay.reopened == 1 and relay.address != before
        assert transport.stats["reconnects"] >= 1
        print(f"relay {before} -> {relay.address}")
    assert engine.call(transport.run(["true"])).returncode == 0
