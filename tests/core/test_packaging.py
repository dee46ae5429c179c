"""Packaging's pure parts: container launch lines (golden files), pinning, wheel digests."""

from __future__ import annotations

import difflib
import io
import zipfile
from pathlib import Path

import pytest

from slurm_magics.core.launch_scripts import (
    pinned_reference,
    render_container_launch,
    render_venv_build,
    venv_path,
    wheel_digest,
)
from slurm_magics.core.packaging import (
    Launch,
    Packaging,
    PackagingError,
    Runtime,
    coerce_packaging,
)
from slurm_magics.core.resources import Resources
from slurm_magics.core.sbatch import ScriptSpec, render_script

GOLDEN = Path(__file__).parents[1] / "golden" / "packaging"
DIGEST = "sha256:" + "ab12" * 16
ROOT = "/home/me/.slurm_magics"


def _launch(runtime: Runtime, *, tls_verify: bool) -> Launch:
    image = pinned_reference("registry.example.org:5000/team/patterns:v1", DIGEST)
    setup, launcher = render_container_launch(
        runtime, image, [ROOT, "/scratch/data"], tls_verify=tls_verify
    )
    return Launch(python="python3", setup=setup, launcher=launcher, image=image)


def _script(launch: Launch) -> str:
    spec = ScriptSpec(
        name="simulate",
        resources=Resources(cpus=1, memory="1G"),
        run_dir=f"{ROOT}/runs/s1-ab12",
        runner_path=f"{ROOT}/runner-0123456789ab.py",
        python=launch.python,
        n_elements=100,
        setup=("export OMP_NUM_THREADS=1", *launch.setup),
        tag="s1-ab12.0",
        launcher=launch.launcher,
    )
    return render_script(spec)


RENDERED = {
    "pyxis": lambda: _script(_launch("pyxis", tls_verify=True)),
    "pyxis_plain_http": lambda: _script(_launch("pyxis", tls_verify=False)),
    "apptainer": lambda: _script(_launch("apptainer", tls_verify=True)),
    "apptainer_plain_http": lambda: _script(_launch("apptainer", tls_verify=False)),
    "podman_plain_http": lambda: _script(_launch("podman", tls_verify=False)),
    "venv_build": lambda: render_venv_build(
        "python3",
        venv_path(ROOT, "tiny-project", "f" * 64),
        f"{ROOT}/wheels/tiny_project-0.1-py3-none-any.whl",
    ),
    "venv_build_pure_isolated": lambda: render_venv_build(
        "/opt/python3.11/bin/python3",
        venv_path(ROOT, "tiny-project", "e" * 64),
        f"{ROOT}/wheels/tiny_project-0.2-py3-none-any.whl",
        system_site_packages=False,
        requirements=["cloudpickle==3.1.1"],
        unzip=True,
    ),
}


@pytest.mark.parametrize("name", sorted(RENDERED))
def test_render_matches_golden_file(name: str) -> None:
    rendered = RENDERED[name]()
    path = GOLDEN / f"{name}.sh"
    expected = path.read_text()
    if rendered != expected:
        diff = difflib.unified_diff(
            expected.splitlines(keepends=True),
            rendered.splitlines(keepends=True),
            fromfile=f"tests/golden/packaging/{name}.sh",
            tofile="rendered",
        )
        pytest.fail("rendered text differs from the golden file:\n" + "".join(diff))


def test_every_golden_file_is_tested() -> None:
    assert {path.stem for path in GOLDEN.glob("*.sh")} == set(RENDERED)


def test_pyxis_and_apptainer_name_the_image_their_own_way() -> None:
    pyxis = _launch("pyxis", tls_verify=True).launcher
    assert f"--container-image=registry.example.org:5000#team/patterns@{DIGEST}" in pyxis
    assert f"--container-mounts={ROOT}:{ROOT},/scratch/data:/scratch/data" in pyxis
    apptainer = _launch("apptainer", tls_verify=True).launcher
    assert f"docker://registry.example.org:5000/team/patterns@{DIGEST}" in apptainer
    assert "--no-https" not in apptainer


@pytest.mark.parametrize(
    ("repository", "expected"),
    [
        ("127.0.0.1:5000/parallel-patterns", f"127.0.0.1:5000/parallel-patterns@{DIGEST}"),
        ("127.0.0.1:5000/a/b:latest", f"127.0.0.1:5000/a/b@{DIGEST}"),
        ("localhost/x:1", f"localhost/x@{DIGEST}"),
        (f"registry:5000/p@{'sha256:' + '0' * 64}", f"registry:5000/p@{DIGEST}"),
        ("ubuntu:22.04", f"ubuntu@{DIGEST}"),
    ],
)
def test_pinned_reference_drops_tags_keeps_ports(repository: str, expected: str) -> None:
    assert pinned_reference(repository, DIGEST) == expected


def test_launch_refuses_an_image_not_pinned_by_digest() -> None:
    with pytest.raises(PackagingError, match=r"'127.0.0.1:5000/p:latest' has no @sha256"):
        render_container_launch("podman", "127.0.0.1:5000/p:latest", [ROOT])
    with pytest.raises(PackagingError, match="not an image digest"):
        pinned_reference("x/y", "sha256:short")


def _wheel(files: dict[str, bytes], date: tuple[int, int, int, int, int, int]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in files.items():
            archive.writestr(zipfile.ZipInfo(name, date_time=date), data)
    return buffer.getvalue()


def _members(blob: bytes) -> list[tuple[str, bytes]]:
    with zipfile.ZipFile(io.BytesIO(blob)) as archive:
        return [(name, archive.read(name)) for name in archive.namelist()]


def test_wheel_digest_ignores_timestamps_but_not_content() -> None:
    files = {"tiny/__init__.py": b"VALUE = 1\n", "tiny-0.1.dist-info/METADATA": b"Name: tiny\n"}
    first = _wheel(files, (2020, 1, 1, 0, 0, 0))
    later = _wheel(files, (2026, 11, 30, 3, 0, 0))
    assert first != later
    assert wheel_digest(_members(first)) == wheel_digest(_members(later))
    changed = _wheel({**files, "tiny/__init__.py": b"VALUE = 2\n"}, (2020, 1, 1, 0, 0, 0))
    assert wheel_digest(_members(changed)) != wheel_digest(_members(first))
    assert venv_path("/r", "tiny project", "c" * 64) == "/r/venvs/tiny_project-" + "c" * 16


def test_packaging_values_and_their_errors() -> None:
    assert coerce_packaging(None) == Packaging()
    assert coerce_packaging("inherit").kind == "none"
    wheel = coerce_packaging("wheel")
    assert wheel.kind == "wheel"
    assert wheel.wheel_options is not None
    assert wheel.wheel_options.system_site_packages
    with pytest.raises(PackagingError, match=r"sm\.Packaging\.container\(dockerfile="):
        coerce_packaging("container")
    with pytest.raises(PackagingError, match="'docker' must be one of none, inherit"):
        coerce_packaging("docker")
    with pytest.raises(PackagingError, match=r"exactly one of image= .* and dockerfile="):
        Packaging.container()
    with pytest.raises(PackagingError, match="pass registry='host"):
        Packaging.container(dockerfile="Dockerfile")
    with pytest.raises(PackagingError, match=r"\(with push=True\) along with dockerfile='D'"):
        Packaging.container(dockerfile="D", registry="h:1/p", push=False)
    with pytest.raises(PackagingError, match="runtime='docker' must be one of pyxis"):
        Packaging.container(image="x@" + DIGEST, runtime="docker")  # type: ignore[arg-type]
    with pytest.raises(PackagingError, match="mount 'data' must be an absolute"):
        Packaging.container(image="x@" + DIGEST, mounts=["data"])
    spec = Packaging.container(dockerfile="D", registry="h:1/p", build_args={"B": "1", "A": "2"})
    assert spec.container_options is not None
    assert spec.container_options.build_args == (("A", "2"), ("B", "1"))
    assert hash(spec) == hash(Packaging.container(dockerfile="D", registry="h:1/p",
                                                  build_args={"A": "2", "B": "1"}))  # fmt: skip
