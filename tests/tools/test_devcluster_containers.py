"""The dev cluster's container parts for real: podman's settings, the registry, the base image."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from pathlib import Path

import cloudpickle
import pytest

from slurm_magics import devcluster
from slurm_magics.devcluster.config import ClusterParams, Layout
from slurm_magics.devcluster.containers import (
    CONTAINERS_CONF_PATH,
    apt_mirror,
    render_containers_conf,
    render_registry_config,
)
from slurm_magics.devcluster.procs import stop_pid
from slurm_magics.devcluster.services import EXECUTABLES


def _podman(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["podman", *args], capture_output=True, text=True, timeout=120, check=False
    )


def test_registry_config_is_loopback_without_auth() -> None:
    params = ClusterParams(
        layout=Layout(Path("/state")),
        hostname="node",
        real_memory_mb=1000,
        db_port=1,
        db_password="x",
        ssh_port=2,
        registry_port=5123,
    )
    text = render_registry_config(params)
    assert "  addr: 127.0.0.1:5123\n" in text
    assert "    rootdirectory: /state/registry\n" in text
    assert "auth" not in text
    conf = render_containers_conf()
    assert 'runtime = "runc"' in conf
    assert 'default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]' in conf


@pytest.mark.parametrize(
    ("sources", "mirror"),
    [
        ("Types: deb\nURIs: http://deb.debian.org/debian/\nSuites: bookworm\n",
         "http://deb.debian.org/debian"),
        ("deb [signed-by=/k.gpg] https://mirror.example.org/debian bookworm main\n",
         "https://mirror.example.org/debian"),
        ("deb http://security.debian.org/debian-security bookworm-security main\n", None),
        ("# deb http://old.example.org/debian bookworm main\n", None),
    ],
)  # fmt: skip
def test_the_base_image_comes_from_the_apt_mirror(sources: str, mirror: str | None) -> None:
    assert apt_mirror(sources) == mirror


@pytest.mark.cluster
def test_up_records_a_registry_that_answers_and_a_cached_base_image() -> None:
    info = devcluster.up()
    assert info.containers is not None
    assert info.containers.registry_host == "127.0.0.1"
    assert info.containers.base_image, "the base image was not built: see up's log"
    assert "registry" in info.pids
    saved = json.loads((info.state_dir / "cluster.json").read_text())
    assert saved["containers"]["registry_port"] == info.containers.registry_port
    with urllib.request.urlopen(f"http://{info.containers.registry}/v2/", timeout=5) as answer:
        assert answer.status == 200
    assert CONTAINERS_CONF_PATH.read_text() == render_containers_conf()
    # podman itself reports the runtime the drop-in chose.
    runtime = _podman("info", "--format", "{{.Host.OCIRuntime.Name}}")
    assert runtime.stdout.strip() == "runc", runtime.stderr
    # The image holds Debian's python3 of this major.minor and this cloudpickle.
    probe = _podman(
        "run", "--rm", info.containers.base_image, "python3", "-c",
        "import sys, cloudpickle; print(sys.version_info[:2], cloudpickle.__version__)",
    )  # fmt: skip
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.split(")", 1)[0] + ")" == str(sys.version_info[:2])
    assert probe.stdout.split()[-1] == cloudpickle.__version__
    # A second `up` reuses the cached image (same image id, not rebuilt).
    image_id = _podman("image", "inspect", "--format", "{{.Id}}", info.containers.base_image)
    again = devcluster.up()
    assert again.containers == info.containers
    assert again.pids["registry"] == info.pids["registry"]
    same = _podman("image", "inspect", "--format", "{{.Id}}", info.containers.base_image)
    assert same.stdout == image_id.stdout


@pytest.mark.cluster
def test_a_registry_that_died_is_started_again_on_its_port() -> None:
    before = devcluster.up()
    assert before.containers is not None
    assert stop_pid(before.pids["registry"], EXECUTABLES["registry"])
    assert not devcluster.status()["registry"]
    after = devcluster.up()
    assert after.pids["registry"] != before.pids["registry"]
    assert after.containers == before.containers  # same port, same base image
    assert after.pids["slurmctld"] == before.pids["slurmctld"]  # nothing else restarted
    with urllib.request.urlopen(f"http://{after.containers.registry}/v2/", timeout=5) as answer:
        assert answer.status == 200
