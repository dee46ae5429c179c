"""How the user's code reaches the compute node: `Packaging` and what it renders (pure).

- ``"none"`` (default) / ``"inherit"``: the cluster's Python as configured; functions go by
  value (cloudpickle), installed packages by name.
- ``"wheel"``: the user's project as a wheel, installed once per content hash into a venv on
  the cluster (built in a temporary folder, then renamed: concurrent builds never corrupt it).
- ``"container"``: the runner runs inside an image pinned by digest, with Pyxis/enroot
  (``srun --container-image``), Apptainer (``apptainer exec docker://``) or podman; the
  cluster's root folder (runs, results, sentinels, data) is mounted at the same path.

Nothing here runs a command: the I/O lives in ``slurm_magics.jobs.packaging``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import shlex
from collections.abc import Iterable, Mapping, Sequence
from typing import Literal

from slurm_magics.core.errors import ClusterError

__all__ = [
    "RUNTIMES",
    "ContainerOptions",
    "Launch",
    "Packaging",
    "PackagingError",
    "Runtime",
    "WheelOptions",
    "coerce_packaging",
    "pinned_reference",
    "render_container_launch",
    "render_venv_build",
    "venv_path",
    "wheel_digest",
]

Runtime = Literal["pyxis", "apptainer", "podman"]
RUNTIMES: tuple[Runtime, ...] = ("pyxis", "apptainer", "podman")
Kind = Literal["none", "inherit", "wheel", "container"]
_KINDS: tuple[Kind, ...] = ("none", "inherit", "wheel", "container")
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


class PackagingError(ClusterError):
    """The user's code could not be packaged for the cluster (build, push, image, project)."""


@dataclasses.dataclass(frozen=True)
class WheelOptions:
    """``packaging="wheel"``: which project, and how its venv is made."""

    project: str | None = None  # a folder at or below the one holding pyproject.toml
    system_site_packages: bool = True  # the venv sees the cluster Python's packages


@dataclasses.dataclass(frozen=True)
class ContainerOptions:
    """``Packaging.container(...)``; see there."""

    image: str | None = None
    dockerfile: str | None = None
    context: str | None = None
    registry: str | None = None
    platform: str | None = None
    tls_verify: bool = True
    push: bool = True
    runtime: Runtime | None = None
    builder: Literal["podman", "docker"] | None = None
    mounts: tuple[str, ...] = ()
    build_args: tuple[tuple[str, str], ...] = ()
    python: str = "python3"


@dataclasses.dataclass(frozen=True)
class Packaging:
    """How jobs get the user's code and environment: ``"none"``, ``"wheel"`` or a container.

    Pass ``sm.connect(..., packaging="wheel")``, ``task.with_options(packaging=...)`` or
    ``sm.Packaging.container(dockerfile="Dockerfile", registry="host:5000/name")``.
    """

    kind: Kind = "none"
    wheel_options: WheelOptions | None = None
    container_options: ContainerOptions | None = None

    @classmethod
    def none(cls) -> Packaging:
        """Today's behaviour: the cluster's Python as configured (also ``"inherit"``)."""
        return cls("none")

    @classmethod
    def wheel(cls, project: str | None = None, *, system_site_packages: bool = True) -> Packaging:
        """A wheel of the project whose pyproject.toml is at or above ``project`` (str path;
        default: the working directory), installed into a cached venv on the cluster; with
        ``system_site_packages=False`` the venv sees only the wheel and cloudpickle."""
        return cls("wheel", wheel_options=WheelOptions(project, system_site_packages))

    @classmethod
    def container(
        cls,
        *,
        image: str | None = None,
        dockerfile: str | None = None,
        context: str | None = None,
        registry: str | None = None,
        platform: str | None = None,
        tls_verify: bool = True,
        push: bool = True,
        runtime: Runtime | None = None,
        builder: Literal["podman", "docker"] | None = None,
        mounts: Sequence[str] = (),
        build_args: Mapping[str, str] | None = None,
        python: str = "python3",
    ) -> Packaging:
        """Run every job's Python inside an image, pinned by digest.

        Args:
            image: an existing image (``name[:tag]`` or ``name@sha256:...``); or
            dockerfile: a Dockerfile (str path) to build with podman or docker, in
                ``context`` (str path; default: the Dockerfile's folder).
            registry: the repository to push to, ``host[:port]/path`` (str); the job
                scripts pull ``registry@sha256:<digest>``.
            platform: the build platform, e.g. ``"linux/amd64"``.
            tls_verify: False for a plain-HTTP or self-signed registry (push and pull).
            push: False to use a built or given image without pushing (it must then be
                reachable by that name from the compute nodes).
            runtime: ``"pyxis"``, ``"apptainer"`` or ``"podman"``; default: the first
                found on the cluster, in that order.
            builder: ``"podman"`` or ``"docker"``; default: whichever is found here.
            mounts: more cluster folders (str paths) mounted at the same path.
            build_args: ``--build-arg`` values (str to str).
            python: the interpreter inside the image (default ``python3``).

        Returns:
            A ``Packaging`` to pass to ``sm.connect`` or ``with_options``.

        Raises:
            PackagingError: neither or both of ``image`` and ``dockerfile``, an unknown
                runtime or builder, or a relative mount.
        """
        options = ContainerOptions(
            image=image,
            dockerfile=dockerfile,
            context=context,
            registry=registry,
            platform=platform,
            tls_verify=bool(tls_verify),
            push=bool(push),
            runtime=runtime,
            builder=builder,
            mounts=tuple(mounts),
            build_args=tuple(sorted((build_args or {}).items())),
            python=python,
        )
        _check_container(options)
        return cls("container", container_options=options)


def _check_container(options: ContainerOptions) -> None:
    if (options.image is None) == (options.dockerfile is None):
        raise PackagingError(
            "Packaging.container() needs exactly one of image= (an existing image) and "
            f"dockerfile= (a Dockerfile to build); got image={options.image!r}, "
            f"dockerfile={options.dockerfile!r}."
        )
    if options.runtime is not None and options.runtime not in RUNTIMES:
        raise PackagingError(
            f"runtime={options.runtime!r} must be one of {', '.join(RUNTIMES)} (or None to "
            "use the first one found on the cluster)."
        )
    if options.builder not in (None, "podman", "docker"):
        raise PackagingError(f'builder={options.builder!r} must be "podman", "docker" or None.')
    for mount in options.mounts:
        if not mount.startswith("/") or "," in mount or ":" in mount:
            raise PackagingError(
                f"mount {mount!r} must be an absolute cluster path without ',' or ':' (it is "
                "mounted at the same path inside the image)."
            )
    if options.dockerfile is not None and options.push and options.registry is None:
        raise PackagingError(
            f"a built image must be pushed somewhere the compute nodes pull from: pass "
            f"registry='host[:port]/name' with dockerfile={options.dockerfile!r}, or "
            "push=False if the nodes share this machine's image store."
        )


def coerce_packaging(value: Packaging | str | None) -> Packaging:
    """A ``Packaging`` from what users pass: None, ``"none"``, ``"inherit"``, ``"wheel"``,
    ``"container"`` (refused: it needs options) or a ``Packaging``."""
    if value is None:
        return Packaging()
    if isinstance(value, Packaging):
        return value
    if value in ("none", "inherit"):
        return Packaging("none")
    if value == "wheel":
        return Packaging.wheel()
    if value == "container":
        raise PackagingError(
            'packaging="container" needs an image or a Dockerfile: pass '
            "sm.Packaging.container(dockerfile='Dockerfile', registry='host:5000/name') "
            "or sm.Packaging.container(image='name@sha256:...')."
        )
    raise PackagingError(
        f"packaging={value!r} must be one of {', '.join(_KINDS)} or sm.Packaging.container(...)."
    )


@dataclasses.dataclass(frozen=True)
class Launch:
    """What a job script needs for one packaging: its Python, extra setup lines, a launcher
    put before the Python (``srun --container-image=...``, ``podman run ...``), and the
    top-level module names that travel by name (installed by the packaging)."""

    python: str
    setup: tuple[str, ...] = ()
    launcher: str = ""
    image: str = ""  # the pinned image reference, for containers
    by_reference: tuple[str, ...] = ()


# --- containers -------------------------------------------------------------------------------


def _split_registry(reference: str) -> tuple[str, str]:
    """("host:port", "path...") for a reference naming a registry host, else ("", reference)."""
    first, sep, rest = reference.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return first, rest
    return "", reference


def pinned_reference(repository: str, digest: str) -> str:
    """``host:port/path@sha256:...`` from a repository (any tag or digest dropped)."""
    if not _DIGEST.fullmatch(digest):
        raise PackagingError(f"{digest!r} is not an image digest (sha256:<64 hex digits>).")
    name = repository.split("@", 1)[0]
    host, path = _split_registry(name)
    path = path.rsplit(":", 1)[0] if ":" in path else path
    return f"{host}/{path}@{digest}" if host else f"{path}@{digest}"


def render_container_launch(
    runtime: Runtime, image: str, mounts: Sequence[str], *, tls_verify: bool = True
) -> tuple[tuple[str, ...], str]:
    """(setup lines, launcher) that run the job's Python inside ``image`` with ``mounts``
    (absolute cluster folders) and the job's working directory at the same paths, that
    directory kept as the working directory (Apptainer binds it by itself)."""
    if "@sha256:" not in image:
        raise PackagingError(f"job scripts pin images by digest; {image!r} has no @sha256:.")
    binds = list(dict.fromkeys(mounts))
    if runtime == "pyxis":
        host, path = _split_registry(image)
        enroot = f"{host}#{path}" if host else path
        setup = () if tls_verify else ("export ENROOT_ALLOW_HTTP=yes",)
        words = [
            "srun", "--ntasks=1", f"--container-image={enroot}",
            f"--container-mounts={','.join(f'{b}:{b}' for b in binds)},",
        ]  # fmt: skip
        quoted = " ".join(shlex.quote(word) for word in words)
        return setup, f'{quoted}"$PWD:$PWD" --container-workdir="$PWD"'
    if runtime == "apptainer":
        words = ["apptainer", "exec", "--bind", ",".join(binds)]
        if not tls_verify:
            words.append("--no-https")
        quoted = " ".join(shlex.quote(word) for word in words)
        return (), f'{quoted} --pwd "$PWD" {shlex.quote("docker://" + image)}'
    if runtime == "podman":
        # --network=host: the job talks to the same hosts as without a container; SLURM_*
        # variables pass through; --quiet keeps pull progress out of the job's stderr.
        words = ["podman", "run", "--rm", "--quiet", "--network=host", "--env=SLURM_*"]
        if not tls_verify:
            words.append("--tls-verify=false")
        for bind in binds:
            words.append(f"--volume={bind}:{bind}")
        quoted = " ".join(shlex.quote(word) for word in words)
        return (), f'{quoted} --volume="$PWD:$PWD" --workdir="$PWD" {shlex.quote(image)}'
    raise PackagingError(f"runtime={runtime!r} must be one of {', '.join(RUNTIMES)}.")


# --- wheels -----------------------------------------------------------------------------------


def wheel_digest(members: Iterable[tuple[str, bytes]]) -> str:
    """A hex digest of a wheel's files (name and bytes), blind to zip timestamps, so the
    same project built twice gives the same digest."""
    digest = hashlib.sha256()
    for name, data in sorted(members):
        digest.update(f"{len(name)}:{name}:{len(data)}:".encode())
        digest.update(data)
    return digest.hexdigest()


def venv_path(root: str, distribution: str, digest: str) -> str:
    """``<root>/venvs/<distribution>-<digest[:16]>``: one venv per wheel content."""
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", distribution)
    return f"{root}/venvs/{safe}-{digest[:16]}"


def render_venv_build(
    python: str, venv: str, wheel: str, *, system_site_packages: bool = True,
    requirements: Sequence[str] = (), unzip: bool = False,
) -> str:  # fmt: skip
    """A bash script that makes ``venv`` with ``wheel`` installed, unless it exists.

    It builds in a temporary sibling folder and renames it into place; when another build
    won the race the rename fails and its copy is dropped. Prints ``venv:built`` or
    ``venv:reused`` last. A pure-Python wheel (``unzip``) is unpacked into site-packages,
    which is all pip would do with it; others go through the cluster Python's pip.
    ``requirements`` (e.g. cloudpickle when the venv does not see the cluster Python's
    packages) are installed with pip.
    """
    q = shlex.quote
    flags = " --system-site-packages" if system_site_packages else ""
    pip = (
        f"{q(python)} -m pip install --quiet --disable-pip-version-check "
        '--target "$purelib" --no-compile'
    )
    lines = [
        "set -euo pipefail",
        f"final={q(venv)}",
        'if [ -x "$final/bin/python" ]; then echo venv:reused; exit 0; fi',
        'mkdir -p "$(dirname "$final")"',
        'tmp="$final.tmp-$$-$RANDOM"',
        "trap 'rm -rf \"$tmp\"' EXIT",
        # No pip inside the venv (ensurepip is slow): the base Python's pip fills it.
        f'{q(python)} -m venv --without-pip{flags} "$tmp"',
        'purelib=$("$tmp/bin/python" -c '
        "'import sysconfig; print(sysconfig.get_paths()[\"purelib\"])')",
    ]
    if system_site_packages:
        # --system-site-packages shows the base interpreter's packages only; when the
        # cluster's Python is itself a venv, a .pth file adds its site folders too.
        lines.append(
            f"{q(python)} -c 'import site; print(*site.getsitepackages(), sep=chr(10))' "
            '> "$purelib/_slurm_magics_base.pth"'
        )
    if unzip:
        lines.append(
            '"$tmp/bin/python" -c \'import sys, zipfile; '
            "zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])' "
            f'{q(wheel)} "$purelib"'
        )
    else:
        lines.append(f"{pip} --no-deps --no-index {q(wheel)}")
    if requirements:
        lines.append(f"{pip} {' '.join(q(r) for r in requirements)}")
    lines += [
        # rename(2) onto an existing non-empty folder fails: the first finished build wins.
        'if mv -T "$tmp" "$final" 2>/dev/null; then trap - EXIT; echo venv:built; '
        "else echo venv:reused; fi",
    ]
    return "\n".join(lines) + "\n"
