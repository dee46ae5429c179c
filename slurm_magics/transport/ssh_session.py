"""One live SSH connection's channels: a small pool of remote shells and one SFTP client.

Every channel holds a slot of a semaphore for as long as it is open, so the connection never
has more channels than ``max_channels`` (kept below sshd's ``MaxSessions``, 10 by default).
"""

from __future__ import annotations

import asyncio
import collections

import asyncssh

from slurm_magics.transport.remote_shell import RemoteShell

__all__ = ["SSHSession"]


class SSHSession:
    """The channels of one connection; made again from scratch after a reconnection."""

    def __init__(
        self,
        conn: asyncssh.SSHClientConnection,
        *,
        max_channels: int,
        max_shells: int,
        start_timeout: float,
        stats: collections.Counter[str],
    ) -> None:
        self.conn = conn
        self._channels = asyncio.Semaphore(max_channels)
        self._max_shells = min(max_shells, max_channels - 1)  # one channel stays for SFTP
        self._start_timeout = start_timeout
        self._stats = stats
        self._pool_changed = asyncio.Condition()
        self._idle: list[RemoteShell] = []
        self._shells = 0
        self._sftp: asyncssh.SFTPClient | None = None
        self._sftp_lock = asyncio.Lock()

    @property
    def alive(self) -> bool:
        return not self.conn.is_closed()

    async def _take_channel(self) -> None:
        await self._channels.acquire()
        self._stats["channels_open"] += 1
        self._stats["channels_opened"] += 1
        self._stats["peak_channels"] = max(
            self._stats["peak_channels"], self._stats["channels_open"]
        )

    def _return_channel(self) -> None:
        self._stats["channels_open"] -= 1
        self._channels.release()

    async def shell(self) -> RemoteShell:
        """An idle shell, a new one while the pool has room, else wait for one."""
        async with self._pool_changed:
            while not self._idle and self._shells >= self._max_shells:
                await self._pool_changed.wait()
            if self._idle:
                return self._idle.pop()  # the most recently used: its pages are warm
            self._shells += 1
        try:
            await self._take_channel()
            try:
                return await RemoteShell.start(self.conn, self._start_timeout)
            except BaseException:
                self._return_channel()
                raise
        except BaseException:
            async with self._pool_changed:
                self._shells -= 1
                self._pool_changed.notify()
            raise

    async def give_back(self, shell: RemoteShell) -> None:
        """Return a shell after use; a broken one is dropped and frees its channel."""
        async with self._pool_changed:
            if shell.broken:
                self._shells -= 1
                self._return_channel()
            else:
                self._idle.append(shell)
            self._pool_changed.notify()

    async def sftp(self) -> asyncssh.SFTPClient:
        """The session's one SFTP client (it carries many requests at once)."""
        async with self._sftp_lock:
            if self._sftp is None:
                await self._take_channel()
                try:
                    self._sftp = await self.conn.start_sftp_client()
                except BaseException:
                    self._return_channel()
                    raise
            return self._sftp

    def drop_sftp(self) -> None:
        """Forget a failed SFTP client; the next file operation starts a new one."""
        if self._sftp is not None:
            self._sftp.exit()
            self._sftp = None
            self._return_channel()

    def close(self) -> None:
        for shell in self._idle:
            shell.close()
            self._return_channel()
        self._shells -= len(self._idle)
        self._idle.clear()
        self.drop_sftp()
        self.conn.close()
