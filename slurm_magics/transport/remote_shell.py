"""One long-lived ``bash`` on an SSH session channel, running commands with framed output.

A new SSH session costs the server a fork and a login (about 90 ms on loopback); writing a
line to a shell that is already running costs one round trip. Each command is written as
one line built only from ``shlex.quote``-d argv items::

    ( 'squeue' '-u' 'me' ) </dev/null; printf '%s%d\\n' MARK $?; printf '%s\\n' MARK >&2

where MARK is ``__slurm_magics_<random>_<n>__``, unique per shell and command. The reply is
read from stdout up to ``MARK<exit code>\\n`` and from stderr up to ``MARK\\n`` (both at
once, so neither pipe can fill up and stall the other). Input goes as base64 through
``base64 -d`` into the command. The subshell keeps builtins (``cd``, ``exit``) from
changing the shell; its stdin is never the shell's own.
"""

from __future__ import annotations

import asyncio
import base64
import re
import secrets
import shlex
from collections.abc import Awaitable, Sequence

import asyncssh

from slurm_magics.transport.base import CommandResult

__all__ = ["RemoteShell", "ShellLostError", "command_line"]

SHELL_COMMAND = "exec bash"  # every login shell (sh, bash, zsh, csh, fish) understands this


class ShellLostError(Exception):
    """The shell's channel ended; ``sent`` says whether the command may have run."""

    def __init__(self, message: str, *, sent: bool) -> None:
        super().__init__(message)
        self.sent = sent


def command_line(argv: Sequence[str], input: bytes | None, marker: str) -> bytes:
    """The line that runs argv (each item quoted) and then prints the end markers."""
    if not argv:
        raise ValueError("an empty command cannot run")
    command = f"( {shlex.join(argv)} )"
    if input is None:
        run = f"{command} </dev/null"
    else:
        data = base64.b64encode(input).decode("ascii")
        run = f"printf %s {shlex.quote(data)} | base64 -d | {command}"
    quoted = shlex.quote(marker)
    return f"{run}; printf '%s%d\\n' {quoted} $?; printf '%s\\n' {quoted} >&2\n".encode()


class RemoteShell:
    """A ``bash`` reading command lines on one channel; one command at a time."""

    def __init__(self, process: asyncssh.SSHClientProcess[bytes]) -> None:
        self._process = process
        self._nonce = secrets.token_hex(8)
        self._count = 0
        self.broken = False

    @classmethod
    async def start(cls, conn: asyncssh.SSHClientConnection, timeout: float) -> RemoteShell:
        """Open the channel and read past whatever the login files print."""
        process = await conn.create_process(SHELL_COMMAND, encoding=None)
        shell = cls(process)
        marker = shell._next_marker()
        quoted = shlex.quote(marker)
        try:
            process.stdin.write(f"printf '%s\\n' {quoted}; printf '%s\\n' {quoted} >&2\n".encode())
            await asyncio.wait_for(
                _both(
                    process.stdout.readuntil(f"{marker}\n".encode()),
                    process.stderr.readuntil(f"{marker}\n".encode()),
                ),
                timeout,
            )
        except (asyncio.IncompleteReadError, asyncio.TimeoutError, asyncssh.Error, OSError) as err:
            shell.close()
            said = _partial(err)
            raise ShellLostError(
                f"`{SHELL_COMMAND}` did not start" + (f": {said}" if said else f" ({err!r})"),
                sent=False,
            ) from err
        return shell

    def _next_marker(self) -> str:
        self._count += 1
        return f"__slurm_magics_{self._nonce}_{self._count}__"

    async def execute(
        self, argv: Sequence[str], *, input: bytes | None, timeout: float | None
    ) -> CommandResult:
        """Run one command; a timeout closes the shell (the command cannot be stopped)."""
        if self.broken:
            raise ShellLostError("the shell was closed", sent=False)
        marker = self._next_marker()
        line = command_line(argv, input, marker)
        try:
            self._process.stdin.write(line)
        except (asyncssh.Error, OSError) as error:
            self.close()
            raise ShellLostError(f"cannot write to the shell ({error!r})", sent=False) from error
        end_out = re.compile(re.escape(marker.encode()) + rb"(-?\d+)\n")
        end_err = f"{marker}\n".encode()
        try:
            stdout, stderr = await asyncio.wait_for(
                _both(
                    self._process.stdout.readuntil(end_out, len(marker) + 12),
                    self._process.stderr.readuntil(end_err),
                ),
                timeout,
            )
        except asyncio.TimeoutError:
            self.close()  # the command may still run; this shell's output is out of step
            return CommandResult(tuple(argv), -9, "", f"timed out after {timeout} s")
        except (asyncio.IncompleteReadError, asyncssh.Error, OSError) as error:
            self.close()
            raise ShellLostError(f"the shell ended ({error!r})", sent=True) from error
        except asyncio.CancelledError:
            self.close()  # a reply is still on its way: never reuse this shell
            raise
        found = end_out.search(stdout)
        assert found is not None  # readuntil returns only once the marker is there
        return CommandResult(
            tuple(argv),
            int(found.group(1)),
            stdout[: found.start()].decode(errors="replace"),
            stderr[: -len(end_err)].decode(errors="replace"),
        )

    def close(self) -> None:
        self.broken = True
        self._process.close()


async def _both(stdout: Awaitable[bytes], stderr: Awaitable[bytes]) -> tuple[bytes, bytes]:
    """Both reads, or the first error with the other read cancelled (never left dangling)."""
    tasks = (asyncio.ensure_future(stdout), asyncio.ensure_future(stderr))
    try:
        out, err = await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
    return out, err


def _partial(error: BaseException) -> str:
    """What a shell printed before it ended (its complaint, usually)."""
    if isinstance(error, asyncio.IncompleteReadError):
        return error.partial.decode(errors="replace").strip()
    return ""
