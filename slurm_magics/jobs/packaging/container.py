"""``Packaging.container(...)``: pin the image, find the cluster's runtime, check the image.

The image is built and pushed here (``image.py``); the cluster is asked which runtime it
has (Pyxis's ``srun --container-image``, ``apptainer``, ``podman``); then the image runs
the usual environment probe through that runtime, so an image without Python or
cloudpickle fails at connect time with a clear error, never in every job.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable

from slurm_magics.core.errors import ClusterError
from slurm_magics.core.launch_scripts import render_container_launch
from slurm_magics.core.packaging import (
    RUNTIMES,
    ContainerOptions,
    Launch,
    PackagingError,
    Runtime,
)
from slurm_magics.jobs.environment import check_environment
from slurm_magics.jobs.packaging.image import find_builder, resolve_image
from slurm_magics.transport import LocalTransport, Transport, run_script

__all__ = ["detect_runtime", "prepare_container"]

_PROBES: dict[Runtime, str] = {
    "pyxis": "srun --help 2>/dev/null | grep -q -- --container-image",
    "apptainer": "command -v apptainer >/dev/null",
    "podman": "command -v podman >/dev/null",
}


async def detect_runtime(
    transport: Transport, setup: tuple[str, ...], wanted: Runtime | None
) -> Runtime:
    """``wanted`` if the cluster has it, else the first of pyxis, apptainer, podman found."""
    candidates = (wanted,) if wanted else RUNTIMES
    lines = [
        *setup,
        *(f"if {_PROBES[name]}; then echo runtime:{name}; exit 0; fi" for name in candidates),
        "echo runtime:none",
    ]
    result = await run_script(transport, "\n".join(lines), timeout=60.0)
    said = [line for line in result.stdout.splitlines() if line.startswith("runtime:")]
    found = said[-1].removeprefix("runtime:") if said else "none"
    if found == "none":
        where = transport.description.removeprefix("ssh://")
        where = "this machine" if where == "local" else where
        what = (
            f"runtime={wanted!r} is not available"
            if wanted
            else "no container runtime found (Pyxis's srun --container-image, apptainer or podman)"
        )
        raise PackagingError(
            f"{what} on {where}{' after the setup lines' if setup else ''}: install one there, "
            "add setup=['module load apptainer'] (say) to connect(), or name another runtime="
        )
    return next(name for name in RUNTIMES if name == found)


async def prepare_container(
    options: ContainerOptions,
    *,
    transport: Transport,
    root: str,
    setup: tuple[str, ...],
    progress: Callable[[str], None],
) -> Launch:
    """Pin the image (building and pushing it if asked), render how jobs run inside it,
    and check there that it has a Python of this major.minor with cloudpickle."""
    runtime = await detect_runtime(transport, setup, options.runtime)
    image = await resolve_image(options, progress)
    mounts = [root, *options.mounts]
    extra, launcher = render_container_launch(runtime, image, mounts, tls_verify=options.tls_verify)
    launch = Launch(python=options.python, setup=extra, launcher=launcher, image=image)
    where: Transport = transport
    check_launcher = launcher
    if runtime == "pyxis":
        # srun needs an allocation: probe the same image with the builder here instead.
        builder = find_builder(options.builder)
        podman = builder.endswith("podman")
        flags = "" if options.tls_verify or not podman else " --tls-verify=false"
        check_launcher = f"{shlex.quote(builder)} run --rm --quiet{flags} {shlex.quote(image)}"
        where = LocalTransport()
    try:
        await check_environment(
            where, options.python, (*setup, *extra), launcher=check_launcher, timeout=600.0
        )
    except ClusterError as error:
        raise PackagingError(
            f"the image {image} cannot run jobs (checked with {runtime}): {error}\n"
            "The image needs Python and cloudpickle: add e.g. `RUN pip install "
            "cloudpickle` to the Dockerfile."
        ) from error
    return launch
