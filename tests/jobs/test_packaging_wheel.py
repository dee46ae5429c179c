"""packaging="wheel" on the real dev cluster: a tiny project built, uploaded once per content
hash, installed into a venv there, imported by the tasks from that venv."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import slurm_magics as sm
from slurm_magics.core.launch_scripts import render_venv_build, venv_path
from slurm_magics.core.packaging import PackagingError
from slurm_magics.jobs.packaging import build_wheel
from slurm_magics.transport import LocalTransport, SSHTransport
from tests.helpers import require_cluster, ssh_options

pytestmark = pytest.mark.cluster

PYPROJECT = """\
[build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"

[project]
name = "tinyproj-sm"
version = "{version}"
"""
MODULE = '''\
VALUE = {value!r}


def where():
    """Runs on the cluster: where this module was imported from, and its value."""
    return __file__, VALUE
'''


def _write_project(folder: Path, version: str, value: str) -> Path:
    (folder / "tinyproj_sm").mkdir(parents=True, exist_ok=True)
    (folder / "pyproject.toml").write_text(PYPROJECT.format(version=version))
    (folder / "tinyproj_sm" / "__init__.py").write_text(MODULE.format(value=value))
    return folder


def where_imported() -> tuple[str, str]:
    import tinyproj_sm  # type: ignore[import-not-found]  # only in the cluster's venv

    return tinyproj_sm.where()  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> str:
    require_cluster()
    return str(tmp_path_factory.mktemp("wheel_root"))


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _write_project(tmp_path_factory.mktemp("tinyproj"), "0.1", "first")


@pytest.fixture(scope="module")
def wheel_cluster(root: str, project: Path) -> Iterator[sm.Cluster]:
    cluster = sm.Cluster(
        LocalTransport(),
        root=root,
        defaults=sm.Resources(partition="debug"),
        packaging=sm.Packaging.wheel(str(project)),
    )
    yield cluster
    cluster.close()


def test_a_task_imports_the_project_from_the_venv(
    wheel_cluster: sm.Cluster, root: str, project: Path
) -> None:
    assert wheel_cluster.launches.events == {"wheel_uploads": 1, "venv_builds": 1}
    path, value = sm.task(where_imported).on(wheel_cluster)().result(timeout=120)
    assert value == "first"
    assert path.startswith(f"{root}/venvs/tinyproj_sm-")
    assert "/site-packages/tinyproj_sm/__init__.py" in path
    assert not path.startswith(str(project))
    assert wheel_cluster.launches.events == {"wheel_uploads": 1, "venv_builds": 1}


def test_the_projects_own_function_travels_by_name(
    wheel_cluster: sm.Cluster, root: str, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Imported here from the source tree (not installed): without packaging it would go
    # by value; with the wheel it is imported by name from the venv on the cluster.
    monkeypatch.syspath_prepend(str(project))
    import tinyproj_sm

    try:
        path, value = sm.task(tinyproj_sm.where).on(wheel_cluster)().result(timeout=120)
    finally:
        sys.modules.pop("tinyproj_sm", None)
    assert value == "first"
    assert path.startswith(f"{root}/venvs/tinyproj_sm-")


def test_a_second_connect_reuses_the_venv_and_a_change_builds_a_new_one(
    wheel_cluster: sm.Cluster, root: str, tmp_path: Path
) -> None:
    first_venv = wheel_cluster.launches.default.wheel_options
    assert first_venv is not None
    again = sm.Cluster(
        LocalTransport(),
        root=root,
        defaults=sm.Resources(partition="debug"),
        packaging=sm.Packaging.wheel(first_venv.project),
    )
    try:
        # One existence check, no upload, no build.
        assert again.launches.events == {"venv_reuses": 1}
        changed = _write_project(tmp_path / "changed", "0.2", "second")
        task = sm.task(where_imported).with_options(packaging=sm.Packaging.wheel(str(changed)))
        path, value = task.on(again)().result(timeout=120)
        assert value == "second"
        assert again.launches.events == {"venv_reuses": 1, "wheel_uploads": 1, "venv_builds": 1}
        venvs = sorted(p.name for p in Path(root, "venvs").iterdir())
        assert len(venvs) == 2, venvs  # no temporary folder left behind
        assert path.startswith(f"{root}/venvs/") and Path(path).parts[-6] in venvs
        # The first venv still serves the first version.
        _, old = sm.task(where_imported).on(again)().result(timeout=120)
        assert old == "first"
    finally:
        again.close()


def test_no_pyproject_is_a_clear_error_before_anything_runs(root: str, tmp_path: Path) -> None:
    wanted = r"pyproject\.toml .*there is none at or above .*empty: add a pyproject"
    with pytest.raises(PackagingError, match=wanted):
        sm.Cluster(
            LocalTransport(),
            root=root,
            packaging=sm.Packaging.wheel(str(tmp_path / "empty")),
        )


def test_over_ssh_the_wheel_is_uploaded_and_used(root: str, tmp_path: Path) -> None:
    project = _write_project(tmp_path / "over-ssh", "0.3", "third")
    options = ssh_options()
    cluster = sm.Cluster(
        SSHTransport(options.pop("host"), **options),
        root=root,
        python=sys.executable,
        defaults=sm.Resources(partition="debug"),
        packaging=sm.Packaging.wheel(str(project)),
    )
    try:
        assert cluster.launches.events == {"wheel_uploads": 1, "venv_builds": 1}
        path, value = sm.task(where_imported).on(cluster)().result(timeout=120)
        assert value == "third"
        assert path.startswith(f"{root}/venvs/tinyproj_sm-")
    finally:
        cluster.close()


def test_concurrent_venv_builds_leave_one_working_venv(tmp_path: Path) -> None:
    # Four notebooks preparing the same wheel at once: each builds aside, one rename wins.
    project = _write_project(tmp_path / "race", "0.4", "raced")
    wheel = asyncio.run(build_wheel(project))
    wheel_path = tmp_path / wheel.filename
    wheel_path.write_bytes(wheel.data)
    venv = venv_path(str(tmp_path / "root"), wheel.distribution, wheel.digest)
    script = render_venv_build(sys.executable, venv, str(wheel_path), unzip=wheel.pure)
    builds = [
        subprocess.Popen(["bash", "-c", script], stdout=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    said = sorted(build.communicate(timeout=300)[0].split()[-1] for build in builds)
    assert all(build.returncode == 0 for build in builds)
    assert said.count("venv:built") == 1, said
    assert said.count("venv:reused") == 3, said
    assert [p.name for p in Path(venv).parent.iterdir()] == [Path(venv).name]  # no leftovers
    probe = subprocess.run(
        [f"{venv}/bin/python", "-c", "import tinyproj_sm, cloudpickle; print(tinyproj_sm.VALUE)"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert probe.stdout.strip() == "raced"
