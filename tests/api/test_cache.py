"""Cached calls (``@sm.task(cache=True)``) on the real dev cluster: no sbatch for a re-run,
one job for duplicates in flight, also from another process (through the registry)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import slurm_magics as sm
from slurm_magics.jobs import cache
from tests.api.cached_work import fails_once, size_of, slow_square
from tests.helpers import connect_source, queued_ids

pytestmark = pytest.mark.cluster


def _sbatches(cluster: sm.Cluster) -> int:
    return cluster.counters.get("sbatch", 0)


def test_a_rerun_returns_the_earlier_result_without_sbatch(cluster: sm.Cluster) -> None:
    sm.cache_clear(slow_square, cluster=cluster)
    first = slow_square.on(cluster)(7)
    assert first.cache.key and not first.cache.reused
    value = first.result(timeout=120)
    assert value[0] == 49
    before = _sbatches(cluster)
    again = slow_square.on(cluster)(7)
    assert _sbatches(cluster) == before  # nothing submitted
    assert again.cache.reused and again.cache.key == first.cache.key
    assert again.result(timeout=1) == value  # the same result, computed by the same job
    assert again.job_id == first.job_id
    # other arguments or other resources are other keys: they run
    other = slow_square.on(cluster).with_options(memory="120M")(7)
    assert other.cache.key != first.cache.key and not other.cache.reused
    assert _sbatches(cluster) == before + 1
    other.result(timeout=120)
    # cleared, the call runs again
    assert sm.cache_clear(slow_square, cluster=cluster) >= 2
    fresh = slow_square.on(cluster)(7)
    assert not fresh.cache.reused and fresh.job_id != first.job_id
    assert fresh.result(timeout=120)[0] == 49


def test_a_duplicate_in_flight_attaches_to_the_running_job(cluster: sm.Cluster) -> None:
    sm.cache_clear(slow_square, cluster=cluster)
    before = _sbatches(cluster)
    first = slow_square.on(cluster)(3, pause=5.0)
    second = slow_square.on(cluster)(3, pause=5.0)
    assert second is first and second.cache.reused
    assert _sbatches(cluster) == before + 1
    assert first.result(timeout=120)[0] == 9


def test_a_failed_run_is_not_reused(cluster: sm.Cluster, tmp_path: Path) -> None:
    marker = str(tmp_path / "marker")
    with pytest.raises(RuntimeError, match="first attempt fails"):
        fails_once.on(cluster)(marker).result(timeout=120)
    before = _sbatches(cluster)
    again = fails_once.on(cluster)(marker)
    assert _sbatches(cluster) == before + 1 and not again.cache.reused
    assert again.result(timeout=120) == "ok"


def test_arguments_too_big_to_hash_say_so(
    cluster: sm.Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cache, "MAX_HASHED_BYTES", 4096)
    before = _sbatches(cluster)
    with pytest.warns(cache.CacheWarning, match="too big to hash cheaply"):
        job = size_of.on(cluster)(bytes(8192))
    assert job.cache is None and _sbatches(cluster) == before + 1
    assert job.result(timeout=120) == 8192
    assert cache.cache_key(print, [((bytes(8192),), {})], "", "x", limit=4096) is None


@pytest.mark.slurm_only
def test_another_kernel_attaches_to_the_run_in_flight(
    cluster: sm.Cluster, cluster_root: Path
) -> None:
    sm.cache_clear(slow_square, cluster=cluster)
    first = slow_square.on(cluster)(11, pause=8.0)
    script = textwrap.dedent(
        f"""
        import slurm_magics as sm
        from tests.api.cached_work import slow_square
        cluster = {connect_source(cluster, cluster_root)}
        job = slow_square(11, pause=8.0)
        print(job.job_id, job.cache.reused, job.cache.key, cluster.counters.get("sbatch", 0))
        print(job.result(timeout=120)[0])
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=Path(__file__).parents[2],
    )
    assert done.returncode == 0, done.stderr
    head, value = done.stdout.split("\n")[:2]
    job_id, reused, key, sbatches = head.split()
    assert (job_id, reused, key, sbatches) == (first.job_id, "True", first.cache.key, "0")
    assert value == "121"
    assert first.result(timeout=120)[0] == 121
    assert first.job_id not in queued_ids(cluster)
