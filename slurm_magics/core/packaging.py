"""How the user's code reaches the compute node: `Packaging` and what it renders (pure).

- ``"none"`` (default) / ``"inherit"``: the cluster's Python as configured; functions go by
  value (cloudpickle), installed packages by name.
- ``"wheel"``: the user's project as a wheel, installed once per content hash into a venv on
  the cluster (built in a temporary folder, then renamed: concurrent builds never corrupt it).
- ``"container"``: the runner runs inside an image pinned by digest, with Pyxis/enroot
  (``srun --container-image``), Apptainer (``apptainer exec docker://``) or podman; the
  cluster's root folder (runs, results, sentinels, data) is mounted at the same path.

The job-script lines each renders are in ``core.launch_scripts``; nothing here runs a
command: the I/O lives in ``slurm_magics.jobs.packaging``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
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
]

Runtime = Literal["pyxis", "apptainer", "podman"]
RUNTIMES: tuple[Runtime, ...] = ("pyxis", "apptainer", "podman")
Kind = Literal["none", "inherit", "wheel", "container"]
_KINDS: tuple[Kind, ...] = ("none", "inherit", "wheel", "container")


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
            push: True (default) pushes a built image, or tags and pushes a given one to
                ``registry``; False uses ``image`` as given, which must then be pinned
                (``name@sha256:...``) and reachable from the compute nodes.
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
    if options.dockerfile is not None and (options.registry is None or not options.push):
        raise PackagingError(
            "a built image must be pushed somewhere the compute nodes pull from, and job "
            "scripts pin the digest the registry stores: pass registry='host[:port]/name' "
            f"(with push=True) along with dockerfile={options.dockerfile!r}."
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
