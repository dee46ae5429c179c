"""The pure parts of the server extension: views of registry and squeue rows, the queue cache."""

from __future__ import annotations

import asyncio
import json

import pytest

from slurm_magics.core.parsing import parse_squeue
from slurm_magics.jobs.registry import JobRecord, RunRecord
from slurm_magics.server import _jupyter_server_extension_points
from slurm_magics.server.service import QueueCache
from slurm_magics.server.views import (
    UNKNOWN,
    QueueSnapshot,
    graph_view,
    item_states,
    jobs_view,
    notebook_path,
    queue_states,
    queue_summary,
    queue_view,
    run_view,
    slurm_id_of,
)

LOCAL = "local|devcluster|/root/.slurm_magics"
SQUEUE = """\
100|100|RUNNING|None|vm
101_[3-5%2]|101|PENDING|JobArrayTaskLimit|
101_1|107|RUNNING|None|vm
101_0|101|COMPLETED|None|vm
102|102|CANCELLED by 0|None|
103|103|WEIRD_NEW_STATE|None|
"""


def run(
    run_id: str = "s-1",
    *,
    cluster: str = LOCAL,
    slices: list[tuple[str, int, int]] | None = None,
    n_items: int = 1,
    chunk_size: int = 1,
    notebook: str = "/home/me/work/a.ipynb",
    submitted_at: float = 1000.0,
) -> RunRecord:
    slices = slices if slices is not None else [("100", 0, 0)]
    is_array = any(n for _, _, n in slices)
    return RunRecord(
        run_id, cluster, f"/r/{run_id}", "/s", "task", n_items, chunk_size, is_array, slices,
        "", notebook, "s", submitted_at,
    )  # fmt: skip


def jobs(*states: str) -> list[JobRecord]:
    return [JobRecord(i, state, None, None, None) for i, state in enumerate(states)]


def test_the_extension_point_names_the_server_package() -> None:
    assert _jupyter_server_extension_points() == [{"module": "slurm_magics.server"}]


def test_queue_states_expand_array_ranges_and_normalise() -> None:
    states = queue_states(parse_squeue(SQUEUE))
    assert states[("100", None)] == "RUNNING"
    assert {t: states[("101", t)] for t in (0, 1, 3, 4, 5)} == {
        0: "COMPLETED", 1: "RUNNING", 3: "PENDING", 4: "PENDING", 5: "PENDING"
    }  # fmt: skip
    assert states[("102", None)] == "CANCELLED"
    assert ("103", None) not in states  # unknown states are left out, not guessed


def test_unfinished_items_take_the_queue_state_finished_ones_keep_theirs() -> None:
    record = run(slices=[("101", 0, 6)], n_items=6)
    live = queue_states(parse_squeue(SQUEUE))
    known = jobs("COMPLETED", "PENDING", "PENDING", "PENDING", "FAILED", "PENDING")
    # task 2 is in no squeue row: too young a snapshot keeps the registry's word ...
    assert item_states(record, known, live, fetched_at=1010.0) == [
        "COMPLETED", "RUNNING", "PENDING", "PENDING", "FAILED", "PENDING"
    ]  # fmt: skip
    # ... an old run that left the queue without a recorded end is UNKNOWN
    assert item_states(record, known, live, fetched_at=2000.0)[2] == UNKNOWN
    # no queue (squeue failed): the registry's states as they are
    assert item_states(record, known, None, fetched_at=2000.0)[2] == "PENDING"


def test_chunks_and_slices_map_items_to_slurm_ids() -> None:
    record = run(slices=[("200", 0, 2), ("300", 2, 1)], n_items=5, chunk_size=2)
    assert [slurm_id_of(record, element) for element in range(4)] == [
        "200_0", "200_1", "300_0", None
    ]  # fmt: skip
    live = {("200", 1): "RUNNING", ("300", 0): "COMPLETED"}
    # items 2,3 are element 1; item 4 is element 2 (the second slice)
    assert item_states(record, jobs(*["PENDING"] * 5), live) == [
        "PENDING", "PENDING", "RUNNING", "RUNNING", "COMPLETED"
    ]  # fmt: skip


def test_runs_of_other_clusters_never_take_this_queue() -> None:
    for cluster in ("ssh://me@login:22|big|/x", "local backend (no SLURM)||/x"):
        record = run(cluster=cluster)
        assert item_states(record, jobs("PENDING"), {("100", None): "RUNNING"}) == ["PENDING"]
        assert run_view(record, ["PENDING"], notebook_path=None)["local"] is False


def test_run_view_counts_and_run_length_encodes_array_tasks() -> None:
    record = run(slices=[("101", 0, 6)], n_items=6)
    states = ["COMPLETED", "RUNNING", "RUNNING", "PENDING", "PENDING", "FAILED"]
    view = run_view(record, states, notebook_path="work/a.ipynb")
    assert view["counts"] == {"PENDING": 2, "RUNNING": 2, "COMPLETED": 1, "FAILED": 1}
    assert list(view["counts"]) == ["PENDING", "RUNNING", "COMPLETED", "FAILED"]
    assert view["task_states"] == [["COMPLETED", 1], ["RUNNING", 2], ["PENDING", 2], ["FAILED", 1]]
    assert view["job_id"] == "101" and view["slurm_ids"] == ["101"]
    assert view["cluster"] == "local (devcluster)"
    json.dumps(view)  # JSON-able
    single = run_view(run(), ["PENDING"], notebook_path=None)
    assert "task_states" not in single


def test_jobs_view_groups_by_notebook_in_order_of_the_newest_run() -> None:
    a1, b1, a2 = (
        run_view(run("a1", notebook="a.ipynb"), ["RUNNING"], notebook_path="a.ipynb"),
        run_view(run("b1", notebook="b.ipynb"), ["PENDING"], notebook_path=None),
        run_view(run("a2", notebook="a.ipynb"), ["COMPLETED"], notebook_path="a.ipynb"),
    )
    view = jobs_view([a1, b1, a2], total=10, offset=0, limit=3, queue={})
    assert [g["notebook"] for g in view["notebooks"]] == ["a.ipynb", "b.ipynb"]
    assert [r["run_id"] for r in view["notebooks"][0]["runs"]] == ["a1", "a2"]
    assert view["notebooks"][0]["counts"] == {"RUNNING": 1, "COMPLETED": 1}
    assert view["total"] == 10


@pytest.mark.parametrize(
    ("notebook", "root", "expected"),
    [
        ("/srv/lab/work/a.ipynb", "/srv/lab", "work/a.ipynb"),
        ("/srv/lab/a.ipynb", "/srv/lab/", "a.ipynb"),
        ("/elsewhere/a.ipynb", "/srv/lab", None),
        ("/srv/lab2/a.ipynb", "/srv/lab", None),
        ("work/a.ipynb", "/srv/lab", "work/a.ipynb"),
        ("../a.ipynb", "/srv/lab", None),
        ("/srv/lab/script.py", "/srv/lab", None),
        ("<interactive>", "/srv/lab", None),
    ],
)
def test_notebook_paths_are_relative_to_the_server_root(
    notebook: str, root: str, expected: str | None
) -> None:
    assert notebook_path(notebook, root) == expected


def test_queue_view_groups_array_rows_and_names_known_runs() -> None:
    snapshot = QueueSnapshot(tuple(parse_squeue(SQUEUE)), 5.0, None, 3)
    view = queue_view(snapshot, {"101": run("r101", slices=[("101", 0, 6)], n_items=6)})
    assert (view["running"], view["pending"], view["calls"]) == (2, 3, 3)
    entry = next(e for e in view["jobs"] if e["job_id"] == "101")
    assert entry["is_array"] is True and entry["run_id"] == "r101"
    assert entry["counts"] == {"PENDING": 3, "RUNNING": 1, "COMPLETED": 1}
    assert [r["job_id"] for r in entry["rows"]] == ["101_[3-5]", "101_1", "101_0"]
    assert entry["rows"][0]["reason"] == "JobArrayTaskLimit"
    other = next(e for e in view["jobs"] if e["job_id"] == "100")
    assert other["run_id"] is None and other["is_array"] is False
    assert queue_summary(QueueSnapshot((), 1.0, "CommandError: no squeue", 1))["error"]


def test_graph_view_links_upstream_to_downstream_and_marks_missing_runs() -> None:
    records = {r.run_id: r for r in (run("a"), run("b"), run("c"))}
    edges = [("b", "a", -1), ("c", "b", 0), ("c", "b", 0), ("b", "gone", 2)]
    view = graph_view("b", records, edges, {"a": ["COMPLETED"], "b": ["PENDING"]})
    nodes = {n["run_id"]: n for n in view["nodes"]}
    assert set(nodes) == {"a", "b", "c", "gone"}
    assert nodes["gone"]["missing"] is True and nodes["a"]["counts"] == {"COMPLETED": 1}
    links = {(e["source"], e["target"]): e["items"] for e in view["edges"]}
    assert links == {("a", "b"): [], ("b", "c"): [0], ("gone", "b"): [2]}


def test_one_queue_read_serves_concurrent_requests_and_failures_are_cached() -> None:
    now = [0.0]
    calls: list[int] = []

    async def fetch() -> list:
        calls.append(1)
        await asyncio.sleep(0.01)
        if len(calls) == 2:
            raise RuntimeError("squeue: slurm_load_jobs error")
        return list(parse_squeue(SQUEUE))

    async def scenario() -> None:
        cache = QueueCache(fetch, ttl=2.0, calls=lambda: len(calls), clock=lambda: now[0])
        first = await asyncio.gather(*(cache.get() for _ in range(20)))
        assert len(calls) == 1 and all(s is first[0] for s in first)
        now[0] = 1.9
        assert await cache.get() is first[0]
        now[0] = 2.1
        failed = await cache.get()
        assert failed.error == "RuntimeError: squeue: slurm_load_jobs error" and failed.rows == ()
        assert await cache.get() is failed and len(calls) == 2  # not hammered
        cache.invalidate()
        assert (await cache.get()).error is None and len(calls) == 3

    asyncio.run(scenario())
