"""SLURM's commands, run through a transport and counted (for tests and benchmarks)."""

from __future__ import annotations

import asyncio
import collections
import getpass
import logging
from collections.abc import Iterable, Sequence
from typing import Protocol

from slurm_magics.core.efficiency import USAGE_FORMAT, AccountingOffError, TaskUsage, parse_usage
from slurm_magics.core.errors import ClusterError, SubmissionError
from slurm_magics.core.limits import (
    ASSOC_FORMAT,
    QOS_FORMAT,
    SubmitLimitError,
    SubmitLimits,
    classify_refusal,
    parse_assoc_limits,
    parse_qos_limits,
)
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
from slurm_magics.core.reasons import START_FORMAT, StartEstimate, parse_start
from slurm_magics.scheduler.lost_sbatch import find_lost, keep_one, tagged_jobs
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

# sbatch, stopped as soon as it says it will sleep and retry a refusal (at MaxJobCount it
# retries for minutes): exit 75 with what it said. stdin (the script) goes to sbatch.
_WATCHED_SBATCH = """exec 3<&0
dir=$(mktemp -d) || exit 70
mkfifo "$dir/err" || exit 70
sbatch --parsable <&3 2>"$dir/err" &
pid=$!
code=0
while IFS= read -r line; do
  printf '%s\\n' "$line" >&2
  case "$line" in
    *"temporarily unable"*|*"queue full"*) kill "$pid" 2>/dev/null; code=75; break;;
  esac
done <"$dir/err"
wait "$pid"; status=$?
rm -rf "$dir"
[ "$code" = 75 ] && exit 75
exit "$status"
"""


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
    async def usage(self, slurm_ids: Iterable[str]) -> list[TaskUsage]: ...
    async def start_estimates(self, slurm_ids: Iterable[str]) -> list[StartEstimate]: ...


class Scheduler:
    """submit, cancel, query: one method per SLURM command, each call counted."""

    def __init__(self, transport: Transport, *, user: str | None = None) -> None:
        self.transport = transport
        self.user = user
        #: how long (seconds) to keep retrying an sbatch that hit a passing limit
        self.submit_patience = 600.0
        #: how many times each command ran: {"squeue": 12, "sbatch": 1, ...}
        self.counters: collections.Counter[str] = collections.Counter()
        #: stop sbatch at its first "temporarily unable to accept job" (SubmitLimitError)
        #: instead of letting it sleep and retry for minutes (set by the waves of a Cluster)
        self.watch_refusals = False

    async def _run(
        self,
        argv: Sequence[str],
        *,
        input: bytes | None = None,
        timeout: float = 60.0,
        counted: str = "",
    ) -> CommandResult:
        self.counters[counted or argv[0]] += 1
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

        A limit on queued jobs (QOS/association submit limits, MaxJobCount) raises
        ``SubmitLimitError`` naming it, for the caller to wait for room. A controller that
        does not answer is retried with a growing pause, and a warning says so; any other
        refusal raises at once. When the
        connection drops with sbatch's reply in flight, a script tagged ``tag`` (its
        --comment) is looked up in the queue: found, its id is the answer; not there, it is
        submitted again (see ``lost_sbatch``).
        """
        delay = 1.0
        waited = 0.0
        losses: list[ConnectionLostError] = []
        argv = ["sh", "-c", _WATCHED_SBATCH] if self.watch_refusals else ["sbatch", "--parsable"]
        while True:
            try:
                result = await self._run(argv, input=script.encode(), counted="sbatch")
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
            refusal = classify_refusal(said)
            if refusal is not None:
                if result.returncode == 75 and tag:  # stopped between retries: never two jobs
                    made = await tagged_jobs(self._run, await self.whoami(), tag)
                    if made:
                        return made[0]
                raise SubmitLimitError(refusal)
            if not any(sign in said for sign in _PASSING) or waited >= self.submit_patience:
                raise SubmissionError(f"sbatch refused the job: {said}")
            log.warning("sbatch said %r; retrying in %.0f s", said, delay)
            await asyncio.sleep(delay)
            waited += delay
            delay = min(delay * 2, 60.0)

    async def submit_limits(self, max_job_count: int, cluster_name: str) -> SubmitLimits:
        """The user's QOS and association submit limits (two sacctmgr calls; call once per
        connect, with accounting on). Where sacctmgr fails, only MaxJobCount is known."""
        user = await self.whoami()
        qos = await self._run(["sacctmgr", "show", "qos", f"format={QOS_FORMAT}", "-P", "-n"])
        assoc = await self._run(
            ["sacctmgr", "show", "assoc", "where", f"users={user}"]
            + ([f"cluster={cluster_name}"] if cluster_name else [])
            + [f"format={ASSOC_FORMAT}", "-P", "-n"]
        )
        if qos.returncode != 0 or assoc.returncode != 0:
            log.info("sacctmgr failed (%s); only MaxJobCount bounds waves", qos.stderr.strip())
            return SubmitLimits(max_job_count)
        return SubmitLimits(
            max_job_count,
            parse_qos_limits(qos.stdout),
            parse_assoc_limits(assoc.stdout, cluster_name),
        )

    async def cancel(self, slurm_ids: Iterable[str]) -> None:
        """scancel jobs or array tasks ("123", "123_4"); already-ended ones are ignored.

        Raises:
            CommandError: SLURM refused (permission denied, controller unreachable, ...);
                the message holds what scancel said. Ended or unknown ids are no refusal
                (scancel says nothing about them).
        """
        ids = sorted(set(slurm_ids))
        if ids:
            (await self._run(["scancel", *ids])).check()

    async def requeue(self, slurm_ids: Iterable[str]) -> None:
        """Run ended jobs again under the same ids, starting now (not after SLURM's delay)."""
        ids = ",".join(sorted(set(slurm_ids)))
        if ids:
            (await self._run(["scontrol", "requeue", ids])).check()
            for slurm_id in ids.split(","):
                started = await self._run(
                    ["scontrol", "update", f"JobId={slurm_id}", "StartTime=now"]
                )
                if started.returncode != 0:  # requeued all the same: it starts after SLURM's delay
                    log.warning(
                        "%s; %s starts after SLURM's requeue delay", started.stderr, slurm_id
                    )

    async def set_dependency(self, slurm_ids: Iterable[str], dependency: str) -> None:
        """Set the dependency of pending jobs again (after an upstream job was requeued).

        Raises:
            CommandError: SLURM refused the update; the message holds what scontrol said.
        """
        for slurm_id in sorted(set(slurm_ids)):
            argv = ["scontrol", "update", f"JobId={slurm_id}", f"Dependency={dependency}"]
            (await self._run(argv)).check()

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

    async def usage(self, slurm_ids: Iterable[str]) -> list[TaskUsage]:
        """What jobs or whole arrays used (one sacct call, steps included).

        Raises:
            AccountingOffError: the cluster keeps no accounting.
            CommandError: sacct failed otherwise.
        """
        ids = sorted(set(slurm_ids))
        if not ids:
            return []
        result = await self._run(
            ["sacct", "-n", "-P", f"--format={USAGE_FORMAT}", "-j", ",".join(ids)]
        )
        said = (result.stderr or result.stdout).strip()
        if result.returncode != 0 and "accounting storage is disabled" in said.lower():
            raise AccountingOffError(
                f"SLURM accounting is off on {self.transport.description} ({said}): there are "
                "no CPU or memory figures to report; ask the administrators to enable "
                "slurmdbd, or measure with the local backend."
            )
        result.check()
        return parse_usage(result.stdout)

    async def start_estimates(self, slurm_ids: Iterable[str]) -> list[StartEstimate]:
        """SLURM's expected start of pending jobs (`squeue --start`: costly for the
        controller, so only on demand, never in the poll loop)."""
        ids = sorted(set(slurm_ids))
        if not ids:
            return []
        result = await self._run(
            ["squeue", "--start", "--noheader", "-o", START_FORMAT, "-j", ",".join(ids)]
        )
        if result.returncode != 0 and "Invalid job id" in result.stderr:
            return []  # they all left the queue
        result.check()
        return parse_start(result.stdout)
