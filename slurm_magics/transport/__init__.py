"""Transports: how slurm_magics runs commands and moves files on a cluster."""

from .base import CommandError, CommandResult, Transport
from .local import LocalTransport

__all__ = ["CommandError", "CommandResult", "LocalTransport", "Transport"]
