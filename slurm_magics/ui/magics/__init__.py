"""IPython magics: ``%load_ext slurm_magics``, then ``%%slurm`` runs a cell on the cluster.

The package root imports this module only when the extension is loaded, so
``import slurm_magics`` stays light.
"""

from __future__ import annotations

from typing import Any

from slurm_magics.ui.magics.magics import SlurmMagics

__all__ = ["load_ipython_extension", "unload_ipython_extension"]

_loaded: dict[int, Any] = {}


def load_ipython_extension(ipython: Any) -> None:
    """Register the magics and start tracking the notebook's jobs."""
    if id(ipython) in _loaded:
        return
    magics = SlurmMagics(ipython)
    ipython.register_magics(magics)
    ipython.events.register("post_run_cell", magics.scan_namespace)
    _loaded[id(ipython)] = magics


def unload_ipython_extension(ipython: Any) -> None:
    """Remove the magics again (``%unload_ext slurm_magics``)."""
    magics = _loaded.pop(id(ipython), None)
    if magics is None:
        return
    ipython.events.unregister("post_run_cell", magics.scan_namespace)
    for kind, names in magics.magics.items():
        for name in names:
            ipython.magics_manager.magics[kind].pop(name, None)
