"""The examples' ``--packaging*`` flags and the ``sm.Packaging`` they make."""

from __future__ import annotations

import argparse
from pathlib import Path

import slurm_magics as sm

__all__ = ["DEFAULT_DOCKERFILE", "add_packaging_arguments", "packaging_from"]

#: the Dockerfile shipped with the examples (Python + cloudpickle on a base image)
DEFAULT_DOCKERFILE = Path(__file__).with_name("Dockerfile")


def _true_or_false(text: str) -> bool:
    """An argparse type: "true" or "false" (any case)."""
    value = text.strip().lower()
    if value not in ("true", "false"):
        raise argparse.ArgumentTypeError(f"{text!r} must be true or false")
    return value == "true"


def _build_arg(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"{text!r} must be KEY=VALUE")
    return key, value


def add_packaging_arguments(parser: argparse.ArgumentParser) -> None:
    """Add --packaging, --packaging-registry, -platform, -tls-verify, -dockerfile, -build-arg."""
    group = parser.add_argument_group("packaging (how the jobs get the code)")
    group.add_argument(
        "--packaging",
        choices=("none", "wheel", "container"),
        default="none",
        help="none: functions by value (default); wheel: the project at or above the working "
        "directory in a venv on the cluster; container: jobs run inside an image",
    )
    group.add_argument(
        "--packaging-registry",
        metavar="HOST[:PORT]/NAME",
        help="where the image is pushed and pulled from (container)",
    )
    group.add_argument("--packaging-platform", metavar="OS/ARCH", help="e.g. linux/amd64")
    group.add_argument(
        "--packaging-tls-verify",
        type=_true_or_false,
        default=True,
        metavar="true|false",
        help="false for a plain-HTTP or self-signed registry (default true)",
    )
    group.add_argument(
        "--packaging-dockerfile",
        default=str(DEFAULT_DOCKERFILE),
        metavar="PATH",
        help="the Dockerfile to build (default: the one shipped with the examples)",
    )
    group.add_argument(
        "--packaging-build-arg",
        type=_build_arg,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a --build-arg for the image (repeatable), e.g. BASE_IMAGE=python:3.11-slim",
    )


def packaging_from(options: argparse.Namespace) -> sm.Packaging | str:
    """What to pass to ``sm.connect(packaging=...)``; PackagingError (a ClusterError) for
    container flags that do not fit together."""
    if options.packaging != "container":
        return str(options.packaging)
    return sm.Packaging.container(
        dockerfile=options.packaging_dockerfile,
        registry=options.packaging_registry,
        platform=options.packaging_platform,
        tls_verify=options.packaging_tls_verify,
        build_args=dict(options.packaging_build_arg),
    )
