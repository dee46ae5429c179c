"""The local transport: SLURM commands and files on this machine (a login node)."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Mapping, Sequence

from slurm_magics.transport.base import CommandResult

__all__ = ["LocalTransport"]


def _write_atomically(path: str, data: bytes, mode: int) -> None:
    temporary = f"{path}.tmp-{os.getpid()}"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as stream:
        stream.write(data)
    os.replace(temporary, path)


def _read_tail(path: str, max_bytes: int) -> bytes:
    try:
        with open(path, "rb") as stream:
            size = stream.seek(0, os.SEEK_END)
            stream.seek(max(0, size - max_bytes))
            return stream.read()
    except FileNotFoundError:
        return b""


def _list_dir(path: str) -> list[str]:
    try:
        return os.listdir(path)
    except FileNotFoundError:
        return []


def _read(path: str) -> bytes:
    with open(path, "rb") as stream:
        return stream.read()


class LocalTransport:
    """Runs commands as subprocesses (no shell) and uses the local file system."""

    description = "local"

    async def run(
        self, argv: Sequence[str], *, input: bytes | None = None, timeout: float | None = 120.0
    ) -> CommandResult:
        try:
            process = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.PIPE if input is not None else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
        except FileNotFoundError:
            return CommandResult(tuple(argv), 127, "", f"{argv[0]}: command not found")
        try:
            stdout, stderr = await asyncio.wait_for(process.communicate(input), timeout)
        except TimeoutError:
            process.kill()
            await process.wait()
            return CommandResult(tuple(argv), -9, "", f"timed out after {timeout} s")
        return CommandResult(
            tuple(argv),
            process.returncode if process.returncode is not None else -1,
            stdout.decode(errors="replace"),
            stderr.decode(errors="replace"),
        )

    async def home(self) -> str:
        return await asyncio.to_thread(os.path.expanduser, "~")

    async def make_dirs(self, path: str, *, mode: int = 0o700) -> None:
        def make() -> None:
            os.makedirs(path, mode, exist_ok=True)
            os.chmod(path, mode)  # also when it existed: run folders stay private

        await asyncio.to_thread(make)

    async def write_files(self, files: Mapping[str, bytes], *, mode: int = 0o600) -> None:
        def write_all() -> None:
            for path, data in files.items():
                _write_atomically(path, data, mode)

        await asyncio.to_thread(write_all)

    async def read_file(self, path: str) -> bytes:
        return await asyncio.to_thread(_read, path)

    async def read_tail(self, path: str, max_bytes: int) -> bytes:
        return await asyncio.to_thread(_read_tail, path, max_bytes)

    async def list_dir(self, path: str) -> list[str]:
        return await asyncio.to_thread(_list_dir, path)

    async def remove_files(self, paths: Sequence[str]) -> None:
        def remove_all() -> None:
            for path in paths:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)

        await asyncio.to_thread(remove_all)

    async def close(self) -> None:
        return None
