"""The magics in a real IPython kernel (nbclient), against the real dev cluster.

One notebook is built and executed once per module; each test reads its cells' outputs.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

import slurm_magics as sm
from tests.helpers import connect_source

pytestmark = pytest.mark.cluster

REPO = Path(__file__).resolve().parents[2]


# (key, source): {CONNECT} connects to the cluster of the test session.
CELLS = [
    (
        "setup",
        "%load_ext slurm_magics\n"
        "import slurm_magics as sm\n"
        "print('connected:', {CONNECT}.description)\n"
        "magics = get_ipython().magics_manager.registry['SlurmMagics']",
    ),
    (
        "names",
        "import json as js\nimport os.path as osp\nimport threading\n"
        "def helper(x):\n    return x * 3\n"
        "base = 10\nlock = threading.Lock()\nfh = open('scratch.txt', 'w')",
    ),
    (
        "result",
        "%%slurm -o j1 --wait --mem 100M --time 5\n"
        "print('hello from', 'the cluster')\n"
        "import sys\nprint('a warning', file=sys.stderr)\n"
        "helper(base) + len(js.dumps([1])) + len(osp.basename('/a/bc'))",
    ),
    (
        "shipped",
        "%%slurm --wait\nimport sys\n"
        "(type(js).__name__, js.__name__, osp.__name__ in sys.modules, helper.__module__, base)",
    ),
    ("any_name", "self = j1"),
    ("job_named_self", "%%slurm --wait\nself + 1"),  # names never clash with arguments
    ("map", "%%slurm -o squares --map x=[1, 2, 3] --wait\nprint('item', x)\nx * base"),
    ("map_dicts", "%%slurm --map cfg=[{'lr': 0.5}, {'lr': 0.25}] --wait\ncfg['lr'] * 4"),
    ("up", "%%slurm -o up --mem 100M\nimport time\ntime.sleep(3)\n21"),
    ("down", "%%slurm -o down --after up\n'after up'"),
    ("value_of_job", "%%slurm -o twice --wait\nup * 2"),
    ("after_check", "(down.run.dependency, up.job_id, await down)"),
    ("unpicklable_lock", "%%slurm\nwith lock:\n    pass"),
    ("unpicklable_file", "%%slurm\nfh.read()"),
    ("remote_error", "%%slurm --wait\ndef f():\n    raise ValueError('boom 42')\nf()"),
    ("bad_async", "%%slurm -o bad\nraise KeyError('nope')"),
    ("bad_view", "bad_view = magics.last_view"),
    ("later", "%%slurm -o later\nprint('later line')\n6 * 7"),
    ("later_view", "later_view = magics.last_view\n_slurm_last is later"),
    ("await", "await later"),
    (
        "views_filled",
        "import time\n"  # the views follow their jobs through done-callbacks: let them
        "for _ in range(300):\n"
        "    if (\n"
        "        later_view.output.outputs and bad_view.output.outputs\n"
        "        and 'COMPLETED' in later_view.line.value and later_view.cancel_button.disabled\n"
        "    ):\n"
        "        break\n"
        "    time.sleep(0.1)\n"
        "print(repr(later_view.output.outputs))\n"
        "print([o['output_type'] + ':' + o.get('ename', '') for o in bad_view.output.outputs])\n"
        "print('LINE', later_view.line.value)\n"
        "print('CANCEL', later_view.cancel_button.disabled)",
    ),
    ("after_failed", "%%slurm --after bad\n1"),
    ("sleeper", "%%slurm -o sleeper --time 5\nimport time\ntime.sleep(300)"),
    ("scancel", "%scancel sleeper"),
    ("sleeper2", "%%slurm -o sleeper2 --time 5\nimport time\ntime.sleep(300)"),
    ("scancel_id", "%scancel {sleeper2.job_id}"),
    ("cancelled_id", "(sleeper2.cancelled(), sleeper2.job_id)"),
    ("cancelled", "(sleeper.cancelled(), sleeper.state.value, sleeper.job_id)"),
    ("scancel_unknown", "%scancel nope"),
    ("scancel_not_job", "%scancel base"),
    ("squeue", "%squeue --all"),
    ("logs", "%slurm_logs j1"),
    ("logs_stderr", "%slurm_logs j1 --stderr --tail 1"),
    ("logs_task", "%slurm_logs squares[1]"),
    ("logs_array", "%slurm_logs squares"),
    ("jobs", "%slurm_jobs"),
    (
        "graph",
        "from slurm_magics.ui.widgets.panel import panel_html\n"
        "from slurm_magics.ui.session import session_jobs\n"
        "html = panel_html(session_jobs.entries())\n"
        "('<svg' in html, html.count('class=\"sm-edge\"') >= 2)",
    ),
    ("display", "j1"),
    ("bad_mem", "%%slurm --mem 4X\n1"),
    ("bad_option", "%%slurm --bogus 3\n1"),
    ("bad_after", "%%slurm --after nope\n1"),
    ("bad_map", "%%slurm --map x=undefined_thing\nx"),
    ("missing_name", "%%slurm\nundefined_name + 1"),
    ("not_python", "%%slurm\n!ls"),
    ("help", "%%slurm --help\n1"),
    ("bad_backend", "%slurm_connect --backend bogus"),
    ("live_one", "%%slurm -o live_one --time 5\nimport time\ntime.sleep(300)"),
    ("live_map", "%%slurm -o live_map --map x=[1, 2] --time 5\nimport time\ntime.sleep(300)"),
    ("cancel_all", "%scancel --all"),
    (
        "after_cancel_all",
        "import time\n"
        "for _ in range(300):\n"
        "    if live_one.done() and live_map.done():\n"
        "        break\n"
        "    time.sleep(0.1)\n"
        "(live_one.cancelled(), live_one.state.value, [j.state.value for j in live_map])",
    ),
]


@pytest.fixture(scope="module")
def outputs(cluster: sm.Cluster, cluster_root: Path, tmp_path_factory: Any) -> dict:
    """Execute the notebook once; the outputs of each cell by key."""
    notebook = nbformat.v4.new_notebook()
    for key, source in CELLS:
        cell = nbformat.v4.new_code_cell(
            source.replace("{CONNECT}", connect_source(cluster, cluster_root))
        )
        cell.metadata["key"] = key
        notebook.cells.append(cell)
    folder = tmp_path_factory.mktemp("notebook")
    client = NotebookClient(
        notebook,
        kernel_name="python3",
        timeout=300,
        allow_errors=True,
        resources={"metadata": {"path": str(folder)}},
    )
    # The kernel imports this checkout, whatever is installed.
    path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    client.execute(env={**os.environ, "PYTHONPATH": path})
    nbformat.write(notebook, folder / "executed.ipynb")
    return {cell.metadata["key"]: cell.outputs for cell in notebook.cells}


def _text(outputs: list[Any], kind: str = "") -> str:
    """Everything a cell showed as text (streams, results, errors), or one kind of it."""
    parts = []
    for output in outputs:
        if output["output_type"] == "stream" and kind in ("", output["name"]):
            parts.append(output["text"])
        elif output["output_type"] in ("execute_result", "display_data") and kind in ("", "data"):
            parts.append(output["data"].get("text/plain", ""))
        elif output["output_type"] == "error" and kind in ("", "error"):
            parts.append(
                f"{output['ename']}: {output['evalue']}\n" + "\n".join(output["traceback"])
            )
    return "\n".join(parts)


def _result(outputs: list[Any]) -> str:
    found = [o for o in outputs if o["output_type"] == "execute_result"]
    assert found, f"no result among {outputs}"
    return str(found[-1]["data"]["text/plain"])


def _usage_error(outputs: list[Any]) -> str:
    text = _text(outputs)
    assert "UsageError" in text, text
    return text


def test_the_kernel_reaches_the_cluster_the_same_way(outputs: dict, cluster: sm.Cluster) -> None:
    assert _text(outputs["setup"]).strip() == f"connected: {cluster.description}"


def test_result_and_output_come_back(outputs: dict) -> None:
    cell = outputs["result"]
    assert _result(cell) == str(30 + 3 + 2)
    assert "hello from the cluster" in _text(cell, "stdout")
    assert "a warning" in _text(cell, "stderr")


def test_names_are_shipped_functions_by_value_modules_by_name(outputs: dict) -> None:
    assert _result(outputs["shipped"]) == "('module', 'json', True, '__main__', 10)"


def test_a_job_under_any_name_holds_its_result(outputs: dict) -> None:
    assert _result(outputs["job_named_self"]) == "36"


def test_map_makes_one_array(outputs: dict) -> None:
    assert _result(outputs["map"]) == "[10, 20, 30]"
    assert _result(outputs["map_dicts"]) == "[2.0, 1.0]"  # a dict item stays one value


def test_after_and_jobs_read_by_the_cell(outputs: dict) -> None:
    dependency, up_id, down = eval(_result(outputs["after_check"]))
    assert dependency == f"afterok:{up_id}"
    assert down == "after up"
    assert _result(outputs["value_of_job"]) == "42"  # `up` held a job: its result there


def test_unpicklable_names_are_refused_naming_variable_and_type(outputs: dict) -> None:
    lock = _usage_error(outputs["unpicklable_lock"])
    assert "'lock'" in lock
    assert "_thread.lock" in lock
    file = _usage_error(outputs["unpicklable_file"])
    assert "'fh'" in file
    assert "TextIOWrapper" in file


def test_remote_exception_is_shown_with_its_traceback(outputs: dict) -> None:
    errors = [o for o in outputs["remote_error"] if o["output_type"] == "error"]
    assert len(errors) == 1
    assert errors[0]["ename"] == "ValueError"
    assert errors[0]["evalue"] == "boom 42"
    traceback = "\n".join(errors[0]["traceback"])
    assert "Remote traceback" in traceback
    assert "raise ValueError('boom 42')" in traceback  # the cell's own line, from the cluster


def test_status_display_has_meaningful_text_and_a_widget(outputs: dict) -> None:
    shown = [o for o in outputs["later"] if o["output_type"] == "display_data"]
    assert len(shown) == 1
    data = shown[0]["data"]
    assert "application/vnd.jupyter.widget-view+json" in data
    assert re.match(r"job \d+ \(later\): (PENDING|RUNNING|COMPLETED)", data["text/plain"])


def test_o_binds_an_awaitable_job_and_output_reaches_the_display(outputs: dict) -> None:
    assert _result(outputs["await"]) == "42"
    text = _text(outputs["views_filled"], "stdout")
    assert "later line" in text
    assert "['stream:stderr', 'error:KeyError']" in text or "['error:KeyError']" in text
    assert "COMPLETED" in text
    assert "CANCEL True" in text


def test_without_o_the_job_is_still_reachable(outputs: dict) -> None:
    assert _result(outputs["later_view"]) == "True"  # _slurm_last


def test_after_a_failed_job_fails_at_once(outputs: dict) -> None:
    errors = [o for o in outputs["after_failed"] if o["output_type"] == "error"]
    assert [e["ename"] for e in errors] == ["DependencyError"]
    assert "KeyError" in errors[0]["evalue"]


def test_scancel_by_slurm_id(outputs: dict) -> None:
    cancelled, job_id = eval(_result(outputs["cancelled_id"]))
    assert cancelled is True
    assert _text(outputs["scancel_id"], "stdout").strip() == f"cancelled job {job_id} (sleeper2)"


def test_scancel_cancels_and_says_so(outputs: dict) -> None:
    said = _text(outputs["scancel"], "stdout")
    cancelled, state, job_id = eval(_result(outputs["cancelled"]))
    assert said.strip() == f"cancelled job {job_id} (sleeper)"
    assert cancelled is True
    assert state == "CANCELLED"
    queue = subprocess.run(
        ["squeue", "--noheader", "-t", "PD,R", "-o", "%i"], capture_output=True, text=True
    ).stdout.split()
    assert job_id not in queue
    assert "no variable 'nope'" in _usage_error(outputs["scancel_unknown"])
    assert "'base' holds a int, not a job" in _usage_error(outputs["scancel_not_job"])


def test_squeue_table(outputs: dict) -> None:
    shown = [o for o in outputs["squeue"] if o["output_type"] == "execute_result"]
    assert "<table" in shown[0]["data"]["text/html"]
    text = shown[0]["data"]["text/plain"]
    assert text.startswith("JOBID")
    assert re.search(r"^\d+\s+j1\s+(debug|local)\s+1\s+COMPLETED\s+\d+:\d\d", text, re.MULTILINE)
    assert re.search(r"^\d+_\[0-2\]\s+squares\s+(debug|local)\s+3\s+COMPLETED", text, re.MULTILINE)


def test_slurm_logs(outputs: dict) -> None:
    assert _text(outputs["logs"], "stdout").strip() == "hello from the cluster"
    assert _text(outputs["logs_stderr"], "stdout").strip() == "a warning"
    assert _text(outputs["logs_task"], "stdout").strip() == "item 2"
    assert "pick one, e.g. squares[0]" in _usage_error(outputs["logs_array"])


def test_jobs_panel_lists_the_session_with_its_graph(outputs: dict) -> None:
    shown = [o for o in outputs["jobs"] if o["output_type"] == "display_data"]
    data = shown[0]["data"]
    assert "application/vnd.jupyter.widget-view+json" in data
    for label in ("j1", "squares", "up", "down", "sleeper"):
        assert re.search(rf"^{label}\s", data["text/plain"], re.MULTILINE), label
    assert _result(outputs["graph"]) == "(True, True)"


def test_a_job_displays_as_its_status(outputs: dict) -> None:
    data = next(o for o in outputs["display"] if o["output_type"] == "execute_result")["data"]
    assert re.match(r"job \d+ \(j1\): COMPLETED", data["text/plain"])
    assert "application/vnd.jupyter.widget-view+json" in data


def test_bad_options_are_usage_errors_naming_the_value(outputs: dict) -> None:
    assert "--mem '4X'" in _usage_error(outputs["bad_mem"])
    assert "unrecognized arguments: --bogus 3" in _usage_error(outputs["bad_option"])
    assert "--after nope" in _usage_error(outputs["bad_after"])
    assert "undefined_thing" in _usage_error(outputs["bad_map"])
    assert "undefined_name" in _usage_error(outputs["missing_name"])
    assert "not valid Python" in _usage_error(outputs["not_python"])
    assert "invalid choice: 'bogus'" in _usage_error(outputs["bad_backend"])
    help_text = _text(outputs["help"], "stdout")
    assert "--map NAME=EXPR" in help_text
    assert "--after VAR[,VAR...]" in help_text


def test_scancel_all_says_what_it_did(outputs: dict) -> None:
    said = _text(outputs["cancel_all"], "stdout")
    # live jobs were there to cancel: a job and a map of two tasks still sleeping
    assert re.search(r"^cancelled job \d+ \(live_one\)$", said, re.MULTILINE), said
    assert re.search(r"^cancelled .*live_map.*: 2 unfinished tasks$", said, re.MULTILINE), said
    assert "nothing to cancel" not in said
    assert _result(outputs["after_cancel_all"]) == "(True, 'CANCELLED', ['CANCELLED', 'CANCELLED'])"
