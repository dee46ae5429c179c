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
import shlex
from typing import Any

from slurm_magics.core.errors import ClusterError
from slurm_magics.transport import SSHTransport

__all__ = ["SSHRelay"]

START_TIMEOUT = 30.0


class SSHRelay:
    """A relay on the login node in front of a local listener (one per pool)."""

    def __init__(self) -> None:
        self.address: tuple[str, int] | None = None
        self._forward: Any = None
        self._process: Any = None

    async def open(
        self, transport: SSHTransport, *, python: str, relay_path: str, local_port: int
    ) -> tuple[str, int]:
        """Forward a login-node port to ``local_port``, start the relay; its address.

        Raises:
            ClusterError: the server refused the forwarding (AllowTcpForwarding) or the relay
                did not start (its stderr says why).
        """
        await transport.home()  # connected
        conn = transport.connection
        if conn is None:
            raise ClusterError(f"no SSH connection to {transport.description} for the pool")
        try:
            self._forward = await conn.forward_remote_port("127.0.0.1", 0, "127.0.0.1", local_port)
        except Exception as error:
            raise ClusterError(
                f"{transport.description} refused to forward a port back for the pool's "
                f"workers ({error}); ask the admins for AllowTcpForwarding, or run the "
                "notebook on the login node."
            ) from error
        upstream = str(self._forward.get_port())
        command = shlex.join([python, relay_path, "auto", "127.0.0.1", upstream])
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
            await self.close()
            raise ClusterError(
                f"the pool relay did not start on {transport.description}: "
                f"{(error_text or line).strip() or 'no answer'}"
            )
        self.address = (words[1], int(words[2]))
        return self.address

    async def close(self) -> None:
        """Stop the relay and the forwarding."""
        if self._process is not None:
            with contextlib.suppress(Exception):
                self._process.stdin.write_eof()
            self._process.close()
            self._process = None
        if self._forward is not None:
            self._forward.close()
            self._forward = None
