"""Packaging's I/O: build the user's wheel or image here, prepare it on the cluster.

``Launches.get`` turns a ``Packaging`` (``slurm_magics.core.packaging``) into the
``Launch`` job scripts use: the venv's Python for a wheel, a digest-pinned container
launcher for an image, the cluster's Python for ``"none"`` -- once per cluster.
"""

from __future__ import annotations

from slurm_magics.core.packaging import Packaging
from slurm_magics.jobs.packaging.container import detect_runtime, prepare_container
from slurm_magics.jobs.packaging.image import BuildProgress, build_image, push_image
from slurm_magics.jobs.packaging.launches import Launches
from slurm_magics.jobs.packaging.prepare import prepare_launch
from slurm_magics.jobs.packaging.wheel import build_wheel, find_project, prepare_wheel

__all__ = [
    "BuildProgress",
    "Launches",
    "Packaging",
    "build_image",
    "build_wheel",
    "detect_runtime",
    "find_project",
    "prepare_container",
    "prepare_launch",
    "prepare_wheel",
    "push_image",
]
