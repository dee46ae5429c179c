"""The transport interface: run a command and move files on the cluster's login side."""

from __future__ import annotations

import dataclasses
import shlex
from collections.abc import Mapping, Sequence
from typing import Protocol, runtime_checkable

from slurm_magics.core.errors import ClusterError

__all__ = ["CommandError", "CommandResult", "Transport", "run_script"]


class CommandError(ClusterError):
    """A command on the cluster failed; the message holds the command and what it said."""

    def __init__(self, result: CommandResult) -> None:
        self.result = result
        said = (result.stderr or result.stdout).strip()
        super().__init__(
            f"`{shlex.join(result.argv)}` failed with exit code {result.returncode}"
            + (f": {said}" if said else "")
        )


@dataclasses.dataclass(frozen=True)
class CommandResult:
    """What a finished command returned, like ``subprocess.CompletedProcess``."""

    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    def check(self) -> CommandResult:
        """Return self, or raise CommandError when the command failed."""
        if self.returncode != 0:
            raise CommandError(self)
        return self


@runtime_checkable
class Transport(Protocol):
    """How slurm_magics reaches a cluster: local subprocesses, or one SSH connection."""

    #: A short description for messages, e.g. "local" or "ssh://me@login.hpc.org:22".
    description: str

    async def run(
        self, argv: Sequence[str], *, input: bytes | None = None, timeout: float | None = 120.0
    ) -> CommandResult:
        """Run argv (no shell) and return its result; never raises for a non-zero exit."""

    async def home(self) -> str:
        """The user's home folder on the cluster."""

    async def make_dirs(self, path: str, *, mode: int = 0o700) -> None:
        """Create a folder and its parents (existing ones are kept as they are)."""

    async def write_files(self, files: Mapping[str, bytes], *, mode: int = 0o600) -> None:
        """Write several files (whole, each atomically replaced)."""

    async def read_file(self, path: str) -> bytes:
        """Read a whole file; FileNotFoundError when it does not exist."""

    async def read_tail(self, path: str, max_bytes: int) -> bytes:
        """Read at most the last ``max_bytes`` of a file; b"" when it does not exist."""

    async def list_dir(self, path: str) -> list[str]:
        """The names in a folder; [] when it does not exist."""

    async def remove_files(self, paths: Sequence[str]) -> None:
        """Remove files; missing ones are ignored."""

    async def close(self) -> None:
        """Release connections; further calls may reconnect."""


async def run_script(
    transport: Transport, script: str, *, timeout: float | None = 120.0
) -> CommandResult:
    """Run a bash script on the cluster, sent on its standard input.

    Never as ``bash -c SCRIPT``: one argument is at most 128 KiB on Linux (MAX_ARG_STRLEN),
    and users' setup lines may be longer. The script runs as one ``{ ...; }`` block, which
    bash reads whole before running it, so no command in it reads the rest as its input.

    Args:
        transport: where to run it.
        script: bash source (newline-separated lines).
        timeout: seconds before the command is given up (None: no limit).

    Returns:
        The ``CommandResult`` of ``bash -s`` (a non-zero exit is not raised).
    """
    block = f"{{\n{script}\n}}\n".encode()
    return await transport.run(["bash", "-s"], input=block, timeout=timeout)
