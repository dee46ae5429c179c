"""The patterns example with the seed's container flags, on the dev cluster's registry."""

from __future__ import annotations

from pathlib import Path

import pytest

from slurm_magics.devcluster import load_info
from tests.tools.test_examples import PATTERNS, run_module, summary

pytestmark = pytest.mark.cluster


def test_the_patterns_run_in_a_container_with_the_seed_flags(tmp_path: Path) -> None:
    containers = load_info().containers
    assert containers is not None
    done = run_module(
        PATTERNS, "--partition", "debug", "--pattern", "all", "--size", "12",
        "--packaging", "container",
        "--packaging-registry", f"{containers.registry}/parallel-patterns",
        "--packaging-platform", "linux/amd64",
        "--packaging-tls-verify", "false",
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    table = summary(done.stdout)
    assert table["fanout"] == (2, 12)
    assert table["pipeline"] == (4, 0)
    assert table["sweep"][0] == 1
    # Every job script ran the runner inside the image, pinned by the registry's digest.
    scripts = list((tmp_path / ".slurm_magics" / "runs").glob("*/slice*.sh"))
    assert len(scripts) >= 9
    image = f"{containers.registry}/parallel-patterns@sha256:"
    for script in scripts:
        last = script.read_text().splitlines()[-1]
        assert last.startswith("exec podman run --rm --quiet --network=host"), last
        assert f" {image}" in last and " --tls-verify=false " in last


def test_packaging_wheel_installs_the_project_of_the_working_directory(tmp_path: Path) -> None:
    (tmp_path / "examples_project").mkdir()
    (tmp_path / "examples_project" / "__init__.py").write_text("")
    (tmp_path / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["hatchling"]\nbuild-backend = "hatchling.build"\n'
        '[project]\nname = "examples-project"\nversion = "1.0"\n'
    )
    done = run_module(
        PATTERNS, "--partition", "debug", "--pattern", "pipeline", "--packaging", "wheel",
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert summary(done.stdout) == {"pipeline": (4, 0)}
    venvs = list((tmp_path / ".slurm_magics" / "venvs").glob("examples_project-*"))
    assert len(venvs) == 1
    scripts = list((tmp_path / ".slurm_magics" / "runs").glob("*/slice*.sh"))
    assert len(scripts) == 4
    for script in scripts:
        assert f"exec {venvs[0]}/bin/python " in script.read_text()


def test_container_flags_that_do_not_fit_are_clear_errors(tmp_path: Path) -> None:
    missing = run_module(PATTERNS, "--packaging", "container", cwd=tmp_path)
    assert missing.returncode == 1
    assert missing.stderr.startswith("error: PackagingError: a built image must be pushed")
    assert "registry=" in missing.stderr and "Traceback" not in missing.stderr
    wrong = run_module(PATTERNS, "--packaging-tls-verify", "maybe", cwd=tmp_path)
    assert wrong.returncode == 2
    assert "'maybe' must be true or false" in wrong.stderr
