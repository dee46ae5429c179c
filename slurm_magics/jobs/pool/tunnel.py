"""The SSH path: compute nodes reach a laptop's pool through the login node.

SSH forwards a port on the login node's loopback back to the local listener (remote port
forwarding on the existing connection); the stdlib relay, started over the same
connection, listens where compute nodes can reach it and splices each worker to that port.
The relay's standard input is the SSH channel: when the connection or the client goes, the
relay exits. Authentication stays end to end between workers and the listener.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shlex
import time
from collections.abc import Awaitable, Callable
from typing import Any

from slurm_magics.core.errors import ClusterError
from slurm_magics.transport import SSHTransport

__all__ = ["SSHRelay"]

log = logging.getLogger(__name__)

START_TIMEOUT = 30.0
RETRY_FIRST = 0.25  # seconds before starting a relay again, doubling up to RETRY_MAX
RETRY_MAX = 10.0
STABLE_AFTER = 30.0  # seconds a relay lived after which the next restart waits RETRY_FIRST again


class SSHRelay:
    """A relay on the login node in front of a local listener (one per pool).

    Args:
        transport: the pool's SSH connection (reconnects by itself when it drops).
        python: the login node's Python, which runs the stdlib relay.
        relay_path: where the relay's code was written on the login node.
        local_port: the pool listener's port on this machine's loopback.
    """

    def __init__(
        self, transport: SSHTransport, *, python: str, relay_path: str, local_port: int
    ) -> None:
        self.transport = transport
        self.python = python
        self.relay_path = relay_path
        self.local_port = local_port
        self.address: tuple[str, int] | None = None
        self.reopened = 0  # how often a dropped connection's relay was replaced
        self._forward: Any = None
        self._process: Any = None
        self._keeper: asyncio.Task[None] | None = None

    async def open(self) -> tuple[str, int]:
        """Forward a login-node port to the local listener, start the relay; its address.

        Raises:
            ClusterError: the server refused the forwarding (AllowTcpForwarding) or the relay
                did not start (its stderr says why).
        """
        transport = self.transport
        await transport.home()  # connected (again, after a drop)
        conn = transport.connection
        if conn is None:
            raise ClusterError(f"no SSH connection to {transport.description} for the pool")
        try:
            self._forward = await conn.forward_remote_port(
                "127.0.0.1", 0, "127.0.0.1", self.local_port
            )
        except Exception as error:
            raise ClusterError(
                f"{transport.description} refused to forward a port back for the pool's "
                f"workers ({error}); ask the admins for AllowTcpForwarding, or run the "
                "notebook on the login node."
            ) from error
        upstream = str(self._forward.get_port())
        command = shlex.join([self.python, self.relay_path, "auto", "127.0.0.1", upstream])
        self._process = await conn.create_process(command, encoding="utf-8")
        try:
            line = await asyncio.wait_for(self._process.stdout.readline(), START_TIMEOUT)
        except TimeoutError:
            line = ""
        words = line.split()
        if len(words) != 3 or words[0] != "relay":
            self._process.close()
            error_text = ""
            with contextlib.suppress(Exception):
                error_text = await asyncio.wait_for(self._process.stderr.read(), 2)
            await self._stop()
            raise ClusterError(
                f"the pool relay did not start on {transport.description}: "
                f"{(error_text or line).strip() or 'no answer'}"
            )
        self.address = (words[1], int(words[2]))
        return self.address

    def keep(self, on_address: Callable[[tuple[str, int]], Awaitable[None]]) -> None:
        """Replace the relay whenever it ends while the pool is open (the SSH connection
        dropped and took it along), and tell ``on_address`` where the new one listens: the
        pool rewrites the address its workers read when they reconnect."""
        self._keeper = asyncio.get_running_loop().create_task(self._keep(on_address))

    async def _keep(self, on_address: Callable[[tuple[str, int]], Awaitable[None]]) -> None:
        delay = RETRY_FIRST
        while True:
            started = time.monotonic()
            with contextlib.suppress(Exception):
                await self._process.wait_closed()
            log.warning("the pool relay on %s ended; starting another", self.transport.description)
            await self._stop()
            if time.monotonic() - started > STABLE_AFTER:  # it had lived: start again at once
                delay = RETRY_FIRST
            while True:
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX)
                try:
                    address = await self.open()
                    await on_address(address)
                    break
                except Exception as error:  # asyncssh's channel errors too: never give up
                    log.warning("the pool relay could not start again (%s); retrying", error)
                    await self._stop()
            self.reopened += 1

    async def close(self) -> None:
        """Stop keeping the relay, then stop it and the forwarding."""
        if self._keeper is not None:
            self._keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._keeper
            self._keeper = None
        await self._stop()

    async def _stop(self) -> None:
        if self._process is not None:
            with contextlib.suppress(Exception):
                self._process.stdin.write_eof()
            self._process.close()
            self._process = None
        if self._forward is not None:
            with contextlib.suppress(Exception):
                self._forward.close()
            self._forward = None
