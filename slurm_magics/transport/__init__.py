"""Transports: how slurm_magics runs commands and moves files on a cluster."""

from slurm_magics.transport.base import CommandError, CommandResult, Transport, run_script
from slurm_magics.transport.local import LocalTransport
from slurm_magics.transport.ssh import (
    ConnectionLostError,
    HostKeyError,
    SSHError,
    SSHLoginError,
    SSHTransport,
)

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
    "run_script",
]
