"""Opening one SSH connection: ``~/.ssh/config`` honoured, host keys always verified.

asyncssh reads the OpenSSH config (HostName, Port, User, IdentityFile, ProxyJump,
UserKnownHostsFile, ...) and takes keys from the agent or the usual files. What this module
adds: refusals a user can act on (an unknown host key shows its SHA256 fingerprint and the
line that accepts it) and a sorting of failures into those worth retrying (the network, a
restarting sshd) and those that are not (host key, login refused, bad configuration).
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import asyncssh

from slurm_magics.core.errors import ClusterError

__all__ = [
    "ConnectionLostError",
    "HostKeyError",
    "SSHError",
    "SSHLoginError",
    "SSHTarget",
    "open_connection",
]

PathLike = str | os.PathLike[str]


class SSHError(ClusterError):
    """Reaching a cluster over SSH failed."""


class HostKeyError(SSHError):
    """The server's host key is not in known_hosts (unknown, or changed): nothing ran."""


class SSHLoginError(SSHError):
    """The server refused the login, or the SSH settings cannot work; retrying will not help."""


class ConnectionLostError(SSHError):
    """The connection dropped or the server cannot be reached (jobs keep running there)."""


@dataclasses.dataclass(frozen=True)
class SSHTarget:
    """Where and how to connect; None leaves the choice to ``~/.ssh/config`` and defaults."""

    host: str
    user: str | None = None
    port: int | None = None
    known_hosts: PathLike | Sequence[PathLike] | None = None
    client_keys: Sequence[PathLike] | None = None
    ssh_config: PathLike | Sequence[PathLike] | None = None
    connect_timeout: float = 15.0
    keepalive_interval: float = 15.0
    keepalive_count_max: int = 4

    @property
    def description(self) -> str:
        user = f"{self.user}@" if self.user else ""
        port = f":{self.port}" if self.port else ""
        return f"ssh://{user}{self.host}{port}"

    def options(self) -> dict[str, Any]:
        """Keyword arguments for ``asyncssh.connect`` (never one that skips host key checks)."""
        options: dict[str, Any] = {
            "host": self.host,
            "connect_timeout": self.connect_timeout,
            "keepalive_interval": self.keepalive_interval,
            "keepalive_count_max": self.keepalive_count_max,
        }
        if self.user is not None:
            options["username"] = self.user
        if self.port is not None:
            options["port"] = self.port
        if self.known_hosts is not None:
            existing = [path for path in _paths(self.known_hosts) if os.path.exists(path)]
            # Missing files trust nothing, as in OpenSSH (an empty list would mean the default).
            options["known_hosts"] = existing or asyncssh.SSHKnownHosts()
        if self.client_keys is not None:
            options["client_keys"] = _paths(self.client_keys)
        if self.ssh_config is not None:
            options["config"] = _paths(self.ssh_config)
        return options


def _paths(value: PathLike | Sequence[PathLike]) -> list[str]:
    if isinstance(value, str | os.PathLike):
        return [os.path.expanduser(os.fspath(value))]
    return [os.path.expanduser(os.fspath(item)) for item in value]


class _HostKeyRecorder(asyncssh.SSHClient):
    """Remembers the host key the server showed when known_hosts did not trust it."""

    def __init__(self) -> None:
        self.offered: tuple[str, str, int, asyncssh.SSHKey] | None = None

    def validate_host_public_key(
        self, host: str, addr: str, port: int, key: asyncssh.SSHKey
    ) -> bool:
        self.offered = (host, addr, port, key)
        return False  # only known_hosts decides


async def open_connection(target: SSHTarget) -> asyncssh.SSHClientConnection:
    """One attempt; raises HostKeyError, SSHLoginError or ConnectionLostError."""
    kwargs = target.options()
    try:
        resolved = await asyncio.to_thread(asyncssh.SSHClientConnectionOptions, **kwargs)
    except (OSError, ValueError, asyncssh.Error) as error:
        message = f"the SSH settings for {target.description} are invalid: {error}"
        raise SSHLoginError(message) from error
    if resolved.known_hosts is None:
        raise SSHLoginError(
            f"the SSH config sets `UserKnownHostsFile none` for {target.host}, which turns host "
            "key checks off; slurm_magics always checks them: remove that line or pass "
            "known_hosts='/path/to/known_hosts'."
        )
    recorder = _HostKeyRecorder()
    who = f"{resolved.username}@{resolved.host}:{resolved.port}"
    try:
        return await asyncssh.connect(**kwargs, client_factory=lambda: recorder)
    except asyncssh.HostKeyNotVerifiable:
        raise HostKeyError(_host_key_message(target, resolved, recorder)) from None
    except asyncssh.PermissionDenied as error:
        raise SSHLoginError(
            f"{who} refused the SSH login ({error.reason}): load your key into ssh-agent, set "
            f"IdentityFile for {target.host} in ~/.ssh/config, or pass client_keys=[...]."
        ) from None
    except asyncssh.ConnectionLost as error:
        raise ConnectionLostError(f"the connection to {who} was closed ({error.reason})") from error
    except asyncssh.DisconnectError as error:  # key exchange, protocol: not worth retrying
        raise SSHLoginError(f"SSH to {who} failed: {error.reason}") from error
    except (OSError, asyncio.TimeoutError, asyncssh.Error) as error:
        reason = str(error) or type(error).__name__
        raise ConnectionLostError(f"cannot reach {who}: {reason}") from error


def _host_key_message(
    target: SSHTarget, resolved: asyncssh.SSHClientConnectionOptions, recorder: _HostKeyRecorder
) -> str:
    given = target.known_hosts is not None
    files = _known_hosts_files(
        resolved.known_hosts if target.known_hosts is None else _paths(target.known_hosts)
    )
    shown = ", ".join(f"{path}{'' if path.exists() else ' (missing)'}" for path in files)
    if recorder.offered is None:  # e.g. no host key algorithm in common with known_hosts
        return (
            f"the SSH host key of {resolved.host} (port {resolved.port}) could not be verified "
            f"against {shown}; nothing was run there. Check the host's key with your admins "
            "and fix the known_hosts entry."
        )
    host, addr, port, key = recorder.offered
    fingerprint = key.get_fingerprint("sha256")
    target_file = str(files[0]) if given and files else "~/.ssh/known_hosts"
    scan = f"ssh-keyscan {f'-p {port} ' if port != 22 else ''}{host} >> {target_file}"
    changed = _known_keys(files, host, addr, port)
    if changed:
        what = (
            f"the SSH host key of {host} (port {port}) CHANGED: the server shows "
            f"{key.get_algorithm()} {fingerprint}, which is not the key recorded in {shown}. "
            "This can be a reinstalled server or an attack; nothing was run there. Ask your "
            "admins for the key's fingerprint. If they confirm it, remove the old entry with "
            f"`ssh-keygen{f' -f {target_file}' if given else ''} -R {_entry(host, port)}` and "
            f"accept the new one with `{scan}`"
        )
    else:
        what = (
            f"the SSH host key of {host} (port {port}) is unknown: the server shows "
            f"{key.get_algorithm()} {fingerprint}, which is not in {shown}; nothing was run "
            f"there. If this fingerprint is the server's (ask your admins), accept it with "
            f"`{scan}`"
        )
    return (
        f"{what}, or pass known_hosts='/path/to/known_hosts' to sm.connect(). "
        "Host key checks cannot be turned off."
    )


def _entry(host: str, port: int) -> str:
    return host if port == 22 else f"'[{host}]:{port}'"


def _known_hosts_files(known_hosts: object) -> list[Path]:
    if isinstance(known_hosts, str | os.PathLike):
        names: list[Any] = [known_hosts]
    elif isinstance(known_hosts, list | tuple) and known_hosts:
        names = list(known_hosts)
    else:  # asyncssh falls back to ~/.ssh/known_hosts
        names = ["~/.ssh/known_hosts"]
    paths = [Path(os.path.expanduser(os.fspath(name))) for name in names if _is_path(name)]
    return [path for path in paths if path.exists()] or paths[:1]


def _is_path(name: object) -> bool:
    return isinstance(name, str | os.PathLike)


def _known_keys(files: Sequence[Path], host: str, addr: str, port: int) -> bool:
    """Whether known_hosts holds some other key for this host (the key changed)."""
    for path in files:
        try:
            found = asyncssh.match_known_hosts(str(path), host, addr, None if port == 22 else port)
        except (OSError, ValueError, asyncssh.Error):
            continue
        if found[0]:  # trusted host keys
            return True
    return False
