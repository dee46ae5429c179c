"""Turn a ``Packaging`` into the ``Launch`` job scripts use (dispatch by kind)."""

from __future__ import annotations

from slurm_magics.core.packaging import Launch, Packaging
from slurm_magics.jobs.packaging.container import prepare_container
from slurm_magics.jobs.packaging.image import BuildProgress
from slurm_magics.jobs.packaging.wheel import prepare_wheel
from slurm_magics.transport import Transport

__all__ = ["prepare_launch"]


async def prepare_launch(
    packaging: Packaging,
    *,
    transport: Transport,
    root: str,
    python: str,
    setup: tuple[str, ...],
    events: dict[str, int],
    show_progress: bool = True,
) -> Launch:
    """The Launch for ``packaging`` on this cluster (``root``: its run-file folder,
    ``python``/``setup``: the cluster's own). Counts what it did in ``events``.

    Raises:
        PackagingError: no pyproject.toml, a failed wheel or image build, a refused push,
            no container runtime on the cluster, an image without Python/cloudpickle.
    """
    if packaging.kind == "wheel":
        assert packaging.wheel_options is not None
        return await prepare_wheel(
            packaging.wheel_options,
            transport=transport,
            root=root,
            python=python,
            setup=setup,
            events=events,
        )
    if packaging.kind == "container":
        assert packaging.container_options is not None
        progress = BuildProgress("building the image", show=show_progress)
        try:
            launch = await prepare_container(
                packaging.container_options,
                transport=transport,
                root=root,
                setup=setup,
                progress=progress,
            )
        finally:
            progress.close()
        events["images_pinned"] = events.get("images_pinned", 0) + 1
        return launch
    return Launch(python=python)
