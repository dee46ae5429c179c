"""Resources: units, validation with actionable messages, merging and sbatch options."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from slurm_magics.core.resources import (
    ResourceError,
    Resources,
    format_memory,
    format_time,
    parse_memory,
    parse_time,
    resources_from_options,
)


@pytest.mark.parametrize(
    ("value", "megabytes"),
    [
        ("4G", 4096),
        ("4GB", 4096),
        ("4gb", 4096),
        (" 4g ", 4096),
        ("500M", 500),
        ("500mb", 500),
        ("500", 500),
        ("1.5G", 1536),
        (2048, 2048),
        ("2T", 2 * 1024 * 1024),
        ("512K", 1),  # rounded up: SLURM takes whole megabytes
        ("1025K", 2),
        ("1.3M", 2),
    ],
)
def test_parse_memory_valid(value: int | str, megabytes: int) -> None:
    assert parse_memory(value) == megabytes


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("30", 30 * 60),
        (30, 30 * 60),
        ("01:30:00", 5400),
        ("2-00:00:00", 2 * 86400),
        ("2-12", 2 * 86400 + 12 * 3600),
        ("2-12:30", 2 * 86400 + 12 * 3600 + 30 * 60),
        ("10:30", 10 * 60 + 30),  # MM:SS
        ("25:00:00", 25 * 3600),  # hours may pass 24 when no days are given
        (timedelta(hours=1, minutes=2), 3720),
        (timedelta(seconds=0.5), 1),  # rounded up, never to zero
    ],
)
def test_parse_time_valid(value: int | str | timedelta, seconds: int) -> None:
    assert parse_time(value) == seconds


@pytest.mark.parametrize(
    ("megabytes", "text"), [(4096, "4G"), (1536, "1536M"), (500, "500M"), (1024 * 1024, "1024G")]
)
def test_format_memory(megabytes: int, text: str) -> None:
    assert format_memory(megabytes) == text
    assert parse_memory(text) == megabytes


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(1, "00:00:01"), (5400, "01:30:00"), (86400, "1-00:00:00"), (217830, "2-12:30:30")],
)
def test_format_time_round_trips(seconds: int, text: str) -> None:
    assert format_time(seconds) == text
    assert parse_time(text) == seconds


def test_values_are_normalised_on_construction() -> None:
    resources = Resources(memory="1.5G", time="01:00:00")
    assert resources.memory == 1536
    assert resources.memory_mb == 1536
    assert resources.time_seconds == 3600
    assert Resources().memory_mb is None
    assert Resources().time_seconds is None
    assert Resources(memory="1.5G") == Resources(memory=1536)


def test_merging_precedence_defaults_then_task_then_with_options() -> None:
    defaults = Resources(cpus=1, memory="1G", time="00:10:00", partition="debug", extra={"a": "1"})
    task = Resources(cpus=2, time="01:00:00", extra={"a": "2", "b": True})
    per_call = Resources(cpus=4, account="lab", extra={"c": "x"})
    effective = defaults.merged(task).merged(per_call)
    assert effective.cpus == 4
    assert effective.memory_mb == 1024  # only the defaults set it
    assert effective.time_seconds == 3600  # the task's, not re-read as minutes
    assert effective.partition == "debug"
    assert effective.account == "lab"
    assert dict(effective.extra) == {"a": "2", "b": True, "c": "x"}
    # Merging leaves both sides unchanged.
    assert defaults.cpus == 1
    assert dict(defaults.extra) == {"a": "1"}


def test_merging_keeps_time_through_repeated_merges() -> None:
    base = Resources(time=10)
    for _ in range(3):
        base = base.merged(Resources(cpus=1))
    assert base.time_seconds == 600
    assert Resources().merged(Resources(time="00:00:30")).time_seconds == 30


def test_sbatch_options() -> None:
    resources = Resources(
        cpus=2,
        memory="4G",
        gpus=1,
        time=90,
        partition="debug",
        nodes=1,
        account="lab",
        qos="high",
        constraint="intel&avx2",
        extra={"mail_type": "END", "--exclusive": True, "requeue": False, "nice": 10},
    )
    assert resources.sbatch_options() == [
        ("cpus-per-task", "2"),
        ("mem", "4G"),
        ("gres", "gpu:1"),
        ("time", "01:30:00"),
        ("partition", "debug"),
        ("nodes", "1"),
        ("account", "lab"),
        ("qos", "high"),
        ("constraint", "intel&avx2"),
        ("mail-type", "END"),
        ("exclusive", None),
        ("nice", "10"),
    ]


def test_sbatch_options_empty_and_zero_gpus() -> None:
    assert Resources().sbatch_options() == []
    assert Resources(gpus=0).sbatch_options() == []


def test_as_dict_has_only_set_values() -> None:
    assert Resources(cpus=2, memory="1G", extra={"x": "y"}).as_dict() == {
        "cpus": 2,
        "memory": 1024,
        "extra": {"x": "y"},
    }
    assert Resources().as_dict() == {}


def test_resources_from_options_builds_resources() -> None:
    assert resources_from_options(cpus=3, memory="2G") == Resources(cpus=3, memory=2048)


_BAD: list[tuple[dict[str, Any], str]] = [
    ({"cpus": 0}, "0"),
    ({"cpus": -1}, "-1"),
    ({"cpus": 1.5}, "1.5"),
    ({"cpus": "4"}, "'4'"),
    ({"cpus": True}, "True"),
    ({"memory": "4Q"}, "'4Q'"),
    ({"memory": ""}, "''"),
    ({"memory": "G"}, "'G'"),
    ({"memory": -5}, "-5"),
    ({"memory": 0}, "0"),
    ({"memory": "0K"}, "'0K'"),
    ({"memory": "1.2.3G"}, "'1.2.3G'"),
    ({"memory": "-4G"}, "'-4G'"),
    ({"memory": []}, "[]"),
    ({"memory": 4.5}, "4.5"),
    ({"memory": True}, "True"),
    ({"time": "abc"}, "'abc'"),
    ({"time": -5}, "-5"),
    ({"time": 0}, "0"),
    ({"time": "0"}, "'0'"),
    ({"time": ""}, "''"),
    ({"time": "1:2:3:4"}, "'1:2:3:4'"),
    ({"time": "25:61:00"}, "'25:61:00'"),
    ({"time": "1-25:00:00"}, "'1-25:00:00'"),
    ({"time": "2-12:75"}, "'2-12:75'"),
    ({"time": "1--2"}, "'1--2'"),
    ({"time": "1-"}, "'1-'"),
    ({"time": "-1"}, "'-1'"),
    ({"time": timedelta(0)}, "datetime.timedelta(0)"),
    ({"time": timedelta(minutes=-1)}, "datetime.timedelta(days=-1, seconds=86340)"),
    ({"time": "1:60"}, "'1:60'"),
    ({"time": 1.5}, "1.5"),
    ({"gpus": -1}, "-1"),
    ({"gpus": 1.0}, "1.0"),
    ({"nodes": 0}, "0"),
    ({"partition": "bad name"}, "'bad name'"),
    ({"partition": "a;rm -rf"}, "'a;rm -rf'"),
    ({"partition": ""}, "''"),
    ({"partition": 5}, "5"),
    ({"account": "x y"}, "'x y'"),
    ({"qos": "a/b"}, "'a/b'"),
    ({"constraint": "a b"}, "'a b'"),
    ({"extra": {"array": "1-3"}}, "'array'"),
    ({"extra": {"--dependency": "afterok:1"}}, "'--dependency'"),
    ({"extra": {"job_name": "x"}}, "'job_name'"),
    ({"extra": {"Bad Key": 1}}, "'Bad Key'"),
    ({"extra": {"x": "a\nb"}}, "'a\\nb'"),
    ({"extra": {"x": ""}}, "''"),
    ({"extra": {"x": [1]}}, "[1]"),
    ({"extra": {"x": None}}, "None"),
    ({"extra": "notadict"}, "'notadict'"),
]


@pytest.mark.parametrize(("options", "fragment"), _BAD, ids=[repr(o) for o, _ in _BAD])
def test_bad_value_is_refused_with_its_repr(options: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ResourceError) as raised:
        Resources(**options)
    message = str(raised.value)
    ((name, value),) = options.items()
    if name != "extra":
        assert fragment == repr(value)
        assert f"{name}={fragment}" in message
    else:
        assert fragment in message


def test_enough_distinct_bad_values() -> None:
    assert len({repr(options) for options, _ in _BAD}) >= 25


def test_bad_value_through_parse_functions_names_the_parameter() -> None:
    with pytest.raises(ResourceError, match=r"mem_per_cpu='4Q'"):
        parse_memory("4Q", name="mem_per_cpu")
    with pytest.raises(ResourceError, match=r"--time='x'"):
        parse_time("x", name="--time")


def test_unknown_option_is_named() -> None:
    with pytest.raises(ResourceError, match=r"unknown resource option\(s\) 'cpu'") as raised:
        resources_from_options(cpu=2)
    assert "cpus" in str(raised.value)  # says what the known options are


def test_resource_error_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="cpus=0"):
        Resources(cpus=0)
