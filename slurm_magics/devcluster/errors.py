"""The one exception type of the dev cluster."""

from __future__ import annotations

__all__ = ["DevClusterError"]


class DevClusterError(RuntimeError):
    """The dev cluster could not be set up, reached or stopped; the message says what to do."""
