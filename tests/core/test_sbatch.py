"""Batch script rendering (golden files), path checks and job names."""

from __future__ import annotations

import difflib
from pathlib import Path

import pytest

from slurm_magics.core.resources import Resources
from slurm_magics.core.sbatch import (
    ScriptSpec,
    check_path,
    log_path,
    render_script,
    sanitise_job_name,
)

GOLDEN = Path(__file__).parents[1] / "golden"

SPECS = {
    "single": ScriptSpec(
        name="double",
        resources=Resources(cpus=2, memory="4G", time="00:10:00"),
        run_dir="/home/me/.slurm_magics/runs/s1-ab12",
        runner_path="/home/me/.slurm_magics/runner.py",
        python="/usr/bin/python3",
        n_elements=0,
        tag="s1-ab12.0",
    ),
    "array_throttle_offset": ScriptSpec(
        name="train model!",
        resources=Resources(memory="500M", partition="debug"),
        run_dir="/scratch/sm/runs/s1-cd34",
        runner_path="/scratch/sm/runner.py",
        python="python3",
        n_elements=100,
        element_offset=1000,
        max_concurrent=4,
        tag="s1-cd34.1000",
    ),
    "dependency_setup_gpus": ScriptSpec(
        name="add_all",
        resources=Resources(
            cpus=1,
            gpus=2,
            time="1-00:00:00",
            extra={"exclusive": True, "comment": "fan in", "requeue": False},
        ),
        run_dir="/scratch/sm/runs/s1-ef56",
        runner_path="/scratch/sm/runner.py",
        python="/opt/my env/bin/python",
        n_elements=0,
        dependency="afterok:123:124",
        setup=("module load python/3.11", "export OMP_NUM_THREADS=1"),
        tag="s1-ef56.0",  # the user's own comment wins: no tag line
    ),
    "quoting": ScriptSpec(
        name="quotes",
        resources=Resources(extra={"comment": 'say "hi" #1 \\ ok', "mail-user": "me@example.org"}),
        run_dir="/tmp/sm/runs/s2-0001",
        runner_path="/tmp/sm/runner.py",
        python="python3",
        n_elements=3,
    ),
}


@pytest.mark.parametrize("name", sorted(SPECS))
def test_render_matches_golden_file(name: str) -> None:
    expected = (GOLDEN / f"{name}.sh").read_bytes()
    rendered = render_script(SPECS[name]).encode()
    if rendered != expected:
        diff = difflib.unified_diff(
            expected.decode().splitlines(keepends=True),
            rendered.decode().splitlines(keepends=True),
            fromfile=f"tests/golden/{name}.sh",
            tofile="render_script()",
        )
        pytest.fail("rendered script differs from the golden file:\n" + "".join(diff))


def test_every_golden_file_is_tested() -> None:
    assert {path.stem for path in GOLDEN.glob("*.sh")} == set(SPECS)


def test_sbatch_lines_come_before_the_first_command() -> None:
    # sbatch stops reading #SBATCH lines at the first command.
    for spec in SPECS.values():
        lines = render_script(spec).splitlines()
        first_command = next(i for i, line in enumerate(lines) if line and not line.startswith("#"))
        assert not any(line.startswith("#SBATCH") for line in lines[first_command:])
        assert lines[-1].startswith("exec ")


def test_the_submission_tag_gives_way_to_the_users_comment() -> None:
    assert SPECS["single"].sent_tag == "s1-ab12.0"
    assert SPECS["dependency_setup_gpus"].sent_tag == ""  # extra={"comment": ...}
    assert "slurm_magics:" not in render_script(SPECS["dependency_setup_gpus"])


def test_single_job_runs_its_offset_element() -> None:
    spec = ScriptSpec(
        name="x",
        resources=Resources(),
        run_dir="/r",
        runner_path="/runner.py",
        python="python3",
        n_elements=0,
        element_offset=7,
    )
    script = render_script(spec)
    assert script.endswith("exec python3 /runner.py /r 7\n")
    assert "--array" not in script
    assert "%j.out" in script


def test_render_refuses_an_unsafe_run_dir() -> None:
    spec = ScriptSpec(
        name="x",
        resources=Resources(),
        run_dir="/tmp/my runs",
        runner_path="/runner.py",
        python="python3",
        n_elements=0,
    )
    with pytest.raises(ValueError, match=r"'/tmp/my runs'"):
        render_script(spec)


@pytest.mark.parametrize(
    "path",
    [
        "/tmp/my runs",
        "/tmp/tab\there",
        "/tmp/new\nline",
        '/tmp/"quoted"',
        "/tmp/it's",
        "/tmp/$HOME",
        "/tmp/back\\slash",
        "/tmp/`cmd`",
        "/tmp/hash#tag",
        "/tmp/100%done",
    ],
)
def test_check_path_refuses(path: str) -> None:
    with pytest.raises(ValueError, match="choose a plain path") as raised:
        check_path(path, what="root folder")
    assert repr(path) in str(raised.value)
    assert "root folder" in str(raised.value)


@pytest.mark.parametrize(
    "path", ["/home/me/.slurm_magics", "/scratch/u-1/runs/s1_ab.cd", "~/sm", "relative/dir"]
)
def test_check_path_accepts_plain_paths(path: str) -> None:
    assert check_path(path) == path


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("double", "double"),
        ("train model!", "train_model"),
        ("my-task.v2", "my-task.v2"),
        ("<lambda>", "lambda"),
        ("a / b ; rm -rf", "a_b_rm_-rf"),
        ("Ünïcode naïve", "n_code_na_ve"),
        ("", "job"),
        ("!!!", "job"),
        ("x" * 100, "x" * 64),
    ],
)
def test_sanitise_job_name(name: str, expected: str) -> None:
    assert sanitise_job_name(name) == expected


def test_log_path() -> None:
    assert log_path("/r", "123_4") == "/r/logs/123_4.out"
    assert log_path("/r", "123", stream="err") == "/r/logs/123.err"


@pytest.mark.parametrize(
    ("extra", "requeue", "lines"),
    [
        ({}, False, ["#SBATCH --no-requeue"]),  # SLURM must not run it again by itself
        ({}, True, ["#SBATCH --requeue"]),  # retries=: scontrol requeue needs it
        ({"requeue": True}, False, ["#SBATCH --requeue"]),  # the user asks for SLURM's
        ({"requeue": False}, True, ["#SBATCH --no-requeue"]),
        ({"no-requeue": True}, True, ["#SBATCH --no-requeue"]),
    ],
)
def test_jobs_are_not_requeued_by_slurm_unless_asked(
    extra: dict[str, bool], requeue: bool, lines: list[str]
) -> None:
    spec = ScriptSpec(
        name="x",
        resources=Resources(extra=extra),
        run_dir="/r",
        runner_path="/runner.py",
        python="python3",
        n_elements=0,
        requeue=requeue,
    )
    rendered = render_script(spec).splitlines()
    assert [line for line in rendered if "requeue" in line] == lines
