"""Option lines of the magics, and the %squeue table (pure)."""

from __future__ import annotations

import re

import pytest

from slurm_magics.core.parsing import parse_squeue as parse_squeue_output
from slurm_magics.core.resources import Resources
from slurm_magics.ui.magics.options import (
    OptionsError,
    parse_cancel,
    parse_cell,
    parse_connect,
    parse_logs,
    parse_squeue,
)
from slurm_magics.ui.magics.queue import QueueTable, compress_ids, elapsed_seconds, group_queue


def test_cell_options() -> None:
    options = parse_cell(
        "-o job --cpus 4 --mem 8G --time 01:00:00 --gpus 1 --partition debug --name fit "
        "--after a,b --after c --wait"
    )
    assert options.output == "job"
    assert options.resources == Resources(
        cpus=4, memory="8G", time="01:00:00", gpus=1, partition="debug"
    )
    assert options.name == "fit"
    assert options.after == ("a", "b", "c")
    assert options.wait
    assert options.map_name is None


def test_defaults() -> None:
    options = parse_cell("")
    assert options.resources == Resources()
    assert (options.output, options.name, options.after, options.wait) == (None, None, (), False)


@pytest.mark.parametrize(
    ("line", "name", "expression"),
    [
        ("--map x=range(10)", "x", "range(10)"),
        ("--map x=[1, 2, 3] --wait", "x", "[1, 2, 3]"),
        ("--wait --map cfg=[{'lr': 0.1}, {'lr': -1}] -o out", "cfg", "[{'lr': 0.1}, {'lr': -1}]"),
        ('--map "x = [1, 2]"', "x", "[1, 2]"),
        ("--map=x=range(3)", "x", "range(3)"),
    ],
)
def test_map_expressions_keep_spaces_and_quotes(line: str, name: str, expression: str) -> None:
    options = parse_cell(line)
    assert (options.map_name, options.map_expression) == (name, expression)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("--mem 4X", "--mem '4X': memory='4X' is not a memory size"),
        ("--time 99:99", "--time '99:99'"),
        ("--cpus two", "--cpus 'two': cpus='two'"),
        ("--cpus 0", "--cpus '0': cpus=0 must be at least 1"),
        ("--partition 'a b'", "--partition 'a b'"),
        ("--bogus 3", "unrecognized arguments: --bogus 3"),
        ("--part debug", "unrecognized arguments: --part debug"),  # no abbreviations
        ("-o 1x", "-o '1x' is not a Python variable name"),
        ("-o class", "-o 'class' is not a Python variable name"),
        ("--after a,2b", "--after '2b'"),
        ("--map x", "--map 'x' must look like NAME=EXPR"),
        ("--map x=(1,", "'(1,' is not a Python expression"),
        ("--map 1=range(3)", "--map '1'"),
        ("--map x=[1] --map y=[2]", "give --map once"),
        ("--name ''", "--name '' is empty"),
        ("-o 'unclosed", "cannot read the options"),
    ],
)
def test_bad_cell_options_name_the_value(line: str, message: str) -> None:
    with pytest.raises(OptionsError) as caught:
        parse_cell(line)
    assert message in str(caught.value)
    assert str(caught.value).startswith("%%slurm: ")


def test_help() -> None:
    assert parse_cell("--help").show_help
    assert parse_cell("-h").show_help


def test_connect_options() -> None:
    options = parse_connect("login.hpc.org --user me --port 2222 --partition debug")
    assert (options.host, options.user, options.port, options.partition) == (
        "login.hpc.org",
        "me",
        2222,
        "debug",
    )
    assert parse_connect("--backend local").backend == "local"
    with pytest.raises(OptionsError, match="invalid choice: 'ssh'"):
        parse_connect("--backend ssh")
    with pytest.raises(OptionsError, match="invalid int value: 'x'"):
        parse_connect("--port x")
    with pytest.raises(OptionsError, match="--partition"):
        parse_connect("--partition 'a;b'")


def test_cancel_options() -> None:
    assert parse_cancel("job 123 sweep").targets == ("job", "123", "sweep")
    assert parse_cancel("--all").all
    with pytest.raises(OptionsError, match="or --all"):
        parse_cancel("")
    with pytest.raises(OptionsError, match="not both"):
        parse_cancel("job --all")


def test_logs_options() -> None:
    options = parse_logs("sweep[3] --stderr --tail 20")
    assert (options.target, options.stderr, options.tail) == ("sweep[3]", True, 20)
    with pytest.raises(OptionsError, match="--tail 0 must be at least 1"):
        parse_logs("job --tail 0")
    with pytest.raises(OptionsError, match="required: VAR"):
        parse_logs("")
    assert parse_logs("--help").show_help


def test_squeue_options() -> None:
    assert parse_squeue("--all").all
    with pytest.raises(OptionsError, match="unrecognized arguments: -u"):
        parse_squeue("-u other")


def test_compress_ids() -> None:
    assert compress_ids([5, 0, 1, 2, 7, 8]) == "0-2,5,7-8"
    assert compress_ids([3]) == "3"
    assert compress_ids([]) == ""


def test_queue_groups_array_tasks() -> None:
    output = "\n".join(
        [
            "100|100|RUNNING|None|node1|debug|1:02:03|prep",
            "101_[5-9]|101|PENDING|Resources||batch|0:00|runner",
            "101_0|102|RUNNING|None|node1|batch|0:09|runner",
            "101_1|103|RUNNING|None|node1|batch|1:10|runner",
            "101_2|101|COMPLETED|None|node1|batch|0:05|runner",
            "99|99|PENDING|Dependency|",  # squeue's older five fields: no name, no time
        ]
    )
    lines = group_queue(parse_squeue_output(output), {"101": "sweep"})
    assert [
        (line.job_id, line.name, line.partition, line.state, line.tasks, line.elapsed, line.where)
        for line in lines
    ] == [
        ("99", "", "", "PENDING", 1, "", "Dependency"),
        ("100", "prep", "debug", "RUNNING", 1, "1:02:03", "node1"),  # SLURM's name
        ("101_2", "sweep", "batch", "COMPLETED", 1, "0:05", ""),  # this session's label
        ("101_[0-1]", "sweep", "batch", "RUNNING", 2, "1:10", "node1"),  # the longest
        ("101_[5-9]", "sweep", "batch", "PENDING", 5, "0:00", "Resources"),
    ]
    table = QueueTable(lines, "me")
    text = repr(table)
    assert text.splitlines()[0].split() == [
        "JOBID",
        "NAME",
        "PARTITION",
        "TASKS",
        "STATE",
        "TIME",
        "NODES/REASON",
    ]
    assert re.search(r"^101_\[5-9\]\s+sweep\s+batch\s+5\s+PENDING\s+0:00\s+Resources$", text, re.M)
    html = table._repr_html_()
    assert html.count("<tr>") == 6
    assert "<td>1:02:03</td>" in html.replace(' style="text-align:right"', "")
    assert "squeue -u me" in html
    assert repr(QueueTable([], "me")) == "no jobs in the queue for me"


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("0:00", 0), ("0:09", 9), ("1:10", 70), ("1:02:03", 3723), ("2-01:00:05", 176405), ("", 0)],
)
def test_elapsed_seconds(text: str, seconds: int) -> None:
    assert elapsed_seconds(text) == seconds


def test_long_task_ranges_are_shortened() -> None:
    output = "\n".join(f"7_{i}|{i}|RUNNING|None|n" for i in range(0, 100, 2))
    (line,) = group_queue(parse_squeue_output(output), {})
    assert line.tasks == 50
    assert line.job_id.startswith("7_[0,2,4,")
    assert line.job_id.endswith(",…]")
    assert len(line.job_id) < 40
