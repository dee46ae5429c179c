"""Process helpers: run commands, find our daemons by pid file, stop them, wait for things."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from .config import SLURM_CONF_PATH
from .errors import DevClusterError

__all__ = [
    "free_port",
    "log_tail",
    "pid_from_file",
    "port_is_free",
    "process_matches",
    "run",
    "running_pid",
    "slurm_env",
    "spawn",
    "stop_pid",
    "wait_until",
]


def slurm_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for SLURM commands: our slurm.conf, whatever the caller's SLURM_CONF."""
    env = dict(os.environ)
    env["SLURM_CONF"] = str(SLURM_CONF_PATH)
    env.setdefault("LC_ALL", "C")
    if extra:
        env.update(extra)
    return env


def run(
    argv: Sequence[str],
    *,
    input_text: str | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 60.0,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Run a short command, capturing text output; raise `DevClusterError` if it fails."""
    try:
        proc = subprocess.run(
            list(argv),
            input=input_text,
            capture_output=True,
            text=True,
            env=None if env is None else dict(env),
            timeout=timeout,
            check=False,
        )
    except FileNotFoundError as exc:
        raise DevClusterError(f"command not found: {argv[0]!r} ({exc})") from exc
    except subprocess.TimeoutExpired as exc:
        raise DevClusterError(f"`{' '.join(argv)}` did not finish within {timeout} s") from exc
    if check and proc.returncode != 0:
        output = (proc.stderr.strip() or proc.stdout.strip())[-2000:]
        raise DevClusterError(
            f"`{' '.join(argv)}` failed with exit code {proc.returncode}: {output}"
        )
    return proc


def spawn(
    argv: Sequence[str],
    output: Path,
    *,
    env: Mapping[str, str] | None = None,
    detach: bool = False,
) -> None:
    """Start a daemon with stdout/stderr appended to `output`.

    Daemons that fork by themselves are just run. `detach=True` is for programs that stay in
    the foreground: `setsid --fork` makes them children of init, not of this Python process
    (no zombies of ours and no "subprocess still running" warnings).
    """
    command = ["setsid", "--fork", *argv] if detach else list(argv)
    with output.open("ab") as out:
        try:
            proc = subprocess.run(
                command,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                env=None if env is None else dict(env),
                start_new_session=True,
                timeout=120,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            tail = log_tail(output)
            message = f"`{' '.join(argv)}` did not go to the background in 120 s:\n{tail}"
            raise DevClusterError(message) from exc
    if proc.returncode != 0:
        raise DevClusterError(
            f"`{' '.join(argv)}` exited with code {proc.returncode} while starting:\n"
            f"{log_tail(output)}"
        )


def pid_from_file(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _is_zombie(pid: int) -> bool:
    # Killed daemons are children of PID 1, which need not reap them (it does not in
    # some sandboxes): a zombie counts as stopped.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[0] in ("Z", "X")


def process_matches(pid: int, executable: str) -> bool:
    """True if `pid` is alive (not a zombie) and runs `executable` (absolute path)."""
    if pid <= 0 or _is_zombie(pid):
        return False
    try:
        exe = os.readlink(f"/proc/{pid}/exe")
    except PermissionError:
        # Not root: fall back to the command name (truncated to 15 characters by Linux).
        try:
            comm = Path(f"/proc/{pid}/comm").read_text().strip()
        except OSError:
            return False
        return comm == Path(executable).name[:15]
    except OSError:
        return False
    exe = exe.removesuffix(" (deleted)")
    return os.path.realpath(exe) == os.path.realpath(executable)


def running_pid(pid_file: Path, executable: str) -> int | None:
    """The pid in `pid_file` if that process is alive and runs `executable`, else None."""
    pid = pid_from_file(pid_file)
    if pid is not None and process_matches(pid, executable):
        return pid
    return None


def wait_until(condition: Callable[[], bool], timeout: float, interval: float = 0.2) -> bool:
    """Poll `condition` until it is true (-> True) or `timeout` seconds passed (-> False)."""
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def stop_pid(pid: int, executable: str, timeout: float = 20.0) -> bool:
    """SIGTERM `pid` if it still runs `executable`; SIGKILL after `timeout`. True if it ran."""
    if not process_matches(pid, executable):
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    if not wait_until(lambda: not process_matches(pid, executable), timeout):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        wait_until(lambda: not process_matches(pid, executable), 5.0)
    return True


def log_tail(path: Path, lines: int = 25) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"(no log at {path})"
    tail = text.splitlines()[-lines:]
    return f"--- last {len(tail)} lines of {path} ---\n" + "\n".join(tail)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def port_is_free(port: int) -> bool:
    """True if nothing listens on 127.0.0.1:`port` (connections in TIME_WAIT do not count)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As the daemons do; on Linux a bind with SO_REUSEADDR still fails on a listener.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True
