"""One cluster's prepared packagings: each ``Packaging`` is prepared once (built, uploaded,
pinned, checked) and its ``Launch`` reused by every later submission."""

from __future__ import annotations

import asyncio

from slurm_magics.core.packaging import Launch, Packaging, coerce_packaging
from slurm_magics.jobs.engine import engine
from slurm_magics.jobs.packaging.prepare import prepare_launch
from slurm_magics.jobs.shipping import ship_local_modules
from slurm_magics.transport import Transport

__all__ = ["Launches"]


class Launches:
    """The cluster's default packaging and the Launch of every packaging used so far.

    ``events`` counts what preparing cost: ``wheel_uploads``, ``venv_builds``,
    ``venv_reuses``, ``images_pinned``.
    """

    def __init__(
        self,
        default: Packaging | str | None,
        transport: Transport,
        root: str,
        python: str,
        setup: tuple[str, ...],
    ) -> None:
        """``default``: the cluster's packaging; the rest: where launches are prepared
        (the cluster's transport, root folder, Python and setup lines)."""
        self.default = coerce_packaging(default)
        self.events: dict[str, int] = {}
        self._prepared: dict[Packaging, Launch] = {}
        self._lock = asyncio.Lock()
        self._where = (transport, root, python, setup)

    async def get(self, packaging: Packaging | str | None = None) -> Launch:
        """The Launch of ``packaging`` (None: the default), prepared on first use."""
        chosen = self.default if packaging is None else coerce_packaging(packaging)
        async with self._lock:  # two first uses never build the same thing twice
            if chosen not in self._prepared:
                transport, root, python, setup = self._where
                self._prepared[chosen] = await prepare_launch(
                    chosen,
                    transport=transport,
                    root=root,
                    python=python,
                    setup=setup,
                    events=self.events,
                )
            return self._prepared[chosen]

    def ship(self, packaging: Packaging | str | None = None) -> Launch:
        """From a user thread, before a submission: the Launch of ``packaging`` (prepared
        on the engine's loop at first use), with the user's local modules registered to
        travel by value except those the packaging installs."""
        launch = engine.call(self.get(packaging))
        ship_local_modules(launch.by_reference)
        return launch
