"""Which process holds a run's unsubmitted waves, and what happens to them when it ends.

A map larger than the cluster's room goes in in waves from the submitting process (see
``jobs.waves``); the elements not submitted yet live only there. The registry records that
process as the run's *owner* ("host pid start-time"). Another process that finds the run
(``Job.attach``, ``sm.jobs()``, the Lab panel) asks whether the owner still runs: while it
does, the elements wait in it; once it has ended they can never be submitted, and are
recorded as FAILED with a ``SubmissionError`` that says so, instead of PENDING for ever.

A process is known by its pid and its start: on Linux the boot's id and the start in clock
ticks since boot (``/proc/PID/stat``: exact, immune to clock changes), elsewhere psutil's
creation time (within 2 s); a reused pid has another start. An owner on another host cannot
be checked from here and counts as running.
"""

from __future__ import annotations

import enum
import os
import socket
import time

import psutil

from slurm_magics.jobs.registry import Registry, RunRecord, unsubmitted_items

__all__ = [
    "OwnerState",
    "describe_owner",
    "owner_state",
    "settle_orphans",
    "this_process",
]


class OwnerState(enum.Enum):
    """Whether the process that owns a run's waves still runs."""

    RUNNING = "running"
    ENDED = "ended"
    UNKNOWN = "unknown"  # another host: cannot be checked from here


_CREATE_TIME_SLACK = 2.0  # seconds: psutil's creation time moves with the boot time's rounding


def _linux_start(pid: int) -> str | None:
    """ "BOOT_ID/TICKS" of a running process (None: gone, a zombie, or not Linux)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stream:
            fields = stream.read().rsplit(")", 1)[1].split()  # after "(command name)"
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as stream:
            boot = stream.read().strip()
    except (OSError, IndexError):
        return None
    if fields[0] in ("Z", "X"):  # state: a zombie or dead process runs nothing
        return None
    return f"{boot}/{fields[19]}"  # field 22 of stat: start time in clock ticks since boot


def this_process() -> str:
    """This process as an owner: "host pid start" (see the module's docstring)."""
    pid = os.getpid()
    start = _linux_start(pid) or f"{psutil.Process(pid).create_time():.2f}"
    return f"{socket.gethostname()} {pid} {start}"


def owner_state(owner: str) -> OwnerState:
    """Whether the process ``owner`` (as ``this_process`` wrote it) still runs.

    An empty or malformed owner (a run recorded before owners were) counts as ended: no
    process holds waves for it.
    """
    try:
        host, pid_text, start = owner.split(" ")
        pid = int(pid_text)
    except ValueError:
        return OwnerState.ENDED
    if host != socket.gethostname():
        return OwnerState.UNKNOWN
    if "/" in start:  # Linux: exact
        return OwnerState.RUNNING if _linux_start(pid) == start else OwnerState.ENDED
    try:
        process = psutil.Process(pid)
        alive = abs(process.create_time() - float(start)) < _CREATE_TIME_SLACK
        alive = alive and process.status() not in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD)
    except (psutil.NoSuchProcess, psutil.AccessDenied, ValueError):
        return OwnerState.ENDED  # gone, or another user's process with that pid now
    return OwnerState.RUNNING if alive else OwnerState.ENDED


def describe_owner(owner: str) -> str:
    """ "pid 1234 on login1" (or "an earlier process" when the owner is not recorded)."""
    parts = owner.split(" ")
    return f"pid {parts[1]} on {parts[0]}" if len(parts) == 3 else "an earlier process"


def settle_orphans(registry: Registry, record: RunRecord) -> int:
    """Record as FAILED the unsubmitted items of ``record`` still PENDING whose owner has
    ended: nothing can submit them any more. Nothing is written while none waits.

    Returns:
        How many items were settled (0 when none wait, or the owner still runs or cannot
        be checked).
    """
    if not unsubmitted_items(record.slices, record.n_items, record.chunk_size):
        return 0
    if owner_state(record.owner) is not OwnerState.ENDED:
        return 0

    def message(items: range) -> str:  # for the slices as the registry has them at the end
        return (
            f"SubmissionError: {len(items)} task(s) of {record.name} were never submitted: "
            f"the process that held them until there was room ({describe_owner(record.owner)})"
            f" ended first. Submit them again, e.g. task.map(items[{items.start}:])."
        )

    return registry.end_unsubmitted(record.run_id, "FAILED", message, time.time())[0]
