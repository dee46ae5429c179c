"""Who holds a map's unsubmitted waves, and the registry's record of it (real processes, a
real SQLite registry; no cluster needed)."""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

from slurm_magics.jobs.owner import OwnerState, owner_state, settle_orphans, this_process
from slurm_magics.jobs.registry import Registry, RunRecord, unsubmitted_items


def record(
    run_id: str, owner: str, slices: list[tuple[str, int, int]], chunk: int = 1
) -> RunRecord:
    return RunRecord(
        run_id, "local|c|/root", "/r", "/s", "sweep", 6 * chunk, chunk, True, slices,
        "", "nb.ipynb", "s", 1.0, owner,
    )  # fmt: skip


def ended_owner() -> str:
    """The owner string of a process that has exited (a real one, from its own words)."""
    code = "from slurm_magics.jobs.owner import this_process; print(this_process())"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return done.stdout.strip()


def test_this_process_runs_and_a_process_that_ended_or_a_reused_pid_does_not() -> None:
    me = this_process()
    assert owner_state(me) is OwnerState.RUNNING
    host, pid, start = me.split(" ")
    assert (host, int(pid)) == (socket.gethostname(), os.getpid())
    assert owner_state(ended_owner()) is OwnerState.ENDED  # it has exited
    # the same pid with another start: the pid was reused by another process
    if "/" in start:  # Linux: boot id / clock ticks, exact
        other = f"{host} {pid} {start.split('/')[0]}/{int(start.split('/')[1]) + 1}"
    else:
        other = f"{host} {pid} {float(start) + 60:.2f}"
    assert owner_state(other) is OwnerState.ENDED
    assert owner_state(f"another-host {pid} {start}") is OwnerState.UNKNOWN
    assert owner_state("") is OwnerState.ENDED  # a run recorded before owners were


def test_settling_reads_the_slices_the_registry_has_not_a_stale_record(tmp_path: Path) -> None:
    registry = Registry(str(tmp_path / "registry.db"))
    ended = ended_owner()
    stale = record("r1", ended, [("101", 0, 2)], chunk=2)  # elements 0-1 (items 0-3) in
    registry.record_run(stale, [])
    # the owner's last wave, recorded after `stale` was read: elements 2-3 (items 4-7)
    registry.record_slices("r1", stale.cluster, [("101", 0, 2), ("102", 2, 2)], "")
    assert owner_state(ended) is OwnerState.ENDED
    assert settle_orphans(registry, stale) == 4  # items 8-11 only, never the last wave's
    states = [job.state for job in registry.jobs_of("r1")]
    assert states == ["PENDING"] * 8 + ["FAILED"] * 4
    error = registry.jobs_of("r1")[8].error or ""
    assert "4 task(s) of sweep were never submitted" in error
    assert "task.map(items[8:])" in error  # an item index, not an element's (chunk_size=2)
    assert settle_orphans(registry, stale) == 0  # nothing PENDING is left to settle
    live = record("r2", this_process(), [("103", 0, 2)])
    registry.record_run(live, [])
    assert settle_orphans(registry, live) == 0  # its owner runs: it still submits them
    registry.close()


def test_an_older_version_still_records_runs_in_a_registry_this_one_opened(
    tmp_path: Path,
) -> None:
    path = str(tmp_path / "registry.db")
    Registry(path).close()
    # what an older slurm_magics (a kernel not restarted since the upgrade) runs: by position
    db = sqlite3.connect(path)
    db.execute(
        "INSERT OR REPLACE INTO runs VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,0)",
        ("old", "c", "/r", "/s", "f", 1, 1, 0, '[["7", 0, 0]]', "", "nb", "s", 2.0),
    )
    db.commit()
    db.close()
    registry = Registry(path)
    registry.record_run(record("new", this_process(), [("8", 0, 6)]), [])
    found = {r.run_id: r for r in registry.runs()}
    assert found["old"].owner == "" and found["new"].owner == this_process()
    assert unsubmitted_items(found["new"].slices, 6, 1) == range(6, 6)
    registry.close()


def test_a_cancel_and_a_later_wave_each_see_the_other_whichever_comes_first(
    tmp_path: Path,
) -> None:
    """The two transactions that keep a cancelled run's later wave from running: the
    canceller ends the waiting items and reads the slices; the owner records a slice and
    reads the ended items."""
    registry = Registry(str(tmp_path / "registry.db"))
    run = record("r3", this_process(), [("201", 0, 2)], chunk=2)  # items 0-3 in, 4-11 wait
    registry.record_run(run, [])

    def cancelled(items: range) -> str:
        return f"JobFailedError: {len(items)} task(s) cancelled (from item {items.start})"

    # the wave first: the canceller reads its slice (and scancels it)
    assert registry.record_slices("r3", run.cluster, [("201", 0, 2), ("202", 2, 2)], "") == []
    ended, slices = registry.end_unsubmitted("r3", "CANCELLED", cancelled, 5.0)
    assert (ended, slices) == (4, [("201", 0, 2), ("202", 2, 2)])  # items 8-11
    assert [job.state for job in registry.jobs_of("r3")][8:] == ["CANCELLED"] * 4
    assert registry.jobs_of("r3")[8].error == "JobFailedError: 4 task(s) cancelled (from item 8)"
    # the cancel first: the owner's next wave (elements 4-5, items 8-11) reads those ends
    late = registry.record_slices(
        "r3", run.cluster, [("201", 0, 2), ("202", 2, 2), ("203", 4, 2)], ""
    )
    assert [(k.item, k.state) for k in late] == [(i, "CANCELLED") for i in range(8, 12)]
    assert [k.item for k in registry.ended_items("r3", 8)] == [8, 9, 10, 11]
    assert [k.item for k in registry.ended_items("r3", 0)] == [8, 9, 10, 11]  # 0-7 PENDING
    # single waiting tasks cancelled (items 5 and 9): 5 ends, 9 had ended; slices read
    assert registry.cancel_items("r3", [5, 9], 7.0) == [("201", 0, 2), ("202", 2, 2), ("203", 4, 2)]
    assert [k.item for k in registry.ended_items("r3", 0)] == [5, 8, 9, 10, 11]
    assert registry.jobs_of("r3")[9].error == "JobFailedError: 4 task(s) cancelled (from item 8)"
    # nothing waits any more: nothing is written, the slices are still read
    assert registry.end_unsubmitted("r3", "CANCELLED", cancelled, 6.0)[0] == 0
    assert registry.end_unsubmitted("nope", "CANCELLED", cancelled, 6.0) == (0, [])
    registry.close()
