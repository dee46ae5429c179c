"""Where pool workers connect: a TCP listener that lets in only those who know the secret.

Each connection must pass the HMAC challenge of ``core.pool_protocol`` in both directions
before any message bigger than a challenge is read, and before anything is unpickled;
a connection that fails (or stalls) is closed and logged. What passes is handed over as a
``WorkerConnection``: framed messages in, framed messages out.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from ...core import pool_protocol as protocol
from ...core.pool_protocol import Kind

__all__ = ["Listener", "WorkerConnection"]

log = logging.getLogger(__name__)

HANDSHAKE_TIMEOUT = 10.0  # seconds a new connection has to prove itself


class WorkerConnection:
    """One authenticated worker: its name (from its HELLO) and its framed stream."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        frames: protocol.FrameReader,
        ready: collections.deque[protocol.Frame],
        hello: dict[str, Any],
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._frames = frames
        self._ready = ready
        self.hello = hello
        self.name = str(hello.get("worker", "?"))
        self.peer = str(writer.get_extra_info("peername"))

    def __repr__(self) -> str:
        return f"<WorkerConnection {self.name} from {self.peer}>"

    async def receive(self) -> protocol.Frame:
        """The next frame; raises ConnectionError at the end of the stream."""
        return await _next_frame(self._reader, self._frames, self._ready)

    def send(self, kind: int, body: bytes = b"") -> None:
        """Queue a frame for sending (the stream's buffer; see ``drain``)."""
        if not self._writer.is_closing():
            self._writer.write(protocol.encode(kind, body))

    async def drain(self) -> None:
        """Wait until the stream's send buffer is below its high-water mark."""
        await self._writer.drain()

    def close(self) -> None:
        """Close the connection (the worker notices and reconnects or exits)."""
        self._writer.close()

    def abort(self) -> None:
        """Drop the connection at once (a worker that fell silent)."""
        self._writer.transport.abort()

    @property
    def closed(self) -> bool:
        return self._writer.is_closing()


async def _next_frame(
    reader: asyncio.StreamReader,
    frames: protocol.FrameReader,
    ready: collections.deque[protocol.Frame],
) -> protocol.Frame:
    while not ready:
        data = await reader.read(1 << 20)
        if not data:
            raise ConnectionError("the worker closed the connection")
        ready.extend(frames.feed(data))
    return ready.popleft()


class Listener:
    """A TCP server for one pool; calls ``on_worker`` with each authenticated connection.

    ``host`` is the address to listen on (only where workers come from: the login node's
    address, or loopback behind an SSH relay); port 0 picks a free one (see ``address``).
    """

    def __init__(
        self,
        secret: bytes,
        on_worker: Callable[[WorkerConnection], Awaitable[None]],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.secret = secret
        self.on_worker = on_worker
        self.host = host
        self.port = port
        self.refused = 0  # connections that failed the handshake
        self._server: asyncio.Server | None = None
        self._handlers: dict[asyncio.Task[None], asyncio.StreamWriter] = {}

    @property
    def address(self) -> tuple[str, int]:
        """(host, port) workers connect to (after ``start``)."""
        if self._server is None:
            raise RuntimeError("the listener is not started")
        host, port = self._server.sockets[0].getsockname()[:2]
        return str(host), int(port)

    async def start(self) -> None:
        """Start listening."""
        self._server = await asyncio.start_server(self._accept, self.host, self.port)

    async def close(self) -> None:
        """Stop listening and end every connection's handler."""
        if self._server is not None:
            self._server.close()
            self._server = None
        # Dropping the connections ends their handlers (cancelling them instead would make
        # asyncio log each one as an error).
        for writer in list(self._handlers.values()):
            writer.transport.abort()
        if self._handlers:
            await asyncio.gather(*self._handlers, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers[task] = writer
        peer = writer.get_extra_info("peername")
        try:
            try:
                hello = await asyncio.wait_for(self._handshake(reader, writer), HANDSHAKE_TIMEOUT)
            except (OSError, EOFError, TimeoutError, protocol.ProtocolError, ValueError) as error:
                self.refused += 1
                reason = str(error) or type(error).__name__
                log.warning("slurm_magics pool: refused a connection from %s: %s", peer, reason)
                writer.close()
                return
            await self.on_worker(hello)
        finally:
            self._handlers.pop(task, None)
            writer.close()

    async def _handshake(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> WorkerConnection:
        frames = protocol.FrameReader()  # HANDSHAKE_LIMIT until both sides are proven
        ready: collections.deque[protocol.Frame] = collections.deque()
        challenge = protocol.new_challenge()
        writer.write(protocol.encode(Kind.CHALLENGE, challenge))
        kind, response = await _next_frame(reader, frames, ready)
        if kind != Kind.ANSWER or not protocol.check_answer(
            self.secret, challenge, response, worker=True
        ):
            writer.write(protocol.encode(Kind.FAILURE))
            await writer.drain()
            raise protocol.ProtocolError("wrong answer to the challenge (no or wrong secret)")
        writer.write(protocol.encode(Kind.WELCOME))
        kind, theirs = await _next_frame(reader, frames, ready)
        if kind != Kind.CHALLENGE:
            raise protocol.ProtocolError(f"expected the worker's challenge, got kind {kind}")
        writer.write(
            protocol.encode(Kind.ANSWER, protocol.answer(self.secret, theirs, worker=False))
        )
        kind, _ = await _next_frame(reader, frames, ready)
        if kind != Kind.WELCOME:
            raise protocol.ProtocolError("the worker did not accept this listener's answer")
        kind, body = await _next_frame(reader, frames, ready)
        if kind != Kind.HELLO:
            raise protocol.ProtocolError(f"expected HELLO, got kind {kind}")
        hello = json.loads(body)  # JSON, never pickle: still a small frame
        if not isinstance(hello, dict):
            raise protocol.ProtocolError("HELLO is not a JSON object")
        frames.authenticated()
        return WorkerConnection(reader, writer, frames, ready, hello)
