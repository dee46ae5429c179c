"""What the cluster raised or returned reaches the user even when this Python cannot
rebuild the object (a class it cannot construct, a module it lacks)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

import slurm_magics as sm

pytestmark = pytest.mark.cluster


class QuotaError(Exception):
    """Two required arguments: unpickling calls QuotaError(message) and fails."""

    def __init__(self, user: str, used_gb: int) -> None:
        super().__init__(f"{user} used {used_gb} GB")


def over_quota() -> None:
    raise QuotaError("ana", 12)


def from_module_only_there(folder: str, fail: bool) -> object:
    """Import a module that exists only in ``folder`` (on the cluster's side)."""
    sys.path.insert(0, folder)
    import cluster_only  # type: ignore[import-not-found]

    if fail:
        raise cluster_only.ClusterOnlyError("the cluster's own error")
    return cluster_only.Thing()


def cluster_only_folder(tmp_path: Path) -> str:
    folder = tmp_path / "only_on_the_cluster"
    folder.mkdir(exist_ok=True)
    (folder / "cluster_only.py").write_text(
        "class ClusterOnlyError(Exception):\n    pass\n\nclass Thing:\n    pass\n"
    )
    return str(folder)


def test_exception_that_cannot_be_rebuilt_keeps_type_message_and_traceback(
    cluster: sm.Cluster,
) -> None:
    job = cluster.submit(over_quota)
    with pytest.raises(sm.JobFailedError) as caught:
        job.result(timeout=120)
    error = caught.value
    assert "QuotaError: ana used 12 GB" in str(error)
    assert "not rebuilt here" in str(error) and "used_gb" in str(error)
    cause = error.__cause__
    assert isinstance(cause, sm.RemoteTraceback)
    assert "over_quota" in str(cause) and "QuotaError: ana used 12 GB" in str(cause)
    assert job.state is sm.JobState.FAILED


def test_exception_of_a_module_missing_here(cluster: sm.Cluster, tmp_path: Path) -> None:
    job = cluster.submit(from_module_only_there, cluster_only_folder(tmp_path), True)
    with pytest.raises(sm.JobFailedError) as caught:
        job.result(timeout=120)
    assert "ClusterOnlyError: the cluster's own error" in str(caught.value)
    assert "cluster_only" in str(caught.value)  # why: No module named 'cluster_only'
    assert isinstance(caught.value.__cause__, sm.RemoteTraceback)
    assert "from_module_only_there" in str(caught.value.__cause__)


def test_value_of_a_module_missing_here_names_its_type(cluster: sm.Cluster, tmp_path: Path) -> None:
    job = cluster.submit(from_module_only_there, cluster_only_folder(tmp_path), False)
    with pytest.raises(sm.JobFailedError) as caught:
        job.result(timeout=120)
    text = str(caught.value)
    assert "cluster_only.Thing" in text and "No module named 'cluster_only'" in text
    assert isinstance(caught.value.__cause__, Exception)
    assert caught.value.state is sm.JobState.FAILED


def skewed_value(folder: str) -> object:
    """A value of ``skewlib`` as version 2 (in ``folder``) writes it."""
    sys.path.insert(0, folder)
    import skewlib  # type: ignore[import-not-found]

    return skewlib.Point(1, 2)


def test_value_of_another_version_of_a_library_names_its_type(
    cluster: sm.Cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Version 2 on the cluster's side pickles Point(x, y); version 1 here takes one argument.
    for version, source in (
        (
            "v2",
            "class Point:\n    def __init__(self, x, y):\n        self.x, self.y = x, y\n"
            "    def __reduce__(self):\n        return (Point, (self.x, self.y))\n",
        ),
        ("v1", "class Point:\n    def __init__(self, x):\n        self.x = x\n"),
    ):
        (tmp_path / version).mkdir()
        (tmp_path / version / "skewlib.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path / "v1"))
    monkeypatch.delitem(sys.modules, "skewlib", raising=False)
    job = cluster.submit(skewed_value, str(tmp_path / "v2"))
    with pytest.raises(sm.JobFailedError) as caught:
        job.result(timeout=120)
    text = str(caught.value)
    assert "skewlib.Point" in text and "TypeError" in text, text
