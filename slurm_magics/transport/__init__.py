"""Transports: how slurm_magics runs commands and moves files on a cluster."""

from .base import CommandError, CommandResult, Transport
from .local import LocalTransport
from .ssh import ConnectionLostError, HostKeyError, SSHError, SSHLoginError, SSHTransport

__all__ = [
    "CommandError",
    "CommandResult",
    "ConnectionLostError",
    "HostKeyError",
    "LocalTransport",
    "SSHError",
    "SSHLoginError",
    "SSHTransport",
    "Transport",
]
