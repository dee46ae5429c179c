"""The transport's file operations on one SFTP client (private folders, atomic writes).

Each function maps "missing" to what the Transport protocol promises (FileNotFoundError,
b"", [] or nothing) and lets every other error through for the transport to sort out.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import os
import posixpath
import secrets
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import cast

import asyncssh

__all__ = [
    "home",
    "list_dir",
    "make_dirs",
    "read_file",
    "read_tail",
    "remove_files",
    "write_files",
]

_AT_ONCE = 16  # requests in flight per call (one channel carries them all)


async def home(sftp: asyncssh.SFTPClient) -> str:
    return str(await sftp.realpath("."))  # an SFTP session starts in the home folder


async def make_dirs(sftp: asyncssh.SFTPClient, path: str, mode: int) -> None:
    """mkdir -p with ``mode`` on every folder it creates, then chmod the last one."""
    try:
        await sftp.mkdir(path, asyncssh.SFTPAttrs(permissions=mode))
    except asyncssh.SFTPNoSuchFile:  # a parent is missing
        parent = posixpath.dirname(path.rstrip("/"))
        if not parent or parent == path:
            raise
        await make_dirs(sftp, parent, mode)
        await make_dirs(sftp, path, mode)
        return
    except (asyncssh.SFTPFailure, asyncssh.SFTPFileAlreadyExists):  # it exists
        if not await sftp.isdir(path):
            raise FileExistsError(errno.EEXIST, "exists and is not a folder", path) from None
    await sftp.chmod(path, mode)  # also when it existed: run folders stay private


async def write_files(sftp: asyncssh.SFTPClient, files: Mapping[str, bytes], mode: int) -> None:
    await _bounded(
        functools.partial(_write_atomically, sftp, path, data, mode) for path, data in files.items()
    )


async def _write_atomically(sftp: asyncssh.SFTPClient, path: str, data: bytes, mode: int) -> None:
    temporary = f"{path}.tmp-{secrets.token_hex(4)}"
    try:
        async with sftp.open(
            temporary, "wb", asyncssh.SFTPAttrs(permissions=mode), encoding=None
        ) as stream:
            await stream.write(data)
            await stream.chmod(mode)  # whatever the server's umask
        try:
            await sftp.posix_rename(temporary, path)
        except asyncssh.SFTPOpUnsupported:  # plain SFTP v3 renames only onto a free name
            with contextlib.suppress(asyncssh.SFTPNoSuchFile):
                await sftp.remove(path)
            await sftp.rename(temporary, path)
    except BaseException:
        with contextlib.suppress(asyncssh.Error, OSError):
            await asyncio.shield(sftp.remove(temporary))
        raise


async def read_file(sftp: asyncssh.SFTPClient, path: str) -> bytes:
    try:
        async with sftp.open(path, "rb", encoding=None) as stream:
            return cast(bytes, await stream.read())  # encoding=None: bytes
    except asyncssh.SFTPNoSuchFile:
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), path) from None


async def read_tail(sftp: asyncssh.SFTPClient, path: str, max_bytes: int) -> bytes:
    try:
        async with sftp.open(path, "rb", encoding=None) as stream:
            size = (await stream.stat()).size or 0
            start = max(0, size - max_bytes)
            data = await stream.read(size - start, start) if size > start else b""
            return cast(bytes, data)
    except asyncssh.SFTPNoSuchFile:
        return b""


async def list_dir(sftp: asyncssh.SFTPClient, path: str) -> list[str]:
    try:
        names = await sftp.listdir(path)
    except asyncssh.SFTPNoSuchFile:
        return []
    return [str(name) for name in names if name not in (".", "..")]


async def remove_files(sftp: asyncssh.SFTPClient, paths: Sequence[str]) -> None:
    async def remove(path: str) -> None:
        with contextlib.suppress(asyncssh.SFTPNoSuchFile):
            await sftp.remove(path)

    await _bounded(functools.partial(remove, path) for path in paths)


async def _bounded(operations: Iterable[Callable[[], Awaitable[None]]]) -> None:
    """Run all, a few at a time; the first error cancels the rest (none left dangling)."""
    limit = asyncio.Semaphore(_AT_ONCE)

    async def one(operation: Callable[[], Awaitable[None]]) -> None:
        async with limit:
            await operation()  # made only now: a cancelled task leaves no coroutine unawaited

    tasks = [asyncio.ensure_future(one(operation)) for operation in operations]
    try:
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
