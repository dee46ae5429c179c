"""One cluster's prepared packagings: each ``Packaging`` is prepared once (built, uploaded,
pinned, checked) and its ``Launch`` reused by every later submission."""

from __future__ import annotations

import asyncio

from slurm_magics.core.packaging import Launch, Packaging, coerce_packaging
from slurm_magics.jobs.packaging.prepare import prepare_launch
from slurm_magics.transport import Transport

__all__ = ["Launches"]


class Launches:
    """The cluster's default packaging and the Launch of every packaging used so far.

    ``events`` counts what preparing cost: ``wheel_uploads``, ``venv_builds``,
    ``venv_reuses``, ``images_pinned``.
    """

    def __init__(self, default: Packaging | str | None) -> None:
        self.default = coerce_packaging(default)
        self.events: dict[str, int] = {}
        self._prepared: dict[Packaging, Launch] = {}
        self._lock = asyncio.Lock()
        self._where: tuple[Transport, str, str, tuple[str, ...]] | None = None

    def bind(self, transport: Transport, root: str, python: str, setup: tuple[str, ...]) -> None:
        """Where launches are prepared: the cluster's transport, root, Python and setup."""
        self._where = (transport, root, python, setup)

    async def get(self, packaging: Packaging | str | None = None) -> Launch:
        """The Launch of ``packaging`` (None: the default), prepared on first use."""
        chosen = self.default if packaging is None else coerce_packaging(packaging)
        async with self._lock:  # two first uses never build the same thing twice
            if chosen not in self._prepared:
                assert self._where is not None, "bind() first"
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
