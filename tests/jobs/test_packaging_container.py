"""Packaging.container on the real dev cluster: build from a Dockerfile with podman, push to
the loopback registry (plain HTTP), pin by digest, run the tasks inside the image."""

from __future__ import annotations

import os
import secrets
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

import slurm_magics as sm
from slurm_magics.core.packaging import PackagingError
from slurm_magics.devcluster import ContainersInfo, load_info
from slurm_magics.transport import LocalTransport, SSHTransport
from tests.helpers import require_cluster, ssh_options

pytestmark = pytest.mark.cluster

MARKER_PATH = "/etc/slurm-magics-test-marker"
MANIFEST_TYPES = (
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)


def read_marker() -> str:
    with open(MARKER_PATH) as stream:
        return stream.read().strip()


def shout(text: str) -> str:
    print(f"inside the image: {text}")
    return text.upper()


def fail_inside() -> None:
    raise KeyError("only-in-the-container")


def square_where(x: int) -> tuple[int, str]:
    """x squared, and SLURM's array index as the container sees it (--env=SLURM_*)."""
    return x * x, os.environ.get("SLURM_ARRAY_TASK_ID", "missing")


def _dockerfile(folder: Path, *lines: str) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    base = _containers().base_image
    (folder / "Dockerfile").write_text("\n".join([f"FROM {base}", *lines]) + "\n")
    return str(folder / "Dockerfile")


def _containers() -> ContainersInfo:
    containers = load_info().containers
    assert containers is not None, "the dev cluster records no registry: run devcluster up"
    assert containers.base_image, "devcluster up could not build the base image: see its log"
    return containers


@pytest.fixture(scope="module")
def marker() -> str:
    return f"made-in-the-image-{secrets.token_hex(4)}"


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> str:
    require_cluster()
    return str(tmp_path_factory.mktemp("container_root"))


@pytest.fixture(scope="module")
def packaging(tmp_path_factory: pytest.TempPathFactory, marker: str) -> sm.Packaging:
    folder = tmp_path_factory.mktemp("image")
    dockerfile = _dockerfile(folder, f"RUN echo {marker} > {MARKER_PATH}")
    return sm.Packaging.container(
        dockerfile=dockerfile,
        registry=f"{_containers().registry}/sm-tests",
        platform="linux/amd64",
        tls_verify=False,
    )


@pytest.fixture(scope="module")
def image_cluster(root: str, packaging: sm.Packaging) -> Iterator[sm.Cluster]:
    cluster = sm.Cluster(
        LocalTransport(),
        root=root,
        defaults=sm.Resources(partition="debug"),
        packaging=packaging,
    )
    yield cluster
    cluster.close()


def test_the_task_runs_inside_the_pinned_image(image_cluster: sm.Cluster, marker: str) -> None:
    assert not Path(MARKER_PATH).exists()  # the host has no marker: only the image does
    job = sm.task(read_marker).on(image_cluster)()
    assert job.result(timeout=180) == marker
    launch = image_cluster.launches.ship()
    assert launch.image.startswith(f"{_containers().registry}/sm-tests@sha256:")
    scripts = list(Path(job.run.run_dir).glob("slice*.sh"))
    assert len(scripts) == 1
    script = scripts[0].read_text()
    assert f"--tls-verify=false --volume={image_cluster.root}:{image_cluster.root}" in script
    assert f" {launch.image} python3 " in script
    # The digest is what the registry itself serves for the tag the build pushed.
    request = urllib.request.Request(
        f"http://{_containers().registry}/v2/sm-tests/manifests/latest",
        method="HEAD",
        headers={"Accept": ", ".join(MANIFEST_TYPES)},
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        pushed = answer.headers["Docker-Content-Digest"]
    assert launch.image.endswith(f"@{pushed}")


def test_results_logs_and_exceptions_come_back(image_cluster: sm.Cluster) -> None:
    job = sm.task(shout).on(image_cluster)("hello")
    assert job.result(timeout=180) == "HELLO"
    assert "inside the image: hello" in job.stdout()
    failing = sm.task(fail_inside).on(image_cluster)()
    with pytest.raises(KeyError, match="only-in-the-container"):
        failing.result(timeout=180)


def test_a_map_in_the_image_is_still_one_array_job(image_cluster: sm.Cluster) -> None:
    before = image_cluster.counters.get("sbatch", 0)
    array = sm.task(square_where).on(image_cluster).map(range(6))
    assert array.result(timeout=300) == [(x * x, str(x)) for x in range(6)]
    assert len(array.job_ids) == 1
    assert image_cluster.counters.get("sbatch", 0) - before == 1


def test_with_options_runs_one_task_in_the_image(
    root: str, packaging: sm.Packaging, marker: str
) -> None:
    plain = sm.Cluster(LocalTransport(), root=root, defaults=sm.Resources(partition="debug"))
    try:
        assert plain.launches.events == {}
        task = sm.task(read_marker).with_options(packaging=packaging)
        assert task.on(plain)().result(timeout=180) == marker
        assert plain.launches.events == {"images_pinned": 1}
    finally:
        plain.close()


def has_marker() -> bool:
    return os.path.exists(MARKER_PATH)


def test_given_images_pinned_or_tagged_and_pushed(image_cluster: sm.Cluster) -> None:
    pinned = image_cluster.launches.ship().image
    as_given = sm.Packaging.container(image=pinned, push=False, tls_verify=False)
    assert (
        sm.task(has_marker).with_options(packaging=as_given).on(image_cluster)().result(timeout=180)
    )
    # A local image by tag is pushed to the registry and pinned by what it stored.
    base = sm.Packaging.container(
        image=_containers().base_image,
        registry=f"{_containers().registry}/sm-base",
        tls_verify=False,
    )
    task = sm.task(has_marker).with_options(packaging=base).on(image_cluster)
    assert task().result(timeout=180) is False
    launch = image_cluster.launches.ship(base)
    assert launch.image.startswith(f"{_containers().registry}/sm-base@sha256:")


def test_over_ssh_the_runtime_is_found_and_the_task_runs_in_the_image(
    root: str, packaging: sm.Packaging, marker: str
) -> None:
    options = ssh_options()
    cluster = sm.Cluster(
        SSHTransport(options.pop("host"), **options),
        root=root,
        python=sys.executable,
        defaults=sm.Resources(partition="debug"),
        packaging=packaging,
    )
    try:
        assert sm.task(read_marker).on(cluster)().result(timeout=180) == marker
        assert cluster.launches.ship().launcher.startswith("podman run ")
    finally:
        cluster.close()


def test_bad_images_and_registries_fail_before_anything_is_submitted(
    root: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    registry = _containers().registry

    def connect(packaging: sm.Packaging) -> None:
        sm.Cluster(LocalTransport(), root=root, packaging=packaging).close()

    broken = _dockerfile(tmp_path / "broken", "RUN echo building-step-output && false")
    with pytest.raises(PackagingError, match=r"(?s)build` of .* failed .*building-step-output"):
        connect(sm.Packaging.container(dockerfile=broken, registry=f"{registry}/sm-broken",
                                       tls_verify=False))  # fmt: skip
    # The build streamed as a progress bar over the Dockerfile's steps.
    progress = capsys.readouterr().err
    assert "building the image" in progress and "/2 [" in progress
    without = _dockerfile(
        tmp_path / "without", "RUN rm -rf /usr/lib/python3/dist-packages/cloudpickle"
    )
    with pytest.raises(PackagingError, match=r"cannot run jobs .*cloudpickle is not importable"):
        connect(sm.Packaging.container(dockerfile=without, registry=f"{registry}/sm-without",
                                       tls_verify=False))  # fmt: skip
    good = _dockerfile(tmp_path / "good")
    # Nothing listens on port 1: the registry "refuses" and its answer is shown.
    with pytest.raises(
        PackagingError, match=r"(?s)refused the push .*It answered:\n.*127\.0\.0\.1:1"
    ):
        connect(sm.Packaging.container(dockerfile=good, registry="127.0.0.1:1/sm-nowhere",
                                       tls_verify=False))  # fmt: skip
    missing = r"runtime='apptainer' is not available on this machine: install"
    with pytest.raises(PackagingError, match=missing):
        connect(sm.Packaging.container(dockerfile=good, registry=f"{registry}/sm-good",
                                       tls_verify=False, runtime="apptainer"))  # fmt: skip
