"""The jupyter_server extension behind the JupyterLab SLURM sidebar.

Enabled on ``pip install`` (``etc/jupyter/jupyter_server_config.d/slurm_magics.json``); it
serves the REST API of ``handlers.py`` under ``{base_url}slurm-magics/api/``.
"""

from __future__ import annotations

from typing import Any

from slurm_magics.server.handlers import handlers
from slurm_magics.server.service import SlurmService

__all__ = ["_jupyter_server_extension_points", "_load_jupyter_server_extension"]


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "slurm_magics.server"}]


def _load_jupyter_server_extension(server_app: Any) -> None:
    """Register the API handlers with the server (called once by jupyter_server)."""
    web_app = server_app.web_app
    service = SlurmService(root_dir=str(server_app.root_dir), log=server_app.log)
    web_app.settings["slurm_magics_service"] = service
    web_app.add_handlers(".*$", handlers(web_app.settings["base_url"], service))
    server_app.log.info(
        "slurm_magics: SLURM sidebar API at %sslurm-magics/api/", web_app.settings["base_url"]
    )
