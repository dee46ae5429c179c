"""Items of a map that wait on the client for room (waves) read PENDING, never UNKNOWN."""

from __future__ import annotations

from slurm_magics.core.parsing import parse_squeue
from slurm_magics.jobs.registry import JobRecord, RunRecord
from slurm_magics.server.views import UNKNOWN, item_states, queue_states
from slurm_magics.ui.magics.queue import QueueTable, waiting_lines

LOCAL = "local|devcluster|/root/.slurm_magics"


def test_items_in_no_slice_yet_stay_pending_while_old_submitted_ones_turn_unknown() -> None:
    # the first wave (elements 0-2, array 101) is in SLURM, elements 3-5 wait on the client
    record = RunRecord(
        "s-1", LOCAL, "/r/s-1", "/s", "sweep", 6, 1, True, [("101", 0, 3)],
        "", "/home/me/a.ipynb", "s", 1000.0,
    )  # fmt: skip
    known = [JobRecord(i, "PENDING", None, None, None) for i in range(6)]
    live = queue_states(parse_squeue("101_0|101|RUNNING|None|vm\n101_1|102|RUNNING|None|vm\n"))
    states = item_states(record, known, live, fetched_at=2000.0)
    assert states == ["RUNNING", "RUNNING", UNKNOWN, "PENDING", "PENDING", "PENDING"]


def test_squeue_lists_what_waits_on_the_client_with_its_reason() -> None:
    reason = "waiting for room: MaxSubmitJobsPerUser 300 (QOS smwaves)"
    table = QueueTable(waiting_lines([("sweep", 700, reason)]), "me")
    (line,) = table.lines
    assert (line.job_id, line.name, line.state, line.tasks, line.where) == (
        "(not submitted)", "sweep", "PENDING", 700, reason
    )  # fmt: skip
    assert reason in repr(table) and reason in table._repr_html_()
