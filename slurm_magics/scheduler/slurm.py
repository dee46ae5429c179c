"""SLURM's commands, run through a transport and counted (for tests and benchmarks)."""

from __future__ import annotations

import asyncio
import collections
import getpass
import logging
from collections.abc import Iterable, Sequence
from typing import Protocol

from slurm_magics.core.errors import ClusterError, SubmissionError
from slurm_magics.core.parsing import (
    SACCT_FORMAT,
    SQUEUE_FORMAT,
    AccountingRow,
    ClusterConfig,
    QueueRow,
    parse_cluster_config,
    parse_sacct,
    parse_sbatch_parsable,
    parse_squeue,
)
from slurm_magics.scheduler.lost_sbatch import find_lost, keep_one
from slurm_magics.transport import CommandResult, ConnectionLostError, Transport

__all__ = ["Scheduler", "SchedulerBackend"]

log = logging.getLogger(__name__)

# sbatch refusals that pass with time: limits on queued jobs, a busy or restarting controller
_PASSING = (
    "MaxSubmitJob",
    "AssocMaxSubmitJobLimit",
    "QOSMaxSubmitJob",
    "Socket timed out",
    "Resource temporarily unavailable",
    "Unable to contact slurm controller",
    "slurm_persist_conn",
    "Slurm temporarily unable to accept job",
)


class SchedulerBackend(Protocol):
    """What the cluster and the poller need from a scheduler (SLURM, or the local one)."""

    transport: Transport
    counters: collections.Counter[str]

    async def show_config(self) -> ClusterConfig: ...
    async def whoami(self) -> str: ...
    async def submit(self, script: str, *, tag: str = "") -> str: ...
    async def cancel(self, slurm_ids: Iterable[str]) -> None: ...
    async def queue(self) -> list[QueueRow]: ...
    async def requeue(self, slurm_ids: Iterable[str]) -> None: ...
    async def set_dependency(self, slurm_ids: Iterable[str], dependency: str) -> None: ...
    async def accounting(self, slurm_ids: Iterable[str]) -> list[AccountingRow]: ...


class Scheduler:
    """submit, cancel, query: one method per SLURM command, each call counted."""

    def __init__(self, transport: Transport, *, user: str | None = None) -> None:
        self.transport = transport
        self.user = user
        #: how long (seconds) to keep retrying an sbatch that hit a passing limit
        self.submit_patience = 600.0
        #: how many times each command ran: {"squeue": 12, "sbatch": 1, ...}
        self.counters: collections.Counter[str] = collections.Counter()

    async def _run(
        self, argv: Sequence[str], *, input: bytes | None = None, timeout: float = 60.0
    ) -> CommandResult:
        self.counters[argv[0]] += 1
        return await self.transport.run(argv, input=input, timeout=timeout)

    async def show_config(self) -> ClusterConfig:
        """Read MaxArraySize, MinJobAge, accounting, ... (`scontrol show config`)."""
        result = await self._run(["scontrol", "show", "config"])
        if result.returncode != 0:
            raise ClusterError(
                f"cannot read the SLURM configuration on {self.transport.description} "
                f"(`scontrol show config` said: {(result.stderr or result.stdout).strip()}); "
                "is SLURM installed and slurmctld reachable from here?"
            )
        return parse_cluster_config(result.stdout)

    async def whoami(self) -> str:
        """The user name SLURM knows us as (for `squeue -u`)."""
        if self.user is None:
            result = await self._run(["id", "-un"])
            self.user = result.stdout.strip() if result.returncode == 0 else getpass.getuser()
        return self.user

    async def submit(self, script: str, *, tag: str = "") -> str:
        """sbatch a script given on stdin; return the job id.

        A refusal that passes (a submit limit reached, the controller busy) is retried with
        a growing pause, and a warning says so; any other refusal raises at once. When the
        connection drops with sbatch's reply in flight, a script tagged ``tag`` (its
        --comment) is looked up in the queue: found, its id is the answer; not there, it is
        submitted again (see ``lost_sbatch``).
        """
        delay = 1.0
        waited = 0.0
        losses: list[ConnectionLostError] = []
        while True:
            try:
                result = await self._run(["sbatch", "--parsable"], input=script.encode())
            except ConnectionLostError as error:
                losses.append(error)
                if not tag or len(losses) > 2:
                    raise
                found = await find_lost(self._run, await self.whoami(), tag, error)
                if found is not None:
                    return found
                continue
            if result.returncode == 0:
                job_id = parse_sbatch_parsable(result.stdout)
                if losses:  # the lost one may have turned up meanwhile: keep one of the two
                    job_id = await keep_one(self._run, await self.whoami(), tag, job_id)
                return job_id
            said = (result.stderr or result.stdout).strip()
            if not any(sign in said for sign in _PASSING) or waited >= self.submit_patience:
                raise SubmissionError(f"sbatch refused the job: {said}")
            log.warning("sbatch said %r; retrying in %.0f s", said, delay)
            await asyncio.sleep(delay)
            waited += delay
            delay = min(delay * 2, 60.0)

    async def cancel(self, slurm_ids: Iterable[str]) -> None:
        """scancel jobs or array tasks ("123", "123_4"); already-ended ones are ignored."""
        ids = sorted(set(slurm_ids))
        if ids:
            await self._run(["scancel", *ids])

    async def requeue(self, slurm_ids: Iterable[str]) -> None:
        """Run ended jobs again under the same ids, starting now (not after SLURM's delay)."""
        ids = ",".join(sorted(set(slurm_ids)))
        if ids:
            (await self._run(["scontrol", "requeue", ids])).check()
            for slurm_id in ids.split(","):
                await self._run(["scontrol", "update", f"JobId={slurm_id}", "StartTime=now"])

    async def set_dependency(self, slurm_ids: Iterable[str], dependency: str) -> None:
        """Set the dependency of pending jobs again (after an upstream job was requeued)."""
        for slurm_id in sorted(set(slurm_ids)):
            await self._run(["scontrol", "update", f"JobId={slurm_id}", f"Dependency={dependency}"])

    async def queue(self) -> list[QueueRow]:
        """The user's jobs in the controller, finished ones included (one squeue call)."""
        user = await self.whoami()
        result = await self._run(
            ["squeue", "--noheader", "--states=all", "-u", user, "-o", SQUEUE_FORMAT]
        )
        result.check()
        return parse_squeue(result.stdout)

    async def accounting(self, slurm_ids: Iterable[str]) -> list[AccountingRow]:
        """sacct rows of jobs that left the queue (one call for all of them)."""
        ids = sorted(set(slurm_ids))
        if not ids:
            return []
        result = await self._run(
            ["sacct", "-X", "-n", "-P", f"--format={SACCT_FORMAT}", "-j", ",".join(ids)]
        )
        result.check()
        return parse_sacct(result.stdout)
