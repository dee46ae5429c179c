"""The SSH transport: one persistent asyncssh connection per cluster.

Commands go through a small pool of long-lived remote shells (``remote_shell``), files
through one SFTP client; every channel takes a slot of a semaphore kept below sshd's
``MaxSessions``. A dropped connection is reopened with exponential backoff by the next
call, which is retried once when that is safe (file operations, read-only commands, or a
command that was never sent); otherwise it raises ``ConnectionLostError`` (a
``ClusterError``), so the poller keeps every future as it is and tries again next tick.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import shlex
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TypeVar

import asyncssh

from slurm_magics.core.errors import ClusterError
from slurm_magics.transport import sftp_files
from slurm_magics.transport.base import CommandResult
from slurm_magics.transport.remote_shell import ShellLostError
from slurm_magics.transport.ssh_connect import (
    ConnectionLostError,
    HostKeyError,
    PathLike,
    SSHError,
    SSHLoginError,
    SSHTarget,
    open_connection,
)
from slurm_magics.transport.ssh_session import SSHSession

__all__ = ["ConnectionLostError", "HostKeyError", "SSHError", "SSHLoginError", "SSHTransport"]

log = logging.getLogger(__name__)

T = TypeVar("T")

# Commands that change nothing (or nothing twice): safe to run again after a drop.
_REPEATABLE = frozenset(
    {"squeue", "sacct", "sinfo", "sprio", "sshare", "sstat", "scancel", "id", "hostname", "true"}
)
_LOST = (
    ShellLostError,
    asyncssh.ConnectionLost,
    asyncssh.SFTPConnectionLost,
    asyncssh.SFTPNoConnection,
    asyncio.IncompleteReadError,
    ConnectionError,
)


class SSHTransport:
    """Commands and files on a cluster's login node over one SSH connection.

    ``host`` may be an alias of ``~/.ssh/config`` (or of ``ssh_config=``): HostName, Port,
    User, IdentityFile, ProxyJump and UserKnownHostsFile apply. Keys come from the agent,
    the usual files or ``client_keys``; host keys are checked against known_hosts (or
    ``known_hosts=``), always.
    """

    def __init__(
        self,
        host: str,
        *,
        user: str | None = None,
        port: int | None = None,
        known_hosts: PathLike | Sequence[PathLike] | None = None,
        client_keys: Sequence[PathLike] | None = None,
        ssh_config: PathLike | Sequence[PathLike] | None = None,
        connect_timeout: float = 15.0,
        keepalive_interval: float = 15.0,
        max_channels: int = 8,
        max_shells: int = 3,
        reconnect_attempts: int = 8,
        reconnect_delay: float = 0.5,
        reconnect_max_delay: float = 10.0,
    ) -> None:
        if max_channels < 2:
            raise ValueError(f"max_channels={max_channels} must be at least 2 (SFTP and a shell)")
        if max_shells < 1 or reconnect_attempts < 1:
            raise ValueError("max_shells and reconnect_attempts must be at least 1")
        self.target = SSHTarget(
            host,
            user=user,
            port=port,
            known_hosts=known_hosts,
            client_keys=client_keys,
            ssh_config=ssh_config,
            connect_timeout=connect_timeout,
            keepalive_interval=keepalive_interval,
        )
        self.description = self.target.description
        self.max_channels = max_channels
        self.max_shells = min(max_shells, max_channels - 1)  # one channel stays for SFTP
        self.reconnect_attempts = reconnect_attempts
        self.reconnect_delay = reconnect_delay
        self.reconnect_max_delay = reconnect_max_delay
        #: calls per operation: {"run": 12, "list_dir": 40, ...}
        self.counters: collections.Counter[str] = collections.Counter()
        #: reconnects, channels_opened, channels_open, peak_channels
        self.stats: collections.Counter[str] = collections.Counter()
        self._session: SSHSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._connect_lock = asyncio.Lock()
        self._connected_once = False

    def __repr__(self) -> str:
        return f"<SSHTransport {self.description}>"

    @property
    def connection(self) -> asyncssh.SSHClientConnection | None:
        """The current connection (None before the first call or after a drop or close)."""
        session = self._session
        return session.conn if session is not None and session.alive else None

    # -- the connection ---------------------------------------------------------------------
    async def _connected(self) -> SSHSession:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # asyncssh objects belong to the loop that made them
            self._abandon_session()
            self._loop = loop
            self._connect_lock = asyncio.Lock()
        session = self._session
        if session is not None and session.alive:
            return session
        async with self._connect_lock:
            session = self._session
            if session is not None and session.alive:
                return session
            if session is not None:
                session.close()
            conn = await self._open_with_backoff()
            if self._connected_once:
                self.stats["reconnects"] += 1
                log.warning("slurm_magics: reconnected to %s", self.description)
            self._connected_once = True
            self._session = SSHSession(
                conn,
                max_channels=self.max_channels,
                max_shells=self.max_shells,
                start_timeout=self.target.connect_timeout,
                stats=self.stats,
            )
            return self._session

    def _abandon_session(self) -> None:
        session, self._session = self._session, None
        if session is not None and self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(session.close)

    async def _open_with_backoff(self) -> asyncssh.SSHClientConnection:
        # A first connection fails fast (a wrong name should not take a minute to report);
        # a reconnection waits for a restarting server or a network coming back.
        attempts = self.reconnect_attempts if self._connected_once else 2
        delay = self.reconnect_delay
        started = time.monotonic()
        for attempt in range(1, attempts + 1):
            try:
                return await open_connection(self.target)
            except ConnectionLostError as error:  # noqa: PERF203  (a retry loop)
                if attempt == attempts:
                    after = (
                        " Submitted jobs keep running on the cluster; the next call tries again."
                        if self._connected_once
                        else ""
                    )
                    raise ConnectionLostError(
                        f"{error}; gave up after {attempts} attempts over "
                        f"{time.monotonic() - started:.0f} s.{after}"
                    ) from error
                log.warning(
                    "slurm_magics: %s; retrying in %.1f s (attempt %d of %d)",
                    error,
                    delay,
                    attempt,
                    attempts,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.reconnect_max_delay)
        raise AssertionError("unreachable")

    async def _call(
        self, what: str, operation: Callable[[SSHSession], Awaitable[T]], *, repeatable: bool
    ) -> T:
        """Run an operation on the live session; after a drop, reconnect and maybe retry once."""
        for attempt in (1, 2):
            session = await self._connected()
            try:
                return await operation(session)
            except (FileNotFoundError, ClusterError):
                raise
            except (ShellLostError, asyncssh.Error, OSError, asyncio.IncompleteReadError) as error:
                await asyncio.sleep(0.05)  # let the connection notice its own end first
                if not (isinstance(error, _LOST) or not session.alive):
                    raise ClusterError(f"{what} failed on {self.description}: {error}") from error
                if isinstance(error, asyncssh.SFTPError):
                    session.drop_sftp()
                sent = error.sent if isinstance(error, ShellLostError) else True
                if attempt == 2 or (sent and not repeatable):
                    if session.alive:  # only a channel ended (a shell killed, say)
                        raise SSHError(f"{what} failed on {self.description}: {error}") from error
                    raise ConnectionLostError(
                        f"the SSH connection to {self.description} was lost during {what} "
                        f"({error!r})"
                        + ("" if repeatable else "; it may or may not have run there")
                    ) from error
                log.warning(
                    "slurm_magics: %s: %r during %s; retrying", self.description, error, what
                )
        raise AssertionError("unreachable")

    async def close(self) -> None:
        session, self._session = self._session, None
        self._connected_once = False  # a later call connects afresh (not a "reconnect")
        if session is not None:
            session.close()
            await asyncio.wait_for(session.conn.wait_closed(), 10)

    # -- commands ---------------------------------------------------------------------------
    async def run(
        self, argv: Sequence[str], *, input: bytes | None = None, timeout: float | None = 120.0
    ) -> CommandResult:
        argv = tuple(argv)
        self.counters["run"] += 1

        async def execute(session: SSHSession) -> CommandResult:
            shell = await session.shell()
            try:
                return await shell.execute(argv, input=input, timeout=timeout)
            finally:
                await session.give_back(shell)

        repeatable = argv[0] in _REPEATABLE or argv[:2] == ("scontrol", "show")
        return await self._call(f"`{shlex.join(argv)}`", execute, repeatable=repeatable)

    # -- files (one SFTP client; every file operation may be repeated) -------------------
    async def _files(
        self, name: str, what: str, operation: Callable[[asyncssh.SFTPClient], Awaitable[T]]
    ) -> T:
        self.counters[name] += 1

        async def on_session(session: SSHSession) -> T:
            return await operation(await session.sftp())

        return await self._call(what, on_session, repeatable=True)

    async def home(self) -> str:
        return await self._files("home", "finding the home folder", sftp_files.home)

    async def make_dirs(self, path: str, *, mode: int = 0o700) -> None:
        await self._files(
            "make_dirs", f"creating {path}", lambda sftp: sftp_files.make_dirs(sftp, path, mode)
        )

    async def write_files(self, files: Mapping[str, bytes], *, mode: int = 0o600) -> None:
        await self._files(
            "write_files",
            f"writing {len(files)} files",
            lambda sftp: sftp_files.write_files(sftp, files, mode),
        )

    async def read_file(self, path: str) -> bytes:
        return await self._files(
            "read_file", f"reading {path}", lambda sftp: sftp_files.read_file(sftp, path)
        )

    async def read_tail(self, path: str, max_bytes: int) -> bytes:
        return await self._files(
            "read_tail",
            f"reading {path}",
            lambda sftp: sftp_files.read_tail(sftp, path, max_bytes),
        )

    async def list_dir(self, path: str) -> list[str]:
        return await self._files(
            "list_dir", f"listing {path}", lambda sftp: sftp_files.list_dir(sftp, path)
        )

    async def remove_files(self, paths: Sequence[str]) -> None:
        await self._files(
            "remove_files",
            f"removing {len(paths)} files",
            lambda sftp: sftp_files.remove_files(sftp, paths),
        )
