"""Which process holds a run's unsubmitted waves, and what happens to them when it ends.

A map larger than the cluster's room goes in in waves from the submitting process (see
``jobs.waves``); the elements not submitted yet live only there. The registry records that
process as the run's *owner* ("host pid start-time"). Another process that finds the run
(``Job.attach``, ``sm.jobs()``, the Lab panel) asks whether the owner still runs: while it
does, the elements wait in it; once it has ended they can never be submitted, and are
recorded as FAILED with a ``SubmissionError`` that says so, instead of PENDING for ever.

Liveness is psutil's (the process's creation time guards against a reused pid); an owner
on another host cannot be checked from here and counts as running.
"""

from __future__ import annotations

import enum
import os
import socket
import time
from collections.abc import Sequence

import psutil

from slurm_magics.jobs.registry import Registry, RunRecord

__all__ = [
    "OwnerState",
    "describe_owner",
    "owner_state",
    "settle_orphans",
    "this_process",
    "unsubmitted_items",
]


class OwnerState(enum.Enum):
    """Whether the process that owns a run's waves still runs."""

    RUNNING = "running"
    ENDED = "ended"
    UNKNOWN = "unknown"  # another host: cannot be checked from here


def this_process() -> str:
    """This process as an owner: "host pid start-time" (start time in seconds since the
    epoch, as psutil reports it, rounded to 10 ms)."""
    started = psutil.Process(os.getpid()).create_time()
    return f"{socket.gethostname()} {os.getpid()} {started:.2f}"


def owner_state(owner: str) -> OwnerState:
    """Whether the process ``owner`` (as ``this_process`` wrote it) still runs.

    An empty or malformed owner (a run recorded before owners were) counts as ended: no
    process holds waves for it.
    """
    try:
        host, pid_text, started_text = owner.split(" ")
        pid, started = int(pid_text), float(started_text)
    except ValueError:
        return OwnerState.ENDED
    if host != socket.gethostname():
        return OwnerState.UNKNOWN
    try:
        process = psutil.Process(pid)
        alive = abs(process.create_time() - started) < 0.05 and process.status() not in (
            psutil.STATUS_ZOMBIE,
            psutil.STATUS_DEAD,
        )
    except psutil.NoSuchProcess:  # includes ZombieProcess
        return OwnerState.ENDED
    except psutil.AccessDenied:  # another user's process with that pid: not ours
        return OwnerState.ENDED
    return OwnerState.RUNNING if alive else OwnerState.ENDED


def describe_owner(owner: str) -> str:
    """ "pid 1234 on login1" (or "an earlier process" when the owner is not recorded)."""
    parts = owner.split(" ")
    return f"pid {parts[1]} on {parts[0]}" if len(parts) == 3 else "an earlier process"


def unsubmitted_items(
    slices: Sequence[tuple[str, int, int]], n_items: int, chunk_size: int
) -> range:
    """The items of a run past its last submitted slice (slices go in in order)."""
    end = max((first + max(n, 1) for _, first, n in slices), default=0)
    return range(min(end * chunk_size, n_items), n_items)


def settle_orphans(registry: Registry, record: RunRecord) -> int:
    """Record as FAILED the unsubmitted items of ``record`` still PENDING whose owner has
    ended: nothing can submit them any more.

    Returns:
        How many items were settled (0 when none wait, or the owner still runs or cannot
        be checked).
    """
    waiting = unsubmitted_items(record.slices, record.n_items, record.chunk_size)
    if not waiting or owner_state(record.owner) is not OwnerState.ENDED:
        return 0
    first_element = waiting.start // record.chunk_size
    message = (
        f"SubmissionError: {len(waiting)} task(s) of {record.name} were never submitted: the "
        f"process that held them until there was room ({describe_owner(record.owner)}) "
        f"ended first. Submit them again, e.g. task.map(items[{first_element}:])."
    )
    return registry.fail_pending(record.run_id, waiting.start, message, time.time())
