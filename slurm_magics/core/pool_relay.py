"""A pool relay on the login node (stdlib only): compute nodes never need to reach a laptop.

Started over the client's SSH connection as ``python pool_relay.py LISTEN_HOST
UPSTREAM_HOST UPSTREAM_PORT``, where the upstream is the login-node end of a port that SSH
forwards back to the client's pool listener. It listens on ``LISTEN_HOST`` (``auto``: the
address the login node's host name resolves to, which compute nodes reach) on a free port,
prints ``relay HOST PORT`` on one line, and splices every worker connection byte for byte
to the upstream. It reads nothing it relays (the workers and the listener authenticate each
other end to end) and exits when its standard input closes: when the SSH connection or the
client goes away, so does the relay.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import sys
import threading

__all__ = ["listen_address", "main", "relay"]

CHUNK = 1 << 16


def listen_address(host: str) -> str:
    """The address to listen on: ``auto`` is the login node's own (non-loopback if it has one)."""
    if host != "auto":
        return host
    name = socket.gethostname()
    try:
        return socket.gethostbyname(name)
    except OSError:
        return "127.0.0.1"


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            data = await reader.read(CHUNK)
            if not data:
                break
            writer.write(data)
            await writer.drain()
    except (OSError, ConnectionError):
        pass
    finally:
        with contextlib.suppress(OSError, RuntimeError):
            writer.close()


async def relay(listen_host: str, upstream: tuple[str, int], ready: asyncio.Future[str]) -> None:
    """Serve until cancelled; ``ready`` gets the "relay HOST PORT" line once listening."""

    async def splice(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*upstream)
        except OSError as error:
            sys.stderr.write(f"slurm_magics relay: cannot reach {upstream}: {error}\n")
            writer.close()
            return
        with contextlib.suppress(OSError):
            for sock in (writer.get_extra_info("socket"), up_writer.get_extra_info("socket")):
                if sock is not None:
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))

    server = await asyncio.start_server(splice, listen_host, 0)
    host, port = server.sockets[0].getsockname()[:2]
    ready.set_result(f"relay {host} {port}")
    async with server:
        await server.serve_forever()


def _exit_when_stdin_closes() -> None:
    with contextlib.suppress(OSError):
        while sys.stdin.buffer.read(CHUNK):
            pass
    os._exit(0)


async def _main(listen_host: str, upstream: tuple[str, int]) -> None:
    ready: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    serving = asyncio.ensure_future(relay(listen_host, upstream, ready))
    waiting: set[asyncio.Future[object]] = {serving, ready}  # type: ignore[arg-type]
    await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
    if serving.done():  # could not listen
        serving.result()
    sys.stdout.write(ready.result() + "\n")
    sys.stdout.flush()
    await serving


def main(argv: list[str]) -> int:
    """Entry point: ``pool_relay.py LISTEN_HOST UPSTREAM_HOST UPSTREAM_PORT``."""
    if len(argv) != 4:
        sys.stderr.write("usage: pool_relay.py LISTEN_HOST UPSTREAM_HOST UPSTREAM_PORT\n")
        return 2
    threading.Thread(target=_exit_when_stdin_closes, daemon=True).start()
    try:
        asyncio.run(_main(listen_address(argv[1]), (argv[2], int(argv[3]))))
    except OSError as error:
        sys.stderr.write(f"slurm_magics relay: cannot listen on {argv[1]}: {error}\n")
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
