"""Widgets, asserted from Python: trait values, messages sent, text fallbacks (no cluster).

Jobs here belong to a stand-in host (a JobHost with logs in a dict); their states are set
by hand, as the poller would.
"""

from __future__ import annotations

import sys
import threading
import time

import ipywidgets
import pytest

from slurm_magics.core.errors import RemoteTraceback
from slurm_magics.core.states import JobState
from slurm_magics.ui.session import SessionJobs
from slurm_magics.ui.widgets import (
    JobsPanel,
    JobStatus,
    SweepProgress,
    refresher,
    remember_arguments,
    task_records,
    to_dataframe,
)
from slurm_magics.ui.widgets.graph import build_graph, dependency_ids, render_svg
from slurm_magics.ui.widgets.panel import panel_html, panel_text
from slurm_magics.ui.widgets.text import duration, sweep_counts
from tests.helpers import Host, count_messages, make_array, make_job, wait_until


@pytest.fixture
def host() -> Host:
    return Host()


# -- text -------------------------------------------------------------------------------------
def test_durations() -> None:
    assert [duration(s) for s in (None, 7, 750, 10925, 2 * 86400 + 14400)] == [
        "-",
        "0:07",
        "12:30",
        "3:02:05",
        "2d 04:00:00",
    ]


def test_sweep_buckets() -> None:
    states = [JobState.COMPLETED] * 3 + [JobState.FAILED, JobState.TIMEOUT, JobState.CANCELLED]
    states += [JobState.RUNNING, JobState.PENDING, JobState.PENDING]
    assert sweep_counts(states) == {
        "done": 3,
        "failed": 2,
        "cancelled": 1,
        "running": 1,
        "pending": 2,
    }


# -- the status line --------------------------------------------------------------------------
def test_status_line_follows_the_job(host: Host) -> None:
    job = make_job(host)
    status = JobStatus(job)
    assert "PENDING" in status.line.value
    assert status.text().startswith("job 200 (fit): PENDING waiting")
    job.state, job.node, job.started_at = JobState.RUNNING, "node7", time.time()
    status.refresh()
    assert "RUNNING" in status.line.value
    assert "on node7" in status.line.value
    assert not status.cancel_button.disabled
    job.state = JobState.COMPLETED
    job._resolve(1)
    assert status.refresh() is True  # finished: the refresher drops it
    assert status.cancel_button.disabled
    wait_until(lambda: status not in refresher)


def test_status_brings_output_and_errors_back(host: Host) -> None:
    job = make_job(host)
    out, err = job.log_paths()
    status = JobStatus(job, show_output=True)
    job.state, job.started_at = JobState.RUNNING, time.time()
    host.files[out] = "step 1\n"
    status.refresh()
    assert status.output.outputs == (
        {"output_type": "stream", "name": "stdout", "text": "step 1\n"},
    )
    host.files[out] = "step 1\nstep 2\n"
    host.files[err] = "warning\nTraceback (most recent call last):\n  ...\nValueError: bad\n"
    error = ValueError("bad")
    error.__cause__ = RemoteTraceback('\n"""\nRemote traceback (job 200):\nline one\n"""')
    job.state = JobState.FAILED
    job._fail(error)
    assert status.refresh() is True
    kinds = [(o["output_type"], o.get("name", o.get("ename"))) for o in status.output.outputs]
    assert kinds == [("stream", "stdout"), ("stream", "stderr"), ("error", "ValueError")]
    assert status.output.outputs[1]["text"] == "warning\n"  # the traceback shows once
    assert "line one" in status.output.outputs[2]["traceback"]


def test_status_cancel_button_and_log_tail(host: Host) -> None:
    job = make_job(host)
    host.files[job.log_paths()[0]] = "hello <world>\n"
    status = JobStatus(job)
    status.log_button.value = True
    status.refresh()
    assert "hello &lt;world&gt;" in status.log.value
    status.cancel_button.click()
    assert host.cancelled == [job]
    assert job.cancelled()
    status.refresh()
    assert "CANCELLED" in status.line.value
    assert status.cancel_button.disabled


def test_displays_have_meaningful_text(host: Host) -> None:
    job = make_job(host)
    bundle = JobStatus(job)._repr_mimebundle_()
    assert bundle["text/plain"] == "job 200 (fit): PENDING waiting, 0:00"
    assert "application/vnd.jupyter.widget-view+json" in bundle
    # Outside a kernel (here), a Job displays as text only: never a raw widget repr.
    assert job._repr_mimebundle_() == {"text/plain": "job 200 (fit): PENDING waiting, 0:00"}
    array = make_array(host, 3)
    assert array._repr_mimebundle_()["text/plain"].startswith(
        "array 100 (sweep): 3 tasks, done 0, failed 0, cancelled 0, running 0, pending 3"
    )


# -- sweeps -----------------------------------------------------------------------------------
def test_sweep_counts_bar_and_first_failure(host: Host) -> None:
    array = make_array(host, 4)
    sweep = SweepProgress(array)
    assert "0/4 finished" in sweep.html.value
    array[0].state = JobState.COMPLETED
    array[0]._resolve(0)
    array[1].state = JobState.RUNNING
    array[2].state = JobState.FAILED
    array[2]._fail(KeyError("k"))
    assert sweep.refresh() is False
    value = sweep.html.value
    assert "2/4 finished" in value
    assert "done <b>1</b>" in value
    assert "failed <b>1</b>" in value
    assert "running <b>1</b>" in value
    assert "first failure: task 2 (job 100_2): KeyError: &#x27;k&#x27;" in value
    assert 'style="width:25.000%' in value  # a quarter of the bar per task
    sweep.cancel_button.click()
    assert set(host.cancelled) == {array[1], array[3]}
    assert sweep.refresh() is True
    assert "cancelled <b>2</b>" in sweep.html.value
    assert sweep.cancel_button.disabled


def test_one_message_per_refresh_whatever_the_number_of_tasks(host: Host) -> None:
    for n in (10, 10_000):
        array = make_array(host, n, slurm_id=str(n))
        sweep = SweepProgress(array)
        sent = count_messages(sweep.widget)
        for job in array.jobs[: n // 2]:
            job.state = JobState.RUNNING
        sweep.refresh()
        assert sent[0] == 1  # one HTML value, however many tasks changed
        sweep.refresh()
        assert sent[0] == 1  # nothing changed: nothing sent
        array.cancel()


def test_updates_are_throttled_under_a_storm_of_changes(host: Host) -> None:
    """10,000 tasks changing state all the time: at most ~10 messages a second."""
    array = make_array(host, 10_000, slurm_id="300")
    sweep = SweepProgress(array)
    sent = count_messages(sweep.widget)
    stop = threading.Event()

    def storm() -> None:
        states = (JobState.PENDING, JobState.RUNNING)
        index = 0
        while not stop.is_set():
            array.jobs[index % 10_000].state = states[(index // 10_000) % 2]
            index += 1

    thread = threading.Thread(target=storm)
    started = time.monotonic()
    thread.start()
    time.sleep(2.0)
    stop.set()
    thread.join()
    elapsed = time.monotonic() - started
    assert 5 <= sent[0] <= elapsed / refresher.interval + 2, sent[0]
    array.cancel()
    wait_until(lambda: sweep not in refresher)
    assert "cancelled <b>10000</b>" in sweep.html.value


# -- the jobs panel and its graph ---------------------------------------------------------------
def test_dependency_expressions() -> None:
    assert dependency_ids("afterok:1:2_3,afterany:4?after:5+10") == [
        ("afterok", "1"),
        ("afterok", "2_3"),
        ("afterany", "4"),
        ("after", "5"),
    ]
    assert dependency_ids("") == []


def test_graph_edges_come_from_dependencies(host: Host) -> None:
    prep = make_job(host, "10", "prep")
    sweep = make_array(host, 3, "11", dependency="afterok:10")
    total = make_job(host, "12", "total", dependency="afterok:11_0:11_1:11_2:99")
    report = make_job(host, "13", "report", dependency="afterany:12")
    items = [("prep", prep), ("sweep", sweep), ("total", total), ("report", report)]
    nodes, edges = build_graph(items)
    assert [(n.key, n.label) for n in nodes] == [
        ("n0", "prep"),
        ("n1", "sweep"),
        ("n2", "total"),
        ("n3", "report"),
        ("x0", "outside this session"),
    ]
    assert [(e.source, e.target, e.condition) for e in edges] == [
        ("n0", "n1", "afterok"),
        ("n1", "n2", "afterok"),  # three tasks of one array: one edge
        ("x0", "n2", "afterok"),
        ("n2", "n3", "afterany"),
    ]
    svg = render_svg(nodes, edges)
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    assert svg.count('class="sm-node"') == 5
    assert svg.count('class="sm-edge"') == 4
    assert svg.count("stroke-dasharray") == 1  # afterany is dashed
    assert '<rect x="8" y="8"' in svg  # prep in the first column
    assert '<rect x="728" y="8"' in svg  # report in the fourth
    assert render_svg([], []) == ""


def test_jobs_panel_follows_the_registry(host: Host) -> None:
    registry = SessionJobs()
    first = make_job(host, "20", "first")
    registry.add(first, label="a")
    panel = JobsPanel(registry)
    assert "<b>a</b>" in panel.html.value
    assert [label for label, _ in panel.select.options] == ["a (20)"]
    second = make_array(host, 2, "21", dependency="afterok:20")
    registry.add(second, label="b")
    registry.add(second[0], label="ignored")  # a task of a tracked array is not an entry
    wait_until(lambda: "<b>b</b>" in panel.html.value)
    assert len(panel.select.options) == 2
    assert 'class="sm-edge"' in panel.html.value
    text = panel_text(registry.entries())
    assert text.splitlines()[1].split()[:3] == ["a", "20", "job"]
    assert text.splitlines()[2].split()[:4] == ["b", "21", "2", "tasks"]
    assert panel._repr_mimebundle_()["text/plain"] == text
    panel.select.value = 0
    panel.log_button.click()
    assert "job 20" in panel.log.value
    panel.cancel_button.click()
    assert first.cancelled()
    second.cancel()
    wait_until(lambda: panel not in refresher)
    assert panel_html([]) == "<i>No slurm_magics jobs in this kernel yet.</i>"
    panel.close()


# -- tables -----------------------------------------------------------------------------------
def test_task_records(host: Host) -> None:
    array = make_array(host, 3)
    remember_arguments(array, "cfg", [{"lr": 0.1, "state": "x"}, {"lr": 0.2}, {"lr": 0.3}])
    array[0].state = JobState.COMPLETED
    array[0]._resolve(10)
    array[1].state = JobState.FAILED
    array[1]._fail(ValueError("bad lr"))
    records = task_records(array)
    assert records[0] == {
        "task": 0,
        "job_id": "100_0",
        "lr": 0.1,
        "cfg.state": "x",  # an argument never hides a column
        "state": "COMPLETED",
        "elapsed": None,
        "result": 10,
        "error": None,
    }
    assert records[1]["error"] == "ValueError: bad lr"
    assert records[2]["state"] == "PENDING"
    plain = make_array(host, 2, "101")
    remember_arguments(plain, "x", [5, 6])
    assert [r["x"] for r in task_records(plain)] == [5, 6]
    assert "x" not in task_records(make_array(host, 1, "102"))[0]  # arguments unknown


def test_to_dataframe_without_pandas_says_what_to_install(
    host: Host, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "pandas", None)  # as if not installed
    with pytest.raises(ImportError, match="needs pandas, which is not installed: `pip install"):
        to_dataframe(make_array(host, 1))
    with pytest.raises(ImportError, match="needs pandas"):
        make_array(host, 1).to_parquet("/tmp/never.parquet")


def test_widget_classes_are_plain_ipywidgets(host: Host) -> None:
    # Nothing custom on the front end: JupyterLab 4 and Notebook 7 render these as they are.
    status = JobStatus(make_job(host))
    modules = set()
    pending = [status.widget]
    while pending:
        widget = pending.pop()
        pending.extend(getattr(widget, "children", ()))
        modules.add(widget._view_module)
    assert modules == {"@jupyter-widgets/controls", "@jupyter-widgets/output"}
    assert isinstance(status.widget, ipywidgets.VBox)
